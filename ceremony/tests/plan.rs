//! Plan validation: every refusal names the field or holder at fault.

mod common;

use std::time::{Duration, UNIX_EPOCH};

use ceremony::openpgp::cert::{CertBuilder, CipherSuite};
use ceremony::openpgp::types::{KeyFlags, ReasonForRevocation};
use ceremony::openpgp::{Cert, Packet};
use ceremony::plan::{Plan, PlanError};
use common::*;

fn plan_with(
    m: &str,
    holders: &[(&str, &str, &str, Vec<String>)],
    witnesses: &[&str],
    extra: &str,
) -> String {
    let mut t = format!(
        "format = \"sherd-plan/1\"\nceremony_id = \"p\"\ntime = {PLAN_TIME_STR}\nthreshold = {m}\n{extra}\n"
    );
    for (name, backup, cards, certs) in holders {
        t.push_str(&format!(
            "[[holder]]\nname = \"{name}\"\nbackup = \"{backup}\"\ncards = {cards}\ncerts = ["
        ));
        for c in certs {
            t.push_str(&format!("'''\n{c}''',"));
        }
        t.push_str("]\n");
    }
    for w in witnesses {
        t.push_str(&format!("[[witness]]\nname = \"{w}\"\n"));
    }
    t
}

fn three() -> (Vec<Cert>, Vec<String>) {
    let certs: Vec<Cert> = ["A", "B", "C"].iter().map(|n| personal(n)).collect();
    let armored = certs.iter().map(armored_public).collect();
    (certs, armored)
}

fn std_holders(a: &[String]) -> Vec<(&'static str, &'static str, &'static str, Vec<String>)> {
    vec![
        ("A", "B", "1", vec![a[0].clone()]),
        ("B", "C", "2", vec![a[1].clone()]),
        ("C", "A", "1", vec![a[2].clone()]),
    ]
}

fn err(text: &str) -> PlanError {
    Plan::parse(text).expect_err("plan should be refused")
}

#[test]
fn a_good_plan_and_its_hash() {
    let (_, a) = three();
    let text = plan_with("2", &std_holders(&a), &["W"], "");
    let plan = Plan::parse(&text).unwrap();
    assert_eq!(plan.time_unix, PLAN_TIME);
    assert_eq!(plan.threshold, 2);
    assert_eq!(plan.holder(2).unwrap().cards, 2);
    assert_eq!(plan.holder(1).unwrap().backup, 2);
    let s = plan.summary();
    assert_eq!(s.time_rfc3339, PLAN_TIME_STR);
    assert_eq!(s.hash_words.split(' ').count(), 32);

    // The hash is canonical: formatting, comments and key order do not change it...
    let reformatted = text.replace("threshold = 2\n", "# the quorum\nthreshold    =    2\n");
    assert_eq!(Plan::parse(&reformatted).unwrap().hash(), plan.hash());
    // ...but every meaningful change does.
    let changed = [
        text.replace("threshold = 2", "threshold = 3"),
        text.replace("ceremony_id = \"p\"", "ceremony_id = \"q\""),
        text.replace("T09:00:00Z", "T09:00:01Z"),
        text.replace("name = \"W\"", "name = \"V\""),
        text.replace("cards = 2", "cards = 3"),
    ];
    for c in changed {
        assert_ne!(Plan::parse(&c).unwrap().hash(), plan.hash(), "{c}");
    }
    let canonical = String::from_utf8(plan.canonical_bytes()).unwrap();
    assert!(canonical.starts_with("sherd-plan/1\nceremony_id=p\ntime=1795510800\nthreshold=2\n"));
}

