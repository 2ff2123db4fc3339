//! The offline verifier of a recovery ceremony's output folder, against the generation folder
//! it used: the checks of docs/formats/recovery.md ("Checking a recovery folder by hand", 1-7),
//! in that order, and the first failure. Runs on an ordinary computer (`sherd-verify --recovery
//! <folder> --generation <folder> [--replaced <folder>]...`). A `replace-card` folder gets the
//! checks of its section of docs/formats/recovery.md; a recovery made after replace-card
//! recoveries is checked against the root pinned with their folders
//! ([`verify_recovery_dirs`]).
//!
//! The generation folder is pinned first ([`PinnedRoot`], which runs the generation verifier):
//! every value the recovery folder is compared with comes from there, never from the recovery
//! folder itself. Each file of either folder is read once, so the bytes checked are the bytes
//! compared.

use std::cell::RefCell;
use std::collections::{BTreeSet, HashMap};
use std::io;
use std::path::Path;

use sequoia_openpgp as openpgp;

use openpgp::Cert;
use openpgp::parse::Parse;
use openpgp::types::SignatureType;

use crate::ceremony::paths as gen_paths;
use crate::plan::{self, Plan};
use crate::record::{Body, CeremonyEnd, OutputFile};
use crate::recovery::{Applied, PinError, PinnedRoot};
use crate::recovery_flow::{
    self, RecordsError, RecoveryApproval, RecoveryCard, RecoveryCertified, RecoveryGeneration,
    RecoveryLocation, RecoveryNewCard, RecoveryNewLocation, RecoveryNewPins, RecoveryNewSealed,
    RecoveryNewSubsets, RecoveryOldShares, RecoveryPins, RecoveryPolicy, RecoveryQuorum,
    RecoveryRebuilt, RecoveryRecombined, RecoveryRecord, RecoveryReplaced, RecoveryRequest,
    RecoveryReshare, RecoveryReshared, RecoverySealed, RecoveryShare, RecoverySigned, paths,
};
use crate::request::{Operation, OperationKind, Request};
use crate::shardfile::ShardFile;
use crate::transcript::{self, Transcript, TranscriptError};
use crate::{hex, kdf, words};

/// Reads a file of a folder by its path relative to the folder ('/'-separated).
pub type Read<'a> = &'a dyn Fn(&str) -> io::Result<Vec<u8>>;
/// Lists every file of a folder (recursively) by its path relative to the folder.
pub type List<'a> = &'a dyn Fn() -> io::Result<Vec<String>>;

/// What a passing verification of a recovery folder established.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RecoveryReport {
    /// The generation ceremony's id.
    pub ceremony_id: String,
    /// The operation of each replace-card or reshare folder the root was pinned with, in the
    /// order applied.
    pub applied: Vec<OperationKind>,
    /// The root fingerprint (the generation transcript's `root.fingerprint`), upper-case hex.
    pub root_fingerprint: String,
    /// The generation transcript's final hash, lower-case hex (record 1 links to it).
    pub generation_final_hash: String,
    /// The same as PGP words.
    pub generation_final_words: String,
    /// The request's operation.
    pub operation: OperationKind,
    /// The request's canonical hash, lower-case hex.
    pub request_hash: String,
    /// The same as PGP words (what the witnesses confirmed).
    pub request_words: String,
    /// The request time, RFC 3339.
    pub request_time: String,
    /// What the policy records say, one line.
    pub policy: String,
    /// The holders whose shares were used, in the order they came: index and name.
    pub holders: Vec<(u8, String)>,
    /// The generation plan's threshold M.
    pub threshold: u8,
    /// What the operation produced and how far it was checked, one line each.
    pub operation_lines: Vec<String>,
    /// The files the `output.file` records list, each checked by size and SHA-256.
    pub outputs: Vec<String>,
    /// Records in the recovery transcript.
    pub records: usize,
    /// The recovery transcript's final hash, lower-case hex.
    pub final_hash: String,
    /// The same as PGP words, to compare with what the witnesses wrote down.
    pub final_words: String,
}

/// The first failed check of a recovery folder. Each message says what is wrong and where.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RecoveryVerifyError {
    /// The generation folder does not pass the generation verifier (or could not be pinned).
    #[error("{0}")]
    Generation(PinError),
    /// The folder given as the generation folder is a recovery folder.
    #[error(
        "the generation folder's transcript.txt is a recovery transcript (record 1 is recovery.generation): give the generation ceremony's output folder as the generation folder"
    )]
    GenerationIsRecovery,
    /// A file of the recovery folder could not be read (a path leaving the folder included).
    #[error("{path}: cannot read: {source}")]
    Unreadable {
        /// Path relative to the recovery folder.
        path: String,
        /// The I/O error.
        source: io::Error,
    },
    /// The recovery folder's files could not be listed (or it holds a link or a special file).
    #[error("the recovery folder: cannot list its files: {0}")]
    Unlistable(io::Error),
    /// Check 1: the transcript is malformed or its chain broken.
    #[error("{}: {source}", paths::TRANSCRIPT)]
    Chain {
        /// What the transcript parser refused.
        source: TranscriptError,
    },
    /// Check 1: the transcript's records are not a recovery transcript's (not one, a kind or a
    /// field that is not the format's).
    #[error("{t}: {0}", t = paths::TRANSCRIPT)]
    Records(RecordsError),
    /// Check 1: a record is out of the recovery's order, repeated, or missing.
    #[error("{t}: {0}", t = paths::TRANSCRIPT)]
    Structure(String),
    /// Check 7: a signature or certification the operation made is not dated the request's
    /// time (or a certification does not expire at the request's expiry).
    #[error("{0}")]
    Dated(String),
    /// Check 2: the transcript's signature is not a good signature by the pinned root key.
    #[error(
        "{}: not a good signature over {} by the generation's root key {root}: {reason}",
        paths::TRANSCRIPT_SIG,
        paths::TRANSCRIPT
    )]
    Signature {
        /// The pinned root fingerprint.
        root: String,
        /// What failed.
        reason: String,
    },
    /// Check 2: `root-cert.asc` is not the pinned root key.
    #[error("{t}: {0}", t = paths::ROOT_CERT)]
    RootCert(String),
    /// Check 3: record 1 does not link to the generation folder.
    #[error(
        "{} record 1 ({}): its {field} is {found}, the generation folder's is {expected}",
        paths::TRANSCRIPT,
        RecoveryGeneration::NAME
    )]
    Link {
        /// The field: `ceremony`, `transcript` or `root`.
        field: &'static str,
        /// The generation folder's value.
        expected: String,
        /// The record's value.
        found: String,
    },
    /// Check 3: the `recovery.replaced` records are not the replace-card folders the root was
    /// pinned with (given with `--replaced`, in order).
    #[error("{}: {reason}", paths::TRANSCRIPT)]
    Replaced {
        /// What is wrong.
        reason: String,
    },
    /// Check 4: `request.toml` is not a request, or not one for the pinned root.
    #[error("{t}: {0}", t = paths::REQUEST)]
    RequestInvalid(String),
    /// Check 4: the `recovery.request` record does not describe `request.toml`.
    #[error(
        "{} record {seq} ({}): its {field} is {recorded}, but {} gives {found}",
        paths::TRANSCRIPT,
        RecoveryRequest::NAME,
        paths::REQUEST
    )]
    Request {
        /// The record's number.
        seq: u32,
        /// The field: `hash`, `file-sha256`, `operation` or `time`.
        field: &'static str,
        /// The record's value.
        recorded: String,
        /// The value from `request.toml`.
        found: String,
    },
    /// The policy records disagree with the generation plan's `[policy]`.
    #[error("{} record {seq} ({kind}): {reason}", paths::TRANSCRIPT)]
    Policy {
        /// The record's number.
        seq: u32,
        /// Its kind.
        kind: &'static str,
        /// What is wrong.
        reason: String,
    },
    /// Check 5: a `recovery.share` record is not the generation folder's holder, share or PIN
    /// file, or repeats a holder.
    #[error(
        "{} record {seq} ({}, holder {holder}): {reason}",
        paths::TRANSCRIPT,
        RecoveryShare::NAME
    )]
    Share {
        /// The record's number.
        seq: u32,
        /// The holder index it names.
        holder: u8,
        /// What is wrong.
        reason: String,
    },
    /// Check 5: fewer shares than the threshold of the plan in force (the generation's, or the
    /// last reshare's).
    #[error(
        "{}: {found} recovery.share record(s), {plan}'s threshold is {threshold}",
        paths::TRANSCRIPT
    )]
    TooFewShares {
        /// How the plan is named: [`PinnedRoot::plan_label`].
        plan: &'static str,
        /// Shares recorded.
        found: usize,
        /// The threshold M.
        threshold: u8,
    },
    /// The `recovery.recombined` record disagrees with the shares or the pinned root.
    #[error(
        "{} record {seq} ({}): {reason}",
        paths::TRANSCRIPT,
        RecoveryRecombined::NAME
    )]
    Recombined {
        /// The record's number.
        seq: u32,
        /// What is wrong.
        reason: String,
    },
    /// Check 6: a listed file differs from its `output.file` record, or its path is not one a
    /// recovery writes or would leave the folder.
    #[error("{path}: {reason} ({} record {seq}, output.file)", paths::TRANSCRIPT)]
    Output {
        /// The record's number.
        seq: u32,
        /// The path it lists.
        path: String,
        /// What is wrong.
        reason: String,
    },
    /// Check 6: a file the records list is not in the folder.
    #[error(
        "{path}: missing: {} record {seq} (output.file) lists it",
        paths::TRANSCRIPT
    )]
    MissingFile {
        /// The record's number.
        seq: u32,
        /// The path.
        path: String,
    },
    /// Check 6: a file in the folder that no `output.file` record lists.
    #[error(
        "{path}: in the folder, but no output.file record of {} lists it",
        paths::TRANSCRIPT
    )]
    ExtraFile {
        /// The path.
        path: String,
    },
    /// Check 6: a file the operation writes that no `output.file` record lists.
    #[error("{path}: a {operation} recovery writes it, but no output.file record lists it")]
    NotListed {
        /// The operation.
        operation: OperationKind,
        /// The path.
        path: String,
    },
    /// Check 6: `ceremony.end` does not count the `output.file` records.
    #[error(
        "{} record {seq} (ceremony.end): files={recorded}, but there are {found} output.file records",
        paths::TRANSCRIPT
    )]
    OutputCount {
        /// The record's number.
        seq: u32,
        /// The record's count.
        recorded: usize,
        /// The records found.
        found: usize,
    },
    /// Check 7: the operation's records or outputs are not what the request asked for, or a
    /// signature or certification does not verify.
    #[error("{what}: {reason}")]
    Operation {
        /// Where: a record (`transcript.txt record 7 (recovery.signed)`) or a file.
        what: String,
        /// What is wrong.
        reason: String,
    },
    /// Check 7 with `--files`: a file the request names could not be read from that folder.
    #[error("{path}: cannot read the file the request names: {source}")]
    FileUnreadable {
        /// The file's path in the folder given.
        path: String,
        /// The I/O error.
        source: io::Error,
    },
    /// The recovery is an operation this version never writes a folder for.
    #[error(
        "a {0} recovery: this version of sherd does not perform it, so it cannot verify its folder"
    )]
    UnsupportedOperation(OperationKind),
}

type E = RecoveryVerifyError;

/// Names a record in messages: `transcript.txt record 7 (recovery.signed)`.
fn rec_name(seq: u32, kind: &str) -> String {
    format!("{} record {seq} ({kind})", paths::TRANSCRIPT)
}

fn operation(what: impl Into<String>, reason: impl Into<String>) -> E {
    E::Operation {
        what: what.into(),
        reason: reason.into(),
    }
}

/// Whether `transcript` (a `transcript.txt`'s bytes) is a recovery transcript: it parses and
/// its first record is `recovery.generation`. (`sherd-verify <folder>` uses it to tell a
/// recovery folder given alone.)
pub fn is_recovery_transcript(transcript: &[u8]) -> bool {
    Transcript::parse(transcript).is_ok_and(|t| {
        t.records()
            .first()
            .is_some_and(|r| r.kind == RecoveryGeneration::NAME)
    })
}

