//! SP 800-90B non-IID min-entropy estimates for a source that gives raw noise: the
//! most-common-value (6.3.1), collision (6.3.2) and Markov (6.3.3) estimators, combined as
//! section 3.1.3 combines them for non-binary samples.
//!
//! Only raw noise is assessed. On conditioned (whitened) output these estimators measure the
//! conditioner, not the noise beneath it, so [`crate::gather`] never credits a whitened source
//! by them (see [`crate::gather::Assessment`]).
//!
//! The estimators are three of SP 800-90B's ten; NIST's `ea_non_iid` runs all ten and takes the
//! minimum, so its result can be lower than ours. What these three catch: a biased value
//! distribution (MCV), a bias in the bit string (collision), and dependence between
//! consecutive bits (Markov, over runs of 128 bits).

/// Samples a raw source must give before it is assessed: SP 800-90B 3.1.1 asks for at least
/// 1,000,000 consecutive samples for an entropy estimate; the 99% confidence bounds the
/// estimators use are tight only at that size (at 1,280 samples the MCV estimate of a perfect
/// 8-bit source is about 6 bits, at 1,000,000 about 7.9).
pub const ASSESSMENT_SAMPLES: usize = 1_000_000;

/// The normal quantile of the estimators' 99% confidence bounds (90B writes 2.576; NIST's
/// `ea_non_iid` uses this exact value, and so do we, to agree with it to the last digit).
const Z_99: f64 = 2.575_829_303_548_901;

/// The estimates for one run of raw samples, in bits per sample unless said otherwise.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Estimates {
    /// Samples assessed.
    pub samples: u64,
    /// Bits per sample (1 or 8).
    pub sample_bits: u32,
    /// MCV estimate over the samples as given (H_original for 8-bit samples).
    pub mcv: f64,
    /// MCV estimate over the bit string, per bit.
    pub bit_mcv: f64,
    /// Collision estimate over the bit string, per bit.
    pub bit_collision: f64,
    /// Markov estimate over the bit string, per bit.
    pub bit_markov: f64,
}

impl Estimates {
    /// Min-entropy per bit of the bit string: the least of the three bit estimates.
    pub fn per_bit(&self) -> f64 {
        self.bit_mcv.min(self.bit_collision).min(self.bit_markov)
    }

    /// The assessed min-entropy per sample: `min(H_original, sample_bits x H_bitstring)`
    /// (SP 800-90B 3.1.3); for 1-bit samples the bit estimates alone.
    pub fn per_sample(&self) -> f64 {
        let bits = f64::from(self.sample_bits) * self.per_bit();
        if self.sample_bits == 1 {
            bits
        } else {
            self.mcv.min(bits)
        }
    }
}

/// Estimates the min-entropy of `bytes`, taken as 8-bit samples or, with `sample_bits == 1`,
/// as bits (most significant first). `None` for fewer than 2 samples or other sample sizes.
pub fn assess(bytes: &[u8], sample_bits: u32) -> Option<Estimates> {
    let samples = match sample_bits {
        1 => bytes.len() as u64 * 8,
        8 => bytes.len() as u64,
        _ => return None,
    };
    if samples < 2 {
        return None;
    }
    let mut counts = [0u64; 256];
    for &b in bytes {
        counts[usize::from(b)] += 1;
    }
    let bits = Bits(bytes);
    let bit_mcv = bits.mcv();
    let mcv = if sample_bits == 8 {
        mcv_estimate(&counts, samples)?
    } else {
        bit_mcv
    };
    Some(Estimates {
        samples,
        sample_bits,
        mcv,
        bit_mcv,
        bit_collision: bits.collision(),
        bit_markov: bits.markov(),
    })
}

/// SP 800-90B 6.3.1 on a histogram of `n` samples: `-log2` of the 99% upper confidence bound
/// on the most common value's probability. `None` before two samples.
pub fn mcv_estimate(counts: &[u64], n: u64) -> Option<f64> {
    if n < 2 {
        return None;
    }
    let max = counts.iter().copied().max().unwrap_or(0) as f64;
    Some(-upper_bound(max / n as f64, n).log2())
}

