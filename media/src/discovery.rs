//! Disks and partitions found by reading sysfs (there is no udev in the image), and the file
//! system a partition holds, told by its magic numbers.

use std::fs;
use std::io::{self, Read};
use std::path::{Path, PathBuf};

/// One partition of a disk.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Partition {
    /// Kernel name, e.g. `sdb1`, `nvme0n1p2`.
    pub name: String,
    /// Its device node, e.g. `/dev/sdb1` (devtmpfs creates it).
    pub dev_path: PathBuf,
    pub size_bytes: u64,
}

/// One block device as sysfs describes it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Disk {
    /// Kernel name, e.g. `sdb`.
    pub name: String,
    pub dev_path: PathBuf,
    /// The kernel's `removable` flag (many USB sticks set it, USB disks often do not).
    pub removable: bool,
    /// Attached through USB (its sysfs device path passes through a USB bus).
    pub usb: bool,
    /// 0 when there is no medium (an empty card reader).
    pub size_bytes: u64,
    /// From the device (USB descriptors): printable ASCII only, at most 40 characters.
    pub vendor: String,
    pub model: String,
    pub partitions: Vec<Partition>,
}

/// A block device that may hold a file system: a partition, or a whole disk without a partition
/// table (a "superfloppy").
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FsDevice {
    /// Kernel name of the partition or disk, e.g. `sdb1`.
    pub name: String,
    pub dev_path: PathBuf,
    pub size_bytes: u64,
    /// Kernel name of the disk it is on, e.g. `sdb`.
    pub disk: String,
    pub vendor: String,
    pub model: String,
}

impl Disk {
    /// Whether sherd may look at this disk at all: on USB or flagged removable, with a medium.
    /// Internal disks (SATA, NVMe) are never mounted.
    pub fn is_removable_media(&self) -> bool {
        (self.removable || self.usb) && self.size_bytes > 0
    }

    /// The file systems to try on it: each partition, or the whole disk when it has none.
    pub fn fs_devices(&self) -> Vec<FsDevice> {
        let dev = |name: &str, dev_path: &Path, size_bytes| FsDevice {
            name: name.to_string(),
            dev_path: dev_path.to_path_buf(),
            size_bytes,
            disk: self.name.clone(),
            vendor: self.vendor.clone(),
            model: self.model.clone(),
        };
        if self.partitions.is_empty() {
            vec![dev(&self.name, &self.dev_path, self.size_bytes)]
        } else {
            self.partitions
                .iter()
                .map(|p| dev(&p.name, &p.dev_path, p.size_bytes))
                .collect()
        }
    }
}

impl FsDevice {
    /// For the screen: `sdb1 (SanDisk Cruzer Blade, 16.0 GB)`.
    pub fn describe(&self) -> String {
        describe(&self.name, &self.vendor, &self.model, self.size_bytes)
    }
}

impl Disk {
    /// The whole disk as the screens name it, like [`FsDevice::describe`]: `sdb (vendor model,
    /// 16.0 GB)`.
    pub fn describe(&self) -> String {
        describe(&self.name, &self.vendor, &self.model, self.size_bytes)
    }
}

fn describe(name: &str, vendor: &str, model: &str, size_bytes: u64) -> String {
    let who = [vendor, model]
        .iter()
        .filter(|s| !s.is_empty())
        .copied()
        .collect::<Vec<_>>()
        .join(" ");
    let who = if who.is_empty() {
        "unnamed device".to_string()
    } else {
        who
    };
    format!("{name} ({who}, {})", human_size(size_bytes))
}

/// Decimal units, as stick packaging uses them.
pub fn human_size(bytes: u64) -> String {
    const UNITS: [&str; 5] = ["B", "kB", "MB", "GB", "TB"];
    let mut v = bytes as f64;
    let mut u = 0;
    while v >= 1000.0 && u < UNITS.len() - 1 {
        v /= 1000.0;
        u += 1;
    }
    if u == 0 {
        format!("{bytes} B")
    } else {
        format!("{v:.1} {}", UNITS[u])
    }
}