/// Wraps `read` so that each path is read once: later reads get the same bytes.
fn read_once<'a>(
    read: Read<'a>,
    seen: &'a RefCell<HashMap<String, Vec<u8>>>,
) -> impl Fn(&str) -> io::Result<Vec<u8>> + 'a {
    move |path: &str| {
        if let Some(b) = seen.borrow().get(path) {
            return Ok(b.clone());
        }
        let bytes = read(path)?;
        seen.borrow_mut().insert(path.to_string(), bytes.clone());
        Ok(bytes)
    }
}

/// Verifies the recovery folder `recovery` against the generation folder `generation`, both on
/// disk. The files a `sign` request names are not in the recovery folder: see
/// [`verify_recovery_dir_with_files`] to check the signatures over them too.
pub fn verify_recovery_dir(
    generation: &Path,
    recovery: &Path,
) -> Result<RecoveryReport, RecoveryVerifyError> {
    verify_recovery_dir_with_files(generation, recovery, None)
}

/// [`verify_recovery_dir`], and with `files` (the request stick's folder, or any folder with
/// the files a `sign` request names, by name), each signature is verified over its file.
pub fn verify_recovery_dir_with_files(
    generation: &Path,
    recovery: &Path,
    files: Option<&Path>,
) -> Result<RecoveryReport, RecoveryVerifyError> {
    let gen_read = crate::verify::folder_reader(generation);
    let rec_read = recovery_folder_reader(recovery);
    let list = || list_folder(recovery);
    let files_read = files.map(crate::verify::folder_reader);
    verify_recovery_with(
        &gen_read,
        &rec_read,
        &list,
        files_read
            .as_ref()
            .map(|f| f as &dyn Fn(&str) -> io::Result<Vec<u8>>),
    )
}

/// Verifies a recovery folder through readers: `generation` reads the generation folder,
/// `recovery` the recovery folder and `list` lists every file of it, `files` (optional) reads
/// the files a `sign` request names, by name.
///
/// The generation folder is pinned with [`PinnedRoot::from_generation`] (the generation
/// verifier's checks; as [`PinnedRoot::from_dir`] does for a folder on disk), reading each of
/// its files once; the PIN files' hashes are taken from the very bytes it verified.
pub fn verify_recovery_with(
    generation: Read<'_>,
    recovery: Read<'_>,
    list: List<'_>,
    files: Option<Read<'_>>,
) -> Result<RecoveryReport, RecoveryVerifyError> {
    let seen = RefCell::new(HashMap::new());
    let gen_once = read_once(generation, &seen);
    if gen_once(gen_paths::TRANSCRIPT).is_ok_and(|b| is_recovery_transcript(&b)) {
        return Err(E::GenerationIsRecovery);
    }
    let pinned = PinnedRoot::from_generation(&gen_once).map_err(E::Generation)?;
    verify_recovery_pinned(&pinned, recovery, list, files)
}

/// [`verify_recovery_dir_with_files`] for a recovery made after replace-card recoveries:
/// the root is pinned from `generation` and the replace-card folders `replaced`, in the order
/// they were made ([`PinnedRoot::from_dirs`]), and the recovery folder is checked against that
/// (its `recovery.replaced` records must name exactly those folders, in that order).
pub fn verify_recovery_dirs(
    generation: &Path,
    replaced: &[&Path],
    recovery: &Path,
    files: Option<&Path>,
) -> Result<RecoveryReport, RecoveryVerifyError> {
    let gen_read = crate::verify::folder_reader(generation);
    if gen_read(gen_paths::TRANSCRIPT).is_ok_and(|b| is_recovery_transcript(&b)) {
        return Err(E::GenerationIsRecovery);
    }
    let pinned = PinnedRoot::from_dirs(generation, replaced).map_err(E::Generation)?;
    let rec_read = recovery_folder_reader(recovery);
    let list = || list_folder(recovery);
    let files_read = files.map(crate::verify::folder_reader);
    verify_recovery_pinned(
        &pinned,
        &rec_read,
        &list,
        files_read
            .as_ref()
            .map(|f| f as &dyn Fn(&str) -> io::Result<Vec<u8>>),
    )
}

/// Verifies a recovery folder (read by `recovery`, listed by `list`) against a root pinned
/// already (from a generation folder, and any replace-card folders applied to it), with the
/// checks of [`verify_recovery_with`]. Each file of the recovery folder is read once.
pub fn verify_recovery_pinned(
    pinned: &PinnedRoot,
    recovery: Read<'_>,
    list: List<'_>,
    files: Option<Read<'_>>,
) -> Result<RecoveryReport, RecoveryVerifyError> {
    verify_pinned(pinned, recovery, list, files)
}

/// The pinned generation (with the replace-card recoveries applied to it).
struct Generation<'a> {
    pinned: &'a PinnedRoot,
}

/// One typed record and its number.
struct At<'a, T> {
    seq: u32,
    body: &'a T,
}

fn verify_pinned(
    pinned: &PinnedRoot,
    recovery: Read<'_>,
    list: List<'_>,
    files: Option<Read<'_>>,
) -> Result<RecoveryReport, RecoveryVerifyError> {
    let g = Generation { pinned };
    let seen = RefCell::new(HashMap::new());
    let once = read_once(recovery, &seen);
    let get = |path: &str| {
        once(path).map_err(|source| E::Unreadable {
            path: path.to_string(),
            source,
        })
    };
    let root_hex = pinned.root_fingerprint().to_hex();

    // 1. The chain.
    let transcript_bytes = get(paths::TRANSCRIPT)?;
    let t = Transcript::parse(&transcript_bytes).map_err(|source| E::Chain { source })?;

    // 2. The signature by the pinned root key; root-cert.asc is the same key.
    let sig = get(paths::TRANSCRIPT_SIG)?;
    transcript::verify_signature(pinned.root_cert(), &transcript_bytes, &sig).map_err(|e| {
        E::Signature {
            root: root_hex.clone(),
            reason: match (root_signature_shape(&sig, pinned.root_fingerprint()), e) {
                // Name another key rather than say the message was manipulated.
                (Err(shape), _) => shape,
                (Ok(()), TranscriptError::BadSignature(r)) => format!(
                    "made by the root key, but not over these bytes: the transcript was changed after it was signed ({r})"
                ),
                (Ok(()), other) => other.to_string(),
            },
        }
    })?;
    let root_cert_bytes = get(paths::ROOT_CERT)?;
    let root_cert = Cert::from_bytes(&root_cert_bytes)
        .map_err(|e| E::RootCert(format!("not a certificate: {e:#}")))?;
    if root_cert.fingerprint() != *pinned.root_fingerprint() {
        return Err(E::RootCert(format!(
            "the certificate of {}, not the generation's root key {root_hex}",
            root_cert.fingerprint().to_hex()
        )));
    }
    if root_cert.is_tsk() {
        return Err(E::RootCert("contains secret key material".into()));
    }

    // The records, strictly typed, in the recovery's order.
    let typed = recovery_flow::records(&t).map_err(E::Records)?;
    let r = Records::sort(&t, &typed)?;

    // 3. The link to the generation folder (and the replace-card folders applied to it).
    check_link(&g, r.generation.body)?;
    check_applied(&g, &r.applied)?;

    // 4. The request.
    let request_bytes = get(paths::REQUEST)?;
    let request = check_request(&g, &r.request, &request_bytes)?;
    let policy = check_policy(&g, &request, &r)?;

    // 5. The shares, and what recombined.
    let holders = check_shares(&g, &r.shares)?;
    check_recombined(&g, &r, &holders)?;

    // 6. The outputs.
    let listed = check_outputs(&request, &r, &get, list)?;

    // 7. The operation.
    let operation_lines = check_operation(&g, &request, &r, &listed.bytes, files)?;
    check_dates(pinned.root_cert(), &request, &listed.bytes, &sig)?;

    let plan = pinned.plan();
    Ok(RecoveryReport {
        ceremony_id: pinned.ceremony_id().to_string(),
        applied: pinned
            .applied()
            .iter()
            .map(|a| match a {
                crate::recovery::Applied::ReplaceCard(_) => OperationKind::ReplaceCard,
                crate::recovery::Applied::Reshare(_) => OperationKind::Reshare,
            })
            .collect(),
        root_fingerprint: root_hex,
        generation_final_hash: hex::encode(&pinned.final_hash()),
        generation_final_words: pinned.final_words(),
        operation: request.operation.kind(),
        request_hash: request.hash_hex(),
        request_words: request.hash_words(),
        request_time: plan::rfc3339(request.time_unix),
        policy,
        holders: holders
            .iter()
            .map(|&i| {
                let name = plan.holder(i).map(|h| h.name.clone()).unwrap_or_default();
                (i, name)
            })
            .collect(),
        threshold: plan.threshold,
        operation_lines,
        outputs: listed.order,
        records: t.records().len(),
        final_hash: hex::encode(&t.final_hash()),
        final_words: words::to_phrase(&t.final_hash()),
    })
}

/// The records sorted by kind, each with its number, after the order was checked.
struct Records<'a> {
    generation: At<'a, RecoveryGeneration>,
    applied: Vec<AppliedAt<'a>>,
    request: At<'a, RecoveryRequest>,
    policy: At<'a, RecoveryPolicy>,
    approvals: Vec<At<'a, RecoveryApproval>>,
    shares: Vec<At<'a, RecoveryShare>>,
    recombined: At<'a, RecoveryRecombined>,
    signed: Vec<At<'a, RecoverySigned>>,
    quorum: Vec<At<'a, RecoveryQuorum>>,
    certified: Vec<At<'a, RecoveryCertified>>,
    rebuilt: Vec<At<'a, RecoveryRebuilt>>,
    location: Vec<At<'a, RecoveryLocation>>,
    sealed: Vec<At<'a, RecoverySealed>>,
    cards: Vec<At<'a, RecoveryCard>>,
    pins: Vec<At<'a, RecoveryPins>>,
    reshare: Vec<At<'a, RecoveryReshare>>,
    new_location: Vec<At<'a, RecoveryNewLocation>>,
    new_sealed: Vec<At<'a, RecoveryNewSealed>>,
    new_subsets: Vec<At<'a, RecoveryNewSubsets>>,
    old_shares: Vec<At<'a, RecoveryOldShares>>,
    new_cards: Vec<At<'a, RecoveryNewCard>>,
    new_pins: Vec<At<'a, RecoveryNewPins>>,
    outputs: Vec<At<'a, OutputFile>>,
    end: At<'a, CeremonyEnd>,
}

