//! Data sticks: where the ceremony's outputs are written.

use std::io;
use std::path::Path;
use std::sync::atomic::Ordering;

use ceremony::storage::{DirVolume, Volume};

use crate::discovery::{FsDevice, FsType, probe};
use crate::{Media, MediaError, Mounted, mount_writable};

/// Which sticks may take outputs.
#[derive(Clone, Copy, Debug, Default)]
pub struct DataStickRules<'a> {
    /// The disk the boot ISO was found on (`IsoFound::location.device.disk`): never written to.
    pub boot_disk: Option<&'a str>,
    /// The disk the plan came from (`PlanFound::location.device.disk`).
    pub plan_disk: Option<&'a str>,
    /// The operator chose to write the outputs to the plan stick too.
    pub plan_stick_for_data: bool,
}

/// A partition sherd could write outputs to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DataCandidate {
    pub device: FsDevice,
    /// What its magic numbers say (vfat, exfat or ext4).
    pub fs: FsType,
    /// It is on the plan stick (only listed when the rules allow that).
    pub plan_stick: bool,
}

impl Media {
    /// Partitions of removable disks holding a file system sherd writes (vfat, exfat, ext4), not
    /// on the boot stick, and not on the plan stick unless `rules.plan_stick_for_data`. Reads
    /// the first 32 KiB of each to tell the file system; mounts nothing. Poll it like
    /// [`Media::disks`].
    pub fn data_candidates(
        &self,
        rules: &DataStickRules<'_>,
    ) -> Result<Vec<DataCandidate>, MediaError> {
        let mut out = Vec::new();
        for device in self.removable_fs_devices()? {
            if rules.boot_disk == Some(device.disk.as_str()) {
                continue;
            }
            let plan_stick = rules.plan_disk == Some(device.disk.as_str());
            if plan_stick && !rules.plan_stick_for_data {
                continue;
            }
            // Unreadable or unknown: not offered (it could not be mounted either).
            if let Ok(Some(fs)) = probe(&device.dev_path)
                && fs.writable()
            {
                out.push(DataCandidate {
                    device,
                    fs,
                    plan_stick,
                });
            }
        }
        Ok(out)
    }

    /// Mounts `candidate` writable on `<run>/data-<n>` (n = 1, 2, ... per call).
    pub fn open_data_stick(&self, candidate: &DataCandidate) -> Result<DataStick, MediaError> {
        let n = self.next_data.fetch_add(1, Ordering::Relaxed) + 1;
        let target = self.run_root.join(format!("data-{n}"));
        let mounted = mount_writable(&self.mounter, &candidate.device.dev_path, &target)?;
        Ok(DataStick {
            volume: DirVolume::new(&target),
            label: format!("data stick {}", candidate.device.describe()),
            mounted,
        })
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
