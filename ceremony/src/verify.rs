//! The offline verifier: given a ceremony's output folder, check everything that can be checked
//! without secrets, and report a pass or the first failure. Runs on an ordinary computer
//! (`sherd-verify <folder>`); the checks are listed in docs/formats/ceremony-outputs.md.

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
use crate::record::{self, CoreRecord, FieldValue, Kind, SubsetPolicy};
use crate::shardfile::ShardFile;
use crate::transcript::{self, Transcript};
use crate::{attest, hex, kdf, pgp, recombine, words};

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
    /// What the entropy records say, once checked against the policy.
    pub entropy: EntropyReport,
    /// The TPM quote, checked against the plan hash and the recorded PCR values.
    pub quote: QuoteCheck,
    /// Which witnesses' signatures over the transcript verified (check 11).
    pub witnesses: WitnessReport,
    /// The boot judged against the plan, recomputed, and the deviation if any (check 14).
    pub boot: BootCheck,
    /// What the second implementations cross-checked, as the transcript records it (check 15).
    pub dual: DualCheck,
}

/// What the `dual.*` records say (docs/dual-implementations.md), after [`verify_with`]
/// checked them against the plan.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum DualCheck {
    /// Format 3: the three records are there, once each, in place, and their counts are those
    /// of this plan's ceremony.
    Checked {
        /// `dual.shamir`: the second Shamir's name, and the combinations it agreed on (the
        /// one split is implied).
        shamir: (String, usize),
        /// `dual.signatures`: the second Ed25519's name, and the signatures it agreed on.
        signatures: (String, usize),
        /// `dual.fingerprint`: the second computation's name, the fingerprints and HKDF
        /// outputs it agreed on.
        fingerprints: (String, usize, usize),
    },
    /// A transcript of an earlier format (named), written before sherd recorded its
    /// cross-checks: nothing to check, and said so.
    NotRecorded(&'static str),
}

impl DualCheck {
    /// What `sherd-verify` prints after `dual:`.
    pub fn line(&self) -> String {
        match self {
            DualCheck::NotRecorded(header) => format!(
                "not recorded ({header}: written before sherd recorded its second implementations' checks)"
            ),
            DualCheck::Checked {
                shamir,
                signatures,
                fingerprints,
            } => format!(
                "1 split and {} combinations ({}), {} signatures ({}), {} fingerprints and {} HKDF outputs ({}) agreed",
                shamir.1,
                shamir.0,
                signatures.1,
                signatures.0,
                fingerprints.1,
                fingerprints.2,
                fingerprints.0
            ),
        }
    }
}

/// What the `attest.verdicts` and `attest.deviation` records allowed the verifier to establish.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum BootCheck {
    /// The verdicts were recomputed from the PCR values recorded at the attestation, the
    /// plan's `[machine]` table, Heads' rules and the quote, and equal the recorded ones;
    /// every item not PASS is in the deviation, with its value.
    Checked {
        /// The plan's `[machine]` name, if the plan has the table.
        machine: Option<String>,
        /// Every item and its verdict: `pcr0`..`pcr7`, `quote`, `quote-key` (when recorded).
        verdicts: Vec<(String, attest::Verdict)>,
        /// The deviation the witnesses recorded (when an item was not PASS): the items it
        /// covers and the reason, as typed.
        deviation: Option<(Vec<String>, String)>,
    },
    /// No `attest.verdicts` record: a transcript from before the verdicts were recorded.
    NotRecorded,
}

impl BootCheck {
    /// What `sherd-verify` prints, one line per entry.
    pub fn lines(&self) -> Vec<String> {
        match self {
            BootCheck::NotRecorded => {
                vec!["not recorded (a transcript from before attest.verdicts)".into()]
            }
            BootCheck::Checked {
                machine,
                verdicts,
                deviation,
            } => {
                let basis = match machine {
                    Some(m) => format!("judged against the values the plan records for {m}"),
                    None => "judged by Heads' rules only (the plan records no laptop)".into(),
                };
                let pass: Vec<&str> = verdicts
                    .iter()
                    .filter(|(_, v)| *v == attest::Verdict::Pass)
                    .map(|(i, _)| i.as_str())
                    .collect();
                let open: Vec<String> = verdicts
                    .iter()
                    .filter(|(_, v)| *v != attest::Verdict::Pass)
                    .map(|(i, v)| format!("{i} {v}"))
                    .collect();
                let mut lines = vec![format!("{basis}; recomputed, as recorded")];
                lines.push(format!(
                    "PASS: {}",
                    if pass.is_empty() {
                        "none".into()
                    } else {
                        pass.join(" ")
                    }
                ));
                if !open.is_empty() {
                    lines.push(format!("not PASS: {}", open.join(", ")));
                }
                match deviation {
                    Some((items, reason)) => lines.push(format!(
                        "DEVIATION recorded for {}: \"{reason}\"",
                        items.join(" ")
                    )),
                    None => lines.push("no deviation".into()),
                }
                lines
            }
        }
    }
}

/// The witnesses' signatures (`witness-signatures/<k>.sig`), after [`verify_with`] checked
/// every one present.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WitnessReport {
    /// Names of the witnesses whose signature verified, in plan order.
    pub signed: Vec<String>,
    /// Names of the witnesses who did not sign (no signature file), in plan order.
    pub not_signed: Vec<String>,
    /// Whether the plan gives any witness a certificate (else no witness can sign).
    pub certificates_given: bool,
    /// Whether the plan requires every witness's signature (then `not_signed` is empty).
    pub required: bool,
}

impl WitnessReport {
    /// What `sherd-verify` prints: `signed by 2 of 2 witnesses: Wendy, Walter`, `signed by 1
    /// of 2 witnesses: Wendy; not signed: Walter`, or `witness signatures: none (the plan gives
    /// no witness certificates)`.
    pub fn line(&self) -> String {
        if !self.certificates_given {
            return "witness signatures: none (the plan gives no witness certificates)".into();
        }
        let total = self.signed.len() + self.not_signed.len();
        let mut line = format!("signed by {} of {total} witnesses", self.signed.len());
        if !self.signed.is_empty() {
            line.push_str(&format!(": {}", self.signed.join(", ")));
        }
        if !self.not_signed.is_empty() {
            line.push_str(&format!("; not signed: {}", self.not_signed.join(", ")));
        }
        line
    }
}

/// The entropy step as its records tell it, after [`verify_with`] checked them.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EntropyReport {
    /// Identities of the sources counted as independent hardware, in transcript order.
    pub counted: Vec<String>,
    /// Whether the plan (and the `entropy.policy` record) let virtual devices count.
    pub virtual_allowed: bool,
    /// Identities of counted sources that are virtual devices (only when allowed).
    pub counted_virtual: Vec<String>,
    /// What the entropy records could be checked against.
    pub basis: EntropyBasis,
}

