//! The generation ceremony as types: each phase is a type that holds exactly its data, and a
//! step consumes its phase and returns the next (or hands the phase back with the reason it
//! refused). A step that does not exist in a phase does not compile:
//!
//! [`Planned`] -> `generate_keys` -> [`Keyed`] -> `seal_shares` -> [`Sealed`] (`provision_card`
//! for each card) -> `cards_complete` -> [`Provisioned`] -> `verify` -> [`Verified`] -> `finish`
//! -> [`Finished`] (the output files; every secret already dropped and zeroized).
//!
//! Shares are sealed before the cards are provisioned so that each card, during its single
//! insertion, decrypts its own real share as its test decryption (design steps 5 to 7). Every
//! step returns plain public data for the screens and appends to the transcript; secrets stay
//! inside. The caller adds its own public records (boot attestation, entropy report, witness
//! confirmations) with `record`, in every phase before [`Finished`].
//!
//! ```
//! # fn walk(plan_text: &str, rng: &mut dyn ceremony::rng::SecretRng,
//! #         card: &mut dyn ceremony::card::LocationCard,
//! #         approved: &ceremony::ceremony::Approved) -> Result<(), ceremony::ceremony::CeremonyError> {
//! use ceremony::ceremony::Planned;
//! let planned = Planned::new(plan_text)?;
//! let (keyed, _keys) = planned.generate_keys(rng).map_err(|r| r.error)?;
//! let (mut sealed, _) = keyed.seal_shares(rng).map_err(|r| r.error)?;
//! while let Some(next) = sealed.next_card() {
//!     // `approved`: the card the screen showed (its serial; whether it may hold keys).
//!     sealed.provision_card(next.holder, next.card, card, approved)?;
//! }
//! let provisioned = sealed.cards_complete().map_err(|r| r.error)?;
//! let (verified, _) = provisioned.verify(rng).map_err(|r| r.error)?;
//! let (finished, _files, _view) = verified.finish().map_err(|r| r.error)?;
//! # let _ = finished.transcript(); Ok(()) }
//! ```
//!
//! Out of order, it does not compile: no sealing before the keys,
//! ```compile_fail
//! # fn f(p: ceremony::ceremony::Planned, rng: &mut dyn ceremony::rng::SecretRng) {
//! p.seal_shares(rng);
//! # }
//! ```
//! no second key generation,
//! ```compile_fail
//! # fn f(k: ceremony::ceremony::Keyed, rng: &mut dyn ceremony::rng::SecretRng) {
//! k.generate_keys(rng);
//! # }
//! ```
//! no verification before every card is provisioned,
//! ```compile_fail
//! # fn f(s: ceremony::ceremony::Sealed, rng: &mut dyn ceremony::rng::SecretRng) {
//! s.verify(rng);
//! # }
//! ```
//! no card provisioned once the cards are complete,
//! ```compile_fail
//! # fn f(p: &mut ceremony::ceremony::Provisioned, card: &mut dyn ceremony::card::LocationCard) {
//! p.provision_card(1, 1, card);
//! # }
//! ```
//! no outputs before verification,
//! ```compile_fail
//! # fn f(p: ceremony::ceremony::Provisioned) {
//! p.finish();
//! # }
//! ```
//! and no record once the transcript is signed.
//! ```compile_fail
//! # fn f(mut d: ceremony::ceremony::Finished, r: &ceremony::ceremony::Record) {
//! d.record(r);
//! # }
//! ```

use sequoia_openpgp as openpgp;

use crate::card::{CardSerial, LocationCard};
use crate::dual::{Disagreement, Seconds};
use crate::envelope::{self, Envelope, EnvelopeHeader, OpenShareError};
use crate::keys::{self, KeyError, LocationKey, RootKey};
use crate::pinfile::{PinEntry, PinFile};
use crate::plan::{Plan, PlanError};
use crate::recombine::{self, Expected, RecombineError, SubsetReport};
use crate::record::{self, Fpr, Hash32, Note, Passed, SubsetPolicy, SubsetTotal};
use crate::rng::SecretRng;
use crate::secret::{CardPins, RootSecret, ShareBytes};
use crate::shamir::{self, CrossCheck, ShamirError};
use crate::shardfile::{SealedShare, ShardFile};
use crate::storage::OutputFile;
use crate::transcript::{Transcript, TranscriptError};
use crate::{hex, kdf, words};

/// The next card to ask for, while [`Sealed`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NextCard {
    /// Holder index, 1-based, as in the plan.
    pub holder: u8,
    /// Card number within the holder, 1-based.
    pub card: u8,
    /// The holder's name, as in the plan.
    pub holder_name: String,
    /// How many cards this holder gets in all.
    pub cards_for_holder: u8,
}

/// The card the operator's screen approved for provisioning, as the device layer saw it when
/// it polled the reader. [`Sealed::provision_card`] checks it again on the open card, right
/// before the reset.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Approved {
    /// The serial the screen showed.
    pub serial: CardSerial,
    /// Whether the card may hold keys: only a card whose provisioning this ceremony started
    /// and that failed part way.
    pub may_hold_keys: bool,
}

/// A step that refused: the phase it was given, unchanged (boxed: phases are large), and why.
pub struct Refused<S> {
    /// The phase the step was given, to retry the step from or to drop (abort).
    pub state: Box<S>,
    /// Why the step refused.
    pub error: CeremonyError,
}

impl<S> Refused<S> {
    fn new(state: S, error: impl Into<CeremonyError>) -> Self {
        Refused {
            state: Box::new(state),
            error: error.into(),
        }
    }
}

