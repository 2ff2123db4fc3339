//! The ceremony plan: a strict TOML file brought on the plan stick, validated before anything
//! else happens, and identified by a canonical hash that witnesses read aloud as words.
//!
//! The format is specified in docs/formats/plan.md.

use std::collections::HashMap;
use std::io::Read;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use sequoia_openpgp as openpgp;
use serde::Deserialize;

use openpgp::Cert;
use openpgp::Fingerprint;
use openpgp::parse::Parse;
use openpgp::policy::StandardPolicy;
use openpgp::types::RevocationStatus;

use crate::policy::{Policy, RawPolicy};
use crate::{hex, kdf, words};

/// The value of the plan's `format` field this crate reads.
pub const FORMAT: &str = "sherd-plan/1";
/// At most this many holders: share x coordinates are one byte and 0 is the secret.
pub const MAX_HOLDERS: usize = 255;
/// At most this many cards per holder (each carries the same location key).
pub const MAX_CARDS_PER_HOLDER: u8 = 8;
/// Longest ceremony id, holder or witness name, in bytes.
pub const MAX_NAME_LEN: usize = 64;

/// Why a plan was refused. Each variant names the field or holder at fault.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[non_exhaustive]
pub enum PlanError {
    /// Not TOML, or a field is missing, unknown or of the wrong type; the TOML parser's
    /// message.
    #[error("the plan is not valid TOML for this schema: {0}")]
    Syntax(String),
    /// The `format` field is not [`FORMAT`].
    #[error("unsupported plan format {found:?}: this build reads {FORMAT:?}")]
    UnsupportedFormat {
        /// The `format` value found.
        found: String,
    },
    /// The ceremony id breaks the rules of [`check_ceremony_id`].
    #[error("invalid ceremony_id {id:?}: {reason}")]
    InvalidCeremonyId {
        /// The id as given.
        id: String,
        /// Which rule it breaks.
        reason: &'static str,
    },
    /// `time` is not a whole-second UTC date and time (trailing `Z`) from 2020-01-01 up to
    /// the end of 32-bit OpenPGP time.
    #[error("invalid time {time}: {reason}")]
    InvalidTime {
        /// The time as written in the plan.
        time: String,
        /// Which rule it breaks.
        reason: &'static str,
    },
    /// The plan has no `[[holder]]` table.
    #[error("the plan has no holders: add [[holder]] tables")]
    NoHolders,
    /// More than [`MAX_HOLDERS`] holders.
    #[error(
        "the plan has {count} holders; at most {MAX_HOLDERS} are possible (one byte per share index)"
    )]
    TooManyHolders {
        /// Number of holders in the plan.
        count: usize,
    },
    /// The threshold exceeds the number of holders: the secret could never be recovered.
    #[error("threshold {threshold} is larger than the number of holders ({holders})")]
    ThresholdAboveHolders {
        /// The plan's threshold.
        threshold: i64,
        /// Number of holders in the plan.
        holders: usize,
    },
    /// Threshold 1 without `allow_threshold_one = true`: every holder alone would hold the
    /// secret.
    #[error(
        "threshold {threshold} is below 2: one holder alone could recover the secret; set allow_threshold_one = true if that is really intended"
    )]
    ThresholdBelowTwo {
        /// The plan's threshold (1: lower values are refused as out of range first).
        threshold: i64,
    },
    /// The threshold is not in 1..=255.
    #[error("threshold {threshold} is out of range 1..=255")]
    ThresholdOutOfRange {
        /// The threshold as written in the plan.
        threshold: i64,
    },
    /// A holder or witness name breaks the rules of [`check_name`].
    #[error("invalid {what} name {name:?}: {reason}")]
    InvalidName {
        /// Whose name: `holder` or `witness`.
        what: &'static str,
        /// The name as given.
        name: String,
        /// Which rule it breaks.
        reason: &'static str,
    },
    /// Two holders have the same name (compared byte for byte).
    #[error("holder {name:?} appears twice (holders {first} and {second})")]
    DuplicateHolder {
        /// The repeated name.
        name: String,
        /// 1-based index of the first holder with that name.
        first: usize,
        /// 1-based index of the second holder with that name.
        second: usize,
    },
    /// A witness is listed twice (compared byte for byte).
    #[error("witness {name:?} appears twice")]
    DuplicateWitness {
        /// The repeated name.
        name: String,
    },
    /// The plan has no `[[witness]]` table.
    #[error("the plan names no witness: a ceremony needs at least one")]
    NoWitnesses,
    /// A holder's `backup` is not the name of any holder in the plan.
    #[error("holder {holder:?}: backup {backup:?} is not a holder in this plan")]
    UnknownBackup {
        /// The holder whose backup is unknown.
        holder: String,
        /// The `backup` value as written.
        backup: String,
    },
    /// A holder names themself as backup: nobody else could read their PIN file.
    #[error("holder {holder:?} is named as their own backup")]
    SelfBackup {
        /// The holder's name.
        holder: String,
    },
    /// A holder's `cards` is not in 1..=[`MAX_CARDS_PER_HOLDER`].
    #[error("holder {holder:?}: cards = {cards} is out of range 1..={MAX_CARDS_PER_HOLDER}")]
    CardCount {
        /// The holder's name.
        holder: String,
        /// The `cards` value as written.
        cards: i64,
    },
    /// A holder's `certs` list is empty: their PIN file could be encrypted to nobody.
    #[error("holder {holder:?} has no personal certificate to encrypt their PIN file to")]
    NoCertificates {
        /// The holder's name.
        holder: String,
    },
    /// A certificate is not an ASCII-armored public key block that parses as a certificate.
    #[error("{what} {holder:?}, certificate {position}: cannot be read: {reason}")]
    CertUnreadable {
        /// Whose certificate: `holder` or `witness`.
        what: &'static str,
        /// The holder's or witness's name.
        holder: String,
        /// 1-based position of the certificate in the holder's `certs`.
        position: usize,
        /// The armor or parser error.
        reason: String,
    },
    /// A certificate carries secret key material.
    #[error(
        "{what} {holder:?}, certificate {fingerprint}: contains secret key material; put only the public certificate in the plan"
    )]
    CertHasSecret {
        /// Whose certificate: `holder` or `witness`.
        what: &'static str,
        /// The holder's or witness's name.
        holder: String,
        /// The certificate's fingerprint, upper-case hex.
        fingerprint: String,
    },
    /// A certificate is not valid under the standard policy at the plan time (e.g. no valid
    /// self-signature then).
    #[error(
        "{what} {holder:?}, certificate {fingerprint}: not valid at the ceremony time: {reason}"
    )]
    CertInvalid {
        /// Whose certificate: `holder` or `witness`.
        what: &'static str,
        /// The holder's or witness's name.
        holder: String,
        /// The certificate's fingerprint, upper-case hex.
        fingerprint: String,
        /// Sequoia's reason.
        reason: String,
    },
    /// A certificate is revoked at the plan time.
    #[error("{what} {holder:?}, certificate {fingerprint}: revoked")]
    CertRevoked {
        /// Whose certificate: `holder` or `witness`.
        what: &'static str,
        /// The holder's or witness's name.
        holder: String,
        /// The certificate's fingerprint, upper-case hex.
        fingerprint: String,
    },
    /// A certificate is not alive at the plan time (it has expired).
    #[error("{what} {holder:?}, certificate {fingerprint}: expired at the ceremony time: {reason}")]
    CertExpired {
        /// Whose certificate: `holder` or `witness`.
        what: &'static str,
        /// The holder's or witness's name.
        holder: String,
        /// The certificate's fingerprint, upper-case hex.
        fingerprint: String,
        /// Sequoia's reason.
        reason: String,
    },
    /// A certificate has no live, unrevoked encryption-capable key at the plan time (see
    /// [`encryption_keys`]), so the PIN file could not be encrypted to it.
    #[error(
        "holder {holder:?}, certificate {fingerprint}: has no live encryption-capable key at the ceremony time"
    )]
    CertCannotEncrypt {
        /// The holder's name.
        holder: String,
        /// The certificate's fingerprint, upper-case hex.
        fingerprint: String,
    },
    /// A witness's or approver's certificate has no live, unrevoked signing-capable key at the
    /// plan time (see [`signing_keys`]), so no signature by it could ever be checked.
    #[error(
        "{what} {witness:?}, certificate {fingerprint}: has no live signing-capable key at the ceremony time"
    )]
    CertCannotSign {
        /// Whose certificate: `witness` or `approver`.
        what: &'static str,
        /// The witness's or approver's name.
        witness: String,
        /// The certificate's fingerprint, upper-case hex.
        fingerprint: String,
    },
    /// The same certificate (by fingerprint) is listed twice in the plan.
    #[error("certificate {fingerprint} is listed for both {first:?} and {second:?}")]
    DuplicateCertificate {
        /// The certificate's fingerprint, upper-case hex.
        fingerprint: String,
        /// Name of the holder or witness who lists it first.
        first: String,
        /// Name of the holder or witness who lists it again (the same one if listed twice by
        /// one).
        second: String,
    },
    /// `require_witness_signatures = true`, but some witnesses have no certificate: they could
    /// never sign, so the ceremony could never write its outputs.
    #[error(
        "require_witness_signatures = true, but witness(es) {witnesses:?} have no certificate: add certs = [...] to each [[witness]] or drop the requirement"
    )]
    WitnessWithoutCertificate {
        /// Names of the witnesses without a certificate, in plan order.
        witnesses: Vec<String>,
    },
    /// A value in the `[policy]` table is not what it must be (see
    /// [`Policy`](crate::policy::Policy)); what is wrong and what to do.
    #[error("{field}: {reason}")]
    Policy {
        /// The field at fault as a TOML path, e.g. `policy.sign.k` or
        /// `policy.approver[2].certs`.
        field: String,
        /// What is wrong and what to do about it.
        reason: String,
    },
    /// A value in the `[machine]` table is not what it must be (see [`Machine`]).
    #[error("[machine] {field}: {reason}")]
    Machine {
        /// The field at fault, e.g. `pcr4` or `quote_key`.
        field: &'static str,
        /// What is wrong and what it must be.
        reason: String,
    },
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawPlan {
    format: String,
    ceremony_id: String,
    time: toml::value::Datetime,
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
    #[serde(default)]
    machine: Option<RawMachine>,
    #[serde(default)]
    policy: Option<RawPolicy>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawMachine {
    name: String,
    pcr0: Option<String>,
    pcr1: Option<String>,
    pcr2: Option<String>,
    pcr3: Option<String>,
    pcr4: Option<String>,
    pcr5: Option<String>,
    pcr6: Option<String>,
    pcr7: Option<String>,
    quote_key: Option<String>,
}

/// The values recorded beforehand for the one laptop this ceremony runs on (the plan's
/// `[machine]` table): its PCR 0-7 (SHA-256 bank) after booting sherd the way the ceremony
/// will, and the TPM name of the attestation key sherd makes in its TPM. A recorded PCR is
/// judged against its recorded value (PASS only when equal); one not recorded falls back to
/// Heads' rules. Recorded with the boot screen's "this machine's values" action.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Machine {
    /// The laptop's name as the owner labels it, e.g. `ceremony-laptop-1` (same rules as a
    /// person's name).
    pub name: String,
    /// `pcrs[i]`: the recorded value of PCR i, if recorded.
    pub pcrs: [Option<[u8; 32]>; 8],
    /// The attestation key's TPM name (`000b` and the SHA-256 of its public area, 34 bytes),
    /// if recorded: the same TPM makes the same key, so the quote can be tied to this laptop.
    pub quote_key: Option<[u8; QUOTE_KEY_LEN]>,
}

