//! Recovery ceremonies, the pure foundation: the root is pinned from a generation folder that
//! passes the offline verifier before any card is touched, requests are checked against it, and
//! shares are opened only with the pinned root certificate and the pinned location certificate.
//!
//! Why pinning: location certificates are public (they are in every shard file), so anyone can
//! build a shard file with their own root key, their own commitment, and envelopes encrypted to
//! the real location keys and signed by their root. A genuine card decrypts such an envelope,
//! and checking its signature against the certificate the same shard file embeds proves
//! nothing. [`PinnedRoot`] is made only from a folder that passes [`verify::verify_with`]: its
//! root certificate and fingerprint are those the signed transcript records (the witnesses
//! compare the transcript's final words with their paper), and every envelope is opened against
//! them.
//!
//! The commitment to the root secret has no public record: it travels inside each envelope,
//! which the root key signs. Because envelopes open only against the pinned root certificate
//! and only when they are the sealed shares the signed transcript records (`share.sealed`), the
//! commitment recombination checks is the one the genuine root key signed, and the key derived
//! from the recombined secret must have the pinned fingerprint ([`PinnedRoot::recombine`]).
//!
//! After a `replace-card` recovery, the root is pinned from the generation folder and that
//! recovery's folder ([`PinnedRoot::with_replacement`]), which must pass the recovery verifier
//! against the root pinned so far: holder i's pinned location certificate, sealed share, PIN
//! file and cards are then the new ones, and the old ones are refused (docs/formats/recovery.md,
//! "replace-card"). After a `reshare` recovery ([`PinnedRoot::with_folder`]), the pinned plan is
//! the reshare's new plan and every share a new one; every old share is retired and refused
//! (which is not a cryptographic guarantee: docs/formats/recovery.md, "reshare"). The root key
//! and its creation time ([`PinnedRoot::key_time`]) stay through every folder applied.

use std::cell::RefCell;
use std::collections::HashMap;
use std::io;
use std::path::Path;

use sequoia_openpgp as openpgp;

use openpgp::Cert;
use openpgp::Fingerprint;
use openpgp::parse::Parse;

use crate::card::{CardSerial, LocationCard};
use crate::ceremony::paths;
use crate::envelope::{self, Envelope, OpenShareError};
use crate::plan::{self, Plan};
use crate::policy::Policy;
use crate::recombine::{self, Expected, RecombineError, Recovered};
use crate::record::CoreRecord;
use crate::request::{Operation, OperationKind, Request};
use crate::secret::Pin;
use crate::shardfile::ShardFile;
use crate::transcript::Transcript;
use crate::verify::{self, Failure, Report};
use crate::{hex, kdf};

/// Why a generation folder could not be pinned.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PinError {
    /// The folder does not pass the offline verifier; its first failure.
    #[error("the generation folder does not verify: {0}")]
    Verify(#[from] Failure),
    /// The folder verified, but the files read afterwards disagree with what was verified
    /// (a bug, or files changing under the reader); what disagrees.
    #[error("the generation folder verified but {0}")]
    Inconsistent(String),
    /// A replace-card or reshare recovery folder given with the generation folder does not
    /// pass the recovery verifier against the root pinned so far (the generation and the
    /// folders before it, in the order they were made).
    #[error(
        "the replace-card/reshare folder {folder} does not verify against the generation folder and the replace-card/reshare folders given before it (give them in the order the recoveries were made): {source}"
    )]
    Replacement {
        /// The folder, as the caller named it.
        folder: String,
        /// The verifier's first failure.
        source: Box<crate::verify_recovery::RecoveryVerifyError>,
    },
    /// A folder given as a replace-card or reshare folder is the folder of another operation.
    #[error(
        "{folder} is a {operation} recovery's folder, neither a replace-card nor a reshare one: give only replace-card and reshare folders with the generation folder"
    )]
    NotAReplacement {
        /// The folder, as the caller named it.
        folder: String,
        /// Its operation.
        operation: OperationKind,
    },
}

/// Why a request, a shard file or a share was refused against the pinned root.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[non_exhaustive]
pub enum RecoveryError {
    /// The request names another ceremony id.
    #[error(
        "the request is for ceremony {request:?}, but the generation folder is ceremony {pinned:?}"
    )]
    OtherCeremony {
        /// The request's `ceremony_id`.
        request: String,
        /// The pinned ceremony id.
        pinned: String,
    },
    /// The request names another root fingerprint.
    #[error(
        "the request is for root key {request}, but the generation transcript's root key is {pinned}"
    )]
    OtherRoot {
        /// The request's `root_fingerprint`, upper-case hex.
        request: String,
        /// The pinned root fingerprint, upper-case hex.
        pinned: String,
    },
    /// The request time is before the root key was created.
    #[error("the request time {request} is before the root key's creation time {key}")]
    RequestBeforeKey {
        /// The request time, RFC 3339.
        request: String,
        /// The root key's creation time (the generation plan's time), RFC 3339.
        key: String,
    },
    /// A reshare request dated before the plan it replaces (the pinned plan, the generation's
    /// or an earlier reshare's): its new plan would be older than the current one.
    #[error(
        "the reshare request time {request} is before the current plan's time {plan}: a new plan is dated after the one it replaces"
    )]
    ReshareBeforePlan {
        /// The request time, RFC 3339.
        request: String,
        /// The pinned plan's time, RFC 3339.
        plan: String,
    },
    /// A holder index that the plan in force does not have.
    #[error("holder {holder} is not in {plan} (holders 1..={count})")]
    NoSuchHolder {
        /// How the plan is named: [`PinnedRoot::plan_label`].
        plan: &'static str,
        /// The index asked for.
        holder: u8,
        /// Number of holders in that plan.
        count: u8,
    },
    /// A shard file differs from the pinned generation folder: it is not this ceremony's (a
    /// substituted file, built with another root key, commitment or envelopes).
    #[error(
        "the shard file is not the generation ceremony's: its {field} is {found}, the signed transcript says {expected}"
    )]
    ShardFileMismatch {
        /// What differs, e.g. `root_fingerprint` or `share 2 message SHA-256`.
        field: String,
        /// The pinned value.
        expected: String,
        /// The shard file's value.
        found: String,
    },
    /// A sealed share is not the one the generation transcript records for this holder;
    /// refused before any card is asked to decrypt it.
    #[error(
        "holder {index}'s sealed share is not the one the generation transcript records (or, after a replace-card recovery, its transcript): its SHA-256 is {found}, the transcript says {expected}"
    )]
    NotTheSealedShare {
        /// The holder index.
        index: u8,
        /// The SHA-256 the transcript's `share.sealed` record gives, lower-case hex.
        expected: String,
        /// The SHA-256 of the message given, lower-case hex.
        found: String,
    },
    /// Opening the share failed: wrong card or PIN, not encrypted to the pinned location key,
    /// not signed by the pinned root key, or not an envelope.
    #[error("holder {index} ({holder}): {source}")]
    Open {
        /// The holder index.
        index: u8,
        /// The holder's name.
        holder: String,
        /// Why opening failed.
        source: OpenShareError,
    },
    /// The envelope opened and its root signature checks out, but a header field is not the
    /// pinned ceremony's.
    #[error(
        "holder {index}'s envelope says {field} {found}, the generation folder says {expected}"
    )]
    EnvelopeMismatch {
        /// The holder index.
        index: u8,
        /// Which header field.
        field: &'static str,
        /// The pinned value.
        expected: String,
        /// The envelope's value.
        found: String,
    },
    /// The opened shares were refused by [`recombine::recombine`] against the pinned root.
    #[error(transparent)]
    Recombine(#[from] RecombineError),
}

