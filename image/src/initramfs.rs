//! The initramfs: an explicit, checked-in file list (`image/initramfs.list`) turned into a cpio
//! archive and into the tree listing whose hash PID 1 shows at boot.

use crate::cpio::{self, Member};
use std::collections::BTreeMap;
use std::fmt;
use treehash::{Entry, Kind, Tree};

/// One parsed line of the list.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ListEntry {
    pub line: usize,
    pub path: String,
    pub mode: u32,
    pub uid: u32,
    pub gid: u32,
    pub kind: ListKind,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ListKind {
    Dir,
    Node {
        block: bool,
        major: u32,
        minor: u32,
    },
    /// `@name`: content supplied by the build (`init`).
    File {
        source: String,
    },
}

#[derive(Debug, PartialEq, Eq)]
pub struct ListError {
    pub line: usize,
    pub what: String,
}

impl fmt::Display for ListError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "image/initramfs.list line {}: {}", self.line, self.what)
    }
}

impl std::error::Error for ListError {}

fn num(s: &str, radix: u32, line: usize, what: &str) -> Result<u32, ListError> {
    u32::from_str_radix(s, radix).map_err(|_| ListError {
        line,
        what: format!("{what} {s:?} is not a number"),
    })
}

/// Parses the list strictly: unknown types, wrong field counts and bad numbers are errors.
pub fn parse_list(text: &str) -> Result<Vec<ListEntry>, ListError> {
    let mut out = Vec::new();
    for (i, raw) in text.lines().enumerate() {
        let line = i + 1;
        let l = raw.trim();
        if l.is_empty() || l.starts_with('#') {
            continue;
        }
        let f: Vec<&str> = l.split_whitespace().collect();
        let err = |what: String| ListError { line, what };
        let want = match f[0] {
            "dir" => 5,
            "nod" => 8,
            "file" => 6,
            t => return Err(err(format!("unknown type {t:?} (dir, nod, file)"))),
        };
        if f.len() != want {
            return Err(err(format!(
                "{} takes {} fields, found {}",
                f[0],
                want,
                f.len()
            )));
        }
        let mode = num(f[2], 8, line, "mode")?;
        if mode > 0o7777 || f[2].len() != 4 {
            return Err(err(format!("mode {:?} must be four octal digits", f[2])));
        }
        let kind = match f[0] {
            "dir" => ListKind::Dir,
            "nod" => ListKind::Node {
                block: match f[5] {
                    "c" => false,
                    "b" => true,
                    o => return Err(err(format!("node type {o:?} must be c or b"))),
                },
                major: num(f[6], 10, line, "major")?,
                minor: num(f[7], 10, line, "minor")?,
            },
            _ => ListKind::File {
                source: f[5]
                    .strip_prefix('@')
                    .filter(|s| !s.is_empty())
                    .ok_or_else(|| err(format!("file source {:?} must be @name", f[5])))?
                    .to_owned(),
            },
        };
        out.push(ListEntry {
            line,
            path: f[1].to_owned(),
            mode,
            uid: num(f[3], 10, line, "uid")?,
            gid: num(f[4], 10, line, "gid")?,
            kind,
        });
    }
    Ok(out)
}

/// What the build produced: the archive bytes and the tree it unpacks to.
pub struct Initramfs {
    pub cpio: Vec<u8>,
    pub tree: Tree,
}

