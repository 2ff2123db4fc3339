//! The transcript: hash-chained records of every public value of a ceremony, signed by the root
//! key; its final hash is read aloud as PGP words. Format: docs/formats/transcript.md.

use sequoia_openpgp as openpgp;

use openpgp::Cert;
use openpgp::packet::Signature;
use openpgp::packet::signature::SignatureBuilder;
use openpgp::parse::Parse;
use openpgp::serialize::SerializeInto;
use openpgp::types::SignatureType;

use crate::keys::{KeyError, RootKey, key_err};
use crate::record::{self, CoreRecord, Entry, Kind, Note, RecordError};
use crate::{hex, kdf, words};

/// The first line of every transcript this code writes.
pub const HEADER: &str = "sherd-transcript/3";
/// The first line of format-2 transcripts (read, never written).
pub const HEADER_V2: &str = "sherd-transcript/2";
/// The first line of format-1 transcripts (read, never written).
pub const HEADER_V1: &str = "sherd-transcript/1";
/// Longest record value, in bytes.
pub const MAX_VALUE_LEN: usize = 4096;

/// A transcript's format, named by its first line.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Format {
    /// `sherd-transcript/1`: the core's records as in format 2; callers' values were free
    /// text, some of it ambiguous (`name=the witnesses present`), so they are not interpreted.
    V1,
    /// `sherd-transcript/2`: every value is `key=value` fields under one quoting rule
    /// ([`crate::record`]), and parsed strictly.
    V2,
    /// `sherd-transcript/3`: format 2, and the ceremony records what its second
    /// implementations cross-checked (`dual.shamir`, `dual.signatures`, `dual.fingerprint`),
    /// which the verifier requires.
    #[default]
    V3,
}

impl Format {
    /// The transcript's first line.
    pub fn header(self) -> &'static str {
        match self {
            Format::V1 => HEADER_V1,
            Format::V2 => HEADER_V2,
            Format::V3 => HEADER,
        }
    }

    /// The hash the first record chains to: SHA-256 of the header line.
    pub fn genesis(self) -> [u8; 32] {
        kdf::sha256(self.header().as_bytes())
    }

    /// Whether records of `kind` are the core's typed records in this format.
    fn is_core(self, kind: Kind) -> bool {
        self != Format::V1 || kind.reserved_in_format_1()
    }
}

/// One record.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Record {
    /// 1-based sequence number.
    pub seq: u32,
    /// Hash of the previous record (or of the header line for record 1).
    pub prev: [u8; 32],
    /// What the record is about, e.g. `plan.hash`.
    pub kind: String,
    /// The public value.
    pub value: String,
    /// SHA-256 of this record's line.
    pub hash: [u8; 32],
}

impl Record {
    /// The record's line, without the newline.
    pub fn line(&self) -> String {
        format!(
            "{} {} {} {}",
            self.seq,
            hex::encode(&self.prev),
            self.kind,
            self.value
        )
    }
}

