//! A TPM 2.0 quote over PCR 0-7, and its verifier, with every byte layout written here from
//! the TPM 2.0 Library specification (Part 2 structures, Part 3 commands): no TSS, no C.
//!
//! # Making a quote (needs a TPM)
//!
//! [`attest`] (or [`quote`] and [`pcr_read`] separately) runs, over any `Read + Write` that
//! carries raw TPM command and response buffers (`/dev/tpmrm0` in the image, swtpm's server
//! socket in the tests):
//!
//! 1. `TPM2_CreatePrimary` in the endorsement hierarchy from [`AK_TEMPLATE`]: an ECC NIST
//!    P-256 restricted signing key (ECDSA with SHA-256). Being a primary key made from a fixed
//!    template, it is the same key every time on the same TPM, until the endorsement primary
//!    seed changes (`TPM2_Clear` does not change it; `TPM2_ChangeEPS` does): an owner can record
//!    this laptop's attestation key (its name, [`ak_name`]) beforehand and the plan can carry it.
//! 2. `TPM2_Quote` with that key over PCR 0-7 of the SHA-256 bank, with the caller's qualifying
//!    data (the ceremony gives the plan hash).
//! 3. `TPM2_FlushContext` of the key.
//! 4. The EK certificate, when the TPM has one in NV (RSA at `0x01C00002`, else ECC at
//!    `0x01C0000A`).
//!
//! The TPM must have a SHA-256 PCR bank and an endorsement hierarchy without a password (the
//! default; a TPM whose owner set one refuses `TPM2_CreatePrimary` with `TPM_RC_BAD_AUTH`).
//! Errors are [`TpmError`]s naming the command and what the response code means.
//!
//! # Checking a quote (no TPM)
//!
//! [`verify`] parses the three TPM structures strictly, checks the ECDSA signature, the
//! qualifying data and the PCR digest against PCR values given by the caller (from the
//! transcript), and returns a [`QuoteReport`] to show. [`verify_known_ak`] also wants the key
//! to be the one recorded for the laptop beforehand ([`ak_public`] and [`ak_name`] give what to
//! record): only that ties the quote to one TPM. What a quote proves, and what it does not, is
//! in `docs/formats/tpm-quote.md`.

#![forbid(unsafe_code)]

mod tpm;
mod verify;
mod wire;

#[cfg(test)]
mod tests;

pub use tpm::{
    Attestation, EK_CERT_ECC_INDEX, EK_CERT_RSA_INDEX, PcrRead, ak_public, attest, create_ak,
    flush_context, pcr_read, quote, quote_with_key, rc_meaning, read_ek_cert, read_nv_cert,
};
pub use verify::{
    AkPublic, Attest, EcdsaSignature, QuoteReport, ak_name, ak_name_bytes, parse_ak_public,
    parse_attest, parse_signature, pcr_digest, qualified_name, verify, verify_known_ak,
};

/// `TPM_ALG_SHA256`.
pub const TPM_ALG_SHA256: u16 = 0x000B;
/// `TPM_ALG_NULL`.
pub const TPM_ALG_NULL: u16 = 0x0010;
/// `TPM_ALG_ECDSA`.
pub const TPM_ALG_ECDSA: u16 = 0x0018;
/// `TPM_ALG_ECC`.
pub const TPM_ALG_ECC: u16 = 0x0023;
/// `TPM_ECC_NIST_P256`.
pub const TPM_ECC_NIST_P256: u16 = 0x0003;
/// `TPM_GENERATED_VALUE`: the first four bytes of everything a TPM signs about itself.
pub const TPM_GENERATED_VALUE: u32 = 0xff54_4347;
/// `TPM_ST_ATTEST_QUOTE`.
pub const TPM_ST_ATTEST_QUOTE: u16 = 0x8018;
/// `TPM_RH_ENDORSEMENT`: the hierarchy the attestation key is a primary key of.
pub const TPM_RH_ENDORSEMENT: u32 = 0x4000_000B;

/// The attestation key's `objectAttributes` (TPMA_OBJECT): fixedTPM (bit 1) | fixedParent
/// (bit 4) | sensitiveDataOrigin (bit 5) | userWithAuth (bit 6) | restricted (bit 16) | sign
/// (bit 18).
pub const AK_ATTRIBUTES: u32 = (1 << 1) | (1 << 4) | (1 << 5) | (1 << 6) | (1 << 16) | (1 << 18);

/// The attestation key's template, the `TPMT_PUBLIC` given to `TPM2_CreatePrimary` (24 bytes,
/// big-endian):
///
/// | bytes | field | value |
/// |---|---|---|
/// | `00 23` | type | `TPM_ALG_ECC` |
/// | `00 0b` | nameAlg | `TPM_ALG_SHA256` |
/// | `00 05 00 72` | objectAttributes | fixedTPM, fixedParent, sensitiveDataOrigin, userWithAuth, restricted, sign |
/// | `00 00` | authPolicy | empty (no policy; the key's authValue is empty too) |
/// | `00 10` | parameters.symmetric | `TPM_ALG_NULL` (a signing key has none) |
/// | `00 18 00 0b` | parameters.scheme | `TPM_ALG_ECDSA`, hash `TPM_ALG_SHA256` |
/// | `00 03` | parameters.curveID | `TPM_ECC_NIST_P256` |
/// | `00 10` | parameters.kdf | `TPM_ALG_NULL` |
/// | `00 00 00 00` | unique | x and y empty |
///
/// A primary key is derived from the hierarchy's primary seed and its template, so the same
/// TPM makes the same key from these bytes every time (until the endorsement primary seed is
/// changed by `TPM2_ChangeEPS`). Changing one byte here changes every laptop's key.
pub const AK_TEMPLATE: [u8; 24] = [
    0x00, 0x23, // type: TPM_ALG_ECC
    0x00, 0x0b, // nameAlg: TPM_ALG_SHA256
    0x00, 0x05, 0x00, 0x72, // objectAttributes
    0x00, 0x00, // authPolicy: empty
    0x00, 0x10, // symmetric: TPM_ALG_NULL
    0x00, 0x18, 0x00, 0x0b, // scheme: TPM_ALG_ECDSA, SHA-256
    0x00, 0x03, // curveID: TPM_ECC_NIST_P256
    0x00, 0x10, // kdf: TPM_ALG_NULL
    0x00, 0x00, // unique.x: empty
    0x00, 0x00, // unique.y: empty
];

