//! The recovery ceremony as types: a root pinned from a verified generation folder, a request
//! checked against it and its policy, holders one at a time, recombination proven, then the
//! request's operation, all in a hash-chained transcript signed by the root key.
//! Output folder and records: docs/formats/recovery.md.
//!
//! Phases, each step consuming or keeping its phase:
//!
//! - [`Requested::start`]: the pinned root ([`PinnedRoot`]), the request file's bytes and its
//!   approvals; [`PinnedRoot::check_request`] and [`PinnedRoot::check_policy`] run before any
//!   card is asked for. The screen shows [`Requested::hash_words`].
//! - [`Requested::confirm`]: the witnesses confirmed the request hash -> [`Collecting`].
//! - [`Collecting::accept_holder`], in any order, one holder at a time: the holder's (or their
//!   backup's) personal card decrypts the holder's PIN file, the location card, unlocked with
//!   the PIN from it, decrypts the holder's sealed share, which is checked against the pinned
//!   root. A refusal names the holder and changes nothing.
//! - [`Collecting::recombine`] at M shares -> [`Recombined`]: the commitment checked, the root
//!   key re-derived from the secret and the generation time, its fingerprint the pinned one,
//!   and a self-test signature; the shares and the secret are dropped (zeroized) here, except
//!   for `replace-card` (below).
//! - [`Recombined::perform`] -> [`Finished`]: the operation's outputs and the signed
//!   transcript; the root key is dropped. [`Finished::write`] writes the folder.
//! - `replace-card` instead ([`replace_card`]): [`Recombined::start_replace_card`] ->
//!   [`ReplacingCards`] (holder i's share rebuilt from the M shares by interpolation at x = i,
//!   a new location key, the share sealed to it), one
//!   [`ReplacingCards::provision_card`] per new blank card, then
//!   [`ReplacingCards::finish`] -> [`Finished`] (new shard file, PIN file, location
//!   certificate; the secrets dropped). [`Recombined::perform_replace_card`] does all three
//!   with every card at hand. For `replace-card` (and `reshare`) only,
//!   [`Collecting::recombine`] keeps the accepted shares and the secret (zeroized on drop)
//!   until the new shares are made.
//! - `reshare` instead ([`reshare`]): [`Recombined::start_reshare`] -> [`Resharing`] (the
//!   secret split M'-of-N' for the request's new plan, a new location key per new holder, each
//!   new share sealed to it, every M'-subset checked; the secret dropped), one
//!   [`Resharing::provision_card`] per new blank card, then [`Resharing::finish`] ->
//!   [`Finished`] (the new plan, shard file and PIN files). [`Recombined::perform_reshare`]
//!   does all three with every card at hand.
//!
//! Nothing here holds a share, PIN or secret behind `Debug`: phases print only public data.

use std::cell::RefCell;
use std::fmt;
use std::io;
use std::time::{Duration, UNIX_EPOCH};

use sequoia_openpgp as openpgp;

use openpgp::packet::signature::SignatureBuilder;
use openpgp::serialize::SerializeInto;
use openpgp::types::SignatureType;

use crate::card::{CardError, CardSerial, LocationCard, MIN_PIN_RETRIES, PersonalDecryptCard};
use crate::ceremony::CeremonyError;
use crate::ceremony::Record as CallerRecord;
use crate::dual::Seconds;
use crate::envelope::Envelope;
use crate::keys::{KeyError, RootKey, key_err};
use crate::pgp::{self, EcdhDecryptor};
use crate::pinfile::{PinFile, PinFileError};
use crate::plan;
use crate::record::{
    self, Body, CeremonyEnd, Fields, Fpr, Hash32, Note, OutputFile as OutputRecord, Passed,
    RecordError, field_body,
};
use crate::recovery::{Applied, ApprovalFile, Approved, PinnedRoot, PolicyError, RecoveryError};
use crate::request::{Operation, OperationKind, Request, RequestError};
use crate::secret::Pin;
use crate::secret::RootSecret;
use crate::storage::{self, OutputFile, Volume, WriteError, WriteReport};
use crate::transcript::{Transcript, TranscriptError};
use crate::{hex, kdf};

pub mod replace_card;
pub mod reshare;

pub use replace_card::{ReplaceView, ReplacingCards};
pub use reshare::{ReshareHolder, ReshareView, Resharing};

/// Paths in a recovery output folder (docs/formats/recovery.md).
pub mod paths {
    /// The request file, byte for byte as read from the request stick.
    pub const REQUEST: &str = "request.toml";
    /// The pinned root certificate, ASCII-armored (to verify every signature in the folder).
    pub const ROOT_CERT: &str = "root-cert.asc";
    /// The transcript text.
    pub const TRANSCRIPT: &str = "transcript.txt";
    /// The root key's ASCII-armored detached signature over the transcript text.
    pub const TRANSCRIPT_SIG: &str = "transcript.txt.sig";
    /// `prove-quorum`: the challenge text, exactly the request's `challenge` (no newline).
    pub const CHALLENGE: &str = "quorum/challenge.txt";
    /// `prove-quorum`: the root key's detached signature over [`CHALLENGE`].
    pub const CHALLENGE_SIG: &str = "quorum/challenge.txt.sig";
    /// `certify`: the request's certificate with the root key's certifications added.
    pub const CERTIFIED: &str = "certified/cert.asc";
    /// `replace-card`: the new shard file, the generation's (or the last replacement's) with
    /// only the holder's entry changed; `reshare`: the new plan's full shard file.
    pub const SHARDS: &str = "shards.toml";
    /// `reshare`: the new plan's text, whose canonical hash is the request's `plan`.
    pub const PLAN: &str = "plan.toml";

    /// `replace-card`: holder `index`'s new PIN file (the generation folder's name for it).
    pub fn pin_file(index: u8) -> String {
        crate::ceremony::paths::pin_file(index)
    }

    /// `replace-card`: holder `index`'s new location certificate, ASCII-armored.
    pub fn location_cert(index: u8) -> String {
        format!("location/holder-{index:03}.asc")
    }

    /// `replace-card`: holder `index`'s new sealed share, the binary OpenPGP message (the same
    /// bytes as in the new shard file).
    pub fn sealed_share(index: u8) -> String {
        format!("sealed/holder-{index:03}.pgp")
    }

    /// `sign`: where the detached signature over the request's `position`-th file (1-based)
    /// named `name` goes: `signatures/<name>.sig` when the name is made of `A-Z a-z 0-9 . _ -`
    /// only (and does not start with `.`), otherwise `signatures/by-position/<position, 3
    /// digits>.sig` (a folder no plain name can collide with).
    pub fn signature(position: usize, name: &str) -> String {
        let plain = !name.starts_with('.')
            && name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b));
        if plain {
            format!("signatures/{name}.sig")
        } else {
            format!("signatures/by-position/{position:03}.sig")
        }
    }
}

