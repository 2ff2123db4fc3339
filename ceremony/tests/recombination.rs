//! Recombination refuses duplicate, foreign, tampered, mismatched and too few shares, naming
//! the share at fault, and only returns a secret whose commitment and fingerprint check out.

mod common;

use ceremony::card::{CardError, SoftwareCard};
use ceremony::ceremony::paths;
use ceremony::envelope::{self, Envelope, OpenShareError};
use ceremony::pgp::OpenError;
use ceremony::recombine::{Expected, RecombineError, recombine};
use ceremony::secret::{Pin, ShareBytes};
use ceremony::shardfile::ShardFile;
use common::*;
use proptest::prelude::*;

struct Opened {
    shards: ShardFile,
    envelopes: Vec<Envelope>,
    cards: Vec<Vec<SoftwareCard>>,
    pins: Vec<Pin>,
}

/// Runs a ceremony, then opens every share with its card and the PIN from its PIN file.
fn opened(id: &str, n: usize, m: usize, seed: u8) -> Opened {
    let f = fixture_with(id, n, m, &vec![1u8; n]);
    let done = run(&f, seed);
    let shards =
        ShardFile::parse(std::str::from_utf8(file(&done.files, paths::SHARDS)).unwrap()).unwrap();
    let mut cards = done.cards;
    let mut envelopes = Vec::new();
    let mut pins = Vec::new();
    for (i, s) in shards.shares.iter().enumerate() {
        let pin = user_pin(&f, &done.files, &shards.root_cert, s.index);
        envelopes.push(
            envelope::open_with_card(
                &s.message,
                &mut cards[i][0],
                &pin,
                &s.location_cert,
                &shards.root_cert,
            )
            .unwrap(),
        );
        pins.push(pin);
    }
    Opened {
        shards,
        envelopes,
        cards,
        pins,
    }
}

fn expected(o: &Opened) -> Expected {
    Expected {
        ceremony_id: o.shards.ceremony_id.clone(),
        root_fingerprint: o.shards.root_fingerprint().as_bytes().to_vec(),
    }
}

fn copy(e: &Envelope) -> Envelope {
    Envelope {
        header: e.header.clone(),
        share: e.share.duplicate(),
    }
}

fn err(o: &Opened, picked: &[&Envelope]) -> RecombineError {
    recombine(&expected(o), picked)
        .err()
        .expect("should be refused")
}

