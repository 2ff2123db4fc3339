//! SP 800-90B section 4.4 continuous health tests: the Repetition Count Test (RCT) and the
//! Adaptive Proportion Test (APT), with cutoffs computed from the claimed min-entropy per sample
//! `H` and the false-positive probability `alpha`, plus start-up testing.
//!
//! The tests run on the samples a source really delivers (its "raw" output as far as we can
//! reach it). A failure latches: once a tester has failed it stays failed, with the first reason.

use std::fmt;

/// Samples tested at start-up before any output of a source is used (SP 800-90B 4.3 item 9
/// asks for at least 1024).
pub const MIN_STARTUP_SAMPLES: usize = 1024;

/// The false-positive probability of one test, stored as its negative base-2 logarithm so that
/// the RCT cutoff is computed without rounding trouble (`alpha = 2^-bits`).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Alpha {
    bits: f64,
}

impl Alpha {
    /// `alpha = 2^-bits`. NIST suggests 20 <= bits <= 40; anything outside 1..=64 is refused.
    pub fn pow2(bits: f64) -> Result<Self, HealthError> {
        if !(1.0..=64.0).contains(&bits) {
            return Err(HealthError::AlphaOutOfRange(bits));
        }
        Ok(Alpha { bits })
    }

    /// `-log2(alpha)`.
    pub fn neg_log2(&self) -> f64 {
        self.bits
    }

    /// `alpha` itself.
    pub fn value(&self) -> f64 {
        (-self.bits).exp2()
    }
}

impl Default for Alpha {
    /// `2^-30`: inside NIST's suggested range; one false alarm in about a billion windows.
    fn default() -> Self {
        Alpha { bits: 30.0 }
    }
}

impl fmt::Display for Alpha {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "2^-{}", self.bits)
    }
}

/// Errors in the parameters of the health tests (never in the samples: those are [`Failure`]s).
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum HealthError {
    #[error("alpha = 2^-{0} is outside 2^-64..=2^-1; SP 800-90B suggests 2^-40 <= alpha <= 2^-20")]
    AlphaOutOfRange(f64),
    #[error(
        "claimed min-entropy {h} bits per sample is impossible for {sample_bits}-bit samples; \
         claim a value in (0, {sample_bits}]"
    )]
    ClaimOutOfRange { h: f64, sample_bits: u32 },
    #[error("sample width {0} bits is not supported; use 1 (binary) or 8 (bytes)")]
    SampleWidth(u32),
    #[error(
        "start-up testing needs at least {MIN_STARTUP_SAMPLES} samples (SP 800-90B 4.3); {0} were asked for"
    )]
    StartupTooShort(usize),
}

/// RCT cutoff `C = 1 + ceil(-log2(alpha) / H)` (SP 800-90B 4.4.1): the test fails when one
/// value occurs `C` times in a row.
pub fn rct_cutoff(h: f64, alpha: Alpha) -> u64 {
    // A tiny tolerance so that an exact quotient like 30/0.5 is not pushed up by float noise.
    let q = alpha.neg_log2() / h;
    let c = (q - 1e-9).ceil();
    1 + c as u64
}

/// APT window: 1024 samples for binary sources, 512 otherwise (SP 800-90B 4.4.2).
pub fn apt_window(sample_bits: u32) -> u64 {
    if sample_bits == 1 { 1024 } else { 512 }
}

/// APT cutoff `C = 1 + CRITBINOM(W, 2^-H, 1 - alpha)` (SP 800-90B 4.4.2): the test fails when
/// the window's first value occurs `C` times in the window. For binary samples `2^-H` is the
/// probability of the most likely value, and is at least 1/2.
pub fn apt_cutoff(window: u64, h: f64, alpha: Alpha) -> u64 {
    1 + critbinom(window, (-h).exp2(), alpha)
}

