//! `replace-card` on the host with software cards: a 2-of-3 generation, holder 2's card
//! replaced with holders 1 and 3's shares, then a recovery with holder 2's new card; the old
//! card refused; the two Shamir implementations checked; the folder verified, and tampered
//! copies refused (docs/formats/recovery.md, "replace-card").

mod common;
#[path = "../../tests/src/pyverify.rs"]
#[allow(dead_code)]
mod pyverify;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use ceremony::card::{LocationCard, SoftwareCard};
use ceremony::ceremony::paths as gen_paths;
use ceremony::dual::Seconds;
use ceremony::envelope;
use ceremony::openpgp::Cert;
use ceremony::openpgp::parse::Parse;
use ceremony::pinfile::PinFile;
use ceremony::recovery::{PinError, PinnedRoot};
use ceremony::recovery_flow::{
    Finished, FlowError, HolderFault, HolderInput, Recombined, RecoveryRecord, paths, records,
};
use ceremony::request::OperationKind;
use ceremony::secret::Pin;
use ceremony::shamir::{SecondShamir, ShamirError, ShamirGf256};
use ceremony::shardfile::ShardFile;
use ceremony::verify_recovery::{
    RecoveryVerifyError as E, verify_recovery_dir, verify_recovery_dirs,
};
use common::recovery::*;
use common::*;
use zeroize::Zeroizing;

const ID: &str = "replace-card";

/// Holders `holders` bring their generation cards; recombined.
fn recombined(g: &mut Generation, request: &str, holders: &[u8]) -> Recombined {
    let mut c = collecting(g.pinned(), request);
    for &h in holders {
        bring(&mut c, g, h).expect("the holder's share");
    }
    c.recombine().expect("recombination")
}

/// New blank cards for holder `holder`, `n` of them.
fn blank_cards(holder: u8, n: u8) -> Vec<SoftwareCard> {
    (1..=n)
        .map(|i| SoftwareCard::new(&format!("000F:BB{holder:02X}{i:04X}")))
        .collect()
}

/// Provisions `cards` in order and finishes.
fn provision_all(
    r: Recombined,
    seed: u8,
    cards: &mut [SoftwareCard],
) -> (Finished, ceremony::recovery_flow::ReplaceView) {
    let (mut replacing, view) = r
        .start_replace_card(&mut seeded(seed))
        .expect("rebuilt and sealed");
    for (i, card) in cards.iter_mut().enumerate() {
        let ok = approve(card);
        replacing
            .provision_card(u8::try_from(i + 1).unwrap(), card, &ok)
            .expect("a new card");
    }
    assert!(replacing.next_card().is_none());
    (replacing.finish().expect("finished"), view)
}

/// The output file `path` of a finished recovery.
fn out<'a>(f: &'a Finished, path: &str) -> &'a [u8] {
    file(&f.files, path)
}

/// The first card's user PIN from a PIN file, read with `personal`'s key (the test plays the
/// holder).
fn first_pin(pin_file: &[u8], personal: &Cert, root: &Cert) -> Pin {
    let mut kp = decryptor_of(personal);
    let pins = PinFile::open(pin_file, &mut kp, root).expect("the new PIN file opens");
    Pin::from_string(pins.cards[0].pins.user.expose_secret().to_string())
}

/// A generation with holder 2's card replaced (2 new cards) using holders 1 and 3, written
/// side by side.
struct Replaced {
    g: Generation,
    tmp: tempfile::TempDir,
    generation: PathBuf,
    replace: PathBuf,
    finished: Finished,
    new_cards: Vec<SoftwareCard>,
}

fn replaced(seed: u8) -> Replaced {
    let mut g = generation(ID, seed);
    let request = g.request_text("[replace-card]\nholder = 2\ncards = 2\n");
    let r = recombined(&mut g, &request, &[1, 3]);
    let mut new_cards = blank_cards(2, 2);
    let (finished, view) = provision_all(r, seed ^ 0x5a, &mut new_cards);
    assert_eq!(view.holder, 2);
    assert_eq!(view.cards, 2);
    let old_location = g
        .pinned()
        .share(2)
        .unwrap()
        .location_cert
        .fingerprint()
        .to_hex();
    assert_eq!(view.replaces, old_location);
    assert_ne!(view.location_fingerprint, old_location);
    let tmp = tempfile::tempdir().unwrap();
    let generation = g.write(tmp.path(), "generation");
    let replace = write_recovery(&finished, tmp.path(), "replace");
    Replaced {
        g,
        tmp,
        generation,
        replace,
        finished,
        new_cards,
    }
}

