//! Where a location key lives: an OpenPGP card behind a small trait; and a witness's own
//! personal card, which signs the transcript, behind another.
//!
//! The `cards` crate provides the real operations (factory reset, key import, PIN setup, card
//! ECDH, signing) and the adapters to [`LocationCard`] and [`PersonalCard`]. [`SoftwareCard`]
//! stands in for a location card in tests and rehearsals: it keeps the key in memory and behaves
//! like a card (PIN check with a retry counter, ECDH only). [`SoftwarePersonalCard`] does the
//! same for a personal card (PIN check with the retry counter and the card stack's retry guard,
//! signing only).

use std::time::SystemTime;

use sequoia_openpgp as openpgp;

use openpgp::Cert;
use openpgp::Fingerprint;
use openpgp::packet::Key;
use openpgp::packet::key::{SecretParts, UnspecifiedRole};
use openpgp::policy::StandardPolicy;
use openpgp::serialize::stream::{Message, Signer};

use crate::keys::CardImport;
use crate::secret::{CardPins, Pin, SharedSecret};

/// The factory default user PIN (PW1) of an OpenPGP card. Personal cards keep it (the threat
/// model says so), so it is tried first when a witness's card signs.
pub const DEFAULT_USER_PIN: &str = "123456";

/// A PIN is never presented to a card with fewer tries left than this: one mistake then still
/// leaves a try, so a typo never locks a card. The same margin as the card stack's guard
/// (`cards::openpgp::DEFAULT_MIN_PIN_RETRIES`).
pub const MIN_PIN_RETRIES: u8 = 2;

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
    /// The PIN was not presented: the card has fewer tries left than [`MIN_PIN_RETRIES`], and
    /// one more mistake could lock it.
    #[error(
        "refusing to present the user PIN: only {retries_left} tries left and at least {needed} are required, so a mistake cannot lock the card; unblock the card with its admin PIN or reset code first"
    )]
    PinRetriesLow {
        /// User-PIN tries left, as the card reports it.
        retries_left: u8,
        /// Tries the guard requires before presenting a PIN.
        needed: u8,
    },
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

/// A software card's PIN check, as a card does it: a wrong PIN costs a try, the right one
/// restores all three.
fn present_pin(stored: &Pin, given: &Pin, retries_left: &mut u8) -> Result<(), CardError> {
    if !ct_eq(
        stored.expose_secret().as_bytes(),
        given.expose_secret().as_bytes(),
    ) {
        *retries_left = retries_left.saturating_sub(1);
        return Err(CardError::WrongPin {
            retries_left: *retries_left,
        });
    }
    *retries_left = 3;
    Ok(())
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
        present_pin(&state.user_pin, user_pin, &mut state.retries_left)?;
        let shared = state
            .secret
            .diffie_hellman(&x25519_dalek::PublicKey::from(*ephemeral_public));
        Ok(SharedSecret::new(shared.to_bytes()))
    }
}

/// The operations the ceremony needs from a person's own OpenPGP card (a witness's): which
/// signing key it holds, and a detached signature by it. Nothing on the card is changed.
pub trait PersonalCard {
    /// Reads the card's serial number (`MMMM:SSSSSSSS`, as GnuPG shows it).
    fn serial(&mut self) -> Result<CardSerial, CardError>;

    /// The fingerprint of the key in the card's signing slot, read from the card now; `None`
    /// for an empty slot.
    fn signing_fingerprint(&mut self) -> Result<Option<Fingerprint>, CardError>;

    /// User-PIN tries left, read from the card now (not a cached value).
    fn user_pin_retries(&mut self) -> Result<u8, CardError>;

    /// Presents the user PIN for signing (refused with [`CardError::PinRetriesLow`], the PIN
    /// not presented, when fewer than [`MIN_PIN_RETRIES`] tries are left) and makes a binary
    /// detached OpenPGP signature over `data` with the card's signing key, which must be a
    /// signing key of `cert` valid at `time`; the signature's creation time is `time`. A
    /// refused PIN is [`CardError::WrongPin`] with the tries left.
    fn sign_detached(
        &mut self,
        pin: &Pin,
        cert: &Cert,
        time: SystemTime,
        data: &[u8],
    ) -> Result<Vec<u8>, CardError>;
}