#[test]
fn structural_errors() {
    let (_, a) = three();
    let h = std_holders(&a);
    assert!(
        matches!(err(&plan_with("2", &h, &["W"], "surprise = 1")), PlanError::Syntax(ref m) if m.contains("surprise"))
    );
    assert!(matches!(
        err(&plan_with("4", &h, &["W"], "")),
        PlanError::ThresholdAboveHolders {
            threshold: 4,
            holders: 3
        }
    ));
    assert!(matches!(
        err(&plan_with("1", &h, &["W"], "")),
        PlanError::ThresholdBelowTwo { threshold: 1 }
    ));
    assert!(Plan::parse(&plan_with("1", &h, &["W"], "allow_threshold_one = true")).is_ok());
    assert!(matches!(
        err(&plan_with("0", &h, &["W"], "")),
        PlanError::ThresholdOutOfRange { threshold: 0 }
    ));
    assert!(matches!(
        err(&plan_with("2", &h, &[], "")),
        PlanError::NoWitnesses
    ));
    assert!(matches!(
        err(&plan_with("2", &h, &["W", "W"], "")),
        PlanError::DuplicateWitness { .. }
    ));
    assert!(matches!(
        err(&plan_with("2", &[], &["W"], "")),
        PlanError::NoHolders
    ));

    let text = plan_with("2", &h, &["W"], "");
    assert!(matches!(
        err(&text.replace("sherd-plan/1", "sherd-plan/2")),
        PlanError::UnsupportedFormat { .. }
    ));
    assert!(matches!(
        err(&text.replace("ceremony_id = \"p\"", "ceremony_id = \"P Q\"")),
        PlanError::InvalidCeremonyId { .. }
    ));
    assert!(matches!(
        err(&text.replace("T09:00:00Z", "T09:00:00+01:00")),
        PlanError::InvalidTime { .. }
    ));
    assert!(matches!(
        err(&text.replace("T09:00:00Z", "T09:00:00.5Z")),
        PlanError::InvalidTime { .. }
    ));
    assert!(matches!(
        err(&text.replace("2026-11-24T09:00:00Z", "2026-11-24")),
        PlanError::InvalidTime { .. }
    ));
    assert!(matches!(
        err(&text.replace("2026-11-24T", "1999-11-24T")),
        PlanError::InvalidTime { .. }
    ));

    let mut dup = h.clone();
    dup[2].0 = "A";
    assert!(
        matches!(err(&plan_with("2", &dup, &["W"], "")), PlanError::DuplicateHolder { ref name, first: 1, second: 3 } if name == "A")
    );
    let mut unknown = h.clone();
    unknown[0].1 = "Z";
    assert!(
        matches!(err(&plan_with("2", &unknown, &["W"], "")), PlanError::UnknownBackup { ref holder, ref backup } if holder == "A" && backup == "Z")
    );
    let mut own = h.clone();
    own[0].1 = "A";
    assert!(matches!(
        err(&plan_with("2", &own, &["W"], "")),
        PlanError::SelfBackup { .. }
    ));
    let mut cards = h.clone();
    cards[1].2 = "0";
    assert!(matches!(
        err(&plan_with("2", &cards, &["W"], "")),
        PlanError::CardCount { cards: 0, .. }
    ));
    let mut nocert = h.clone();
    nocert[1].3 = vec![];
    assert!(
        matches!(err(&plan_with("2", &nocert, &["W"], "")), PlanError::NoCertificates { ref holder } if holder == "B")
    );
    let mut samecert = h.clone();
    samecert[2].3 = vec![a[0].clone()];
    assert!(
        matches!(err(&plan_with("2", &samecert, &["W"], "")), PlanError::DuplicateCertificate { ref first, ref second, .. } if first == "A" && second == "C")
    );
    let mut garbage = h.clone();
    garbage[1].3 = vec!["not a key".into()];
    assert!(matches!(
        err(&plan_with("2", &garbage, &["W"], "")),
        PlanError::CertUnreadable { position: 1, .. }
    ));
    let mut badname = h;
    badname[0].0 = "A\tB";
    assert!(matches!(
        err(&plan_with("2", &badname, &["W"], "")),
        PlanError::InvalidName { .. }
    ));
}

#[test]
fn too_many_holders() {
    let c = armored_public(&personal("x"));
    let many: Vec<(String, String)> = (0..256)
        .map(|i| (format!("h{i}"), format!("h{}", (i + 1) % 256)))
        .collect();
    let holders: Vec<(&str, &str, &str, Vec<String>)> = many
        .iter()
        .map(|(n, b)| (n.as_str(), b.as_str(), "1", vec![c.clone()]))
        .collect();
    assert!(matches!(
        err(&plan_with("2", &holders, &["W"], "")),
        PlanError::TooManyHolders { count: 256 }
    ));
}

fn at(days: i64) -> std::time::SystemTime {
    let secs = i64::from(PLAN_TIME) + days * 86_400;
    UNIX_EPOCH + Duration::from_secs(u64::try_from(secs).unwrap())
}

