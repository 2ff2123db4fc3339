//! The verifier checks what the records mean, not only that they are chained and signed.
//!
//! Each test takes a valid ceremony folder, changes the transcript so that it says something
//! wrong, and re-chains and re-signs it with the ceremony's own root key, so that the chain and
//! the signature are good and only the meaning is wrong. The test knows the root key because
//! the ceremony ran on a seeded DRBG: the root secret is its first draw
//! (`Planned::generate_keys`), and the key derived from it is checked against `root-cert.asc`.

mod common;

use std::collections::HashMap;

use ceremony::ceremony::paths;
use ceremony::keys::RootKey;
use ceremony::openpgp::Cert;
use ceremony::openpgp::parse::Parse;
use ceremony::record::{self, CoreRecord, Entry, Fpr, Kind};
use ceremony::secret::RootSecret;
use ceremony::shardfile::ShardFile;
use ceremony::storage::OutputFile;
use ceremony::transcript::{self, Transcript};
use ceremony::verify::{self, Failure};
use common::*;
use sha2::{Digest, Sha256};

/// A finished ceremony and its root key.
struct Signed {
    files: Vec<OutputFile>,
    root: RootKey,
}

/// Runs a ceremony with `n` holders, threshold `m`; holder 1 has two cards, the others one.
fn signed(id: &str, n: usize, m: usize, seed: u8) -> Signed {
    signed_from(&fixture(id, n, m), id, seed)
}

/// Runs the ceremony of fixture `f` (ceremony id `id`) on the DRBG seeded with `seed`.
fn signed_from(f: &Fixture, id: &str, seed: u8) -> Signed {
    let done = run(f, seed);
    let secret = RootSecret::generate(&mut seeded(seed));
    let root = RootKey::derive(&secret, id, PLAN_TIME).unwrap();
    let cert = Cert::from_bytes(file(&done.files, paths::ROOT_CERT)).unwrap();
    assert_eq!(
        root.fingerprint(),
        cert.fingerprint(),
        "the root secret is the DRBG's first draw"
    );
    Signed {
        files: done.files,
        root,
    }
}

/// The default fixture for these tests: 3 holders, threshold 2, 4 cards.
fn ceremony() -> Signed {
    signed("semantics", 3, 2, 11)
}

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

/// The transcript's records as (kind, value), in order.
fn records(files: &[OutputFile]) -> Vec<(String, String)> {
    let text = std::str::from_utf8(file(files, paths::TRANSCRIPT)).unwrap();
    let mut lines = text.lines();
    assert_eq!(lines.next(), Some(transcript::HEADER));
    lines
        .map(|l| {
            let mut parts = l.splitn(4, ' ');
            let (_, _, kind, value) = (
                parts.next(),
                parts.next(),
                parts.next().unwrap(),
                parts.next().unwrap(),
            );
            (kind.to_string(), value.to_string())
        })
        .collect()
}

/// `records` as a transcript of the current format with a fresh hash chain.
fn chain(records: &[(String, String)]) -> String {
    chain_as(transcript::HEADER, records)
}

/// `records` under the header line `header`, with a fresh hash chain.
fn chain_as(header: &str, records: &[(String, String)]) -> String {
    let mut prev: [u8; 32] = Sha256::digest(header.as_bytes()).into();
    let mut text = format!("{header}\n");
    for (i, (kind, value)) in records.iter().enumerate() {
        let line = format!("{} {} {kind} {value}", i + 1, ceremony::hex::encode(&prev));
        prev = Sha256::digest(line.as_bytes()).into();
        text.push_str(&line);
        text.push('\n');
    }
    text
}

fn replace(files: &[OutputFile], path: &str, bytes: Vec<u8>) -> Vec<OutputFile> {
    let mut out = files.to_vec();
    out.iter_mut().find(|f| f.path == path).unwrap().bytes = bytes;
    out
}

/// The folder with its transcript's records edited, re-chained and re-signed by the root key.
fn resign(s: &Signed, edit: impl FnOnce(&mut Vec<(String, String)>)) -> Vec<OutputFile> {
    let mut recs = records(&s.files);
    edit(&mut recs);
    let text = chain(&recs);
    let t = Transcript::parse(text.as_bytes()).expect("a well-formed, chained transcript");
    let sig = t.sign(&s.root, PLAN_TIME).unwrap();
    assert_eq!(text, t.to_text());
    let out = replace(&s.files, paths::TRANSCRIPT, text.into_bytes());
    replace(&out, paths::TRANSCRIPT_SIG, sig)
}

/// [`resign`], with the transcript written under `header`.
fn resign_as(
    s: &Signed,
    header: &str,
    edit: impl FnOnce(&mut Vec<(String, String)>),
) -> Vec<OutputFile> {
    let mut recs = records(&s.files);
    edit(&mut recs);
    let text = chain_as(header, &recs);
    let t = Transcript::parse(text.as_bytes()).expect("a well-formed, chained transcript");
    let sig = t.sign(&s.root, PLAN_TIME).unwrap();
    let out = replace(&s.files, paths::TRANSCRIPT, text.into_bytes());
    replace(&out, paths::TRANSCRIPT_SIG, sig)
}

/// The typed content of a core record.
fn typed(r: &(String, String)) -> Option<CoreRecord> {
    match Entry::parse(&r.0, &r.1).unwrap() {
        Entry::Core(c) => Some(c),
        Entry::Note(_) => None,
    }
}

/// Positions of the records of `kind`, in order.
fn positions(recs: &[(String, String)], kind: Kind) -> Vec<usize> {
    recs.iter()
        .enumerate()
        .filter(|(_, r)| r.0 == kind.name())
        .map(|(i, _)| i)
        .collect()
}

/// The record at `i` rewritten by `f` on its typed content.
fn edit_at(recs: &mut [(String, String)], i: usize, f: impl FnOnce(&mut CoreRecord)) {
    let mut c = typed(&recs[i]).expect("a core record");
    f(&mut c);
    recs[i] = (c.kind().name().to_string(), c.encode());
}

/// The `nth` record of `kind` rewritten by `f`.
fn edit_nth(
    recs: &mut [(String, String)],
    kind: Kind,
    nth: usize,
    f: impl FnOnce(&mut CoreRecord),
) {
    let i = positions(recs, kind)[nth];
    edit_at(recs, i, f);
}

