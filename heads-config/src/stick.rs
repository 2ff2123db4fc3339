//! USB stick images: an MBR with one FAT32 partition holding named files. The boot stick
//! (sherd's ISO and its signature, as Heads wants it) is one use; the end-to-end tests make
//! plan and data sticks with the same writer and read data sticks back with the reader.
//!
//! Layout: sector 0 is the MBR (one partition entry, type 0x0C FAT32 LBA, and the 0x55AA
//! signature), the partition starts at 1 MiB, the FAT32 file system fills it. Everything is
//! derived from the inputs (volume ID and disk signature from a hash of the files, FAT dates
//! fixed at 1980-01-01), so the same files give the same image.

use sha2::{Digest, Sha256};
use std::io::{self, Cursor, Read, Write};
use std::path::Path;

pub const SECTOR: u64 = 512;
/// First sector of the partition: 1 MiB, where partitioning tools put it.
pub const PARTITION_START_LBA: u64 = 2048;
/// MBR partition type: FAT32 with LBA addressing.
pub const PARTITION_TYPE_FAT32_LBA: u8 = 0x0c;
/// Smallest partition: FAT32 needs at least 65525 clusters; 64 MiB of 512-byte clusters
/// leaves room for them and the tables.
const MIN_PARTITION_BYTES: u64 = 64 << 20;
const MIB: u64 = 1 << 20;

#[derive(Debug, thiserror::Error)]
pub enum StickError {
    #[error("{path}: {err}")]
    Io { path: String, err: io::Error },
    #[error("FAT file system: {0}")]
    Fat(io::Error),
    #[error(
        "volume label {0:?}: at most 11 characters of A-Z, 0-9, '-' and '_' (FAT labels are \
         upper case)"
    )]
    Label(String),
    #[error(
        "file name {0:?}: use a relative path of non-empty parts without '\\', ':' or control \
         characters"
    )]
    Name(String),
    #[error("file {0:?} is given twice")]
    Duplicate(String),
    #[error("{0}: not a disk image with an MBR (no 0x55AA signature in sector 0)")]
    NoMbr(String),
    #[error("{path}: {what}")]
    BadPartition { path: String, what: String },
    #[error("boot stick: {0}")]
    BootStick(String),
    #[error("the disk image would be {0} bytes, more than an MBR partition can address")]
    TooLarge(u64),
}

fn io_err(path: &Path) -> impl Fn(io::Error) -> StickError + '_ {
    move |err| StickError::Io {
        path: path.display().to_string(),
        err,
    }
}

/// The MBR's partition entry, as read back.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PartitionEntry {
    pub status: u8,
    pub kind: u8,
    pub start_lba: u32,
    pub sectors: u32,
}

/// Sector 0: no boot code, `disk_signature`, one partition entry, 0x55AA.
pub fn mbr(disk_signature: u32, p: PartitionEntry) -> [u8; 512] {
    let mut s = [0u8; 512];
    s[440..444].copy_from_slice(&disk_signature.to_le_bytes());
    let e = &mut s[446..462];
    e[0] = p.status;
    // CHS fields say "use LBA" (the conventional maximum), as for any disk past 8 GiB.
    e[1..4].copy_from_slice(&[0xfe, 0xff, 0xff]);
    e[4] = p.kind;
    e[5..8].copy_from_slice(&[0xfe, 0xff, 0xff]);
    e[8..12].copy_from_slice(&p.start_lba.to_le_bytes());
    e[12..16].copy_from_slice(&p.sectors.to_le_bytes());
    s[510] = 0x55;
    s[511] = 0xaa;
    s
}