#[test]
fn refusals_name_the_culprit() {
    let o = opened("recomb-a", 5, 3, 11);
    let e: Vec<&Envelope> = o.envelopes.iter().collect();

    // Any 3 recombine, in any order.
    let rec = recombine(&expected(&o), &[e[4], e[0], e[2]]).unwrap();
    assert_eq!(rec.root.fingerprint(), o.shards.root_fingerprint());
    assert_eq!(rec.indices, vec![5, 1, 3]);

    assert_eq!(
        err(&o, &[e[0], e[1]]),
        RecombineError::NotEnoughShares { have: 2, need: 3 }
    );
    assert_eq!(err(&o, &[]), RecombineError::NoShares);

    // The same share twice, and two different shares claiming one index.
    assert_eq!(
        err(&o, &[e[0], e[1], e[1]]),
        RecombineError::Duplicate {
            index: 2,
            first: 2,
            second: 3
        }
    );
    let mut forged = copy(e[2]);
    forged.header.index = 2;
    let mut s = forged.share.expose_secret().to_vec();
    s[0] = 2;
    forged.share = ShareBytes::from_slice(&s);
    assert_eq!(
        err(&o, &[e[0], e[1], &forged]),
        RecombineError::ConflictingDuplicate {
            index: 2,
            first: 2,
            second: 3
        }
    );

    // A share from another ceremony (different id, different root).
    let other = opened("recomb-b", 3, 2, 12);
    let foreign = &other.envelopes[0];
    assert!(matches!(
        err(&o, &[e[0], foreign, e[1]]),
        RecombineError::Foreign {
            position: 2,
            index: 1,
            field: "ceremony id",
            ..
        }
    ));
    // Same ceremony id but another root key.
    let mut foreign_root = copy(e[3]);
    foreign_root.header.root_fingerprint = other.shards.root_fingerprint().as_bytes().to_vec();
    assert!(matches!(
        err(&o, &[e[0], e[1], &foreign_root]),
        RecombineError::Foreign {
            position: 3,
            index: 4,
            field: "root fingerprint",
            ..
        }
    ));

    // Header fields that disagree with the majority.
    for (field, edit) in [
        (
            "threshold",
            Box::new(|x: &mut Envelope| x.header.threshold = 2) as Box<dyn Fn(&mut Envelope)>,
        ),
        (
            "share count",
            Box::new(|x: &mut Envelope| x.header.count = 6),
        ),
        (
            "key time",
            Box::new(|x: &mut Envelope| x.header.key_time += 1),
        ),
        (
            "plan hash",
            Box::new(|x: &mut Envelope| x.header.plan_hash[0] ^= 1),
        ),
        (
            "commitment",
            Box::new(|x: &mut Envelope| x.header.commitment[31] ^= 1),
        ),
    ] {
        let mut odd = copy(e[1]);
        edit(&mut odd);
        let got = err(&o, &[e[0], &odd, e[2], e[3]]);
        assert!(
            matches!(got, RecombineError::Mismatch { position: 2, index: 2, field: f, .. } if f == field),
            "{field}: {got}"
        );
    }

    // A share with altered y bytes: with one extra share the culprit is found...
    let mut bad = copy(e[3]);
    let mut s = bad.share.expose_secret().to_vec();
    s[7] ^= 0x40;
    bad.share = ShareBytes::from_slice(&s);
    assert_eq!(
        err(&o, &[e[0], e[1], e[2], &bad]),
        RecombineError::Inconsistent {
            position: 4,
            index: 4
        }
    );
    assert_eq!(
        err(&o, &[&bad, e[0], e[1], e[2]]),
        RecombineError::Inconsistent {
            position: 1,
            index: 4
        }
    );
    // ...with exactly M shares, the commitment refuses the result.
    assert_eq!(
        err(&o, &[e[0], &bad, e[2]]),
        RecombineError::CommitmentMismatch {
            positions: vec![1, 2, 3]
        }
    );
}