impl<S> std::fmt::Debug for Refused<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Refused({:?})", self.error)
    }
}

/// Why a step refused.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CeremonyError {
    /// The plan was refused.
    #[error(transparent)]
    Plan(#[from] PlanError),
    /// Building a key, message or signature failed inside Sequoia (a bug, not bad input).
    #[error(transparent)]
    Key(KeyError),
    /// A root key signature, its derivation or a fingerprint differs between the two
    /// implementations (docs/dual-implementations.md): the step stopped, nothing from it is
    /// used or written. (A Shamir disagreement is [`ShamirError::ImplementationsDisagree`].)
    #[error("{what}: {source}; stop: nothing from this step is used")]
    ImplementationsDisagree {
        /// What was being built.
        what: &'static str,
        /// What differed.
        source: Disagreement,
    },
    /// Splitting the root secret failed.
    #[error(transparent)]
    Shamir(#[from] ShamirError),
    /// The transcript refused a record (a caller's record that is not well formed).
    #[error(transparent)]
    Transcript(#[from] TranscriptError),
    /// The holder or card number is not in the plan.
    #[error("holder {holder} card {card} does not exist in the plan")]
    NoSuchCard {
        /// Holder index asked for, 1-based.
        holder: u8,
        /// Card number asked for, 1-based.
        card: u8,
    },
    /// That card of that holder was already provisioned in this ceremony.
    #[error("holder {holder} card {card} was already provisioned (serial {serial})")]
    AlreadyProvisioned {
        /// Holder index, 1-based.
        holder: u8,
        /// Card number within the holder, 1-based.
        card: u8,
        /// Serial of the card already provisioned in that place.
        serial: String,
    },
    /// The card or reader failed while its serial was read or while it was provisioned.
    #[error("holder {holder} card {card}: {source}")]
    Card {
        /// Holder index, 1-based.
        holder: u8,
        /// Card number within the holder, 1-based.
        card: u8,
        /// The card's error.
        source: crate::card::CardError,
    },
    /// The freshly provisioned card could not open its holder's sealed share.
    #[error(
        "holder {holder} card {card}: test decryption failed: {source}; use another blank card"
    )]
    TestDecryption {
        /// Holder index, 1-based.
        holder: u8,
        /// Card number within the holder, 1-based.
        card: u8,
        /// Why opening the share failed.
        source: OpenShareError,
    },
    /// The card opened the sealed share, but the share or envelope header differs from what
    /// was sealed.
    #[error(
        "holder {holder} card {card}: the card decrypted a share that differs from the one sealed; the card or reader is faulty, use another blank card"
    )]
    WrongShareFromCard {
        /// Holder index, 1-based.
        holder: u8,
        /// Card number within the holder, 1-based.
        card: u8,
    },
    /// The inserted card's serial was already provisioned in this ceremony.
    #[error(
        "serial {serial} was already used for holder {holder} card {card}: insert a different card"
    )]
    DuplicateSerial {
        /// The serial the inserted card reports.
        serial: String,
        /// Holder index the serial was provisioned for earlier, 1-based.
        holder: u8,
        /// Card number it was provisioned as earlier, 1-based.
        card: u8,
    },
    /// The card opened is not the one the screen approved (swapped since the reader was
    /// looked at): nothing was done to it.
    #[error(
        "the card in the reader is {found}, not {approved} as shown: nothing was changed on it; insert the card again"
    )]
    CardSwapped {
        /// The serial the screen approved.
        approved: String,
        /// The serial of the card actually opened.
        found: String,
    },
    /// The card holds keys and this ceremony did not start on it: it was not reset.
    #[error(
        "card {serial} holds keys: it was not reset (sherd never erases a card it did not start on); use a blank card"
    )]
    NotBlank {
        /// The card's serial.
        serial: String,
    },
    /// Not every card is provisioned yet.
    #[error("cards not yet provisioned: {missing:?} (holder, card)")]
    CardsMissing {
        /// (holder index, card number) pairs still to provision, both 1-based, in plan order.
        missing: Vec<(u8, u8)>,
    },
    /// An M-subset of the shares does not recombine to the secret: abort. The subset's share
    /// positions, 1-based (= holder indices).
    #[error(
        "the M-subset at share positions {0:?} does not recombine to the secret; abort: nothing from this ceremony may be used"
    )]
    SubsetFailed(Vec<usize>),
    /// Recombining the shares as the cards decrypted them was refused: abort.
    #[error(
        "recombination from the cards' decryptions failed: {0}; abort: nothing from this ceremony may be used"
    )]
    Recombine(#[from] RecombineError),
}

impl From<KeyError> for CeremonyError {
    fn from(e: KeyError) -> Self {
        match e.disagreement {
            Some(source) => CeremonyError::ImplementationsDisagree {
                what: e.what,
                source,
            },
            None => CeremonyError::Key(e),
        }
    }
}

/// Public results of the key step.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KeysView {
    /// Root certificate fingerprint, 40 upper-case hex digits.
    pub root_fingerprint: String,
    /// The fingerprint's 20 bytes as PGP words separated by spaces, for the witnesses.
    pub root_fingerprint_words: String,
    /// (holder index, holder name, location certificate fingerprint).
    pub locations: Vec<(u8, String, String)>,
}

/// Public results of the seal step.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SealView {
    /// (holder index, SHA-256 of the sealed message, hex).
    pub sealed: Vec<(u8, String)>,
}

