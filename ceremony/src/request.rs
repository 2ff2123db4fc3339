//! The request of a recovery ceremony: a strict TOML file brought on the request stick, naming
//! the generation ceremony and root key it is for and exactly one operation to perform with the
//! recovered key. Validated before anything else happens, and identified by a canonical hash the
//! witnesses read aloud as words.
//!
//! The format is specified in docs/formats/request.md.

use crate::plan::{RawHolder, RawWitness};
use crate::policy::RawPolicy;
use std::collections::HashMap;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use sequoia_openpgp as openpgp;
use serde::{Deserialize, Serialize};

use openpgp::Cert;
use openpgp::Fingerprint;
use openpgp::armor::Kind;
use openpgp::parse::Parse;
use openpgp::policy::StandardPolicy;
use openpgp::types::RevocationStatus;

use crate::plan::{self, Plan, PlanError};
use crate::{hex, kdf, pgp, words};

/// The value of the request's `format` field this crate reads.
pub const FORMAT: &str = "sherd-request/1";
/// A request file larger than this is refused unread (a certificate and a new plan fit easily).
pub const MAX_REQUEST_BYTES: usize = 1 << 20;
/// At most this many files in one `sign` request.
pub const MAX_FILES: usize = 255;
/// Longest file name in a `sign` request, in bytes.
pub const MAX_FILE_NAME_LEN: usize = 255;
/// At most this many user IDs in one `certify` request.
pub const MAX_USER_IDS: usize = 32;
/// Longest user ID in a `certify` request, in bytes.
pub const MAX_USER_ID_LEN: usize = 1024;
/// Longest `prove-quorum` challenge, in bytes.
pub const MAX_CHALLENGE_LEN: usize = 512;

/// The operation names, as the request's tables and the canonical encoding spell them.
pub const OPERATIONS: [&str; 5] = ["sign", "certify", "prove-quorum", "reshare", "replace-card"];

