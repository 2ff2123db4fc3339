//! Transcript records as types: one definition per record kind (its name, its fields in order,
//! each field's type), used both to write a record and to parse it back strictly. Format:
//! docs/formats/transcript.md.
//!
//! A record's value is a list of `key=value` fields separated by single spaces. A value is
//! written bare when it is one or more printable ASCII characters other than `"`, `\` and `=`;
//! any other value (empty, with a space, `=`, a quote, a backslash or non-ASCII text) is quoted:
//! `"` ... `"`, with `\"` and `\\` the only escapes. Exactly one spelling is accepted for each
//! value, so a record's bytes are a function of its typed content.
//!
//! The core's kinds ([`Kind`]) are written only by the core: callers write [`Note`]s, whose
//! kind cannot be one of them.

use crate::hex;
use std::fmt;

/// Why a record's value was refused.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum RecordError {
    /// The fields could not be read at all.
    #[error("{kind}: {reason}")]
    Syntax {
        /// The record's kind, naming it in the message.
        kind: String,
        /// What is wrong with the value.
        reason: String,
    },
    /// A field is missing, extra, out of order or has the wrong key.
    #[error("{kind}: expected field {expected}=, found {found}")]
    UnexpectedField {
        /// The record's kind.
        kind: String,
        /// The key expected at this place, or "the end of the record".
        expected: String,
        /// What is there instead: `key=`, or "the end of the record".
        found: String,
    },
    /// A field's value is not what its type allows.
    #[error("{kind}: field {key}={value:?} is not {what}")]
    BadValue {
        /// The record's kind.
        kind: String,
        /// The field's key (`value` for a record that is one bare value).
        key: String,
        /// The value as read.
        value: String,
        /// What the value must be, e.g. "a decimal number".
        what: &'static str,
    },
    /// A record kind that is not well formed.
    #[error(
        "invalid record kind {0:?}: use 1 to 64 of a-z, 0-9, '.', '_', '-', starting with a letter or digit"
    )]
    BadKind(String),
    /// A caller tried to write a kind only the core writes.
    #[error("record kind {0:?} is written by the ceremony core itself; use another kind")]
    Reserved(String),
    /// A field key that is not well formed.
    #[error("invalid field key {0:?}: use a-z, 0-9 and '-', starting with a letter or digit")]
    BadKey(String),
}

/// Longest record kind, in bytes.
pub const MAX_KIND_LEN: usize = 64;

/// Whether `kind` is a well-formed kind name.
pub fn valid_kind(kind: &str) -> bool {
    !kind.is_empty()
        && kind.len() <= MAX_KIND_LEN
        && kind
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"._-".contains(&b))
        && kind.as_bytes()[0].is_ascii_alphanumeric()
}

fn valid_key(key: &str) -> bool {
    !key.is_empty()
        && key
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && key.as_bytes()[0].is_ascii_alphanumeric()
}

fn bare(value: &str) -> bool {
    !value.is_empty()
        && value
            .chars()
            .all(|c| c.is_ascii_graphic() && !matches!(c, '"' | '\\' | '='))
}

/// One value, bare or quoted by the rule above.
fn encode_value(value: &str) -> String {
    if bare(value) {
        return value.to_owned();
    }
    let mut out = String::with_capacity(value.len() + 2);
    out.push('"');
    for c in value.chars() {
        if matches!(c, '"' | '\\') {
            out.push('\\');
        }
        out.push(c);
    }
    out.push('"');
    out
}

/// Ordered `key=value` fields.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Fields(Vec<(String, String)>);

impl Fields {
    /// No fields yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a field; keys are fixed by the code that writes them, so a bad key is a bug.
    ///
    /// # Panics
    /// If `key` is not 1+ of `a-z 0-9 -` starting with a letter or digit.
    pub fn with(mut self, key: &str, value: impl Into<String>) -> Self {
        assert!(valid_key(key), "field key {key:?}");
        self.0.push((key.to_owned(), value.into()));
        self
    }

    /// The fields in order.
    pub fn pairs(&self) -> &[(String, String)] {
        &self.0
    }

