//! The recovery folder verifier (`ceremony::verify_recovery`, `sherd-verify --recovery`):
//! recoveries run on the host pass; tampered copies fail with the check that catches them.
//! Tampering with anything the transcript says breaks the root key's signature first; the
//! semantic checks behind it are tested on transcripts rebuilt and re-signed with the real root
//! key, which the test recombines from the holders' cards.

mod common;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use ceremony::keys::RootKey;
use ceremony::openpgp::cert::{CertBuilder, CipherSuite};
use ceremony::openpgp::packet::signature::SignatureBuilder;
use ceremony::openpgp::serialize::SerializeInto;
use ceremony::openpgp::types::SignatureType;
use ceremony::record::Fields;
use ceremony::recovery::ApprovalFile;
use ceremony::recovery_flow::paths;
use ceremony::request::OperationKind;
use ceremony::transcript::{Transcript, TranscriptError};
use ceremony::verify_recovery::{
    RecoveryReport, RecoveryVerifyError as E, verify_recovery_dir, verify_recovery_dir_with_files,
};
use common::recovery::*;
use common::*;

const ID: &str = "verify-recovery";
const RELEASE: &[u8] = b"release 1.2: the bytes the root key signs\n";
const NOTES: &[u8] = b"second file\n";

/// A generation folder and a recovery folder written side by side, and the request stick's
/// files (for `sign`).
struct Case {
    g: Generation,
    tmp: tempfile::TempDir,
    generation: PathBuf,
    recovery: PathBuf,
    stick: PathBuf,
}

impl Case {
    fn new(mut g: Generation, request: &str, holders: &[u8], approvals: &[ApprovalFile]) -> Case {
        let stick: HashMap<String, Vec<u8>> = [
            ("release-1.2.tar.gz".to_string(), RELEASE.to_vec()),
            ("release notes.txt".to_string(), NOTES.to_vec()),
        ]
        .into_iter()
        .collect();
        let finished = recover(&mut g, request, approvals, holders, &stick);
        let tmp = tempfile::tempdir().unwrap();
        let generation = g.write(tmp.path(), "generation");
        let recovery = write_recovery(&finished, tmp.path(), "recovery");
        let stick_dir = tmp.path().join("stick");
        std::fs::create_dir(&stick_dir).unwrap();
        for (name, bytes) in &stick {
            std::fs::write(stick_dir.join(name), bytes).unwrap();
        }
        Case {
            g,
            tmp,
            generation,
            recovery,
            stick: stick_dir,
        }
    }

    fn verify(&self, recovery: &Path) -> Result<RecoveryReport, E> {
        verify_recovery_dir(&self.generation, recovery)
    }

    /// A copy of the recovery folder named `name`, changed by `change`.
    fn tampered(&self, name: &str, change: impl FnOnce(&Path)) -> PathBuf {
        let dir = self.tmp.path().join(name);
        copy_dir(&self.recovery, &dir);
        change(&dir);
        dir
    }
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), target).unwrap();
        }
    }
}

fn sign_request(g: &Generation) -> String {
    g.request_text(&format!(
        "[sign]\n[[sign.file]]\nname = \"release-1.2.tar.gz\"\nsha256 = \"{}\"\n\
         [[sign.file]]\nname = \"release notes.txt\"\nsha256 = \"{}\"\n",
        sha256_hex(RELEASE),
        sha256_hex(NOTES)
    ))
}

/// A sign recovery: holder 3, then holder 1.
fn sign_case(seed: u8) -> Case {
    let g = generation(ID, seed);
    let request = sign_request(&g);
    Case::new(g, &request, &[3, 1], &[])
}

fn quorum_case(seed: u8) -> Case {
    let g = generation(ID, seed);
    let request = g.request_text("[prove-quorum]\nchallenge = \"Bitcoin block 880000: 0000abc\"\n");
    Case::new(g, &request, &[2, 3], &[])
}

/// A transcript's records as (kind, value).
type Records = Vec<(String, String)>;