fn location_cert(recs: &[(String, String)], holder: u8) -> record::LocationCert {
    recs.iter()
        .filter_map(typed)
        .find_map(|c| match c {
            CoreRecord::LocationCert(l) if l.holder == holder => Some(l),
            _ => None,
        })
        .unwrap()
}

/// Moves the record at `from` to just before the record at `to`.
fn move_before(recs: &mut Vec<(String, String)>, from: usize, to: usize) {
    let r = recs.remove(from);
    let to = if from < to { to - 1 } else { to };
    recs.insert(to, r);
}

fn mismatch(err: Failure) -> (String, String, String, String) {
    match err {
        Failure::Mismatch {
            what,
            expected_from,
            expected,
            found,
        } => (what, expected_from, expected, found),
        other => panic!("expected a mismatch, got: {other}"),
    }
}

fn bad_record(err: Failure) -> (u32, &'static str, String) {
    match err {
        Failure::BadRecord { seq, kind, reason } => (seq, kind, reason),
        other => panic!("expected a bad record, got: {other}"),
    }
}

/// The 1-based sequence number of the record at position `i`.
fn seq(i: usize) -> u32 {
    u32::try_from(i + 1).unwrap()
}

#[test]
fn the_helper_re_signs_a_valid_folder_unchanged() {
    let s = ceremony();
    let before = verify_files(&s.files).unwrap();
    let same = resign(&s, |_| {});
    assert_eq!(
        file(&same, paths::TRANSCRIPT),
        file(&s.files, paths::TRANSCRIPT)
    );
    assert_eq!(verify_files(&same).unwrap(), before);
    // A changed record is re-chained and re-signed: the chain and the signature pass, so any
    // failure below is about meaning.
    let changed = resign(&s, |recs| {
        let i = positions(recs, Kind::WitnessConfirm)[0];
        edit_at(recs, i, |c| {
            let CoreRecord::WitnessConfirm(w) = c else {
                unreachable!()
            };
            w.name = "Mallory".into();
        });
    });
    let r = verify_files(&changed).unwrap();
    assert_ne!(r.transcript_final_hash, before.transcript_final_hash);
}

// 1. card.provisioned location= is the holder's location certificate.

#[test]
fn a_card_with_another_holders_location_key_fails() {
    let s = ceremony();
    let forged = resign(&s, |recs| {
        let other = location_cert(recs, 1).fingerprint;
        // Holder 2's card (the third card record) claims holder 1's location key.
        edit_nth(recs, Kind::CardProvisioned, 2, |c| {
            let CoreRecord::CardProvisioned(p) = c else {
                unreachable!()
            };
            assert_eq!(p.holder, 2);
            p.location = other;
        });
    });
    let recs = records(&forged);
    let i = positions(&recs, Kind::CardProvisioned)[2];
    let j = positions(&recs, Kind::LocationCert)[1];
    let (what, from, expected, found) = mismatch(verify_files(&forged).unwrap_err());
    assert_eq!(
        what,
        format!(
            "transcript.txt record {} (card.provisioned) location=",
            seq(i)
        )
    );
    assert_eq!(
        from,
        format!(
            "transcript.txt record {} (location.cert) and shards.toml share 2",
            seq(j)
        )
    );
    assert_eq!(expected, location_cert(&recs, 2).fingerprint.0);
    assert_eq!(found, location_cert(&recs, 1).fingerprint.0);
}

// 2. card.provisioned only for the plan's cards, each once.

#[test]
fn a_card_the_plan_does_not_call_for_fails() {
    let s = ceremony();
    // Holder 4 does not exist (3 holders); holder 2 has one card, not two; holder 0 is no one.
    for (holder, card) in [(4u8, 1u8), (2, 2), (0, 1), (1, 3)] {
        let mut at = 0;
        let forged = resign(&s, |recs| {
            let last = *positions(recs, Kind::CardProvisioned).last().unwrap();
            let mut extra = recs[last].clone();
            edit_at(std::slice::from_mut(&mut extra), 0, |c| {
                let CoreRecord::CardProvisioned(p) = c else {
                    unreachable!()
                };
                p.holder = holder;
                p.card = card;
                p.serial = "000F:999999".into();
            });
            recs.insert(last + 1, extra);
            at = last + 1;
        });
        let (n, kind, reason) = bad_record(verify_files(&forged).unwrap_err());
        assert_eq!((n, kind), (seq(at), "card.provisioned"));
        assert_eq!(
            reason,
            format!("holder {holder} card {card} is not a card plan.toml calls for")
        );
    }
}

#[test]
fn a_card_provisioned_twice_fails() {
    let s = ceremony();
    // One more record for holder 3's card 1, under a new serial: five records for four cards.
    let mut at = 0;
    let mut first = 0;
    let forged = resign(&s, |recs| {
        let last = *positions(recs, Kind::CardProvisioned).last().unwrap();
        let mut extra = recs[last].clone();
        edit_at(std::slice::from_mut(&mut extra), 0, |c| {
            let CoreRecord::CardProvisioned(p) = c else {
                unreachable!()
            };
            assert_eq!((p.holder, p.card), (3, 1));
            p.serial = "000F:999999".into();
        });
        recs.insert(last + 1, extra);
        (first, at) = (last, last + 1);
    });
    let (n, _, reason) = bad_record(verify_files(&forged).unwrap_err());
    assert_eq!(n, seq(at));
    assert_eq!(
        reason,
        format!(
            "holder 3 card 1 was already provisioned in record {}",
            seq(first)
        )
    );
}

#[test]
fn a_serial_used_twice_or_a_card_missing_fails() {
    let s = ceremony();
    let forged = resign(&s, |recs| {
        let serial = match typed(&recs[positions(recs, Kind::CardProvisioned)[0]]) {
            Some(CoreRecord::CardProvisioned(p)) => p.serial,
            _ => unreachable!(),
        };
        edit_nth(recs, Kind::CardProvisioned, 3, |c| {
            let CoreRecord::CardProvisioned(p) = c else {
                unreachable!()
            };
            p.serial = serial;
        });
    });
    let (_, _, reason) = bad_record(verify_files(&forged).unwrap_err());
    assert!(
        reason.starts_with("card serial 000F:000101 was already used in record "),
        "{reason}"
    );

    let forged = resign(&s, |recs| {
        let i = positions(recs, Kind::CardProvisioned)[1];
        recs.remove(i);
    });
    let err = verify_files(&forged).unwrap_err();
    assert!(matches!(err, Failure::MissingRecord(_)), "{err}");
    assert_eq!(
        err.to_string(),
        "transcript.txt: holder 1 card 2 was never provisioned (plan.toml calls for 2 cards)"
    );
}