/// One holder's share as the generation folder pins it.
#[derive(Clone, Debug)]
pub struct PinnedShare {
    /// Holder index = share index, 1-based.
    pub index: u8,
    /// Holder name, from the plan.
    pub holder: String,
    /// The location certificate, whose fingerprint and encryption subkey the transcript's
    /// `location.cert` record states.
    pub location_cert: Cert,
    /// The sealed share (binary OpenPGP message), whose SHA-256 the transcript's `share.sealed`
    /// record states.
    pub message: Vec<u8>,
    /// SHA-256 of `message`, as the transcript's `share.sealed` record states it.
    pub message_sha256: [u8; 32],
    /// The holder's PIN file (armored), as verified: the generation folder's
    /// `pins/holder-NNN.asc`, or the last replace-card folder's for this holder. A recovery
    /// opens only this one.
    pub pin_file: Vec<u8>,
    /// SHA-256 of `pin_file`.
    pub pin_file_sha256: [u8; 32],
    /// The serials of the holder's location cards that hold this share's location key, in
    /// card order (the generation transcript's `card.provisioned` records, or the replace-card
    /// transcript's `recovery.card` records).
    pub cards: Vec<CardSerial>,
}

/// A replace-card recovery applied to the pinned root ([`PinnedRoot::with_replacement`]):
/// from it on, holder `holder`'s share is the one sealed to the new location key, opened only
/// with the new cards and the new PIN file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Replacement {
    /// The holder whose cards were replaced.
    pub holder: u8,
    /// The replace-card recovery transcript's final hash.
    pub transcript: [u8; 32],
    /// The new location certificate's fingerprint, upper-case hex.
    pub location: String,
    /// SHA-256 of the new sealed share.
    pub envelope: [u8; 32],
    /// SHA-256 of the new PIN file.
    pub pins: [u8; 32],
}

/// A reshare recovery applied to the pinned root ([`PinnedRoot::with_folder`]): from it on,
/// the plan is the reshare's new plan and every share is a new one; every earlier share is
/// retired (refused by sherd; see docs/formats/recovery.md, "reshare", for what the old shares
/// still mean outside it).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Reshare {
    /// The reshare recovery transcript's final hash.
    pub transcript: [u8; 32],
    /// The new plan's canonical hash.
    pub plan: [u8; 32],
    /// The new threshold M'.
    pub threshold: u8,
    /// The new number of holders N'.
    pub holders: u8,
}

/// One recovery folder applied to the pinned root, in the order applied.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Applied {
    /// A replace-card folder.
    ReplaceCard(Replacement),
    /// A reshare folder.
    Reshare(Reshare),
}

/// A replace-card or reshare recovery's output folder, read through `read` and listed by
/// `list` (paths relative to the folder), for [`PinnedRoot::with_folder`].
pub struct ReplacedFolder<'a> {
    /// How to name the folder in messages (its path).
    pub name: String,
    /// Reads a file of the folder by its path relative to the folder.
    pub read: &'a dyn Fn(&str) -> io::Result<Vec<u8>>,
    /// Lists every file of the folder.
    pub list: &'a dyn Fn() -> io::Result<Vec<String>>,
}

/// The root of a generation ceremony, pinned from a folder that passed the offline verifier.
/// The only ways to make one are [`PinnedRoot::from_generation`] (or [`PinnedRoot::from_dir`]),
/// and from there [`PinnedRoot::with_replacement`] for each replace-card recovery folder
/// ([`PinnedRoot::from_generation_with`], [`PinnedRoot::from_dirs`]), each verified first.
#[derive(Clone, Debug)]
pub struct PinnedRoot {
    report: Report,
    plan: Plan,
    root_cert: Cert,
    root_fingerprint: Fingerprint,
    final_hash: [u8; 32],
    shares: Vec<PinnedShare>,
    /// The current shard file: the generation's, with each replacement's entry.
    shards: ShardFile,
    /// The replace-card recoveries applied, in order.
    replacements: Vec<Replacement>,
    /// Every recovery folder applied (replace-card and reshare), in order.
    applied: Vec<Applied>,
    /// The root key's creation time: the generation plan's time, kept through every folder
    /// applied (a reshare's plan is dated later).
    key_time: u32,
    /// The shares replaced since generation (each holder's earlier ones), oldest first.
    retired: Vec<PinnedShare>,
}

impl PinnedRoot {
    /// Pins the root of the generation folder read through `read` (a path relative to the
    /// folder -> its bytes): runs [`verify::verify_with`] and keeps exactly the bytes it
    /// verified (each file is read once), so nothing read afterwards can differ.
    pub fn from_generation(
        read: &dyn Fn(&str) -> io::Result<Vec<u8>>,
    ) -> Result<PinnedRoot, PinError> {
        let seen: RefCell<HashMap<String, Vec<u8>>> = RefCell::new(HashMap::new());
        let once = |path: &str| -> io::Result<Vec<u8>> {
            if let Some(b) = seen.borrow().get(path) {
                return Ok(b.clone());
            }
            let bytes = read(path)?;
            seen.borrow_mut().insert(path.to_string(), bytes.clone());
            Ok(bytes)
        };
        let report = verify::verify_with(&once)?;
        let files = seen.into_inner();
        Self::pin(report, &files)
    }

    /// Pins the root of a generation folder on disk (paths that would leave the folder are
    /// refused, as `sherd-verify` refuses them).
    pub fn from_dir(dir: &Path) -> Result<PinnedRoot, PinError> {
        Self::from_generation(&verify::folder_reader(dir))
    }