/// The first partition entry of an MBR sector, or None without the 0x55AA signature.
pub fn first_partition(sector0: &[u8]) -> Option<PartitionEntry> {
    if sector0.len() < 512 || sector0[510..512] != [0x55, 0xaa] {
        return None;
    }
    let e = &sector0[446..462];
    let u32_at = |i: usize| u32::from_le_bytes([e[i], e[i + 1], e[i + 2], e[i + 3]]);
    Some(PartitionEntry {
        status: e[0],
        kind: e[4],
        start_lba: u32_at(8),
        sectors: u32_at(12),
    })
}

/// The FAT volume ID as Linux names it in `/dev/disk/by-uuid/` (`XXXX-XXXX`).
pub fn fat_uuid(volume_id: u32) -> String {
    format!("{:04X}-{:04X}", volume_id >> 16, volume_id & 0xffff)
}

/// The volume ID a set of files gets: the first 4 bytes of SHA-256 over label, names, contents.
pub fn volume_id(label: &str, files: &[(&str, &[u8])]) -> u32 {
    let mut h = Sha256::new();
    h.update(label.as_bytes());
    for (name, data) in files {
        h.update((name.len() as u64).to_le_bytes());
        h.update(name.as_bytes());
        h.update((data.len() as u64).to_le_bytes());
        h.update(data);
    }
    let d = h.finalize();
    u32::from_le_bytes([d[0], d[1], d[2], d[3]])
}

fn check_label(label: &str) -> Result<[u8; 11], StickError> {
    let ok = label.len() <= 11
        && label
            .bytes()
            .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit() || b == b'-' || b == b'_');
    if !ok || label.is_empty() {
        return Err(StickError::Label(label.to_owned()));
    }
    let mut l = [b' '; 11];
    l[..label.len()].copy_from_slice(label.as_bytes());
    Ok(l)
}

fn check_name(name: &str) -> Result<Vec<&str>, StickError> {
    let parts: Vec<&str> = name.split('/').collect();
    let bad = parts.iter().any(|p| {
        p.is_empty()
            || *p == "."
            || *p == ".."
            || p.chars().any(|c| c.is_control() || c == '\\' || c == ':')
    });
    if bad {
        return Err(StickError::Name(name.to_owned()));
    }
    Ok(parts)
}

/// The bytes of a disk image holding `files` (`dir/name` paths make directories) on one FAT32
/// partition labelled `label`; at least `size_hint` bytes, more if the files need it.
pub fn disk_image(
    label: &str,
    files: &[(&str, &[u8])],
    size_hint: u64,
) -> Result<Vec<u8>, StickError> {
    let label_bytes = check_label(label)?;
    let mut seen = std::collections::BTreeSet::new();
    for (name, _) in files {
        check_name(name)?;
        if !seen.insert(name.to_ascii_lowercase()) {
            return Err(StickError::Duplicate((*name).to_owned()));
        }
    }
    // Each file rounded up to a 4 KiB cluster, plus 1/64 for the FATs and directories.
    let content: u64 = files
        .iter()
        .map(|(_, d)| (d.len() as u64).div_ceil(4096) * 4096)
        .sum();
    let needed = content + content / 64 + 4 * MIB;
    let part = needed
        .max(size_hint.saturating_sub(PARTITION_START_LBA * SECTOR))
        .max(MIN_PARTITION_BYTES)
        .div_ceil(MIB)
        * MIB;
    let total = PARTITION_START_LBA * SECTOR + part;
    let sectors = u32::try_from(part / SECTOR).map_err(|_| StickError::TooLarge(total))?;
    let id = volume_id(label, files);
    let mut disk = vec![0u8; usize::try_from(total).map_err(|_| StickError::TooLarge(total))?];
    let entry = PartitionEntry {
        status: 0,
        kind: PARTITION_TYPE_FAT32_LBA,
        start_lba: PARTITION_START_LBA as u32,
        sectors,
    };
    disk[..512].copy_from_slice(&mbr(id, entry));
    let partition = &mut disk[(PARTITION_START_LBA * SECTOR) as usize..];
    // Clusters small enough that even the smallest partition has the 65525 FAT32 needs.
    let cluster: u32 = match part {
        p if p <= 128 * MIB => 512,
        p if p <= 256 * MIB => 1024,
        p if p <= 8192 * MIB => 4096,
        _ => 32768,
    };
    fatfs::format_volume(
        Cursor::new(&mut *partition),
        fatfs::FormatVolumeOptions::new()
            .fat_type(fatfs::FatType::Fat32)
            .bytes_per_cluster(cluster)
            .volume_id(id)
            .volume_label(label_bytes),
    )
    .map_err(StickError::Fat)?;
    let fs = fatfs::FileSystem::new(Cursor::new(&mut *partition), fatfs::FsOptions::new())
        .map_err(StickError::Fat)?;
    {
        let root = fs.root_dir();
        for (name, data) in files {
            let parts = check_name(name)?;
            let mut dir = root.clone();
            for p in &parts[..parts.len() - 1] {
                dir = match dir.open_dir(p) {
                    Ok(d) => d,
                    Err(_) => dir.create_dir(p).map_err(StickError::Fat)?,
                };
            }
            let mut f = dir
                .create_file(parts[parts.len() - 1])
                .map_err(StickError::Fat)?;
            f.truncate().map_err(StickError::Fat)?;
            f.write_all(data).map_err(StickError::Fat)?;
            f.flush().map_err(StickError::Fat)?;
        }
    }
    fs.unmount().map_err(StickError::Fat)?;
    Ok(disk)
}

