//! The plan's signing policy (`[policy]`) and the approvals a request must carry under it:
//! parsing and its refusals, the canonical hash with and without it, and
//! `recovery::check_policy` with approvals made by Sequoia and by GnuPG.

mod common;

use std::path::Path;
use std::process::Command;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use ceremony::ceremony::paths;
use ceremony::openpgp::armor;
use ceremony::openpgp::cert::{CertBuilder, CertRevocationBuilder, CipherSuite};
use ceremony::openpgp::packet::signature::SignatureBuilder;
use ceremony::openpgp::parse::Parse;
use ceremony::openpgp::policy::StandardPolicy;
use ceremony::openpgp::serialize::{Serialize, SerializeInto};
use ceremony::openpgp::types::{HashAlgorithm, ReasonForRevocation, SignatureType};
use ceremony::openpgp::{Cert, Packet};
use ceremony::plan::{Plan, PlanError};
use ceremony::policy::Rule;
use ceremony::recovery::{
    self, APPROVALS_DIR, ApprovalFile, Approved, NotCounted, NotCountedReason, PinnedRoot,
    PolicyError,
};
use ceremony::request::{OperationKind, Request};
use common::*;

/// The requests' time: a week after the plan.
const REQUEST_TIME: u32 = PLAN_TIME + 7 * 86_400;
const REQUEST_TIME_STR: &str = "2026-12-01T09:00:00Z";
const ROOT: &str = "0123456789ABCDEF0123456789ABCDEF01234567";
const DIGEST: &str = "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08";

fn at(unix: u32) -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(u64::from(unix))
}

/// A 2-of-3 plan (the common fixture's, the same in every test) with `policy` appended as
/// written.
fn plan_text(policy: &str) -> String {
    static BASE: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    let mut t = BASE
        .get_or_init(|| fixture("policy", 3, 2).plan_text)
        .clone();
    t.push_str(policy);
    t
}

/// A `[policy]` table with these approvers (name, certificates) and rules.
fn policy_table(approvers: &[(&str, &[&Cert])], rules: &str) -> String {
    let mut t = String::from("\n[policy]\n");
    for (name, certs) in approvers {
        t.push_str(&format!(
            "[[policy.approver]]\nname = \"{name}\"\ncerts = ["
        ));
        for c in *certs {
            t.push_str(&format!("'''\n{}''',", armored_public(c)));
        }
        t.push_str("]\n");
    }
    t.push_str(rules);
    t
}

/// Rules: sign 2 (at most 2 files), certify 2 (at most 1 user ID), the rest 1, 3, 2.
const RULES: &str = "[policy.sign]\nk = 2\nmax_files = 2\n\
                     [policy.certify]\nk = 2\nmax_user_ids = 1\n\
                     [policy.prove-quorum]\nk = 1\n\
                     [policy.reshare]\nk = 3\n\
                     [policy.replace-card]\nk = 2\n";

struct Approvers {
    ann: Cert,
    bob: Cert,
    cat: Cert,
}

fn approvers() -> Approvers {
    Approvers {
        ann: personal("Ann Approver"),
        bob: personal("Bob Approver"),
        cat: personal("Cat Approver"),
    }
}

fn policy_plan(a: &Approvers) -> Plan {
    Plan::parse(&plan_text(&policy_table(
        &[("Ann", &[&a.ann]), ("Bob", &[&a.bob]), ("Cat", &[&a.cat])],
        RULES,
    )))
    .expect("a plan with a policy")
}

fn err(text: &str) -> PlanError {
    Plan::parse(text).expect_err("plan should be refused")
}

fn head(ceremony_id: &str) -> String {
    format!(
        "format = \"sherd-request/1\"\nceremony_id = \"{ceremony_id}\"\n\
         root_fingerprint = \"{ROOT}\"\ntime = {REQUEST_TIME_STR}\n\n"
    )
}

fn sign_request(files: usize) -> String {
    let mut t = format!("{}[sign]\n", head("policy"));
    for i in 0..files {
        t.push_str(&format!(
            "[[sign.file]]\nname = \"file-{i}\"\nsha256 = \"{DIGEST}\"\n"
        ));
    }
    t
}

fn request(text: &str) -> Request {
    Request::parse(text).expect("a good request")
}

/// A detached binary-document signature over `bytes` by `cert`'s signing key, made at `time`.
fn signature(cert: &Cert, bytes: &[u8], time: SystemTime) -> Packet {
    signature_with(
        cert,
        bytes,
        time,
        SignatureBuilder::new(SignatureType::Binary),
    )
}

fn signature_with(cert: &Cert, bytes: &[u8], time: SystemTime, b: SignatureBuilder) -> Packet {
    let p = StandardPolicy::new();
    let mut signer = cert
        .keys()
        .with_policy(&p, at(PLAN_TIME))
        .secret()
        .for_signing()
        .next()
        .expect("a signing key")
        .key()
        .clone()
        .into_keypair()
        .unwrap();
    let sig = b
        .set_signature_creation_time(time)
        .unwrap()
        .sign_message(&mut signer, bytes)
        .unwrap();
    Packet::from(sig)
}

fn binary(p: &Packet) -> Vec<u8> {
    p.to_vec().unwrap()
}

fn armored(p: &Packet) -> Vec<u8> {
    let mut out = Vec::new();
    let mut w = armor::Writer::new(&mut out, armor::Kind::Signature).unwrap();
    p.serialize(&mut w).unwrap();
    w.finalize().unwrap();
    out
}