/// Why a transcript was refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[non_exhaustive]
pub enum TranscriptError {
    /// Line 1 is not [`HEADER`], [`HEADER_V2`] or [`HEADER_V1`].
    #[error(
        "line 1 must be exactly {HEADER:?} (or {HEADER_V2:?} or {HEADER_V1:?} for the earlier formats)"
    )]
    BadHeader,
    /// The file is not valid UTF-8.
    #[error("the transcript is not UTF-8")]
    NotUtf8,
    /// The file does not end with a newline: it may have been cut short.
    #[error("the transcript must end with a newline (it may have been truncated)")]
    MissingFinalNewline,
    /// A line is not `seq prev kind value` separated by single spaces, or its previous hash is
    /// not 64 lower-case hex digits.
    #[error("line {line}: {reason}")]
    BadLine {
        /// Line number in the file, 1-based (the header is line 1).
        line: usize,
        /// What is wrong with it.
        reason: String,
    },
    /// A record's number is not the next one: records missing, repeated or reordered.
    #[error(
        "line {line}: record number {found}, expected {expected} (records missing, repeated or reordered)"
    )]
    Sequence {
        /// Line number in the file, 1-based.
        line: usize,
        /// The number as written.
        found: String,
        /// The number expected: the records so far plus one.
        expected: u32,
    },
    /// A record's previous-hash is not the hash of the record before (of the header line, for
    /// record 1).
    #[error(
        "line {line}: previous-hash {found} does not match the hash of the record before, {expected}: the chain is broken"
    )]
    BrokenChain {
        /// Line number in the file, 1-based.
        line: usize,
        /// The previous-hash as written, lower-case hex.
        found: String,
        /// The hash it should be, lower-case hex.
        expected: String,
    },
    /// A record kind is not well formed ([`record::valid_kind`]).
    #[error("invalid record kind {kind:?}: use 1 to 64 of a-z, 0-9, '.', '_', '-'")]
    BadKind {
        /// The kind as given.
        kind: String,
    },
    /// A record value is empty, longer than [`MAX_VALUE_LEN`] bytes, or contains control
    /// characters.
    #[error("invalid value for {kind}: {reason}")]
    BadValue {
        /// The record's kind.
        kind: String,
        /// Which rule the value breaks.
        reason: &'static str,
    },
    /// A record's value does not parse as its kind's fields (every record in format 2; the
    /// core's kinds in format 1).
    #[error("record {seq}: {source}")]
    BadRecord {
        /// The record's sequence number, 1-based.
        seq: u32,
        /// Why its value was refused.
        source: RecordError,
    },
    /// The detached signature is unreadable, not a binary-document signature, or does not
    /// verify with the root certificate's primary key; what went wrong.
    #[error("the transcript signature does not verify: {0}")]
    BadSignature(String),
}

fn check_kind(kind: &str) -> Result<(), TranscriptError> {
    if record::valid_kind(kind) {
        Ok(())
    } else {
        Err(TranscriptError::BadKind {
            kind: kind.to_string(),
        })
    }
}

fn check_value(kind: &str, value: &str) -> Result<(), TranscriptError> {
    let bad = |reason| {
        Err(TranscriptError::BadValue {
            kind: kind.to_string(),
            reason,
        })
    };
    if value.is_empty() {
        return bad("empty");
    }
    if value.len() > MAX_VALUE_LEN {
        return bad("longer than 4096 bytes");
    }
    if value.chars().any(char::is_control) {
        return bad("control characters (including newlines) are not allowed");
    }
    Ok(())
}

/// A hash-chained transcript.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Transcript {
    format: Format,
    records: Vec<Record>,
}

impl Transcript {
    /// An empty transcript in the current format.
    pub fn new() -> Self {
        Self::default()
    }

    /// The format it was written in.
    pub fn format(&self) -> Format {
        self.format
    }

    /// Appends a record the core writes.
    pub(crate) fn push_core(
        &mut self,
        record: impl Into<CoreRecord>,
    ) -> Result<&Record, TranscriptError> {
        let r = record.into();
        self.append(r.kind().name(), &r.encode())
    }

    /// Appends a caller's record.
    pub(crate) fn push_note(&mut self, note: &Note) -> Result<&Record, TranscriptError> {
        self.append(note.kind(), &note.encode())
    }

    /// Appends a line; refuses kinds and values outside the format.
    fn append(&mut self, kind: &str, value: &str) -> Result<&Record, TranscriptError> {
        check_kind(kind)?;
        check_value(kind, value)?;
        let seq = u32::try_from(self.records.len() + 1).expect("fewer than 2^32 records");
        if self.format != Format::V1 {
            Entry::parse(kind, value)
                .map_err(|source| TranscriptError::BadRecord { seq, source })?;
        }
        let prev = self.final_hash();
        let mut rec = Record {
            seq,
            prev,
            kind: kind.to_string(),
            value: value.to_string(),
            hash: [0; 32],
        };
        rec.hash = kdf::sha256(rec.line().as_bytes());
        self.records.push(rec);
        Ok(self.records.last().expect("just pushed"))
    }

