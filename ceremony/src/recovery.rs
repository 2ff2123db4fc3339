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

use std::cell::RefCell;
use std::collections::HashMap;
use std::io;
use std::path::Path;

use sequoia_openpgp as openpgp;

use openpgp::Cert;
use openpgp::Fingerprint;
use openpgp::parse::Parse;

use crate::card::LocationCard;
use crate::ceremony::paths;
use crate::envelope::{self, Envelope, OpenShareError};
use crate::plan::{self, Plan};
use crate::recombine::{self, Expected, RecombineError, Recovered};
use crate::record::CoreRecord;
use crate::request::{Operation, Request};
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
    /// A holder index that the generation plan does not have.
    #[error("holder {holder} is not in the generation plan (holders 1..={count})")]
    NoSuchHolder {
        /// The index asked for.
        holder: u8,
        /// Number of holders in the generation plan.
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
        "holder {index}'s sealed share is not the one the generation transcript records: its SHA-256 is {found}, the transcript says {expected}"
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
}

/// The root of a generation ceremony, pinned from a folder that passed the offline verifier.
/// The only way to make one is [`PinnedRoot::from_generation`] (or [`PinnedRoot::from_dir`]).
#[derive(Clone, Debug)]
pub struct PinnedRoot {
    report: Report,
    plan: Plan,
    root_cert: Cert,
    root_fingerprint: Fingerprint,
    final_hash: [u8; 32],
    shares: Vec<PinnedShare>,
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

        // Each holder's location certificate and sealed share, as the transcript records them.
        let mut locations: HashMap<u8, String> = HashMap::new();
        let mut sealed: HashMap<u8, [u8; 32]> = HashMap::new();
        for (_, c) in &core {
            match c {
                CoreRecord::LocationCert(r) => {
                    locations.insert(r.holder, r.fingerprint.0.clone());
                }
                CoreRecord::ShareSealed(r) => {
                    sealed.insert(r.holder, r.sha256.0);
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
            pinned.push(PinnedShare {
                index: s.index,
                holder: holder.name.clone(),
                location_cert: s.location_cert.clone(),
                message: s.message.clone(),
                message_sha256: digest,
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
            plan,
            root_fingerprint: root_cert.fingerprint(),
            root_cert,
            final_hash: transcript.final_hash(),
            shares: pinned,
        })
    }

    /// What the offline verifier established about the generation folder.
    pub fn report(&self) -> &Report {
        &self.report
    }

    /// The generation plan.
    pub fn plan(&self) -> &Plan {
        &self.plan
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

    /// Refuses a request that is not for this ceremony and root key, dated before the key, or
    /// (`replace-card`) naming a holder the generation plan does not have.
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
        if request.time_unix < self.plan.time_unix {
            return Err(RecoveryError::RequestBeforeKey {
                request: plan::rfc3339(request.time_unix),
                key: plan::rfc3339(self.plan.time_unix),
            });
        }
        if let Operation::ReplaceCard { holder, .. } = request.operation {
            self.holder(holder)?;
        }
        Ok(())
    }

    fn holder(&self, index: u8) -> Result<&PinnedShare, RecoveryError> {
        self.share(index).ok_or(RecoveryError::NoSuchHolder {
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
                self.plan.time_unix.to_string(),
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
