#![forbid(unsafe_code)]
//! The ceremony core of sherd: plan, keys, Shamir shares, sealing, recombination, transcript,
//! output writing and offline verification.
//!
//! No UI and no device I/O of its own: randomness comes through [`rng::SecretRng`], cards through
//! [`card::LocationCard`], removable storage through [`storage::Volume`]. Secret values live in
//! wrapper types that do not implement `Debug`, `Display` or `Clone` and are zeroized on drop
//! (see [`secret`]); everything a screen may show is plain public data.
//!
//! Driving a generation ceremony (or use the event/effect wrapper [`flow::Flow`]):
//!
//! 1. [`ceremony::Ceremony::new`] (or `with_prior_records` for the boot attestation) parses and
//!    validates the plan; show [`plan::Plan::summary`] (hash as words); record confirmations
//!    and the entropy report with [`ceremony::Ceremony::record`].
//! 2. `generate_keys(&mut drbg)`: root secret, root certificate, location keys, PINs.
//! 3. `seal_shares(&mut drbg)`: split M-of-N and seal each share to its location key.
//! 4. `provision_card(holder, card, &mut dyn LocationCard)` for every card
//!    ([`ceremony::Ceremony::next_action`] says which); each card decrypts its own share.
//! 5. `verify(&mut drbg)`: recombination from the cards' decryptions, M-subsets, self-test.
//! 6. `finish()`: output files and the signed transcript; write them with
//!    [`storage::write_all`]; show the final words; drop the ceremony.
//!
//! Recovery: [`shardfile::ShardFile::parse`], [`envelope::open_with_card`] per share,
//! [`recombine::recombine`]. Auditors: [`verify::verify_dir`] / the `sherd-verify` binary.

pub mod card;
pub mod ceremony;
pub mod envelope;
pub mod flow;
pub mod hex;
mod kdf;
pub mod keys;
pub mod pgp;
pub mod pinfile;
pub mod plan;
pub mod recombine;
pub mod record;
pub mod rng;
pub mod secret;
pub mod shamir;
pub mod shardfile;
pub mod storage;
pub mod transcript;
pub mod verify;
pub mod words;
mod words_table;

pub use sequoia_openpgp as openpgp;