    /// Takes the pinned values from the verified files.
    fn pin(report: Report, files: &HashMap<String, Vec<u8>>) -> Result<PinnedRoot, PinError> {
        let inconsistent = |what: String| PinError::Inconsistent(what);
        let get = |path: &str| {
            files
                .get(path)
                .ok_or_else(|| inconsistent(format!("{path} was not read by the verifier")))
        };
        let text = |path: &str| {
            String::from_utf8(get(path)?.clone())
                .map_err(|_| inconsistent(format!("{path} is not UTF-8")))
        };
        let transcript = Transcript::parse(get(paths::TRANSCRIPT)?)
            .map_err(|e| inconsistent(format!("{}: {e}", paths::TRANSCRIPT)))?;
        let core = transcript
            .core_records()
            .map_err(|e| inconsistent(format!("{}: {e}", paths::TRANSCRIPT)))?;
        let root_cert = Cert::from_bytes(get(paths::ROOT_CERT)?)
            .map_err(|e| inconsistent(format!("{}: {e:#}", paths::ROOT_CERT)))?;
        let plan = Plan::parse(&text(paths::PLAN)?)
            .map_err(|e| inconsistent(format!("{}: {e}", paths::PLAN)))?;
        let shards = ShardFile::parse(&text(paths::SHARDS)?)
            .map_err(|e| inconsistent(format!("{}: {e}", paths::SHARDS)))?;

        // The root as the signed transcript records it.
        let mut root_records = core.iter().filter_map(|(_, c)| match c {
            CoreRecord::RootFingerprint(r) => Some(r.0.0.clone()),
            _ => None,
        });
        let recorded = root_records
            .next()
            .ok_or_else(|| inconsistent("the transcript has no root.fingerprint".into()))?;
        if root_records.next().is_some()
            || recorded != report.root_fingerprint
            || root_cert.fingerprint().to_hex() != recorded
            || shards.root_fingerprint().to_hex() != recorded
        {
            return Err(inconsistent(format!(
                "the root fingerprint is not one value (transcript {recorded}, report {}, {} {}, {} {})",
                report.root_fingerprint,
                paths::ROOT_CERT,
                root_cert.fingerprint().to_hex(),
                paths::SHARDS,
                shards.root_fingerprint().to_hex()
            )));
        }
        if transcript.final_hash()
            != hex::decode_array(&report.transcript_final_hash).unwrap_or([0; 32])
        {
            return Err(inconsistent("the transcript's final hash differs".into()));
        }

        // Each holder's location certificate, sealed share and cards, as the transcript
        // records them.
        let mut locations: HashMap<u8, String> = HashMap::new();
        let mut sealed: HashMap<u8, [u8; 32]> = HashMap::new();
        let mut cards: HashMap<u8, Vec<(u8, CardSerial)>> = HashMap::new();
        for (_, c) in &core {
            match c {
                CoreRecord::LocationCert(r) => {
                    locations.insert(r.holder, r.fingerprint.0.clone());
                }
                CoreRecord::ShareSealed(r) => {
                    sealed.insert(r.holder, r.sha256.0);
                }
                CoreRecord::CardProvisioned(r) => {
                    cards
                        .entry(r.holder)
                        .or_default()
                        .push((r.card, CardSerial(r.serial.clone())));
                }
                _ => {}
            }
        }
        let mut pinned = Vec::with_capacity(shards.shares.len());
        for s in &shards.shares {
            let fpr = s.location_cert.fingerprint().to_hex();
            let digest = s.message_sha256();
            if locations.get(&s.index) != Some(&fpr) || sealed.get(&s.index) != Some(&digest) {
                return Err(inconsistent(format!(
                    "share {} of {} is not the one the transcript records",
                    s.index,
                    paths::SHARDS
                )));
            }
            let holder = plan
                .holder(s.index)
                .ok_or_else(|| inconsistent(format!("share {} has no holder", s.index)))?;
            let pin_file = get(&paths::pin_file(s.index))?.clone();
            let mut serials = cards.remove(&s.index).unwrap_or_default();
            serials.sort_by_key(|(card, _)| *card);
            pinned.push(PinnedShare {
                index: s.index,
                holder: holder.name.clone(),
                location_cert: s.location_cert.clone(),
                message: s.message.clone(),
                message_sha256: digest,
                pin_file_sha256: kdf::sha256(&pin_file),
                pin_file,
                cards: serials.into_iter().map(|(_, serial)| serial).collect(),
            });
        }
        if pinned.len() != plan.holders.len() {
            return Err(inconsistent(format!(
                "{} shares for {} holders",
                pinned.len(),
                plan.holders.len()
            )));
        }
        Ok(PinnedRoot {
            report,
            key_time: plan.time_unix,
            plan,
            root_fingerprint: root_cert.fingerprint(),
            root_cert,
            final_hash: transcript.final_hash(),
            shares: pinned,
            shards,
            replacements: Vec::new(),
            applied: Vec::new(),
            retired: Vec::new(),
        })
    }