#[test]
fn certificate_problems_at_the_ceremony_time() {
    let (_, a) = three();
    let check = |cert: String| {
        let mut h = std_holders(&a);
        h[1].3 = vec![cert];
        err(&plan_with("2", &h, &["W"], ""))
    };

    // Expired before the ceremony.
    let expired = CertBuilder::general_purpose(["E"])
        .set_cipher_suite(CipherSuite::Cv25519)
        .set_creation_time(at(-30))
        .set_validity_period(Duration::from_secs(10 * 86_400))
        .generate()
        .unwrap()
        .0;
    assert!(
        matches!(check(armored_public(&expired)), PlanError::CertExpired { ref holder, .. } if holder == "B")
    );

    // Created after the ceremony time.
    let future = CertBuilder::general_purpose(["F"])
        .set_creation_time(at(5))
        .generate()
        .unwrap()
        .0;
    assert!(matches!(
        check(armored_public(&future)),
        PlanError::CertInvalid { .. }
    ));

    // Revoked.
    let (cert, rev) = CertBuilder::general_purpose(["R"])
        .set_cipher_suite(CipherSuite::Cv25519)
        .set_creation_time(at(-30))
        .generate()
        .unwrap();
    let mut signer = cert
        .primary_key()
        .key()
        .clone()
        .parts_into_secret()
        .unwrap()
        .into_keypair()
        .unwrap();
    let rev2 = cert
        .revoke(&mut signer, ReasonForRevocation::KeyCompromised, b"lost")
        .unwrap();
    let _ = rev;
    let revoked = cert.insert_packets(vec![Packet::from(rev2)]).unwrap().0;
    assert!(matches!(
        check(armored_public(&revoked)),
        PlanError::CertRevoked { .. }
    ));

    // No encryption-capable key.
    let sign_only = CertBuilder::new()
        .add_userid("S")
        .set_cipher_suite(CipherSuite::Cv25519)
        .set_creation_time(at(-30))
        .set_primary_key_flags(KeyFlags::empty().set_certification().set_signing())
        .generate()
        .unwrap()
        .0;
    assert!(matches!(
        check(armored_public(&sign_only)),
        PlanError::CertCannotEncrypt { .. }
    ));

    // Secret key material in the plan.
    let tsk = personal("T");
    let armored_tsk = {
        use ceremony::openpgp::serialize::SerializeInto;
        String::from_utf8(tsk.as_tsk().armored().to_vec().unwrap()).unwrap()
    };
    let e = check(armored_tsk);
    assert!(
        matches!(
            e,
            PlanError::CertUnreadable { .. } | PlanError::CertHasSecret { .. }
        ),
        "{e}"
    );
}

/// `[[witness]]` tables with `certs`, then an optional top-level `require_witness_signatures`.
fn plan_with_witnesses(a: &[String], witnesses: &[(&str, Vec<String>)], require: bool) -> String {
    let extra = if require {
        "require_witness_signatures = true"
    } else {
        ""
    };
    let mut t = plan_with("2", &std_holders(a), &[], extra);
    for (w, certs) in witnesses {
        t.push_str(&format!("[[witness]]\nname = \"{w}\"\ncerts = ["));
        for c in certs {
            t.push_str(&format!("'''\n{c}''',"));
        }
        t.push_str("]\n");
    }
    t
}