/// Every block device under `<sys_root>/block` except virtual ones (loop, ram, zram, dm),
/// sorted by name; device nodes are named under `dev_root`. Call it again to poll (every
/// 200-500 ms): a disk removed between listing and reading is simply left out.
pub fn scan(sys_root: &Path, dev_root: &Path) -> io::Result<Vec<Disk>> {
    let sys_canon = sys_root.canonicalize()?;
    let mut disks = Vec::new();
    for entry in fs::read_dir(sys_root.join("block"))? {
        let entry = entry?;
        let Some(name) = entry.file_name().to_str().map(str::to_string) else {
            continue;
        };
        match read_disk(&sys_canon, &entry.path(), &name, dev_root) {
            Ok(Some(d)) => disks.push(d),
            Ok(None) => {}
            // Unplugged while we were reading it.
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(e),
        }
    }
    disks.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(disks)
}

fn read_disk(
    sys_canon: &Path,
    dir: &Path,
    name: &str,
    dev_root: &Path,
) -> io::Result<Option<Disk>> {
    let real = dir.canonicalize()?;
    // Relative to the sysfs root, so a test tree's own location cannot look like a USB bus.
    let rel = real.strip_prefix(sys_canon).unwrap_or(&real);
    if rel.starts_with("devices/virtual") {
        return Ok(None);
    }
    let usb = rel.components().any(|c| {
        c.as_os_str()
            .to_str()
            .and_then(|s| s.strip_prefix("usb"))
            .is_some_and(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()))
    });
    let mut partitions = Vec::new();
    for entry in fs::read_dir(dir)? {
        let entry = entry?;
        let p = entry.path();
        if !p.join("partition").is_file() {
            continue;
        }
        let Some(pname) = entry.file_name().to_str().map(str::to_string) else {
            continue;
        };
        partitions.push(Partition {
            dev_path: dev_root.join(&pname),
            size_bytes: read_sectors(&p.join("size"))?,
            name: pname,
        });
    }
    partitions.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(Some(Disk {
        name: name.to_string(),
        dev_path: dev_root.join(name),
        // The kernel writes these; anything unreadable counts as "not removable", which keeps
        // the disk out of every list.
        removable: fs::read_to_string(dir.join("removable")).is_ok_and(|s| s.trim() == "1"),
        usb,
        size_bytes: read_sectors(&dir.join("size"))?,
        vendor: read_label(&dir.join("device/vendor")),
        model: read_label(&dir.join("device/model")),
        partitions,
    }))
}

/// sysfs `size` is in 512-byte sectors whatever the device's block size.
fn read_sectors(path: &Path) -> io::Result<u64> {
    let s = fs::read_to_string(path)?;
    Ok(s.trim().parse::<u64>().unwrap_or(0).saturating_mul(512))
}

/// Vendor and model come from the stick itself: keep printable ASCII only so a hostile stick
/// cannot put terminal escapes on the screen.
fn read_label(path: &Path) -> String {
    fs::read(path).map(|b| clean_label(&b)).unwrap_or_default()
}

pub(crate) fn clean_label(bytes: &[u8]) -> String {
    let s: String = bytes
        .iter()
        .take(64)
        .map(|&b| {
            if b == b' ' || b.is_ascii_graphic() {
                b as char
            } else {
                ' '
            }
        })
        .collect();
    let s = s.split_whitespace().collect::<Vec<_>>().join(" ");
    s.chars().take(40).collect()
}

/// File systems sherd mounts.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum FsType {
    Vfat,
    Exfat,
    /// ext2/3/4 (the ext4 driver mounts all three).
    Ext4,
    Iso9660,
}

impl FsType {
    /// All of them, in the order mounts try them.
    pub const ALL: [FsType; 4] = [FsType::Vfat, FsType::Exfat, FsType::Ext4, FsType::Iso9660];
    /// The ones sherd writes to.
    pub const WRITABLE: [FsType; 3] = [FsType::Vfat, FsType::Exfat, FsType::Ext4];

    /// The kernel's name for it.
    pub fn name(self) -> &'static str {
        match self {
            FsType::Vfat => "vfat",
            FsType::Exfat => "exfat",
            FsType::Ext4 => "ext4",
            FsType::Iso9660 => "iso9660",
        }
    }

    pub fn writable(self) -> bool {
        self != FsType::Iso9660
    }
}

