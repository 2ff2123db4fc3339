//! The shard file: every sealed share of a ceremony with the certificates needed to use it, in
//! one strict TOML file. Format: docs/formats/shard-file.md.

use std::time::{Duration, UNIX_EPOCH};

use sequoia_openpgp as openpgp;
use serde::{Deserialize, Serialize};

use openpgp::Cert;
use openpgp::armor::Kind;
use openpgp::parse::Parse;
use openpgp::serialize::SerializeInto;

use crate::{hex, kdf, pgp, plan};

/// The value of the `format` field.
pub const FORMAT: &str = "sherd-shards/1";

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawShardFile {
    format: String,
    ceremony_id: String,
    plan_hash: String,
    threshold: i64,
    count: i64,
    key_time: i64,
    root_fingerprint: String,
    root_cert: String,
    #[serde(rename = "share", default)]
    shares: Vec<RawShare>,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawShare {
    index: i64,
    holder: String,
    location_fingerprint: String,
    location_cert: String,
    message_sha256: String,
    message: String,
}

/// One sealed share.
#[derive(Clone, Debug)]
pub struct SealedShare {
    /// Share index = holder index.
    pub index: u8,
    /// Holder name.
    pub holder: String,
    /// The location certificate whose encryption subkey the message is encrypted to.
    pub location_cert: Cert,
    /// The binary OpenPGP message (encrypted envelope).
    pub message: Vec<u8>,
}

impl SealedShare {
    /// SHA-256 of the binary message.
    pub fn message_sha256(&self) -> [u8; 32] {
        kdf::sha256(&self.message)
    }
}

/// A parsed shard file.
#[derive(Clone, Debug)]
pub struct ShardFile {
    /// Ceremony id, as in the plan.
    pub ceremony_id: String,
    /// The canonical plan hash (64 lower-case hex digits in the file).
    pub plan_hash: [u8; 32],
    /// Threshold M, 1..=count.
    pub threshold: u8,
    /// Number of shares N (one per holder), 1..=255.
    pub count: u8,
    /// Root key creation time = plan time (Unix seconds).
    pub key_time: u32,
    /// The public root certificate.
    pub root_cert: Cert,
    /// Shares in index order 1..=count.
    pub shares: Vec<SealedShare>,
}

/// Why a shard file was refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[non_exhaustive]
pub enum ShardFileError {
    /// Not TOML, or a field is missing, unknown or of the wrong type; the TOML parser's
    /// message.
    #[error("the shard file is not valid TOML for this schema: {0}")]
    Syntax(String),
    /// The `format` field is not [`FORMAT`].
    #[error("unsupported shard file format {found:?}: this build reads {FORMAT:?}")]
    UnsupportedFormat {
        /// The `format` value found.
        found: String,
    },
    /// A top-level field is out of range or does not match (e.g. `root_fingerprint` against
    /// `root_cert`, or the number of `[[share]]` tables against `count`).
    #[error("field {field}: {reason}")]
    Field {
        /// The field's TOML key.
        field: &'static str,
        /// What is wrong with it.
        reason: String,
    },
    /// A `[[share]]` table is refused: out of order, bad holder name or certificate, hash
    /// mismatch, or a message not encrypted to exactly its location key.
    #[error("share {position} (index {index}): {reason}")]
    Share {
        /// 1-based position of the table in the file.
        position: usize,
        /// The `index` the table states, as written.
        index: i64,
        /// What is wrong with it.
        reason: String,
    },
}

fn cert_from_armor(text: &str) -> Result<Cert, String> {
    let bin = pgp::dearmor(text.as_bytes(), Kind::PublicKey)?;
    let cert = Cert::from_bytes(&bin).map_err(|e| format!("{e:#}"))?;
    if cert.is_tsk() {
        return Err("contains secret key material".into());
    }
    // Sequoia reads some packets it cannot write back (a subpacket naming an unknown kind of
    // fingerprint, for one). Such a file could not be reproduced, and sherd never writes one.
    cert.to_vec().map_err(|e| {
        format!("cannot be written out again ({e:#}): this certificate was not made by sherd")
    })?;
    Ok(cert)
}

fn armored_cert(cert: &Cert) -> String {
    // Certificates come from sherd's own key generation or passed `cert_from_armor`'s check.
    let bin = cert.to_vec().expect("serializing to memory");
    String::from_utf8(pgp::armor(&bin, Kind::PublicKey)).expect("armor is ASCII")
}

impl ShardFile {
    /// What recombination must check the opened envelopes against.
    pub fn expected(&self) -> crate::recombine::Expected {
        crate::recombine::Expected {
            ceremony_id: self.ceremony_id.clone(),
            root_fingerprint: self.root_cert.fingerprint().as_bytes().to_vec(),
        }
    }

    /// The share for holder `index`.
    pub fn share(&self, index: u8) -> Option<&SealedShare> {
        self.shares.get(usize::from(index).checked_sub(1)?)
    }

    /// The root fingerprint.
    pub fn root_fingerprint(&self) -> openpgp::Fingerprint {
        self.root_cert.fingerprint()
    }

    /// Serializes to TOML.
    pub fn to_toml(&self) -> String {
        let raw = RawShardFile {
            format: FORMAT.to_string(),
            ceremony_id: self.ceremony_id.clone(),
            plan_hash: hex::encode(&self.plan_hash),
            threshold: i64::from(self.threshold),
            count: i64::from(self.count),
            key_time: i64::from(self.key_time),
            root_fingerprint: self.root_cert.fingerprint().to_hex(),
            root_cert: armored_cert(&self.root_cert),
            shares: self
                .shares
                .iter()
                .map(|s| RawShare {
                    index: i64::from(s.index),
                    holder: s.holder.clone(),
                    location_fingerprint: s.location_cert.fingerprint().to_hex(),
                    location_cert: armored_cert(&s.location_cert),
                    message_sha256: hex::encode(&s.message_sha256()),
                    message: String::from_utf8(pgp::armor(&s.message, Kind::Message))
                        .expect("ASCII"),
                })
                .collect(),
        };
        toml::to_string(&raw).expect("serializing plain data")
    }

    /// Parses and checks a shard file: structure, hashes, fingerprints, and that each message
    /// is encrypted to exactly its location key.
    pub fn parse(text: &str) -> Result<ShardFile, ShardFileError> {
        let raw: RawShardFile =
            toml::from_str(text).map_err(|e| ShardFileError::Syntax(e.to_string()))?;
        let field = |field: &'static str, reason: String| ShardFileError::Field { field, reason };
        if raw.format != FORMAT {
            return Err(ShardFileError::UnsupportedFormat { found: raw.format });
        }
        plan::check_ceremony_id(&raw.ceremony_id)
            .map_err(|e| field("ceremony_id", e.to_string()))?;
        let plan_hash = hex::decode_array(&raw.plan_hash)
            .ok_or_else(|| field("plan_hash", "must be 64 lower-case hex digits".into()))?;
        let count = u8::try_from(raw.count)
            .ok()
            .filter(|&c| c >= 1)
            .ok_or_else(|| field("count", format!("{} is not in 1..=255", raw.count)))?;
        let threshold = u8::try_from(raw.threshold)
            .ok()
            .filter(|&t| t >= 1 && t <= count)
            .ok_or_else(|| {
                field(
                    "threshold",
                    format!("{} is not in 1..={count}", raw.threshold),
                )
            })?;
        let key_time = u32::try_from(raw.key_time).map_err(|_| {
            field(
                "key_time",
                format!("{} is not a 32-bit Unix time", raw.key_time),
            )
        })?;
        let root_cert = cert_from_armor(&raw.root_cert).map_err(|e| field("root_cert", e))?;
        if root_cert.fingerprint().to_hex() != raw.root_fingerprint {
            return Err(field(
                "root_fingerprint",
                format!(
                    "{} does not match root_cert ({})",
                    raw.root_fingerprint,
                    root_cert.fingerprint().to_hex()
                ),
            ));
        }
        if raw.shares.len() != usize::from(count) {
            return Err(field(
                "share",
                format!("{} shares listed, count says {count}", raw.shares.len()),
            ));
        }
        let time = UNIX_EPOCH + Duration::from_secs(u64::from(key_time) + 1);
        let mut shares = Vec::with_capacity(raw.shares.len());
        for (i, s) in raw.shares.iter().enumerate() {
            let bad = |reason: String| ShardFileError::Share {
                position: i + 1,
                index: s.index,
                reason,
            };
            if s.index != i64::try_from(i + 1).expect("small") {
                return Err(bad(format!(
                    "expected index {} here: shares must be listed 1..={count} in order",
                    i + 1
                )));
            }
            plan::check_name("holder", &s.holder).map_err(|e| bad(e.to_string()))?;
            let location_cert = cert_from_armor(&s.location_cert)
                .map_err(|e| bad(format!("location_cert: {e}")))?;
            if location_cert.fingerprint().to_hex() != s.location_fingerprint {
                return Err(bad(format!(
                    "location_fingerprint {} does not match location_cert ({})",
                    s.location_fingerprint,
                    location_cert.fingerprint().to_hex()
                )));
            }
            let message = pgp::dearmor(s.message.as_bytes(), Kind::Message)
                .map_err(|e| bad(format!("message: {e}")))?;
            let digest = hex::encode(&kdf::sha256(&message));
            if digest != s.message_sha256 {
                return Err(bad(format!(
                    "message_sha256 is {}, the message hashes to {digest}",
                    s.message_sha256
                )));
            }
            let keys = plan::encryption_keys(&location_cert, time);
            let recipients =
                pgp::message_recipients(&message).map_err(|e| bad(format!("message: {e}")))?;
            let expected: Vec<_> = keys.iter().map(|k| k.key_handle()).collect();
            if recipients.len() != 1 || !expected.iter().any(|k| k.aliases(&recipients[0])) {
                return Err(bad(format!(
                    "message is encrypted to {:?}, expected exactly the location key {}",
                    recipients.iter().map(|r| r.to_hex()).collect::<Vec<_>>(),
                    expected
                        .iter()
                        .map(|k| k.to_hex())
                        .collect::<Vec<_>>()
                        .join(",")
                )));
            }
            shares.push(SealedShare {
                index: u8::try_from(s.index).expect("checked"),
                holder: s.holder.clone(),
                location_cert,
                message,
            });
        }
        Ok(ShardFile {
            ceremony_id: raw.ceremony_id,
            plan_hash,
            threshold,
            count,
            key_time,
            root_cert,
            shares,
        })
    }
}