/// `CRITBINOM(n, p, 1 - alpha)`: the smallest `k` with `P(X <= k) >= 1 - alpha` for
/// `X ~ Binomial(n, p)`, i.e. the smallest `k` whose upper tail `P(X > k)` is at most `alpha`.
///
/// Computed in log space from the exact probability mass function: the upper tail is summed
/// from `n` downwards with log-sum-exp, so tails down to 2^-64 keep full relative precision
/// (summing the CDF up towards `1 - alpha` would lose them in rounding).
pub fn critbinom(n: u64, p: f64, alpha: Alpha) -> u64 {
    assert!(p > 0.0 && p <= 1.0, "critbinom: p = {p} must be in (0, 1]");
    if p >= 1.0 {
        return n;
    }
    let ln_p = p.ln();
    let ln_q = (-p).ln_1p();
    // ln C(n, k) for all k, built incrementally: exact enough (each step one rounding).
    let mut ln_choose = vec![0.0f64; (n + 1) as usize];
    for k in 1..=n {
        let k_us = k as usize;
        ln_choose[k_us] = ln_choose[k_us - 1] + ((n - k + 1) as f64).ln() - (k as f64).ln();
    }
    let ln_pmf = |k: u64| ln_choose[k as usize] + k as f64 * ln_p + (n - k) as f64 * ln_q;
    let ln_alpha = -alpha.neg_log2() * std::f64::consts::LN_2;
    // tail(k) = P(X > k) = sum_{j=k+1}^{n} pmf(j). tail(n) = 0 <= alpha always.
    let mut ln_tail = f64::NEG_INFINITY;
    let mut k = n;
    while k > 0 {
        // Add pmf(k) to get tail(k-1).
        ln_tail = ln_add(ln_tail, ln_pmf(k));
        if ln_tail > ln_alpha {
            // tail(k-1) exceeds alpha, so k is the smallest acceptable value.
            return k;
        }
        k -= 1;
    }
    0
}

fn ln_add(a: f64, b: f64) -> f64 {
    if a == f64::NEG_INFINITY {
        return b;
    }
    if b == f64::NEG_INFINITY {
        return a;
    }
    let (hi, lo) = if a > b { (a, b) } else { (b, a) };
    hi + (lo - hi).exp().ln_1p()
}

/// The parameters of one source's tests, derived once from its claim.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Cutoffs {
    /// Claimed min-entropy per sample, in bits.
    pub h: f64,
    /// Bits per sample (1 or 8).
    pub sample_bits: u32,
    pub alpha: Alpha,
    /// RCT fails at this many identical samples in a row.
    pub rct: u64,
    /// APT window size.
    pub apt_window: u64,
    /// APT fails when the window's first value occurs this many times in the window.
    pub apt: u64,
}

impl Cutoffs {
    pub fn new(h: f64, sample_bits: u32, alpha: Alpha) -> Result<Self, HealthError> {
        if sample_bits != 1 && sample_bits != 8 {
            return Err(HealthError::SampleWidth(sample_bits));
        }
        if !(h > 0.0 && h <= sample_bits as f64) {
            return Err(HealthError::ClaimOutOfRange { h, sample_bits });
        }
        let window = apt_window(sample_bits);
        Ok(Cutoffs {
            h,
            sample_bits,
            alpha,
            rct: rct_cutoff(h, alpha),
            apt_window: window,
            apt: apt_cutoff(window, h, alpha),
        })
    }
}

impl fmt::Display for Cutoffs {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "H={} bits/{}-bit sample, alpha={}: RCT C={}, APT C={} of W={}",
            self.h, self.sample_bits, self.alpha, self.rct, self.apt, self.apt_window
        )
    }
}

