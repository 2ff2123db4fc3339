//! The CPU's `RDSEED` instruction, or `RDRAND` where `RDSEED` is missing (reported as such:
//! `RDRAND` is the output of the CPU's DRBG, `RDSEED` of its conditioned entropy source).

use crate::source::{Conditioning, DeviceKey, Source, SourceError, SourceInfo, SourceKind};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Instruction {
    Rdseed,
    Rdrand,
}

pub struct CpuSource {
    info: SourceInfo,
    instruction: Instruction,
}

/// RDSEED may transiently run dry under load; Intel's guidance is to retry with a pause.
const RDSEED_TRIES: u32 = 10_000;
/// RDRAND failing 10 times in a row means the DRNG is broken (Intel DRNG guide 5.2.1).
const RDRAND_TRIES: u32 = 10;

impl CpuSource {
    /// `RDSEED` if the CPU has it, else `RDRAND`; an error if it has neither.
    pub fn open() -> Result<Self, SourceError> {
        let instruction = if has_rdseed() {
            Instruction::Rdseed
        } else if has_rdrand() {
            Instruction::Rdrand
        } else {
            return Err(SourceError::CpuUnsupported("RDSEED/RDRAND"));
        };
        Ok(Self::with(instruction, !has_rdseed()))
    }

    /// `RDRAND` even where `RDSEED` exists (for `entropy dump rdrand`).
    pub fn open_rdrand() -> Result<Self, SourceError> {
        if !has_rdrand() {
            return Err(SourceError::CpuUnsupported("RDRAND"));
        }
        Ok(Self::with(Instruction::Rdrand, !has_rdseed()))
    }

    fn with(instruction: Instruction, no_rdseed: bool) -> Self {
        let (kind, identity, basis) = match instruction {
            Instruction::Rdseed => (
                SourceKind::CpuRdseed,
                format!("{} RDSEED", cpu_name()),
                "RDSEED is specified as conditioned full-entropy output (SP 800-90B/C ENRNG)",
            ),
            Instruction::Rdrand => (
                SourceKind::CpuRdrand,
                if no_rdseed {
                    format!("{} RDRAND (no RDSEED on this CPU)", cpu_name())
                } else {
                    format!("{} RDRAND", cpu_name())
                },
                "RDRAND is the CPU's DRBG output, reseeded from its entropy source",
            ),
        };
        CpuSource {
            info: SourceInfo {
                kind,
                identity,
                device: DeviceKey::cpu(),
                conditioning: Conditioning::Whitened,
                sample_bits: 8,
                claimed_h: super::WHITENED_CLAIM,
                claim_basis: basis,
                virtual_device: None,
            },
            instruction,
        }
    }
}

fn cpu_name() -> String {
    // The model name makes the transcript say which CPU vouched for the bytes.
    std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split_once(':'))
                .map(|(_, v)| v.trim().to_string())
        })
        .unwrap_or_else(|| "x86-64 CPU".into())
}

#[cfg(target_arch = "x86_64")]
fn has_rdseed() -> bool {
    std::arch::is_x86_feature_detected!("rdseed")
}
#[cfg(target_arch = "x86_64")]
fn has_rdrand() -> bool {
    std::arch::is_x86_feature_detected!("rdrand")
}
#[cfg(not(target_arch = "x86_64"))]
fn has_rdseed() -> bool {
    false
}
#[cfg(not(target_arch = "x86_64"))]
fn has_rdrand() -> bool {
    false
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "rdseed")]
fn rdseed64(tries: u32) -> Option<u64> {
    let mut v = 0u64;
    for _ in 0..tries {
        if core::arch::x86_64::_rdseed64_step(&mut v) == 1 {
            return Some(v);
        }
        core::hint::spin_loop();
    }
    None
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "rdrand")]
fn rdrand64(tries: u32) -> Option<u64> {
    let mut v = 0u64;
    for _ in 0..tries {
        if core::arch::x86_64::_rdrand64_step(&mut v) == 1 {
            return Some(v);
        }
    }
    None
}

impl Source for CpuSource {
    fn info(&self) -> &SourceInfo {
        &self.info
    }

    #[cfg(target_arch = "x86_64")]
    fn fill(&mut self, buf: &mut [u8]) -> Result<(), SourceError> {
        for chunk in buf.chunks_mut(8) {
            let word = match self.instruction {
                Instruction::Rdseed => {
                    // SAFETY: `rdseed64` only needs the CPU to have RDSEED, and `Rdseed` is chosen
                    // only after `has_rdseed()` said it does (`open`).
                    unsafe { rdseed64(RDSEED_TRIES) }.ok_or(SourceError::CpuExhausted {
                        instruction: "RDSEED",
                        tries: RDSEED_TRIES,
                    })?
                }
                Instruction::Rdrand => {
                    // SAFETY: `rdrand64` only needs the CPU to have RDRAND, and `Rdrand` is chosen
                    // only after `has_rdrand()` said it does (`open`, `open_rdrand`).
                    unsafe { rdrand64(RDRAND_TRIES) }.ok_or(SourceError::CpuExhausted {
                        instruction: "RDRAND",
                        tries: RDRAND_TRIES,
                    })?
                }
            };
            chunk.copy_from_slice(&word.to_le_bytes()[..chunk.len()]);
        }
        Ok(())
    }

    #[cfg(not(target_arch = "x86_64"))]
    fn fill(&mut self, _buf: &mut [u8]) -> Result<(), SourceError> {
        Err(SourceError::CpuUnsupported("RDSEED/RDRAND"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::health::{Alpha, Cutoffs, HealthTester, Verdict};

    /// On this machine's CPU: the instruction chosen matches the CPU's features, and its
    /// output (odd length, so the last partial word is used too) passes the health tests.
    #[test]
    fn the_cpu_source_follows_the_cpu_features_and_passes_health_tests() {
        match CpuSource::open() {
            Ok(mut s) => {
                let want = if has_rdseed() {
                    SourceKind::CpuRdseed
                } else {
                    SourceKind::CpuRdrand
                };
                assert_eq!(s.info().kind, want);
                assert_eq!(s.info().device, DeviceKey::cpu());
                let mut buf = vec![0u8; 65_539];
                s.fill(&mut buf).unwrap();
                let c = Cutoffs::new(8.0, 8, Alpha::default()).unwrap();
                let mut t = HealthTester::new(c, 1024).unwrap();
                t.feed(&buf).unwrap();
                assert_eq!(t.verdict(), Verdict::Healthy);
            }
            Err(e) => {
                assert!(!has_rdseed() && !has_rdrand(), "{e}");
                assert!(matches!(e, SourceError::CpuUnsupported(_)));
            }
        }
    }

    #[test]
    fn rdrand_is_named_as_such() {
        if let Ok(s) = CpuSource::open_rdrand() {
            assert_eq!(s.info().kind, SourceKind::CpuRdrand);
            assert!(s.info().identity.contains("RDRAND"));
            assert_eq!(
                s.info().identity.contains("no RDSEED"),
                !has_rdseed(),
                "{}",
                s.info().identity
            );
        } else {
            assert!(!has_rdrand());
        }
    }
}