field_body! {
    /// The first record: which generation ceremony this recovery uses.
    RecoveryGeneration = "recovery.generation" {
        /// The generation ceremony's id.
        ceremony: String = "ceremony",
        /// The generation transcript's final hash (the words the witnesses compared).
        transcript: Hash32 = "transcript",
        /// The root fingerprint the generation transcript records.
        root: Fpr = "root",
    }
}
field_body! {
    /// A replace-card recovery the pinned root includes (one per replace-card folder applied,
    /// in order, right after `recovery.generation`): holder `holder`'s share is the one it
    /// sealed.
    RecoveryReplaced = "recovery.replaced" {
        /// The holder whose cards were replaced.
        holder: u8 = "holder",
        /// The replace-card recovery transcript's final hash.
        transcript: Hash32 = "transcript",
        /// The new location certificate's fingerprint.
        location: Fpr = "location",
        /// SHA-256 of the new sealed share.
        envelope: Hash32 = "envelope",
        /// SHA-256 of the new PIN file.
        pins: Hash32 = "pins",
    }
}
field_body! {
    /// The request, after it was checked and its hash confirmed by the witnesses.
    RecoveryRequest = "recovery.request" {
        /// The request's canonical hash (shown as hex and words, confirmed).
        hash: Hash32 = "hash",
        /// SHA-256 of the request file's exact bytes (`request.toml` in the folder).
        file: Hash32 = "file-sha256",
        /// The operation.
        operation: String = "operation",
        /// The request time, Unix seconds: the time of every signature made.
        time: u32 = "time",
    }
}
field_body! {
    /// What the generation plan's signing policy decided.
    RecoveryPolicy = "recovery.policy" {
        /// `none` (the plan has no `[policy]`) or `held`.
        policy: String = "policy",
        /// The policy's k for the operation (0 without a policy).
        needed: u8 = "needed",
        /// Approvals counted.
        approvals: usize = "approvals",
    }
}
field_body! {
    /// One counted approval.
    RecoveryApproval = "recovery.approval" {
        /// The approver's name in the plan's `[policy]`.
        approver: String = "approver",
        /// The approver certificate's fingerprint.
        cert: Fpr = "cert",
        /// The fingerprint of the key that made the signature.
        key: Fpr = "key",
        /// SHA-256 of the approval file.
        file: Hash32 = "file-sha256",
    }
}
field_body! {
    /// One holder's share accepted (never the share itself).
    RecoveryShare = "recovery.share" {
        /// Holder index, 1-based (the share's x coordinate).
        holder: u8 = "holder",
        /// The holder's name, from the generation plan.
        name: String = "name",
        /// SHA-256 of the sealed share (binary message) that was opened: the generation
        /// transcript's `share.sealed` value for this holder.
        envelope: Hash32 = "envelope",
        /// SHA-256 of the PIN file that was opened (the generation folder's
        /// `pins/holder-NNN.asc`).
        pins: Hash32 = "pins",
        /// Whose personal card read the PIN file: `holder` or `backup`.
        reader: String = "reader",
        /// The name of who read it.
        reader_name: String = "reader-name",
        /// Fingerprint of the personal card's decryption key.
        personal: Fpr = "personal",
        /// The personal card's serial.
        personal_card: String = "personal-card",
        /// The location card's serial.
        card: String = "card",
    }
}
field_body! {
    /// The shares recombined and the root key proven.
    RecoveryRecombined = "recovery.recombined" {
        /// The holders whose shares were used, in the order they came, comma-separated.
        holders: String = "holders",
        /// The threshold M.
        threshold: u8 = "threshold",
        /// The secret matched the commitment every envelope carries (signed by the root key).
        commitment: Passed = "commitment",
        /// The fingerprint of the root key re-derived from the secret and the generation time:
        /// the pinned one.
        root: Fpr = "root",
        /// The re-derived key signed the request hash and the signature verified.
        self_test: Passed = "self-test",
    }
}
field_body! {
    /// `sign`: one file signed.
    RecoverySigned = "recovery.signed" {
        /// The file's name as the request gives it.
        name: String = "name",
        /// SHA-256 of the file's bytes (equal to the request's).
        sha256: Hash32 = "sha256",
        /// Size in bytes.
        size: usize = "size",
        /// The signature's path in the folder.
        signature: String = "signature",
    }
}
field_body! {
    /// `prove-quorum`: the challenge signed.
    RecoveryQuorum = "recovery.quorum" {
        /// SHA-256 of the challenge text's UTF-8 bytes.
        challenge: Hash32 = "challenge-sha256",
        /// The signature's path in the folder.
        signature: String = "signature",
    }
}
field_body! {
    /// `certify`: one user ID certified.
    RecoveryCertified = "recovery.certified" {
        /// The certificate's fingerprint.
        cert: Fpr = "cert",
        /// The user ID certified.
        user_id: String = "user-id",
        /// When the certification expires, Unix seconds; 0 for never.
        expiry: u32 = "expiry",
    }
}

field_body! {
    /// `replace-card`: the holder's share rebuilt from the recombined shares.
    RecoveryRebuilt = "recovery.rebuilt" {
        /// The holder whose share was rebuilt (its x coordinate).
        holder: u8 = "holder",
        /// The holder's name, from the generation plan.
        name: String = "name",
        /// The holders whose shares were interpolated at x = `holder`, in order,
        /// comma-separated (those of `recovery.recombined`).
        from: String = "from",
        /// The second Shamir implementation that interpolated it too and agreed.
        second: String = "second",
        /// How many (M-1)-subsets of the other holders' shares, each with the rebuilt share,
        /// were recombined (by both implementations) to the secret the commitment binds.
        checked: usize = "checked",
    }
}
field_body! {
    /// `replace-card`: the holder's new location certificate.
    RecoveryLocation = "recovery.location" {
        /// Holder index.
        holder: u8 = "holder",
        /// The new location certificate's (primary key) fingerprint.
        fingerprint: Fpr = "fingerprint",
        /// Its Cv25519 encryption subkey's fingerprint, the key the new cards hold.
        subkey: Fpr = "subkey",
        /// The location certificate it replaces.
        replaces: Fpr = "replaces",
    }
}
field_body! {
    /// `replace-card`: the rebuilt share sealed to the new location key.
    RecoverySealed = "recovery.sealed" {
        /// Holder index.
        holder: u8 = "holder",
        /// SHA-256 of the new sealed share (binary message).
        sha256: Hash32 = "sha256",
        /// SHA-256 of the sealed share it replaces.
        replaces: Hash32 = "replaces",
    }
}
field_body! {
    /// `replace-card`: one new card provisioned and test-decrypted the new sealed share.
    RecoveryCard = "recovery.card" {
        /// Holder index.
        holder: u8 = "holder",
        /// Card number, 1-based, of the request's `cards`.
        card: u8 = "card",
        /// The card's serial.
        serial: String = "serial",
        /// The location certificate whose key the card now holds.
        location: Fpr = "location",
        /// The card opened the new sealed share; share and header were the ones sealed.
        test_decrypt: Passed = "test-decrypt",
    }
}
field_body! {
    /// `replace-card`: the holder's new PIN file.
    RecoveryPins = "recovery.pins" {
        /// Holder index.
        holder: u8 = "holder",
        /// SHA-256 of the new PIN file (armored), as written.
        sha256: Hash32 = "sha256",
        /// The personal certificates it is encrypted to: the holder's, then the backup
        /// holder's.
        recipients: Vec<Fpr> = "recipients",
        /// SHA-256 of the PIN file it replaces.
        replaces: Hash32 = "replaces",
    }
}

field_body! {
    /// A reshare recovery the pinned root includes (one per reshare folder applied, in the
    /// order the folders were applied, among the `recovery.replaced` records right after
    /// `recovery.generation`): the plan and the shares are the ones it made.
    RecoveryReshared = "recovery.reshared" {
        /// The reshare recovery transcript's final hash.
        transcript: Hash32 = "transcript",
        /// The new plan's canonical hash.
        plan: Hash32 = "plan",
        /// The new threshold M'.
        threshold: u8 = "threshold",
        /// The new number of holders N'.
        holders: u8 = "holders",
    }
}
field_body! {
    /// `reshare`: the secret split anew for the request's new plan.
    RecoveryReshare = "recovery.reshare" {
        /// The new plan's canonical hash (the request's `plan`, `plan.toml`'s).
        plan: Hash32 = "plan",
        /// The new threshold M'.
        threshold: u8 = "threshold",
        /// The new number of holders N' (one share each).
        holders: u8 = "holders",
        /// The new plan's number of witnesses.
        witnesses: usize = "witnesses",
    }
}
field_body! {
    /// `reshare`: one new holder's new location certificate (one per new holder, in order).
    RecoveryNewLocation = "recovery.new-location" {
        /// The new holder's index in the new plan.
        holder: u8 = "holder",
        /// Their name in the new plan.
        name: String = "name",
        /// The location certificate's (primary key) fingerprint.
        fingerprint: Fpr = "fingerprint",
        /// Its Cv25519 encryption subkey's fingerprint, the key the new cards hold.
        subkey: Fpr = "subkey",
    }
}
field_body! {
    /// `reshare`: one new holder's new share sealed to their new location key.
    RecoveryNewSealed = "recovery.new-sealed" {
        /// The new holder's index.
        holder: u8 = "holder",
        /// SHA-256 of the sealed share (binary message), as in the new `shards.toml`.
        sha256: Hash32 = "sha256",
    }
}
field_body! {
    /// `reshare`: the new shares' M'-subsets recombined to the secret (as `verify.subsets`).
    RecoveryNewSubsets = "recovery.new-subsets" {
        /// M'-subsets recombined.
        checked: usize = "checked",
        /// C(N', M').
        total: record::SubsetTotal = "total",
        /// How the checked subsets were chosen.
        policy: record::SubsetPolicy = "policy",
        /// The second Shamir implementation that made the split too and agreed.
        second: String = "second",
        /// Combinations made by both implementations and compared (as `dual.shamir`'s).
        combinations: usize = "combinations",
    }
}
field_body! {
    /// `reshare`: the old shares still exist. Any M of them still recombine to this same root
    /// key, outside sherd, until the old cards (and the readers of the old PIN files) are
    /// destroyed; sherd refuses them from now on, which is not a cryptographic guarantee.
    RecoveryOldShares = "recovery.old-shares" {
        /// The old plan's canonical hash.
        plan: Hash32 = "plan",
        /// The old threshold M.
        threshold: u8 = "threshold",
        /// The old number of holders N.
        holders: u8 = "holders",
    }
}
field_body! {
    /// `reshare`: one new card provisioned and test-decrypted its holder's new sealed share.
    RecoveryNewCard = "recovery.new-card" {
        /// The new holder's index.
        holder: u8 = "holder",
        /// Card number, 1-based, of the new plan's `cards` for the holder.
        card: u8 = "card",
        /// The card's serial.
        serial: String = "serial",
        /// The location certificate whose key the card now holds.
        location: Fpr = "location",
        /// The card opened the new sealed share; share and header were the ones sealed.
        test_decrypt: Passed = "test-decrypt",
    }
}
field_body! {
    /// `reshare`: one new holder's PIN file (one per new holder, in order).
    RecoveryNewPins = "recovery.new-pins" {
        /// The new holder's index.
        holder: u8 = "holder",
        /// SHA-256 of the PIN file (armored), as written.
        sha256: Hash32 = "sha256",
        /// The personal certificates it is encrypted to: the holder's, then the backup
        /// holder's, from the new plan.
        recipients: Vec<Fpr> = "recipients",
    }
}

