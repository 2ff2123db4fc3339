//! The generation ceremony as a sequence of steps the caller drives, each allowed only in its
//! phase: plan -> keys -> seal -> cards -> PIN files -> verify -> outputs -> wipe.
//!
//! Shares are sealed before the cards are provisioned so that each card, during its single
//! insertion, decrypts its own real share as its test decryption (design steps 5 to 7). Every
//! step returns plain public data for the screens and appends to the transcript; secrets stay
//! inside. The caller adds its own public records (boot attestation, entropy report, witness
//! confirmations) with [`Ceremony::record`].

use sequoia_openpgp as openpgp;

use openpgp::serialize::SerializeInto;

use crate::card::{CardSerial, LocationCard};
use crate::envelope::{self, Envelope, EnvelopeHeader, OpenShareError};
use crate::keys::{self, KeyError, LocationKey, RootKey};
use crate::pinfile::{PinEntry, PinFile};
use crate::plan::{Plan, PlanError};
use crate::recombine::{self, Expected, RecombineError, SubsetReport};
use crate::record::{self, Fpr, Hash32, Note, Passed, SubsetPolicy, SubsetTotal};
use crate::rng::SecretRng;
use crate::secret::{CardPins, RootSecret, ShareBytes};
use crate::shamir::{self, ShamirError};
use crate::shardfile::{SealedShare, ShardFile};
use crate::storage::OutputFile;
use crate::transcript::{Transcript, TranscriptError};
use crate::{hex, kdf, words};

/// Where the ceremony is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Phase {
    /// Plan accepted; waiting for keys.
    Planned,
    /// Root and location keys and PINs exist.
    Keys,
    /// Shares split and sealed; cards can be provisioned.
    Sealed,
    /// All cards provisioned and test-decrypted; PIN files sealed.
    Cards,
    /// Every check passed.
    Verified,
    /// Output files produced; the transcript is final.
    Finished,
}

/// What the ceremony needs next: plain public data for the screen that drives the next step.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum NextAction {
    /// Call [`Ceremony::generate_keys`] (after the witnesses confirmed the plan and the
    /// entropy report has been recorded).
    GenerateKeys,
    /// Call [`Ceremony::seal_shares`].
    SealShares,
    /// Ask for a blank card for this holder and call [`Ceremony::provision_card`].
    InsertCard {
        holder: u8,
        card: u8,
        holder_name: String,
        cards_for_holder: u8,
    },
    /// Call [`Ceremony::verify`].
    Verify,
    /// Call [`Ceremony::finish`] and write the files.
    Finish,
    /// Nothing left but writing the files, wiping and powering off.
    Done,
}

/// Why a step refused.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CeremonyError {
    #[error("this step needs phase {expected:?}, the ceremony is in {actual:?}")]
    WrongPhase { expected: Phase, actual: Phase },
    #[error(transparent)]
    Plan(#[from] PlanError),
    #[error(transparent)]
    Key(#[from] KeyError),
    #[error(transparent)]
    Shamir(#[from] ShamirError),
    #[error(transparent)]
    Transcript(#[from] TranscriptError),
    #[error("holder {holder} card {card} does not exist in the plan")]
    NoSuchCard { holder: u8, card: u8 },
    #[error("holder {holder} card {card} was already provisioned (serial {serial})")]
    AlreadyProvisioned {
        holder: u8,
        card: u8,
        serial: String,
    },
    #[error("holder {holder} card {card}: {source}")]
    Card {
        holder: u8,
        card: u8,
        source: crate::card::CardError,
    },
    #[error(
        "holder {holder} card {card}: test decryption failed: {source}; use another blank card"
    )]
    TestDecryption {
        holder: u8,
        card: u8,
        source: OpenShareError,
    },
    #[error(
        "holder {holder} card {card}: the card decrypted a share that differs from the one sealed; the card or reader is faulty, use another blank card"
    )]
    WrongShareFromCard { holder: u8, card: u8 },
    #[error(
        "serial {serial} was already used for holder {holder} card {card}: insert a different card"
    )]
    DuplicateSerial {
        serial: String,
        holder: u8,
        card: u8,
    },
    #[error("cards not yet provisioned: {missing:?} (holder, card)")]
    CardsMissing { missing: Vec<(u8, u8)> },
    #[error(
        "the M-subset at share positions {0:?} does not recombine to the secret; abort: nothing from this ceremony may be used"
    )]
    SubsetFailed(Vec<usize>),
    #[error(
        "recombination from the cards' decryptions failed: {0}; abort: nothing from this ceremony may be used"
    )]
    Recombine(#[from] RecombineError),
}

