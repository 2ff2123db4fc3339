//! A full ceremony with software cards, written to two "sticks", checked by the offline
//! verifier, then recovered from the written files alone.

mod common;

use std::collections::HashMap;

use ceremony::card::{CardSerial, LocationCard};
use ceremony::ceremony::{Approved, CeremonyError, NextCard, Planned, paths};
use ceremony::envelope::{self, Envelope};
use ceremony::pinfile::PinFile;
use ceremony::recombine::{self, Expected};
use ceremony::secret::Pin;
use ceremony::shardfile::ShardFile;
use ceremony::storage::{DirVolume, OutputFile, write_all};
use ceremony::verify::{self, Failure};
use common::*;

fn verify_files(files: &[OutputFile]) -> Result<verify::Report, Failure> {
    let map: HashMap<String, Vec<u8>> = files
        .iter()
        .map(|f| (f.path.clone(), f.bytes.clone()))
        .collect();
    verify::verify_with(&|p: &str| {
        map.get(p)
            .cloned()
            .ok_or_else(|| std::io::Error::new(std::io::ErrorKind::NotFound, "missing"))
    })
}

#[test]
fn full_ceremony_verified_offline_and_recovered() {
    let f = fixture("sim-2026", 5, 3);
    let done = run(&f, 42);

    // Written to two sticks, atomically, and verified by the offline verifier on disk.
    let stick_a = tempfile::tempdir().unwrap();
    let stick_b = tempfile::tempdir().unwrap();
    let mut a = DirVolume::new(stick_a.path());
    let mut b = DirVolume::new(stick_b.path());
    let report = write_all(&mut [&mut a, &mut b], "sherd-sim-2026", &done.files).unwrap();
    assert_eq!(report.volumes.len(), 2);
    for stick in [&stick_a, &stick_b] {
        let r = verify::verify_dir(&stick.path().join("sherd-sim-2026")).unwrap();
        assert_eq!(r.ceremony_id, "sim-2026");
        assert_eq!((r.threshold, r.count, r.cards), (3, 5, 6));
        assert_eq!(r.transcript_final_words, done.view.transcript_final_words);
    }

    // Recovery from the files alone: each holder's card decrypts its share with the PIN from
    // the PIN file, which the holder (or the backup holder) decrypts with a personal key.
    let shards =
        ShardFile::parse(std::str::from_utf8(file(&done.files, paths::SHARDS)).unwrap()).unwrap();
    let root_cert = &shards.root_cert;
    let mut cards = done.cards;
    let mut opened: Vec<Envelope> = Vec::new();
    for s in &shards.shares {
        let hi = usize::from(s.index) - 1;
        // Odd holders read their own PIN file; even ones have it read by their backup.
        let reader = if hi % 2 == 0 { hi } else { (hi + 1) % 5 };
        let mut kp = decryptor_of(&f.personal[reader]);
        let pins = PinFile::open(
            file(&done.files, &paths::pin_file(s.index)),
            &mut kp,
            root_cert,
        )
        .unwrap();
        assert_eq!(
            (pins.holder, pins.name.as_str(), pins.cards.len()),
            (s.index, f.names[hi].as_str(), usize::from(f.cards[hi]))
        );
        let last = pins.cards.last().unwrap();
        let card = cards[hi].last_mut().unwrap();
        let user = Pin::from_string(last.pins.user.expose_secret().to_string());
        opened.push(
            envelope::open_with_card(&s.message, card, &user, &s.location_cert, root_cert).unwrap(),
        );
    }
    let expected = shards.expected();
    assert_eq!(
        expected,
        Expected {
            ceremony_id: "sim-2026".into(),
            root_fingerprint: shards.root_fingerprint().as_bytes().to_vec(),
        }
    );
    assert_eq!(shards.share(5).unwrap().holder, f.names[4]);
    assert!(shards.share(6).is_none() && shards.share(0).is_none());
    // Every 3-subset of the opened shares recombines to the published root key.
    recombine::for_each_subset(5, 3, &mut |subset| {
        let picked: Vec<&Envelope> = subset.iter().map(|&i| &opened[i]).collect();
        let rec = recombine::recombine(&expected, &picked).unwrap();
        assert_eq!(rec.root.fingerprint(), shards.root_fingerprint());
        rec.root.self_test(b"recovered key signs").unwrap();
        true
    });
    // Two shares are not enough.
    let two: Vec<&Envelope> = opened.iter().take(2).collect();
    assert!(matches!(
        recombine::recombine(&expected, &two),
        Err(recombine::RecombineError::NotEnoughShares { have: 2, need: 3 })
    ));
    // A personal key of an unrelated holder cannot read the PIN file.
    let mut stranger = decryptor_of(&f.personal[3]);
    assert!(
        PinFile::open(
            file(&done.files, &paths::pin_file(1)),
            &mut stranger,
            root_cert
        )
        .is_err()
    );
}

fn tampered(files: &[OutputFile], path: &str, edit: impl Fn(&mut Vec<u8>)) -> Vec<OutputFile> {
    let mut out = files.to_vec();
    let f = out.iter_mut().find(|f| f.path == path).unwrap();
    edit(&mut f.bytes);
    out
}

