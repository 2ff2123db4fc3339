//! The TPM commands, built and parsed here (TPM 2.0 Part 3 for the commands, Part 2 for the
//! types), over any transport carrying raw command and response buffers.

use std::io::{Read, Write};
use std::time::Duration;

use crate::verify::{expect_pcr0_7, parse_ak_public, verify};
use crate::wire::{Put, Reader};
use crate::{
    AK_TEMPLATE, Quote, QuoteReport, TPM_ALG_NULL, TPM_ALG_SHA256, TPM_RH_ENDORSEMENT, TpmError,
};

const TPM_ST_NO_SESSIONS: u16 = 0x8001;
const TPM_ST_SESSIONS: u16 = 0x8002;
/// TPM 1.2's response tag: says why a 1.2 chip does not work.
const TPM12_TAG_RSP_COMMAND: u16 = 0x00C4;
const TPM_RS_PW: u32 = 0x4000_0009;
const TPM_RH_OWNER: u32 = 0x4000_0001;

const TPM_CC_NV_READ: u32 = 0x0000_014E;
const TPM_CC_CREATE_PRIMARY: u32 = 0x0000_0131;
const TPM_CC_QUOTE: u32 = 0x0000_0158;
const TPM_CC_FLUSH_CONTEXT: u32 = 0x0000_0165;
const TPM_CC_NV_READ_PUBLIC: u32 = 0x0000_0169;
const TPM_CC_PCR_READ: u32 = 0x0000_017E;

/// NV index of the RSA 2048 EK certificate (TCG EK Credential Profile).
pub const EK_CERT_RSA_INDEX: u32 = 0x01C0_0002;
/// NV index of the ECC NIST P-256 EK certificate (TCG EK Credential Profile).
pub const EK_CERT_ECC_INDEX: u32 = 0x01C0_000A;

const TPMA_NV_OWNERREAD: u32 = 1 << 17;
const TPMA_NV_AUTHREAD: u32 = 1 << 18;
const TPMA_NV_WRITTEN: u32 = 1 << 29;

const HEADER_LEN: usize = 10;
/// Largest response accepted; TPM buffers are at most 4 KiB.
const MAX_RESPONSE: usize = 4096;
/// Bytes asked for per `TPM2_NV_Read`: below every TPM's `TPM_PT_NV_BUFFER_MAX` seen.
const NV_CHUNK: u16 = 512;
/// Retries of TPM_RC_YIELDED / TESTING / RETRY, which say "send it again".
const RETRIES: u32 = 50;