// 3. location.cert subkey= is the certificate's encryption subkey.

#[test]
fn a_location_cert_record_with_another_subkey_fails() {
    let s = ceremony();
    let forged = resign(&s, |recs| {
        let other = location_cert(recs, 3).subkey;
        edit_nth(recs, Kind::LocationCert, 1, |c| {
            let CoreRecord::LocationCert(l) = c else {
                unreachable!()
            };
            l.subkey = other;
        });
    });
    let recs = records(&forged);
    let j = positions(&recs, Kind::LocationCert)[1];
    let (what, from, expected, found) = mismatch(verify_files(&forged).unwrap_err());
    assert_eq!(
        what,
        "shards.toml share 2 location certificate encryption subkey"
    );
    assert_eq!(
        from,
        format!("transcript.txt record {} (location.cert)", seq(j))
    );
    assert_eq!(expected, location_cert(&recs, 3).subkey.0);
    assert_eq!(found, location_cert(&records(&s.files), 2).subkey.0);
}

// 4. pins.sealed recipients= are the holder's, then the backup holder's, personal
// certificates from the plan.

#[test]
fn pins_sealed_naming_other_recipients_fails() {
    let s = ceremony();
    let original = records(&s.files);
    let recipients = |h: usize| match typed(&original[positions(&original, Kind::PinsSealed)[h]]) {
        Some(CoreRecord::PinsSealed(p)) => p.recipients,
        _ => unreachable!(),
    };
    let holder_1 = recipients(0);
    assert_eq!(holder_1.len(), 2, "the holder's and the backup's");
    let stranger = recipients(2)[0].clone();
    for forged_recipients in [
        // The backup holder left out.
        vec![holder_1[0].clone()],
        // Holder 3's certificate in place of the backup's.
        vec![holder_1[0].clone(), stranger],
        // The right certificates in the wrong order.
        vec![holder_1[1].clone(), holder_1[0].clone()],
        // An extra recipient.
        vec![
            holder_1[0].clone(),
            holder_1[1].clone(),
            Fpr("AB".repeat(20)),
        ],
    ] {
        let list = |v: &[Fpr]| v.iter().map(|f| f.0.clone()).collect::<Vec<_>>().join(",");
        let found_list = list(&forged_recipients);
        let forged = resign(&s, |recs| {
            edit_nth(recs, Kind::PinsSealed, 0, |c| {
                let CoreRecord::PinsSealed(p) = c else {
                    unreachable!()
                };
                p.recipients = forged_recipients;
            });
        });
        let i = positions(&original, Kind::PinsSealed)[0];
        let (what, from, expected, found) = mismatch(verify_files(&forged).unwrap_err());
        assert_eq!(
            what,
            format!("transcript.txt record {} (pins.sealed) recipients", seq(i))
        );
        assert_eq!(
            from,
            "plan.toml (personal certificates of holder 1, then of backup holder 2)"
        );
        assert_eq!(expected, list(&holder_1));
        assert_eq!(found, found_list);
    }
}

// 5. verify.subsets says every M-subset for the plan's N and M.

#[test]
fn verify_subsets_with_the_wrong_numbers_fails() {
    let s = ceremony();
    // 3 holders, threshold 2: C(3, 2) = 3, all checked.
    assert!(
        records(&s.files)
            .iter()
            .any(|r| r.0 == "verify.subsets" && r.1 == "checked=3 total=3 policy=all")
    );
    for (checked, total, policy, field, expected, found) in [
        (2, 3, record::SubsetPolicy::All, "checked", "3", "2"),
        (4, 4, record::SubsetPolicy::All, "total", "3", "4"),
        (
            3,
            3,
            record::SubsetPolicy::CyclicWindowsRandom,
            "policy",
            "all",
            "cyclic-windows+random",
        ),
        (
            1003,
            u128::MAX,
            record::SubsetPolicy::CyclicWindowsRandom,
            "total",
            "3",
            "over-2^128",
        ),
    ] {
        let forged = resign(&s, |recs| {
            edit_nth(recs, Kind::VerifySubsets, 0, |c| {
                *c = CoreRecord::VerifySubsets(record::VerifySubsets {
                    checked,
                    total: record::SubsetTotal(total),
                    policy,
                });
            });
        });
        let (what, from, e, f) = mismatch(verify_files(&forged).unwrap_err());
        assert!(
            what.starts_with("transcript.txt record ")
                && what.ends_with(&format!("(verify.subsets) {field}=")),
            "{what}"
        );
        assert!(
            from.starts_with("plan.toml (N=3, M=2: C(N, M) = 3;"),
            "{from}"
        );
        assert_eq!((e.as_str(), f.as_str()), (expected, found));
    }
}

// 6. Records in the ceremony's order.

#[test]
fn records_out_of_the_ceremonys_order_fail() {
    let s = ceremony();
    let cases: [(Kind, Kind, Kind); 5] = [
        // (record moved, moved before the first record of, the record reported, which comes
        // after it)
        // A card provisioned before the keys exist.
        (
            Kind::CardProvisioned,
            Kind::RootFingerprint,
            Kind::RootFingerprint,
        ),
        // An output file listed before the verification.
        (Kind::OutputFile, Kind::VerifySubsets, Kind::VerifySubsets),
        // PIN files sealed before the cards.
        (
            Kind::PinsSealed,
            Kind::CardProvisioned,
            Kind::CardProvisioned,
        ),
        // A share sealed before its location key.
        (Kind::ShareSealed, Kind::LocationCert, Kind::LocationCert),
        // The plan hash before the plan.
        (Kind::PlanHash, Kind::CeremonyPlan, Kind::CeremonyPlan),
    ];
    for (moved, before, reported) in cases {
        let mut at = 0;
        let forged = resign(&s, |recs| {
            let from = positions(recs, moved)[0];
            let to = positions(recs, before)[0];
            move_before(recs, from, to);
            at = positions(recs, reported)[0];
        });
        let (n, kind, reason) = bad_record(verify_files(&forged).unwrap_err());
        assert_eq!((n, kind), (seq(at), reported.name()), "{moved:?}");
        assert_eq!(
            reason,
            format!(
                "out of the ceremony's order: it comes after a {} record",
                moved.name()
            )
        );
    }
}