/// Public results of one card's provisioning.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CardView {
    /// Holder index, 1-based.
    pub holder: u8,
    /// Card number within the holder, 1-based.
    pub card: u8,
    /// The card's serial number as the card reports it.
    pub serial: String,
    /// Fingerprint of the location certificate whose key the card now holds, upper-case hex.
    pub location_fingerprint: String,
}

/// Public results of verification.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VerifyView {
    /// How many M-subsets were recombined, out of how many, and by which policy.
    pub subsets: SubsetReport,
    /// The random nonce the root key signed and verified, 64 lower-case hex digits.
    pub self_test_nonce: String,
}

/// Public results of the final step.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FinishView {
    /// (path, size, SHA-256 hex) of every output file.
    pub files: Vec<(String, usize, String)>,
    /// The signed transcript's final hash, 64 lower-case hex digits.
    pub transcript_final_hash: String,
    /// The same hash as PGP words, for the witnesses to write down.
    pub transcript_final_words: String,
}

/// What a caller may add to the transcript: its own public notes, and the witnesses'
/// confirmations of a step. The core's other records are written only by the core.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Record {
    /// A caller's public record (boot attestation, entropy report).
    Note(Note),
    /// The witnesses confirmed what a step showed.
    WitnessConfirm(record::WitnessConfirm),
}

impl Record {
    fn write<'t>(
        &self,
        t: &'t mut Transcript,
    ) -> Result<&'t crate::transcript::Record, crate::transcript::TranscriptError> {
        match self {
            Record::Note(n) => t.push_note(n),
            Record::WitnessConfirm(w) => t.push_core(w.clone()),
        }
    }
}

impl From<Note> for Record {
    fn from(n: Note) -> Self {
        Record::Note(n)
    }
}

impl From<record::WitnessConfirm> for Record {
    fn from(w: record::WitnessConfirm) -> Self {
        Record::WitnessConfirm(w)
    }
}

/// Output file names inside the ceremony folder.
pub mod paths {
    /// The plan, byte for byte as read from the plan stick.
    pub const PLAN: &str = "plan.toml";
    /// The public root certificate, ASCII-armored.
    pub const ROOT_CERT: &str = "root-cert.asc";
    /// The shard file ([`crate::shardfile`]).
    pub const SHARDS: &str = "shards.toml";
    /// The transcript text ([`crate::transcript`]).
    pub const TRANSCRIPT: &str = "transcript.txt";
    /// The root key's ASCII-armored detached signature over the transcript text.
    pub const TRANSCRIPT_SIG: &str = "transcript.txt.sig";

    /// The PIN file of holder `index`.
    pub fn pin_file(index: u8) -> String {
        format!("pins/holder-{index:03}.asc")
    }

    /// The folder of the witnesses' signatures over the transcript.
    pub const WITNESS_SIGNATURES: &str = "witness-signatures";

    /// Witness `index`'s (1-based, plan order) detached signature over `transcript.txt`
    /// (docs/formats/witness-signatures.md). Not listed in the transcript: it signs it.
    pub fn witness_signature(index: usize) -> String {
        format!("{WITNESS_SIGNATURES}/{index}.sig")
    }
}

/// What every phase holds: the validated plan, its text, and the transcript so far.
struct Common {
    plan: Plan,
    plan_text: String,
    transcript: Transcript,
    /// The second implementations every result is checked against.
    seconds: Seconds,
}

impl Common {
    fn header(&self, root: &RootKey, index: u8, commitment: [u8; 32]) -> EnvelopeHeader {
        envelope_header(&self.plan, root, index, commitment, self.plan.time_unix)
    }
}

/// The header of holder `index`'s envelope under `plan`: the same at generation, when a
/// replace-card recovery seals the holder's rebuilt share again, and when a reshare seals the
/// new shares (under the new plan). `key_time` is the root key's creation time, the
/// generation plan's time (equal to `plan.time_unix` only at generation: after a reshare the
/// plan is the reshare request's, dated later).
pub(crate) fn envelope_header(
    plan: &Plan,
    root: &RootKey,
    index: u8,
    commitment: [u8; 32],
    key_time: u32,
) -> EnvelopeHeader {
    EnvelopeHeader {
        ceremony_id: plan.ceremony_id.clone(),
        index,
        threshold: plan.threshold,
        count: plan.holder_count(),
        key_time,
        plan_hash: plan.hash(),
        commitment,
        root_fingerprint: root.fingerprint().as_bytes().to_vec(),
    }
}

/// Draws a holder's location key (dated the plan time, as every key of the ceremony) and one
/// set of PINs per card from the DRBG: at generation for every holder, at a replace-card
/// recovery for the holder whose cards are replaced.
///
/// The key is dated `key_time`, the root key's creation time (the generation plan's time, also
/// after a reshare): a recovery opens a sealed share against the root and location
/// certificates as of the root key's creation, since the machine clock is not trusted.
pub(crate) fn draw_location(
    rng: &mut dyn SecretRng,
    plan: &Plan,
    holder: &crate::plan::Holder,
    cards: u8,
    key_time: u32,
) -> Result<(LocationKey, Vec<CardPins>), KeyError> {
    let location =
        LocationKey::generate(rng, &plan.ceremony_id, holder.index, &holder.name, key_time)?;
    let pins = (0..cards).map(|_| CardPins::generate(rng)).collect();
    Ok((location, pins))
}