/// What a TPM 2.0 response code means (TPM 2.0 Part 2, section 6.6, TPM_RC), with where it
/// points (which handle, session or parameter) for format-one codes.
pub fn rc_meaning(rc: u32) -> String {
    if rc & 0x80 != 0 {
        // Format one: an error about one handle, session or parameter.
        let name = match rc & 0x3f {
            0x01 => "TPM_RC_ASYMMETRIC",
            0x02 => "TPM_RC_ATTRIBUTES",
            0x03 => "TPM_RC_HASH",
            0x04 => "TPM_RC_VALUE: out of range",
            0x05 => "TPM_RC_HIERARCHY: the hierarchy is disabled or not allowed",
            0x07 => "TPM_RC_KEY_SIZE",
            0x08 => "TPM_RC_MGF",
            0x09 => "TPM_RC_MODE",
            0x0a => "TPM_RC_TYPE",
            0x0b => "TPM_RC_HANDLE: no such handle",
            0x0c => "TPM_RC_KDF",
            0x0d => "TPM_RC_RANGE",
            0x0e => "TPM_RC_AUTH_FAIL: authorization failed",
            0x0f => "TPM_RC_NONCE",
            0x10 => "TPM_RC_PP: physical presence needed",
            0x12 => "TPM_RC_SCHEME",
            0x15 => "TPM_RC_SIZE: a size is wrong",
            0x16 => "TPM_RC_SYMMETRIC",
            0x17 => "TPM_RC_TAG",
            0x18 => "TPM_RC_SELECTOR",
            0x1a => "TPM_RC_INSUFFICIENT: too few bytes",
            0x1b => "TPM_RC_SIGNATURE",
            0x1c => "TPM_RC_KEY",
            0x1d => "TPM_RC_POLICY_FAIL",
            0x1f => "TPM_RC_INTEGRITY",
            0x20 => "TPM_RC_TICKET",
            0x21 => "TPM_RC_RESERVED_BITS",
            0x22 => "TPM_RC_BAD_AUTH: the authorization value is wrong (is a password set?)",
            0x23 => "TPM_RC_EXPIRED",
            0x24 => "TPM_RC_POLICY_CC",
            0x25 => "TPM_RC_BINDING",
            0x26 => "TPM_RC_CURVE: the curve is not supported",
            0x27 => "TPM_RC_ECC_POINT",
            _ => "an unknown format-one error",
        };
        let n = (rc >> 8) & 0xf;
        let place = if rc & 0x40 != 0 {
            format!("parameter {n}")
        } else if n == 0 {
            "the command".to_string()
        } else if n < 8 {
            format!("handle {n}")
        } else {
            format!("session {}", n - 8)
        };
        return format!("{name} (about {place})");
    }
    let name = match rc {
        0x100 => "TPM_RC_INITIALIZE: TPM2_Startup was not sent",
        0x101 => "TPM_RC_FAILURE: the TPM is in failure mode",
        0x103 => "TPM_RC_SEQUENCE",
        0x120 => "TPM_RC_DISABLED",
        0x124 => "TPM_RC_AUTH_TYPE",
        0x125 => "TPM_RC_AUTH_MISSING",
        0x126 => "TPM_RC_POLICY",
        0x127 => "TPM_RC_PCR",
        0x128 => "TPM_RC_PCR_CHANGED",
        0x12e => "TPM_RC_TOO_MANY_CONTEXTS",
        0x12f => "TPM_RC_AUTH_UNAVAILABLE",
        0x130 => "TPM_RC_REBOOT",
        0x142 => "TPM_RC_COMMAND_SIZE",
        0x143 => "TPM_RC_COMMAND_CODE: the TPM does not implement this command",
        0x144 => "TPM_RC_AUTHSIZE",
        0x145 => "TPM_RC_AUTH_CONTEXT",
        0x146 => "TPM_RC_NV_RANGE",
        0x147 => "TPM_RC_NV_SIZE",
        0x148 => "TPM_RC_NV_LOCKED",
        0x149 => "TPM_RC_NV_AUTHORIZATION",
        0x14a => "TPM_RC_NV_UNINITIALIZED",
        0x14b => "TPM_RC_NV_SPACE",
        0x14c => "TPM_RC_NV_DEFINED",
        0x150 => "TPM_RC_BAD_CONTEXT",
        0x153 => "TPM_RC_NEEDS_TEST",
        0x901 => "TPM_RC_CONTEXT_GAP",
        0x902 => "TPM_RC_OBJECT_MEMORY: no room for another object (use /dev/tpmrm0)",
        0x903 => "TPM_RC_SESSION_MEMORY",
        0x904 => "TPM_RC_MEMORY",
        0x905 => "TPM_RC_SESSION_HANDLES",
        0x906 => "TPM_RC_OBJECT_HANDLES",
        0x907 => "TPM_RC_LOCALITY",
        0x908 => "TPM_RC_YIELDED",
        0x909 => "TPM_RC_CANCELED",
        0x90a => "TPM_RC_TESTING: self-test in progress",
        0x920 => "TPM_RC_NV_RATE",
        0x921 => "TPM_RC_LOCKOUT: dictionary-attack lockout",
        0x922 => "TPM_RC_RETRY",
        0x923 => "TPM_RC_NV_UNAVAILABLE",
        rc if rc & 0x400 != 0 => "a vendor-defined code",
        rc if rc & 0x900 == 0x900 => "a warning",
        _ => "an error",
    };
    format!("{name} (TPM 2.0 Part 2, TPM_RC)")
}