/// Why a recovery step refused.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum FlowError {
    /// The request file is not a valid request.
    #[error("the request is refused: {0}")]
    Request(#[from] RequestError),
    /// The request is not for the pinned root (or the holder it names does not exist).
    #[error("the request is refused: {0}")]
    NotForThisRoot(RecoveryError),
    /// The request fails the generation plan's signing policy.
    #[error("the request fails the policy: {0}")]
    Policy(#[from] PolicyError),
    /// The hash the witnesses confirmed is not the request's.
    #[error("the confirmed hash {confirmed} is not the request's hash {request}")]
    HashNotConfirmed {
        /// The request's hash, hex.
        request: String,
        /// The hash confirmed, hex.
        confirmed: String,
    },
    /// A holder step refused; the holder is named (once: a share error names them already),
    /// nothing was accepted.
    #[error("{}", holder_message(*index, holder, fault))]
    Holder {
        /// The holder's index.
        index: u8,
        /// The holder's name (empty if the index is not in the plan).
        holder: String,
        /// What is wrong.
        fault: HolderFault,
    },
    /// Recombination was asked for with fewer than M shares.
    #[error("{have} of {needed} needed shares: bring more holders")]
    NotEnoughShares {
        /// Shares accepted.
        have: usize,
        /// The threshold M.
        needed: u8,
    },
    /// The accepted shares did not recombine to the pinned root key.
    #[error("recombination refused: {0}")]
    Recombine(RecoveryError),
    /// A file the request names could not be read from the request stick.
    #[error("{name}: cannot read it from the request stick: {reason}")]
    FileUnreadable {
        /// The file's name.
        name: String,
        /// The reader's error.
        reason: String,
    },
    /// A file's bytes are not the ones the request names.
    #[error("{name}: its SHA-256 is {found}, the request says {expected}: not signed")]
    FileDigest {
        /// The file's name.
        name: String,
        /// The request's SHA-256, hex.
        expected: String,
        /// The file's SHA-256, hex.
        found: String,
    },
    /// The operation is not implemented by this core yet; nothing was signed.
    #[error(
        "{0} is not supported by this version: nothing was signed, take the request to a version that does"
    )]
    NotYetSupported(OperationKind),
    /// [`Recombined::perform`] was given a `replace-card` request, which provisions new cards.
    #[error(
        "replace-card provisions new location cards: it is performed with Recombined::start_replace_card (or perform_replace_card), not perform; nothing was signed"
    )]
    ReplaceCardNeedsCards,
    /// [`Recombined::perform`] was given a `reshare` request, which provisions new cards.
    #[error(
        "reshare provisions new location cards for the new holders: it is performed with Recombined::start_reshare (or perform_reshare), not perform; nothing was signed"
    )]
    ReshareNeedsCards,
    /// A reshare step was asked for a request of another operation.
    #[error(
        "the request's operation is {0}, not reshare: it is performed with Recombined::perform (or start_replace_card); nothing was done"
    )]
    NotReshare(OperationKind),
    /// Splitting the secret for the new plan was refused (the two Shamir implementations
    /// disagree, or the parameters); nothing was written.
    #[error("splitting the secret for the new plan: {0}; nothing was written")]
    ReshareSplit(crate::shamir::ShamirError),
    /// An M'-subset of the new shares does not recombine to the secret: a fault of this machine
    /// or a bug.
    #[error(
        "the new shares of holders {holders} do not recombine to the root secret: stop, nothing was written (a fault of this machine or a bug)"
    )]
    ReshareSubsetFailed {
        /// The new holders of the subset that failed, comma-separated.
        holders: String,
    },
    /// The new cards are not all provisioned yet (reshare).
    #[error("new cards not yet provisioned: {missing:?} (holder, card)")]
    NewCardsMissing {
        /// The (holder, card) pairs still to provision.
        missing: Vec<(u8, u8)>,
    },
    /// A replace-card step was asked for a request of another operation.
    #[error(
        "the request's operation is {0}, not replace-card: it is performed with Recombined::perform; nothing was done"
    )]
    NotReplaceCard(OperationKind),
    /// Rebuilding the holder's share from the recombined shares was refused (the two Shamir
    /// implementations disagree, or the shares' structure); nothing was written.
    #[error("rebuilding holder {holder}'s share: {source}; nothing was written")]
    Rebuild {
        /// The holder whose share was to be rebuilt.
        holder: u8,
        /// Why.
        source: crate::shamir::ShamirError,
    },
    /// The rebuilt share does not recombine with the other shares to the secret: a fault of
    /// this machine or a bug, not bad input.
    #[error(
        "holder {holder}'s rebuilt share does not recombine with holders {others} to the root secret: stop, nothing was written (a fault of this machine or a bug)"
    )]
    RebuiltShareWrong {
        /// The holder whose share was rebuilt.
        holder: u8,
        /// The other holders of the subset that failed, comma-separated.
        others: String,
    },
    /// The new location key's fingerprint is one of the ceremony's location keys' (old or
    /// current): it would not be a new key.
    #[error(
        "the new location key {fingerprint} is holder {holder}'s location key already: the random generator is broken; stop, nothing was written"
    )]
    LocationKeyReused {
        /// The fingerprint, upper-case hex.
        fingerprint: String,
        /// The holder it belongs to.
        holder: u8,
    },
    /// Provisioning a new card refused (the same refusals as at generation: a card already
    /// provisioned, swapped, not blank, failed, or failed its test decryption); the card may
    /// be tried again or another one.
    #[error("{0}")]
    Card(CeremonyError),
    /// The new cards are not all provisioned yet.
    #[error("new cards not yet provisioned: {missing:?} (card numbers)")]
    CardsMissing {
        /// The card numbers still to provision.
        missing: Vec<u8>,
    },
    /// Making a signature failed (a bug, not bad input).
    #[error(transparent)]
    Key(#[from] KeyError),
    /// A record did not fit the transcript's format (a bug, not bad input).
    #[error(transparent)]
    Transcript(#[from] TranscriptError),
    /// A record was refused (a bug, not bad input).
    #[error(transparent)]
    Record(#[from] RecordError),
}

/// Why one holder's share was refused.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum HolderFault {
    /// The holder is not in the plan in force.
    #[error("not a holder of {plan}")]
    NoSuchHolder {
        /// How the plan is named: [`PinnedRoot::plan_label`].
        plan: &'static str,
    },
    /// This holder's share is already accepted.
    #[error("this holder's share is already accepted: each holder counts once")]
    AlreadyAccepted,
    /// The personal card's decryption key belongs neither to the holder nor to their backup.
    #[error(
        "the personal card {serial} ({key}) is neither the holder's nor the backup holder's ({backup})"
    )]
    NotHoldersPersonalCard {
        /// The card's serial.
        serial: CardSerial,
        /// Its decryption key's fingerprint, or "no decryption key".
        key: String,
        /// The backup holder's name.
        backup: String,
    },
    /// The personal card failed or refused (wrong PIN, too few tries left, pulled out).
    #[error("the personal card: {0}")]
    PersonalCard(CardError),
    /// The PIN file did not open (not encrypted to this card's key, not signed by the pinned
    /// root key, altered, or not a PIN file).
    #[error("the PIN file: {0}")]
    PinFile(PinFileError),
    /// The PIN file opened but is another ceremony's or another holder's.
    #[error("the PIN file is ceremony {ceremony:?}'s holder {holder}, not this holder's")]
    OtherPinFile {
        /// The ceremony id it names.
        ceremony: String,
        /// The holder index it names.
        holder: u8,
    },
    /// The PIN file given with the location card is not the one the personal card opened.
    #[error("the PIN file changed between the personal card and the location card")]
    PinFileChanged,
    /// The PIN file opened (this ceremony's, this holder's) but is not the one pinned for the
    /// holder: an earlier one, whose cards were replaced, or one the pinned root does not know.
    #[error("{}", superseded_message(found, expected, *replaced))]
    NotThePinnedPinFile {
        /// Its SHA-256, lower-case hex.
        found: String,
        /// The pinned PIN file's SHA-256, lower-case hex.
        expected: String,
        /// Whether it is the PIN file of a share this holder index had before a replace-card or
        /// reshare recovery applied to the pinned root.
        replaced: bool,
    },
    /// The location card failed before decrypting (could not read its serial).
    #[error("the location card: {0}")]
    LocationCard(CardError),
    /// The location card's serial is not one of the holder's location cards.
    #[error("the location card {serial} is not one of this holder's cards ({expected})")]
    NotHoldersLocationCard {
        /// The card's serial.
        serial: CardSerial,
        /// The holder's cards' serials, from the PIN file.
        expected: String,
    },
    /// The location card is one this ceremony retired: a card of a share replaced by a
    /// replace-card or reshare recovery applied to the pinned root.
    #[error(
        "the location card {serial} was holder {was_holder}'s card before a replace-card or reshare, and is no longer accepted (destroy it); bring one of this holder's current cards ({expected})"
    )]
    RetiredLocationCard {
        /// The card's serial.
        serial: CardSerial,
        /// Whose it was, by holder index in the plan of its time.
        was_holder: u8,
        /// The holder's current cards' serials, from the PIN file.
        expected: String,
    },
    /// The sealed share was refused: not the one the generation transcript records, the card
    /// could not decrypt it, or it is not this ceremony's (see the reason).
    #[error("{0}")]
    Share(RecoveryError),
}

