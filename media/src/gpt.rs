//! The GUID partition table (UEFI spec, chapter 5) as far as sherd needs it: where a stick
//! written with sherd's ISO ends (its backup header is the image's last sector) and where its
//! EFI system partition is. Pure, over bytes read from the disk: outside input, every field
//! checked before use.

/// The EFI system partition's type GUID, C12A7328-F81F-11D2-BA4B-00A0C93EC93B, as stored
/// (the first three fields little-endian).
pub const ESP_TYPE: [u8; 16] = [
    0x28, 0x73, 0x2a, 0xc1, 0x1f, 0xf8, 0xd2, 0x11, 0xba, 0x4b, 0x00, 0xa0, 0xc9, 0x3e, 0xc9, 0x3b,
];
const SECTOR: u64 = 512;
/// At most this many entries are read (the usual table has 128).
const MAX_ENTRIES: u32 = 256;

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GptPartition {
    pub type_guid: [u8; 16],
    pub first_lba: u64,
    pub last_lba: u64,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Gpt {
    /// Where the backup header is: for sherd's image, its last sector.
    pub alternate_lba: u64,
    pub partitions: Vec<GptPartition>,
}

impl Gpt {
    /// The bytes from the start of the disk to the end of the backup header.
    pub fn image_len(&self) -> u64 {
        (self.alternate_lba + 1) * SECTOR
    }

    pub fn esps(&self) -> impl Iterator<Item = &GptPartition> {
        self.partitions.iter().filter(|p| p.type_guid == ESP_TYPE)
    }
}

#[derive(Debug, PartialEq, Eq)]
pub enum GptError {
    NoHeader,
    Bad(&'static str),
    /// The entries lie beyond the bytes given: read this many from the start of the disk.
    NeedBytes(u64),
}

impl std::fmt::Display for GptError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            GptError::NoHeader => f.write_str("no GPT header (\"EFI PART\" at byte 512)"),
            GptError::Bad(what) => write!(f, "GPT header: {what}"),
            GptError::NeedBytes(n) => write!(f, "GPT entries end at byte {n}"),
        }
    }
}

fn u32_at(b: &[u8], at: usize) -> u32 {
    u32::from_le_bytes(b[at..at + 4].try_into().expect("4 bytes"))
}

fn u64_at(b: &[u8], at: usize) -> u64 {
    u64::from_le_bytes(b[at..at + 8].try_into().expect("8 bytes"))
}

/// Reads the primary header at LBA 1 and its entries from `start`, the first bytes of a disk
/// of `disk_len` bytes. The header's and entries' CRC32s are checked.
pub fn parse(start: &[u8], disk_len: u64) -> Result<Gpt, GptError> {
    let h = start.get(512..1024).ok_or(GptError::NoHeader)?;
    if &h[..8] != b"EFI PART" {
        return Err(GptError::NoHeader);
    }
    let header_size = u32_at(h, 12) as usize;
    if !(92..=512).contains(&header_size) {
        return Err(GptError::Bad("header size is not 92 to 512"));
    }
    let mut header = h[..header_size].to_vec();
    header[16..20].fill(0);
    if crc32(&header) != u32_at(h, 16) {
        return Err(GptError::Bad("header CRC32 does not match"));
    }
    if u64_at(h, 24) != 1 {
        return Err(GptError::Bad(
            "the primary header does not say it is at LBA 1",
        ));
    }
    let alternate_lba = u64_at(h, 32);
    if alternate_lba < 2 || alternate_lba.saturating_add(1).saturating_mul(SECTOR) > disk_len {
        return Err(GptError::Bad("the backup header is not on the disk"));
    }
    let entries_lba = u64_at(h, 72);
    let count = u32_at(h, 80);
    let size = u32_at(h, 84);
    if count > MAX_ENTRIES || !(128..=4096).contains(&size) || !size.is_multiple_of(8) {
        return Err(GptError::Bad("entry count or size out of range"));
    }
    let from = entries_lba
        .checked_mul(SECTOR)
        .filter(|&f| f >= 2 * SECTOR)
        .ok_or(GptError::Bad("entries overlap the header"))?;
    let to = from + u64::from(count) * u64::from(size);
    let table = start
        .get(from as usize..to as usize)
        .ok_or(GptError::NeedBytes(to))?;
    if crc32(table) != u32_at(h, 88) {
        return Err(GptError::Bad("entries CRC32 does not match"));
    }
    let partitions = table
        .chunks_exact(size as usize)
        .filter(|e| e[..16] != [0; 16])
        .map(|e| GptPartition {
            type_guid: e[..16].try_into().expect("16 bytes"),
            first_lba: u64_at(e, 32),
            last_lba: u64_at(e, 40),
        })
        .filter(|p| p.first_lba <= p.last_lba && p.last_lba < alternate_lba)
        .collect();
    Ok(Gpt {
        alternate_lba,
        partitions,
    })
}