/// Length of a TPM name with SHA-256 as its name algorithm: the algorithm (2 bytes) and digest.
pub const QUOTE_KEY_LEN: usize = 34;

impl Machine {
    fn from_raw(raw: RawMachine) -> Result<Machine, PlanError> {
        check_name("machine", &raw.name)?;
        const FIELDS: [&str; 8] = [
            "pcr0", "pcr1", "pcr2", "pcr3", "pcr4", "pcr5", "pcr6", "pcr7",
        ];
        let given = [
            raw.pcr0, raw.pcr1, raw.pcr2, raw.pcr3, raw.pcr4, raw.pcr5, raw.pcr6, raw.pcr7,
        ];
        let mut pcrs = [None; 8];
        for (i, v) in given.into_iter().enumerate() {
            if let Some(v) = v {
                pcrs[i] = Some(fixed_hex(FIELDS[i], &v)?);
            }
        }
        let quote_key = match raw.quote_key {
            None => None,
            Some(v) => {
                let k: [u8; QUOTE_KEY_LEN] = fixed_hex("quote_key", &v)?;
                if k[..2] != [0x00, 0x0b] {
                    return Err(PlanError::Machine {
                        field: "quote_key",
                        reason: "must start with 000b (a TPM name with SHA-256 as its algorithm)"
                            .into(),
                    });
                }
                Some(k)
            }
        };
        if pcrs.iter().all(Option::is_none) && quote_key.is_none() {
            return Err(PlanError::Machine {
                field: "name",
                reason: "the table records no value: add pcr0 .. pcr7 and quote_key as the \
                         boot screen's \"this machine's values\" shows them"
                    .into(),
            });
        }
        Ok(Machine {
            name: raw.name,
            pcrs,
            quote_key,
        })
    }