fn superseded_message(found: &str, expected: &str, replaced: bool) -> String {
    if replaced {
        format!(
            "this PIN file (SHA-256 {found}) is from before this holder's cards were replaced or the key was reshared: its cards are no longer accepted; bring the holder's current PIN file (SHA-256 {expected}, from the last replace-card or reshare folder) and one of its new cards"
        )
    } else {
        format!(
            "this PIN file (SHA-256 {found}) is not the holder's pinned one (SHA-256 {expected}): if their cards were replaced, give that replace-card folder with the generation folder"
        )
    }
}

fn holder_message(index: u8, holder: &str, fault: &HolderFault) -> String {
    let text = fault.to_string();
    if text.starts_with(&format!("holder {index} "))
        || text.starts_with(&format!("holder {index}'s"))
    {
        text
    } else {
        format!("holder {index} ({holder}): {text}")
    }
}

/// A refused step that consumes its phase: the phase back, unchanged, and why.
pub struct Refused<P> {
    /// The phase, as it was before the step.
    pub state: Box<P>,
    /// Why the step refused (boxed: the phase's results stay small).
    pub error: Box<FlowError>,
}

impl<P> fmt::Debug for Refused<P> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Refused({:?})", self.error)
    }
}

impl<P> Refused<P> {
    fn new(state: P, error: impl Into<FlowError>) -> Self {
        Refused {
            state: Box::new(state),
            error: Box::new(error.into()),
        }
    }
}

/// How many shares are in, of how many needed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Progress {
    /// Shares accepted.
    pub have: usize,
    /// The threshold M.
    pub needed: u8,
}

impl Progress {
    /// Whether M shares are in.
    pub fn complete(&self) -> bool {
        self.have >= usize::from(self.needed)
    }
}

impl fmt::Display for Progress {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} of {} needed shares", self.have, self.needed)
    }
}

/// What is common to every phase: public data only.
#[derive(Clone)]
struct Common {
    pinned: PinnedRoot,
    request: Request,
    request_bytes: Vec<u8>,
    approved: Approved,
    transcript: Transcript,
}

impl Common {
    fn push<T: Body>(&mut self, body: &T) -> Result<(), FlowError> {
        push(&mut self.transcript, body)
    }
}

/// Appends a recovery record (a typed body, written as a caller's record of its kind).
fn push<T: Body>(t: &mut Transcript, body: &T) -> Result<(), FlowError> {
    let note = Note::new(T::NAME, Fields::parse(T::NAME, &body.encode())?)?;
    t.push_note(&note)?;
    Ok(())
}

/// Appends a caller's record (a witness confirmation, the image's attestation, ...) to `t`;
/// the `recovery.` kinds are this module's own and refused.
fn push_caller(t: &mut Transcript, r: &CallerRecord) -> Result<String, FlowError> {
    let rec = match r {
        CallerRecord::Note(n) => {
            if n.kind().starts_with("recovery.") {
                return Err(FlowError::Record(RecordError::Syntax {
                    kind: n.kind().to_string(),
                    reason: "the recovery.* kinds are written by the recovery core only".into(),
                }));
            }
            t.push_note(n)?
        }
        CallerRecord::WitnessConfirm(w) => t.push_core(w.clone())?,
    };
    Ok(hex::encode(&rec.hash))
}

/// The request is checked against the pinned root and its policy; its hash awaits the
/// witnesses' confirmation.
pub struct Requested {
    common: Common,
}

impl fmt::Debug for Requested {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Requested")
            .field("request_hash", &self.common.request.hash_hex())
            .field("operation", &self.common.request.operation.kind())
            .finish()
    }
}

impl Requested {
    /// Appends a caller's public record (e.g. the witnesses confirmed the generation
    /// transcript's final words); returns its hash, hex. `recovery.*` kinds are refused.
    pub fn record(&mut self, r: &CallerRecord) -> Result<String, FlowError> {
        push_caller(&mut self.common.transcript, r)
    }

    /// Starts a recovery: parses the request file's exact bytes, checks the request is for the
    /// pinned root ([`PinnedRoot::check_request`]) and passes the generation plan's policy
    /// with `approvals` ([`PinnedRoot::check_policy`]). No card is touched.
    pub fn start(
        pinned: PinnedRoot,
        request_bytes: &[u8],
        approvals: &[ApprovalFile],
    ) -> Result<Requested, FlowError> {
        let text = std::str::from_utf8(request_bytes)
            .map_err(|_| RequestError::Syntax("the request file is not UTF-8".into()))?;
        let request = Request::parse(text)?;
        pinned
            .check_request(&request)
            .map_err(FlowError::NotForThisRoot)?;
        let approved = pinned.check_policy(&request, request_bytes, approvals)?;
        let mut transcript = Transcript::new();
        push(
            &mut transcript,
            &RecoveryGeneration {
                ceremony: pinned.ceremony_id().to_string(),
                transcript: Hash32(pinned.final_hash()),
                root: Fpr(pinned.root_fingerprint().to_hex()),
            },
        )?;
        for a in pinned.applied() {
            match a {
                Applied::ReplaceCard(r) => push(
                    &mut transcript,
                    &RecoveryReplaced {
                        holder: r.holder,
                        transcript: Hash32(r.transcript),
                        location: Fpr(r.location.clone()),
                        envelope: Hash32(r.envelope),
                        pins: Hash32(r.pins),
                    },
                )?,
                Applied::Reshare(r) => push(
                    &mut transcript,
                    &RecoveryReshared {
                        transcript: Hash32(r.transcript),
                        plan: Hash32(r.plan),
                        threshold: r.threshold,
                        holders: r.holders,
                    },
                )?,
            }
        }
        Ok(Requested {
            common: Common {
                pinned,
                request,
                request_bytes: request_bytes.to_vec(),
                approved,
                transcript,
            },
        })
    }

    /// The request.
    pub fn request(&self) -> &Request {
        &self.common.request
    }

    /// The pinned root.
    pub fn pinned(&self) -> &PinnedRoot {
        &self.common.pinned
    }

    /// What the policy decided (shown).
    pub fn approved(&self) -> &Approved {
        &self.common.approved
    }

    /// The request hash as hex, to show.
    pub fn hash_hex(&self) -> String {
        self.common.request.hash_hex()
    }

    /// The request hash as PGP words, to read aloud.
    pub fn hash_words(&self) -> String {
        self.common.request.hash_words()
    }

    /// For a `sign` request: every file it names can be read and has the SHA-256 the request
    /// gives, checked before any card is asked for (the operation checks the same bytes again
    /// before it signs). Other operations name no files.
    pub fn check_files(&self, read: &dyn Fn(&str) -> io::Result<Vec<u8>>) -> Result<(), FlowError> {
        if let Operation::Sign { files } = &self.common.request.operation {
            for f in files {
                read_checked(read, f)?;
            }
        }
        Ok(())
    }

    /// The witnesses confirmed the request hash shown: `confirmed` is the hash the screen
    /// showed and they confirmed (it must be the request's). Records the request, the policy's
    /// decision and each approval.
    pub fn confirm(mut self, confirmed: &[u8; 32]) -> Result<Collecting, Refused<Requested>> {
        let request_hash = self.common.request.hash();
        if *confirmed != request_hash {
            let error = FlowError::HashNotConfirmed {
                request: hex::encode(&request_hash),
                confirmed: hex::encode(confirmed),
            };
            return Err(Refused::new(self, error));
        }
        let before = self.common.transcript.clone();
        match self.record_request() {
            Ok(()) => Ok(Collecting {
                common: self.common,
                accepted: Vec::new(),
            }),
            Err(e) => {
                self.common.transcript = before;
                Err(Refused::new(self, e))
            }
        }
    }