/// Why a health test failed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Failure {
    /// The same value occurred `run` times in a row (cutoff reached).
    Repetition {
        value: u8,
        run: u64,
        cutoff: u64,
        at_sample: u64,
    },
    /// The window's first value occurred `count` times in one window (cutoff reached).
    Proportion {
        value: u8,
        count: u64,
        cutoff: u64,
        window: u64,
        at_sample: u64,
    },
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Failure::Repetition {
                value,
                run,
                cutoff,
                at_sample,
            } => write!(
                f,
                "Repetition Count Test failed at sample {at_sample}: value {value:#04x} repeated \
                 {run} times in a row (cutoff {cutoff}); the source is stuck"
            ),
            Failure::Proportion {
                value,
                count,
                cutoff,
                window,
                at_sample,
            } => write!(
                f,
                "Adaptive Proportion Test failed at sample {at_sample}: value {value:#04x} \
                 occurred {count} times in a window of {window} (cutoff {cutoff}); the source \
                 has far less entropy than claimed"
            ),
        }
    }
}

/// Where a tester stands.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// Fewer than the start-up samples seen so far, and no failure yet.
    StartingUp { seen: u64, needed: u64 },
    /// Start-up passed and no failure since.
    Healthy,
    /// Latched: the first failure, kept for good.
    Failed(Failure),
}

/// Continuous RCT + APT over a stream of samples, with start-up testing.
///
/// Feed bytes with [`HealthTester::feed`]; for 1-bit sources each byte is split into 8 samples,
/// most significant bit first.
///
/// It remembers the last sample and a histogram of the samples, which are secret when the
/// samples are mixed: so no Debug, and zeroized on drop.
pub struct HealthTester {
    cutoffs: Cutoffs,
    startup: u64,
    seen: u64,
    rct_value: u8,
    rct_run: u64,
    apt_value: u8,
    apt_count: u64,
    apt_pos: u64,
    failure: Option<Failure>,
    // Per-value counts for the most-common-value estimate (SP 800-90B 6.3.1).
    counts: [u64; 256],
}

impl HealthTester {
    pub fn new(cutoffs: Cutoffs, startup_samples: usize) -> Result<Self, HealthError> {
        if startup_samples < MIN_STARTUP_SAMPLES {
            return Err(HealthError::StartupTooShort(startup_samples));
        }
        Ok(HealthTester {
            cutoffs,
            startup: startup_samples as u64,
            seen: 0,
            rct_value: 0,
            rct_run: 0,
            apt_value: 0,
            apt_count: 0,
            apt_pos: 0,
            failure: None,
            counts: [0; 256],
        })
    }

    pub fn cutoffs(&self) -> &Cutoffs {
        &self.cutoffs
    }

    /// Samples tested so far.
    pub fn samples(&self) -> u64 {
        self.seen
    }

    /// Bytes needed to complete start-up testing from the current position (0 when done).
    pub fn startup_bytes_remaining(&self) -> usize {
        let left = self.startup.saturating_sub(self.seen);
        let per_byte = (8 / self.cutoffs.sample_bits) as u64;
        left.div_ceil(per_byte) as usize
    }

    pub fn verdict(&self) -> Verdict {
        if let Some(f) = &self.failure {
            Verdict::Failed(f.clone())
        } else if self.seen < self.startup {
            Verdict::StartingUp {
                seen: self.seen,
                needed: self.startup,
            }
        } else {
            Verdict::Healthy
        }
    }

    pub fn failure(&self) -> Option<&Failure> {
        self.failure.as_ref()
    }

    /// Tests every sample in `bytes`. Returns the latched failure, if any (also one from before).
    pub fn feed(&mut self, bytes: &[u8]) -> Result<(), Failure> {
        for &b in bytes {
            if self.cutoffs.sample_bits == 1 {
                for i in (0..8).rev() {
                    self.sample((b >> i) & 1);
                }
            } else {
                self.sample(b);
            }
        }
        match &self.failure {
            Some(f) => Err(f.clone()),
            None => Ok(()),
        }
    }