/// Writes a disk image (see [`disk_image`]) to `path`, through a temporary name and a rename
/// so that a reader never sees half an image.
pub fn write_disk_image(
    path: &Path,
    label: &str,
    files: &[(&str, &[u8])],
    size_hint: u64,
) -> Result<(), StickError> {
    let disk = disk_image(label, files, size_hint)?;
    let tmp = path.with_extension("partial");
    let e = io_err(path);
    let mut f = std::fs::File::create(&tmp).map_err(&e)?;
    f.write_all(&disk).map_err(&e)?;
    f.sync_all().map_err(&e)?;
    std::fs::rename(&tmp, path).map_err(&e)?;
    Ok(())
}

/// Every file on the first partition of a disk image, as (`dir/name`, contents), in directory
/// order.
pub fn read_files(path: &Path) -> Result<Vec<(String, Vec<u8>)>, StickError> {
    let disk = std::fs::read(path).map_err(io_err(path))?;
    read_files_from(&disk, &path.display().to_string())
}

/// As [`read_files`], from the image's bytes; `what` names it in errors.
pub fn read_files_from(disk: &[u8], what: &str) -> Result<Vec<(String, Vec<u8>)>, StickError> {
    let p = first_partition(disk).ok_or_else(|| StickError::NoMbr(what.to_owned()))?;
    let start = u64::from(p.start_lba) * SECTOR;
    let end = start + u64::from(p.sectors) * SECTOR;
    if p.sectors == 0 || end > disk.len() as u64 {
        return Err(StickError::BadPartition {
            path: what.to_owned(),
            what: format!(
                "the first partition (sectors {}..{}) lies outside the {}-byte image",
                p.start_lba,
                u64::from(p.start_lba) + u64::from(p.sectors),
                disk.len()
            ),
        });
    }
    let part = disk[start as usize..end as usize].to_vec();
    let fs = fatfs::FileSystem::new(Cursor::new(part), fatfs::FsOptions::new()).map_err(|e| {
        StickError::BadPartition {
            path: what.to_owned(),
            what: format!("the first partition is not a FAT file system: {e}"),
        }
    })?;
    let mut out = Vec::new();
    let mut stack = vec![(String::new(), fs.root_dir())];
    while let Some((prefix, dir)) = stack.pop() {
        for entry in dir.iter() {
            let entry = entry.map_err(StickError::Fat)?;
            let name = entry.file_name();
            if name == "." || name == ".." {
                continue;
            }
            let full = format!("{prefix}{name}");
            if entry.is_dir() {
                stack.push((format!("{full}/"), entry.to_dir()));
            } else {
                let mut data = Vec::new();
                entry
                    .to_file()
                    .read_to_end(&mut data)
                    .map_err(StickError::Fat)?;
                out.push((full, data));
            }
        }
    }
    Ok(out)
}

