//! A FAT16 file system image holding a fixed set of files, for the EFI system partition and the
//! El Torito EFI boot image. Written here rather than with mkfs.fat and mtools so that every byte
//! is decided by this file: no serial number from the clock, no dates from the disk, no order
//! from the directory listing. Names are plain 8.3 (no long-name entries): the UEFI firmware only
//! needs `EFI/BOOT/BOOTX64.EFI`. (The `fatfs` crate that writes the test sticks puts long-name
//! entries before `.` and `..`, which fsck.fat repairs; firmware should not have to cope.)

use std::collections::BTreeMap;

const SECTOR: usize = 512;
const ROOT_ENTRIES: usize = 512;
const ROOT_SECTORS: usize = ROOT_ENTRIES * 32 / SECTOR;
const RESERVED_SECTORS: usize = 1;
const FATS: usize = 2;
/// FAT16 holds between these many clusters; readers decide the FAT type from the count alone.
const MIN_CLUSTERS: usize = 4085;
const MAX_CLUSTERS: usize = 65524;
const ATTR_DIRECTORY: u8 = 0x10;
const ATTR_ARCHIVE: u8 = 0x20;
const ATTR_VOLUME_ID: u8 = 0x08;
/// Every date in the image: 1980-01-01 00:00, the first FAT date. The build time is not part of
/// what the files are.
const DATE_1980_01_01: u16 = (1 << 5) | 1;

#[derive(Debug, PartialEq, Eq)]
pub enum FatError {
    /// A path component that is not an upper-case 8.3 name.
    BadName(String),
    /// A file and a directory, or two files, under one name.
    Clash(String),
    TooLarge(usize),
}

impl std::fmt::Display for FatError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            FatError::BadName(n) => write!(
                f,
                "{n:?} is not an 8.3 name (1-8 characters, optionally a dot and 1-3 more, \
                 from A-Z 0-9 _ -)"
            ),
            FatError::Clash(n) => write!(f, "{n:?} is given twice, or as a file and a folder"),
            FatError::TooLarge(n) => write!(f, "{n} bytes do not fit a FAT16 image"),
        }
    }
}

/// The 11-byte directory name of one 8.3 component.
fn short_name(component: &str) -> Result<[u8; 11], FatError> {
    let bad = || FatError::BadName(component.to_owned());
    let (base, ext) = component.split_once('.').unwrap_or((component, ""));
    let ok = |s: &str, max: usize| {
        s.len() <= max
            && s.bytes()
                .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit() || b == b'_' || b == b'-')
    };
    if base.is_empty() || !ok(base, 8) || !ok(ext, 3) || (component.contains('.') && ext.is_empty())
    {
        return Err(bad());
    }
    let mut name = [b' '; 11];
    name[..base.len()].copy_from_slice(base.as_bytes());
    name[8..8 + ext.len()].copy_from_slice(ext.as_bytes());
    Ok(name)
}

/// A volume label: 1-11 characters from the same set as names, no dot, space-padded.
fn volume_label(label: &str) -> Result<[u8; 11], FatError> {
    let ok = (1..=11).contains(&label.len())
        && label
            .bytes()
            .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit() || b == b'_' || b == b'-');
    if !ok {
        return Err(FatError::BadName(label.to_owned()));
    }
    let mut l = [b' '; 11];
    l[..label.len()].copy_from_slice(label.as_bytes());
    Ok(l)
}