fn is_retry(rc: u32) -> bool {
    matches!(rc, 0x908 | 0x90A | 0x922)
}

/// A command buffer: header, handles, the password session (empty password) when `auth`, and
/// parameters.
fn command(code: u32, handles: &[u32], auth: bool, params: &[u8]) -> Vec<u8> {
    let mut c = Vec::with_capacity(64 + params.len());
    c.u16(if auth {
        TPM_ST_SESSIONS
    } else {
        TPM_ST_NO_SESSIONS
    });
    c.u32(0); // commandSize, set below
    c.u32(code);
    for &h in handles {
        c.u32(h);
    }
    if auth {
        // authorizationSize, then one TPMS_AUTH_COMMAND: TPM_RS_PW, empty nonce,
        // sessionAttributes continueSession, empty password.
        c.u32(9);
        c.u32(TPM_RS_PW);
        c.tpm2b(&[]);
        c.u8(0x01);
        c.tpm2b(&[]);
    }
    c.extend_from_slice(params);
    let size = u32::try_from(c.len()).expect("a small command");
    c[2..6].copy_from_slice(&size.to_be_bytes());
    c
}

/// Sends one command, reads its whole response (which may arrive in pieces on a socket),
/// sending it again while the TPM says to.
fn transact<T: Read + Write>(
    t: &mut T,
    cmd: &[u8],
    command: &'static str,
) -> Result<Vec<u8>, TpmError> {
    for _ in 0..RETRIES {
        let resp = exchange(t, cmd, command)?;
        let rc = u32::from_be_bytes([resp[6], resp[7], resp[8], resp[9]]);
        if is_retry(rc) {
            std::thread::sleep(Duration::from_millis(20));
            continue;
        }
        return Ok(resp);
    }
    Err(TpmError::Response {
        command,
        rc: 0x922,
        meaning: format!("still asking to retry after {RETRIES} tries"),
    })
}

fn exchange<T: Read + Write>(
    t: &mut T,
    cmd: &[u8],
    command: &'static str,
) -> Result<Vec<u8>, TpmError> {
    let io = |source| TpmError::Io { command, source };
    t.write_all(cmd).map_err(io)?;
    t.flush().map_err(io)?;
    let mut buf = vec![0u8; MAX_RESPONSE];
    let mut got = 0;
    let mut want = HEADER_LEN;
    while got < want {
        let end = if got < HEADER_LEN { MAX_RESPONSE } else { want };
        let n = match t.read(&mut buf[got..end]) {
            Ok(0) => {
                return Err(TpmError::Malformed {
                    command,
                    problem: format!("the TPM hung up after {got} of {want} bytes"),
                });
            }
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(io(e)),
        };
        got += n;
        if want == HEADER_LEN && got >= HEADER_LEN {
            if u16::from_be_bytes([buf[0], buf[1]]) == TPM12_TAG_RSP_COMMAND {
                return Err(TpmError::Malformed {
                    command,
                    problem: "a TPM 1.2 answered; only TPM 2.0 is supported".into(),
                });
            }
            want = u32::from_be_bytes([buf[2], buf[3], buf[4], buf[5]]) as usize;
            if !(HEADER_LEN..=MAX_RESPONSE).contains(&want) {
                return Err(TpmError::Malformed {
                    command,
                    problem: format!("response size {want} outside 10..=4096"),
                });
            }
        }
        if got > want {
            return Err(TpmError::Malformed {
                command,
                problem: format!("{got} bytes arrived for a {want}-byte response"),
            });
        }
    }
    buf.truncate(want);
    Ok(buf)
}