    fn sample(&mut self, x: u8) {
        self.seen += 1;
        self.counts[x as usize] += 1;
        // Keep counting samples after a failure (for the report), but the verdict is latched.
        let at = self.seen;
        // RCT (4.4.1).
        if self.rct_run > 0 && x == self.rct_value {
            self.rct_run += 1;
            if self.rct_run >= self.cutoffs.rct && self.failure.is_none() {
                self.failure = Some(Failure::Repetition {
                    value: x,
                    run: self.rct_run,
                    cutoff: self.cutoffs.rct,
                    at_sample: at,
                });
            }
        } else {
            self.rct_value = x;
            self.rct_run = 1;
        }
        // APT (4.4.2): the first sample of each window sets A and counts as one occurrence.
        if self.apt_pos == 0 {
            self.apt_value = x;
            self.apt_count = 1;
        } else if x == self.apt_value {
            self.apt_count += 1;
            if self.apt_count >= self.cutoffs.apt && self.failure.is_none() {
                self.failure = Some(Failure::Proportion {
                    value: x,
                    count: self.apt_count,
                    cutoff: self.cutoffs.apt,
                    window: self.cutoffs.apt_window,
                    at_sample: at,
                });
            }
        }
        self.apt_pos += 1;
        if self.apt_pos == self.cutoffs.apt_window {
            self.apt_pos = 0;
        }
    }

    /// The most-common-value min-entropy estimate per sample (SP 800-90B 6.3.1) over every
    /// sample seen: `-log2` of the 99% upper confidence bound on the most common value's
    /// probability. A lower bound in spirit; with few samples it is well below the true value.
    /// `None` before two samples.
    pub fn mcv_estimate(&self) -> Option<f64> {
        mcv_estimate(&self.counts, self.seen)
    }
}

impl Drop for HealthTester {
    fn drop(&mut self) {
        use zeroize::Zeroize;
        self.rct_value.zeroize();
        self.apt_value.zeroize();
        self.counts.zeroize();
    }
}

pub use crate::estimate::mcv_estimate;

#[cfg(test)]
mod tests {
    use super::*;
    use rand_chacha::ChaCha20Rng;
    use rand_core::{Rng, SeedableRng};

    fn a(bits: f64) -> Alpha {
        Alpha::pow2(bits).unwrap()
    }

    #[test]
    fn rct_cutoffs_match_the_table_in_entropy_md() {
        // (H, C at 2^-20, C at 2^-30) from shared/reference/entropy.md.
        let table = [
            (0.5, 41, 61),
            (1.0, 21, 31),
            (2.0, 11, 16),
            (4.0, 6, 9),
            (8.0, 4, 5),
        ];
        for (h, c20, c30) in table {
            assert_eq!(rct_cutoff(h, a(20.0)), c20, "H={h} alpha=2^-20");
            assert_eq!(rct_cutoff(h, a(30.0)), c30, "H={h} alpha=2^-30");
        }
    }

    #[test]
    fn rct_cutoff_is_the_formula_for_other_claims() {
        // C = 1 + ceil(-log2(alpha)/H), with the quotient computed by hand here.
        assert_eq!(rct_cutoff(0.86, a(30.0)), 1 + 35); // 30/0.86 = 34.88
        assert_eq!(rct_cutoff(6.0, a(40.0)), 1 + 7); // 40/6 = 6.67
        assert_eq!(rct_cutoff(3.0, a(30.0)), 1 + 10); // exactly 10
        assert_eq!(rct_cutoff(7.5, a(20.0)), 1 + 3); // 2.67
    }

    #[test]
    fn apt_cutoffs_match_the_table_in_entropy_md() {
        // (H, C for W=1024, C for W=512) at alpha = 2^-20, from entropy.md (NIST's Table 2).
        let table = [
            (0.5, 793, 410),
            (1.0, 589, 311),
            (2.0, 325, 177),
            (4.0, 105, 62),
            (8.0, 18, 13),
        ];
        for (h, c1024, c512) in table {
            assert_eq!(apt_cutoff(1024, h, a(20.0)), c1024, "H={h} W=1024");
            assert_eq!(apt_cutoff(512, h, a(20.0)), c512, "H={h} W=512");
        }
    }

