//! A deterministic cpio "newc" writer (what the kernel unpacks as an initramfs), and a strict
//! reader used to check what was written.
//!
//! Format (kernel `Documentation/driver-api/early-userspace/buffer-format.rst`): each entry is a
//! 110-byte ASCII header (`070701` then 13 fields of 8 hex digits), the NUL-terminated name,
//! padding to 4 bytes, the data, padding to 4 bytes; the archive ends with `TRAILER!!!`.
//! Everything that could vary between builds is fixed by the caller: order, inode numbers,
//! owners and modification times.

use std::fmt;

const MAGIC: &[u8; 6] = b"070701";
const TRAILER: &str = "TRAILER!!!";
const HEADER_LEN: usize = 110;

pub const S_IFDIR: u32 = 0o040000;
pub const S_IFREG: u32 = 0o100000;
pub const S_IFLNK: u32 = 0o120000;
pub const S_IFCHR: u32 = 0o020000;
pub const S_IFBLK: u32 = 0o060000;

/// One member of the archive. `name` has no leading `/` (`dev/console`), as the kernel expects.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Member {
    pub name: String,
    /// File type bits and permission bits, e.g. `S_IFREG | 0o755`.
    pub mode: u32,
    pub uid: u32,
    pub gid: u32,
    pub mtime: u32,
    /// For device nodes.
    pub rdev_major: u32,
    pub rdev_minor: u32,
    /// File content, or the target of a symlink.
    pub data: Vec<u8>,
}

#[derive(Debug, PartialEq, Eq)]
pub enum Error {
    /// Names must be unique, sorted and relative, so that two builds cannot differ in order.
    NotSorted {
        prev: String,
        next: String,
    },
    BadName(String),
    Malformed {
        offset: usize,
        what: String,
    },
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::NotSorted { prev, next } => {
                write!(
                    f,
                    "cpio members not strictly sorted: {prev:?} then {next:?}"
                )
            }
            Error::BadName(n) => write!(f, "cpio member name {n:?} is empty, absolute or has NUL"),
            Error::Malformed { offset, what } => {
                write!(f, "malformed cpio archive at byte {offset}: {what}")
            }
        }
    }
}

impl std::error::Error for Error {}

fn pad4(out: &mut Vec<u8>) {
    while !out.len().is_multiple_of(4) {
        out.push(0);
    }
}

fn header(out: &mut Vec<u8>, ino: u32, m: &Member, nlink: u32) {
    let fields = [
        ino,
        m.mode,
        m.uid,
        m.gid,
        nlink,
        m.mtime,
        m.data.len() as u32,
        0, // devmajor: the archive is not on any device
        0, // devminor
        m.rdev_major,
        m.rdev_minor,
        m.name.len() as u32 + 1,
        0, // check: only used by the "070702" variant
    ];
    out.extend_from_slice(MAGIC);
    for v in fields {
        out.extend_from_slice(format!("{v:08x}").as_bytes());
    }
}

/// Writes the archive. Members must be strictly sorted by name (byte-wise); inode numbers are
/// assigned 1, 2, 3... in that order.
pub fn write(members: &[Member]) -> Result<Vec<u8>, Error> {
    let mut out = Vec::new();
    for (i, m) in members.iter().enumerate() {
        if m.name.is_empty() || m.name.starts_with('/') || m.name.contains('\0') {
            return Err(Error::BadName(m.name.clone()));
        }
        if i > 0 && members[i - 1].name.as_bytes() >= m.name.as_bytes() {
            return Err(Error::NotSorted {
                prev: members[i - 1].name.clone(),
                next: m.name.clone(),
            });
        }
        let nlink = if m.mode & 0o170000 == S_IFDIR { 2 } else { 1 };
        header(&mut out, i as u32 + 1, m, nlink);
        out.extend_from_slice(m.name.as_bytes());
        out.push(0);
        pad4(&mut out);
        out.extend_from_slice(&m.data);
        pad4(&mut out);
    }
    let trailer = Member {
        name: TRAILER.into(),
        mode: 0,
        uid: 0,
        gid: 0,
        mtime: 0,
        rdev_major: 0,
        rdev_minor: 0,
        data: Vec::new(),
    };
    header(&mut out, 0, &trailer, 1);
    out.extend_from_slice(TRAILER.as_bytes());
    out.push(0);
    pad4(&mut out);
    Ok(out)
}

/// A member as read back, with the header fields the writer fixes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ReadMember {
    pub ino: u32,
    pub nlink: u32,
    pub member: Member,
}

fn hex_field(buf: &[u8], offset: usize) -> Result<u32, Error> {
    let s = std::str::from_utf8(&buf[offset..offset + 8]).map_err(|_| Error::Malformed {
        offset,
        what: "header field is not ASCII".into(),
    })?;
    u32::from_str_radix(s, 16).map_err(|_| Error::Malformed {
        offset,
        what: format!("header field {s:?} is not hex"),
    })
}