/// The files of a boot stick for Heads: the ISO (`<name>.iso`, lower case, no spaces) and its
/// armored signature `<name>.iso.asc`, plus `extra` files, none of which may be another ISO
/// (Heads offers every `*.iso` it finds).
pub fn boot_stick_files<'a>(
    iso_name: &'a str,
    iso: &'a [u8],
    asc_name: &'a str,
    asc: &'a [u8],
    extra: &[(&'a str, &'a [u8])],
) -> Result<Vec<(&'a str, &'a [u8])>, StickError> {
    let bad = |m: String| Err(StickError::BootStick(m));
    if !iso_name.ends_with(".iso") || iso_name.contains(['/', ' ']) {
        return bad(format!(
            "the ISO is named {iso_name:?}: Heads looks for a lower-case `.iso` name without \
             spaces at the stick's top level"
        ));
    }
    if asc_name != format!("{iso_name}.asc") {
        return bad(format!(
            "the signature is named {asc_name:?}: Heads looks for {:?} beside the ISO",
            format!("{iso_name}.asc")
        ));
    }
    if !asc.starts_with(b"-----BEGIN PGP SIGNATURE-----") {
        return bad(format!(
            "{asc_name} is not an ASCII-armored OpenPGP signature (it must start with \
             `-----BEGIN PGP SIGNATURE-----`); sign the ISO with the reproducibility tool"
        ));
    }
    if iso.get(32769..32774) != Some(b"CD001".as_slice()) {
        return bad(format!(
            "{iso_name} is not an ISO 9660 image (no CD001 descriptor at 32 KiB)"
        ));
    }
    let mut files = vec![(iso_name, iso), (asc_name, asc)];
    for &(name, data) in extra {
        let lower = name.to_ascii_lowercase();
        if lower.ends_with(".iso") {
            return bad(format!(
                "{name:?} would be a second ISO on the stick: Heads would offer it too; only \
                 {iso_name} may be there"
            ));
        }
        if lower == asc_name.to_ascii_lowercase() || lower.ends_with(".iso.sig") {
            return bad(format!("{name:?} would be a second signature for the ISO"));
        }
        files.push((name, data));
    }
    Ok(files)
}

#[cfg(test)]
mod tests {
    use super::*;

    const ASC: &[u8] = b"-----BEGIN PGP SIGNATURE-----\n\nx\n-----END PGP SIGNATURE-----\n";

    fn fake_iso() -> Vec<u8> {
        let mut iso = vec![0u8; 64 * 1024];
        iso[32768..32774].copy_from_slice(b"\x01CD001");
        iso[40000] = 7;
        iso
    }

    #[test]
    fn layout_round_trips() {
        let big: Vec<u8> = (0..200_000u32).map(|i| (i % 251) as u8).collect();
        let files: [(&str, &[u8]); 4] = [
            ("sherd.iso", &big),
            ("sherd.iso.asc", ASC),
            ("plan/ceremony.toml", b"id = 1\n"),
            ("EMPTY", b""),
        ];
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("stick.img");
        write_disk_image(&p, "SHERD", &files, 0).unwrap();
        let mut back = read_files(&p).unwrap();
        back.sort();
        let mut want: Vec<(String, Vec<u8>)> = files
            .iter()
            .map(|(n, d)| ((*n).to_owned(), d.to_vec()))
            .collect();
        want.sort();
        assert_eq!(back, want);
        // The same files give the same bytes.
        let a = std::fs::read(&p).unwrap();
        assert_eq!(disk_image("SHERD", &files, 0).unwrap(), a);
    }