    /// Pins the root of the generation folder read through `generation`
    /// ([`PinnedRoot::from_generation`]), then applies each replace-card recovery folder of
    /// `replaced`, in order ([`PinnedRoot::with_replacement`]).
    pub fn from_generation_with(
        generation: &dyn Fn(&str) -> io::Result<Vec<u8>>,
        replaced: &[ReplacedFolder<'_>],
    ) -> Result<PinnedRoot, PinError> {
        let mut pinned = Self::from_generation(generation)?;
        for folder in replaced {
            pinned = pinned.with_folder(folder)?;
        }
        Ok(pinned)
    }

    /// [`PinnedRoot::from_generation_with`] for folders on disk (paths that would leave a
    /// folder, and links, are refused).
    pub fn from_dirs(generation: &Path, replaced: &[&Path]) -> Result<PinnedRoot, PinError> {
        let readers: Vec<_> = replaced
            .iter()
            .map(|d| crate::verify_recovery::recovery_folder_reader(d))
            .collect();
        let listers: Vec<_> = replaced
            .iter()
            .map(|d| move || crate::verify_recovery::list_folder(d))
            .collect();
        let folders: Vec<ReplacedFolder<'_>> = replaced
            .iter()
            .zip(&readers)
            .zip(&listers)
            .map(|((d, read), list)| ReplacedFolder {
                name: d.display().to_string(),
                read,
                list,
            })
            .collect();
        Self::from_generation_with(&verify::folder_reader(generation), &folders)
    }

    /// Applies a replace-card recovery's folder: it must pass the recovery verifier against
    /// this pinned root (its transcript signed by the root key, its request a replace-card for
    /// this ceremony, the shares it recombined this root's current ones, its new shard file
    /// this one but for the holder's entry, ...: [`crate::verify_recovery`]), reading each
    /// of its files once. From then on holder `h`'s pinned share is the new one: the new
    /// location certificate and sealed share, the new PIN file and cards. The old ones are
    /// kept only to name them when they are brought ([`PinnedRoot::retired`]).
    pub fn with_replacement(self, folder: &ReplacedFolder<'_>) -> Result<PinnedRoot, PinError> {
        self.with_folder(folder)
    }

    /// Applies a replace-card or a reshare recovery's folder ([`PinnedRoot::with_replacement`]
    /// for replace-card). It must pass the recovery verifier against this pinned root first
    /// (for a reshare: its request a reshare for this root, `plan.toml` the request's new plan,
    /// `shards.toml` a full shard file of the new plan with the recorded location certificates
    /// and sealed shares, the PIN files and new cards recorded, ...). A reshare then makes the
    /// new plan the pinned plan (its holders, threshold and policy), every share the new one
    /// (location certificate and sealed share from the new `shards.toml`, PIN file from
    /// `pins/`, cards from the `recovery.new-card` records), and retires every share before it;
    /// the root and the key time stay.
    pub fn with_folder(mut self, folder: &ReplacedFolder<'_>) -> Result<PinnedRoot, PinError> {
        let seen: RefCell<HashMap<String, Vec<u8>>> = RefCell::new(HashMap::new());
        let once = |path: &str| -> io::Result<Vec<u8>> {
            if let Some(b) = seen.borrow().get(path) {
                return Ok(b.clone());
            }
            let bytes = (folder.read)(path)?;
            seen.borrow_mut().insert(path.to_string(), bytes.clone());
            Ok(bytes)
        };
        let report =
            crate::verify_recovery::verify_recovery_pinned(&self, &once, folder.list, None)
                .map_err(|e| PinError::Replacement {
                    folder: folder.name.clone(),
                    source: Box::new(e),
                })?;
        let files = seen.into_inner();
        match report.operation {
            OperationKind::ReplaceCard => self.apply(&folder.name, &files)?,
            OperationKind::Reshare => self.apply_reshare(&folder.name, &files)?,
            operation => {
                return Err(PinError::NotAReplacement {
                    folder: folder.name.clone(),
                    operation,
                });
            }
        }
        Ok(self)
    }

    /// Takes the new plan and shares of a verified reshare folder's files.
    fn apply_reshare(
        &mut self,
        name: &str,
        files: &HashMap<String, Vec<u8>>,
    ) -> Result<(), PinError> {
        use crate::recovery_flow::{RecoveryRecord, paths as rpaths};
        let inconsistent =
            |what: String| PinError::Inconsistent(format!("(reshare folder {name}) {what}"));
        let get = |path: &str| {
            files
                .get(path)
                .ok_or_else(|| inconsistent(format!("{path} was not read by its verifier")))
        };
        let request = std::str::from_utf8(get(rpaths::REQUEST)?)
            .ok()
            .and_then(|t| Request::parse(t).ok())
            .ok_or_else(|| inconsistent(format!("{} does not read back", rpaths::REQUEST)))?;
        let Operation::Reshare { plan: new_plan, .. } = request.operation else {
            return Err(inconsistent("its request is not a reshare".into()));
        };
        let transcript = Transcript::parse(get(rpaths::TRANSCRIPT)?)
            .map_err(|e| inconsistent(format!("{}: {e}", rpaths::TRANSCRIPT)))?;
        let records = crate::recovery_flow::records(&transcript)
            .map_err(|e| inconsistent(format!("{}: {e}", rpaths::TRANSCRIPT)))?;
        let mut cards: HashMap<u8, Vec<(u8, CardSerial)>> = HashMap::new();
        for r in &records {
            if let RecoveryRecord::NewCard(c) = r {
                cards
                    .entry(c.holder)
                    .or_default()
                    .push((c.card, CardSerial(c.serial.clone())));
            }
        }
        let text = std::str::from_utf8(get(rpaths::SHARDS)?)
            .map_err(|_| inconsistent(format!("{} is not UTF-8", rpaths::SHARDS)))?;
        let shards =
            ShardFile::parse(text).map_err(|e| inconsistent(format!("{}: {e}", rpaths::SHARDS)))?;
        if shards.shares.len() != new_plan.holders.len() {
            return Err(inconsistent(format!(
                "{} shares for {} holders",
                shards.shares.len(),
                new_plan.holders.len()
            )));
        }
        let mut shares = Vec::with_capacity(shards.shares.len());
        for (h, s) in new_plan.holders.iter().zip(&shards.shares) {
            let pin_file = get(&rpaths::pin_file(h.index))?.clone();
            let mut serials = cards.remove(&h.index).unwrap_or_default();
            serials.sort_by_key(|(card, _)| *card);
            shares.push(PinnedShare {
                index: h.index,
                holder: h.name.clone(),
                location_cert: s.location_cert.clone(),
                message: s.message.clone(),
                message_sha256: s.message_sha256(),
                pin_file_sha256: kdf::sha256(&pin_file),
                pin_file,
                cards: serials.into_iter().map(|(_, serial)| serial).collect(),
            });
        }
        let applied = Reshare {
            transcript: transcript.final_hash(),
            plan: new_plan.hash(),
            threshold: new_plan.threshold,
            holders: new_plan.holder_count(),
        };
        let old = std::mem::replace(&mut self.shares, shares);
        self.retired.extend(old);
        self.plan = *new_plan;
        self.shards = shards;
        self.applied.push(Applied::Reshare(applied));
        Ok(())
    }

    /// Takes the new share of a verified replace-card folder's files.
    fn apply(&mut self, name: &str, files: &HashMap<String, Vec<u8>>) -> Result<(), PinError> {
        use crate::recovery_flow::{RecoveryRecord, paths as rpaths};
        let inconsistent =
            |what: String| PinError::Inconsistent(format!("(replace-card folder {name}) {what}"));
        let get = |path: &str| {
            files
                .get(path)
                .ok_or_else(|| inconsistent(format!("{path} was not read by its verifier")))
        };
        let request = std::str::from_utf8(get(rpaths::REQUEST)?)
            .ok()
            .and_then(|t| Request::parse(t).ok())
            .ok_or_else(|| inconsistent(format!("{} does not read back", rpaths::REQUEST)))?;
        let Operation::ReplaceCard { holder, .. } = request.operation else {
            return Err(inconsistent("its request is not a replace-card".into()));
        };
        let transcript = Transcript::parse(get(rpaths::TRANSCRIPT)?)
            .map_err(|e| inconsistent(format!("{}: {e}", rpaths::TRANSCRIPT)))?;
        let records = crate::recovery_flow::records(&transcript)
            .map_err(|e| inconsistent(format!("{}: {e}", rpaths::TRANSCRIPT)))?;
        let serials: Vec<CardSerial> = records
            .iter()
            .filter_map(|r| match r {
                RecoveryRecord::Card(c) => Some(CardSerial(c.serial.clone())),
                _ => None,
            })
            .collect();
        let text = std::str::from_utf8(get(rpaths::SHARDS)?)
            .map_err(|_| inconsistent(format!("{} is not UTF-8", rpaths::SHARDS)))?;
        let shards =
            ShardFile::parse(text).map_err(|e| inconsistent(format!("{}: {e}", rpaths::SHARDS)))?;
        let new = shards
            .share(holder)
            .ok_or_else(|| inconsistent(format!("{} has no share {holder}", rpaths::SHARDS)))?;
        let pin_file = get(&rpaths::pin_file(holder))?.clone();
        let slot = usize::from(holder)
            .checked_sub(1)
            .filter(|&i| i < self.shares.len())
            .ok_or_else(|| inconsistent(format!("holder {holder} is not pinned")))?;
        let replacement = Replacement {
            holder,
            transcript: transcript.final_hash(),
            location: new.location_cert.fingerprint().to_hex(),
            envelope: new.message_sha256(),
            pins: kdf::sha256(&pin_file),
        };
        let current = PinnedShare {
            index: holder,
            holder: self.shares[slot].holder.clone(),
            location_cert: new.location_cert.clone(),
            message: new.message.clone(),
            message_sha256: replacement.envelope,
            pin_file_sha256: replacement.pins,
            pin_file,
            cards: serials,
        };
        let old = std::mem::replace(&mut self.shares[slot], current);
        self.retired.push(old);
        self.shards = shards;
        self.applied.push(Applied::ReplaceCard(replacement.clone()));
        self.replacements.push(replacement);
        Ok(())
    }

    /// What the offline verifier established about the generation folder.
    pub fn report(&self) -> &Report {
        &self.report
    }

    /// The current plan: the generation plan, or the last reshare folder's new plan applied
    /// here (its holders, threshold and policy govern every later request).
    pub fn plan(&self) -> &Plan {
        &self.plan
    }

    /// How messages name [`PinnedRoot::plan`]: "the generation plan", or "the reshared plan"
    /// once a reshare folder is applied (its holders, threshold and policy are then the last
    /// reshare's, not the generation's).
    pub fn plan_label(&self) -> &'static str {
        if self
            .applied
            .iter()
            .any(|a| matches!(a, Applied::Reshare(_)))
        {
            "the reshared plan"
        } else {
            "the generation plan"
        }
    }