#[test]
fn witness_certificates_and_the_requirement() {
    let (_, a) = three();
    let (wendy, walter) = (personal("Wendy"), personal("Walter"));
    let (aw, aw2) = (armored_public(&wendy), armored_public(&walter));

    // Without certificates the canonical encoding is the one before witness certificates
    // existed: an empty `certs` list changes nothing.
    let bare = Plan::parse(&plan_with("2", &std_holders(&a), &["W"], "")).unwrap();
    let empty = Plan::parse(&plan_with_witnesses(&a, &[("W", vec![])], false)).unwrap();
    assert_eq!(bare.hash(), empty.hash());
    let canonical = String::from_utf8(bare.canonical_bytes()).unwrap();
    assert!(
        canonical.ends_with("witnesses=1\nwitness=W\n"),
        "{canonical}"
    );
    assert_eq!(
        bare.summary().witness_cert_fingerprints,
        vec![Vec::<String>::new()]
    );
    assert!(!bare.require_witness_signatures);

    // With them: one line per certificate after its witness, the flag after the witnesses.
    let text = plan_with_witnesses(
        &a,
        &[("W", vec![aw.clone()]), ("V", vec![aw2.clone()])],
        true,
    );
    let plan = Plan::parse(&text).unwrap();
    let canonical = String::from_utf8(plan.canonical_bytes()).unwrap();
    let sha = |c: &Cert| {
        use ceremony::openpgp::serialize::Serialize;
        use sha2::{Digest, Sha256};
        let mut bin = Vec::new();
        c.serialize(&mut bin).unwrap();
        ceremony::hex::encode(&Sha256::digest(&bin))
    };
    let expected_tail = format!(
        "witnesses=2\nwitness=W\nwitness_cert=1\t{}\t{}\nwitness=V\nwitness_cert=2\t{}\t{}\nrequire_witness_signatures=true\n",
        wendy.fingerprint().to_hex(),
        sha(&wendy.clone().strip_secret_key_material()),
        walter.fingerprint().to_hex(),
        sha(&walter.clone().strip_secret_key_material()),
    );
    assert!(canonical.ends_with(&expected_tail), "{canonical}");
    let s = plan.summary();
    assert!(s.require_witness_signatures);
    assert_eq!(
        s.witness_cert_fingerprints,
        vec![
            vec![wendy.fingerprint().to_hex()],
            vec![walter.fingerprint().to_hex()]
        ]
    );
    assert_eq!(plan.witness(2).unwrap().0, "V");
    assert!(plan.witness(3).is_none() && plan.witness(0).is_none());
    // Each of these is a change of meaning.
    for c in [
        plan_with_witnesses(
            &a,
            &[("W", vec![aw.clone()]), ("V", vec![aw2.clone()])],
            false,
        ),
        plan_with_witnesses(
            &a,
            &[("W", vec![aw2.clone()]), ("V", vec![aw.clone()])],
            true,
        ),
    ] {
        assert_ne!(Plan::parse(&c).unwrap().hash(), plan.hash());
    }

    // Required, but a witness has no certificate: refused, naming them.
    let e = err(&plan_with_witnesses(
        &a,
        &[("W", vec![aw.clone()]), ("V", vec![])],
        true,
    ));
    assert!(
        matches!(e, PlanError::WitnessWithoutCertificate { ref witnesses } if witnesses == &["V".to_string()]),
        "{e}"
    );
    assert!(e.to_string().contains("certs = [...]"), "{e}");
}

/// A witness's certificates get the holders' checks (the same code), and must be able to sign.
#[test]
fn witness_certificate_problems() {
    let (certs, a) = three();
    let check = |cert: String| err(&plan_with_witnesses(&a, &[("Wendy", vec![cert])], false));

    let expired = CertBuilder::general_purpose(["E"])
        .set_cipher_suite(CipherSuite::Cv25519)
        .set_creation_time(at(-30))
        .set_validity_period(Duration::from_secs(10 * 86_400))
        .generate()
        .unwrap()
        .0;
    let e = check(armored_public(&expired));
    assert!(
        matches!(e, PlanError::CertExpired { what: "witness", ref holder, .. } if holder == "Wendy"),
        "{e}"
    );
    assert!(e.to_string().starts_with("witness \"Wendy\""), "{e}");
    assert!(matches!(
        check("not a certificate".into()),
        PlanError::CertUnreadable {
            what: "witness",
            position: 1,
            ..
        }
    ));

    // Encryption only: no signature by it could be checked.
    let encrypt_only = CertBuilder::new()
        .add_userid("X")
        .set_cipher_suite(CipherSuite::Cv25519)
        .set_creation_time(at(-30))
        .set_primary_key_flags(KeyFlags::empty().set_certification())
        .add_storage_encryption_subkey()
        .generate()
        .unwrap()
        .0;
    assert!(matches!(
        check(armored_public(&encrypt_only)),
        PlanError::CertCannotSign { ref witness, .. } if witness == "Wendy"
    ));

    // A holder's certificate given again for a witness, or one certificate for two witnesses.
    assert!(matches!(
        check(armored_public(&certs[0])),
        PlanError::DuplicateCertificate { ref first, ref second, .. } if first == "A" && second == "Wendy"
    ));
    let w = armored_public(&personal("Wendy"));
    assert!(matches!(
        err(&plan_with_witnesses(&a, &[("Wendy", vec![w.clone()]), ("Walter", vec![w])], false)),
        PlanError::DuplicateCertificate { ref first, ref second, .. } if first == "Wendy" && second == "Walter"
    ));
}