/// `min(1, p + z sqrt(p (1 - p) / (n - 1)))`.
fn upper_bound(p: f64, n: u64) -> f64 {
    (p + Z_99 * (p * (1.0 - p) / (n as f64 - 1.0)).sqrt()).min(1.0)
}

/// The bit string of a byte slice, most significant bit of each byte first.
struct Bits<'a>(&'a [u8]);

impl Bits<'_> {
    fn len(&self) -> usize {
        self.0.len() * 8
    }

    fn get(&self, i: usize) -> u8 {
        (self.0[i / 8] >> (7 - i % 8)) & 1
    }

    fn mcv(&self) -> f64 {
        let ones: u64 = self.0.iter().map(|b| u64::from(b.count_ones())).sum();
        let n = self.len() as u64;
        mcv_estimate(&[ones, n - ones], n).unwrap_or(0.0)
    }

    /// SP 800-90B 6.3.2 for binary samples. Walking the string, each step ends at the first
    /// repeated value: after 2 bits if they are equal, else after 3 (with two values the third
    /// always repeats one). With `P(0) = p`, the mean step is `2 + 2p(1 - p)`; the lower 99%
    /// bound on the observed mean gives the largest plausible `p`, whose `-log2` is the
    /// estimate. (This closed form is 90B's equation with `F(q) = q + 2q^2 + 2q^3`, its
    /// incomplete-gamma term for three-step collisions; the test checks they agree.)
    fn collision(&self) -> f64 {
        let len = self.len();
        let (mut i, mut v, mut sum, mut sum_sq) = (0usize, 0u64, 0f64, 0f64);
        // A step needs its two bits, and a third when they differ.
        while i + 1 < len {
            let t = if self.get(i) == self.get(i + 1) {
                2.0
            } else if i + 2 < len {
                3.0
            } else {
                break;
            };
            i += t as usize;
            v += 1;
            sum += t;
            sum_sq += t * t;
        }
        if v < 2 {
            return 0.0;
        }
        let vf = v as f64;
        let mean = sum / vf;
        let sd = ((sum_sq - vf * mean * mean) / (vf - 1.0)).max(0.0).sqrt();
        let lower = mean - Z_99 * sd / vf.sqrt();
        // 2 + 2p(1-p) = lower, p >= 1/2.
        let pq = ((lower - 2.0) / 2.0).clamp(0.0, 0.25);
        let p = 0.5 + (0.25 - pq).sqrt();
        -p.log2()
    }

    /// SP 800-90B 6.3.3: a first-order Markov model of the bit string; the estimate is
    /// `-log2` of the most likely 128-bit run under the model, per bit, at most 1.
    fn markov(&self) -> f64 {
        let len = self.len();
        let ones: u64 = self.0.iter().map(|b| u64::from(b.count_ones())).sum();
        let p1 = ones as f64 / len as f64;
        let p0 = 1.0 - p1;
        // Transition counts o[a][b] over consecutive pairs.
        let mut o = [[0u64; 2]; 2];
        for i in 0..len - 1 {
            o[usize::from(self.get(i))][usize::from(self.get(i + 1))] += 1;
        }
        let t = |a: usize, b: usize| {
            let row = o[a][0] + o[a][1];
            if row == 0 {
                0.0
            } else {
                o[a][b] as f64 / row as f64
            }
        };
        // log2 of each candidate run's probability; log2(0) = -inf drops that candidate.
        let l = |x: f64| x.log2();
        let candidates = [
            l(p0) + 127.0 * l(t(0, 0)),
            l(p0) + 64.0 * l(t(0, 1)) + 63.0 * l(t(1, 0)),
            l(p0) + l(t(0, 1)) + 126.0 * l(t(1, 1)),
            l(p1) + l(t(1, 0)) + 126.0 * l(t(0, 0)),
            l(p1) + 64.0 * l(t(1, 0)) + 63.0 * l(t(0, 1)),
            l(p1) + 127.0 * l(t(1, 1)),
        ];
        let best = candidates.into_iter().fold(f64::NEG_INFINITY, f64::max);
        (-best / 128.0).min(1.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand_chacha::ChaCha20Rng;
    use rand_core::{Rng, SeedableRng};

    fn random(n: usize, seed: u64) -> Vec<u8> {
        let mut v = vec![0u8; n];
        ChaCha20Rng::seed_from_u64(seed).fill_bytes(&mut v);
        v
    }

    /// Bits with P(1) = p, independent.
    fn biased_bits(n_bytes: usize, p: f64, seed: u64) -> Vec<u8> {
        let mut r = ChaCha20Rng::seed_from_u64(seed);
        (0..n_bytes)
            .map(|_| {
                (0..8).fold(0u8, |acc, _| {
                    let u = r.next_u64() as f64 / u64::MAX as f64;
                    (acc << 1) | u8::from(u < p)
                })
            })
            .collect()
    }

    #[test]
    fn ideal_bytes_assess_near_eight_bits_at_the_required_size() {
        let e = assess(&random(ASSESSMENT_SAMPLES, 1), 8).unwrap();
        assert!(e.mcv > 7.8 && e.mcv < 8.0, "{e:?}");
        assert!(e.bit_mcv > 0.99 && e.bit_markov > 0.99, "{e:?}");
        // The collision estimate is coarse: its bound on p moves with the square root of the
        // bound on the mean, so 8,000,000 ideal bits give about 0.94 per bit.
        assert!(e.bit_collision > 0.92 && e.bit_collision < 0.97, "{e:?}");
        let h = e.per_sample();
        assert!(h > 7.4 && h < 7.8, "{e:?}");
    }

    #[test]
    fn few_samples_understate_a_perfect_source() {
        // Why the old on-screen "H 6.04/8" described the sample size: 1,280 ideal bytes.
        let e = assess(&random(1280, 2), 8).unwrap();
        assert!(e.mcv < 6.5, "{e:?}");
    }

    #[test]
    fn a_biased_bit_source_is_estimated_by_its_bias() {
        // P(1) = 0.7: true min-entropy -log2(0.7) = 0.515 bits per bit.
        let e = assess(&biased_bits(200_000, 0.7, 3), 1).unwrap();
        let truth = -(0.7f64).log2();
        for h in [e.bit_mcv, e.bit_collision, e.bit_markov] {
            assert!((h - truth).abs() < 0.02, "{h} vs {truth}: {e:?}");
        }
        assert!(e.per_sample() <= truth + 0.001);
    }

    #[test]
    fn markov_catches_what_the_value_counts_miss() {
        // 0101...: balanced values (MCV and collision near 1), fully predictable.
        let e = assess(&vec![0x55; 10_000], 1).unwrap();
        assert!(e.bit_mcv > 0.95, "{e:?}");
        assert!(e.bit_markov < 0.01, "{e:?}");
        assert!(e.per_sample() < 0.01);
    }

    #[test]
    fn a_stuck_source_has_no_entropy() {
        let e = assess(&vec![0u8; 10_000], 8).unwrap();
        assert_eq!(e.mcv, 0.0);
        assert_eq!(e.per_sample(), 0.0);
    }

    #[test]
    fn the_collision_closed_form_solves_90bs_equation() {
        // 90B 6.3.2 step 7 for binary samples: p q^-2 (1 + (1/p - 1/q)/2) F(q)
        //   - p q^-1 (1/p - 1/q)/2, with F(q) = Gamma(3, 1/q) q^3 e^(1/q) = q + 2q^2 + 2q^3
        // (Gamma(3, z) = 2 e^-z (1 + z + z^2/2)). Our mean 2 + 2pq must equal it.
        for i in 0..=50 {
            let p = 0.5 + f64::from(i) / 100.0 * 0.98;
            let q = 1.0 - p;
            let f = q + 2.0 * q * q + 2.0 * q * q * q;
            let d = (1.0 / p - 1.0 / q) / 2.0;
            let nist = p / (q * q) * (1.0 + d) * f - p / q * d;
            assert!((nist - (2.0 + 2.0 * p * q)).abs() < 1e-9, "p={p}");
        }
    }

    #[test]
    fn other_sample_sizes_are_refused() {
        assert_eq!(assess(&[1, 2, 3], 4), None);
        assert_eq!(assess(&[1], 8), None);
    }
}