/// An in-memory stand-in for a person's OpenPGP card, for tests and rehearsals: a signing key
/// with its secret, a user PIN (the factory default unless set), a retry counter of 3 and the
/// card stack's retry guard.
pub struct SoftwarePersonalCard {
    serial: CardSerial,
    key: Option<Key<SecretParts, UnspecifiedRole>>,
    decryption: Option<(Fingerprint, x25519_dalek::StaticSecret)>,
    user_pin: Pin,
    retries_left: u8,
}

impl SoftwarePersonalCard {
    /// A card holding `cert`'s (first valid) signing key, which must have its secret, with the
    /// factory default user PIN. `None` if `cert` has no such key.
    pub fn new(serial: &str, cert: &Cert) -> Option<Self> {
        let policy = StandardPolicy::new();
        let key = cert
            .keys()
            .secret()
            .with_policy(&policy, None)
            .for_signing()
            .next()?
            .key()
            .clone()
            .role_into_unspecified();
        Some(Self {
            serial: CardSerial(serial.to_string()),
            key: Some(key),
            decryption: software_decryption_key(cert),
            user_pin: Pin::from_string(DEFAULT_USER_PIN.to_string()),
            retries_left: 3,
        })
    }

    /// A card with an empty signing slot.
    pub fn empty(serial: &str) -> Self {
        Self {
            serial: CardSerial(serial.to_string()),
            key: None,
            decryption: None,
            user_pin: Pin::from_string(DEFAULT_USER_PIN.to_string()),
            retries_left: 3,
        }
    }

    /// The same card with its user PIN changed to `pin`.
    pub fn with_user_pin(mut self, pin: Pin) -> Self {
        self.user_pin = pin;
        self
    }

    /// The same card with `n` user-PIN tries left.
    pub fn with_retries_left(mut self, n: u8) -> Self {
        self.retries_left = n;
        self
    }

    /// User-PIN tries left.
    pub fn retries_left(&self) -> u8 {
        self.retries_left
    }
}

impl PersonalCard for SoftwarePersonalCard {
    fn serial(&mut self) -> Result<CardSerial, CardError> {
        Ok(self.serial.clone())
    }

    fn signing_fingerprint(&mut self) -> Result<Option<Fingerprint>, CardError> {
        Ok(self.key.as_ref().map(|k| k.fingerprint()))
    }

    fn user_pin_retries(&mut self) -> Result<u8, CardError> {
        Ok(self.retries_left)
    }

    fn sign_detached(
        &mut self,
        pin: &Pin,
        cert: &Cert,
        time: SystemTime,
        data: &[u8],
    ) -> Result<Vec<u8>, CardError> {
        if self.retries_left < MIN_PIN_RETRIES {
            return Err(CardError::PinRetriesLow {
                retries_left: self.retries_left,
                needed: MIN_PIN_RETRIES,
            });
        }
        present_pin(&self.user_pin, pin, &mut self.retries_left)?;
        let key = self
            .key
            .as_ref()
            .ok_or_else(|| CardError::Device("the card holds no signing key".into()))?;
        // As a real card's adapter does: the key must be a signing key of `cert` at `time`.
        let policy = StandardPolicy::new();
        if !cert
            .keys()
            .with_policy(&policy, time)
            .for_signing()
            .any(|k| k.key().fingerprint() == key.fingerprint())
        {
            return Err(CardError::Device(format!(
                "the card's signing key {} is not a signing key of {}",
                key.fingerprint(),
                cert.fingerprint()
            )));
        }
        let signer = key
            .clone()
            .into_keypair()
            .map_err(|e| CardError::Device(format!("signing: {e}")))?;
        let mut sig = Vec::new();
        let fail = |e: openpgp::anyhow::Error| CardError::Device(format!("signing: {e}"));
        {
            let m = Message::new(&mut sig);
            let mut s = Signer::new(m, signer)
                .map_err(fail)?
                .creation_time(time)
                .detached()
                .build()
                .map_err(fail)?;
            std::io::Write::write_all(&mut s, data)
                .map_err(|e| CardError::Device(format!("signing: {e}")))?;
            s.finalize().map_err(fail)?;
        }
        Ok(sig)
    }
}