fn file(name: &str, bytes: Vec<u8>) -> ApprovalFile {
    ApprovalFile {
        name: name.into(),
        bytes,
    }
}

/// A Sequoia approval by `cert` over `text`, binary, named `name`.
fn approval(name: &str, cert: &Cert, text: &str) -> ApprovalFile {
    file(
        name,
        binary(&signature(cert, text.as_bytes(), at(REQUEST_TIME))),
    )
}

fn refused(policy: &Plan, text: &str, approvals: &[ApprovalFile]) -> PolicyError {
    recovery::check_policy(
        policy.policy.as_ref(),
        &request(text),
        text.as_bytes(),
        approvals,
    )
    .expect_err("should be refused")
}

fn approved(policy: &Plan, text: &str, approvals: &[ApprovalFile]) -> Approved {
    recovery::check_policy(
        policy.policy.as_ref(),
        &request(text),
        text.as_bytes(),
        approvals,
    )
    .expect("should be approved")
}

fn not_counted_of(e: &PolicyError) -> &[NotCounted] {
    match e {
        PolicyError::TooFewApprovals { not_counted, .. } => not_counted,
        other => panic!("expected TooFewApprovals, got {other:?}"),
    }
}

#[test]
fn a_plan_without_a_policy_keeps_its_hash() {
    // The format-1 example was written before [policy] existed; its transcript records the
    // plan hash.
    let dir =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/format-1/sherd-format1-example");
    let text = std::fs::read_to_string(dir.join(paths::PLAN)).unwrap();
    let plan = Plan::parse(&text).unwrap();
    assert!(plan.policy.is_none());
    assert_eq!(
        ceremony::hex::encode(&plan.hash()),
        "d37687be19af59971246cda155156de46a2e2ac70d57be42c2d021dbbb9d3ab5"
    );
    let canonical = String::from_utf8(plan.canonical_bytes()).unwrap();
    assert!(!canonical.contains("policy") && !canonical.contains("approver"));
}

#[test]
fn the_policy_is_part_of_the_canonical_hash() {
    let a = approvers();
    let without = Plan::parse(&plan_text("")).unwrap();
    let dan = personal("Dan Approver");
    let table = policy_table(
        &[
            ("Ann", &[&a.ann]),
            ("Bob", &[&a.bob, &a.cat]),
            ("Dan", &[&dan]),
        ],
        RULES,
    );
    let with = Plan::parse(&plan_text(&table)).unwrap();
    assert_ne!(with.hash(), without.hash());

    // Its lines come last, after the plan's own.
    let base = String::from_utf8(without.canonical_bytes()).unwrap();
    let full = String::from_utf8(with.canonical_bytes()).unwrap();
    let fpr = |c: &Cert| c.fingerprint().to_hex();
    let lines = full
        .strip_prefix(&base)
        .expect("the policy lines are appended");
    let lines: Vec<&str> = lines.lines().collect();
    assert_eq!(lines[0], "policy_approvers=3");
    assert_eq!(lines[1], "approver=1\tname=Ann");
    assert!(lines[2].starts_with(&format!("approver_cert=1\t{}\t", fpr(&a.ann))));
    assert_eq!(lines[3], "approver=2\tname=Bob");
    assert!(lines[4].starts_with(&format!("approver_cert=2\t{}\t", fpr(&a.bob))));
    assert!(lines[5].starts_with(&format!("approver_cert=2\t{}\t", fpr(&a.cat))));
    assert_eq!(
        lines[6..8],
        [
            "approver=3\tname=Dan".to_string(),
            format!(
                "approver_cert=3\t{}\t{}",
                fpr(&dan),
                ceremony::hex::encode(&with.policy.as_ref().unwrap().approvers[2].certs[0].sha256)
            )
        ]
    );
    assert_eq!(
        lines[8..],
        [
            "policy_rule=sign\tk=2\tmax_files=2",
            "policy_rule=certify\tk=2\tmax_user_ids=1",
            "policy_rule=prove-quorum\tk=1",
            "policy_rule=reshare\tk=3",
            "policy_rule=replace-card\tk=2",
        ]
    );

    let p = with.policy.as_ref().unwrap();
    assert_eq!(
        *p.rule(OperationKind::Sign),
        Rule {
            k: 2,
            max_files: Some(2),
            max_user_ids: None
        }
    );
    assert_eq!(p.rule(OperationKind::Certify).max_user_ids, Some(1));
    assert_eq!(p.rule(OperationKind::Reshare).k, 3);
    assert_eq!(p.approver(2).unwrap().certs.len(), 2);

    // Formatting does not change the hash; every change of meaning does.
    let text = plan_text(&table);
    let reformatted = text.replace(
        "[policy.sign]\nk = 2",
        "[policy.sign]\n# two of them\nk    = 2",
    );
    assert_eq!(Plan::parse(&reformatted).unwrap().hash(), with.hash());
    for changed in [
        text.replace("[policy.sign]\nk = 2", "[policy.sign]\nk = 1"),
        text.replace("max_files = 2", "max_files = 3"),
        text.replace("max_files = 2\n", ""),
        text.replace("max_user_ids = 1\n", ""),
        text.replace("[policy.reshare]\nk = 3", "[policy.reshare]\nk = 2"),
        text.replace("name = \"Ann\"", "name = \"Anne\""),
    ] {
        assert_ne!(
            Plan::parse(&changed).unwrap().hash(),
            with.hash(),
            "{changed}"
        );
    }
    // The approvers' order is meaningful too.
    let swapped = plan_text(&policy_table(
        &[
            ("Bob", &[&a.bob, &a.cat]),
            ("Ann", &[&a.ann]),
            ("Dan", &[&dan]),
        ],
        RULES,
    ));
    assert_ne!(Plan::parse(&swapped).unwrap().hash(), with.hash());
}

