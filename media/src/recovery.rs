//! Reading a recovery ceremony's inputs from the sticks: the request stick (`request.toml`, its
//! `approvals/` folder and the files a `sign` request names) and the generation folder
//! (`sherd-<ceremony-id>/`, as the generation ceremony wrote it to its data sticks). What is read
//! and the limits are in `docs/media.md`; the files' formats in `docs/formats/request.md` and
//! `docs/formats/ceremony-outputs.md`.

use std::collections::BTreeMap;
use std::fs;
use std::io::{self, Read};
use std::path::Path;

use ceremony::recovery::{APPROVALS_DIR, ApprovalFile, read_approvals};

use crate::find::{clean_name, location, lookup, open_file};
use crate::{Location, Media, MediaError};

/// The request's file name, at the top of the request stick.
pub const REQUEST_FILE: &str = "request.toml";
/// A request file larger than this is refused unread (the request format's own limit,
/// `ceremony::request::MAX_REQUEST_BYTES`).
pub const REQUEST_MAX_BYTES: u64 = ceremony::request::MAX_REQUEST_BYTES as u64;
/// A file a `sign` request names larger than this is refused: it is read whole into memory
/// (the image runs from RAM), so large artefacts are signed through a small file naming their
/// hashes (a checksum list).
pub const SIGN_FILE_MAX_BYTES: u64 = 256 << 20;
/// All the files a request names together: at most this many bytes, for the same reason.
pub const SIGN_FILES_MAX_TOTAL_BYTES: u64 = 1 << 30;
/// A generation folder's subfolders may nest this deep (`pins/` is 1), no deeper.
pub const FOLDER_MAX_DEPTH: usize = 4;
/// At most this many entries in a generation folder, files and subfolders together.
pub const FOLDER_MAX_FILES: usize = 1000;
/// At most this many bytes in a generation folder's files together.
pub const FOLDER_MAX_BYTES: u64 = 64 << 20;

/// The request stick's contents, read while it was mounted read-only.
#[derive(Clone, PartialEq, Eq)]
pub struct RequestFound {
    /// Where `request.toml` was.
    pub location: Location,
    /// `request.toml`, byte for byte (the approvals sign these exact bytes).
    pub bytes: Vec<u8>,
    /// The `approvals/` folder's files, in name order; empty if there is no such folder.
    pub approvals: Vec<ApprovalFile>,
    /// The files the caller asked for that exist at the top of the stick, by name; a name
    /// missing here was not on the stick.
    pub files: BTreeMap<String, Vec<u8>>,
}

impl std::fmt::Debug for RequestFound {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let approvals: Vec<(&str, usize)> = self
            .approvals
            .iter()
            .map(|a| (a.name.as_str(), a.bytes.len()))
            .collect();
        f.debug_struct("RequestFound")
            .field("location", &self.location)
            .field("bytes", &self.bytes.len())
            .field("approvals", &approvals)
            .field("files", &sizes(&self.files))
            .finish()
    }
}

/// A folder's files, read while its stick was mounted read-only.
#[derive(Clone, PartialEq, Eq)]
pub struct FolderFound {
    /// Where the folder was (its path is `/<name>`).
    pub location: Location,
    /// Every file in it and its subfolders, by path relative to the folder with `/` between
    /// components (e.g. `pins/holder-001.asc`).
    pub files: BTreeMap<String, Vec<u8>>,
}

impl std::fmt::Debug for FolderFound {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FolderFound")
            .field("location", &self.location)
            .field("files", &sizes(&self.files))
            .finish()
    }
}

/// Names and sizes, for Debug: the contents may be large.
fn sizes(files: &BTreeMap<String, Vec<u8>>) -> Vec<(&str, usize)> {
    files.iter().map(|(k, v)| (k.as_str(), v.len())).collect()
}

/// `base` with another path (the identity is read once per stick, not once per file).
fn at(base: &Location, path: String) -> Location {
    Location {
        path,
        ..base.clone()
    }
}

fn read_err(loc: &Location, done: u64, source: io::Error) -> MediaError {
    MediaError::Read {
        location: Box::new(loc.clone()),
        done,
        source,
    }
}

