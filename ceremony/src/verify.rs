//! The offline verifier: given a ceremony's output folder, check everything that can be checked
//! without secrets, and report a pass or the first failure. Runs on an ordinary computer
//! (`sherd-verify <folder>`); the checks are listed in docs/formats/README.md.

use std::collections::{BTreeSet, HashMap};
use std::io;
use std::path::Path;
use std::time::{Duration, UNIX_EPOCH};

use sequoia_openpgp as openpgp;

use openpgp::Cert;
use openpgp::parse::Parse;
use openpgp::policy::StandardPolicy;
use openpgp::types::{Curve, PublicKeyAlgorithm};

use crate::ceremony::paths;
use crate::plan::{self, Plan};
use crate::record::{self, CoreRecord, Kind};
use crate::shardfile::ShardFile;
use crate::transcript::{self, Transcript};
use crate::{hex, kdf, pgp, words};

/// What a passing verification established.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Report {
    /// Ceremony id, from the plan.
    pub ceremony_id: String,
    /// Root certificate fingerprint, 40 upper-case hex digits, as the transcript records it
    /// and `root-cert.asc` matches.
    pub root_fingerprint: String,
    /// Threshold M, from the plan.
    pub threshold: u8,
    /// Number of shares N (= holders), from the plan.
    pub count: u8,
    /// Number of records in the transcript.
    pub records: usize,
    /// Files checked: every file an `output.file` record lists (by size and SHA-256), plus
    /// the transcript and its signature.
    pub files_checked: usize,
    /// Number of cards the plan calls for, each found provisioned under a distinct serial.
    pub cards: usize,
    /// The canonical plan hash recomputed from `plan.toml`, 64 lower-case hex digits.
    pub plan_hash: String,
    /// The transcript's final hash, 64 lower-case hex digits.
    pub transcript_final_hash: String,
    /// The same hash as PGP words, to compare with what the witnesses wrote down.
    pub transcript_final_words: String,
}

/// The first failed check.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Failure {
    /// A file the checks need could not be read (missing, or a path leaving the folder).
    #[error("{path}: cannot read: {source}")]
    Unreadable {
        /// Path relative to the ceremony folder.
        path: String,
        /// The I/O error.
        source: io::Error,
    },
    /// The transcript is malformed or its chain broken, or its signature does not verify.
    #[error("{path}: {source}")]
    Transcript {
        /// `transcript.txt`, or `transcript.txt.sig` for the signature.
        path: String,
        /// What the transcript check refused.
        source: transcript::TranscriptError,
    },
    /// A file is malformed or has the wrong shape (root certificate, plan, shard file, PIN
    /// file).
    #[error("{path}: {reason}")]
    Invalid {
        /// Path relative to the ceremony folder.
        path: String,
        /// What is wrong with it.
        reason: String,
    },
    /// A value differs between the transcript (or the plan) and a file.
    #[error("{what}: transcript says {recorded}, found {found}")]
    Mismatch {
        /// What was compared, e.g. `SHA-256 of plan.toml`.
        what: String,
        /// The expected value, as the transcript records it (the shard file's header fields
        /// are compared with the plan instead, except `root_fingerprint`).
        recorded: String,
        /// The value found in the file.
        found: String,
    },
    /// A record the checks need is missing, repeated or out of order, or records contradict
    /// each other (e.g. a card serial used twice); what is wrong.
    #[error("transcript: {0}")]
    MissingRecord(String),
}

fn invalid(path: &str, reason: impl Into<String>) -> Failure {
    Failure::Invalid {
        path: path.to_string(),
        reason: reason.into(),
    }
}

fn mismatch(
    what: impl Into<String>,
    recorded: impl Into<String>,
    found: impl Into<String>,
) -> Failure {
    Failure::Mismatch {
        what: what.into(),
        recorded: recorded.into(),
        found: found.into(),
    }
}

/// The core's typed records of one kind, in order.
macro_rules! all {
    ($core:expr, $variant:ident) => {
        $core
            .iter()
            .filter_map(|(_, c)| match c {
                CoreRecord::$variant(x) => Some(x),
                _ => None,
            })
            .collect::<Vec<&record::$variant>>()
    };
}