    /// CRITBINOM by a second, independent route: the CDF summed upwards in plain f64 from the
    /// pmf computed by recurrence. Fine for alpha >= 2^-30 (1 - alpha is far from rounding).
    fn critbinom_forward(n: u64, p: f64, alpha: f64) -> u64 {
        let q = 1.0 - p;
        let mut pmf = q.powi(n as i32); // k = 0
        let mut cdf = pmf;
        let mut k = 0;
        while cdf < 1.0 - alpha {
            pmf *= (n - k) as f64 / (k + 1) as f64 * p / q;
            k += 1;
            cdf += pmf;
        }
        k
    }

    #[test]
    fn critbinom_agrees_with_a_forward_cdf_sum() {
        for &(n, h) in &[
            (512u64, 8.0f64),
            (512, 4.0),
            (512, 6.0),
            (1024, 1.0),
            (64, 2.0),
        ] {
            for &bits in &[10.0f64, 20.0, 26.0] {
                let p = (-h).exp2();
                assert_eq!(
                    critbinom(n, p, a(bits)),
                    critbinom_forward(n, p, (-bits).exp2()),
                    "n={n} H={h} alpha=2^-{bits}"
                );
            }
        }
    }

    #[test]
    fn critbinom_is_the_smallest_k_with_tail_at_most_alpha() {
        // Tiny case worked by hand: n=4, p=1/2, pmf = 1,4,6,4,1 over 16.
        // P(X>3) = 1/16, P(X>2) = 5/16, P(X>1) = 11/16.
        assert_eq!(critbinom(4, 0.5, a(4.0)), 3); // alpha = 1/16: tail(3) = 1/16 <= alpha
        assert_eq!(critbinom(4, 0.5, a(3.9)), 3); // alpha slightly above 1/16
        assert_eq!(critbinom(4, 0.5, a(4.1)), 4); // alpha just below 1/16
        assert_eq!(critbinom(4, 0.5, a(1.0)), 2); // alpha = 1/2: tail(2) = 5/16
    }

    #[test]
    fn cutoffs_get_stricter_with_more_claimed_entropy_and_looser_with_smaller_alpha() {
        let mut last = u64::MAX;
        for h in [0.5, 1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0] {
            let c = apt_cutoff(512, h, a(30.0));
            assert!(c < last, "H={h}");
            assert!(apt_cutoff(512, h, a(40.0)) >= c);
            last = c;
        }
    }

    fn good_bytes(n: usize, seed: u8) -> Vec<u8> {
        let mut rng = ChaCha20Rng::from_seed([seed; 32]);
        let mut v = vec![0; n];
        rng.fill_bytes(&mut v);
        v
    }

    fn tester(h: f64, bits: u32) -> HealthTester {
        HealthTester::new(Cutoffs::new(h, bits, Alpha::default()).unwrap(), 1024).unwrap()
    }

    #[test]
    fn a_good_source_passes_start_up_and_continuous_tests() {
        let mut t = tester(8.0, 8);
        assert_eq!(t.startup_bytes_remaining(), 1024);
        t.feed(&good_bytes(1000, 1)).unwrap();
        assert!(matches!(
            t.verdict(),
            Verdict::StartingUp { seen: 1000, .. }
        ));
        t.feed(&good_bytes(1_000_000, 2)).unwrap();
        assert_eq!(t.verdict(), Verdict::Healthy);
        let h = t.mcv_estimate().unwrap();
        assert!(h > 7.5 && h <= 8.0, "MCV estimate {h}");
    }

    #[test]
    fn a_good_binary_source_passes() {
        let mut t = tester(1.0, 1);
        assert_eq!(t.startup_bytes_remaining(), 128);
        t.feed(&good_bytes(100_000, 3)).unwrap();
        assert_eq!(t.verdict(), Verdict::Healthy);
    }