impl std::fmt::Display for FsType {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// Bytes read to tell the file system: through the ISO 9660 primary volume descriptor's
/// creation date (at 32 KiB + 813, 17 bytes).
const PROBE_LEN: usize = 32 * 1024 + 830;

/// Which file system `dev` holds, from its magic numbers; `None` if none sherd knows. Lets a
/// mount try the right type first (every wrong guess prints a kernel error on the console) and
/// lets the data-stick list leave out sticks sherd could not write to.
pub fn probe(dev: &Path) -> io::Result<Option<FsType>> {
    let mut buf = Vec::with_capacity(PROBE_LEN);
    fs::File::open(dev)?
        .take(PROBE_LEN as u64)
        .read_to_end(&mut buf)?;
    Ok(probe_bytes(&buf))
}

/// What tells one file system from another, whatever kernel name its stick gets when it is
/// plugged in again: its type, serial number (or UUID) and label, from its own first bytes.
/// Formatting gives a new serial; copying a stick block by block keeps it (and sherd then
/// treats the copy as the same stick, which only ever refuses more).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct FsIdentity {
    pub fs: FsType,
    /// FAT and exFAT: the 4-byte volume serial; ext2/3/4: the 16-byte UUID; ISO 9660: the
    /// 17-byte creation date (it has no serial).
    pub serial: Vec<u8>,
    /// The label as stored (FAT 11 bytes, ext 16, ISO 9660 32; exFAT keeps its label in the
    /// root folder, not read here: empty).
    pub label: Vec<u8>,
}

impl std::fmt::Display for FsIdentity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let label = clean_label(&self.label);
        write!(f, "{} serial {}", self.fs, hex(&self.serial))?;
        if !label.is_empty() {
            write!(f, " label {label:?}")?;
        }
        Ok(())
    }
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// The identity of the file system on `dev`; `None` if it holds none sherd knows.
pub fn identify(dev: &Path) -> io::Result<Option<FsIdentity>> {
    let mut buf = Vec::with_capacity(PROBE_LEN);
    fs::File::open(dev)?
        .take(PROBE_LEN as u64)
        .read_to_end(&mut buf)?;
    Ok(identify_bytes(&buf))
}

pub(crate) fn identify_bytes(b: &[u8]) -> Option<FsIdentity> {
    let fs = probe_bytes(b)?;
    let (serial, label) = match fs {
        // FAT32 keeps them further on than FAT12/16 (its boot sector is longer).
        FsType::Vfat if b.get(0x52..0x57) == Some(b"FAT32") => (0x43..0x47, 0x47..0x52),
        FsType::Vfat => (0x27..0x2b, 0x2b..0x36),
        FsType::Exfat => (100..104, 0..0),
        FsType::Ext4 => (1024 + 0x68..1024 + 0x78, 1024 + 0x78..1024 + 0x88),
        FsType::Iso9660 => (
            32 * 1024 + 813..32 * 1024 + 830,
            32 * 1024 + 40..32 * 1024 + 72,
        ),
    };
    Some(FsIdentity {
        fs,
        serial: b.get(serial)?.to_vec(),
        label: b.get(label)?.to_vec(),
    })
}

pub(crate) fn probe_bytes(b: &[u8]) -> Option<FsType> {
    let at = |off: usize, magic: &[u8]| b.get(off..off + magic.len()) == Some(magic);
    if at(3, b"EXFAT   ") {
        Some(FsType::Exfat)
    } else if at(1024 + 56, &[0x53, 0xef]) {
        Some(FsType::Ext4)
    } else if at(32 * 1024 + 1, b"CD001") {
        Some(FsType::Iso9660)
    } else if at(510, &[0x55, 0xaa]) && (at(0x36, b"FAT") || at(0x52, b"FAT32")) {
        // FAT12/16 name their type at 0x36, FAT32 at 0x52; an MBR has neither.
        Some(FsType::Vfat)
    } else {
        None
    }
}