/// What one card's provisioning needs: the holder's location key and this card's PINs, the
/// holder's sealed share and what the card must decrypt from it.
pub(crate) struct CardJob<'a> {
    /// Holder index, 1-based.
    pub holder: u8,
    /// Card number within the holder, 1-based.
    pub card: u8,
    /// The location key the card gets.
    pub location: &'a LocationKey,
    /// This card's PINs.
    pub pins: &'a CardPins,
    /// The holder's sealed share (binary message), encrypted to `location`.
    pub sealed: &'a [u8],
    /// The root certificate that signed it.
    pub root_cert: &'a openpgp::Cert,
    /// The share sealed in it.
    pub share: &'a ShareBytes,
    /// The envelope header sealed with it.
    pub header: &'a EnvelopeHeader,
}

/// Provisions one blank card in its single insertion, as generation and replace-card do: reads
/// its serial, refuses a serial `used` names (already provisioned: its holder and card
/// number), a card that is not the one the screen approved or that holds keys (unless
/// approved so), imports the location key and PINs, then has the card decrypt the holder's
/// sealed share and compares share and header with the ones sealed. Returns the serial and
/// the envelope as the card decrypted it; nothing is recorded here.
pub(crate) fn provision_one(
    job: &CardJob<'_>,
    device: &mut dyn LocationCard,
    approved: &Approved,
    used: &dyn Fn(&CardSerial) -> Option<(u8, u8)>,
) -> Result<(CardSerial, Envelope), CeremonyError> {
    let (holder, card) = (job.holder, job.card);
    let card_err = |source| CeremonyError::Card {
        holder,
        card,
        source,
    };
    // Read the serial first: a card already provisioned must not be reset and re-keyed by
    // mistake.
    let serial = device.serial().map_err(card_err)?;
    if let Some((h, c)) = used(&serial) {
        return Err(CeremonyError::DuplicateSerial {
            serial: serial.0.clone(),
            holder: h,
            card: c,
        });
    }
    // On this handle, immediately before the reset: the card is the one the screen approved,
    // and it is blank unless this ceremony started on it. (A card pulled and another inserted
    // ends this handle's session: its next command fails.)
    if serial != approved.serial {
        return Err(CeremonyError::CardSwapped {
            approved: approved.serial.0.clone(),
            found: serial.0.clone(),
        });
    }
    if !approved.may_hold_keys && device.holds_keys().map_err(card_err)? {
        return Err(CeremonyError::NotBlank {
            serial: serial.0.clone(),
        });
    }
    let provisioned = device
        .provision(&job.location.card_import(), job.pins)
        .map_err(card_err)?;
    if provisioned != serial {
        return Err(card_err(crate::card::CardError::Device(format!(
            "serial changed from {serial} to {provisioned} during provisioning"
        ))));
    }
    let opened = envelope::open_with_card(
        job.sealed,
        device,
        &job.pins.user,
        job.location.cert(),
        job.root_cert,
    )
    .map_err(|source| CeremonyError::TestDecryption {
        holder,
        card,
        source,
    })?;
    if opened.share.expose_secret() != job.share.expose_secret() || opened.header != *job.header {
        return Err(CeremonyError::WrongShareFromCard { holder, card });
    }
    Ok((serial, opened))
}

/// Seals holder `index`'s PIN file (the cards' serials and PINs, in card order) to the holder's
/// and the backup holder's personal certificates, signed by the root key and dated the plan
/// time: at generation and at a replace-card recovery. Returns the armored file and the
/// recipients' fingerprints (the holder's certificates, then the backup's).
///
/// The recipients' encryption keys are those valid at the plan's time; the root signature is
/// dated `key_time`, the root key's creation time (equal to the plan's time but after a
/// reshare, whose plan is dated later).
pub(crate) fn seal_pin_file(
    plan: &Plan,
    root: &RootKey,
    index: u8,
    serials: &[CardSerial],
    pins: &[CardPins],
    key_time: u32,
) -> Result<(Vec<u8>, Vec<Fpr>), CeremonyError> {
    let h = plan.holder(index).ok_or(CeremonyError::NoSuchCard {
        holder: index,
        card: 1,
    })?;
    let pf = PinFile {
        ceremony_id: plan.ceremony_id.clone(),
        holder: h.index,
        name: h.name.clone(),
        cards: pins
            .iter()
            .zip(serials)
            .enumerate()
            .map(|(i, (p, s))| PinEntry {
                card: small(i + 1),
                serial: s.clone(),
                pins: CardPins {
                    user: crate::secret::Pin::from_string(p.user.expose_secret().to_string()),
                    admin: crate::secret::Pin::from_string(p.admin.expose_secret().to_string()),
                },
            })
            .collect(),
    };
    let backup = plan.holder(h.backup).ok_or(CeremonyError::NoSuchCard {
        holder: h.backup,
        card: 1,
    })?;
    let recipients: Vec<&openpgp::Cert> = h
        .certs
        .iter()
        .chain(backup.certs.iter())
        .map(|c| &c.cert)
        .collect();
    let armored = pf.seal_at(root, &recipients, plan.time_unix, key_time)?;
    let fprs = recipients
        .iter()
        .map(|c| Fpr(c.fingerprint().to_hex()))
        .collect();
    Ok((armored, fprs))
}

/// Which cards of a plan are provisioned: `slots[holder-1][card-1]`, each card's serial once
/// it is in. Generation and a reshare fill one slot per card, in plan order.
pub(crate) struct CardSlots(Vec<Vec<Option<CardSerial>>>);

impl CardSlots {
    /// Every card of `plan`, none provisioned yet.
    pub(crate) fn new(plan: &Plan) -> CardSlots {
        CardSlots(
            plan.holders
                .iter()
                .map(|h| vec![None; usize::from(h.cards)])
                .collect(),
        )
    }

