//! Witnesses sign the finished transcript with their own cards: which card belongs to which
//! witness, the default PIN and a typed one, the retry guard, and what the offline verifier
//! (and GnuPG alone) make of the signature files.

mod common;

use std::collections::HashMap;
use std::time::SystemTime;

use ceremony::card::{CardError, CardSerial, PersonalCard, SoftwarePersonalCard};
use ceremony::ceremony::paths;
use ceremony::openpgp::{Cert, Fingerprint};
use ceremony::secret::Pin;
use ceremony::storage::OutputFile;
use ceremony::verify::{self, Failure};
use ceremony::witness::{PinRequest, SignError, WitnessSigning};
use common::*;

struct Witnessed {
    files: Vec<OutputFile>,
    finished: ceremony::ceremony::Finished,
    wendy: Cert,
    walter: Cert,
}

/// A ceremony whose plan gives both witnesses a certificate (with `require` as given).
fn witnessed(id: &str, require: bool) -> Witnessed {
    let (wendy, walter) = (personal("Wendy Witness"), personal("Walter Witness"));
    let f = with_witness_certs(fixture(id, 3, 2), [Some(&wendy), Some(&walter)], require);
    let done = run(&f, 21);
    Witnessed {
        files: done.files,
        finished: done.finished,
        wendy,
        walter,
    }
}

fn card(serial: &str, cert: &Cert) -> SoftwarePersonalCard {
    SoftwarePersonalCard::new(serial, cert).expect("a signing key with its secret")
}

