#![forbid(unsafe_code)]
//! The rootfs tree hash: one number that names the whole in-RAM root filesystem.
//!
//! The build tool computes it from the initramfs file list and writes it into the manifest; PID 1
//! computes it at boot by walking `/` before it mounts anything, and shows it to the witnesses.
//! Both go through this crate, so the two numbers are comparable by construction.
//!
//! The hash is the SHA-256 of a plain-text *listing*, one line per entry, sorted by path, so an
//! auditor can recompute it with `find`, `stat` and `sha256sum` (see `docs/formats/rootfs-tree.md`):
//!
//! ```text
//! dir 0755 0 0 /dev
//! chardev 0600 0 0 5:1 /dev/console
//! file 0755 0 0 2097152 <sha256 of the content> /init
//! ```
//!
//! Modification times are deliberately not part of it: they say nothing about what runs.

use sha2::{Digest, Sha256};
use std::collections::BTreeMap;
use std::fmt;
use std::fs;
use std::io::{self, Read};
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};

/// What kind of filesystem object an entry is, with the data that identifies its content.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Kind {
    Dir,
    File { size: u64, sha256: [u8; 32] },
    Symlink { target: String },
    CharDev { major: u32, minor: u32 },
    BlockDev { major: u32, minor: u32 },
    Fifo,
}

/// One line of the listing.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Entry {
    /// Absolute path inside the tree, e.g. `/dev/console`; never `/` itself.
    pub path: String,
    pub kind: Kind,
    /// Permission bits including setuid/setgid/sticky (`0o7777` mask).
    pub mode: u32,
    pub uid: u32,
    pub gid: u32,
}

/// Why a tree could not be listed.
#[derive(Debug)]
pub enum Error {
    /// A path or symlink target that the line format cannot carry unambiguously.
    BadName {
        path: String,
        why: &'static str,
    },
    /// The same path was added twice.
    Duplicate(String),
    /// A file's parent directory is not in the tree.
    MissingParent(String),
    /// A socket, or a directory on another filesystem (a mount point): not part of an initramfs.
    Unsupported {
        path: String,
        why: &'static str,
    },
    Io {
        path: PathBuf,
        source: io::Error,
    },
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::BadName { path, why } => write!(f, "{path:?}: {why}"),
            Error::Duplicate(p) => write!(f, "{p}: listed twice"),
            Error::MissingParent(p) => write!(f, "{p}: its parent directory is not in the tree"),
            Error::Unsupported { path, why } => write!(f, "{path}: {why}"),
            Error::Io { path, source } => write!(f, "{}: {source}", path.display()),
        }
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Error::Io { source, .. } => Some(source),
            _ => None,
        }
    }
}

/// A whole tree: entries keyed by path, so iteration is the listing's order.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Tree {
    entries: BTreeMap<String, Entry>,
}

fn check_name(path: &str, what: &'static str) -> Result<(), Error> {
    let bad = |why| {
        Err(Error::BadName {
            path: path.to_owned(),
            why,
        })
    };
    if path.is_empty() {
        return bad("empty name");
    }
    if path.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return bad(match what {
            "target" => "symlink target contains white space or a control character",
            _ => "path contains white space or a control character",
        });
    }
    Ok(())
}

fn check_path(path: &str) -> Result<(), Error> {
    check_name(path, "path")?;
    let bad = |why| {
        Err(Error::BadName {
            path: path.to_owned(),
            why,
        })
    };
    if !path.starts_with('/') || path == "/" {
        return bad("must be absolute and not the root itself");
    }
    if path.ends_with('/') || path.contains("//") {
        return bad("must not end in / or contain //");
    }
    if path.split('/').any(|c| c == "." || c == "..") {
        return bad("must not contain . or .. components");
    }
    Ok(())
}

fn parent(path: &str) -> &str {
    match path.rfind('/') {
        Some(0) | None => "/",
        Some(i) => &path[..i],
    }
}

impl Tree {
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds an entry; its parent directory must already be present (or be `/`).
    pub fn insert(&mut self, entry: Entry) -> Result<(), Error> {
        check_path(&entry.path)?;
        if let Kind::Symlink { target } = &entry.kind {
            check_name(target, "target")?;
        }
        let p = parent(&entry.path);
        if p != "/" && !matches!(self.entries.get(p), Some(e) if e.kind == Kind::Dir) {
            return Err(Error::MissingParent(entry.path));
        }
        if self.entries.contains_key(&entry.path) {
            return Err(Error::Duplicate(entry.path));
        }
        self.entries.insert(entry.path.clone(), entry);
        Ok(())
    }

