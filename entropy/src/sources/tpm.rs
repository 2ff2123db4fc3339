//! TPM 2.0 `TPM2_GetRandom`, with the command bytes written here (TPM 2.0 Library, Part 3
//! section 16.1 and Part 2 for the types): no TSS.
//!
//! The transport is anything `Read + Write` that carries raw TPM command/response buffers:
//! `/dev/tpmrm0` (or `/dev/tpm0`) in the image, swtpm's server socket in the tests.

use std::fs::{File, OpenOptions};
use std::io::{Read, Write};
use std::path::Path;

use zeroize::Zeroizing;

use crate::source::{Conditioning, DeviceKey, Source, SourceError, SourceInfo, SourceKind};

const TPM_ST_NO_SESSIONS: u16 = 0x8001;
/// TPM 1.2 answers with this tag: tells the operator why a 1.2 chip does not work.
const TPM12_TAG_RSP_COMMAND: u16 = 0x00C4;
const TPM_CC_GET_RANDOM: u32 = 0x0000_017B;
const TPM_CC_GET_CAPABILITY: u32 = 0x0000_017A;
const TPM_CAP_TPM_PROPERTIES: u32 = 0x0000_0006;
const TPM_PT_MANUFACTURER: u32 = 0x0000_0105;
const TPM_PT_FIRMWARE_VERSION_2: u32 = 0x0000_010C;
const HEADER_LEN: usize = 10;
/// Largest response we accept; TPM buffers are at most 4 KiB.
const MAX_RESPONSE: usize = 4096;
/// Bytes asked for per GetRandom; the TPM may return fewer (its largest digest size).
const REQUEST_BYTES: u16 = 64;
/// Retries for TPM_RC_RETRY / TESTING / YIELDED, which say "try again".
const RETRIES: u32 = 50;

/// The 12 bytes of `TPM2_GetRandom(bytes_requested)`.
pub fn get_random_command(bytes_requested: u16) -> [u8; 12] {
    let mut c = [0u8; 12];
    c[0..2].copy_from_slice(&TPM_ST_NO_SESSIONS.to_be_bytes());
    c[2..6].copy_from_slice(&12u32.to_be_bytes());
    c[6..10].copy_from_slice(&TPM_CC_GET_RANDOM.to_be_bytes());
    c[10..12].copy_from_slice(&bytes_requested.to_be_bytes());
    c
}

/// The 22 bytes of `TPM2_GetCapability(TPM_CAP_TPM_PROPERTIES, property, count)`.
pub fn get_capability_command(property: u32, count: u32) -> [u8; 22] {
    let mut c = [0u8; 22];
    c[0..2].copy_from_slice(&TPM_ST_NO_SESSIONS.to_be_bytes());
    c[2..6].copy_from_slice(&22u32.to_be_bytes());
    c[6..10].copy_from_slice(&TPM_CC_GET_CAPABILITY.to_be_bytes());
    c[10..14].copy_from_slice(&TPM_CAP_TPM_PROPERTIES.to_be_bytes());
    c[14..18].copy_from_slice(&property.to_be_bytes());
    c[18..22].copy_from_slice(&count.to_be_bytes());
    c
}

/// What a response code means, for the common ones (TPM 2.0 Part 2, 6.6).
fn rc_meaning(rc: u32) -> &'static str {
    match rc {
        0x100 => {
            "TPM_RC_INITIALIZE: TPM2_Startup was not sent; the firmware or swtpm must start the TPM"
        }
        0x101 => "TPM_RC_FAILURE: the TPM is in failure mode",
        0x143 => "TPM_RC_COMMAND_CODE: the TPM does not implement this command",
        0x908 => "TPM_RC_YIELDED",
        0x909 => "TPM_RC_CANCELED",
        0x90A => "TPM_RC_TESTING: self-test in progress",
        0x922 => "TPM_RC_RETRY",
        0x921 => "TPM_RC_LOCKOUT",
        rc if rc & 0x80 != 0 && rc & 0x3F == 0x04 => "TPM_RC_VALUE: a parameter is out of range",
        rc if rc & 0x80 != 0 && rc & 0x3F == 0x15 => "TPM_RC_SIZE: a size is wrong",
        rc if rc & 0x900 == 0x900 => "a warning; see TPM 2.0 Part 2, TPM_RC",
        _ => "see TPM 2.0 Part 2, TPM_RC",
    }
}

