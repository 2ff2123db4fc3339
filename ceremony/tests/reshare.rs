//! `reshare` on the host with software cards: a 2-of-3 generation, holders 3 and 1 recombine,
//! the same secret split 3-of-4 for new holders on new blank cards; the folder verified; the
//! next recovery pinned with it uses 3 of the new cards (the same root key), refuses the old
//! cards, PIN files and sealed shares; a replace-card after the reshare; tampered reshare
//! folders and a wrong second Shamir implementation refused (docs/formats/recovery.md,
//! "reshare"). The reshare folder, the recoveries pinned with it and the tampered copies are
//! also given to the independent Python verifier, which must come to the same verdict
//! (tests/src/pyverify.rs).

mod common;
#[path = "../../tests/src/pyverify.rs"]
#[allow(dead_code)]
mod pyverify;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use ceremony::card::{CardSerial, LocationCard, SoftwareCard, SoftwarePersonalCard};
use ceremony::dual::Seconds;
use ceremony::openpgp::Cert;
use ceremony::recovery::RecoveryError;
use ceremony::recovery::{Applied, PinError, PinnedRoot};
use ceremony::recovery_flow::{
    Finished, FlowError, HolderFault, HolderInput, Recombined, RecoveryRecord, paths, records,
};
use ceremony::request::OperationKind;
use ceremony::shamir::{SecondShamir, ShamirError, ShamirGf256};
use ceremony::shardfile::ShardFile;
use ceremony::verify_recovery::{
    RecoveryVerifyError as E, verify_recovery_dir, verify_recovery_dirs,
};
use common::recovery::*;
use common::*;
use zeroize::Zeroizing;

const ID: &str = "reshare";

/// The 3-of-4 reshare request of `g`: holders 1-3 keep their personal certificates, holder 4
/// is `fourth`; one card each.
fn reshare_request(g: &Generation, fourth: &Cert) -> String {
    let certs: Vec<&Cert> = g.fixture.personal.iter().chain([fourth]).collect();
    let holders: Vec<(String, String, &Cert, u8)> = (1..=4)
        .map(|i| (holder_name(i), holder_name(i % 4 + 1), certs[i - 1], 1))
        .collect();
    g.request_text(&reshare_table(3, &holders))
}

fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("ceremony/ has a parent")
        .to_owned()
}

/// Both verifiers on `recovery` against `generation` and the replace-card/reshare folders
/// `replaced` (`--replaced`, in order): the same verdict (tests/src/pyverify.rs).
fn both(recovery: &Path, generation: &Path, replaced: &[&Path]) -> pyverify::Verdict {
    pyverify::same_recovery_verdict_replaced(
        &workspace(),
        Path::new(env!("CARGO_BIN_EXE_sherd-verify")),
        recovery,
        generation,
        replaced,
        None,
    )
}

/// Both verifiers pass `recovery` (with the same output, which has `has`).
fn both_pass(recovery: &Path, generation: &Path, replaced: &[&Path], has: &str) {
    let v = both(recovery, generation, replaced);
    assert_eq!(v.status, 0, "{}", v.stdout);
    assert!(v.stdout.contains(has), "{}", v.stdout);
}

/// Both verifiers refuse `recovery` with the same FAIL line, which must contain `names`.
fn both_refuse(recovery: &Path, generation: &Path, replaced: &[&Path], names: &str) {
    let v = both(recovery, generation, replaced);
    let line = v
        .fail_line()
        .unwrap_or_else(|| panic!("both verifiers pass {}:\n{}", recovery.display(), v.stdout));
    assert!(line.contains(names), "{line}");
    eprintln!("both refuse: {line}");
}

/// Holders `holders` bring their generation cards; recombined.
fn recombined(g: &mut Generation, request: &str, holders: &[u8]) -> Recombined {
    let mut c = collecting(g.pinned(), request);
    for &h in holders {
        bring(&mut c, g, h).expect("the holder's share");
    }
    c.recombine().expect("recombination")
}

/// A generation reshared 3-of-4 with holders 3 and 1, written side by side.
struct Reshared {
    g: Generation,
    fourth: Cert,
    tmp: tempfile::TempDir,
    generation: PathBuf,
    reshare: PathBuf,
    finished: Finished,
    /// new_cards[holder-1]
    new_cards: Vec<SoftwareCard>,
}

