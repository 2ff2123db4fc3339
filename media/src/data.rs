//! Data sticks: where the ceremony's outputs are written.

use std::io;
use std::path::Path;
use std::sync::atomic::Ordering;

use ceremony::storage::{DirVolume, Volume};

use crate::discovery::{FsDevice, FsIdentity, FsType, identify};
use crate::find::PLAN_FILE;
use crate::{Media, MediaError, Mounted, mount_readonly, mount_writable};

/// Which sticks may take outputs: never the boot stick nor the plan stick, told by what is on
/// them (not by the kernel's disk name, which a stick loses when pulled and another may get).
#[derive(Clone, Copy, Debug, Default)]
pub struct DataStickRules<'a> {
    /// The file system the boot ISO was found on (`IsoFound::location.identity`).
    pub boot: Option<&'a FsIdentity>,
    /// The file system the plan came from (`PlanFound::location.identity`).
    pub plan: Option<&'a FsIdentity>,
    /// Where the boot ISO was in its file system (`IsoFound::location.path`): a stick holding a
    /// file there is taken for the boot stick (or a copy of it) and not written.
    pub boot_iso_path: Option<&'a str>,
}

impl DataStickRules<'_> {
    /// Which protected stick `id` is, if it is one. sherd's own EFI system partition (a stick
    /// the image booted from by UEFI, or a copy) is the boot stick by its label, always: FAT
    /// and writable, it would otherwise look like a data stick.
    fn protects(&self, id: &FsIdentity) -> Option<&'static str> {
        if self.boot == Some(id) || (id.fs == FsType::Vfat && id.label == crate::ESP_LABEL) {
            Some("boot")
        } else if self.plan == Some(id) {
            Some("plan")
        } else {
            None
        }
    }
}

/// A partition sherd could write outputs to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DataCandidate {
    pub device: FsDevice,
    /// What its first bytes say (vfat, exfat or ext4, serial, label): checked again right
    /// before it is mounted writable.
    pub identity: FsIdentity,
}

impl DataCandidate {
    /// What its magic numbers say (vfat, exfat or ext4).
    pub fn fs(&self) -> FsType {
        self.identity.fs
    }
}

impl Media {
    /// Partitions of removable disks holding a file system sherd writes (vfat, exfat, ext4)
    /// that is neither the boot stick's nor the plan stick's (by [`FsIdentity`], whatever the
    /// stick is called now). Reads the first 33 KiB of each; mounts nothing. Poll it like
    /// [`Media::disks`]. [`Media::open_data_stick`] also looks at what each holds.
    pub fn data_candidates(
        &self,
        rules: &DataStickRules<'_>,
    ) -> Result<Vec<DataCandidate>, MediaError> {
        let mut out = Vec::new();
        for device in self.removable_fs_devices()? {
            // Unreadable or unknown: not offered (it could not be mounted either).
            if let Ok(Some(identity)) = identify(&device.dev_path)
                && identity.fs.writable()
                && rules.protects(&identity).is_none()
            {
                out.push(DataCandidate { device, identity });
            }
        }
        Ok(out)
    }

    /// Mounts `candidate` writable on `<run>/data-<n>` (n = 1, 2, ... per call), after checking
    /// that its device still holds the file system listed, that it is not the boot or plan
    /// stick (by identity), and, mounted read-only first, that it holds neither a plan file at
    /// its root nor a file where the boot ISO was. Any of these refuses it untouched.
    pub fn open_data_stick(
        &self,
        candidate: &DataCandidate,
        rules: &DataStickRules<'_>,
    ) -> Result<DataStick, MediaError> {
        let dev = &candidate.device;
        let device = dev.describe();
        let now = identify(&dev.dev_path);
        match &now {
            Ok(Some(id)) if *id == candidate.identity => {}
            _ => {
                return Err(MediaError::Changed {
                    device,
                    listed: candidate.identity.clone(),
                    now: match now {
                        Ok(Some(id)) => id.to_string(),
                        Ok(None) => "no file system sherd knows".into(),
                        Err(e) => format!("unreadable: {e}"),
                    },
                });
            }
        }
        if let Some(what) = rules.protects(&candidate.identity) {
            return Err(MediaError::Protected {
                device,
                what,
                identity: candidate.identity.clone(),
            });
        }
        self.check_content(candidate, rules)?;
        let n = self.next_data.fetch_add(1, Ordering::Relaxed) + 1;
        let target = self.run_root.join(format!("data-{n}"));
        let mounted = mount_writable(&self.mounter, &dev.dev_path, &target)?;
        Ok(DataStick {
            volume: DirVolume::new(&target),
            label: format!("data stick {device}"),
            mounted,
        })
    }