    /// How many cards in all.
    pub(crate) fn total(&self) -> usize {
        self.0.iter().map(Vec::len).sum()
    }

    /// The (holder, card) pairs still to provision, in plan order.
    pub(crate) fn missing(&self) -> Vec<(u8, u8)> {
        let mut out = Vec::new();
        for (h, cards) in self.0.iter().enumerate() {
            for (c, s) in cards.iter().enumerate() {
                if s.is_none() {
                    out.push((small(h + 1), small(c + 1)));
                }
            }
        }
        out
    }

    /// The next card to provision, in `plan` order; `None` once every card is done.
    pub(crate) fn next(&self, plan: &Plan) -> Option<NextCard> {
        let (holder, card) = *self.missing().first()?;
        let h = plan.holder(holder)?;
        Some(NextCard {
            holder,
            card,
            holder_name: h.name.clone(),
            cards_for_holder: h.cards,
        })
    }

    /// The 0-based slot of card `card` of holder `holder` (both 1-based), if the plan has it
    /// and it is not provisioned yet.
    pub(crate) fn free(&self, holder: u8, card: u8) -> Result<(usize, usize), CeremonyError> {
        let no_such = || CeremonyError::NoSuchCard { holder, card };
        let hi = usize::from(holder)
            .checked_sub(1)
            .filter(|&i| i < self.0.len())
            .ok_or_else(no_such)?;
        let ci = usize::from(card)
            .checked_sub(1)
            .filter(|&i| i < self.0[hi].len())
            .ok_or_else(no_such)?;
        match &self.0[hi][ci] {
            Some(s) => Err(CeremonyError::AlreadyProvisioned {
                holder,
                card,
                serial: s.0.clone(),
            }),
            None => Ok((hi, ci)),
        }
    }

    /// Which (holder, card) `serial` was provisioned as, if it was.
    pub(crate) fn holding(&self, serial: &CardSerial) -> Option<(u8, u8)> {
        self.0.iter().enumerate().find_map(|(h, cards)| {
            cards
                .iter()
                .position(|s| s.as_ref() == Some(serial))
                .map(|c| (small(h + 1), small(c + 1)))
        })
    }

    /// Records `serial` in the slot [`CardSlots::free`] gave.
    pub(crate) fn fill(&mut self, (hi, ci): (usize, usize), serial: CardSerial) {
        self.0[hi][ci] = Some(serial);
    }

    /// Each holder's serials in card order, once every slot is filled.
    pub(crate) fn complete(&self) -> Option<Vec<Vec<CardSerial>>> {
        self.0
            .iter()
            .map(|cards| cards.iter().cloned().collect::<Option<Vec<_>>>())
            .collect()
    }
}

/// One holder's secrets from the key step on.
struct Holder {
    location: LocationKey,
    /// One set of PINs per card the holder gets.
    pins: Vec<CardPins>,
}

/// The secrets made at the key step: the root secret and key, each holder's location key and
/// PINs. Dropping them zeroizes them.
struct Keys {
    secret: RootSecret,
    root: RootKey,
    holders: Vec<Holder>,
}

impl Keys {
    fn commitment(&self, plan: &Plan) -> [u8; 32] {
        keys::commitment(&self.secret, &plan.ceremony_id)
    }
}

/// The shares, each sealed to its holder's location key (one per holder, in order).
struct Shares {
    plain: Vec<ShareBytes>,
    sealed: Vec<Vec<u8>>,
    /// What the split was checked against.
    split_check: CrossCheck,
}

/// The common methods of every phase before [`Finished`].
macro_rules! in_progress {
    ($($phase:ident),+) => {$(
        impl $phase {
            /// The validated plan.
            pub fn plan(&self) -> &Plan {
                &self.common.plan
            }

            /// The transcript so far (public).
            pub fn transcript(&self) -> &Transcript {
                &self.common.transcript
            }

            /// Appends a caller's public record (boot attestation, entropy report and
            /// commitments) or a witness confirmation; returns the record's hash as hex.
            pub fn record(&mut self, r: &Record) -> Result<String, CeremonyError> {
                Ok(hex::encode(&r.write(&mut self.common.transcript)?.hash))
            }
        }
    )+};
}

/// The plan is accepted; nothing secret exists yet.
pub struct Planned {
    common: Common,
}

/// Root and location keys and the PINs exist.
pub struct Keyed {
    common: Common,
    keys: Keys,
}

/// The shares are split and sealed; cards are being provisioned.
pub struct Sealed {
    common: Common,
    keys: Keys,
    shares: Shares,
    /// Each card's serial, as it is provisioned.
    serials: CardSlots,
    /// Each holder's envelope as their first card decrypted it.
    opened: Vec<Option<Envelope>>,
}

/// Every card is provisioned and test-decrypted its share; the PIN files are sealed.
pub struct Provisioned {
    common: Common,
    keys: Keys,
    shares: Shares,
    /// Each holder's envelope as their first card decrypted it.
    opened: Vec<Envelope>,
    pin_files: Vec<Vec<u8>>,
}

/// Every check passed; only the outputs are left.
pub struct Verified {
    common: Common,
    keys: Keys,
    sealed: Vec<Vec<u8>>,
    pin_files: Vec<Vec<u8>>,
}

/// The outputs exist and the transcript is signed. No secret is left: they were dropped (and
/// zeroized) when this was made.
pub struct Finished {
    plan: Plan,
    transcript: Transcript,
}