/// The one record of a kind that appears exactly once.
fn one<T>(found: Vec<T>, kind: Kind) -> Result<T, Failure> {
    let n = found.len();
    let mut it = found.into_iter();
    match (it.next(), n) {
        (Some(r), 1) => Ok(r),
        (None, _) => Err(Failure::MissingRecord(format!("no {} record", kind.name()))),
        _ => Err(Failure::MissingRecord(format!(
            "more than one {} record",
            kind.name()
        ))),
    }
}

/// Checks the root certificate's shape: Ed25519 primary (certify+sign), one Cv25519 encryption
/// subkey, valid at its own creation time.
fn check_root_cert(cert: &Cert) -> Result<(), String> {
    let policy = StandardPolicy::new();
    let time = cert.primary_key().key().creation_time() + Duration::from_secs(1);
    let vc = cert
        .with_policy(&policy, time)
        .map_err(|e| format!("not valid at its creation time: {e:#}"))?;
    let primary = vc.primary_key();
    if primary.key().pk_algo() != PublicKeyAlgorithm::EdDSA
        || !matches!(
            primary.key().mpis(),
            openpgp::crypto::mpi::PublicKey::EdDSA {
                curve: Curve::Ed25519,
                ..
            }
        )
    {
        return Err("primary key is not Ed25519".into());
    }
    let flags = primary.key_flags().ok_or("primary key has no key flags")?;
    if !flags.for_certification() || !flags.for_signing() {
        return Err("primary key is not marked for certification and signing".into());
    }
    let subs: Vec<_> = vc.keys().subkeys().collect();
    if subs.len() != 1 {
        return Err(format!("expected one subkey, found {}", subs.len()));
    }
    let sub = &subs[0];
    if !matches!(
        sub.key().mpis(),
        openpgp::crypto::mpi::PublicKey::ECDH {
            curve: Curve::Cv25519,
            ..
        }
    ) {
        return Err("subkey is not Cv25519".into());
    }
    let sflags = sub.key_flags().ok_or("subkey has no key flags")?;
    if !sflags.for_transport_encryption() || !sflags.for_storage_encryption() {
        return Err("subkey is not marked for encryption".into());
    }
    Ok(())
}

/// Checks a location certificate's shape: created at the plan time, exactly one encryption
/// key, Cv25519, no secret key material.
fn check_location_cert(cert: &Cert, time_unix: u32) -> Result<(), String> {
    if cert.is_tsk() {
        return Err("contains secret key material".into());
    }
    let created = cert.primary_key().key().creation_time();
    if created != UNIX_EPOCH + Duration::from_secs(u64::from(time_unix)) {
        return Err("not created at the plan time".into());
    }
    let keys = plan::encryption_keys(cert, created + Duration::from_secs(1));
    match keys.as_slice() {
        [k] if matches!(
            k.mpis(),
            openpgp::crypto::mpi::PublicKey::ECDH {
                curve: Curve::Cv25519,
                ..
            }
        ) =>
        {
            Ok(())
        }
        [_] => Err("the encryption key is not Cv25519".into()),
        _ => Err(format!("expected one encryption key, found {}", keys.len())),
    }
}

