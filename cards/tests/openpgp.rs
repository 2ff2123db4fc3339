//! OpenPGP card operations against the in-process virtual card (opcard), through the whole
//! driver: emulated CCID readers at each exchange level, and a direct channel.

mod common;

use std::io::Write;
use std::time::Instant;

use cards::ccid::ExchangeLevel;
use cards::{Error, OpenPgpCard, Pin};
use common::{Direct, emulated_reader};
use openpgp::cert::prelude::*;
use openpgp::parse::Parse;
use openpgp::parse::stream::{
    DetachedVerifierBuilder, MessageLayer, MessageStructure, VerificationHelper,
};
use openpgp::policy::StandardPolicy;
use openpgp::serialize::stream::{Encryptor, LiteralWriter, Message};
use sequoia_openpgp as openpgp;
use vscard_bridge::VirtualCard;
use vscard_bridge::virtual_card::TEST_MANUFACTURER;

fn new_cert() -> openpgp::Cert {
    let (cert, _) = CertBuilder::new()
        .add_userid("sherd test holder")
        .set_cipher_suite(CipherSuite::Cv25519)
        .add_signing_subkey()
        .add_storage_encryption_subkey()
        .generate()
        .unwrap();
    cert
}

fn encrypt_to(cert: &openpgp::Cert, plaintext: &[u8]) -> Vec<u8> {
    let p = StandardPolicy::new();
    let recipients = cert
        .keys()
        .with_policy(&p, None)
        .supported()
        .alive()
        .revoked(false)
        .for_storage_encryption();
    let mut sink = Vec::new();
    let m = Message::new(&mut sink);
    let m = Encryptor::for_recipients(m, recipients).build().unwrap();
    let mut w = LiteralWriter::new(m).build().unwrap();
    w.write_all(plaintext).unwrap();
    w.finalize().unwrap();
    sink
}

struct VerifyHelper<'a>(&'a openpgp::Cert);

impl VerificationHelper for VerifyHelper<'_> {
    fn get_certs(&mut self, _: &[openpgp::KeyHandle]) -> openpgp::Result<Vec<openpgp::Cert>> {
        Ok(vec![self.0.clone()])
    }
    fn check(&mut self, structure: MessageStructure) -> openpgp::Result<()> {
        for layer in structure {
            if let MessageLayer::SignatureGroup { results } = layer
                && results.iter().any(|r| r.is_ok())
            {
                return Ok(());
            }
        }
        Err(anyhow_error("no valid signature"))
    }
}

fn anyhow_error(s: &str) -> openpgp::anyhow::Error {
    openpgp::anyhow::anyhow!("{s}")
}

fn verify(cert: &openpgp::Cert, sig: &[u8], data: &[u8]) -> openpgp::Result<()> {
    let p = StandardPolicy::new();
    let mut v =
        DetachedVerifierBuilder::from_bytes(sig)?.with_policy(&p, None, VerifyHelper(cert))?;
    v.verify_bytes(data)
}