#[test]
fn policy_refusals_name_the_field_and_what_to_do() {
    let a = approvers();
    let ok =
        |approvers: &[(&str, &[&Cert])], rules: &str| plan_text(&policy_table(approvers, rules));
    let two: &[(&str, &[&Cert])] = &[("Ann", &[&a.ann]), ("Bob", &[&a.bob])];
    assert!(Plan::parse(&ok(two, RULES.replace("k = 3", "k = 2").as_str())).is_ok());

    let policy_err = |text: &str, field: &str, says: &str| match err(text) {
        PlanError::Policy { field: f, reason } => {
            assert_eq!(f, field, "{reason}");
            assert!(reason.contains(says), "{reason} should say {says}");
            let shown = err(text).to_string();
            assert!(shown.contains(field), "{shown}");
        }
        other => panic!("expected a policy error on {field}, got {other:?}"),
    };
    policy_err(
        &ok(&[], RULES),
        "policy.approver",
        "add [[policy.approver]]",
    );
    // k above the number of approvers (3 for reshare, with two approvers).
    policy_err(&ok(two, RULES), "policy.reshare.k", "lower k or add");
    let three: &[(&str, &[&Cert])] = &[("Ann", &[&a.ann]), ("Bob", &[&a.bob]), ("Cat", &[&a.cat])];
    policy_err(
        &ok(
            three,
            &RULES.replace("[policy.sign]\nk = 2", "[policy.sign]\nk = 0"),
        ),
        "policy.sign.k",
        "at least 1",
    );
    policy_err(
        &ok(
            three,
            &RULES.replace("[policy.sign]\nk = 2", "[policy.sign]\nk = -1"),
        ),
        "policy.sign.k",
        "at least 1",
    );
    for (bad, field) in [
        ("max_files = 2", "max_files = 0"),
        ("max_files = 2", "max_files = 256"),
    ] {
        policy_err(
            &ok(three, &RULES.replace(bad, field)),
            "policy.sign.max_files",
            "1..=255",
        );
    }
    policy_err(
        &ok(
            three,
            &RULES.replace("max_user_ids = 1", "max_user_ids = 33"),
        ),
        "policy.certify.max_user_ids",
        "1..=32",
    );
    // Every operation needs its rule.
    for kind in OperationKind::ALL {
        let start = RULES.find(&format!("[policy.{kind}]")).unwrap();
        let end = RULES[start + 1..]
            .find("[policy.")
            .map_or(RULES.len(), |e| e + start + 1);
        let rules = format!("{}{}", &RULES[..start], &RULES[end..]);
        policy_err(
            &ok(three, &rules),
            &format!("policy.{kind}"),
            &format!("add [policy.{kind}] with k ="),
        );
    }
    // Approvers: a name once, at least one certificate, a key counts for one approver only.
    policy_err(
        &ok(
            &[("Ann", &[&a.ann]), ("Ann", &[&a.bob]), ("Cat", &[&a.cat])],
            RULES,
        ),
        "policy.approver[2].name",
        "already approver 1",
    );
    policy_err(
        &ok(
            &[("Ann", &[&a.ann]), ("Bob", &[]), ("Cat", &[&a.cat])],
            RULES,
        ),
        "policy.approver[2].certs",
        "add certs =",
    );
    assert_eq!(
        err(&ok(
            &[("Ann", &[&a.ann]), ("Bob", &[&a.ann]), ("Cat", &[&a.cat])],
            RULES
        )),
        PlanError::DuplicateCertificate {
            fingerprint: a.ann.fingerprint().to_hex(),
            first: "Ann".into(),
            second: "Bob".into()
        }
    );
    assert!(matches!(
        err(&ok(
            &[("Ann", &[&a.ann]), (" Bob", &[&a.bob]), ("Cat", &[&a.cat])],
            RULES
        )),
        PlanError::InvalidName {
            what: "approver",
            ..
        }
    ));
    // An approver's certificate must be able to sign.
    let encrypt_only = CertBuilder::new()
        .set_cipher_suite(CipherSuite::Cv25519)
        .set_creation_time(at(PLAN_TIME - 86_400))
        .set_primary_key_flags(ceremony::openpgp::types::KeyFlags::empty().set_certification())
        .add_userid("E")
        .add_transport_encryption_subkey()
        .generate()
        .unwrap()
        .0;
    assert!(matches!(
        err(&ok(&[("Ann", &[&a.ann]), ("Bob", &[&encrypt_only]), ("Cat", &[&a.cat])], RULES)),
        PlanError::CertCannotSign { what: "approver", ref witness, .. } if witness == "Bob"
    ));
    assert!(
        err(&ok(
            &[
                ("Ann", &[&a.ann]),
                ("Bob", &[&encrypt_only]),
                ("Cat", &[&a.cat])
            ],
            RULES
        ))
        .to_string()
        .starts_with("approver \"Bob\"")
    );
    // Secret key material is refused as everywhere in the plan.
    let mut tsk = Vec::new();
    let mut w = armor::Writer::new(&mut tsk, armor::Kind::PublicKey).unwrap();
    a.bob.as_tsk().serialize(&mut w).unwrap();
    w.finalize().unwrap();
    let tsk = String::from_utf8(tsk).unwrap();
    let with_secret = ok(three, RULES).replace(&armored_public(&a.bob), &tsk);
    assert!(matches!(
        err(&with_secret),
        PlanError::CertHasSecret {
            what: "approver",
            ..
        }
    ));

    // Unknown fields are refused, naming them: a limit in the wrong rule, a typo, a stray key.
    for (text, field) in [
        (
            ok(
                three,
                &RULES.replace(
                    "[policy.prove-quorum]\nk = 1",
                    "[policy.prove-quorum]\nk = 1\nmax_files = 1",
                ),
            ),
            "max_files",
        ),
        (
            ok(three, &RULES.replace("max_files = 2", "max_file = 2")),
            "max_file",
        ),
        (ok(three, &format!("quorum = 2\n{RULES}")), "quorum"),
        (
            ok(three, &format!("{RULES}[policy.rotate]\nk = 1\n")),
            "rotate",
        ),
        (
            ok(three, RULES).replace("name = \"Ann\"", "name = \"Ann\"\nemail = \"a@x\""),
            "email",
        ),
    ] {
        assert!(
            matches!(err(&text), PlanError::Syntax(ref m) if m.contains(field)),
            "{field}: {:?}",
            err(&text)
        );
    }
}