/// Public results of the key step.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KeysView {
    pub root_fingerprint: String,
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
    pub holder: u8,
    pub card: u8,
    pub serial: String,
    pub location_fingerprint: String,
}

/// Public results of verification.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VerifyView {
    pub subsets: SubsetReport,
    pub self_test_nonce: String,
}

/// Public results of the final step.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FinishView {
    /// (path, size, SHA-256 hex) of every output file.
    pub files: Vec<(String, usize, String)>,
    pub transcript_final_hash: String,
    pub transcript_final_words: String,
}

struct HolderState {
    location: LocationKey,
    pins: Vec<CardPins>,
    serials: Vec<Option<CardSerial>>,
    /// The envelope as the first card decrypted it (compared with `share`).
    opened: Option<Envelope>,
}

/// One generation ceremony in progress. Holds secrets; dropping it (or [`Ceremony::wipe`])
/// zeroizes them.
pub struct Ceremony {
    plan: Plan,
    plan_text: String,
    phase: Phase,
    transcript: Transcript,
    secret: Option<RootSecret>,
    root: Option<RootKey>,
    holders: Vec<HolderState>,
    shares: Vec<ShareBytes>,
    sealed: Vec<Vec<u8>>,
    pin_files: Vec<Vec<u8>>,
}

/// What a caller may add to the transcript: its own public notes, and the witnesses'
/// confirmations of a step. The core's other records are written only by the core.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Record {
    Note(Note),
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
    pub const PLAN: &str = "plan.toml";
    pub const ROOT_CERT: &str = "root-cert.asc";
    pub const SHARDS: &str = "shards.toml";
    pub const TRANSCRIPT: &str = "transcript.txt";
    pub const TRANSCRIPT_SIG: &str = "transcript.txt.sig";

    /// The PIN file of holder `index`.
    pub fn pin_file(index: u8) -> String {
        format!("pins/holder-{index:03}.asc")
    }
}

impl Ceremony {
    /// Starts a ceremony from the plan file's text.
    pub fn new(plan_text: &str) -> Result<Ceremony, CeremonyError> {
        Self::with_prior_records(plan_text, &[])
    }

    /// Starts a ceremony whose transcript begins with records made before the plan was read
    /// (the boot attestation and its confirmation, in the design's order).
    pub fn with_prior_records(
        plan_text: &str,
        prior: &[Record],
    ) -> Result<Ceremony, CeremonyError> {
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
        Ok(Ceremony {
            plan,
            plan_text: plan_text.to_string(),
            phase: Phase::Planned,
            transcript,
            secret: None,
            root: None,
            holders: Vec::new(),
            shares: Vec::new(),
            sealed: Vec::new(),
            pin_files: Vec::new(),
        })
    }

    /// The validated plan.
    pub fn plan(&self) -> &Plan {
        &self.plan
    }

    /// The current phase.
    pub fn phase(&self) -> Phase {
        self.phase
    }

    /// The transcript so far (public).
    pub fn transcript(&self) -> &Transcript {
        &self.transcript
    }

    /// The next step to drive.
    pub fn next_action(&self) -> NextAction {
        match self.phase {
            Phase::Planned => NextAction::GenerateKeys,
            Phase::Keys => NextAction::SealShares,
            Phase::Sealed => match self.cards_missing().first() {
                Some(&(holder, card)) => {
                    let h = self
                        .plan
                        .holder(holder)
                        .expect("missing cards are of planned holders");
                    NextAction::InsertCard {
                        holder,
                        card,
                        holder_name: h.name.clone(),
                        cards_for_holder: h.cards,
                    }
                }
                None => NextAction::Verify,
            },
            Phase::Cards => NextAction::Verify,
            Phase::Verified => NextAction::Finish,
            Phase::Finished => NextAction::Done,
        }
    }

    /// Appends a caller's public record (boot attestation, entropy report and commitments) or
    /// a witness confirmation; returns the record's hash as hex.
    pub fn record(&mut self, r: &Record) -> Result<String, CeremonyError> {
        if self.phase == Phase::Finished {
            return Err(CeremonyError::WrongPhase {
                expected: Phase::Verified,
                actual: self.phase,
            });
        }
        Ok(hex::encode(&r.write(&mut self.transcript)?.hash))
    }

    fn expect(&self, expected: Phase) -> Result<(), CeremonyError> {
        if self.phase == expected {
            Ok(())
        } else {
            Err(CeremonyError::WrongPhase {
                expected,
                actual: self.phase,
            })
        }
    }

