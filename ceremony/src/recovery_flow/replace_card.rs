//! `replace-card`: holder i's share rebuilt from the recombined shares and sealed to new blank
//! cards under a new location key; the other holders keep theirs. Output folder and records:
//! docs/formats/recovery.md ("replace-card").
//!
//! [`Recombined::start_replace_card`] rebuilds the share by Lagrange interpolation at x = i
//! through every accepted share (vsss-rs and shamir-gf256 both, [`shamir::interpolate`]; holder
//! i need not be among them), checks that it recombines with each (M-1)-subset of the other
//! shares tried (by both implementations) to the secret whose commitment the envelopes carry,
//! draws a new location key and PINs from the DRBG (as generation does), and seals the share
//! to it with the original envelope header (same commitment, plan hash, key time, root). The
//! secret and the other shares are dropped then. [`ReplacingCards::provision_card`] provisions
//! each new card in its one insertion (generation's code, `ceremony::provision_one`), and
//! [`ReplacingCards::finish`] seals the new PIN file and writes the new shard file.

use std::fmt;

use sequoia_openpgp as openpgp;

use openpgp::serialize::SerializeInto;

use super::{
    Common, FlowError, Recombined, RecoveryCard, RecoveryLocation, RecoveryPins, RecoveryRebuilt,
    RecoverySealed, Refused, finish_folder, first_files, paths, push,
};
use crate::card::{CardSerial, LocationCard};
use crate::ceremony::{self, Approved, CardJob, CardView, CeremonyError, NextCard};
use crate::dual::Seconds;
use crate::envelope::{self, Envelope, EnvelopeHeader};
use crate::keys::{self, KeyError, LocationKey, RootKey, key_err};
use crate::record::{Fpr, Hash32, Passed};
use crate::recovery::RecoveryError;
use crate::request::{Operation, Request};
use crate::rng::SecretRng;
use crate::secret::{CardPins, RootSecret, ShareBytes};
use crate::shamir::{self, ShamirError};
use crate::storage::OutputFile;
use crate::transcript::Transcript;
use crate::{hex, kdf};

/// What the screens show once the share is rebuilt and sealed (public).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ReplaceView {
    /// The holder whose cards are replaced.
    pub holder: u8,
    /// Their name.
    pub name: String,
    /// The new location certificate's fingerprint, upper-case hex.
    pub location_fingerprint: String,
    /// The location certificate it replaces, upper-case hex.
    pub replaces: String,
    /// SHA-256 of the new sealed share, lower-case hex.
    pub sealed_sha256: String,
    /// How many new cards to provision.
    pub cards: u8,
}

/// The holder's share is rebuilt and sealed to a new location key; new blank cards are being
/// provisioned. Holds the root key, the rebuilt share, the location key and the PINs (no
/// `Debug` of them; zeroized when dropped).
pub struct ReplacingCards {
    common: Common,
    root: RootKey,
    holder: u8,
    rebuilt: ShareBytes,
    header: EnvelopeHeader,
    location: LocationKey,
    pins: Vec<CardPins>,
    sealed: Vec<u8>,
    serials: Vec<Option<CardSerial>>,
}

impl fmt::Debug for ReplacingCards {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ReplacingCards")
            .field("request_hash", &self.common.request.hash_hex())
            .field("holder", &self.holder)
            .field("location", &self.location_fingerprint())
            .field("missing", &self.cards_missing())
            .finish()
    }
}

/// The parts made by [`Recombined::start_replace_card`] before they go into the phase.
struct Parts {
    holder: u8,
    rebuilt: ShareBytes,
    header: EnvelopeHeader,
    location: LocationKey,
    pins: Vec<CardPins>,
    sealed: Vec<u8>,
    transcript: Transcript,
    view: ReplaceView,
}

fn small(n: usize) -> u8 {
    u8::try_from(n).unwrap_or(u8::MAX)
}

