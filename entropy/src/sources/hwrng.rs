//! Linux `/dev/hwrng`: whichever hardware RNG the kernel currently selects
//! (`/sys/class/misc/hw_random/rng_current`: `virtio_rng.0`, `tpm-rng-0`, `intel-rng`, ...).

use std::fs::File;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use crate::source::{Conditioning, DeviceKey, Source, SourceError, SourceInfo, SourceKind};

pub struct HwrngSource {
    file: File,
    stall: std::time::Duration,
    info: SourceInfo,
    current: String,
}

impl HwrngSource {
    /// Opens `dev` (normally `/dev/hwrng`), naming the device from `sysfs_dir/rng_current`
    /// (normally `/sys/class/misc/hw_random`).
    pub fn open(dev: &Path, sysfs_dir: &Path) -> Result<Self, SourceError> {
        let current_path = sysfs_dir.join("rng_current");
        let current = std::fs::read_to_string(&current_path)
            .map_err(|e| SourceError::Open {
                path: current_path.clone(),
                source: e,
            })?
            .trim()
            .to_string();
        if current.is_empty() || current == "none" {
            return Err(SourceError::Other(format!(
                "{} says no hardware RNG is selected ({:?}); the kernel has no hwrng driver \
                 bound (for QEMU add -device virtio-rng-pci)",
                current_path.display(),
                current
            )));
        }
        // Non-blocking, so that a device that stops delivering fails after STALL_LIMIT
        // instead of hanging the ceremony in read(2).
        let file = std::fs::OpenOptions::new()
            .read(true)
            .custom_flags(nix::fcntl::OFlag::O_NONBLOCK.bits())
            .open(dev)
            .map_err(|e| SourceError::Open {
                path: dev.to_path_buf(),
                source: e,
            })?;
        Ok(HwrngSource {
            file,
            stall: super::STALL_LIMIT,
            info: SourceInfo {
                kind: SourceKind::Hwrng,
                identity: format!("{} ({current})", dev.display()),
                device: device_key_for(&current),
                conditioning: Conditioning::Whitened,
                sample_bits: 8,
                claimed_h: super::WHITENED_CLAIM,
                claim_basis: "hwrng drivers deliver their device's conditioned output",
                virtual_device: virtual_hwrng(&current),
            },
            current,
        })
    }

    /// The default paths.
    pub fn open_default() -> Result<Self, SourceError> {
        Self::open(
            Path::new("/dev/hwrng"),
            &PathBuf::from("/sys/class/misc/hw_random"),
        )
    }

    /// Changes how long the device may deliver nothing before `fill` fails.
    pub fn set_stall_limit(&mut self, limit: std::time::Duration) {
        self.stall = limit;
    }

    /// The kernel's name of the current device (`rng_current`).
    pub fn current(&self) -> &str {
        &self.current
    }
}

/// The devices the kernel offers (`rng_available`, space-separated).
pub fn available(sysfs_dir: &Path) -> Result<Vec<String>, SourceError> {
    let path = sysfs_dir.join("rng_available");
    let s = std::fs::read_to_string(&path).map_err(|e| SourceError::Open { path, source: e })?;
    Ok(s.split_whitespace()
        .filter(|n| *n != "none")
        .map(str::to_string)
        .collect())
}

/// The device `/dev/hwrng` serves now (`rng_current`).
pub fn current(sysfs_dir: &Path) -> Result<String, SourceError> {
    let path = sysfs_dir.join("rng_current");
    let s = std::fs::read_to_string(&path).map_err(|e| SourceError::Open { path, source: e })?;
    Ok(s.trim().to_string())
}

/// Makes `name` the device `/dev/hwrng` serves (writes `rng_current`; needs root).
pub fn select(sysfs_dir: &Path, name: &str) -> Result<(), SourceError> {
    let path = sysfs_dir.join("rng_current");
    std::fs::write(&path, name).map_err(|e| SourceError::Io {
        what: format!("selecting hwrng {name} in {}", path.display()),
        source: e,
    })
}

/// When `/dev/hwrng` serves the TPM (`tpm-rng-*`) and the TPM is already a source of its
/// own, the hwrng adds no independent device; if the kernel offers another one (virtio_rng,
/// intel-rng, ...), select it. Returns the device switched to, if any.
pub fn prefer_non_tpm(sysfs_dir: &Path) -> Result<Option<String>, SourceError> {
    let cur = current(sysfs_dir)?;
    if !cur.starts_with("tpm-rng") {
        return Ok(None);
    }
    let Some(other) = available(sysfs_dir)?
        .into_iter()
        .find(|n| !n.starts_with("tpm-rng"))
    else {
        return Ok(None);
    };
    select(sysfs_dir, &other)?;
    let now = current(sysfs_dir)?;
    if now != other {
        return Err(SourceError::Other(format!(
            "asked the kernel to serve hwrng {other} instead of {cur}, but rng_current is {now}"
        )));
    }
    Ok(Some(other))
}