/// A `recovery.replaced` or `recovery.reshared` record, in the order written.
enum AppliedAt<'a> {
    Replaced(At<'a, RecoveryReplaced>),
    Reshared(At<'a, RecoveryReshared>),
}

/// The place of `recovery.recombined`: the screens' records come only before it.
const RECOMBINED_PLACE: u8 = 6;

/// The recovery's order of its record kinds (docs/formats/recovery.md): places must not
/// decrease. `None`: a screen's record (`witness.confirm`, a caller's kind), which may come
/// from record 2 until the holders are done, i.e. before `recovery.recombined`.
fn place(r: &RecoveryRecord) -> Option<(u8, &'static str)> {
    match r {
        RecoveryRecord::Generation(_) => Some((0, RecoveryGeneration::NAME)),
        RecoveryRecord::Replaced(_) => Some((1, RecoveryReplaced::NAME)),
        RecoveryRecord::Request(_) => Some((2, RecoveryRequest::NAME)),
        RecoveryRecord::Policy(_) => Some((3, RecoveryPolicy::NAME)),
        RecoveryRecord::Approval(_) => Some((4, RecoveryApproval::NAME)),
        RecoveryRecord::Share(_) => Some((5, RecoveryShare::NAME)),
        RecoveryRecord::Recombined(_) => Some((RECOMBINED_PLACE, RecoveryRecombined::NAME)),
        RecoveryRecord::Signed(_) => Some((7, RecoverySigned::NAME)),
        RecoveryRecord::Quorum(_) => Some((7, RecoveryQuorum::NAME)),
        RecoveryRecord::Certified(_) => Some((7, RecoveryCertified::NAME)),
        RecoveryRecord::Rebuilt(_) => Some((7, RecoveryRebuilt::NAME)),
        RecoveryRecord::Location(_) => Some((8, RecoveryLocation::NAME)),
        RecoveryRecord::Sealed(_) => Some((9, RecoverySealed::NAME)),
        RecoveryRecord::Card(_) => Some((10, RecoveryCard::NAME)),
        RecoveryRecord::Pins(_) => Some((11, RecoveryPins::NAME)),
        RecoveryRecord::Reshared(_) => Some((1, RecoveryReshared::NAME)),
        RecoveryRecord::Reshare(_) => Some((7, RecoveryReshare::NAME)),
        RecoveryRecord::NewLocation(_) => Some((8, RecoveryNewLocation::NAME)),
        RecoveryRecord::NewSealed(_) => Some((9, RecoveryNewSealed::NAME)),
        RecoveryRecord::NewSubsets(_) => Some((10, RecoveryNewSubsets::NAME)),
        RecoveryRecord::OldShares(_) => Some((11, RecoveryOldShares::NAME)),
        RecoveryRecord::NewCard(_) => Some((12, RecoveryNewCard::NAME)),
        RecoveryRecord::NewPins(_) => Some((13, RecoveryNewPins::NAME)),
        RecoveryRecord::Output(_) => Some((14, OutputFile::NAME)),
        RecoveryRecord::End(_) => Some((15, CeremonyEnd::NAME)),
        RecoveryRecord::WitnessConfirm(_) | RecoveryRecord::Note(_) => None,
    }
}

impl<'a> Records<'a> {
    fn sort(t: &'a Transcript, typed: &'a [RecoveryRecord]) -> Result<Records<'a>, E> {
        let structure = |seq: u32, kind: &str, reason: String| {
            E::Structure(format!("record {seq} ({kind}): {reason}"))
        };
        match typed.last() {
            Some(RecoveryRecord::End(_)) => {}
            _ => {
                return Err(E::Structure(
                    "the last record is not ceremony.end: the transcript is incomplete".into(),
                ));
            }
        }
        let mut last: Option<(u8, &'static str)> = None;
        let mut generation = Vec::new();
        let mut applied = Vec::new();
        let mut request = Vec::new();
        let mut policy = Vec::new();
        let mut approvals = Vec::new();
        let mut shares = Vec::new();
        let mut recombined = Vec::new();
        let mut signed = Vec::new();
        let mut quorum = Vec::new();
        let mut certified = Vec::new();
        let mut rebuilt = Vec::new();
        let mut location = Vec::new();
        let mut sealed = Vec::new();
        let mut cards = Vec::new();
        let mut pins = Vec::new();
        let mut reshare = Vec::new();
        let mut new_location = Vec::new();
        let mut new_sealed = Vec::new();
        let mut new_subsets = Vec::new();
        let mut old_shares = Vec::new();
        let mut new_cards = Vec::new();
        let mut new_pins = Vec::new();
        let mut outputs = Vec::new();
        let mut end = Vec::new();
        for (raw, r) in t.records().iter().zip(typed) {
            let seq = raw.seq;
            match place(r) {
                Some((p, kind)) => {
                    if let Some((before, before_kind)) = last
                        && p < before
                    {
                        return Err(structure(
                            seq,
                            kind,
                            format!(
                                "out of the recovery's order: it comes after a {before_kind} record"
                            ),
                        ));
                    }
                    last = Some((p, kind));
                }
                None => {
                    if let Some((before, before_kind)) = last
                        && before >= RECOMBINED_PLACE
                    {
                        return Err(structure(
                            seq,
                            &raw.kind,
                            format!(
                                "a screen's record after a {before_kind} record: they come only until the holders are done"
                            ),
                        ));
                    }
                }
            }
            match r {
                RecoveryRecord::Generation(b) => generation.push(At { seq, body: b }),
                RecoveryRecord::Replaced(b) => {
                    applied.push(AppliedAt::Replaced(At { seq, body: b }));
                }
                RecoveryRecord::Reshared(b) => {
                    applied.push(AppliedAt::Reshared(At { seq, body: b }));
                }
                RecoveryRecord::Reshare(b) => reshare.push(At { seq, body: b }),
                RecoveryRecord::NewLocation(b) => new_location.push(At { seq, body: b }),
                RecoveryRecord::NewSealed(b) => new_sealed.push(At { seq, body: b }),
                RecoveryRecord::NewSubsets(b) => new_subsets.push(At { seq, body: b }),
                RecoveryRecord::OldShares(b) => old_shares.push(At { seq, body: b }),
                RecoveryRecord::NewCard(b) => new_cards.push(At { seq, body: b }),
                RecoveryRecord::NewPins(b) => new_pins.push(At { seq, body: b }),
                RecoveryRecord::Request(b) => request.push(At { seq, body: b }),
                RecoveryRecord::Policy(b) => policy.push(At { seq, body: b }),
                RecoveryRecord::Approval(b) => approvals.push(At { seq, body: b }),
                RecoveryRecord::Share(b) => shares.push(At { seq, body: b }),
                RecoveryRecord::Recombined(b) => recombined.push(At { seq, body: b }),
                RecoveryRecord::Signed(b) => signed.push(At { seq, body: b }),
                RecoveryRecord::Quorum(b) => quorum.push(At { seq, body: b }),
                RecoveryRecord::Certified(b) => certified.push(At { seq, body: b }),
                RecoveryRecord::Rebuilt(b) => rebuilt.push(At { seq, body: b }),
                RecoveryRecord::Location(b) => location.push(At { seq, body: b }),
                RecoveryRecord::Sealed(b) => sealed.push(At { seq, body: b }),
                RecoveryRecord::Card(b) => cards.push(At { seq, body: b }),
                RecoveryRecord::Pins(b) => pins.push(At { seq, body: b }),
                RecoveryRecord::Output(b) => outputs.push(At { seq, body: b }),
                RecoveryRecord::End(b) => end.push(At { seq, body: b }),
                RecoveryRecord::WitnessConfirm(_) | RecoveryRecord::Note(_) => {}
            }
        }
        fn one<'b, T>(found: Vec<At<'b, T>>, kind: &str) -> Result<At<'b, T>, E> {
            let n = found.len();
            match (found.into_iter().next(), n) {
                (Some(r), 1) => Ok(r),
                (None, _) => Err(E::Structure(format!("no {kind} record"))),
                (Some(r), _) => Err(E::Structure(format!(
                    "{n} {kind} records (the first is record {}); a recovery has one",
                    r.seq
                ))),
            }
        }
        Ok(Records {
            generation: one(generation, RecoveryGeneration::NAME)?,
            applied,
            request: one(request, RecoveryRequest::NAME)?,
            policy: one(policy, RecoveryPolicy::NAME)?,
            approvals,
            shares,
            recombined: one(recombined, RecoveryRecombined::NAME)?,
            signed,
            quorum,
            certified,
            rebuilt,
            location,
            sealed,
            cards,
            pins,
            reshare,
            new_location,
            new_sealed,
            new_subsets,
            old_shares,
            new_cards,
            new_pins,
            outputs,
            end: one(end, CeremonyEnd::NAME)?,
        })
    }
}

/// Check 3: record 1 names the generation ceremony, its transcript's final hash and its root.
fn check_link(g: &Generation<'_>, r: &RecoveryGeneration) -> Result<(), E> {
    let p = g.pinned;
    for (field, expected, found) in [
        ("ceremony", p.ceremony_id().to_string(), r.ceremony.clone()),
        (
            "transcript",
            hex::encode(&p.final_hash()),
            r.transcript.to_string(),
        ),
        ("root", p.root_fingerprint().to_hex(), r.root.0.clone()),
    ] {
        if expected != found {
            let expected = if field == "transcript" {
                format!("{expected} (the final hash of the generation's transcript.txt)")
            } else {
                expected
            };
            return Err(E::Link {
                field,
                expected,
                found,
            });
        }
    }
    Ok(())
}

/// Check 3 (continued): one `recovery.replaced` record per replace-card folder and one
/// `recovery.reshared` record per reshare folder the root was pinned with, in the order they
/// were applied, each naming that folder (its transcript's final hash, and for replace-card the
/// holder, new location certificate, sealed share and PIN file; for reshare the new plan's
/// hash, threshold and number of holders).
fn check_applied(g: &Generation<'_>, records: &[AppliedAt<'_>]) -> Result<(), E> {
    use crate::recovery::Applied;
    let applied = g.pinned.applied();
    if records.len() != applied.len() {
        return Err(E::Replaced {
            reason: format!(
                "{} recovery.replaced/recovery.reshared record(s), but the root was pinned with {} replace-card/reshare folder(s): give exactly the folders this recovery used, in the order they were made",
                records.len(),
                applied.len()
            ),
        });
    }
    for (i, (r, a)) in records.iter().zip(applied).enumerate() {
        let (seq, kind, fields): (u32, &str, Vec<(&str, String, String)>) = match (r, a) {
            (AppliedAt::Replaced(r), Applied::ReplaceCard(a)) => {
                let b = r.body;
                (
                    r.seq,
                    RecoveryReplaced::NAME,
                    vec![
                        ("holder", b.holder.to_string(), a.holder.to_string()),
                        (
                            "transcript",
                            b.transcript.to_string(),
                            hex::encode(&a.transcript),
                        ),
                        ("location", b.location.0.clone(), a.location.clone()),
                        ("envelope", b.envelope.to_string(), hex::encode(&a.envelope)),
                        ("pins", b.pins.to_string(), hex::encode(&a.pins)),
                    ],
                )
            }
            (AppliedAt::Reshared(r), Applied::Reshare(a)) => {
                let b = r.body;
                (
                    r.seq,
                    RecoveryReshared::NAME,
                    vec![
                        (
                            "transcript",
                            b.transcript.to_string(),
                            hex::encode(&a.transcript),
                        ),
                        ("plan", b.plan.to_string(), hex::encode(&a.plan)),
                        (
                            "threshold",
                            b.threshold.to_string(),
                            a.threshold.to_string(),
                        ),
                        ("holders", b.holders.to_string(), a.holders.to_string()),
                    ],
                )
            }
            (r, a) => {
                let (seq, kind) = match r {
                    AppliedAt::Replaced(r) => (r.seq, RecoveryReplaced::NAME),
                    AppliedAt::Reshared(r) => (r.seq, RecoveryReshared::NAME),
                };
                let given = match a {
                    Applied::ReplaceCard(_) => "a replace-card folder",
                    Applied::Reshare(_) => "a reshare folder",
                };
                return Err(E::Replaced {
                    reason: format!(
                        "record {seq} ({kind}), but folder {} given is {given}: give the folders in the order they were made",
                        i + 1
                    ),
                });
            }
        };
        for (field, recorded, expected) in fields {
            if recorded != expected {
                return Err(E::Replaced {
                    reason: format!(
                        "record {seq} ({kind}): its {field} is {recorded}, but folder {} given says {expected}",
                        i + 1
                    ),
                });
            }
        }
    }
    Ok(())
}

/// Check 4: `request.toml` is a request for the pinned root, and `recovery.request` states its
/// file hash, canonical hash, operation and time.
fn check_request(
    g: &Generation<'_>,
    r: &At<'_, RecoveryRequest>,
    bytes: &[u8],
) -> Result<Request, E> {
    let text = std::str::from_utf8(bytes).map_err(|_| E::RequestInvalid("not UTF-8".into()))?;
    let request = Request::parse(text).map_err(|e| E::RequestInvalid(e.to_string()))?;
    g.pinned
        .check_request(&request)
        .map_err(|e| E::RequestInvalid(e.to_string()))?;
    let rec = r.body;
    for (field, recorded, found) in [
        (
            "file-sha256",
            rec.file.to_string(),
            hex::encode(&kdf::sha256(bytes)),
        ),
        ("hash", rec.hash.to_string(), request.hash_hex()),
        (
            "operation",
            rec.operation.clone(),
            request.operation.name().to_string(),
        ),
        ("time", rec.time.to_string(), request.time_unix.to_string()),
    ] {
        if recorded != found {
            return Err(E::Request {
                seq: r.seq,
                field,
                recorded,
                found,
            });
        }
    }
    Ok(request)
}