    fn record_request(&mut self) -> Result<(), FlowError> {
        let c = &mut self.common;
        let request = RecoveryRequest {
            hash: Hash32(c.request.hash()),
            file: Hash32(kdf::sha256(&c.request_bytes)),
            operation: c.request.operation.name().to_string(),
            time: c.request.time_unix,
        };
        c.push(&request)?;
        let (policy, needed, approvals) = match &c.approved {
            Approved::NoPolicy { .. } => ("none", 0, Vec::new()),
            Approved::ByPolicy {
                needed, approvals, ..
            } => ("held", *needed, approvals.clone()),
        };
        c.push(&RecoveryPolicy {
            policy: policy.into(),
            needed,
            approvals: approvals.len(),
        })?;
        for a in approvals {
            c.push(&RecoveryApproval {
                approver: a.approver.clone(),
                cert: Fpr(a.cert_fingerprint.clone()),
                key: Fpr(a.key_fingerprint.clone()),
                file: Hash32(a.file_sha256),
            })?;
        }
        Ok(())
    }
}

/// Reads a file a `sign` request names and checks its SHA-256 against the request's.
fn read_checked(
    read: &dyn Fn(&str) -> io::Result<Vec<u8>>,
    f: &crate::request::FileToSign,
) -> Result<Vec<u8>, FlowError> {
    let bytes = read(&f.name).map_err(|e| FlowError::FileUnreadable {
        name: f.name.clone(),
        reason: e.to_string(),
    })?;
    let digest = kdf::sha256(&bytes);
    if digest != f.sha256 {
        return Err(FlowError::FileDigest {
            name: f.name.clone(),
            expected: hex::encode(&f.sha256),
            found: hex::encode(&digest),
        });
    }
    Ok(bytes)
}

/// What one holder brings, besides their cards.
pub struct HolderInput<'a> {
    /// The holder's index in the generation plan, 1-based.
    pub index: u8,
    /// The holder's PIN file (the generation folder's `pins/holder-NNN.asc`, or the holder's
    /// copy): opened with the personal card, checked against the pinned root.
    pub pin_file: &'a [u8],
    /// A copy of the holder's sealed share from elsewhere (the holder's stick), or `None` for
    /// the pinned generation folder's own. Either way its SHA-256 must be the one the
    /// generation transcript records.
    pub sealed_share: Option<&'a [u8]>,
}

/// A holder's PIN file, opened by a personal card and checked: the first half of a holder's
/// turn. Holds the location cards' PINs (zeroized on drop); never printed.
pub struct PinsRead {
    index: u8,
    file: PinFile,
    pins_sha256: [u8; 32],
    reader: &'static str,
    reader_name: String,
    personal: String,
    personal_card: String,
}

impl fmt::Debug for PinsRead {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PinsRead")
            .field("holder", &self.index)
            .field("reader", &self.reader)
            .finish_non_exhaustive()
    }
}

impl PinsRead {
    /// The holder whose PIN file this is.
    pub fn holder(&self) -> u8 {
        self.index
    }

    /// `holder` or `backup`: whose personal card read it.
    pub fn reader(&self) -> &'static str {
        self.reader
    }

    /// The name of who read it.
    pub fn reader_name(&self) -> &str {
        &self.reader_name
    }

    /// The serials of the holder's location cards (public), in the PIN file's order.
    pub fn location_cards(&self) -> Vec<String> {
        self.file.cards.iter().map(|e| e.serial.0.clone()).collect()
    }
}

/// A share accepted: the opened envelope (secret) and its public record.
struct Accepted {
    index: u8,
    envelope: Envelope,
}

/// Holders bring their shares, one at a time, in any order.
pub struct Collecting {
    common: Common,
    accepted: Vec<Accepted>,
}

impl fmt::Debug for Collecting {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Collecting")
            .field("request_hash", &self.common.request.hash_hex())
            .field("holders", &self.holders())
            .field("progress", &self.progress().to_string())
            .finish()
    }
}

impl Collecting {
    /// Appends a caller's public record (e.g. the witnesses confirmed the generation
    /// transcript's final words); returns its hash, hex. `recovery.*` kinds are refused.
    pub fn record(&mut self, r: &CallerRecord) -> Result<String, FlowError> {
        push_caller(&mut self.common.transcript, r)
    }

    /// How many shares are in, of M (show as "2 of 3 needed shares").
    pub fn progress(&self) -> Progress {
        Progress {
            have: self.accepted.len(),
            needed: self.common.pinned.plan().threshold,
        }
    }

    /// The holders whose shares are in, in the order they came.
    pub fn holders(&self) -> Vec<u8> {
        self.accepted.iter().map(|a| a.index).collect()
    }

    /// The request.
    pub fn request(&self) -> &Request {
        &self.common.request
    }

    /// The pinned root (its plan names the holders).
    pub fn pinned(&self) -> &PinnedRoot {
        &self.common.pinned
    }

    /// One holder's turn in one call, for two readers (or doubles): [`Collecting::read_pin_file`]
    /// with `personal`, then [`Collecting::accept_location`] with `location`.
    ///
    /// On success the share is kept (in memory, zeroized on drop) and recorded; on any failure
    /// nothing changes and the error names the holder.
    pub fn accept_holder(
        &mut self,
        input: &HolderInput<'_>,
        personal: &mut dyn PersonalDecryptCard,
        personal_pin: &Pin,
        location: &mut dyn LocationCard,
    ) -> Result<Progress, FlowError> {
        let pins = self.read_pin_file(input, personal, personal_pin)?;
        self.accept_location(pins, input, location)
    }

    /// The first half of a holder's turn: `personal` (the holder's or the backup holder's
    /// personal card, with its user PIN `personal_pin`, the factory default unless they
    /// changed it) decrypts the holder's PIN file, which must be signed by the pinned root and
    /// name this ceremony and holder. Nothing is recorded yet: the result goes to
    /// [`Collecting::accept_location`] once the personal card is out and a location card in
    /// (one reader is enough). Refusals name the holder.
    pub fn read_pin_file(
        &self,
        input: &HolderInput<'_>,
        personal: &mut dyn PersonalDecryptCard,
        personal_pin: &Pin,
    ) -> Result<PinsRead, FlowError> {
        self.open_pins(input, personal, personal_pin)
            .map_err(|fault| self.holder_error(input.index, fault))
    }

    /// The second half: `location` (one of the holder's location cards), unlocked with the
    /// user PIN `pins` gives for its serial, decrypts the holder's sealed share, which is
    /// checked against the pinned root certificate, location certificate and ceremony. On
    /// success the share is kept and recorded; on a refusal nothing changes and `pins` is
    /// handed back in the error's place (the holder may try another of their cards).
    pub fn accept_location(
        &mut self,
        pins: PinsRead,
        input: &HolderInput<'_>,
        location: &mut dyn LocationCard,
    ) -> Result<Progress, FlowError> {
        self.accept_location_keeping(&pins, input, location)
    }

    /// As [`Collecting::accept_location`], borrowing the PIN file's contents so that a refusal
    /// (a wrong card, a card pulled) leaves them for the next try.
    pub fn accept_location_keeping(
        &mut self,
        pins: &PinsRead,
        input: &HolderInput<'_>,
        location: &mut dyn LocationCard,
    ) -> Result<Progress, FlowError> {
        let index = input.index;
        if pins.index != index {
            return Err(self.holder_error(
                index,
                HolderFault::OtherPinFile {
                    ceremony: pins.file.ceremony_id.clone(),
                    holder: pins.index,
                },
            ));
        }
        let (envelope, record) = self
            .open_location(pins, input, location)
            .map_err(|fault| self.holder_error(index, fault))?;
        let mut t = self.common.transcript.clone();
        push(&mut t, &record)?;
        self.common.transcript = t;
        self.accepted.push(Accepted { index, envelope });
        Ok(self.progress())
    }

    fn holder_error(&self, index: u8, fault: HolderFault) -> FlowError {
        let holder = self
            .common
            .pinned
            .plan()
            .holder(index)
            .map(|h| h.name.clone())
            .unwrap_or_default();
        FlowError::Holder {
            index,
            holder,
            fault,
        }
    }