    /// All records in order.
    pub fn records(&self) -> &[Record] {
        &self.records
    }

    /// The core's records, typed, with their lines (in format 1, the kinds it reserved to the
    /// core; their values were already unambiguous there).
    pub fn core_records(&self) -> Result<Vec<(&Record, CoreRecord)>, TranscriptError> {
        let mut out = Vec::new();
        for r in &self.records {
            let Some(kind) = Kind::from_name(&r.kind).filter(|k| self.format.is_core(*k)) else {
                continue;
            };
            let typed = CoreRecord::parse(kind, &r.value)
                .map_err(|source| TranscriptError::BadRecord { seq: r.seq, source })?;
            out.push((r, typed));
        }
        Ok(out)
    }

    /// The hash of the last record (the genesis hash when empty).
    pub fn final_hash(&self) -> [u8; 32] {
        self.records
            .last()
            .map(|r| r.hash)
            .unwrap_or_else(|| self.format.genesis())
    }

    /// The final hash as PGP words, for the witnesses to write down.
    pub fn final_words(&self) -> String {
        words::to_phrase(&self.final_hash())
    }

    /// The file text.
    pub fn to_text(&self) -> String {
        let mut out = String::from(self.format.header());
        out.push('\n');
        for r in &self.records {
            out.push_str(&r.line());
            out.push('\n');
        }
        out
    }

    /// Parses a transcript file and checks the whole chain; in format 2 every record's value
    /// must also parse strictly as its kind's fields.
    pub fn parse(bytes: &[u8]) -> Result<Transcript, TranscriptError> {
        let text = std::str::from_utf8(bytes).map_err(|_| TranscriptError::NotUtf8)?;
        let body = text
            .strip_suffix('\n')
            .ok_or(TranscriptError::MissingFinalNewline)?;
        let mut lines = body.split('\n');
        let format = match lines.next() {
            Some(HEADER) => Format::V3,
            Some(HEADER_V2) => Format::V2,
            Some(HEADER_V1) => Format::V1,
            _ => return Err(TranscriptError::BadHeader),
        };
        let mut t = Transcript {
            format,
            records: Vec::new(),
        };
        for (i, line) in lines.enumerate() {
            let lineno = i + 2;
            let bad = |reason: &str| TranscriptError::BadLine {
                line: lineno,
                reason: reason.to_string(),
            };
            let mut parts = line.splitn(4, ' ');
            let (Some(seq), Some(prev), Some(kind), Some(value)) =
                (parts.next(), parts.next(), parts.next(), parts.next())
            else {
                return Err(bad(
                    "expected: number, previous hash, kind, value, separated by single spaces",
                ));
            };
            let expected = u32::try_from(t.records.len() + 1).expect("fewer than 2^32 records");
            if seq != expected.to_string() {
                return Err(TranscriptError::Sequence {
                    line: lineno,
                    found: seq.to_string(),
                    expected,
                });
            }
            let prev_bytes: [u8; 32] = hex::decode_array(prev)
                .ok_or_else(|| bad("previous hash must be 64 lower-case hex digits"))?;
            if prev_bytes != t.final_hash() {
                return Err(TranscriptError::BrokenChain {
                    line: lineno,
                    found: prev.to_string(),
                    expected: hex::encode(&t.final_hash()),
                });
            }
            t.append(kind, value)?;
        }
        Ok(t)
    }