#[test]
fn verifier_reports_the_first_failure() {
    let f = fixture("tamper-test", 3, 2);
    let done = run(&f, 7);
    verify_files(&done.files).unwrap();

    // A changed share message (re-hashed in the shard file so the file parses).
    let shards_text = String::from_utf8(file(&done.files, paths::SHARDS).to_vec()).unwrap();
    let mut shards = ShardFile::parse(&shards_text).unwrap();
    let last = shards.shares[1].message.len() - 1;
    shards.shares[1].message[last] ^= 1;
    let forged = tampered(&done.files, paths::SHARDS, |b| {
        *b = shards.to_toml().into_bytes()
    });
    let err = verify_files(&forged).unwrap_err().to_string();
    assert!(err.contains("SHA-256 of shards.toml"), "{err}");

    // A flipped byte in a PIN file.
    let p = paths::pin_file(2);
    let err = verify_files(&tampered(&done.files, &p, |b| b[40] ^= 1))
        .unwrap_err()
        .to_string();
    assert!(err.contains("pins/holder-002.asc"), "{err}");

    // A missing file.
    let missing: Vec<OutputFile> = done.files.iter().filter(|x| x.path != p).cloned().collect();
    assert!(
        matches!(verify_files(&missing), Err(Failure::Unreadable { ref path, .. }) if *path == p)
    );

    // An edited transcript record: the chain breaks or the signature fails.
    let err = verify_files(&tampered(&done.files, paths::TRANSCRIPT, |b| {
        let t = String::from_utf8(b.clone())
            .unwrap()
            .replace("name=Wendy", "name=Mallo");
        *b = t.into_bytes();
    }))
    .unwrap_err()
    .to_string();
    assert!(
        err.contains("line 6") && err.contains("chain is broken"),
        "{err}"
    );

    // An edited last record keeps a valid chain; the root signature catches it.
    let err = verify_files(&tampered(&done.files, paths::TRANSCRIPT, |b| {
        let t = String::from_utf8(b.clone()).unwrap();
        let (head, _) = t.trim_end().rsplit_once(' ').unwrap();
        *b = format!("{head} files=99\n").into_bytes();
    }))
    .unwrap_err()
    .to_string();
    assert!(
        err.contains("transcript.txt.sig") && err.contains("signature"),
        "{err}"
    );

    // A truncated transcript (last record dropped).
    let err = verify_files(&tampered(&done.files, paths::TRANSCRIPT, |b| {
        let t = String::from_utf8(b.clone()).unwrap();
        let mut lines: Vec<&str> = t.lines().collect();
        lines.pop();
        *b = format!("{}\n", lines.join("\n")).into_bytes();
    }))
    .unwrap_err()
    .to_string();
    assert!(err.contains("ceremony.end"), "{err}");

    // Another ceremony's root certificate.
    let other = run(&fixture("other", 2, 2), 8);
    let err = verify_files(&tampered(&done.files, paths::ROOT_CERT, |b| {
        *b = file(&other.files, paths::ROOT_CERT).to_vec();
    }))
    .unwrap_err()
    .to_string();
    assert!(err.contains("root certificate fingerprint"), "{err}");

    // Another ceremony's transcript signature.
    let err = verify_files(&tampered(&done.files, paths::TRANSCRIPT_SIG, |b| {
        *b = file(&other.files, paths::TRANSCRIPT_SIG).to_vec();
    }))
    .unwrap_err()
    .to_string();
    assert!(err.contains("signature"), "{err}");
}

/// The order of the steps is the types' (see the compile_fail examples in
/// `ceremony::ceremony`); what is left to check at run time is within the card phase.
#[test]
fn steps_are_enforced_in_order() {
    let f = fixture_with("order", 2, 2, &[1, 1]);
    let mut rng = seeded(1);
    let mut c = Planned::new(&f.plan_text).unwrap();
    for n in entropy_notes() {
        c.record(&ceremony::ceremony::Record::Note(n)).unwrap();
    }
    let (c, _) = c.generate_keys(&mut rng).unwrap();
    let (mut c, _) = c.seal_shares(&mut rng).unwrap();
    assert_eq!(
        c.next_card(),
        Some(NextCard {
            holder: 1,
            card: 1,
            holder_name: holder_name(1),
            cards_for_holder: 1
        })
    );
    let mut card = ceremony::card::SoftwareCard::new("A");
    c.provision_card(1, 1, &mut card, &approved("A")).unwrap();
    // Not every card yet: refused, and the phase comes back unchanged.
    let Err(refused) = c.cards_complete() else {
        panic!("complete with a card missing")
    };
    assert!(
        matches!(refused.error, CeremonyError::CardsMissing { ref missing } if *missing == vec![(2, 1)])
    );
    let mut c = *refused.state;
    assert!(matches!(
        c.provision_card(1, 1, &mut card, &approved("A")),
        Err(CeremonyError::AlreadyProvisioned { .. })
    ));
    assert!(matches!(
        c.provision_card(3, 1, &mut card, &approved("A")),
        Err(CeremonyError::NoSuchCard { .. })
    ));
    assert!(matches!(
        c.provision_card(2, 2, &mut card, &approved("A")),
        Err(CeremonyError::NoSuchCard { .. })
    ));
    let mut same_serial = ceremony::card::SoftwareCard::new("A");
    assert!(matches!(
        c.provision_card(2, 1, &mut same_serial, &approved("A")),
        Err(CeremonyError::DuplicateSerial { .. })
    ));
    let mut card2 = ceremony::card::SoftwareCard::new("B");
    c.provision_card(2, 1, &mut card2, &approved("B")).unwrap();
    assert_eq!(c.next_card(), None);
    let c = c.cards_complete().unwrap();
    let (c, _) = c.verify(&mut rng).unwrap();
    let (_, files, _) = c.finish().unwrap();
    verify_files(&files).unwrap();
}