    /// The table as the plan writes it (what the boot screen's action writes to a stick).
    pub fn to_toml(&self) -> String {
        let mut out = String::from("[machine]\n");
        out.push_str(&format!(
            "name = {}\n",
            toml::Value::String(self.name.clone())
        ));
        for (i, v) in self.pcrs.iter().enumerate() {
            if let Some(v) = v {
                out.push_str(&format!("pcr{i} = \"{}\"\n", hex::encode(v)));
            }
        }
        if let Some(k) = &self.quote_key {
            out.push_str(&format!("quote_key = \"{}\"\n", hex::encode(k)));
        }
        out
    }

    /// Its lines of the canonical encoding (docs/formats/plan.md).
    fn canonical(&self, out: &mut String) {
        out.push_str(&format!("machine={}\n", self.name));
        for (i, v) in self.pcrs.iter().enumerate() {
            if let Some(v) = v {
                out.push_str(&format!("machine_pcr={i}\t{}\n", hex::encode(v)));
            }
        }
        if let Some(k) = &self.quote_key {
            out.push_str(&format!("machine_quote_key={}\n", hex::encode(k)));
        }
    }
}

/// Exactly `N` bytes as lower- or upper-case hex, for a `[machine]` field.
fn fixed_hex<const N: usize>(field: &'static str, v: &str) -> Result<[u8; N], PlanError> {
    hex::decode(&v.to_ascii_lowercase())
        .and_then(|b| <[u8; N]>::try_from(b).ok())
        .ok_or_else(|| PlanError::Machine {
            field,
            reason: format!("{v:?} is not {} hex digits", 2 * N),
        })
}