/// Why a request was refused. Each variant names the field at fault, as a TOML path such as
/// `sign.file[2].sha256` (positions 1-based).
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[non_exhaustive]
pub enum RequestError {
    /// Larger than [`MAX_REQUEST_BYTES`].
    #[error("the request is {size} bytes; at most {MAX_REQUEST_BYTES} are read")]
    TooLarge {
        /// Its size in bytes.
        size: usize,
    },
    /// Not TOML, or a field is missing, unknown or of the wrong type; the TOML parser's
    /// message.
    #[error("the request is not valid TOML for this schema: {0}")]
    Syntax(String),
    /// The `format` field is not [`FORMAT`].
    #[error("unsupported request format {found:?}: this build reads {FORMAT:?}")]
    UnsupportedFormat {
        /// The `format` value found.
        found: String,
    },
    /// `ceremony_id` breaks the rules of [`plan::check_ceremony_id`].
    #[error("invalid ceremony_id {id:?}: {reason}")]
    InvalidCeremonyId {
        /// The id as given.
        id: String,
        /// Which rule it breaks.
        reason: String,
    },
    /// `root_fingerprint` is not 40 (v4) or 64 (v6) hex digits.
    #[error("invalid root_fingerprint {value:?}: must be 40 or 64 hex digits, without spaces")]
    InvalidFingerprint {
        /// The value as given.
        value: String,
    },
    /// A date and time (`time`, `certify.expiry`) is not a whole-second UTC date and time
    /// (trailing `Z`) from 2020-01-01 up to the end of 32-bit OpenPGP time.
    #[error("invalid {field} {time}: {reason}")]
    InvalidTime {
        /// The field at fault.
        field: &'static str,
        /// The time as written.
        time: String,
        /// Which rule it breaks.
        reason: &'static str,
    },
    /// None of the operation tables is present.
    #[error(
        "the request names no operation: add one of the tables [sign], [certify], [prove-quorum], [reshare], [replace-card]"
    )]
    NoOperation,
    /// More than one operation table is present: a request names exactly one.
    #[error("the request names {} operations ({}): a request names exactly one", found.len(), found.join(", "))]
    SeveralOperations {
        /// The operation tables found, in [`OPERATIONS`] order.
        found: Vec<&'static str>,
    },
    /// A list that must not be empty is empty, or has more entries than allowed.
    #[error("{field}: {count} entries, expected 1..={max}")]
    Count {
        /// The list at fault, e.g. `sign.file`.
        field: &'static str,
        /// Number of entries found.
        count: usize,
        /// The most allowed.
        max: usize,
    },
    /// A file name in a `sign` request breaks the rules of a plain file name.
    #[error("{field}: invalid file name {name:?}: {reason}")]
    InvalidFileName {
        /// The field at fault, e.g. `sign.file[2].name`.
        field: String,
        /// The name as given.
        name: String,
        /// Which rule it breaks.
        reason: &'static str,
    },
    /// The same file name is listed twice (compared byte for byte).
    #[error("sign.file: {name:?} is listed twice (files {first} and {second})")]
    DuplicateFile {
        /// The repeated name.
        name: String,
        /// 1-based position of the first.
        first: usize,
        /// 1-based position of the second.
        second: usize,
    },
    /// A SHA-256 is not 64 lower-case hex digits.
    #[error("{field}: {value:?} is not a SHA-256 (64 lower-case hex digits)")]
    InvalidDigest {
        /// The field at fault, e.g. `sign.file[2].sha256`.
        field: String,
        /// The value as given.
        value: String,
    },
    /// `certify.cert` is not one ASCII-armored public certificate.
    #[error("certify.cert: cannot be read: {reason}")]
    CertUnreadable {
        /// The armor or parser error.
        reason: String,
    },
    /// `certify.cert` carries secret key material.
    #[error(
        "certify.cert {fingerprint}: contains secret key material; put only the public certificate in the request"
    )]
    CertHasSecret {
        /// The certificate's fingerprint, upper-case hex.
        fingerprint: String,
    },
    /// `certify.cert` is not valid, is revoked, or is not alive at the request time.
    #[error("certify.cert {fingerprint}: not usable at the request time: {reason}")]
    CertNotValid {
        /// The certificate's fingerprint, upper-case hex.
        fingerprint: String,
        /// What is wrong (Sequoia's reason, or `revoked`).
        reason: String,
    },
    /// `certify.cert` is the root certificate itself: the root does not certify itself.
    #[error("certify.cert is the root certificate {fingerprint} itself")]
    CertifyRoot {
        /// The fingerprint, upper-case hex.
        fingerprint: String,
    },
    /// A user ID to certify is malformed or not one of the certificate's valid user IDs.
    #[error("{field}: user ID {user_id:?}: {reason}")]
    InvalidUserId {
        /// The field at fault, e.g. `certify.user_ids[2]`.
        field: String,
        /// The user ID as given.
        user_id: String,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// The same user ID is listed twice.
    #[error("certify.user_ids: {user_id:?} is listed twice")]
    DuplicateUserId {
        /// The repeated user ID.
        user_id: String,
    },
    /// `certify.expiry` is not after `time`.
    #[error("certify.expiry {expiry} is not after the request time {time}")]
    ExpiryNotAfterTime {
        /// The expiry, RFC 3339.
        expiry: String,
        /// The request time, RFC 3339.
        time: String,
    },
    /// `prove-quorum.challenge` breaks its rules.
    #[error("prove-quorum.challenge: {reason}")]
    InvalidChallenge {
        /// Which rule it breaks.
        reason: &'static str,
    },
    /// The new plan a `reshare` request describes is refused by the plan's own checks
    /// (docs/formats/plan.md); the plan's error names the field or holder at fault.
    #[error("reshare: {0}")]
    Reshare(PlanError),
    /// `replace-card.holder` is not in 1..=255.
    #[error("replace-card.holder = {holder} is out of range 1..=255")]
    HolderOutOfRange {
        /// The value as written.
        holder: i64,
    },
    /// `replace-card.cards` is not in 1..=[`plan::MAX_CARDS_PER_HOLDER`].
    #[error(
        "replace-card.cards = {cards} is out of range 1..={}",
        plan::MAX_CARDS_PER_HOLDER
    )]
    CardCount {
        /// The value as written.
        cards: i64,
    },
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRequest {
    format: String,
    ceremony_id: String,
    root_fingerprint: String,
    time: toml::value::Datetime,
    sign: Option<RawSign>,
    certify: Option<RawCertify>,
    #[serde(rename = "prove-quorum")]
    prove_quorum: Option<RawProveQuorum>,
    reshare: Option<RawReshare>,
    #[serde(rename = "replace-card")]
    replace_card: Option<RawReplaceCard>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSign {
    #[serde(rename = "file", default)]
    files: Vec<RawFile>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawFile {
    name: String,
    sha256: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawCertify {
    cert: String,
    user_ids: Vec<String>,
    expiry: Option<toml::value::Datetime>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawProveQuorum {
    challenge: String,
}

/// The new plan's fields a `reshare` request gives; the rest (format, ceremony id, time) come
/// from the request.
#[derive(Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
struct RawReshare {
    threshold: i64,
    #[serde(default)]
    allow_threshold_one: bool,
    #[serde(default)]
    allow_virtual_hardware: bool,
    #[serde(default)]
    require_witness_signatures: bool,
    #[serde(rename = "holder", default)]
    holders: Vec<RawHolder>,
    #[serde(rename = "witness", default)]
    witnesses: Vec<RawWitness>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    policy: Option<RawPolicy>,
}

/// The plan text a `reshare` request stands for: the request's ceremony id and time with the
/// `[reshare]` table's fields, read by [`Plan::parse`].
#[derive(Serialize)]
struct ResharePlanText<'a> {
    format: &'static str,
    ceremony_id: &'a str,
    time: toml::value::Datetime,
    #[serde(flatten)]
    rest: &'a RawReshare,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawReplaceCard {
    holder: i64,
    cards: i64,
}

/// One file to sign: its name on the request stick and the SHA-256 it must have.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FileToSign {
    /// A plain file name (no directory), as on the request stick.
    pub name: String,
    /// The SHA-256 the file's bytes must have.
    pub sha256: [u8; 32],
}

/// What a `certify` request asks for.
#[derive(Clone, Debug)]
pub struct Certify {
    /// The certificate whose user IDs the root key certifies (public only).
    pub cert: Cert,
    /// SHA-256 of the certificate's binary (dearmored) bytes as given.
    pub cert_sha256: [u8; 32],
    /// The user IDs to certify, each one of the certificate's valid user IDs, in request
    /// order.
    pub user_ids: Vec<String>,
    /// When the certifications expire (Unix seconds), if they do.
    pub expiry_unix: Option<u32>,
}

/// The one operation a request names.
#[derive(Clone, Debug)]
pub enum Operation {
    /// Detached signatures by the root key over files on the request stick.
    Sign {
        /// The files, in request order.
        files: Vec<FileToSign>,
    },
    /// Certify user IDs of a certificate (the offline-CA role).
    Certify(Box<Certify>),
    /// Sign a challenge text: the proof that a quorum still holds the key.
    ProveQuorum {
        /// The challenge, one line of text.
        challenge: String,
    },
    /// Split the same root key anew for new holders, threshold and witnesses.
    Reshare {
        /// The new plan: the request's ceremony id and time with the `[reshare]` table's
        /// holders, threshold and witnesses, validated as a plan is.
        plan: Box<Plan>,
        /// The plan text `plan` was read from (the request's ceremony id and time with the
        /// `[reshare]` table's fields, serialized as TOML): a reshare writes it as the new
        /// `plan.toml`. Its canonical hash is `plan`'s (the plan's hash does not depend on the
        /// text's spelling).
        text: String,
    },
    /// Rebuild one holder's share and seal it to new blank cards under a new location key.
    ReplaceCard {
        /// The holder's index in the generation plan, 1-based.
        holder: u8,
        /// How many new cards, 1..=[`plan::MAX_CARDS_PER_HOLDER`].
        cards: u8,
    },
}

impl Operation {
    /// The operation's kind.
    pub fn kind(&self) -> OperationKind {
        match self {
            Operation::Sign { .. } => OperationKind::Sign,
            Operation::Certify(_) => OperationKind::Certify,
            Operation::ProveQuorum { .. } => OperationKind::ProveQuorum,
            Operation::Reshare { .. } => OperationKind::Reshare,
            Operation::ReplaceCard { .. } => OperationKind::ReplaceCard,
        }
    }

    /// The operation's name, as the request's table spells it (one of [`OPERATIONS`]).
    pub fn name(&self) -> &'static str {
        self.kind().name()
    }
}

/// The kinds of operation a request can name (what a plan's `[policy]` gives a rule for).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum OperationKind {
    /// `[sign]`: detached signatures over files.
    Sign,
    /// `[certify]`: certify user IDs of a certificate.
    Certify,
    /// `[prove-quorum]`: sign a challenge.
    ProveQuorum,
    /// `[reshare]`: the same key for new holders.
    Reshare,
    /// `[replace-card]`: a new card for one holder.
    ReplaceCard,
}

impl OperationKind {
    /// Every kind, in [`OPERATIONS`] order.
    pub const ALL: [OperationKind; 5] = [
        OperationKind::Sign,
        OperationKind::Certify,
        OperationKind::ProveQuorum,
        OperationKind::Reshare,
        OperationKind::ReplaceCard,
    ];

    /// The name, as a request's table (and a policy's rule table) spells it.
    pub fn name(self) -> &'static str {
        OPERATIONS[self as usize]
    }
}

impl std::fmt::Display for OperationKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// A validated request.
#[derive(Clone, Debug)]
pub struct Request {
    /// The generation ceremony's id.
    pub ceremony_id: String,
    /// The root certificate's fingerprint the request is for.
    pub root_fingerprint: Fingerprint,
    /// The request time (Unix seconds, UTC): the time of every signature the operation makes,
    /// because the machine clock is not trusted.
    pub time_unix: u32,
    /// The one operation.
    pub operation: Operation,
    hash: [u8; 32],
}