/// The TPM registers itself as `tpm-rng-<chip>` (older kernels: `tpm-rng`, chip 0): that is the
/// same generator as `TPM2_GetRandom` on `/dev/tpmrm<chip>`, so it gets the TPM's key.
/// Why an hwrng device is virtual: virtio-rng hands the guest whatever the host feeds it.
pub fn virtual_hwrng(current: &str) -> Option<String> {
    current
        .starts_with("virtio_rng")
        .then(|| "virtio-rng, the hypervisor's randomness".to_string())
}

pub fn device_key_for(current: &str) -> DeviceKey {
    if current == "tpm-rng" {
        return DeviceKey::tpm_chip(0);
    }
    if let Some(n) = current.strip_prefix("tpm-rng-")
        && let Ok(n) = n.parse::<u32>()
    {
        return DeviceKey::tpm_chip(n);
    }
    DeviceKey(format!("hwrng:{current}"))
}

impl Source for HwrngSource {
    fn info(&self) -> &SourceInfo {
        &self.info
    }

    fn fill(&mut self, buf: &mut [u8]) -> Result<(), SourceError> {
        super::read_full(
            &mut self.file,
            buf,
            &self.info.identity,
            super::ZeroRead::Eof,
            self.stall,
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tpm_rng_maps_to_the_tpm_chip() {
        assert_eq!(device_key_for("tpm-rng-0"), DeviceKey::tpm_chip(0));
        assert_eq!(device_key_for("tpm-rng-1"), DeviceKey::tpm_chip(1));
        assert_eq!(device_key_for("tpm-rng"), DeviceKey::tpm_chip(0));
        assert_eq!(
            device_key_for("virtio_rng.0"),
            DeviceKey("hwrng:virtio_rng.0".into())
        );
        assert_eq!(
            device_key_for("tpm-rng-x"),
            DeviceKey("hwrng:tpm-rng-x".into())
        );
    }

    #[test]
    fn reads_the_device_and_names_the_current_rng() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("rng_current"), "tpm-rng-0\n").unwrap();
        let dev = dir.path().join("hwrng");
        std::fs::write(&dev, (0u8..100).collect::<Vec<_>>()).unwrap();
        let mut s = HwrngSource::open(&dev, dir.path()).unwrap();
        assert_eq!(s.current(), "tpm-rng-0");
        assert_eq!(s.info().device, DeviceKey::tpm_chip(0));
        assert!(s.info().identity.contains("tpm-rng-0"));
        let mut buf = [0u8; 60];
        s.fill(&mut buf).unwrap();
        assert_eq!(buf[59], 59);
        // Only 40 bytes left: a short device is an error, never padded.
        let err = s.fill(&mut buf).unwrap_err();
        assert!(
            matches!(err, SourceError::ShortRead { got: 40, .. }),
            "{err}"
        );
    }

    #[test]
    fn a_tpm_hwrng_is_swapped_for_another_device_when_there_is_one() {
        let dir = tempfile::tempdir().unwrap();
        let cur = dir.path().join("rng_current");
        let avail = dir.path().join("rng_available");
        std::fs::write(&cur, "tpm-rng-0\n").unwrap();
        std::fs::write(&avail, "tpm-rng-0 virtio_rng.0\n").unwrap();
        assert_eq!(
            prefer_non_tpm(dir.path()).unwrap().as_deref(),
            Some("virtio_rng.0")
        );
        assert_eq!(current(dir.path()).unwrap(), "virtio_rng.0");
        // Already not the TPM: nothing to do.
        assert_eq!(prefer_non_tpm(dir.path()).unwrap(), None);
        // Only the TPM on offer: left alone (it will count as the TPM).
        std::fs::write(&cur, "tpm-rng-0\n").unwrap();
        std::fs::write(&avail, "tpm-rng-0\n").unwrap();
        assert_eq!(prefer_non_tpm(dir.path()).unwrap(), None);
        assert_eq!(current(dir.path()).unwrap(), "tpm-rng-0");
    }

    #[test]
    fn a_device_that_stops_delivering_fails_instead_of_hanging() {
        // A FIFO with a writer that never writes: non-blocking reads get EAGAIN forever.
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("rng_current"), "virtio_rng.0\n").unwrap();
        let fifo = dir.path().join("hwrng");
        nix::unistd::mkfifo(&fifo, nix::sys::stat::Mode::from_bits_truncate(0o600)).unwrap();
        let mut s = HwrngSource::open(&fifo, dir.path()).unwrap();
        let _writer = std::fs::OpenOptions::new().write(true).open(&fifo).unwrap();
        s.set_stall_limit(std::time::Duration::from_millis(200));
        let start = std::time::Instant::now();
        let err = s.fill(&mut [0u8; 8]).unwrap_err();
        assert!(matches!(err, SourceError::Stalled { got: 0, .. }), "{err}");
        assert!(start.elapsed() >= std::time::Duration::from_millis(200));
    }

    #[test]
    fn no_selected_rng_is_refused_with_a_hint() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("rng_current"), "none\n").unwrap();
        let err = HwrngSource::open(&dir.path().join("hwrng"), dir.path())
            .err()
            .unwrap();
        assert!(err.to_string().contains("virtio-rng-pci"), "{err}");
    }
}