/// What the screen approved: a blank card with this serial.
fn approved(serial: &str) -> Approved {
    Approved {
        serial: CardSerial(serial.into()),
        may_hold_keys: false,
    }
}

/// The card is checked again on the open handle right before the reset: a card swapped in
/// after the screen approved another, or one that holds keys, is left untouched.
#[test]
fn a_swapped_or_keyed_card_is_never_reset() {
    let f = fixture_with("swap", 2, 2, &[1, 1]);
    let mut rng = seeded(2);
    // Someone's real card: provisioned by another ceremony, it decrypts that ceremony's share.
    let of = fixture_with("other", 2, 2, &[1, 1]);
    let other = run(&of, 3);
    let mut other_cards = other.cards;
    let mut keyed = other_cards.remove(0).remove(0);
    assert!(keyed.holds_keys().unwrap());
    let pin = user_pin(
        &of,
        &other.files,
        &ShardFile::parse(std::str::from_utf8(file(&other.files, paths::SHARDS)).unwrap())
            .unwrap()
            .root_cert,
        1,
    );
    let before = keyed
        .ecdh(&pin, &[9; 32])
        .map(|z| z.expose_secret().to_vec())
        .ok();

    let (c, _) = Planned::new(&f.plan_text)
        .unwrap()
        .generate_keys(&mut rng)
        .unwrap();
    let (mut c, _) = c.seal_shares(&mut rng).unwrap();
    let blank = ceremony::card::SoftwareCard::new("BLANK");
    let approved_blank = Approved {
        serial: CardSerial("BLANK".into()),
        may_hold_keys: false,
    };
    // The screen approved the blank card; the keyed one is in the reader now.
    assert!(matches!(
        c.provision_card(1, 1, &mut keyed, &approved_blank),
        Err(CeremonyError::CardSwapped { .. })
    ));
    // Approved as itself but not started here: it holds keys, so it is not reset.
    let approved_keyed = Approved {
        serial: keyed.serial().unwrap(),
        may_hold_keys: false,
    };
    assert!(matches!(
        c.provision_card(1, 1, &mut keyed, &approved_keyed),
        Err(CeremonyError::NotBlank { .. })
    ));
    let after = keyed
        .ecdh(&pin, &[9; 32])
        .map(|z| z.expose_secret().to_vec())
        .ok();
    assert!(
        before.is_some() && before == after,
        "the keyed card still holds its key"
    );
    let mut blank = blank;
    c.provision_card(1, 1, &mut blank, &approved_blank).unwrap();
    assert!(blank.holds_keys().unwrap());
}

/// All key material comes from the DRBG handed in (or is derived from it): the same seed gives
/// the same root and location fingerprints, a different seed different ones. (Sequoia's own
/// OS randomness only reaches session keys and signature salts.)
#[test]
fn keys_come_only_from_the_drbg() {
    let f = fixture_with("drbg", 3, 2, &[1, 1, 1]);
    let keys = |seed: u8| {
        let c = Planned::new(&f.plan_text).unwrap();
        c.generate_keys(&mut seeded(seed)).unwrap().1
    };
    let a = keys(1);
    let b = keys(1);
    let c = keys(2);
    assert_eq!(a, b);
    assert_ne!(a.root_fingerprint, c.root_fingerprint);
    for (x, y) in a.locations.iter().zip(&c.locations) {
        assert_ne!(x.2, y.2);
    }
    assert_eq!(a.root_fingerprint_words.split(' ').count(), 20);
    assert_eq!(
        a.locations.iter().map(|l| l.0).collect::<Vec<_>>(),
        vec![1, 2, 3]
    );

    // PINs too: the same seed gives the same PINs (read back through the PIN files).
    let pin_of = |seed: u8| {
        let done = run(&f, seed);
        let shards =
            ShardFile::parse(std::str::from_utf8(file(&done.files, paths::SHARDS)).unwrap())
                .unwrap();
        user_pin(&f, &done.files, &shards.root_cert, 2)
            .expose_secret()
            .to_string()
    };
    let p1 = pin_of(3);
    assert_eq!(p1, pin_of(3));
    assert_ne!(p1, pin_of(4));
    assert_eq!(p1.len(), 12);
}