fn is_retry(rc: u32) -> bool {
    matches!(rc, 0x908 | 0x90A | 0x922)
}

/// Checks a whole response buffer's header; returns its parameter area.
pub fn check_response<'a>(command: &'static str, resp: &'a [u8]) -> Result<&'a [u8], SourceError> {
    let bad = |problem: String| SourceError::TpmMalformed { command, problem };
    if resp.len() < HEADER_LEN {
        return Err(bad(format!(
            "{} bytes, shorter than the 10-byte header",
            resp.len()
        )));
    }
    let tag = u16::from_be_bytes([resp[0], resp[1]]);
    let size = u32::from_be_bytes([resp[2], resp[3], resp[4], resp[5]]) as usize;
    let rc = u32::from_be_bytes([resp[6], resp[7], resp[8], resp[9]]);
    if tag == TPM12_TAG_RSP_COMMAND {
        return Err(bad(
            "the device answered with a TPM 1.2 tag; only TPM 2.0 is supported".into(),
        ));
    }
    if size != resp.len() {
        return Err(bad(format!(
            "header says {size} bytes but {} arrived",
            resp.len()
        )));
    }
    if rc != 0 {
        return Err(SourceError::TpmResponse {
            command,
            rc,
            meaning: rc_meaning(rc),
        });
    }
    if tag != TPM_ST_NO_SESSIONS {
        return Err(bad(format!("tag {tag:#06x}, expected TPM_ST_NO_SESSIONS")));
    }
    Ok(&resp[HEADER_LEN..])
}

/// The random bytes in a GetRandom response (a TPM2B_DIGEST filling the parameter area).
pub fn parse_get_random(resp: &[u8], requested: u16) -> Result<&[u8], SourceError> {
    let params = check_response("TPM2_GetRandom", resp)?;
    let bad = |problem: String| SourceError::TpmMalformed {
        command: "TPM2_GetRandom",
        problem,
    };
    if params.len() < 2 {
        return Err(bad("no TPM2B_DIGEST in the response".into()));
    }
    let n = u16::from_be_bytes([params[0], params[1]]) as usize;
    if params.len() != 2 + n {
        return Err(bad(format!(
            "TPM2B_DIGEST says {n} bytes but {} follow",
            params.len() - 2
        )));
    }
    if n == 0 || n > requested as usize {
        return Err(bad(format!("{n} random bytes for {requested} requested")));
    }
    Ok(&params[2..])
}

/// `(property, value)` pairs of a GetCapability(TPM_PROPERTIES) response.
pub fn parse_properties(resp: &[u8]) -> Result<Vec<(u32, u32)>, SourceError> {
    let params = check_response("TPM2_GetCapability", resp)?;
    let bad = |problem: String| SourceError::TpmMalformed {
        command: "TPM2_GetCapability",
        problem,
    };
    // moreData (1) || capability (4) || count (4) || count * (property (4) || value (4))
    if params.len() < 9 {
        return Err(bad(format!(
            "{} parameter bytes, need at least 9",
            params.len()
        )));
    }
    let cap = u32::from_be_bytes(params[1..5].try_into().expect("4 bytes"));
    if cap != TPM_CAP_TPM_PROPERTIES {
        return Err(bad(format!(
            "capability {cap:#x}, asked for TPM_PROPERTIES"
        )));
    }
    let count = u32::from_be_bytes(params[5..9].try_into().expect("4 bytes")) as usize;
    let body = &params[9..];
    if body.len() != count * 8 {
        return Err(bad(format!(
            "{count} properties need {} bytes, got {}",
            count * 8,
            body.len()
        )));
    }
    Ok(body
        .chunks_exact(8)
        .map(|p| {
            (
                u32::from_be_bytes(p[0..4].try_into().expect("4 bytes")),
                u32::from_be_bytes(p[4..8].try_into().expect("4 bytes")),
            )
        })
        .collect())
}

