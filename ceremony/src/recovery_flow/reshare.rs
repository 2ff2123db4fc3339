//! `reshare`: the same root secret split anew for the request's new plan (new holders,
//! threshold, witnesses, policy), sealed to new location keys on new blank cards. Output folder
//! and records: docs/formats/recovery.md ("reshare").
//!
//! [`Recombined::start_reshare`] splits the recombined secret M'-of-N' (vsss-rs and
//! shamir-gf256 both, [`shamir::split_with`]), seals each new share under a header of the new
//! plan (same ceremony id, commitment, key time and root; the new index, threshold, count and
//! plan hash) to a new location key drawn from the DRBG for each new holder (as generation
//! does), and checks that the new shares' M'-subsets recombine to the secret
//! ([`recombine::verify_subsets`], as generation's `verify.subsets`). The secret and the old
//! shares are dropped then. [`Resharing::provision_card`] provisions each new card in its one
//! insertion (generation's code, `ceremony::provision_one`), and [`Resharing::finish`] seals
//! the new PIN files and writes the new plan and the new shard file.
//!
//! What a reshare does not do, plainly: the old shares are shares of the same secret. Any M of
//! them still recombine to this root key outside sherd until the old cards (and the readers of
//! the old PIN files) are destroyed; sherd refuses them once the root is pinned with the
//! reshare folder, which is not a cryptographic guarantee (`recovery.old-shares`).

use std::fmt;

use super::{
    Common, FlowError, Recombined, RecoveryNewCard, RecoveryNewLocation, RecoveryNewPins,
    RecoveryNewSealed, RecoveryNewSubsets, RecoveryOldShares, RecoveryReshare, Refused,
    finish_folder, first_files, paths, push,
};
use crate::card::{CardSerial, LocationCard};
use crate::ceremony::{self, Approved, CardJob, CardSlots, CardView, NextCard};
use crate::envelope::{self, Envelope, EnvelopeHeader};
use crate::keys::{self, LocationKey, RootKey};
use crate::plan::Plan;
use crate::recombine;
use crate::record::{Fpr, Hash32, Passed, SubsetPolicy, SubsetTotal};
use crate::recovery::RecoveryError;
use crate::request::{Operation, Request};
use crate::rng::SecretRng;
use crate::secret::{CardPins, ShareBytes};
use crate::shamir::{self, ShamirError};
use crate::shardfile::{SealedShare, ShardFile};
use crate::storage::OutputFile;
use crate::transcript::Transcript;
use crate::{hex, kdf};

/// One new holder, as the screens show it once the new shares are sealed (public).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ReshareHolder {
    /// The holder's index in the new plan.
    pub index: u8,
    /// Their name in the new plan.
    pub name: String,
    /// How many new cards they get.
    pub cards: u8,
    /// Their new location certificate's fingerprint, upper-case hex.
    pub location_fingerprint: String,
    /// SHA-256 of their new sealed share, lower-case hex.
    pub sealed_sha256: String,
}

/// What the screens show once the secret is split anew and the new shares sealed (public).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ReshareView {
    /// The new plan's canonical hash, lower-case hex.
    pub plan_hash: String,
    /// The new threshold M'.
    pub threshold: u8,
    /// The new number of holders N'.
    pub count: u8,
    /// The threshold of the plan reshared (whose shares still exist).
    pub old_threshold: u8,
    /// The number of holders of the plan reshared.
    pub old_count: u8,
    /// The new holders, in the new plan's order.
    pub holders: Vec<ReshareHolder>,
    /// M'-subsets of the new shares recombined to the secret.
    pub subsets_checked: usize,
    /// C(N', M') (`u128::MAX`: over 2^128).
    pub subsets_total: u128,
}

/// One new holder's secrets and sealed share (zeroized when dropped).
struct NewHolder {
    share: ShareBytes,
    header: EnvelopeHeader,
    location: LocationKey,
    /// One set of PINs per card.
    pins: Vec<CardPins>,
    sealed: Vec<u8>,
}

/// The secret is split anew and the new shares sealed; the new holders' blank cards are being
/// provisioned. Holds the root key, the new shares, location keys and PINs (no `Debug` of
/// them; zeroized when dropped). The secret itself is gone.
pub struct Resharing {
    common: Common,
    root: RootKey,
    plan: Plan,
    plan_text: String,
    holders: Vec<NewHolder>,
    /// Each new card's serial, as it is provisioned.
    serials: CardSlots,
}

impl fmt::Debug for Resharing {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Resharing")
            .field("request_hash", &self.common.request.hash_hex())
            .field("plan_hash", &hex::encode(&self.plan.hash()))
            .field("missing", &self.cards_missing())
            .finish()
    }
}