enum Node<'a> {
    File(&'a [u8]),
    Dir(BTreeMap<[u8; 11], Node<'a>>),
}

/// Builds the image. `files` are `/`-separated paths with their contents; folders are made as
/// needed. The same input gives the same bytes.
pub fn image(files: &[(&str, &[u8])], volume_id: u32, label: &str) -> Result<Vec<u8>, FatError> {
    let label = volume_label(label)?;
    let mut root = BTreeMap::new();
    for (path, data) in files {
        let parts: Vec<&str> = path.split('/').collect();
        let mut dir = &mut root;
        for (i, part) in parts.iter().enumerate() {
            let name = short_name(part)?;
            if i + 1 == parts.len() {
                if dir.insert(name, Node::File(data)).is_some() {
                    return Err(FatError::Clash((*path).to_owned()));
                }
            } else {
                match dir
                    .entry(name)
                    .or_insert_with(|| Node::Dir(BTreeMap::new()))
                {
                    Node::Dir(d) => dir = d,
                    Node::File(_) => return Err(FatError::Clash((*path).to_owned())),
                }
            }
        }
    }

    // Cluster size: the smallest that keeps the count within FAT16.
    let total: usize = count_bytes(&root);
    let mut per_cluster = 1;
    while total.div_ceil(SECTOR * per_cluster) + count_dirs(&root) > MAX_CLUSTERS {
        per_cluster *= 2;
        if per_cluster > 64 {
            return Err(FatError::TooLarge(total));
        }
    }
    let cluster_bytes = SECTOR * per_cluster;

    // Lay out: every folder and file gets consecutive clusters, folders before their contents.
    let mut layout = Layout {
        cluster_bytes,
        next: 2,
        chains: Vec::new(),
    };
    let root_entries = layout.place_dir(&root, 0);
    if root_entries.len() + 1 > ROOT_ENTRIES {
        return Err(FatError::TooLarge(total));
    }
    let clusters = (layout.next - 2).max(MIN_CLUSTERS);
    if clusters > MAX_CLUSTERS {
        return Err(FatError::TooLarge(total));
    }
    let fat_sectors = ((clusters + 2) * 2).div_ceil(SECTOR);
    let data_start = RESERVED_SECTORS + FATS * fat_sectors + ROOT_SECTORS;
    let total_sectors = data_start + clusters * per_cluster;
    let mut img = vec![0u8; total_sectors * SECTOR];

    boot_sector(
        &mut img[..SECTOR],
        per_cluster,
        fat_sectors,
        total_sectors,
        volume_id,
        &label,
    );

    let mut fat = vec![0u8; fat_sectors * SECTOR];
    put16(&mut fat, 0, 0xFFF8);
    put16(&mut fat, 2, 0xFFFF);
    for (first, count, _) in &layout.chains {
        for c in *first..first + count {
            let next = if c + 1 == first + count {
                0xFFFF
            } else {
                c + 1
            };
            put16(&mut fat, c * 2, next as u16);
        }
    }
    for i in 0..FATS {
        let at = (RESERVED_SECTORS + i * fat_sectors) * SECTOR;
        img[at..at + fat.len()].copy_from_slice(&fat);
    }

    let root_at = (RESERVED_SECTORS + FATS * fat_sectors) * SECTOR;
    let mut label_entry = [0u8; 32];
    label_entry[..11].copy_from_slice(&label);
    label_entry[11] = ATTR_VOLUME_ID;
    put16(&mut label_entry, 24, DATE_1980_01_01);
    img[root_at..root_at + 32].copy_from_slice(&label_entry);
    for (i, e) in root_entries.iter().enumerate() {
        let at = root_at + (i + 1) * 32;
        img[at..at + 32].copy_from_slice(e);
    }
    for (first, _, content) in &layout.chains {
        let at = (data_start + (first - 2) * per_cluster) * SECTOR;
        img[at..at + content.len()].copy_from_slice(content);
    }
    Ok(img)
}

fn count_bytes(dir: &BTreeMap<[u8; 11], Node>) -> usize {
    dir.values()
        .map(|n| match n {
            Node::File(d) => d.len(),
            Node::Dir(d) => count_bytes(d),
        })
        .sum()
}

fn count_dirs(dir: &BTreeMap<[u8; 11], Node>) -> usize {
    dir.values()
        .map(|n| match n {
            Node::File(_) => 0,
            Node::Dir(d) => 1 + count_dirs(d),
        })
        .sum()
}

struct Layout {
    cluster_bytes: usize,
    next: usize,
    /// (first cluster, cluster count, content) of every folder and non-empty file.
    chains: Vec<(usize, usize, Vec<u8>)>,
}

impl Layout {
    fn take(&mut self, bytes: usize) -> (usize, usize) {
        let count = bytes.div_ceil(self.cluster_bytes);
        let first = self.next;
        self.next += count;
        (first, count)
    }

    /// Places a folder's contents; returns its entries (without `.` and `..`).
    fn place_dir(&mut self, dir: &BTreeMap<[u8; 11], Node>, this: usize) -> Vec<[u8; 32]> {
        let mut entries = Vec::new();
        for (name, node) in dir {
            match node {
                Node::File(data) => {
                    let first = if data.is_empty() {
                        0
                    } else {
                        let (first, count) = self.take(data.len());
                        self.chains.push((first, count, data.to_vec()));
                        first
                    };
                    entries.push(entry(name, ATTR_ARCHIVE, first, data.len()));
                }
                Node::Dir(sub) => {
                    // A folder's own entries: `.`, `..` and one per child.
                    let (first, count) = self.take((sub.len() + 2) * 32);
                    let slot = self.chains.len();
                    self.chains.push((first, count, Vec::new()));
                    let mut own = vec![
                        entry(b".          ", ATTR_DIRECTORY, first, 0),
                        entry(b"..         ", ATTR_DIRECTORY, this, 0),
                    ];
                    own.extend(self.place_dir(sub, first));
                    self.chains[slot].2 = own.concat();
                    entries.push(entry(name, ATTR_DIRECTORY, first, 0));
                }
            }
        }
        entries
    }
}

fn entry(name: &[u8; 11], attr: u8, first: usize, size: usize) -> [u8; 32] {
    let mut e = [0u8; 32];
    e[..11].copy_from_slice(name);
    e[11] = attr;
    put16(&mut e, 16, DATE_1980_01_01); // created
    put16(&mut e, 18, DATE_1980_01_01); // accessed
    put16(&mut e, 24, DATE_1980_01_01); // written
    put16(&mut e, 26, first as u16);
    e[28..32].copy_from_slice(&(size as u32).to_le_bytes());
    e
}

fn put16(buf: &mut [u8], at: usize, v: u16) {
    buf[at..at + 2].copy_from_slice(&v.to_le_bytes());
}

fn boot_sector(
    s: &mut [u8],
    per_cluster: usize,
    fat_sectors: usize,
    total_sectors: usize,
    volume_id: u32,
    label: &[u8; 11],
) {
    // A short jump over the parameter block: some readers check for it before trusting it.
    s[..3].copy_from_slice(&[0xEB, 0x3C, 0x90]);
    s[3..11].copy_from_slice(b"SHERD1.0");
    put16(s, 11, SECTOR as u16);
    s[13] = per_cluster as u8;
    put16(s, 14, RESERVED_SECTORS as u16);
    s[16] = FATS as u8;
    put16(s, 17, ROOT_ENTRIES as u16);
    if total_sectors < 0x10000 {
        put16(s, 19, total_sectors as u16);
    } else {
        s[32..36].copy_from_slice(&(total_sectors as u32).to_le_bytes());
    }
    s[21] = 0xF8; // fixed disk
    put16(s, 22, fat_sectors as u16);
    put16(s, 24, 32); // sectors per track, heads: geometry nobody uses, the common values
    put16(s, 26, 64);
    s[36] = 0x80;
    s[38] = 0x29; // the next three fields are present
    s[39..43].copy_from_slice(&volume_id.to_le_bytes());
    s[43..54].copy_from_slice(label);
    s[54..62].copy_from_slice(b"FAT16   ");
    s[510] = 0x55;
    s[511] = 0xAA;
}

/// The independent check, shared by this file's tests and the ISO's: dosfstools' checker and
/// mtools, two FAT implementations other than this one, read `img` back: a FAT16 volume with
/// no repairs to make, holding exactly `files`. Returns mtools' `minfo` text (lower case).
#[cfg(test)]
pub(crate) fn check_independently(img: &[u8], files: &[(&str, &[u8])]) -> String {
    use std::process::Command;
    let tool = |name: &str| {
        let probe = Command::new("sh")
            .args(["-c", &format!("command -v {name}")])
            .output()
            .unwrap();
        assert!(
            probe.status.success(),
            "{name} checks the FAT images independently: apt-get install mtools dosfstools \
             (scripts/setup does)"
        );
        Command::new(name)
    };
    let f = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(f.path(), img).unwrap();
    let out = tool("fsck.fat").arg("-n").arg(f.path()).output().unwrap();
    assert!(
        out.status.success(),
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let info = tool("minfo")
        .arg("-i")
        .arg(f.path())
        .arg("::")
        .output()
        .unwrap();
    let info = String::from_utf8_lossy(&info.stdout).to_lowercase();
    assert!(info.contains("fat16"), "{info}");
    for (path, data) in files {
        let got = tool("mtype")
            .arg("-i")
            .arg(f.path())
            .arg(format!("::/{path}"))
            .output()
            .unwrap();
        assert!(
            got.status.success(),
            "{path}: {}",
            String::from_utf8_lossy(&got.stderr)
        );
        assert!(got.stdout == *data, "{path}: the bytes read back differ");
    }
    info
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_8_3_upper_case() {
        assert_eq!(&short_name("BOOTX64.EFI").unwrap(), b"BOOTX64 EFI");
        assert_eq!(&short_name("EFI").unwrap(), b"EFI        ");
        for bad in [
            "bootx64.efi",
            "TOOLONGNAME",
            "A.TOOL",
            "",
            ".EFI",
            "A.",
            "A B",
            "A.B.C",
        ] {
            assert!(short_name(bad).is_err(), "{bad:?}");
        }
        assert!(matches!(
            image(&[("EFI", b"x"), ("EFI/BOOT", b"y")], 1, "X"),
            Err(FatError::Clash(_))
        ));
        assert!(volume_label("SHERD-EFI").is_ok());
        assert!(volume_label("TWELVE-CHARS").is_err());
        assert!(volume_label("lower").is_err());
    }

    #[test]
    fn folders_empty_files_and_the_serial_read_back() {
        let big: Vec<u8> = (0..3_000_000u32)
            .map(|i| (i.wrapping_mul(2654435761) >> 13) as u8)
            .collect();
        let files: [(&str, &[u8]); 4] = [
            ("EFI/BOOT/BOOTX64.EFI", &big),
            ("EFI/BOOT/EMPTY.TXT", b""),
            ("README.TXT", b"sherd\n"),
            ("A/B/C/D.BIN", &big[..1000]),
        ];
        let img = image(&files, 0x5348_4552, "SHERDEFI").unwrap();
        let info = check_independently(&img, &files);
        assert!(info.contains("53484552"), "{info}");
    }

    #[test]
    fn same_input_same_bytes() {
        let a = image(&[("EFI/BOOT/BOOTX64.EFI", b"tiny")], 7, "X").unwrap();
        assert_eq!(
            a,
            image(&[("EFI/BOOT/BOOTX64.EFI", b"tiny")], 7, "X").unwrap()
        );
        assert_ne!(
            a,
            image(&[("EFI/BOOT/BOOTX64.EFI", b"tinY")], 7, "X").unwrap()
        );
        check_independently(&a, &[("EFI/BOOT/BOOTX64.EFI", b"tiny")]);
    }

    #[test]
    fn large_files_get_larger_clusters() {
        let big = vec![0x5Au8; 40 << 20];
        let files: [(&str, &[u8]); 1] = [("EFI/BOOT/BOOTX64.EFI", &big)];
        let img = image(&files, 1, "X").unwrap();
        assert!(img[13] > 1, "sectors per cluster {}", img[13]);
        check_independently(&img, &files);
    }
}