    #[test]
    fn a_stuck_source_fails_the_rct_at_exactly_the_cutoff() {
        let mut t = tester(8.0, 8);
        let mut data = good_bytes(300, 4);
        // Make sure the byte before the run differs from the run's value.
        data[299] = 0x00;
        t.feed(&data).unwrap();
        // cutoff - 1 repeats: still fine.
        t.feed(&vec![0xAA; (t.cutoffs().rct - 1) as usize]).unwrap();
        let err = t.feed(&[0xAA]).unwrap_err();
        match err {
            Failure::Repetition {
                value, run, cutoff, ..
            } => {
                assert_eq!(value, 0xAA);
                assert_eq!(run, cutoff);
                assert_eq!(cutoff, 5);
            }
            other => panic!("expected RCT failure, got {other}"),
        }
    }

    #[test]
    fn a_biased_source_without_long_runs_fails_the_apt_not_the_rct() {
        // Every other sample is 0x42: no runs longer than 1, but half of each window is 0x42.
        let mut t = tester(8.0, 8);
        let noise = good_bytes(4096, 5);
        let data: Vec<u8> = noise
            .iter()
            .flat_map(|&b| [0x42, if b == 0x42 { 0x43 } else { b }])
            .collect();
        let err = t.feed(&data).unwrap_err();
        assert!(
            matches!(err, Failure::Proportion { value: 0x42, .. }),
            "{err}"
        );
    }

    #[test]
    fn a_binary_source_biased_to_75_percent_ones_fails_the_apt() {
        // Claimed 1 bit per bit; actually P(1) = 3/4, about 768 ones per 1024-sample window
        // against an APT cutoff near 600. Runs of 31 ones (the RCT cutoff) stay rare at 3/4.
        let mut rng = ChaCha20Rng::from_seed([6; 32]);
        let mut t = tester(1.0, 1);
        let mut failed = None;
        for _ in 0..10_000 {
            let mut byte = 0u8;
            for _ in 0..8 {
                byte = (byte << 1) | (rng.next_u32() % 4 != 0) as u8;
            }
            if let Err(f) = t.feed(&[byte]) {
                failed = Some(f);
                break;
            }
        }
        let f = failed.expect("a 75% biased binary source must fail");
        assert!(matches!(f, Failure::Proportion { .. }), "{f}");
    }

    #[test]
    fn a_failure_latches_with_its_first_reason() {
        let mut t = tester(8.0, 8);
        t.feed(&good_bytes(2048, 7)).unwrap();
        let first = t.feed(&[9; 16]).unwrap_err();
        // Good data afterwards does not clear it, and the reason stays the first one.
        let again = t.feed(&good_bytes(100_000, 8)).unwrap_err();
        assert_eq!(first, again);
        assert_eq!(t.verdict(), Verdict::Failed(first));
    }

    #[test]
    fn a_failure_during_start_up_is_reported_as_a_failure() {
        let mut t = tester(8.0, 8);
        assert!(t.feed(&[0; 10]).is_err());
        assert!(matches!(t.verdict(), Verdict::Failed(_)));
    }

    #[test]
    fn parameters_are_validated() {
        assert!(Alpha::pow2(0.5).is_err());
        assert!(Alpha::pow2(65.0).is_err());
        assert!(Cutoffs::new(9.0, 8, Alpha::default()).is_err());
        assert!(Cutoffs::new(1.5, 1, Alpha::default()).is_err());
        assert!(Cutoffs::new(0.0, 8, Alpha::default()).is_err());
        assert!(Cutoffs::new(4.0, 4, Alpha::default()).is_err());
        let c = Cutoffs::new(8.0, 8, Alpha::default()).unwrap();
        assert!(HealthTester::new(c, 1023).is_err());
    }

    #[test]
    fn mcv_estimate_follows_the_formula() {
        let mut counts = [0u64; 256];
        counts[0] = 500;
        counts[1] = 500;
        // p_hat = 0.5, p_u = 0.5 + z sqrt(0.25 / 999), z the 99.5% normal quantile
        let p_u: f64 = 0.5 + 2.575_829_303_548_901 * (0.25f64 / 999.0).sqrt();
        let got = mcv_estimate(&counts, 1000).unwrap();
        assert!((got - (-p_u.log2())).abs() < 1e-12);
        assert!(got < 1.0);
    }
}