/// A plan with a `[machine]` table appended (TOML tables may come in any order). The
/// certificates are made once, so plans that differ only in the table differ only there.
fn plan_with_machine(machine: &str) -> String {
    static BASE: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    let base = BASE.get_or_init(|| {
        let (_, a) = three();
        plan_with("2", &std_holders(&a), &["W"], "")
    });
    format!("{base}\n{machine}")
}

#[test]
fn the_machine_table() {
    let p0 = "00".repeat(32);
    let p4 = "BD6D4E413F2B44119BD0B4BC7060FE415C5C23C51A96F370C240F78A6DCA21C3";
    let key = format!("000b{}", "ab".repeat(32));
    let text = plan_with_machine(&format!(
        "[machine]\nname = \"laptop 1\"\npcr0 = \"{p0}\"\npcr4 = \"{p4}\"\nquote_key = \"{key}\"\n"
    ));
    let plan = Plan::parse(&text).unwrap();
    let m = plan.machine.clone().unwrap();
    assert_eq!(m.name, "laptop 1");
    assert_eq!(m.pcrs[0], Some([0; 32]));
    assert_eq!(m.pcrs[1], None);
    assert_eq!(hexstr::encode(&m.pcrs[4].unwrap()), p4.to_ascii_lowercase());
    assert_eq!(hexstr::encode(&m.quote_key.unwrap()), key);
    assert_eq!(plan.summary().machine, Some(m.clone()));

    // What the boot screen writes is a table the plan reads back as the same values.
    let again = Plan::parse(&plan_with_machine(&m.to_toml())).unwrap();
    assert_eq!(again.machine, Some(m));
    assert_eq!(again.hash(), plan.hash());

    // Its canonical lines, after everything else; without the table the hash is unchanged.
    let canonical = String::from_utf8(plan.canonical_bytes()).unwrap();
    assert!(
        canonical.ends_with(&format!(
            "witness=W\nmachine=laptop 1\nmachine_pcr=0\t{p0}\nmachine_pcr=4\t{}\nmachine_quote_key={key}\n",
            p4.to_ascii_lowercase()
        )),
        "{canonical}"
    );
    let bare = Plan::parse(&plan_with_machine("")).unwrap();
    assert!(bare.machine.is_none());
    assert!(
        !String::from_utf8(bare.canonical_bytes())
            .unwrap()
            .contains("machine")
    );
    // Every recorded value is part of the hash.
    for changed in [
        text.replace("laptop 1", "laptop 2"),
        text.replace(&format!("pcr0 = \"{p0}\""), &format!("pcr1 = \"{p0}\"")),
        text.replace(&key, &format!("000b{}", "cd".repeat(32))),
    ] {
        assert_ne!(Plan::parse(&changed).unwrap().hash(), plan.hash());
    }
}

#[test]
fn machine_table_refusals_name_the_field() {
    let cases = [
        ("[machine]\npcr0 = \"00\"\n", "name"),
        ("[machine]\nname = \"l\"\n", "records no value"),
        ("[machine]\nname = \"l\"\npcr3 = \"00\"\n", "pcr3"),
        ("[machine]\nname = \"l\"\npcr8 = \"00\"\n", "pcr8"),
        (
            &format!("[machine]\nname = \"l\"\npcr7 = \"{}\"\n", "0g".repeat(32)),
            "pcr7: \"",
        ),
        (
            &format!(
                "[machine]\nname = \"l\"\nquote_key = \"{}\"\n",
                "00".repeat(32)
            ),
            "68 hex digits",
        ),
        (
            &format!(
                "[machine]\nname = \"l\"\nquote_key = \"0004{}\"\n",
                "00".repeat(32)
            ),
            "must start with 000b",
        ),
        ("[machine]\nname = \" l\"\npcr0 = \"00\"\n", "machine name"),
    ];
    for (table, want) in cases {
        let e = err(&plan_with_machine(table)).to_string();
        assert!(e.contains(want), "{table}: {e}");
    }
}
