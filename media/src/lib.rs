#![forbid(unsafe_code)]
//! Removable storage inside the sherd image: sticks found by polling sysfs (no udev), mounted
//! read-only or writable behind the [`Mounter`] trait, and the three things sherd wants from
//! them: the boot ISO (hashed for the witnesses), the plan (`sherd-plan.toml`) and data sticks
//! for the outputs (a [`ceremony::storage::Volume`]); and for a recovery ceremony, the request
//! stick and the generation folder ([`Media::find_request`], [`Media::find_folder`]). What is
//! read and written where is in `docs/media.md`.
//!
//! ```no_run
//! use sherd_media::{DataStickRules, Media};
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let media = Media::system();
//! let disks = media.disks()?; // poll every 200-500 ms while waiting for a stick
//! # let findiso = "/sherd.iso";
//! let iso = media.find_boot_iso(findiso, &mut |done, total| { /* progress bar */ })?;
//! let plan = media.find_plan()?; // plan.text -> ceremony::plan::Plan::parse
//! let rules = DataStickRules {
//!     boot: iso.location.identity.as_ref(),
//!     plan: plan.location.identity.as_ref(),
//!     boot_iso_path: Some(&iso.location.path),
//! };
//! let candidates = media.data_candidates(&rules)?; // poll; the operator picks one
//! let mut stick = media.open_data_stick(&candidates[0], &rules)?;
//! # let files = [];
//! ceremony::storage::write_all(&mut [&mut stick], "ceremony-1", &files)?;
//! stick.finish()?; // synced and unmounted: now say "you may remove the stick"
//! # Ok(())
//! # }
//! ```

mod data;
mod discovery;
mod find;
pub mod gpt;
mod mount;
mod recovery;
pub mod testing;
mod uefi;

use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::AtomicU32;

pub use data::{DataCandidate, DataStick, DataStickRules};
pub use discovery::{
    Disk, FsDevice, FsIdentity, FsType, Partition, human_size, identify, probe, scan,
};
pub use find::{
    IsoFound, IsoScan, PLAN_FILE, PLAN_MAX_BYTES, PlanFound, check_findiso, findiso_path,
};
pub use mount::{Mounted, Mounter, SystemMounter, mount_readonly, mount_writable};
pub use recovery::{
    FOLDER_MAX_BYTES, FOLDER_MAX_DEPTH, FOLDER_MAX_FILES, FolderFound, REQUEST_FILE,
    REQUEST_MAX_BYTES, RequestFound, SIGN_FILE_MAX_BYTES, SIGN_FILES_MAX_TOTAL_BYTES,
};
pub use uefi::{EFI_APP_PATH, ESP_LABEL, UefiImage, read_fat_file};

/// Where a file was found: which partition of which stick, and the path inside it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Location {
    pub device: FsDevice,
    pub fs: FsType,
    /// Absolute inside the file system, e.g. `/sherd.iso`; unprintable characters shown as `?`.
    pub path: String,
    /// The file system's identity, which outlives the kernel's name for the stick: data sticks
    /// are never the boot or plan stick by this (see [`DataStickRules`]).
    pub identity: Option<FsIdentity>,
}

impl std::fmt::Display for Location {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} on {}", self.path, self.device.describe())
    }
}

fn list(locations: &[Location]) -> String {
    locations
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join(", ")
}

