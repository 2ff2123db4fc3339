//! Writing outputs to removable storage without losing or half-writing anything: for each file
//! on each volume, write a temporary name, fsync, rename, fsync the directory, read back and
//! compare. Existing outputs are never overwritten.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::path::PathBuf;

/// A mounted volume (a data stick), addressed by relative '/'-separated paths.
pub trait Volume {
    /// A label for messages (e.g. the stick's serial or mount point).
    fn label(&self) -> String;
    /// Whether `path` exists.
    fn exists(&mut self, path: &str) -> io::Result<bool>;
    /// Creates directory `path` and its parents.
    fn create_dirs(&mut self, path: &str) -> io::Result<()>;
    /// Creates `path` (which must not exist), writes `bytes` and fsyncs the file.
    fn write_new_synced(&mut self, path: &str, bytes: &[u8]) -> io::Result<()>;
    /// Renames `from` to `to` within the volume.
    fn rename(&mut self, from: &str, to: &str) -> io::Result<()>;
    /// Fsyncs directory `path` (so the rename is durable).
    fn sync_dir(&mut self, path: &str) -> io::Result<()>;
    /// Reads `path` back.
    fn read(&mut self, path: &str) -> io::Result<Vec<u8>>;
    /// Removes file `path`.
    fn remove(&mut self, path: &str) -> io::Result<()>;
}

/// One output file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OutputFile {
    /// Relative path, '/'-separated; components of `A-Z a-z 0-9 . _ -`, not starting with '.'.
    pub path: String,
    /// Contents (public data only: sealed messages, certificates, transcript).
    pub bytes: Vec<u8>,
}

/// Why writing stopped. Names the volume and file.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum WriteError {
    /// The folder or an output path is not a safe relative path; nothing was written.
    #[error("refusing output path {path:?}: {reason}")]
    BadPath {
        /// The refused path, as given.
        path: String,
        /// Which rule it breaks.
        reason: &'static str,
    },
    /// An output already exists on a volume; nothing was written to that volume (volumes
    /// before it in the list are complete).
    #[error(
        "{volume}: {path} already exists; refusing to overwrite ceremony outputs (use a fresh stick or folder)"
    )]
    AlreadyExists {
        /// The volume's label.
        volume: String,
        /// The existing file, relative to the volume root.
        path: String,
    },
    /// A file-system step failed; the files completed before it stay complete and verified.
    #[error("{volume}: {step} {path} failed: {source}")]
    Io {
        /// The volume's label.
        volume: String,
        /// The file the step worked on, relative to the volume root (the temporary name while
        /// that is checked, removed or written).
        path: String,
        /// The step that failed, e.g. `writing`, `renaming into`, `reading back`.
        step: &'static str,
        /// The operating system's error.
        source: io::Error,
    },
    /// A file read back differs from the bytes written: the medium is faulty.
    #[error(
        "{volume}: {path} reads back different from what was written ({written} bytes written, {read} read): the medium is faulty, use another"
    )]
    ReadBackMismatch {
        /// The volume's label.
        volume: String,
        /// The file, relative to the volume root.
        path: String,
        /// Number of bytes written.
        written: usize,
        /// Number of bytes read back.
        read: usize,
    },
}

/// What was written where.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WriteReport {
    /// One entry per volume: its label and the paths written and verified.
    pub volumes: Vec<(String, Vec<String>)>,
}

fn check_path(path: &str) -> Result<(), WriteError> {
    let bad = |reason| {
        Err(WriteError::BadPath {
            path: path.to_string(),
            reason,
        })
    };
    if path.is_empty() || path.starts_with('/') {
        return bad("must be a non-empty relative path");
    }
    for c in path.split('/') {
        if c.is_empty() || c.starts_with('.') {
            return bad("empty or hidden component (also rules out . and ..)");
        }
        if !c
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b))
        {
            return bad("only A-Z a-z 0-9 . _ - are allowed");
        }
    }
    Ok(())
}

fn parent(path: &str) -> &str {
    path.rsplit_once('/').map(|(p, _)| p).unwrap_or("")
}

fn temp_name(path: &str) -> String {
    match path.rsplit_once('/') {
        Some((dir, name)) => format!("{dir}/.{name}.tmp"),
        None => format!(".{path}.tmp"),
    }
}