impl Recombined {
    /// Checks replace-card's interpolation and its recombination checks (and reshare's split)
    /// against `seconds.shamir` instead of `shamir-gf256`: a test seam (as
    /// [`ceremony::Planned::checked_against`]), for tests that give a deliberately wrong one
    /// and see the step stop. Nothing else calls it.
    pub fn checked_against(mut self, seconds: Seconds) -> Recombined {
        self.seconds = seconds;
        self
    }

    /// `replace-card`, first step: rebuilds the holder's share from the accepted shares
    /// (interpolation at x = holder, by both Shamir implementations), checks it recombines
    /// with the other shares to the secret and that every accepted envelope carries the
    /// header it is sealed with (but for the index), draws a new location key and one set of
    /// PINs per new card from `rng`, and seals the share to the new key, signed by the root
    /// key. Records `recovery.rebuilt`, `recovery.location`, `recovery.sealed`. The secret and
    /// the other shares are dropped (zeroized) here. On a refusal nothing is recorded and the
    /// phase comes back unchanged (to drop: nothing was written).
    pub fn start_replace_card(
        self,
        rng: &mut dyn SecretRng,
    ) -> Result<(ReplacingCards, ReplaceView), Refused<Recombined>> {
        match self.rebuild_and_seal(rng) {
            Ok(p) => {
                let cards = usize::from(p.view.cards);
                let mut common = self.common;
                common.transcript = p.transcript;
                Ok((
                    ReplacingCards {
                        common,
                        root: self.root,
                        holder: p.holder,
                        rebuilt: p.rebuilt,
                        header: p.header,
                        location: p.location,
                        pins: p.pins,
                        sealed: p.sealed,
                        serials: vec![None; cards],
                    },
                    p.view,
                ))
            }
            Err(e) => Err(Refused::new(self, e)),
        }
    }

    /// `replace-card` in one call, with every new card at hand (two readers, or a test):
    /// [`Recombined::start_replace_card`], [`ReplacingCards::provision_card`] for each of
    /// `cards` in order (card 1 first), [`ReplacingCards::finish`]. On any refusal everything
    /// is dropped (every secret zeroized) and nothing was written; a card provisioned before
    /// the refusal holds a key nobody will use and may be reset.
    pub fn perform_replace_card(
        self,
        rng: &mut dyn SecretRng,
        cards: &mut [(&mut dyn LocationCard, Approved)],
    ) -> Result<super::Finished, FlowError> {
        let (mut replacing, _) = self.start_replace_card(rng).map_err(|r| *r.error)?;
        for (i, (device, approved)) in cards.iter_mut().enumerate() {
            replacing.provision_card(small(i + 1), &mut **device, approved)?;
        }
        replacing.finish().map_err(|r| *r.error)
    }