/// A successful response's handles and parameter area. With `auth`, the response carries a
/// parameterSize and, after the parameters, exactly one password-session response.
fn response<'a>(
    command: &'static str,
    resp: &'a [u8],
    handles: usize,
    auth: bool,
) -> Result<(Vec<u32>, &'a [u8]), TpmError> {
    let bad = |e: crate::ParseError| TpmError::Malformed {
        command,
        problem: e.to_string(),
    };
    let mut r = Reader::new("response", resp);
    let tag = r.u16("tag").map_err(bad)?;
    let size = r.u32("responseSize").map_err(bad)?;
    let rc = r.u32("responseCode").map_err(bad)?;
    if size as usize != resp.len() {
        return Err(TpmError::Malformed {
            command,
            problem: format!("header says {size} bytes but {} arrived", resp.len()),
        });
    }
    if rc != 0 {
        return Err(TpmError::Response {
            command,
            rc,
            meaning: rc_meaning(rc),
        });
    }
    let want_tag = if auth {
        TPM_ST_SESSIONS
    } else {
        TPM_ST_NO_SESSIONS
    };
    if tag != want_tag {
        return Err(TpmError::Malformed {
            command,
            problem: format!("tag {tag:#06x}, expected {want_tag:#06x}"),
        });
    }
    let mut hs = Vec::with_capacity(handles);
    for _ in 0..handles {
        hs.push(r.u32("handle").map_err(bad)?);
    }
    if !auth {
        let params = r.take("parameters", resp.len() - r.pos()).map_err(bad)?;
        return Ok((hs, params));
    }
    let n = r.u32("parameterSize").map_err(bad)? as usize;
    let params = r.take("parameters", n).map_err(bad)?;
    r.tpm2b("authorization.nonce").map_err(bad)?;
    r.u8("authorization.sessionAttributes").map_err(bad)?;
    r.tpm2b("authorization.hmac").map_err(bad)?;
    r.finish().map_err(bad)?;
    Ok((hs, params))
}

/// `TPM2_CreatePrimary` of [`AK_TEMPLATE`] under `TPM_RH_ENDORSEMENT` (empty endorsement
/// password): the key's transient handle and its `TPMT_PUBLIC`. The caller must flush the
/// handle ([`flush_context`]). The key is checked to be of the template's shape and the name
/// the TPM reports to be the name of the public part it returned.
pub fn create_ak<T: Read + Write>(t: &mut T) -> Result<(u32, Vec<u8>), TpmError> {
    const CMD: &str = "TPM2_CreatePrimary";
    let mut p = Vec::new();
    // inSensitive: TPM2B_SENSITIVE_CREATE of an empty userAuth and empty data.
    p.u16(4);
    p.tpm2b(&[]);
    p.tpm2b(&[]);
    p.tpm2b(&AK_TEMPLATE); // inPublic
    p.tpm2b(&[]); // outsideInfo
    p.u32(0); // creationPCR: no PCRs
    let resp = transact(
        t,
        &command(TPM_CC_CREATE_PRIMARY, &[TPM_RH_ENDORSEMENT], true, &p),
        CMD,
    )?;
    let (handles, params) = response(CMD, &resp, 1, true)?;
    let handle = handles[0];
    match parse_create_primary(params) {
        Ok(public) => Ok((handle, public)),
        Err(e) => {
            let _ = flush_context(t, handle);
            Err(e)
        }
    }
}

fn parse_create_primary(params: &[u8]) -> Result<Vec<u8>, TpmError> {
    const CMD: &str = "TPM2_CreatePrimary";
    let bad = |problem: String| TpmError::Malformed {
        command: CMD,
        problem,
    };
    let mut r = Reader::new("TPM2_CreatePrimary response parameters", params);
    let public = r.tpm2b("outPublic").map_err(|e| bad(e.to_string()))?;
    let steps = (|| {
        r.tpm2b("creationData")?;
        r.tpm2b("creationHash")?;
        r.u16("creationTicket.tag")?;
        r.u32("creationTicket.hierarchy")?;
        r.tpm2b("creationTicket.digest")?;
        let name = r.tpm2b("name")?;
        r.finish()?;
        Ok::<_, crate::ParseError>(name)
    })();
    let name = steps.map_err(|e| bad(e.to_string()))?;
    parse_ak_public(public).map_err(|e| bad(format!("the key made is not the template's: {e}")))?;
    let ours = crate::ak_name_bytes(public);
    if name != ours {
        return Err(bad(format!(
            "the TPM names the key {} but its public part's name is {}",
            hexstr::encode(name),
            hexstr::encode(&ours)
        )));
    }
    Ok(public.to_vec())
}

