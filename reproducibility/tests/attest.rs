//! Attestations end to end: builders sign a manifest, k-of-n verification passes or fails with
//! a message naming what is wrong; the builders file refuses what it must.

use openpgp::cert::prelude::*;
use openpgp::serialize::SerializeInto;
use sequoia_openpgp as openpgp;
use sherd_release::attest::{self, SignatureFile};
use sherd_release::builders::Builders;
use std::path::PathBuf;

const MANIFEST: &[u8] = b"format sherd-manifest 2\nversion 0.1.0\ngit-commit abc\n";

fn key(name: &str) -> Cert {
    let (cert, _) = CertBuilder::new()
        .set_cipher_suite(CipherSuite::Cv25519)
        .add_userid(format!("{name} <{name}@builders.invalid>"))
        .add_signing_subkey()
        .generate()
        .unwrap();
    cert
}

fn public(cert: &Cert) -> String {
    String::from_utf8(cert.armored().to_vec().unwrap()).unwrap()
}

fn builders_toml(threshold: usize, certs: &[(&str, &Cert)]) -> String {
    let mut s = format!("format = \"sherd-builders 1\"\nthreshold = {threshold}\n");
    for (name, c) in certs {
        s += &format!(
            "\n[[builder]]\nname = \"{name}\"\ncertificate = \"\"\"\n{}\"\"\"\n",
            public(c)
        );
    }
    s
}

fn sign(cert: &Cert, data: &[u8]) -> Vec<u8> {
    let k = attest::signing_key(cert).unwrap();
    let signer = attest::unlock(k, || panic!("not encrypted")).unwrap();
    attest::sign_detached(signer, data).unwrap()
}

fn file(builder: &str, bytes: Vec<u8>) -> SignatureFile {
    SignatureFile {
        path: PathBuf::from(attest::signature_file_name(builder)),
        bytes,
    }
}

struct Two {
    alice: Cert,
    bob: Cert,
}

fn two() -> Two {
    Two {
        alice: key("alice"),
        bob: key("bob"),
    }
}

#[test]
fn two_builders_sign_and_k2_verifies() {
    let t = two();
    let b = Builders::parse(&builders_toml(2, &[("alice", &t.alice), ("bob", &t.bob)])).unwrap();
    let sigs = [
        file("alice", sign(&t.alice, MANIFEST)),
        file("bob", sign(&t.bob, MANIFEST)),
    ];
    assert!(
        String::from_utf8_lossy(&sigs[0].bytes).starts_with("-----BEGIN PGP SIGNATURE-----"),
        "armored"
    );
    let v = attest::verify(&b, MANIFEST, &sigs).unwrap();
    let names: Vec<_> = v.signed.iter().map(|s| s.builder.as_str()).collect();
    assert_eq!(names, ["alice", "bob"]);
    assert!(v.not_signed.is_empty());
}

#[test]
fn tampered_manifest_fails_naming_the_builder() {
    let t = two();
    let b = Builders::parse(&builders_toml(2, &[("alice", &t.alice), ("bob", &t.bob)])).unwrap();
    let sigs = [
        file("alice", sign(&t.alice, MANIFEST)),
        file("bob", sign(&t.bob, MANIFEST)),
    ];
    let mut tampered = MANIFEST.to_vec();
    tampered[30] ^= 1;
    let e = attest::verify(&b, &tampered, &sigs).unwrap_err();
    assert!(
        e.contains("builder \"alice\"'s signature")
            && e.contains("does not match manifest.txt: the manifest was changed"),
        "{e}"
    );
    assert!(e.contains("0 of the 2 required builders signed"), "{e}");
}

#[test]
fn unlisted_key_fails() {
    let t = two();
    let mallory = key("mallory");
    let b = Builders::parse(&builders_toml(1, &[("alice", &t.alice), ("bob", &t.bob)])).unwrap();
    let sigs = [
        file("alice", sign(&t.alice, MANIFEST)),
        file("mallory", sign(&mallory, MANIFEST)),
    ];
    let e = attest::verify(&b, MANIFEST, &sigs).unwrap_err();
    assert!(
        e.contains("manifest.txt.mallory.asc: signed by key")
            && e.contains("which is no listed builder's"),
        "{e}"
    );
}

#[test]
fn k3_with_two_signers_fails_and_names_who_did_not_sign() {
    let t = two();
    let carol = key("carol");
    let b = Builders::parse(&builders_toml(
        3,
        &[("alice", &t.alice), ("bob", &t.bob), ("carol", &carol)],
    ))
    .unwrap();
    let sigs = [
        file("alice", sign(&t.alice, MANIFEST)),
        file("bob", sign(&t.bob, MANIFEST)),
    ];
    let e = attest::verify(&b, MANIFEST, &sigs).unwrap_err();
    assert_eq!(
        e,
        "2 of the 3 required builders signed (alice, bob); not signed: carol"
    );
}

#[test]
fn duplicate_signer_and_misnamed_file_fail() {
    let t = two();
    let b = Builders::parse(&builders_toml(1, &[("alice", &t.alice), ("bob", &t.bob)])).unwrap();
    let mut again = file("alice", sign(&t.alice, MANIFEST));
    again.path = PathBuf::from("copy/manifest.txt.alice.asc");
    let sigs = [file("alice", sign(&t.alice, MANIFEST)), again];
    let e = attest::verify(&b, MANIFEST, &sigs).unwrap_err();
    assert!(e.contains("builder \"alice\" signed again"), "{e}");

    let sigs = [file("bob", sign(&t.alice, MANIFEST))];
    let e = attest::verify(&b, MANIFEST, &sigs).unwrap_err();
    assert!(
        e.contains("named for builder \"bob\" but signed by builder \"alice\"'s key"),
        "{e}"
    );
}