/// A `[[holder]]` table as written (also a reshare request's, which is written back as plan
/// text).
#[derive(Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawHolder {
    name: String,
    backup: String,
    cards: i64,
    certs: Vec<String>,
}

/// A `[[witness]]` table as written (also a reshare request's, and the shape of a policy's
/// `[[policy.approver]]`).
#[derive(Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawWitness {
    pub(crate) name: String,
    #[serde(default)]
    pub(crate) certs: Vec<String>,
}

/// One personal certificate of a holder or witness, as given in the plan.
#[derive(Clone, Debug)]
pub struct PersonalCert {
    /// The parsed certificate.
    pub cert: Cert,
    /// Its fingerprint.
    pub fingerprint: Fingerprint,
    /// SHA-256 of the certificate's binary (dearmored) bytes as given.
    pub sha256: [u8; 32],
}

/// A holder of one share.
#[derive(Clone, Debug)]
pub struct Holder {
    /// 1-based index; also the share's x coordinate.
    pub index: u8,
    /// The holder's name as written in the plan.
    pub name: String,
    /// Index of the backup holder, who can also read this holder's PIN file.
    pub backup: u8,
    /// Number of location cards for this holder (each carries the same location key).
    pub cards: u8,
    /// Certificates the PIN file is encrypted to.
    pub certs: Vec<PersonalCert>,
}

/// A validated ceremony plan.
#[derive(Clone, Debug)]
pub struct Plan {
    /// Ceremony id: lower-case letters, digits and '-'.
    pub ceremony_id: String,
    /// Ceremony time (seconds since the Unix epoch, UTC); used for every certificate and
    /// signature because the machine clock is not trusted.
    pub time_unix: u32,
    /// Threshold M.
    pub threshold: u8,
    /// Whether M = 1 was explicitly allowed.
    pub allow_threshold_one: bool,
    /// Whether virtual devices (a software TPM, virtio-rng, a machine under a hypervisor) may
    /// count as hardware entropy sources: for tests and rehearsals only. Every page after the
    /// plan says so.
    pub allow_virtual_hardware: bool,
    /// The holders, in plan order (index 1..=N).
    pub holders: Vec<Holder>,
    /// Witness names, in plan order (witness k is `witnesses[k - 1]`).
    pub witnesses: Vec<String>,
    /// Each witness's personal certificates (to check their signatures over the transcript),
    /// index-aligned with [`Plan::witnesses`]; empty for a witness who gives none.
    pub witness_certs: Vec<Vec<PersonalCert>>,
    /// Whether every witness must sign the transcript before anything is written (every
    /// witness then has a certificate: checked).
    pub require_witness_signatures: bool,
    /// The values recorded for the laptop this ceremony runs on, if the plan gives them.
    pub machine: Option<Machine>,
    /// The signing policy, if the plan has a `[policy]` table: who approves requests and how
    /// many approvals each kind of operation needs.
    pub policy: Option<Policy>,
    hash: [u8; 32],
}

/// Plain public data for a screen.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PlanSummary {
    /// Ceremony id.
    pub ceremony_id: String,
    /// Plan time, UTC, as `YYYY-MM-DDTHH:MM:SSZ`.
    pub time_rfc3339: String,
    /// Threshold M.
    pub threshold: u8,
    /// One line per holder, in plan order.
    pub holders: Vec<HolderSummary>,
    /// Witness names, in plan order.
    pub witnesses: Vec<String>,
    /// Fingerprints of each witness's personal certificates, upper-case hex, in plan order;
    /// index-aligned with `witnesses` (empty for a witness who gives none).
    pub witness_cert_fingerprints: Vec<Vec<String>>,
    /// Whether every witness must sign the transcript with their own card before anything is
    /// written.
    pub require_witness_signatures: bool,
    /// Whether the plan lets virtual devices count as hardware entropy sources.
    pub allow_virtual_hardware: bool,
    /// The values recorded for the laptop, if the plan gives them.
    pub machine: Option<Machine>,
    /// The canonical plan hash, 64 lower-case hex digits.
    pub hash_hex: String,
    /// The same hash as 32 PGP words separated by single spaces, for reading aloud.
    pub hash_words: String,
}