/// Writes every file under `dir` on every volume, in order, each one atomically and verified.
/// Stops at the first failure (files already written stay, complete and verified; a later run
/// refuses to overwrite them, so use a fresh folder).
pub fn write_all(
    volumes: &mut [&mut dyn Volume],
    dir: &str,
    files: &[OutputFile],
) -> Result<WriteReport, WriteError> {
    check_path(dir)?;
    for f in files {
        check_path(&f.path)?;
    }
    let mut report = WriteReport {
        volumes: Vec::new(),
    };
    for v in volumes.iter_mut() {
        let label = v.label();
        let io_err = |path: &str, step, source| WriteError::Io {
            volume: label.clone(),
            path: path.to_string(),
            step,
            source,
        };
        // Refuse before writing anything, so a second run cannot mix two ceremonies.
        for f in files {
            let full = format!("{dir}/{}", f.path);
            if v.exists(&full).map_err(|e| io_err(&full, "checking", e))? {
                return Err(WriteError::AlreadyExists {
                    volume: label.clone(),
                    path: full,
                });
            }
        }
        let mut written = Vec::new();
        for f in files {
            let full = format!("{dir}/{}", f.path);
            let tmp = temp_name(&full);
            v.create_dirs(parent(&full))
                .map_err(|e| io_err(&full, "creating the folder of", e))?;
            if v.exists(&tmp).map_err(|e| io_err(&tmp, "checking", e))? {
                // A leftover from an interrupted run: never renamed, so never an output.
                v.remove(&tmp)
                    .map_err(|e| io_err(&tmp, "removing the leftover", e))?;
            }
            v.write_new_synced(&tmp, &f.bytes)
                .map_err(|e| io_err(&tmp, "writing", e))?;
            v.rename(&tmp, &full)
                .map_err(|e| io_err(&full, "renaming into", e))?;
            v.sync_dir(parent(&full))
                .map_err(|e| io_err(&full, "syncing the folder of", e))?;
            let back = v
                .read(&full)
                .map_err(|e| io_err(&full, "reading back", e))?;
            if back != f.bytes {
                return Err(WriteError::ReadBackMismatch {
                    volume: label.clone(),
                    path: full,
                    written: f.bytes.len(),
                    read: back.len(),
                });
            }
            written.push(full);
        }
        report.volumes.push((label, written));
    }
    Ok(report)
}

/// A volume that is a directory of the local file system (a mounted stick, or a folder in
/// rehearsal mode).
pub struct DirVolume {
    root: PathBuf,
}

impl DirVolume {
    /// A volume rooted at `root` (which must exist).
    pub fn new(root: impl Into<PathBuf>) -> Self {
        Self { root: root.into() }
    }

    fn at(&self, path: &str) -> PathBuf {
        self.root.join(path)
    }
}

impl Volume for DirVolume {
    fn label(&self) -> String {
        self.root.display().to_string()
    }

    fn exists(&mut self, path: &str) -> io::Result<bool> {
        self.at(path).try_exists()
    }

    fn create_dirs(&mut self, path: &str) -> io::Result<()> {
        fs::create_dir_all(self.at(path))
    }

    fn write_new_synced(&mut self, path: &str, bytes: &[u8]) -> io::Result<()> {
        let mut f = OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(self.at(path))?;
        f.write_all(bytes)?;
        f.sync_all()
    }

    fn rename(&mut self, from: &str, to: &str) -> io::Result<()> {
        if self.at(to).try_exists()? {
            return Err(io::Error::new(
                io::ErrorKind::AlreadyExists,
                "target exists",
            ));
        }
        fs::rename(self.at(from), self.at(to))
    }

    fn sync_dir(&mut self, path: &str) -> io::Result<()> {
        File::open(self.at(path))?.sync_all()
    }

    fn read(&mut self, path: &str) -> io::Result<Vec<u8>> {
        fs::read(self.at(path))
    }

