//! The recovery ceremony's core, driven on the host with virtual cards: a whole generation,
//! then recoveries that sign files (verified by GnuPG) and prove the quorum, and the refusals,
//! each of which leaves the phase unchanged.

mod common;

use std::collections::HashMap;
use std::process::Command;

use ceremony::card::{
    CardError, CardSerial, DEFAULT_USER_PIN, LocationCard, PersonalDecryptCard, SoftwareCard,
    SoftwarePersonalCard,
};
use ceremony::ceremony::paths as gen_paths;
use ceremony::keys::CardImport;
use ceremony::openpgp::Cert;
use ceremony::openpgp::parse::Parse;
use ceremony::recovery::PinnedRoot;
use ceremony::recovery_flow::{
    Collecting, FlowError, HolderFault, HolderInput, Progress, Recombined, RecordsError,
    RecoveryRecord, Requested, paths, records,
};
use ceremony::secret::{CardPins, Pin, SharedSecret};
use ceremony::storage::{DirVolume, OutputFile};
use ceremony::transcript::{self, Transcript};
use common::*;

const ID: &str = "recovery-flow";
/// After the plan time (2026-11-24T09:00:00Z) and in the past, so GnuPG sees no time warp.
const REQUEST_TIME: &str = "2026-11-25T10:00:00Z";

/// A finished 2-of-3 generation ceremony on the host, with its holders' cards.
struct Generation {
    fixture: Fixture,
    files: Vec<OutputFile>,
    /// Each holder's (only) location card.
    cards: Vec<SoftwareCard>,
}

fn generation(id: &str, seed: u8) -> Generation {
    let fixture = fixture_with(id, 3, 2, &[1, 1, 1]);
    let done = run(&fixture, seed);
    Generation {
        fixture,
        cards: done.cards.into_iter().map(|mut c| c.remove(0)).collect(),
        files: done.files,
    }
}

impl Generation {
    fn pinned(&self) -> PinnedRoot {
        let map: HashMap<String, Vec<u8>> = self
            .files
            .iter()
            .map(|f| (f.path.clone(), f.bytes.clone()))
            .collect();
        PinnedRoot::from_generation(&move |p: &str| {
            map.get(p)
                .cloned()
                .ok_or_else(|| std::io::Error::new(std::io::ErrorKind::NotFound, "missing"))
        })
        .expect("the generation folder verifies")
    }

    fn root_fpr(&self) -> String {
        Cert::from_bytes(file(&self.files, gen_paths::ROOT_CERT))
            .unwrap()
            .fingerprint()
            .to_hex()
    }

    /// Holder `index`'s personal card (1-based).
    fn personal(&self, index: u8) -> SoftwarePersonalCard {
        let i = usize::from(index) - 1;
        SoftwarePersonalCard::new(&format!("0006:{index:08}"), &self.fixture.personal[i])
            .expect("a personal key")
    }

    fn pin_file(&self, index: u8) -> Vec<u8> {
        file(&self.files, &gen_paths::pin_file(index)).to_vec()
    }

    fn request_text(&self, operation: &str) -> String {
        format!(
            "format = \"sherd-request/1\"\nceremony_id = \"{}\"\nroot_fingerprint = \"{}\"\n\
             time = {REQUEST_TIME}\n\n{operation}",
            self.fixture_id(),
            self.root_fpr()
        )
    }

    fn fixture_id(&self) -> String {
        let text = &self.fixture.plan_text;
        let start = text.find("ceremony_id = \"").unwrap() + "ceremony_id = \"".len();
        let end = start + text[start..].find('"').unwrap();
        text[start..end].to_string()
    }
}

fn default_pin() -> Pin {
    Pin::from_string(DEFAULT_USER_PIN.to_string())
}