/// What the `tpm.quote` record allowed the verifier to establish.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum QuoteCheck {
    /// The quote's signature verifies with its attestation key, its qualifying data is the
    /// plan hash, and its PCR digest is that of the eight `tpm.pcr<N>-sha256` values recorded
    /// at the attestation. The key was made in the TPM during the ceremony: it is tied to a
    /// particular laptop only by a key name recorded beforehand (docs/formats/tpm-quote.md).
    Verified {
        /// The attestation key's TPM name (`000b` + SHA-256 of its public area), hex.
        ak_name: String,
        /// The TPM's firmware version as it reported it.
        firmware: String,
        /// Whether the TPM held an EK certificate (recorded, not checked).
        ek_cert: bool,
    },
    /// The ceremony recorded why it made no quote (no TPM, a rehearsal, a TPM error).
    NotMade(String),
    /// A quote is recorded but does not verify against the plan hash and the recorded PCR
    /// values: acceptable only as a FAIL the witnesses' deviation covers (check 14).
    Failed {
        /// The attestation key's TPM name, hex.
        ak_name: String,
        /// Which check failed.
        why: String,
    },
    /// No `tpm.quote` record: a transcript from before the quote existed, or format 1.
    NotRecorded,
}

/// How much of the entropy step a transcript lets the verifier check.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EntropyBasis {
    /// `entropy.policy` recorded: every counted source is healthy, committed, credited enough
    /// and not virtual unless the plan allowed it, and there are as many as required.
    Policy,
    /// Written before `entropy.policy` existed: two healthy, committed counted sources, the
    /// kernel CSPRNG and the mixer were checked; credit and virtual devices were not recorded.
    CountsOnly,
    /// Format 1: its entropy records were free text, not checked.
    NotChecked,
}

/// The mixer's BLAKE3 context the `entropy.mixer` record must name (the `entropy` crate's
/// `mix::MIX_CONTEXT`; a test in ceremony-tui keeps the two equal).
pub const MIX_CONTEXT: &str =
    "sherd 2026-11-24 entropy mixer v1: ChaCha20 DRBG seed from committed source contributions";

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
    /// A value differs between two places: what one of them (`expected_from`) says, and what
    /// was found in the other (named in `what`).
    #[error("{what}: {expected_from} says {expected}, found {found}")]
    Mismatch {
        /// What was compared and where the found value is, e.g. `SHA-256 of plan.toml`.
        what: String,
        /// Where the expected value comes from: `plan.toml`, or a transcript record such as
        /// `transcript.txt record 12 (location.cert)`.
        expected_from: String,
        /// The expected value, as `expected_from` gives it.
        expected: String,
        /// The value found.
        found: String,
    },
    /// A record the checks need is missing or repeated, or records contradict each other or
    /// the plan as a whole (e.g. a card serial used twice, a planned card never provisioned);
    /// what is wrong.
    #[error("transcript.txt: {0}")]
    MissingRecord(String),
    /// The plan requires every witness's signature, and this witness's signature file is
    /// missing.
    #[error(
        "{path}: missing: {plan} sets require_witness_signatures, and witness {witness} ({name}) did not sign"
    )]
    MissingWitnessSignature {
        /// The signature file's path, `witness-signatures/<k>.sig`.
        path: String,
        /// `plan.toml`.
        plan: &'static str,
        /// The witness's index, 1-based.
        witness: usize,
        /// The witness's name.
        name: String,
    },
    /// One record of the transcript is wrong in itself: out of the ceremony's order, or about
    /// a holder or card the plan does not have, or repeating one already recorded.
    #[error("transcript.txt record {seq} ({kind}): {reason}")]
    BadRecord {
        /// The record's sequence number, 1-based.
        seq: u32,
        /// The record's kind.
        kind: &'static str,
        /// What is wrong with it.
        reason: String,
    },
}

fn invalid(path: &str, reason: impl Into<String>) -> Failure {
    Failure::Invalid {
        path: path.to_string(),
        reason: reason.into(),
    }
}

fn mismatch(
    what: impl Into<String>,
    expected_from: impl Into<String>,
    expected: impl Into<String>,
    found: impl Into<String>,
) -> Failure {
    Failure::Mismatch {
        what: what.into(),
        expected_from: expected_from.into(),
        expected: expected.into(),
        found: found.into(),
    }
}

fn bad_record(seq: u32, kind: Kind, reason: impl Into<String>) -> Failure {
    Failure::BadRecord {
        seq,
        kind: kind.name(),
        reason: reason.into(),
    }
}

/// Names a transcript record in messages: `transcript.txt record 12 (location.cert)`.
fn rec_name(seq: u32, kind: Kind) -> String {
    format!("{} record {seq} ({})", paths::TRANSCRIPT, kind.name())
}

/// One typed record and its sequence number.
struct At<'a, T> {
    seq: u32,
    body: &'a T,
}

impl<T> At<'_, T> {
    fn name(&self, kind: Kind) -> String {
        rec_name(self.seq, kind)
    }
}