/// The attestation key's `TPMT_PUBLIC`, made and flushed again: what an owner records for a
/// laptop beforehand (usually as its name, [`crate::ak_name`]).
pub fn ak_public<T: Read + Write>(t: &mut T) -> Result<Vec<u8>, TpmError> {
    let (handle, public) = create_ak(t)?;
    flush_context(t, handle)?;
    Ok(public)
}

/// `TPMS_PCR_SELECTION` list of PCR 0-7 in the SHA-256 bank.
fn put_pcr0_7(p: &mut Vec<u8>) {
    p.u32(1);
    p.u16(TPM_ALG_SHA256);
    p.u8(3);
    p.extend_from_slice(&[0xff, 0x00, 0x00]);
}

/// `TPM2_Quote` of PCR 0-7 (SHA-256 bank) with the loaded key `handle` (empty password) and
/// its own scheme (`inScheme` `TPM_ALG_NULL`): the `TPMS_ATTEST` and `TPMT_SIGNATURE` bytes.
/// `qualifying_data` becomes the attest's `extraData` (at most the TPM's largest digest, so
/// 32 bytes always fit).
pub fn quote_with_key<T: Read + Write>(
    t: &mut T,
    handle: u32,
    qualifying_data: &[u8],
) -> Result<(Vec<u8>, Vec<u8>), TpmError> {
    const CMD: &str = "TPM2_Quote";
    if qualifying_data.len() > 64 {
        return Err(TpmError::QualifyingDataTooLong(qualifying_data.len()));
    }
    let mut p = Vec::new();
    p.tpm2b(qualifying_data);
    p.u16(TPM_ALG_NULL); // inScheme: the key's
    put_pcr0_7(&mut p);
    let resp = transact(t, &command(TPM_CC_QUOTE, &[handle], true, &p), CMD)?;
    let (_, params) = response(CMD, &resp, 0, true)?;
    let mut r = Reader::new("TPM2_Quote response parameters", params);
    let attest = r.tpm2b("quoted").map_err(|e| TpmError::Malformed {
        command: CMD,
        problem: e.to_string(),
    })?;
    let signature = &params[r.pos()..];
    crate::parse_signature(signature).map_err(|e| TpmError::Malformed {
        command: CMD,
        problem: e.to_string(),
    })?;
    Ok((attest.to_vec(), signature.to_vec()))
}

/// `TPM2_FlushContext`: unloads a transient object.
pub fn flush_context<T: Read + Write>(t: &mut T, handle: u32) -> Result<(), TpmError> {
    const CMD: &str = "TPM2_FlushContext";
    let resp = transact(
        t,
        &command(TPM_CC_FLUSH_CONTEXT, &[], false, &handle.to_be_bytes()),
        CMD,
    )?;
    let (_, params) = response(CMD, &resp, 0, false)?;
    if !params.is_empty() {
        return Err(TpmError::Malformed {
            command: CMD,
            problem: format!("{} unexpected parameter bytes", params.len()),
        });
    }
    Ok(())
}

/// PCR 0-7 of the SHA-256 bank, as `TPM2_PCR_Read` returned them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PcrRead {
    /// `pcrUpdateCounter`: changes whenever a PCR is extended.
    pub update_counter: u32,
    /// PCR 0..7.
    pub values: [[u8; 32]; 8],
}