fn sha256_hex(bytes: &[u8]) -> String {
    use sha2::Digest;
    sha2::Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// Starts a recovery with no approvals (the fixture's plan has no policy) and confirms the hash.
fn collecting(g: &Generation, request: &str) -> Collecting {
    let requested = Requested::start(g.pinned(), request.as_bytes(), &[]).expect("request");
    let hash = requested.request().hash();
    assert_eq!(
        requested.hash_hex(),
        sha256_hex(&requested.request().canonical_bytes())
    );
    requested.confirm(&hash).expect("confirmed")
}

/// Holder `index` brings their own personal card and their location card.
fn bring(c: &mut Collecting, g: &mut Generation, index: u8) -> Result<Progress, FlowError> {
    let pin_file = g.pin_file(index);
    let mut personal = g.personal(index);
    let input = HolderInput {
        index,
        pin_file: &pin_file,
        sealed_share: None,
    };
    c.accept_holder(
        &input,
        &mut personal,
        &default_pin(),
        &mut g.cards[usize::from(index) - 1],
    )
}

fn holder_fault(r: Result<Progress, FlowError>) -> (u8, String, HolderFault) {
    match r {
        Err(FlowError::Holder {
            index,
            holder,
            fault,
        }) => (index, holder, fault),
        other => panic!("expected a holder refusal, got {other:?}"),
    }
}

fn recombined(c: Collecting) -> Recombined {
    c.recombine().expect("recombination")
}

/// GnuPG in a throw-away home folder; the agent it may start is stopped when dropped.
struct Gpg {
    home: tempfile::TempDir,
}

impl Gpg {
    fn new() -> Option<Gpg> {
        let found = Command::new("sh")
            .args(["-c", "command -v gpg"])
            .output()
            .map(|o| o.status.success())
            .unwrap_or(false);
        if !found {
            eprintln!("SKIPPED: gpg is not installed; the signatures were not checked by GnuPG");
            return None;
        }
        Some(Gpg {
            home: tempfile::Builder::new()
                .prefix("gpg")
                .tempdir_in("/tmp")
                .unwrap(),
        })
    }

    /// Runs gpg; returns (success, status-fd output).
    fn run(&self, args: &[&str]) -> (bool, String) {
        let out = Command::new("gpg")
            .arg("--homedir")
            .arg(self.home.path())
            .args(["--batch", "--no-tty", "--status-fd", "1"])
            .args(args)
            .output()
            .expect("gpg runs");
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
        )
    }

    /// `gpg --verify sig data`: whether it is a good signature by `fpr`.
    fn verifies(&self, dir: &std::path::Path, sig: &str, data: &str, fpr: &str) -> bool {
        let (ok, status) = self.run(&[
            "--verify",
            dir.join(sig).to_str().unwrap(),
            dir.join(data).to_str().unwrap(),
        ]);
        ok && status.contains("[GNUPG:] GOODSIG") && status.contains(&format!("VALIDSIG {fpr}"))
    }
}

impl Drop for Gpg {
    fn drop(&mut self) {
        let _ = Command::new("gpgconf")
            .arg("--homedir")
            .arg(self.home.path())
            .args(["--kill", "gpg-agent"])
            .status();
    }
}

/// The recovery transcript: hash-chained, signed by the pinned root key, its records.
fn check_transcript(g: &Generation, files: &[OutputFile]) -> Transcript {
    let text = file(files, paths::TRANSCRIPT);
    let t = Transcript::parse(text).expect("the transcript parses");
    let root = Cert::from_bytes(file(&g.files, gen_paths::ROOT_CERT)).unwrap();
    transcript::verify_signature(&root, text, file(files, paths::TRANSCRIPT_SIG))
        .expect("signed by the root key");
    let gen_t = Transcript::parse(file(&g.files, gen_paths::TRANSCRIPT)).unwrap();
    let first = &t.records()[0];
    assert_eq!(first.kind, "recovery.generation");
    assert!(first.value.contains(&format!(
        "transcript={}",
        sha256_hex_raw(&gen_t.final_hash())
    )));
    // Strictly typed; each accepted share is the sealed share the generation transcript
    // records; each output file is listed with its hash.
    let typed = records(&t).expect("recovery records");
    let sealed: HashMap<u8, [u8; 32]> = gen_t
        .core_records()
        .unwrap()
        .into_iter()
        .filter_map(|(_, c)| match c {
            ceremony::record::CoreRecord::ShareSealed(s) => Some((s.holder, s.sha256.0)),
            _ => None,
        })
        .collect();
    let mut outputs = 0;
    for r in &typed {
        match r {
            RecoveryRecord::Share(s) => assert_eq!(sealed[&s.holder], s.envelope.0),
            RecoveryRecord::Output(o) => {
                outputs += 1;
                assert_eq!(
                    sha256_hex(file(files, &o.path)),
                    sha256_hex_raw(&o.sha256.0)
                );
            }
            RecoveryRecord::End(e) => assert_eq!(e.files, outputs),
            _ => {}
        }
    }
    assert_eq!(outputs + 2, files.len());
    assert!(matches!(records(&gen_t), Err(RecordsError::NotRecovery(_))));
    t
}