/// Reset, PINs, import, decrypt, sign, GET CHALLENGE on one card; returns (APDUs, CCID
/// XfrBlocks per `xfr_blocks`, seconds) spent on provisioning (reset, import, PINs, test
/// decryption).
fn ceremony_flow(
    card: &mut OpenPgpCard,
    serial: u32,
    xfr_blocks: &dyn Fn() -> u64,
) -> (u64, u64, f64) {
    let p = StandardPolicy::new();
    let id = card.identity().unwrap();
    assert_eq!(id.serial, serial);
    assert_eq!(id.manufacturer_id, TEST_MANUFACTURER);
    assert_eq!(id.ident, format!("{TEST_MANUFACTURER:04X}:{serial:08X}"));

    let cert = new_cert();
    let sig_key = cert
        .keys()
        .secret()
        .with_policy(&p, None)
        .for_signing()
        .next()
        .unwrap()
        .key()
        .clone()
        .role_into_unspecified();
    let dec_key = cert
        .keys()
        .secret()
        .with_policy(&p, None)
        .for_storage_encryption()
        .next()
        .unwrap()
        .key()
        .clone()
        .role_into_unspecified();
    let user = Pin::new("731195").unwrap();
    let admin = Pin::new("41807726").unwrap();
    let message = encrypt_to(&cert, b"shard 1 of 3");

    let apdus_before = card.apdu_count();
    let xfr_before = xfr_blocks();
    let start = Instant::now();
    card.factory_reset().unwrap();
    card.import_keys(&Pin::default_admin(), Some(&sig_key), Some(&dec_key))
        .unwrap();
    card.change_user_pin(&Pin::default_user(), &user).unwrap();
    card.change_admin_pin(&Pin::default_admin(), &admin)
        .unwrap();
    let plain = card.decrypt_message(&user, &cert, &p, &message).unwrap();
    let provisioning = (
        card.apdu_count() - apdus_before,
        xfr_blocks() - xfr_before,
        start.elapsed().as_secs_f64(),
    );
    assert_eq!(plain.as_slice(), b"shard 1 of 3");

    let id = card.identity().unwrap();
    assert_eq!(
        id.decryption_fingerprint.as_deref(),
        Some(dec_key.fingerprint().to_hex().as_str())
    );
    assert_eq!(
        id.signing_fingerprint.as_deref(),
        Some(sig_key.fingerprint().to_hex().as_str())
    );
    assert_eq!((id.retries.user, id.retries.admin), (3, 3));

    // The old default PINs no longer work; the new ones do.
    assert!(card.verify_user_pin(&Pin::default_user()).is_err());
    card.verify_user_pin(&user).unwrap();

    // Signature made on the card, verified by Sequoia; a different text does not verify.
    let sig = card.sign_detached(&user, &cert, &p, b"nonce 42").unwrap();
    verify(&cert, &sig, b"nonce 42").unwrap();
    assert!(verify(&cert, &sig, b"nonce 43").is_err());

    // A message to another certificate is not decryptable by this card.
    let other = encrypt_to(&new_cert(), b"not for you");
    assert!(card.decrypt_message(&user, &cert, &p, &other).is_err());

    // GET CHALLENGE: the requested length, and not the same bytes twice.
    let a = card.get_challenge(32).unwrap();
    let b = card.get_challenge(300).unwrap();
    assert_eq!((a.len(), b.len()), (32, 300));
    assert_ne!(a.as_slice(), &b[..32]);
    provisioning
}

#[test]
fn ceremony_over_each_ccid_exchange_level() {
    for (i, (level, max_message)) in [
        // QEMU 7.2's dwMaxCCIDMessageLength.
        (ExchangeLevel::Tpdu, 0x1_0012),
        (ExchangeLevel::ShortApdu, 271),
        // Small messages force XfrBlock chaining both ways.
        (ExchangeLevel::ExtendedApdu, 10 + 64),
    ]
    .into_iter()
    .enumerate()
    {
        let serial = 0x1000 + i as u32;
        let (reader, state) = emulated_reader(level, max_message, serial);
        let mut card = OpenPgpCard::open(reader).unwrap();
        let (apdus, xfrs, secs) =
            ceremony_flow(&mut card, serial, &|| state.lock().unwrap().xfr_blocks);
        println!(
            "MEASURE level={level}: provisioning (reset, import, PINs, test decrypt) took \
             {apdus} APDUs, {xfrs} XfrBlocks, {secs:.3}s"
        );
        assert!(xfrs >= apdus, "every APDU needs at least one XfrBlock");
    }
}

#[test]
fn ceremony_over_direct_channel() {
    let mut card = OpenPgpCard::open(Direct {
        card: VirtualCard::new(0x2000),
        apdus: 0,
    })
    .unwrap();
    let (apdus, _, secs) = ceremony_flow(&mut card, 0x2000, &|| 0);
    println!("MEASURE direct (extended APDUs, no CCID): provisioning {apdus} APDUs in {secs:.3}s");
}

