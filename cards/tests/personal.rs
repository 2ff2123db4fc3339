//! A witness's own OpenPGP card signs a ceremony's transcript through the ceremony core's
//! `PersonalCard`, on the in-process virtual card (opcard) behind the whole card stack: the
//! default PIN, a changed PIN typed by the witness, the retry guard.

mod common;

use std::time::{Duration, UNIX_EPOCH};

use cards::{OpenPgpCard, Pin};
use ceremony::card::{CardError, PersonalCard};
use ceremony::openpgp::Cert;
use ceremony::openpgp::cert::{CertBuilder, CipherSuite};
use ceremony::openpgp::policy::StandardPolicy;
use ceremony::openpgp::serialize::SerializeInto;
use ceremony::plan::Plan;
use ceremony::secret::Pin as CeremonyPin;
use ceremony::witness::{PinRequest, SignError, WitnessSigning};
use common::Direct;
use vscard_bridge::VirtualCard;

const TIME: u64 = 1_795_510_800;

fn personal(name: &str) -> Cert {
    CertBuilder::general_purpose([name])
        .set_cipher_suite(CipherSuite::Cv25519)
        .set_creation_time(UNIX_EPOCH + Duration::from_secs(TIME - 30 * 86_400))
        .set_validity_period(None)
        .generate()
        .unwrap()
        .0
}

fn public(c: &Cert) -> String {
    String::from_utf8(
        c.clone()
            .strip_secret_key_material()
            .armored()
            .to_vec()
            .unwrap(),
    )
    .unwrap()
}

fn plan(holder: &Cert, wendy: &Cert) -> Plan {
    Plan::parse(&format!(
        "format = \"sherd-plan/1\"\nceremony_id = \"cards-witness\"\n\
         time = 2026-11-24T09:00:00Z\nthreshold = 1\nallow_threshold_one = true\n\
         [[holder]]\nname = \"Ann\"\nbackup = \"Ben\"\ncards = 1\ncerts = ['''\n{}''']\n\
         [[holder]]\nname = \"Ben\"\nbackup = \"Ann\"\ncards = 1\ncerts = ['''\n{}''']\n\
         [[witness]]\nname = \"Wendy\"\ncerts = ['''\n{}''']\n",
        public(holder),
        public(&personal("Ben")),
        public(wendy)
    ))
    .unwrap()
}

/// A virtual card holding `cert`'s signing key, PINs at the factory defaults.
fn witness_card(serial: u32, cert: &Cert) -> OpenPgpCard {
    let mut card = OpenPgpCard::open(Direct {
        card: VirtualCard::new(serial),
        apdus: 0,
    })
    .unwrap();
    let p = StandardPolicy::new();
    let key = cert
        .keys()
        .secret()
        .with_policy(&p, None)
        .for_signing()
        .next()
        .unwrap()
        .key()
        .clone()
        .role_into_unspecified();
    card.factory_reset().unwrap();
    card.import_keys(&Pin::default_admin(), Some(&key), None)
        .unwrap();
    card
}