/// CRC-32 (IEEE 802.3, reflected, as the GPT uses it), bit by bit: it runs over a few KiB once.
fn crc32(data: &[u8]) -> u32 {
    let mut crc = !0u32;
    for &b in data {
        crc ^= u32::from(b);
        for _ in 0..8 {
            crc = (crc >> 1) ^ (0xEDB8_8320 & (crc & 1).wrapping_neg());
        }
    }
    !crc
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crc32_check_value() {
        assert_eq!(crc32(b"123456789"), 0xCBF4_3926);
    }

    /// A disk with one ESP, built field by field.
    fn disk(len_sectors: u64) -> Vec<u8> {
        let mut d = vec![0u8; 34 * 512];
        let mut e = vec![0u8; 128 * 128];
        e[..16].copy_from_slice(&ESP_TYPE);
        e[32..40].copy_from_slice(&40u64.to_le_bytes());
        e[40..48].copy_from_slice(&99u64.to_le_bytes());
        d[1024..1024 + e.len()].copy_from_slice(&e);
        let h = &mut d[512..1024];
        h[..8].copy_from_slice(b"EFI PART");
        h[12..16].copy_from_slice(&92u32.to_le_bytes());
        h[24..32].copy_from_slice(&1u64.to_le_bytes());
        h[32..40].copy_from_slice(&(len_sectors - 1).to_le_bytes());
        h[72..80].copy_from_slice(&2u64.to_le_bytes());
        h[80..84].copy_from_slice(&128u32.to_le_bytes());
        h[84..88].copy_from_slice(&128u32.to_le_bytes());
        h[88..92].copy_from_slice(&crc32(&e).to_le_bytes());
        let c = crc32(&h[..92]);
        h[16..20].copy_from_slice(&c.to_le_bytes());
        d
    }

    #[test]
    fn finds_the_esp_and_the_image_length() {
        let d = disk(200);
        let g = parse(&d, 200 * 512).unwrap();
        assert_eq!(g.image_len(), 200 * 512);
        let esps: Vec<_> = g.esps().collect();
        assert_eq!(esps.len(), 1);
        assert_eq!((esps[0].first_lba, esps[0].last_lba), (40, 99));
        // A bigger stick: the image still ends where the backup header is.
        assert_eq!(parse(&d, 1 << 30).unwrap().image_len(), 200 * 512);
    }

    #[test]
    fn refuses_what_does_not_add_up() {
        let d = disk(200);
        assert_eq!(parse(&d[..600], 200 * 512), Err(GptError::NoHeader));
        assert!(matches!(parse(&d, 100 * 512), Err(GptError::Bad(_))));
        assert!(matches!(
            parse(&d[..2000], 200 * 512),
            Err(GptError::NeedBytes(_))
        ));
        for at in [512 + 40, 1024 + 33] {
            let mut bad = d.clone();
            bad[at] ^= 1;
            assert!(
                matches!(parse(&bad, 200 * 512), Err(GptError::Bad(_))),
                "{at}"
            );
        }
        assert_eq!(parse(&[], 0), Err(GptError::NoHeader));
    }
}
