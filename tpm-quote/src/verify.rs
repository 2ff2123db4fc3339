//! Strict parsers of the three structures of a quote, and the check of one, with no TPM.

use p256::ecdsa::signature::Verifier;
use p256::ecdsa::{Signature, VerifyingKey};
use sha2::{Digest, Sha256};

use crate::wire::Reader;
use crate::{
    AK_ATTRIBUTES, ParseError, Quote, QuoteError, TPM_ALG_ECC, TPM_ALG_ECDSA, TPM_ALG_NULL,
    TPM_ALG_SHA256, TPM_ECC_NIST_P256, TPM_GENERATED_VALUE, TPM_RH_ENDORSEMENT,
    TPM_ST_ATTEST_QUOTE,
};

/// The attestation key's public point, from a `TPMT_PUBLIC` of [`crate::AK_TEMPLATE`]'s shape.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AkPublic {
    /// x, big-endian, left-padded to 32 bytes.
    pub x: [u8; 32],
    /// y, big-endian, left-padded to 32 bytes.
    pub y: [u8; 32],
}

/// The fields of a quote's `TPMS_ATTEST`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Attest {
    /// `qualifiedSigner` (a `TPM2B_NAME`'s bytes).
    pub qualified_signer: Vec<u8>,
    /// `extraData`: the qualifying data given to `TPM2_Quote`.
    pub extra_data: Vec<u8>,
    /// `clockInfo.clock`: milliseconds the TPM has been powered, roughly.
    pub clock: u64,
    /// `clockInfo.resetCount`: TPM resets (boots) since the last `TPM2_Clear`.
    pub reset_count: u32,
    /// `clockInfo.restartCount`: restarts and resumes since the last reset.
    pub restart_count: u32,
    /// `clockInfo.safe`: no clock value was ever reported that could be repeated.
    pub safe: bool,
    /// `firmwareVersion`.
    pub firmware_version: u64,
    /// `attested.quote.pcrDigest`: SHA-256 of PCR 0..7 concatenated.
    pub pcr_digest: [u8; 32],
}

/// An ECDSA `TPMT_SIGNATURE`'s r and s.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EcdsaSignature {
    /// r, big-endian, left-padded to 32 bytes.
    pub r: [u8; 32],
    /// s, big-endian, left-padded to 32 bytes.
    pub s: [u8; 32],
}

/// What a verified quote says, to show on a screen and record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QuoteReport {
    /// The attestation key's TPM name: `000b` || SHA-256(TPMT_PUBLIC), hex.
    pub ak_name: String,
    /// `qualifiedSigner`, hex.
    pub qualified_signer: String,
    /// The PCR digest quoted, hex.
    pub pcr_digest: String,
    /// `clockInfo.clock` (ms).
    pub clock: u64,
    /// `clockInfo.resetCount`.
    pub reset_count: u32,
    /// `clockInfo.restartCount`.
    pub restart_count: u32,
    /// `clockInfo.safe`.
    pub safe: bool,
    /// `firmwareVersion`.
    pub firmware_version: u64,
}

impl QuoteReport {
    /// The firmware version as the TPM's two 32-bit properties, `0x20191023.0x00163636`.
    pub fn firmware_version_text(&self) -> String {
        format!(
            "{:#010x}.{:#010x}",
            self.firmware_version >> 32,
            self.firmware_version & 0xffff_ffff
        )
    }
}

/// A `TPM2B_ECC_PARAMETER` of P-256: 1 to 32 bytes (a TPM may leave out leading zeros),
/// returned left-padded.
fn ecc_param(r: &mut Reader<'_>, field: &'static str) -> Result<[u8; 32], ParseError> {
    let at = r.pos();
    let v = r.tpm2b(field)?;
    if v.is_empty() || v.len() > 32 {
        return Err(r.error_at(
            field,
            at,
            format!("{} bytes; a P-256 value has 1 to 32", v.len()),
        ));
    }
    let mut out = [0u8; 32];
    out[32 - v.len()..].copy_from_slice(v);
    Ok(out)
}

