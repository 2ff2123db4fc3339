#![forbid(unsafe_code)]
//! Releases of sherd that several parties can rebuild, sign and check: the release manifest as
//! read back, the builders file, detached attestations over the manifest, k-of-n verification,
//! rebuild-and-compare, and the stagex pipeline's correspondence with the native one.

pub mod attest;
pub mod builders;
pub mod pipeline;
pub mod rebuild;
pub mod release;
pub mod steps;

/// Errors are sentences for the person running the command: what was wrong and what to do.
pub type Result<T> = std::result::Result<T, String>;
