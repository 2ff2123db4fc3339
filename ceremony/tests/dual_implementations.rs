//! Whole ceremonies on the host with deliberately wrong second implementations: the ceremony
//! stops at the step that met the disagreement, and nothing is produced to write (the output
//! files only come out of the last step, `finish`). With the real ones, the transcript records
//! what they checked (docs/dual-implementations.md).

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use ceremony::card::SoftwareCard;
use ceremony::ceremony::{CeremonyError, Planned};
use ceremony::dual::{Disagreement, Ed25519Compact, SecondEd25519, Seconds};
use ceremony::record::{CoreRecord, Entry};
use ceremony::shamir::{SecondShamir, ShamirError, ShamirGf256};
use ceremony::storage::OutputFile;
use ceremony::transcript::Transcript;
use common::*;
use zeroize::Zeroizing;

/// Signs like ed25519-compact for its first `good` signatures, then flips a bit of each.
struct WrongFrom {
    good: usize,
    made: AtomicUsize,
}

impl SecondEd25519 for WrongFrom {
    fn name(&self) -> &'static str {
        "wrong-from-test"
    }
    fn public_key(&self, seed: &[u8; 32]) -> [u8; 32] {
        Ed25519Compact.public_key(seed)
    }
    fn sign(&self, seed: &[u8; 32], message: &[u8]) -> [u8; 64] {
        let mut s = Ed25519Compact.sign(seed, message);
        if self.made.fetch_add(1, Ordering::Relaxed) >= self.good {
            s[0] ^= 0x80;
        }
        s
    }
}

/// Splits like shamir-gf256 but with the last share's first y byte changed.
struct WrongShares;

impl SecondShamir for WrongShares {
    fn name(&self) -> &'static str {
        "wrong-shares-test"
    }
    fn split_with_coefficients(
        &self,
        secret: &[u8],
        threshold: usize,
        coefficients: &[u8],
        xs: &[u8],
    ) -> Result<Vec<Zeroizing<Vec<u8>>>, shamir_gf256::Error> {
        let mut shares =
            ShamirGf256.split_with_coefficients(secret, threshold, coefficients, xs)?;
        if let Some(last) = shares.last_mut() {
            last[1] ^= 1;
        }
        Ok(shares)
    }
    fn combine(&self, shares: &[&[u8]]) -> Result<Zeroizing<Vec<u8>>, shamir_gf256::Error> {
        ShamirGf256.combine(shares)
    }
    fn interpolate(
        &self,
        shares: &[&[u8]],
        at: u8,
    ) -> Result<Zeroizing<Vec<u8>>, shamir_gf256::Error> {
        ShamirGf256.interpolate(shares, at)
    }
}

/// Where a ceremony stopped: the step's name, its error, and the transcript it handed back.
struct Stopped {
    step: &'static str,
    error: CeremonyError,
    transcript: Transcript,
}

/// Runs every step of `f`'s ceremony checked against `seconds`, as `common::run` does; the
/// output files if it finished, else where it stopped.
fn run_against(f: &Fixture, seconds: Seconds) -> Result<Vec<OutputFile>, Box<Stopped>> {
    let mut rng = seeded(5);
    let c = Planned::new(&f.plan_text)
        .expect("plan")
        .checked_against(seconds);
    let stop = |step, error, transcript: &Transcript| {
        Box::new(Stopped {
            step,
            error,
            transcript: transcript.clone(),
        })
    };
    let (c, _) = c
        .generate_keys(&mut rng)
        .map_err(|r| stop("keys", r.error, r.state.transcript()))?;
    let (mut c, _) = c
        .seal_shares(&mut rng)
        .map_err(|r| stop("seal", r.error, r.state.transcript()))?;
    for (i, &k) in f.cards.iter().enumerate() {
        for j in 1..=k {
            let mut card = SoftwareCard::new(&format!("000F:{:04X}{:02X}", i + 1, j));
            let ok = approve(&mut card);
            c.provision_card(u8::try_from(i + 1).unwrap(), j, &mut card, &ok)
                .expect("card");
        }
    }
    let c = c
        .cards_complete()
        .map_err(|r| stop("pins", r.error, r.state.transcript()))?;
    let (c, _) = c
        .verify(&mut rng)
        .map_err(|r| stop("verify", r.error, r.state.transcript()))?;
    let (_, files, _) = c
        .finish()
        .map_err(|r| stop("finish", r.error, r.state.transcript()))?;
    Ok(files)
}

fn wrong_from(good: usize) -> Seconds {
    Seconds {
        ed25519: Arc::new(WrongFrom {
            good,
            made: AtomicUsize::new(0),
        }),
        ..Seconds::default()
    }
}

