//! The stick UEFI firmware booted: sherd's ISO written whole to a removable disk (`dd`), told by
//! its GPT's EFI system partition holding the FAT volume sherd's build labels `SHERD-EFI`. What
//! the boot attestation needs from it: the image's SHA-256 (equal to the released ISO's, since
//! the image ends with the backup GPT header) and the EFI application the firmware started.

use std::fs::File;
use std::io::{self, Read, Seek, SeekFrom};

use sha2::{Digest, Sha256};

use crate::gpt;
use crate::{Media, MediaError};

/// The FAT volume label of sherd's EFI system partition (`image/src/iso.rs` writes it).
pub const ESP_LABEL: &[u8; 11] = b"SHERD-EFI  ";
/// Where the firmware looks on removable media for an x86-64 application.
pub const EFI_APP_PATH: &str = "EFI/BOOT/BOOTX64.EFI";
/// An EFI system partition larger than this is not read into memory.
const ESP_MAX_BYTES: u64 = 256 << 20;

/// sherd's image found on a whole stick.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UefiImage {
    /// The stick, as the screens describe it (`sdb (SanDisk Cruzer, 16.0 GB)`).
    pub device: String,
    /// From the start of the stick to the end of the backup GPT header.
    pub image_len: u64,
    pub sha256: [u8; 32],
    /// `EFI/BOOT/BOOTX64.EFI` from the EFI system partition.
    pub efi_app: Vec<u8>,
}

impl UefiImage {
    pub fn sha256_hex(&self) -> String {
        self.sha256.iter().map(|b| format!("{b:02x}")).collect()
    }
}

impl Media {
    /// Every removable disk that holds sherd's UEFI image as a whole (a GPT with an EFI system
    /// partition labelled `SHERD-EFI`), hashed. Disks without one are skipped; a disk that has
    /// one but cannot be read is an error that names it.
    pub fn find_uefi_images(&self) -> Result<Vec<UefiImage>, MediaError> {
        let mut found = Vec::new();
        for d in self.disks()?.iter().filter(|d| d.is_removable_media()) {
            let device = d.describe();
            let fail = |what: String| MediaError::UefiImage {
                device: device.clone(),
                what,
            };
            let Ok(mut f) = File::open(&d.dev_path) else {
                continue;
            };
            let mut start = vec![0u8; 34 * 512];
            if read_at(&mut f, 0, &mut start).is_err() {
                continue;
            }
            let table = match gpt::parse(&start, d.size_bytes) {
                Ok(t) => t,
                Err(gpt::GptError::NeedBytes(n)) if n <= 1 << 20 => {
                    start.resize(n as usize, 0);
                    match read_at(&mut f, 0, &mut start).map(|()| gpt::parse(&start, d.size_bytes))
                    {
                        Ok(Ok(t)) => t,
                        _ => continue,
                    }
                }
                Err(_) => continue,
            };
            let mut ours = None;
            for esp in table.esps() {
                let mut boot = [0u8; 512];
                if read_at(&mut f, esp.first_lba * 512, &mut boot).is_ok()
                    && &boot[43..54] == ESP_LABEL
                {
                    ours = Some(esp.clone());
                }
            }
            let Some(esp) = ours else { continue };
            let esp_len = (esp.last_lba - esp.first_lba + 1) * 512;
            if esp_len > ESP_MAX_BYTES {
                return Err(fail(format!(
                    "its EFI system partition is {esp_len} bytes, more than sherd's ever is"
                )));
            }
            let mut volume = vec![0u8; esp_len as usize];
            read_at(&mut f, esp.first_lba * 512, &mut volume)
                .map_err(|e| fail(format!("reading the EFI system partition: {e}")))?;
            let efi_app = read_fat_file(volume, EFI_APP_PATH)
                .map_err(|e| fail(format!("{EFI_APP_PATH} on its EFI system partition: {e}")))?;
            let image_len = table.image_len();
            let sha256 = hash_prefix(&mut f, image_len)
                .map_err(|e| fail(format!("reading the image's {image_len} bytes: {e}")))?;
            found.push(UefiImage {
                device,
                image_len,
                sha256,
                efi_app,
            });
        }
        Ok(found)
    }
}

fn read_at(f: &mut File, at: u64, buf: &mut [u8]) -> io::Result<()> {
    f.seek(SeekFrom::Start(at))?;
    f.read_exact(buf)
}

fn hash_prefix(f: &mut File, len: u64) -> io::Result<[u8; 32]> {
    f.seek(SeekFrom::Start(0))?;
    let mut h = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    let mut left = len;
    while left > 0 {
        let n = buf.len().min(left as usize);
        f.read_exact(&mut buf[..n])?;
        h.update(&buf[..n]);
        left -= n as u64;
    }
    Ok(h.finalize().into())
}

/// One file of a FAT volume held in memory, by its `/`-separated path.
pub fn read_fat_file(volume: Vec<u8>, path: &str) -> io::Result<Vec<u8>> {
    let fs = fatfs::FileSystem::new(io::Cursor::new(volume), fatfs::FsOptions::new())?;
    let mut file = fs.root_dir().open_file(path)?;
    let mut out = Vec::new();
    file.read_to_end(&mut out)?;
    Ok(out)
}