fn reshared(seed: u8) -> Reshared {
    let mut g = generation(ID, seed);
    let fourth = personal(&holder_name(4));
    let request = reshare_request(&g, &fourth);
    let r = recombined(&mut g, &request, &[3, 1]);
    let (mut resharing, view) = r
        .start_reshare(&mut seeded(seed ^ 0x5a))
        .expect("split and sealed");
    assert_eq!((view.threshold, view.count), (3, 4));
    assert_eq!((view.old_threshold, view.old_count), (2, 3));
    assert_eq!((view.subsets_checked, view.subsets_total), (4, 4));
    assert_eq!(view.holders.len(), 4);
    assert_eq!(resharing.cards_total(), 4);
    let mut new_cards: Vec<SoftwareCard> = (1..=4u8)
        .map(|i| SoftwareCard::new(&format!("000F:CC{i:02X}0001")))
        .collect();
    while let Some(next) = resharing.next_card() {
        let card = &mut new_cards[usize::from(next.holder) - 1];
        let ok = approve(card);
        let v = resharing
            .provision_card(next.holder, next.card, card, &ok)
            .expect("a new card");
        assert_eq!(
            v.location_fingerprint,
            view.holders[usize::from(next.holder) - 1].location_fingerprint
        );
    }
    assert!(resharing.cards_missing().is_empty());
    let finished = resharing.finish().expect("finished");
    let tmp = tempfile::tempdir().unwrap();
    let generation = g.write(tmp.path(), "generation");
    let reshare = write_recovery(&finished, tmp.path(), "reshare");
    Reshared {
        g,
        fourth,
        tmp,
        generation,
        reshare,
        finished,
        new_cards,
    }
}

impl Reshared {
    fn pinned(&self) -> PinnedRoot {
        PinnedRoot::from_dirs(&self.generation, &[&self.reshare]).expect("pinned with it")
    }

    fn new_pin_file(&self, holder: u8) -> Vec<u8> {
        file(&self.finished.files, &paths::pin_file(holder)).to_vec()
    }

    /// New holder `holder`'s personal certificate.
    fn personal_cert(&self, holder: u8) -> &Cert {
        match holder {
            4 => &self.fourth,
            i => &self.g.fixture.personal[usize::from(i) - 1],
        }
    }

    fn personal_card(&self, holder: u8) -> SoftwarePersonalCard {
        SoftwarePersonalCard::new(&format!("0006:{holder:08}"), self.personal_cert(holder))
            .expect("a personal key")
    }

    /// A copy of the reshare folder named `name`, changed by `change`.
    fn tampered(&self, name: &str, change: impl FnOnce(&Path)) -> PathBuf {
        let dir = self.tmp.path().join(name);
        copy_dir(&self.reshare, &dir);
        change(&dir);
        dir
    }
}