#[test]
fn a_file_that_is_not_a_signature_fails() {
    let t = two();
    let b = Builders::parse(&builders_toml(1, &[("alice", &t.alice)])).unwrap();
    let e = attest::verify(
        &b,
        MANIFEST,
        &[file("alice", public(&t.alice).into_bytes())],
    )
    .unwrap_err();
    assert!(
        e.contains("a detached signature file holds only signatures"),
        "{e}"
    );
    let e = attest::verify(&b, MANIFEST, &[file("alice", b"hello".to_vec())]).unwrap_err();
    assert!(e.contains("manifest.txt.alice.asc: "), "{e}");
}

#[test]
fn builders_file_errors_say_what_to_fix() {
    let t = two();
    let ok = builders_toml(1, &[("alice", &t.alice)]);
    let err = |s: &str| Builders::parse(s).unwrap_err();

    assert!(err(&ok.replace("threshold = 1", "threshold = 1\nquorum = 2")).contains("quorum"));
    assert!(
        err(&ok.replace("sherd-builders 1", "sherd-builders 7")).contains("this sherd-release")
    );
    assert!(err(&ok.replace("threshold = 1", "threshold = 0")).contains("threshold is 0"));
    assert!(
        err(&ok.replace("threshold = 1", "threshold = 2"))
            .contains("threshold is 2 but only 1 builder is listed")
    );
    assert!(err(&ok.replace("name = \"alice\"", "name = \"Alice Smith\"")).contains("a-z, 0-9"));
    assert!(
        err("format = \"sherd-builders 1\"\nthreshold = 1\n").contains("no [[builder]] is listed")
    );
    // The same party listed twice, under two names or one.
    assert!(
        err(&builders_toml(
            1,
            &[("alice", &t.alice), ("alice2", &t.alice)]
        ))
        .contains("is also builder \"alice\"'s")
    );
    assert!(
        err(&builders_toml(1, &[("alice", &t.alice), ("alice", &t.bob)]))
            .contains("the name is listed twice")
    );
    // A secret key pasted by mistake.
    let tsk = String::from_utf8(t.alice.as_tsk().armored().to_vec().unwrap()).unwrap();
    let with_secret = ok.replace(&public(&t.alice), &tsk);
    assert!(err(&with_secret).contains("contains secret key material"));
    assert!(
        err(&ok.replace("BEGIN PGP PUBLIC KEY BLOCK", "BEGIN NOTHING")).contains("certificate")
    );
    // Syntax errors carry TOML's position.
    assert!(err("threshold = = 1").contains("line 1"));
}

#[test]
fn encrypted_key_needs_its_password() {
    let alice = key("alice");
    let pw: openpgp::crypto::Password = "correct horse".into();
    let k = attest::signing_key(&alice).unwrap();
    let locked = k.clone().encrypt_secret(&pw).unwrap();
    let e = match attest::unlock(locked.clone(), || Ok("wrong".into())) {
        Err(e) => e,
        Ok(_) => panic!("a wrong password unlocked the key"),
    };
    assert!(e.contains("wrong password"), "{e}");
    let signer = attest::unlock(locked, || Ok(pw.clone())).unwrap();
    let sig = attest::sign_detached(signer, MANIFEST).unwrap();
    let b = Builders::parse(&builders_toml(1, &[("alice", &alice)])).unwrap();
    attest::verify(&b, MANIFEST, &[file("alice", sig)]).unwrap();
}

/// Heads checks `<name>.iso.asc` with GnuPG: our signatures must verify there too. Without gpg
/// the test fails (./scripts/setup installs it): a check that is skipped checks nothing.
#[test]
fn gnupg_verifies_our_signatures() {
    let version = std::process::Command::new("gpg").arg("--version").output();
    assert!(
        version.is_ok_and(|o| o.status.success()),
        "gpg is needed for this interoperability test: apt-get install gnupg (./scripts/setup does)"
    );
    let alice = key("alice");
    let home = tempfile::tempdir().unwrap();
    let certfile = home.path().join("alice.asc");
    std::fs::write(&certfile, public(&alice)).unwrap();
    let data = home.path().join("sherd.iso");
    std::fs::write(&data, b"not really an ISO").unwrap();
    let sig = home.path().join("sherd.iso.asc");
    std::fs::write(&sig, sign(&alice, b"not really an ISO")).unwrap();
    let gpg = |args: &[&std::ffi::OsStr]| {
        std::process::Command::new("gpg")
            .env("GNUPGHOME", home.path())
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
    let v = gpg(&["--verify".as_ref(), sig.as_os_str(), data.as_os_str()]);
    assert!(v.status.success(), "{}", String::from_utf8_lossy(&v.stderr));
    std::fs::write(&data, b"not really an ISO!").unwrap();
    let v = gpg(&["--verify".as_ref(), sig.as_os_str(), data.as_os_str()]);
    assert!(!v.status.success(), "gpg accepted a changed file");
}

/// Every checked-in release folder verifies against the checked-in builders file, so an edit
/// to a manifest or to builders.toml that breaks an attestation fails here first.
#[test]
fn the_checked_in_releases_verify() {
    let releases = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../releases");
    let b = Builders::read(&releases.join("builders.toml")).unwrap();
    let mut n = 0;
    for e in std::fs::read_dir(&releases).unwrap() {
        let dir = e.unwrap().path();
        if !dir.join(attest::MANIFEST).is_file() {
            continue;
        }
        let manifest = std::fs::read(dir.join(attest::MANIFEST)).unwrap();
        let sigs = attest::release_signatures(&dir).unwrap();
        if let Err(e) = attest::verify(&b, &manifest, &sigs) {
            panic!("{}: {e}", dir.display());
        }
        n += 1;
    }
    assert!(n > 0, "no release folder in {}", releases.display());
}