/// Parses the attestation key's `TPMT_PUBLIC`, which must be of [`crate::AK_TEMPLATE`]'s shape
/// exactly (only `unique`, the public point, differs), with nothing after it.
pub fn parse_ak_public(bytes: &[u8]) -> Result<AkPublic, ParseError> {
    let mut r = Reader::new("TPMT_PUBLIC", bytes);
    r.expect_u16("type", TPM_ALG_ECC, "TPM_ALG_ECC")?;
    r.expect_u16("nameAlg", TPM_ALG_SHA256, "TPM_ALG_SHA256")?;
    let at = r.pos();
    let attrs = r.u32("objectAttributes")?;
    if attrs != AK_ATTRIBUTES {
        return Err(r.error_at(
            "objectAttributes",
            at,
            format!(
                "{attrs:#010x}, expected {AK_ATTRIBUTES:#010x} (fixedTPM|fixedParent|\
                 sensitiveDataOrigin|userWithAuth|restricted|sign)"
            ),
        ));
    }
    let at = r.pos();
    let policy = r.tpm2b("authPolicy")?;
    if !policy.is_empty() {
        return Err(r.error_at(
            "authPolicy",
            at,
            format!("{} bytes, expected empty", policy.len()),
        ));
    }
    r.expect_u16(
        "parameters.symmetric.algorithm",
        TPM_ALG_NULL,
        "TPM_ALG_NULL",
    )?;
    r.expect_u16("parameters.scheme.scheme", TPM_ALG_ECDSA, "TPM_ALG_ECDSA")?;
    r.expect_u16(
        "parameters.scheme.details.hashAlg",
        TPM_ALG_SHA256,
        "TPM_ALG_SHA256",
    )?;
    r.expect_u16("parameters.curveID", TPM_ECC_NIST_P256, "TPM_ECC_NIST_P256")?;
    r.expect_u16("parameters.kdf.scheme", TPM_ALG_NULL, "TPM_ALG_NULL")?;
    let x = ecc_param(&mut r, "unique.x")?;
    let y = ecc_param(&mut r, "unique.y")?;
    r.finish()?;
    Ok(AkPublic { x, y })
}

/// A `TPML_PCR_SELECTION` that must select exactly PCR 0-7 of the SHA-256 bank, as sent:
/// count 1, hash SHA-256, sizeofSelect 3, `ff 00 00`.
pub(crate) fn expect_pcr0_7(
    r: &mut Reader<'_>,
    count: &'static str,
    hash: &'static str,
    size: &'static str,
    select: &'static str,
) -> Result<(), ParseError> {
    let at = r.pos();
    let n = r.u32(count)?;
    if n != 1 {
        return Err(r.error_at(
            count,
            at,
            format!("{n} PCR banks selected, expected 1 (SHA-256)"),
        ));
    }
    r.expect_u16(hash, TPM_ALG_SHA256, "TPM_ALG_SHA256")?;
    let at = r.pos();
    let sz = r.u8(size)?;
    if sz != 3 {
        return Err(r.error_at(size, at, format!("{sz}, expected 3")));
    }
    let at = r.pos();
    let bits = r.take(select, 3)?;
    if bits != [0xff, 0, 0] {
        return Err(r.error_at(
            select,
            at,
            format!(
                "PCRs {} selected, expected exactly 0-7 (ff 00 00)",
                hexstr::encode(bits)
            ),
        ));
    }
    Ok(())
}