    fn rebuild_and_seal(&self, rng: &mut dyn SecretRng) -> Result<Parts, FlowError> {
        let c = &self.common;
        let Operation::ReplaceCard { holder, cards } = c.request.operation else {
            return Err(FlowError::NotReplaceCard(c.request.operation.kind()));
        };
        let pinned = &c.pinned;
        let plan = pinned.plan();
        let no_holder = || {
            FlowError::NotForThisRoot(RecoveryError::NoSuchHolder {
                plan: pinned.plan_label(),
                holder,
                count: plan.holder_count(),
            })
        };
        let h = plan.holder(holder).ok_or_else(no_holder)?;
        let old = pinned.share(holder).ok_or_else(no_holder)?;
        let m = plan.threshold;
        let kept = self.kept.as_ref().ok_or(FlowError::Rebuild {
            holder,
            source: ShamirError::NotEnoughShares {
                have: 0,
                need: usize::from(m),
            },
        })?;
        let second = &*self.seconds.shamir;

        // The share at x = holder, through every accepted share.
        let shares: Vec<&ShareBytes> = kept.accepted.iter().map(|a| &a.envelope.share).collect();
        let (rebuilt, _) = shamir::interpolate_with(&shares, m, holder, second)
            .map_err(|source| FlowError::Rebuild { holder, source })?;

        // It recombines with M-1 of the others to the secret: every (M-1)-window of them, in
        // the order they came, cyclically (all (M-1)-subsets when M shares came and holder i
        // was not among them; the one subset when they were).
        let others: Vec<&super::Accepted> =
            kept.accepted.iter().filter(|a| a.index != holder).collect();
        let window = usize::from(m) - 1;
        let checks = if window == 0 || others.len() == window {
            1
        } else {
            others.len()
        };
        for start in 0..checks {
            let subset: Vec<&super::Accepted> = (0..window)
                .map(|k| others[(start + k) % others.len()])
                .collect();
            let mut picked: Vec<&ShareBytes> = subset.iter().map(|a| &a.envelope.share).collect();
            picked.push(&rebuilt);
            let (secret, _) = shamir::combine_with(&picked, m, second)
                .map_err(|source| FlowError::Rebuild { holder, source })?;
            if !RootSecret::from_slice(&secret).is_some_and(|s| s.ct_eq(&kept.secret)) {
                return Err(FlowError::RebuiltShareWrong {
                    holder,
                    others: subset
                        .iter()
                        .map(|a| a.index.to_string())
                        .collect::<Vec<_>>()
                        .join(","),
                });
            }
        }

        // The header it is sealed with: generation's, from the plan, the root key and the
        // commitment to the recombined secret; every accepted envelope carries the same.
        let commitment = keys::commitment(&kept.secret, &plan.ceremony_id);
        let header =
            ceremony::envelope_header(plan, &self.root, holder, commitment, pinned.key_time());
        for a in &kept.accepted {
            header_matches(&header, &a.envelope.header).map_err(|(field, expected, found)| {
                FlowError::Recombine(RecoveryError::EnvelopeMismatch {
                    index: a.index,
                    field,
                    expected,
                    found,
                })
            })?;
        }

        // A new location key and PINs, drawn as at generation; the key is new.
        let (location, pins) = ceremony::draw_location(rng, plan, h, cards, pinned.key_time())?;
        let fpr = location.cert().fingerprint();
        if let Some(holder) = pinned.location_holder(&fpr) {
            return Err(FlowError::LocationKeyReused {
                fingerprint: fpr.to_hex(),
                holder,
            });
        }
        let envelope = Envelope {
            header: header.clone(),
            share: rebuilt.duplicate(),
        };
        let sealed = envelope::seal(&envelope, &self.root, location.cert())?;
        drop(envelope);

        let mut t = c.transcript.clone();
        push(
            &mut t,
            &RecoveryRebuilt {
                holder,
                name: h.name.clone(),
                from: self
                    .holders
                    .iter()
                    .map(u8::to_string)
                    .collect::<Vec<_>>()
                    .join(","),
                second: second.name().to_string(),
                checked: checks,
            },
        )?;
        push(
            &mut t,
            &RecoveryLocation {
                holder,
                fingerprint: Fpr(fpr.to_hex()),
                subkey: Fpr(location.public_subkey().fingerprint().to_hex()),
                replaces: Fpr(old.location_cert.fingerprint().to_hex()),
            },
        )?;
        let sealed_sha256 = kdf::sha256(&sealed);
        push(
            &mut t,
            &RecoverySealed {
                holder,
                sha256: Hash32(sealed_sha256),
                replaces: Hash32(old.message_sha256),
            },
        )?;
        let view = ReplaceView {
            holder,
            name: h.name.clone(),
            location_fingerprint: fpr.to_hex(),
            replaces: old.location_cert.fingerprint().to_hex(),
            sealed_sha256: hex::encode(&sealed_sha256),
            cards,
        };
        Ok(Parts {
            holder,
            rebuilt,
            header,
            location,
            pins,
            sealed,
            transcript: t,
            view,
        })
    }
}