    /// The generation ceremony's id.
    pub fn ceremony_id(&self) -> &str {
        &self.plan.ceremony_id
    }

    /// The root certificate (public), whose fingerprint the signed transcript records.
    pub fn root_cert(&self) -> &Cert {
        &self.root_cert
    }

    /// The root fingerprint the signed transcript records.
    pub fn root_fingerprint(&self) -> &Fingerprint {
        &self.root_fingerprint
    }

    /// The generation transcript's final hash.
    pub fn final_hash(&self) -> [u8; 32] {
        self.final_hash
    }

    /// The final hash as PGP words: the witnesses compare them with what they wrote down at
    /// the generation ceremony.
    pub fn final_words(&self) -> String {
        crate::words::to_phrase(&self.final_hash)
    }

    /// What recombination must arrive at: this ceremony's id and the pinned root fingerprint.
    pub fn expected(&self) -> Expected {
        Expected {
            ceremony_id: self.plan.ceremony_id.clone(),
            root_fingerprint: self.root_fingerprint.as_bytes().to_vec(),
        }
    }

    /// Holder `index`'s pinned share and location certificate.
    pub fn share(&self, index: u8) -> Option<&PinnedShare> {
        self.shares.get(usize::from(index).checked_sub(1)?)
    }

    /// Every holder's pinned share, in index order.
    pub fn shares(&self) -> &[PinnedShare] {
        &self.shares
    }

    /// The replace-card recoveries applied to this root, in order (empty when it was pinned
    /// from the generation folder alone).
    pub fn replacements(&self) -> &[Replacement] {
        &self.replacements
    }

    /// Every recovery folder applied to this root (replace-card and reshare), in the order
    /// applied: the next recovery's transcript names them in this order (`recovery.replaced`,
    /// `recovery.reshared`).
    pub fn applied(&self) -> &[Applied] {
        &self.applied
    }

    /// The reshare recoveries applied to this root, in order.
    pub fn reshares(&self) -> Vec<&Reshare> {
        self.applied
            .iter()
            .filter_map(|a| match a {
                Applied::Reshare(r) => Some(r),
                Applied::ReplaceCard(_) => None,
            })
            .collect()
    }

    /// The root key's creation time, Unix seconds: the generation plan's time, which the
    /// root key is derived with and every envelope's `key_time` carries. After a reshare the
    /// current plan ([`PinnedRoot::plan`]) is dated later; this stays.
    pub fn key_time(&self) -> u32 {
        self.key_time
    }

    /// The shares replaced since generation, oldest first: their location certificates,
    /// sealed shares, PIN files and cards are no longer accepted.
    pub fn retired(&self) -> &[PinnedShare] {
        &self.retired
    }

    /// The current shard file: the generation's `shards.toml`, with the entry of each
    /// replace-card folder applied.
    pub fn shard_file(&self) -> &ShardFile {
        &self.shards
    }

    /// Which holder's card, and which of their cards, `serial` is or was: every card
    /// provisioned at generation or by a replace-card recovery applied here, retired ones
    /// included. A new card must be none of them.
    pub fn card_with_serial(&self, serial: &CardSerial) -> Option<(u8, u8)> {
        self.shares.iter().chain(&self.retired).find_map(|s| {
            s.cards
                .iter()
                .position(|c| c == serial)
                .map(|i| (s.index, u8::try_from(i + 1).unwrap_or(u8::MAX)))
        })
    }

    /// Which holder's location key, current or retired, has this fingerprint: a new location
    /// key must be none of them.
    pub fn location_holder(&self, fingerprint: &openpgp::Fingerprint) -> Option<u8> {
        self.shares
            .iter()
            .chain(&self.retired)
            .find(|s| s.location_cert.fingerprint() == *fingerprint)
            .map(|s| s.index)
    }

    /// Refuses a request that is not for this ceremony and root key, dated before the key
    /// ([`PinnedRoot::key_time`]), (`replace-card`) naming a holder the current plan does not
    /// have, or (`reshare`) dated before the current plan.
    pub fn check_request(&self, request: &Request) -> Result<(), RecoveryError> {
        if request.ceremony_id != self.plan.ceremony_id {
            return Err(RecoveryError::OtherCeremony {
                request: request.ceremony_id.clone(),
                pinned: self.plan.ceremony_id.clone(),
            });
        }
        if request.root_fingerprint != self.root_fingerprint {
            return Err(RecoveryError::OtherRoot {
                request: request.root_fingerprint.to_hex(),
                pinned: self.root_fingerprint.to_hex(),
            });
        }
        if request.time_unix < self.key_time {
            return Err(RecoveryError::RequestBeforeKey {
                request: plan::rfc3339(request.time_unix),
                key: plan::rfc3339(self.key_time),
            });
        }
        if let Operation::ReplaceCard { holder, .. } = request.operation {
            self.holder(holder)?;
        }
        if matches!(request.operation, Operation::Reshare { .. })
            && request.time_unix < self.plan.time_unix
        {
            return Err(RecoveryError::ReshareBeforePlan {
                request: plan::rfc3339(request.time_unix),
                plan: plan::rfc3339(self.plan.time_unix),
            });
        }
        Ok(())
    }

    /// Checks a request (already accepted by [`PinnedRoot::check_request`]) against the
    /// generation plan's signing policy: [`check_policy`] with the pinned plan's `[policy]`.
    pub fn check_policy(
        &self,
        request: &Request,
        request_bytes: &[u8],
        approvals: &[ApprovalFile],
    ) -> Result<Approved, PolicyError> {
        check_policy(self.plan.policy.as_ref(), request, request_bytes, approvals)
    }

    fn holder(&self, index: u8) -> Result<&PinnedShare, RecoveryError> {
        self.share(index).ok_or(RecoveryError::NoSuchHolder {
            plan: self.plan_label(),
            holder: index,
            count: self.plan.holder_count(),
        })
    }