/// Everything that can go wrong with sticks. Each message says what was wrong, what was left
/// as it was, and what the operator can do.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum MediaError {
    #[error(
        "findiso={value:?} on the kernel command line is refused ({reason}); nothing was read. Boot the ISO again from the boot menu"
    )]
    BadFindiso { value: String, reason: &'static str },
    #[error("cannot list the disks in {path}: {source}")]
    Sysfs { path: String, source: io::Error },
    #[error(
        "{device}: could not mount it {mode} ({tried}); nothing on it was changed. It needs a {supported} file system: use another stick"
    )]
    Mount {
        device: String,
        mode: &'static str,
        tried: String,
        supported: &'static str,
    },
    #[error(
        "{device} holds {fs}, which is read-only; nothing was written. Use a stick formatted FAT32, exFAT or ext4"
    )]
    NotWritable { device: String, fs: FsType },
    #[error(
        "{device} is the {what} stick ({identity}), which is never written; nothing was written to it. Take it out and insert a data stick"
    )]
    Protected {
        device: String,
        what: &'static str,
        identity: FsIdentity,
    },
    #[error(
        "{device} holds {path}, so it is a {what} stick, which is never written; nothing was written to it. Use a stick without it"
    )]
    HoldsProtected {
        device: String,
        path: String,
        what: &'static str,
    },
    #[error(
        "{device} is no longer the stick that was listed (it was {listed}, it is now {now}); nothing was written to it. Look again and choose"
    )]
    Changed {
        device: String,
        listed: FsIdentity,
        now: String,
    },
    #[error(
        "{device}: flushing it to the stick failed ({source}); what was written to it may be incomplete. Do not rely on this stick: write the outputs to another one"
    )]
    Sync { device: String, source: io::Error },
    #[error(
        "{device}: could not unmount {target} ({source}); it was detached instead. If outputs were written to it, do not rely on them: write them to another stick"
    )]
    Unmount {
        device: String,
        target: String,
        source: io::Error,
    },
    #[error(
        "no removable stick holds {path} (looked at: {looked}). Plug in the stick sherd was booted from and retry"
    )]
    IsoNotFound { path: String, looked: String },
    #[error(
        "{path} is on several sticks ({}), so which one booted cannot be told. Remove all but the boot stick and retry", list(.found)
    )]
    SeveralIsos { path: String, found: Vec<Location> },
    #[error(
        "no removable stick holds {PLAN_FILE} at its root (looked at: {looked}). Plug in the plan stick and retry"
    )]
    PlanNotFound { looked: String },
    #[error(
        "{PLAN_FILE} is on several sticks ({}); nothing was read. Remove all but the plan stick and retry", list(.found)
    )]
    SeveralPlans { found: Vec<Location> },
    #[error(
        "{location} is larger than {limit} bytes and was not read; a plan is a short text file: check the stick holds the right one"
    )]
    PlanTooLarge { location: Box<Location>, limit: u64 },
    #[error("{location} is not UTF-8 text and was not used; check the stick holds the right file")]
    PlanNotText { location: Box<Location> },
    #[error(
        "{location} is not a regular file (a link, folder or device) and was not read; put the real file there"
    )]
    NotAFile { location: Box<Location> },
    #[error(
        "{device} holds sherd's UEFI boot image, but {what}; nothing was changed. Is the stick still plugged in? If it is, write the image to it again"
    )]
    UefiImage { device: String, what: String },
    #[error(
        "no removable stick holds {REQUEST_FILE} at its top (looked at: {looked}). Put {REQUEST_FILE} at the top of the request stick (not in a folder), plug it in and retry"
    )]
    RequestNotFound { looked: String },
    #[error(
        "{REQUEST_FILE} is on several sticks ({}); nothing was used. Pull every stick but the request stick and retry", list(.found)
    )]
    SeveralRequests { found: Vec<Location> },
    #[error(
        "{location} is larger than {limit} bytes and was not used; a request is a short text file: check the stick holds the right one"
    )]
    RequestTooLarge { location: Box<Location>, limit: u64 },
    #[error(
        "{location} is not a folder (a file or a link) and was not read; approvals go in a real folder named approvals beside {REQUEST_FILE}: fix the request stick and retry"
    )]
    ApprovalsNotAFolder { location: Box<Location> },
    #[error(
        "{location}: {source}; no approval was used. Fix the approvals folder on the request stick and retry"
    )]
    Approvals {
        location: Box<Location>,
        source: io::Error,
    },
    #[error(
        "{location} is larger than {limit} bytes and was not read; sherd signs files of at most {limit} bytes: sign a smaller file instead (for example a list of the large files' SHA-256 sums)"
    )]
    FileTooLarge { location: Box<Location>, limit: u64 },
    #[error(
        "the files {REQUEST_FILE} names add up to more than {limit} bytes (reached at {location}); nothing was used. Split the request into several smaller ones"
    )]
    RequestFilesTooLarge { location: Box<Location>, limit: u64 },
    #[error(
        "{name:?} is not a plain name at the top of a stick ({reason}) and was not looked for; nothing was read. The request's own checks refuse such names first: report this to sherd's maintainers"
    )]
    BadName { name: String, reason: &'static str },
    #[error(
        "no removable stick holds the folder {name} at its top (looked at: {looked}). Plug in a data stick of the generation ceremony (it holds {name}/) and retry"
    )]
    FolderNotFound { name: String, looked: String },
    #[error(
        "the folder {name} is on several sticks ({}); nothing was used. Pull every stick but one holding a copy of {name} and retry", list(.found)
    )]
    SeveralFolders { name: String, found: Vec<Location> },
    #[error(
        "{location} is not a folder (a file or a link) and was not read; the generation ceremony wrote a folder there: use another copy of it"
    )]
    NotAFolder { location: Box<Location> },
    #[error(
        "{location}: the folder has {limit}, beyond what sherd reads; nothing in it was used. A generation folder holds a few dozen small files: check the stick holds the right folder"
    )]
    FolderTooLarge {
        location: Box<Location>,
        limit: String,
    },
    #[error(
        "{location} is {what}, which a folder sherd wrote never holds; nothing in the folder was used. Use another copy of the generation folder"
    )]
    FolderEntry {
        location: Box<Location>,
        what: &'static str,
    },
    #[error(
        "reading {location} failed after {done} bytes ({source}); is the stick still plugged in? Plug it back and retry"
    )]
    Read {
        location: Box<Location>,
        done: u64,
        source: io::Error,
    },
}