/// Verifies a ceremony folder through `read` (a path relative to the folder -> its bytes).
pub fn verify_with(read: &dyn Fn(&str) -> io::Result<Vec<u8>>) -> Result<Report, Failure> {
    let get = |path: &str| {
        read(path).map_err(|source| Failure::Unreadable {
            path: path.to_string(),
            source,
        })
    };

    // 1. The transcript's chain.
    let transcript_bytes = get(paths::TRANSCRIPT)?;
    let t = Transcript::parse(&transcript_bytes).map_err(|source| Failure::Transcript {
        path: paths::TRANSCRIPT.into(),
        source,
    })?;
    let core = t.core_records().map_err(|source| Failure::Transcript {
        path: paths::TRANSCRIPT.into(),
        source,
    })?;
    match core.last() {
        Some((r, CoreRecord::CeremonyEnd(_))) if r.seq as usize == t.records().len() => {}
        _ => {
            return Err(Failure::MissingRecord(
                "the last record is not ceremony.end: the transcript is incomplete".into(),
            ));
        }
    }

    // 2. The root certificate, and the transcript's signature by it.
    let root_fpr = one(all!(core, RootFingerprint), Kind::RootFingerprint)?
        .0
        .0
        .clone();
    let root_bytes = get(paths::ROOT_CERT)?;
    let root_cert =
        Cert::from_bytes(&root_bytes).map_err(|e| invalid(paths::ROOT_CERT, format!("{e:#}")))?;
    if root_cert.is_tsk() {
        return Err(invalid(paths::ROOT_CERT, "contains secret key material"));
    }
    if root_cert.fingerprint().to_hex() != root_fpr {
        return Err(mismatch(
            "root certificate fingerprint",
            &root_fpr,
            root_cert.fingerprint().to_hex(),
        ));
    }
    check_root_cert(&root_cert).map_err(|e| invalid(paths::ROOT_CERT, e))?;
    let sig = get(paths::TRANSCRIPT_SIG)?;
    transcript::verify_signature(&root_cert, &transcript_bytes, &sig).map_err(|source| {
        Failure::Transcript {
            path: paths::TRANSCRIPT_SIG.into(),
            source,
        }
    })?;

    // 3. Every output file the transcript lists, by size and hash.
    let mut listed: HashMap<String, Vec<u8>> = HashMap::new();
    for r in all!(core, OutputFile) {
        let path = r.path.as_str();
        let bytes = get(path)?;
        let digest = kdf::sha256(&bytes);
        if r.sha256.0 != digest {
            return Err(mismatch(
                format!("SHA-256 of {path}"),
                r.sha256.to_string(),
                hex::encode(&digest),
            ));
        }
        if r.size != bytes.len() {
            return Err(mismatch(
                format!("size of {path}"),
                r.size.to_string(),
                bytes.len().to_string(),
            ));
        }
        listed.insert(path.to_string(), bytes);
    }
    let listed_get = |path: &str| {
        listed
            .get(path)
            .ok_or_else(|| Failure::MissingRecord(format!("no output.file record for {path}")))
    };

    // 4. The plan, by its canonical hash.
    let plan_text = String::from_utf8(listed_get(paths::PLAN)?.clone())
        .map_err(|_| invalid(paths::PLAN, "not UTF-8"))?;
    let plan = Plan::parse(&plan_text).map_err(|e| invalid(paths::PLAN, e.to_string()))?;
    let plan_hash = hex::encode(&plan.hash());
    let recorded = one(all!(core, PlanHash), Kind::PlanHash)?.0.to_string();
    if recorded != plan_hash {
        return Err(mismatch("canonical plan hash", recorded, &plan_hash));
    }

    // 5. The shard file against the plan and the transcript.
    let shard_text = String::from_utf8(listed_get(paths::SHARDS)?.clone())
        .map_err(|_| invalid(paths::SHARDS, "not UTF-8"))?;
    let shards =
        ShardFile::parse(&shard_text).map_err(|e| invalid(paths::SHARDS, e.to_string()))?;
    let checks = [
        (
            "ceremony_id",
            shards.ceremony_id.clone(),
            plan.ceremony_id.clone(),
        ),
        (
            "plan_hash",
            hex::encode(&shards.plan_hash),
            plan_hash.clone(),
        ),
        (
            "threshold",
            shards.threshold.to_string(),
            plan.threshold.to_string(),
        ),
        (
            "count",
            shards.count.to_string(),
            plan.holder_count().to_string(),
        ),
        (
            "key_time",
            shards.key_time.to_string(),
            plan.time_unix.to_string(),
        ),
        (
            "root_fingerprint",
            shards.root_fingerprint().to_hex(),
            root_fpr.clone(),
        ),
    ];
    for (name, found, expected) in checks {
        if found != expected {
            return Err(mismatch(
                format!("{} {name}", paths::SHARDS),
                expected,
                found,
            ));
        }
    }
    let sealed = all!(core, ShareSealed);
    let locations = all!(core, LocationCert);
    if sealed.len() != shards.shares.len() || locations.len() != shards.shares.len() {
        return Err(Failure::MissingRecord(format!(
            "{} share.sealed and {} location.cert records for {} shares",
            sealed.len(),
            locations.len(),
            shards.shares.len()
        )));
    }
    for ((s, rec), loc) in shards.shares.iter().zip(&sealed).zip(&locations) {
        let h = plan.holder(s.index).expect("indices checked against count");
        if s.holder != h.name {
            return Err(mismatch(
                format!("share {} holder name", s.index),
                &h.name,
                &s.holder,
            ));
        }
        if rec.holder != s.index || loc.holder != s.index {
            return Err(Failure::MissingRecord(format!(
                "records for share {} are out of order",
                s.index
            )));
        }
        let digest = s.message_sha256();
        if rec.sha256.0 != digest {
            return Err(mismatch(
                format!("share {} ciphertext SHA-256", s.index),
                rec.sha256.to_string(),
                hex::encode(&digest),
            ));
        }
        check_location_cert(&s.location_cert, plan.time_unix).map_err(|e| {
            invalid(
                paths::SHARDS,
                format!("share {}: location certificate: {e}", s.index),
            )
        })?;
        let fpr = s.location_cert.fingerprint().to_hex();
        if loc.fingerprint.0 != fpr {
            return Err(mismatch(
                format!("share {} location certificate", s.index),
                loc.fingerprint.to_string(),
                fpr,
            ));
        }
    }

    // 6. PIN files: listed, hashed, and encrypted to exactly the holder's and backup's keys.
    let time = UNIX_EPOCH + Duration::from_secs(u64::from(plan.time_unix));
    let pins = all!(core, PinsSealed);
    if pins.len() != plan.holders.len() {
        return Err(Failure::MissingRecord(format!(
            "{} pins.sealed records for {} holders",
            pins.len(),
            plan.holders.len()
        )));
    }
    for (h, rec) in plan.holders.iter().zip(&pins) {
        let path = paths::pin_file(h.index);
        let bytes = listed_get(&path)?;
        let digest = kdf::sha256(bytes);
        if rec.holder != h.index || rec.sha256.0 != digest {
            return Err(mismatch(
                format!("{path} SHA-256"),
                rec.sha256.to_string(),
                hex::encode(&digest),
            ));
        }
        let bin =
            pgp::dearmor(bytes, openpgp::armor::Kind::Message).map_err(|e| invalid(&path, e))?;
        let found: BTreeSet<String> = pgp::message_recipients(&bin)
            .map_err(|e| invalid(&path, e))?
            .iter()
            .map(|k| k.to_hex())
            .collect();
        let backup = plan.holder(h.backup).expect("validated");
        let expected: BTreeSet<String> = h
            .certs
            .iter()
            .chain(&backup.certs)
            .flat_map(|c| plan::encryption_keys(&c.cert, time))
            .map(|k| k.keyid().to_hex())
            .collect();
        if found != expected {
            return Err(mismatch(
                format!("{path} recipients"),
                expected.into_iter().collect::<Vec<_>>().join(","),
                found.into_iter().collect::<Vec<_>>().join(","),
            ));
        }
    }

    // 7. Cards: every planned card provisioned and test-decrypted, no serial twice.
    // (A card.provisioned record says test-decrypt=ok by its type: any other value is
    // refused when the transcript is read.)
    let provisioned = all!(core, CardProvisioned);
    let mut serials = BTreeSet::new();
    let mut cards = 0;
    for h in &plan.holders {
        for c in 1..=h.cards {
            let rec = provisioned
                .iter()
                .find(|r| r.holder == h.index && r.card == c)
                .ok_or_else(|| {
                    Failure::MissingRecord(format!(
                        "holder {} card {c} was never provisioned",
                        h.index
                    ))
                })?;
            if !serials.insert(rec.serial.clone()) {
                return Err(Failure::MissingRecord(format!(
                    "card serial {} used twice",
                    rec.serial
                )));
            }
            cards += 1;
        }
    }

    // 8. The verification steps happened (the self-test's result=ok, by its type).
    one(all!(core, VerifySubsets), Kind::VerifySubsets)?;
    one(all!(core, VerifySelfTest), Kind::VerifySelfTest)?;

    Ok(Report {
        ceremony_id: plan.ceremony_id.clone(),
        root_fingerprint: root_fpr,
        threshold: plan.threshold,
        count: plan.holder_count(),
        records: t.records().len(),
        files_checked: listed.len() + 2,
        cards,
        plan_hash,
        transcript_final_hash: hex::encode(&t.final_hash()),
        transcript_final_words: words::to_phrase(&t.final_hash()),
    })
}

/// Verifies a ceremony folder on disk.
pub fn verify_dir(dir: &Path) -> Result<Report, Failure> {
    let read = |p: &str| -> io::Result<Vec<u8>> {
        // Paths come from the transcript: refuse anything that could leave the folder.
        if p.starts_with('/') || p.split('/').any(|c| c.is_empty() || c == "..") {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "path leaves the folder",
            ));
        }
        std::fs::read(dir.join(p))
    };
    verify_with(&read)
}
