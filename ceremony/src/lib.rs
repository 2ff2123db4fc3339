//! The ceremony core: plan, keys, Shamir shares, sealing, transcript and verification.
//!
//! Filled in by the ceremony-core issue; nothing here yet.