    fn root(&self) -> &RootKey {
        self.root.as_ref().expect("present after the key step")
    }

    /// Draws the root secret, derives the root certificate, draws location keys and PINs.
    pub fn generate_keys(&mut self, rng: &mut dyn SecretRng) -> Result<KeysView, CeremonyError> {
        self.expect(Phase::Planned)?;
        let secret = RootSecret::generate(rng);
        let root = RootKey::derive(&secret, &self.plan.ceremony_id, self.plan.time_unix)?;
        let fpr = root.fingerprint();
        self.transcript
            .push_core(record::RootFingerprint(Fpr(fpr.to_hex())))?;
        let mut locations = Vec::new();
        let mut holders = Vec::new();
        for h in &self.plan.holders {
            let location = LocationKey::generate(
                rng,
                &self.plan.ceremony_id,
                h.index,
                &h.name,
                self.plan.time_unix,
            )?;
            let subkey = location.public_subkey().fingerprint();
            self.transcript.push_core(record::LocationCert {
                holder: h.index,
                fingerprint: Fpr(location.cert().fingerprint().to_hex()),
                subkey: Fpr(subkey.to_hex()),
            })?;
            locations.push((
                h.index,
                h.name.clone(),
                location.cert().fingerprint().to_hex(),
            ));
            let pins = (0..h.cards).map(|_| CardPins::generate(rng)).collect();
            holders.push(HolderState {
                location,
                pins,
                serials: vec![None; usize::from(h.cards)],
                opened: None,
            });
        }
        self.secret = Some(secret);
        self.root = Some(root);
        self.holders = holders;
        self.phase = Phase::Keys;
        Ok(KeysView {
            root_fingerprint: fpr.to_hex(),
            root_fingerprint_words: words::to_phrase(fpr.as_bytes()),
            locations,
        })
    }

    /// Splits the secret M-of-N and seals each share to its holder's location key.
    pub fn seal_shares(&mut self, rng: &mut dyn SecretRng) -> Result<SealView, CeremonyError> {
        self.expect(Phase::Keys)?;
        let secret = self.secret.as_ref().expect("present after the key step");
        let n = self.plan.holder_count();
        let shares = shamir::split(secret, self.plan.threshold, n, rng)?;
        let commitment = keys::commitment(secret, &self.plan.ceremony_id);
        let mut sealed = Vec::with_capacity(shares.len());
        let mut view = Vec::new();
        for (h, share) in self.plan.holders.iter().zip(&shares) {
            let env = Envelope {
                header: self.header(h.index, commitment),
                share: share.duplicate(),
            };
            let msg = envelope::seal(
                &env,
                self.root(),
                self.holders[usize::from(h.index) - 1].location.cert(),
            )?;
            let digest = kdf::sha256(&msg);
            self.transcript.push_core(record::ShareSealed {
                holder: h.index,
                sha256: Hash32(digest),
            })?;
            view.push((h.index, hex::encode(&digest)));
            sealed.push(msg);
        }
        self.shares = shares;
        self.sealed = sealed;
        self.phase = Phase::Sealed;
        Ok(SealView { sealed: view })
    }

    fn header(&self, index: u8, commitment: [u8; 32]) -> EnvelopeHeader {
        EnvelopeHeader {
            ceremony_id: self.plan.ceremony_id.clone(),
            index,
            threshold: self.plan.threshold,
            count: self.plan.holder_count(),
            key_time: self.plan.time_unix,
            plan_hash: self.plan.hash(),
            commitment,
            root_fingerprint: self.root().fingerprint().as_bytes().to_vec(),
        }
    }

