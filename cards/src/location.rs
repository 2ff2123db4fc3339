//! The ceremony's [`LocationCard`] on a real OpenPGP card: the adapter between the ceremony
//! core (which only knows the trait) and this crate's card operations.

use crate::{Error, OpenPgpCard, Pin};
use ceremony::card::{CardError, CardSerial, LocationCard};
use ceremony::keys::CardImport;
use ceremony::secret::{CardPins, Pin as CeremonyPin, SharedSecret};

fn card_error(e: Error) -> CardError {
    // The PIN guard and retry errors keep their own words; everything else is the device.
    CardError::Device(e.to_string())
}

fn pin(p: &CeremonyPin) -> Result<Pin, CardError> {
    Pin::new(p.expose_secret()).map_err(card_error)
}

impl LocationCard for OpenPgpCard {
    fn serial(&mut self) -> Result<CardSerial, CardError> {
        Ok(CardSerial(self.ident().to_owned()))
    }

    /// Read from the card's key fingerprints, now, on this handle.
    fn holds_keys(&mut self) -> Result<bool, CardError> {
        self.identity()
            .map(|id| id.holds_keys())
            .map_err(card_error)
    }

    /// Factory reset, import of the decryption key with the factory admin PIN, then the admin
    /// and user PINs changed to the ceremony's. If the card is pulled part way, it holds at
    /// most the new key under factory or new PINs: the ceremony reports the card as not
    /// provisioned and resets it again when it comes back.
    fn provision(
        &mut self,
        key: &CardImport<'_>,
        pins: &CardPins,
    ) -> Result<CardSerial, CardError> {
        let admin = pin(&pins.admin)?;
        let user = pin(&pins.user)?;
        self.factory_reset().map_err(card_error)?;
        self.import_keys(
            &Pin::default_admin(),
            None,
            Some(key.sequoia_key.role_as_unspecified()),
        )
        .map_err(card_error)?;
        self.change_admin_pin(&Pin::default_admin(), &admin)
            .map_err(card_error)?;
        self.change_user_pin(&Pin::default_user(), &user)
            .map_err(card_error)?;
        self.serial()
    }

    fn ecdh(
        &mut self,
        user_pin: &CeremonyPin,
        ephemeral_public: &[u8; 32],
    ) -> Result<SharedSecret, CardError> {
        let z = OpenPgpCard::ecdh(self, &pin(user_pin)?, ephemeral_public).map_err(card_error)?;
        Ok(SharedSecret::new(*z))
    }
}