/// The policy records: `none` exactly when the generation plan has no `[policy]`; otherwise
/// the rule's k, at least k approvals, one record each, by distinct approvers of the plan's
/// policy with one of their certificates (the approval files are not in the folder, so the
/// signatures themselves cannot be checked again). Returns the report's line.
fn check_policy(g: &Generation<'_>, request: &Request, r: &Records<'_>) -> Result<String, E> {
    let plan_label = g.pinned.plan_label();
    let p = &r.policy;
    let bad = |seq: u32, kind: &'static str, reason: String| E::Policy { seq, kind, reason };
    let policy_bad = |reason: String| bad(p.seq, RecoveryPolicy::NAME, reason);
    let Some(plan_policy) = g.pinned.plan().policy.as_ref() else {
        if p.body.policy != "none" || p.body.needed != 0 || p.body.approvals != 0 {
            return Err(policy_bad(format!(
                "policy={} needed={} approvals={}, but {plan_label} has no [policy] (policy=none needed=0 approvals=0)",
                p.body.policy, p.body.needed, p.body.approvals
            )));
        }
        if let Some(a) = r.approvals.first() {
            return Err(bad(
                a.seq,
                RecoveryApproval::NAME,
                format!("an approval, but {plan_label} has no [policy]"),
            ));
        }
        return Ok(format!("none: {plan_label} has no [policy]"));
    };
    if p.body.policy != "held" {
        return Err(policy_bad(format!(
            "policy={}, but {plan_label} has a [policy] (policy=held)",
            p.body.policy
        )));
    }
    let kind = request.operation.kind();
    let k = plan_policy.rule(kind).k;
    if p.body.needed != k {
        return Err(policy_bad(format!(
            "needed={}, but {plan_label}'s policy needs {k} approver(s) for {kind}",
            p.body.needed
        )));
    }
    if p.body.approvals < usize::from(k) {
        return Err(policy_bad(format!(
            "approvals={}: fewer than the {k} needed",
            p.body.approvals
        )));
    }
    if r.approvals.len() != p.body.approvals {
        return Err(policy_bad(format!(
            "approvals={}, but there are {} recovery.approval records",
            p.body.approvals,
            r.approvals.len()
        )));
    }
    let mut names: Vec<&str> = Vec::new();
    for a in &r.approvals {
        let abad = |reason: String| bad(a.seq, RecoveryApproval::NAME, reason);
        let who = &a.body.approver;
        let Some(approver) = plan_policy.approvers.iter().find(|x| x.name == *who) else {
            return Err(abad(format!(
                "{who:?} is not an approver of {plan_label}'s [policy]"
            )));
        };
        if names.contains(&who.as_str()) {
            return Err(abad(format!(
                "approver {who:?} is counted twice; each approver counts once"
            )));
        }
        let Some(cert) = approver
            .certs
            .iter()
            .find(|c| c.fingerprint.to_hex() == a.body.cert.0)
        else {
            return Err(abad(format!(
                "the certificate {} is not one the plan lists for approver {who:?}",
                a.body.cert
            )));
        };
        if !cert
            .cert
            .keys()
            .any(|k| k.key().fingerprint().to_hex() == a.body.key.0)
        {
            return Err(abad(format!(
                "the key {} is not a key of approver {who:?}'s certificate {}",
                a.body.key, a.body.cert
            )));
        }
        names.push(who);
    }
    Ok(format!(
        "held: {kind} needs {k} approver(s); {} approved ({})",
        names.len(),
        names.join(", ")
    ))
}

/// Which folder gave a holder the share the root is pinned with: whichever came last of the
/// generation, a replace-card for this holder, or a reshare (which gives every holder theirs).
#[derive(Clone, Copy)]
enum ShareSource {
    Generation,
    ReplaceCard,
    Reshare,
}

impl ShareSource {
    fn of(pinned: &PinnedRoot, holder: u8) -> Self {
        for a in pinned.applied().iter().rev() {
            match a {
                Applied::ReplaceCard(r) if r.holder == holder => return Self::ReplaceCard,
                Applied::Reshare(_) => return Self::Reshare,
                Applied::ReplaceCard(_) => {}
            }
        }
        Self::Generation
    }
}

/// Check 5: each share is a holder of the plan in force (the generation's, or the last
/// reshare's), once, with the sealed share and PIN file the root is pinned with for that holder
/// (the generation folder's, or those of the last replace-card or reshare folder that set them),
/// read by the personal card of that holder or their backup; at least M of them. Returns the
/// holders in order.
fn check_shares(g: &Generation<'_>, shares: &[At<'_, RecoveryShare>]) -> Result<Vec<u8>, E> {
    let plan_label = g.pinned.plan_label();
    let plan: &Plan = g.pinned.plan();
    let mut holders: Vec<u8> = Vec::new();
    for s in shares {
        let b = s.body;
        let bad = |reason: String| E::Share {
            seq: s.seq,
            holder: b.holder,
            reason,
        };
        let Some(holder) = plan.holder(b.holder) else {
            return Err(bad(format!(
                "not a holder of {plan_label} (holders 1..={})",
                plan.holder_count()
            )));
        };
        if holders.contains(&b.holder) {
            return Err(bad(
                "this holder's share is already recorded: each holder counts once".into(),
            ));
        }
        if b.name != holder.name {
            return Err(bad(format!(
                "name {:?}, {plan_label}'s holder {} is {:?}",
                b.name, b.holder, holder.name
            )));
        }
        let sealed = g
            .pinned
            .share(b.holder)
            .map(|s| s.message_sha256)
            .unwrap_or_default();
        let source = ShareSource::of(g.pinned, b.holder);
        if b.envelope.0 != sealed {
            let whose = match source {
                ShareSource::Generation => {
                    "the generation transcript's share.sealed for this holder"
                }
                ShareSource::ReplaceCard => {
                    "the last replace-card transcript's recovery.sealed for this holder"
                }
                ShareSource::Reshare => {
                    "the last reshare transcript's recovery.new-sealed for this holder"
                }
            };
            return Err(bad(format!(
                "envelope {}, but {whose} is {}",
                b.envelope,
                hex::encode(&sealed)
            )));
        }
        let pin_path = gen_paths::pin_file(b.holder);
        let Some(pins) = g.pinned.share(b.holder).map(|s| s.pin_file_sha256) else {
            return Err(bad("the holder has no pinned share".into()));
        };
        if b.pins.0 != pins {
            let whose = match source {
                ShareSource::Generation => format!("the generation folder's {pin_path}"),
                ShareSource::ReplaceCard => format!(
                    "the holder's PIN file from their last replace-card folder ({pin_path})"
                ),
                ShareSource::Reshare => {
                    format!("the holder's PIN file from the last reshare folder ({pin_path})")
                }
            };
            return Err(bad(format!(
                "pins {}, but the SHA-256 of {whose} is {}",
                b.pins,
                hex::encode(&pins)
            )));
        }
        let reader = match b.reader.as_str() {
            "holder" => holder,
            "backup" => plan.holder(holder.backup).ok_or_else(|| {
                bad(format!(
                    "the backup holder {} is not in the plan",
                    holder.backup
                ))
            })?,
            other => {
                return Err(bad(format!(
                    "reader={other:?}: the reader is \"holder\" or \"backup\""
                )));
            }
        };
        if b.reader_name != reader.name {
            return Err(bad(format!(
                "reader-name {:?}, but the {} is {:?} in {plan_label}",
                b.reader_name, b.reader, reader.name
            )));
        }
        let ours = reader.certs.iter().any(|pc| {
            pc.cert
                .keys()
                .any(|k| k.key().fingerprint().to_hex() == b.personal.0)
        });
        if !ours {
            return Err(bad(format!(
                "personal {}: not a key of the {} ({})'s certificates in {plan_label}",
                b.personal, b.reader, reader.name
            )));
        }
        holders.push(b.holder);
    }
    if holders.len() < usize::from(plan.threshold) {
        return Err(E::TooFewShares {
            plan: plan_label,
            found: holders.len(),
            threshold: plan.threshold,
        });
    }
    Ok(holders)
}

/// `recovery.recombined`: the holders of the share records, in order; the plan's threshold;
/// the root of record 1 (the pinned root).
fn check_recombined(g: &Generation<'_>, r: &Records<'_>, holders: &[u8]) -> Result<(), E> {
    let plan_label = g.pinned.plan_label();
    let rc = &r.recombined;
    let bad = |reason: String| E::Recombined {
        seq: rc.seq,
        reason,
    };
    let expected = holders
        .iter()
        .map(u8::to_string)
        .collect::<Vec<_>>()
        .join(",");
    if rc.body.holders != expected {
        return Err(bad(format!(
            "holders={}, but the recovery.share records are holders {expected}, in that order",
            rc.body.holders
        )));
    }
    let threshold = g.pinned.plan().threshold;
    if rc.body.threshold != threshold {
        return Err(bad(format!(
            "threshold={}, but {plan_label}'s threshold is {threshold}",
            rc.body.threshold
        )));
    }
    if rc.body.root != r.generation.body.root
        || rc.body.root.0 != g.pinned.root_fingerprint().to_hex()
    {
        return Err(bad(format!(
            "root={}, but record 1 and the generation folder say {}",
            rc.body.root,
            g.pinned.root_fingerprint().to_hex()
        )));
    }
    Ok(())
}

/// Whether a path listed in the transcript stays inside the folder: relative, '/'-separated,
/// no empty, `.` or `..` component, no backslash or control character.
fn path_stays_inside(path: &str) -> bool {
    !path.is_empty()
        && !path.starts_with('/')
        && !path.contains('\\')
        && !path.chars().any(char::is_control)
        && path
            .split('/')
            .all(|c| !c.is_empty() && c != "." && c != "..")
}

/// The files a recovery of this request writes besides the transcript and its signature.
fn expected_outputs(request: &Request) -> Vec<String> {
    let mut out = vec![paths::REQUEST.to_string(), paths::ROOT_CERT.to_string()];
    match &request.operation {
        Operation::Sign { files } => {
            for (i, f) in files.iter().enumerate() {
                out.push(paths::signature(i + 1, &f.name));
            }
        }
        Operation::ProveQuorum { .. } => {
            out.push(paths::CHALLENGE.into());
            out.push(paths::CHALLENGE_SIG.into());
        }
        Operation::Certify(_) => out.push(paths::CERTIFIED.into()),
        Operation::ReplaceCard { holder, .. } => {
            out.push(paths::SHARDS.into());
            out.push(paths::pin_file(*holder));
            out.push(paths::location_cert(*holder));
            out.push(paths::sealed_share(*holder));
        }
        Operation::Reshare { plan, .. } => {
            out.push(paths::PLAN.into());
            out.push(paths::SHARDS.into());
            for h in &plan.holders {
                out.push(paths::pin_file(h.index));
            }
        }
    }
    out
}

/// Check 6: each `output.file` by size and SHA-256; `ceremony.end` counts them; the files are
/// those the operation writes; no other file in the folder. Returns the listed files' bytes
/// and paths.
fn check_outputs(
    request: &Request,
    r: &Records<'_>,
    get: &dyn Fn(&str) -> Result<Vec<u8>, E>,
    list: List<'_>,
) -> Result<Listed, E> {
    let expected = expected_outputs(request);
    let kind = request.operation.kind();
    let mut listed: HashMap<String, Vec<u8>> = HashMap::new();
    let mut order = Vec::new();
    for o in &r.outputs {
        let path = o.body.path.as_str();
        let bad = |reason: String| E::Output {
            seq: o.seq,
            path: path.to_string(),
            reason,
        };
        if !path_stays_inside(path) {
            return Err(bad("the path would leave the folder".into()));
        }
        if path == paths::TRANSCRIPT || path == paths::TRANSCRIPT_SIG {
            return Err(bad(
                "the transcript and its signature are not listed in the transcript".into(),
            ));
        }
        if !expected.iter().any(|e| e == path) {
            return Err(bad(format!("not a file a {kind} recovery writes")));
        }
        if listed.contains_key(path) {
            return Err(bad("listed twice".into()));
        }
        let bytes = match get(path) {
            Ok(b) => b,
            Err(E::Unreadable { source, .. }) if source.kind() == io::ErrorKind::NotFound => {
                return Err(E::MissingFile {
                    seq: o.seq,
                    path: path.to_string(),
                });
            }
            Err(e) => return Err(e),
        };
        if bytes.len() != o.body.size {
            return Err(bad(format!(
                "{} bytes, the record says {}",
                bytes.len(),
                o.body.size
            )));
        }
        let digest = kdf::sha256(&bytes);
        if digest != o.body.sha256.0 {
            return Err(bad(format!(
                "SHA-256 {}, the record says {}",
                hex::encode(&digest),
                o.body.sha256
            )));
        }
        listed.insert(path.to_string(), bytes);
        order.push(path.to_string());
    }
    if r.end.body.files != r.outputs.len() {
        return Err(E::OutputCount {
            seq: r.end.seq,
            recorded: r.end.body.files,
            found: r.outputs.len(),
        });
    }
    if let Some(path) = expected.iter().find(|e| !listed.contains_key(*e)) {
        return Err(E::NotListed {
            operation: kind,
            path: path.clone(),
        });
    }
    let present: BTreeSet<String> = list().map_err(E::Unlistable)?.into_iter().collect();
    for path in &present {
        if path != paths::TRANSCRIPT && path != paths::TRANSCRIPT_SIG && !listed.contains_key(path)
        {
            return Err(E::ExtraFile { path: path.clone() });
        }
    }
    Ok(Listed {
        bytes: listed,
        order,
    })
}

