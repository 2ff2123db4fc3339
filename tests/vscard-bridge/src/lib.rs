//! Test-only: virtual OpenPGP cards (opcard on trussed's RAM platform), T=0 and T=1 card
//! fronts for them, a VSCard bridge serving them to QEMU's `ccid-card-passthru`, and (feature
//! `cards`) a direct APDU channel to them for the card stack, which also makes one a witness's
//! personal card holding a given signing key, and emulated CCID readers presenting real devices'
//! recorded class descriptors (`recorded`).

pub mod bridge;
#[cfg(feature = "cards")]
pub mod direct;
#[cfg(feature = "cards")]
pub mod personal;
#[cfg(feature = "cards")]
pub mod recorded;
pub mod t0;
pub mod t1;
pub mod virtual_card;
pub mod vscard;

pub use t0::T0Card;
pub use t1::T1Card;
pub use virtual_card::{ATR, VirtualCard};