/// The sticks of this machine: where sysfs and the device nodes are, where to mount, and how.
pub struct Media {
    sys_root: PathBuf,
    dev_root: PathBuf,
    run_root: PathBuf,
    mounter: Arc<dyn Mounter>,
    next_data: AtomicU32,
}

impl Media {
    /// Inside the image: `/sys`, `/dev`, mounts under `/run/sherd`, real mount(2).
    pub fn system() -> Media {
        Media::new("/sys", "/dev", "/run/sherd", Arc::new(SystemMounter))
    }

    /// Elsewhere (tests): any sysfs and /dev trees, mount directory and mounter.
    pub fn new(
        sys_root: impl Into<PathBuf>,
        dev_root: impl Into<PathBuf>,
        run_root: impl Into<PathBuf>,
        mounter: Arc<dyn Mounter>,
    ) -> Media {
        Media {
            sys_root: sys_root.into(),
            dev_root: dev_root.into(),
            run_root: run_root.into(),
            mounter,
            next_data: AtomicU32::new(0),
        }
    }

    /// The current disks (poll every 200-500 ms to follow sticks coming and going).
    pub fn disks(&self) -> Result<Vec<Disk>, MediaError> {
        scan(&self.sys_root, &self.dev_root).map_err(|source| MediaError::Sysfs {
            path: self.sys_root.join("block").display().to_string(),
            source,
        })
    }

    /// Every partition (or superfloppy) of every removable or USB disk with a medium.
    pub fn removable_fs_devices(&self) -> Result<Vec<FsDevice>, MediaError> {
        Ok(self
            .disks()?
            .iter()
            .filter(|d| d.is_removable_media())
            .flat_map(Disk::fs_devices)
            .collect())
    }

    /// Mounts each removable file system read-only in turn on `<run>/scan` and calls `look` on
    /// it; returns what `look` found and, for messages, what was looked at.
    fn each_readonly<T>(
        &self,
        mut look: impl FnMut(&FsDevice, FsType, &Path) -> Result<Vec<T>, MediaError>,
    ) -> Result<(Vec<T>, String), MediaError> {
        let target = self.run_root.join("scan");
        let mut found = Vec::new();
        let mut looked = Vec::new();
        for dev in self.removable_fs_devices()? {
            let m = match mount_readonly(&self.mounter, &dev.dev_path, &target) {
                Ok(m) => m,
                Err(_) => {
                    looked.push(format!("{} (no file system sherd reads)", dev.name));
                    continue;
                }
            };
            looked.push(format!("{} ({})", dev.name, m.fs()));
            let r = look(&dev, m.fs(), m.path());
            let u = m.unmount();
            found.extend(r?);
            u?;
        }
        let looked = if looked.is_empty() {
            "no removable disk found".to_string()
        } else {
            looked.join(", ")
        };
        Ok((found, looked))
    }
}

#[cfg(test)]
mod tests;