/// The files the `output.file` records list: their bytes (as checked) and paths in order.
struct Listed {
    bytes: HashMap<String, Vec<u8>>,
    order: Vec<String>,
}

/// A detached signature's packet: one binary-document signature whose issuer is the root key
/// (checked without the data it signs, which may not be at hand).
fn root_signature_shape(bytes: &[u8], root: &openpgp::Fingerprint) -> Result<(), String> {
    let sig = match openpgp::Packet::from_bytes(bytes) {
        Ok(openpgp::Packet::Signature(s)) => s,
        Ok(p) => return Err(format!("a {} packet, not a signature", p.tag())),
        Err(e) => return Err(format!("not an OpenPGP signature: {e:#}")),
    };
    if sig.typ() != SignatureType::Binary {
        return Err(format!(
            "a signature of type {}, not a binary document signature",
            sig.typ()
        ));
    }
    let handle = openpgp::KeyHandle::from(root.clone());
    let issuers = sig.get_issuers();
    if !issuers.iter().any(|i| i.aliases(&handle)) {
        // The issuer fingerprints (their key IDs say the same), else the key IDs.
        let fingerprints: Vec<String> = issuers
            .iter()
            .filter(|i| matches!(i, openpgp::KeyHandle::Fingerprint(_)))
            .map(ToString::to_string)
            .collect();
        let named = if fingerprints.is_empty() {
            issuers.iter().map(ToString::to_string).collect()
        } else {
            fingerprints
        };
        return Err(format!(
            "made by {}, not by the root key {}",
            if named.is_empty() {
                "an unnamed key".to_string()
            } else {
                format!("key {}", named.join(", "))
            },
            root.to_hex()
        ));
    }
    Ok(())
}

/// Check 7: the operation's records are the request's, and its outputs verify with the pinned
/// root key. Returns the report's lines.
fn check_operation(
    g: &Generation<'_>,
    request: &Request,
    r: &Records<'_>,
    listed: &HashMap<String, Vec<u8>>,
    files: Option<Read<'_>>,
) -> Result<Vec<String>, E> {
    let root = g.pinned.root_cert();
    let root_fpr = g.pinned.root_fingerprint();
    let kind = request.operation.kind();
    let listed_get = |path: &str| -> Result<&Vec<u8>, E> {
        listed.get(path).ok_or_else(|| E::NotListed {
            operation: kind,
            path: path.to_string(),
        })
    };
    // Records of another operation's kind.
    let firsts: [(Option<u32>, &str, OperationKind); 15] = [
        (
            r.reshare.first().map(|x| x.seq),
            RecoveryReshare::NAME,
            OperationKind::Reshare,
        ),
        (
            r.new_location.first().map(|x| x.seq),
            RecoveryNewLocation::NAME,
            OperationKind::Reshare,
        ),
        (
            r.new_sealed.first().map(|x| x.seq),
            RecoveryNewSealed::NAME,
            OperationKind::Reshare,
        ),
        (
            r.new_subsets.first().map(|x| x.seq),
            RecoveryNewSubsets::NAME,
            OperationKind::Reshare,
        ),
        (
            r.old_shares.first().map(|x| x.seq),
            RecoveryOldShares::NAME,
            OperationKind::Reshare,
        ),
        (
            r.new_cards.first().map(|x| x.seq),
            RecoveryNewCard::NAME,
            OperationKind::Reshare,
        ),
        (
            r.new_pins.first().map(|x| x.seq),
            RecoveryNewPins::NAME,
            OperationKind::Reshare,
        ),
        (
            r.signed.first().map(|x| x.seq),
            RecoverySigned::NAME,
            OperationKind::Sign,
        ),
        (
            r.quorum.first().map(|x| x.seq),
            RecoveryQuorum::NAME,
            OperationKind::ProveQuorum,
        ),
        (
            r.certified.first().map(|x| x.seq),
            RecoveryCertified::NAME,
            OperationKind::Certify,
        ),
        (
            r.rebuilt.first().map(|x| x.seq),
            RecoveryRebuilt::NAME,
            OperationKind::ReplaceCard,
        ),
        (
            r.location.first().map(|x| x.seq),
            RecoveryLocation::NAME,
            OperationKind::ReplaceCard,
        ),
        (
            r.sealed.first().map(|x| x.seq),
            RecoverySealed::NAME,
            OperationKind::ReplaceCard,
        ),
        (
            r.cards.first().map(|x| x.seq),
            RecoveryCard::NAME,
            OperationKind::ReplaceCard,
        ),
        (
            r.pins.first().map(|x| x.seq),
            RecoveryPins::NAME,
            OperationKind::ReplaceCard,
        ),
    ];
    let foreign: Option<(u32, &str)> = firsts
        .iter()
        .filter(|(_, _, of)| *of != kind)
        .filter_map(|(seq, name, _)| seq.map(|s| (s, *name)))
        .min();
    if let Some((seq, k)) = foreign {
        return Err(operation(
            rec_name(seq, k),
            format!("the request's operation is {kind}"),
        ));
    }
    let mut lines = Vec::new();
    match &request.operation {
        Operation::Sign { files: named } => {
            if r.signed.len() != named.len() {
                return Err(E::Structure(format!(
                    "{} recovery.signed records, the request names {} file(s)",
                    r.signed.len(),
                    named.len()
                )));
            }
            for (i, (s, f)) in r.signed.iter().zip(named).enumerate() {
                let what = rec_name(s.seq, RecoverySigned::NAME);
                let b = s.body;
                if b.name != f.name {
                    return Err(operation(
                        what,
                        format!(
                            "name {:?}, but the request's file {} is {:?}",
                            b.name,
                            i + 1,
                            f.name
                        ),
                    ));
                }
                if b.sha256.0 != f.sha256 {
                    return Err(operation(
                        what,
                        format!(
                            "sha256 {}, but the request gives {} for {:?}",
                            b.sha256,
                            hex::encode(&f.sha256),
                            f.name
                        ),
                    ));
                }
                let path = paths::signature(i + 1, &f.name);
                if b.signature != path {
                    return Err(operation(
                        what,
                        format!(
                            "signature {:?}, but the signature of the request's file {} is {path}",
                            b.signature,
                            i + 1
                        ),
                    ));
                }
                let sig = listed_get(&path)?;
                root_signature_shape(sig, root_fpr).map_err(|e| operation(path.as_str(), e))?;
                match files {
                    None => lines.push(format!(
                        "{path}: by the root key, for {:?} (SHA-256 {}, {} bytes); not checked over the file (give --files)",
                        f.name, b.sha256, b.size
                    )),
                    Some(read) => {
                        let data = read(&f.name).map_err(|source| E::FileUnreadable {
                            path: f.name.clone(),
                            source,
                        })?;
                        let digest = kdf::sha256(&data);
                        if digest != f.sha256 || data.len() != b.size {
                            return Err(operation(
                                format!("{} (the file given)", f.name),
                                format!(
                                    "SHA-256 {}, {} bytes; the request and {what} say {}, {} bytes",
                                    hex::encode(&digest),
                                    data.len(),
                                    b.sha256,
                                    b.size
                                ),
                            ));
                        }
                        transcript::verify_signature(root, &data, sig).map_err(|e| {
                            operation(
                                path.as_str(),
                                format!("not a good signature by the root key over {:?}: {e}", f.name),
                            )
                        })?;
                        lines.push(format!(
                            "{path}: a good signature by the root key over {:?} (SHA-256 {})",
                            f.name, b.sha256
                        ));
                    }
                }
            }
        }
        Operation::ProveQuorum { challenge } => {
            let [q] = r.quorum.as_slice() else {
                return Err(E::Structure(format!(
                    "{} recovery.quorum records; a prove-quorum recovery has one",
                    r.quorum.len()
                )));
            };
            let what = rec_name(q.seq, RecoveryQuorum::NAME);
            let bytes = listed_get(paths::CHALLENGE)?;
            if bytes.as_slice() != challenge.as_bytes() {
                return Err(operation(
                    paths::CHALLENGE,
                    "not the request's challenge, byte for byte",
                ));
            }
            if q.body.challenge.0 != kdf::sha256(challenge.as_bytes()) {
                return Err(operation(
                    what,
                    format!(
                        "challenge-sha256 {}, but the request's challenge has SHA-256 {}",
                        q.body.challenge,
                        hex::encode(&kdf::sha256(challenge.as_bytes()))
                    ),
                ));
            }
            if q.body.signature != paths::CHALLENGE_SIG {
                return Err(operation(
                    what,
                    format!(
                        "signature {:?}, the challenge's signature is {}",
                        q.body.signature,
                        paths::CHALLENGE_SIG
                    ),
                ));
            }
            let sig = listed_get(paths::CHALLENGE_SIG)?;
            transcript::verify_signature(root, bytes, sig).map_err(|e| {
                operation(
                    paths::CHALLENGE_SIG,
                    format!(
                        "not a good signature by the root key over {}: {e}",
                        paths::CHALLENGE
                    ),
                )
            })?;
            lines.push(format!(
                "{}: a good signature by the root key over the challenge {challenge:?}",
                paths::CHALLENGE_SIG
            ));
        }
        Operation::Certify(c) => {
            let cert_fpr = c.cert.fingerprint();
            if r.certified.len() != c.user_ids.len() {
                return Err(E::Structure(format!(
                    "{} recovery.certified records, the request names {} user ID(s)",
                    r.certified.len(),
                    c.user_ids.len()
                )));
            }
            let certified = Cert::from_bytes(listed_get(paths::CERTIFIED)?)
                .map_err(|e| operation(paths::CERTIFIED, format!("not a certificate: {e:#}")))?;
            if certified.fingerprint() != cert_fpr {
                return Err(operation(
                    paths::CERTIFIED,
                    format!(
                        "the certificate {}, but the request's is {}",
                        certified.fingerprint().to_hex(),
                        cert_fpr.to_hex()
                    ),
                ));
            }
            let expiry = c.expiry_unix.unwrap_or(0);
            for (i, (rc, uid)) in r.certified.iter().zip(&c.user_ids).enumerate() {
                let what = rec_name(rc.seq, RecoveryCertified::NAME);
                let b = rc.body;
                if b.cert.0 != cert_fpr.to_hex() {
                    return Err(operation(
                        what,
                        format!(
                            "cert {}, but the request's certificate is {}",
                            b.cert,
                            cert_fpr.to_hex()
                        ),
                    ));
                }
                if b.user_id != *uid {
                    return Err(operation(
                        what,
                        format!(
                            "user-id {:?}, but the request's user ID {} is {uid:?}",
                            b.user_id,
                            i + 1
                        ),
                    ));
                }
                if b.expiry != expiry {
                    return Err(operation(
                        what,
                        format!(
                            "expiry {}, but the request's is {expiry} (0: none)",
                            b.expiry
                        ),
                    ));
                }
                let by_root = certified
                    .userids()
                    .filter(|u| u.userid().value() == uid.as_bytes())
                    .any(|u| {
                        u.certifications().any(|s| {
                            s.typ() == SignatureType::GenericCertification
                                && s.verify_userid_binding(
                                    root.primary_key().key(),
                                    certified.primary_key().key(),
                                    u.userid(),
                                )
                                .is_ok()
                        })
                    });
                if !by_root {
                    return Err(operation(
                        paths::CERTIFIED,
                        format!("no good certification of the user ID {uid:?} by the root key"),
                    ));
                }
                lines.push(format!(
                    "{}: {uid:?} certified by the root key",
                    paths::CERTIFIED
                ));
            }
        }
        Operation::ReplaceCard { holder, cards } => {
            lines = check_replace_card(g, r, listed, *holder, *cards)?;
        }
        Operation::Reshare { plan, .. } => {
            lines = check_reshare(g, r, listed, plan)?;
        }
    }
    Ok(lines)
}

