//! `card_backend::CardBackend` over any APDU channel (a CCID reader slot in production, the
//! in-process virtual card in tests), shared so that commands openpgp-card has no API for
//! (GET CHALLENGE) go through the same channel.

use std::sync::{Arc, Mutex};

use card_backend::{CardBackend, CardCaps, CardTransaction, PinType, SmartcardError};

use crate::error::{Error, Result};
use crate::reader::{Reader, Transport};

/// Something that carries command APDUs to one card and returns complete responses
/// (data + SW1 SW2, GET RESPONSE already followed).
pub trait ApduChannel: Send {
    fn transmit(&mut self, apdu: &[u8]) -> Result<Vec<u8>>;
    /// Whether an extended-length APDU can be sent as is. If not, the OpenPGP layer is told
    /// to use short APDUs with command chaining.
    fn extended_apdus(&self) -> bool;
    /// APDUs carried so far (for measurements).
    fn apdu_count(&self) -> u64;
    /// The longest answer (data + SW) one command can bring, when less than a short APDU's
    /// 258 bytes (a reader with small messages); `None`: no such limit.
    fn max_answer(&self) -> Option<usize> {
        None
    }
}

impl<T: Transport> ApduChannel for Reader<T> {
    fn transmit(&mut self, apdu: &[u8]) -> Result<Vec<u8>> {
        Reader::transmit(self, apdu)
    }

    fn extended_apdus(&self) -> bool {
        self.exchange_level() == crate::ccid::ExchangeLevel::ExtendedApdu
    }

    fn apdu_count(&self) -> u64 {
        self.stats().apdus
    }

    fn max_answer(&self) -> Option<usize> {
        Reader::max_answer(self)
    }
}

/// A cloneable handle on one card's channel.
#[derive(Clone)]
pub struct SharedCard(Arc<Mutex<Box<dyn ApduChannel>>>);

impl SharedCard {
    pub fn new(channel: impl ApduChannel + 'static) -> Self {
        Self(Arc::new(Mutex::new(Box::new(channel))))
    }

    pub fn transmit(&self, apdu: &[u8]) -> Result<Vec<u8>> {
        self.lock()?.transmit(apdu)
    }

    pub fn apdu_count(&self) -> u64 {
        self.lock().map(|c| c.apdu_count()).unwrap_or(0)
    }

    fn extended_apdus(&self) -> bool {
        self.lock().map(|c| c.extended_apdus()).unwrap_or(false)
    }

    /// See [`ApduChannel::max_answer`].
    pub fn max_answer(&self) -> Option<usize> {
        self.lock().ok().and_then(|c| c.max_answer())
    }

    fn lock(&self) -> Result<std::sync::MutexGuard<'_, Box<dyn ApduChannel>>> {
        // A panic while holding the lock leaves the card in an unknown state.
        self.0.lock().map_err(|_| {
            Error::Card("an earlier card operation panicked; reinsert the card".into())
        })
    }
}

impl CardBackend for SharedCard {
    fn limit_card_caps(&self, caps: CardCaps) -> CardCaps {
        if self.extended_apdus() {
            caps
        } else {
            CardCaps::new(
                false,
                caps.chaining_support(),
                caps.max_cmd_bytes().min(255),
                caps.max_rsp_bytes().min(256),
                caps.pw1_max_len(),
                caps.pw3_max_len(),
            )
        }
    }

    fn transaction(
        &mut self,
        reselect_application: Option<&[u8]>,
    ) -> Result<Box<dyn CardTransaction + Send + Sync + '_>, SmartcardError> {
        // Our channel is exclusive to this process (no pcscd to share it with), so nobody
        // else can have changed the selected application between transactions.
        let _ = reselect_application;
        Ok(Box::new(SharedTransaction(self.clone())))
    }
}

struct SharedTransaction(SharedCard);

impl CardTransaction for SharedTransaction {
    fn transmit(&mut self, cmd: &[u8], _buf_size: usize) -> Result<Vec<u8>, SmartcardError> {
        Ok(self.0.transmit(cmd)?)
    }

    fn feature_pinpad_verify(&self) -> bool {
        false
    }

    fn feature_pinpad_modify(&self) -> bool {
        false
    }

    fn pinpad_verify(
        &mut self,
        _pin: PinType,
        _card_caps: &Option<CardCaps>,
    ) -> Result<Vec<u8>, SmartcardError> {
        Err(SmartcardError::Error(
            "PIN pads are not supported: sherd generates PINs and sends them itself".into(),
        ))
    }

    fn pinpad_modify(
        &mut self,
        _pin: PinType,
        _card_caps: &Option<CardCaps>,
    ) -> Result<Vec<u8>, SmartcardError> {
        Err(SmartcardError::Error(
            "PIN pads are not supported: sherd generates PINs and sends them itself".into(),
        ))
    }

    fn was_reset(&self) -> bool {
        false
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Fake {
        extended: bool,
        sent: Vec<Vec<u8>>,
    }

    impl ApduChannel for Fake {
        fn transmit(&mut self, apdu: &[u8]) -> Result<Vec<u8>> {
            self.sent.push(apdu.to_vec());
            Ok(vec![0x90, 0x00])
        }
        fn extended_apdus(&self) -> bool {
            self.extended
        }
        fn apdu_count(&self) -> u64 {
            self.sent.len() as u64
        }
    }

    #[test]
    fn short_only_channels_limit_the_card_caps() {
        let caps = CardCaps::new(true, true, 2048, 2048, 127, 127);
        let short = SharedCard::new(Fake {
            extended: false,
            sent: vec![],
        });
        let limited = short.limit_card_caps(caps);
        assert!(!limited.ext_support());
        assert!(limited.chaining_support());
        assert_eq!(
            (limited.max_cmd_bytes(), limited.max_rsp_bytes()),
            (255, 256)
        );
        let ext = SharedCard::new(Fake {
            extended: true,
            sent: vec![],
        });
        assert!(ext.limit_card_caps(caps).ext_support());
    }

    #[test]
    fn transactions_share_one_channel() {
        let mut card = SharedCard::new(Fake {
            extended: false,
            sent: vec![],
        });
        let other = card.clone();
        let mut tx = card.transaction(None).unwrap();
        assert_eq!(
            tx.transmit(&[0, 0xCA, 0, 0x4F, 0], 256).unwrap(),
            [0x90, 0x00]
        );
        assert!(!tx.feature_pinpad_verify());
        assert!(tx.pinpad_verify(PinType::User, &None).is_err());
        drop(tx);
        other.transmit(&[0, 0x84, 0, 0, 8]).unwrap();
        assert_eq!(card.apdu_count(), 2);
    }
}