#[test]
fn a_2_of_3_key_is_reshared_3_of_4_and_the_new_cards_recover_it() {
    let mut x = reshared(111);
    let root = x.g.root_cert();

    // The folder and its records, in order.
    let names: Vec<&str> = x.finished.files.iter().map(|f| f.path.as_str()).collect();
    assert_eq!(
        names,
        [
            "request.toml",
            "root-cert.asc",
            "plan.toml",
            "shards.toml",
            "pins/holder-001.asc",
            "pins/holder-002.asc",
            "pins/holder-003.asc",
            "pins/holder-004.asc",
            "transcript.txt",
            "transcript.txt.sig"
        ]
    );
    let kinds: Vec<&str> = x
        .finished
        .transcript
        .records()
        .iter()
        .map(|r| r.kind.as_str())
        .collect();
    let mut expected = vec![
        "recovery.generation",
        "recovery.request",
        "recovery.policy",
        "recovery.share",
        "recovery.share",
        "recovery.recombined",
        "recovery.reshare",
    ];
    expected.extend(["recovery.new-location"; 4]);
    expected.extend(["recovery.new-sealed"; 4]);
    expected.extend(["recovery.new-subsets", "recovery.old-shares"]);
    expected.extend(["recovery.new-card"; 4]);
    expected.extend(["recovery.new-pins"; 4]);
    expected.extend(["output.file"; 8]);
    expected.push("ceremony.end");
    assert_eq!(kinds, expected);
    let typed = records(&x.finished.transcript).unwrap();
    let subsets = typed
        .iter()
        .find_map(|r| match r {
            RecoveryRecord::NewSubsets(b) => Some(b.clone()),
            _ => None,
        })
        .unwrap();
    assert_eq!((subsets.checked, subsets.total.0), (4, 4));
    assert_eq!(subsets.second, "shamir-gf256");
    assert!(subsets.combinations >= 4);
    let old = typed
        .iter()
        .find_map(|r| match r {
            RecoveryRecord::OldShares(b) => Some(b.clone()),
            _ => None,
        })
        .unwrap();
    assert_eq!((old.threshold, old.holders), (2, 3));

    // The new shard file: the new plan, the same root and key time.
    let shards =
        ShardFile::parse(std::str::from_utf8(file(&x.finished.files, paths::SHARDS)).unwrap())
            .unwrap();
    assert_eq!((shards.threshold, shards.count), (3, 4));
    assert_eq!(shards.key_time, PLAN_TIME);
    assert_eq!(shards.root_fingerprint(), root.fingerprint());

    // The verifier passes the folder.
    let report = verify_recovery_dir(&x.generation, &x.reshare).expect("the folder verifies");
    assert_eq!(report.operation, OperationKind::Reshare);
    assert!(report.operation_lines[0].contains("3-of-4 (was 2-of-3)"));
    both_pass(
        &x.reshare,
        &x.generation,
        &[],
        "reshared:          plan.toml: the new plan",
    );

    // Pinned with it: the new plan, new shares; the old ones retired; the key time stays.
    let pinned = x.pinned();
    assert_eq!(pinned.plan().threshold, 3);
    assert_eq!(pinned.plan().holder_count(), 4);
    assert_eq!(pinned.key_time(), PLAN_TIME);
    assert!(pinned.plan().time_unix > PLAN_TIME);
    assert_eq!(pinned.retired().len(), 3);
    assert!(
        matches!(pinned.applied(), [Applied::Reshare(r)] if r.threshold == 3 && r.holders == 4)
    );
    assert!(pinned.replacements().is_empty());
    assert_eq!(
        pinned.share(4).unwrap().cards,
        [CardSerial("000F:CC040001".into())]
    );

    // The next recovery: 3 of the new cards.
    let request =
        x.g.request_text("[prove-quorum]\nchallenge = \"after the reshare\"\n");
    let mut c = collecting(pinned.clone(), &request);

    // The old card is refused every way it comes: with the old PIN file,
    let old_pins = x.g.pin_file(1);
    let fault = holder_fault(bring_with(
        &mut c,
        1,
        x.personal_card(1),
        &old_pins,
        &mut x.g.cards[0],
    ));
    assert!(
        matches!(
            fault,
            HolderFault::NotThePinnedPinFile { replaced: true, .. }
        ),
        "{fault}"
    );
    // with the new PIN file (the old card is not one of its cards),
    let new_pins_1 = x.new_pin_file(1);
    let fault = holder_fault(bring_with(
        &mut c,
        1,
        x.personal_card(1),
        &new_pins_1,
        &mut x.g.cards[0],
    ));
    assert!(
        matches!(
            fault,
            HolderFault::RetiredLocationCard { was_holder: 1, .. }
        ),
        "{fault}"
    );
    // and the old sealed share with a new card.
    let old_message = x.g.pinned().share(1).unwrap().message.clone();
    let mut personal = x.personal_card(1);
    let refused = c.accept_holder(
        &HolderInput {
            index: 1,
            pin_file: &new_pins_1,
            sealed_share: Some(&old_message),
        },
        &mut personal,
        &default_pin(),
        &mut x.new_cards[0],
    );
    assert!(matches!(
        holder_fault(refused),
        HolderFault::Share(RecoveryError::NotTheSealedShare { index: 1, .. })
    ));

    // A holder the reshared plan lacks is named against that plan, not the generation's.
    let fault = holder_fault(bring_with(
        &mut c,
        5,
        x.personal_card(1),
        &new_pins_1,
        &mut x.new_cards[0],
    ));
    assert_eq!(fault.to_string(), "not a holder of the reshared plan");

    // Two new shares are not enough.
    for h in [4u8, 2] {
        let pins = x.new_pin_file(h);
        let personal = x.personal_card(h);
        bring_with(
            &mut c,
            h,
            personal,
            &pins,
            &mut x.new_cards[usize::from(h) - 1],
        )
        .expect("a new holder's share");
    }
    let refused = c.recombine().expect_err("2 of 3");
    assert!(
        matches!(
            *refused.error,
            FlowError::NotEnoughShares { have: 2, needed: 3 }
        ),
        "{}",
        refused.error
    );
    let mut c = *refused.state;
    let personal = x.personal_card(1);
    bring_with(&mut c, 1, personal, &new_pins_1, &mut x.new_cards[0]).expect("holder 1");
    let r = c.recombine().expect("3 new shares recombine");
    assert_eq!(r.root_fingerprint(), root.fingerprint());
    let finished = r.perform(&|_| unreachable!()).expect("signed");
    let after = write_recovery(&finished, x.tmp.path(), "after");

    // Verified against the generation and the reshare folder, not without it.
    let report = verify_recovery_dirs(&x.generation, &[&x.reshare], &after, None)
        .expect("the recovery verifies");
    assert_eq!(report.threshold, 3);
    assert_eq!(report.root_fingerprint, root.fingerprint().to_hex());
    let e = verify_recovery_dir(&x.generation, &after).unwrap_err();
    assert!(matches!(e, E::Replaced { .. }), "{e}");
    both_pass(
        &after,
        &x.generation,
        &[&x.reshare],
        "(a reshare recovery, passes against the folders before it)",
    );
    both_refuse(&after, &x.generation, &[], "recovery.reshared record(s)");
    // A share record that is not the new sealed share: both verifiers name where the expected
    // one comes from, the reshare, not the generation.
    let forged = x.tmp.path().join("after-forged");
    copy_dir(&after, &forged);
    forge(&forged, &x.g.root_key(), &[], |recs| {
        set(recs, "recovery.share", "envelope", &"ab".repeat(32))
    });
    both_refuse(
        &forged,
        &x.generation,
        &[&x.reshare],
        "but the last reshare transcript's recovery.new-sealed for this holder is",
    );
    let kinds: Vec<&str> = finished
        .transcript
        .records()
        .iter()
        .map(|r| r.kind.as_str())
        .take(3)
        .collect();
    assert_eq!(
        kinds,
        [
            "recovery.generation",
            "recovery.reshared",
            "recovery.request"
        ]
    );
}