/// The transcript's records as (kind, value), and its header line.
fn read_records(dir: &Path) -> (String, Records) {
    let text = std::fs::read_to_string(dir.join(paths::TRANSCRIPT)).unwrap();
    let mut lines = text.lines();
    let header = lines.next().unwrap().to_string();
    let records = lines
        .map(|l| {
            let mut parts = l.splitn(4, ' ');
            let (_, _, kind, value) = (
                parts.next().unwrap(),
                parts.next().unwrap(),
                parts.next().unwrap(),
                parts.next().unwrap(),
            );
            (kind.to_string(), value.to_string())
        })
        .collect();
    (header, records)
}

/// The transcript text of `records` under `header`, hash-chained anew.
fn chained(header: &str, records: &[(String, String)]) -> String {
    let mut text = format!("{header}\n");
    let mut prev = sha256_hex(header.as_bytes());
    for (i, (kind, value)) in records.iter().enumerate() {
        let line = format!("{} {prev} {kind} {value}", i + 1);
        prev = sha256_hex(line.as_bytes());
        text.push_str(&line);
        text.push('\n');
    }
    text
}

/// Rewrites the transcript of `dir` with `edit` applied to its records, chained anew and signed
/// by `root` (the real root key, or `None`: the old signature stays).
fn rewrite(dir: &Path, root: Option<&RootKey>, edit: impl FnOnce(&mut Records)) {
    let (header, mut records) = read_records(dir);
    edit(&mut records);
    let text = chained(&header, &records);
    std::fs::write(dir.join(paths::TRANSCRIPT), &text).unwrap();
    if let Some(root) = root {
        let t = Transcript::parse(text.as_bytes()).expect("a well-formed transcript");
        // Dated as the real one: at the request's time.
        let request = std::fs::read_to_string(dir.join("request.toml")).unwrap();
        let time = ceremony::request::Request::parse(&request)
            .unwrap()
            .time_unix;
        let sig = t.sign(root, time).unwrap();
        std::fs::write(dir.join(paths::TRANSCRIPT_SIG), sig).unwrap();
    }
}

/// `value` with field `key` set to `new`.
fn set_field(kind: &str, value: &str, key: &str, new: &str) -> String {
    let fields = Fields::parse(kind, value).unwrap();
    assert!(fields.get(key).is_some(), "{kind} has no {key}");
    let mut out = Fields::new();
    for (k, v) in fields.pairs() {
        out = out.with(k, if k == key { new } else { v.as_str() });
    }
    out.encode()
}

/// Sets field `key` of the `nth` (0-based) record of `kind`.
fn set(records: &mut [(String, String)], kind: &str, nth: usize, key: &str, new: &str) {
    let (k, v) = records
        .iter_mut()
        .filter(|(k, _)| k == kind)
        .nth(nth)
        .unwrap_or_else(|| panic!("no {kind} number {nth}"));
    *v = set_field(k, v, key, new);
}

fn position(records: &[(String, String)], kind: &str) -> usize {
    records.iter().position(|(k, _)| k == kind).unwrap()
}

fn unwrap_err(r: Result<RecoveryReport, E>) -> E {
    match r {
        Ok(report) => panic!("expected a failure, got {report:?}"),
        Err(e) => {
            eprintln!("FAIL as expected: {e}");
            e
        }
    }
}