/// One holder's line in a [`PlanSummary`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HolderSummary {
    /// Holder index, 1-based; also the share's x coordinate.
    pub index: u8,
    /// The holder's name as written in the plan.
    pub name: String,
    /// The backup holder's name (who can also read this holder's PIN file).
    pub backup: String,
    /// Number of location cards for this holder.
    pub cards: u8,
    /// Fingerprints of the holder's personal certificates, upper-case hex, in plan order.
    pub cert_fingerprints: Vec<String>,
}

impl Plan {
    /// Parses and validates a plan.
    pub fn parse(text: &str) -> Result<Plan, PlanError> {
        let raw: RawPlan = toml::from_str(text).map_err(|e| PlanError::Syntax(e.to_string()))?;
        Self::validate(raw)
    }

    /// The ceremony time as a `SystemTime`.
    pub fn time(&self) -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(u64::from(self.time_unix))
    }

    /// Number of holders (N).
    pub fn holder_count(&self) -> u8 {
        u8::try_from(self.holders.len()).expect("validated: at most 255")
    }

    /// The canonical plan hash (SHA-256 of [`Plan::canonical_bytes`]).
    pub fn hash(&self) -> [u8; 32] {
        self.hash
    }

    /// The holder with a 1-based index.
    pub fn holder(&self, index: u8) -> Option<&Holder> {
        self.holders.get(usize::from(index).checked_sub(1)?)
    }

    /// Witness `index` (1-based, plan order): name and personal certificates.
    pub fn witness(&self, index: usize) -> Option<(&str, &[PersonalCert])> {
        let i = index.checked_sub(1)?;
        Some((
            self.witnesses.get(i)?.as_str(),
            self.witness_certs.get(i)?.as_slice(),
        ))
    }

    /// The canonical encoding the plan hash is taken over (docs/formats/plan.md).
    pub fn canonical_bytes(&self) -> Vec<u8> {
        let mut out = String::new();
        out.push_str(FORMAT);
        out.push('\n');
        out.push_str(&format!("ceremony_id={}\n", self.ceremony_id));
        out.push_str(&format!("time={}\n", self.time_unix));
        out.push_str(&format!("threshold={}\n", self.threshold));
        out.push_str(&format!(
            "allow_threshold_one={}\n",
            self.allow_threshold_one
        ));
        // Only when set, so the hashes of plans written before the key existed stay the same.
        if self.allow_virtual_hardware {
            out.push_str("allow_virtual_hardware=true\n");
        }
        out.push_str(&format!("holders={}\n", self.holders.len()));
        for h in &self.holders {
            let backup = &self.holders[usize::from(h.backup) - 1].name;
            out.push_str(&format!(
                "holder={}\tname={}\tbackup={}\tcards={}\n",
                h.index, h.name, backup, h.cards
            ));
            for c in &h.certs {
                out.push_str(&format!(
                    "cert={}\t{}\t{}\n",
                    h.index,
                    c.fingerprint.to_hex(),
                    hex::encode(&c.sha256)
                ));
            }
        }
        out.push_str(&format!("witnesses={}\n", self.witnesses.len()));
        for (i, (w, certs)) in self.witnesses.iter().zip(&self.witness_certs).enumerate() {
            out.push_str(&format!("witness={w}\n"));
            // Only when given, so the hashes of plans without witness certificates stay the
            // same.
            for c in certs {
                out.push_str(&format!(
                    "witness_cert={}\t{}\t{}\n",
                    i + 1,
                    c.fingerprint.to_hex(),
                    hex::encode(&c.sha256)
                ));
            }
        }
        if self.require_witness_signatures {
            out.push_str("require_witness_signatures=true\n");
        }
        // Only when given, so the hashes of plans without a machine table stay the same.
        if let Some(m) = &self.machine {
            m.canonical(&mut out);
        }
        // Last and only when given, so the hashes of plans without a policy stay the same.
        if let Some(p) = &self.policy {
            p.canonical(&mut out);
        }
        out.into_bytes()
    }

    /// Public values for a screen.
    pub fn summary(&self) -> PlanSummary {
        PlanSummary {
            ceremony_id: self.ceremony_id.clone(),
            time_rfc3339: rfc3339(self.time_unix),
            threshold: self.threshold,
            holders: self
                .holders
                .iter()
                .map(|h| HolderSummary {
                    index: h.index,
                    name: h.name.clone(),
                    backup: self.holders[usize::from(h.backup) - 1].name.clone(),
                    cards: h.cards,
                    cert_fingerprints: h.certs.iter().map(|c| c.fingerprint.to_hex()).collect(),
                })
                .collect(),
            witnesses: self.witnesses.clone(),
            witness_cert_fingerprints: self
                .witness_certs
                .iter()
                .map(|cs| cs.iter().map(|c| c.fingerprint.to_hex()).collect())
                .collect(),
            require_witness_signatures: self.require_witness_signatures,
            allow_virtual_hardware: self.allow_virtual_hardware,
            machine: self.machine.clone(),
            hash_hex: hex::encode(&self.hash),
            hash_words: words::to_phrase(&self.hash),
        }
    }

    fn validate(raw: RawPlan) -> Result<Plan, PlanError> {
        if raw.format != FORMAT {
            return Err(PlanError::UnsupportedFormat { found: raw.format });
        }
        check_ceremony_id(&raw.ceremony_id)?;
        let time_unix = datetime_to_unix(&raw.time)?;

        if raw.holders.is_empty() {
            return Err(PlanError::NoHolders);
        }
        if raw.holders.len() > MAX_HOLDERS {
            return Err(PlanError::TooManyHolders {
                count: raw.holders.len(),
            });
        }
        let threshold = raw.threshold;
        if !(1..=255).contains(&threshold) {
            return Err(PlanError::ThresholdOutOfRange { threshold });
        }
        if threshold < 2 && !raw.allow_threshold_one {
            return Err(PlanError::ThresholdBelowTwo { threshold });
        }
        if usize::try_from(threshold).unwrap_or(usize::MAX) > raw.holders.len() {
            return Err(PlanError::ThresholdAboveHolders {
                threshold,
                holders: raw.holders.len(),
            });
        }

        let mut by_name: HashMap<&str, usize> = HashMap::new();
        for (i, h) in raw.holders.iter().enumerate() {
            check_name("holder", &h.name)?;
            if let Some(first) = by_name.insert(&h.name, i + 1) {
                return Err(PlanError::DuplicateHolder {
                    name: h.name.clone(),
                    first,
                    second: i + 1,
                });
            }
        }

        let time = UNIX_EPOCH + Duration::from_secs(u64::from(time_unix));
        let policy = StandardPolicy::new();
        let mut seen_certs: HashMap<Fingerprint, String> = HashMap::new();
        let mut holders = Vec::with_capacity(raw.holders.len());
        for (i, h) in raw.holders.iter().enumerate() {
            let backup =
                *by_name
                    .get(h.backup.as_str())
                    .ok_or_else(|| PlanError::UnknownBackup {
                        holder: h.name.clone(),
                        backup: h.backup.clone(),
                    })?;
            if backup == i + 1 {
                return Err(PlanError::SelfBackup {
                    holder: h.name.clone(),
                });
            }
            if !(1..=i64::from(MAX_CARDS_PER_HOLDER)).contains(&h.cards) {
                return Err(PlanError::CardCount {
                    holder: h.name.clone(),
                    cards: h.cards,
                });
            }
            if h.certs.is_empty() {
                return Err(PlanError::NoCertificates {
                    holder: h.name.clone(),
                });
            }
            let certs = check_certs(
                ("holder", &h.name),
                &h.certs,
                &policy,
                time,
                CertUse::Encrypt,
                &mut seen_certs,
            )?;
            holders.push(Holder {
                index: u8::try_from(i + 1).expect("at most 255 holders"),
                name: h.name.clone(),
                backup: u8::try_from(backup).expect("at most 255 holders"),
                cards: u8::try_from(h.cards).expect("checked range"),
                certs,
            });
        }

        if raw.witnesses.is_empty() {
            return Err(PlanError::NoWitnesses);
        }
        let mut witnesses: Vec<String> = Vec::new();
        let mut witness_certs: Vec<Vec<PersonalCert>> = Vec::new();
        for w in &raw.witnesses {
            check_name("witness", &w.name)?;
            if witnesses.contains(&w.name) {
                return Err(PlanError::DuplicateWitness {
                    name: w.name.clone(),
                });
            }
            let certs = check_certs(
                ("witness", &w.name),
                &w.certs,
                &policy,
                time,
                CertUse::Sign,
                &mut seen_certs,
            )?;
            witnesses.push(w.name.clone());
            witness_certs.push(certs);
        }
        if raw.require_witness_signatures {
            let without: Vec<String> = witnesses
                .iter()
                .zip(&witness_certs)
                .filter(|(_, c)| c.is_empty())
                .map(|(w, _)| w.clone())
                .collect();
            if !without.is_empty() {
                return Err(PlanError::WitnessWithoutCertificate { witnesses: without });
            }
        }

        let mut plan = Plan {
            ceremony_id: raw.ceremony_id,
            time_unix,
            threshold: u8::try_from(threshold).expect("checked range"),
            allow_threshold_one: raw.allow_threshold_one,
            allow_virtual_hardware: raw.allow_virtual_hardware,
            holders,
            witnesses,
            witness_certs,
            require_witness_signatures: raw.require_witness_signatures,
            machine: raw.machine.map(Machine::from_raw).transpose()?,
            policy: raw.policy.map(|p| Policy::from_raw(p, time)).transpose()?,
            hash: [0; 32],
        };
        plan.hash = kdf::sha256(&plan.canonical_bytes());
        Ok(plan)
    }
}