/// The parts made by [`Recombined::start_reshare`] before they go into the phase.
struct Parts {
    plan: Plan,
    plan_text: String,
    holders: Vec<NewHolder>,
    transcript: Transcript,
    view: ReshareView,
}

fn small(n: usize) -> u8 {
    u8::try_from(n).unwrap_or(u8::MAX)
}

fn joined(items: impl IntoIterator<Item = impl ToString>) -> String {
    items
        .into_iter()
        .map(|i| i.to_string())
        .collect::<Vec<_>>()
        .join(",")
}

impl Recombined {
    /// `reshare`, first step: splits the recombined secret M'-of-N' for the request's new plan
    /// (both Shamir implementations, the second `seconds.shamir`:
    /// [`Recombined::checked_against`]), checks the commitment to it is the one every accepted
    /// envelope carries, draws each new holder's location key and their cards' PINs from `rng`
    /// (each key none of the ceremony's before, current or retired, nor another new holder's),
    /// seals each new share under the new plan's header (the pinned key time and root, the
    /// same commitment) signed by the root key, and checks the new shares' M'-subsets
    /// recombine to the secret (all of them up to [`recombine::EXHAUSTIVE_BOUND`]). Records
    /// `recovery.reshare`, one `recovery.new-location` and one `recovery.new-sealed` per new
    /// holder, `recovery.new-subsets` and `recovery.old-shares`. The secret and the old shares
    /// are dropped (zeroized) here. On a refusal nothing is recorded and the phase comes back
    /// unchanged.
    pub fn start_reshare(
        self,
        rng: &mut dyn SecretRng,
    ) -> Result<(Resharing, ReshareView), Refused<Recombined>> {
        match self.split_and_seal(rng) {
            Ok(p) => {
                let serials = CardSlots::new(&p.plan);
                let mut common = self.common;
                common.transcript = p.transcript;
                Ok((
                    Resharing {
                        common,
                        root: self.root,
                        plan: p.plan,
                        plan_text: p.plan_text,
                        holders: p.holders,
                        serials,
                    },
                    p.view,
                ))
            }
            Err(e) => Err(Refused::new(self, e)),
        }
    }

    /// `reshare` in one call, with every new card at hand (a rehearsal, or a test):
    /// [`Recombined::start_reshare`], [`Resharing::provision_card`] for each `(holder, card,
    /// device, approved)` in the order given, [`Resharing::finish`]. On any refusal everything
    /// is dropped (every secret zeroized) and nothing was written; a card provisioned before
    /// the refusal holds a key nobody will use and may be reset.
    pub fn perform_reshare(
        self,
        rng: &mut dyn SecretRng,
        cards: &mut [(u8, u8, &mut dyn LocationCard, Approved)],
    ) -> Result<super::Finished, FlowError> {
        let (mut resharing, _) = self.start_reshare(rng).map_err(|r| *r.error)?;
        for (holder, card, device, approved) in cards.iter_mut() {
            resharing.provision_card(*holder, *card, &mut **device, approved)?;
        }
        resharing.finish().map_err(|r| *r.error)
    }

