//! Mounting behind a trait, so everything above it runs on a host without root.

use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::MediaError;
use crate::discovery::{FsType, probe};

/// The system calls a mount needs.
pub trait Mounter: Send + Sync {
    /// Mounts `device` (file system `fs`) on `target`, creating `target` if needed. Always
    /// nosuid, nodev, noexec; read-only unless `writable`.
    fn mount(&self, device: &Path, target: &Path, fs: FsType, writable: bool) -> io::Result<()>;
    /// Flushes the file system mounted on `target` to the device (syncfs).
    fn sync(&self, target: &Path) -> io::Result<()>;
    /// Unmounts `target`.
    fn unmount(&self, target: &Path) -> io::Result<()>;
    /// Detaches `target` lazily: the last resort when dropping a mount that would not unmount.
    fn detach(&self, target: &Path) -> io::Result<()>;
    /// Flushes the file system on `target` and drops the kernel's cached copy of its files, so
    /// that the next reads come from the device itself: a read-back then checks the stick, not
    /// memory.
    fn drop_cached(&self, target: &Path) -> io::Result<()>;
}

/// The real one: mount(2), syncfs(2), umount2(2).
#[derive(Clone, Copy, Debug, Default)]
pub struct SystemMounter;

impl Mounter for SystemMounter {
    fn mount(&self, device: &Path, target: &Path, fs: FsType, writable: bool) -> io::Result<()> {
        use nix::mount::MsFlags;
        std::fs::create_dir_all(target)?;
        let mut flags = MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC;
        if !writable {
            flags |= MsFlags::MS_RDONLY;
        }
        let data = match (fs, writable) {
            // Without noload a read-only ext4 mount still replays a dirty journal, i.e. writes
            // to the stick; read-only here means nothing is written.
            (FsType::Ext4, false) => Some("noload"),
            // Write each file out as it is closed, so a stick pulled early loses less.
            (FsType::Vfat, true) => Some("flush"),
            _ => None,
        };
        nix::mount::mount(Some(device), target, Some(fs.name()), flags, data)
            .map_err(io::Error::from)
    }

    fn sync(&self, target: &Path) -> io::Result<()> {
        // syncfs reports write-back errors of this file system (Linux >= 5.8); sync(2) would not.
        let dir = std::fs::File::open(target)?;
        nix::unistd::syncfs(&dir).map_err(io::Error::from)
    }

    fn unmount(&self, target: &Path) -> io::Result<()> {
        nix::mount::umount2(target, nix::mount::MntFlags::empty()).map_err(io::Error::from)
    }

    fn detach(&self, target: &Path) -> io::Result<()> {
        nix::mount::umount2(target, nix::mount::MntFlags::MNT_DETACH).map_err(io::Error::from)
    }

    fn drop_cached(&self, target: &Path) -> io::Result<()> {
        // Only clean pages can be dropped: flush first.
        self.sync(target)?;
        // The image's kernel has no fadvise (CONFIG_ADVISE_SYSCALLS is off), so this drops the
        // clean page cache of every file system: in the image, the sticks' (files of the root,
        // /run and /tmp live only in RAM and stay). 1 = the page cache only.
        std::fs::write("/proc/sys/vm/drop_caches", b"1\n")
    }
}

/// A mounted file system; unmounted by [`Mounted::unmount`] (which reports errors) or, failing
/// that, on drop (best effort, silent: drop cannot report).
pub struct Mounted {
    mounter: Arc<dyn Mounter>,
    device: PathBuf,
    target: PathBuf,
    fs: FsType,
    writable: bool,
    done: bool,
}

impl std::fmt::Debug for Mounted {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Mounted")
            .field("device", &self.device)
            .field("target", &self.target)
            .field("fs", &self.fs)
            .field("writable", &self.writable)
            .finish()
    }
}

impl Mounted {
    /// See [`Mounter::drop_cached`].
    pub fn drop_cached(&self) -> io::Result<()> {
        self.mounter.drop_cached(&self.target)
    }

    /// Where its files are.
    pub fn path(&self) -> &Path {
        &self.target
    }

    pub fn device(&self) -> &Path {
        &self.device
    }

    pub fn fs(&self) -> FsType {
        self.fs
    }

    pub fn writable(&self) -> bool {
        self.writable
    }

    /// Syncs (if writable) and unmounts. Only after `Ok` may the operator pull the stick.
    pub fn unmount(mut self) -> Result<(), MediaError> {
        self.done = true;
        let sync = if self.writable {
            self.mounter.sync(&self.target)
        } else {
            Ok(())
        };
        // Unmount even after a failed sync: the stick is gone or faulty, and a stale mount
        // would only get in the way of the next one.
        let unmount = self.mounter.unmount(&self.target);
        let device = self.device.display().to_string();
        if let Err(source) = sync {
            if unmount.is_err() {
                let _ = self.mounter.detach(&self.target);
            }
            return Err(MediaError::Sync { device, source });
        }
        unmount.map_err(|source| {
            let _ = self.mounter.detach(&self.target);
            MediaError::Unmount {
                device,
                target: self.target.display().to_string(),
                source,
            }
        })
    }
}

impl Drop for Mounted {
    fn drop(&mut self) {
        if self.done {
            return;
        }
        if self.writable {
            let _ = self.mounter.sync(&self.target);
        }
        if self.mounter.unmount(&self.target).is_err() {
            let _ = self.mounter.detach(&self.target);
        }
    }
}

/// Mounts `device` read-only on `target`, trying vfat, exfat, ext4 and iso9660 (the type its
/// magic numbers name first).
pub fn mount_readonly(
    mounter: &Arc<dyn Mounter>,
    device: &Path,
    target: &Path,
) -> Result<Mounted, MediaError> {
    mount_first(mounter, device, target, &FsType::ALL, false)
}

/// Mounts `device` writable on `target`, trying vfat, exfat and ext4. Refuses ISO 9660 at once.
pub fn mount_writable(
    mounter: &Arc<dyn Mounter>,
    device: &Path,
    target: &Path,
) -> Result<Mounted, MediaError> {
    if let Ok(Some(fs)) = probe(device)
        && !fs.writable()
    {
        return Err(MediaError::NotWritable {
            device: device.display().to_string(),
            fs,
        });
    }
    mount_first(mounter, device, target, &FsType::WRITABLE, true)
}

fn mount_first(
    mounter: &Arc<dyn Mounter>,
    device: &Path,
    target: &Path,
    types: &[FsType],
    writable: bool,
) -> Result<Mounted, MediaError> {
    let first = probe(device).ok().flatten().filter(|fs| types.contains(fs));
    let order = first
        .into_iter()
        .chain(types.iter().copied().filter(|t| Some(*t) != first));
    let mut tried = Vec::new();
    for fs in order {
        match mounter.mount(device, target, fs, writable) {
            Ok(()) => {
                return Ok(Mounted {
                    mounter: Arc::clone(mounter),
                    device: device.to_path_buf(),
                    target: target.to_path_buf(),
                    fs,
                    writable,
                    done: false,
                });
            }
            Err(e) => tried.push(format!("{fs}: {e}")),
        }
    }
    Err(MediaError::Mount {
        device: device.display().to_string(),
        mode: if writable { "writable" } else { "read-only" },
        tried: tried.join("; "),
        supported: if writable {
            "FAT32, exFAT or ext4"
        } else {
            "FAT32, exFAT, ext4 or ISO 9660"
        },
    })
}