/// Checks a ceremony id: 1..=64 bytes of `a-z`, `0-9` and `-`, starting with a letter or digit
/// (it becomes part of file names and user IDs).
pub fn check_ceremony_id(id: &str) -> Result<(), PlanError> {
    let bad = |reason| {
        Err(PlanError::InvalidCeremonyId {
            id: id.to_string(),
            reason,
        })
    };
    if id.is_empty() || id.len() > MAX_NAME_LEN {
        return bad("must be 1 to 64 characters");
    }
    if !id
        .bytes()
        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
    {
        return bad("only lower-case letters a-z, digits and '-' are allowed");
    }
    if id.starts_with('-') {
        return bad("must start with a letter or digit");
    }
    Ok(())
}

/// Checks a person's name: 1..=64 bytes, no control characters (tabs and newlines would break
/// the canonical encoding and the transcript), no leading or trailing space.
pub fn check_name(what: &'static str, name: &str) -> Result<(), PlanError> {
    let bad = |reason| {
        Err(PlanError::InvalidName {
            what,
            name: name.to_string(),
            reason,
        })
    };
    if name.is_empty() || name.len() > MAX_NAME_LEN {
        return bad("must be 1 to 64 bytes");
    }
    if name.chars().any(char::is_control) {
        return bad("control characters are not allowed");
    }
    if name.trim() != name {
        return bad("leading or trailing spaces are not allowed");
    }
    Ok(())
}

