//! The ceremony's [`PersonalCard`] and [`PersonalDecryptCard`] on a real OpenPGP card: a
//! witness's own card, which signs the transcript, and a share holder's own card, which
//! decrypts their PIN file at a recovery. Nothing on the card is changed; the PIN-retry guard of [`OpenPgpCard`]
//! applies to every PIN presented.

use std::time::SystemTime;

use crate::openpgp::DEFAULT_MIN_PIN_RETRIES;
use crate::{Error, OpenPgpCard, Pin};
use ceremony::card::{CardError, CardSerial, MIN_PIN_RETRIES, PersonalCard, PersonalDecryptCard};
use ceremony::openpgp::policy::StandardPolicy;
use ceremony::openpgp::{Cert, Fingerprint};
use ceremony::secret::{Pin as CeremonyPin, SharedSecret};

// The ceremony core decides when to ask for a PIN by the same margin this crate enforces.
const _: () = assert!(DEFAULT_MIN_PIN_RETRIES == MIN_PIN_RETRIES);

/// The PIN errors keep their meaning (the core asks for another PIN, or stops, by them);
/// everything else is the device's failure, in this crate's words.
fn card_error(e: Error) -> CardError {
    match e {
        Error::WrongPin { left, .. } => CardError::WrongPin { retries_left: left },
        Error::PinRetriesLow { left, needed, .. } => CardError::PinRetriesLow {
            retries_left: left,
            needed,
        },
        e => CardError::Device(e.to_string()),
    }
}

impl PersonalCard for OpenPgpCard {
    fn serial(&mut self) -> Result<CardSerial, CardError> {
        Ok(CardSerial(self.ident().to_owned()))
    }

    fn signing_fingerprint(&mut self) -> Result<Option<Fingerprint>, CardError> {
        let id = self.identity().map_err(card_error)?;
        id.signing_fingerprint
            .map(|hex| {
                Fingerprint::from_hex(&hex).map_err(|e| {
                    CardError::Device(format!("the card's signing fingerprint {hex}: {e}"))
                })
            })
            .transpose()
    }

    fn user_pin_retries(&mut self) -> Result<u8, CardError> {
        Ok(self.pin_retries().map_err(card_error)?.user)
    }

    fn sign_detached(
        &mut self,
        pin: &CeremonyPin,
        cert: &Cert,
        time: SystemTime,
        data: &[u8],
    ) -> Result<Vec<u8>, CardError> {
        let pin = Pin::new(pin.expose_secret()).map_err(card_error)?;
        self.sign_detached_at(&pin, cert, &StandardPolicy::new(), Some(time), data)
            .map_err(card_error)
    }
}

impl PersonalDecryptCard for OpenPgpCard {
    fn serial(&mut self) -> Result<CardSerial, CardError> {
        Ok(CardSerial(self.ident().to_owned()))
    }

    fn decryption_fingerprint(&mut self) -> Result<Option<Fingerprint>, CardError> {
        let id = self.identity().map_err(card_error)?;
        id.decryption_fingerprint
            .map(|hex| {
                Fingerprint::from_hex(&hex).map_err(|e| {
                    CardError::Device(format!("the card's decryption fingerprint {hex}: {e}"))
                })
            })
            .transpose()
    }

    fn user_pin_retries(&mut self) -> Result<u8, CardError> {
        Ok(self.pin_retries().map_err(card_error)?.user)
    }

    fn ecdh(
        &mut self,
        pin: &CeremonyPin,
        ephemeral_public: &[u8; 32],
    ) -> Result<SharedSecret, CardError> {
        let pin = Pin::new(pin.expose_secret()).map_err(card_error)?;
        let z = OpenPgpCard::ecdh(self, &pin, ephemeral_public).map_err(card_error)?;
        Ok(SharedSecret::new(*z))
    }
}
