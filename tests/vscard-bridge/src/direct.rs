//! A virtual card straight behind the card stack's APDU channel, with no CCID reader in
//! between: for the rehearsal and for tests that need a card but not a reader.

use std::sync::Arc;

use crate::VirtualCard;

/// The APDU channel to `card`: extended APDUs, each command counted.
pub struct Direct {
    card: Arc<VirtualCard>,
    apdus: u64,
}

impl Direct {
    /// A channel to `card`; the card outlives the channel (it can be opened again later).
    pub fn new(card: Arc<VirtualCard>) -> Self {
        Direct { card, apdus: 0 }
    }
}

impl cards::ApduChannel for Direct {
    fn transmit(&mut self, apdu: &[u8]) -> cards::Result<Vec<u8>> {
        self.apdus += 1;
        Ok(self.card.transmit(apdu))
    }
    fn extended_apdus(&self) -> bool {
        true
    }
    fn apdu_count(&self) -> u64 {
        self.apdus
    }
}