    fn open_pins(
        &self,
        input: &HolderInput<'_>,
        personal: &mut dyn PersonalDecryptCard,
        personal_pin: &Pin,
    ) -> Result<PinsRead, HolderFault> {
        let pinned = &self.common.pinned;
        let plan = pinned.plan();
        let index = input.index;
        let holder = plan.holder(index).ok_or(HolderFault::NoSuchHolder {
            plan: pinned.plan_label(),
        })?;
        if self.accepted.iter().any(|a| a.index == index) {
            return Err(HolderFault::AlreadyAccepted);
        }
        let backup = plan
            .holder(holder.backup)
            .ok_or(HolderFault::NoSuchHolder {
                plan: pinned.plan_label(),
            })?;

        // Whose personal card this is: the decryption key must be one of the holder's or the
        // backup holder's certificates' encryption keys (the PIN file's recipients).
        let serial = personal.serial().map_err(HolderFault::PersonalCard)?;
        let on_card = personal
            .decryption_fingerprint()
            .map_err(HolderFault::PersonalCard)?;
        let time = UNIX_EPOCH + Duration::from_secs(u64::from(plan.time_unix));
        let mut found = None;
        if let Some(fpr) = &on_card {
            'find: for (reader, who) in [("holder", holder), ("backup", backup)] {
                for pc in &who.certs {
                    for k in plan::encryption_keys(&pc.cert, time) {
                        if k.fingerprint() == *fpr {
                            found = Some((reader, who.name.clone(), k));
                            break 'find;
                        }
                    }
                }
            }
        }
        let Some((reader, reader_name, key)) = found else {
            return Err(HolderFault::NotHoldersPersonalCard {
                serial,
                key: on_card.map_or("no decryption key".into(), |f| f.to_hex()),
                backup: backup.name.clone(),
            });
        };
        let retries = personal
            .user_pin_retries()
            .map_err(HolderFault::PersonalCard)?;
        if retries < MIN_PIN_RETRIES {
            return Err(HolderFault::PersonalCard(CardError::PinRetriesLow {
                retries_left: retries,
                needed: MIN_PIN_RETRIES,
            }));
        }
        let card_error: RefCell<Option<CardError>> = RefCell::new(None);
        let file = {
            let mut decryptor = EcdhDecryptor::new(key.clone(), |point: &[u8; 32]| match personal
                .ecdh(personal_pin, point)
            {
                Ok(shared) => Ok(openpgp::crypto::mem::Protected::from(
                    &shared.expose_secret()[..],
                )),
                Err(e) => {
                    let text = e.to_string();
                    *card_error.borrow_mut() = Some(e);
                    Err(openpgp::anyhow::anyhow!(text))
                }
            });
            PinFile::open(input.pin_file, &mut decryptor, pinned.root_cert())
        };
        let file = match (file, card_error.into_inner()) {
            (_, Some(e)) => return Err(HolderFault::PersonalCard(e)),
            (Err(e), None) => return Err(HolderFault::PinFile(e)),
            (Ok(p), None) => p,
        };
        if file.ceremony_id != pinned.ceremony_id() || file.holder != index {
            return Err(HolderFault::OtherPinFile {
                ceremony: file.ceremony_id.clone(),
                holder: file.holder,
            });
        }
        let pins_sha256 = kdf::sha256(input.pin_file);
        let expected = pinned
            .share(index)
            .ok_or(HolderFault::NoSuchHolder {
                plan: pinned.plan_label(),
            })?
            .pin_file_sha256;
        if pins_sha256 != expected {
            return Err(HolderFault::NotThePinnedPinFile {
                found: hex::encode(&pins_sha256),
                expected: hex::encode(&expected),
                replaced: pinned
                    .retired()
                    .iter()
                    .any(|r| r.index == index && r.pin_file_sha256 == pins_sha256),
            });
        }
        Ok(PinsRead {
            index,
            file,
            pins_sha256,
            reader,
            reader_name,
            personal: key.fingerprint().to_hex(),
            personal_card: serial.0,
        })
    }

    fn open_location(
        &self,
        pins: &PinsRead,
        input: &HolderInput<'_>,
        location: &mut dyn LocationCard,
    ) -> Result<(Envelope, RecoveryShare), HolderFault> {
        let pinned = &self.common.pinned;
        let index = input.index;
        let holder = pinned
            .plan()
            .holder(index)
            .ok_or(HolderFault::NoSuchHolder {
                plan: pinned.plan_label(),
            })?;
        if self.accepted.iter().any(|a| a.index == index) {
            return Err(HolderFault::AlreadyAccepted);
        }
        if kdf::sha256(input.pin_file) != pins.pins_sha256 {
            return Err(HolderFault::PinFileChanged);
        }
        // The location card: one of this holder's, unlocked with its PIN from the file.
        let card_serial = location.serial().map_err(HolderFault::LocationCard)?;
        let Some(entry) = pins.file.cards.iter().find(|e| e.serial == card_serial) else {
            let expected = pins
                .file
                .cards
                .iter()
                .map(|e| e.serial.0.clone())
                .collect::<Vec<_>>()
                .join(", ");
            let retired = pinned
                .retired()
                .iter()
                .find(|s| s.cards.contains(&card_serial));
            return Err(match retired {
                Some(s) => HolderFault::RetiredLocationCard {
                    serial: card_serial,
                    was_holder: s.index,
                    expected,
                },
                None => HolderFault::NotHoldersLocationCard {
                    serial: card_serial,
                    expected,
                },
            });
        };
        let envelope = match input.sealed_share {
            Some(message) => pinned.open_message(index, message, location, &entry.pins.user),
            None => pinned.open_share(index, location, &entry.pins.user),
        }
        .map_err(HolderFault::Share)?;
        let share = pinned.share(index).ok_or(HolderFault::NoSuchHolder {
            plan: pinned.plan_label(),
        })?;
        let record = RecoveryShare {
            holder: index,
            name: holder.name.clone(),
            envelope: Hash32(share.message_sha256),
            pins: Hash32(pins.pins_sha256),
            reader: pins.reader.into(),
            reader_name: pins.reader_name.clone(),
            personal: Fpr(pins.personal.clone()),
            personal_card: pins.personal_card.clone(),
            card: card_serial.0,
        };
        Ok((envelope, record))
    }

    /// Recombines the M (or more) accepted shares: every envelope is the pinned ceremony's,
    /// the secret matches the commitment, the root key re-derived from the secret and the
    /// generation plan's time has the pinned fingerprint, and it passes a self-test signature
    /// over the request hash. The shares and the secret are dropped (zeroized) here (for a
    /// `replace-card` request they are kept, until the holder's share is rebuilt); only the
    /// root key goes on, to the operation.
    pub fn recombine(self) -> Result<Recombined, Refused<Collecting>> {
        let progress = self.progress();
        if !progress.complete() {
            return Err(Refused::new(
                self,
                FlowError::NotEnoughShares {
                    have: progress.have,
                    needed: progress.needed,
                },
            ));
        }
        match self.prove() {
            Ok((root, record, secret)) => {
                let mut common = self.common;
                let mut t = common.transcript.clone();
                match push(&mut t, &record) {
                    Ok(()) => {
                        common.transcript = t;
                        let holders = self.accepted.iter().map(|a| a.index).collect();
                        // Only replace-card needs the shares and the secret after this; for
                        // every other operation they are dropped (zeroized) here.
                        let kept = match (&common.request.operation, secret) {
                            (
                                Operation::ReplaceCard { .. } | Operation::Reshare { .. },
                                Some(secret),
                            ) => Some(Kept {
                                secret,
                                accepted: self.accepted,
                            }),
                            _ => None,
                        };
                        Ok(Recombined {
                            common,
                            root,
                            holders,
                            kept,
                            seconds: Seconds::default(),
                        })
                    }
                    Err(e) => Err(Refused::new(
                        Collecting {
                            common,
                            accepted: self.accepted,
                        },
                        e,
                    )),
                }
            }
            Err(e) => Err(Refused::new(self, e)),
        }
    }

    /// The root key re-derived and proven, its record, and (for `replace-card` only) the
    /// secret.
    fn prove(&self) -> Result<(RootKey, RecoveryRecombined, Option<RootSecret>), FlowError> {
        let pinned = &self.common.pinned;
        let envelopes: Vec<&Envelope> = self.accepted.iter().map(|a| &a.envelope).collect();
        let recovered = pinned.recombine(&envelopes).map_err(FlowError::Recombine)?;
        // Re-derived here from the secret and the pinned key time, the generation plan's time
        // (not the envelopes', nor the current plan's: after a reshare that is the reshare
        // request's), and compared with the pinned fingerprint once more.
        let plan = pinned.plan();
        let root = RootKey::derive(&recovered.secret, &plan.ceremony_id, pinned.key_time())?;
        let secret = match self.common.request.operation {
            Operation::ReplaceCard { .. } | Operation::Reshare { .. } => Some(recovered.secret),
            _ => None,
        };
        if root.fingerprint() != *pinned.root_fingerprint()
            || root.public_cert().fingerprint() != *pinned.root_fingerprint()
        {
            return Err(FlowError::Recombine(RecoveryError::Recombine(
                crate::recombine::RecombineError::FingerprintMismatch {
                    derived: root.fingerprint().to_hex(),
                    expected: pinned.root_fingerprint().to_hex(),
                },
            )));
        }
        root.self_test(&self.common.request.hash())?;
        let record = RecoveryRecombined {
            holders: self
                .holders()
                .iter()
                .map(u8::to_string)
                .collect::<Vec<_>>()
                .join(","),
            threshold: plan.threshold,
            commitment: Passed,
            root: Fpr(root.fingerprint().to_hex()),
            self_test: Passed,
        };
        Ok((root, record, secret))
    }
}

/// What `replace-card` and `reshare` need after recombination: the secret and the accepted
/// shares. Both are zeroized when dropped ([`RootSecret`], and each envelope's share); dropped
/// as soon as the holder's share is rebuilt and sealed (replace-card) or the new shares are
/// made (reshare).
struct Kept {
    secret: RootSecret,
    accepted: Vec<Accepted>,
}