    /// Compares a shard file from elsewhere (another copy, a holder's stick) with the pinned
    /// folder: the same ceremony, plan, root, location certificates and sealed shares, or the
    /// first difference.
    pub fn check_shard_file(&self, shards: &ShardFile) -> Result<(), RecoveryError> {
        let differ = |field: String, expected: String, found: String| {
            Err(RecoveryError::ShardFileMismatch {
                field,
                expected,
                found,
            })
        };
        if shards.root_fingerprint() != self.root_fingerprint {
            return differ(
                "root_fingerprint".into(),
                self.root_fingerprint.to_hex(),
                shards.root_fingerprint().to_hex(),
            );
        }
        for (field, expected, found) in [
            (
                "ceremony_id",
                self.plan.ceremony_id.clone(),
                shards.ceremony_id.clone(),
            ),
            (
                "plan_hash",
                hex::encode(&self.plan.hash()),
                hex::encode(&shards.plan_hash),
            ),
            (
                "count",
                self.shares.len().to_string(),
                shards.shares.len().to_string(),
            ),
        ] {
            if expected != found {
                return differ(field.into(), expected, found);
            }
        }
        for (p, s) in self.shares.iter().zip(&shards.shares) {
            let (want, got) = (
                p.location_cert.fingerprint().to_hex(),
                s.location_cert.fingerprint().to_hex(),
            );
            if want != got {
                return differ(format!("share {} location certificate", p.index), want, got);
            }
            let got = s.message_sha256();
            if got != p.message_sha256 {
                return differ(
                    format!("share {} message SHA-256", p.index),
                    hex::encode(&p.message_sha256),
                    hex::encode(&got),
                );
            }
        }
        Ok(())
    }

    /// Opens holder `index`'s pinned sealed share with their location card.
    pub fn open_share(
        &self,
        index: u8,
        card: &mut dyn LocationCard,
        user_pin: &Pin,
    ) -> Result<Envelope, RecoveryError> {
        let message = self.holder(index)?.message.clone();
        self.open_message(index, &message, card, user_pin)
    }

    /// Opens a sealed share for holder `index` given from elsewhere. Its SHA-256 must be the
    /// one the generation transcript records (checked before the card is used); it is then
    /// decrypted with the card against the pinned location certificate, its signature checked
    /// against the pinned root certificate (never a certificate that came with the message),
    /// and every header field compared with the pinned ceremony.
    pub fn open_message(
        &self,
        index: u8,
        message: &[u8],
        card: &mut dyn LocationCard,
        user_pin: &Pin,
    ) -> Result<Envelope, RecoveryError> {
        let pinned = self.holder(index)?;
        let digest = kdf::sha256(message);
        if digest != pinned.message_sha256 {
            return Err(RecoveryError::NotTheSealedShare {
                index,
                expected: hex::encode(&pinned.message_sha256),
                found: hex::encode(&digest),
            });
        }
        let envelope = self.open_pinned(index, message, card, user_pin)?;
        Ok(envelope)
    }

    /// Decrypts and checks `message` against the pinned certificates and ceremony (without the
    /// transcript's hash check of [`PinnedRoot::open_message`]).
    fn open_pinned(
        &self,
        index: u8,
        message: &[u8],
        card: &mut dyn LocationCard,
        user_pin: &Pin,
    ) -> Result<Envelope, RecoveryError> {
        let pinned = self.holder(index)?;
        let envelope = envelope::open_with_card(
            message,
            card,
            user_pin,
            &pinned.location_cert,
            &self.root_cert,
        )
        .map_err(|source| RecoveryError::Open {
            index,
            holder: pinned.holder.clone(),
            source,
        })?;
        let h = &envelope.header;
        let mismatch = |field, expected: String, found: String| {
            Err(RecoveryError::EnvelopeMismatch {
                index,
                field,
                expected,
                found,
            })
        };
        for (field, expected, found) in [
            (
                "ceremony id",
                self.plan.ceremony_id.clone(),
                h.ceremony_id.clone(),
            ),
            ("index", index.to_string(), h.index.to_string()),
            (
                "threshold",
                self.plan.threshold.to_string(),
                h.threshold.to_string(),
            ),
            (
                "count",
                self.plan.holder_count().to_string(),
                h.count.to_string(),
            ),
            (
                "key time",
                self.key_time.to_string(),
                h.key_time.to_string(),
            ),
            (
                "plan hash",
                hex::encode(&self.plan.hash()),
                hex::encode(&h.plan_hash),
            ),
            (
                "root fingerprint",
                self.root_fingerprint.to_hex(),
                hex::encode_upper(&h.root_fingerprint),
            ),
        ] {
            if expected != found {
                return mismatch(field, expected, found);
            }
        }
        Ok(envelope)
    }

    /// Recombines opened envelopes against the pinned ceremony id and root fingerprint: the
    /// commitment they carry (signed by the pinned root key) must hold for the recombined
    /// secret, and the key derived from it must have the pinned fingerprint.
    pub fn recombine(&self, envelopes: &[&Envelope]) -> Result<Recovered, RecoveryError> {
        Ok(recombine::recombine(&self.expected(), envelopes)?)
    }
}

/// The folder of approvals on the request stick, next to `request.toml`
/// (docs/formats/request.md).
pub const APPROVALS_DIR: &str = "approvals";
/// At most this many files in [`APPROVALS_DIR`].
pub const MAX_APPROVAL_FILES: usize = 255;
/// An approval file larger than this is not read (one signature is a few hundred bytes).
pub const MAX_APPROVAL_BYTES: usize = 64 * 1024;

/// One file of the approvals folder: a detached OpenPGP signature over the request file's exact
/// bytes, binary or ASCII-armored.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ApprovalFile {
    /// The file's name in the approvals folder (only to name it on screen: who signed is told
    /// by the signature, not by the name).
    pub name: String,
    /// The file's bytes.
    pub bytes: Vec<u8>,
}

/// Reads the approvals folder `dir` (the request stick's [`APPROVALS_DIR`]), in name order. A
/// missing folder is no approvals. Every entry must be a regular file (not a link or a folder)
/// of at most [`MAX_APPROVAL_BYTES`], at most [`MAX_APPROVAL_FILES`] of them; the error says
/// which entry is not.
pub fn read_approvals(dir: &Path) -> io::Result<Vec<ApprovalFile>> {
    let entries = match std::fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(e),
    };
    let refuse = |msg: String| io::Error::new(io::ErrorKind::InvalidData, msg);
    let mut files = Vec::new();
    for entry in entries {
        let entry = entry?;
        let name = entry.file_name().to_string_lossy().into_owned();
        let meta = std::fs::symlink_metadata(entry.path())?;
        if !meta.file_type().is_file() {
            return Err(refuse(format!(
                "{APPROVALS_DIR}/{name}: not a regular file; the folder holds only signature files"
            )));
        }
        if meta.len() > MAX_APPROVAL_BYTES as u64 {
            return Err(refuse(format!(
                "{APPROVALS_DIR}/{name}: {} bytes; an approval is one signature, at most {MAX_APPROVAL_BYTES} bytes",
                meta.len()
            )));
        }
        files.push(ApprovalFile {
            bytes: std::fs::read(entry.path())?,
            name,
        });
        if files.len() > MAX_APPROVAL_FILES {
            return Err(refuse(format!(
                "{APPROVALS_DIR}: more than {MAX_APPROVAL_FILES} files"
            )));
        }
    }
    files.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(files)
}

