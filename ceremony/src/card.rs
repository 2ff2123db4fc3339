//! Where a location key lives: an OpenPGP card behind a small trait.
//!
//! The `cards` crate provides the real operations (factory reset, key import, PIN setup, card
//! ECDH); the lead writes the adapter to [`LocationCard`]. [`SoftwareCard`] stands in for a card
//! in tests and rehearsals: it keeps the key in memory and behaves like a card (PIN check with a
//! retry counter, ECDH only).

use crate::keys::CardImport;
use crate::secret::{CardPins, Pin, SharedSecret};

/// A card's serial number as the card reports it (public).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct CardSerial(pub String);

impl std::fmt::Display for CardSerial {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// What went wrong with a card.
#[derive(Debug, thiserror::Error, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum CardError {
    /// The card rejected the user PIN and decremented its retry counter.
    #[error("the card refused the PIN ({retries_left} tries left)")]
    WrongPin {
        /// User-PIN tries left before the card blocks, as the card reports it.
        retries_left: u8,
    },
    /// The user-PIN retry counter is exhausted: the card refuses to decrypt until it is
    /// unblocked with the admin PIN or factory-reset.
    #[error("the card is blocked: too many wrong PINs; it needs the admin PIN or a factory reset")]
    Blocked,
    /// The card has no decryption key (never provisioned, or reset since).
    #[error("the card holds no decryption key: provision it first")]
    NotProvisioned,
    /// Any other card or reader failure, including a card that misbehaved while being
    /// provisioned; the text is the device layer's description.
    #[error("the card or reader failed: {0}")]
    Device(String),
}

/// The operations the ceremony needs from a location card.
pub trait LocationCard {
    /// Reads the card's serial number (before anything is changed on it).
    fn serial(&mut self) -> Result<CardSerial, CardError>;

    /// Whether the card holds any key now (read from the card, not remembered): a card that
    /// does is never reset unless this ceremony started on it.
    fn holds_keys(&mut self) -> Result<bool, CardError>;

    /// Factory-resets a blank card, imports `key` as its decryption key (Cv25519, with the
    /// fingerprint and creation time given), sets the user and admin PINs, and returns the
    /// card's serial number.
    fn provision(&mut self, key: &CardImport<'_>, pins: &CardPins)
    -> Result<CardSerial, CardError>;

    /// Presents the user PIN and performs X25519 between the card's decryption key and
    /// `ephemeral_public` (RFC 7748 byte order, without the 0x40 prefix OpenPGP puts in front).
    fn ecdh(
        &mut self,
        user_pin: &Pin,
        ephemeral_public: &[u8; 32],
    ) -> Result<SharedSecret, CardError>;
}

/// An in-memory stand-in for a location card, for tests and rehearsals.
pub struct SoftwareCard {
    serial: CardSerial,
    state: Option<SoftwareCardState>,
}

struct SoftwareCardState {
    secret: x25519_dalek::StaticSecret,
    user_pin: Pin,
    retries_left: u8,
}

impl SoftwareCard {
    /// A blank card with the given serial.
    pub fn new(serial: &str) -> Self {
        Self {
            serial: CardSerial(serial.to_string()),
            state: None,
        }
    }
}

fn ct_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

impl LocationCard for SoftwareCard {
    fn serial(&mut self) -> Result<CardSerial, CardError> {
        Ok(self.serial.clone())
    }

    fn holds_keys(&mut self) -> Result<bool, CardError> {
        Ok(self.state.is_some())
    }

    fn provision(
        &mut self,
        key: &CardImport<'_>,
        pins: &CardPins,
    ) -> Result<CardSerial, CardError> {
        let secret = x25519_dalek::StaticSecret::from(*key.x25519_secret);
        if x25519_dalek::PublicKey::from(&secret).to_bytes() != key.x25519_public {
            return Err(CardError::Device(
                "imported key does not match its public key".into(),
            ));
        }
        self.state = Some(SoftwareCardState {
            secret,
            user_pin: Pin::from_string(pins.user.expose_secret().to_string()),
            retries_left: 3,
        });
        Ok(self.serial.clone())
    }

    fn ecdh(
        &mut self,
        user_pin: &Pin,
        ephemeral_public: &[u8; 32],
    ) -> Result<SharedSecret, CardError> {
        let state = self.state.as_mut().ok_or(CardError::NotProvisioned)?;
        if state.retries_left == 0 {
            return Err(CardError::Blocked);
        }
        if !ct_eq(
            state.user_pin.expose_secret().as_bytes(),
            user_pin.expose_secret().as_bytes(),
        ) {
            state.retries_left -= 1;
            return Err(CardError::WrongPin {
                retries_left: state.retries_left,
            });
        }
        state.retries_left = 3;
        let shared = state
            .secret
            .diffie_hellman(&x25519_dalek::PublicKey::from(*ephemeral_public));
        Ok(SharedSecret::new(shared.to_bytes()))
    }
}