/// The root key is back in memory, proven to be the pinned one; the request's operation is
/// next. Holds the root key (no `Debug` of it; dropped when this phase is).
pub struct Recombined {
    common: Common,
    root: RootKey,
    holders: Vec<u8>,
    /// `replace-card` and `reshare` only: the secret and the shares, until the new share(s)
    /// are made.
    kept: Option<Kept>,
    /// The second implementations replace-card's interpolation and reshare's split are
    /// checked against.
    seconds: Seconds,
}

impl fmt::Debug for Recombined {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Recombined")
            .field("request_hash", &self.common.request.hash_hex())
            .field("root", &self.root.fingerprint().to_hex())
            .finish()
    }
}

impl Recombined {
    /// The re-derived root key's fingerprint (the pinned one).
    pub fn root_fingerprint(&self) -> openpgp::Fingerprint {
        self.root.fingerprint()
    }

    /// The holders whose shares were recombined, in the order they came.
    pub fn holders(&self) -> Vec<u8> {
        self.holders.clone()
    }

    /// The request.
    pub fn request(&self) -> &Request {
        &self.common.request
    }

    /// Performs the request's operation and finishes the transcript, signed by the root key.
    /// `read` gives a file of the request stick by name (for `sign`). The root key is dropped
    /// with this phase; on a refusal it comes back unchanged (to retry, or to drop).
    ///
    /// Supported: `sign`, `prove-quorum`, `certify`. `replace-card` is refused with
    /// [`FlowError::ReplaceCardNeedsCards`] (it is [`Recombined::start_replace_card`]'s), and
    /// `reshare` with [`FlowError::ReshareNeedsCards`] (it is [`Recombined::start_reshare`]'s),
    /// before anything is signed.
    pub fn perform(
        self,
        read: &dyn Fn(&str) -> io::Result<Vec<u8>>,
    ) -> Result<Finished, Refused<Recombined>> {
        match self.outputs(read) {
            Ok(f) => Ok(f),
            Err(e) => Err(Refused::new(self, e)),
        }
    }

    fn sign_detached(&self, data: &[u8]) -> Result<Vec<u8>, KeyError> {
        let mut signer = self.root.signer();
        let sig = SignatureBuilder::new(SignatureType::Binary)
            .set_signature_creation_time(self.common.request.time())
            .and_then(|b| b.sign_message(&mut signer, data))
            .map_err(key_err("a detached signature"))?;
        let binary = openpgp::Packet::from(sig)
            .to_vec()
            .map_err(key_err("a detached signature"))?;
        Ok(pgp::armor(&binary, openpgp::armor::Kind::Signature))
    }

    fn outputs(&self, read: &dyn Fn(&str) -> io::Result<Vec<u8>>) -> Result<Finished, FlowError> {
        let c = &self.common;
        let mut t = c.transcript.clone();
        let mut files = first_files(c, &self.root);
        match &c.request.operation {
            Operation::Sign { files: named } => {
                for (i, f) in named.iter().enumerate() {
                    let bytes = read_checked(read, f)?;
                    let digest = f.sha256;
                    let path = paths::signature(i + 1, &f.name);
                    let sig = self.sign_detached(&bytes)?;
                    push(
                        &mut t,
                        &RecoverySigned {
                            name: f.name.clone(),
                            sha256: Hash32(digest),
                            size: bytes.len(),
                            signature: path.clone(),
                        },
                    )?;
                    files.push(OutputFile { path, bytes: sig });
                }
            }
            Operation::ProveQuorum { challenge } => {
                let bytes = challenge.as_bytes().to_vec();
                let sig = self.sign_detached(&bytes)?;
                push(
                    &mut t,
                    &RecoveryQuorum {
                        challenge: Hash32(kdf::sha256(&bytes)),
                        signature: paths::CHALLENGE_SIG.into(),
                    },
                )?;
                files.push(OutputFile {
                    path: paths::CHALLENGE.into(),
                    bytes,
                });
                files.push(OutputFile {
                    path: paths::CHALLENGE_SIG.into(),
                    bytes: sig,
                });
            }
            Operation::Certify(certify) => {
                let cert = self.certify(certify, &mut t)?;
                files.push(OutputFile {
                    path: paths::CERTIFIED.into(),
                    bytes: cert,
                });
            }
            Operation::ReplaceCard { .. } => return Err(FlowError::ReplaceCardNeedsCards),
            Operation::Reshare { .. } => return Err(FlowError::ReshareNeedsCards),
        }
        finish_folder(&self.root, c.request.time_unix, t, files)
    }

    /// Certifies the request's user IDs (generic certifications, dated at the request time,
    /// expiring when the request says) and returns the certificate with them, armored.
    fn certify(
        &self,
        certify: &crate::request::Certify,
        t: &mut Transcript,
    ) -> Result<Vec<u8>, FlowError> {
        let cert = &certify.cert;
        let time = self.common.request.time();
        let mut signer = self.root.signer();
        let mut sigs = Vec::new();
        for uid in &certify.user_ids {
            let userid = openpgp::packet::UserID::from(uid.as_str());
            let mut b = SignatureBuilder::new(SignatureType::GenericCertification)
                .set_signature_creation_time(time)
                .map_err(key_err("a certification"))?;
            if let Some(expiry) = certify.expiry_unix {
                let lifetime = Duration::from_secs(u64::from(
                    expiry.saturating_sub(self.common.request.time_unix),
                ));
                b = b
                    .set_signature_validity_period(lifetime)
                    .map_err(key_err("a certification"))?;
            }
            let sig = b
                .sign_userid_binding(&mut signer, cert.primary_key().key(), &userid)
                .map_err(key_err("a certification"))?;
            sigs.push(openpgp::Packet::from(sig));
            push(
                t,
                &RecoveryCertified {
                    cert: Fpr(cert.fingerprint().to_hex()),
                    user_id: uid.clone(),
                    expiry: certify.expiry_unix.unwrap_or(0),
                },
            )?;
        }
        let (certified, _) = cert
            .clone()
            .insert_packets(sigs)
            .map_err(key_err("a certified certificate"))?;
        certified
            .armored()
            .to_vec()
            .map_err(key_err("a certified certificate"))
            .map_err(FlowError::from)
    }
}

/// The first files of every recovery folder: the request file and the root certificate.
fn first_files(c: &Common, root: &RootKey) -> Vec<OutputFile> {
    vec![
        OutputFile {
            path: paths::REQUEST.into(),
            bytes: c.request_bytes.clone(),
        },
        OutputFile {
            path: paths::ROOT_CERT.into(),
            bytes: root.armored_public_cert(),
        },
    ]
}

/// Lists `files` in `t` (`output.file` each, `ceremony.end`), signs it with the root key at
/// the request time and adds the transcript and its signature to the files.
fn finish_folder(
    root: &RootKey,
    time_unix: u32,
    mut t: Transcript,
    mut files: Vec<OutputFile>,
) -> Result<Finished, FlowError> {
    for f in &files {
        t.push_core(OutputRecord {
            path: f.path.clone(),
            size: f.bytes.len(),
            sha256: Hash32(kdf::sha256(&f.bytes)),
        })?;
    }
    t.push_core(CeremonyEnd { files: files.len() })?;
    let sig = t.sign(root, time_unix)?;
    files.push(OutputFile {
        path: paths::TRANSCRIPT.into(),
        bytes: t.to_text().into_bytes(),
    });
    files.push(OutputFile {
        path: paths::TRANSCRIPT_SIG.into(),
        bytes: sig,
    });
    Ok(Finished {
        final_words: t.final_words(),
        final_hash: t.final_hash(),
        transcript: t,
        files,
    })
}

/// The operation is done and the transcript signed; the root key is gone. Public data only.
#[derive(Clone, Debug)]
pub struct Finished {
    /// The output folder's files, in the order they are written (transcript and its
    /// signature last).
    pub files: Vec<OutputFile>,
    /// The recovery transcript.
    pub transcript: Transcript,
    /// Its final hash.
    pub final_hash: [u8; 32],
    /// Its final hash as PGP words, shown for the witnesses to write down.
    pub final_words: String,
}

impl Finished {
    /// Writes the output folder `dir` on every volume ([`storage::write_all`]: atomically,
    /// read back, never overwriting).
    pub fn write(
        &self,
        volumes: &mut [&mut dyn Volume],
        dir: &str,
    ) -> Result<WriteReport, WriteError> {
        storage::write_all(volumes, dir, &self.files)
    }
}

/// The kinds this module writes, for the documentation and the verifier.
pub const RECORD_KINDS: &[&str] = &[
    RecoveryGeneration::NAME,
    RecoveryReplaced::NAME,
    RecoveryRequest::NAME,
    RecoveryPolicy::NAME,
    RecoveryApproval::NAME,
    RecoveryShare::NAME,
    RecoveryRecombined::NAME,
    RecoverySigned::NAME,
    RecoveryQuorum::NAME,
    RecoveryCertified::NAME,
    RecoveryRebuilt::NAME,
    RecoveryLocation::NAME,
    RecoverySealed::NAME,
    RecoveryCard::NAME,
    RecoveryPins::NAME,
    RecoveryReshared::NAME,
    RecoveryReshare::NAME,
    RecoveryNewLocation::NAME,
    RecoveryNewSealed::NAME,
    RecoveryNewSubsets::NAME,
    RecoveryOldShares::NAME,
    RecoveryNewCard::NAME,
    RecoveryNewPins::NAME,
    record::OutputFile::NAME,
    record::CeremonyEnd::NAME,
];

