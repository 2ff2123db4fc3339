#![forbid(unsafe_code)]
//! OpenPGP smart cards without pcscd: a CCID reader driver over Linux usbfs, reader discovery
//! by polling sysfs, and the OpenPGP card operations a sherd ceremony needs.
//!
//! Layers, bottom up:
//! - [`ccid`]: CCID message framing and the class descriptor (pure).
//! - [`apdu`]: APDU parsing, T=0 TPDU mapping, GET RESPONSE / 6Cxx, chaining (pure).
//! - [`t1`]: the ISO 7816-3 T=1 block protocol for TPDU readers (pure).
//! - [`reader`]: one reader slot over a [`reader::Transport`], every wait bounded.
//! - [`usb`]: the usbfs transport (nusb) and [`discovery`] of readers through sysfs.
//! - [`backend`]: `card_backend::CardBackend` for openpgp-card.
//! - [`openpgp`]: identity, reset, PINs, key import, decryption, signing, GET CHALLENGE,
//!   with the glue to Sequoia in [`glue`].

pub mod apdu;
pub mod backend;
pub mod ccid;
pub mod discovery;
pub mod error;
pub mod glue;
pub mod location;
pub mod openpgp;
pub mod personal;
pub mod reader;
pub mod t1;
pub mod usb;

pub use backend::{ApduChannel, SharedCard};
pub use error::{Error, Result};
pub use openpgp::{CardIdentity, OpenPgpCard, Pin, PinRetries, Provision, ProvisionReport};
