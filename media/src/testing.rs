//! Doubles for tests on a host without root or sticks (here and in the screens' tests): a fake
//! machine (sysfs and /dev trees in a directory) and a [`FakeMounter`] that "mounts" a device by
//! making the mount point a link to a directory of files and records every call.

use std::collections::HashMap;
use std::fs;
use std::io;
use std::os::unix::fs::symlink;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use crate::discovery::FsType;
use crate::{Media, Mounter};

/// One call a [`FakeMounter`] received.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Call {
    Mount {
        device: PathBuf,
        target: PathBuf,
        fs: FsType,
        writable: bool,
    },
    Sync(PathBuf),
    Unmount(PathBuf),
    Detach(PathBuf),
    DropCached(PathBuf),
}

#[derive(Default)]
struct State {
    media: HashMap<PathBuf, (FsType, PathBuf)>,
    calls: Vec<Call>,
    fail_sync: bool,
    fail_unmount: bool,
}

/// A mounter that needs no root: see the module comment.
#[derive(Default)]
pub struct FakeMounter {
    state: Mutex<State>,
}

impl FakeMounter {
    pub fn new() -> Arc<FakeMounter> {
        Arc::new(FakeMounter::default())
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// `device` mounts as `fs` and shows the files of `contents`.
    pub fn insert(&self, device: &Path, fs: FsType, contents: &Path) {
        self.state()
            .media
            .insert(device.to_path_buf(), (fs, contents.to_path_buf()));
    }

    /// Every call so far, in order.
    pub fn calls(&self) -> Vec<Call> {
        self.state().calls.clone()
    }

    /// Makes sync fail with EIO (a stick pulled while writing).
    pub fn fail_sync(&self, on: bool) {
        self.state().fail_sync = on;
    }

    /// Makes unmount fail with EBUSY.
    pub fn fail_unmount(&self, on: bool) {
        self.state().fail_unmount = on;
    }
}

fn errno(e: nix::errno::Errno) -> io::Error {
    io::Error::from(e)
}

impl Mounter for FakeMounter {
    fn mount(&self, device: &Path, target: &Path, fs: FsType, writable: bool) -> io::Result<()> {
        let mut st = self.state();
        st.calls.push(Call::Mount {
            device: device.to_path_buf(),
            target: target.to_path_buf(),
            fs,
            writable,
        });
        let (real_fs, contents) = st
            .media
            .get(device)
            .cloned()
            .ok_or_else(|| errno(nix::errno::Errno::ENXIO))?;
        if real_fs != fs {
            return Err(errno(nix::errno::Errno::EINVAL));
        }
        if fs::symlink_metadata(target).is_ok_and(|m| m.file_type().is_symlink()) {
            return Err(errno(nix::errno::Errno::EBUSY));
        }
        if let Some(parent) = target.parent() {
            fs::create_dir_all(parent)?;
        }
        if target.is_dir() {
            fs::remove_dir(target)?;
        }
        symlink(contents, target)
    }

    fn sync(&self, target: &Path) -> io::Result<()> {
        let mut st = self.state();
        st.calls.push(Call::Sync(target.to_path_buf()));
        if st.fail_sync {
            return Err(errno(nix::errno::Errno::EIO));
        }
        Ok(())
    }

    fn unmount(&self, target: &Path) -> io::Result<()> {
        let mut st = self.state();
        st.calls.push(Call::Unmount(target.to_path_buf()));
        if st.fail_unmount {
            return Err(errno(nix::errno::Errno::EBUSY));
        }
        if !fs::symlink_metadata(target).is_ok_and(|m| m.file_type().is_symlink()) {
            return Err(errno(nix::errno::Errno::EINVAL));
        }
        fs::remove_file(target)
    }

    fn drop_cached(&self, target: &Path) -> io::Result<()> {
        self.state()
            .calls
            .push(Call::DropCached(target.to_path_buf()));
        Ok(())
    }

    fn detach(&self, target: &Path) -> io::Result<()> {
        self.state().calls.push(Call::Detach(target.to_path_buf()));
        if fs::symlink_metadata(target).is_ok_and(|m| m.file_type().is_symlink()) {
            fs::remove_file(target)?;
        }
        Ok(())
    }
}

/// How a fake disk is attached.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Bus {
    Usb,
    Nvme,
    /// loop, ram, zram: under /sys/devices/virtual.
    Virtual,
}

/// A disk to put into a [`FakeMachine`].
#[derive(Clone, Debug)]
pub struct FakeDisk<'a> {
    pub name: &'a str,
    pub bus: Bus,
    pub removable: bool,
    pub size_bytes: u64,
    pub vendor: &'a str,
    pub model: &'a str,
    /// Partition names and sizes; empty for a superfloppy.
    pub partitions: &'a [(&'a str, u64)],
}

/// sysfs, /dev, the mount directory and the sticks' contents under one directory.
pub struct FakeMachine {
    pub sys: PathBuf,
    pub dev: PathBuf,
    pub run: PathBuf,
    content: PathBuf,
}

impl FakeMachine {
    pub fn new(root: &Path) -> io::Result<FakeMachine> {
        let m = FakeMachine {
            sys: root.join("sys"),
            dev: root.join("dev"),
            run: root.join("run/sherd"),
            content: root.join("content"),
        };
        fs::create_dir_all(m.sys.join("block"))?;
        fs::create_dir_all(&m.dev)?;
        fs::create_dir_all(&m.content)?;
        Ok(m)
    }