impl Request {
    /// Parses and validates a request.
    pub fn parse(text: &str) -> Result<Request, RequestError> {
        if text.len() > MAX_REQUEST_BYTES {
            return Err(RequestError::TooLarge { size: text.len() });
        }
        let raw: RawRequest =
            toml::from_str(text).map_err(|e| RequestError::Syntax(e.to_string()))?;
        Self::validate(raw)
    }

    /// The canonical hash (SHA-256 of [`Request::canonical_bytes`]).
    pub fn hash(&self) -> [u8; 32] {
        self.hash
    }

    /// The canonical hash as 64 lower-case hex digits.
    pub fn hash_hex(&self) -> String {
        hex::encode(&self.hash)
    }

    /// The canonical hash as 32 PGP words separated by single spaces, for reading aloud.
    pub fn hash_words(&self) -> String {
        words::to_phrase(&self.hash)
    }

    /// The request time as a `SystemTime`.
    pub fn time(&self) -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(u64::from(self.time_unix))
    }

    /// The canonical encoding the request hash is taken over (docs/formats/request.md).
    pub fn canonical_bytes(&self) -> Vec<u8> {
        let mut out = String::new();
        out.push_str(FORMAT);
        out.push('\n');
        out.push_str(&format!("ceremony_id={}\n", self.ceremony_id));
        out.push_str(&format!(
            "root_fingerprint={}\n",
            self.root_fingerprint.to_hex()
        ));
        out.push_str(&format!("time={}\n", self.time_unix));
        out.push_str(&format!("operation={}\n", self.operation.name()));
        match &self.operation {
            Operation::Sign { files } => {
                out.push_str(&format!("files={}\n", files.len()));
                for f in files {
                    out.push_str(&format!("file={}\t{}\n", hex::encode(&f.sha256), f.name));
                }
            }
            Operation::Certify(c) => {
                out.push_str(&format!(
                    "cert={}\t{}\n",
                    c.cert.fingerprint().to_hex(),
                    hex::encode(&c.cert_sha256)
                ));
                out.push_str(&format!("user_ids={}\n", c.user_ids.len()));
                for u in &c.user_ids {
                    out.push_str(&format!("user_id={u}\n"));
                }
                if let Some(e) = c.expiry_unix {
                    out.push_str(&format!("expiry={e}\n"));
                }
            }
            Operation::ProveQuorum { challenge } => {
                out.push_str(&format!("challenge={challenge}\n"));
            }
            Operation::Reshare { plan, .. } => {
                out.push_str(&format!("plan={}\n", hex::encode(&plan.hash())));
            }
            Operation::ReplaceCard { holder, cards } => {
                out.push_str(&format!("holder={holder}\n"));
                out.push_str(&format!("cards={cards}\n"));
            }
        }
        out.into_bytes()
    }

    fn validate(raw: RawRequest) -> Result<Request, RequestError> {
        if raw.format != FORMAT {
            return Err(RequestError::UnsupportedFormat { found: raw.format });
        }
        plan::check_ceremony_id(&raw.ceremony_id).map_err(|e| match e {
            PlanError::InvalidCeremonyId { id, reason } => RequestError::InvalidCeremonyId {
                id,
                reason: reason.to_string(),
            },
            other => RequestError::InvalidCeremonyId {
                id: raw.ceremony_id.clone(),
                reason: other.to_string(),
            },
        })?;
        let root_fingerprint = parse_fingerprint(&raw.root_fingerprint)?;
        let time_unix = datetime_to_unix("time", &raw.time)?;

        let present: Vec<&'static str> = [
            raw.sign.is_some(),
            raw.certify.is_some(),
            raw.prove_quorum.is_some(),
            raw.reshare.is_some(),
            raw.replace_card.is_some(),
        ]
        .iter()
        .zip(OPERATIONS)
        .filter(|(p, _)| **p)
        .map(|(_, n)| n)
        .collect();
        if present.len() > 1 {
            return Err(RequestError::SeveralOperations { found: present });
        }
        let operation = if let Some(s) = raw.sign {
            validate_sign(s)?
        } else if let Some(c) = raw.certify {
            validate_certify(c, time_unix, &root_fingerprint)?
        } else if let Some(p) = raw.prove_quorum {
            validate_challenge(&p.challenge)?;
            Operation::ProveQuorum {
                challenge: p.challenge,
            }
        } else if let Some(r) = raw.reshare {
            let text = toml::to_string(&ResharePlanText {
                format: plan::FORMAT,
                ceremony_id: &raw.ceremony_id,
                time: raw.time,
                rest: &r,
            })
            .map_err(|e| RequestError::Reshare(PlanError::Syntax(e.to_string())))?;
            let plan = Plan::parse(&text).map_err(RequestError::Reshare)?;
            Operation::Reshare {
                plan: Box::new(plan),
                text,
            }
        } else if let Some(r) = raw.replace_card {
            let holder = u8::try_from(r.holder)
                .ok()
                .filter(|&h| h >= 1)
                .ok_or(RequestError::HolderOutOfRange { holder: r.holder })?;
            let cards = u8::try_from(r.cards)
                .ok()
                .filter(|c| (1..=plan::MAX_CARDS_PER_HOLDER).contains(c))
                .ok_or(RequestError::CardCount { cards: r.cards })?;
            Operation::ReplaceCard { holder, cards }
        } else {
            return Err(RequestError::NoOperation);
        };

        let mut request = Request {
            ceremony_id: raw.ceremony_id,
            root_fingerprint,
            time_unix,
            operation,
            hash: [0; 32],
        };
        request.hash = kdf::sha256(&request.canonical_bytes());
        Ok(request)
    }
}

/// 40 or 64 hex digits (either case) as a fingerprint.
fn parse_fingerprint(value: &str) -> Result<Fingerprint, RequestError> {
    let bad = || RequestError::InvalidFingerprint {
        value: value.to_string(),
    };
    if value.len() != 40 && value.len() != 64 {
        return Err(bad());
    }
    let bytes = hex::decode(&value.to_ascii_lowercase()).ok_or_else(bad)?;
    Fingerprint::from_bytes(if bytes.len() == 20 { 4 } else { 6 }, &bytes).map_err(|_| bad())
}

fn validate_sign(raw: RawSign) -> Result<Operation, RequestError> {
    if raw.files.is_empty() || raw.files.len() > MAX_FILES {
        return Err(RequestError::Count {
            field: "sign.file",
            count: raw.files.len(),
            max: MAX_FILES,
        });
    }
    let mut seen: HashMap<&str, usize> = HashMap::new();
    let mut files = Vec::with_capacity(raw.files.len());
    for (i, f) in raw.files.iter().enumerate() {
        check_file_name(&format!("sign.file[{}].name", i + 1), &f.name)?;
        if let Some(first) = seen.insert(&f.name, i + 1) {
            return Err(RequestError::DuplicateFile {
                name: f.name.clone(),
                first,
                second: i + 1,
            });
        }
        let sha256 = hex::decode_array(&f.sha256).ok_or_else(|| RequestError::InvalidDigest {
            field: format!("sign.file[{}].sha256", i + 1),
            value: f.sha256.clone(),
        })?;
        files.push(FileToSign {
            name: f.name.clone(),
            sha256,
        });
    }
    Ok(Operation::Sign { files })
}