#[test]
fn a_replace_card_after_the_reshare_and_the_recovery_after_both() {
    let mut x = reshared(112);
    let root = x.g.root_cert();
    let pinned = x.pinned();

    // Holder 2 of the new plan gets a new card, holders 1, 3, 4 bring theirs.
    let request = x.g.request_text("[replace-card]\nholder = 2\ncards = 1\n");
    let mut c = collecting(pinned, &request);
    for h in [1u8, 3, 4] {
        let pins = x.new_pin_file(h);
        let personal = x.personal_card(h);
        bring_with(
            &mut c,
            h,
            personal,
            &pins,
            &mut x.new_cards[usize::from(h) - 1],
        )
        .expect("a new holder's share");
    }
    let r = c.recombine().expect("recombined");
    let mut replacement = SoftwareCard::new("000F:DD020001");
    let ok = approve(&mut replacement);
    let replaced = r
        .perform_replace_card(
            &mut seeded(7),
            &mut [(&mut replacement as &mut dyn LocationCard, ok)],
        )
        .expect("replaced after the reshare");
    let replace = write_recovery(&replaced, x.tmp.path(), "replace");
    verify_recovery_dirs(&x.generation, &[&x.reshare], &replace, None)
        .expect("the replace-card folder verifies");
    both_pass(&replace, &x.generation, &[&x.reshare], "replaced:");

    // Pinned with both, in order: holder 2's share is the replacement's.
    let pinned = PinnedRoot::from_dirs(&x.generation, &[&x.reshare, &replace]).expect("pinned");
    assert!(matches!(
        pinned.applied(),
        [Applied::Reshare(_), Applied::ReplaceCard(_)]
    ));
    assert_eq!(pinned.replacements().len(), 1);
    // Out of order, refused.
    let e = PinnedRoot::from_dirs(&x.generation, &[&replace, &x.reshare]).unwrap_err();
    assert!(matches!(e, PinError::Replacement { .. }), "{e}");

    let request =
        x.g.request_text("[prove-quorum]\nchallenge = \"after both\"\n");
    let mut c = collecting(pinned, &request);
    let pins_2 = file(&replaced.files, &paths::pin_file(2)).to_vec();
    let personal = x.personal_card(2);
    bring_with(&mut c, 2, personal, &pins_2, &mut replacement).expect("holder 2's new card");
    // Holder 2's reshare card is refused now.
    let pins_2_old = x.new_pin_file(2);
    let personal = x.personal_card(3);
    let mut c2 = collecting(
        PinnedRoot::from_dirs(&x.generation, &[&x.reshare, &replace]).unwrap(),
        &request,
    );
    let fault = holder_fault(bring_with(
        &mut c2,
        2,
        personal,
        &pins_2_old,
        &mut x.new_cards[1],
    ));
    assert!(
        matches!(
            fault,
            HolderFault::NotThePinnedPinFile { replaced: true, .. }
        ),
        "{fault}"
    );
    for h in [3u8, 4] {
        let pins = x.new_pin_file(h);
        let personal = x.personal_card(h);
        bring_with(
            &mut c,
            h,
            personal,
            &pins,
            &mut x.new_cards[usize::from(h) - 1],
        )
        .expect("a new holder's share");
    }
    let r = c.recombine().expect("recombined");
    assert_eq!(r.root_fingerprint(), root.fingerprint());
    let finished = r.perform(&|_| unreachable!()).expect("signed");
    let after = write_recovery(&finished, x.tmp.path(), "after-both");
    verify_recovery_dirs(&x.generation, &[&x.reshare, &replace], &after, None)
        .expect("verifies with both folders");
    let e = verify_recovery_dirs(&x.generation, &[&x.reshare], &after, None).unwrap_err();
    assert!(matches!(e, E::Replaced { .. }), "{e}");
    both_pass(
        &after,
        &x.generation,
        &[&x.reshare, &replace],
        "replaced (2):      ",
    );
    both_refuse(
        &after,
        &x.generation,
        &[&x.reshare],
        "recovery.reshared record(s)",
    );
    both_refuse(
        &after,
        &x.generation,
        &[&replace, &x.reshare],
        "does not verify against the generation folder",
    );
}