in_progress!(Planned, Keyed, Sealed, Provisioned, Verified);

impl Planned {
    /// Starts a ceremony from the plan file's text.
    pub fn new(plan_text: &str) -> Result<Planned, CeremonyError> {
        Self::with_prior_records(plan_text, &[])
    }

    /// Starts a ceremony whose transcript begins with records made before the plan was read
    /// (the boot attestation and its confirmation, in the design's order).
    pub fn with_prior_records(plan_text: &str, prior: &[Record]) -> Result<Planned, CeremonyError> {
        let plan = Plan::parse(plan_text)?;
        let mut transcript = Transcript::new();
        for r in prior {
            r.write(&mut transcript)?;
        }
        let s = plan.summary();
        transcript.push_core(record::CeremonyPlan {
            id: s.ceremony_id.clone(),
            time: s.time_rfc3339.clone(),
            threshold: s.threshold,
            holders: s.holders.len(),
            witnesses: s.witnesses.len(),
        })?;
        transcript.push_core(record::PlanHash(Hash32(plan.hash())))?;
        Ok(Planned {
            common: Common {
                plan,
                plan_text: plan_text.to_string(),
                transcript,
                seconds: Seconds::default(),
            },
        })
    }

    /// Checks this ceremony's results against `seconds` instead of the real second
    /// implementations: a test seam, for tests that give deliberately wrong ones and see the
    /// ceremony stop. Nothing else calls it.
    pub fn checked_against(mut self, seconds: Seconds) -> Planned {
        self.common.seconds = seconds;
        self
    }

    /// Draws the root secret, derives the root certificate, draws location keys and PINs.
    pub fn generate_keys(
        mut self,
        rng: &mut dyn SecretRng,
    ) -> Result<(Keyed, KeysView), Refused<Planned>> {
        match self.make_keys(rng) {
            Ok((keys, view)) => Ok((
                Keyed {
                    common: self.common,
                    keys,
                },
                view,
            )),
            Err(e) => Err(Refused::new(self, e)),
        }
    }

    fn make_keys(&mut self, rng: &mut dyn SecretRng) -> Result<(Keys, KeysView), CeremonyError> {
        let plan = &self.common.plan;
        // Recorded on a copy, kept only if the whole step succeeds: a refused step hands its
        // phase back unchanged.
        let mut t = self.common.transcript.clone();
        let secret = RootSecret::generate(rng);
        let root = RootKey::derive_with(
            &secret,
            &plan.ceremony_id,
            plan.time_unix,
            self.common.seconds.ed25519.clone(),
        )?;
        let fpr = root.fingerprint();
        t.push_core(record::RootFingerprint(Fpr(fpr.to_hex())))?;
        let mut locations = Vec::new();
        let mut holders = Vec::new();
        for h in &plan.holders {
            let (location, pins) = draw_location(rng, plan, h, h.cards, plan.time_unix)?;
            let subkey = location.public_subkey().fingerprint();
            t.push_core(record::LocationCert {
                holder: h.index,
                fingerprint: Fpr(location.cert().fingerprint().to_hex()),
                subkey: Fpr(subkey.to_hex()),
            })?;
            locations.push((
                h.index,
                h.name.clone(),
                location.cert().fingerprint().to_hex(),
            ));
            holders.push(Holder { location, pins });
        }
        let view = KeysView {
            root_fingerprint: fpr.to_hex(),
            root_fingerprint_words: words::to_phrase(fpr.as_bytes()),
            locations,
        };
        self.common.transcript = t;
        Ok((
            Keys {
                secret,
                root,
                holders,
            },
            view,
        ))
    }
}

impl Keyed {
    /// Splits the secret M-of-N and seals each share to its holder's location key.
    pub fn seal_shares(
        mut self,
        rng: &mut dyn SecretRng,
    ) -> Result<(Sealed, SealView), Refused<Keyed>> {
        match self.split_and_seal(rng) {
            Ok((shares, view)) => {
                let plan = &self.common.plan;
                let serials = CardSlots::new(plan);
                let opened = (0..plan.holders.len()).map(|_| None).collect();
                Ok((
                    Sealed {
                        common: self.common,
                        keys: self.keys,
                        shares,
                        serials,
                        opened,
                    },
                    view,
                ))
            }
            Err(e) => Err(Refused::new(self, e)),
        }
    }

    fn split_and_seal(
        &mut self,
        rng: &mut dyn SecretRng,
    ) -> Result<(Shares, SealView), CeremonyError> {
        let c = &mut self.common;
        let plan = &c.plan;
        // On a copy, kept only if every share is sealed.
        let mut t = c.transcript.clone();
        let (shares, split_check) = shamir::split_with(
            &self.keys.secret,
            plan.threshold,
            plan.holder_count(),
            rng,
            &*c.seconds.shamir,
        )?;
        let commitment = self.keys.commitment(plan);
        let mut sealed = Vec::with_capacity(shares.len());
        let mut view = Vec::new();
        for ((h, share), holder) in plan.holders.iter().zip(&shares).zip(&self.keys.holders) {
            let env = Envelope {
                header: c.header(&self.keys.root, h.index, commitment),
                share: share.duplicate(),
            };
            let msg = envelope::seal(&env, &self.keys.root, holder.location.cert())?;
            let digest = kdf::sha256(&msg);
            t.push_core(record::ShareSealed {
                holder: h.index,
                sha256: Hash32(digest),
            })?;
            view.push((h.index, hex::encode(&digest)));
            sealed.push(msg);
        }
        c.transcript = t;
        Ok((
            Shares {
                plain: shares,
                sealed,
                split_check,
            },
            SealView { sealed: view },
        ))
    }
}