    #[test]
    fn mbr_partition_entry() {
        let files: [(&str, &[u8]); 1] = [("a.txt", b"a")];
        let disk = disk_image("DATA", &files, 100 << 20).unwrap();
        assert_eq!(disk.len(), 100 << 20);
        assert_eq!(&disk[510..512], &[0x55, 0xaa]);
        let e = first_partition(&disk).unwrap();
        assert_eq!(
            e,
            PartitionEntry {
                status: 0,
                kind: 0x0c,
                start_lba: 2048,
                sectors: ((100 << 20) - (1 << 20)) / 512,
            }
        );
        // Only one entry; the others are empty.
        assert!(disk[462..510].iter().all(|&b| b == 0));
        let id = volume_id("DATA", &files);
        assert_eq!(&disk[440..444], &id.to_le_bytes());
        // The FAT32 boot sector of the partition: its jump, its volume ID and file system type.
        let bs = &disk[1 << 20..(1 << 20) + 512];
        assert_eq!(bs[0], 0xeb);
        assert_eq!(&bs[0x43..0x47], &id.to_le_bytes());
        assert_eq!(&bs[0x52..0x5a], b"FAT32   ");
        assert_eq!(&bs[0x47..0x52], b"DATA       ");
        assert_eq!(fat_uuid(0x1234_abcd), "1234-ABCD");
    }

    #[test]
    fn boot_stick_rules() {
        let iso = fake_iso();
        let ok = boot_stick_files("sherd.iso", &iso, "sherd.iso.asc", ASC, &[]).unwrap();
        assert_eq!(ok.len(), 2);
        let e = |r: Result<Vec<(&str, &[u8])>, StickError>| r.unwrap_err().to_string();
        let second: [(&str, &[u8]); 1] = [("other.ISO", b"x")];
        assert!(
            e(boot_stick_files(
                "sherd.iso",
                &iso,
                "sherd.iso.asc",
                ASC,
                &second
            ))
            .contains("\"other.ISO\" would be a second ISO")
        );
        assert!(
            e(boot_stick_files(
                "sherd.ISO",
                &iso,
                "sherd.ISO.asc",
                ASC,
                &[]
            ))
            .contains("lower-case `.iso`")
        );
        assert!(
            e(boot_stick_files("sherd.iso", &iso, "sherd.asc", ASC, &[]))
                .contains("Heads looks for \"sherd.iso.asc\"")
        );
        assert!(
            e(boot_stick_files(
                "sherd.iso",
                &iso,
                "sherd.iso.asc",
                b"sig",
                &[]
            ))
            .contains("not an ASCII-armored")
        );
        assert!(
            e(boot_stick_files(
                "sherd.iso",
                &[0; 40000],
                "sherd.iso.asc",
                ASC,
                &[]
            ))
            .contains("not an ISO 9660")
        );
    }

    #[test]
    fn bad_inputs_are_refused() {
        let e = |l: &str, n: &str| {
            disk_image(l, &[(n, b"x".as_slice())], 0)
                .unwrap_err()
                .to_string()
        };
        assert!(e("lower", "a").contains("volume label \"lower\""));
        assert!(e("OK", "../a").contains("file name \"../a\""));
        assert!(e("OK", "a//b").contains("file name"));
        let dup = disk_image("OK", &[("a", b"1".as_slice()), ("A", b"2")], 0).unwrap_err();
        assert!(dup.to_string().contains("given twice"));
        assert!(matches!(
            read_files_from(&[0; 1024], "x"),
            Err(StickError::NoMbr(_))
        ));
        let mut d = disk_image("OK", &[], 0).unwrap();
        d[446 + 12..446 + 16].copy_from_slice(&u32::MAX.to_le_bytes());
        assert!(
            read_files_from(&d, "x")
                .unwrap_err()
                .to_string()
                .contains("lies outside")
        );
    }
}