/// Four ASCII characters packed in a property value, trimmed.
fn ascii4(v: u32) -> String {
    v.to_be_bytes()
        .iter()
        .filter(|b| b.is_ascii_graphic() || **b == b' ')
        .map(|&b| b as char)
        .collect::<String>()
        .trim()
        .to_string()
}

/// "IBM SW TPM fw 0x20191023.0x00163636" from the fixed properties.
pub fn describe(props: &[(u32, u32)]) -> String {
    let get = |p: u32| props.iter().find(|(k, _)| *k == p).map(|(_, v)| *v);
    let mut s = get(TPM_PT_MANUFACTURER).map(ascii4).unwrap_or_default();
    let vendor: String = (0x106..=0x109)
        .filter_map(get)
        .map(|v| {
            v.to_be_bytes()
                .iter()
                .filter(|b| b.is_ascii_graphic() || **b == b' ')
                .map(|&b| b as char)
                .collect::<String>()
        })
        .collect::<String>()
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ");
    if !vendor.is_empty() {
        s = format!("{s} {vendor}");
    }
    if let (Some(a), Some(b)) = (get(0x10B), get(0x10C)) {
        s = format!("{s} fw {a:#010x}.{b:#010x}");
    }
    s.trim().to_string()
}

/// Why a TPM is software, from its fixed properties: swtpm (libtpms) reports manufacturer
/// "IBM" and vendor string "SW TPM".
pub fn software_tpm(props: &[(u32, u32)]) -> Option<String> {
    let d = describe(props);
    let mut words = d.split_whitespace();
    (words.next() == Some("IBM") && words.next() == Some("SW") && words.next() == Some("TPM"))
        .then(|| "a software TPM (swtpm)".to_string())
}

/// TPM2_GetRandom over a raw command transport.
pub struct TpmSource<T: Read + Write + Send> {
    transport: T,
    info: SourceInfo,
    vendor: String,
}

impl TpmSource<File> {
    /// Opens a TPM character device, `/dev/tpmrm<n>` (preferred: the kernel's resource
    /// manager lets others share the TPM) or `/dev/tpm<n>`.
    pub fn open_device(path: &Path) -> Result<Self, SourceError> {
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .open(path)
            .map_err(|e| SourceError::Open {
                path: path.to_path_buf(),
                source: e,
            })?;
        let name = path
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or_default();
        let chip = name
            .trim_start_matches("tpmrm")
            .trim_start_matches("tpm")
            .parse::<u32>()
            .unwrap_or(0);
        Self::new(file, &path.display().to_string(), DeviceKey::tpm_chip(chip))
    }
}

impl<T: Read + Write + Send> TpmSource<T> {
    /// Wraps a transport. Asks the TPM who made it (TPM2_GetCapability) so the report names
    /// the device; a TPM that cannot answer that is refused.
    pub fn new(transport: T, location: &str, device: DeviceKey) -> Result<Self, SourceError> {
        let mut s = TpmSource {
            transport,
            info: SourceInfo {
                kind: SourceKind::Tpm,
                identity: String::new(),
                device,
                conditioning: Conditioning::Whitened,
                sample_bits: 8,
                claimed_h: super::WHITENED_CLAIM,
                claim_basis: "TPM2_GetRandom returns the TPM's DRBG output, seeded by its entropy source",
                virtual_device: None,
            },
            vendor: String::new(),
        };
        let count = TPM_PT_FIRMWARE_VERSION_2 - TPM_PT_MANUFACTURER + 1;
        let resp = s.transact(
            &get_capability_command(TPM_PT_MANUFACTURER, count),
            "TPM2_GetCapability",
        )?;
        let props = parse_properties(&resp)?;
        s.vendor = describe(&props);
        s.info.virtual_device = software_tpm(&props);
        s.info.identity = format!("{location}: TPM 2.0 {}", s.vendor);
        Ok(s)
    }