    fn split_and_seal(&self, rng: &mut dyn SecretRng) -> Result<Parts, FlowError> {
        let c = &self.common;
        let Operation::Reshare { plan, text } = &c.request.operation else {
            return Err(FlowError::NotReshare(c.request.operation.kind()));
        };
        let pinned = &c.pinned;
        let old_plan = pinned.plan();
        let kept =
            self.kept
                .as_ref()
                .ok_or(FlowError::ReshareSplit(ShamirError::NotEnoughShares {
                    have: 0,
                    need: usize::from(old_plan.threshold),
                }))?;
        let secret = &kept.secret;

        // The commitment binds the secret and the ceremony id only: the same as every
        // accepted envelope's (which the root key signed).
        let commitment = keys::commitment(secret, &plan.ceremony_id);
        for a in &kept.accepted {
            if a.envelope.header.commitment != commitment {
                return Err(FlowError::Recombine(RecoveryError::EnvelopeMismatch {
                    index: a.index,
                    field: "commitment",
                    expected: hex::encode(&commitment),
                    found: hex::encode(&a.envelope.header.commitment),
                }));
            }
        }

        // The split, by both implementations.
        let second = &*self.seconds.shamir;
        let combined_before = shamir::combinations_checked();
        let (shares, split_check) =
            shamir::split_with(secret, plan.threshold, plan.holder_count(), rng, second)
                .map_err(FlowError::ReshareSplit)?;

        // A new location key and PINs per new holder, each share sealed to its key.
        let mut holders: Vec<NewHolder> = Vec::with_capacity(shares.len());
        for (h, share) in plan.holders.iter().zip(shares) {
            let (location, pins) =
                ceremony::draw_location(rng, plan, h, h.cards, pinned.key_time())?;
            let fpr = location.cert().fingerprint();
            if let Some(holder) = pinned.location_holder(&fpr) {
                return Err(FlowError::LocationKeyReused {
                    fingerprint: fpr.to_hex(),
                    holder,
                });
            }
            if let Some(i) = holders
                .iter()
                .position(|n| n.location.cert().fingerprint() == fpr)
            {
                return Err(FlowError::LocationKeyReused {
                    fingerprint: fpr.to_hex(),
                    holder: small(i + 1),
                });
            }
            let header =
                ceremony::envelope_header(plan, &self.root, h.index, commitment, pinned.key_time());
            let envelope = Envelope {
                header: header.clone(),
                share: share.duplicate(),
            };
            let sealed = envelope::seal(&envelope, &self.root, location.cert())?;
            drop(envelope);
            holders.push(NewHolder {
                share,
                header,
                location,
                pins,
                sealed,
            });
        }

        // Every M'-subset (or the windows and a random sample) recombines to the secret.
        let refs: Vec<&ShareBytes> = holders.iter().map(|n| &n.share).collect();
        let report =
            recombine::verify_subsets(secret, &refs, plan.threshold, rng).map_err(|failed| {
                FlowError::ReshareSubsetFailed {
                    holders: joined(failed),
                }
            })?;
        let combinations = shamir::combinations_checked() - combined_before;

        let mut t = c.transcript.clone();
        push(
            &mut t,
            &RecoveryReshare {
                plan: Hash32(plan.hash()),
                threshold: plan.threshold,
                holders: plan.holder_count(),
                witnesses: plan.witnesses.len(),
            },
        )?;
        for (h, n) in plan.holders.iter().zip(&holders) {
            push(
                &mut t,
                &RecoveryNewLocation {
                    holder: h.index,
                    name: h.name.clone(),
                    fingerprint: Fpr(n.location.cert().fingerprint().to_hex()),
                    subkey: Fpr(n.location.public_subkey().fingerprint().to_hex()),
                },
            )?;
        }
        for (h, n) in plan.holders.iter().zip(&holders) {
            push(
                &mut t,
                &RecoveryNewSealed {
                    holder: h.index,
                    sha256: Hash32(kdf::sha256(&n.sealed)),
                },
            )?;
        }
        push(
            &mut t,
            &RecoveryNewSubsets {
                checked: report.checked,
                total: SubsetTotal(report.total),
                policy: SubsetPolicy::from(&report),
                second: split_check.second.to_string(),
                combinations,
            },
        )?;
        push(
            &mut t,
            &RecoveryOldShares {
                plan: Hash32(old_plan.hash()),
                threshold: old_plan.threshold,
                holders: old_plan.holder_count(),
            },
        )?;
        let view = ReshareView {
            plan_hash: hex::encode(&plan.hash()),
            threshold: plan.threshold,
            count: plan.holder_count(),
            old_threshold: old_plan.threshold,
            old_count: old_plan.holder_count(),
            holders: plan
                .holders
                .iter()
                .zip(&holders)
                .map(|(h, n)| ReshareHolder {
                    index: h.index,
                    name: h.name.clone(),
                    cards: h.cards,
                    location_fingerprint: n.location.cert().fingerprint().to_hex(),
                    sealed_sha256: hex::encode(&kdf::sha256(&n.sealed)),
                })
                .collect(),
            subsets_checked: report.checked,
            subsets_total: report.total,
        };
        Ok(Parts {
            plan: (**plan).clone(),
            plan_text: text.clone(),
            holders,
            transcript: t,
            view,
        })
    }
}

impl Resharing {
    /// The request.
    pub fn request(&self) -> &Request {
        &self.common.request
    }

    /// The new plan.
    pub fn plan(&self) -> &Plan {
        &self.plan
    }

    /// The transcript so far (public).
    pub fn transcript(&self) -> &Transcript {
        &self.common.transcript
    }

    /// The next new card to provision, in the new plan's order (holder 1 card 1 first);
    /// `None` once every one is done.
    pub fn next_card(&self) -> Option<NextCard> {
        self.serials.next(&self.plan)
    }

    /// How many new cards the new plan has in all.
    pub fn cards_total(&self) -> usize {
        self.serials.total()
    }

    /// The (holder, card) pairs still to provision, in the new plan's order.
    pub fn cards_missing(&self) -> Vec<(u8, u8)> {
        self.serials.missing()
    }