#[test]
fn witness_confirmations_may_come_at_any_step_before_the_end() {
    let s = ceremony();
    let forged = resign(&s, |recs| {
        let last_output = *positions(recs, Kind::OutputFile).last().unwrap();
        let w = recs[positions(recs, Kind::WitnessConfirm)[0]].clone();
        recs.insert(last_output + 1, w.clone());
        recs.insert(0, w);
    });
    verify_files(&forged).unwrap();
}

#[test]
fn a_once_only_record_repeated_fails() {
    let s = ceremony();
    for kind in [
        Kind::CeremonyPlan,
        Kind::PlanHash,
        Kind::VerifySubsets,
        Kind::VerifySelfTest,
    ] {
        let forged = resign(&s, |recs| {
            let i = positions(recs, kind)[0];
            recs.insert(i + 1, recs[i].clone());
        });
        let err = verify_files(&forged).unwrap_err();
        assert_eq!(
            err.to_string(),
            format!("transcript.txt: more than one {} record", kind.name())
        );
    }
}

#[test]
fn ceremony_end_counts_the_output_files() {
    let s = ceremony();
    let forged = resign(&s, |recs| {
        let i = *positions(recs, Kind::OutputFile).last().unwrap();
        recs.remove(i);
    });
    let (what, from, expected, found) = mismatch(verify_files(&forged).unwrap_err());
    assert_eq!(what, "number of output.file records");
    assert!(from.ends_with("(ceremony.end)"), "{from}");
    assert_eq!((expected.as_str(), found.as_str()), ("6", "5"));

    let forged = resign(&s, |recs| {
        let i = positions(recs, Kind::OutputFile)[0];
        recs.insert(i + 1, recs[i].clone());
        let end = recs.len() - 1;
        edit_at(recs, end, |c| {
            *c = CoreRecord::CeremonyEnd(record::CeremonyEnd { files: 7 });
        });
    });
    let (_, _, reason) = bad_record(verify_files(&forged).unwrap_err());
    assert_eq!(reason, "plan.toml is listed twice");
}

// 7. Every message names the real source of the expected value.

#[test]
fn a_ceremony_plan_record_contradicting_the_plan_names_the_plan() {
    let s = ceremony();
    let forged = resign(&s, |recs| {
        edit_nth(recs, Kind::CeremonyPlan, 0, |c| {
            let CoreRecord::CeremonyPlan(p) = c else {
                unreachable!()
            };
            p.threshold = 3;
        });
    });
    let i = positions(&records(&forged), Kind::CeremonyPlan)[0];
    let err = verify_files(&forged).unwrap_err().to_string();
    assert_eq!(
        err,
        format!(
            "transcript.txt record {} (ceremony.plan) threshold=: plan.toml says 2, found 3",
            seq(i)
        )
    );
}

#[test]
fn mismatch_messages_name_their_source() {
    let s = ceremony();
    let recs = records(&s.files);
    // A value from the transcript: the record is named.
    let plan_out = positions(&recs, Kind::OutputFile)[0];
    let mut plan_text = file(&s.files, paths::PLAN).to_vec();
    plan_text.push(b'\n');
    let err = verify_files(&replace(&s.files, paths::PLAN, plan_text))
        .unwrap_err()
        .to_string();
    assert!(
        err.starts_with(&format!(
            "SHA-256 of plan.toml: transcript.txt record {} (output.file) says ",
            seq(plan_out)
        )),
        "{err}"
    );

    // A value from the plan: the plan is named. Another plan (one more witness), re-listed
    // and re-signed: the plan hash record no longer matches it.
    let mut plan_text = String::from_utf8(file(&s.files, paths::PLAN).to_vec()).unwrap();
    plan_text.push_str("\n[[witness]]\nname = \"Mallory\"\n");
    let digest: [u8; 32] = Sha256::digest(plan_text.as_bytes()).into();
    let size = plan_text.len();
    let mut s2 = Signed {
        files: replace(&s.files, paths::PLAN, plan_text.into_bytes()),
        root: s.root,
    };
    s2.files = resign(&s2, |recs| {
        edit_at(recs, plan_out, |c| {
            let CoreRecord::OutputFile(o) = c else {
                unreachable!()
            };
            o.size = size;
            o.sha256 = record::Hash32(digest);
        });
    });
    let err = verify_files(&s2.files).unwrap_err().to_string();
    let ph = positions(&recs, Kind::PlanHash)[0];
    assert!(
        err.starts_with(&format!(
            "canonical hash of plan.toml: transcript.txt record {} (plan.hash) says ",
            seq(ph)
        )),
        "{err}"
    );
    assert!(!err.contains("transcript says"));

    // A value from the plan compared with shards.toml (re-listed and re-signed).
    let mut shards =
        ShardFile::parse(std::str::from_utf8(file(&s2.files, paths::SHARDS)).unwrap()).unwrap();
    shards.shares[0].holder = "Mallory".into();
    let text = shards.to_toml();
    let digest: [u8; 32] = Sha256::digest(text.as_bytes()).into();
    let size = text.len();
    // (On the original folder: only the shard file and its output.file record changed.)
    let s3 = Signed {
        files: replace(&s.files, paths::SHARDS, text.into_bytes()),
        root: s2.root,
    };
    let shards_out = positions(&recs, Kind::OutputFile)[2];
    let folder = resign(&s3, |recs| {
        edit_at(recs, shards_out, |c| {
            let CoreRecord::OutputFile(o) = c else {
                unreachable!()
            };
            assert_eq!(o.path, paths::SHARDS);
            o.size = size;
            o.sha256 = record::Hash32(digest);
        });
    });
    let err = verify_files(&folder).unwrap_err().to_string();
    assert_eq!(
        err,
        "shards.toml share 1 holder name: plan.toml says Holder 001, found Mallory"
    );
}

// 8. Values are parsed strictly: a quoted value cannot inject a field.