/// Why one approval file does not count.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum NotCountedReason {
    /// Neither a binary OpenPGP signature nor an ASCII-armored one, or its packets do not
    /// parse; the reason.
    #[error("not an OpenPGP signature: {0}")]
    Unreadable(String),
    /// The file holds something else than exactly one signature packet.
    #[error("{0}; an approval file holds exactly one detached signature")]
    NotOneSignature(String),
    /// The signature is not over a binary document (e.g. a text-mode or clear-text signature).
    #[error(
        "a signature of type {typ}: an approval signs the request file's exact bytes (a binary document signature, as `gpg --detach-sign` makes without --textmode)"
    )]
    NotBinaryDocument {
        /// The signature type found.
        typ: String,
    },
    /// No key of any approver's certificate made it.
    #[error(
        "not made by an approver: no key of the certificates in the plan's [policy] made it (its issuer: {issuers})"
    )]
    NotByAnApprover {
        /// The issuers the signature names, upper-case hex, joined by ", " (or `unknown`).
        issuers: String,
    },
    /// It names an approver's key as its issuer but does not verify over the request's bytes.
    #[error(
        "claims to be by approver {approver:?} but does not verify over the request file's bytes: it was made over other bytes (an edited request?) or altered"
    )]
    BadSignature {
        /// The approver's name.
        approver: String,
    },
    /// It verifies, but Sequoia's standard policy refuses it (e.g. a SHA-1 hash).
    #[error("approver {approver:?}'s signature is refused by the standard policy: {reason}")]
    WeakSignature {
        /// The approver's name.
        approver: String,
        /// The policy's reason.
        reason: String,
    },
    /// It verifies, but the approver's certificate or the key that made it is not usable at
    /// the request time (expired, revoked, not a signing key).
    #[error(
        "approver {approver:?}'s certificate {fingerprint} is not usable at the request time: {reason}"
    )]
    ApproverKeyNotUsable {
        /// The approver's name.
        approver: String,
        /// The certificate's fingerprint, upper-case hex.
        fingerprint: String,
        /// What is wrong: revoked, expired, or the key is no live signing key.
        reason: String,
    },
    /// A good approval by an approver already counted.
    #[error("approver {approver:?} already approved in {first_file}; each approver counts once")]
    DuplicateApprover {
        /// The approver's name.
        approver: String,
        /// The file whose approval by them was counted.
        first_file: String,
    },
}

/// An approval file that does not count, and why.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{file}: {reason}")]
pub struct NotCounted {
    /// The file's name in the approvals folder.
    pub file: String,
    /// Why it does not count.
    pub reason: NotCountedReason,
}

/// One counted approval: a good signature over the request's bytes by a distinct approver.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Approval {
    /// The file's name in the approvals folder.
    pub file: String,
    /// SHA-256 of the file's bytes, for the transcript.
    pub file_sha256: [u8; 32],
    /// The approver's index in the plan's `[policy]`, 1-based.
    pub approver_index: u8,
    /// The approver's name.
    pub approver: String,
    /// The approver certificate's fingerprint, upper-case hex.
    pub cert_fingerprint: String,
    /// The signing key's fingerprint, upper-case hex.
    pub key_fingerprint: String,
    /// The signature's creation time (Unix seconds), as the signer's clock said.
    pub signature_time: u32,
}

/// What [`check_policy`] decided for a request that may go on.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Approved {
    /// The generation plan has no `[policy]`: nobody's approval is needed. A screen says so
    /// plainly (see the `Display` text).
    NoPolicy {
        /// Approval files given anyway, which were not looked at.
        ignored_files: usize,
    },
    /// The plan's policy holds: at least `needed` distinct approvers signed the request.
    ByPolicy {
        /// The request's operation.
        operation: OperationKind,
        /// The policy's k for it.
        needed: u8,
        /// The approvals that count, one per approver, in file name order.
        approvals: Vec<Approval>,
        /// The files that do not count, and why (shown, and not needed).
        not_counted: Vec<NotCounted>,
    },
}

impl std::fmt::Display for Approved {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Approved::NoPolicy { ignored_files } => {
                write!(
                    f,
                    "no policy: the plan in force (the generation's, or the last reshare's) has no [policy], so this request needs no approvals"
                )?;
                if *ignored_files > 0 {
                    write!(f, " ({ignored_files} approval file(s) not looked at)")?;
                }
                Ok(())
            }
            Approved::ByPolicy {
                operation,
                needed,
                approvals,
                not_counted,
            } => {
                let names: Vec<&str> = approvals.iter().map(|a| a.approver.as_str()).collect();
                write!(
                    f,
                    "policy holds: {operation} needs {needed} approver(s); {} approved ({})",
                    approvals.len(),
                    names.join(", ")
                )?;
                if !not_counted.is_empty() {
                    write!(f, "; not counted: {}", join(not_counted))?;
                }
                Ok(())
            }
        }
    }
}

fn join(not_counted: &[NotCounted]) -> String {
    not_counted
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join("; ")
}

/// Why a request fails the plan's policy.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum PolicyError {
    /// The bytes given are not the request file the request was read from: approvals are
    /// checked over the file's exact bytes.
    #[error(
        "the bytes given are not the request file that was read (approvals are checked over the request file's exact bytes): read the request and its approvals from the same stick again"
    )]
    NotTheRequestBytes,
    /// More approval files than [`MAX_APPROVAL_FILES`].
    #[error("{count} approval files; at most {MAX_APPROVAL_FILES} are read: remove the extra ones")]
    TooManyFiles {
        /// How many were given.
        count: usize,
    },
    /// The request asks for more than the policy's limit for its operation.
    #[error(
        "the request names {found} {what}; the plan's policy allows at most {limit} per {operation} request ({field}): split it into several requests"
    )]
    LimitExceeded {
        /// The request's operation.
        operation: OperationKind,
        /// The policy field, e.g. `policy.sign.max_files`.
        field: &'static str,
        /// What is counted: `files` or `user IDs`.
        what: &'static str,
        /// The policy's limit.
        limit: usize,
        /// What the request asks for.
        found: usize,
    },
    /// Fewer distinct approvers than the policy's k signed the request.
    #[error(
        "{operation} needs approvals by {needed} distinct approver(s) of the plan's policy; {valid} valid{}",
        if not_counted.is_empty() { String::new() } else { format!("; not counted: {}", join(not_counted)) }
    )]
    TooFewApprovals {
        /// The request's operation.
        operation: OperationKind,
        /// Distinct approvers whose approval is good.
        valid: usize,
        /// The policy's k for the operation.
        needed: u8,
        /// The files that do not count, and why.
        not_counted: Vec<NotCounted>,
    },
}