/// Check 7, last: the transcript's signature and every signature the operation made (each
/// file's, the challenge's, each root certification of a certified user ID) is dated the
/// request's time, and a certification
/// expires at the request's expiry when it has one (docs/formats/recovery.md: "dated the
/// request's `time`"). The checks before it have verified the signatures themselves.
fn check_dates(
    root: &Cert,
    request: &Request,
    listed: &HashMap<String, Vec<u8>>,
    transcript_sig: &[u8],
) -> Result<(), E> {
    let unix = |t: std::time::SystemTime| {
        t.duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs())
    };
    let dated = |what: String, sigs: &[&openpgp::packet::Signature], expiry: Option<u32>| {
        let times = |s: &openpgp::packet::Signature| {
            (
                s.signature_creation_time().map(unix),
                s.signature_expiration_time().map(unix),
            )
        };
        let want = (Some(u64::from(request.time_unix)), expiry.map(u64::from));
        if sigs.iter().any(|s| times(s) == want) {
            return Ok(());
        }
        let (made, expires) = sigs.first().map_or((None, None), |s| times(s));
        let at = |t: u64| plan::rfc3339(u32::try_from(t).unwrap_or(u32::MAX));
        Err(E::Dated(format!(
            "{what}: made at {}{}, not at the request time {}{} (every signature of a recovery carries the request time)",
            made.map_or_else(|| "an unknown time".to_string(), at),
            expires.map_or_else(String::new, |e| format!(", expiring {}", at(e))),
            plan::rfc3339(request.time_unix),
            expiry.map_or_else(String::new, |e| format!(
                " expiring at the request's expiry {}",
                plan::rfc3339(e)
            )),
        )))
    };
    let signature = |path: &str| -> Option<openpgp::packet::Signature> {
        let bytes = listed.get(path)?;
        match openpgp::Packet::from_bytes(bytes) {
            Ok(openpgp::Packet::Signature(s)) => Some(s),
            _ => None,
        }
    };
    // The transcript's signature first, as the Python verifier lists them.
    if let Ok(openpgp::Packet::Signature(s)) = openpgp::Packet::from_bytes(transcript_sig) {
        dated(paths::TRANSCRIPT_SIG.to_string(), &[&s], None)?;
    }
    match &request.operation {
        Operation::Sign { files } => {
            for (i, f) in files.iter().enumerate() {
                let path = paths::signature(i + 1, &f.name);
                if let Some(s) = signature(&path) {
                    dated(path, &[&s], None)?;
                }
            }
        }
        Operation::ProveQuorum { .. } => {
            if let Some(s) = signature(paths::CHALLENGE_SIG) {
                dated(paths::CHALLENGE_SIG.to_string(), &[&s], None)?;
            }
        }
        Operation::Certify(c) => {
            let Some(certified) = listed
                .get(paths::CERTIFIED)
                .and_then(|b| Cert::from_bytes(b).ok())
            else {
                return Ok(());
            };
            for uid in &c.user_ids {
                for u in certified
                    .userids()
                    .filter(|u| u.userid().value() == uid.as_bytes())
                {
                    let good: Vec<&openpgp::packet::Signature> = u
                        .certifications()
                        .filter(|s| {
                            s.typ() == SignatureType::GenericCertification
                                && s.verify_userid_binding(
                                    root.primary_key().key(),
                                    certified.primary_key().key(),
                                    u.userid(),
                                )
                                .is_ok()
                        })
                        .collect();
                    dated(
                        format!("{} (the certification of {uid:?})", paths::CERTIFIED),
                        &good,
                        c.expiry_unix,
                    )?;
                }
            }
        }
        Operation::ReplaceCard { .. } | Operation::Reshare { .. } => {}
    }
    Ok(())
}

/// A new card's serial (record `what`) is none of `seen` (this folder's new cards so far) and
/// no card the pinned root knows, current or retired; `why` ends the message for the latter.
fn new_serial(
    pinned: &PinnedRoot,
    seen: &[&str],
    serial: &str,
    what: &str,
    why: &str,
) -> Result<(), E> {
    if seen.contains(&serial) {
        return Err(operation(
            what,
            format!("serial {serial} twice: each new card is a different card"),
        ));
    }
    match pinned.card_with_serial(&crate::card::CardSerial(serial.to_string())) {
        Some((h, c)) => Err(operation(
            what,
            format!("serial {serial} is holder {h}'s card {c} {why}"),
        )),
        None => Ok(()),
    }
}

/// Check 7 for `replace-card` (docs/formats/recovery.md, "replace-card"): the records name
/// the request's holder once each, in order (`recovery.rebuilt`, `recovery.location`,
/// `recovery.sealed`, one `recovery.card` per new card, `recovery.pins`); the new shard file
/// is the pinned one but for the holder's entry, which holds the new location certificate
/// (`location/holder-NNN.asc`, of the shape generation makes, a key never seen in this
/// ceremony) and the new sealed share (`sealed/holder-NNN.pgp`, encrypted to exactly its
/// encryption key); the new PIN file is encrypted to exactly the holder's and the backup
/// holder's personal certificates' keys (as the generation verifier checks); the new cards are
/// no card of the ceremony's before. Returns the report's lines.
fn check_replace_card(
    g: &Generation<'_>,
    r: &Records<'_>,
    listed: &HashMap<String, Vec<u8>>,
    holder: u8,
    cards: u8,
) -> Result<Vec<String>, E> {
    let pinned = g.pinned;
    let plan = pinned.plan();
    let plan_label = pinned.plan_label();
    let kind = OperationKind::ReplaceCard;
    let listed_get = |path: &str| -> Result<&Vec<u8>, E> {
        listed.get(path).ok_or_else(|| E::NotListed {
            operation: kind,
            path: path.to_string(),
        })
    };
    let (Some(h), Some(old)) = (plan.holder(holder), pinned.share(holder)) else {
        return Err(E::RequestInvalid(format!(
            "holder {holder} is not in {plan_label}"
        )));
    };
    fn once<'b, T>(found: &'b [At<'b, T>], kind: &str) -> Result<&'b At<'b, T>, E> {
        match found {
            [one] => Ok(one),
            _ => Err(E::Structure(format!(
                "{} {kind} records; a replace-card recovery has one",
                found.len()
            ))),
        }
    }
    let wrong_holder = |seq: u32, name: &str, found: u8| {
        operation(
            rec_name(seq, name),
            format!("holder={found}, but the request replaces holder {holder}'s cards"),
        )
    };

    // recovery.rebuilt: from the recombined holders.
    let rb = once(&r.rebuilt, RecoveryRebuilt::NAME)?;
    let what = rec_name(rb.seq, RecoveryRebuilt::NAME);
    if rb.body.holder != holder {
        return Err(wrong_holder(rb.seq, RecoveryRebuilt::NAME, rb.body.holder));
    }
    if rb.body.name != h.name {
        return Err(operation(
            what,
            format!(
                "name {:?}, {plan_label}'s holder {holder} is {:?}",
                rb.body.name, h.name
            ),
        ));
    }
    if rb.body.from != r.recombined.body.holders {
        return Err(operation(
            what,
            format!(
                "from={}, but recovery.recombined's holders are {}",
                rb.body.from, r.recombined.body.holders
            ),
        ));
    }
    if rb.body.checked == 0 {
        return Err(operation(
            what,
            "checked=0: the rebuilt share was not recombined with the others",
        ));
    }

    // The new location certificate.
    let loc = once(&r.location, RecoveryLocation::NAME)?;
    let what = rec_name(loc.seq, RecoveryLocation::NAME);
    if loc.body.holder != holder {
        return Err(wrong_holder(
            loc.seq,
            RecoveryLocation::NAME,
            loc.body.holder,
        ));
    }
    let cert_path = paths::location_cert(holder);
    let cert = Cert::from_bytes(listed_get(&cert_path)?)
        .map_err(|e| operation(cert_path.as_str(), format!("not a certificate: {e:#}")))?;
    let subkey = crate::verify::check_location_cert(&cert, pinned.key_time())
        .map_err(|e| operation(cert_path.as_str(), e))?;
    let fpr = cert.fingerprint().to_hex();
    for (field, recorded, found) in [
        ("fingerprint", &loc.body.fingerprint.0, &fpr),
        ("subkey", &loc.body.subkey.0, &subkey),
    ] {
        if recorded != found {
            return Err(operation(
                what,
                format!("{field} {recorded}, but {cert_path} gives {found}"),
            ));
        }
    }
    let old_fpr = old.location_cert.fingerprint().to_hex();
    if loc.body.replaces.0 != old_fpr {
        return Err(operation(
            what,
            format!(
                "replaces {}, but holder {holder}'s pinned location certificate is {old_fpr}",
                loc.body.replaces
            ),
        ));
    }
    if let Some(s) = pinned
        .shares()
        .iter()
        .chain(pinned.retired())
        .find(|s| s.location_cert.fingerprint() == cert.fingerprint())
    {
        return Err(operation(
            cert_path.as_str(),
            format!(
                "the location certificate {fpr} is holder {}'s already: a replacement's key is new",
                s.index
            ),
        ));
    }

    // The new sealed share: the recorded one, encrypted to the new key only.
    let sl = once(&r.sealed, RecoverySealed::NAME)?;
    let what = rec_name(sl.seq, RecoverySealed::NAME);
    if sl.body.holder != holder {
        return Err(wrong_holder(sl.seq, RecoverySealed::NAME, sl.body.holder));
    }
    let sealed_path = paths::sealed_share(holder);
    let sealed = listed_get(&sealed_path)?;
    let sealed_digest = kdf::sha256(sealed);
    if sl.body.sha256.0 != sealed_digest {
        return Err(operation(
            what,
            format!(
                "sha256 {}, but {sealed_path} has SHA-256 {}",
                sl.body.sha256,
                hex::encode(&sealed_digest)
            ),
        ));
    }
    if sl.body.replaces.0 != old.message_sha256 {
        return Err(operation(
            what,
            format!(
                "replaces {}, but holder {holder}'s pinned sealed share has SHA-256 {}",
                sl.body.replaces,
                hex::encode(&old.message_sha256)
            ),
        ));
    }
    let recipients: BTreeSet<String> = crate::pgp::message_recipients(sealed)
        .map_err(|e| operation(sealed_path.as_str(), e))?
        .iter()
        .map(|k| k.to_hex())
        .collect();
    let subkey_id = cert
        .keys()
        .subkeys()
        .find(|k| k.key().fingerprint().to_hex() == subkey)
        .map(|k| k.key().keyid().to_hex())
        .unwrap_or_default();
    if recipients != BTreeSet::from([subkey_id.clone()]) {
        return Err(operation(
            sealed_path.as_str(),
            format!(
                "encrypted to key ID(s) {}, not to the new location key's {subkey_id} alone",
                recipients.into_iter().collect::<Vec<_>>().join(",")
            ),
        ));
    }

    // The new shard file: the pinned one but for the holder's entry.
    let shards_bytes = listed_get(paths::SHARDS)?;
    let shards = std::str::from_utf8(shards_bytes)
        .map_err(|_| "not UTF-8".to_string())
        .and_then(|t| ShardFile::parse(t).map_err(|e| e.to_string()))
        .map_err(|e| operation(paths::SHARDS, e))?;
    check_new_shards(pinned, &shards, holder, &cert, sealed)?;

    // The new cards: the request's number, in order, each with the new key, none seen before.
    if r.cards.len() != usize::from(cards) {
        return Err(E::Structure(format!(
            "{} recovery.card records, the request asks for {cards} new card(s)",
            r.cards.len()
        )));
    }
    let mut serials: Vec<&str> = Vec::new();
    for (i, c) in r.cards.iter().enumerate() {
        let what = rec_name(c.seq, RecoveryCard::NAME);
        let b = c.body;
        if b.holder != holder {
            return Err(wrong_holder(c.seq, RecoveryCard::NAME, b.holder));
        }
        if usize::from(b.card) != i + 1 {
            return Err(operation(
                what,
                format!("card={}, where card {} is, in order", b.card, i + 1),
            ));
        }
        if b.location.0 != fpr {
            return Err(operation(
                what,
                format!(
                    "location {}, but the new location certificate is {fpr}",
                    b.location
                ),
            ));
        }
        new_serial(
            pinned,
            &serials,
            &b.serial,
            &what,
            "already: a replacement card is a new card",
        )?;
        serials.push(&b.serial);
    }

    // The new PIN file: the recorded one, to the holder's and the backup's certificates.
    let pn = once(&r.pins, RecoveryPins::NAME)?;
    let what = rec_name(pn.seq, RecoveryPins::NAME);
    if pn.body.holder != holder {
        return Err(wrong_holder(pn.seq, RecoveryPins::NAME, pn.body.holder));
    }
    let pins_path = paths::pin_file(holder);
    let pin_file = listed_get(&pins_path)?;
    let digest = kdf::sha256(pin_file);
    if pn.body.sha256.0 != digest {
        return Err(operation(
            what,
            format!(
                "sha256 {}, but {pins_path} has SHA-256 {}",
                pn.body.sha256,
                hex::encode(&digest)
            ),
        ));
    }
    if pn.body.replaces.0 != old.pin_file_sha256 {
        return Err(operation(
            what,
            format!(
                "replaces {}, but holder {holder}'s pinned PIN file has SHA-256 {}",
                pn.body.replaces,
                hex::encode(&old.pin_file_sha256)
            ),
        ));
    }
    let backup = plan.holder(h.backup).ok_or_else(|| {
        operation(
            what.as_str(),
            format!("the backup holder {} is not in the plan", h.backup),
        )
    })?;
    let certs: Vec<&plan::PersonalCert> = h.certs.iter().chain(&backup.certs).collect();
    let planned: Vec<String> = certs.iter().map(|c| c.fingerprint.to_hex()).collect();
    let recorded: Vec<String> = pn.body.recipients.iter().map(|f| f.0.clone()).collect();
    if recorded != planned {
        return Err(operation(
            what,
            format!(
                "recipients {}, but the personal certificates of holder {holder}, then of backup holder {}, are {}",
                recorded.join(","),
                backup.index,
                planned.join(",")
            ),
        ));
    }
    let time = std::time::UNIX_EPOCH + std::time::Duration::from_secs(u64::from(plan.time_unix));
    let bin = crate::pgp::dearmor(pin_file, openpgp::armor::Kind::Message)
        .map_err(|e| operation(pins_path.as_str(), e.to_string()))?;
    let found: BTreeSet<String> = crate::pgp::message_recipients(&bin)
        .map_err(|e| operation(pins_path.as_str(), e))?
        .iter()
        .map(|k| k.to_hex())
        .collect();
    let expected: BTreeSet<String> = certs
        .iter()
        .flat_map(|c| plan::encryption_keys(&c.cert, time))
        .map(|k| k.keyid().to_hex())
        .collect();
    if found != expected {
        return Err(operation(
            pins_path.as_str(),
            format!(
                "encrypted to key ID(s) {}, but the encryption keys of holder {holder}'s and backup holder {}'s personal certificates are {}",
                found.into_iter().collect::<Vec<_>>().join(","),
                backup.index,
                expected.into_iter().collect::<Vec<_>>().join(",")
            ),
        ));
    }

    Ok(vec![
        format!(
            "holder {holder} ({}): share rebuilt from holders {} ({} recombination check(s) with {})",
            h.name, rb.body.from, rb.body.checked, rb.body.second
        ),
        format!("{cert_path}: new location key {fpr}, replacing {old_fpr}"),
        format!(
            "{sealed_path}: the new sealed share (SHA-256 {}), encrypted to the new key only, in {}",
            hex::encode(&sealed_digest),
            paths::SHARDS
        ),
        format!(
            "{}: the pinned shard file but for holder {holder}'s entry",
            paths::SHARDS
        ),
        format!("new cards: {}", serials.join(", ")),
        format!(
            "{pins_path}: to holder {holder}'s and backup holder {}'s personal certificates",
            backup.index
        ),
    ])
}