#[test]
fn wrong_pin_and_retry_guard() {
    let (reader, _state) = emulated_reader(ExchangeLevel::Tpdu, 271, 0x3000);
    let mut card = OpenPgpCard::open(reader).unwrap();
    card.factory_reset().unwrap();
    assert_eq!(card.pin_retries().unwrap().user, 3);

    // One wrong PIN costs exactly one try; the right one restores the counter.
    let wrong = Pin::new("000000").unwrap();
    let e = card.verify_user_pin(&wrong).unwrap_err();
    assert!(matches!(e, Error::WrongPin { left: 2, .. }), "{e}");
    assert!(e.to_string().contains("2 tries left"), "{e}");
    assert_eq!(card.pin_retries().unwrap().user, 2);
    card.verify_user_pin(&Pin::default_user()).unwrap();
    assert_eq!(card.pin_retries().unwrap().user, 3);

    // Two wrong PINs leave one try: the guard now refuses even the right PIN, and the
    // counter stays where it was (nothing was sent).
    assert!(card.verify_user_pin(&wrong).is_err());
    assert!(card.verify_user_pin(&wrong).is_err());
    assert_eq!(card.pin_retries().unwrap().user, 1);
    let e = card.verify_user_pin(&Pin::default_user()).unwrap_err();
    assert!(
        matches!(
            e,
            Error::PinRetriesLow {
                left: 1,
                needed: 2,
                ..
            }
        ),
        "{e}"
    );
    assert!(e.to_string().contains("only 1 tries left"), "{e}");
    assert!(card.change_user_pin(&Pin::default_user(), &wrong).is_err());
    assert_eq!(card.pin_retries().unwrap().user, 1);

    // The admin PIN is guarded the same way, separately.
    let wrong_admin = Pin::new("00000000").unwrap();
    let e = card
        .change_admin_pin(&wrong_admin, &wrong_admin)
        .unwrap_err();
    assert!(matches!(e, Error::WrongPin { left: 2, .. }), "{e:?}");
    assert_eq!(card.pin_retries().unwrap().admin, 2);
    card.set_min_pin_retries(3);
    assert!(matches!(
        card.change_admin_pin(&Pin::default_admin(), &wrong_admin),
        Err(Error::PinRetriesLow {
            left: 2,
            needed: 3,
            ..
        })
    ));
    assert_eq!(card.pin_retries().unwrap().admin, 2);

    // A factory reset recovers the card.
    card.factory_reset().unwrap();
    let r = card.pin_retries().unwrap();
    assert_eq!((r.user, r.admin), (3, 3));
}

#[test]
fn card_removed_and_reinserted() {
    let (mut reader, state) = emulated_reader(ExchangeLevel::Tpdu, 271, 0x4000);
    // Pulled between two commands.
    state.lock().unwrap().remove_card();
    assert_eq!(
        reader.wait_slot_change(std::time::Duration::ZERO).unwrap(),
        Some(false)
    );
    assert!(matches!(
        reader.transmit(&[0, 0xCA, 0, 0x4F, 0]),
        Err(Error::NoCard)
    ));
    assert!(matches!(reader.power_on(), Err(Error::NoCard)));
    state.lock().unwrap().insert_card();
    assert_eq!(
        reader.wait_slot_change(std::time::Duration::ZERO).unwrap(),
        Some(true)
    );
    reader.power_on().unwrap();
    let mut card = OpenPgpCard::open(reader).unwrap();
    assert_eq!(card.identity().unwrap().serial, 0x4000);
}

#[test]
fn reader_unplugged_mid_session() {
    let (reader, state) = emulated_reader(ExchangeLevel::ShortApdu, 271, 0x5000);
    let mut card = OpenPgpCard::open(reader).unwrap();
    card.identity().unwrap();
    state.lock().unwrap().unplugged = true;
    let start = Instant::now();
    let e = card.identity().unwrap_err();
    assert!(e.to_string().contains("disconnected"), "{e}");
    assert!(start.elapsed() < std::time::Duration::from_secs(5));
}

#[test]
fn card_as_entropy_source() {
    use entropy::Source;
    let (reader, _state) = emulated_reader(ExchangeLevel::Tpdu, 271, 0x6000);
    let card = OpenPgpCard::open(reader).unwrap();
    assert_eq!(card.ident(), format!("{TEST_MANUFACTURER:04X}:00006000"));
    let mut source = entropy::CardSource::new(card);
    assert!(source.info().identity.contains("FFFE:00006000"));
    let mut a = [0u8; 600];
    let mut b = [0u8; 600];
    source.fill(&mut a).unwrap();
    source.fill(&mut b).unwrap();
    assert_ne!(a, b);
    assert_ne!(a, [0u8; 600]);
}

