//! A builder's attestation made through the card stack: the signing key imported into an
//! in-process virtual OpenPGP card, the manifest signed on the card, verified k-of-n.

use openpgp::cert::prelude::*;
use openpgp::policy::StandardPolicy;
use openpgp::serialize::SerializeInto;
use sequoia_openpgp as openpgp;
use sherd_release::attest::{self, SignatureFile};
use sherd_release::builders::Builders;
use std::sync::Arc;
use vscard_bridge::VirtualCard;
use vscard_bridge::direct::Direct;

const MANIFEST: &[u8] = b"format sherd-manifest 2\nversion 0.1.0\n";

#[test]
fn a_builder_signs_the_manifest_with_a_card() {
    let (cert, _) = CertBuilder::new()
        .set_cipher_suite(CipherSuite::Cv25519)
        .add_userid("carol <carol@builders.invalid>")
        .add_signing_subkey()
        .generate()
        .unwrap();
    let p = StandardPolicy::new();
    let signing = cert
        .keys()
        .secret()
        .with_policy(&p, None)
        .for_signing()
        .next()
        .unwrap()
        .key()
        .clone()
        .role_into_unspecified();
    let mut card =
        cards::OpenPgpCard::open(Direct::new(Arc::new(VirtualCard::new(0x5348_4552)))).unwrap();
    card.factory_reset().unwrap();
    card.import_keys(&cards::Pin::default_admin(), Some(&signing), None)
        .unwrap();

    let public = String::from_utf8(cert.armored().to_vec().unwrap()).unwrap();
    let builders = Builders::parse(&format!(
        "format = \"sherd-builders 1\"\nthreshold = 1\n[[builder]]\nname = \"carol\"\n\
         certificate = \"\"\"\n{public}\"\"\"\n"
    ))
    .unwrap();

    // The certificate comes from the builders file, found by the key on the card.
    let (found, fp) = attest::card_certificate(&mut card, Some(&builders), None).unwrap();
    assert_eq!(found.fingerprint(), cert.fingerprint());
    assert_eq!(fp.to_uppercase(), signing.fingerprint().to_hex());

    let sig =
        attest::sign_with_card(&mut card, &cards::Pin::default_user(), &found, MANIFEST).unwrap();
    assert!(String::from_utf8_lossy(&sig).starts_with("-----BEGIN PGP SIGNATURE-----"));
    let file = SignatureFile {
        path: attest::signature_file_name("carol").into(),
        bytes: sig,
    };
    let v = attest::verify(&builders, MANIFEST, &[file]).unwrap();
    assert_eq!(v.signed[0].builder, "carol");

    // A wrong PIN is refused by the card stack, with what to do.
    let wrong = cards::Pin::new("000000").unwrap();
    let e = attest::sign_with_card(&mut card, &wrong, &found, MANIFEST).unwrap_err();
    assert!(e.contains("card"), "{e}");

    // A card whose key no builder lists needs --cert.
    let empty = Builders::parse(&format!(
        "format = \"sherd-builders 1\"\nthreshold = 1\n[[builder]]\nname = \"dave\"\n\
         certificate = \"\"\"\n{}\"\"\"\n",
        String::from_utf8(
            CertBuilder::general_purpose(Some("dave"))
                .generate()
                .unwrap()
                .0
                .armored()
                .to_vec()
                .unwrap()
        )
        .unwrap()
    ))
    .unwrap();
    let e = attest::card_certificate(&mut card, Some(&empty), None).unwrap_err();
    assert!(
        e.contains("is no listed builder's: give its certificate"),
        "{e}"
    );
}