/// `TPM2_PCR_Read` of PCR 0-7 in the SHA-256 bank. Fails if the TPM returns fewer (a TPM with
/// no SHA-256 bank allocated returns none).
pub fn pcr_read<T: Read + Write>(t: &mut T) -> Result<PcrRead, TpmError> {
    const CMD: &str = "TPM2_PCR_Read";
    let mut p = Vec::new();
    put_pcr0_7(&mut p);
    let resp = transact(t, &command(TPM_CC_PCR_READ, &[], false, &p), CMD)?;
    let (_, params) = response(CMD, &resp, 0, false)?;
    let parsed = (|| {
        let mut r = Reader::new("TPM2_PCR_Read response parameters", params);
        let update_counter = r.u32("pcrUpdateCounter")?;
        expect_pcr0_7(
            &mut r,
            "pcrSelectionOut.count",
            "pcrSelectionOut[0].hash",
            "pcrSelectionOut[0].sizeofSelect",
            "pcrSelectionOut[0].pcrSelect",
        )?;
        let at = r.pos();
        let n = r.u32("pcrValues.count")?;
        if n != 8 {
            return Err(r.error_at("pcrValues.count", at, format!("{n} digests, expected 8")));
        }
        let mut values = [[0u8; 32]; 8];
        for v in &mut values {
            let at = r.pos();
            let d = r.tpm2b("pcrValues.digests")?;
            *v = d.try_into().map_err(|_| {
                r.error_at(
                    "pcrValues.digests",
                    at,
                    format!("{} bytes, a SHA-256 PCR has 32", d.len()),
                )
            })?;
        }
        r.finish()?;
        Ok(PcrRead {
            update_counter,
            values,
        })
    })();
    parsed.map_err(|e: crate::ParseError| TpmError::Malformed {
        command: CMD,
        problem: e.to_string(),
    })
}

/// The EK certificate stored at an NV index, or `None` when the index is not defined (or
/// never written), which is normal: many TPMs (and swtpm without `--create-ek-cert`) have
/// none. Read with the index's own empty password when it allows that (`TPMA_NV_AUTHREAD`),
/// else with the owner's (empty) password.
pub fn read_nv_cert<T: Read + Write>(t: &mut T, index: u32) -> Result<Option<Vec<u8>>, TpmError> {
    const CMD: &str = "TPM2_NV_ReadPublic";
    let resp = transact(
        t,
        &command(TPM_CC_NV_READ_PUBLIC, &[index], false, &[]),
        CMD,
    )?;
    let (_, params) = match response(CMD, &resp, 0, false) {
        Err(TpmError::Response { rc, .. }) if rc & 0xff == 0x8b => return Ok(None),
        other => other?,
    };
    let bad = |e: crate::ParseError| TpmError::Malformed {
        command: CMD,
        problem: e.to_string(),
    };
    let mut r = Reader::new("TPM2_NV_ReadPublic response parameters", params);
    let public = r.tpm2b("nvPublic").map_err(bad)?;
    r.tpm2b("nvName").map_err(bad)?;
    r.finish().map_err(bad)?;
    let mut r = Reader::new("TPMS_NV_PUBLIC", public);
    let at = r.pos();
    let got = r.u32("nvIndex").map_err(bad)?;
    if got != index {
        return Err(bad(r.error_at(
            "nvIndex",
            at,
            format!("{got:#010x}, asked for {index:#010x}"),
        )));
    }
    r.u16("nameAlg").map_err(bad)?;
    let attrs = r.u32("attributes").map_err(bad)?;
    r.tpm2b("authPolicy").map_err(bad)?;
    let size = r.u16("dataSize").map_err(bad)?;
    r.finish().map_err(bad)?;
    if attrs & TPMA_NV_WRITTEN == 0 {
        return Ok(None);
    }
    let auth = if attrs & TPMA_NV_AUTHREAD != 0 {
        index
    } else if attrs & TPMA_NV_OWNERREAD != 0 {
        TPM_RH_OWNER
    } else {
        return Err(TpmError::Malformed {
            command: CMD,
            problem: format!(
                "NV index {index:#010x} (attributes {attrs:#010x}) can be read neither with \
                 its own password nor the owner's"
            ),
        });
    };
    const READ: &str = "TPM2_NV_Read";
    let mut data = Vec::with_capacity(usize::from(size));
    while data.len() < usize::from(size) {
        let offset = u16::try_from(data.len()).expect("below dataSize");
        let want = NV_CHUNK.min(size - offset);
        let mut p = Vec::new();
        p.u16(want);
        p.u16(offset);
        let resp = transact(t, &command(TPM_CC_NV_READ, &[auth, index], true, &p), READ)?;
        let (_, params) = response(READ, &resp, 0, true)?;
        let bad = |e: crate::ParseError| TpmError::Malformed {
            command: READ,
            problem: e.to_string(),
        };
        let mut r = Reader::new("TPM2_NV_Read response parameters", params);
        let chunk = r.tpm2b("data").map_err(bad)?;
        r.finish().map_err(bad)?;
        if chunk.len() != usize::from(want) {
            return Err(TpmError::Malformed {
                command: READ,
                problem: format!("{} bytes for {want} asked at offset {offset}", chunk.len()),
            });
        }
        data.extend_from_slice(chunk);
    }
    Ok(Some(data))
}