#[test]
fn a_sign_recovery_passes_and_its_signatures_verify_over_the_files() {
    let case = sign_case(81);
    let report = case
        .verify(&case.recovery)
        .expect("the recovery folder verifies");
    assert_eq!(report.operation, OperationKind::Sign);
    assert_eq!(report.ceremony_id, ID);
    assert_eq!(report.root_fingerprint, case.g.root_fpr());
    assert_eq!(
        report.holders,
        vec![(3, "Holder 003".to_string()), (1, "Holder 001".to_string())]
    );
    assert_eq!(report.threshold, 2);
    assert_eq!(report.policy, "none: the generation plan has no [policy]");
    assert_eq!(
        report.outputs,
        [
            "request.toml",
            "root-cert.asc",
            "signatures/release-1.2.tar.gz.sig",
            "signatures/by-position/002.sig"
        ]
    );
    let gen_t =
        Transcript::parse(&std::fs::read(case.generation.join("transcript.txt")).unwrap()).unwrap();
    assert_eq!(
        report.generation_final_hash,
        sha256_hex_of(&gen_t.final_hash())
    );
    assert!(
        report
            .operation_lines
            .iter()
            .all(|l| l.contains("give --files")),
        "{:?}",
        report.operation_lines
    );

    // With the request stick's files, each signature is verified over its file.
    let report =
        verify_recovery_dir_with_files(&case.generation, &case.recovery, Some(&case.stick))
            .expect("the signatures verify over the files");
    assert!(
        report.operation_lines[0]
            .contains("a good signature by the root key over \"release-1.2.tar.gz\""),
        "{:?}",
        report.operation_lines
    );

    // A file other than the one signed, or no file at all.
    std::fs::write(case.stick.join("release notes.txt"), b"other bytes\n").unwrap();
    let e = unwrap_err(verify_recovery_dir_with_files(
        &case.generation,
        &case.recovery,
        Some(&case.stick),
    ));
    assert!(
        matches!(&e, E::Operation { what, .. } if what.starts_with("release notes.txt")),
        "{e}"
    );
    std::fs::remove_file(case.stick.join("release notes.txt")).unwrap();
    let e = unwrap_err(verify_recovery_dir_with_files(
        &case.generation,
        &case.recovery,
        Some(&case.stick),
    ));
    assert!(
        matches!(&e, E::FileUnreadable { path, .. } if path == "release notes.txt"),
        "{e}"
    );
}