#[test]
fn a_holder_may_also_be_an_approver_with_the_same_key() {
    let f = fixture("policy", 3, 2);
    let holder = f.personal[0].clone();
    let a = approvers();
    let mut text = f.plan_text.clone();
    text.push_str(&policy_table(
        &[
            ("Holder 001", &[&holder]),
            ("Bob", &[&a.bob]),
            ("Cat", &[&a.cat]),
        ],
        RULES,
    ));
    let plan = Plan::parse(&text).unwrap();
    assert_eq!(plan.policy.unwrap().approvers[0].name, "Holder 001");
}

#[test]
fn no_policy_is_allowed_and_says_so() {
    let plan = Plan::parse(&plan_text("")).unwrap();
    let text = sign_request(3);
    let a = approvers();
    let result = approved(&plan, &text, &[approval("ann.sig", &a.ann, &text)]);
    assert_eq!(result, Approved::NoPolicy { ignored_files: 1 });
    assert!(result.to_string().starts_with("no policy:"), "{result}");
    assert_eq!(
        approved(&plan, &text, &[]).to_string(),
        "no policy: the plan in force (the generation's, or the last reshare's) has no [policy], so this request needs no approvals"
    );
}

#[test]
fn approvals_made_by_sequoia_binary_and_armored() {
    let a = approvers();
    let plan = policy_plan(&a);
    let text = sign_request(2);
    let ann = signature(&a.ann, text.as_bytes(), at(REQUEST_TIME - 3600));
    let bob = signature(&a.bob, text.as_bytes(), at(REQUEST_TIME + 3600));
    let result = approved(
        &plan,
        &text,
        &[
            file("ann.sig", binary(&ann)),
            file("bob.asc", armored(&bob)),
        ],
    );
    let Approved::ByPolicy {
        operation,
        needed,
        approvals,
        not_counted,
    } = &result
    else {
        panic!("{result:?}")
    };
    assert_eq!(*operation, OperationKind::Sign);
    assert_eq!(*needed, 2);
    assert!(not_counted.is_empty());
    let names: Vec<(&str, u8, &str)> = approvals
        .iter()
        .map(|x| (x.approver.as_str(), x.approver_index, x.file.as_str()))
        .collect();
    assert_eq!(names, [("Ann", 1, "ann.sig"), ("Bob", 2, "bob.asc")]);
    assert_eq!(approvals[0].cert_fingerprint, a.ann.fingerprint().to_hex());
    assert_eq!(approvals[0].signature_time, REQUEST_TIME - 3600);
    assert_ne!(approvals[0].key_fingerprint, approvals[0].cert_fingerprint);
    assert!(result.to_string().contains("Ann, Bob"), "{result}");

    // All three approve: all counted; prove-quorum needs only one.
    let all = [
        approval("1", &a.ann, &text),
        approval("2", &a.bob, &text),
        approval("3", &a.cat, &text),
    ];
    assert!(matches!(
        approved(&plan, &text, &all),
        Approved::ByPolicy { ref approvals, .. } if approvals.len() == 3
    ));
    let challenge = format!(
        "{}[prove-quorum]\nchallenge = \"block 1\"\n",
        head("policy")
    );
    assert!(matches!(
        approved(
            &plan,
            &challenge,
            &[approval("cat.sig", &a.cat, &challenge)]
        ),
        Approved::ByPolicy { needed: 1, .. }
    ));
}