    /// Provisions card `card` (1-based) of holder `holder` with the holder's location key and
    /// that card's PINs, then has it decrypt the holder's sealed share and compares the result
    /// with the share in memory. Each card is inserted once.
    pub fn provision_card(
        &mut self,
        holder: u8,
        card: u8,
        device: &mut dyn LocationCard,
    ) -> Result<CardView, CeremonyError> {
        self.expect(Phase::Sealed)?;
        let no_such = CeremonyError::NoSuchCard { holder, card };
        let hi = usize::from(holder)
            .checked_sub(1)
            .filter(|&i| i < self.holders.len())
            .ok_or(no_such)?;
        let ci = usize::from(card)
            .checked_sub(1)
            .filter(|&i| i < self.holders[hi].pins.len())
            .ok_or(CeremonyError::NoSuchCard { holder, card })?;
        if let Some(s) = &self.holders[hi].serials[ci] {
            return Err(CeremonyError::AlreadyProvisioned {
                holder,
                card,
                serial: s.0.clone(),
            });
        }
        // Read the serial first: a card already provisioned in this ceremony must not be
        // reset and re-keyed by mistake.
        let serial = device.serial().map_err(|source| CeremonyError::Card {
            holder,
            card,
            source,
        })?;
        for (h, st) in self.holders.iter().enumerate() {
            for (c, s) in st.serials.iter().enumerate() {
                if s.as_ref() == Some(&serial) {
                    return Err(CeremonyError::DuplicateSerial {
                        serial: serial.0.clone(),
                        holder: u8::try_from(h + 1).expect("small"),
                        card: u8::try_from(c + 1).expect("small"),
                    });
                }
            }
        }
        let state = &self.holders[hi];
        let provisioned = device
            .provision(&state.location.card_import(), &state.pins[ci])
            .map_err(|source| CeremonyError::Card {
                holder,
                card,
                source,
            })?;
        if provisioned != serial {
            return Err(CeremonyError::Card {
                holder,
                card,
                source: crate::card::CardError::Device(format!(
                    "serial changed from {serial} to {provisioned} during provisioning"
                )),
            });
        }
        let root_cert = self.root().public_cert();
        let opened = envelope::open_with_card(
            &self.sealed[hi],
            device,
            &state.pins[ci].user,
            state.location.cert(),
            &root_cert,
        )
        .map_err(|source| CeremonyError::TestDecryption {
            holder,
            card,
            source,
        })?;
        let commitment = keys::commitment(
            self.secret.as_ref().expect("present"),
            &self.plan.ceremony_id,
        );
        if opened.share.expose_secret() != self.shares[hi].expose_secret()
            || opened.header != self.header(holder, commitment)
        {
            return Err(CeremonyError::WrongShareFromCard { holder, card });
        }
        let location_fingerprint = self.holders[hi].location.cert().fingerprint().to_hex();
        self.transcript.push_core(record::CardProvisioned {
            holder,
            card,
            serial: serial.0.clone(),
            location: Fpr(location_fingerprint.clone()),
            test_decrypt: Passed,
        })?;
        let st = &mut self.holders[hi];
        st.serials[ci] = Some(serial.clone());
        if st.opened.is_none() {
            st.opened = Some(opened);
        }
        if self
            .holders
            .iter()
            .all(|h| h.serials.iter().all(Option::is_some))
        {
            self.seal_pin_files()?;
            self.phase = Phase::Cards;
        }
        Ok(CardView {
            holder,
            card,
            serial: serial.0,
            location_fingerprint,
        })
    }

    /// Which (holder, card) pairs still need provisioning.
    pub fn cards_missing(&self) -> Vec<(u8, u8)> {
        let mut out = Vec::new();
        for (h, st) in self.holders.iter().enumerate() {
            for (c, s) in st.serials.iter().enumerate() {
                if s.is_none() {
                    out.push((
                        u8::try_from(h + 1).expect("small"),
                        u8::try_from(c + 1).expect("small"),
                    ));
                }
            }
        }
        out
    }

    fn seal_pin_files(&mut self) -> Result<(), CeremonyError> {
        let mut files = Vec::new();
        for (h, st) in self.plan.holders.iter().zip(&self.holders) {
            let pf = PinFile {
                ceremony_id: self.plan.ceremony_id.clone(),
                holder: h.index,
                name: h.name.clone(),
                cards: st
                    .pins
                    .iter()
                    .zip(&st.serials)
                    .enumerate()
                    .map(|(i, (p, s))| PinEntry {
                        card: u8::try_from(i + 1).expect("small"),
                        serial: s.clone().expect("all provisioned"),
                        pins: CardPins {
                            user: crate::secret::Pin::from_string(
                                p.user.expose_secret().to_string(),
                            ),
                            admin: crate::secret::Pin::from_string(
                                p.admin.expose_secret().to_string(),
                            ),
                        },
                    })
                    .collect(),
            };
            let backup = self.plan.holder(h.backup).expect("validated backup");
            let recipients: Vec<&openpgp::Cert> = h
                .certs
                .iter()
                .chain(backup.certs.iter())
                .map(|c| &c.cert)
                .collect();
            let armored = pf.seal(self.root(), &recipients, self.plan.time_unix)?;
            self.transcript.push_core(record::PinsSealed {
                holder: h.index,
                sha256: Hash32(kdf::sha256(&armored)),
                recipients: recipients
                    .iter()
                    .map(|c| Fpr(c.fingerprint().to_hex()))
                    .collect(),
            })?;
            files.push(armored);
        }
        self.pin_files = files;
        Ok(())
    }