/// Check 7 for `reshare` (docs/formats/recovery.md, "reshare"): `recovery.reshare` names the
/// request's new plan, `plan.toml` is that plan (the same canonical hash), `shards.toml` is a
/// full shard file of it (the pinned root, ceremony, key time; one share per new holder whose
/// location certificate and message are the `recovery.new-location` / `recovery.new-sealed`
/// records', each location certificate of the shape generation makes and new to the
/// ceremony, each message encrypted to its key alone), `recovery.new-subsets` is consistent
/// with M'-of-N', `recovery.old-shares` names the plan reshared, each new holder has its
/// plan's number of `recovery.new-card` records (distinct serials, none a card of the ceremony
/// before) and one `recovery.new-pins` record for its PIN file, encrypted to exactly its and
/// its backup's personal certificates' keys. Returns the report's lines.
fn check_reshare(
    g: &Generation<'_>,
    r: &Records<'_>,
    listed: &HashMap<String, Vec<u8>>,
    new_plan: &Plan,
) -> Result<Vec<String>, E> {
    let pinned = g.pinned;
    let old_plan = pinned.plan();
    let kind = OperationKind::Reshare;
    let listed_get = |path: &str| -> Result<&Vec<u8>, E> {
        listed.get(path).ok_or_else(|| E::NotListed {
            operation: kind,
            path: path.to_string(),
        })
    };
    let plan_hash = hex::encode(&new_plan.hash());
    let n = usize::from(new_plan.holder_count());

    // recovery.reshare: the request's new plan.
    let rs = match r.reshare.as_slice() {
        [one] => one,
        found => {
            return Err(E::Structure(format!(
                "{} {} records; a reshare recovery has one",
                found.len(),
                RecoveryReshare::NAME
            )));
        }
    };
    let what = rec_name(rs.seq, RecoveryReshare::NAME);
    for (field, recorded, expected) in [
        ("plan", rs.body.plan.to_string(), plan_hash.clone()),
        (
            "threshold",
            rs.body.threshold.to_string(),
            new_plan.threshold.to_string(),
        ),
        ("holders", rs.body.holders.to_string(), n.to_string()),
        (
            "witnesses",
            rs.body.witnesses.to_string(),
            new_plan.witnesses.len().to_string(),
        ),
    ] {
        if recorded != expected {
            return Err(operation(
                what,
                format!("{field}={recorded}, but the request's new plan gives {expected}"),
            ));
        }
    }

    // plan.toml: the request's new plan.
    let plan_text = std::str::from_utf8(listed_get(paths::PLAN)?)
        .map_err(|_| operation(paths::PLAN, "not UTF-8"))?;
    let written = Plan::parse(plan_text).map_err(|e| operation(paths::PLAN, e.to_string()))?;
    if written.hash() != new_plan.hash() {
        return Err(operation(
            paths::PLAN,
            format!(
                "its canonical hash is {}, but the request's new plan's is {plan_hash}",
                hex::encode(&written.hash())
            ),
        ));
    }

    // shards.toml: the new plan's full shard file.
    let shards_bytes = listed_get(paths::SHARDS)?;
    let shards = std::str::from_utf8(shards_bytes)
        .map_err(|_| "not UTF-8".to_string())
        .and_then(|t| ShardFile::parse(t).map_err(|e| e.to_string()))
        .map_err(|e| operation(paths::SHARDS, e))?;
    for (field, expected, found) in [
        (
            "ceremony_id",
            pinned.ceremony_id().to_string(),
            shards.ceremony_id.clone(),
        ),
        (
            "root_fingerprint",
            pinned.root_fingerprint().to_hex(),
            shards.root_fingerprint().to_hex(),
        ),
        (
            "plan_hash",
            plan_hash.clone(),
            hex::encode(&shards.plan_hash),
        ),
        (
            "threshold",
            new_plan.threshold.to_string(),
            shards.threshold.to_string(),
        ),
        ("count", n.to_string(), shards.count.to_string()),
        (
            "key_time",
            pinned.key_time().to_string(),
            shards.key_time.to_string(),
        ),
        ("shares", n.to_string(), shards.shares.len().to_string()),
    ] {
        if expected != found {
            return Err(operation(
                paths::SHARDS,
                format!("{field} {found}, but the reshare's is {expected}"),
            ));
        }
    }
    if r.new_location.len() != n || r.new_sealed.len() != n || r.new_pins.len() != n {
        return Err(E::Structure(format!(
            "{} {}, {} {} and {} {} records, the new plan has {n} holders (one each)",
            r.new_location.len(),
            RecoveryNewLocation::NAME,
            r.new_sealed.len(),
            RecoveryNewSealed::NAME,
            r.new_pins.len(),
            RecoveryNewPins::NAME
        )));
    }
    let mut new_fprs: Vec<String> = Vec::with_capacity(n);
    for (i, (h, s)) in new_plan.holders.iter().zip(&shards.shares).enumerate() {
        if s.index != h.index || s.holder != h.name {
            return Err(operation(
                paths::SHARDS,
                format!(
                    "share {} is {:?}, the new plan's holder {} is {:?}",
                    s.index, s.holder, h.index, h.name
                ),
            ));
        }
        let loc = &r.new_location[i];
        let what = rec_name(loc.seq, RecoveryNewLocation::NAME);
        if loc.body.holder != h.index || loc.body.name != h.name {
            return Err(operation(
                what,
                format!(
                    "holder={} name={:?}, where the new plan's holder {} ({:?}) is, in order",
                    loc.body.holder, loc.body.name, h.index, h.name
                ),
            ));
        }
        let cert = &s.location_cert;
        let subkey = crate::verify::check_location_cert(cert, pinned.key_time())
            .map_err(|e| operation(format!("{} share {}", paths::SHARDS, h.index), e))?;
        let fpr = cert.fingerprint().to_hex();
        for (field, recorded, found) in [
            ("fingerprint", &loc.body.fingerprint.0, &fpr),
            ("subkey", &loc.body.subkey.0, &subkey),
        ] {
            if recorded != found {
                return Err(operation(
                    what,
                    format!(
                        "{field} {recorded}, but {} share {} gives {found}",
                        paths::SHARDS,
                        h.index
                    ),
                ));
            }
        }
        if let Some(o) = pinned
            .shares()
            .iter()
            .chain(pinned.retired())
            .find(|o| o.location_cert.fingerprint() == cert.fingerprint())
        {
            return Err(operation(
                what,
                format!(
                    "the location certificate {fpr} is holder {}'s of this ceremony already: a reshare's keys are new",
                    o.index
                ),
            ));
        }
        if new_fprs.contains(&fpr) {
            return Err(operation(
                what,
                format!("the location certificate {fpr} is another new holder's too"),
            ));
        }
        new_fprs.push(fpr);

        let sl = &r.new_sealed[i];
        let what = rec_name(sl.seq, RecoveryNewSealed::NAME);
        let digest = s.message_sha256();
        if sl.body.holder != h.index {
            return Err(operation(
                what,
                format!(
                    "holder={}, where holder {} is, in order",
                    sl.body.holder, h.index
                ),
            ));
        }
        if sl.body.sha256.0 != digest {
            return Err(operation(
                what,
                format!(
                    "sha256 {}, but {} share {}'s message has SHA-256 {}",
                    sl.body.sha256,
                    paths::SHARDS,
                    h.index,
                    hex::encode(&digest)
                ),
            ));
        }
        let recipients: BTreeSet<String> = crate::pgp::message_recipients(&s.message)
            .map_err(|e| operation(format!("{} share {}", paths::SHARDS, h.index), e))?
            .iter()
            .map(|k| k.to_hex())
            .collect();
        let subkey_id = cert
            .keys()
            .subkeys()
            .find(|k| k.key().fingerprint().to_hex() == subkey)
            .map(|k| k.key().keyid().to_hex())
            .unwrap_or_default();
        if recipients != BTreeSet::from([subkey_id.clone()]) {
            return Err(operation(
                format!("{} share {}", paths::SHARDS, h.index),
                format!(
                    "encrypted to key ID(s) {}, not to its location key's {subkey_id} alone",
                    recipients.into_iter().collect::<Vec<_>>().join(",")
                ),
            ));
        }
    }

    // recovery.new-subsets: M'-of-N'.
    let ns = match r.new_subsets.as_slice() {
        [one] => one,
        found => {
            return Err(E::Structure(format!(
                "{} {} records; a reshare recovery has one",
                found.len(),
                RecoveryNewSubsets::NAME
            )));
        }
    };
    let what = rec_name(ns.seq, RecoveryNewSubsets::NAME);
    let total = crate::recombine::binomial(n as u64, u64::from(new_plan.threshold));
    let b = ns.body;
    let exhaustive = total <= crate::recombine::EXHAUSTIVE_BOUND;
    let policy_ok = match b.policy {
        crate::record::SubsetPolicy::All => exhaustive && b.checked as u128 == total,
        crate::record::SubsetPolicy::CyclicWindowsRandom => {
            !exhaustive && b.checked == n + crate::recombine::RANDOM_SUBSETS
        }
    };
    if b.total.0 != total || !policy_ok || b.second.is_empty() || b.combinations < b.checked {
        return Err(operation(
            what,
            format!(
                "checked={} total={} policy={} combinations={}, but {}-of-{n} has {} subsets (all checked up to {}, else the {n} windows and {} random ones), each combined by both implementations",
                b.checked,
                crate::record::FieldValue::to_field(&b.total),
                crate::record::FieldValue::to_field(&b.policy),
                b.combinations,
                new_plan.threshold,
                total,
                crate::recombine::EXHAUSTIVE_BOUND,
                crate::recombine::RANDOM_SUBSETS
            ),
        ));
    }

    // recovery.old-shares: the plan reshared.
    let os = match r.old_shares.as_slice() {
        [one] => one,
        found => {
            return Err(E::Structure(format!(
                "{} {} records; a reshare recovery has one",
                found.len(),
                RecoveryOldShares::NAME
            )));
        }
    };
    let what = rec_name(os.seq, RecoveryOldShares::NAME);
    for (field, recorded, expected) in [
        (
            "plan",
            os.body.plan.to_string(),
            hex::encode(&old_plan.hash()),
        ),
        (
            "threshold",
            os.body.threshold.to_string(),
            old_plan.threshold.to_string(),
        ),
        (
            "holders",
            os.body.holders.to_string(),
            old_plan.holder_count().to_string(),
        ),
    ] {
        if recorded != expected {
            return Err(operation(
                what,
                format!(
                    "{field}={recorded}, but the pinned plan (the one reshared) gives {expected}"
                ),
            ));
        }
    }

    // recovery.new-card: each new holder's cards, once each, new serials.
    let mut serials: Vec<&str> = Vec::new();
    let mut seen: BTreeSet<(u8, u8)> = BTreeSet::new();
    for c in &r.new_cards {
        let what = rec_name(c.seq, RecoveryNewCard::NAME);
        let b = c.body;
        let Some(h) = new_plan.holder(b.holder) else {
            return Err(operation(
                what,
                format!("holder={}, not a holder of the new plan", b.holder),
            ));
        };
        if b.card == 0 || b.card > h.cards || !seen.insert((b.holder, b.card)) {
            return Err(operation(
                what,
                format!(
                    "card={} of holder {}, who gets cards 1..={} once each",
                    b.card, b.holder, h.cards
                ),
            ));
        }
        let fpr = &new_fprs[usize::from(b.holder) - 1];
        if &b.location.0 != fpr {
            return Err(operation(
                what,
                format!(
                    "location {}, but holder {}'s new location certificate is {fpr}",
                    b.location, b.holder
                ),
            ));
        }
        new_serial(
            pinned,
            &serials,
            &b.serial,
            &what,
            "of this ceremony already: a reshare's cards are new cards",
        )?;
        serials.push(&b.serial);
    }
    let cards_planned: usize = new_plan.holders.iter().map(|h| usize::from(h.cards)).sum();
    if seen.len() != cards_planned {
        return Err(E::Structure(format!(
            "{} {} records, the new plan has {cards_planned} cards",
            r.new_cards.len(),
            RecoveryNewCard::NAME
        )));
    }

    // recovery.new-pins: each new holder's PIN file, to them and their backup.
    let time =
        std::time::UNIX_EPOCH + std::time::Duration::from_secs(u64::from(new_plan.time_unix));
    for (h, pn) in new_plan.holders.iter().zip(&r.new_pins) {
        let what = rec_name(pn.seq, RecoveryNewPins::NAME);
        if pn.body.holder != h.index {
            return Err(operation(
                what,
                format!(
                    "holder={}, where holder {} is, in order",
                    pn.body.holder, h.index
                ),
            ));
        }
        let pins_path = paths::pin_file(h.index);
        let pin_file = listed_get(&pins_path)?;
        let digest = kdf::sha256(pin_file);
        if pn.body.sha256.0 != digest {
            return Err(operation(
                what,
                format!(
                    "sha256 {}, but {pins_path} has SHA-256 {}",
                    pn.body.sha256,
                    hex::encode(&digest)
                ),
            ));
        }
        let backup = new_plan.holder(h.backup).ok_or_else(|| {
            operation(
                what.as_str(),
                format!("the backup holder {} is not in the new plan", h.backup),
            )
        })?;
        let certs: Vec<&plan::PersonalCert> = h.certs.iter().chain(&backup.certs).collect();
        let planned: Vec<String> = certs.iter().map(|c| c.fingerprint.to_hex()).collect();
        let recorded: Vec<String> = pn.body.recipients.iter().map(|f| f.0.clone()).collect();
        if recorded != planned {
            return Err(operation(
                what,
                format!(
                    "recipients {}, but the new plan's personal certificates of holder {}, then of backup holder {}, are {}",
                    recorded.join(","),
                    h.index,
                    backup.index,
                    planned.join(",")
                ),
            ));
        }
        let bin = crate::pgp::dearmor(pin_file, openpgp::armor::Kind::Message)
            .map_err(|e| operation(pins_path.as_str(), e.to_string()))?;
        let found: BTreeSet<String> = crate::pgp::message_recipients(&bin)
            .map_err(|e| operation(pins_path.as_str(), e))?
            .iter()
            .map(|k| k.to_hex())
            .collect();
        let expected: BTreeSet<String> = certs
            .iter()
            .flat_map(|c| plan::encryption_keys(&c.cert, time))
            .map(|k| k.keyid().to_hex())
            .collect();
        if found != expected {
            return Err(operation(
                pins_path.as_str(),
                format!(
                    "encrypted to key ID(s) {}, but the encryption keys of the new plan's holder {}'s and backup holder {}'s personal certificates are {}",
                    found.into_iter().collect::<Vec<_>>().join(","),
                    h.index,
                    backup.index,
                    expected.into_iter().collect::<Vec<_>>().join(",")
                ),
            ));
        }
    }

    Ok(vec![
        format!(
            "{}: the new plan {plan_hash}, {}-of-{n} (was {}-of-{})",
            paths::PLAN,
            new_plan.threshold,
            old_plan.threshold,
            old_plan.holder_count()
        ),
        format!(
            "{}: {n} new shares under new location keys, the same root and key time",
            paths::SHARDS
        ),
        format!(
            "recorded: {} of {} {}-subsets of the new shares recombined at the ceremony (with {}; shares cannot be checked offline)",
            b.checked,
            crate::record::FieldValue::to_field(&b.total),
            new_plan.threshold,
            b.second
        ),
        format!("new cards: {}", serials.join(", ")),
        format!(
            "the old shares ({}-of-{}) still recombine to this root outside sherd until the old cards are destroyed",
            old_plan.threshold,
            old_plan.holder_count()
        ),
    ])
}