    pub fn entries(&self) -> impl Iterator<Item = &Entry> {
        self.entries.values()
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The canonical listing: one `\n`-terminated line per entry, sorted by path bytes.
    pub fn listing(&self) -> String {
        let mut out = String::new();
        for e in self.entries.values() {
            let m = e.mode & 0o7777;
            let line = match &e.kind {
                Kind::Dir => format!("dir {m:04o} {} {} {}", e.uid, e.gid, e.path),
                Kind::File { size, sha256 } => format!(
                    "file {m:04o} {} {} {size} {} {}",
                    e.uid,
                    e.gid,
                    hexstr::encode(sha256),
                    e.path
                ),
                Kind::Symlink { target } => {
                    format!("symlink {m:04o} {} {} {target} {}", e.uid, e.gid, e.path)
                }
                Kind::CharDev { major, minor } => format!(
                    "chardev {m:04o} {} {} {major}:{minor} {}",
                    e.uid, e.gid, e.path
                ),
                Kind::BlockDev { major, minor } => format!(
                    "blockdev {m:04o} {} {} {major}:{minor} {}",
                    e.uid, e.gid, e.path
                ),
                Kind::Fifo => format!("fifo {m:04o} {} {} {}", e.uid, e.gid, e.path),
            };
            out.push_str(&line);
            out.push('\n');
        }
        out
    }

    /// SHA-256 of [`Tree::listing`].
    pub fn hash(&self) -> [u8; 32] {
        Sha256::digest(self.listing().as_bytes()).into()
    }

    /// Lists the tree rooted at `root` as it is on disk. Does not follow symlinks and refuses to
    /// cross into another filesystem: at boot PID 1 calls this before it mounts anything, so a
    /// mount point here means something unexpected put it there.
    pub fn scan(root: &Path) -> Result<Tree, Error> {
        let io_err = |path: &Path| {
            let path = path.to_owned();
            move |source| Error::Io { path, source }
        };
        let root_dev = fs::symlink_metadata(root).map_err(io_err(root))?.dev();
        let mut tree = Tree::new();
        // Depth-first with sorted children, so parents are always inserted before children.
        let mut stack: Vec<(PathBuf, String)> = vec![(root.to_owned(), String::new())];
        while let Some((dir, rel)) = stack.pop() {
            let mut names: Vec<_> = fs::read_dir(&dir)
                .map_err(io_err(&dir))?
                .map(|r| r.map(|e| e.file_name()))
                .collect::<Result<_, _>>()
                .map_err(io_err(&dir))?;
            names.sort();
            let mut subdirs = Vec::new();
            for name in names {
                let Some(name_str) = name.to_str() else {
                    return Err(Error::BadName {
                        path: format!("{rel}/{}", name.to_string_lossy()),
                        why: "path is not UTF-8",
                    });
                };
                let path = format!("{rel}/{name_str}");
                let full = dir.join(&name);
                let md = fs::symlink_metadata(&full).map_err(io_err(&full))?;
                let ft = md.file_type();
                let kind = if ft.is_dir() {
                    if md.dev() != root_dev {
                        return Err(Error::Unsupported {
                            path,
                            why: "is a mount point (another filesystem)",
                        });
                    }
                    subdirs.push((full.clone(), path.clone()));
                    Kind::Dir
                } else if ft.is_file() {
                    let (size, sha256) = hash_file(&full).map_err(io_err(&full))?;
                    Kind::File { size, sha256 }
                } else if ft.is_symlink() {
                    let t = fs::read_link(&full).map_err(io_err(&full))?;
                    let target = t.to_str().map(str::to_owned).ok_or(Error::BadName {
                        path: path.clone(),
                        why: "symlink target is not UTF-8",
                    })?;
                    Kind::Symlink { target }
                } else if ft.is_char_device() {
                    let (major, minor) = split_dev(md.rdev());
                    Kind::CharDev { major, minor }
                } else if ft.is_block_device() {
                    let (major, minor) = split_dev(md.rdev());
                    Kind::BlockDev { major, minor }
                } else if ft.is_fifo() {
                    Kind::Fifo
                } else {
                    return Err(Error::Unsupported {
                        path,
                        why: "is a socket",
                    });
                };
                tree.insert(Entry {
                    path,
                    kind,
                    mode: md.mode() & 0o7777,
                    uid: md.uid(),
                    gid: md.gid(),
                })?;
            }
            // Reverse so that popping visits them in sorted order (only matters for errors).
            stack.extend(subdirs.into_iter().rev());
        }
        Ok(tree)
    }
}

/// Size and SHA-256 of a file's content, read in chunks.
pub fn hash_file(path: &Path) -> io::Result<(u64, [u8; 32])> {
    let mut f = fs::File::open(path)?;
    let mut h = Sha256::new();
    let mut buf = vec![0u8; 64 * 1024];
    let mut size = 0u64;
    loop {
        let n = f.read(&mut buf)?;
        if n == 0 {
            break;
        }
        size += n as u64;
        h.update(&buf[..n]);
    }
    Ok((size, h.finalize().into()))
}

/// SHA-256 of a byte slice (for entries built from memory by the image tool).
pub fn sha256(data: &[u8]) -> [u8; 32] {
    Sha256::digest(data).into()
}

/// Linux's `dev_t` encoding (glibc/musl `major()`/`minor()`).
pub fn split_dev(rdev: u64) -> (u32, u32) {
    let major = ((rdev >> 8) & 0xfff) | ((rdev >> 32) & !0xfff);
    let minor = (rdev & 0xff) | ((rdev >> 12) & !0xff);
    (major as u32, minor as u32)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::{PermissionsExt, symlink};

    fn dir(path: &str, mode: u32) -> Entry {
        Entry {
            path: path.into(),
            kind: Kind::Dir,
            mode,
            uid: 0,
            gid: 0,
        }
    }

    #[test]
    fn listing_is_sorted_and_hash_is_sha256_of_it() {
        let mut t = Tree::new();
        t.insert(dir("/proc", 0o755)).unwrap();
        t.insert(Entry {
            path: "/init".into(),
            kind: Kind::File {
                size: 3,
                sha256: sha256(b"abc"),
            },
            mode: 0o755,
            uid: 0,
            gid: 0,
        })
        .unwrap();
        t.insert(dir("/dev", 0o755)).unwrap();
        t.insert(Entry {
            path: "/dev/console".into(),
            kind: Kind::CharDev { major: 5, minor: 1 },
            mode: 0o600,
            uid: 0,
            gid: 0,
        })
        .unwrap();
        let expected = "dir 0755 0 0 /dev\n\
             chardev 0600 0 0 5:1 /dev/console\n\
             file 0755 0 0 3 ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad /init\n\
             dir 0755 0 0 /proc\n";
        assert_eq!(t.listing(), expected);
        assert_eq!(t.hash(), sha256(expected.as_bytes()));
    }

    #[test]
    fn every_field_changes_the_hash() {
        let base = || {
            let mut t = Tree::new();
            t.insert(dir("/a", 0o755)).unwrap();
            t
        };
        let h0 = base().hash();
        for e in [
            dir("/a", 0o750),
            {
                let mut d = dir("/a", 0o755);
                d.uid = 1;
                d
            },
            {
                let mut d = dir("/a", 0o755);
                d.gid = 1;
                d
            },
            dir("/b", 0o755),
        ] {
            let mut t = Tree::new();
            t.insert(e).unwrap();
            assert_ne!(t.hash(), h0);
        }
    }

    #[test]
    fn rejects_ambiguous_names_duplicates_and_orphans() {
        let mut t = Tree::new();
        for bad in ["a", "/", "/a b", "/a\n", "/a/", "/a//b", "/a/../b", "/./a"] {
            assert!(
                matches!(t.insert(dir(bad, 0o755)), Err(Error::BadName { .. })),
                "{bad:?}"
            );
        }
        assert!(matches!(
            t.insert(dir("/x/y", 0o755)),
            Err(Error::MissingParent(_))
        ));
        t.insert(dir("/x", 0o755)).unwrap();
        assert!(matches!(
            t.insert(dir("/x", 0o755)),
            Err(Error::Duplicate(_))
        ));
    }

    #[test]
    fn scan_matches_a_tree_built_by_hand() {
        let tmp = tempfile::tempdir().unwrap();
        let r = tmp.path();
        fs::create_dir(r.join("etc")).unwrap();
        fs::set_permissions(r.join("etc"), fs::Permissions::from_mode(0o750)).unwrap();
        fs::write(r.join("etc/motd"), b"hello\n").unwrap();
        fs::set_permissions(r.join("etc/motd"), fs::Permissions::from_mode(0o644)).unwrap();
        symlink("etc/motd", r.join("motd")).unwrap();
        let scanned = Tree::scan(r).unwrap();

        let (uid, gid) = {
            let m = fs::metadata(r.join("etc")).unwrap();
            (m.uid(), m.gid())
        };
        let mut t = Tree::new();
        t.insert(Entry {
            path: "/etc".into(),
            kind: Kind::Dir,
            mode: 0o750,
            uid,
            gid,
        })
        .unwrap();
        t.insert(Entry {
            path: "/etc/motd".into(),
            kind: Kind::File {
                size: 6,
                sha256: sha256(b"hello\n"),
            },
            mode: 0o644,
            uid,
            gid,
        })
        .unwrap();
        t.insert(Entry {
            path: "/motd".into(),
            kind: Kind::Symlink {
                target: "etc/motd".into(),
            },
            mode: 0o777,
            uid,
            gid,
        })
        .unwrap();
        assert_eq!(scanned.listing(), t.listing());
    }

    #[test]
    fn dev_t_split_matches_linux_encoding() {
        // makedev(5, 1) and a large one: makedev(259, 70000).
        assert_eq!(split_dev(0x0501), (5, 1));
        let (ma, mi) = (259u64, 70000u64);
        let rdev = ((ma & 0xfff) << 8) | ((ma & !0xfff) << 32) | (mi & 0xff) | ((mi & !0xff) << 12);
        assert_eq!(split_dev(rdev), (259, 70000));
    }
}