    /// Signs the transcript text with the root key: an ASCII-armored detached signature dated
    /// `time_unix`.
    pub fn sign(&self, root: &RootKey, time_unix: u32) -> Result<Vec<u8>, KeyError> {
        let mut signer = root.signer();
        let time = std::time::UNIX_EPOCH + std::time::Duration::from_secs(u64::from(time_unix));
        let sig = SignatureBuilder::new(SignatureType::Binary)
            .set_signature_creation_time(time)
            .and_then(|b| b.sign_message(&mut signer, self.to_text().as_bytes()))
            .map_err(key_err("the transcript signature"))?;
        let binary = openpgp::Packet::from(sig)
            .to_vec()
            .map_err(key_err("the transcript signature"))?;
        Ok(crate::pgp::armor(&binary, openpgp::armor::Kind::Signature))
    }
}

/// Verifies a detached signature over `bytes` by the primary key of `root_cert`; returns its
/// creation time (Unix seconds), which callers compare with the time it must carry.
pub fn verify_signature(
    root_cert: &Cert,
    bytes: &[u8],
    armored_sig: &[u8],
) -> Result<Option<u64>, TranscriptError> {
    let bad = |e: String| TranscriptError::BadSignature(e);
    let sig: Signature = match openpgp::Packet::from_bytes(armored_sig) {
        Ok(openpgp::Packet::Signature(s)) => s,
        Ok(p) => {
            return Err(bad(format!(
                "expected a signature packet, found {}",
                p.tag()
            )));
        }
        Err(e) => return Err(bad(format!("unreadable signature: {e:#}"))),
    };
    if sig.typ() != SignatureType::Binary {
        return Err(bad(format!(
            "signature type {}, expected binary",
            sig.typ()
        )));
    }
    sig.verify_message(root_cert.primary_key().key(), bytes)
        .map_err(|e| bad(format!("{e:#}")))?;
    Ok(sig
        .signature_creation_time()
        .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
        .map(|d| d.as_secs()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::record::{Fields, PlanHash, RootFingerprint, WitnessConfirm};
    use proptest::prelude::*;

    fn note(kind: &str, value: &str) -> Note {
        Note::new(kind, Fields::new().with("v", value)).unwrap()
    }

    fn arb_notes() -> impl Strategy<Value = Vec<Note>> {
        proptest::collection::vec(
            ("[a-z0-9][a-z0-9._-]{0,20}", "[ -~é]{0,40}")
                .prop_filter("not a core kind", |(k, _)| Kind::from_name(k).is_none())
                .prop_map(|(k, v)| note(&k, &v)),
            0..20,
        )
    }

    proptest! {
        #[test]
        fn round_trip(notes in arb_notes()) {
            let mut t = Transcript::new();
            for n in &notes {
                t.push_note(n).unwrap();
            }
            let text = t.to_text();
            let back = Transcript::parse(text.as_bytes()).unwrap();
            prop_assert_eq!(back.final_hash(), t.final_hash());
            prop_assert_eq!(back, t);
        }

        /// Our chain check, not SHA-256, is what this exercises: a change anywhere before the
        /// last record is refused by the parser itself (the next record's previous-hash no
        /// longer matches, or the line no longer parses), never read as another transcript.
        /// (A change in the last record changes the final hash, which the root signature and
        /// the witnesses' words cover.)
        #[test]
        fn a_change_before_the_last_record_is_refused(notes in arb_notes(), at in any::<prop::sample::Index>(), flip in 1u8..=255) {
            prop_assume!(notes.len() >= 2);
            let mut t = Transcript::new();
            for n in &notes {
                t.push_note(n).unwrap();
            }
            let text = t.to_text();
            let last_line_start = text[..text.len() - 1].rfind('\n').unwrap() + 1;
            let mut bytes = text.into_bytes();
            let i = at.index(last_line_start);
            bytes[i] ^= flip;
            prop_assert!(Transcript::parse(&bytes).is_err(), "byte {} changed and still parsed", i);
        }

        #[test]
        fn parse_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..300)) {
            let _ = Transcript::parse(&bytes);
        }
    }

    fn sample() -> Transcript {
        let mut t = Transcript::new();
        t.push_core(PlanHash(record::Hash32([0xaa; 32]))).unwrap();
        t.push_core(RootFingerprint(record::Fpr("BB".repeat(20))))
            .unwrap();
        t.push_core(WitnessConfirm {
            name: "Wendy".into(),
            step: "plan".into(),
        })
        .unwrap();
        t
    }

    #[test]
    fn truncation_reordering_and_breaks() {
        let t = sample();
        let text = t.to_text();
        let lines: Vec<&str> = text.lines().collect();

        let truncated = &text[..text.len() - 1];
        assert_eq!(
            Transcript::parse(truncated.as_bytes()).unwrap_err(),
            TranscriptError::MissingFinalNewline
        );

        // A record dropped from the end still parses (a shorter valid chain): the final hash
        // and the signature are what catch it.
        let shorter = format!("{}\n", lines[..3].join("\n"));
        let s = Transcript::parse(shorter.as_bytes()).unwrap();
        assert_ne!(s.final_hash(), t.final_hash());

        let dropped_middle = format!("{}\n{}\n{}\n", lines[0], lines[1], lines[3]);
        assert!(matches!(
            Transcript::parse(dropped_middle.as_bytes()).unwrap_err(),
            TranscriptError::Sequence {
                line: 3,
                expected: 2,
                ..
            }
        ));

        let swapped = format!("{}\n{}\n{}\n{}\n", lines[0], lines[2], lines[1], lines[3]);
        assert!(matches!(
            Transcript::parse(swapped.as_bytes()).unwrap_err(),
            TranscriptError::Sequence { line: 2, .. }
        ));

        let edited = text.replace("name=Wendy", "name=Mallory");
        assert_eq!(
            Transcript::parse(edited.as_bytes()).unwrap().records()[2].value,
            "name=Mallory step=plan"
        );
        let edited_middle = text.replace(&"a".repeat(64), &format!("{}b", "a".repeat(63)));
        assert!(matches!(
            Transcript::parse(edited_middle.as_bytes()).unwrap_err(),
            TranscriptError::BrokenChain { line: 3, .. }
        ));

        assert_eq!(
            Transcript::parse(b"sherd-transcript/4\n").unwrap_err(),
            TranscriptError::BadHeader
        );
        assert!(matches!(
            t.clone().append("Bad Kind", "x=y"),
            Err(TranscriptError::BadKind { .. })
        ));
        assert!(matches!(
            t.clone().append("ok", "line\nbreak"),
            Err(TranscriptError::BadValue { .. })
        ));
    }

    #[test]
    fn format_2_values_parse_strictly_format_1_values_are_kept() {
        let v2 = format!(
            "{HEADER}\n1 {} witness.confirm name=the witnesses present step=plan\n",
            hex::encode(&Format::V3.genesis())
        );
        assert!(matches!(
            Transcript::parse(v2.as_bytes()).unwrap_err(),
            TranscriptError::BadRecord { seq: 1, .. }
        ));
        let v1 = format!(
            "{HEADER_V1}\n1 {} witness.confirm name=the witnesses present step=plan\n",
            hex::encode(&Format::V1.genesis())
        );
        let t = Transcript::parse(v1.as_bytes()).unwrap();
        assert_eq!(t.format(), Format::V1);
        assert!(
            t.core_records().unwrap().is_empty(),
            "not the core's in format 1"
        );
        assert_eq!(t.to_text(), v1);
    }

    #[test]
    fn chain_is_sha256_of_lines() {
        let t = sample();
        let r1 = &t.records()[0];
        assert_eq!(r1.prev, kdf::sha256(b"sherd-transcript/3"));
        let line = format!("1 {} plan.hash {}", hex::encode(&r1.prev), "a".repeat(64));
        assert_eq!(r1.hash, kdf::sha256(line.as_bytes()));
        assert_eq!(t.records()[1].prev, r1.hash);
        let typed = t.core_records().unwrap();
        assert_eq!(
            typed[2].1,
            CoreRecord::WitnessConfirm(WitnessConfirm {
                name: "Wendy".into(),
                step: "plan".into()
            })
        );
    }
}
