//! Linux `/dev/hwrng`: whichever hardware RNG the kernel currently selects
//! (`/sys/class/misc/hw_random/rng_current`: `virtio_rng.0`, `tpm-rng-0`, `intel-rng`, ...).

use std::fs::File;
use std::path::{Path, PathBuf};

use crate::source::{Conditioning, DeviceKey, Source, SourceError, SourceInfo, SourceKind};

pub struct HwrngSource {
    file: File,
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
        let file = File::open(dev).map_err(|e| SourceError::Open {
            path: dev.to_path_buf(),
            source: e,
        })?;
        Ok(HwrngSource {
            file,
            info: SourceInfo {
                kind: SourceKind::Hwrng,
                identity: format!("{} ({current})", dev.display()),
                device: device_key_for(&current),
                conditioning: Conditioning::Whitened,
                sample_bits: 8,
                claimed_h: super::WHITENED_CLAIM,
                claim_basis: "hwrng drivers deliver their device's conditioned output",
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

    /// The kernel's name of the current device (`rng_current`).
    pub fn current(&self) -> &str {
        &self.current
    }
}

/// The TPM registers itself as `tpm-rng-<chip>` (older kernels: `tpm-rng`, chip 0): that is the
/// same generator as `TPM2_GetRandom` on `/dev/tpmrm<chip>`, so it gets the TPM's key.
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
        super::read_full(&mut self.file, buf, &self.info.identity)
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
    fn no_selected_rng_is_refused_with_a_hint() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("rng_current"), "none\n").unwrap();
        let err = HwrngSource::open(&dir.path().join("hwrng"), dir.path())
            .err()
            .unwrap();
        assert!(err.to_string().contains("virtio-rng-pci"), "{err}");
    }
}
