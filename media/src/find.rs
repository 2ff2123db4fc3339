//! Finding the boot ISO and the plan on the sticks.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Read};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

use crate::discovery::{FsDevice, FsType, identify};
use crate::{Location, Media, MediaError, mount_readonly};

/// The plan's file name, at the root of the plan stick.
pub const PLAN_FILE: &str = "sherd-plan.toml";
/// Plans larger than this are refused unread.
pub const PLAN_MAX_BYTES: u64 = 1 << 20;

/// An ISO found on a stick, with its SHA-256.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IsoFound {
    pub location: Location,
    pub size_bytes: u64,
    pub sha256: [u8; 32],
}

impl IsoFound {
    /// The hash as lower-case hex, as the manifest writes it.
    pub fn sha256_hex(&self) -> String {
        self.sha256.iter().map(|b| format!("{b:02x}")).collect()
    }
}

/// Every ISO on every stick (when the boot loader did not say which one booted).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IsoScan {
    pub found: Vec<IsoFound>,
    /// What was looked at, for the screen: e.g. `sdb1 (vfat), sdc (no file system sherd reads)`.
    pub looked: String,
}

/// The plan file and where it came from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PlanFound {
    pub location: Location,
    pub text: String,
}

/// Checks a `findiso=` value (outside input: the boot loader wrote it): an absolute path of
/// plain components, no `.`/`..`, no empty component, no control characters (NUL included).
pub fn check_findiso(value: &str) -> Result<(), MediaError> {
    let bad = |reason| {
        Err(MediaError::BadFindiso {
            value: value.chars().take(200).collect(),
            reason,
        })
    };
    let Some(rest) = value.strip_prefix('/') else {
        return bad("not an absolute path");
    };
    if value.len() > 1024 {
        return bad("longer than 1024 bytes");
    }
    if value.chars().any(char::is_control) {
        return bad("contains a control character");
    }
    for c in rest.split('/') {
        if c.is_empty() {
            return bad("empty path component");
        }
        if c == "." || c == ".." {
            return bad("contains . or ..");
        }
        if c.len() > 255 {
            return bad("a component longer than 255 bytes");
        }
    }
    Ok(())
}

/// The path inside the partition that a `findiso=` value names. Current Heads passes the path
/// alone (`/sherd.iso`); some older Heads versions passed it behind the partition's device,
/// `/dev/disk/by-uuid/<uuid>/sherd.iso`. Without udev there is no such link here, so the device
/// part is dropped: the path must then still be on exactly one stick.
pub fn findiso_path(value: &str) -> &str {
    value
        .strip_prefix("/dev/disk/by-uuid/")
        .and_then(|rest| rest.find('/').map(|i| &rest[i..]))
        .unwrap_or(value)
}

/// `rel` (checked, '/'-separated) under `root` if every step is a real directory and the last a
/// regular file; `Ok(None)` if something is missing; `NotAFile` if a step is a link, a device,
/// a FIFO... (a stick must not send us elsewhere).
pub(crate) fn lookup(
    root: &Path,
    rel: &str,
    loc: &Location,
) -> Result<Option<PathBuf>, MediaError> {
    let parts: Vec<&str> = rel.split('/').filter(|c| !c.is_empty()).collect();
    let mut p = root.to_path_buf();
    for (i, c) in parts.iter().enumerate() {
        p.push(c);
        let meta = match fs::symlink_metadata(&p) {
            Ok(m) => m,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(source) => {
                return Err(MediaError::Read {
                    location: Box::new(loc.clone()),
                    done: 0,
                    source,
                });
            }
        };
        let last = i + 1 == parts.len();
        let ok = if last {
            meta.file_type().is_file()
        } else {
            meta.file_type().is_dir()
        };
        if !ok {
            return Err(MediaError::NotAFile {
                location: Box::new(loc.clone()),
            });
        }
    }
    Ok(Some(p))
}