    /// A [`Media`] over this machine.
    pub fn media(&self, mounter: Arc<dyn Mounter>) -> Media {
        Media::new(&self.sys, &self.dev, &self.run, mounter)
    }

    /// Plugs in `d`: its sysfs directory (reached through a link from `/sys/block`, as in the
    /// kernel) and empty device nodes.
    pub fn add_disk(&self, d: &FakeDisk<'_>) -> io::Result<()> {
        let parent = match d.bus {
            Bus::Usb => format!(
                "devices/pci0000:00/0000:00:14.0/usb1/1-1/1-1:1.0/host6/target6:0:0/6:0:0:{}",
                d.name
            ),
            Bus::Nvme => format!("devices/pci0000:00/0000:00:1d.0/nvme/{}", d.name),
            Bus::Virtual => format!("devices/virtual/{}", d.name),
        };
        let parent_dir = self.sys.join(&parent);
        let dir = parent_dir.join("block").join(d.name);
        fs::create_dir_all(&dir)?;
        fs::write(parent_dir.join("vendor"), format!("{:<8}\n", d.vendor))?;
        fs::write(parent_dir.join("model"), format!("{:<16}\n", d.model))?;
        symlink("../..", dir.join("device"))?;
        fs::write(
            dir.join("removable"),
            if d.removable { "1\n" } else { "0\n" },
        )?;
        fs::write(dir.join("size"), format!("{}\n", d.size_bytes / 512))?;
        fs::write(self.dev.join(d.name), b"")?;
        for (i, (p, size)) in d.partitions.iter().enumerate() {
            let pd = dir.join(p);
            fs::create_dir_all(&pd)?;
            fs::write(pd.join("partition"), format!("{}\n", i + 1))?;
            fs::write(pd.join("size"), format!("{}\n", size / 512))?;
            fs::write(self.dev.join(p), b"")?;
        }
        symlink(
            Path::new("..").join(&parent).join("block").join(d.name),
            self.sys.join("block").join(d.name),
        )
    }

    /// Unplugs disk `name` (its sysfs entries go; the node stays, as a stale one might). A disk
    /// of the same name may be added again, as the kernel reuses names.
    pub fn remove_disk(&self, name: &str) -> io::Result<()> {
        let link = self.sys.join("block").join(name);
        let dir = link.canonicalize()?;
        fs::remove_file(link)?;
        fs::remove_dir_all(dir)
    }

    /// The directory a [`FakeMachine::format`]ted device shows when mounted.
    pub fn content_dir(&self, dev_name: &str) -> PathBuf {
        self.content.join(dev_name)
    }

    /// Formats device `dev_name` (a partition or superfloppy) with `fs`: writes its magic numbers
    /// into the device node and tells `mounter` to show a directory for it, which is returned
    /// for the test to fill.
    /// Its serial number is made from `dev_name`, so each formatted device has its own
    /// [`crate::FsIdentity`].
    pub fn format(&self, mounter: &FakeMounter, dev_name: &str, fs: FsType) -> io::Result<PathBuf> {
        // FNV-1a: any stable, name-dependent value will do.
        let serial = dev_name.bytes().fold(0x811c_9dc5u32, |h, b| {
            (h ^ u32::from(b)).wrapping_mul(0x0100_0193)
        });
        self.format_as(mounter, dev_name, fs, serial)
    }

    /// [`FakeMachine::format`] with the given serial number: the same file system seen again
    /// under another name (a stick pulled and plugged in again), or a block-by-block copy.
    pub fn format_as(
        &self,
        mounter: &FakeMounter,
        dev_name: &str,
        fs: FsType,
        serial: u32,
    ) -> io::Result<PathBuf> {
        let node = self.dev.join(dev_name);
        fs::write(&node, fs_image_with(fs, serial))?;
        let contents = self.content.join(dev_name);
        fs::create_dir_all(&contents)?;
        mounter.insert(&node, fs, &contents);
        Ok(contents)
    }
}

/// [`fs_image`] with a serial number (and for ISO 9660 a creation date) made from `serial`,
/// and the label `SHERD`, where each file system keeps them.
pub fn fs_image_with(fs: FsType, serial: u32) -> Vec<u8> {
    let mut b = fs_image(fs);
    let id = serial.to_le_bytes();
    let mut put = |off: usize, m: &[u8]| b[off..off + m.len()].copy_from_slice(m);
    match fs {
        FsType::Vfat => {
            put(0x43, &id);
            put(0x47, b"SHERD      ");
        }
        FsType::Exfat => put(100, &id),
        FsType::Ext4 => {
            put(1024 + 0x68, &id);
            put(1024 + 0x78, b"SHERD");
        }
        FsType::Iso9660 => {
            put(32 * 1024 + 40, b"SHERD");
            put(32 * 1024 + 813, format!("{serial:017}").as_bytes());
        }
    }
    b
}

/// The first 36 KiB of a file system of type `fs`: just its magic numbers.
pub fn fs_image(fs: FsType) -> Vec<u8> {
    let mut b = vec![0u8; 36 * 1024];
    let mut put = |off: usize, m: &[u8]| b[off..off + m.len()].copy_from_slice(m);
    match fs {
        FsType::Vfat => {
            put(0x52, b"FAT32   ");
            put(510, &[0x55, 0xaa]);
        }
        FsType::Exfat => put(3, b"EXFAT   "),
        FsType::Ext4 => put(1024 + 56, &[0x53, 0xef]),
        FsType::Iso9660 => put(32 * 1024 + 1, b"CD001"),
    }
    b
}