fn no_pin(_: &PinRequest) -> Option<Pin> {
    panic!("no PIN should be asked for")
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

fn with(files: &[OutputFile], extra: Vec<OutputFile>) -> Vec<OutputFile> {
    let mut out: Vec<OutputFile> = files
        .iter()
        .filter(|f| !extra.iter().any(|e| e.path == f.path))
        .cloned()
        .collect();
    out.extend(extra);
    out
}

#[test]
fn both_witnesses_sign_with_the_default_pin_and_the_verifier_names_them() {
    let w = witnessed("witness-both", false);
    let mut signing = WitnessSigning::for_finished(&w.finished);
    assert!(signing.any_certificates() && !signing.required());
    // In any order: Walter's card first.
    let s = signing
        .sign(&mut card("0006:00000002", &w.walter), &mut no_pin)
        .unwrap();
    assert_eq!((s.witness, s.name.as_str()), (2, "Walter Witness"));
    assert_eq!(s.serial, "0006:00000002");
    assert_eq!(s.cert_fingerprint, w.walter.fingerprint().to_hex());
    assert_eq!(s.output_file().path, "witness-signatures/2.sig");
    signing
        .sign(&mut card("0006:00000001", &w.wendy), &mut no_pin)
        .unwrap();
    assert!(signing.unsigned().is_empty());
    signing.check_complete().unwrap();
    let sigs = signing.output_files();
    assert_eq!(
        sigs.iter().map(|f| f.path.as_str()).collect::<Vec<_>>(),
        ["witness-signatures/1.sig", "witness-signatures/2.sig"]
    );
    // What is signed is exactly the transcript.txt written, and the outputs give the same.
    let transcript = file(&w.files, paths::TRANSCRIPT);
    assert_eq!(signing.transcript(), transcript);
    let from_files = WitnessSigning::from_outputs(&w.files).unwrap();
    assert_eq!(from_files.transcript(), transcript);
    assert_eq!(from_files.plan().hash(), w.finished.plan().hash());
    assert!(WitnessSigning::from_outputs(&w.files[1..]).is_err());

    let report = verify_files(&with(&w.files, sigs)).unwrap();
    assert_eq!(report.witnesses.signed, ["Wendy Witness", "Walter Witness"]);
    assert_eq!(
        report.witnesses.line(),
        "signed by 2 of 2 witnesses: Wendy Witness, Walter Witness"
    );
}

#[test]
fn a_changed_pin_is_asked_for_and_the_guard_is_kept() {
    let w = witnessed("witness-pin", false);
    let mut signing = WitnessSigning::for_finished(&w.finished);
    let own = || Pin::from_string("24681357".into());

    // The default is refused (3 -> 2 tries), then the witness's PIN signs.
    let mut c = card("0006:00000001", &w.wendy).with_user_pin(own());
    let mut asked = Vec::new();
    let s = signing
        .sign(&mut c, &mut |r: &PinRequest| {
            asked.push(r.clone());
            Some(own())
        })
        .unwrap();
    assert_eq!(s.witness, 1);
    assert_eq!(
        asked,
        [PinRequest {
            witness: 1,
            name: "Wendy Witness".into(),
            serial: "0006:00000001".into(),
            retries_left: 2,
            after_wrong_pin: true,
        }]
    );
    assert_eq!(c.retries_left(), 3);

    // With 2 tries left the default is not tried (a refusal would leave 1, below the guard):
    // the witness is asked straight away. A wrong PIN leaves 1: nothing more is presented.
    let mut c = card("0006:00000002", &w.walter)
        .with_user_pin(own())
        .with_retries_left(2);
    let mut asked = Vec::new();
    let e = signing
        .sign(&mut c, &mut |r: &PinRequest| {
            asked.push((r.retries_left, r.after_wrong_pin));
            Some(Pin::from_string("11111111".into()))
        })
        .unwrap_err();
    assert_eq!(asked, [(2, false)]);
    assert!(
        matches!(e, SignError::PinRetriesLow { witness: 2, retries_left: 1, ref serial, .. } if serial == "0006:00000002"),
        "{e}"
    );
    assert_eq!(c.retries_left(), 1, "no PIN presented below the guard");
    assert!(e.to_string().contains("Walter Witness"), "{e}");

    // No PIN given: nothing signed.
    let mut c = card("0006:00000002", &w.walter).with_user_pin(own());
    let e = signing.sign(&mut c, &mut |_| None).unwrap_err();
    assert!(matches!(e, SignError::NoPin { witness: 2, .. }), "{e}");
    assert_eq!(signing.signed().len(), 1);
}

#[test]
fn cards_of_nobody_or_of_a_witness_who_signed_are_refused() {
    let w = witnessed("witness-refused", true);
    let mut signing = WitnessSigning::for_finished(&w.finished);
    assert!(signing.required());

    let stranger = personal("Mallory");
    let e = signing
        .sign(&mut card("0006:0000000D", &stranger), &mut no_pin)
        .unwrap_err();
    assert!(
        matches!(e, SignError::NotAWitnessCard { ref serial, ref key } if serial == "0006:0000000D" && !key.is_empty()),
        "{e}"
    );
    let e = signing
        .sign(
            &mut SoftwarePersonalCard::empty("0006:0000000E"),
            &mut no_pin,
        )
        .unwrap_err();
    assert!(matches!(e, SignError::NoSigningKey { .. }), "{e}");

    signing
        .sign(&mut card("0006:00000001", &w.wendy), &mut no_pin)
        .unwrap();
    let e = signing
        .sign(&mut card("0006:00000009", &w.wendy), &mut no_pin)
        .unwrap_err();
    assert!(
        matches!(e, SignError::AlreadySigned { witness: 1, ref name, ref serial } if name == "Wendy Witness" && serial == "0006:00000009"),
        "{e}"
    );

    // Required: not complete until Walter signs.
    assert_eq!(
        signing.check_complete().unwrap_err(),
        SignError::Incomplete {
            missing: vec!["Walter Witness".into()]
        }
    );
    // And the verifier refuses the folder without his signature.
    let e = verify_files(&with(&w.files, signing.output_files())).unwrap_err();
    assert!(
        matches!(e, Failure::MissingWitnessSignature { witness: 2, ref path, .. } if path == "witness-signatures/2.sig"),
        "{e}"
    );
    signing
        .sign(&mut card("0006:00000002", &w.walter), &mut no_pin)
        .unwrap();
    signing.check_complete().unwrap();
    let r = verify_files(&with(&w.files, signing.output_files())).unwrap();
    assert!(r.witnesses.required);
}

/// A card that signs something else than it is given (a faulty card or reader).
struct Faulty(SoftwarePersonalCard);

impl PersonalCard for Faulty {
    fn serial(&mut self) -> Result<CardSerial, CardError> {
        self.0.serial()
    }
    fn signing_fingerprint(&mut self) -> Result<Option<Fingerprint>, CardError> {
        self.0.signing_fingerprint()
    }
    fn user_pin_retries(&mut self) -> Result<u8, CardError> {
        self.0.user_pin_retries()
    }
    fn sign_detached(
        &mut self,
        pin: &Pin,
        cert: &Cert,
        time: SystemTime,
        data: &[u8],
    ) -> Result<Vec<u8>, CardError> {
        let mut other = data.to_vec();
        other.push(b'!');
        self.0.sign_detached(pin, cert, time, &other)
    }
}

#[test]
fn a_signature_that_does_not_verify_is_not_kept() {
    let w = witnessed("witness-faulty", false);
    let mut signing = WitnessSigning::for_finished(&w.finished);
    let e = signing
        .sign(&mut Faulty(card("0006:00000001", &w.wendy)), &mut no_pin)
        .unwrap_err();
    assert!(
        matches!(e, SignError::BadSignature { witness: 1, .. }),
        "{e}"
    );
    assert!(signing.signed().is_empty());
}

/// Check 11, each way it fails: a signature over other bytes, by another witness's key, armored,
/// for a witness without a certificate.
#[test]
fn the_verifier_refuses_bad_signature_files() {
    let w = witnessed("witness-verify", false);
    let mut signing = WitnessSigning::for_finished(&w.finished);
    signing
        .sign(&mut card("0006:00000001", &w.wendy), &mut no_pin)
        .unwrap();
    let sigs = signing.output_files();

    // Absent is fine without the requirement: Walter is "not signed".
    let r = verify_files(&with(&w.files, sigs.clone())).unwrap();
    assert_eq!(
        r.witnesses.line(),
        "signed by 1 of 2 witnesses: Wendy Witness; not signed: Walter Witness"
    );
    let r = verify_files(&w.files).unwrap();
    assert_eq!(
        r.witnesses.line(),
        "signed by 0 of 2 witnesses; not signed: Wendy Witness, Walter Witness"
    );

    let fails = |files: Vec<OutputFile>, path: &str, what: &str| {
        let e = verify_files(&files).unwrap_err();
        assert!(
            matches!(e, Failure::Invalid { path: ref p, ref reason } if p == path && reason.contains(what)),
            "{e}"
        );
    };
    let at = |k: usize, bytes: Vec<u8>| OutputFile {
        path: paths::witness_signature(k),
        bytes,
    };
    // Wendy's signature over other bytes.
    let mut other = WitnessSigning::new(w.finished.plan().clone(), b"another transcript".to_vec());
    let over_other = other
        .sign(&mut card("0006:00000001", &w.wendy), &mut no_pin)
        .unwrap()
        .signature
        .clone();
    fails(
        with(&w.files, vec![at(1, over_other)]),
        "witness-signatures/1.sig",
        "no signing key",
    );
    // Wendy's good signature stored as Walter's.
    fails(
        with(&w.files, vec![at(2, sigs[0].bytes.clone())]),
        "witness-signatures/2.sig",
        "no signing key",
    );
    // Armored instead of binary.
    let armored = {
        use std::io::Write;
        let mut w = ceremony::openpgp::armor::Writer::new(
            Vec::new(),
            ceremony::openpgp::armor::Kind::Signature,
        )
        .unwrap();
        w.write_all(&sigs[0].bytes).unwrap();
        w.finalize().unwrap()
    };
    fails(
        with(&w.files, vec![at(1, armored)]),
        "witness-signatures/1.sig",
        "not a binary OpenPGP packet",
    );
    // Made a day after the plan time (the ceremony's signatures all carry the plan time).
    let later = card("0006:00000001", &w.wendy)
        .sign_detached(
            &Pin::from_string("123456".into()),
            &w.wendy,
            w.finished.plan().time() + std::time::Duration::from_secs(86_400),
            file(&w.files, paths::TRANSCRIPT),
        )
        .unwrap();
    fails(
        with(&w.files, vec![at(1, later)]),
        "witness-signatures/1.sig",
        "not at the plan time",
    );
    // Two signatures in one file.
    let mut twice = sigs[0].bytes.clone();
    twice.extend_from_slice(&sigs[0].bytes);
    fails(
        with(&w.files, vec![at(1, twice)]),
        "witness-signatures/1.sig",
        "exactly one signature packet",
    );

    // A plan without witness certificates: a signature file for a witness fails.
    let plain = run(&fixture("witness-none", 3, 2), 22);
    let r = verify_files(&plain.files).unwrap();
    assert!(!r.witnesses.certificates_given);
    assert_eq!(
        r.witnesses.line(),
        "witness signatures: none (the plan gives no witness certificates)"
    );
    fails(
        with(&plain.files, vec![at(2, sigs[0].bytes.clone())]),
        "witness-signatures/2.sig",
        "has no certificate",
    );
}

/// An auditor with GnuPG alone: import the witness's certificate from plan.toml, then
/// `gpg --verify witness-signatures/1.sig transcript.txt`. Without gpg the test fails
/// (./scripts/setup installs it): a check that is skipped checks nothing.
#[test]
fn gnupg_verifies_a_witness_signature() {
    let version = std::process::Command::new("gpg").arg("--version").output();
    assert!(
        version.is_ok_and(|o| o.status.success()),
        "gpg is needed for this interoperability test: apt-get install gnupg (./scripts/setup does)"
    );
    let w = witnessed("witness-gpg", false);
    let mut signing = WitnessSigning::for_finished(&w.finished);
    signing
        .sign(&mut card("0006:00000001", &w.wendy), &mut no_pin)
        .unwrap();
    let home = tempfile::tempdir().unwrap();
    let folder = home.path().join("sherd-witness-gpg");
    for f in w.files.iter().chain(&signing.output_files()) {
        let p = folder.join(&f.path);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, &f.bytes).unwrap();
    }
    // The witness's certificate, as plan.toml gives it.
    let plan: toml::Value =
        toml::from_str(&std::fs::read_to_string(folder.join("plan.toml")).unwrap()).unwrap();
    let cert = plan["witness"][0]["certs"][0].as_str().unwrap();
    let certfile = home.path().join("wendy.asc");
    std::fs::write(&certfile, cert).unwrap();
    let gnupghome = home.path().join("gnupg");
    std::fs::create_dir(&gnupghome).unwrap();
    let gpg = |args: &[&std::ffi::OsStr]| {
        std::process::Command::new("gpg")
            .env("GNUPGHOME", &gnupghome)
            .current_dir(&folder)
            .args(["--batch", "--quiet", "--no-autostart"])
            .args(args)
            .output()
            .unwrap()
    };
    let imp = gpg(&["--import".as_ref(), certfile.as_os_str()]);
    assert!(
        imp.status.success(),
        "{}",
        String::from_utf8_lossy(&imp.stderr)
    );
    let v = gpg(&[
        "--verify".as_ref(),
        "witness-signatures/1.sig".as_ref(),
        "transcript.txt".as_ref(),
    ]);
    assert!(v.status.success(), "{}", String::from_utf8_lossy(&v.stderr));
    let said = String::from_utf8_lossy(&v.stderr);
    assert!(
        said.contains("Good signature") && said.contains("Wendy Witness"),
        "{said}"
    );
    // One byte of the transcript changed: refused.
    let mut t = std::fs::read(folder.join("transcript.txt")).unwrap();
    t[20] ^= 1;
    std::fs::write(folder.join("transcript.txt"), t).unwrap();
    let v = gpg(&[
        "--verify".as_ref(),
        "witness-signatures/1.sig".as_ref(),
        "transcript.txt".as_ref(),
    ]);
    assert!(!v.status.success(), "gpg accepted a changed transcript");
}