/// Opens a file `lookup` vetted, still refusing a link in its place.
pub(crate) fn open_file(path: &Path, loc: &Location) -> Result<File, MediaError> {
    OpenOptions::new()
        .read(true)
        .custom_flags(nix::fcntl::OFlag::O_NOFOLLOW.bits())
        .open(path)
        .map_err(|source| MediaError::Read {
            location: Box::new(loc.clone()),
            done: 0,
            source,
        })
}

/// SHA-256 of `path`, streamed in 1 MiB reads; `progress(done, total)` after each.
fn hash_file(
    path: &Path,
    loc: &Location,
    progress: &mut dyn FnMut(u64, u64),
) -> Result<(u64, [u8; 32]), MediaError> {
    let mut f = open_file(path, loc)?;
    let read_err = |done, source| MediaError::Read {
        location: Box::new(loc.clone()),
        done,
        source,
    };
    let total = f.metadata().map_err(|e| read_err(0, e))?.len();
    let mut h = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    let mut done = 0u64;
    progress(0, total);
    loop {
        let n = match f.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(read_err(done, e)),
        };
        h.update(&buf[..n]);
        done += n as u64;
        progress(done, total.max(done));
    }
    Ok((done, h.finalize().into()))
}

/// Called while `dev` is mounted, so the identity read is the file system's that holds `path`.
pub(crate) fn location(dev: &FsDevice, fs: FsType, path: &str) -> Location {
    Location {
        device: dev.clone(),
        fs,
        path: path.to_string(),
        identity: identify(&dev.dev_path).ok().flatten(),
    }
}

impl Media {
    /// The ISO sherd was booted from: `findiso` is the kernel command line's `findiso=` value,
    /// a path inside a stick's partition. Every removable partition is mounted read-only; the
    /// path must be on exactly one of them; that file is hashed, with `progress(done, total)`
    /// in bytes.
    pub fn find_boot_iso(
        &self,
        findiso: &str,
        progress: &mut dyn FnMut(u64, u64),
    ) -> Result<IsoFound, MediaError> {
        // The whole value is refused if odd anywhere, even in a device part dropped below.
        check_findiso(findiso)?;
        let findiso = findiso_path(findiso);
        check_findiso(findiso)?;
        let (found, looked) = self.each_readonly(|dev, fs, root| {
            let loc = location(dev, fs, findiso);
            Ok(lookup(root, findiso, &loc)?
                .map(|_| loc)
                .into_iter()
                .collect())
        })?;
        let loc = match found.as_slice() {
            [] => {
                return Err(MediaError::IsoNotFound {
                    path: findiso.to_string(),
                    looked,
                });
            }
            [one] => one.clone(),
            _ => {
                return Err(MediaError::SeveralIsos {
                    path: findiso.to_string(),
                    found,
                });
            }
        };
        let m = mount_readonly(
            &self.mounter,
            &loc.device.dev_path,
            &self.run_root.join("scan"),
        )?;
        let r = match lookup(m.path(), findiso, &loc) {
            Ok(Some(p)) => hash_file(&p, &loc, progress),
            Ok(None) => Err(MediaError::IsoNotFound {
                path: findiso.to_string(),
                looked: format!("{} (it went away)", loc.device.name),
            }),
            Err(e) => Err(e),
        };
        let u = m.unmount();
        let (size_bytes, sha256) = r?;
        u?;
        Ok(IsoFound {
            location: loc,
            size_bytes,
            sha256,
        })
    }