fn kinds(t: &Transcript) -> Vec<&str> {
    t.records().iter().map(|r| r.kind.as_str()).collect()
}

/// 3 holders: the root certificate's 3 self-signatures, then 3 envelopes, 3 PIN files, the
/// self-test, the transcript. A second Ed25519 that goes wrong at any of them stops the step
/// that signs, which records nothing, and no output file exists.
#[test]
fn a_wrong_second_signer_stops_the_ceremony_before_anything_is_written() {
    let f = fixture("dual-sign", 3, 2);
    for (good, step, what) in [
        (0, "keys", "the direct-key signature"),
        (2, "keys", "the subkey binding"),
        (3, "seal", "the share message"),
        (5, "seal", "the share message"),
        (6, "pins", "a PIN file"),
        (9, "verify", "the self-test signature"),
        (10, "finish", "the transcript signature"),
    ] {
        let stopped = run_against(&f, wrong_from(good))
            .err()
            .unwrap_or_else(|| panic!("wrong from signature {good}: the ceremony finished"));
        assert_eq!(stopped.step, step, "wrong from signature {good}");
        match &stopped.error {
            CeremonyError::ImplementationsDisagree {
                what: w,
                source: Disagreement::Signature { second },
            } => {
                assert_eq!((*w, *second), (what, "wrong-from-test"), "signature {good}");
            }
            e => panic!("wrong from signature {good}: {e}"),
        }
        assert!(
            stopped
                .error
                .to_string()
                .contains("neither signature is used"),
            "{}",
            stopped.error
        );
        let recorded = kinds(&stopped.transcript);
        // The refused step recorded nothing: its phase is handed back unchanged.
        let last = *recorded.last().unwrap();
        match step {
            "keys" => assert_eq!(last, "plan.hash"),
            "seal" => assert_eq!(last, "location.cert"),
            "pins" => assert_eq!(last, "card.provisioned"),
            "verify" => assert_eq!(last, "pins.sealed"),
            _ => assert_eq!(last, "dual.fingerprint"),
        }
    }
    // Right for every signature: the ceremony finishes.
    assert!(run_against(&f, wrong_from(11)).is_ok());
}

#[test]
fn a_wrong_second_shamir_stops_the_ceremony_at_the_split() {
    let f = fixture("dual-shamir", 3, 2);
    let seconds = Seconds {
        shamir: Arc::new(WrongShares),
        ..Seconds::default()
    };
    let stopped = run_against(&f, seconds).expect_err("stopped");
    assert_eq!(stopped.step, "seal");
    assert!(matches!(
        stopped.error,
        CeremonyError::Shamir(ShamirError::ImplementationsDisagree {
            operation: "split",
            second: "wrong-shares-test"
        })
    ));
    assert!(!kinds(&stopped.transcript).contains(&"share.sealed"));
}

/// The real second implementations agree, and the transcript says what they checked, right
/// after the self-test.
#[test]
fn the_transcript_records_the_cross_checks() {
    let f = fixture("dual-ok", 5, 3);
    let done = run(&f, 9);
    let t = done.finished.transcript();
    let recorded = kinds(t);
    let at = recorded
        .iter()
        .position(|k| *k == "verify.self-test")
        .unwrap();
    assert_eq!(
        &recorded[at + 1..at + 5],
        &[
            "dual.shamir",
            "dual.signatures",
            "dual.fingerprint",
            "output.file"
        ]
    );
    let typed: Vec<CoreRecord> = t.records()[at + 1..at + 4]
        .iter()
        .map(|r| match Entry::parse(&r.kind, &r.value).unwrap() {
            Entry::Core(c) => c,
            Entry::Note(_) => unreachable!(),
        })
        .collect();
    let [
        CoreRecord::DualShamir(s),
        CoreRecord::DualSignatures(g),
        CoreRecord::DualFingerprint(p),
    ] = typed.as_slice()
    else {
        panic!("{typed:?}")
    };
    assert_eq!(
        (s.second.as_str(), s.splits, s.shares),
        ("shamir-gf256", 1, 5)
    );
    // C(5, 3) = 10 subsets, and at least one recombination of the cards' decryptions.
    assert!(s.combinations > 10, "{s:?}");
    assert_eq!((g.second.as_str(), g.checks), ("ed25519-compact-2.6.1", 14));
    assert_eq!((p.checks, p.hkdf), (12, 2));
    assert_eq!(
        t.records()[at + 2].value,
        "second=ed25519-compact-2.6.1 checks=14"
    );
}