/// A plain file name: 1..=255 bytes, no directory separator, no control characters, no outer
/// spaces, not starting with '.', so it names one file in the request stick's top folder.
fn check_file_name(field: &str, name: &str) -> Result<(), RequestError> {
    let bad = |reason| {
        Err(RequestError::InvalidFileName {
            field: field.to_string(),
            name: name.to_string(),
            reason,
        })
    };
    if name.is_empty() || name.len() > MAX_FILE_NAME_LEN {
        return bad("must be 1 to 255 bytes");
    }
    if name.contains(['/', '\\']) {
        return bad("must be a plain file name, without '/' or '\\'");
    }
    if name.chars().any(char::is_control) {
        return bad("control characters are not allowed");
    }
    if name.trim() != name {
        return bad("leading or trailing spaces are not allowed");
    }
    if name.starts_with('.') {
        return bad("must not start with '.'");
    }
    Ok(())
}

fn validate_certify(
    raw: RawCertify,
    time_unix: u32,
    root: &Fingerprint,
) -> Result<Operation, RequestError> {
    let time = UNIX_EPOCH + Duration::from_secs(u64::from(time_unix));
    let unreadable = |reason: String| RequestError::CertUnreadable { reason };
    let binary = pgp::dearmor(raw.cert.as_bytes(), Kind::PublicKey).map_err(unreadable)?;
    let cert = Cert::from_bytes(&binary).map_err(|e| unreadable(format!("{e:#}")))?;
    let fingerprint = cert.fingerprint().to_hex();
    if cert.is_tsk() {
        return Err(RequestError::CertHasSecret { fingerprint });
    }
    if cert.fingerprint() == *root {
        return Err(RequestError::CertifyRoot { fingerprint });
    }
    let not_valid = |reason: String| RequestError::CertNotValid {
        fingerprint: fingerprint.clone(),
        reason,
    };
    let policy = StandardPolicy::new();
    let vc = cert
        .with_policy(&policy, time)
        .map_err(|e| not_valid(format!("{e:#}")))?;
    if let RevocationStatus::Revoked(_) = vc.revocation_status() {
        return Err(not_valid("revoked".into()));
    }
    vc.alive().map_err(|e| not_valid(format!("{e:#}")))?;

    if raw.user_ids.is_empty() || raw.user_ids.len() > MAX_USER_IDS {
        return Err(RequestError::Count {
            field: "certify.user_ids",
            count: raw.user_ids.len(),
            max: MAX_USER_IDS,
        });
    }
    let valid: Vec<Vec<u8>> = vc
        .userids()
        .revoked(false)
        .map(|u| u.userid().value().to_vec())
        .collect();
    for (i, u) in raw.user_ids.iter().enumerate() {
        let bad = |reason| RequestError::InvalidUserId {
            field: format!("certify.user_ids[{}]", i + 1),
            user_id: u.clone(),
            reason,
        };
        if u.is_empty() || u.len() > MAX_USER_ID_LEN {
            return Err(bad("must be 1 to 1024 bytes"));
        }
        if u.chars().any(char::is_control) {
            return Err(bad("control characters are not allowed"));
        }
        if !valid.iter().any(|v| v == u.as_bytes()) {
            return Err(bad(
                "not a valid, unrevoked user ID of the certificate at the request time",
            ));
        }
        if raw.user_ids[..i].contains(u) {
            return Err(RequestError::DuplicateUserId { user_id: u.clone() });
        }
    }
    let expiry_unix = match &raw.expiry {
        None => None,
        Some(e) => {
            let unix = datetime_to_unix("certify.expiry", e)?;
            if unix <= time_unix {
                return Err(RequestError::ExpiryNotAfterTime {
                    expiry: plan::rfc3339(unix),
                    time: plan::rfc3339(time_unix),
                });
            }
            Some(unix)
        }
    };
    Ok(Operation::Certify(Box::new(Certify {
        cert,
        cert_sha256: kdf::sha256(&binary),
        user_ids: raw.user_ids,
        expiry_unix,
    })))
}

/// A challenge: one line of 1..=512 bytes, no control characters, no outer spaces.
fn validate_challenge(challenge: &str) -> Result<(), RequestError> {
    let bad = |reason| Err(RequestError::InvalidChallenge { reason });
    if challenge.is_empty() || challenge.len() > MAX_CHALLENGE_LEN {
        return bad("must be 1 to 512 bytes");
    }
    if challenge.chars().any(char::is_control) {
        return bad("control characters (a line break included) are not allowed");
    }
    if challenge.trim() != challenge {
        return bad("leading or trailing spaces are not allowed");
    }
    Ok(())
}