fn operation_error(e: &E) -> String {
    eprintln!("FAIL as expected: {e}");
    match e {
        E::Operation { what, reason } => format!("{what}: {reason}"),
        other => panic!("expected a check 7 failure, got {other}"),
    }
}

#[test]
fn the_verifier_refuses_tampered_reshare_folders() {
    let mut x = reshared(113);
    let root = x.g.root_key();
    let verify = |dir: &Path| verify_recovery_dir(&x.generation, dir);
    let text = |path: &str| String::from_utf8(file(&x.finished.files, path).to_vec()).unwrap();

    // Re-signed unchanged: passes (the forging is sound).
    let dir = x.tampered("unchanged", |d| forge(d, &root, &[], |_| {}));
    verify(&dir).expect("re-signed unchanged");
    both_pass(&dir, &x.generation, &[], "reshared:");

    // plan.toml is not the request's new plan.
    let plan = text(paths::PLAN).replacen("threshold = 3", "threshold = 2", 1);
    let dir = x.tampered("plan", |d| {
        forge(d, &root, &[(paths::PLAN.into(), plan.into_bytes())], |_| {})
    });
    let msg = operation_error(&verify(&dir).unwrap_err());
    both_refuse(&dir, &x.generation, &[], &msg);
    assert!(msg.starts_with("plan.toml: its canonical hash"), "{msg}");

    // Two sealed shares swapped in shards.toml: each is not encrypted to its location key.
    let mut shards = ShardFile::parse(&text(paths::SHARDS)).unwrap();
    let first = shards.shares[0].message.clone();
    shards.shares[0].message = shards.shares[1].message.clone();
    shards.shares[1].message = first;
    let dir = x.tampered("swapped-share", |d| {
        forge(
            d,
            &root,
            &[(paths::SHARDS.into(), shards.to_toml().into_bytes())],
            |_| {},
        )
    });
    let msg = operation_error(&verify(&dir).unwrap_err());
    both_refuse(&dir, &x.generation, &[], &msg);
    assert!(msg.starts_with("shards.toml: share 1"), "{msg}");

    // Two holders' entries swapped whole (location certificate and sealed share).
    let mut shards = ShardFile::parse(&text(paths::SHARDS)).unwrap();
    let (cert, message) = (
        shards.shares[0].location_cert.clone(),
        shards.shares[0].message.clone(),
    );
    shards.shares[0].location_cert = shards.shares[1].location_cert.clone();
    shards.shares[0].message = shards.shares[1].message.clone();
    shards.shares[1].location_cert = cert;
    shards.shares[1].message = message;
    let dir = x.tampered("swapped-entry", |d| {
        forge(
            d,
            &root,
            &[(paths::SHARDS.into(), shards.to_toml().into_bytes())],
            |_| {},
        )
    });
    let msg = operation_error(&verify(&dir).unwrap_err());
    both_refuse(&dir, &x.generation, &[], &msg);
    assert!(
        msg.contains("(recovery.new-location): fingerprint"),
        "{msg}"
    );

    // A PIN file swapped for another holder's.
    let other = file(&x.finished.files, &paths::pin_file(2)).to_vec();
    let dir = x.tampered("pins", |d| {
        forge(d, &root, &[(paths::pin_file(1), other)], |_| {})
    });
    let msg = operation_error(&verify(&dir).unwrap_err());
    both_refuse(&dir, &x.generation, &[], &msg);
    assert!(msg.contains("(recovery.new-pins): sha256"), "{msg}");

    // A new card whose serial is an old card's.
    let old_serial = x.g.pinned().share(1).unwrap().cards[0].0.clone();
    let dir = x.tampered("old-card", |d| {
        forge(d, &root, &[], |recs| {
            set(recs, "recovery.new-card", "serial", &old_serial)
        })
    });
    let msg = operation_error(&verify(&dir).unwrap_err());
    both_refuse(&dir, &x.generation, &[], &msg);
    assert!(
        msg.contains("is holder 1's card 1 of this ceremony already"),
        "{msg}"
    );

    // recovery.old-shares understating the old threshold.
    let dir = x.tampered("old-shares", |d| {
        forge(d, &root, &[], |recs| {
            set(recs, "recovery.old-shares", "threshold", "3")
        })
    });
    let msg = operation_error(&verify(&dir).unwrap_err());
    both_refuse(&dir, &x.generation, &[], &msg);
    assert!(msg.contains("(recovery.old-shares): threshold=3"), "{msg}");

    // recovery.new-subsets claiming fewer subsets than C(4, 3).
    let dir = x.tampered("subsets", |d| {
        forge(d, &root, &[], |recs| {
            set(recs, "recovery.new-subsets", "checked", "3")
        })
    });
    let msg = operation_error(&verify(&dir).unwrap_err());
    both_refuse(&dir, &x.generation, &[], &msg);
    assert!(msg.contains("(recovery.new-subsets)"), "{msg}");

    // The untouched folder still passes.
    verify(&x.reshare).expect("the folder itself");
}