#[test]
fn too_few_approvals_are_refused_naming_how_many() {
    let a = approvers();
    let plan = policy_plan(&a);
    let text = sign_request(1);
    let e = refused(&plan, &text, &[approval("ann.sig", &a.ann, &text)]);
    assert_eq!(
        e,
        PolicyError::TooFewApprovals {
            operation: OperationKind::Sign,
            valid: 1,
            needed: 2,
            not_counted: vec![]
        }
    );
    assert_eq!(
        e.to_string(),
        "sign needs approvals by 2 distinct approver(s) of the plan's policy; 1 valid"
    );
    assert!(matches!(
        refused(&plan, &text, &[]),
        PolicyError::TooFewApprovals { valid: 0, .. }
    ));
    // reshare needs all three.
    let replace = format!("{}[replace-card]\nholder = 1\ncards = 1\n", head("policy"));
    assert!(matches!(
        refused(&plan, &replace, &[approval("a", &a.ann, &replace)]),
        PolicyError::TooFewApprovals {
            operation: OperationKind::ReplaceCard,
            valid: 1,
            needed: 2,
            ..
        }
    ));
}

#[test]
fn each_bad_approval_is_not_counted_with_its_reason() {
    let a = approvers();
    let plan = policy_plan(&a);
    let text = sign_request(1);
    let good = approval("ann.sig", &a.ann, &text);
    let only = |f: ApprovalFile| -> NotCountedReason {
        let e = refused(&plan, &text, &[good.clone(), f.clone()]);
        let nc = not_counted_of(&e);
        assert_eq!(nc.len(), 1, "{e}");
        assert_eq!(nc[0].file, f.name);
        assert!(
            e.to_string()
                .contains(&format!("not counted: {}: ", f.name)),
            "{e}"
        );
        nc[0].reason.clone()
    };

    // A signature by someone who is no approver.
    let mallory = personal("Mallory");
    assert!(matches!(
        only(approval("mallory.sig", &mallory, &text)),
        NotCountedReason::NotByAnApprover { ref issuers } if issuers.contains(&mallory.keys().subkeys().next().unwrap().key().keyid().to_hex())
            || issuers.contains(&mallory.keys().subkeys().next().unwrap().key().fingerprint().to_hex())
    ));
    // The same approver twice.
    assert_eq!(
        only(approval("ann-again.sig", &a.ann, &text)),
        NotCountedReason::DuplicateApprover {
            approver: "Ann".into(),
            first_file: "ann.sig".into()
        }
    );
    // An approval over other bytes: the request as it was before an edit.
    let edited = text.replace("file-0", "file-1");
    assert_eq!(
        only(approval("bob.sig", &a.bob, &edited)),
        NotCountedReason::BadSignature {
            approver: "Bob".into()
        }
    );
    // A signature whose bytes were altered.
    let mut altered = approval("bob.sig", &a.bob, &text);
    let n = altered.bytes.len();
    altered.bytes[n - 3] ^= 1;
    assert!(matches!(
        only(altered),
        NotCountedReason::BadSignature { .. } | NotCountedReason::Unreadable(_)
    ));
    // Not a signature at all; two signatures in one file; a text-mode signature.
    assert!(matches!(
        only(file("notes.txt", b"I approve. Bob".to_vec())),
        NotCountedReason::Unreadable(_)
    ));
    let mut two = binary(&signature(&a.bob, text.as_bytes(), at(REQUEST_TIME)));
    two.extend(binary(&signature(
        &a.cat,
        text.as_bytes(),
        at(REQUEST_TIME),
    )));
    assert!(matches!(
        only(file("both.sig", two)),
        NotCountedReason::NotOneSignature(ref m) if m.contains("2 packets")
    ));
    let text_mode = signature_with(
        &a.bob,
        text.as_bytes(),
        at(REQUEST_TIME),
        SignatureBuilder::new(SignatureType::Text),
    );
    assert!(matches!(
        only(file("bob.sig", binary(&text_mode))),
        NotCountedReason::NotBinaryDocument { .. }
    ));
    // A weak hash the standard policy refuses.
    let sha1 = signature_with(
        &a.bob,
        text.as_bytes(),
        at(REQUEST_TIME),
        SignatureBuilder::new(SignatureType::Binary).set_hash_algo(HashAlgorithm::SHA1),
    );
    assert!(matches!(
        only(file("bob.sig", binary(&sha1))),
        NotCountedReason::WeakSignature { ref approver, .. } if approver == "Bob"
    ));
}

