//! Errors of the card stack. Each says what went wrong and, where there is one, what to do.

use std::time::Duration;

/// Errors from the reader driver and the card operations.
#[derive(thiserror::Error, Debug)]
#[non_exhaustive]
pub enum Error {
    /// The USB transfer failed (not a timeout, not a disconnect).
    #[error("USB transfer to the reader failed: {0}")]
    Usb(String),

    /// The reader went away (unplugged or reset) during an operation.
    #[error("the reader was disconnected; plug it in again and retry")]
    Disconnected,

    /// No answer within the bounded time.
    #[error("the reader did not answer {what} within {after:?}; unplug and replug it")]
    Timeout { what: &'static str, after: Duration },

    /// The reader's class descriptor is unusable.
    #[error("unusable CCID class descriptor: {0}")]
    Descriptor(String),

    /// The reader broke the CCID protocol.
    #[error("CCID protocol violation: {0}")]
    Protocol(String),

    /// The reader cannot do what this driver needs.
    #[error("unsupported reader: {0}")]
    Unsupported(String),

    /// No card in the slot.
    #[error("no card in the reader; insert a card")]
    NoCard,

    /// The reader reported that the slot command failed.
    #[error("the reader reported slot error {code:#04x} ({meaning}) during {during}")]
    Slot {
        code: u8,
        meaning: &'static str,
        during: &'static str,
    },

    /// A command APDU given to the driver is malformed.
    #[error("malformed command APDU: {0}")]
    BadApdu(String),

    /// The card's answers do not follow ISO 7816-4.
    #[error("card protocol violation: {0}")]
    Card(String),

    /// The card answered with a status word that is an error.
    #[error("the card answered {sw1:02X}{sw2:02X} to {during}: {meaning}")]
    Status {
        sw1: u8,
        sw2: u8,
        during: &'static str,
        meaning: &'static str,
    },

    /// Refused to present a PIN: too few retries left.
    #[error(
        "refusing to present the {pin}: only {left} tries left and at least {needed} are \
         required, so a mistake cannot lock the card. Reset the card or use another one"
    )]
    PinRetriesLow {
        pin: &'static str,
        left: u8,
        needed: u8,
    },

    /// The card refused a PIN.
    #[error(
        "the card refused the {pin}: {left} tries left{}",
        if *left == 0 { "; it is blocked now, only a factory reset recovers the card" } else { "" }
    )]
    WrongPin { pin: &'static str, left: u8 },

    /// A key or message does not fit what the card stores.
    #[error("{0}")]
    Key(String),

    /// From the openpgp-card crate.
    #[error("OpenPGP card operation failed: {0}")]
    OpenPgpCard(#[from] openpgp_card::Error),

    /// openpgp-card gave up halfway through an operation with a panic (0.7 does when the card
    /// stops answering at some points, e.g. pulled out). The panic was caught; this card handle
    /// is not used again (every later call returns this error with the first `during`), and a
    /// new one is opened once the card is back. Nothing of the ceremony is lost: the
    /// operation runs again from its start.
    #[error(
        "the card stopped answering properly during {during}; take the card out and insert it \
         again, then repeat this step (nothing was lost)"
    )]
    Interrupted {
        /// The operation that was cut short.
        during: &'static str,
        /// The panic's message (for logs; not for the operator).
        detail: String,
    },

    /// From Sequoia.
    #[error("OpenPGP error: {0}")]
    Sequoia(#[from] sequoia_openpgp::anyhow::Error),

    /// A sysfs read failed during discovery.
    #[error("reading {path} failed: {source}")]
    Sysfs {
        path: String,
        source: std::io::Error,
    },
}

impl From<Error> for card_backend::SmartcardError {
    fn from(e: Error) -> Self {
        match e {
            Error::NoCard => card_backend::SmartcardError::CardNotFound(e.to_string()),
            other => card_backend::SmartcardError::Error(other.to_string()),
        }
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;