/// Whether `found` is `header` but for its index; else the first field that differs, with
/// the expected and found values.
fn header_matches(
    header: &EnvelopeHeader,
    found: &EnvelopeHeader,
) -> Result<(), (&'static str, String, String)> {
    for (field, expected, got) in [
        (
            "ceremony id",
            header.ceremony_id.clone(),
            found.ceremony_id.clone(),
        ),
        (
            "threshold",
            header.threshold.to_string(),
            found.threshold.to_string(),
        ),
        ("count", header.count.to_string(), found.count.to_string()),
        (
            "key time",
            header.key_time.to_string(),
            found.key_time.to_string(),
        ),
        (
            "plan hash",
            hex::encode(&header.plan_hash),
            hex::encode(&found.plan_hash),
        ),
        (
            "commitment",
            hex::encode(&header.commitment),
            hex::encode(&found.commitment),
        ),
        (
            "root fingerprint",
            hex::encode_upper(&header.root_fingerprint),
            hex::encode_upper(&found.root_fingerprint),
        ),
    ] {
        if expected != got {
            return Err((field, expected, got));
        }
    }
    Ok(())
}

impl ReplacingCards {
    /// The holder whose cards are replaced.
    pub fn holder(&self) -> u8 {
        self.holder
    }

    /// The new location certificate's fingerprint, upper-case hex.
    pub fn location_fingerprint(&self) -> String {
        self.location.cert().fingerprint().to_hex()
    }

    /// The request.
    pub fn request(&self) -> &Request {
        &self.common.request
    }

    /// The transcript so far (public).
    pub fn transcript(&self) -> &Transcript {
        &self.common.transcript
    }

    /// The next new card to provision, card 1 first; `None` once every one is done.
    pub fn next_card(&self) -> Option<NextCard> {
        let card = *self.cards_missing().first()?;
        let name = self
            .common
            .pinned
            .plan()
            .holder(self.holder)
            .map(|h| h.name.clone())
            .unwrap_or_default();
        Some(NextCard {
            holder: self.holder,
            card,
            holder_name: name,
            cards_for_holder: small(self.serials.len()),
        })
    }

    /// How many new cards in all.
    pub fn cards_total(&self) -> usize {
        self.serials.len()
    }

    /// The card numbers (1-based) still to provision.
    pub fn cards_missing(&self) -> Vec<u8> {
        self.serials
            .iter()
            .enumerate()
            .filter(|(_, s)| s.is_none())
            .map(|(i, _)| small(i + 1))
            .collect()
    }

    /// Provisions new card `card` (1-based) with the new location key and that card's PINs in
    /// its one insertion, as at generation (`ceremony::provision_one`): the card must be
    /// the one the screen approved, blank (unless `approved` says it may hold keys: a card
    /// this replacement started on), and no card of this ceremony (generation's, any
    /// replacement's, this one's: [`crate::recovery::PinnedRoot::card_with_serial`]); it then
    /// decrypts the new sealed share, which must be the rebuilt share under its header.
    /// Records `recovery.card`. On a refusal nothing is recorded; the card (or another) may be
    /// tried again.
    pub fn provision_card(
        &mut self,
        card: u8,
        device: &mut dyn LocationCard,
        approved: &Approved,
    ) -> Result<CardView, FlowError> {
        let holder = self.holder;
        let ci = usize::from(card)
            .checked_sub(1)
            .filter(|&i| i < self.serials.len())
            .ok_or(FlowError::Card(CeremonyError::NoSuchCard { holder, card }))?;
        if let Some(s) = &self.serials[ci] {
            return Err(FlowError::Card(CeremonyError::AlreadyProvisioned {
                holder,
                card,
                serial: s.0.clone(),
            }));
        }
        let pinned = &self.common.pinned;
        let serials = &self.serials;
        let used = |serial: &CardSerial| {
            pinned.card_with_serial(serial).or_else(|| {
                serials
                    .iter()
                    .position(|s| s.as_ref() == Some(serial))
                    .map(|c| (holder, small(c + 1)))
            })
        };
        let root_cert = self.root.public_cert();
        let (serial, _opened) = ceremony::provision_one(
            &CardJob {
                holder,
                card,
                location: &self.location,
                pins: &self.pins[ci],
                sealed: &self.sealed,
                root_cert: &root_cert,
                share: &self.rebuilt,
                header: &self.header,
            },
            device,
            approved,
            &used,
        )
        .map_err(FlowError::Card)?;
        let location_fingerprint = self.location_fingerprint();
        let mut t = self.common.transcript.clone();
        push(
            &mut t,
            &RecoveryCard {
                holder,
                card,
                serial: serial.0.clone(),
                location: Fpr(location_fingerprint.clone()),
                test_decrypt: Passed,
            },
        )?;
        self.common.transcript = t;
        self.serials[ci] = Some(serial.clone());
        Ok(CardView {
            holder,
            card,
            serial: serial.0,
            location_fingerprint,
        })
    }

