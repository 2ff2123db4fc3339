//! OpenPGP smart cards without pcscd: a CCID reader driver over Linux usbfs and the OpenPGP
//! card operations the ceremony needs.
//!
//! Filled in by the smart-card issue; nothing here yet.