/// Checks a request against the generation plan's signing policy, before any card is asked for
/// (pure: no device, no clock). `request_bytes` are the request file's exact bytes (which must
/// read back as `request`), `approvals` the files of the approvals folder.
///
/// Without a policy the request is allowed and the result says so ([`Approved::NoPolicy`]).
/// With one, the request must keep the limits of its operation's rule, and at least k distinct
/// approvers must have made a detached signature over `request_bytes`: a binary document
/// signature, binary or armored, exactly one per file, that verifies with a key of an
/// approver's certificate, accepted by the standard policy, by a certificate valid, unrevoked
/// and alive at the request time whose key is a live signing key then. Each other file is not
/// counted, with its reason.
pub fn check_policy(
    policy: Option<&Policy>,
    request: &Request,
    request_bytes: &[u8],
    approvals: &[ApprovalFile],
) -> Result<Approved, PolicyError> {
    let read_back = std::str::from_utf8(request_bytes)
        .ok()
        .and_then(|t| Request::parse(t).ok());
    if read_back.is_none_or(|r| r.hash() != request.hash()) {
        return Err(PolicyError::NotTheRequestBytes);
    }
    let Some(policy) = policy else {
        return Ok(Approved::NoPolicy {
            ignored_files: approvals.len(),
        });
    };
    if approvals.len() > MAX_APPROVAL_FILES {
        return Err(PolicyError::TooManyFiles {
            count: approvals.len(),
        });
    }
    let operation = request.operation.kind();
    let rule = policy.rule(operation);
    let limit = match &request.operation {
        Operation::Sign { files } => rule
            .max_files
            .map(|l| ("policy.sign.max_files", "files", l, files.len())),
        Operation::Certify(c) => rule.max_user_ids.map(|l| {
            (
                "policy.certify.max_user_ids",
                "user IDs",
                l,
                c.user_ids.len(),
            )
        }),
        _ => None,
    };
    if let Some((field, what, limit, found)) = limit
        && found > limit
    {
        return Err(PolicyError::LimitExceeded {
            operation,
            field,
            what,
            limit,
            found,
        });
    }

    let mut counted: Vec<Approval> = Vec::new();
    let mut not_counted = Vec::new();
    for file in approvals {
        match judge_approval(policy, request, request_bytes, file) {
            Ok(a) => {
                if let Some(first) = counted
                    .iter()
                    .find(|c| c.approver_index == a.approver_index)
                {
                    not_counted.push(NotCounted {
                        file: file.name.clone(),
                        reason: NotCountedReason::DuplicateApprover {
                            approver: a.approver,
                            first_file: first.file.clone(),
                        },
                    });
                } else {
                    counted.push(a);
                }
            }
            Err(reason) => not_counted.push(NotCounted {
                file: file.name.clone(),
                reason,
            }),
        }
    }
    if counted.len() < usize::from(rule.k) {
        return Err(PolicyError::TooFewApprovals {
            operation,
            valid: counted.len(),
            needed: rule.k,
            not_counted,
        });
    }
    Ok(Approved::ByPolicy {
        operation,
        needed: rule.k,
        approvals: counted,
        not_counted,
    })
}

/// One approval file: whose good signature it is, or why it does not count.
fn judge_approval(
    policy: &Policy,
    request: &Request,
    request_bytes: &[u8],
    file: &ApprovalFile,
) -> Result<Approval, NotCountedReason> {
    use openpgp::Packet;
    use openpgp::parse::{PacketParser, PacketParserResult};
    use openpgp::policy::{HashAlgoSecurity, Policy as _, StandardPolicy};
    use openpgp::types::{RevocationStatus, SignatureType};

    // An OpenPGP packet's first byte has its top bit set; anything else must be armor.
    let binary = if file.bytes.first().is_some_and(|b| b & 0x80 != 0) {
        file.bytes.clone()
    } else {
        crate::pgp::dearmor(&file.bytes, openpgp::armor::Kind::Signature).map_err(|e| {
            NotCountedReason::Unreadable(format!(
                "neither binary nor an armored PGP SIGNATURE block ({e})"
            ))
        })?
    };
    fn unreadable(e: impl std::fmt::Display) -> NotCountedReason {
        NotCountedReason::Unreadable(format!("{e:#}"))
    }
    let mut packets = Vec::new();
    let mut ppr = PacketParser::from_bytes(&binary).map_err(unreadable)?;
    while let PacketParserResult::Some(pp) = ppr {
        let (packet, next) = pp.next().map_err(unreadable)?;
        packets.push(packet);
        ppr = next;
    }
    let sig = match packets.as_slice() {
        [Packet::Signature(s)] => s,
        [p] => {
            return Err(NotCountedReason::NotOneSignature(format!(
                "a {} packet, not a signature",
                p.tag()
            )));
        }
        _ => {
            return Err(NotCountedReason::NotOneSignature(format!(
                "{} packets",
                packets.len()
            )));
        }
    };
    if sig.typ() != SignatureType::Binary {
        return Err(NotCountedReason::NotBinaryDocument {
            typ: sig.typ().to_string(),
        });
    }

    // Who made it: the approver key it verifies with (whether that key may sign at the request
    // time is judged after). Only the keys the signature names as its issuer are tried (all
    // approvers' keys if it names none), so a folder of junk costs little.
    let issuers = sig.get_issuers();
    let named = |k: &openpgp::KeyHandle| issuers.is_empty() || issuers.iter().any(|i| i.aliases(k));
    let mut signer = None;
    let mut claimed = None;
    'find: for a in &policy.approvers {
        for c in &a.certs {
            for ka in c.cert.keys() {
                if !named(&ka.key().key_handle()) {
                    continue;
                }
                claimed.get_or_insert(a);
                if sig.verify_message(ka.key(), request_bytes).is_ok() {
                    signer = Some((a, c, ka.key().fingerprint()));
                    break 'find;
                }
            }
        }
    }
    let Some((approver, cert, key_fingerprint)) = signer else {
        if let Some(a) = claimed.filter(|_| !issuers.is_empty()) {
            return Err(NotCountedReason::BadSignature {
                approver: a.name.clone(),
            });
        }
        return Err(NotCountedReason::NotByAnApprover {
            issuers: if issuers.is_empty() {
                "unknown".into()
            } else {
                issuers
                    .iter()
                    .map(ToString::to_string)
                    .collect::<Vec<_>>()
                    .join(", ")
            },
        });
    };

    let sp = StandardPolicy::new();
    sp.signature(sig, HashAlgoSecurity::CollisionResistance)
        .map_err(|e| NotCountedReason::WeakSignature {
            approver: approver.name.clone(),
            reason: format!("{e:#}"),
        })?;
    let time = request.time();
    let not_usable = |reason: String| NotCountedReason::ApproverKeyNotUsable {
        approver: approver.name.clone(),
        fingerprint: cert.fingerprint.to_hex(),
        reason,
    };
    let vc = cert
        .cert
        .with_policy(&sp, time)
        .map_err(|e| not_usable(format!("{e:#}")))?;
    if let RevocationStatus::Revoked(_) = vc.revocation_status() {
        return Err(not_usable("revoked".into()));
    }
    vc.alive()
        .map_err(|e| not_usable(format!("expired: {e:#}")))?;
    if !plan::signing_keys(&cert.cert, time)
        .iter()
        .any(|k| k.fingerprint() == key_fingerprint)
    {
        return Err(not_usable(format!(
            "the key {key_fingerprint} that made the signature is not a live, unrevoked signing key then"
        )));
    }
    let signature_time = sig
        .signature_creation_time()
        .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
        .and_then(|d| u32::try_from(d.as_secs()).ok())
        .unwrap_or(0);
    Ok(Approval {
        file: file.name.clone(),
        file_sha256: kdf::sha256(&file.bytes),
        approver_index: approver.index,
        approver: approver.name.clone(),
        cert_fingerprint: cert.fingerprint.to_hex(),
        key_fingerprint: key_fingerprint.to_hex(),
        signature_time,
    })
}