/// A name to look up at the top of a stick: one plain path component. The callers' own checks
/// (the request format's file names, the ceremony id) come first; this is the last line.
fn check_plain_name(name: &str) -> Result<(), MediaError> {
    let reason = if name.is_empty() {
        "empty"
    } else if name == "." || name == ".." {
        "`.` or `..`"
    } else if name.contains('/') {
        "contains '/'"
    } else if name.contains('\0') {
        "contains a NUL character"
    } else {
        return Ok(());
    };
    Err(MediaError::BadName {
        name: name.chars().take(300).collect(),
        reason,
    })
}

/// The regular file at `path` (vetted by the caller, opened without following a link): `None`
/// if it is larger than `limit` bytes, which is told without reading more than `limit + 1`.
fn read_capped(path: &Path, loc: &Location, limit: u64) -> Result<Option<Vec<u8>>, MediaError> {
    let f = open_file(path, loc)?;
    let len = f.metadata().map_err(|e| read_err(loc, 0, e))?.len();
    if len > limit {
        return Ok(None);
    }
    let mut bytes = Vec::new();
    // One byte more than allowed: a file that grew since (or lies about its size) is still
    // told, without reading it all.
    if let Err(e) = f.take(limit + 1).read_to_end(&mut bytes) {
        return Err(read_err(loc, bytes.len() as u64, e));
    }
    Ok((bytes.len() as u64 <= limit).then_some(bytes))
}

impl Media {
    /// The request stick: `request.toml` at the top of exactly one removable partition, at
    /// most [`REQUEST_MAX_BYTES`]; the `approvals/` folder beside it (none: no approvals), read
    /// by [`ceremony::recovery::read_approvals`]; and each file `wanted(request bytes)` names
    /// that is at the top of the same partition (a name that is not there is left out of
    /// [`RequestFound::files`]: the ceremony reports it), each at most [`SIGN_FILE_MAX_BYTES`]
    /// and all together at most [`SIGN_FILES_MAX_TOTAL_BYTES`].
    ///
    /// Every removable partition is mounted read-only once and unmounted again; the first
    /// holding `request.toml` is read while mounted, any later one only noted, and then
    /// nothing is returned but the list of them.
    pub fn find_request(
        &self,
        wanted: &dyn Fn(&[u8]) -> Vec<String>,
    ) -> Result<RequestFound, MediaError> {
        let mut first = true;
        let (found, looked) = self.each_readonly(|dev, fs, root| {
            match fs::symlink_metadata(root.join(REQUEST_FILE)) {
                Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(vec![]),
                _ => {}
            }
            let loc = location(dev, fs, &format!("/{REQUEST_FILE}"));
            let read = first.then(|| read_request(root, &loc, wanted));
            first = false;
            Ok(vec![(loc, read)])
        })?;
        match found.len() {
            0 => Err(MediaError::RequestNotFound { looked }),
            1 => {
                let (location, read) = found.into_iter().next().expect("one");
                let (bytes, approvals, files) = read.expect("the first one is read")?;
                Ok(RequestFound {
                    location,
                    bytes,
                    approvals,
                    files,
                })
            }
            _ => Err(MediaError::SeveralRequests {
                found: found.into_iter().map(|(l, _)| l).collect(),
            }),
        }
    }

    /// The folder `name` (one plain path component, e.g. `sherd-acme-root`) at the top of
    /// exactly one removable partition, with every file in it and its subfolders: at most
    /// [`FOLDER_MAX_DEPTH`] folders deep, [`FOLDER_MAX_FILES`] entries and [`FOLDER_MAX_BYTES`]
    /// bytes. A link, device, FIFO or socket anywhere in it is refused: a folder sherd wrote
    /// holds none.
    ///
    /// Mounted read-only once per partition, as [`Media::find_request`].
    pub fn find_folder(&self, name: &str) -> Result<FolderFound, MediaError> {
        check_plain_name(name)?;
        let mut first = true;
        let (found, looked) = self.each_readonly(|dev, fs, root| {
            let dir = root.join(name);
            let meta = match fs::symlink_metadata(&dir) {
                Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(vec![]),
                m => m,
            };
            let loc = location(dev, fs, &format!("/{}", clean_name(name.as_bytes())));
            let read = first.then(|| match meta {
                Ok(m) if m.is_dir() => read_folder(&dir, &loc),
                Ok(_) => Err(MediaError::NotAFolder {
                    location: Box::new(loc.clone()),
                }),
                Err(e) => Err(read_err(&loc, 0, e)),
            });
            first = false;
            Ok(vec![(loc, read)])
        })?;
        match found.len() {
            0 => Err(MediaError::FolderNotFound {
                name: name.to_string(),
                looked,
            }),
            1 => {
                let (location, read) = found.into_iter().next().expect("one");
                Ok(FolderFound {
                    files: read.expect("the first one is read")?,
                    location,
                })
            }
            _ => Err(MediaError::SeveralFolders {
                name: name.to_string(),
                found: found.into_iter().map(|(l, _)| l).collect(),
            }),
        }
    }
}