    /// Without `findiso=`: every `*.iso` (any case) at the root and in `/boot` of every
    /// removable partition, each hashed; `progress(iso, done, total)`.
    pub fn scan_isos(
        &self,
        progress: &mut dyn FnMut(&Location, u64, u64),
    ) -> Result<IsoScan, MediaError> {
        let (found, looked) = self.each_readonly(|dev, fs, root| {
            let mut out = Vec::new();
            for dir in ["", "boot"] {
                let d = root.join(dir);
                // A /boot that is a link or missing is simply not looked into.
                if !fs::symlink_metadata(&d).is_ok_and(|m| m.is_dir()) {
                    continue;
                }
                let dir_loc = location(dev, fs, &format!("/{dir}"));
                let entries = fs::read_dir(&d).map_err(|source| MediaError::Read {
                    location: Box::new(dir_loc.clone()),
                    done: 0,
                    source,
                })?;
                let mut names = Vec::new();
                for e in entries {
                    let e = e.map_err(|source| MediaError::Read {
                        location: Box::new(dir_loc.clone()),
                        done: 0,
                        source,
                    })?;
                    let name = e.file_name();
                    let is_iso = name
                        .as_encoded_bytes()
                        .rsplit(|&b| b == b'.')
                        .next()
                        .is_some_and(|ext| ext.eq_ignore_ascii_case(b"iso"))
                        && name.len() > 4;
                    // Links and other non-files are left out: only real files booted.
                    if is_iso && e.file_type().is_ok_and(|t| t.is_file()) {
                        names.push(name);
                    }
                }
                names.sort();
                for name in names {
                    let shown = clean_name(name.as_encoded_bytes());
                    let path = if dir.is_empty() {
                        format!("/{shown}")
                    } else {
                        format!("/{dir}/{shown}")
                    };
                    let loc = location(dev, fs, &path);
                    let (size_bytes, sha256) =
                        hash_file(&d.join(&name), &loc, &mut |a, b| progress(&loc, a, b))?;
                    out.push(IsoFound {
                        location: loc,
                        size_bytes,
                        sha256,
                    });
                }
            }
            Ok(out)
        })?;
        Ok(IsoScan { found, looked })
    }

    /// The plan: `sherd-plan.toml` at the root of exactly one removable partition, at most
    /// [`PLAN_MAX_BYTES`], UTF-8. Mounted read-only and unmounted again.
    pub fn find_plan(&self) -> Result<PlanFound, MediaError> {
        let (found, looked) = self.each_readonly(|dev, fs, root| {
            let loc = location(dev, fs, &format!("/{PLAN_FILE}"));
            match fs::symlink_metadata(root.join(PLAN_FILE)) {
                Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(vec![]),
                _ => {}
            }
            // Read now, while it is mounted; judged once we know it is the only one.
            let text = lookup(root, PLAN_FILE, &loc).and_then(|p| {
                let p = p.ok_or_else(|| MediaError::NotAFile {
                    location: Box::new(loc.clone()),
                })?;
                read_plan(&p, &loc)
            });
            Ok(vec![(loc, text)])
        })?;
        match found.len() {
            0 => Err(MediaError::PlanNotFound { looked }),
            1 => {
                let (location, text) = found.into_iter().next().expect("one");
                Ok(PlanFound {
                    location,
                    text: text?,
                })
            }
            _ => Err(MediaError::SeveralPlans {
                found: found.into_iter().map(|(l, _)| l).collect(),
            }),
        }
    }
}

fn read_plan(path: &Path, loc: &Location) -> Result<String, MediaError> {
    let f = open_file(path, loc)?;
    let mut bytes = Vec::new();
    // One byte more than allowed tells "too large" without reading a huge file.
    f.take(PLAN_MAX_BYTES + 1)
        .read_to_end(&mut bytes)
        .map_err(|source| MediaError::Read {
            location: Box::new(loc.clone()),
            done: 0,
            source,
        })?;
    if bytes.len() as u64 > PLAN_MAX_BYTES {
        return Err(MediaError::PlanTooLarge {
            location: Box::new(loc.clone()),
            limit: PLAN_MAX_BYTES,
        });
    }
    String::from_utf8(bytes).map_err(|_| MediaError::PlanNotText {
        location: Box::new(loc.clone()),
    })
}

/// A file name from a stick, safe to show: printable ASCII, anything else as `?`.
pub(crate) fn clean_name(b: &[u8]) -> String {
    b.iter()
        .map(|&c| {
            if c.is_ascii_graphic() || c == b' ' {
                c as char
            } else {
                '?'
            }
        })
        .collect()
}