/// Parses a quote's `TPMS_ATTEST`: magic `TPM_GENERATED_VALUE`, type `TPM_ST_ATTEST_QUOTE`,
/// a SHA-256 name as signer, and a `TPMS_QUOTE_INFO` of PCR 0-7 of the SHA-256 bank with a
/// 32-byte digest; nothing after it.
pub fn parse_attest(bytes: &[u8]) -> Result<Attest, ParseError> {
    let mut r = Reader::new("TPMS_ATTEST", bytes);
    let at = r.pos();
    let magic = r.u32("magic")?;
    if magic != TPM_GENERATED_VALUE {
        return Err(r.error_at(
            "magic",
            at,
            format!(
                "{magic:#010x}, expected {TPM_GENERATED_VALUE:#010x} (TPM_GENERATED_VALUE): \
                 not a structure the TPM made"
            ),
        ));
    }
    r.expect_u16("type", TPM_ST_ATTEST_QUOTE, "TPM_ST_ATTEST_QUOTE")?;
    let at = r.pos();
    let signer = r.tpm2b("qualifiedSigner")?;
    if signer.len() != 34 || signer[..2] != TPM_ALG_SHA256.to_be_bytes() {
        return Err(r.error_at(
            "qualifiedSigner",
            at,
            format!(
                "{}, expected a SHA-256 name (000b and 32 bytes)",
                hexstr::encode(signer)
            ),
        ));
    }
    let extra = r.tpm2b("extraData")?;
    let clock = r.u64("clockInfo.clock")?;
    let reset_count = r.u32("clockInfo.resetCount")?;
    let restart_count = r.u32("clockInfo.restartCount")?;
    let at = r.pos();
    let safe = match r.u8("clockInfo.safe")? {
        0 => false,
        1 => true,
        v => {
            return Err(r.error_at(
                "clockInfo.safe",
                at,
                format!("{v}, a TPMI_YES_NO is 0 or 1"),
            ));
        }
    };
    let firmware_version = r.u64("firmwareVersion")?;
    expect_pcr0_7(
        &mut r,
        "attested.quote.pcrSelect.count",
        "attested.quote.pcrSelect[0].hash",
        "attested.quote.pcrSelect[0].sizeofSelect",
        "attested.quote.pcrSelect[0].pcrSelect",
    )?;
    let at = r.pos();
    let digest = r.tpm2b("attested.quote.pcrDigest")?;
    let pcr_digest: [u8; 32] = digest.try_into().map_err(|_| {
        r.error_at(
            "attested.quote.pcrDigest",
            at,
            format!("{} bytes, expected 32 (SHA-256)", digest.len()),
        )
    })?;
    r.finish()?;
    Ok(Attest {
        qualified_signer: signer.to_vec(),
        extra_data: extra.to_vec(),
        clock,
        reset_count,
        restart_count,
        safe,
        firmware_version,
        pcr_digest,
    })
}

/// Parses a `TPMT_SIGNATURE` that must be ECDSA with SHA-256; nothing after it.
pub fn parse_signature(bytes: &[u8]) -> Result<EcdsaSignature, ParseError> {
    let mut r = Reader::new("TPMT_SIGNATURE", bytes);
    r.expect_u16("sigAlg", TPM_ALG_ECDSA, "TPM_ALG_ECDSA")?;
    r.expect_u16("signature.hash", TPM_ALG_SHA256, "TPM_ALG_SHA256")?;
    let rr = ecc_param(&mut r, "signature.signatureR")?;
    let s = ecc_param(&mut r, "signature.signatureS")?;
    r.finish()?;
    Ok(EcdsaSignature { r: rr, s })
}

/// The attestation key's TPM name, `000b` || SHA-256(`TPMT_PUBLIC`): 34 bytes. Computed over the
/// bytes as given, whatever they hold.
pub fn ak_name_bytes(ak_public: &[u8]) -> Vec<u8> {
    let mut name = TPM_ALG_SHA256.to_be_bytes().to_vec();
    name.extend_from_slice(&Sha256::digest(ak_public));
    name
}

/// The attestation key's TPM name as lower-case hex (68 digits, starting `000b`): what an
/// owner records for a laptop, and what `tpm2_readpublic` shows as `name`.
pub fn ak_name(ak_public: &[u8]) -> String {
    hexstr::encode(&ak_name_bytes(ak_public))
}

/// The qualified name of a primary key of the endorsement hierarchy:
/// `000b` || SHA-256(`TPM_RH_ENDORSEMENT` (4 bytes) || name), TPM 2.0 Part 1, "Qualified Name".
pub fn qualified_name(ak_public: &[u8]) -> Vec<u8> {
    let mut h = Sha256::new();
    h.update(TPM_RH_ENDORSEMENT.to_be_bytes());
    h.update(ak_name_bytes(ak_public));
    let mut qn = TPM_ALG_SHA256.to_be_bytes().to_vec();
    qn.extend_from_slice(&h.finalize());
    qn
}