impl Replaced {
    fn pinned(&self) -> PinnedRoot {
        PinnedRoot::from_dirs(&self.generation, &[&self.replace]).expect("pinned with it")
    }

    fn new_pin_file(&self) -> Vec<u8> {
        out(&self.finished, &paths::pin_file(2)).to_vec()
    }

    /// A copy of the replace-card folder named `name`, changed by `change`.
    fn tampered(&self, name: &str, change: impl FnOnce(&Path)) -> PathBuf {
        let dir = self.tmp.path().join(name);
        copy_dir(&self.replace, &dir);
        change(&dir);
        dir
    }
}

#[test]
fn holder_2s_card_is_replaced_and_the_next_recovery_uses_the_new_card() {
    let mut x = replaced(101);
    let root = x.g.root_cert();

    // The folder: what replace-card writes, and its transcript's records in order.
    let names: Vec<&str> = x.finished.files.iter().map(|f| f.path.as_str()).collect();
    assert_eq!(
        names,
        [
            "request.toml",
            "root-cert.asc",
            "shards.toml",
            "pins/holder-002.asc",
            "location/holder-002.asc",
            "sealed/holder-002.pgp",
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
    assert_eq!(
        kinds,
        [
            "recovery.generation",
            "recovery.request",
            "recovery.policy",
            "recovery.share",
            "recovery.share",
            "recovery.recombined",
            "recovery.rebuilt",
            "recovery.location",
            "recovery.sealed",
            "recovery.card",
            "recovery.card",
            "recovery.pins",
            "output.file",
            "output.file",
            "output.file",
            "output.file",
            "output.file",
            "output.file",
            "ceremony.end"
        ]
    );
    let typed = records(&x.finished.transcript).unwrap();
    let rebuilt = typed
        .iter()
        .find_map(|r| match r {
            RecoveryRecord::Rebuilt(b) => Some(b.clone()),
            _ => None,
        })
        .unwrap();
    assert_eq!(
        (
            rebuilt.holder,
            rebuilt.from.as_str(),
            rebuilt.second.as_str()
        ),
        (2, "1,3", "shamir-gf256")
    );
    // M = 2, holder 2 not among the shares: each of the two others with the rebuilt share.
    assert_eq!(rebuilt.checked, 2);

    // The new shard file is the generation's but for holder 2's entry.
    let old = ShardFile::parse(std::str::from_utf8(file(&x.g.files, gen_paths::SHARDS)).unwrap())
        .unwrap();
    let new =
        ShardFile::parse(std::str::from_utf8(out(&x.finished, paths::SHARDS)).unwrap()).unwrap();
    for i in [0, 2] {
        assert_eq!(old.shares[i].message, new.shares[i].message);
        assert_eq!(old.shares[i].location_cert, new.shares[i].location_cert);
    }
    assert_ne!(old.shares[1].message, new.shares[1].message);
    assert_eq!(
        new.shares[1].message,
        out(&x.finished, &paths::sealed_share(2))
    );
    let new_location = Cert::from_bytes(out(&x.finished, &paths::location_cert(2))).unwrap();
    assert_eq!(new.shares[1].location_cert, new_location);
    // Unchanged entries are byte for byte the generation's: a diff shows holder 2's alone.
    let old_text = std::str::from_utf8(file(&x.g.files, gen_paths::SHARDS)).unwrap();
    let new_text = std::str::from_utf8(out(&x.finished, paths::SHARDS)).unwrap();
    let entry = |t: &str, i: usize| t.split("[[share]]").nth(i).unwrap().to_string();
    assert_eq!(entry(old_text, 0), entry(new_text, 0));
    assert_eq!(entry(old_text, 1), entry(new_text, 1));
    assert_ne!(entry(old_text, 2), entry(new_text, 2));
    assert_eq!(entry(old_text, 3), entry(new_text, 3));

    // The rebuilt share is holder 2's original share, under the original header: the old card
    // opens the old envelope, a new card (PIN from the new PIN file, opened by holder 2's
    // personal key) the new one.
    let old_pin = user_pin(&x.g.fixture, &x.g.files, &root, 2);
    let before = envelope::open_with_card(
        &old.shares[1].message,
        &mut x.g.cards[1],
        &old_pin,
        &old.shares[1].location_cert,
        &root,
    )
    .unwrap();
    let new_pin = first_pin(&x.new_pin_file(), &x.g.fixture.personal[1], &root);
    let new_pins = x.new_pin_file();
    for card in &mut x.new_cards {
        let pin = new_pin_for(card, &new_pins, &x.g.fixture.personal[1], &root);
        let after =
            envelope::open_with_card(&new.shares[1].message, card, &pin, &new_location, &root)
                .unwrap();
        assert_eq!(after.share.expose_secret(), before.share.expose_secret());
        assert_eq!(after.header, before.header);
    }
    // The backup holder (holder 3) can read the new PIN file too.
    let by_backup = first_pin(&x.new_pin_file(), &x.g.fixture.personal[2], &root);
    assert_eq!(by_backup.expose_secret(), new_pin.expose_secret());

    // The verifier passes the folder.
    let report = verify_recovery_dir(&x.generation, &x.replace).expect("the folder verifies");
    assert_eq!(report.operation, OperationKind::ReplaceCard);
    assert!(report.operation_lines[0].contains("rebuilt from holders 1,3"));

    // Pinned with the replace-card folder: holder 2's share is the new one.
    let pinned = x.pinned();
    assert_eq!(pinned.replacements().len(), 1);
    assert_eq!(pinned.replacements()[0].holder, 2);
    assert_eq!(
        pinned.share(2).unwrap().message_sha256,
        new.shares[1].message_sha256()
    );
    assert_eq!(pinned.share(2).unwrap().pin_file, x.new_pin_file());
    assert_eq!(pinned.retired().len(), 1);
    assert_eq!(
        pinned.share(1).unwrap().message_sha256,
        old.shares[0].message_sha256()
    );

    // The next recovery: holder 2 with a new card, holder 1 with theirs.
    let request =
        x.g.request_text("[prove-quorum]\nchallenge = \"after the replacement\"\n");
    let mut c = collecting(pinned.clone(), &request);

    // The old card is refused, every way it can come: with the old PIN file,
    let (personal, old_pins) = (x.g.personal(2), x.g.pin_file(2));
    let fault = holder_fault(bring_with(
        &mut c,
        2,
        personal,
        &old_pins,
        &mut x.g.cards[1],
    ));
    assert!(
        matches!(
            fault,
            HolderFault::NotThePinnedPinFile { replaced: true, .. }
        ),
        "{fault}"
    );
    assert!(fault.to_string().contains("no longer accepted"), "{fault}");
    // with the new PIN file (it is not one of the cards it lists),
    let personal = x.g.personal(2);
    let fault = holder_fault(bring_with(
        &mut c,
        2,
        personal,
        &new_pins,
        &mut x.g.cards[1],
    ));
    assert!(
        matches!(
            fault,
            HolderFault::RetiredLocationCard { was_holder: 2, .. }
        ),
        "{fault}"
    );
    // and the old sealed share with a new card (not the one pinned).
    let fault = holder_fault(c.accept_holder(
        &HolderInput {
            index: 2,
            pin_file: &x.new_pin_file(),
            sealed_share: Some(&old.shares[1].message),
        },
        &mut x.g.personal(2),
        &default_pin(),
        &mut x.new_cards[0],
    ));
    assert!(fault.to_string().contains("not the one"), "{fault}");
    assert!(c.holders().is_empty());

    bring_with(&mut c, 2, x.g.personal(2), &new_pins, &mut x.new_cards[1]).expect("the new card");
    bring(&mut c, &mut x.g, 1).expect("holder 1");
    let r = c.recombine().expect("recombined with the new card");
    assert_eq!(r.root_fingerprint().to_hex(), x.g.root_fpr());
    let finished = r
        .perform(&|_| unreachable!())
        .expect("the quorum is proven");
    let typed = records(&finished.transcript).unwrap();
    assert!(matches!(&typed[1], RecoveryRecord::Replaced(r) if r.holder == 2));
    let after = write_recovery(&finished, x.tmp.path(), "after");

    // Verified against the generation and the replace-card folder; not without it.
    let report = verify_recovery_dirs(&x.generation, &[&x.replace], &after, None)
        .expect("verifies with the replace-card folder");
    assert_eq!(
        report.holders.iter().map(|h| h.0).collect::<Vec<_>>(),
        [2, 1]
    );
    let e = verify_recovery_dir(&x.generation, &after).unwrap_err();
    assert!(matches!(e, E::Replaced { .. }), "{e}");

    // sherd-verify --replaced says the same.
    let bin = env!("CARGO_BIN_EXE_sherd-verify");
    let run = |args: &[&Path]| {
        let mut cmd = std::process::Command::new(bin);
        cmd.arg("--recovery")
            .arg(args[0])
            .arg("--generation")
            .arg(args[1]);
        for r in &args[2..] {
            cmd.arg("--replaced").arg(r);
        }
        let o = cmd.output().unwrap();
        (
            o.status.success(),
            String::from_utf8_lossy(&o.stdout).into_owned(),
        )
    };
    let (ok, text) = run(&[&after, &x.generation, &x.replace]);
    assert!(ok && text.starts_with("PASS"), "{text}");
    let (ok, text) = run(&[&after, &x.generation]);
    assert!(!ok && text.starts_with("FAIL"), "{text}");
    let (ok, text) = run(&[&x.replace, &x.generation]);
    assert!(ok && text.contains("replaced:"), "{text}");
}

/// The holder's own share among the M (a card replaced before it is lost, e.g. a failing
/// one): rebuilt all the same, and the one subset of the others checked.
#[test]
fn a_holder_among_the_m_gets_new_cards_too() {
    let mut g = generation(ID, 102);
    let request = g.request_text("[replace-card]\nholder = 1\ncards = 1\n");
    let r = recombined(&mut g, &request, &[1, 2]);
    let mut cards = blank_cards(1, 1);
    let (finished, _) = provision_all(r, 9, &mut cards);
    let typed = records(&finished.transcript).unwrap();
    assert!(
        typed
            .iter()
            .any(|r| matches!(r, RecoveryRecord::Rebuilt(b) if b.holder == 1 && b.checked == 1))
    );
    let tmp = tempfile::tempdir().unwrap();
    let gen_dir = g.write(tmp.path(), "generation");
    let dir = write_recovery(&finished, tmp.path(), "replace");
    verify_recovery_dir(&gen_dir, &dir).expect("verifies");

    // A second replacement of the same holder, pinned with the first: chained.
    let pinned = PinnedRoot::from_dirs(&gen_dir, &[&dir]).unwrap();
    let request = g.request_text("[replace-card]\nholder = 1\ncards = 1\n");
    let mut c = collecting(pinned, &request);
    let pin_file = file(&finished.files, &paths::pin_file(1)).to_vec();
    bring_with(&mut c, 1, g.personal(1), &pin_file, &mut cards[0]).expect("holder 1's new card");
    bring(&mut c, &mut g, 3).expect("holder 3");
    let r = c.recombine().unwrap();
    let mut again = [SoftwareCard::new("000F:CC010001")];
    // An old card of the ceremony is no new card: refused before it is touched.
    let (mut replacing, _) = r.start_replace_card(&mut seeded(10)).unwrap();
    let ok = approve(&mut g.cards[2]);
    let e = replacing
        .provision_card(1, &mut g.cards[2], &ok)
        .unwrap_err();
    assert!(e.to_string().contains("already used for holder 3"), "{e}");
    let ok = approve(&mut again[0]);
    replacing.provision_card(1, &mut again[0], &ok).unwrap();
    let second = replacing.finish().unwrap();
    let second_dir = write_recovery(&second, tmp.path(), "replace-2");
    verify_recovery_dirs(&gen_dir, &[&dir], &second_dir, None).expect("verifies after the first");
    let pinned = PinnedRoot::from_dirs(&gen_dir, &[&dir, &second_dir]).unwrap();
    assert_eq!(pinned.replacements().len(), 2);
    assert_eq!(pinned.retired().len(), 2);
    // Out of order, the second does not verify against the generation alone.
    let e = PinnedRoot::from_dirs(&gen_dir, &[&second_dir]).unwrap_err();
    assert!(matches!(e, PinError::Replacement { .. }), "{e}");
}

/// Interpolates like shamir-gf256 but flips a bit of the result; combines correctly.
struct WrongInterpolation;

impl SecondShamir for WrongInterpolation {
    fn name(&self) -> &'static str {
        "wrong-interpolation-test"
    }
    fn split_with_coefficients(
        &self,
        secret: &[u8],
        threshold: usize,
        coefficients: &[u8],
        xs: &[u8],
    ) -> Result<Vec<Zeroizing<Vec<u8>>>, shamir_gf256::Error> {
        ShamirGf256.split_with_coefficients(secret, threshold, coefficients, xs)
    }
    fn combine(&self, shares: &[&[u8]]) -> Result<Zeroizing<Vec<u8>>, shamir_gf256::Error> {
        ShamirGf256.combine(shares)
    }
    fn interpolate(
        &self,
        shares: &[&[u8]],
        at: u8,
    ) -> Result<Zeroizing<Vec<u8>>, shamir_gf256::Error> {
        let mut v = ShamirGf256.interpolate(shares, at)?;
        v[7] ^= 0x10;
        Ok(v)
    }
}

/// Interpolates correctly; every combination is off by a bit.
struct WrongCombination;

impl SecondShamir for WrongCombination {
    fn name(&self) -> &'static str {
        "wrong-combination-test"
    }
    fn split_with_coefficients(
        &self,
        secret: &[u8],
        threshold: usize,
        coefficients: &[u8],
        xs: &[u8],
    ) -> Result<Vec<Zeroizing<Vec<u8>>>, shamir_gf256::Error> {
        ShamirGf256.split_with_coefficients(secret, threshold, coefficients, xs)
    }
    fn combine(&self, shares: &[&[u8]]) -> Result<Zeroizing<Vec<u8>>, shamir_gf256::Error> {
        let mut v = ShamirGf256.combine(shares)?;
        v[0] ^= 1;
        Ok(v)
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
fn a_wrong_second_shamir_stops_replace_card_before_anything_is_made() {
    let mut g = generation(ID, 103);
    let request = g.request_text("[replace-card]\nholder = 2\ncards = 1\n");
    let r = recombined(&mut g, &request, &[3, 1]);
    let before = r.request().hash();
    let seconds = |s: Arc<dyn SecondShamir + Send + Sync>| Seconds {
        shamir: s,
        ..Seconds::default()
    };
    let refused = r
        .checked_against(seconds(Arc::new(WrongInterpolation)))
        .start_replace_card(&mut seeded(1))
        .expect_err("the interpolations disagree");
    assert!(
        matches!(
            *refused.error,
            FlowError::Rebuild {
                holder: 2,
                source: ShamirError::ImplementationsDisagree {
                    operation: "interpolation",
                    second: "wrong-interpolation-test"
                }
            }
        ),
        "{}",
        refused.error
    );
    assert!(refused.error.to_string().contains("nothing was written"));
    let refused = refused
        .state
        .checked_against(seconds(Arc::new(WrongCombination)))
        .start_replace_card(&mut seeded(1))
        .expect_err("the combinations disagree");
    assert!(
        matches!(
            *refused.error,
            FlowError::Rebuild {
                source: ShamirError::ImplementationsDisagree {
                    operation: "combination",
                    ..
                },
                ..
            }
        ),
        "{}",
        refused.error
    );
    // The phase came back as it was: with the real ones, it goes on.
    let r = refused.state.checked_against(Seconds::default());
    assert_eq!(r.request().hash(), before);
    let mut cards = blank_cards(2, 1);
    let mut with: Vec<(&mut dyn LocationCard, ceremony::ceremony::Approved)> = cards
        .iter_mut()
        .map(|c| {
            let ok = approve(c);
            (c as &mut dyn LocationCard, ok)
        })
        .collect();
    let finished = r
        .perform_replace_card(&mut seeded(2), &mut with)
        .expect("replaced in one call");
    assert!(
        finished
            .files
            .iter()
            .any(|f| f.path == paths::sealed_share(2))
    );
}

#[test]
fn perform_and_replace_card_refuse_each_others_requests() {
    let mut g = generation(ID, 104);
    let request = g.request_text("[replace-card]\nholder = 3\ncards = 1\n");
    let refused = recombined(&mut g, &request, &[1, 2])
        .perform(&|_| unreachable!())
        .expect_err("perform does not replace cards");
    assert!(
        matches!(*refused.error, FlowError::ReplaceCardNeedsCards),
        "{}",
        refused.error
    );
    assert!(refused.error.to_string().contains("start_replace_card"));
    let request = g.request_text("[prove-quorum]\nchallenge = \"c\"\n");
    let refused = recombined(&mut g, &request, &[1, 2])
        .start_replace_card(&mut seeded(1))
        .expect_err("not a replace-card request");
    assert!(
        matches!(
            *refused.error,
            FlowError::NotReplaceCard(OperationKind::ProveQuorum)
        ),
        "{}",
        refused.error
    );
    // finish before every card: refused, the phase kept.
    let request = g.request_text("[replace-card]\nholder = 3\ncards = 2\n");
    let (mut replacing, _) = recombined(&mut g, &request, &[1, 2])
        .start_replace_card(&mut seeded(1))
        .unwrap();
    let mut cards = blank_cards(3, 2);
    let ok = approve(&mut cards[0]);
    replacing.provision_card(1, &mut cards[0], &ok).unwrap();
    let refused = replacing.finish().expect_err("card 2 missing");
    assert!(
        matches!(&*refused.error, FlowError::CardsMissing { missing } if *missing == [2]),
        "{}",
        refused.error
    );
    let mut replacing = *refused.state;
    // The same card twice, another card than the one approved: refused, nothing recorded.
    let ok = approve(&mut cards[0]);
    assert!(replacing.provision_card(2, &mut cards[0], &ok).is_err());
    let ok = approve(&mut cards[0]);
    assert!(replacing.provision_card(2, &mut cards[1], &ok).is_err());
    let ok = approve(&mut cards[1]);
    replacing.provision_card(2, &mut cards[1], &ok).unwrap();
    replacing.finish().expect("finished");
}

// --- The verifier on tampered copies ---

fn operation_error(e: &E) -> String {
    eprintln!("FAIL as expected: {e}");
    match e {
        E::Operation { what, reason } => format!("{what}: {reason}"),
        other => panic!("expected a check 7 failure, got {other}"),
    }
}

#[test]
fn the_verifier_refuses_tampered_replace_card_folders() {
    let mut x = replaced(105);
    let root = x.g.root_key();
    let verify = |dir: &Path| verify_recovery_dir(&x.generation, dir);
    let new_shards =
        || ShardFile::parse(std::str::from_utf8(out(&x.finished, paths::SHARDS)).unwrap()).unwrap();

    // Re-signed unchanged: passes (the forging is sound).
    let dir = x.tampered("unchanged", |d| forge(d, &root, &[], |_| {}));
    verify(&dir).expect("re-signed unchanged");

    // Without the root key, any changed file fails the output records.
    let dir = x.tampered("unsigned-swap", |d| {
        std::fs::write(
            d.join(paths::sealed_share(2)),
            &x.g.pinned().share(2).unwrap().message,
        )
        .unwrap();
    });
    assert!(matches!(verify(&dir).unwrap_err(), E::Output { .. }));

    // Another holder's entry changed in the shard file (holder 1's message is holder 3's).
    let mut shards = new_shards();
    shards.shares[0].message = shards.shares[2].message.clone();
    let bytes = shards.to_toml().into_bytes();
    let dir = x.tampered("other-entry", |d| {
        forge(d, &root, &[(paths::SHARDS.into(), bytes)], |_| {})
    });
    let e = operation_error(&verify(&dir).unwrap_err());
    assert!(e.contains("share 1"), "{e}");
    // Holder 1's entry made of holder 3's (a consistent pair: the shard file reads).
    let mut shards = new_shards();
    shards.shares[0].location_cert = shards.shares[2].location_cert.clone();
    shards.shares[0].message = shards.shares[2].message.clone();
    let bytes = shards.to_toml().into_bytes();
    let dir = x.tampered("other-location", |d| {
        forge(d, &root, &[(paths::SHARDS.into(), bytes)], |_| {})
    });
    let e = operation_error(&verify(&dir).unwrap_err());
    assert!(e.contains("share 1's location certificate"), "{e}");

    // The envelope swapped for the old one, in the file and the shard file alike.
    let old_message = x.g.pinned().share(2).unwrap().message.clone();
    let mut shards = new_shards();
    shards.shares[1].message = old_message.clone();
    let bytes = shards.to_toml().into_bytes();
    let swapped = [
        (paths::SHARDS.to_string(), bytes),
        (paths::sealed_share(2), old_message.clone()),
    ];
    let dir = x.tampered("envelope-swapped", |d| forge(d, &root, &swapped, |_| {}));
    let e = operation_error(&verify(&dir).unwrap_err());
    assert!(e.contains("recovery.sealed") && e.contains("sha256"), "{e}");
    // ... and its record too: then it is not encrypted to the new location key.
    let old_sha = sha256_hex(&old_message);
    let dir = x.tampered("envelope-swapped-recorded", |d| {
        forge(d, &root, &swapped, |r| {
            set(r, "recovery.sealed", "sha256", &old_sha)
        })
    });
    let e = operation_error(&verify(&dir).unwrap_err());
    assert!(e.contains("not to the new location key"), "{e}");

    // A new location certificate that is not the recorded one (holder 1's).
    let holder_1 = x.g.pinned().share(1).unwrap().location_cert.clone();
    let armored = {
        use ceremony::openpgp::serialize::SerializeInto;
        holder_1.armored().to_vec().unwrap()
    };
    let loc_path = paths::location_cert(2);
    let dir = x.tampered("location-swapped", |d| {
        forge(d, &root, &[(loc_path, armored)], |_| {})
    });
    let e = operation_error(&verify(&dir).unwrap_err());
    assert!(e.contains("recovery.location"), "{e}");

    // A new card's serial that is an old card of the ceremony (holder 3's).
    let old_serial = x.g.cards[2].serial().unwrap().0;
    let dir = x.tampered("old-serial", |d| {
        forge(d, &root, &[], |r| {
            set(r, "recovery.card", "serial", &old_serial)
        })
    });
    let e = operation_error(&verify(&dir).unwrap_err());
    assert!(e.contains("holder 3's card 1 already"), "{e}");

    // The PIN file's recipients: only the holder's certificate recorded.
    let dir = x.tampered("pins-recipients", |d| {
        let first = x.g.fixture.personal[1].fingerprint().to_hex();
        forge(d, &root, &[], |r| {
            set(r, "recovery.pins", "recipients", &first)
        })
    });
    let e = operation_error(&verify(&dir).unwrap_err());
    assert!(e.contains("recipients"), "{e}");

    // The records out of order: a card before the sealed share.
    let dir = x.tampered("order", |d| {
        forge(d, &root, &[], |r| {
            let sealed = r.iter().position(|(k, _)| k == "recovery.sealed").unwrap();
            let card = r.iter().position(|(k, _)| k == "recovery.card").unwrap();
            r.swap(sealed, card);
        })
    });
    assert!(matches!(verify(&dir).unwrap_err(), E::Structure(_)));

    // A tampered folder cannot be pinned with.
    let dir = x.tampered("pin-refused", |d| {
        let mut shards = new_shards();
        shards.shares[0].message = shards.shares[2].message.clone();
        forge(
            d,
            &root,
            &[(paths::SHARDS.into(), shards.to_toml().into_bytes())],
            |_| {},
        )
    });
    let e = PinnedRoot::from_dirs(&x.generation, &[&dir]).unwrap_err();
    assert!(matches!(e, PinError::Replacement { .. }), "{e}");
    // Nor a folder of another operation.
    let request = x.g.request_text("[prove-quorum]\nchallenge = \"c\"\n");
    let stick: HashMap<String, Vec<u8>> = HashMap::new();
    let quorum = recover(&mut x.g, &request, &[], &[1, 3], &stick);
    let quorum_dir = write_recovery(&quorum, x.tmp.path(), "quorum");
    let e = PinnedRoot::from_dirs(&x.generation, &[&quorum_dir]).unwrap_err();
    assert!(
        matches!(
            e,
            PinError::NotAReplacement {
                operation: OperationKind::ProveQuorum,
                ..
            }
        ),
        "{e}"
    );
}

// --- sherd-verify and the independent Python verifier alike ---

/// The workspace root, where `verifiers/python` is.
fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("ceremony/ has a parent")
        .to_owned()
}

/// Both verifiers on `recovery` against `generation` and the replace-card folders `replaced`
/// (`--replaced`, in order): the same verdict (tests/src/pyverify.rs).
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

/// The common FAIL line of both verifiers, which must contain `names`.
fn both_refuse(recovery: &Path, generation: &Path, replaced: &[&Path], names: &str) -> String {
    let v = both(recovery, generation, replaced);
    let line = v
        .fail_line()
        .unwrap_or_else(|| panic!("both verifiers pass {}:\n{}", recovery.display(), v.stdout))
        .to_string();
    assert!(line.contains(names), "{line}");
    eprintln!("both refuse: {line}");
    line
}

/// A prove-quorum recovery after the replacement, with holder 2's new card 2 and holder 1's
/// card, written as `name`.
fn recovery_after(x: &mut Replaced, name: &str) -> PathBuf {
    let request =
        x.g.request_text("[prove-quorum]\nchallenge = \"after the replacement\"\n");
    let mut c = collecting(x.pinned(), &request);
    let new_pins = x.new_pin_file();
    bring_with(&mut c, 2, x.g.personal(2), &new_pins, &mut x.new_cards[1]).expect("the new card");
    bring(&mut c, &mut x.g, 1).expect("holder 1");
    let finished = c
        .recombine()
        .expect("recombined with the new card")
        .perform(&|_| unreachable!())
        .expect("the quorum is proven");
    write_recovery(&finished, x.tmp.path(), name)
}

#[test]
fn both_verifiers_check_replace_card_folders_and_the_next_recovery_alike() {
    let mut x = replaced(106);
    let root = x.g.root_key();
    let generation = x.generation.clone();
    let new_shards =
        || ShardFile::parse(std::str::from_utf8(out(&x.finished, paths::SHARDS)).unwrap()).unwrap();

    // The replace-card folder: both pass, with the same output.
    let v = both(&x.replace, &generation, &[]);
    assert_eq!(v.status, 0, "{}", v.stdout);
    assert!(
        v.stdout.contains("replaced:          holder 2 ("),
        "{}",
        v.stdout
    );

    // Tampered copies, refused alike. A new card's serial that is an old card's (holder 3's).
    let old_serial = x.g.cards[2].serial().unwrap().0;
    let old_serial_dir = x.tampered("py-old-serial", |d| {
        forge(d, &root, &[], |r| {
            set(r, "recovery.card", "serial", &old_serial)
        })
    });
    both_refuse(
        &old_serial_dir,
        &generation,
        &[],
        "holder 3's card 1 already",
    );
    // A card serial changed without the root key: the chain breaks.
    let serial = x.new_cards[0].serial().unwrap().0;
    let dir = x.tampered("py-serial-unsigned", |d| {
        let t = std::fs::read_to_string(d.join(paths::TRANSCRIPT)).unwrap();
        std::fs::write(
            d.join(paths::TRANSCRIPT),
            t.replace(&serial, "000F:99990001"),
        )
        .unwrap();
    });
    both_refuse(&dir, &generation, &[], "transcript.txt");
    // Holder 1's entry of the new shard file swapped for holder 3's (a consistent entry).
    let mut shards = new_shards();
    shards.shares[0].location_cert = shards.shares[2].location_cert.clone();
    shards.shares[0].message = shards.shares[2].message.clone();
    let bytes = shards.to_toml().into_bytes();
    let dir = x.tampered("py-entry-swapped", |d| {
        forge(d, &root, &[(paths::SHARDS.into(), bytes)], |_| {})
    });
    both_refuse(&dir, &generation, &[], "share 1's location certificate");
    // The new PIN file replaced by the generation's (its output record too).
    let old_pins = x.g.pin_file(2);
    let dir = x.tampered("py-pins-changed", |d| {
        forge(d, &root, &[(paths::pin_file(2), old_pins)], |_| {})
    });
    both_refuse(&dir, &generation, &[], "(recovery.pins): sha256");
    // The PIN file's recorded recipients: the holder's certificate alone.
    let first = x.g.fixture.personal[1].fingerprint().to_hex();
    let dir = x.tampered("py-pins-recipients", |d| {
        forge(d, &root, &[], |r| {
            set(r, "recovery.pins", "recipients", &first)
        })
    });
    both_refuse(&dir, &generation, &[], "recipients");
    // Another location certificate (holder 1's) than the recorded one.
    let armored = {
        use ceremony::openpgp::serialize::SerializeInto;
        x.g.pinned()
            .share(1)
            .unwrap()
            .location_cert
            .armored()
            .to_vec()
            .unwrap()
    };
    let dir = x.tampered("py-location-swapped", |d| {
        forge(d, &root, &[(paths::location_cert(2), armored)], |_| {})
    });
    both_refuse(&dir, &generation, &[], "(recovery.location): fingerprint");
    // The new envelope swapped for the old one, file, shard file and record alike: not
    // encrypted to the new location key.
    let old_message = x.g.pinned().share(2).unwrap().message.clone();
    let mut shards = new_shards();
    shards.shares[1].message = old_message.clone();
    let swapped = [
        (paths::SHARDS.to_string(), shards.to_toml().into_bytes()),
        (paths::sealed_share(2), old_message.clone()),
    ];
    let old_sha = sha256_hex(&old_message);
    let dir = x.tampered("py-envelope-swapped", |d| {
        forge(d, &root, &swapped, |r| {
            set(r, "recovery.sealed", "sha256", &old_sha)
        })
    });
    both_refuse(&dir, &generation, &[], "not to the new location key");

    // The next recovery, with holder 2's new card: both pass with the replace-card folder
    // given, with the same output, and refuse it alike without it, with it twice, or with a
    // tampered copy of it.
    let after = recovery_after(&mut x, "py-after");
    let v = both(&after, &generation, &[&x.replace]);
    assert_eq!(v.status, 0, "{}", v.stdout);
    assert!(v.stdout.contains("replaced (1):"), "{}", v.stdout);
    both_refuse(
        &after,
        &generation,
        &[],
        "1 recovery.replaced/recovery.reshared record(s)",
    );
    both_refuse(
        &after,
        &generation,
        &[&x.replace, &x.replace],
        "does not verify against the generation folder and the replace-card/reshare folders given before it",
    );
    both_refuse(
        &after,
        &generation,
        &[&old_serial_dir],
        "holder 3's card 1 already",
    );
}