/// The TPM's EK certificate: the RSA one (`0x01C00002`) if present, else the ECC one
/// (`0x01C0000A`), with the index it came from; `None` when neither is there.
pub fn read_ek_cert<T: Read + Write>(t: &mut T) -> Result<Option<(u32, Vec<u8>)>, TpmError> {
    for index in [EK_CERT_RSA_INDEX, EK_CERT_ECC_INDEX] {
        if let Some(cert) = read_nv_cert(t, index)? {
            return Ok(Some((index, cert)));
        }
    }
    Ok(None)
}

/// Creates the attestation key, quotes PCR 0-7 with `qualifying_data`, flushes the key (also
/// when the quote failed) and reads the EK certificate if there is one.
///
/// An EK certificate that is absent is `None`; one that is present but cannot be read (its
/// index wants a password that is set, say) is an error, naming `TPM2_NV_Read`. To quote
/// without looking for one, call [`create_ak`], [`quote_with_key`] and [`flush_context`].
pub fn quote<T: Read + Write>(t: &mut T, qualifying_data: &[u8]) -> Result<Quote, TpmError> {
    let (handle, ak_public) = create_ak(t)?;
    let signed = quote_with_key(t, handle, qualifying_data);
    let flushed = flush_context(t, handle);
    let (attest, signature) = signed?;
    flushed?;
    let ek_cert = read_ek_cert(t)?.map(|(_, cert)| cert);
    Ok(Quote {
        attest,
        signature,
        ak_public,
        ek_cert,
    })
}

/// A quote with the PCR values it covers, checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Attestation {
    /// The quote, to record.
    pub quote: Quote,
    /// PCR 0..7 of the SHA-256 bank as read right before and after the quote (unchanged).
    pub pcrs: [[u8; 32]; 8],
    /// [`verify`]'s report on the quote against `pcrs`.
    pub report: QuoteReport,
}

/// What the ceremony runs: reads PCR 0-7, makes the [`quote`], reads them again (they must not
/// have changed: same values and same update counter), and checks the quote with [`verify`]
/// against those values and `qualifying_data`, so a quote that would not verify offline is
/// caught now.
pub fn attest<T: Read + Write>(t: &mut T, qualifying_data: &[u8]) -> Result<Attestation, TpmError> {
    let before = pcr_read(t)?;
    let quote = quote(t, qualifying_data)?;
    let after = pcr_read(t)?;
    if before != after {
        return Err(TpmError::PcrsChanged {
            before: before.update_counter,
            after: after.update_counter,
        });
    }
    let report = verify(&quote, qualifying_data, &before.values).map_err(TpmError::SelfCheck)?;
    Ok(Attestation {
        quote,
        pcrs: before.values,
        report,
    })
}
