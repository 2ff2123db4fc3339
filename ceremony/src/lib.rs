#![forbid(unsafe_code)]
#![warn(missing_docs)]
//! The ceremony core of sherd: plan, keys, Shamir shares, sealing, recombination, transcript,
//! output writing and offline verification.
//!
//! No UI and no device I/O of its own: randomness comes through [`rng::SecretRng`], cards through
//! [`card::LocationCard`], removable storage through [`storage::Volume`]. Secret values live in
//! wrapper types that do not implement `Debug`, `Display` or `Clone` and are zeroized on drop
//! (see [`secret`]); everything a screen may show is plain public data.
//!
//! Driving a generation ceremony: the phase types of [`ceremony`] (`Planned` -> `Keyed` ->
//! `Sealed` -> `Provisioned` -> `Verified` -> `Finished`, each step consuming its phase), or
//! the event/effect state machine on top of them, [`flow::Flow`]. Callers add their public
//! records (boot attestation, entropy report) as [`record::Note`]s.
//!
//! Recovery: [`shardfile::ShardFile::parse`], [`envelope::open_with_card`] per share,
//! [`recombine::recombine`]. A whole recovery ceremony (root pinned, request and policy checked,
//! holders one at a time, recombination proven, the operation, a signed transcript):
//! [`recovery_flow`] (`replace-card`: [`recovery_flow::replace_card`]). Auditors:
//! [`verify::verify_dir`] for a generation folder, [`verify_recovery::verify_recovery_dir`] for
//! a recovery folder against it ([`verify_recovery::verify_recovery_dirs`] after replace-card
//! recoveries) / the `sherd-verify` binary.
//!
//! Witnesses' own cards sign the finished transcript through [`card::PersonalCard`]:
//! [`witness::WitnessSigning`].

pub mod attest;
pub mod card;
pub mod ceremony;
pub mod dual;
pub mod envelope;
pub mod flow;
pub mod hex;
mod kdf;
pub mod keys;
pub mod pgp;
pub mod pinfile;
pub mod plan;
pub mod policy;
pub mod recombine;
pub mod record;
pub mod recovery;
pub mod recovery_flow;
pub mod request;
pub mod rng;
pub mod secret;
pub mod shamir;
pub mod shardfile;
pub mod storage;
pub mod transcript;
pub mod verify;
pub mod verify_recovery;
pub mod witness;
pub mod words;
mod words_table;

pub use sequoia_openpgp as openpgp;