#[test]
fn an_expired_or_revoked_approver_key_does_not_count() {
    // Valid at the plan time, expired a day later (before the request time).
    let expiring = CertBuilder::general_purpose(["Eve Expiring"])
        .set_cipher_suite(CipherSuite::Cv25519)
        .set_creation_time(at(PLAN_TIME - 30 * 86_400))
        .set_validity_period(Duration::from_secs(31 * 86_400))
        .generate()
        .unwrap()
        .0;
    // Valid at the plan time, retired (a soft revocation) a day later.
    let retired = personal("Rita Retired");
    let mut primary = retired
        .primary_key()
        .key()
        .clone()
        .parts_into_secret()
        .unwrap()
        .into_keypair()
        .unwrap();
    let rev = CertRevocationBuilder::new()
        .set_reason_for_revocation(ReasonForRevocation::KeySuperseded, b"new key")
        .unwrap()
        .set_signature_creation_time(at(PLAN_TIME + 86_400))
        .unwrap()
        .build(&mut primary, &retired, None)
        .unwrap();
    let retired = retired.insert_packets(vec![Packet::from(rev)]).unwrap().0;
    let a = approvers();
    let plan = Plan::parse(&plan_text(&policy_table(
        &[
            ("Ann", &[&a.ann]),
            ("Eve", &[&expiring]),
            ("Rita", &[&retired]),
        ],
        RULES,
    )))
    .expect("both certificates are valid at the plan time");

    let text = sign_request(1);
    let e = refused(
        &plan,
        &text,
        &[
            approval("ann.sig", &a.ann, &text),
            file(
                "eve.sig",
                binary(&signature(&expiring, text.as_bytes(), at(PLAN_TIME))),
            ),
            file(
                "rita.sig",
                binary(&signature(&retired, text.as_bytes(), at(PLAN_TIME))),
            ),
        ],
    );
    let nc = not_counted_of(&e);
    assert!(
        matches!(&nc[0].reason, NotCountedReason::ApproverKeyNotUsable { approver, reason, .. }
            if approver == "Eve" && reason.contains("expired")),
        "{e}"
    );
    assert!(
        matches!(&nc[1].reason, NotCountedReason::ApproverKeyNotUsable { approver, reason, fingerprint }
            if approver == "Rita" && reason == "revoked" && *fingerprint == retired.fingerprint().to_hex()),
        "{e}"
    );
    assert!(matches!(
        e,
        PolicyError::TooFewApprovals {
            valid: 1,
            needed: 2,
            ..
        }
    ));
}

#[test]
fn limits_are_checked_before_the_approvals() {
    let a = approvers();
    let plan = policy_plan(&a);
    let three = sign_request(3);
    let all = |t: &str| {
        vec![
            approval("1", &a.ann, t),
            approval("2", &a.bob, t),
            approval("3", &a.cat, t),
        ]
    };
    let e = refused(&plan, &three, &all(&three));
    assert_eq!(
        e,
        PolicyError::LimitExceeded {
            operation: OperationKind::Sign,
            field: "policy.sign.max_files",
            what: "files",
            limit: 2,
            found: 3
        }
    );
    assert!(e.to_string().contains("policy.sign.max_files"), "{e}");
    assert!(e.to_string().contains("split it"), "{e}");
    // At the limit: fine.
    let two = sign_request(2);
    assert!(
        approved(&plan, &two, &all(&two))
            .to_string()
            .starts_with("policy holds")
    );

    // certify: at most one user ID.
    let target = CertBuilder::new()
        .set_cipher_suite(CipherSuite::Cv25519)
        .set_creation_time(at(PLAN_TIME))
        .add_userid("one")
        .add_userid("two")
        .generate()
        .unwrap()
        .0;
    let certify = |uids: &str| {
        format!(
            "{}[certify]\ncert = '''\n{}'''\nuser_ids = [{uids}]\n",
            head("policy"),
            armored_public(&target)
        )
    };
    let both = certify("\"one\", \"two\"");
    assert!(matches!(
        refused(&plan, &both, &all(&both)),
        PolicyError::LimitExceeded {
            operation: OperationKind::Certify,
            field: "policy.certify.max_user_ids",
            limit: 1,
            found: 2,
            ..
        }
    ));
    let one = certify("\"two\"");
    assert!(matches!(
        approved(&plan, &one, &all(&one)),
        Approved::ByPolicy {
            operation: OperationKind::Certify,
            ..
        }
    ));
}

#[test]
fn the_bytes_must_be_the_request_read() {
    let a = approvers();
    let plan = policy_plan(&a);
    let text = sign_request(1);
    let other = sign_request(2);
    let approvals = [approval("1", &a.ann, &other), approval("2", &a.bob, &other)];
    // Approvals over `other`, checked with its bytes but the request read from `text`.
    assert_eq!(
        recovery::check_policy(
            plan.policy.as_ref(),
            &request(&text),
            other.as_bytes(),
            &approvals
        ),
        Err(PolicyError::NotTheRequestBytes)
    );
    // Bytes that mean the same request (a comment added) are accepted as its bytes, and the
    // approvals are judged over them exactly.
    let commented = format!("# approved on Monday\n{text}");
    let approvals = [
        approval("1", &a.ann, &commented),
        approval("2", &a.bob, &commented),
    ];
    assert!(
        recovery::check_policy(
            plan.policy.as_ref(),
            &request(&text),
            commented.as_bytes(),
            &approvals
        )
        .is_ok()
    );
    assert!(matches!(
        recovery::check_policy(
            plan.policy.as_ref(),
            &request(&text),
            text.as_bytes(),
            &approvals
        ),
        Err(PolicyError::TooFewApprovals { valid: 0, .. })
    ));
}

#[test]
fn the_approvals_folder_is_read_in_name_order() {
    let dir = tempfile::tempdir().unwrap();
    assert_eq!(
        recovery::read_approvals(&dir.path().join(APPROVALS_DIR)).unwrap(),
        vec![]
    );
    let folder = dir.path().join(APPROVALS_DIR);
    std::fs::create_dir(&folder).unwrap();
    std::fs::write(folder.join("b.sig"), b"B").unwrap();
    std::fs::write(folder.join("a.asc"), b"A").unwrap();
    let files = recovery::read_approvals(&folder).unwrap();
    assert_eq!(
        files,
        vec![file("a.asc", b"A".to_vec()), file("b.sig", b"B".to_vec())]
    );
    std::fs::create_dir(folder.join("sub")).unwrap();
    let e = recovery::read_approvals(&folder).unwrap_err();
    assert!(e.to_string().contains("sub: not a regular file"), "{e}");
    std::fs::remove_dir(folder.join("sub")).unwrap();
    std::fs::write(
        folder.join("big.sig"),
        vec![0u8; recovery::MAX_APPROVAL_BYTES + 1],
    )
    .unwrap();
    assert!(recovery::read_approvals(&folder).is_err());
}

