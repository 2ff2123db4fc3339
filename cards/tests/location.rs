//! The ceremony's `LocationCard` trait on a real OpenPGP card (the in-process virtual card):
//! provisioning sets the ceremony's PINs and key, card ECDH agrees with software X25519, and a
//! card whose provisioning was cut short is provisioned cleanly the next time.

mod common;

use cards::{OpenPgpCard, Pin};
use ceremony::card::LocationCard;
use ceremony::keys::LocationKey;
use ceremony::secret::{CardPins, Pin as CeremonyPin};
use common::Direct;
use vscard_bridge::VirtualCard;

struct Counter(u8);
impl ceremony::rng::SecretRng for Counter {
    fn fill(&mut self, out: &mut [u8]) {
        for b in out {
            self.0 = self.0.wrapping_mul(73).wrapping_add(41);
            *b = self.0;
        }
    }
}

fn card(serial: u32) -> OpenPgpCard {
    OpenPgpCard::open(Direct {
        card: VirtualCard::new(serial),
        apdus: 0,
    })
    .unwrap()
}

fn x25519_public(secret: &[u8; 32]) -> [u8; 32] {
    x25519_dalek::PublicKey::from(&x25519_dalek::StaticSecret::from(*secret)).to_bytes()
}

#[test]
fn provision_sets_key_and_pins_and_ecdh_agrees() {
    let mut rng = Counter(7);
    let key = LocationKey::generate(&mut rng, "test", 1, "Alice", 1_795_510_800).unwrap();
    let pins = CardPins::generate(&mut rng);
    let mut c = card(0x3100);
    let serial = LocationCard::serial(&mut c).unwrap();
    assert_eq!(serial.0, c.ident());
    let got = LocationCard::provision(&mut c, &key.card_import(), &pins).unwrap();
    assert_eq!(got, serial);

    let id = c.identity().unwrap();
    let import = key.card_import();
    assert_eq!(
        id.decryption_fingerprint
            .as_deref()
            .map(str::to_ascii_uppercase),
        Some(
            import
                .fingerprint
                .iter()
                .map(|b| format!("{b:02X}"))
                .collect::<String>()
        )
    );
    // The factory PINs no longer work (one try spent of three, above the guard's margin).
    assert!(c.verify_user_pin(&Pin::default_user()).is_err());
    assert_eq!(c.pin_retries().unwrap().user, 2);

    // Card ECDH equals software X25519 between an ephemeral key and the location key.
    let eph_secret = [0x42u8; 32];
    let eph_public = x25519_public(&eph_secret);
    let on_card = LocationCard::ecdh(&mut c, &pins.user, &eph_public).unwrap();
    let soft = x25519_dalek::StaticSecret::from(eph_secret)
        .diffie_hellman(&x25519_dalek::PublicKey::from(import.x25519_public));
    assert_eq!(on_card.expose_secret(), soft.as_bytes());

    // A wrong PIN is refused by the card and reported, not retried.
    let wrong = CeremonyPin::from_string("000000000000".into());
    assert!(LocationCard::ecdh(&mut c, &wrong, &eph_public).is_err());
}

#[test]
fn a_card_with_keys_from_an_interrupted_run_is_provisioned_again() {
    let mut rng = Counter(9);
    let first = LocationKey::generate(&mut rng, "test", 1, "Alice", 1_795_510_800).unwrap();
    let second = LocationKey::generate(&mut rng, "test", 1, "Alice", 1_795_510_800).unwrap();
    let mut c = card(0x3101);
    // An interrupted run left a key under the factory PINs.
    c.import_keys(
        &Pin::default_admin(),
        None,
        Some(first.card_import().sequoia_key.role_as_unspecified()),
    )
    .unwrap();
    let pins = CardPins::generate(&mut rng);
    LocationCard::provision(&mut c, &second.card_import(), &pins).unwrap();
    let eph_public = x25519_public(&[5u8; 32]);
    let on_card = LocationCard::ecdh(&mut c, &pins.user, &eph_public).unwrap();
    let soft = x25519_dalek::StaticSecret::from([5u8; 32]).diffie_hellman(
        &x25519_dalek::PublicKey::from(second.card_import().x25519_public),
    );
    assert_eq!(on_card.expose_secret(), soft.as_bytes());
}