/// SHA-256(PCR0 || PCR1 || ... || PCR7): the `pcrDigest` a quote of PCR 0-7 holds.
pub fn pcr_digest(pcr_values: &[[u8; 32]; 8]) -> [u8; 32] {
    let mut h = Sha256::new();
    for v in pcr_values {
        h.update(v);
    }
    h.finalize().into()
}

/// Checks a quote from its bytes alone: the three structures parse strictly, the ECDSA
/// signature over SHA-256(`attest`) verifies with the key in `ak_public`, the signer named in
/// the attest is that key as an endorsement-hierarchy primary key, `extraData` equals
/// `expected_qualifying_data`, and `pcrDigest` equals SHA-256 of `pcr_values` (PCR 0..7 of the
/// SHA-256 bank, in order). `ek_cert` is not looked at.
///
/// It does not check *which* key signed: compare [`QuoteReport::ak_name`] with the name
/// recorded for the laptop beforehand, where there is one.
pub fn verify(
    quote: &Quote,
    expected_qualifying_data: &[u8],
    pcr_values: &[[u8; 32]; 8],
) -> Result<QuoteReport, QuoteError> {
    let ak = parse_ak_public(&quote.ak_public)?;
    let attest = parse_attest(&quote.attest)?;
    let sig = parse_signature(&quote.signature)?;

    let point = p256::EncodedPoint::from_affine_coordinates(&ak.x.into(), &ak.y.into(), false);
    let key = VerifyingKey::from_encoded_point(&point).map_err(|_| QuoteError::BadPoint)?;
    let sig = Signature::from_scalars(sig.r, sig.s)
        .map_err(|_| QuoteError::Signature("r or s is zero or not below the group order"))?;
    key.verify(&quote.attest, &sig)
        .map_err(|_| QuoteError::Signature("ECDSA P-256 over SHA-256(attest) fails"))?;

    let qn = qualified_name(&quote.ak_public);
    if attest.qualified_signer != qn {
        return Err(QuoteError::QualifiedSigner {
            expected: hexstr::encode(&qn),
            found: hexstr::encode(&attest.qualified_signer),
        });
    }
    if attest.extra_data != expected_qualifying_data {
        return Err(QuoteError::QualifyingData {
            expected: hexstr::encode(expected_qualifying_data),
            found: hexstr::encode(&attest.extra_data),
        });
    }
    let computed = pcr_digest(pcr_values);
    if attest.pcr_digest != computed {
        return Err(QuoteError::PcrDigest {
            quoted: hexstr::encode(&attest.pcr_digest),
            computed: hexstr::encode(&computed),
        });
    }
    Ok(QuoteReport {
        ak_name: ak_name(&quote.ak_public),
        qualified_signer: hexstr::encode(&attest.qualified_signer),
        pcr_digest: hexstr::encode(&attest.pcr_digest),
        clock: attest.clock,
        reset_count: attest.reset_count,
        restart_count: attest.restart_count,
        safe: attest.safe,
        firmware_version: attest.firmware_version,
    })
}

/// [`verify`], and then that the attestation key is the one whose name was recorded for this
/// laptop beforehand (`expected_ak_name`: 68 lower-case hex digits, as [`ak_name`] gives). This
/// is what ties the quote to one TPM (see `docs/formats/tpm-quote.md`).
pub fn verify_known_ak(
    quote: &Quote,
    expected_qualifying_data: &[u8],
    pcr_values: &[[u8; 32]; 8],
    expected_ak_name: &str,
) -> Result<QuoteReport, QuoteError> {
    let report = verify(quote, expected_qualifying_data, pcr_values)?;
    if report.ak_name != expected_ak_name {
        return Err(QuoteError::UnknownKey {
            expected: expected_ak_name.to_string(),
            found: report.ak_name,
        });
    }
    Ok(report)
}