/// The new shard file is the pinned one, field by field and share by share, except holder
/// `holder`'s share: its location certificate is `cert` and its message `sealed`.
fn check_new_shards(
    pinned: &PinnedRoot,
    shards: &ShardFile,
    holder: u8,
    cert: &Cert,
    sealed: &[u8],
) -> Result<(), E> {
    let bad = |reason: String| operation(paths::SHARDS, reason);
    let base = pinned.shard_file();
    for (field, expected, found) in [
        (
            "ceremony_id",
            base.ceremony_id.clone(),
            shards.ceremony_id.clone(),
        ),
        (
            "plan_hash",
            hex::encode(&base.plan_hash),
            hex::encode(&shards.plan_hash),
        ),
        (
            "threshold",
            base.threshold.to_string(),
            shards.threshold.to_string(),
        ),
        ("count", base.count.to_string(), shards.count.to_string()),
        (
            "key_time",
            base.key_time.to_string(),
            shards.key_time.to_string(),
        ),
        (
            "root_fingerprint",
            base.root_fingerprint().to_hex(),
            shards.root_fingerprint().to_hex(),
        ),
        (
            "shares",
            base.shares.len().to_string(),
            shards.shares.len().to_string(),
        ),
    ] {
        if expected != found {
            return Err(bad(format!(
                "{field} {found}, but the pinned shard file's is {expected}"
            )));
        }
    }
    for (b, s) in base.shares.iter().zip(&shards.shares) {
        if b.index != s.index || b.holder != s.holder {
            return Err(bad(format!(
                "share {} is holder {} ({:?}), the pinned shard file's is {} ({:?})",
                s.index, s.index, s.holder, b.index, b.holder
            )));
        }
        let (want_cert, want_sha) = if s.index == holder {
            (cert.fingerprint().to_hex(), kdf::sha256(sealed))
        } else {
            (b.location_cert.fingerprint().to_hex(), b.message_sha256())
        };
        let whose = if s.index == holder {
            "the new one"
        } else {
            "the pinned shard file's (only the replaced holder's share changes)"
        };
        if s.location_cert.fingerprint().to_hex() != want_cert {
            return Err(bad(format!(
                "share {}'s location certificate is {}, but {whose} is {want_cert}",
                s.index,
                s.location_cert.fingerprint().to_hex()
            )));
        }
        if s.message_sha256() != want_sha {
            return Err(bad(format!(
                "share {}'s message has SHA-256 {}, but {whose} has {}",
                s.index,
                hex::encode(&s.message_sha256()),
                hex::encode(&want_sha)
            )));
        }
    }
    Ok(())
}

/// Reads files of a recovery folder by the paths its transcript names, refusing any path that
/// could leave the folder (absolute, empty components, `.`, `..`) and any path through a
/// symbolic link.
pub fn recovery_folder_reader(dir: &Path) -> impl Fn(&str) -> io::Result<Vec<u8>> + '_ {
    move |p: &str| {
        if !path_stays_inside(p) {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "path leaves the folder",
            ));
        }
        let mut at = dir.to_path_buf();
        for c in p.split('/') {
            at.push(c);
            if std::fs::symlink_metadata(&at)?.file_type().is_symlink() {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidInput,
                    "a symbolic link: the folder's files are plain files",
                ));
            }
        }
        std::fs::read(at)
    }
}

/// Every file of the folder `dir`, recursively, as '/'-separated paths relative to it. A
/// symbolic link or any other entry that is neither a plain file nor a folder is an error
/// naming it.
pub fn list_folder(dir: &Path) -> io::Result<Vec<String>> {
    fn walk(dir: &Path, prefix: &str, out: &mut Vec<String>) -> io::Result<()> {
        for entry in std::fs::read_dir(dir)? {
            let entry = entry?;
            let name = entry.file_name().to_string_lossy().into_owned();
            let rel = if prefix.is_empty() {
                name
            } else {
                format!("{prefix}/{name}")
            };
            let ft = std::fs::symlink_metadata(entry.path())?.file_type();
            if ft.is_dir() {
                walk(&entry.path(), &rel, out)?;
            } else if ft.is_file() {
                out.push(rel);
            } else {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidData,
                    format!("{rel}: not a plain file or folder (a link?)"),
                ));
            }
        }
        Ok(())
    }
    let mut out = Vec::new();
    walk(dir, "", &mut out)?;
    out.sort();
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_that_leave_the_folder_are_refused() {
        for bad in [
            "",
            "/etc/passwd",
            "../x",
            "a/../b",
            "a//b",
            "./a",
            "a/",
            "a\\b",
            "a\nb",
        ] {
            assert!(!path_stays_inside(bad), "{bad:?}");
        }
        for good in [
            "request.toml",
            "signatures/by-position/001.sig",
            "signatures/a..b.sig",
        ] {
            assert!(path_stays_inside(good), "{good:?}");
        }
    }
}
