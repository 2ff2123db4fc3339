//! The kernel CSPRNG through `getrandom(2)`. An OS source: always mixed in, never counted as
//! one of the hardware sources.

use crate::source::{Conditioning, DeviceKey, Source, SourceError, SourceInfo, SourceKind};

pub struct OsCsprng {
    info: SourceInfo,
}

impl OsCsprng {
    pub fn new() -> Self {
        OsCsprng {
            info: SourceInfo {
                kind: SourceKind::OsCsprng,
                identity: "getrandom(2) (kernel CSPRNG)".into(),
                device: DeviceKey("os-csprng".into()),
                conditioning: Conditioning::Whitened,
                sample_bits: 8,
                claimed_h: super::WHITENED_CLAIM,
                claim_basis: "ChaCha20 CSPRNG output; getrandom blocks until the pool is seeded",
                virtual_device: None,
            },
        }
    }
}

impl Default for OsCsprng {
    fn default() -> Self {
        Self::new()
    }
}

impl Source for OsCsprng {
    fn info(&self) -> &SourceInfo {
        &self.info
    }

    fn fill(&mut self, buf: &mut [u8]) -> Result<(), SourceError> {
        getrandom::fill(buf).map_err(SourceError::Os)
    }
}