    /// Manufacturer, vendor string and firmware version as the TPM reported them.
    pub fn vendor(&self) -> &str {
        &self.vendor
    }

    /// One command, one whole response (which may arrive in pieces on a socket).
    fn transact(
        &mut self,
        cmd: &[u8],
        command: &'static str,
    ) -> Result<Zeroizing<Vec<u8>>, SourceError> {
        let io = |e: std::io::Error| SourceError::Io {
            what: format!("{command} on {}", self.info.identity),
            source: e,
        };
        self.transport.write_all(cmd).map_err(io)?;
        self.transport.flush().map_err(io)?;
        let mut buf = Zeroizing::new(vec![0u8; MAX_RESPONSE]);
        let mut got = 0;
        let mut want = HEADER_LEN;
        while got < want {
            // Read at most what is still missing once the size is known.
            let end = if got < HEADER_LEN { MAX_RESPONSE } else { want };
            let n = match self.transport.read(&mut buf[got..end]) {
                Ok(0) => {
                    return Err(SourceError::ShortRead {
                        what: format!("{command} response"),
                        got,
                        wanted: want,
                    });
                }
                Ok(n) => n,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(io(e)),
            };
            got += n;
            if want == HEADER_LEN && got >= HEADER_LEN {
                want = u32::from_be_bytes([buf[2], buf[3], buf[4], buf[5]]) as usize;
                if !(HEADER_LEN..=MAX_RESPONSE).contains(&want) {
                    return Err(SourceError::TpmMalformed {
                        command,
                        problem: format!("response size {want} outside 10..=4096"),
                    });
                }
                if got > want {
                    return Err(SourceError::TpmMalformed {
                        command,
                        problem: format!("{got} bytes arrived for a {want}-byte response"),
                    });
                }
            }
        }
        buf.truncate(got);
        Ok(buf)
    }
}

impl<T: Read + Write + Send> Source for TpmSource<T> {
    fn info(&self) -> &SourceInfo {
        &self.info
    }