    /// Verifies before anything leaves: the shares as the cards decrypted them recombine (with
    /// every check of [`recombine::recombine`]) to the secret; every M-subset recombines (all
    /// of them up to [`recombine::EXHAUSTIVE_BOUND`], the stated sample above); the root key
    /// signs and verifies a fresh nonce from the DRBG.
    pub fn verify(&mut self, rng: &mut dyn SecretRng) -> Result<VerifyView, CeremonyError> {
        if self.phase != Phase::Cards {
            if self.phase == Phase::Sealed {
                return Err(CeremonyError::CardsMissing {
                    missing: self.cards_missing(),
                });
            }
            return Err(CeremonyError::WrongPhase {
                expected: Phase::Cards,
                actual: self.phase,
            });
        }
        let secret = self.secret.as_ref().expect("present");
        let opened: Vec<&Envelope> = self
            .holders
            .iter()
            .map(|h| h.opened.as_ref().expect("all opened"))
            .collect();
        let expected = Expected {
            ceremony_id: self.plan.ceremony_id.clone(),
            root_fingerprint: self.root().fingerprint().as_bytes().to_vec(),
        };
        let recovered = recombine::recombine(&expected, &opened)?;
        if !recovered.secret.ct_eq(secret) {
            return Err(CeremonyError::SubsetFailed(
                recovered.indices.iter().map(|&i| usize::from(i)).collect(),
            ));
        }
        let shares: Vec<&ShareBytes> = opened.iter().map(|e| &e.share).collect();
        let report = recombine::verify_subsets(secret, &shares, self.plan.threshold, rng)
            .map_err(CeremonyError::SubsetFailed)?;
        self.transcript.push_core(record::VerifySubsets {
            checked: report.checked,
            total: SubsetTotal(report.total),
            policy: if report.exhaustive {
                SubsetPolicy::All
            } else {
                SubsetPolicy::CyclicWindowsRandom
            },
        })?;
        let mut nonce = [0u8; 32];
        rng.fill(&mut nonce);
        self.root().self_test(&nonce)?;
        let nonce_hex = hex::encode(&nonce);
        self.transcript.push_core(record::VerifySelfTest {
            nonce: Hash32(nonce),
            result: Passed,
        })?;
        self.phase = Phase::Verified;
        Ok(VerifyView {
            subsets: report,
            self_test_nonce: nonce_hex,
        })
    }

    /// Produces the output files (plan, root certificate, shard file, PIN files, transcript and
    /// its signature), records their hashes, and signs the transcript. After this the
    /// transcript is final; write the files with [`crate::storage::write_all`].
    pub fn finish(&mut self) -> Result<(Vec<OutputFile>, FinishView), CeremonyError> {
        self.expect(Phase::Verified)?;
        let root = self.root();
        let shard = ShardFile {
            ceremony_id: self.plan.ceremony_id.clone(),
            plan_hash: self.plan.hash(),
            threshold: self.plan.threshold,
            count: self.plan.holder_count(),
            key_time: self.plan.time_unix,
            root_cert: root.public_cert(),
            shares: self
                .plan
                .holders
                .iter()
                .zip(&self.holders)
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
                bytes: self.plan_text.clone().into_bytes(),
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
        for (h, pf) in self.plan.holders.iter().zip(&self.pin_files) {
            files.push(OutputFile {
                path: paths::pin_file(h.index),
                bytes: pf.clone(),
            });
        }
        let mut listed = Vec::new();
        for f in &files {
            let digest = kdf::sha256(&f.bytes);
            self.transcript.push_core(record::OutputFile {
                path: f.path.clone(),
                size: f.bytes.len(),
                sha256: Hash32(digest),
            })?;
            listed.push((f.path.clone(), f.bytes.len(), hex::encode(&digest)));
        }
        self.transcript.push_core(record::CeremonyEnd { files: files.len() })?;
        let sig = self.transcript.sign(self.root(), self.plan.time_unix)?;
        let text = self.transcript.to_text().into_bytes();
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
        self.phase = Phase::Finished;
        Ok((
            files,
            FinishView {
                files: listed,
                transcript_final_hash: hex::encode(&self.transcript.final_hash()),
                transcript_final_words: self.transcript.final_words(),
            },
        ))
    }

    /// The root certificate (public), once keys exist.
    pub fn root_cert_armored(&self) -> Option<Vec<u8>> {
        self.root
            .as_ref()
            .map(|r| r.public_cert().armored().to_vec().expect("to memory"))
    }

    /// Drops every secret (root secret, shares, location keys, PINs) now.
    pub fn wipe(self) {
        drop(self);
    }
}