impl Media {
    /// The names of the folders at the top of the removable partitions that start with
    /// `prefix` (e.g. `sherd-acme-root-recovery-`), sorted, each once; read each with
    /// [`Media::find_folder`]. Links and other entries that are not folders are left out.
    /// Mounted read-only once per partition, as [`Media::find_request`].
    pub fn folder_names(&self, prefix: &str) -> Result<Vec<String>, MediaError> {
        let (mut names, _) = self.each_readonly(|dev, fs, root| {
            let loc = location(dev, fs, "/");
            let entries = fs::read_dir(root).map_err(|e| read_err(&loc, 0, e))?;
            let mut out = Vec::new();
            for entry in entries {
                let entry = entry.map_err(|e| read_err(&loc, 0, e))?;
                let Ok(name) = entry.file_name().into_string() else {
                    continue;
                };
                let is_dir = fs::symlink_metadata(entry.path()).is_ok_and(|m| m.is_dir());
                if is_dir && name.starts_with(prefix) && check_plain_name(&name).is_ok() {
                    out.push(name);
                }
            }
            Ok(out)
        })?;
        names.sort();
        names.dedup();
        Ok(names)
    }
}

type RequestParts = (Vec<u8>, Vec<ApprovalFile>, BTreeMap<String, Vec<u8>>);

/// Reads the request stick mounted on `root`; `loc` is `request.toml`'s location.
fn read_request(
    root: &Path,
    loc: &Location,
    wanted: &dyn Fn(&[u8]) -> Vec<String>,
) -> Result<RequestParts, MediaError> {
    let path = lookup(root, REQUEST_FILE, loc)?.ok_or_else(|| MediaError::NotAFile {
        location: Box::new(loc.clone()),
    })?;
    let bytes =
        read_capped(&path, loc, REQUEST_MAX_BYTES)?.ok_or_else(|| MediaError::RequestTooLarge {
            location: Box::new(loc.clone()),
            limit: REQUEST_MAX_BYTES,
        })?;

    let dir = root.join(APPROVALS_DIR);
    let dir_loc = at(loc, format!("/{APPROVALS_DIR}"));
    let approvals = match fs::symlink_metadata(&dir) {
        Err(e) if e.kind() == io::ErrorKind::NotFound => Vec::new(),
        Err(e) => return Err(read_err(&dir_loc, 0, e)),
        // A real folder (not a link to one): read_approvals then refuses links inside it.
        Ok(m) if m.is_dir() => read_approvals(&dir).map_err(|source| MediaError::Approvals {
            location: Box::new(dir_loc.clone()),
            source,
        })?,
        Ok(_) => {
            return Err(MediaError::ApprovalsNotAFolder {
                location: Box::new(dir_loc),
            });
        }
    };

    let mut files = BTreeMap::new();
    let mut total = 0u64;
    for name in wanted(&bytes) {
        check_plain_name(&name)?;
        if files.contains_key(&name) {
            continue;
        }
        let file_loc = at(loc, format!("/{}", clean_name(name.as_bytes())));
        // Missing: left out, the ceremony names it. A link, folder or device: refused.
        let Some(path) = lookup(root, &name, &file_loc)? else {
            continue;
        };
        let limit = SIGN_FILE_MAX_BYTES.min(SIGN_FILES_MAX_TOTAL_BYTES - total);
        let Some(b) = read_capped(&path, &file_loc, limit)? else {
            let alone_too_large =
                fs::symlink_metadata(&path).is_ok_and(|m| m.len() > SIGN_FILE_MAX_BYTES);
            return Err(if limit < SIGN_FILE_MAX_BYTES && !alone_too_large {
                MediaError::RequestFilesTooLarge {
                    location: Box::new(file_loc),
                    limit: SIGN_FILES_MAX_TOTAL_BYTES,
                }
            } else {
                MediaError::FileTooLarge {
                    location: Box::new(file_loc),
                    limit: SIGN_FILE_MAX_BYTES,
                }
            });
        };
        total += b.len() as u64;
        files.insert(name, b);
    }
    Ok((bytes, approvals, files))
}