fn sha256_hex_of(bytes: &[u8; 32]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[test]
fn a_prove_quorum_recovery_passes() {
    let mut case = quorum_case(82);
    let report = case.verify(&case.recovery).expect("verifies");
    assert_eq!(report.operation, OperationKind::ProveQuorum);
    assert_eq!(
        report.holders.iter().map(|h| h.0).collect::<Vec<_>>(),
        [2, 3]
    );
    assert!(report.operation_lines[0].contains("Bitcoin block 880000"));
    assert_eq!(
        report.outputs,
        [
            "request.toml",
            "root-cert.asc",
            "quorum/challenge.txt",
            "quorum/challenge.txt.sig"
        ]
    );

    // The challenge altered: its output record catches it; listed anew under the real root
    // key, the operation check does.
    let dir = case.tampered("challenge", |d| {
        std::fs::write(d.join(paths::CHALLENGE), b"another challenge").unwrap();
    });
    let e = unwrap_err(case.verify(&dir));
    assert!(
        matches!(&e, E::Output { path, .. } if path == paths::CHALLENGE),
        "{e}"
    );
    let root = case.g.root_key();
    let other = sha256_hex(b"another challenge");
    rewrite(&dir, Some(&root), |r| {
        set(r, "output.file", 2, "sha256", &other);
        set(r, "output.file", 2, "size", "17");
    });
    let e = unwrap_err(case.verify(&dir));
    assert!(
        matches!(&e, E::Operation { what, reason } if what == paths::CHALLENGE && reason.contains("not the request's challenge")),
        "{e}"
    );
}

#[test]
fn a_certify_recovery_passes() {
    let g = generation(ID, 83);
    let uid = "Builder One <b1@example.org>";
    let builder = personal(uid);
    let request = g.request_text(&format!(
        "[certify]\ncert = '''\n{}'''\nuser_ids = [\"{uid}\"]\nexpiry = 2028-03-01T00:00:00Z\n",
        armored_public(&builder)
    ));
    let mut case = Case::new(g, &request, &[1, 3], &[]);
    let report = case.verify(&case.recovery).expect("verifies");
    assert_eq!(report.operation, OperationKind::Certify);
    assert_eq!(
        report.operation_lines,
        [format!(
            "certified/cert.asc: {uid:?} certified by the root key"
        )]
    );

    // The certificate without the root key's certification, listed under the real root key:
    // the certification check catches it.
    let root = case.g.root_key();
    let plain = armored_public(&builder);
    let dir = case.tampered("uncertified", |d| {
        std::fs::write(d.join(paths::CERTIFIED), &plain).unwrap();
    });
    let (sha, size) = (sha256_hex(plain.as_bytes()), plain.len().to_string());
    rewrite(&dir, Some(&root), |r| {
        set(r, "output.file", 2, "sha256", &sha);
        set(r, "output.file", 2, "size", &size);
    });
    let e = unwrap_err(case.verify(&dir));
    assert!(
        matches!(&e, E::Operation { what, reason } if what == paths::CERTIFIED && reason.contains("no good certification")),
        "{e}"
    );
}

#[test]
fn a_recovery_under_a_policy_passes_and_its_approval_records_are_checked() {
    use ceremony::card::PersonalCard;

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
    let g = generation_of(fixture, 84);
    let text = g.request_text("[prove-quorum]\nchallenge = \"headline\"\n");
    let time = std::time::UNIX_EPOCH + std::time::Duration::from_secs(1_795_600_000);
    let approve = |name: &str, cert: &ceremony::openpgp::Cert| ApprovalFile {
        name: name.into(),
        bytes: ceremony::card::SoftwarePersonalCard::new("0006:00000099", cert)
            .unwrap()
            .sign_detached(&default_pin(), cert, time, text.as_bytes())
            .unwrap(),
    };
    let approvals = [approve("ann.sig", &ann), approve("bob.sig", &bob)];
    let mut case = Case::new(g, &text, &[1, 2], &approvals);
    let report = case.verify(&case.recovery).expect("verifies");
    assert_eq!(
        report.policy,
        "held: prove-quorum needs 2 approver(s); 2 approved (Ann, Bob)"
    );

    let root = case.g.root_key();
    // Bob's approval recorded as Ann's: Ann counted twice.
    let dir = case.tampered("ann-twice", |d| {
        rewrite(d, Some(&root), |r| {
            set(r, "recovery.approval", 1, "approver", "Ann")
        });
    });
    let e = unwrap_err(case.verify(&dir));
    assert!(
        matches!(&e, E::Policy { kind: "recovery.approval", reason, .. } if reason.contains("counted twice")),
        "{e}"
    );
    // One approval dropped: fewer than the policy needs.
    let dir = case.tampered("one-approval", |d| {
        rewrite(d, Some(&root), |r| {
            let at = position(r, "recovery.approval");
            r.remove(at);
            set(r, "recovery.policy", 0, "approvals", "1");
        });
    });
    let e = unwrap_err(case.verify(&dir));
    assert!(
        matches!(&e, E::Policy { kind: "recovery.policy", reason, .. } if reason.contains("fewer than the 2 needed")),
        "{e}"
    );
    // An approver's certificate that is not theirs.
    let dir = case.tampered("other-cert", |d| {
        rewrite(d, Some(&root), |r| {
            set(r, "recovery.approval", 0, "cert", &"AB".repeat(20));
        });
    });
    let e = unwrap_err(case.verify(&dir));
    assert!(
        matches!(&e, E::Policy { reason, .. } if reason.contains("not one the plan lists for approver \"Ann\"")),
        "{e}"
    );
}

#[test]
fn an_edited_transcript_breaks_the_chain() {
    let case = quorum_case(85);
    let dir = case.tampered("edited", |d| {
        let path = d.join(paths::TRANSCRIPT);
        let text = std::fs::read_to_string(&path).unwrap();
        std::fs::write(&path, text.replacen("holder=3", "holder=1", 1)).unwrap();
    });
    let e = unwrap_err(case.verify(&dir));
    assert!(
        matches!(
            &e,
            E::Chain {
                source: TranscriptError::BrokenChain { .. }
            }
        ),
        "{e}"
    );
    assert!(e.to_string().starts_with("transcript.txt: line "), "{e}");
}

#[test]
fn tampering_without_the_root_key_fails_the_signature() {
    let case = quorum_case(86);
    // The records rebuilt with a consistent chain: only the root key's signature tells.
    let dir = case.tampered("rechained", |d| {
        rewrite(d, None, |r| {
            set(r, "recovery.recombined", 0, "holders", "3,2");
        });
    });
    let e = unwrap_err(case.verify(&dir));
    assert!(matches!(e, E::Signature { .. }), "{e}");

    // The transcript signed by another key.
    let dir = case.tampered("other-key", |d| {
        let (other, _) = CertBuilder::general_purpose(["Mallory"])
            .set_cipher_suite(CipherSuite::Cv25519)
            .generate()
            .unwrap();
        let mut signer = other
            .primary_key()
            .key()
            .clone()
            .parts_into_secret()
            .unwrap()
            .into_keypair()
            .unwrap();
        let text = std::fs::read(d.join(paths::TRANSCRIPT)).unwrap();
        let sig = SignatureBuilder::new(SignatureType::Binary)
            .sign_message(&mut signer, &text)
            .unwrap();
        let binary = ceremony::openpgp::Packet::from(sig).to_vec().unwrap();
        std::fs::write(d.join(paths::TRANSCRIPT_SIG), binary).unwrap();
        // And its certificate as root-cert.asc: the pinned root is the generation folder's.
        std::fs::write(d.join(paths::ROOT_CERT), armored_public(&other)).unwrap();
    });
    let e = unwrap_err(case.verify(&dir));
    assert!(
        matches!(&e, E::Signature { root, reason } if *root == case.g.root_fpr() && reason.starts_with("made by key ")),
        "{e}"
    );

    // The transcript's signature by the root key, over another transcript (the generation's).
    let generation = case.generation.clone();
    let dir = case.tampered("other-sig", |d| {
        std::fs::copy(
            generation.join("transcript.txt.sig"),
            d.join(paths::TRANSCRIPT_SIG),
        )
        .unwrap();
    });
    let e = unwrap_err(case.verify(&dir));
    assert!(matches!(e, E::Signature { .. }), "{e}");

    // root-cert.asc replaced by another key's certificate.
    let dir = case.tampered("other-root-cert", |d| {
        std::fs::write(
            d.join(paths::ROOT_CERT),
            armored_public(&personal("Mallory")),
        )
        .unwrap();
    });
    let e = unwrap_err(case.verify(&dir));
    assert!(
        matches!(&e, E::RootCert(r) if r.contains("not the generation's root key")),
        "{e}"
    );
}

#[test]
fn an_altered_request_fails() {
    let case = quorum_case(87);
    // A comment added: the bytes differ, the meaning does not.
    let dir = case.tampered("request-comment", |d| {
        let path = d.join(paths::REQUEST);
        let mut text = std::fs::read_to_string(&path).unwrap();
        text.push_str("# a comment\n");
        std::fs::write(&path, text).unwrap();
    });
    let e = unwrap_err(case.verify(&dir));
    assert!(
        matches!(
            &e,
            E::Request {
                field: "file-sha256",
                ..
            }
        ),
        "{e}"
    );
    // Another challenge.
    let dir = case.tampered("request-challenge", |d| {
        let path = d.join(paths::REQUEST);
        let text = std::fs::read_to_string(&path).unwrap();
        std::fs::write(&path, text.replace("880000", "880001")).unwrap();
    });
    let e = unwrap_err(case.verify(&dir));
    assert!(
        matches!(
            &e,
            E::Request {
                field: "file-sha256",
                ..
            }
        ),
        "{e}"
    );
    // Not a request at all.
    let dir = case.tampered("request-junk", |d| {
        std::fs::write(d.join(paths::REQUEST), "format = \"sherd-request/9\"\n").unwrap();
    });
    let e = unwrap_err(case.verify(&dir));
    assert!(matches!(e, E::RequestInvalid(_)), "{e}");
}

#[test]
fn outputs_altered_extra_or_missing_fail() {
    let case = sign_case(88);
    let sig = "signatures/release-1.2.tar.gz.sig";
    let dir = case.tampered("altered", |d| {
        let path = d.join(sig);
        let mut bytes = std::fs::read(&path).unwrap();
        bytes.push(b'\n');
        std::fs::write(&path, bytes).unwrap();
    });
    let e = unwrap_err(case.verify(&dir));
    assert!(matches!(&e, E::Output { path, .. } if path == sig), "{e}");

    let dir = case.tampered("extra", |d| {
        std::fs::write(d.join("signatures/extra.sig"), b"x").unwrap();
    });
    let e = unwrap_err(case.verify(&dir));
    assert!(
        matches!(&e, E::ExtraFile { path } if path == "signatures/extra.sig"),
        "{e}"
    );

    let dir = case.tampered("missing", |d| {
        std::fs::remove_file(d.join("signatures/by-position/002.sig")).unwrap();
    });
    let e = unwrap_err(case.verify(&dir));
    assert!(
        matches!(&e, E::MissingFile { path, .. } if path == "signatures/by-position/002.sig"),
        "{e}"
    );

    // A link in the folder, even to a file that is listed.
    let dir = case.tampered("link", |d| {
        std::os::unix::fs::symlink(d.join(paths::REQUEST), d.join("link.toml")).unwrap();
    });
    let e = unwrap_err(case.verify(&dir));
    assert!(matches!(e, E::Unlistable(_)), "{e}");
}

#[test]
fn the_link_to_the_generation_folder_is_checked() {
    let case = quorum_case(89);
    // Another generation ceremony with the same id, time and seed: the same root key (it
    // signed the recovery transcript), but other holders' certificates, so another
    // generation transcript. The recovery is not linked to it.
    let twin = generation(ID, 89);
    assert_eq!(twin.root_fpr(), case.g.root_fpr());
    let twin_dir = twin.write(case.tmp.path(), "twin");
    let e = unwrap_err(verify_recovery_dir(&twin_dir, &case.recovery));
    assert!(
        matches!(
            &e,
            E::Link {
                field: "transcript",
                ..
            }
        ),
        "{e}"
    );

    // Another ceremony altogether: its root key did not sign the recovery transcript.
    let other = generation("another-ceremony", 90);
    let other_dir = other.write(case.tmp.path(), "other");
    let e = unwrap_err(verify_recovery_dir(&other_dir, &case.recovery));
    assert!(matches!(e, E::Signature { .. }), "{e}");

    // The folders the wrong way round.
    let e = unwrap_err(verify_recovery_dir(&case.recovery, &case.generation));
    assert!(matches!(e, E::GenerationIsRecovery), "{e}");
    // A generation folder as the recovery folder.
    let e = unwrap_err(verify_recovery_dir(&case.generation, &case.generation));
    assert!(matches!(e, E::Records(_)), "{e}");
    // A generation folder that does not verify.
    let broken = case.tmp.path().join("broken");
    copy_dir(&case.generation, &broken);
    std::fs::remove_file(broken.join("shards.toml")).unwrap();
    let e = unwrap_err(verify_recovery_dir(&broken, &case.recovery));
    assert!(matches!(e, E::Generation(_)), "{e}");
}

/// Each semantic check on a transcript rebuilt and re-signed by the real root key: what the
/// signature cannot catch (the root key's holders writing a wrong transcript).
#[test]
fn semantic_checks_on_transcripts_re_signed_by_the_root_key() {
    let mut case = sign_case(91);
    let root = case.g.root_key();
    let other_hash = "ab".repeat(32);
    let resigned = |name: &str, edit: &dyn Fn(&mut Records)| -> E {
        let dir = case.tampered(name, |d| rewrite(d, Some(&root), edit));
        unwrap_err(case.verify(&dir))
    };

    // Re-signed unchanged: passes (the forging itself is sound).
    let dir = case.tampered("unchanged", |d| rewrite(d, Some(&root), |_| {}));
    case.verify(&dir).expect("re-signed unchanged");

    // Check 3: record 1 names another generation transcript, ceremony, root.
    let e = resigned("link-transcript", &|r| {
        set(r, "recovery.generation", 0, "transcript", &other_hash)
    });
    assert!(
        matches!(&e, E::Link { field: "transcript", found, .. } if *found == other_hash),
        "{e}"
    );
    let e = resigned("link-ceremony", &|r| {
        set(r, "recovery.generation", 0, "ceremony", "another")
    });
    assert!(
        matches!(
            &e,
            E::Link {
                field: "ceremony",
                ..
            }
        ),
        "{e}"
    );

    // Check 4: the recorded request hash is not the request's.
    let e = resigned("request-hash", &|r| {
        set(r, "recovery.request", 0, "hash", &other_hash)
    });
    assert!(
        matches!(
            &e,
            E::Request {
                seq: 2,
                field: "hash",
                ..
            }
        ),
        "{e}"
    );
    let e = resigned("request-time", &|r| {
        set(r, "recovery.request", 0, "time", "1795600001")
    });
    assert!(matches!(&e, E::Request { field: "time", .. }), "{e}");

    // The policy: none in the plan, but an approval counted.
    let e = resigned("policy", &|r| {
        set(r, "recovery.policy", 0, "approvals", "1")
    });
    assert!(
        matches!(
            &e,
            E::Policy {
                kind: "recovery.policy",
                ..
            }
        ),
        "{e}"
    );

    // Check 5: a holder twice; an envelope that is not the generation's; another PIN file;
    // a personal key that is not the reader's; too few shares.
    let e = resigned("share-twice", &|r| {
        let at = position(r, "recovery.share");
        let first = r[at].clone();
        r.insert(at + 1, first);
    });
    assert!(
        matches!(&e, E::Share { holder: 3, reason, .. } if reason.contains("already recorded")),
        "{e}"
    );
    let e = resigned("share-envelope", &|r| {
        set(r, "recovery.share", 1, "envelope", &other_hash)
    });
    assert!(
        matches!(&e, E::Share { holder: 1, reason, .. } if reason.contains("share.sealed")),
        "{e}"
    );
    let e = resigned("share-pins", &|r| {
        set(r, "recovery.share", 0, "pins", &other_hash)
    });
    assert!(
        matches!(&e, E::Share { reason, .. } if reason.contains("pins/holder-003.asc")),
        "{e}"
    );
    let e = resigned("share-personal", &|r| {
        set(r, "recovery.share", 0, "personal", &"CD".repeat(20))
    });
    assert!(
        matches!(&e, E::Share { reason, .. } if reason.contains("not a key of the holder")),
        "{e}"
    );
    let e = resigned("share-backup", &|r| {
        // Holder 3's own card read the PIN file, recorded as the backup's (holder 1).
        set(r, "recovery.share", 0, "reader", "backup");
        set(r, "recovery.share", 0, "reader-name", "Holder 001");
    });
    assert!(
        matches!(&e, E::Share { reason, .. } if reason.contains("not a key of the backup")),
        "{e}"
    );
    let e = resigned("one-share", &|r| {
        let at = position(r, "recovery.share");
        r.remove(at);
        set(r, "recovery.recombined", 0, "holders", "1");
    });
    assert!(
        matches!(
            e,
            E::TooFewShares {
                plan: "the generation plan",
                found: 1,
                threshold: 2
            }
        ),
        "{e}"
    );

    // recovery.recombined: another root; the holders in another order.
    let e = resigned("recombined-root", &|r| {
        set(r, "recovery.recombined", 0, "root", &"EF".repeat(20))
    });
    assert!(
        matches!(&e, E::Recombined { reason, .. } if reason.contains("root=")),
        "{e}"
    );
    let e = resigned("recombined-holders", &|r| {
        set(r, "recovery.recombined", 0, "holders", "1,3")
    });
    assert!(
        matches!(&e, E::Recombined { reason, .. } if reason.contains("holders=1,3")),
        "{e}"
    );

    // Check 6: ceremony.end miscounts; a listed path leaves the folder; the transcript lists
    // a file that is not there.
    let e = resigned("end-count", &|r| set(r, "ceremony.end", 0, "files", "5"));
    assert!(
        matches!(
            e,
            E::OutputCount {
                recorded: 5,
                found: 4,
                ..
            }
        ),
        "{e}"
    );
    let e = resigned("escape", &|r| {
        set(r, "output.file", 3, "path", "../generation/plan.toml")
    });
    assert!(
        matches!(&e, E::Output { reason, .. } if reason.contains("leave the folder")),
        "{e}"
    );
    let e = resigned("unlisted", &|r| {
        let at = position(r, "output.file") + 3;
        r.remove(at);
        set(r, "ceremony.end", 0, "files", "3");
    });
    assert!(
        matches!(&e, E::NotListed { path, .. } if path == "signatures/by-position/002.sig"),
        "{e}"
    );

    // Check 7: a signed file's hash or signature path not the request's.
    let e = resigned("signed-sha", &|r| {
        set(r, "recovery.signed", 0, "sha256", &other_hash)
    });
    assert!(
        matches!(&e, E::Operation { reason, .. } if reason.contains("the request gives")),
        "{e}"
    );
    let e = resigned("signed-path", &|r| {
        set(r, "recovery.signed", 1, "signature", "signatures/notes.sig")
    });
    assert!(
        matches!(&e, E::Operation { reason, .. } if reason.contains("by-position/002.sig")),
        "{e}"
    );

    // The order: a screen's record after the holders are done; the end cut off.
    let e = resigned("late-note", &|r| {
        let at = position(r, "recovery.signed");
        r.insert(
            at,
            ("witness.confirm".into(), "name=Wendy step=late".into()),
        );
    });
    assert!(
        matches!(&e, E::Structure(s) if s.contains("until the holders are done")),
        "{e}"
    );
    let e = resigned("no-end", &|r| {
        r.pop();
    });
    assert!(
        matches!(&e, E::Structure(s) if s.contains("incomplete")),
        "{e}"
    );
}

#[test]
fn sherd_verify_prints_pass_and_fail() {
    let case = quorum_case(92);
    let run = |args: &[&std::ffi::OsStr]| {
        let out = Command::new(env!("CARGO_BIN_EXE_sherd-verify"))
            .args(args)
            .output()
            .expect("sherd-verify runs");
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
        )
    };
    let (rec, generation) = (case.recovery.as_os_str(), case.generation.as_os_str());

    let (code, out) = run(&[
        "--recovery".as_ref(),
        rec,
        "--generation".as_ref(),
        generation,
    ]);
    assert_eq!(code, Some(0), "{out}");
    assert!(
        out.starts_with(&format!("PASS {}\n", case.recovery.display())),
        "{out}"
    );
    for line in [
        "operation:         prove-quorum".to_string(),
        format!("root fingerprint:  {}", case.g.root_fpr()),
        "holders used:      2 of threshold 2: 2 (Holder 002), 3 (Holder 003)".to_string(),
        "outputs:           4 files checked: request.toml, root-cert.asc, quorum/challenge.txt, quorum/challenge.txt.sig".to_string(),
    ] {
        assert!(out.contains(&line), "{line:?} in\n{out}");
    }
    assert!(out.contains("request hash:      "), "{out}");
    assert!(out.contains("generation hash:   "), "{out}");

    // Tampered: FAIL, exit 1.
    let dir = case.tampered("cli-extra", |d| {
        std::fs::write(d.join("extra.txt"), b"x").unwrap()
    });
    let (code, out) = run(&[
        "--generation".as_ref(),
        generation,
        "--recovery".as_ref(),
        dir.as_os_str(),
    ]);
    assert_eq!(code, Some(1), "{out}");
    assert!(
        out.starts_with(&format!("FAIL {}: extra.txt: ", dir.display())),
        "{out}"
    );

    // A recovery folder alone: FAIL, saying to pass --generation.
    let (code, out) = run(&[rec]);
    assert_eq!(code, Some(1), "{out}");
    assert!(
        out.contains("a recovery folder") && out.contains("--generation"),
        "{out}"
    );

    // The generation folder alone still verifies as before.
    let (code, out) = run(&[generation]);
    assert_eq!(code, Some(0), "{out}");
    assert!(out.starts_with("PASS "), "{out}");

    // Usage.
    for args in [
        vec!["--recovery".as_ref(), rec],
        vec!["--recovery".as_ref(), rec, "--generation".as_ref()],
        vec!["--bogus".as_ref(), rec],
        vec![rec, generation],
    ] {
        let (code, _) = run(&args);
        assert_eq!(code, Some(2), "{args:?}");
    }
}
