//! Test doubles: sources with scripted behaviour. They live only in tests; `discover()` can
//! never return them.
#![allow(dead_code)]

use entropy::{Conditioning, DeviceKey, Source, SourceError, SourceInfo, SourceKind};
use rand_chacha::ChaCha20Rng;
use rand_core::{Rng, SeedableRng};

/// What the double does with each byte position.
#[derive(Clone, Copy, Debug)]
pub enum Behaviour {
    /// ChaCha20 output from this seed: a good source.
    Good(u8),
    /// Good until byte `n`, then constant `value` (a source that gets stuck).
    StuckAfter { seed: u8, n: usize, value: u8 },
    /// Every other byte is 0x42, the others good: no runs, but heavily biased.
    Biased(u8),
    /// Good until byte `n`, then an I/O error (a device unplugged).
    IoErrorAfter { seed: u8, n: usize },
    /// The same byte forever (as 1-bit samples, 0x55 alternates and passes RCT and APT).
    Constant(u8),
}

pub struct Double {
    info: SourceInfo,
    behaviour: Behaviour,
    rng: ChaCha20Rng,
    pos: usize,
}

pub fn double(kind: SourceKind, device: &str, behaviour: Behaviour) -> Double {
    let seed = match behaviour {
        Behaviour::Good(s)
        | Behaviour::StuckAfter { seed: s, .. }
        | Behaviour::Biased(s)
        | Behaviour::IoErrorAfter { seed: s, .. }
        | Behaviour::Constant(s) => s,
    };
    Double {
        info: SourceInfo {
            kind,
            identity: format!("test double {device}"),
            device: DeviceKey(device.into()),
            conditioning: Conditioning::Whitened,
            sample_bits: 8,
            claimed_h: 8.0,
            claim_basis: "test double",
            virtual_device: None,
        },
        behaviour,
        rng: ChaCha20Rng::from_seed([seed; 32]),
        pos: 0,
    }
}

impl Double {
    pub fn with_claim(mut self, h: f64) -> Self {
        self.info.claimed_h = h;
        self
    }
    pub fn with_device(mut self, d: DeviceKey) -> Self {
        self.info.device = d;
        self
    }
    /// Raw noise of `sample_bits` per sample, claimed at `h`.
    pub fn raw(mut self, sample_bits: u32, h: f64) -> Self {
        self.info.conditioning = Conditioning::Raw;
        self.info.sample_bits = sample_bits;
        self.info.claimed_h = h;
        self
    }
    /// The device says it is virtual.
    pub fn virtual_device(mut self, why: &str) -> Self {
        self.info.virtual_device = Some(why.into());
        self
    }
    pub fn boxed(self) -> Box<dyn Source> {
        Box::new(self)
    }
}

impl Source for Double {
    fn info(&self) -> &SourceInfo {
        &self.info
    }

    fn fill(&mut self, buf: &mut [u8]) -> Result<(), SourceError> {
        for b in buf.iter_mut() {
            let good = (self.rng.next_u32() & 0xff) as u8;
            *b = match self.behaviour {
                Behaviour::Good(_) => good,
                Behaviour::Constant(v) => v,
                Behaviour::StuckAfter { n, value, .. } => {
                    if self.pos >= n {
                        value
                    } else {
                        good
                    }
                }
                Behaviour::Biased(_) => {
                    if self.pos.is_multiple_of(2) {
                        0x42
                    } else if good == 0x42 {
                        0x43
                    } else {
                        good
                    }
                }
                Behaviour::IoErrorAfter { n, .. } => {
                    if self.pos >= n {
                        return Err(SourceError::Io {
                            what: self.info.identity.clone(),
                            source: std::io::Error::other("device unplugged"),
                        });
                    }
                    good
                }
            };
            self.pos += 1;
        }
        Ok(())
    }
}

pub fn hw(device: &str, seed: u8) -> Box<dyn Source> {
    double(SourceKind::Hwrng, device, Behaviour::Good(seed)).boxed()
}

pub fn os(seed: u8) -> Box<dyn Source> {
    double(SourceKind::OsCsprng, "os-csprng", Behaviour::Good(seed)).boxed()
}

/// `entropy::gather` on a machine that does not report a hypervisor.
pub fn gather(
    sources: &mut [Box<dyn Source>],
    policy: &entropy::Policy,
) -> Result<(entropy::Drbg, entropy::Report), entropy::Error> {
    entropy::gather(sources, policy, &entropy::Machine::default())
}

pub fn drbg_bytes(d: &mut entropy::Drbg) -> [u8; 64] {
    let mut out = [0u8; 64];
    d.fill(&mut out);
    out
}