/// A recovery transcript's record, typed (docs/formats/recovery.md).
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum RecoveryRecord {
    /// `recovery.generation`.
    Generation(RecoveryGeneration),
    /// `recovery.replaced`.
    Replaced(RecoveryReplaced),
    /// `recovery.request`.
    Request(RecoveryRequest),
    /// `recovery.policy`.
    Policy(RecoveryPolicy),
    /// `recovery.approval`.
    Approval(RecoveryApproval),
    /// `recovery.share`.
    Share(RecoveryShare),
    /// `recovery.recombined`.
    Recombined(RecoveryRecombined),
    /// `recovery.signed`.
    Signed(RecoverySigned),
    /// `recovery.quorum`.
    Quorum(RecoveryQuorum),
    /// `recovery.certified`.
    Certified(RecoveryCertified),
    /// `recovery.rebuilt`.
    Rebuilt(RecoveryRebuilt),
    /// `recovery.location`.
    Location(RecoveryLocation),
    /// `recovery.sealed`.
    Sealed(RecoverySealed),
    /// `recovery.card`.
    Card(RecoveryCard),
    /// `recovery.pins`.
    Pins(RecoveryPins),
    /// `recovery.reshared`.
    Reshared(RecoveryReshared),
    /// `recovery.reshare`.
    Reshare(RecoveryReshare),
    /// `recovery.new-location`.
    NewLocation(RecoveryNewLocation),
    /// `recovery.new-sealed`.
    NewSealed(RecoveryNewSealed),
    /// `recovery.new-subsets`.
    NewSubsets(RecoveryNewSubsets),
    /// `recovery.old-shares`.
    OldShares(RecoveryOldShares),
    /// `recovery.new-card`.
    NewCard(RecoveryNewCard),
    /// `recovery.new-pins`.
    NewPins(RecoveryNewPins),
    /// `output.file`.
    Output(record::OutputFile),
    /// `ceremony.end`.
    End(CeremonyEnd),
    /// `witness.confirm`: the witnesses confirmed what a screen showed.
    WitnessConfirm(record::WitnessConfirm),
    /// A caller's record (any other kind that is neither the core's nor `recovery.*`).
    Note(Note),
}

/// Why a transcript is not a recovery transcript's records.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[non_exhaustive]
pub enum RecordsError {
    /// The first record is not `recovery.generation`: not a recovery transcript.
    #[error("record 1 is {0:?}, not recovery.generation: this is not a recovery transcript")]
    NotRecovery(String),
    /// A record of a kind a recovery transcript does not have.
    #[error("record {seq}: a recovery transcript has no {kind:?} records")]
    UnknownKind {
        /// The record's number.
        seq: u32,
        /// Its kind.
        kind: String,
    },
    /// A record's value is not its kind's fields.
    #[error("record {seq}: {source}")]
    Bad {
        /// The record's number.
        seq: u32,
        /// Why.
        source: RecordError,
    },
}

/// Reads every record of a recovery transcript, strictly typed: its first record must be
/// `recovery.generation`, every record one of the kinds of docs/formats/recovery.md with
/// exactly its fields.
pub fn records(t: &Transcript) -> Result<Vec<RecoveryRecord>, RecordsError> {
    match t.records().first() {
        Some(r) if r.kind == RecoveryGeneration::NAME => {}
        first => {
            return Err(RecordsError::NotRecovery(
                first.map_or(String::new(), |r| r.kind.clone()),
            ));
        }
    }
    let mut out = Vec::with_capacity(t.records().len());
    for r in t.records() {
        let bad = |source| RecordsError::Bad { seq: r.seq, source };
        let v = r.value.as_str();
        let typed = match r.kind.as_str() {
            RecoveryGeneration::NAME => {
                RecoveryRecord::Generation(RecoveryGeneration::parse(v).map_err(bad)?)
            }
            RecoveryReplaced::NAME => {
                RecoveryRecord::Replaced(RecoveryReplaced::parse(v).map_err(bad)?)
            }
            RecoveryRequest::NAME => {
                RecoveryRecord::Request(RecoveryRequest::parse(v).map_err(bad)?)
            }
            RecoveryPolicy::NAME => RecoveryRecord::Policy(RecoveryPolicy::parse(v).map_err(bad)?),
            RecoveryApproval::NAME => {
                RecoveryRecord::Approval(RecoveryApproval::parse(v).map_err(bad)?)
            }
            RecoveryShare::NAME => RecoveryRecord::Share(RecoveryShare::parse(v).map_err(bad)?),
            RecoveryRecombined::NAME => {
                RecoveryRecord::Recombined(RecoveryRecombined::parse(v).map_err(bad)?)
            }
            RecoverySigned::NAME => RecoveryRecord::Signed(RecoverySigned::parse(v).map_err(bad)?),
            RecoveryQuorum::NAME => RecoveryRecord::Quorum(RecoveryQuorum::parse(v).map_err(bad)?),
            RecoveryCertified::NAME => {
                RecoveryRecord::Certified(RecoveryCertified::parse(v).map_err(bad)?)
            }
            RecoveryRebuilt::NAME => {
                RecoveryRecord::Rebuilt(RecoveryRebuilt::parse(v).map_err(bad)?)
            }
            RecoveryLocation::NAME => {
                RecoveryRecord::Location(RecoveryLocation::parse(v).map_err(bad)?)
            }
            RecoverySealed::NAME => RecoveryRecord::Sealed(RecoverySealed::parse(v).map_err(bad)?),
            RecoveryCard::NAME => RecoveryRecord::Card(RecoveryCard::parse(v).map_err(bad)?),
            RecoveryPins::NAME => RecoveryRecord::Pins(RecoveryPins::parse(v).map_err(bad)?),
            RecoveryReshared::NAME => {
                RecoveryRecord::Reshared(RecoveryReshared::parse(v).map_err(bad)?)
            }
            RecoveryReshare::NAME => {
                RecoveryRecord::Reshare(RecoveryReshare::parse(v).map_err(bad)?)
            }
            RecoveryNewLocation::NAME => {
                RecoveryRecord::NewLocation(RecoveryNewLocation::parse(v).map_err(bad)?)
            }
            RecoveryNewSealed::NAME => {
                RecoveryRecord::NewSealed(RecoveryNewSealed::parse(v).map_err(bad)?)
            }
            RecoveryNewSubsets::NAME => {
                RecoveryRecord::NewSubsets(RecoveryNewSubsets::parse(v).map_err(bad)?)
            }
            RecoveryOldShares::NAME => {
                RecoveryRecord::OldShares(RecoveryOldShares::parse(v).map_err(bad)?)
            }
            RecoveryNewCard::NAME => {
                RecoveryRecord::NewCard(RecoveryNewCard::parse(v).map_err(bad)?)
            }
            RecoveryNewPins::NAME => {
                RecoveryRecord::NewPins(RecoveryNewPins::parse(v).map_err(bad)?)
            }
            record::OutputFile::NAME => {
                RecoveryRecord::Output(record::OutputFile::parse(v).map_err(bad)?)
            }
            record::CeremonyEnd::NAME => RecoveryRecord::End(CeremonyEnd::parse(v).map_err(bad)?),
            record::WitnessConfirm::NAME => {
                RecoveryRecord::WitnessConfirm(record::WitnessConfirm::parse(v).map_err(bad)?)
            }
            other
                if !other.starts_with("recovery.") && record::Kind::from_name(other).is_none() =>
            {
                RecoveryRecord::Note(Note::parse(other, v).map_err(bad)?)
            }
            other => {
                return Err(RecordsError::UnknownKind {
                    seq: r.seq,
                    kind: other.to_string(),
                });
            }
        };
        out.push(typed);
    }
    Ok(out)
}

#[cfg(test)]
mod message_tests {
    use super::*;

    /// A holder refusal names the holder once, whether or not the fault already does.
    #[test]
    fn a_holder_refusal_names_the_holder_once() {
        let own = FlowError::Holder {
            index: 2,
            holder: "Bob".into(),
            fault: HolderFault::NoSuchHolder {
                plan: "the generation plan",
            },
        };
        assert_eq!(
            own.to_string(),
            "holder 2 (Bob): not a holder of the generation plan"
        );
        let named = FlowError::Holder {
            index: 2,
            holder: "Bob".into(),
            fault: HolderFault::Share(RecoveryError::NoSuchHolder {
                plan: "the generation plan",
                holder: 2,
                count: 1,
            }),
        };
        assert_eq!(
            named.to_string(),
            "holder 2 is not in the generation plan (holders 1..=1)"
        );
    }
}
