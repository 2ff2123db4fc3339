//! Pinned derivation vectors: a change to the derivation, the certificate layout or the
//! commitment makes these fail, so an existing ceremony's shares would still be recognised.

use ceremony::hex;
use ceremony::keys::{self, RootKey};
use ceremony::openpgp::policy::StandardPolicy;
use ceremony::secret::RootSecret;

const TIME: u32 = 1_800_000_000;

fn vector_secret() -> RootSecret {
    let bytes: Vec<u8> = (0u8..32).collect();
    RootSecret::from_slice(&bytes).unwrap()
}

fn subkey_fingerprint(root: &RootKey) -> String {
    let cert = root.public_cert();
    let p = StandardPolicy::new();
    let vc = cert
        .with_policy(
            &p,
            std::time::UNIX_EPOCH + std::time::Duration::from_secs(u64::from(TIME) + 1),
        )
        .unwrap();
    let sub = vc.keys().subkeys().next().unwrap();
    assert!(sub.key_flags().unwrap().for_storage_encryption());
    sub.key().fingerprint().to_hex()
}

#[test]
fn pinned_root_vector() {
    let root = RootKey::derive(&vector_secret(), "vector-test", TIME).unwrap();
    assert_eq!(
        root.fingerprint().to_hex(),
        "A29223A2578B7B155DB7D34F9346B00F0233C50A"
    );
    assert_eq!(
        subkey_fingerprint(&root),
        "ACB9FADF6A2D934507AE87126ED65C42A17C7CF6"
    );
    assert_eq!(
        hex::encode(&keys::commitment(&vector_secret(), "vector-test")),
        "9fd69152b2529def6955c2dd7f1964cf0c8214e3690100c29add1c4c1b2c5a65"
    );
}

#[test]
fn same_secret_same_fingerprint() {
    let a = RootKey::derive(&vector_secret(), "vector-test", TIME).unwrap();
    let b = RootKey::derive(&vector_secret(), "another-id", TIME).unwrap();
    assert_eq!(
        a.fingerprint(),
        b.fingerprint(),
        "the ceremony id is only in the user ID"
    );
    let c = RootKey::derive(&vector_secret(), "vector-test", TIME + 1).unwrap();
    assert_ne!(
        a.fingerprint(),
        c.fingerprint(),
        "the plan time is part of the key"
    );
    let other = RootSecret::from_slice(&[7u8; 32]).unwrap();
    let d = RootKey::derive(&other, "vector-test", TIME).unwrap();
    assert_ne!(a.fingerprint(), d.fingerprint());
    assert_ne!(
        keys::commitment(&vector_secret(), "vector-test"),
        keys::commitment(&vector_secret(), "another-id"),
        "commitments are per ceremony"
    );
}

#[test]
fn root_key_works() {
    let root = RootKey::derive(&vector_secret(), "vector-test", TIME).unwrap();
    root.self_test(b"nonce").unwrap();
    let cert = root.public_cert();
    assert!(!cert.is_tsk());
    assert_eq!(cert.userids().count(), 1);
    assert_eq!(cert.keys().subkeys().count(), 1);
}

/// The Python program in docs/formats/keys.md: an independent derivation (standard library
/// HKDF/HMAC, Debian's python3-cryptography for Ed25519/X25519, the v4 fingerprint computed
/// from RFC 4880 by hand, no OpenPGP library) of the root and subkey fingerprints and the
/// commitment.
fn python_program() -> String {
    let doc = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../docs/formats/keys.md"
    ))
    .expect("docs/formats/keys.md");
    let start = doc.find("```python\n").expect("a python block in keys.md") + "```python\n".len();
    let len = doc[start..].find("```").expect("the python block ends");
    doc[start..start + len].to_owned()
}

/// The pinned vector is re-derived by that program, and our derivation must give what it
/// prints: the vector is checked by a second implementation, not only by our own past output.
#[test]
fn an_independent_implementation_derives_the_same_keys() {
    let out = std::process::Command::new("/usr/bin/python3")
        .args(["-c", &python_program()])
        .output()
        .expect("Debian's python3 is needed (./scripts/setup installs python3-cryptography)");
    assert!(
        out.status.success(),
        "the program in docs/formats/keys.md failed (is python3-cryptography installed?): {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8(out.stdout).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    let root = RootKey::derive(&vector_secret(), "vector-test", TIME).unwrap();
    assert_eq!(
        lines,
        [
            root.fingerprint().to_hex(),
            subkey_fingerprint(&root),
            hex::encode(&keys::commitment(&vector_secret(), "vector-test")),
        ]
    );
}