    /// The value of the first field named `key`.
    pub fn get(&self, key: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    /// The record value: fields separated by single spaces.
    pub fn encode(&self) -> String {
        self.0
            .iter()
            .map(|(k, v)| format!("{k}={}", encode_value(v)))
            .collect::<Vec<_>>()
            .join(" ")
    }

    /// Reads a record value strictly: well-formed keys, values in their one spelling, single
    /// spaces, at least one field. `kind` only names the record in errors.
    pub fn parse(kind: &str, text: &str) -> Result<Fields, RecordError> {
        let syntax = |reason: String| RecordError::Syntax {
            kind: kind.to_owned(),
            reason,
        };
        let mut fields = Vec::new();
        let mut rest = text;
        loop {
            let eq = rest
                .find('=')
                .ok_or_else(|| syntax(format!("expected key=value at {rest:?}")))?;
            let key = &rest[..eq];
            if !valid_key(key) {
                return Err(syntax(format!("invalid field key {key:?}")));
            }
            rest = &rest[eq + 1..];
            let value;
            if let Some(quoted) = rest.strip_prefix('"') {
                let mut v = String::new();
                let mut chars = quoted.char_indices();
                let end = loop {
                    match chars.next() {
                        None => return Err(syntax(format!("{key}: unterminated quoted value"))),
                        Some((i, '"')) => break i,
                        Some((_, '\\')) => match chars.next() {
                            Some((_, c @ ('"' | '\\'))) => v.push(c),
                            _ => {
                                return Err(syntax(format!(
                                    "{key}: only \\\" and \\\\ are escapes"
                                )));
                            }
                        },
                        Some((_, c)) => v.push(c),
                    }
                };
                if bare(&v) {
                    return Err(syntax(format!(
                        "{key}: {v:?} must be written without quotes"
                    )));
                }
                value = v;
                rest = &quoted[end + 1..];
            } else {
                let end = rest.find(' ').unwrap_or(rest.len());
                value = rest[..end].to_owned();
                if !bare(&value) {
                    return Err(syntax(format!(
                        "{key}: {value:?} must be quoted (or is empty)"
                    )));
                }
                rest = &rest[end..];
            }
            fields.push((key.to_owned(), value));
            if rest.is_empty() {
                return Ok(Fields(fields));
            }
            rest = rest
                .strip_prefix(' ')
                .filter(|r| !r.is_empty() && !r.starts_with(' '))
                .ok_or_else(|| syntax("fields are separated by single spaces".into()))?;
        }
    }
}

/// A field's type: how it is written and the one spelling it is read back from.
pub trait FieldValue: Sized {
    /// What a value must be, for errors ("a decimal number", ...).
    const WHAT: &'static str;
    /// The value's one spelling (before the quoting rule is applied).
    fn to_field(&self) -> String;
    /// Reads that spelling back; `None` for any other text.
    fn from_field(text: &str) -> Option<Self>;
}

/// Decimal numbers without sign or leading zeros.
macro_rules! decimal {
    ($($t:ty),*) => {$(
        impl FieldValue for $t {
            const WHAT: &'static str = "a decimal number";
            fn to_field(&self) -> String {
                self.to_string()
            }
            fn from_field(text: &str) -> Option<Self> {
                let n: $t = text.parse().ok()?;
                (n.to_string() == text).then_some(n)
            }
        }
    )*};
}
decimal!(u8, u32, u64, usize);

impl FieldValue for String {
    const WHAT: &'static str = "text";
    fn to_field(&self) -> String {
        self.clone()
    }
    fn from_field(text: &str) -> Option<Self> {
        Some(text.to_owned())
    }
}

/// A SHA-256 (or other 32-byte) value as 64 lower-case hex digits.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Hash32(pub [u8; 32]);

impl FieldValue for Hash32 {
    const WHAT: &'static str = "64 lower-case hex digits";
    fn to_field(&self) -> String {
        hex::encode(&self.0)
    }
    fn from_field(text: &str) -> Option<Self> {
        hex::decode_array(text).map(Hash32)
    }
}

impl fmt::Display for Hash32 {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&hex::encode(&self.0))
    }
}

/// An OpenPGP v4 fingerprint as 40 upper-case hex digits.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Fpr(pub String);

impl FieldValue for Fpr {
    const WHAT: &'static str = "a fingerprint, 40 upper-case hex digits";
    fn to_field(&self) -> String {
        self.0.clone()
    }
    fn from_field(text: &str) -> Option<Self> {
        (text.len() == 40 && hex::decode_upper(text).is_some()).then(|| Fpr(text.to_owned()))
    }
}