    /// Provisions new holder `holder`'s card `card` (1-based) with their new location key and
    /// that card's PINs in its one insertion, as at generation (`ceremony::provision_one`): the
    /// card must be the one the screen approved, blank (unless `approved` says it may hold
    /// keys: a card this reshare started on), and no card of this ceremony (generation's, any
    /// replace-card's or earlier reshare's, current or retired:
    /// [`crate::recovery::PinnedRoot::card_with_serial`], nor one of this reshare's); it then
    /// decrypts the holder's new sealed share, which must be their new share under its header.
    /// Records `recovery.new-card`. On a refusal nothing is recorded; the card (or another)
    /// may be tried again.
    pub fn provision_card(
        &mut self,
        holder: u8,
        card: u8,
        device: &mut dyn LocationCard,
        approved: &Approved,
    ) -> Result<CardView, FlowError> {
        let slot @ (hi, ci) = self.serials.free(holder, card).map_err(FlowError::Card)?;
        let pinned = &self.common.pinned;
        let serials = &self.serials;
        let used = |serial: &CardSerial| {
            pinned
                .card_with_serial(serial)
                .or_else(|| serials.holding(serial))
        };
        let n = &self.holders[hi];
        let root_cert = self.root.public_cert();
        let (serial, _opened) = ceremony::provision_one(
            &CardJob {
                holder,
                card,
                location: &n.location,
                pins: &n.pins[ci],
                sealed: &n.sealed,
                root_cert: &root_cert,
                share: &n.share,
                header: &n.header,
            },
            device,
            approved,
            &used,
        )
        .map_err(FlowError::Card)?;
        let location_fingerprint = n.location.cert().fingerprint().to_hex();
        let mut t = self.common.transcript.clone();
        push(
            &mut t,
            &RecoveryNewCard {
                holder,
                card,
                serial: serial.0.clone(),
                location: Fpr(location_fingerprint.clone()),
                test_decrypt: Passed,
            },
        )?;
        self.common.transcript = t;
        self.serials.fill(slot, serial.clone());
        Ok(CardView {
            holder,
            card,
            serial: serial.0,
            location_fingerprint,
        })
    }

    /// Once every new card is provisioned: seals each new holder's PIN file (their cards'
    /// serials and PINs, to their and their backup holder's personal certificates from the new
    /// plan, signed by the root key, dated the new plan's time), makes the new shard file and
    /// the folder (`plan.toml`, `shards.toml`, `pins/holder-NNN.asc`), and signs the
    /// transcript. The root key, the new shares, location keys and PINs are dropped (zeroized)
    /// with this phase. On a refusal the phase comes back unchanged.
    pub fn finish(self) -> Result<super::Finished, Refused<Resharing>> {
        match self.outputs() {
            Ok(f) => Ok(f),
            Err(e) => Err(Refused::new(self, e)),
        }
    }

    fn outputs(&self) -> Result<super::Finished, FlowError> {
        let Some(serials) = self.serials.complete() else {
            let missing = self.cards_missing();
            return Err(FlowError::NewCardsMissing { missing });
        };
        let c = &self.common;
        let plan = &self.plan;
        let mut t = c.transcript.clone();
        let mut pin_files = Vec::with_capacity(self.holders.len());
        for ((h, n), serials) in plan.holders.iter().zip(&self.holders).zip(&serials) {
            let (pin_file, recipients) = ceremony::seal_pin_file(
                plan,
                &self.root,
                h.index,
                serials,
                &n.pins,
                c.pinned.key_time(),
            )
            .map_err(FlowError::Card)?;
            push(
                &mut t,
                &RecoveryNewPins {
                    holder: h.index,
                    sha256: Hash32(kdf::sha256(&pin_file)),
                    recipients,
                },
            )?;
            pin_files.push(OutputFile {
                path: paths::pin_file(h.index),
                bytes: pin_file,
            });
        }
        let shards = ShardFile {
            ceremony_id: plan.ceremony_id.clone(),
            plan_hash: plan.hash(),
            threshold: plan.threshold,
            count: plan.holder_count(),
            key_time: c.pinned.key_time(),
            root_cert: self.root.public_cert(),
            shares: plan
                .holders
                .iter()
                .zip(&self.holders)
                .map(|(h, n)| SealedShare {
                    index: h.index,
                    holder: h.name.clone(),
                    location_cert: n.location.cert().clone(),
                    message: n.sealed.clone(),
                })
                .collect(),
        };
        let mut files = first_files(c, &self.root);
        files.push(OutputFile {
            path: paths::PLAN.into(),
            bytes: self.plan_text.clone().into_bytes(),
        });
        files.push(OutputFile {
            path: paths::SHARDS.into(),
            bytes: shards.to_toml().into_bytes(),
        });
        files.extend(pin_files);
        finish_folder(&self.root, c.request.time_unix, t, files)
    }
}