/// The core's typed records of one kind, in order, with their sequence numbers.
macro_rules! all {
    ($core:expr, $variant:ident) => {
        $core
            .iter()
            .filter_map(|(r, c)| match c {
                CoreRecord::$variant(x) => Some(At {
                    seq: r.seq,
                    body: x,
                }),
                _ => None,
            })
            .collect::<Vec<At<'_, record::$variant>>>()
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

/// The ceremony's order of the core's record kinds: the steps of [`crate::flow::Step`] as the
/// phase types of [`crate::ceremony`] write them. Records must appear with non-decreasing
/// places. `None`: a kind that may appear at any place before `ceremony.end` (the witnesses
/// confirm several steps). Callers' notes (attestation, entropy) are not core records and have
/// no place here.
///
/// Every kind is listed without a wildcard, so a new core kind must be given its place.
fn phase_place(kind: Kind) -> Option<u8> {
    match kind {
        // Plan: read, shown, hashed.
        Kind::CeremonyPlan => Some(0),
        Kind::PlanHash => Some(1),
        // Keys: the root key, the location keys, the sealed shares.
        Kind::RootFingerprint => Some(2),
        Kind::LocationCert => Some(3),
        Kind::ShareSealed => Some(4),
        // Cards, then the PIN files once every card is done.
        Kind::CardProvisioned => Some(5),
        Kind::PinsSealed => Some(6),
        // Verify.
        Kind::VerifySubsets => Some(7),
        Kind::VerifySelfTest => Some(8),
        // What the second implementations checked, once every check is done.
        Kind::DualShamir => Some(9),
        Kind::DualSignatures => Some(10),
        Kind::DualFingerprint => Some(11),
        // Write: the outputs are listed, then the transcript ends.
        Kind::OutputFile => Some(12),
        Kind::CeremonyEnd => Some(13),
        Kind::WitnessConfirm => None,
    }
}

/// Checks the core records' order ([`phase_place`]); the first record out of place.
fn check_order(core: &[(&transcript::Record, CoreRecord)]) -> Result<(), Failure> {
    let mut last: Option<(u8, Kind)> = None;
    for (r, c) in core {
        let kind = c.kind();
        let Some(place) = phase_place(kind) else {
            continue;
        };
        if let Some((before, before_kind)) = last
            && place < before
        {
            return Err(bad_record(
                r.seq,
                kind,
                format!(
                    "out of the ceremony's order: it comes after a {} record",
                    before_kind.name()
                ),
            ));
        }
        if last.is_none_or(|(before, _)| place > before) {
            last = Some((place, kind));
        }
    }
    Ok(())
}

/// What `verify.subsets` must say for N holders and threshold M: the ceremony checks every
/// M-subset up to [`recombine::EXHAUSTIVE_BOUND`], and above it the N cyclic windows plus
/// [`recombine::RANDOM_SUBSETS`] random subsets (`recombine::verify_subsets`).
fn expected_subsets(n: u8, m: u8) -> (u128, usize, SubsetPolicy) {
    let total = recombine::binomial(u64::from(n), u64::from(m));
    if total <= recombine::EXHAUSTIVE_BOUND {
        let all = usize::try_from(total).expect("at most EXHAUSTIVE_BOUND");
        (total, all, SubsetPolicy::All)
    } else {
        (
            total,
            usize::from(n) + recombine::RANDOM_SUBSETS,
            SubsetPolicy::CyclicWindowsRandom,
        )
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
/// key, Cv25519, no secret key material. Returns that key's fingerprint.
pub(crate) fn check_location_cert(cert: &Cert, time_unix: u32) -> Result<String, String> {
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
            Ok(k.fingerprint().to_hex())
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
    let root_rec = one(all!(core, RootFingerprint), Kind::RootFingerprint)?;
    let root_fpr = root_rec.body.0.0.clone();
    let root_bytes = get(paths::ROOT_CERT)?;
    let root_cert =
        Cert::from_bytes(&root_bytes).map_err(|e| invalid(paths::ROOT_CERT, format!("{e:#}")))?;
    if root_cert.is_tsk() {
        return Err(invalid(paths::ROOT_CERT, "contains secret key material"));
    }
    if root_cert.fingerprint().to_hex() != root_fpr {
        return Err(mismatch(
            format!("root certificate fingerprint ({})", paths::ROOT_CERT),
            root_rec.name(Kind::RootFingerprint),
            &root_fpr,
            root_cert.fingerprint().to_hex(),
        ));
    }
    check_root_cert(&root_cert).map_err(|e| invalid(paths::ROOT_CERT, e))?;
    let sig = get(paths::TRANSCRIPT_SIG)?;
    let signed_at =
        transcript::verify_signature(&root_cert, &transcript_bytes, &sig).map_err(|source| {
            Failure::Transcript {
                path: paths::TRANSCRIPT_SIG.into(),
                source,
            }
        })?;

    // 3. The records in the ceremony's order, the once-only ones once.
    check_order(&core)?;
    let plan_rec = one(all!(core, CeremonyPlan), Kind::CeremonyPlan)?;
    let plan_hash_rec = one(all!(core, PlanHash), Kind::PlanHash)?;
    let subsets = one(all!(core, VerifySubsets), Kind::VerifySubsets)?;
    one(all!(core, VerifySelfTest), Kind::VerifySelfTest)?;
    let end = one(all!(core, CeremonyEnd), Kind::CeremonyEnd)?;

    // 4. Every output file the transcript lists, by size and hash; ceremony.end counts them.
    let mut listed: HashMap<String, Vec<u8>> = HashMap::new();
    let outputs = all!(core, OutputFile);
    for r in &outputs {
        let path = r.body.path.as_str();
        let bytes = get(path)?;
        let digest = kdf::sha256(&bytes);
        if r.body.sha256.0 != digest {
            return Err(mismatch(
                format!("SHA-256 of {path}"),
                r.name(Kind::OutputFile),
                r.body.sha256.to_string(),
                hex::encode(&digest),
            ));
        }
        if r.body.size != bytes.len() {
            return Err(mismatch(
                format!("size of {path}"),
                r.name(Kind::OutputFile),
                r.body.size.to_string(),
                bytes.len().to_string(),
            ));
        }
        if listed.insert(path.to_string(), bytes).is_some() {
            return Err(bad_record(
                r.seq,
                Kind::OutputFile,
                format!("{path} is listed twice"),
            ));
        }
    }
    if end.body.files != outputs.len() {
        return Err(mismatch(
            "number of output.file records",
            end.name(Kind::CeremonyEnd),
            end.body.files.to_string(),
            outputs.len().to_string(),
        ));
    }
    let listed_get = |path: &str| {
        listed
            .get(path)
            .ok_or_else(|| Failure::MissingRecord(format!("no output.file record for {path}")))
    };

    // 5. The plan, by its canonical hash; ceremony.plan states it.
    let plan_text = String::from_utf8(listed_get(paths::PLAN)?.clone())
        .map_err(|_| invalid(paths::PLAN, "not UTF-8"))?;
    let plan = Plan::parse(&plan_text).map_err(|e| invalid(paths::PLAN, e.to_string()))?;
    let plan_hash = hex::encode(&plan.hash());
    if plan_hash_rec.body.0.to_string() != plan_hash {
        return Err(mismatch(
            format!("canonical hash of {}", paths::PLAN),
            plan_hash_rec.name(Kind::PlanHash),
            plan_hash_rec.body.0.to_string(),
            &plan_hash,
        ));
    }
    // The root key's signature over the transcript is dated the plan time (transcript.md).
    if signed_at != Some(u64::from(plan.time_unix)) {
        return Err(mismatch(
            format!("creation time of {}", paths::TRANSCRIPT_SIG),
            paths::PLAN,
            plan.time_unix.to_string(),
            signed_at.map_or_else(|| "none".to_string(), |t| t.to_string()),
        ));
    }
    let summary = plan.summary();
    let stated = plan_rec.body;
    for (field, recorded, from_plan) in [
        ("id", stated.id.clone(), summary.ceremony_id.clone()),
        ("time", stated.time.clone(), summary.time_rfc3339.clone()),
        (
            "threshold",
            stated.threshold.to_string(),
            plan.threshold.to_string(),
        ),
        (
            "holders",
            stated.holders.to_string(),
            plan.holders.len().to_string(),
        ),
        (
            "witnesses",
            stated.witnesses.to_string(),
            plan.witnesses.len().to_string(),
        ),
    ] {
        if recorded != from_plan {
            return Err(mismatch(
                format!("{} {field}=", plan_rec.name(Kind::CeremonyPlan)),
                paths::PLAN,
                from_plan,
                recorded,
            ));
        }
    }

    // 6. The shard file against the plan and the transcript.
    let shard_text = String::from_utf8(listed_get(paths::SHARDS)?.clone())
        .map_err(|_| invalid(paths::SHARDS, "not UTF-8"))?;
    let shards =
        ShardFile::parse(&shard_text).map_err(|e| invalid(paths::SHARDS, e.to_string()))?;
    let checks = [
        (
            "ceremony_id",
            paths::PLAN.to_string(),
            shards.ceremony_id.clone(),
            plan.ceremony_id.clone(),
        ),
        (
            "plan_hash",
            format!("{} (canonical hash)", paths::PLAN),
            hex::encode(&shards.plan_hash),
            plan_hash.clone(),
        ),
        (
            "threshold",
            paths::PLAN.to_string(),
            shards.threshold.to_string(),
            plan.threshold.to_string(),
        ),
        (
            "count",
            format!("{} (number of holders)", paths::PLAN),
            shards.count.to_string(),
            plan.holder_count().to_string(),
        ),
        (
            "key_time",
            paths::PLAN.to_string(),
            shards.key_time.to_string(),
            plan.time_unix.to_string(),
        ),
        (
            "root_fingerprint",
            root_rec.name(Kind::RootFingerprint),
            shards.root_fingerprint().to_hex(),
            root_fpr.clone(),
        ),
    ];
    for (name, from, found, expected) in checks {
        if found != expected {
            return Err(mismatch(
                format!("{} {name}", paths::SHARDS),
                from,
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
    // The location certificate of each holder, as shards.toml gives it and a location.cert
    // record states it: (its fingerprint, where it was stated).
    let mut location_of: HashMap<u8, (String, String)> = HashMap::new();
    for ((s, rec), loc) in shards.shares.iter().zip(&sealed).zip(&locations) {
        let h = plan.holder(s.index).expect("indices checked against count");
        if s.holder != h.name {
            return Err(mismatch(
                format!("{} share {} holder name", paths::SHARDS, s.index),
                paths::PLAN,
                &h.name,
                &s.holder,
            ));
        }
        for (seq, kind, holder) in [
            (rec.seq, Kind::ShareSealed, rec.body.holder),
            (loc.seq, Kind::LocationCert, loc.body.holder),
        ] {
            if holder != s.index {
                return Err(bad_record(
                    seq,
                    kind,
                    format!(
                        "holder={holder} where share {} of {} is, in plan order",
                        s.index,
                        paths::SHARDS
                    ),
                ));
            }
        }
        let digest = s.message_sha256();
        if rec.body.sha256.0 != digest {
            return Err(mismatch(
                format!("{} share {} ciphertext SHA-256", paths::SHARDS, s.index),
                rec.name(Kind::ShareSealed),
                rec.body.sha256.to_string(),
                hex::encode(&digest),
            ));
        }
        let subkey = check_location_cert(&s.location_cert, plan.time_unix).map_err(|e| {
            invalid(
                paths::SHARDS,
                format!("share {}: location certificate: {e}", s.index),
            )
        })?;
        let fpr = s.location_cert.fingerprint().to_hex();
        if loc.body.fingerprint.0 != fpr {
            return Err(mismatch(
                format!(
                    "{} share {} location certificate fingerprint",
                    paths::SHARDS,
                    s.index
                ),
                loc.name(Kind::LocationCert),
                loc.body.fingerprint.to_string(),
                fpr,
            ));
        }
        if loc.body.subkey.0 != subkey {
            return Err(mismatch(
                format!(
                    "{} share {} location certificate encryption subkey",
                    paths::SHARDS,
                    s.index
                ),
                loc.name(Kind::LocationCert),
                loc.body.subkey.to_string(),
                subkey,
            ));
        }
        location_of.insert(
            s.index,
            (
                fpr,
                format!(
                    "{} and {} share {}",
                    loc.name(Kind::LocationCert),
                    paths::SHARDS,
                    s.index
                ),
            ),
        );
    }

    // 7. PIN files: listed, hashed, and encrypted to exactly the holder's and backup's keys;
    // pins.sealed names exactly those personal certificates.
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
        if rec.body.holder != h.index {
            return Err(bad_record(
                rec.seq,
                Kind::PinsSealed,
                format!(
                    "holder={} where holder {} is, in the order of {}",
                    rec.body.holder,
                    h.index,
                    paths::PLAN
                ),
            ));
        }
        let backup = plan.holder(h.backup).expect("validated");
        let certs: Vec<&plan::PersonalCert> = h.certs.iter().chain(&backup.certs).collect();
        let planned: Vec<String> = certs.iter().map(|c| c.fingerprint.to_hex()).collect();
        let recorded: Vec<String> = rec.body.recipients.iter().map(|f| f.0.clone()).collect();
        if recorded != planned {
            return Err(mismatch(
                format!("{} recipients", rec.name(Kind::PinsSealed)),
                format!(
                    "{} (personal certificates of holder {}, then of backup holder {})",
                    paths::PLAN,
                    h.index,
                    backup.index
                ),
                planned.join(","),
                recorded.join(","),
            ));
        }
        let path = paths::pin_file(h.index);
        let bytes = listed_get(&path)?;
        let digest = kdf::sha256(bytes);
        if rec.body.sha256.0 != digest {
            return Err(mismatch(
                format!("SHA-256 of {path}"),
                rec.name(Kind::PinsSealed),
                rec.body.sha256.to_string(),
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
        let expected: BTreeSet<String> = certs
            .iter()
            .flat_map(|c| plan::encryption_keys(&c.cert, time))
            .map(|k| k.keyid().to_hex())
            .collect();
        if found != expected {
            return Err(mismatch(
                format!("recipient key IDs of {path}"),
                format!(
                    "{} (encryption keys of holder {}'s and backup holder {}'s personal certificates)",
                    paths::PLAN,
                    h.index,
                    backup.index
                ),
                expected.into_iter().collect::<Vec<_>>().join(","),
                found.into_iter().collect::<Vec<_>>().join(","),
            ));
        }
    }

    // 8. Cards: exactly the planned cards provisioned (none the plan does not call for, none
    // twice), each with its holder's location key, no serial twice. (A card.provisioned
    // record says test-decrypt=ok by its type: any other value is refused when the transcript
    // is read.)
    let mut seen: HashMap<(u8, u8), u32> = HashMap::new();
    let mut serials: HashMap<&str, u32> = HashMap::new();
    for rec in all!(core, CardProvisioned) {
        let r = rec.body;
        let planned = plan
            .holder(r.holder)
            .is_some_and(|h| (1..=h.cards).contains(&r.card));
        if !planned {
            return Err(bad_record(
                rec.seq,
                Kind::CardProvisioned,
                format!(
                    "holder {} card {} is not a card {} calls for",
                    r.holder,
                    r.card,
                    paths::PLAN
                ),
            ));
        }
        if let Some(first) = seen.insert((r.holder, r.card), rec.seq) {
            return Err(bad_record(
                rec.seq,
                Kind::CardProvisioned,
                format!(
                    "holder {} card {} was already provisioned in record {first}",
                    r.holder, r.card
                ),
            ));
        }
        if let Some(first) = serials.insert(r.serial.as_str(), rec.seq) {
            return Err(bad_record(
                rec.seq,
                Kind::CardProvisioned,
                format!(
                    "card serial {} was already used in record {first}",
                    r.serial
                ),
            ));
        }
        let (fpr, from) = location_of
            .get(&r.holder)
            .expect("every planned holder has a share and a location.cert record");
        if r.location.0 != *fpr {
            return Err(mismatch(
                format!("{} location=", rec.name(Kind::CardProvisioned)),
                from,
                fpr,
                r.location.to_string(),
            ));
        }
    }
    let mut cards = 0;
    for h in &plan.holders {
        for c in 1..=h.cards {
            if !seen.contains_key(&(h.index, c)) {
                return Err(Failure::MissingRecord(format!(
                    "holder {} card {c} was never provisioned ({} calls for {} cards)",
                    h.index,
                    paths::PLAN,
                    h.cards
                )));
            }
            cards += 1;
        }
    }

    // 9. The verification steps: every M-subset recombined (or the stated sample), for this
    // plan's N and M; the self-test's result=ok by its type.
    let (total, checked, policy) = expected_subsets(plan.holder_count(), plan.threshold);
    let s = subsets.body;
    let total_text = |t: u128| record::SubsetTotal(t).to_field();
    for (field, expected, found) in [
        ("total", total_text(total), total_text(s.total.0)),
        ("policy", policy.to_field(), s.policy.to_field()),
        ("checked", checked.to_string(), s.checked.to_string()),
    ] {
        if expected != found {
            return Err(mismatch(
                format!("{} {field}=", subsets.name(Kind::VerifySubsets)),
                format!(
                    "{} (N={}, M={}: C(N, M) = {}; every subset up to {}, else N windows + {} random)",
                    paths::PLAN,
                    plan.holder_count(),
                    plan.threshold,
                    total_text(total),
                    recombine::EXHAUSTIVE_BOUND,
                    recombine::RANDOM_SUBSETS
                ),
                expected,
                found,
            ));
        }
    }

    let dual = check_dual(&t, &core, &plan, s.checked)?;

    let (quote, outcome) = check_quote(&t, &plan, plan_hash_rec.seq, root_rec.seq)?;
    let boot = check_boot(&t, &plan, outcome.as_ref(), root_rec.seq)?;
    if let (QuoteCheck::Failed { why, .. }, BootCheck::NotRecorded) = (&quote, &boot) {
        // Before verdicts were recorded, a quote that does not verify had no deviation.
        return Err(Failure::MissingRecord(format!(
            "the TPM quote does not verify ({why}) and no attest.deviation \
             records why the ceremony went on"
        )));
    }
    let entropy = check_entropy(&t, &plan, plan_hash_rec.seq, root_rec.seq)?;
    let witnesses = check_witness_signatures(read, &plan, &transcript_bytes)?;

    Ok(Report {
        entropy,
        quote,
        witnesses,
        boot,
        dual,
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

/// Check 15: in format 3, `dual.shamir`, `dual.signatures` and `dual.fingerprint` once each
/// (their place is checked with the others'), with the counts this plan's ceremony makes: one
/// split into N shares and at least `subsets_checked` + 1 combinations (every M-subset checked,
/// and the recombination of the cards' decryptions, which may try several); 2N + 4 root
/// signatures (the certificate's 3 self-signatures, N envelopes, N PIN files, the self-test);
/// 2N + 2 fingerprints (root and location certificates, primary and subkey each) and 2 HKDF
/// outputs. Earlier formats have none and are reported as not recorded.
fn check_dual(
    t: &Transcript,
    core: &[(&transcript::Record, CoreRecord)],
    plan: &Plan,
    subsets_checked: usize,
) -> Result<DualCheck, Failure> {
    if t.format() != transcript::Format::V3 {
        return Ok(DualCheck::NotRecorded(t.format().header()));
    }
    let shamir = all!(core, DualShamir);
    let signatures = all!(core, DualSignatures);
    let fingerprints = all!(core, DualFingerprint);
    let missing: Vec<&str> = [
        (shamir.is_empty(), Kind::DualShamir),
        (signatures.is_empty(), Kind::DualSignatures),
        (fingerprints.is_empty(), Kind::DualFingerprint),
    ]
    .iter()
    .filter(|(gone, _)| *gone)
    .map(|(_, k)| k.name())
    .collect();
    if !missing.is_empty() {
        return Err(Failure::MissingRecord(format!(
            "no {} record: a {} transcript must record what the second implementations cross-checked",
            missing.join(", "),
            transcript::HEADER
        )));
    }
    let shamir = one(shamir, Kind::DualShamir)?;
    let signatures = one(signatures, Kind::DualSignatures)?;
    let fingerprints = one(fingerprints, Kind::DualFingerprint)?;
    let n = usize::from(plan.holder_count());
    let from = |what: &str| format!("{} (N={n}: {what})", paths::PLAN);
    let expect = |name: String, field: &str, basis: String, expected: usize, found: usize| {
        if expected == found {
            Ok(())
        } else {
            Err(mismatch(
                format!("{name} {field}="),
                basis,
                expected.to_string(),
                found.to_string(),
            ))
        }
    };
    let sh = shamir.body;
    expect(
        shamir.name(Kind::DualShamir),
        "splits",
        from("one split"),
        1,
        sh.splits,
    )?;
    expect(
        shamir.name(Kind::DualShamir),
        "shares",
        from("one share per holder"),
        n,
        sh.shares,
    )?;
    if sh.combinations <= subsets_checked {
        return Err(bad_record(
            shamir.seq,
            Kind::DualShamir,
            format!(
                "combinations={}, but verify.subsets checked {subsets_checked} subsets and the cards' decryptions were recombined too: at least {}",
                sh.combinations,
                subsets_checked + 1
            ),
        ));
    }
    expect(
        signatures.name(Kind::DualSignatures),
        "checks",
        from("3 self-signatures, N envelopes, N PIN files, the self-test: 2N + 4"),
        2 * n + 4,
        signatures.body.checks,
    )?;
    let fp = fingerprints.body;
    expect(
        fingerprints.name(Kind::DualFingerprint),
        "checks",
        from("primary key and subkey of the root and of each location certificate: 2N + 2"),
        2 * n + 2,
        fp.checks,
    )?;
    expect(
        fingerprints.name(Kind::DualFingerprint),
        "hkdf",
        from("the root primary seed and subkey scalar: 2"),
        2,
        fp.hkdf,
    )?;
    Ok(DualCheck::Checked {
        shamir: (sh.second.clone(), sh.combinations),
        signatures: (signatures.body.second.clone(), signatures.body.checks),
        fingerprints: (fp.second.clone(), fp.checks, fp.hkdf),
    })
}

fn bad_note(seq: u32, kind: &'static str, reason: impl Into<String>) -> Failure {
    Failure::BadRecord {
        seq,
        kind,
        reason: reason.into(),
    }
}

/// One entropy record's fields, each read once: a repeated key is refused.
struct NoteFields {
    seq: u32,
    kind: &'static str,
    fields: record::Fields,
}

impl NoteFields {
    fn parse(r: &transcript::Record, kind: &'static str) -> Result<Self, Failure> {
        let fields = record::Fields::parse(kind, &r.value)
            .map_err(|e| bad_note(r.seq, kind, e.to_string()))?;
        let mut seen = BTreeSet::new();
        for (k, _) in fields.pairs() {
            if !seen.insert(k.as_str()) {
                return Err(bad_note(r.seq, kind, format!("field {k} appears twice")));
            }
        }
        Ok(NoteFields {
            seq: r.seq,
            kind,
            fields,
        })
    }

    fn get(&self, key: &str) -> Result<&str, Failure> {
        self.fields
            .get(key)
            .ok_or_else(|| bad_note(self.seq, self.kind, format!("has no {key}= field")))
    }

    fn flag(&self, key: &str) -> Result<bool, Failure> {
        match self.get(key)? {
            "true" => Ok(true),
            "false" => Ok(false),
            v => Err(bad_note(
                self.seq,
                self.kind,
                format!("{key}={v:?}: expected true or false"),
            )),
        }
    }

    fn number(&self, key: &str) -> Result<u64, Failure> {
        let v = self.get(key)?;
        v.parse().map_err(|_| {
            bad_note(
                self.seq,
                self.kind,
                format!("{key}={v:?}: expected a whole number"),
            )
        })
    }
}

/// The entropy records against the policy: they come after the plan and before the root key
/// was made; one `entropy.mixer` with the mixer's context; the kernel CSPRNG healthy; enough
/// counted sources, each healthy and committed, and, when `entropy.policy` is recorded, each
/// credited enough and not virtual unless the plan allowed virtual hardware.
fn check_entropy(
    t: &Transcript,
    plan: &Plan,
    plan_hash_seq: u32,
    root_seq: u32,
) -> Result<EntropyReport, Failure> {
    const SOURCE: &str = "entropy.source";
    const POLICY: &str = "entropy.policy";
    const MIXER: &str = "entropy.mixer";
    let of = |kind: &'static str| -> Result<Vec<NoteFields>, Failure> {
        t.records()
            .iter()
            .filter(|r| r.kind == kind)
            .map(|r| {
                if r.seq < plan_hash_seq || r.seq > root_seq {
                    return Err(bad_note(
                        r.seq,
                        kind,
                        "outside the entropy step: entropy records come after plan.hash and \
                         before root.fingerprint",
                    ));
                }
                NoteFields::parse(r, kind)
            })
            .collect()
    };
    if t.format() == transcript::Format::V1 {
        return Ok(EntropyReport {
            counted: Vec::new(),
            virtual_allowed: false,
            counted_virtual: Vec::new(),
            basis: EntropyBasis::NotChecked,
        });
    }
    let sources = of(SOURCE)?;
    let policies = of(POLICY)?;
    let mixers = of(MIXER)?;

    let mixer = match mixers.as_slice() {
        [m] => m,
        [] => {
            return Err(Failure::MissingRecord(format!(
                "no {MIXER} record: the entropy step did not finish"
            )));
        }
        [_, second, ..] => {
            return Err(bad_note(second.seq, MIXER, "a second entropy.mixer record"));
        }
    };
    if mixer.get("context")? != MIX_CONTEXT {
        return Err(mismatch(
            "mixer context",
            format!("sherd-verify (the entropy mixer's context, {MIX_CONTEXT:?})"),
            MIX_CONTEXT,
            mixer.get("context")?,
        ));
    }
    if !sources
        .iter()
        .try_fold(false, |ok, s| -> Result<bool, Failure> {
            Ok(ok || (s.get("source")? == "os-csprng" && s.flag("healthy")?))
        })?
    {
        return Err(Failure::MissingRecord(format!(
            "no healthy os-csprng {SOURCE} record: the kernel CSPRNG is always \
             mixed in"
        )));
    }

    let policy = match policies.as_slice() {
        [] => None,
        [p] => Some(p),
        [_, second, ..] => {
            return Err(bad_note(
                second.seq,
                POLICY,
                "a second entropy.policy record",
            ));
        }
    };
    let (required, min_bits, virtual_allowed) = match policy {
        Some(p) => {
            let required = p.number("hardware-sources")?;
            let bits = p.number("credited-bits")?;
            if required < 2 || bits < 320 {
                return Err(bad_note(
                    p.seq,
                    POLICY,
                    format!(
                        "hardware-sources={required} credited-bits={bits}: below the \
                         ceremony's minimum of 2 sources of 320 bits each"
                    ),
                ));
            }
            let allowed = p.flag("allow-virtual-hardware")?;
            if allowed != plan.allow_virtual_hardware {
                return Err(mismatch(
                    "allow-virtual-hardware",
                    paths::PLAN,
                    plan.allow_virtual_hardware.to_string(),
                    allowed.to_string(),
                ));
            }
            (required, bits, allowed)
        }
        None => (2, 0, false),
    };

    let mut counted = Vec::new();
    let mut counted_virtual = Vec::new();
    for s in &sources {
        if !s.flag("counted")? {
            continue;
        }
        let identity = s.get("identity")?.to_string();
        let problem = if s.get("source")? == "os-csprng" {
            Some("the kernel CSPRNG is never counted as hardware".to_string())
        } else if !s.flag("healthy")? {
            Some("counted but not healthy".into())
        } else if s.get("commitment")? == "none" {
            Some("counted but not committed to".into())
        } else if policy.is_some() && s.number("credited-bits")? < min_bits {
            Some(format!(
                "counted with credited-bits={} below the policy's {min_bits}",
                s.get("credited-bits")?
            ))
        } else if policy.is_some() && s.get("virtual")? != "no" && !virtual_allowed {
            Some(format!(
                "counted, but virtual ({}) and the plan does not allow virtual hardware",
                s.get("virtual")?
            ))
        } else {
            None
        };
        if let Some(p) = problem {
            return Err(bad_note(s.seq, SOURCE, format!("{identity}: {p}")));
        }
        if policy.is_some() && s.get("virtual")? != "no" {
            counted_virtual.push(identity.clone());
        }
        counted.push(identity);
    }
    if (counted.len() as u64) < required {
        return Err(Failure::MissingRecord(format!(
            "{} entropy source(s) counted as independent hardware, {required} \
             required",
            counted.len()
        )));
    }
    Ok(EntropyReport {
        counted,
        virtual_allowed,
        counted_virtual,
        basis: if policy.is_some() {
            EntropyBasis::Policy
        } else {
            EntropyBasis::CountsOnly
        },
    })
}

/// Check 11: each witness's signature file, when present (or always, when the plan requires
/// them), is a good signature over the exact bytes of `transcript.txt` by one of that witness's
/// certificates in the plan ([`crate::witness::verify_signature`]).
fn check_witness_signatures(
    read: &dyn Fn(&str) -> io::Result<Vec<u8>>,
    plan: &Plan,
    transcript: &[u8],
) -> Result<WitnessReport, Failure> {
    let mut report = WitnessReport {
        signed: Vec::new(),
        not_signed: Vec::new(),
        certificates_given: plan.witness_certs.iter().any(|c| !c.is_empty()),
        required: plan.require_witness_signatures,
    };
    for (i, (name, certs)) in plan.witnesses.iter().zip(&plan.witness_certs).enumerate() {
        let k = i + 1;
        let path = paths::witness_signature(k);
        let bytes = match read(&path) {
            Ok(b) => b,
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                if plan.require_witness_signatures {
                    return Err(Failure::MissingWitnessSignature {
                        path,
                        plan: paths::PLAN,
                        witness: k,
                        name: name.clone(),
                    });
                }
                report.not_signed.push(name.clone());
                continue;
            }
            Err(source) => return Err(Failure::Unreadable { path, source }),
        };
        if certs.is_empty() {
            return Err(invalid(
                &path,
                format!(
                    "witness {k} ({name}) has no certificate in {}: a signature by them cannot be                      checked",
                    paths::PLAN
                ),
            ));
        }
        crate::witness::verify_signature(certs, transcript, &bytes, plan.time_unix).map_err(
            |e| {
                invalid(
                    &path,
                    format!(
                        "not a good signature of witness {k} ({name}) over {}: {e}",
                        paths::TRANSCRIPT
                    ),
                )
            },
        )?;
        report.signed.push(name.clone());
    }
    Ok(report)
}

/// The `tpm.quote` record, if any: between `plan.hash` and `root.fingerprint`, at most one;
/// a quote must verify against the plan hash and the PCR values recorded at the attestation.
fn check_quote(
    t: &Transcript,
    plan: &Plan,
    plan_hash_seq: u32,
    root_seq: u32,
) -> Result<(QuoteCheck, Option<attest::QuoteOutcome>), Failure> {
    const QUOTE: &str = "tpm.quote";
    let quotes: Vec<&transcript::Record> = t.records().iter().filter(|r| r.kind == QUOTE).collect();
    let r = match quotes.as_slice() {
        [] => return Ok((QuoteCheck::NotRecorded, None)),
        [r] => *r,
        [_, second, ..] => return Err(bad_note(second.seq, QUOTE, "a second tpm.quote record")),
    };
    if t.format() == transcript::Format::V1 {
        return Ok((QuoteCheck::NotRecorded, None));
    }
    if r.seq < plan_hash_seq || r.seq > root_seq {
        return Err(bad_note(
            r.seq,
            QUOTE,
            "outside its place: the quote is made after plan.hash and before root.fingerprint",
        ));
    }
    let f = NoteFields::parse(r, QUOTE)?;
    if let Some(why) = f.fields.get("none") {
        return Ok((
            QuoteCheck::NotMade(why.to_string()),
            Some(attest::QuoteOutcome::NotMade(why.to_string())),
        ));
    }
    let bytes = |key: &str| -> Result<Vec<u8>, Failure> {
        let v = f.get(key)?;
        hex::decode(v).ok_or_else(|| bad_note(r.seq, QUOTE, format!("{key}= is not hex")))
    };
    let ek_cert = match f.get("ek-cert")? {
        "none" => None,
        _ => Some(bytes("ek-cert")?),
    };
    let quote = tpm_quote::Quote {
        attest: bytes("attest")?,
        signature: bytes("signature")?,
        ak_public: bytes("ak-public")?,
        ek_cert,
    };
    // The PCR values the attestation recorded, all eight (`value=none` without a TPM).
    let mut pcrs: [Option<[u8; 32]>; 8] = [None; 8];
    for (i, slot) in pcrs.iter_mut().enumerate() {
        let kind = format!("tpm.pcr{i}-sha256");
        let rec = t.records().iter().find(|x| x.kind == kind).ok_or_else(|| {
            Failure::MissingRecord(format!(
                "a TPM quote but no {kind} record to check it against"
            ))
        })?;
        let value = record::Fields::parse(&kind, &rec.value)
            .ok()
            .and_then(|p| p.get("value").map(str::to_owned))
            .ok_or_else(|| {
                Failure::MissingRecord(format!("record {}: {kind} has no value=", rec.seq))
            })?;
        if value != "none" {
            *slot = Some(hexstr::decode_array(&value).ok_or_else(|| {
                bad_note(
                    rec.seq,
                    "tpm.pcr<N>-sha256",
                    "value= is not 32 bytes of hex",
                )
            })?);
        }
    }
    let ak_name = f.get("ak-name")?;
    let computed = tpm_quote::ak_name(&quote.ak_public);
    if ak_name != computed {
        return Err(mismatch(
            "attestation key name",
            "the key in tpm.quote ak-public=",
            computed,
            ak_name,
        ));
    }
    // The same judgement the ceremony made (check 14 compares it with attest.verdicts).
    let (outcome, report) =
        attest::QuoteOutcome::judge_with_report(Ok(&quote), &plan.hash(), &pcrs);
    let check = match (&outcome, report) {
        (_, Some(report)) => QuoteCheck::Verified {
            firmware: report.firmware_version_text(),
            ak_name: report.ak_name,
            ek_cert: quote.ek_cert.is_some(),
        },
        (attest::QuoteOutcome::Invalid { why, .. }, None) => QuoteCheck::Failed {
            ak_name: computed,
            why: why.clone(),
        },
        // A recorded quote is always judged Verified or Invalid.
        (_, None) => QuoteCheck::Failed {
            ak_name: computed,
            why: "not judged".into(),
        },
    };
    Ok((check, Some(outcome)))
}

/// Check 14: the boot judged against the plan. When `attest.verdicts` is recorded (once, after
/// `tpm.quote` and before `root.fingerprint`), the verdicts are recomputed with
/// [`attest::judge`] from the eight `tpm.pcr<N>-sha256` records, the plan's `[machine]` table
/// and the quote, and must be the recorded ones, field for field; the attestation's own
/// verdicts must follow Heads' rules (PASS exactly when the value is Heads' value); and when an
/// item is not PASS, one `attest.deviation` right after must list exactly those items with
/// their values, and a reason.
fn check_boot(
    t: &Transcript,
    plan: &Plan,
    quote: Option<&attest::QuoteOutcome>,
    root_seq: u32,
) -> Result<BootCheck, Failure> {
    let of_kind = |kind: &str| -> Vec<&transcript::Record> {
        t.records().iter().filter(|r| r.kind == kind).collect()
    };
    let verdict_recs = of_kind(attest::VERDICTS);
    let deviations = of_kind(attest::DEVIATION);
    let r = match verdict_recs.as_slice() {
        [] => {
            return match deviations.first() {
                Some(d) => Err(bad_note(
                    d.seq,
                    attest::DEVIATION,
                    "a deviation without attest.verdicts",
                )),
                None => Ok(BootCheck::NotRecorded),
            };
        }
        [r] => *r,
        [_, second, ..] => {
            return Err(bad_note(
                second.seq,
                attest::VERDICTS,
                "a second attest.verdicts record",
            ));
        }
    };
    let quote_seq = t
        .records()
        .iter()
        .find(|x| x.kind == "tpm.quote")
        .map(|x| x.seq);
    let (Some(quote), Some(quote_seq)) = (quote, quote_seq) else {
        return Err(bad_note(
            r.seq,
            attest::VERDICTS,
            "no tpm.quote record before it: the verdicts judge the quote",
        ));
    };
    if r.seq != quote_seq + 1 || r.seq > root_seq {
        return Err(bad_note(
            r.seq,
            attest::VERDICTS,
            "outside its place: right after tpm.quote, before root.fingerprint",
        ));
    }

    // The attestation's readings, and its own verdicts by Heads' rules.
    let mut readings = Vec::with_capacity(8);
    for i in 0..8u8 {
        let kind = format!("tpm.pcr{i}-sha256");
        let rec = t
            .records()
            .iter()
            .find(|x| x.kind == kind)
            .ok_or_else(|| Failure::MissingRecord(format!("no {kind} record")))?;
        let f = NoteFields::parse(rec, "tpm.pcr<N>-sha256")?;
        let value = match f.get("value")? {
            "none" => None,
            v => Some(hexstr::decode_array::<32>(v).ok_or_else(|| {
                bad_note(
                    rec.seq,
                    "tpm.pcr<N>-sha256",
                    "value= is not 32 bytes of hex",
                )
            })?),
        };
        let verdict = attest::Verdict::from_word(f.get("verdict")?).ok_or_else(|| {
            bad_note(
                rec.seq,
                "tpm.pcr<N>-sha256",
                "verdict= is not PASS, FAIL or UNKNOWN",
            )
        })?;
        let heads = heads_config::attest::heads_value(i);
        let is_heads = value.is_some() && value == heads;
        if (verdict == attest::Verdict::Pass) != is_heads {
            return Err(bad_note(
                rec.seq,
                "tpm.pcr<N>-sha256",
                format!(
                    "verdict={verdict}, but by Heads' rules PCR{i} is PASS exactly when it \
                     holds Heads' value{}",
                    if heads.is_none() {
                        " and it has none (board-specific)"
                    } else {
                        ""
                    }
                ),
            ));
        }
        readings.push(attest::Reading { value, verdict });
    }
    let readings: [attest::Reading; 8] = readings.try_into().expect("eight");

    let expected = attest::judge(&readings, plan.machine.as_ref(), quote);
    let want = expected.note().encode();
    if r.value != want {
        return Err(mismatch(
            "boot verdicts",
            "the PCR values recorded at the attestation, the plan's [machine] table and the quote",
            want,
            r.value.clone(),
        ));
    }

    let open = expected.open();
    let deviation = match (open.is_empty(), deviations.as_slice()) {
        (true, []) => None,
        (true, [d, ..]) => {
            return Err(bad_note(
                d.seq,
                attest::DEVIATION,
                "a deviation, but every item is PASS",
            ));
        }
        (false, []) => {
            return Err(Failure::MissingRecord(format!(
                "{} not PASS and no attest.deviation records why the ceremony \
                 went on",
                open.iter()
                    .map(|j| j.item.field())
                    .collect::<Vec<_>>()
                    .join(" ")
            )));
        }
        (false, [d]) => {
            if d.seq != r.seq + 1 {
                return Err(bad_note(
                    d.seq,
                    attest::DEVIATION,
                    "outside its place: right after attest.verdicts",
                ));
            }
            let f = NoteFields::parse(d, attest::DEVIATION)?;
            let reason = f.get("reason")?;
            let checked = attest::check_reason(reason)
                .map_err(|e| bad_note(d.seq, attest::DEVIATION, e.to_string()))?;
            if checked != reason {
                return Err(bad_note(
                    d.seq,
                    attest::DEVIATION,
                    "the reason has leading or trailing spaces",
                ));
            }
            let want = attest::deviation_note(&expected, reason).encode();
            if d.value != want {
                return Err(mismatch(
                    "deviation",
                    "the items not PASS, with their values",
                    want,
                    d.value.clone(),
                ));
            }
            Some((
                open.iter().map(|j| j.item.field()).collect(),
                reason.to_owned(),
            ))
        }
        (false, [_, second, ..]) => {
            return Err(bad_note(
                second.seq,
                attest::DEVIATION,
                "a second attest.deviation record",
            ));
        }
    };
    Ok(BootCheck::Checked {
        machine: expected.machine.clone(),
        verdicts: expected
            .items
            .iter()
            .map(|j| (j.item.field(), j.verdict))
            .collect(),
        deviation,
    })
}

/// Verifies a ceremony folder on disk.
pub fn verify_dir(dir: &Path) -> Result<Report, Failure> {
    verify_with(&folder_reader(dir))
}

/// Reads files of a ceremony folder by the paths its transcript names, refusing any path that
/// could leave the folder (absolute, empty components, `..`).
pub fn folder_reader(dir: &Path) -> impl Fn(&str) -> io::Result<Vec<u8>> + '_ {
    move |p: &str| {
        if p.starts_with('/') || p.split('/').any(|c| c.is_empty() || c == "..") {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "path leaves the folder",
            ));
        }
        std::fs::read(dir.join(p))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rng::tests::seeded;
    use crate::secret::{RootSecret, ShareBytes};
    use crate::shamir;

    /// What the verifier expects is what the ceremony's own subset check reports, exhaustive
    /// and sampled (the sampled case needs C(N, M) > 20,000, too large for a test ceremony).
    #[test]
    fn expected_subsets_are_what_the_ceremony_reports() {
        let secret = RootSecret::generate(&mut seeded(1));
        for (m, n, policy) in [
            (2u8, 3u8, SubsetPolicy::All),
            (3, 6, SubsetPolicy::All),
            (10, 20, SubsetPolicy::CyclicWindowsRandom),
        ] {
            let shares = shamir::split(&secret, m, n, &mut seeded(2)).unwrap();
            let refs: Vec<&ShareBytes> = shares.iter().collect();
            let r = recombine::verify_subsets(&secret, &refs, m, &mut seeded(3)).unwrap();
            assert_eq!(expected_subsets(n, m), (r.total, r.checked, policy));
            assert_eq!(r.exhaustive, policy == SubsetPolicy::All);
        }
        assert_eq!(
            expected_subsets(20, 10),
            (184_756, 1_020, SubsetPolicy::CyclicWindowsRandom)
        );
        assert_eq!(expected_subsets(255, 128).0, u128::MAX);
    }

    /// The places follow the order the phase types write the records in (which is also the
    /// order the kinds are declared in); only witness.confirm has none.
    #[test]
    fn every_core_kind_has_its_place() {
        let placed: Vec<Kind> = Kind::ALL
            .iter()
            .copied()
            .filter(|k| phase_place(*k).is_some())
            .collect();
        assert_eq!(placed.len(), Kind::ALL.len() - 1);
        assert!(
            placed
                .windows(2)
                .all(|w| phase_place(w[0]) < phase_place(w[1]))
        );
        assert_eq!(phase_place(Kind::WitnessConfirm), None);
    }
}
