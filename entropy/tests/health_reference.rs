//! The streaming health tester against a plain batch reference of SP 800-90B 4.4.1 / 4.4.2,
//! on generated sample sequences with small alphabets (so that failures actually happen).

use entropy::health::{Alpha, Cutoffs, Failure, HealthTester};
use proptest::prelude::*;

/// The sample index (1-based) of the first RCT or APT failure, computed the obvious way.
fn reference_first_failure(samples: &[u8], c: &Cutoffs) -> Option<(u64, &'static str)> {
    let mut first: Option<(u64, &'static str)> = None;
    let mut keep = |at: u64, what: &'static str| {
        if first.is_none_or(|(f, _)| at < f) {
            first = Some((at, what));
        }
    };
    // RCT: a run of C identical samples ending at index i.
    let rct = c.rct as usize;
    for i in 0..samples.len() {
        if i + 1 >= rct && samples[i + 1 - rct..=i].iter().all(|&x| x == samples[i]) {
            keep(i as u64 + 1, "rct");
            break;
        }
    }
    // APT: disjoint windows of W from the start; count of the window's first value.
    let w = c.apt_window as usize;
    'windows: for (k, win) in samples.chunks(w).enumerate() {
        let mut count = 0u64;
        for (j, &x) in win.iter().enumerate() {
            if x == win[0] {
                count += 1;
            }
            if count >= c.apt {
                keep((k * w + j) as u64 + 1, "apt");
                break 'windows;
            }
        }
    }
    first
}

fn check(samples: &[u8], c: Cutoffs) {
    let mut t = HealthTester::new(c, 1024).unwrap();
    let got = t.feed(samples).err().map(|f| match f {
        Failure::Repetition { at_sample, .. } => (at_sample, "rct"),
        Failure::Proportion { at_sample, .. } => (at_sample, "apt"),
    });
    let want = reference_first_failure(samples, &c);
    // When both tests fail at the same sample the tester reports the RCT first.
    match (got, want) {
        (Some((a, _)), Some((b, _))) => assert_eq!(a, b, "first failure sample"),
        (g, w) => assert_eq!(g, w),
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(300))]

    #[test]
    fn bytes_match_the_reference(
        samples in prop::collection::vec(0u8..3, 0..3000),
        h in 1.0f64..8.0,
        bits in 5.0f64..40.0,
    ) {
        check(&samples, Cutoffs::new(h, 8, Alpha::pow2(bits).unwrap()).unwrap());
    }

    #[test]
    fn bits_match_the_reference(
        bytes in prop::collection::vec(any::<u8>(), 0..600),
        bias in 0usize..3,
        h in 0.2f64..1.0,
        bits in 5.0f64..40.0,
    ) {
        // Skew some bytes to 0xFF to make APT failures likely.
        let bytes: Vec<u8> = bytes.iter().map(|&b| if (b as usize) % 3 < bias { 0xFF } else { b }).collect();
        let c = Cutoffs::new(h, 1, Alpha::pow2(bits).unwrap()).unwrap();
        let mut t = HealthTester::new(c, 1024).unwrap();
        let got = t.feed(&bytes).err().map(|f| match f {
            Failure::Repetition { at_sample, .. } | Failure::Proportion { at_sample, .. } => at_sample,
        });
        let samples: Vec<u8> = bytes.iter().flat_map(|&b| (0..8).rev().map(move |i| (b >> i) & 1)).collect();
        prop_assert_eq!(got, reference_first_failure(&samples, &c).map(|(a, _)| a));
    }
}