/// What a personal certificate is for: a holder's PIN file is encrypted to it, a witness's
/// signature is checked against it.
#[derive(Clone, Copy)]
pub(crate) enum CertUse {
    Encrypt,
    Sign,
}

/// Checks each of one person's certificates ([`check_cert`]) and that none was already given by
/// anyone in the plan (`seen`: fingerprint to the name that gave it).
pub(crate) fn check_certs(
    who: (&'static str, &str),
    armored: &[String],
    policy: &StandardPolicy,
    time: SystemTime,
    usage: CertUse,
    seen: &mut HashMap<Fingerprint, String>,
) -> Result<Vec<PersonalCert>, PlanError> {
    let mut certs = Vec::with_capacity(armored.len());
    for (position, a) in armored.iter().enumerate() {
        let pc = check_cert(who, position + 1, a, policy, time, usage)?;
        if let Some(first) = seen.insert(pc.fingerprint.clone(), who.1.to_string()) {
            return Err(PlanError::DuplicateCertificate {
                fingerprint: pc.fingerprint.to_hex(),
                first,
                second: who.1.to_string(),
            });
        }
        certs.push(pc);
    }
    Ok(certs)
}

/// The checks of a personal certificate, the same for holders and witnesses (docs/formats/
/// plan.md): one armored public certificate, valid, unrevoked and alive at `time`, with a live
/// key for its use.
fn check_cert(
    (what, holder): (&'static str, &str),
    position: usize,
    armored: &str,
    policy: &StandardPolicy,
    time: SystemTime,
    usage: CertUse,
) -> Result<PersonalCert, PlanError> {
    let unreadable = |reason: String| PlanError::CertUnreadable {
        what,
        holder: holder.to_string(),
        position,
        reason,
    };
    let mut binary = Vec::new();
    openpgp::armor::Reader::from_bytes(
        armored.as_bytes(),
        openpgp::armor::ReaderMode::Tolerant(Some(openpgp::armor::Kind::PublicKey)),
    )
    .read_to_end(&mut binary)
    .map_err(|e| unreadable(format!("not an ASCII-armored public key block: {e}")))?;
    let cert = Cert::from_bytes(&binary).map_err(|e| unreadable(e.to_string()))?;
    let fingerprint = cert.fingerprint();
    let fpr = fingerprint.to_hex();
    if cert.is_tsk() {
        return Err(PlanError::CertHasSecret {
            what,
            holder: holder.to_string(),
            fingerprint: fpr,
        });
    }
    let vc = cert
        .with_policy(policy, time)
        .map_err(|e| PlanError::CertInvalid {
            what,
            holder: holder.to_string(),
            fingerprint: fpr.clone(),
            reason: e.to_string(),
        })?;
    if let RevocationStatus::Revoked(_) = vc.revocation_status() {
        return Err(PlanError::CertRevoked {
            what,
            holder: holder.to_string(),
            fingerprint: fpr,
        });
    }
    vc.alive().map_err(|e| PlanError::CertExpired {
        what,
        holder: holder.to_string(),
        fingerprint: fpr.clone(),
        reason: e.to_string(),
    })?;
    match usage {
        CertUse::Encrypt if encryption_keys(&cert, time).is_empty() => {
            return Err(PlanError::CertCannotEncrypt {
                holder: holder.to_string(),
                fingerprint: fpr,
            });
        }
        CertUse::Sign if signing_keys(&cert, time).is_empty() => {
            return Err(PlanError::CertCannotSign {
                what,
                witness: holder.to_string(),
                fingerprint: fpr,
            });
        }
        _ => {}
    }
    Ok(PersonalCert {
        cert,
        fingerprint,
        sha256: kdf::sha256(&binary),
    })
}

/// A public key of a certificate, whatever its role.
type PublicKey =
    openpgp::packet::Key<openpgp::packet::key::PublicParts, openpgp::packet::key::UnspecifiedRole>;

/// The live, unrevoked, encryption-capable keys of `cert` at `time` under the standard policy.
pub fn encryption_keys(cert: &Cert, time: SystemTime) -> Vec<PublicKey> {
    live_keys(cert, time, CertUse::Encrypt)
}

/// The live, unrevoked, signing-capable keys of `cert` at `time` under the standard policy: the
/// keys a witness's signature over the transcript may be made with.
pub fn signing_keys(cert: &Cert, time: SystemTime) -> Vec<PublicKey> {
    live_keys(cert, time, CertUse::Sign)
}

fn live_keys(cert: &Cert, time: SystemTime, usage: CertUse) -> Vec<PublicKey> {
    let policy = StandardPolicy::new();
    let keys = cert
        .keys()
        .with_policy(&policy, time)
        .supported()
        .alive()
        .revoked(false);
    let keys = match usage {
        CertUse::Encrypt => keys.for_transport_encryption().for_storage_encryption(),
        CertUse::Sign => keys.for_signing(),
    };
    keys.map(|ka| ka.key().clone().role_into_unspecified())
        .collect()
}

fn datetime_to_unix(dt: &toml::value::Datetime) -> Result<u32, PlanError> {
    unix_time(dt).map_err(|reason| PlanError::InvalidTime {
        time: dt.to_string(),
        reason,
    })
}

/// A TOML date-time as Unix seconds, by the rules of the plan's `time` (also a request's):
/// a full date and time in UTC (trailing `Z`), whole seconds, no leap second, from 2020-01-01
/// up to the end of 32-bit OpenPGP time. Err: which rule it breaks.
pub(crate) fn unix_time(dt: &toml::value::Datetime) -> Result<u32, &'static str> {
    let (Some(date), Some(time)) = (dt.date, dt.time) else {
        return Err("needs a full date and time, e.g. 2026-11-24T09:00:00Z");
    };
    if dt.offset != Some(toml::value::Offset::Z) {
        return Err("must be in UTC, written with a trailing Z");
    }
    if time.nanosecond.is_some_and(|n| n != 0) {
        return Err("fractions of a second are not allowed (OpenPGP times are whole seconds)");
    }
    let second = time.second.unwrap_or(0);
    if second > 59 {
        return Err("leap seconds are not allowed");
    }
    let days = days_from_civil(
        i64::from(date.year),
        i64::from(date.month),
        i64::from(date.day),
    );
    let secs = days * 86_400
        + i64::from(time.hour) * 3600
        + i64::from(time.minute) * 60
        + i64::from(second);
    // OpenPGP timestamps are unsigned 32-bit; before 2020 is certainly a mistake.
    if secs < 1_577_836_800 {
        return Err("must be 2020-01-01 or later");
    }
    u32::try_from(secs).map_err(|_| "must be before 2106-02-07 (OpenPGP timestamps are 32-bit)")
}

/// Days since 1970-01-01 for a proleptic Gregorian date (Howard Hinnant's algorithm).
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// Formats Unix seconds as `YYYY-MM-DDTHH:MM:SSZ`.
pub fn rfc3339(unix: u32) -> String {
    let secs = i64::from(unix);
    let days = secs.div_euclid(86_400);
    let rem = secs.rem_euclid(86_400);
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        (rem % 3600) / 60,
        rem % 60
    )
}