#[test]
fn a_pinned_generation_with_a_policy_checks_requests() {
    let a = approvers();
    let mut f = fixture_with("policy-pin", 3, 2, &[1, 1, 1]);
    f.plan_text.push_str(&policy_table(
        &[("Ann", &[&a.ann]), ("Bob", &[&a.bob]), ("Cat", &[&a.cat])],
        RULES,
    ));
    let done = run(&f, 7);
    let files = done.files.clone();
    let pinned = PinnedRoot::from_generation(&|p: &str| {
        files
            .iter()
            .find(|f| f.path == p)
            .map(|f| f.bytes.clone())
            .ok_or_else(|| std::io::Error::new(std::io::ErrorKind::NotFound, p.to_string()))
    })
    .expect("the generation folder verifies");
    assert!(pinned.plan().policy.is_some());
    let text = format!(
        "format = \"sherd-request/1\"\nceremony_id = \"policy-pin\"\n\
         root_fingerprint = \"{}\"\ntime = {REQUEST_TIME_STR}\n\n\
         [prove-quorum]\nchallenge = \"block 880000\"\n",
        pinned.root_fingerprint().to_hex()
    );
    let req = request(&text);
    pinned.check_request(&req).unwrap();
    assert!(matches!(
        pinned.check_policy(&req, text.as_bytes(), &[]),
        Err(PolicyError::TooFewApprovals {
            valid: 0,
            needed: 1,
            ..
        })
    ));
    assert!(matches!(
        pinned.check_policy(&req, text.as_bytes(), &[approval("cat.sig", &a.cat, &text)]),
        Ok(Approved::ByPolicy { .. })
    ));
}

/// GnuPG in a throw-away home folder; the agent it starts is stopped when dropped.
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
            eprintln!("SKIPPED: gpg is not installed; the GnuPG approvals were not checked");
            return None;
        }
        Some(Gpg {
            home: tempfile::Builder::new()
                .prefix("gpg")
                .tempdir_in("/tmp")
                .unwrap(),
        })
    }

    fn run(&self, args: &[&str], stdin: Option<&[u8]>) -> Vec<u8> {
        use std::io::Write;
        let mut cmd = Command::new("gpg");
        cmd.arg("--homedir")
            .arg(self.home.path())
            .args([
                "--batch",
                "--no-tty",
                "--pinentry-mode",
                "loopback",
                "--passphrase",
                "",
            ])
            .args(args)
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped());
        let mut child = cmd.spawn().expect("gpg runs");
        if let Some(input) = stdin {
            child.stdin.take().unwrap().write_all(input).unwrap();
        }
        drop(child.stdin.take());
        let out = child.wait_with_output().unwrap();
        assert!(
            out.status.success(),
            "gpg {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        out.stdout
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

#[test]
fn approvals_made_by_gnupg() {
    let Some(gpg) = Gpg::new() else { return };
    // A key GnuPG makes itself (dated before the plan), and a Sequoia-made key imported into
    // GnuPG: both approvers sign the request file with `gpg --detach-sign`.
    let faked = "--faked-system-time=20261001T000000!";
    gpg.run(
        &[
            faked,
            "--quick-gen-key",
            "Gina GnuPG <gina@example.org>",
            "ed25519",
            "sign",
            "never",
        ],
        None,
    );
    let gina = Cert::from_bytes(&gpg.run(&["--armor", "--export", "gina@example.org"], None))
        .expect("GnuPG's certificate");
    let a = approvers();
    gpg.run(
        &["--import"],
        Some(&a.bob.as_tsk().armored().to_vec().unwrap()),
    );
    let plan = Plan::parse(&plan_text(&policy_table(
        &[("Gina", &[&gina]), ("Bob", &[&a.bob]), ("Cat", &[&a.cat])],
        RULES,
    )))
    .expect("GnuPG's certificate is a good approver certificate");

    let text = sign_request(2);
    let stick = tempfile::tempdir().unwrap();
    let request_path = stick.path().join("request.toml");
    std::fs::write(&request_path, &text).unwrap();
    let folder = stick.path().join(APPROVALS_DIR);
    std::fs::create_dir(&folder).unwrap();
    let req = request_path.to_str().unwrap();
    let gina_fpr = gina.fingerprint().to_hex();
    let bob_fpr = a.bob.fingerprint().to_hex();
    let gina_sig = folder.join("gina.sig");
    let bob_asc = folder.join("bob.asc");
    gpg.run(
        &[
            "--local-user",
            &gina_fpr,
            "--detach-sign",
            "--output",
            gina_sig.to_str().unwrap(),
            req,
        ],
        None,
    );
    gpg.run(
        &[
            "--local-user",
            &bob_fpr,
            "--armor",
            "--detach-sign",
            "--output",
            bob_asc.to_str().unwrap(),
            req,
        ],
        None,
    );
    let bytes = std::fs::read(&request_path).unwrap();
    let approvals = recovery::read_approvals(&folder).unwrap();
    let result = recovery::check_policy(plan.policy.as_ref(), &request(&text), &bytes, &approvals)
        .expect("GnuPG's approvals count");
    let Approved::ByPolicy {
        approvals,
        not_counted,
        ..
    } = &result
    else {
        panic!("{result:?}")
    };
    assert!(not_counted.is_empty(), "{result}");
    let who: Vec<(&str, &str)> = approvals
        .iter()
        .map(|x| (x.file.as_str(), x.approver.as_str()))
        .collect();
    assert_eq!(who, [("bob.asc", "Bob"), ("gina.sig", "Gina")]);
    assert_eq!(approvals[1].cert_fingerprint, gina_fpr);

    // GnuPG's signature over an edited request does not count.
    std::fs::write(&request_path, text.replace("file-1", "file-2")).unwrap();
    gpg.run(
        &[
            "--local-user",
            &gina_fpr,
            "--yes",
            "--detach-sign",
            "--output",
            gina_sig.to_str().unwrap(),
            req,
        ],
        None,
    );
    let approvals = recovery::read_approvals(&folder).unwrap();
    let e = recovery::check_policy(plan.policy.as_ref(), &request(&text), &bytes, &approvals)
        .expect_err("one approval is over other bytes");
    assert_eq!(
        not_counted_of(&e)[0],
        NotCounted {
            file: "gina.sig".into(),
            reason: NotCountedReason::BadSignature {
                approver: "Gina".into()
            }
        }
    );
    // And GnuPG accepts Sequoia's approval (the independent check the other way).
    let seq = approval("ann.sig", &a.bob, &text);
    std::fs::write(&request_path, &text).unwrap();
    let seq_path = stick.path().join("seq.sig");
    std::fs::write(&seq_path, &seq.bytes).unwrap();
    gpg.run(&["--verify", seq_path.to_str().unwrap(), req], None);
}

/// The three approvers of the property test, made once.
fn shared_approvers() -> &'static Approvers {
    static A: std::sync::OnceLock<Approvers> = std::sync::OnceLock::new();
    A.get_or_init(approvers)
}