#[test]
fn a_quoted_value_cannot_inject_a_field() {
    // A caller's record whose quoted identity contains " counted=yes".
    let line_value = r#"identity="evil device counted=yes" counted=no"#;
    let text = chain(&[("test.entropy-source".into(), line_value.into())]);
    let t = Transcript::parse(text.as_bytes()).unwrap();
    let Entry::Note(n) = Entry::parse(&t.records()[0].kind, &t.records()[0].value).unwrap() else {
        panic!("a caller's record")
    };
    assert_eq!(
        n.fields().pairs(),
        [
            (
                "identity".to_string(),
                "evil device counted=yes".to_string()
            ),
            ("counted".to_string(), "no".to_string())
        ]
    );
    assert_eq!(n.fields().get("counted"), Some("no"));

    // The same in a signed ceremony, on a core record: a card serial that carries another
    // holder's location= is read as a serial; the record's own location= is the one checked.
    let s = ceremony();
    let folder = resign(&s, |recs| {
        let other = location_cert(recs, 1).fingerprint;
        edit_nth(recs, Kind::CardProvisioned, 2, |c| {
            let CoreRecord::CardProvisioned(p) = c else {
                unreachable!()
            };
            p.serial = format!("000F:000201 location={other} counted=yes");
        });
    });
    let recs = records(&folder);
    let i = positions(&recs, Kind::CardProvisioned)[2];
    assert!(
        recs[i]
            .1
            .starts_with(r#"holder=2 card=1 serial="000F:000201 location="#)
    );
    let Some(CoreRecord::CardProvisioned(p)) = typed(&recs[i]) else {
        unreachable!()
    };
    assert_eq!(p.location, location_cert(&recs, 2).fingerprint);
    assert!(p.serial.ends_with(" counted=yes"));
    verify_files(&folder).unwrap();

    // Written without the quotes, the same text is extra fields, and the record is refused
    // when the transcript is read, before anything else.
    let mut bad = recs.clone();
    bad[i].1 = bad[i].1.replacen('"', "", 2);
    let folder = replace(&folder, paths::TRANSCRIPT, chain(&bad).into_bytes());
    let err = verify_files(&folder).unwrap_err();
    assert!(
        matches!(err, Failure::Transcript { ref path, .. } if path == "transcript.txt"),
        "{err}"
    );
    // Unquoted, the first location= would be read as the record's: only the strict field
    // order (exactly one location=, then test-decrypt=) refuses it.
    assert!(
        err.to_string()
            .contains("card.provisioned: expected field test-decrypt=, found counted="),
        "{err}"
    );
}

/// The record of `kind` whose fields `f` rewrites: (key, value) pairs, in order.
fn edit_note(
    recs: &mut [(String, String)],
    kind: &str,
    nth: usize,
    f: impl FnOnce(&mut Vec<(String, String)>),
) {
    let i = recs
        .iter()
        .enumerate()
        .filter(|(_, r)| r.0 == kind)
        .map(|(i, _)| i)
        .nth(nth)
        .unwrap();
    let fields = record::Fields::parse(kind, &recs[i].1).unwrap();
    let mut pairs = fields.pairs().to_vec();
    f(&mut pairs);
    let rebuilt = pairs
        .iter()
        .fold(record::Fields::new(), |acc, (k, v)| acc.with(k, v.clone()));
    recs[i].1 = rebuilt.encode();
}

fn set(pairs: &mut [(String, String)], key: &str, value: &str) {
    pairs.iter_mut().find(|(k, _)| k == key).unwrap().1 = value.into();
}

#[test]
fn entropy_records_are_checked_against_the_policy() {
    let s = ceremony();
    let report = verify_files(&s.files).unwrap();
    assert_eq!(report.entropy.basis, verify::EntropyBasis::Policy);
    assert_eq!(report.entropy.counted.len(), 2);
    assert!(!report.entropy.virtual_allowed);

    // A counted source that is virtual, in a plan that does not allow virtual hardware.
    let files = resign(&s, |r| {
        edit_note(r, "entropy.source", 0, |p| {
            set(p, "virtual", "a software TPM (swtpm)")
        })
    });
    let (_, kind, why) = bad_record(verify_files(&files).unwrap_err());
    assert_eq!(kind, "entropy.source");
    assert!(why.contains("does not allow virtual hardware"), "{why}");

    // The policy record claiming virtual hardware was allowed when the plan does not.
    let files = resign(&s, |r| {
        edit_note(r, "entropy.policy", 0, |p| {
            set(p, "allow-virtual-hardware", "true")
        })
    });
    let (what, from, ..) = mismatch(verify_files(&files).unwrap_err());
    assert_eq!(
        (what.as_str(), from.as_str()),
        ("allow-virtual-hardware", "plan.toml")
    );

    // Only one source counted.
    let files = resign(&s, |r| {
        edit_note(r, "entropy.source", 1, |p| set(p, "counted", "false"))
    });
    let err = verify_files(&files).unwrap_err().to_string();
    assert!(err.contains("1 entropy source(s) counted"), "{err}");

    // A counted source credited below the policy's minimum.
    let files = resign(&s, |r| {
        edit_note(r, "entropy.source", 1, |p| set(p, "credited-bits", "256"))
    });
    let (_, _, why) = bad_record(verify_files(&files).unwrap_err());
    assert!(why.contains("below the policy's 320"), "{why}");

    // A counted source that failed its health tests.
    let files = resign(&s, |r| {
        edit_note(r, "entropy.source", 0, |p| set(p, "healthy", "false"))
    });
    let (_, _, why) = bad_record(verify_files(&files).unwrap_err());
    assert!(why.contains("not healthy"), "{why}");

    // A policy weaker than the ceremony's.
    let files = resign(&s, |r| {
        edit_note(r, "entropy.policy", 0, |p| set(p, "hardware-sources", "1"))
    });
    let (_, kind, _) = bad_record(verify_files(&files).unwrap_err());
    assert_eq!(kind, "entropy.policy");

    // Another mixer.
    let files = resign(&s, |r| {
        edit_note(r, "entropy.mixer", 0, |p| set(p, "context", "xor"))
    });
    let (what, ..) = mismatch(verify_files(&files).unwrap_err());
    assert_eq!(what, "mixer context");

    // No mixer at all, or no kernel CSPRNG.
    let files = resign(&s, |r| r.retain(|(k, _)| k != "entropy.mixer"));
    assert!(matches!(
        verify_files(&files).unwrap_err(),
        Failure::MissingRecord(m) if m.contains("entropy.mixer")
    ));
    let files = resign(&s, |r| {
        edit_note(r, "entropy.source", 2, |p| set(p, "healthy", "false"))
    });
    assert!(matches!(
        verify_files(&files).unwrap_err(),
        Failure::MissingRecord(m) if m.contains("os-csprng")
    ));

    // Entropy recorded after the root key was made.
    let files = resign(&s, |r| {
        let i = r.iter().position(|(k, _)| k == "entropy.mixer").unwrap();
        let m = r.remove(i);
        let root = r.iter().position(|(k, _)| k == "root.fingerprint").unwrap();
        r.insert(root + 1, m);
    });
    let (_, _, why) = bad_record(verify_files(&files).unwrap_err());
    assert!(why.contains("before root.fingerprint"), "{why}");

    // A field given twice cannot smuggle a second value past the check.
    let files = resign(&s, |r| {
        edit_note(r, "entropy.source", 0, |p| {
            p.push(("virtual".into(), "no".into()))
        })
    });
    let (_, _, why) = bad_record(verify_files(&files).unwrap_err());
    assert!(why.contains("appears twice"), "{why}");
}

#[test]
fn tpm_quote_records_are_placed_and_parsed() {
    let s = ceremony();
    // The test ceremonies make no quote: nothing recorded.
    assert_eq!(
        verify_files(&s.files).unwrap().quote,
        verify::QuoteCheck::NotRecorded
    );
    let at_entropy = |r: &mut Vec<(String, String)>, value: &str| {
        let i = r.iter().position(|(k, _)| k == "entropy.policy").unwrap();
        r.insert(i, ("tpm.quote".into(), value.into()));
    };
    // Why none was made is reported as recorded.
    let files = resign(&s, |r| at_entropy(r, r#"none="no TPM: test""#));
    assert_eq!(
        verify_files(&files).unwrap().quote,
        verify::QuoteCheck::NotMade("no TPM: test".into())
    );
    // Two quote records, a quote after the root key, and a quote that is not one: refused.
    let files = resign(&s, |r| {
        at_entropy(r, "none=a");
        at_entropy(r, "none=b");
    });
    let (_, kind, why) = bad_record(verify_files(&files).unwrap_err());
    assert_eq!(
        (kind, why.as_str()),
        ("tpm.quote", "a second tpm.quote record")
    );
    let files = resign(&s, |r| {
        let root = r.iter().position(|(k, _)| k == "root.fingerprint").unwrap();
        r.insert(root + 1, ("tpm.quote".into(), "none=late".into()));
    });
    let (_, _, why) = bad_record(verify_files(&files).unwrap_err());
    assert!(why.contains("before root.fingerprint"), "{why}");
    let files = resign(&s, |r| {
        at_entropy(
            r,
            "attest=00 signature=00 ak-public=00 ak-name=000b ek-cert=none",
        )
    });
    // Hex but not a quote: the attestation values it would be checked against are missing
    // here, and that is refused before anything is parsed.
    let err = verify_files(&files).unwrap_err().to_string();
    assert!(err.contains("tpm.pcr0-sha256"), "{err}");
}

/// The eight `tpm.pcr<N>-sha256` records of a clean Heads boot (PCR 2, 5, 6, 7 hold `[i; 32]`,
/// UNKNOWN by Heads' rules), with `edit` applied to the (value, verdict) pairs first.
fn heads_pcr_records(edit: impl FnOnce(&mut [(String, String); 8])) -> Vec<(String, String)> {
    let mut pcrs: [(String, String); 8] =
        std::array::from_fn(|i| match heads_config::attest::heads_value(i as u8) {
            Some(v) => (hexstr::encode(&v), "PASS".to_string()),
            None => (hexstr::encode(&[i as u8; 32]), "UNKNOWN".to_string()),
        });
    edit(&mut pcrs);
    pcrs.iter()
        .enumerate()
        .map(|(i, (v, verdict))| {
            (
                format!("tpm.pcr{i}-sha256"),
                format!("value={v} verdict={verdict}"),
            )
        })
        .collect()
}

/// The attestation's PCR records at the start, then `tpm.quote none=...`, and the given boot
/// records, right before the entropy records (where the ceremony writes them).
fn with_boot(
    r: &mut Vec<(String, String)>,
    pcrs: Vec<(String, String)>,
    after_quote: &[(&str, &str)],
) {
    for (i, p) in pcrs.into_iter().enumerate() {
        r.insert(i, p);
    }
    let at = r.iter().position(|(k, _)| k == "entropy.policy").unwrap();
    let mut boot = vec![(
        "tpm.quote".to_string(),
        r#"none="no TPM: test""#.to_string(),
    )];
    boot.extend(
        after_quote
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string())),
    );
    for (j, rec) in boot.into_iter().enumerate() {
        r.insert(at + j, rec);
    }
}

/// The verdicts for [`heads_pcr_records`] without a plan table and without a quote.
const HEADS_VERDICTS: &str = "pcr0=PASS pcr1=PASS pcr2=UNKNOWN pcr3=PASS pcr4=PASS \
                              pcr5=UNKNOWN pcr6=UNKNOWN pcr7=UNKNOWN quote=UNKNOWN";

fn heads_deviation(reason: &str) -> String {
    let v = |i: u8| hexstr::encode(&[i; 32]);
    format!(
        "pcr2=UNKNOWN pcr2-value={} pcr5=UNKNOWN pcr5-value={} pcr6=UNKNOWN pcr6-value={} \
         pcr7=UNKNOWN pcr7-value={} quote=UNKNOWN reason=\"{reason}\"",
        v(2),
        v(5),
        v(6),
        v(7)
    )
}

#[test]
fn the_boot_verdicts_are_recomputed_and_every_deviation_is_listed() {
    let s = ceremony();
    // Written before the verdicts existed: reported as not recorded.
    assert_eq!(
        verify_files(&s.files).unwrap().boot,
        verify::BootCheck::NotRecorded
    );
    let reason = "QEMU: no recorded laptop values";
    let dev = heads_deviation(reason);
    let good = |r: &mut Vec<(String, String)>| {
        with_boot(
            r,
            heads_pcr_records(|_| {}),
            &[
                ("attest.verdicts", HEADS_VERDICTS),
                ("attest.deviation", &dev),
            ],
        )
    };
    let report = verify_files(&resign(&s, good)).expect("a recorded deviation passes");
    let verify::BootCheck::Checked {
        machine, deviation, ..
    } = &report.boot
    else {
        panic!("{:?}", report.boot)
    };
    assert_eq!(machine, &None);
    assert_eq!(
        deviation,
        &Some((
            ["pcr2", "pcr5", "pcr6", "pcr7", "quote"]
                .map(String::from)
                .to_vec(),
            reason.to_string()
        ))
    );
    let lines = report.boot.lines();
    assert_eq!(
        lines.last().unwrap(),
        &format!("DEVIATION recorded for pcr2 pcr5 pcr6 pcr7 quote: \"{reason}\"")
    );

    // No deviation for items not PASS: refused, naming them.
    let files = resign(&s, |r| {
        with_boot(
            r,
            heads_pcr_records(|_| {}),
            &[("attest.verdicts", HEADS_VERDICTS)],
        )
    });
    let err = verify_files(&files).unwrap_err().to_string();
    assert!(
        err.contains("pcr2 pcr5 pcr6 pcr7 quote not PASS and no attest.deviation"),
        "{err}"
    );

    // A verdict the rules do not give: PCR2 claimed PASS.
    let claimed = HEADS_VERDICTS.replace("pcr2=UNKNOWN", "pcr2=PASS");
    let files = resign(&s, |r| {
        with_boot(
            r,
            heads_pcr_records(|_| {}),
            &[("attest.verdicts", &claimed), ("attest.deviation", &dev)],
        )
    });
    let (what, _, want, found) = mismatch(verify_files(&files).unwrap_err());
    assert_eq!(
        (what.as_str(), want.as_str()),
        ("boot verdicts", HEADS_VERDICTS)
    );
    assert_eq!(found, claimed);

    // The attestation's own verdict must follow Heads' rules: a firmware log's replay is
    // never PASS, and Heads' value always is.
    for (i, value, verdict) in [
        (0, "11".repeat(32), "PASS"),
        (
            4,
            hexstr::encode(&heads_config::attest::heads_value(4).unwrap()),
            "UNKNOWN",
        ),
        (5, hexstr::encode(&[5; 32]), "PASS"),
    ] {
        let files = resign(&s, |r| {
            with_boot(
                r,
                heads_pcr_records(|p| p[i] = (value.clone(), verdict.into())),
                &[
                    ("attest.verdicts", HEADS_VERDICTS),
                    ("attest.deviation", &dev),
                ],
            )
        });
        let (_, kind, why) = bad_record(verify_files(&files).unwrap_err());
        assert_eq!(kind, "tpm.pcr<N>-sha256");
        assert!(why.contains("by Heads' rules"), "{why}");
    }

    // The deviation must carry every open item with the value recorded at the attestation.
    for wrong in [
        dev.replace(&hexstr::encode(&[6; 32]), &hexstr::encode(&[9; 32])),
        dev.replace(" quote=UNKNOWN", ""),
        dev.replace("pcr2=UNKNOWN", "pcr2=FAIL"),
    ] {
        let files = resign(&s, |r| {
            with_boot(
                r,
                heads_pcr_records(|_| {}),
                &[
                    ("attest.verdicts", HEADS_VERDICTS),
                    ("attest.deviation", &wrong),
                ],
            )
        });
        let (what, _, _, found) = mismatch(verify_files(&files).unwrap_err());
        assert_eq!((what.as_str(), found), ("deviation", wrong));
    }

    // A reason that says nothing, two deviations, or a deviation out of its place.
    let short = heads_deviation("too short");
    let files = resign(&s, |r| {
        with_boot(
            r,
            heads_pcr_records(|_| {}),
            &[
                ("attest.verdicts", HEADS_VERDICTS),
                ("attest.deviation", &short),
            ],
        )
    });
    let (_, kind, why) = bad_record(verify_files(&files).unwrap_err());
    assert_eq!(kind, "attest.deviation");
    assert!(why.contains("the reason has 9 characters"), "{why}");
    let files = resign(&s, |r| {
        with_boot(
            r,
            heads_pcr_records(|_| {}),
            &[
                ("attest.verdicts", HEADS_VERDICTS),
                ("attest.deviation", &dev),
                ("attest.deviation", &dev),
            ],
        )
    });
    let (_, _, why) = bad_record(verify_files(&files).unwrap_err());
    assert_eq!(why, "a second attest.deviation record");
    let files = resign(&s, |r| {
        with_boot(
            r,
            heads_pcr_records(|_| {}),
            &[("attest.verdicts", HEADS_VERDICTS)],
        );
        let root = r.iter().position(|(k, _)| k == "root.fingerprint").unwrap();
        r.insert(root, ("attest.deviation".into(), dev.clone()));
    });
    let (_, _, why) = bad_record(verify_files(&files).unwrap_err());
    assert!(why.contains("right after attest.verdicts"), "{why}");
    // Verdicts without a quote before them.
    let files = resign(&s, |r| {
        with_boot(
            r,
            heads_pcr_records(|_| {}),
            &[("attest.verdicts", HEADS_VERDICTS)],
        );
        r.retain(|(k, _)| k != "tpm.quote");
    });
    let (_, _, why) = bad_record(verify_files(&files).unwrap_err());
    assert!(why.contains("no tpm.quote record"), "{why}");
}

#[test]
fn a_plan_that_records_the_laptop_judges_each_pcr_against_it() {
    let id = "semantics-machine";
    let mut f = fixture(id, 3, 2);
    // The laptop's values: Heads' for 0, 1, 3, 4 and [i; 32] for the others, and a key name.
    let pcrs = heads_pcr_records(|_| {});
    let key = format!("000b{}", "5a".repeat(32));
    f.plan_text.push_str("\n[machine]\nname = \"laptop-1\"\n");
    for (i, (_, v)) in pcrs.iter().enumerate() {
        let value = v.split(' ').next().unwrap().trim_start_matches("value=");
        f.plan_text.push_str(&format!("pcr{i} = \"{value}\"\n"));
    }
    f.plan_text.push_str(&format!("quote_key = \"{key}\"\n"));
    let s = signed_from(&f, id, 12);
    // Every PCR equals its recorded value; without a quote, the quote and its key are UNKNOWN.
    let verdicts = "machine=laptop-1 pcr0=PASS pcr1=PASS pcr2=PASS pcr3=PASS pcr4=PASS \
                    pcr5=PASS pcr6=PASS pcr7=PASS quote=UNKNOWN quote-key=UNKNOWN";
    let reason = "the TPM was busy: no quote made";
    let dev = format!("quote=UNKNOWN quote-key=UNKNOWN reason=\"{reason}\"");
    let files = resign(&s, |r| {
        with_boot(
            r,
            pcrs.clone(),
            &[("attest.verdicts", verdicts), ("attest.deviation", &dev)],
        )
    });
    let report = verify_files(&files).expect("passes");
    let lines = report.boot.lines();
    assert!(
        lines[0].starts_with("judged against the values the plan records for laptop-1"),
        "{lines:?}"
    );
    assert!(
        lines
            .iter()
            .any(|l| l == "not PASS: quote UNKNOWN, quote-key UNKNOWN")
    );

    // PCR6 differs from the recorded value: it must be FAIL, and in the deviation.
    let changed = heads_pcr_records(|p| p[6].0 = hexstr::encode(&[0x66; 32]));
    let files = resign(&s, |r| {
        with_boot(
            r,
            changed.clone(),
            &[("attest.verdicts", verdicts), ("attest.deviation", &dev)],
        )
    });
    let (what, _, want, _) = mismatch(verify_files(&files).unwrap_err());
    assert_eq!(what, "boot verdicts");
    assert!(want.contains("pcr6=FAIL"), "{want}");
    let failing = verdicts.replace("pcr6=PASS", "pcr6=FAIL");
    let dev6 = format!(
        "pcr6=FAIL pcr6-value={} quote=UNKNOWN quote-key=UNKNOWN reason=\"{reason}\"",
        hexstr::encode(&[0x66; 32])
    );
    let files = resign(&s, |r| {
        with_boot(
            r,
            changed,
            &[("attest.verdicts", &failing), ("attest.deviation", &dev6)],
        )
    });
    verify_files(&files).expect("a FAIL the witnesses recorded passes, listed");
}

// 15. The second implementations' records (docs/dual-implementations.md).

fn without_dual(recs: &mut Vec<(String, String)>, kinds: &[Kind]) {
    recs.retain(|r| !kinds.iter().any(|k| r.0 == k.name()));
}

#[test]
fn the_dual_records_are_required_and_counted() {
    let s = ceremony();
    let r = verify_files(&s.files).unwrap();
    assert_eq!(
        r.dual,
        verify::DualCheck::Checked {
            shamir: ("shamir-gf256".into(), 6),
            signatures: ("ed25519-compact-2.6.1".into(), 10),
            fingerprints: (ceremony::dual::KEYS_SECOND.into(), 8, 2),
        }
    );
    assert_eq!(
        r.dual.line(),
        format!(
            "1 split and 6 combinations (shamir-gf256), 10 signatures (ed25519-compact-2.6.1), 8 fingerprints and 2 HKDF outputs ({}) agreed",
            ceremony::dual::KEYS_SECOND
        )
    );

    // Missing: named, all of them.
    let forged = resign(&s, |recs| {
        without_dual(recs, &[Kind::DualShamir, Kind::DualFingerprint]);
    });
    assert_eq!(
        verify_files(&forged).unwrap_err().to_string(),
        "transcript.txt: no dual.shamir, dual.fingerprint record: a sherd-transcript/3 transcript must record what the second implementations cross-checked"
    );

    // Counts that are not this plan's.
    let forged = resign(&s, |recs| {
        edit_nth(recs, Kind::DualSignatures, 0, |c| {
            let CoreRecord::DualSignatures(d) = c else {
                unreachable!()
            };
            d.checks = 9;
        });
    });
    let (what, from, expected, found) = mismatch(verify_files(&forged).unwrap_err());
    assert!(what.ends_with("(dual.signatures) checks="), "{what}");
    assert!(from.starts_with("plan.toml (N=3: "), "{from}");
    assert_eq!((expected.as_str(), found.as_str()), ("10", "9"));

    let forged = resign(&s, |recs| {
        edit_nth(recs, Kind::DualShamir, 0, |c| {
            let CoreRecord::DualShamir(d) = c else {
                unreachable!()
            };
            d.combinations = 3;
        });
    });
    let (_, kind, reason) = bad_record(verify_files(&forged).unwrap_err());
    assert_eq!(kind, "dual.shamir");
    assert!(reason.contains("at least 4"), "{reason}");

    let forged = resign(&s, |recs| {
        edit_nth(recs, Kind::DualFingerprint, 0, |c| {
            let CoreRecord::DualFingerprint(d) = c else {
                unreachable!()
            };
            d.hkdf = 1;
        });
    });
    let (what, _, _, _) = mismatch(verify_files(&forged).unwrap_err());
    assert!(what.ends_with("(dual.fingerprint) hkdf="), "{what}");

    // Out of place: before the self-test.
    let forged = resign(&s, |recs| {
        let from = positions(recs, Kind::DualSignatures)[0];
        let to = positions(recs, Kind::VerifySelfTest)[0];
        move_before(recs, from, to);
    });
    let (_, kind, reason) = bad_record(verify_files(&forged).unwrap_err());
    assert_eq!(kind, "verify.self-test");
    assert!(
        reason.contains("after a dual.signatures record"),
        "{reason}"
    );
}

#[test]
fn a_format_2_folder_passes_with_a_note_that_nothing_was_recorded() {
    let s = ceremony();
    let all = [
        Kind::DualShamir,
        Kind::DualSignatures,
        Kind::DualFingerprint,
    ];
    let v2 = resign_as(&s, transcript::HEADER_V2, |recs| without_dual(recs, &all));
    let r = verify_files(&v2).unwrap();
    assert_eq!(r.dual, verify::DualCheck::NotRecorded("sherd-transcript/2"));
    assert_eq!(
        r.dual.line(),
        "not recorded (sherd-transcript/2: written before sherd recorded its second implementations' checks)"
    );
    // The same records under the format-3 header are refused.
    let v3 = resign(&s, |recs| without_dual(recs, &all));
    assert!(matches!(
        verify_files(&v3).unwrap_err(),
        Failure::MissingRecord(m) if m.starts_with("no dual.shamir, dual.signatures, dual.fingerprint record")
    ));
}