impl Sealed {
    /// The next card to provision, in plan order; `None` once every card is done.
    pub fn next_card(&self) -> Option<NextCard> {
        self.serials.next(&self.common.plan)
    }

    /// How many cards the plan has in all.
    pub fn cards_total(&self) -> usize {
        self.serials.total()
    }

    /// Which (holder, card) pairs still need provisioning.
    pub fn cards_missing(&self) -> Vec<(u8, u8)> {
        self.serials.missing()
    }

    /// Provisions card `card` (1-based) of holder `holder` with the holder's location key and
    /// that card's PINs, then has it decrypt the holder's sealed share and compares the result
    /// with the share in memory. Each card is inserted once. On a refusal nothing is recorded
    /// and the card may be tried again (or another one).
    pub fn provision_card(
        &mut self,
        holder: u8,
        card: u8,
        device: &mut dyn LocationCard,
        approved: &Approved,
    ) -> Result<CardView, CeremonyError> {
        let slot @ (hi, ci) = self.serials.free(holder, card)?;
        let state = &self.keys.holders[hi];
        let root_cert = self.keys.root.public_cert();
        let commitment = self.keys.commitment(&self.common.plan);
        let header = self.common.header(&self.keys.root, holder, commitment);
        let serials = &self.serials;
        let used = |serial: &CardSerial| serials.holding(serial);
        let (serial, opened) = provision_one(
            &CardJob {
                holder,
                card,
                location: &state.location,
                pins: &state.pins[ci],
                sealed: &self.shares.sealed[hi],
                root_cert: &root_cert,
                share: &self.shares.plain[hi],
                header: &header,
            },
            device,
            approved,
            &used,
        )?;
        let location_fingerprint = state.location.cert().fingerprint().to_hex();
        self.common.transcript.push_core(record::CardProvisioned {
            holder,
            card,
            serial: serial.0.clone(),
            location: Fpr(location_fingerprint.clone()),
            test_decrypt: Passed,
        })?;
        self.serials.fill(slot, serial.clone());
        if self.opened[hi].is_none() {
            self.opened[hi] = Some(opened);
        }
        Ok(CardView {
            holder,
            card,
            serial: serial.0,
            location_fingerprint,
        })
    }

    /// Once every card is provisioned: seals the PIN files and moves on.
    pub fn cards_complete(mut self) -> Result<Provisioned, Refused<Sealed>> {
        let Some(serials) = self.serials.complete() else {
            let missing = self.cards_missing();
            return Err(Refused::new(self, CeremonyError::CardsMissing { missing }));
        };
        let opened: Vec<Envelope> = self.opened.iter_mut().flat_map(Option::take).collect();
        match self.seal_pin_files(&serials) {
            Ok(pin_files) => Ok(Provisioned {
                common: self.common,
                keys: self.keys,
                shares: self.shares,
                opened,
                pin_files,
            }),
            Err(e) => {
                for (slot, env) in self.opened.iter_mut().zip(opened) {
                    *slot = Some(env);
                }
                Err(Refused::new(self, e))
            }
        }
    }

    fn seal_pin_files(
        &mut self,
        serials: &[Vec<CardSerial>],
    ) -> Result<Vec<Vec<u8>>, CeremonyError> {
        let c = &mut self.common;
        // On a copy, kept only if every PIN file is sealed.
        let mut t = c.transcript.clone();
        let mut files = Vec::new();
        for ((h, st), serials) in c.plan.holders.iter().zip(&self.keys.holders).zip(serials) {
            let (armored, recipients) = seal_pin_file(
                &c.plan,
                &self.keys.root,
                h.index,
                serials,
                &st.pins,
                c.plan.time_unix,
            )?;
            t.push_core(record::PinsSealed {
                holder: h.index,
                sha256: Hash32(kdf::sha256(&armored)),
                recipients,
            })?;
            files.push(armored);
        }
        c.transcript = t;
        Ok(files)
    }
}

impl Provisioned {
    /// Verifies before anything leaves: the shares as the cards decrypted them recombine (with
    /// every check of [`recombine::recombine`]) to the secret; every M-subset recombines (all
    /// of them up to [`recombine::EXHAUSTIVE_BOUND`], the stated sample above); the root key
    /// signs and verifies a fresh nonce. A refusal means nothing from this ceremony may be
    /// used: abort.
    pub fn verify(
        mut self,
        rng: &mut dyn SecretRng,
    ) -> Result<(Verified, VerifyView), Refused<Provisioned>> {
        match self.check(rng) {
            Ok(view) => Ok((
                Verified {
                    common: self.common,
                    keys: self.keys,
                    sealed: self.shares.sealed,
                    pin_files: self.pin_files,
                },
                view,
            )),
            Err(e) => Err(Refused::new(self, e)),
        }
    }