    fn remove(&mut self, path: &str) -> io::Result<()> {
        fs::remove_file(self.at(path))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    /// An in-memory volume that can be told to corrupt reads or fail a step.
    #[derive(Default)]
    struct MemVolume {
        files: BTreeMap<String, Vec<u8>>,
        synced: Vec<String>,
        flip_on_read: bool,
        fail_rename: bool,
    }

    impl Volume for MemVolume {
        fn label(&self) -> String {
            "mem".into()
        }
        fn exists(&mut self, path: &str) -> io::Result<bool> {
            Ok(self.files.contains_key(path))
        }
        fn create_dirs(&mut self, _path: &str) -> io::Result<()> {
            Ok(())
        }
        fn write_new_synced(&mut self, path: &str, bytes: &[u8]) -> io::Result<()> {
            if self.files.contains_key(path) {
                return Err(io::Error::new(io::ErrorKind::AlreadyExists, "exists"));
            }
            self.files.insert(path.into(), bytes.to_vec());
            self.synced.push(path.into());
            Ok(())
        }
        fn rename(&mut self, from: &str, to: &str) -> io::Result<()> {
            if self.fail_rename {
                return Err(io::Error::other("rename failed"));
            }
            let v = self.files.remove(from).ok_or(io::ErrorKind::NotFound)?;
            self.files.insert(to.into(), v);
            Ok(())
        }
        fn sync_dir(&mut self, _path: &str) -> io::Result<()> {
            Ok(())
        }
        fn read(&mut self, path: &str) -> io::Result<Vec<u8>> {
            let mut v = self
                .files
                .get(path)
                .cloned()
                .ok_or(io::ErrorKind::NotFound)?;
            if self.flip_on_read && !v.is_empty() {
                v[0] ^= 1;
            }
            Ok(v)
        }
        fn remove(&mut self, path: &str) -> io::Result<()> {
            self.files
                .remove(path)
                .map(|_| ())
                .ok_or(io::ErrorKind::NotFound.into())
        }
    }

    fn files() -> Vec<OutputFile> {
        vec![
            OutputFile {
                path: "a.txt".into(),
                bytes: b"alpha".to_vec(),
            },
            OutputFile {
                path: "pins/b.asc".into(),
                bytes: b"beta".to_vec(),
            },
        ]
    }

    #[test]
    fn writes_every_copy_via_temp_names() {
        let mut a = MemVolume::default();
        let mut b = MemVolume::default();
        let report = write_all(&mut [&mut a, &mut b], "out", &files()).unwrap();
        assert_eq!(report.volumes.len(), 2);
        for v in [&a, &b] {
            assert_eq!(v.files.get("out/a.txt").unwrap(), b"alpha");
            assert_eq!(v.files.get("out/pins/b.asc").unwrap(), b"beta");
            assert_eq!(
                v.synced,
                vec![
                    "out/.a.txt.tmp".to_string(),
                    "out/pins/.b.asc.tmp".to_string()
                ]
            );
            assert_eq!(v.files.len(), 2, "no temporary file left");
        }
    }

    #[test]
    fn refuses_to_overwrite() {
        let mut a = MemVolume::default();
        a.files.insert("out/pins/b.asc".into(), b"old".to_vec());
        let err = write_all(&mut [&mut a], "out", &files()).unwrap_err();
        assert!(
            matches!(err, WriteError::AlreadyExists { ref path, .. } if path == "out/pins/b.asc")
        );
        assert_eq!(a.files.len(), 1, "nothing written when refusing");
    }

    #[test]
    fn read_back_mismatch_is_caught() {
        let mut a = MemVolume {
            flip_on_read: true,
            ..Default::default()
        };
        let err = write_all(&mut [&mut a], "out", &files()).unwrap_err();
        assert!(
            matches!(err, WriteError::ReadBackMismatch { ref path, .. } if path == "out/a.txt")
        );
    }

    #[test]
    fn failed_rename_leaves_no_output() {
        let mut a = MemVolume {
            fail_rename: true,
            ..Default::default()
        };
        let err = write_all(&mut [&mut a], "out", &files()).unwrap_err();
        assert!(matches!(
            err,
            WriteError::Io {
                step: "renaming into",
                ..
            }
        ));
        assert!(!a.files.contains_key("out/a.txt"));
    }

    #[test]
    fn leftover_temp_is_replaced() {
        let mut a = MemVolume::default();
        a.files.insert("out/.a.txt.tmp".into(), b"half".to_vec());
        write_all(&mut [&mut a], "out", &files()).unwrap();
        assert_eq!(a.files.get("out/a.txt").unwrap(), b"alpha");
    }

    #[test]
    fn bad_paths() {
        for p in ["", "/abs", "../x", "a/../b", "a//b", ".hidden", "sp ace"] {
            let f = vec![OutputFile {
                path: p.into(),
                bytes: vec![],
            }];
            assert!(
                matches!(
                    write_all(&mut [], "out", &f),
                    Err(WriteError::BadPath { .. })
                ),
                "{p:?}"
            );
        }
    }

    #[test]
    fn dir_volume_round_trip() {
        let tmp = tempfile::tempdir().unwrap();
        let mut v = DirVolume::new(tmp.path());
        write_all(&mut [&mut v], "ceremony", &files()).unwrap();
        assert_eq!(
            fs::read(tmp.path().join("ceremony/pins/b.asc")).unwrap(),
            b"beta"
        );
        assert!(!tmp.path().join("ceremony/.a.txt.tmp").exists());
        let err = write_all(&mut [&mut v], "ceremony", &files()).unwrap_err();
        assert!(matches!(err, WriteError::AlreadyExists { .. }));
    }
}