/// Reads the folder `dir` (a real folder, vetted by the caller) whose location is `loc`.
fn read_folder(dir: &Path, loc: &Location) -> Result<BTreeMap<String, Vec<u8>>, MediaError> {
    let mut walk = Walk {
        top: loc,
        files: BTreeMap::new(),
        entries: 0,
        bytes: 0,
    };
    walk.dir(dir, "", 0)?;
    Ok(walk.files)
}

struct Walk<'a> {
    top: &'a Location,
    files: BTreeMap<String, Vec<u8>>,
    /// Files and folders seen so far (the folder itself not counted).
    entries: usize,
    bytes: u64,
}

impl Walk<'_> {
    fn too_large(&self, rel: &str, limit: String) -> MediaError {
        MediaError::FolderTooLarge {
            location: Box::new(self.at(rel)),
            limit,
        }
    }

    /// Location of `rel` (relative to the folder; "" for the folder itself).
    fn at(&self, rel: &str) -> Location {
        if rel.is_empty() {
            self.top.clone()
        } else {
            at(
                self.top,
                format!("{}/{}", self.top.path, clean_name(rel.as_bytes())),
            )
        }
    }

    /// Reads folder `dir`, which is `prefix` (empty, or ending in `/`) inside the top folder
    /// and `depth` folders below it.
    fn dir(&mut self, dir: &Path, prefix: &str, depth: usize) -> Result<(), MediaError> {
        let here = prefix.trim_end_matches('/');
        let mut names = Vec::new();
        let entries = fs::read_dir(dir).map_err(|e| read_err(&self.at(here), 0, e))?;
        for e in entries {
            let e = e.map_err(|e| read_err(&self.at(here), 0, e))?;
            self.entries += 1;
            if self.entries > FOLDER_MAX_FILES {
                return Err(self.too_large(
                    here,
                    format!("more than {FOLDER_MAX_FILES} files and folders"),
                ));
            }
            names.push(e.file_name());
        }
        names.sort();
        for name in names {
            let Some(n) = name.to_str().filter(|n| !n.chars().any(char::is_control)) else {
                let rel = format!("{prefix}{}", clean_name(name.as_encoded_bytes()));
                return Err(MediaError::FolderEntry {
                    location: Box::new(self.at(&rel)),
                    what: "a name that is not printable text",
                });
            };
            let rel = format!("{prefix}{n}");
            let path = dir.join(&name);
            let meta = fs::symlink_metadata(&path).map_err(|e| read_err(&self.at(&rel), 0, e))?;
            let kind = meta.file_type();
            if kind.is_dir() {
                if depth + 1 > FOLDER_MAX_DEPTH {
                    return Err(self.too_large(
                        &rel,
                        format!("folders nested more than {FOLDER_MAX_DEPTH} deep"),
                    ));
                }
                self.dir(&path, &format!("{rel}/"), depth + 1)?;
            } else if kind.is_file() {
                let loc = self.at(&rel);
                let Some(b) = read_capped(&path, &loc, FOLDER_MAX_BYTES - self.bytes)? else {
                    return Err(
                        self.too_large(&rel, format!("more than {FOLDER_MAX_BYTES} bytes in all"))
                    );
                };
                self.bytes += b.len() as u64;
                self.files.insert(rel, b);
            } else {
                return Err(MediaError::FolderEntry {
                    location: Box::new(self.at(&rel)),
                    what: if kind.is_symlink() {
                        "a symbolic link"
                    } else {
                        "a device, FIFO or socket"
                    },
                });
            }
        }
        Ok(())
    }
}
