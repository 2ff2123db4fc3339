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
use crate::{hex, kdf, words};

/// The first line of every transcript.
pub const HEADER: &str = "sherd-transcript/1";
/// Longest record kind, in bytes.
pub const MAX_KIND_LEN: usize = 64;
/// Longest record value, in bytes.
pub const MAX_VALUE_LEN: usize = 4096;

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

    /// The value of `key=` in a value made of space-separated `key=value` fields.
    pub fn field(&self, key: &str) -> Option<&str> {
        self.value
            .split(' ')
            .find_map(|kv| kv.strip_prefix(key).and_then(|rest| rest.strip_prefix('=')))
    }
}

/// Why a transcript was refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[non_exhaustive]
pub enum TranscriptError {
    #[error("line 1 must be exactly {HEADER:?}")]
    BadHeader,
    #[error("the transcript is not UTF-8")]
    NotUtf8,
    #[error("the transcript must end with a newline (it may have been truncated)")]
    MissingFinalNewline,
    #[error("line {line}: {reason}")]
    BadLine { line: usize, reason: String },
    #[error(
        "line {line}: record number {found}, expected {expected} (records missing, repeated or reordered)"
    )]
    Sequence {
        line: usize,
        found: String,
        expected: u32,
    },
    #[error(
        "line {line}: previous-hash {found} does not match the hash of the record before, {expected}: the chain is broken"
    )]
    BrokenChain {
        line: usize,
        found: String,
        expected: String,
    },
    #[error("invalid record kind {kind:?}: use 1 to 64 of a-z, 0-9, '.', '_', '-'")]
    BadKind { kind: String },
    #[error("invalid value for {kind}: {reason}")]
    BadValue { kind: String, reason: &'static str },
    #[error("the transcript signature does not verify: {0}")]
    BadSignature(String),
}

fn check_kind(kind: &str) -> Result<(), TranscriptError> {
    let ok = !kind.is_empty()
        && kind.len() <= MAX_KIND_LEN
        && kind
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"._-".contains(&b))
        && kind.as_bytes()[0].is_ascii_alphanumeric();
    if ok {
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
    records: Vec<Record>,
}

impl Transcript {
    /// An empty transcript.
    pub fn new() -> Self {
        Self::default()
    }

    /// The hash the first record chains to: SHA-256 of the header line.
    pub fn genesis() -> [u8; 32] {
        kdf::sha256(HEADER.as_bytes())
    }

    /// Appends a record; refuses kinds and values outside the format.
    pub fn append(&mut self, kind: &str, value: &str) -> Result<&Record, TranscriptError> {
        check_kind(kind)?;
        check_value(kind, value)?;
        let seq = u32::try_from(self.records.len() + 1).expect("fewer than 2^32 records");
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

    /// Records of one kind.
    pub fn of_kind<'a>(&'a self, kind: &str) -> impl Iterator<Item = &'a Record> + 'a {
        let kind = kind.to_string();
        self.records.iter().filter(move |r| r.kind == kind)
    }

    /// The hash of the last record (the genesis hash when empty).
    pub fn final_hash(&self) -> [u8; 32] {
        self.records
            .last()
            .map(|r| r.hash)
            .unwrap_or_else(Self::genesis)
    }

    /// The final hash as PGP words, for the witnesses to write down.
    pub fn final_words(&self) -> String {
        words::to_phrase(&self.final_hash())
    }

    /// The file text.
    pub fn to_text(&self) -> String {
        let mut out = String::from(HEADER);
        out.push('\n');
        for r in &self.records {
            out.push_str(&r.line());
            out.push('\n');
        }
        out
    }

    /// Parses a transcript file and checks the whole chain.
    pub fn parse(bytes: &[u8]) -> Result<Transcript, TranscriptError> {
        let text = std::str::from_utf8(bytes).map_err(|_| TranscriptError::NotUtf8)?;
        let body = text
            .strip_suffix('\n')
            .ok_or(TranscriptError::MissingFinalNewline)?;
        let mut lines = body.split('\n');
        if lines.next() != Some(HEADER) {
            return Err(TranscriptError::BadHeader);
        }
        let mut t = Transcript::new();
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

/// Verifies a detached signature over `bytes` by the primary key of `root_cert`.
pub fn verify_signature(
    root_cert: &Cert,
    bytes: &[u8],
    armored_sig: &[u8],
) -> Result<(), TranscriptError> {
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
        .map_err(|e| bad(format!("{e:#}")))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn arb_records() -> impl Strategy<Value = Vec<(String, String)>> {
        proptest::collection::vec(("[a-z0-9][a-z0-9._-]{0,20}", "[ -~]{0,40}[!-~]"), 0..20)
    }

    proptest! {
        #[test]
        fn round_trip(records in arb_records()) {
            let mut t = Transcript::new();
            for (k, v) in &records {
                t.append(k, v).unwrap();
            }
            let text = t.to_text();
            let back = Transcript::parse(text.as_bytes()).unwrap();
            prop_assert_eq!(back.final_hash(), t.final_hash());
            prop_assert_eq!(back, t);
        }

        #[test]
        fn any_byte_change_is_caught(records in arb_records(), at in any::<prop::sample::Index>(), flip in 1u8..=255) {
            let mut t = Transcript::new();
            for (k, v) in &records {
                t.append(k, v).unwrap();
            }
            let mut bytes = t.to_text().into_bytes();
            let i = at.index(bytes.len());
            bytes[i] ^= flip;
            // Either refused, or (a value changed) the final hash differs from the original.
            if let Ok(back) = Transcript::parse(&bytes) {
                prop_assert_ne!(back.final_hash(), t.final_hash());
            }
        }

        #[test]
        fn parse_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..300)) {
            let _ = Transcript::parse(&bytes);
        }
    }

    fn sample() -> Transcript {
        let mut t = Transcript::new();
        t.append("plan.hash", "aa").unwrap();
        t.append("root.fingerprint", "BB").unwrap();
        t.append("witness.confirm", "name=Wendy step=plan").unwrap();
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
        let edited_middle = text.replace(" aa\n", " ab\n");
        assert!(matches!(
            Transcript::parse(edited_middle.as_bytes()).unwrap_err(),
            TranscriptError::BrokenChain { line: 3, .. }
        ));

        assert_eq!(
            Transcript::parse(b"sherd-transcript/2\n").unwrap_err(),
            TranscriptError::BadHeader
        );
        assert!(matches!(
            t.clone().append("Bad Kind", "x"),
            Err(TranscriptError::BadKind { .. })
        ));
        assert!(matches!(
            t.clone().append("ok", "line\nbreak"),
            Err(TranscriptError::BadValue { .. })
        ));
    }

    #[test]
    fn chain_is_sha256_of_lines() {
        let t = sample();
        let r1 = &t.records()[0];
        assert_eq!(r1.prev, kdf::sha256(b"sherd-transcript/1"));
        let line = format!("1 {} plan.hash aa", hex::encode(&r1.prev));
        assert_eq!(r1.hash, kdf::sha256(line.as_bytes()));
        assert_eq!(t.records()[1].prev, r1.hash);
        assert_eq!(t.records()[2].field("step"), Some("plan"));
        assert_eq!(t.records()[2].field("nam"), None);
    }
}