/// Builds the archive and the tree from the list, with `sources` supplying `@name` contents and
/// every modification time set to `mtime`.
pub fn build(
    list: &[ListEntry],
    sources: &BTreeMap<String, Vec<u8>>,
    mtime: u32,
) -> Result<Initramfs, ListError> {
    let mut sorted: Vec<&ListEntry> = list.iter().collect();
    // Byte order of the archive name (without the leading slash) is the listing's order too.
    sorted.sort_by(|a, b| a.path.as_bytes().cmp(b.path.as_bytes()));
    let mut tree = Tree::new();
    let mut members = Vec::new();
    for e in sorted {
        let err = |what: String| ListError { line: e.line, what };
        let (type_bits, data, kind, rdev) = match &e.kind {
            ListKind::Dir => (cpio::S_IFDIR, Vec::new(), Kind::Dir, (0, 0)),
            ListKind::Node {
                block,
                major,
                minor,
            } => (
                if *block { cpio::S_IFBLK } else { cpio::S_IFCHR },
                Vec::new(),
                if *block {
                    Kind::BlockDev {
                        major: *major,
                        minor: *minor,
                    }
                } else {
                    Kind::CharDev {
                        major: *major,
                        minor: *minor,
                    }
                },
                (*major, *minor),
            ),
            ListKind::File { source } => {
                let data = sources
                    .get(source)
                    .ok_or_else(|| err(format!("the build supplies no @{source}")))?
                    .clone();
                let kind = Kind::File {
                    size: data.len() as u64,
                    sha256: treehash::sha256(&data),
                };
                (cpio::S_IFREG, data, kind, (0, 0))
            }
        };
        tree.insert(Entry {
            path: e.path.clone(),
            kind,
            mode: e.mode,
            uid: e.uid,
            gid: e.gid,
        })
        .map_err(|x| err(x.to_string()))?;
        members.push(Member {
            name: e.path.trim_start_matches('/').to_owned(),
            mode: type_bits | e.mode,
            uid: e.uid,
            gid: e.gid,
            mtime,
            rdev_major: rdev.0,
            rdev_minor: rdev.1,
            data,
        });
    }
    let cpio = cpio::write(&members).map_err(|x| ListError {
        line: 0,
        what: x.to_string(),
    })?;
    Ok(Initramfs { cpio, tree })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn checked_in() -> Vec<ListEntry> {
        parse_list(include_str!("../initramfs.list")).unwrap()
    }

    #[test]
    fn the_image_has_one_program_and_nothing_unexpected() {
        let list = checked_in();
        let files: Vec<_> = list
            .iter()
            .filter(|e| matches!(e.kind, ListKind::File { .. }))
            .map(|e| e.path.as_str())
            .collect();
        assert_eq!(files, vec!["/init"]);
        let all: Vec<_> = list.iter().map(|e| e.path.as_str()).collect();
        assert_eq!(
            all,
            vec![
                "/dev",
                "/dev/console",
                "/init",
                "/proc",
                "/root",
                "/run",
                "/sys",
                "/tmp"
            ]
        );
        // Every entry is root's.
        assert!(list.iter().all(|e| e.uid == 0 && e.gid == 0));
    }

    #[test]
    fn archive_and_tree_agree() {
        let mut src = BTreeMap::new();
        src.insert("init".to_owned(), b"binary".to_vec());
        let built = build(&checked_in(), &src, 42).unwrap();
        let members = crate::cpio::read(&built.cpio).unwrap();
        assert_eq!(members.len(), built.tree.len());
        for (m, e) in members.iter().zip(built.tree.entries()) {
            assert_eq!(format!("/{}", m.member.name), e.path);
            assert_eq!(m.member.mode & 0o7777, e.mode);
            assert_eq!(m.member.mtime, 42);
        }
        let console = members
            .iter()
            .find(|m| m.member.name == "dev/console")
            .unwrap();
        assert_eq!(
            (
                console.member.mode,
                console.member.rdev_major,
                console.member.rdev_minor
            ),
            (crate::cpio::S_IFCHR | 0o600, 5, 1)
        );
        let want = format!(
            "file 0755 0 0 6 {} /init\n",
            hexstr::encode(&treehash::sha256(b"binary"))
        );
        assert!(built.tree.listing().contains(&want));
    }

    #[test]
    fn strict_list_errors_name_the_line() {
        for (text, want) in [
            ("dir /a 755 0 0", "four octal digits"),
            ("dir /a 0755 0", "takes 5 fields"),
            ("link /a 0755 0 0", "unknown type"),
            ("nod /c 0600 0 0 x 1 1", "must be c or b"),
            ("file /f 0644 0 0 init", "must be @name"),
            ("dir /a 0755 root 0", "uid"),
        ] {
            let e = parse_list(&format!("# c\n\n{text}\n")).unwrap_err();
            assert_eq!(e.line, 3);
            assert!(e.to_string().contains(want), "{text}: {e}");
        }
        let src = BTreeMap::new();
        let list = parse_list("file /init 0755 0 0 @init").unwrap();
        assert!(
            build(&list, &src, 0)
                .err()
                .unwrap()
                .to_string()
                .contains("no @init")
        );
        let dup = parse_list("dir /a 0755 0 0\ndir /a 0755 0 0").unwrap();
        assert!(build(&dup, &src, 0).is_err());
    }
}