    /// Once every new card is provisioned: seals the holder's new PIN file (the new cards'
    /// serials and PINs, to the holder's and the backup holder's personal certificates from
    /// the generation plan, signed by the root key), makes the new shard file (the pinned one
    /// with only the holder's entry changed) and the folder, and signs the transcript. The root
    /// key, the rebuilt share, the location key and the PINs are dropped (zeroized) with this
    /// phase. On a refusal the phase comes back unchanged.
    pub fn finish(self) -> Result<super::Finished, Refused<ReplacingCards>> {
        match self.outputs() {
            Ok(f) => Ok(f),
            Err(e) => Err(Refused::new(self, e)),
        }
    }

    fn outputs(&self) -> Result<super::Finished, FlowError> {
        let missing = self.cards_missing();
        if !missing.is_empty() {
            return Err(FlowError::CardsMissing { missing });
        }
        let serials: Vec<CardSerial> = self.serials.iter().flatten().cloned().collect();
        let c = &self.common;
        let holder = self.holder;
        let pinned = &c.pinned;
        let old = pinned.share(holder).ok_or_else(|| {
            FlowError::NotForThisRoot(RecoveryError::NoSuchHolder {
                plan: pinned.plan_label(),
                holder,
                count: pinned.plan().holder_count(),
            })
        })?;
        let (pin_file, recipients) = ceremony::seal_pin_file(
            pinned.plan(),
            &self.root,
            holder,
            &serials,
            &self.pins,
            pinned.key_time(),
        )
        .map_err(FlowError::Card)?;
        let mut t = c.transcript.clone();
        push(
            &mut t,
            &RecoveryPins {
                holder,
                sha256: Hash32(kdf::sha256(&pin_file)),
                recipients,
                replaces: Hash32(old.pin_file_sha256),
            },
        )?;
        let mut shards = pinned.shard_file().clone();
        for s in shards.shares.iter_mut().filter(|s| s.index == holder) {
            s.location_cert = self.location.cert().clone();
            s.message = self.sealed.clone();
        }
        let location_cert = self
            .location
            .cert()
            .armored()
            .to_vec()
            .map_err(key_err("the location certificate"))
            .map_err(|e: KeyError| FlowError::Key(e))?;
        let mut files = first_files(c, &self.root);
        files.extend([
            OutputFile {
                path: paths::SHARDS.into(),
                bytes: shards.to_toml().into_bytes(),
            },
            OutputFile {
                path: paths::pin_file(holder),
                bytes: pin_file,
            },
            OutputFile {
                path: paths::location_cert(holder),
                bytes: location_cert,
            },
            OutputFile {
                path: paths::sealed_share(holder),
                bytes: self.sealed.clone(),
            },
        ]);
        finish_folder(&self.root, c.request.time_unix, t, files)
    }
}