impl fmt::Display for Fpr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A comma-separated list of fingerprints (at least one).
impl FieldValue for Vec<Fpr> {
    const WHAT: &'static str = "fingerprints separated by commas";
    fn to_field(&self) -> String {
        self.iter()
            .map(|f| f.0.as_str())
            .collect::<Vec<_>>()
            .join(",")
    }
    fn from_field(text: &str) -> Option<Self> {
        text.split(',').map(Fpr::from_field).collect()
    }
}

/// The word `ok`: a check that passed. Records of failed checks are never written.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Passed;

impl FieldValue for Passed {
    const WHAT: &'static str = "ok";
    fn to_field(&self) -> String {
        "ok".into()
    }
    fn from_field(text: &str) -> Option<Self> {
        (text == "ok").then_some(Passed)
    }
}

/// How the M-subsets were chosen for `verify.subsets`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SubsetPolicy {
    /// Every M-subset.
    All,
    /// The N cyclic windows and a random sample.
    CyclicWindowsRandom,
}

impl From<&crate::recombine::SubsetReport> for SubsetPolicy {
    /// How a subset check chose its subsets: every one, or windows and a sample.
    fn from(report: &crate::recombine::SubsetReport) -> Self {
        if report.exhaustive {
            SubsetPolicy::All
        } else {
            SubsetPolicy::CyclicWindowsRandom
        }
    }
}

impl FieldValue for SubsetPolicy {
    const WHAT: &'static str = "all or cyclic-windows+random";
    fn to_field(&self) -> String {
        match self {
            SubsetPolicy::All => "all",
            SubsetPolicy::CyclicWindowsRandom => "cyclic-windows+random",
        }
        .into()
    }
    fn from_field(text: &str) -> Option<Self> {
        match text {
            "all" => Some(SubsetPolicy::All),
            "cyclic-windows+random" => Some(SubsetPolicy::CyclicWindowsRandom),
            _ => None,
        }
    }
}

/// C(N, M), or `over-2^128`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SubsetTotal(pub u128);

impl FieldValue for SubsetTotal {
    const WHAT: &'static str = "a decimal number or over-2^128";
    fn to_field(&self) -> String {
        if self.0 == u128::MAX {
            "over-2^128".into()
        } else {
            self.0.to_string()
        }
    }
    fn from_field(text: &str) -> Option<Self> {
        if text == "over-2^128" {
            return Some(SubsetTotal(u128::MAX));
        }
        let n: u128 = text.parse().ok()?;
        (n.to_string() == text && n != u128::MAX).then_some(SubsetTotal(n))
    }
}

/// Reads a parsed record's fields in their defined order.
pub(crate) struct Reader<'a> {
    pub(crate) kind: &'static str,
    pub(crate) fields: std::slice::Iter<'a, (String, String)>,
}

impl Reader<'_> {
    pub(crate) fn take<T: FieldValue>(&mut self, key: &str) -> Result<T, RecordError> {
        let (k, v) = self
            .fields
            .next()
            .ok_or_else(|| RecordError::UnexpectedField {
                kind: self.kind.into(),
                expected: key.into(),
                found: "the end of the record".into(),
            })?;
        if k != key {
            return Err(RecordError::UnexpectedField {
                kind: self.kind.into(),
                expected: key.into(),
                found: format!("{k}="),
            });
        }
        T::from_field(v).ok_or_else(|| RecordError::BadValue {
            kind: self.kind.into(),
            key: key.into(),
            value: v.clone(),
            what: T::WHAT,
        })
    }

    pub(crate) fn end(mut self) -> Result<(), RecordError> {
        match self.fields.next() {
            None => Ok(()),
            Some((k, _)) => Err(RecordError::UnexpectedField {
                kind: self.kind.into(),
                expected: "the end of the record".into(),
                found: format!("{k}="),
            }),
        }
    }
}

/// A record body: its encoding and its strict parse, from one definition.
pub trait Body: Sized {
    /// The kind's name in the transcript.
    const NAME: &'static str;
    /// The record value as written in the transcript.
    fn encode(&self) -> String;
    /// Reads a record value back strictly: exactly the fields, in order, each in its one
    /// spelling.
    fn parse(value: &str) -> Result<Self, RecordError>;
}