/// Rules as written: per operation k, and the two optional limits.
type Rules = ([i64; 5], Option<i64>, Option<i64>);

fn rules_text((ks, max_files, max_user_ids): &Rules) -> String {
    let mut t = String::new();
    for (kind, k) in OperationKind::ALL.iter().zip(ks) {
        t.push_str(&format!("[policy.{kind}]\nk = {k}\n"));
        match (kind, max_files, max_user_ids) {
            (OperationKind::Sign, Some(m), _) => t.push_str(&format!("max_files = {m}\n")),
            (OperationKind::Certify, _, Some(m)) => t.push_str(&format!("max_user_ids = {m}\n")),
            _ => {}
        }
    }
    t
}

fn three_approvers(rules: &Rules) -> Result<Plan, PlanError> {
    let a = shared_approvers();
    Plan::parse(&plan_text(&policy_table(
        &[("Ann", &[&a.ann]), ("Bob", &[&a.bob]), ("Cat", &[&a.cat])],
        &rules_text(rules),
    )))
}

fn arb_rules() -> impl proptest::strategy::Strategy<Value = Rules> {
    use proptest::prelude::*;
    // Mostly in range, so that both plans are often accepted and their hashes compared.
    let k = prop_oneof![6 => 1i64..=3, 1 => -1i64..6];
    (
        proptest::array::uniform5(k),
        proptest::option::of(prop_oneof![6 => 1i64..=3, 1 => -1i64..260]),
        proptest::option::of(prop_oneof![6 => 1i64..=2, 1 => -1i64..36]),
    )
}

proptest::proptest! {
    #![proptest_config(proptest::prelude::ProptestConfig::with_cases(48))]

    /// A policy is accepted exactly when every k is 1..=3 (three approvers) and every limit in
    /// range; then its rules are the ones written, and two policies have the same plan hash
    /// exactly when their rules are the same.
    #[test]
    fn rules_are_accepted_in_range_and_hashed(a in arb_rules(), b in arb_rules()) {
        let in_range = |(ks, f, u): &Rules| {
            ks.iter().all(|k| (1..=3).contains(k))
                && f.is_none_or(|f| (1..=255).contains(&f))
                && u.is_none_or(|u| (1..=32).contains(&u))
        };
        let pa = three_approvers(&a);
        proptest::prop_assert_eq!(pa.is_ok(), in_range(&a), "{:?}: {:?}", a, pa.as_ref().err());
        if let Err(e) = &pa {
            let is_policy_error = matches!(e, PlanError::Policy { .. });
            proptest::prop_assert!(is_policy_error, "{}", e);
        }
        if let (Ok(pa), Ok(pb)) = (pa, three_approvers(&b)) {
            let p = pa.policy.as_ref().unwrap();
            for (kind, k) in OperationKind::ALL.iter().zip(a.0) {
                proptest::prop_assert_eq!(i64::from(p.rule(*kind).k), k);
            }
            proptest::prop_assert_eq!(
                p.rule(OperationKind::Sign).max_files.map(|m| m as i64),
                a.1
            );
            proptest::prop_assert_eq!(
                p.rule(OperationKind::Certify).max_user_ids.map(|m| m as i64),
                a.2
            );
            proptest::prop_assert_eq!(pa.hash() == pb.hash(), a == b);
        }
    }
}