/// What a recovery needs from a holder's (or the backup holder's) personal OpenPGP card: the
/// X25519 of its decryption slot, which opens the holder's PIN file. Nothing on the card is
/// changed. A real card implements it with the same card ECDH a location card uses.
pub trait PersonalDecryptCard {
    /// Reads the card's serial number.
    fn serial(&mut self) -> Result<CardSerial, CardError>;

    /// The fingerprint of the key in the card's decryption slot, read from the card now;
    /// `None` for an empty slot.
    fn decryption_fingerprint(&mut self) -> Result<Option<Fingerprint>, CardError>;

    /// User-PIN tries left, read from the card now.
    fn user_pin_retries(&mut self) -> Result<u8, CardError>;

    /// Presents the user PIN (refused with [`CardError::PinRetriesLow`], the PIN not presented,
    /// when fewer than [`MIN_PIN_RETRIES`] tries are left) and performs X25519 between the
    /// decryption key and `ephemeral_public` (bare 32 bytes, as [`LocationCard::ecdh`]).
    fn ecdh(&mut self, pin: &Pin, ephemeral_public: &[u8; 32]) -> Result<SharedSecret, CardError>;
}

/// The Cv25519 transport-encryption key of `cert` with its secret, as a card would hold it.
fn software_decryption_key(cert: &Cert) -> Option<(Fingerprint, x25519_dalek::StaticSecret)> {
    use openpgp::crypto::mpi;
    let policy = StandardPolicy::new();
    let ka = cert
        .keys()
        .secret()
        .with_policy(&policy, None)
        .for_transport_encryption()
        .next()?;
    let key = ka.key();
    let public: [u8; 32] = match key.mpis() {
        mpi::PublicKey::ECDH { q, .. } => match q.value() {
            [0x40, rest @ ..] => rest.try_into().ok()?,
            _ => return None,
        },
        _ => return None,
    };
    let scalar: zeroize::Zeroizing<Vec<u8>> = match key.optional_secret()? {
        openpgp::packet::key::SecretKeyMaterial::Unencrypted(u) => u.map(|m| match m {
            mpi::SecretKeyMaterial::ECDH { scalar } => {
                zeroize::Zeroizing::new(scalar.value_padded(32).to_vec())
            }
            _ => zeroize::Zeroizing::new(Vec::new()),
        }),
        _ => return None,
    };
    let mut bytes: [u8; 32] = scalar.as_slice().try_into().ok()?;
    // OpenPGP stores the Cv25519 scalar in reverse byte order; take whichever order gives the
    // public key.
    for _ in 0..2 {
        let secret = x25519_dalek::StaticSecret::from(bytes);
        if x25519_dalek::PublicKey::from(&secret).to_bytes() == public {
            zeroize::Zeroize::zeroize(&mut bytes);
            return Some((key.fingerprint(), secret));
        }
        bytes.reverse();
    }
    zeroize::Zeroize::zeroize(&mut bytes);
    None
}

impl PersonalDecryptCard for SoftwarePersonalCard {
    fn serial(&mut self) -> Result<CardSerial, CardError> {
        Ok(self.serial.clone())
    }

    fn decryption_fingerprint(&mut self) -> Result<Option<Fingerprint>, CardError> {
        Ok(self.decryption.as_ref().map(|(f, _)| f.clone()))
    }

    fn user_pin_retries(&mut self) -> Result<u8, CardError> {
        Ok(self.retries_left)
    }

    fn ecdh(&mut self, pin: &Pin, ephemeral_public: &[u8; 32]) -> Result<SharedSecret, CardError> {
        if self.retries_left < MIN_PIN_RETRIES {
            return Err(CardError::PinRetriesLow {
                retries_left: self.retries_left,
                needed: MIN_PIN_RETRIES,
            });
        }
        present_pin(&self.user_pin, pin, &mut self.retries_left)?;
        let (_, secret) = self
            .decryption
            .as_ref()
            .ok_or_else(|| CardError::Device("the card holds no decryption key".into()))?;
        let shared = secret.diffie_hellman(&x25519_dalek::PublicKey::from(*ephemeral_public));
        Ok(SharedSecret::new(shared.to_bytes()))
    }
}
