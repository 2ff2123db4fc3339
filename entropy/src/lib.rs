//! Hardware entropy sources, SP 800-90B health tests, commit-then-mix, and the DRBG.
//!
//! Filled in by the entropy issue; nothing here yet.