    fn fill(&mut self, buf: &mut [u8]) -> Result<(), SourceError> {
        let mut filled = 0;
        let mut retries = 0;
        while filled < buf.len() {
            let ask = (buf.len() - filled).min(REQUEST_BYTES as usize) as u16;
            let resp = self.transact(&get_random_command(ask), "TPM2_GetRandom")?;
            match parse_get_random(&resp, ask) {
                Ok(bytes) => {
                    buf[filled..filled + bytes.len()].copy_from_slice(bytes);
                    filled += bytes.len();
                }
                Err(SourceError::TpmResponse { rc, .. }) if is_retry(rc) && retries < RETRIES => {
                    retries += 1;
                    std::thread::sleep(std::time::Duration::from_millis(10));
                }
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::VecDeque;

    #[test]
    fn get_random_command_bytes_follow_part_3() {
        // tag 8001, size 0000000c, TPM_CC_GetRandom 0000017b, bytesRequested 0020.
        assert_eq!(
            get_random_command(32),
            [0x80, 0x01, 0, 0, 0, 0x0c, 0, 0, 0x01, 0x7b, 0x00, 0x20]
        );
        assert_eq!(
            get_capability_command(0x105, 8),
            [
                0x80, 0x01, 0, 0, 0, 0x16, 0, 0, 0x01, 0x7a, 0, 0, 0, 6, 0, 0, 0x01, 0x05, 0, 0, 0,
                8
            ]
        );
    }

    fn response(rc: u32, params: &[u8]) -> Vec<u8> {
        let mut r = vec![0x80, 0x01];
        r.extend_from_slice(&((10 + params.len()) as u32).to_be_bytes());
        r.extend_from_slice(&rc.to_be_bytes());
        r.extend_from_slice(params);
        r
    }

    #[test]
    fn get_random_responses_are_checked_strictly() {
        let ok = response(0, &[0, 3, 7, 8, 9]);
        assert_eq!(parse_get_random(&ok, 3).unwrap(), &[7, 8, 9]);
        // More than asked for.
        assert!(parse_get_random(&ok, 2).is_err());
        // TPM2B size disagrees with the bytes present.
        assert!(parse_get_random(&response(0, &[0, 4, 7, 8, 9]), 8).is_err());
        // Header size disagrees with the buffer.
        let mut short = ok.clone();
        short.pop();
        assert!(parse_get_random(&short, 3).is_err());
        // Zero bytes is not progress.
        assert!(parse_get_random(&response(0, &[0, 0]), 3).is_err());
        // An error code is named.
        let e = parse_get_random(&response(0x101, &[]), 3).unwrap_err();
        assert!(e.to_string().contains("failure mode"), "{e}");
        // TPM 1.2.
        let mut v12 = response(0, &[0, 1, 5]);
        v12[0..2].copy_from_slice(&[0x00, 0xC4]);
        assert!(
            parse_get_random(&v12, 3)
                .unwrap_err()
                .to_string()
                .contains("1.2")
        );
    }

    /// A transport that answers each command from a script and records what was sent; it
    /// delivers responses a few bytes at a time, as a socket may.
    struct Scripted {
        responses: VecDeque<Vec<u8>>,
        pending: Vec<u8>,
        sent: Vec<Vec<u8>>,
    }

    impl Read for Scripted {
        fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
            let n = buf.len().min(self.pending.len()).min(3);
            buf[..n].copy_from_slice(&self.pending[..n]);
            self.pending.drain(..n);
            Ok(n)
        }
    }

    impl Write for Scripted {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.sent.push(buf.to_vec());
            self.pending = self.responses.pop_front().unwrap_or_default();
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    fn caps() -> Vec<u8> {
        let mut p = vec![0u8];
        p.extend_from_slice(&6u32.to_be_bytes());
        p.extend_from_slice(&2u32.to_be_bytes());
        for (k, v) in [(0x105u32, *b"IBM\0"), (0x106, *b"SW  ")] {
            p.extend_from_slice(&k.to_be_bytes());
            p.extend_from_slice(&v);
        }
        response(0, &p)
    }

    #[test]
    fn fill_loops_over_short_answers_and_retries_warnings() {
        let mut random = vec![0u8, 2, 0xAA, 0xBB];
        random = response(0, &random);
        let t = Scripted {
            responses: VecDeque::from(vec![
                caps(),
                random.clone(),
                response(0x922, &[]),
                response(0, &[0, 1, 0xCC]),
            ]),
            pending: vec![],
            sent: vec![],
        };
        let mut s = TpmSource::new(t, "scripted", DeviceKey::tpm_chip(9)).unwrap();
        assert_eq!(s.vendor(), "IBM SW");
        let mut buf = [0u8; 3];
        s.fill(&mut buf).unwrap();
        assert_eq!(buf, [0xAA, 0xBB, 0xCC]);
        let sent = &s.transport.sent;
        assert_eq!(sent[1], get_random_command(3));
        assert_eq!(sent[2], get_random_command(1));
        assert_eq!(sent[3], get_random_command(1));
    }

    #[test]
    fn a_tpm_in_failure_mode_is_an_error_not_a_retry() {
        let t = Scripted {
            responses: VecDeque::from(vec![caps(), response(0x101, &[])]),
            pending: vec![],
            sent: vec![],
        };
        let mut s = TpmSource::new(t, "scripted", DeviceKey::tpm_chip(9)).unwrap();
        let err = s.fill(&mut [0u8; 8]).unwrap_err();
        assert!(
            matches!(err, SourceError::TpmResponse { rc: 0x101, .. }),
            "{err}"
        );
    }
}