/// A whole-second UTC date and time, 2020-01-01 up to the end of 32-bit OpenPGP time, as Unix
/// seconds (the rules of the plan's `time`).
fn datetime_to_unix(field: &'static str, dt: &toml::value::Datetime) -> Result<u32, RequestError> {
    crate::plan::unix_time(dt).map_err(|reason| RequestError::InvalidTime {
        field,
        time: dt.to_string(),
        reason,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use openpgp::cert::{CertBuilder, CipherSuite};
    use openpgp::serialize::SerializeInto;

    /// 2027-03-01T10:00:00Z, the sample requests' time.
    const TIME: u32 = 1_803_895_200;
    const TIME_STR: &str = "2027-03-01T10:00:00Z";
    const ROOT: &str = "0123456789ABCDEF0123456789ABCDEF01234567";
    const DIGEST: &str = "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08";

    fn head() -> String {
        format!(
            "format = \"sherd-request/1\"\nceremony_id = \"acme-root-2026\"\n\
             root_fingerprint = \"{ROOT}\"\ntime = {TIME_STR}\n\n"
        )
    }

    fn sign_request() -> String {
        format!(
            "{}[sign]\n[[sign.file]]\nname = \"release-1.2.tar.gz\"\nsha256 = \"{DIGEST}\"\n\n\
             [[sign.file]]\nname = \"SHA256SUMS\"\nsha256 = \"{}\"\n",
            head(),
            "ab".repeat(32)
        )
    }

    fn err(text: &str) -> RequestError {
        Request::parse(text).expect_err("should be refused")
    }

    /// A certificate with the given user IDs, created a day before `TIME`, valid for `days`.
    fn cert(uids: &[&str], days: Option<u64>) -> Cert {
        let mut b = CertBuilder::new()
            .set_cipher_suite(CipherSuite::Cv25519)
            .set_creation_time(UNIX_EPOCH + Duration::from_secs(u64::from(TIME) - 86_400))
            .set_validity_period(days.map(|d| Duration::from_secs(d * 86_400)))
            .add_signing_subkey()
            .add_transport_encryption_subkey();
        for u in uids {
            b = b.add_userid(*u);
        }
        b.generate().expect("test key generation").0
    }

    fn armored(cert: &Cert) -> String {
        String::from_utf8(cert.armored().to_vec().unwrap()).unwrap()
    }

    fn certify_request(cert: &str, uids: &[&str], expiry: Option<&str>) -> String {
        let uids: Vec<String> = uids.iter().map(|u| format!("{u:?}")).collect();
        let mut t = format!(
            "{}[certify]\ncert = '''\n{cert}'''\nuser_ids = [{}]\n",
            head(),
            uids.join(", ")
        );
        if let Some(e) = expiry {
            t.push_str(&format!("expiry = {e}\n"));
        }
        t
    }

    fn reshare_request(threshold: i64, holders: &[(&str, &str, &Cert)]) -> String {
        let mut t = format!("{}[reshare]\nthreshold = {threshold}\n\n", head());
        for (name, backup, c) in holders {
            t.push_str(&format!(
                "[[reshare.holder]]\nname = \"{name}\"\nbackup = \"{backup}\"\ncards = 1\n\
                 certs = ['''\n{}''']\n\n",
                armored(c)
            ));
        }
        t.push_str("[[reshare.witness]]\nname = \"Wendy\"\n");
        t
    }

    #[test]
    fn a_sign_request_and_its_canonical_bytes() {
        let r = Request::parse(&sign_request()).unwrap();
        assert_eq!(r.ceremony_id, "acme-root-2026");
        assert_eq!(r.root_fingerprint.to_hex(), ROOT);
        assert_eq!(r.time_unix, TIME);
        assert_eq!(plan::rfc3339(r.time_unix), TIME_STR);
        assert_eq!(r.operation.name(), "sign");
        let expected = format!(
            "sherd-request/1\nceremony_id=acme-root-2026\nroot_fingerprint={ROOT}\n\
             time={TIME}\noperation=sign\nfiles=2\nfile={DIGEST}\trelease-1.2.tar.gz\n\
             file={}\tSHA256SUMS\n",
            "ab".repeat(32)
        );
        assert_eq!(String::from_utf8(r.canonical_bytes()).unwrap(), expected);
        assert_eq!(r.hash(), kdf::sha256(expected.as_bytes()));
        assert_eq!(r.hash_hex(), hex::encode(&r.hash()));
        assert_eq!(r.hash_words().split(' ').count(), 32);
        assert_eq!(
            words::from_words(&r.hash_words().split(' ').collect::<Vec<_>>()).unwrap(),
            r.hash()
        );
    }

    /// The blocks of docs/formats/request.md fenced as `lang`, in order.
    fn doc_blocks(lang: &str) -> Vec<String> {
        let doc = include_str!("../../docs/formats/request.md");
        let mut blocks = Vec::new();
        let mut current: Option<(String, String)> = None;
        for line in doc.lines() {
            match (line.strip_prefix("```"), current.take()) {
                (Some(tag), None) => current = Some((tag.to_string(), String::new())),
                (Some(_), Some((tag, body))) => {
                    if tag == lang {
                        blocks.push(body);
                    }
                }
                (None, Some((tag, mut body))) => {
                    body.push_str(line);
                    body.push('\n');
                    current = Some((tag, body));
                }
                (None, None) => {}
            }
        }
        blocks
    }

    #[test]
    fn the_documented_example_and_its_canonical_text() {
        let r = Request::parse(&doc_blocks("toml")[0]).unwrap();
        let canonical = doc_blocks("")
            .into_iter()
            .find(|b| b.starts_with("sherd-request/1\nceremony_id=acme"))
            .expect("the example's canonical text")
            .replace("\\t", "\t");
        assert_eq!(String::from_utf8(r.canonical_bytes()).unwrap(), canonical);
        let doc = include_str!("../../docs/formats/request.md");
        assert!(
            doc.contains(&r.hash_hex()),
            "the doc shows the hash {}",
            r.hash_hex()
        );
        assert!(
            doc.contains(&r.hash_words()),
            "the doc shows the words {}",
            r.hash_words()
        );
    }

    #[test]
    fn the_hash_ignores_spelling_but_not_meaning() {
        let base = Request::parse(&sign_request()).unwrap().hash();
        // Comments, key order, blank lines and the fingerprint's case do not change it.
        let respelled = format!(
            "# a comment\ntime = {TIME_STR}\nroot_fingerprint = \"{}\"\n\
             ceremony_id = \"acme-root-2026\"\nformat = \"sherd-request/1\"\n\n[sign]\n\
             [[sign.file]]\nsha256 = \"{DIGEST}\"\nname = \"release-1.2.tar.gz\"\n\
             [[sign.file]]\nsha256 = \"{}\"\nname = \"SHA256SUMS\"\n",
            ROOT.to_ascii_lowercase(),
            "ab".repeat(32)
        );
        assert_eq!(Request::parse(&respelled).unwrap().hash(), base);
        // The order of the files, the time, the id and the root do.
        for changed in [
            sign_request().replace("release-1.2.tar.gz", "release-1.3.tar.gz"),
            sign_request().replace(TIME_STR, "2027-03-01T10:00:01Z"),
            sign_request().replace("acme-root-2026", "acme-root-2027"),
            sign_request().replace(ROOT, &ROOT.replace('0', "1")),
        ] {
            assert_ne!(Request::parse(&changed).unwrap().hash(), base);
        }
    }

    #[test]
    fn every_operation_parses() {
        let c = cert(&["Builder One <b1@example.org>", "b1"], None);
        let r = Request::parse(&certify_request(
            &armored(&c.clone().strip_secret_key_material()),
            &["Builder One <b1@example.org>"],
            Some("2028-03-01T00:00:00Z"),
        ))
        .unwrap();
        let Operation::Certify(ref cy) = r.operation else {
            panic!("certify")
        };
        assert_eq!(cy.cert.fingerprint(), c.fingerprint());
        assert_eq!(cy.user_ids, ["Builder One <b1@example.org>"]);
        assert_eq!(cy.expiry_unix, Some(1_835_481_600));
        let text = String::from_utf8(r.canonical_bytes()).unwrap();
        assert!(
            text.ends_with(&format!(
                "operation=certify\ncert={}\t{}\nuser_ids=1\nuser_id=Builder One <b1@example.org>\nexpiry=1835481600\n",
                c.fingerprint().to_hex(),
                hex::encode(&cy.cert_sha256)
            )),
            "{text}"
        );

        let r = Request::parse(&format!(
            "{}[prove-quorum]\nchallenge = \"block 880000: 000000000000000000012345\"\n",
            head()
        ))
        .unwrap();
        assert!(String::from_utf8(r.canonical_bytes()).unwrap().ends_with(
            "operation=prove-quorum\nchallenge=block 880000: 000000000000000000012345\n"
        ));

        let r = Request::parse(&format!(
            "{}[replace-card]\nholder = 2\ncards = 2\n",
            head()
        ))
        .unwrap();
        assert!(matches!(
            r.operation,
            Operation::ReplaceCard {
                holder: 2,
                cards: 2
            }
        ));
        assert!(
            String::from_utf8(r.canonical_bytes())
                .unwrap()
                .ends_with("operation=replace-card\nholder=2\ncards=2\n")
        );

        let (a, b, d) = (cert(&["A"], None), cert(&["B"], None), cert(&["D"], None));
        let text = reshare_request(
            2,
            &[("Ann", "Ben", &a), ("Ben", "Dee", &b), ("Dee", "Ann", &d)],
        );
        let r = Request::parse(&text).unwrap();
        let Operation::Reshare { ref plan, .. } = r.operation else {
            panic!("reshare")
        };
        assert_eq!(plan.ceremony_id, "acme-root-2026");
        assert_eq!(plan.time_unix, TIME);
        assert_eq!(plan.threshold, 2);
        assert_eq!(plan.holders.len(), 3);
        assert_eq!(plan.holders[2].backup, 1);
        assert_eq!(plan.witnesses, ["Wendy"]);
        assert!(
            String::from_utf8(r.canonical_bytes())
                .unwrap()
                .ends_with(&format!(
                    "operation=reshare\nplan={}\n",
                    hex::encode(&plan.hash())
                ))
        );
    }

    /// A sign request for `files` (name, digest), written with TOML's own quoting.
    fn sign_text(files: &[(String, [u8; 32])]) -> String {
        let mut t = format!("{}[sign]\n", head());
        for (name, digest) in files {
            t.push_str(&format!(
                "[[sign.file]]\nname = {}\nsha256 = \"{}\"\n",
                toml::Value::String(name.clone()),
                hex::encode(digest)
            ));
        }
        t
    }

    proptest::proptest! {
        #[test]
        fn any_plain_file_names_round_trip(
            files in proptest::collection::btree_map(
                "[A-Za-z0-9_][A-Za-z0-9 ._=\\-\u{e9}\u{4e2d}\"']{0,40}[A-Za-z0-9]",
                proptest::array::uniform32(proptest::prelude::any::<u8>()),
                1..8,
            ),
            swap in proptest::prelude::any::<proptest::sample::Index>(),
        ) {
            let files: Vec<(String, [u8; 32])> = files.into_iter().collect();
            let r = Request::parse(&sign_text(&files)).unwrap();
            let Operation::Sign { files: parsed } = &r.operation else { panic!("sign") };
            let back: Vec<(String, [u8; 32])> =
                parsed.iter().map(|f| (f.name.clone(), f.sha256)).collect();
            proptest::prop_assert_eq!(&back, &files);
            // Every file is one canonical line, in order, and the order is part of the hash.
            let text = String::from_utf8(r.canonical_bytes()).unwrap();
            let lines: Vec<&str> = text.lines().filter(|l| l.starts_with("file=")).collect();
            proptest::prop_assert_eq!(lines.len(), files.len());
            if files.len() > 1 {
                let mut reordered = files.clone();
                let i = swap.index(files.len() - 1);
                reordered.swap(i, i + 1);
                let other = Request::parse(&sign_text(&reordered)).unwrap();
                proptest::prop_assert_ne!(other.hash(), r.hash());
            }
        }
    }

    #[test]
    fn refusals_of_the_common_fields() {
        let big = format!("{}# {}\n", sign_request(), "x".repeat(MAX_REQUEST_BYTES));
        assert!(matches!(err(&big), RequestError::TooLarge { .. }));
        assert!(matches!(err("format = "), RequestError::Syntax(_)));
        assert!(matches!(
            err(&format!("{}extra = 1\n", head()).replace("[sign]", "")),
            RequestError::Syntax(m) if m.contains("extra")
        ));
        assert!(matches!(
            err(&sign_request().replace("root_fingerprint", "# root_fingerprint")),
            RequestError::Syntax(m) if m.contains("root_fingerprint")
        ));
        assert!(matches!(
            err(&sign_request().replace("sherd-request/1", "sherd-request/2")),
            RequestError::UnsupportedFormat { found } if found == "sherd-request/2"
        ));
        assert!(matches!(
            err(&sign_request().replace("sherd-request/1", "sherd-plan/1")),
            RequestError::UnsupportedFormat { .. }
        ));
        assert!(matches!(
            err(&sign_request().replace("acme-root-2026", "Acme")),
            RequestError::InvalidCeremonyId { id, .. } if id == "Acme"
        ));
        assert!(matches!(
            err(&sign_request().replace("acme-root-2026", "")),
            RequestError::InvalidCeremonyId { .. }
        ));
        for bad in [
            &ROOT[..38],
            "0123 4567 89AB CDEF 0123 4567 89AB CDEF 0123 4567",
            &ROOT.replace('0', "G"),
            "",
        ] {
            assert!(
                matches!(
                    err(&sign_request().replace(ROOT, bad)),
                    RequestError::InvalidFingerprint { ref value } if value == bad
                ),
                "{bad}"
            );
        }
        // A v6 fingerprint is 64 digits.
        assert!(Request::parse(&sign_request().replace(ROOT, &"AB".repeat(32))).is_ok());
        for bad in [
            "2027-03-01T10:00:00",
            "2027-03-01T10:00:00+01:00",
            "2027-03-01",
            "10:00:00",
            "2027-03-01T10:00:00.5Z",
            "2019-12-31T23:59:59Z",
            "2106-02-08T00:00:00Z",
        ] {
            assert!(
                matches!(
                    err(&sign_request().replace(TIME_STR, bad)),
                    RequestError::InvalidTime { field: "time", .. }
                ),
                "{bad}"
            );
        }
        assert!(matches!(
            err(&sign_request().replace(TIME_STR, "\"2027-03-01T10:00:00Z\"")),
            RequestError::Syntax(_)
        ));
    }

    #[test]
    fn a_request_names_exactly_one_operation() {
        assert_eq!(err(&head()), RequestError::NoOperation);
        assert_eq!(
            err(&format!(
                "{}[prove-quorum]\nchallenge = \"x\"\n[replace-card]\nholder = 1\ncards = 1\n",
                sign_request()
            )),
            RequestError::SeveralOperations {
                found: vec!["sign", "prove-quorum", "replace-card"]
            }
        );
        assert!(matches!(
            err(&format!("{}[rotate]\n", head())),
            RequestError::Syntax(m) if m.contains("rotate")
        ));
        assert!(matches!(
            err(&format!("{}[sign]\nfiles = []\n", head())),
            RequestError::Syntax(_)
        ));
    }

    #[test]
    fn sign_refusals_name_the_file() {
        assert_eq!(
            err(&format!("{}[sign]\n", head())),
            RequestError::Count {
                field: "sign.file",
                count: 0,
                max: MAX_FILES
            }
        );
        let mut many = format!("{}[sign]\n", head());
        for i in 0..=MAX_FILES {
            many.push_str(&format!(
                "[[sign.file]]\nname = \"f{i}\"\nsha256 = \"{DIGEST}\"\n"
            ));
        }
        assert!(matches!(
            err(&many),
            RequestError::Count {
                field: "sign.file",
                count: 256,
                ..
            }
        ));
        for bad in [
            "",
            "dir/file",
            "..\\\\file",
            "a\\tb",
            " lead",
            "trail ",
            ".hidden",
            "..",
            &"n".repeat(256),
        ] {
            let text = sign_request().replace("SHA256SUMS", bad);
            assert!(
                matches!(
                    err(&text),
                    RequestError::InvalidFileName { ref field, .. } if field == "sign.file[2].name"
                ),
                "{bad:?}: {:?}",
                err(&text)
            );
        }
        assert_eq!(
            err(&sign_request().replace("SHA256SUMS", "release-1.2.tar.gz")),
            RequestError::DuplicateFile {
                name: "release-1.2.tar.gz".into(),
                first: 1,
                second: 2
            }
        );
        for bad in [
            DIGEST.to_ascii_uppercase(),
            DIGEST[..62].to_string(),
            format!("{DIGEST}00"),
            DIGEST.replace('9', "g"),
        ] {
            assert_eq!(
                err(&sign_request().replace(DIGEST, &bad)),
                RequestError::InvalidDigest {
                    field: "sign.file[1].sha256".into(),
                    value: bad.clone()
                }
            );
        }
        assert!(matches!(
            err(&sign_request().replace("name = \"SHA256SUMS\"", "name = \"SHA256SUMS\"\nsize = 1")),
            RequestError::Syntax(m) if m.contains("size")
        ));
    }

    #[test]
    fn certify_refusals() {
        let uid = "Builder One <b1@example.org>";
        let c = cert(&[uid, "second"], None);
        let public = armored(&c.clone().strip_secret_key_material());
        let ok = |uids: &[&str], expiry| certify_request(&public, uids, expiry);
        assert!(Request::parse(&ok(&[uid, "second"], None)).is_ok());

        assert!(matches!(
            err(&certify_request("not a certificate", &[uid], None)),
            RequestError::CertUnreadable { .. }
        ));
        let garbage = String::from_utf8(pgp::armor(b"\x99garbage", Kind::PublicKey)).unwrap();
        assert!(matches!(
            err(&certify_request(&garbage, &[uid], None)),
            RequestError::CertUnreadable { .. }
        ));
        let tsk =
            String::from_utf8(pgp::armor(&c.as_tsk().to_vec().unwrap(), Kind::PublicKey)).unwrap();
        assert_eq!(
            err(&certify_request(&tsk, &[uid], None)),
            RequestError::CertHasSecret {
                fingerprint: c.fingerprint().to_hex()
            }
        );
        // Expired before the request time: valid for an hour from a day before.
        let short = CertBuilder::new()
            .set_creation_time(UNIX_EPOCH + Duration::from_secs(u64::from(TIME) - 86_400))
            .set_validity_period(Duration::from_secs(3600))
            .add_userid(uid)
            .generate()
            .unwrap()
            .0
            .strip_secret_key_material();
        assert!(matches!(
            err(&certify_request(&armored(&short), &[uid], None)),
            RequestError::CertNotValid { ref fingerprint, .. } if *fingerprint == short.fingerprint().to_hex()
        ));
        // Created after the request time.
        let later = CertBuilder::new()
            .set_creation_time(UNIX_EPOCH + Duration::from_secs(u64::from(TIME) + 86_400))
            .add_userid(uid)
            .generate()
            .unwrap()
            .0
            .strip_secret_key_material();
        assert!(matches!(
            err(&certify_request(&armored(&later), &[uid], None)),
            RequestError::CertNotValid { .. }
        ));
        // Revoked.
        let (rc, rev) = CertBuilder::new()
            .set_creation_time(UNIX_EPOCH + Duration::from_secs(u64::from(TIME) - 86_400))
            .add_userid(uid)
            .generate()
            .unwrap();
        let revoked = rc
            .insert_packets(rev)
            .unwrap()
            .0
            .strip_secret_key_material();
        assert_eq!(
            err(&certify_request(&armored(&revoked), &[uid], None)),
            RequestError::CertNotValid {
                fingerprint: revoked.fingerprint().to_hex(),
                reason: "revoked".into()
            }
        );
        // The root itself.
        assert_eq!(
            err(&ok(&[uid], None).replace(ROOT, &c.fingerprint().to_hex())),
            RequestError::CertifyRoot {
                fingerprint: c.fingerprint().to_hex()
            }
        );
        assert!(matches!(
            err(&ok(&[], None)),
            RequestError::Count {
                field: "certify.user_ids",
                count: 0,
                ..
            }
        ));
        let many: Vec<String> = (0..=MAX_USER_IDS).map(|i| format!("u{i}")).collect();
        let many: Vec<&str> = many.iter().map(String::as_str).collect();
        assert!(matches!(
            err(&ok(&many, None)),
            RequestError::Count {
                field: "certify.user_ids",
                count: 33,
                ..
            }
        ));
        for (bad, why) in [
            ("Someone Else <x@example.org>", "not a valid"),
            ("", "1 to 1024"),
            ("a\nb", "control"),
        ] {
            assert!(
                matches!(
                    err(&ok(&[uid, bad], None)),
                    RequestError::InvalidUserId { ref field, reason, .. }
                        if field == "certify.user_ids[2]" && reason.contains(why)
                ),
                "{bad:?}"
            );
        }
        assert_eq!(
            err(&ok(&[uid, "second", uid], None)),
            RequestError::DuplicateUserId {
                user_id: uid.into()
            }
        );
        assert_eq!(
            err(&ok(&[uid], Some(TIME_STR))),
            RequestError::ExpiryNotAfterTime {
                expiry: TIME_STR.into(),
                time: TIME_STR.into()
            }
        );
        assert!(matches!(
            err(&ok(&[uid], Some("2028-01-01"))),
            RequestError::InvalidTime {
                field: "certify.expiry",
                ..
            }
        ));
        assert!(matches!(
            err(&ok(&[uid], None).replace("user_ids", "user_id")),
            RequestError::Syntax(_)
        ));
    }

    #[test]
    fn prove_quorum_refusals() {
        let req = |c: &str| format!("{}[prove-quorum]\nchallenge = {c:?}\n", head());
        assert!(Request::parse(&req("The Times, 1 March 2027: headline")).is_ok());
        for bad in [
            "",
            "two\nlines",
            "tab\there",
            " lead",
            "trail ",
            &"x".repeat(513),
        ] {
            assert!(
                matches!(err(&req(bad)), RequestError::InvalidChallenge { .. }),
                "{bad:?}"
            );
        }
        assert!(Request::parse(&req(&"x".repeat(512))).is_ok());
    }

    #[test]
    fn a_reshare_may_carry_a_policy_for_the_new_plan() {
        let (a, b, c) = (cert(&["A"], None), cert(&["B"], None), cert(&["C"], None));
        let base = reshare_request(2, &[("Ann", "Ben", &a), ("Ben", "Ann", &b)]);
        let policy = format!(
            "[reshare.policy]\n[[reshare.policy.approver]]\nname = \"Cy\"\ncerts = ['''\n{}''']\n\
             [reshare.policy.sign]\nk = 1\nmax_files = 3\n[reshare.policy.certify]\nk = 1\n\
             [reshare.policy.prove-quorum]\nk = 1\n[reshare.policy.reshare]\nk = 1\n\
             [reshare.policy.replace-card]\nk = 1\n",
            armored(&c)
        );
        let text = format!("{base}{policy}");
        let with = Request::parse(&text).unwrap();
        let Operation::Reshare { plan, .. } = &with.operation else {
            panic!("a reshare")
        };
        let p = plan.policy.as_ref().expect("the new plan has the policy");
        assert_eq!(p.approvers[0].name, "Cy");
        assert_eq!(p.rule(OperationKind::Sign).max_files, Some(3));
        // The new plan is the plan those tables spell: the same hash as written out directly.
        let direct = format!(
            "format = \"sherd-plan/1\"\nceremony_id = \"acme-root-2026\"\ntime = {TIME_STR}\n{}",
            text.split_once("[reshare]\n")
                .unwrap()
                .1
                .replace("reshare.", "")
        );
        assert_eq!(Plan::parse(&direct).unwrap().hash(), plan.hash());
        // Without it the new plan has none, and the request hash differs.
        let without = Request::parse(&base).unwrap();
        let Operation::Reshare { plan: bare, .. } = &without.operation else {
            panic!("a reshare")
        };
        assert!(bare.policy.is_none());
        assert_ne!(without.hash(), with.hash());
        // What a reshare does to the policy, said plainly.
        use crate::policy::PolicyChange;
        let (old, new) = (plan.policy.as_ref(), bare.policy.as_ref());
        assert_eq!(PolicyChange::between(old, new), PolicyChange::Dropped);
        assert!(
            PolicyChange::between(old, new)
                .to_string()
                .contains("DROPS")
        );
        assert_eq!(PolicyChange::between(new, old), PolicyChange::Added);
        assert_eq!(PolicyChange::between(old, old), PolicyChange::Kept);
        assert_eq!(PolicyChange::between(new, new), PolicyChange::NoneBefore);
        assert!(matches!(
            err(&text.replace("[reshare.policy.reshare]\nk = 1\n", "")),
            RequestError::Reshare(PlanError::Policy { ref field, .. }) if field == "policy.reshare"
        ));
        let changed = Request::parse(&text.replace("max_files = 3", "max_files = 4")).unwrap();
        let Operation::Reshare { plan: other, .. } = &changed.operation else {
            panic!("a reshare")
        };
        assert_eq!(
            PolicyChange::between(old, other.policy.as_ref()),
            PolicyChange::Changed
        );
        // Its refusals are the plan's.
        assert!(matches!(
            err(&format!("{base}{}", policy.replace("k = 1\nmax_files", "k = 2\nmax_files"))),
            RequestError::Reshare(PlanError::Policy { ref field, .. }) if field == "policy.sign.k"
        ));
    }

    #[test]
    fn reshare_refusals_are_the_plans() {
        let (a, b) = (cert(&["A"], None), cert(&["B"], None));
        let ok = reshare_request(2, &[("Ann", "Ben", &a), ("Ben", "Ann", &b)]);
        assert!(Request::parse(&ok).is_ok());
        assert_eq!(
            err(&reshare_request(
                3,
                &[("Ann", "Ben", &a), ("Ben", "Ann", &b)]
            )),
            RequestError::Reshare(PlanError::ThresholdAboveHolders {
                threshold: 3,
                holders: 2
            })
        );
        assert_eq!(
            err(&reshare_request(
                1,
                &[("Ann", "Ben", &a), ("Ben", "Ann", &b)]
            )),
            RequestError::Reshare(PlanError::ThresholdBelowTwo { threshold: 1 })
        );
        assert_eq!(
            err(&reshare_request(
                2,
                &[("Ann", "Bob", &a), ("Ben", "Ann", &b)]
            )),
            RequestError::Reshare(PlanError::UnknownBackup {
                holder: "Ann".into(),
                backup: "Bob".into()
            })
        );
        assert_eq!(
            err(&reshare_request(
                2,
                &[("Ann", "Ben", &a), ("Ben", "Ann", &a)]
            )),
            RequestError::Reshare(PlanError::DuplicateCertificate {
                fingerprint: a.fingerprint().to_hex(),
                first: "Ann".into(),
                second: "Ben".into()
            })
        );
        assert!(matches!(
            err(&ok.replace("[[reshare.witness]]\nname = \"Wendy\"\n", "")),
            RequestError::Reshare(PlanError::NoWitnesses)
        ));
        // Certificates are judged at the request time: one created after it is refused.
        let later = CertBuilder::new()
            .set_cipher_suite(CipherSuite::Cv25519)
            .set_creation_time(UNIX_EPOCH + Duration::from_secs(u64::from(TIME) + 86_400))
            .add_userid("L")
            .add_transport_encryption_subkey()
            .generate()
            .unwrap()
            .0;
        assert!(matches!(
            err(&reshare_request(2, &[("Ann", "Ben", &a), ("Ben", "Ann", &later)])),
            RequestError::Reshare(PlanError::CertInvalid { ref holder, .. }) if holder == "Ben"
        ));
        // Only the new plan's own fields: no id, time or machine table of its own.
        for extra in [
            "ceremony_id = \"x\"\n",
            "time = 2027-01-01T00:00:00Z\n",
            "format = \"x\"\n",
        ] {
            let text = ok.replace("threshold = 2\n", &format!("threshold = 2\n{extra}"));
            assert!(matches!(err(&text), RequestError::Syntax(_)), "{extra}");
        }
        assert!(matches!(
            err(&ok.replace("cards = 1\n", "cards = 1\nphone = 1\n")),
            RequestError::Syntax(m) if m.contains("phone")
        ));
    }

    #[test]
    fn replace_card_refusals() {
        let req = |h: i64, c: i64| format!("{}[replace-card]\nholder = {h}\ncards = {c}\n", head());
        assert!(Request::parse(&req(255, 8)).is_ok());
        for h in [0, -1, 256] {
            assert_eq!(
                err(&req(h, 1)),
                RequestError::HolderOutOfRange { holder: h }
            );
        }
        for c in [0, 9, -3] {
            assert_eq!(err(&req(1, c)), RequestError::CardCount { cards: c });
        }
    }

    #[test]
    fn every_refusal_is_displayed_naming_its_field() {
        // The messages an operator reads: each names the field it is about.
        let cases = [
            (sign_request().replace(DIGEST, "00"), "sign.file[1].sha256"),
            (
                sign_request().replace("SHA256SUMS", "a/b"),
                "sign.file[2].name",
            ),
            (sign_request().replace(ROOT, "00"), "root_fingerprint"),
            (
                sign_request().replace(TIME_STR, "2019-01-01T00:00:00Z"),
                "time",
            ),
            (
                format!("{}[replace-card]\nholder = 0\ncards = 1\n", head()),
                "replace-card.holder",
            ),
            (
                format!("{}[replace-card]\nholder = 1\ncards = 0\n", head()),
                "replace-card.cards",
            ),
            (
                format!("{}[prove-quorum]\nchallenge = \"\"\n", head()),
                "prove-quorum.challenge",
            ),
        ];
        for (text, field) in cases {
            let e = err(&text).to_string();
            assert!(e.contains(field), "{e} should name {field}");
        }
    }
}