/// Reads a whole uncompressed newc archive, up to and including the trailer, which must end it.
pub fn read(buf: &[u8]) -> Result<Vec<ReadMember>, Error> {
    let mut pos = 0usize;
    let mut out = Vec::new();
    let short = |offset: usize, what: &str| Error::Malformed {
        offset,
        what: what.into(),
    };
    loop {
        if buf.len() < pos + HEADER_LEN {
            return Err(short(pos, "truncated header (no trailer)"));
        }
        if &buf[pos..pos + 6] != MAGIC {
            return Err(short(pos, "bad magic (not newc 070701)"));
        }
        let f = |i: usize| hex_field(buf, pos + 6 + 8 * i);
        let (ino, mode, uid, gid, nlink, mtime, size) =
            (f(0)?, f(1)?, f(2)?, f(3)?, f(4)?, f(5)?, f(6)? as usize);
        let (rdev_major, rdev_minor, namesize) = (f(9)?, f(10)?, f(11)? as usize);
        let name_start = pos + HEADER_LEN;
        let name_end = name_start
            .checked_add(namesize)
            .filter(|&e| e <= buf.len() && namesize > 0)
            .ok_or_else(|| short(pos, "name runs past the end"))?;
        if buf[name_end - 1] != 0 {
            return Err(short(name_start, "name is not NUL-terminated"));
        }
        let name = std::str::from_utf8(&buf[name_start..name_end - 1])
            .map_err(|_| short(name_start, "name is not UTF-8"))?
            .to_owned();
        let data_start = (name_end + 3) & !3;
        let data_end = data_start
            .checked_add(size)
            .filter(|&e| e <= buf.len())
            .ok_or_else(|| short(data_start, "data runs past the end"))?;
        pos = (data_end + 3) & !3;
        if name == TRAILER {
            if pos != buf.len() {
                return Err(short(pos, "bytes after the trailer"));
            }
            return Ok(out);
        }
        out.push(ReadMember {
            ino,
            nlink,
            member: Member {
                name,
                mode,
                uid,
                gid,
                mtime,
                rdev_major,
                rdev_minor,
                data: buf[data_start..data_end].to_vec(),
            },
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;
    use std::process::{Command, Stdio};

    fn m(name: &str, mode: u32, data: &[u8]) -> Member {
        Member {
            name: name.into(),
            mode,
            uid: 0,
            gid: 0,
            mtime: 1_700_000_000,
            rdev_major: 0,
            rdev_minor: 0,
            data: data.to_vec(),
        }
    }

    fn sample() -> Vec<Member> {
        let mut console = m("dev/console", S_IFCHR | 0o600, b"");
        console.rdev_major = 5;
        console.rdev_minor = 1;
        vec![
            m("dev", S_IFDIR | 0o755, b""),
            console,
            m("init", S_IFREG | 0o755, b"\x7fELF not really"),
            m("link", S_IFLNK | 0o777, b"init"),
            m("odd", S_IFREG | 0o644, b"12345"),
        ]
    }

    #[test]
    fn round_trip_and_fixed_fields() {
        let bytes = write(&sample()).unwrap();
        assert_eq!(bytes.len() % 4, 0);
        let back = read(&bytes).unwrap();
        assert_eq!(
            back.iter().map(|r| r.member.clone()).collect::<Vec<_>>(),
            sample()
        );
        assert_eq!(
            back.iter().map(|r| r.ino).collect::<Vec<_>>(),
            vec![1, 2, 3, 4, 5]
        );
        assert_eq!(back[0].nlink, 2);
        assert_eq!(back[2].nlink, 1);
        // Same input, same bytes.
        assert_eq!(write(&sample()).unwrap(), bytes);
    }

    #[test]
    fn refuses_unsorted_duplicate_and_absolute_names() {
        let mut s = sample();
        s.swap(0, 1);
        assert!(matches!(write(&s), Err(Error::NotSorted { .. })));
        let mut s = sample();
        s[1].name = "dev".into();
        assert!(matches!(write(&s), Err(Error::NotSorted { .. })));
        assert!(matches!(
            write(&[m("/init", S_IFREG, b"")]),
            Err(Error::BadName(_))
        ));
    }

    #[test]
    fn reader_rejects_truncation_and_trailing_garbage() {
        let bytes = write(&sample()).unwrap();
        for cut in [0, 50, 110, bytes.len() - 4] {
            assert!(read(&bytes[..cut]).is_err(), "cut at {cut}");
        }
        let mut more = bytes.clone();
        more.extend_from_slice(&[0; 4]);
        assert!(read(&more).is_err());
    }

    /// GNU cpio must list and extract exactly what we wrote.
    #[test]
    fn gnu_cpio_reads_our_archive() {
        let bytes = write(&sample()).unwrap();
        let mut child = Command::new("cpio")
            .args(["-t", "-v", "--quiet"])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .expect("the `cpio` tool is needed for this test: apt-get install cpio");
        child.stdin.take().unwrap().write_all(&bytes).unwrap();
        let out = child.wait_with_output().unwrap();
        assert!(out.status.success());
        let listing = String::from_utf8(out.stdout).unwrap();
        let names: Vec<&str> = listing
            .lines()
            .map(|l| l.split_whitespace().last().unwrap())
            .collect();
        // `cpio -tv` prints symlinks as `link -> init`.
        assert_eq!(names, vec!["dev", "dev/console", "init", "init", "odd"]);
        assert!(listing.contains("link -> init"), "{listing}");
        assert!(listing.lines().nth(1).unwrap().starts_with("crw-------"));

        // And extraction gives the same content and modes.
        let dir = tempfile::tempdir().unwrap();
        let mut ex = Command::new("cpio")
            .args(["-i", "--quiet", "--no-absolute-filenames", "-d"])
            .arg("--nonmatching")
            .arg("dev/console") // mknod needs privileges this test should not require
            .current_dir(dir.path())
            .stdin(Stdio::piped())
            .spawn()
            .unwrap();
        ex.stdin.take().unwrap().write_all(&bytes).unwrap();
        assert!(ex.wait().unwrap().success());
        assert_eq!(
            std::fs::read(dir.path().join("init")).unwrap(),
            b"\x7fELF not really"
        );
        assert_eq!(std::fs::read(dir.path().join("odd")).unwrap(), b"12345");
        assert_eq!(
            std::fs::read_link(dir.path().join("link")).unwrap(),
            std::path::Path::new("init")
        );
    }
}