fn sha256_hex_raw(bytes: &[u8; 32]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[test]
fn generation_then_recovery_signs_files_that_gnupg_verifies() {
    let mut g = generation(ID, 71);
    let release = b"release 1.2: the bytes the root key signs\n".to_vec();
    let notes = b"second file\n".to_vec();
    let request = g.request_text(&format!(
        "[sign]\n[[sign.file]]\nname = \"release-1.2.tar.gz\"\nsha256 = \"{}\"\n\
         [[sign.file]]\nname = \"release notes.txt\"\nsha256 = \"{}\"\n",
        sha256_hex(&release),
        sha256_hex(&notes)
    ));
    let mut c = collecting(&g, &request);
    assert_eq!(c.progress().to_string(), "0 of 2 needed shares");

    // Holder 3 first, then holder 1, whose PIN file their backup (holder 2) reads.
    assert_eq!(
        bring(&mut c, &mut g, 3).unwrap().to_string(),
        "1 of 2 needed shares"
    );
    let pin_file = g.pin_file(1);
    let mut backup_card = g.personal(2);
    let p = c
        .accept_holder(
            &HolderInput {
                index: 1,
                pin_file: &pin_file,
                sealed_share: None,
            },
            &mut backup_card,
            &default_pin(),
            &mut g.cards[0],
        )
        .expect("holder 1 through their backup's personal card");
    assert_eq!(p.to_string(), "2 of 2 needed shares");
    assert!(p.complete());
    assert_eq!(c.holders(), vec![3, 1]);
    // Debug shows no share.
    let debug = format!("{c:?}");
    assert!(debug.contains("2 of 2 needed shares"), "{debug}");

    let r = recombined(c);
    assert_eq!(r.root_fingerprint().to_hex(), g.root_fpr());
    let stick: HashMap<&str, Vec<u8>> = [
        ("release-1.2.tar.gz", release.clone()),
        ("release notes.txt", notes.clone()),
    ]
    .into_iter()
    .collect();
    let finished = r
        .perform(&|name| {
            stick
                .get(name)
                .cloned()
                .ok_or_else(|| std::io::Error::new(std::io::ErrorKind::NotFound, "missing"))
        })
        .expect("signed");
    assert_eq!(finished.final_words, finished.transcript.final_words());

    let t = check_transcript(&g, &finished.files);
    let kinds: Vec<&str> = t.records().iter().map(|r| r.kind.as_str()).collect();
    assert_eq!(
        &kinds[..6],
        &[
            "recovery.generation",
            "recovery.request",
            "recovery.policy",
            "recovery.share",
            "recovery.share",
            "recovery.recombined"
        ]
    );
    assert!(t.records()[3].value.contains("holder=3"));
    assert!(t.records()[4].value.contains("holder=1"));
    assert!(t.records()[4].value.contains("reader=backup"));
    assert!(
        t.records()
            .iter()
            .any(|r| r.kind == "recovery.signed" && r.value.contains(&sha256_hex(&release)))
    );
    assert_eq!(t.records().last().unwrap().kind, "ceremony.end");

    // Written through the storage writer, then checked by GnuPG from the folder.
    let tmp = tempfile::tempdir().unwrap();
    let mut vol = DirVolume::new(tmp.path());
    finished
        .write(&mut [&mut vol], "recovery")
        .expect("written");
    let dir = tmp.path().join("recovery");
    std::fs::write(dir.join("release-1.2.tar.gz"), &release).unwrap();
    std::fs::write(dir.join("notes-copy.txt"), &notes).unwrap();
    let Some(gpg) = Gpg::new() else { return };
    let (ok, _) = gpg.run(&["--import", dir.join(paths::ROOT_CERT).to_str().unwrap()]);
    assert!(ok, "gpg imports the root certificate");
    let fpr = g.root_fpr();
    assert!(gpg.verifies(
        &dir,
        "signatures/release-1.2.tar.gz.sig",
        "release-1.2.tar.gz",
        &fpr
    ));
    assert!(gpg.verifies(
        &dir,
        "signatures/by-position/002.sig",
        "notes-copy.txt",
        &fpr
    ));
    assert!(gpg.verifies(&dir, paths::TRANSCRIPT_SIG, paths::TRANSCRIPT, &fpr));
    // And a signature over other bytes does not verify.
    assert!(!gpg.verifies(
        &dir,
        "signatures/release-1.2.tar.gz.sig",
        "notes-copy.txt",
        &fpr
    ));
}

#[test]
fn prove_quorum_signs_the_challenge() {
    let mut g = generation(ID, 72);
    let challenge = "Bitcoin block 880000: 000000000000000000010b17283c";
    let request = g.request_text(&format!("[prove-quorum]\nchallenge = \"{challenge}\"\n"));
    // The witnesses confirm the generation transcript's words (a caller's record); the
    // recovery core's own kinds cannot be written by a caller.
    let mut requested = Requested::start(g.pinned(), request.as_bytes(), &[]).unwrap();
    let confirm = ceremony::ceremony::Record::WitnessConfirm(ceremony::record::WitnessConfirm {
        name: "the witnesses present".into(),
        step: "generation-words".into(),
    });
    requested.record(&confirm).expect("a witness confirmation");
    let forged = ceremony::record::Note::new(
        "recovery.share",
        ceremony::record::Fields::new().with("holder", "1"),
    )
    .unwrap();
    assert!(
        requested
            .record(&ceremony::ceremony::Record::Note(forged))
            .is_err()
    );
    let hash = requested.request().hash();
    let mut c = requested.confirm(&hash).unwrap();
    bring(&mut c, &mut g, 2).unwrap();
    bring(&mut c, &mut g, 3).unwrap();
    let finished = recombined(c)
        .perform(&|_| panic!("prove-quorum reads no file"))
        .expect("proved");
    assert_eq!(
        file(&finished.files, paths::CHALLENGE),
        challenge.as_bytes()
    );
    let t = check_transcript(&g, &finished.files);
    assert!(t.records().iter().any(|r| r.kind == "recovery.quorum"));
    assert!(matches!(
        &records(&t).unwrap()[1],
        RecoveryRecord::WitnessConfirm(w) if w.step == "generation-words"
    ));

    let root = Cert::from_bytes(file(&g.files, gen_paths::ROOT_CERT)).unwrap();
    let armored = file(&finished.files, paths::CHALLENGE_SIG);
    transcript::verify_signature(&root, challenge.as_bytes(), armored)
        .expect("Sequoia verifies the challenge signature");
    let Some(gpg) = Gpg::new() else { return };
    let tmp = tempfile::tempdir().unwrap();
    let mut vol = DirVolume::new(tmp.path());
    finished.write(&mut [&mut vol], "proof").unwrap();
    let dir = tmp.path().join("proof");
    assert!(
        gpg.run(&["--import", dir.join(paths::ROOT_CERT).to_str().unwrap()])
            .0
    );
    assert!(gpg.verifies(&dir, paths::CHALLENGE_SIG, paths::CHALLENGE, &g.root_fpr()));
}

#[test]
fn refusals_name_the_holder_and_lose_nothing() {
    let mut g = generation(ID, 73);
    let mut other = generation("another-ceremony", 74);
    let request = g.request_text("[prove-quorum]\nchallenge = \"headline\"\n");
    let mut c = collecting(&g, &request);
    bring(&mut c, &mut g, 2).unwrap();
    let before = format!("{c:?}");

    // A sealed share from another ceremony (the holder's "copy"): refused before any card.
    let foreign = ceremony::shardfile::ShardFile::parse(
        std::str::from_utf8(file(&other.files, gen_paths::SHARDS)).unwrap(),
    )
    .unwrap()
    .shares[0]
        .message
        .clone();
    let pin_file = g.pin_file(1);
    let (index, holder, fault) = holder_fault(c.accept_holder(
        &HolderInput {
            index: 1,
            pin_file: &pin_file,
            sealed_share: Some(&foreign),
        },
        &mut g.personal(1),
        &default_pin(),
        &mut g.cards[0],
    ));
    assert_eq!((index, holder.as_str()), (1, "Holder 001"));
    assert!(matches!(fault, HolderFault::Share(_)), "{fault}");

    // A tampered copy of the genuine envelope.
    let mut tampered = g.pinned().share(1).unwrap().message.clone();
    let mid = tampered.len() / 2;
    tampered[mid] ^= 1;
    let (_, _, fault) = holder_fault(c.accept_holder(
        &HolderInput {
            index: 1,
            pin_file: &pin_file,
            sealed_share: Some(&tampered),
        },
        &mut g.personal(1),
        &default_pin(),
        &mut g.cards[0],
    ));
    assert!(
        fault
            .to_string()
            .contains("not the one the generation transcript records")
    );

    // Another ceremony's PIN file (not signed by this root, not to this key).
    let other_pins = other.pin_file(1);
    let (_, _, fault) = holder_fault(c.accept_holder(
        &HolderInput {
            index: 1,
            pin_file: &other_pins,
            sealed_share: None,
        },
        &mut g.personal(1),
        &default_pin(),
        &mut g.cards[0],
    ));
    assert!(matches!(fault, HolderFault::PinFile(_)), "{fault}");

    // A location card of another ceremony with the same serial: it cannot decrypt.
    let (_, _, fault) = holder_fault(c.accept_holder(
        &HolderInput {
            index: 1,
            pin_file: &pin_file,
            sealed_share: None,
        },
        &mut g.personal(1),
        &default_pin(),
        &mut other.cards[0],
    ));
    assert!(matches!(fault, HolderFault::Share(_)), "{fault}");

    // Holder 3's location card for holder 1: not one of holder 1's cards.
    let (_, _, fault) = holder_fault(c.accept_holder(
        &HolderInput {
            index: 1,
            pin_file: &pin_file,
            sealed_share: None,
        },
        &mut g.personal(1),
        &default_pin(),
        &mut g.cards[2],
    ));
    assert!(
        matches!(fault, HolderFault::NotHoldersLocationCard { .. }),
        "{fault}"
    );

    // Someone else's personal card (holder 3 is neither holder 1 nor their backup, holder 2).
    let (_, _, fault) = holder_fault(c.accept_holder(
        &HolderInput {
            index: 1,
            pin_file: &pin_file,
            sealed_share: None,
        },
        &mut g.personal(3),
        &default_pin(),
        &mut g.cards[0],
    ));
    assert!(
        matches!(fault, HolderFault::NotHoldersPersonalCard { .. }),
        "{fault}"
    );

    // The same holder twice.
    let (index, _, fault) = holder_fault(bring(&mut c, &mut g, 2));
    assert_eq!(index, 2);
    assert!(matches!(fault, HolderFault::AlreadyAccepted), "{fault}");

    // A holder the plan does not have.
    let (_, _, fault) = holder_fault(c.accept_holder(
        &HolderInput {
            index: 9,
            pin_file: &pin_file,
            sealed_share: None,
        },
        &mut g.personal(1),
        &default_pin(),
        &mut g.cards[0],
    ));
    assert!(
        matches!(
            fault,
            HolderFault::NoSuchHolder {
                plan: "the generation plan"
            }
        ),
        "{fault}"
    );

    // Nothing was lost or added: still holder 2 alone.
    assert_eq!(format!("{c:?}"), before);
    assert_eq!(c.holders(), vec![2]);

    // Fewer than M: recombination refused, the phase comes back as it was.
    let refused = c.recombine().expect_err("1 of 2");
    assert!(matches!(
        *refused.error,
        FlowError::NotEnoughShares { have: 1, needed: 2 }
    ));
    let mut c = *refused.state;
    assert_eq!(format!("{c:?}"), before);

    // Then holder 1 properly, with a genuine copy of their sealed share from their own stick:
    // the ceremony goes on.
    let genuine = g.pinned().share(1).unwrap().message.clone();
    c.accept_holder(
        &HolderInput {
            index: 1,
            pin_file: &pin_file,
            sealed_share: Some(&genuine),
        },
        &mut g.personal(1),
        &default_pin(),
        &mut g.cards[0],
    )
    .expect("holder 1 with their own copy");
    let finished = recombined(c).perform(&|_| unreachable!()).unwrap();
    check_transcript(&g, &finished.files);
}

/// A location card that is pulled out during its first decryption.
struct PulledOnce {
    card: SoftwareCard,
    pulled: bool,
}

impl LocationCard for PulledOnce {
    fn serial(&mut self) -> Result<CardSerial, CardError> {
        self.card.serial()
    }
    fn holds_keys(&mut self) -> Result<bool, CardError> {
        self.card.holds_keys()
    }
    fn provision(
        &mut self,
        key: &CardImport<'_>,
        pins: &CardPins,
    ) -> Result<CardSerial, CardError> {
        self.card.provision(key, pins)
    }
    fn ecdh(&mut self, pin: &Pin, eph: &[u8; 32]) -> Result<SharedSecret, CardError> {
        if !self.pulled {
            self.pulled = true;
            return Err(CardError::Device("the card was removed".into()));
        }
        self.card.ecdh(pin, eph)
    }
}

/// A personal card that is pulled out during its first decryption.
struct PersonalPulledOnce {
    card: SoftwarePersonalCard,
    pulled: bool,
}

impl PersonalDecryptCard for PersonalPulledOnce {
    fn serial(&mut self) -> Result<CardSerial, CardError> {
        PersonalDecryptCard::serial(&mut self.card)
    }
    fn decryption_fingerprint(
        &mut self,
    ) -> Result<Option<ceremony::openpgp::Fingerprint>, CardError> {
        self.card.decryption_fingerprint()
    }
    fn user_pin_retries(&mut self) -> Result<u8, CardError> {
        PersonalDecryptCard::user_pin_retries(&mut self.card)
    }
    fn ecdh(&mut self, pin: &Pin, eph: &[u8; 32]) -> Result<SharedSecret, CardError> {
        if !self.pulled {
            self.pulled = true;
            return Err(CardError::Device("the card was removed".into()));
        }
        PersonalDecryptCard::ecdh(&mut self.card, pin, eph)
    }
}

#[test]
fn a_card_failing_mid_way_loses_nothing() {
    let mut g = generation(ID, 75);
    let request = g.request_text("[prove-quorum]\nchallenge = \"headline\"\n");
    let mut c = collecting(&g, &request);
    bring(&mut c, &mut g, 1).unwrap();
    let before = format!("{c:?}");
    let pin_file = g.pin_file(3);
    let input = HolderInput {
        index: 3,
        pin_file: &pin_file,
        sealed_share: None,
    };

    // The personal card is pulled while it decrypts the PIN file.
    let mut personal = PersonalPulledOnce {
        card: g.personal(3),
        pulled: false,
    };
    let (index, _, fault) =
        holder_fault(c.accept_holder(&input, &mut personal, &default_pin(), &mut g.cards[2]));
    assert_eq!(index, 3);
    assert!(
        matches!(fault, HolderFault::PersonalCard(CardError::Device(_))),
        "{fault}"
    );
    assert_eq!(format!("{c:?}"), before);

    // The location card is pulled while it decrypts the share.
    let mut location = PulledOnce {
        card: g.cards.remove(2),
        pulled: false,
    };
    let (_, _, fault) =
        holder_fault(c.accept_holder(&input, &mut personal, &default_pin(), &mut location));
    assert!(matches!(fault, HolderFault::Share(_)), "{fault}");
    assert!(fault.to_string().contains("removed"), "{fault}");
    assert_eq!(format!("{c:?}"), before);

    // A wrong personal PIN costs a try and nothing else; the retry guard then stops the PIN.
    let mut personal3 = g.personal(3);
    let wrong = Pin::from_string("654321".into());
    let (_, _, fault) =
        holder_fault(c.accept_holder(&input, &mut personal3, &wrong, &mut location));
    assert!(
        matches!(
            fault,
            HolderFault::PersonalCard(CardError::WrongPin { retries_left: 2 })
        ),
        "{fault}"
    );
    let mut low = g.personal(3).with_retries_left(1);
    let (_, _, fault) =
        holder_fault(c.accept_holder(&input, &mut low, &default_pin(), &mut location));
    assert!(
        matches!(
            fault,
            HolderFault::PersonalCard(CardError::PinRetriesLow { .. })
        ),
        "{fault}"
    );
    assert_eq!(format!("{c:?}"), before);

    // Inserted again: accepted.
    let p = c
        .accept_holder(&input, &mut personal, &default_pin(), &mut location)
        .expect("the second try");
    assert_eq!(p.to_string(), "2 of 2 needed shares");
    let finished = recombined(c).perform(&|_| unreachable!()).unwrap();
    check_transcript(&g, &finished.files);
}

#[test]
fn requests_and_confirmations_are_checked_before_any_card() {
    let g = generation(ID, 76);
    // A request for another root.
    let text = g
        .request_text("[prove-quorum]\nchallenge = \"headline\"\n")
        .replace(&g.root_fpr(), &"AB".repeat(20));
    assert!(matches!(
        Requested::start(g.pinned(), text.as_bytes(), &[]),
        Err(FlowError::NotForThisRoot(_))
    ));
    // A confirmation of other words.
    let text = g.request_text("[prove-quorum]\nchallenge = \"headline\"\n");
    let requested = Requested::start(g.pinned(), text.as_bytes(), &[]).unwrap();
    let refused = requested.confirm(&[7; 32]).expect_err("other hash");
    assert!(matches!(*refused.error, FlowError::HashNotConfirmed { .. }));
    let hash = refused.state.request().hash();
    refused.state.confirm(&hash).expect("the right hash");
}

#[test]
fn perform_refuses_replace_card_naming_the_method_that_does_it() {
    let mut g = generation(ID, 77);
    let request = g.request_text("[replace-card]\nholder = 2\ncards = 1\n");
    let mut c = collecting(&g, &request);
    bring(&mut c, &mut g, 1).unwrap();
    bring(&mut c, &mut g, 2).unwrap();
    let refused = recombined(c)
        .perform(&|_| unreachable!())
        .expect_err("perform does not provision cards");
    assert!(matches!(*refused.error, FlowError::ReplaceCardNeedsCards));
    assert!(
        refused
            .error
            .to_string()
            .contains("Recombined::start_replace_card")
    );
}

#[test]
fn certify_adds_root_certifications_that_gnupg_checks() {
    let mut g = generation(ID, 78);
    let uid = "Builder One <b1@example.org>";
    let builder = personal(uid);
    let request = g.request_text(&format!(
        "[certify]\ncert = '''\n{}'''\nuser_ids = [\"{uid}\"]\nexpiry = 2028-03-01T00:00:00Z\n",
        armored_public(&builder)
    ));
    let mut c = collecting(&g, &request);
    bring(&mut c, &mut g, 1).unwrap();
    bring(&mut c, &mut g, 3).unwrap();
    let finished = recombined(c)
        .perform(&|_| unreachable!())
        .expect("certified");
    let t = check_transcript(&g, &finished.files);
    assert!(t.records().iter().any(|r| r.kind == "recovery.certified"));

    // Sequoia: the root key's certification of the user ID verifies.
    let root = Cert::from_bytes(file(&g.files, gen_paths::ROOT_CERT)).unwrap();
    let certified = Cert::from_bytes(file(&finished.files, paths::CERTIFIED)).unwrap();
    assert_eq!(certified.fingerprint(), builder.fingerprint());
    let ua = certified
        .userids()
        .find(|u| u.userid().value() == uid.as_bytes())
        .unwrap();
    let by_root: Vec<_> = ua
        .certifications()
        .filter(|s| {
            s.verify_userid_binding(
                root.primary_key().key(),
                certified.primary_key().key(),
                ua.userid(),
            )
            .is_ok()
        })
        .collect();
    assert_eq!(by_root.len(), 1);
    assert!(by_root[0].signature_validity_period().is_some());

    // GnuPG: a good certification by the root key.
    let Some(gpg) = Gpg::new() else { return };
    let tmp = tempfile::tempdir().unwrap();
    let mut vol = DirVolume::new(tmp.path());
    finished.write(&mut [&mut vol], "certify").unwrap();
    let dir = tmp.path().join("certify");
    assert!(
        gpg.run(&["--import", dir.join(paths::ROOT_CERT).to_str().unwrap()])
            .0
    );
    assert!(
        gpg.run(&["--import", dir.join(paths::CERTIFIED).to_str().unwrap()])
            .0
    );
    let out = std::process::Command::new("gpg")
        .arg("--homedir")
        .arg(gpg.home.path())
        .args([
            "--batch",
            "--with-colons",
            "--check-sigs",
            &builder.fingerprint().to_hex(),
        ])
        .output()
        .unwrap();
    let listing = String::from_utf8_lossy(&out.stdout);
    let root_keyid = &g.root_fpr()[24..];
    assert!(
        listing
            .lines()
            .any(|l| l.starts_with("sig:!:") && l.contains(root_keyid)),
        "{listing}"
    );
}

#[test]
fn a_policy_needs_its_approvals_before_any_card() {
    use ceremony::card::PersonalCard;
    use ceremony::recovery::{ApprovalFile, PolicyError};

    let ann = personal("Ann Approver");
    let bob = personal("Bob Approver");
    let mut fixture = fixture_with(ID, 3, 2, &[1, 1, 1]);
    fixture.plan_text.push_str(&format!(
        "\n[policy]\n[[policy.approver]]\nname = \"Ann\"\ncerts = ['''\n{}''']\n\
         [[policy.approver]]\nname = \"Bob\"\ncerts = ['''\n{}''']\n\
         [policy.sign]\nk = 2\n[policy.certify]\nk = 2\n[policy.prove-quorum]\nk = 2\n\
         [policy.reshare]\nk = 2\n[policy.replace-card]\nk = 2\n",
        armored_public(&ann),
        armored_public(&bob)
    ));
    let done = run(&fixture, 79);
    let mut g = Generation {
        fixture,
        cards: done.cards.into_iter().map(|mut c| c.remove(0)).collect(),
        files: done.files,
    };
    let text = g.request_text("[prove-quorum]\nchallenge = \"headline\"\n");
    let time = std::time::UNIX_EPOCH + std::time::Duration::from_secs(1_795_600_000);
    let approve = |name: &str, cert: &Cert, bytes: &[u8]| ApprovalFile {
        name: name.into(),
        bytes: SoftwarePersonalCard::new("0006:00000099", cert)
            .unwrap()
            .sign_detached(&default_pin(), cert, time, bytes)
            .unwrap(),
    };

    // One of two approvals; then an approval over different bytes: refused, no card asked.
    let ann_ok = approve("ann.sig", &ann, text.as_bytes());
    let bob_other = approve("bob.sig", &bob, b"another request");
    for approvals in [vec![ann_ok.clone()], vec![ann_ok.clone(), bob_other]] {
        assert!(matches!(
            Requested::start(g.pinned(), text.as_bytes(), &approvals),
            Err(FlowError::Policy(PolicyError::TooFewApprovals {
                valid: 1,
                needed: 2,
                ..
            }))
        ));
    }

    // Both: the recovery goes on and records each approval.
    let approvals = [ann_ok, approve("bob.sig", &bob, text.as_bytes())];
    let requested = Requested::start(g.pinned(), text.as_bytes(), &approvals).expect("approved");
    let hash = requested.request().hash();
    let mut c = requested.confirm(&hash).unwrap();
    bring(&mut c, &mut g, 1).unwrap();
    bring(&mut c, &mut g, 2).unwrap();
    let finished = recombined(c).perform(&|_| unreachable!()).unwrap();
    let t = check_transcript(&g, &finished.files);
    let typed = records(&t).unwrap();
    assert!(typed.iter().any(|r| matches!(r,
        RecoveryRecord::Policy(p) if p.policy == "held" && p.needed == 2 && p.approvals == 2)));
    let approvers: Vec<&str> = typed
        .iter()
        .filter_map(|r| match r {
            RecoveryRecord::Approval(a) => Some(a.approver.as_str()),
            _ => None,
        })
        .collect();
    assert_eq!(approvers, ["Ann", "Bob"]);
}