/// A body made of fields: `struct Name { field: Type, ... } = "kind.name"`. The fields are
/// written and read in the order given.
macro_rules! field_body {
    ($(#[$m:meta])* $name:ident = $kind:literal { $($(#[$fm:meta])* $field:ident : $ty:ty = $key:literal),+ $(,)? }) => {
        $(#[$m])*
        #[derive(Clone, Debug, PartialEq, Eq)]
        pub struct $name {
            $($(#[$fm])* pub $field: $ty),+
        }
        impl $crate::record::Body for $name {
            const NAME: &'static str = $kind;
            fn encode(&self) -> String {
                $crate::record::Fields::new()
                    $(.with($key, $crate::record::FieldValue::to_field(&self.$field)))+
                    .encode()
            }
            fn parse(value: &str) -> Result<Self, $crate::record::RecordError> {
                let fields = $crate::record::Fields::parse($kind, value)?;
                let mut r = $crate::record::Reader { kind: $kind, fields: fields.pairs().iter() };
                let body = $name { $($field: r.take($key)?),+ };
                r.end()?;
                Ok(body)
            }
        }
    };
}

pub(crate) use field_body;

/// A body that is one bare value of type `$ty` (no `key=`), as `plan.hash` has been since
/// format 1.
macro_rules! single_body {
    ($(#[$m:meta])* $name:ident = $kind:literal ($ty:ty)) => {
        $(#[$m])*
        #[derive(Clone, Debug, PartialEq, Eq)]
        pub struct $name(pub $ty);
        impl Body for $name {
            const NAME: &'static str = $kind;
            fn encode(&self) -> String {
                self.0.to_field()
            }
            fn parse(value: &str) -> Result<Self, RecordError> {
                <$ty>::from_field(value).map($name).ok_or_else(|| RecordError::BadValue {
                    kind: $kind.into(),
                    key: "value".into(),
                    value: value.into(),
                    what: <$ty as FieldValue>::WHAT,
                })
            }
        }
    };
}

field_body! {
    /// The plan's identity, right after the records made before the plan was read.
    CeremonyPlan = "ceremony.plan" {
        /// The ceremony id.
        id: String = "id",
        /// RFC 3339, as in the plan.
        time: String = "time",
        /// Threshold M.
        threshold: u8 = "threshold",
        /// Number of holders N.
        holders: usize = "holders",
        /// Number of witnesses.
        witnesses: usize = "witnesses",
    }
}
single_body! {
    /// The plan's canonical hash.
    PlanHash = "plan.hash" (Hash32)
}
single_body! {
    /// The root certificate's fingerprint.
    RootFingerprint = "root.fingerprint" (Fpr)
}
field_body! {
    /// One holder's location certificate and its encryption subkey.
    LocationCert = "location.cert" {
        /// Holder index, 1-based.
        holder: u8 = "holder",
        /// The location certificate's (primary key) fingerprint.
        fingerprint: Fpr = "fingerprint",
        /// The fingerprint of its Cv25519 encryption subkey, the key the cards hold.
        subkey: Fpr = "subkey",
    }
}
field_body! {
    /// One holder's sealed share (the binary message's SHA-256).
    ShareSealed = "share.sealed" {
        /// Holder index, 1-based (= the share's x coordinate).
        holder: u8 = "holder",
        /// SHA-256 of the binary (not armored) OpenPGP message.
        sha256: Hash32 = "sha256",
    }
}
field_body! {
    /// One card provisioned and its test decryption passed.
    CardProvisioned = "card.provisioned" {
        /// Holder index, 1-based.
        holder: u8 = "holder",
        /// Card number within the holder, 1-based.
        card: u8 = "card",
        /// The card's serial number as the card reports it.
        serial: String = "serial",
        /// Fingerprint of the location certificate whose key the card now holds.
        location: Fpr = "location",
        /// The card opened the holder's sealed share and it matched the share in memory.
        test_decrypt: Passed = "test-decrypt",
    }
}
field_body! {
    /// One holder's PIN file and its recipients' keys.
    PinsSealed = "pins.sealed" {
        /// Holder index, 1-based.
        holder: u8 = "holder",
        /// SHA-256 of the ASCII-armored PIN file, as written to the output folder.
        sha256: Hash32 = "sha256",
        /// Fingerprints of the personal certificates it is encrypted to: the holder's, then
        /// the backup holder's.
        recipients: Vec<Fpr> = "recipients",
    }
}
field_body! {
    /// The M-subsets recombined.
    VerifySubsets = "verify.subsets" {
        /// Number of M-subsets recombined.
        checked: usize = "checked",
        /// C(N, M), the number of M-subsets there are.
        total: SubsetTotal = "total",
        /// How the checked subsets were chosen.
        policy: SubsetPolicy = "policy",
    }
}
field_body! {
    /// The root key signed and verified a fresh nonce.
    VerifySelfTest = "verify.self-test" {
        /// The 32 random bytes that were signed.
        nonce: Hash32 = "nonce",
        /// The signature verified with the root certificate.
        result: Passed = "result",
    }
}
field_body! {
    /// Every Shamir split and combination of the ceremony so far was computed by both
    /// implementations and gave the same bytes (docs/dual-implementations.md).
    DualShamir = "dual.shamir" {
        /// The second implementation's name.
        second: String = "second",
        /// Splits checked (1: the root secret's).
        splits: usize = "splits",
        /// Shares the split gave, compared byte for byte (N).
        shares: usize = "shares",
        /// Combinations checked: the recombination of the cards' decryptions and every
        /// M-subset of `verify.subsets`.
        combinations: usize = "combinations",
    }
}
field_body! {
    /// Every root key signature so far was made by both Ed25519 implementations and was the
    /// same 64 bytes (the transcript's own signature, made after, is checked too but cannot be
    /// counted in what it signs).
    DualSignatures = "dual.signatures" {
        /// The second implementation's name and version.
        second: String = "second",
        /// Signatures checked: the root certificate's 3 self-signatures, N share envelopes, N
        /// PIN files, the self-test.
        checks: usize = "checks",
    }
}
field_body! {
    /// The root key derivation and every v4 fingerprint of the ceremony's keys were computed a
    /// second time, from the RFCs, and were equal.
    DualFingerprint = "dual.fingerprint" {
        /// The second computation's name.
        second: String = "second",
        /// Fingerprints checked: the root's primary key and subkey, and each location
        /// certificate's (2 + 2N).
        checks: usize = "checks",
        /// HKDF-SHA256 outputs checked (2: the root primary seed and subkey scalar).
        hkdf: usize = "hkdf",
    }
}
field_body! {
    /// One output file.
    OutputFile = "output.file" {
        /// Path relative to the ceremony folder, '/'-separated.
        path: String = "path",
        /// Size in bytes.
        size: usize = "size",
        /// SHA-256 of the file's bytes.
        sha256: Hash32 = "sha256",
    }
}
field_body! {
    /// The last record.
    CeremonyEnd = "ceremony.end" {
        /// Number of `output.file` records (the transcript and its signature are not among
        /// them).
        files: usize = "files",
    }
}
field_body! {
    /// Witnesses confirmed what a step showed (by key presses on the operator's keyboard).
    WitnessConfirm = "witness.confirm" {
        /// Who: the plan's witnesses, or "the witnesses present".
        name: String = "name",
        /// Which step: attestation, plan, root-fingerprint.
        step: String = "step",
    }
}

/// Declares the core's kinds once: the tag enum, the typed enum, and their names.
macro_rules! core_kinds {
    ($($(#[$m:meta])* $variant:ident,)+) => {
        /// The record kinds only the core writes.
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
        pub enum Kind { $($(#[$m])* $variant),+ }

        impl Kind {
            /// Every core kind.
            pub const ALL: &'static [Kind] = &[$(Kind::$variant),+];

            /// The kind's name in the transcript.
            pub fn name(self) -> &'static str {
                match self { $(Kind::$variant => <$variant as Body>::NAME),+ }
            }

            /// The core kind named `name`, if it is one.
            pub fn from_name(name: &str) -> Option<Kind> {
                Kind::ALL.iter().copied().find(|k| k.name() == name)
            }
        }

        /// A record the core writes, with its typed content.
        #[derive(Clone, Debug, PartialEq, Eq)]
        pub enum CoreRecord {
            $(#[doc = concat!("A record with body [`", stringify!($variant), "`].")] $variant($variant)),+
        }

        impl CoreRecord {
            /// The record's kind.
            pub fn kind(&self) -> Kind {
                match self { $(CoreRecord::$variant(_) => Kind::$variant),+ }
            }

            /// The record's value as written in the transcript.
            pub fn encode(&self) -> String {
                match self { $(CoreRecord::$variant(b) => b.encode()),+ }
            }

            /// Parses the value of a record of `kind`, strictly.
            pub fn parse(kind: Kind, value: &str) -> Result<CoreRecord, RecordError> {
                match kind { $(Kind::$variant => $variant::parse(value).map(CoreRecord::$variant)),+ }
            }
        }

        $(impl From<$variant> for CoreRecord {
            fn from(b: $variant) -> Self { CoreRecord::$variant(b) }
        })+
    };
}

core_kinds! {
    /// `ceremony.plan` ([`CeremonyPlan`]).
    CeremonyPlan,
    /// `plan.hash` ([`PlanHash`]).
    PlanHash,
    /// `root.fingerprint` ([`RootFingerprint`]).
    RootFingerprint,
    /// `location.cert` ([`LocationCert`]).
    LocationCert,
    /// `share.sealed` ([`ShareSealed`]).
    ShareSealed,
    /// `card.provisioned` ([`CardProvisioned`]).
    CardProvisioned,
    /// `pins.sealed` ([`PinsSealed`]).
    PinsSealed,
    /// `verify.subsets` ([`VerifySubsets`]).
    VerifySubsets,
    /// `verify.self-test` ([`VerifySelfTest`]).
    VerifySelfTest,
    /// `dual.shamir` ([`DualShamir`]).
    DualShamir,
    /// `dual.signatures` ([`DualSignatures`]).
    DualSignatures,
    /// `dual.fingerprint` ([`DualFingerprint`]).
    DualFingerprint,
    /// `output.file` ([`OutputFile`]).
    OutputFile,
    /// `ceremony.end` ([`CeremonyEnd`]).
    CeremonyEnd,
    /// `witness.confirm` ([`WitnessConfirm`]).
    WitnessConfirm,
}

impl Kind {
    /// Whether format 1 transcripts already reserved this kind to the core (`witness.confirm`
    /// was a caller's record there, written with an ambiguous value; the `dual.*` kinds came
    /// with format 3).
    pub fn reserved_in_format_1(self) -> bool {
        !matches!(
            self,
            Kind::WitnessConfirm | Kind::DualShamir | Kind::DualSignatures | Kind::DualFingerprint
        )
    }
}

/// A record kind a caller may write: well formed and not one of the core's.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NoteKind(String);

impl NoteKind {
    /// Checks `kind`: well formed ([`valid_kind`]) and not one of the core's kinds.
    pub fn new(kind: &str) -> Result<NoteKind, RecordError> {
        if !valid_kind(kind) {
            return Err(RecordError::BadKind(kind.into()));
        }
        if Kind::from_name(kind).is_some() {
            return Err(RecordError::Reserved(kind.into()));
        }
        Ok(NoteKind(kind.into()))
    }

    /// The kind's name, as written in the transcript.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A caller's public record (boot attestation, entropy report): a kind the core does not
/// write, and fields.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Note {
    kind: NoteKind,
    fields: Fields,
}

impl Note {
    /// A note of `kind` with `fields` (at least one).
    pub fn new(kind: &str, fields: Fields) -> Result<Note, RecordError> {
        let kind = NoteKind::new(kind)?;
        if fields.pairs().is_empty() {
            return Err(RecordError::Syntax {
                kind: kind.0,
                reason: "a record has at least one field".into(),
            });
        }
        Ok(Note { kind, fields })
    }

    /// Reads a note back from a transcript line's kind and value.
    pub fn parse(kind: &str, value: &str) -> Result<Note, RecordError> {
        Note::new(kind, Fields::parse(kind, value)?)
    }

    /// The note's kind name (never one of the core's kinds).
    pub fn kind(&self) -> &str {
        self.kind.as_str()
    }

    /// The note's fields, in order (at least one).
    pub fn fields(&self) -> &Fields {
        &self.fields
    }

    /// The value as written in the transcript.
    pub fn encode(&self) -> String {
        self.fields.encode()
    }
}

/// Any record of a format-2 transcript, typed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Entry {
    /// A record of one of the core's kinds, parsed by its definition.
    Core(CoreRecord),
    /// A record of any other kind: a caller's note.
    Note(Note),
}

impl Entry {
    /// Parses a format-2 record: a core kind by its definition, any other as a note.
    pub fn parse(kind: &str, value: &str) -> Result<Entry, RecordError> {
        match Kind::from_name(kind) {
            Some(k) => CoreRecord::parse(k, value).map(Entry::Core),
            None => Note::parse(kind, value).map(Entry::Note),
        }
    }

    /// The record's kind name, as written in the transcript.
    pub fn kind(&self) -> &str {
        match self {
            Entry::Core(c) => c.kind().name(),
            Entry::Note(n) => n.kind(),
        }
    }

    /// The record's value, as written in the transcript.
    pub fn encode(&self) -> String {
        match self {
            Entry::Core(c) => c.encode(),
            Entry::Note(n) => n.encode(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn the_quoting_rule() {
        let f = Fields::new()
            .with("name", "the witnesses present")
            .with("step", "plan")
            .with("identity", "/dev/tpmrm0: TPM \"2.0\" \\ x")
            .with("empty", "")
            .with("eq", "a=b")
            .with("utf8", "Zoë");
        let text = f.encode();
        assert_eq!(
            text,
            r#"name="the witnesses present" step=plan identity="/dev/tpmrm0: TPM \"2.0\" \\ x" empty="" eq="a=b" utf8="Zoë""#
        );
        assert_eq!(Fields::parse("t", &text).unwrap(), f);
    }

    #[test]
    fn one_spelling_only() {
        for bad in [
            "",
            "a",
            "a=",
            "a=\"b\"",
            "a=b  c=d",
            "a=b ",
            " a=b",
            "A=b",
            "a=b=c",
            "a=\"b",
            "a=\"x y\\n\"",
            "a=\"x y\"c=d",
            "a=x\"y",
            "-a=b",
        ] {
            assert!(Fields::parse("t", bad).is_err(), "{bad:?} must be refused");
        }
    }

    #[test]
    fn an_injected_field_stays_inside_its_value() {
        // The format-1 hole: an identity containing " counted=true".
        let f = Fields::new()
            .with("identity", "evil counted=true")
            .with("counted", "false");
        let parsed = Fields::parse("entropy.source", &f.encode()).unwrap();
        assert_eq!(parsed.get("counted"), Some("false"));
        assert_eq!(parsed.get("identity"), Some("evil counted=true"));
    }

    #[test]
    fn core_records_keep_their_format_1_bytes() {
        let v1 = "holder=1 card=1 serial=000F:000101 location=C3F8B672AFF6913138FCE4FC0DED2028D4B92472 test-decrypt=ok";
        let r = CoreRecord::parse(Kind::CardProvisioned, v1).unwrap();
        assert_eq!(r.encode(), v1);
        let v1 = "checked=3 total=3 policy=all";
        assert_eq!(
            CoreRecord::parse(Kind::VerifySubsets, v1).unwrap().encode(),
            v1
        );
    }

    #[test]
    fn typed_parse_is_strict() {
        for (kind, value) in [
            (
                Kind::CardProvisioned,
                "holder=1 card=1 serial=x location=AB test-decrypt=ok",
            ),
            (
                Kind::CardProvisioned,
                "holder=1 card=1 serial=x location=C3F8B672AFF6913138FCE4FC0DED2028D4B92472 test-decrypt=failed",
            ),
            (
                Kind::CardProvisioned,
                "card=1 holder=1 serial=x location=C3F8B672AFF6913138FCE4FC0DED2028D4B92472 test-decrypt=ok",
            ),
            (Kind::OutputFile, "path=a size=01 sha256=00"),
            (Kind::CeremonyEnd, "files=3 extra=1"),
            (Kind::PlanHash, "ABCD"),
            (Kind::VerifySubsets, "checked=3 total=3 policy=some"),
        ] {
            assert!(CoreRecord::parse(kind, value).is_err(), "{value}");
        }
    }

    #[test]
    fn callers_cannot_write_core_kinds() {
        for k in Kind::ALL {
            assert_eq!(
                NoteKind::new(k.name()),
                Err(RecordError::Reserved(k.name().into()))
            );
        }
        assert!(matches!(
            NoteKind::new("Bad Kind"),
            Err(RecordError::BadKind(_))
        ));
        assert!(NoteKind::new("image.iso-sha256").is_ok());
    }

    fn value() -> impl Strategy<Value = String> {
        // Spaces, '=', quotes, backslashes, non-ASCII; no control characters.
        proptest::string::string_regex("[ -~éß☃\"\\\\=]{0,24}").unwrap()
    }

    fn key() -> impl Strategy<Value = String> {
        proptest::string::string_regex("[a-z0-9][a-z0-9-]{0,8}").unwrap()
    }

    fn fpr() -> impl Strategy<Value = Fpr> {
        proptest::string::string_regex("[0-9A-F]{40}")
            .unwrap()
            .prop_map(Fpr)
    }

    fn hash() -> impl Strategy<Value = Hash32> {
        proptest::array::uniform32(any::<u8>()).prop_map(Hash32)
    }

    fn core_record() -> impl Strategy<Value = CoreRecord> {
        prop_oneof![
            (
                value(),
                value(),
                any::<u8>(),
                any::<usize>(),
                any::<usize>()
            )
                .prop_map(|(id, time, threshold, holders, witnesses)| CeremonyPlan {
                    id,
                    time,
                    threshold,
                    holders,
                    witnesses
                }
                .into()),
            hash().prop_map(|h| PlanHash(h).into()),
            fpr().prop_map(|f| RootFingerprint(f).into()),
            (any::<u8>(), fpr(), fpr()).prop_map(|(holder, fingerprint, subkey)| LocationCert {
                holder,
                fingerprint,
                subkey
            }
            .into()),
            (any::<u8>(), hash())
                .prop_map(|(holder, sha256)| ShareSealed { holder, sha256 }.into()),
            (any::<u8>(), any::<u8>(), value(), fpr()).prop_map(
                |(holder, card, serial, location)| {
                    CardProvisioned {
                        holder,
                        card,
                        serial,
                        location,
                        test_decrypt: Passed,
                    }
                    .into()
                }
            ),
            (any::<u8>(), hash(), proptest::collection::vec(fpr(), 1..4)).prop_map(
                |(holder, sha256, recipients)| PinsSealed {
                    holder,
                    sha256,
                    recipients
                }
                .into()
            ),
            (any::<usize>(), any::<u128>(), any::<bool>()).prop_map(|(checked, total, all)| {
                VerifySubsets {
                    checked,
                    total: SubsetTotal(total),
                    policy: if all {
                        SubsetPolicy::All
                    } else {
                        SubsetPolicy::CyclicWindowsRandom
                    },
                }
                .into()
            }),
            hash().prop_map(|nonce| VerifySelfTest {
                nonce,
                result: Passed
            }
            .into()),
            (value(), any::<usize>(), any::<usize>(), any::<usize>()).prop_map(
                |(second, splits, shares, combinations)| DualShamir {
                    second,
                    splits,
                    shares,
                    combinations
                }
                .into()
            ),
            (value(), any::<usize>()).prop_map(|(second, checks)| DualSignatures {
                second,
                checks
            }
            .into()),
            (value(), any::<usize>(), any::<usize>()).prop_map(|(second, checks, hkdf)| {
                DualFingerprint {
                    second,
                    checks,
                    hkdf,
                }
                .into()
            }),
            (value(), any::<usize>(), hash()).prop_map(|(path, size, sha256)| OutputFile {
                path,
                size,
                sha256
            }
            .into()),
            any::<usize>().prop_map(|files| CeremonyEnd { files }.into()),
            (value(), value()).prop_map(|(name, step)| WitnessConfirm { name, step }.into()),
        ]
    }

    proptest! {
        #[test]
        fn every_core_record_round_trips(r in core_record()) {
            let text = r.encode();
            prop_assert_eq!(CoreRecord::parse(r.kind(), &text).unwrap(), r.clone());
            prop_assert_eq!(Entry::parse(r.kind().name(), &text).unwrap(), Entry::Core(r));
        }

        #[test]
        fn any_fields_round_trip(pairs in proptest::collection::vec((key(), value()), 1..6)) {
            let mut f = Fields::new();
            for (k, v) in &pairs {
                f = f.with(k, v.clone());
            }
            let text = f.encode();
            prop_assert!(!text.chars().any(char::is_control));
            prop_assert_eq!(Fields::parse("t", &text).unwrap(), f.clone());
            let note = Note::new("image.test", f).unwrap();
            prop_assert_eq!(Entry::parse("image.test", &note.encode()).unwrap(), Entry::Note(note));
        }

        #[test]
        fn parse_never_panics_and_reencodes_exactly(text in "[ -~é\"\\\\=]{0,40}") {
            if let Ok(f) = Fields::parse("t", &text) {
                prop_assert_eq!(f.encode(), text);
            }
        }
    }
}