#[test]
fn a_witness_card_signs_the_transcript() {
    let wendy = personal("Wendy");
    let plan = plan(&personal("Ann"), &wendy);
    let transcript = b"sherd-transcript/2\n1 ... (the exact bytes of transcript.txt)\n".to_vec();

    // Default PIN: nothing asked.
    let mut card = witness_card(0x7001, &wendy);
    let p = StandardPolicy::new();
    let on_card = card.signing_fingerprint().unwrap().unwrap();
    assert!(
        wendy
            .keys()
            .with_policy(&p, None)
            .for_signing()
            .any(|k| k.key().fingerprint() == on_card)
    );
    let mut signing = WitnessSigning::new(plan.clone(), transcript.clone());
    let s = signing
        .sign(&mut card, &mut |_| panic!("the default PIN works"))
        .unwrap()
        .clone();
    assert_eq!((s.witness, s.serial.as_str()), (1, card.ident()));
    let by = ceremony::witness::verify_signature(
        &plan.witness_certs[0],
        &transcript,
        &s.signature,
        plan.time_unix,
    )
    .unwrap();
    assert_eq!(by.cert_fingerprint, wendy.fingerprint().to_hex());

    // A changed PIN: the default is refused once, the typed one signs.
    let mut card = witness_card(0x7002, &wendy);
    card.change_user_pin(&Pin::default_user(), &Pin::new("97531864").unwrap())
        .unwrap();
    let mut signing = WitnessSigning::new(plan.clone(), transcript.clone());
    let mut asked = Vec::new();
    signing
        .sign(&mut card, &mut |r: &PinRequest| {
            asked.push((r.retries_left, r.after_wrong_pin));
            Some(CeremonyPin::from_string("97531864".into()))
        })
        .unwrap();
    assert_eq!(asked, [(2, true)]);
    assert_eq!(card.user_pin_retries().unwrap(), 3);

    // A wrong typed PIN leaves one try: the guard refuses, the card is not locked.
    let mut signing = WitnessSigning::new(plan.clone(), transcript.clone());
    let e = signing
        .sign(&mut card, &mut |_| {
            Some(CeremonyPin::from_string("11111111".into()))
        })
        .unwrap_err();
    assert!(
        matches!(
            e,
            SignError::PinRetriesLow {
                retries_left: 1,
                ..
            }
        ),
        "{e}"
    );
    assert_eq!(card.user_pin_retries().unwrap(), 1);
    let e = PersonalCard::sign_detached(
        &mut card,
        &CeremonyPin::from_string("97531864".into()),
        &wendy,
        plan.time(),
        &transcript,
    )
    .unwrap_err();
    assert!(
        matches!(
            e,
            CardError::PinRetriesLow {
                retries_left: 1,
                needed: 2
            }
        ),
        "{e}"
    );

    // A holder's card is nobody's witness card.
    let ann = personal("Ann");
    let plan = self::plan(&ann, &wendy);
    let mut signing = WitnessSigning::new(plan, transcript);
    let e = signing
        .sign(&mut witness_card(0x7003, &ann), &mut |_| None)
        .unwrap_err();
    assert!(matches!(e, SignError::NotAWitnessCard { .. }), "{e}");
}

/// A holder's own card at a recovery: the card's decryption slot is the certificate's
/// encryption subkey, its X25519 agrees with the same key in software (the double the core's
/// tests use), a wrong PIN is counted and the guard stops before the last tries.
#[test]
fn a_holders_card_decrypts_like_the_key_it_holds() {
    use ceremony::card::{PersonalDecryptCard, SoftwarePersonalCard};
    let ann = personal("Ann");
    let p = StandardPolicy::new();
    let enc = ann
        .keys()
        .secret()
        .with_policy(&p, None)
        .for_transport_encryption()
        .next()
        .unwrap()
        .key()
        .clone()
        .role_into_unspecified();
    let mut card = OpenPgpCard::open(Direct {
        card: VirtualCard::new(0x7101),
        apdus: 0,
    })
    .unwrap();
    card.factory_reset().unwrap();
    card.import_keys(&Pin::default_admin(), None, Some(&enc))
        .unwrap();
    let mut soft = SoftwarePersonalCard::new("soft", &ann).unwrap();

    assert_eq!(
        PersonalDecryptCard::decryption_fingerprint(&mut card).unwrap(),
        Some(enc.fingerprint())
    );
    let default = CeremonyPin::from_string("123456".into());
    for point in [[9u8; 32], [0x42; 32]] {
        let on_card = PersonalDecryptCard::ecdh(&mut card, &default, &point).unwrap();
        let in_software = PersonalDecryptCard::ecdh(&mut soft, &default, &point).unwrap();
        assert_eq!(on_card.expose_secret(), in_software.expose_secret());
    }

    let wrong = CeremonyPin::from_string("000000".into());
    assert!(matches!(
        PersonalDecryptCard::ecdh(&mut card, &wrong, &[9; 32]),
        Err(CardError::WrongPin { retries_left: 2 })
    ));
    assert_eq!(PersonalDecryptCard::user_pin_retries(&mut card).unwrap(), 2);
    let _ = PersonalDecryptCard::ecdh(&mut card, &wrong, &[9; 32]);
    assert!(
        PersonalDecryptCard::ecdh(&mut card, &default, &[9; 32]).is_err(),
        "one try left: the guard refuses before presenting the PIN"
    );
    assert_eq!(PersonalDecryptCard::user_pin_retries(&mut card).unwrap(), 1);
}