#[test]
fn raw_ecdh_matches_software_x25519() {
    let p = StandardPolicy::new();
    let (reader, _state) = emulated_reader(ExchangeLevel::Tpdu, 271, 0x7000);
    let mut card = OpenPgpCard::open(reader).unwrap();
    card.factory_reset().unwrap();
    let cert = new_cert();
    let dec = cert
        .keys()
        .secret()
        .with_policy(&p, None)
        .for_storage_encryption()
        .next()
        .unwrap()
        .key()
        .clone()
        .role_into_unspecified();
    card.import_keys(&Pin::default_admin(), None, Some(&dec))
        .unwrap();
    // The secret as X25519 wants it: OpenPGP stores it big-endian.
    let secret: [u8; 32] = match dec.optional_secret() {
        Some(openpgp::packet::key::SecretKeyMaterial::Unencrypted(u)) => u.map(|s| match s {
            openpgp::crypto::mpi::SecretKeyMaterial::ECDH { scalar } => {
                let mut v: [u8; 32] = scalar.value_padded(32).as_ref().try_into().unwrap();
                v.reverse();
                v
            }
            _ => panic!("not an ECDH secret"),
        }),
        _ => panic!("no secret"),
    };
    let ours = x25519_dalek::StaticSecret::from(secret);
    for seed in [1u8, 2, 3] {
        let eph = x25519_dalek::PublicKey::from(&x25519_dalek::StaticSecret::from([seed; 32]));
        let expected = ours.diffie_hellman(&eph);
        let got = card.ecdh(&Pin::default_user(), eph.as_bytes()).unwrap();
        assert_eq!(&*got, expected.as_bytes());
    }
}

#[test]
fn card_pulled_before_the_notification_is_read() {
    let (reader, state) = emulated_reader(ExchangeLevel::Tpdu, 0x1_0012, 0x8000);
    let mut card = OpenPgpCard::open(reader).unwrap();
    card.identity().unwrap();
    state.lock().unwrap().remove_card();
    let e = card.identity().unwrap_err();
    assert!(e.to_string().contains("no card in the reader"), "{e}");
}

#[test]
fn provision_one_card() {
    let p = StandardPolicy::new();
    let (reader, _state) = emulated_reader(ExchangeLevel::Tpdu, 0x1_0012, 0x9000);
    let mut card = OpenPgpCard::open(reader).unwrap();
    let cert = new_cert();
    let key = |signing: bool| {
        let ka = cert.keys().secret().with_policy(&p, None);
        let k = if signing {
            ka.for_signing().next()
        } else {
            ka.for_storage_encryption().next()
        };
        k.unwrap().key().clone().role_into_unspecified()
    };
    let (sig, dec) = (key(true), key(false));
    let (user, admin) = (Pin::new("918273").unwrap(), Pin::new("56473829").unwrap());
    let report = card
        .provision(&cards::Provision {
            cert: &cert,
            decryption: &dec,
            signing: Some(&sig),
            user_pin: &user,
            admin_pin: &admin,
            policy: &p,
        })
        .unwrap();
    assert_eq!(report.identity.serial, 0x9000);
    assert_eq!(
        report.identity.signing_fingerprint.as_deref(),
        Some(sig.fingerprint().to_hex().as_str())
    );
    assert_eq!(
        (report.identity.retries.user, report.identity.retries.admin),
        (3, 3)
    );
    assert!(report.apdus > 10);
    // The new PINs are in force.
    card.verify_user_pin(&user).unwrap();
    assert!(matches!(
        card.verify_user_pin(&Pin::default_user()),
        Err(Error::WrongPin { .. })
    ));

    // A decryption key that is not in the certificate is refused before the card is
    // touched: the test decryption could not be made.
    let other = new_cert();
    let foreign = other
        .keys()
        .secret()
        .with_policy(&p, None)
        .for_storage_encryption()
        .next()
        .unwrap()
        .key()
        .clone()
        .role_into_unspecified();
    let e = card
        .provision(&cards::Provision {
            cert: &cert,
            decryption: &foreign,
            signing: None,
            user_pin: &user,
            admin_pin: &admin,
            policy: &p,
        })
        .unwrap_err();
    assert!(
        e.to_string()
            .contains("not a valid storage encryption subkey"),
        "{e}"
    );
    card.verify_user_pin(&user).unwrap();
    assert_eq!(
        card.identity().unwrap().decryption_fingerprint.as_deref(),
        Some(dec.fingerprint().to_hex().as_str())
    );
}