/// A quote as the TPM gave it: the exact bytes to record, and to verify with [`verify`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Quote {
    /// `TPMS_ATTEST`, exactly the bytes the TPM signed.
    pub attest: Vec<u8>,
    /// `TPMT_SIGNATURE` (ECDSA with SHA-256 over `attest`).
    pub signature: Vec<u8>,
    /// The attestation key's `TPMT_PUBLIC`.
    pub ak_public: Vec<u8>,
    /// The TPM's EK certificate (DER, as stored in NV), when it has one. Not checked by
    /// [`verify`], and not tied to the attestation key (see `docs/formats/tpm-quote.md`).
    pub ek_cert: Option<Vec<u8>>,
}

/// A structure that is not what it must be: which structure, which field, at which byte
/// offset from the structure's start, and what was wrong.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{structure}: {field} at byte {offset}: {problem}")]
pub struct ParseError {
    /// `TPMT_PUBLIC`, `TPMS_ATTEST`, `TPMT_SIGNATURE`, ...
    pub structure: &'static str,
    /// The field's name as in TPM 2.0 Part 2 (dotted for nested fields).
    pub field: &'static str,
    /// Byte offset of the field from the start of the structure.
    pub offset: usize,
    /// What was wrong.
    pub problem: String,
}

/// Why a quote does not verify.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum QuoteError {
    /// A structure is malformed or not of the one shape accepted.
    #[error("malformed quote: {0}")]
    Parse(#[from] ParseError),
    /// The attestation key's x, y is not a point of P-256.
    #[error("the attestation key's public point is not on P-256")]
    BadPoint,
    /// The ECDSA signature does not verify.
    #[error("the quote's signature does not verify with the attestation key: {0}")]
    Signature(&'static str),
    /// `qualifiedSigner` is not this key as a primary key of the endorsement hierarchy.
    #[error(
        "the quote names its signer {found}, but this attestation key as a primary key of the \
         endorsement hierarchy is {expected}"
    )]
    QualifiedSigner {
        /// hex
        expected: String,
        /// hex
        found: String,
    },
    /// `extraData` is not the expected qualifying data.
    #[error("the quote's qualifying data is {found}, expected {expected}")]
    QualifyingData {
        /// hex
        expected: String,
        /// hex
        found: String,
    },
    /// The key is not the one recorded for this laptop.
    #[error(
        "the quote was signed by the attestation key named {found}, not by the one recorded for \
         this laptop ({expected})"
    )]
    UnknownKey {
        /// The recorded name.
        expected: String,
        /// The quote's key's name.
        found: String,
    },
    /// `pcrDigest` is not SHA-256 of the given PCR values.
    #[error(
        "the quoted PCR digest is {quoted} but SHA-256(PCR0 || ... || PCR7) of the given values \
         is {computed}: the PCR values are not those the TPM quoted"
    )]
    PcrDigest {
        /// hex
        quoted: String,
        /// hex
        computed: String,
    },
}

/// Why the TPM could not make a quote.
#[derive(Debug, thiserror::Error)]
pub enum TpmError {
    /// The transport failed.
    #[error("{command}: {source}")]
    Io {
        /// The TPM command, e.g. `TPM2_Quote`.
        command: &'static str,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// The TPM refused the command.
    #[error("{command}: the TPM answered {rc:#05x}, {meaning}")]
    Response {
        /// The TPM command.
        command: &'static str,
        /// The response code.
        rc: u32,
        /// What the code means (TPM 2.0 Part 2, TPM_RC).
        meaning: String,
    },
    /// The response is not what the command returns.
    #[error("{command}: malformed response: {problem}")]
    Malformed {
        /// The TPM command.
        command: &'static str,
        /// What was wrong.
        problem: String,
    },
    /// More qualifying data than any TPM takes (one digest, at most 64 bytes); 32 always fit.
    #[error("TPM2_Quote: {0} bytes of qualifying data; a TPM takes at most one digest")]
    QualifyingDataTooLong(usize),
    /// A PCR changed between reading the PCRs and the quote.
    #[error(
        "the PCRs changed while the quote was made (PCR update counter {before}, then {after}); \
         something is extending PCRs: try again"
    )]
    PcrsChanged {
        /// Counter before.
        before: u32,
        /// Counter after.
        after: u32,
    },
    /// The TPM's quote does not verify against the PCR values it reported.
    #[error("the TPM's quote does not verify: {0}")]
    SelfCheck(#[source] QuoteError),
}