#[test]
fn opening_refuses_tampered_foreign_and_wrong_pin() {
    let mut o = opened("open-a", 3, 2, 21);
    let root = o.shards.root_cert.clone();
    let s0 = o.shards.shares[0].clone();
    let s1 = o.shards.shares[1].clone();

    // Tampered ciphertext: every flipped byte position in the encrypted part is refused.
    let len = s0.message.len();
    for at in [len / 2, len - 30, len - 1] {
        let mut m = s0.message.clone();
        m[at] ^= 0x01;
        let r =
            envelope::open_with_card(&m, &mut o.cards[0][0], &o.pins[0], &s0.location_cert, &root);
        assert!(
            matches!(
                r,
                Err(OpenShareError::Open(
                    OpenError::DecryptionFailed(_)
                        | OpenError::Malformed(_)
                        | OpenError::BadSignature(_)
                ))
            ),
            "byte {at}: {:?}",
            r.err()
        );
    }
    // Truncated.
    let r = envelope::open_with_card(
        &s0.message[..len - 10],
        &mut o.cards[0][0],
        &o.pins[0],
        &s0.location_cert,
        &root,
    );
    assert!(r.is_err());

    // Holder 2's message with holder 1's card: not encrypted to it.
    let r = envelope::open_with_card(
        &s1.message,
        &mut o.cards[0][0],
        &o.pins[0],
        &s0.location_cert,
        &root,
    );
    assert!(
        matches!(
            r,
            Err(OpenShareError::Open(OpenError::NotForThisKey { .. }))
        ),
        "{:?}",
        r.err()
    );

    // Signed by another root key: the signature check refuses it.
    let other = opened("open-b", 2, 2, 22);
    let r = envelope::open_with_card(
        &s0.message,
        &mut o.cards[0][0],
        &o.pins[0],
        &s0.location_cert,
        &other.shards.root_cert,
    );
    assert!(
        matches!(r, Err(OpenShareError::Open(OpenError::BadSignature(_)))),
        "{:?}",
        r.err()
    );

    // Wrong PIN: the card's answer reaches the operator, and the retry counter counts down.
    let wrong = Pin::from_string("000000000000".into());
    let r = envelope::open_with_card(
        &s0.message,
        &mut o.cards[0][0],
        &wrong,
        &s0.location_cert,
        &root,
    );
    assert!(
        matches!(r, Err(OpenShareError::Open(OpenError::Card(ref m))) if m.contains("2 tries left")),
        "{:?}",
        r.err()
    );
    let _ = envelope::open_with_card(
        &s0.message,
        &mut o.cards[0][0],
        &wrong,
        &s0.location_cert,
        &root,
    );
    let _ = envelope::open_with_card(
        &s0.message,
        &mut o.cards[0][0],
        &wrong,
        &s0.location_cert,
        &root,
    );
    let r = envelope::open_with_card(
        &s0.message,
        &mut o.cards[0][0],
        &o.pins[0],
        &s0.location_cert,
        &root,
    );
    assert!(
        matches!(r, Err(OpenShareError::Open(OpenError::Card(ref m))) if *m == CardError::Blocked.to_string()),
        "{:?}",
        r.err()
    );
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(4))]

    /// Every M-subset, in any order, recombines to the published root key; every (M-1)-subset
    /// is refused.
    #[test]
    fn subsets_in_any_order(seed in any::<u8>(), perm in Just(()).prop_perturb(|_, mut rng| {
        let mut v: Vec<usize> = (0..4).collect();
        for i in (1..v.len()).rev() {
            let j = (rng.next_u32() as usize) % (i + 1);
            v.swap(i, j);
        }
        v
    })) {
        let o = opened("subsets", 4, 3, seed);
        let e: Vec<&Envelope> = perm.iter().map(|&i| &o.envelopes[i]).collect();
        for skip in 0..4 {
            let picked: Vec<&Envelope> = (0..4).filter(|&i| i != skip).map(|i| e[i]).collect();
            let rec = recombine(&expected(&o), &picked).unwrap();
            prop_assert_eq!(rec.root.fingerprint(), o.shards.root_fingerprint());
            let two: Vec<&Envelope> = picked[..2].to_vec();
            prop_assert_eq!(err(&o, &two), RecombineError::NotEnoughShares { have: 2, need: 3 });
        }
        prop_assert!(recombine(&expected(&o), &e).is_ok());
    }
}

#[test]
fn recovery_from_the_shard_file_names_the_share() {
    let mut o = opened("recover", 3, 2, 41);
    let shards = o.shards.clone();
    let root = shards.root_cert.clone();
    let pins: Vec<String> = o
        .pins
        .iter()
        .map(|p| p.expose_secret().to_string())
        .collect();
    let mut open = |s: &ceremony::shardfile::SealedShare| {
        let i = usize::from(s.index) - 1;
        envelope::open_with_card(
            &s.message,
            &mut o.cards[i][0],
            &Pin::from_string(pins[i].clone()),
            &s.location_cert,
            &root,
        )
    };
    let rec = ceremony::recombine::recover(&shards, &[3, 1], &mut open).unwrap();
    assert_eq!(rec.root.fingerprint(), shards.root_fingerprint());
    assert!(matches!(
        ceremony::recombine::recover(&shards, &[1, 4], &mut open),
        Err(ceremony::recombine::RecoverError::NoSuchShare { index: 4 })
    ));

    let mut tampered = shards.clone();
    let last = tampered.shares[1].message.len() - 1;
    tampered.shares[1].message[last] ^= 1;
    let got = ceremony::recombine::recover(&tampered, &[1, 2], &mut open)
        .err()
        .unwrap();
    assert!(
        matches!(got, ceremony::recombine::RecoverError::Open { index: 2, ref holder, .. } if *holder == holder_name(2)),
        "{got}"
    );
}