    fn check(&mut self, rng: &mut dyn SecretRng) -> Result<VerifyView, CeremonyError> {
        let secret = &self.keys.secret;
        let root = &self.keys.root;
        let opened: Vec<&Envelope> = self.opened.iter().collect();
        let combined_before = shamir::combinations_checked();
        let expected = Expected {
            ceremony_id: self.common.plan.ceremony_id.clone(),
            root_fingerprint: root.fingerprint().as_bytes().to_vec(),
        };
        let recovered = recombine::recombine(&expected, &opened)?;
        if !recovered.secret.ct_eq(secret) {
            return Err(CeremonyError::SubsetFailed(
                recovered.indices.iter().map(|&i| usize::from(i)).collect(),
            ));
        }
        let shares: Vec<&ShareBytes> = opened.iter().map(|e| &e.share).collect();
        let report = recombine::verify_subsets(secret, &shares, self.common.plan.threshold, rng)
            .map_err(CeremonyError::SubsetFailed)?;
        // On a copy, kept only if the self-test passes too.
        let mut t = self.common.transcript.clone();
        t.push_core(record::VerifySubsets {
            checked: report.checked,
            total: SubsetTotal(report.total),
            policy: SubsetPolicy::from(&report),
        })?;
        let mut nonce = [0u8; 32];
        rng.fill(&mut nonce);
        root.self_test(&nonce)?;
        t.push_core(record::VerifySelfTest {
            nonce: Hash32(nonce),
            result: Passed,
        })?;
        // What the second implementations checked, now that every split, combination and
        // signature but the transcript's own is made (docs/dual-implementations.md).
        let split = &self.shares.split_check;
        t.push_core(record::DualShamir {
            second: split.second.to_string(),
            splits: 1,
            shares: split.values,
            combinations: shamir::combinations_checked() - combined_before,
        })?;
        let root_checks = root.cross_checks();
        t.push_core(record::DualSignatures {
            second: root_checks.ed25519.to_string(),
            checks: root_checks.signatures,
        })?;
        t.push_core(record::DualFingerprint {
            second: crate::dual::KEYS_SECOND.to_string(),
            checks: root_checks.fingerprints
                + self
                    .keys
                    .holders
                    .iter()
                    .map(|h| h.location.fingerprint_checks())
                    .sum::<usize>(),
            hkdf: root_checks.derivations,
        })?;
        self.common.transcript = t;
        Ok(VerifyView {
            subsets: report,
            self_test_nonce: hex::encode(&nonce),
        })
    }
}

impl Verified {
    /// Produces the output files (plan, root certificate, shard file, PIN files, transcript and
    /// its signature), records their hashes, and signs the transcript. The secrets are dropped
    /// (and zeroized) here: write the files with [`crate::storage::write_all`].
    pub fn finish(mut self) -> Result<(Finished, Vec<OutputFile>, FinishView), Refused<Verified>> {
        match self.outputs() {
            Ok((files, view)) => Ok((
                Finished {
                    plan: self.common.plan,
                    transcript: self.common.transcript,
                },
                files,
                view,
            )),
            Err(e) => Err(Refused::new(self, e)),
        }
    }

    fn outputs(&mut self) -> Result<(Vec<OutputFile>, FinishView), CeremonyError> {
        let c = &mut self.common;
        let root = &self.keys.root;
        let shard = ShardFile {
            ceremony_id: c.plan.ceremony_id.clone(),
            plan_hash: c.plan.hash(),
            threshold: c.plan.threshold,
            count: c.plan.holder_count(),
            key_time: c.plan.time_unix,
            root_cert: root.public_cert(),
            shares: c
                .plan
                .holders
                .iter()
                .zip(&self.keys.holders)
                .zip(&self.sealed)
                .map(|((h, st), msg)| SealedShare {
                    index: h.index,
                    holder: h.name.clone(),
                    location_cert: st.location.cert().clone(),
                    message: msg.clone(),
                })
                .collect(),
        };
        let mut files = vec![
            OutputFile {
                path: paths::PLAN.into(),
                bytes: c.plan_text.clone().into_bytes(),
            },
            OutputFile {
                path: paths::ROOT_CERT.into(),
                bytes: root.armored_public_cert(),
            },
            OutputFile {
                path: paths::SHARDS.into(),
                bytes: shard.to_toml().into_bytes(),
            },
        ];
        for (h, pf) in c.plan.holders.iter().zip(&self.pin_files) {
            files.push(OutputFile {
                path: paths::pin_file(h.index),
                bytes: pf.clone(),
            });
        }
        // Signed on a copy: if anything fails, the transcript in this phase is unchanged.
        let mut t = c.transcript.clone();
        let mut listed = Vec::new();
        for f in &files {
            let digest = kdf::sha256(&f.bytes);
            t.push_core(record::OutputFile {
                path: f.path.clone(),
                size: f.bytes.len(),
                sha256: Hash32(digest),
            })?;
            listed.push((f.path.clone(), f.bytes.len(), hex::encode(&digest)));
        }
        t.push_core(record::CeremonyEnd { files: files.len() })?;
        let sig = t.sign(root, c.plan.time_unix)?;
        let text = t.to_text().into_bytes();
        for (path, bytes) in [(paths::TRANSCRIPT, text), (paths::TRANSCRIPT_SIG, sig)] {
            listed.push((
                path.to_string(),
                bytes.len(),
                hex::encode(&kdf::sha256(&bytes)),
            ));
            files.push(OutputFile {
                path: path.into(),
                bytes,
            });
        }
        let view = FinishView {
            files: listed,
            transcript_final_hash: hex::encode(&t.final_hash()),
            transcript_final_words: t.final_words(),
        };
        c.transcript = t;
        Ok((files, view))
    }
}

impl Finished {
    /// The plan the ceremony ran.
    pub fn plan(&self) -> &Plan {
        &self.plan
    }

    /// The final, signed transcript.
    pub fn transcript(&self) -> &Transcript {
        &self.transcript
    }
}

/// Holder and card numbers: the plan allows at most 255 of each.
fn small(n: usize) -> u8 {
    u8::try_from(n).unwrap_or(u8::MAX)
}