/// Splits with every share off by a bit.
struct WrongSplit;

impl SecondShamir for WrongSplit {
    fn name(&self) -> &'static str {
        "wrong-split-test"
    }
    fn split_with_coefficients(
        &self,
        secret: &[u8],
        threshold: usize,
        coefficients: &[u8],
        xs: &[u8],
    ) -> Result<Vec<Zeroizing<Vec<u8>>>, shamir_gf256::Error> {
        let mut v = ShamirGf256.split_with_coefficients(secret, threshold, coefficients, xs)?;
        v[0][3] ^= 4;
        Ok(v)
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

#[test]
fn a_wrong_second_shamir_stops_the_reshare_and_other_operations_are_refused() {
    let mut g = generation(ID, 114);
    let fourth = personal(&holder_name(4));
    let request = reshare_request(&g, &fourth);

    // perform refuses a reshare (it needs cards), nothing signed; the phase comes back.
    let r = recombined(&mut g, &request, &[1, 2]);
    let refused = r.perform(&|_| unreachable!()).expect_err("needs cards");
    assert!(
        matches!(*refused.error, FlowError::ReshareNeedsCards),
        "{}",
        refused.error
    );
    assert!(refused.error.to_string().contains("start_reshare"));

    let refused = refused
        .state
        .checked_against(Seconds {
            shamir: Arc::new(WrongSplit),
            ..Seconds::default()
        })
        .start_reshare(&mut seeded(1))
        .expect_err("the splits disagree");
    assert!(
        matches!(
            *refused.error,
            FlowError::ReshareSplit(ShamirError::ImplementationsDisagree {
                operation: "split",
                second: "wrong-split-test"
            })
        ),
        "{}",
        refused.error
    );
    // Nothing was recorded: with the real one, the same phase goes on and its transcript has
    // exactly one recovery.reshare.
    let r = refused.state.checked_against(Seconds::default());
    let mut cards: Vec<SoftwareCard> = (1..=4u8)
        .map(|i| SoftwareCard::new(&format!("000F:EE{i:02X}0001")))
        .collect();
    let mut with: Vec<(u8, u8, &mut dyn LocationCard, ceremony::ceremony::Approved)> = cards
        .iter_mut()
        .enumerate()
        .map(|(i, c)| {
            let ok = approve(c);
            (
                u8::try_from(i + 1).unwrap(),
                1,
                c as &mut dyn LocationCard,
                ok,
            )
        })
        .collect();
    let finished = r
        .perform_reshare(&mut seeded(2), &mut with)
        .expect("reshared in one call");
    let n = finished
        .transcript
        .records()
        .iter()
        .filter(|r| r.kind.starts_with("recovery.reshare"))
        .count();
    assert_eq!(n, 1);

    // A reshare dated before the current plan is refused before any card: pinned with the
    // reshare just made (dated REQUEST_TIME), one dated at the generation's plan time is older.
    let tmp = tempfile::tempdir().unwrap();
    let gen_dir = g.write(tmp.path(), "generation");
    let reshare_dir = write_recovery(&finished, tmp.path(), "reshare");
    let pinned = PinnedRoot::from_dirs(&gen_dir, &[&reshare_dir]).expect("pinned");
    let older = reshare_request(&g, &fourth).replace(REQUEST_TIME, PLAN_TIME_STR);
    let e = ceremony::recovery_flow::Requested::start(pinned, older.as_bytes(), &[])
        .expect_err("older than the current plan");
    assert!(
        matches!(
            e,
            FlowError::NotForThisRoot(RecoveryError::ReshareBeforePlan { .. })
        ),
        "{e}"
    );

    // start_reshare refuses a request of another operation; an old card is no new card.
    let request = g.request_text("[prove-quorum]\nchallenge = \"not a reshare\"\n");
    let r = recombined(&mut g, &request, &[2, 3]);
    let refused = r.start_reshare(&mut seeded(3)).expect_err("not a reshare");
    assert!(
        matches!(
            *refused.error,
            FlowError::NotReshare(OperationKind::ProveQuorum)
        ),
        "{}",
        refused.error
    );
    let request = reshare_request(&g, &fourth);
    let r = recombined(&mut g, &request, &[2, 3]);
    let (mut resharing, _) = r.start_reshare(&mut seeded(4)).expect("started");
    let ok = approve(&mut g.cards[0]);
    let e = resharing
        .provision_card(1, 1, &mut g.cards[0], &ok)
        .expect_err("an old card");
    assert!(e.to_string().contains("000F:000101"), "{e}");
    let refused = resharing.finish().expect_err("cards missing");
    assert!(matches!(*refused.error, FlowError::NewCardsMissing { .. }));
}