    /// Refuses a stick that holds the plan file at its root or a file at the boot ISO's path:
    /// a plan or boot stick whose identity was not known (or a copy of one).
    fn check_content(
        &self,
        candidate: &DataCandidate,
        rules: &DataStickRules<'_>,
    ) -> Result<(), MediaError> {
        let m = mount_readonly(
            &self.mounter,
            &candidate.device.dev_path,
            &self.run_root.join("scan"),
        )?;
        // Anything there at all (a link, a folder) counts: the name is enough to refuse.
        let holds = |rel: &str| {
            std::fs::symlink_metadata(m.path().join(rel.trim_start_matches('/'))).is_ok()
        };
        let found = if holds(PLAN_FILE) {
            Some((format!("/{PLAN_FILE}"), "plan"))
        } else {
            rules
                .boot_iso_path
                .filter(|p| !p.trim_start_matches('/').is_empty() && holds(p))
                .map(|p| (p.to_owned(), "boot"))
        };
        m.unmount()?;
        match found {
            Some((path, what)) => Err(MediaError::HoldsProtected {
                device: candidate.device.describe(),
                path,
                what,
            }),
            None => Ok(()),
        }
    }
}

/// A data stick mounted writable: a [`Volume`] for `ceremony::storage::write_all`. Call
/// [`DataStick::finish`] before telling the operator to pull it; dropping it unmounts too, but
/// cannot report a failure.
pub struct DataStick {
    mounted: Mounted,
    volume: DirVolume,
    label: String,
}

impl DataStick {
    /// Where it is mounted.
    pub fn path(&self) -> &Path {
        self.mounted.path()
    }

    /// The same text as [`Volume::label`], e.g. `data stick sdc1 (SanDisk Ultra, 32.0 GB)`.
    pub fn name(&self) -> &str {
        &self.label
    }

    /// Flushes everything to the stick and unmounts it. Only after `Ok` is it safe to pull;
    /// an error (the stick was pulled or is faulty) names the stick.
    pub fn finish(self) -> Result<(), MediaError> {
        let label = self.label.clone();
        self.mounted.unmount().map_err(|e| match e {
            MediaError::Sync { source, .. } => MediaError::Sync {
                device: label,
                source,
            },
            MediaError::Unmount { target, source, .. } => MediaError::Unmount {
                device: label,
                target,
                source,
            },
            other => other,
        })
    }
}

impl Volume for DataStick {
    fn label(&self) -> String {
        self.label.clone()
    }
    fn exists(&mut self, path: &str) -> io::Result<bool> {
        self.volume.exists(path)
    }
    fn create_dirs(&mut self, path: &str) -> io::Result<()> {
        self.volume.create_dirs(path)
    }
    fn write_new_synced(&mut self, path: &str, bytes: &[u8]) -> io::Result<()> {
        self.volume.write_new_synced(path, bytes)
    }
    fn rename(&mut self, from: &str, to: &str) -> io::Result<()> {
        self.volume.rename(from, to)
    }
    fn sync_dir(&mut self, path: &str) -> io::Result<()> {
        self.volume.sync_dir(path)
    }
    fn read(&mut self, path: &str) -> io::Result<Vec<u8>> {
        // `write_all` reads each file back to check the stick: from the stick, not from memory.
        self.mounted.drop_cached()?;
        self.volume.read(path)
    }
    fn remove(&mut self, path: &str) -> io::Result<()> {
        self.volume.remove(path)
    }
}
