//! The quote against a real software TPM (swtpm), over its raw command socket. Fails, never
//! skips, when swtpm or Debian's python3-cryptography is missing: `./scripts/setup` installs
//! both.

use std::os::unix::net::UnixStream;
use std::process::Command;
use std::time::{Duration, Instant};

use sha2::{Digest, Sha256};
use swtpm_socket::Swtpm;
use tpm_quote::{
    EK_CERT_ECC_INDEX, Quote, QuoteError, TpmError, ak_name, attest, create_ak, flush_context,
    parse_ak_public, parse_signature, pcr_read, quote, read_ek_cert, read_nv_cert, verify,
};

/// A fresh swtpm (new state directory: its own endorsement seed), started with
/// TPM2_Startup(CLEAR) done.
fn start_swtpm() -> Swtpm {
    Swtpm::start()
}

/// swtpm serves one connection at a time: drop one before connecting again.
fn connect(s: &Swtpm) -> UnixStream {
    s.connect(Duration::from_secs(30))
}

/// Sends one raw command, returns the response code.
fn raw(t: &mut UnixStream, cmd: &[u8]) -> u32 {
    use std::io::{Read, Write};
    let mut c = cmd.to_vec();
    let len = u32::try_from(c.len()).unwrap();
    c[2..6].copy_from_slice(&len.to_be_bytes());
    t.write_all(&c).unwrap();
    let mut head = [0u8; 10];
    t.read_exact(&mut head).unwrap();
    let size = u32::from_be_bytes(head[2..6].try_into().unwrap()) as usize;
    let mut rest = vec![0u8; size - 10];
    t.read_exact(&mut rest).unwrap();
    u32::from_be_bytes(head[6..10].try_into().unwrap())
}

/// Header (size filled in by `raw`) and a password session with an empty password.
fn with_pw_session(cc: u32, handles: &[u32]) -> Vec<u8> {
    let mut c = vec![0x80, 0x02, 0, 0, 0, 0];
    c.extend_from_slice(&cc.to_be_bytes());
    for h in handles {
        c.extend_from_slice(&h.to_be_bytes());
    }
    c.extend_from_slice(&9u32.to_be_bytes());
    c.extend_from_slice(&0x4000_0009u32.to_be_bytes());
    c.extend_from_slice(&[0, 0, 1, 0, 0]);
    c
}

/// TPM2_PCR_Extend(pcr, SHA-256 digest): only the SHA-256 bank is extended.
fn pcr_extend(t: &mut UnixStream, pcr: u32, digest: &[u8; 32]) {
    let mut c = with_pw_session(0x182, &[pcr]);
    c.extend_from_slice(&1u32.to_be_bytes());
    c.extend_from_slice(&0x000Bu16.to_be_bytes());
    c.extend_from_slice(digest);
    assert_eq!(raw(t, &c), 0, "TPM2_PCR_Extend of PCR {pcr}");
}

/// What PCR 0-7 hold after `extend_all` on a fresh swtpm (they start at zero): computed here,
/// not read from the TPM.
fn expected_pcrs() -> [[u8; 32]; 8] {
    let mut pcrs = [[0u8; 32]; 8];
    for (i, p) in pcrs.iter_mut().enumerate() {
        let mut h = Sha256::new();
        h.update([0u8; 32]);
        h.update(event(i));
        *p = h.finalize().into();
    }
    pcrs
}

fn event(i: usize) -> [u8; 32] {
    Sha256::digest(format!("firmware stage {i}")).into()
}

fn extend_all(t: &mut UnixStream) {
    for i in 0..8 {
        pcr_extend(t, i as u32, &event(i));
    }
}

const PLAN_HASH: [u8; 32] = [0x5a; 32];

#[test]
fn a_swtpm_quote_verifies_and_every_change_is_caught() {
    let tpm = start_swtpm();
    let mut t = connect(&tpm);
    let zero = pcr_read(&mut t).unwrap();
    assert_eq!(zero.values, [[0u8; 32]; 8], "PCR 0-7 start at zero");
    extend_all(&mut t);
    let pcrs = pcr_read(&mut t).unwrap();
    assert_eq!(pcrs.values, expected_pcrs());
    assert_ne!(pcrs.update_counter, zero.update_counter);

    let start = Instant::now();
    let a = attest(&mut t, &PLAN_HASH).unwrap();
    let took = start.elapsed();
    eprintln!(
        "swtpm: PCR_Read + CreatePrimary + Quote + FlushContext + EK cert look-up + PCR_Read \
         took {:.1} ms",
        took.as_secs_f64() * 1e3
    );
    assert_eq!(a.pcrs, expected_pcrs());
    assert_eq!(
        a.quote.ek_cert, None,
        "swtpm without --create-ek-cert has none"
    );
    let q = a.quote;
    let report = verify(&q, &PLAN_HASH, &expected_pcrs()).unwrap();
    assert_eq!(report, a.report);
    // The name recorded beforehand (from this TPM) is accepted.
    let recorded = ak_name(&tpm_quote::ak_public(&mut t).unwrap());
    assert_eq!(
        tpm_quote::verify_known_ak(&q, &PLAN_HASH, &expected_pcrs(), &recorded).unwrap(),
        report
    );
    assert_eq!(report.ak_name, ak_name(&q.ak_public));
    assert!(report.ak_name.starts_with("000b") && report.ak_name.len() == 68);
    assert_eq!(
        report.pcr_digest,
        hexstr::encode(&tpm_quote::pcr_digest(&expected_pcrs()))
    );
    eprintln!(
        "AK name {}; clock {} ms, resetCount {}, restartCount {}, safe {}, firmware {}",
        report.ak_name,
        report.clock,
        report.reset_count,
        report.restart_count,
        report.safe,
        report.firmware_version_text()
    );

    // Another qualifying data.
    let mut other = PLAN_HASH;
    other[31] ^= 1;
    assert!(matches!(
        verify(&q, &other, &expected_pcrs()),
        Err(QuoteError::QualifyingData { .. })
    ));
    assert!(matches!(
        verify(&q, &PLAN_HASH[..31], &expected_pcrs()),
        Err(QuoteError::QualifyingData { .. })
    ));
    // One PCR changed, in each position.
    for i in 0..8 {
        let mut p = expected_pcrs();
        p[i][0] ^= 0x80;
        assert!(
            matches!(
                verify(&q, &PLAN_HASH, &p),
                Err(QuoteError::PcrDigest { .. })
            ),
            "PCR {i}"
        );
    }
    // PCRs in another order.
    let mut p = expected_pcrs();
    p.swap(0, 7);
    assert!(matches!(
        verify(&q, &PLAN_HASH, &p),
        Err(QuoteError::PcrDigest { .. })
    ));
    // Any byte of the attest flipped: refused, by the parser or the signature.
    for i in 0..q.attest.len() {
        let mut bad = q.clone();
        bad.attest[i] ^= 0x01;
        let e = verify(&bad, &PLAN_HASH, &expected_pcrs()).unwrap_err();
        assert!(
            matches!(e, QuoteError::Signature(_) | QuoteError::Parse(_)),
            "byte {i}: {e}"
        );
    }
    // r changed; s changed.
    for at in [4 + 2 + 31, q.signature.len() - 1] {
        let mut bad = q.clone();
        bad.signature[at] ^= 0x01;
        assert!(
            matches!(
                verify(&bad, &PLAN_HASH, &expected_pcrs()),
                Err(QuoteError::Signature(_))
            ),
            "signature byte {at}"
        );
    }
    // Another key's public part: another TPM's attestation key.
    let other_tpm = start_swtpm();
    let mut t2 = connect(&other_tpm);
    let (h, other_public) = create_ak(&mut t2).unwrap();
    flush_context(&mut t2, h).unwrap();
    assert_ne!(other_public, q.ak_public);
    let bad = Quote {
        ak_public: other_public,
        ..q.clone()
    };
    assert!(matches!(
        verify(&bad, &PLAN_HASH, &expected_pcrs()),
        Err(QuoteError::Signature(_))
    ));
    // A good quote from the other TPM is refused against this laptop's recorded name.
    extend_all(&mut t2);
    let theirs = attest(&mut t2, &PLAN_HASH).unwrap().quote;
    verify(&theirs, &PLAN_HASH, &expected_pcrs()).unwrap();
    assert!(matches!(
        tpm_quote::verify_known_ak(&theirs, &PLAN_HASH, &expected_pcrs(), &recorded),
        Err(QuoteError::UnknownKey { .. })
    ));
    // Trailing bytes after any of the three.
    for which in 0..3 {
        let mut bad = q.clone();
        [&mut bad.attest, &mut bad.signature, &mut bad.ak_public][which].push(0);
        let e = verify(&bad, &PLAN_HASH, &expected_pcrs()).unwrap_err();
        assert!(e.to_string().contains("trailing"), "{e}");
    }
}

#[test]
fn the_attestation_key_is_the_same_every_time_on_one_tpm_and_differs_between_tpms() {
    let tpm = start_swtpm();
    let mut t = connect(&tpm);
    let mut times = Vec::new();
    let mut publics = Vec::new();
    for _ in 0..3 {
        let start = Instant::now();
        let (h, public) = create_ak(&mut t).unwrap();
        times.push(start.elapsed().as_secs_f64() * 1e3);
        flush_context(&mut t, h).unwrap();
        publics.push(public);
    }
    eprintln!("swtpm TPM2_CreatePrimary (P-256): {times:.1?} ms");
    assert!(publics.iter().all(|p| *p == publics[0]));
    // The key outlives the connection and a TPM restart (same state directory): reconnect.
    drop(t);
    let mut t = connect(&tpm);
    let (h, again) = create_ak(&mut t).unwrap();
    flush_context(&mut t, h).unwrap();
    assert_eq!(again, publics[0]);
    assert_eq!(tpm_quote::ak_public(&mut t).unwrap(), publics[0]);
    // Two quotes: same key, each verifies, different signatures (ECDSA is randomised by the
    // TPM) and a later clock.
    let start = Instant::now();
    let q1 = quote(&mut t, &PLAN_HASH).unwrap();
    eprintln!(
        "swtpm quote() (CreatePrimary + Quote + FlushContext + EK cert look-up): {:.1} ms",
        start.elapsed().as_secs_f64() * 1e3
    );
    let q2 = quote(&mut t, &PLAN_HASH).unwrap();
    // Step by step.
    let ms = |start: Instant| start.elapsed().as_secs_f64() * 1e3;
    let start = Instant::now();
    let (h, _) = create_ak(&mut t).unwrap();
    let create = ms(start);
    let start = Instant::now();
    tpm_quote::quote_with_key(&mut t, h, &PLAN_HASH).unwrap();
    let quoting = ms(start);
    let start = Instant::now();
    flush_context(&mut t, h).unwrap();
    let flush = ms(start);
    let start = Instant::now();
    read_ek_cert(&mut t).unwrap();
    let ek = ms(start);
    let start = Instant::now();
    pcr_read(&mut t).unwrap();
    let pcrs = ms(start);
    eprintln!(
        "swtpm: CreatePrimary {create:.1} ms, Quote {quoting:.1} ms, FlushContext {flush:.1} ms, \
         two NV_ReadPublic {ek:.1} ms, PCR_Read {pcrs:.1} ms"
    );
    assert_eq!(q1.ak_public, again);
    assert_eq!(q2.ak_public, again);
    let pcrs = pcr_read(&mut t).unwrap().values;
    let r1 = verify(&q1, &PLAN_HASH, &pcrs).unwrap();
    let r2 = verify(&q2, &PLAN_HASH, &pcrs).unwrap();
    assert!(r2.clock >= r1.clock);
    assert_ne!(q1.signature, q2.signature);

    // TPM2_Clear (lockout authorization, empty) keeps the endorsement seed, so the key.
    let mut c = with_pw_session(0x126, &[0x4000_000A]);
    assert_eq!(raw(&mut t, &c), 0, "TPM2_Clear");
    let (h, after_clear) = create_ak(&mut t).unwrap();
    flush_context(&mut t, h).unwrap();
    assert_eq!(after_clear, publics[0], "TPM2_Clear changed the key");
    // TPM2_ChangeEPS (platform authorization, empty in swtpm) changes it.
    c = with_pw_session(0x124, &[0x4000_000C]);
    assert_eq!(raw(&mut t, &c), 0, "TPM2_ChangeEPS");
    let (h, after_eps) = create_ak(&mut t).unwrap();
    flush_context(&mut t, h).unwrap();
    assert_ne!(after_eps, publics[0], "TPM2_ChangeEPS kept the key");

    let other = start_swtpm();
    let mut t2 = connect(&other);
    let (h, theirs) = create_ak(&mut t2).unwrap();
    flush_context(&mut t2, h).unwrap();
    assert_ne!(theirs, publics[0]);
    assert_ne!(ak_name(&theirs), ak_name(&publics[0]));
}

#[test]
fn the_key_handle_is_flushed() {
    let tpm = start_swtpm();
    let mut t = connect(&tpm);
    // swtpm holds 3 transient objects: a 4th key without flushing fails...
    let handles: Vec<u32> = (0..3).map(|_| create_ak(&mut t).unwrap().0).collect();
    match create_ak(&mut t) {
        Err(TpmError::Response { command, rc, .. }) => {
            assert_eq!((command, rc), ("TPM2_CreatePrimary", 0x902));
        }
        other => panic!("a 4th loaded key: {other:?}"),
    }
    for h in handles {
        flush_context(&mut t, h).unwrap();
    }
    // ... so 10 quotes in a row show that quote() flushes its key.
    for _ in 0..10 {
        quote(&mut t, b"").unwrap();
    }
    // A handle that is not loaded is an error naming the command and the code (for
    // FlushContext the handle is a parameter: TPM_RC_VALUE about parameter 1).
    let e = flush_context(&mut t, 0x80ff_ffff).unwrap_err();
    match &e {
        TpmError::Response { command, rc, .. } => {
            assert_eq!(*command, "TPM2_FlushContext");
            assert_eq!(*rc, 0x1c4, "{e}");
        }
        e => panic!("{e}"),
    }
    assert!(
        e.to_string()
            .contains("TPM2_FlushContext: the TPM answered 0x1c4, TPM_RC_VALUE"),
        "{e}"
    );
    let e = tpm_quote::quote_with_key(&mut t, 0x80ff_ffff, b"x").unwrap_err();
    assert!(e.to_string().starts_with("TPM2_Quote: "), "{e}");
}

/// TPM2_NV_DefineSpace under the owner (empty password) of an index the index's own password
/// (empty) can read and write, then TPM2_NV_Write of `data` in pieces.
fn nv_store(t: &mut UnixStream, index: u32, data: &[u8]) {
    let mut c = with_pw_session(0x12A, &[0x4000_0001]);
    c.extend_from_slice(&[0, 0]); // auth: empty
    // TPMA_NV: OWNERWRITE | AUTHWRITE | OWNERREAD | AUTHREAD | NO_DA
    let attrs: u32 = (1 << 1) | (1 << 2) | (1 << 17) | (1 << 18) | (1 << 25);
    let mut public = index.to_be_bytes().to_vec();
    public.extend_from_slice(&0x000Bu16.to_be_bytes());
    public.extend_from_slice(&attrs.to_be_bytes());
    public.extend_from_slice(&[0, 0]);
    public.extend_from_slice(&u16::try_from(data.len()).unwrap().to_be_bytes());
    c.extend_from_slice(&u16::try_from(public.len()).unwrap().to_be_bytes());
    c.extend_from_slice(&public);
    assert_eq!(raw(t, &c), 0, "TPM2_NV_DefineSpace");
    for (i, chunk) in data.chunks(500).enumerate() {
        let mut c = with_pw_session(0x137, &[index, index]);
        c.extend_from_slice(&u16::try_from(chunk.len()).unwrap().to_be_bytes());
        c.extend_from_slice(chunk);
        c.extend_from_slice(&u16::try_from(i * 500).unwrap().to_be_bytes());
        assert_eq!(raw(t, &c), 0, "TPM2_NV_Write");
    }
}

#[test]
fn an_ek_certificate_in_nv_is_read_whole_and_its_absence_is_normal() {
    let tpm = start_swtpm();
    let mut t = connect(&tpm);
    assert_eq!(read_ek_cert(&mut t).unwrap(), None);
    assert_eq!(read_nv_cert(&mut t, EK_CERT_ECC_INDEX).unwrap(), None);
    // A stand-in certificate of 1300 bytes: three TPM2_NV_Read pieces.
    let cert: Vec<u8> = (0..1300u32).map(|i| (i * 7 + 3) as u8).collect();
    nv_store(&mut t, EK_CERT_ECC_INDEX, &cert);
    assert_eq!(
        read_ek_cert(&mut t).unwrap(),
        Some((EK_CERT_ECC_INDEX, cert.clone()))
    );
    let q = quote(&mut t, &PLAN_HASH).unwrap();
    assert_eq!(q.ek_cert, Some(cert));
}

/// The Python program in docs/formats/tpm-quote.md: an independent parser and checker of a
/// quote (Debian's python3-cryptography for ECDSA).
fn python_program() -> String {
    let doc = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../docs/formats/tpm-quote.md"
    ))
    .expect("docs/formats/tpm-quote.md");
    let start = doc
        .find("```python\n")
        .expect("a python block in tpm-quote.md")
        + "```python\n".len();
    let len = doc[start..].find("```").expect("the python block ends");
    doc[start..start + len].to_owned()
}

fn run_python(q: &Quote, qualifying: &[u8], pcrs: &[[u8; 32]; 8]) -> std::process::Output {
    let mut cmd = Command::new("/usr/bin/python3");
    cmd.args(["-c", &python_program()])
        .arg(hexstr::encode(&q.attest))
        .arg(hexstr::encode(&q.signature))
        .arg(hexstr::encode(&q.ak_public))
        .arg(hexstr::encode(qualifying));
    for p in pcrs {
        cmd.arg(hexstr::encode(p));
    }
    cmd.output().expect(
        "Debian's /usr/bin/python3 is needed (./scripts/setup installs python3 and \
         python3-cryptography)",
    )
}

/// Independent check: the ECDSA signature of a swtpm quote verifies with Python's
/// `cryptography` too, from r, s and the point written to files by hand here, and the doc's
/// auditor program (its own parser) accepts the quote and refuses it changed.
#[test]
fn python_cryptography_verifies_a_swtpm_quote() {
    let tpm = start_swtpm();
    let mut t = connect(&tpm);
    extend_all(&mut t);
    let a = attest(&mut t, &PLAN_HASH).unwrap();
    let q = &a.quote;

    // 1. Bare ECDSA: the point, r, s and the attest bytes, as files.
    let ak = parse_ak_public(&q.ak_public).unwrap();
    let sig = parse_signature(&q.signature).unwrap();
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("attest.bin"), &q.attest).unwrap();
    let numbers = [ak.x, ak.y, sig.r, sig.s]
        .iter()
        .map(|v| hexstr::encode(v))
        .collect::<Vec<_>>()
        .join("\n");
    std::fs::write(dir.path().join("xyrs.txt"), numbers).unwrap();
    let snippet = r#"
import sys, os
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature
from cryptography.exceptions import InvalidSignature
d = sys.argv[1]
x, y, r, s = (int(v, 16) for v in open(os.path.join(d, "xyrs.txt")).read().split())
attest = open(os.path.join(d, "attest.bin"), "rb").read()
key = ec.EllipticCurvePublicNumbers(x, y, ec.SECP256R1()).public_key()
try:
    key.verify(encode_dss_signature(r, s), attest, ec.ECDSA(hashes.SHA256()))
    print("valid")
except InvalidSignature:
    print("invalid")
"#;
    let run = |dir: &std::path::Path| {
        let out = Command::new("/usr/bin/python3")
            .args(["-c", snippet])
            .arg(dir)
            .output()
            .expect(
                "Debian's /usr/bin/python3 is needed (./scripts/setup installs python3 and \
                 python3-cryptography)",
            );
        assert!(
            out.status.success(),
            "python3 failed (is python3-cryptography installed? ./scripts/setup installs it): \
             {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap().trim().to_string()
    };
    assert_eq!(run(dir.path()), "valid");
    let mut flipped = q.attest.clone();
    flipped[40] ^= 1;
    std::fs::write(dir.path().join("attest.bin"), &flipped).unwrap();
    assert_eq!(run(dir.path()), "invalid");

    // 2. The auditor's program in the doc, which parses the TPM structures itself.
    let out = run_python(q, &PLAN_HASH, &a.pcrs);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "the program in docs/formats/tpm-quote.md refused a good quote: {}{stdout}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout.contains(&format!("attestation key name {}", a.report.ak_name)),
        "{stdout}"
    );
    let mut other = PLAN_HASH;
    other[0] ^= 1;
    assert!(!run_python(q, &other, &a.pcrs).status.success());
    let mut pcrs = a.pcrs;
    pcrs[3][5] ^= 1;
    assert!(!run_python(q, &PLAN_HASH, &pcrs).status.success());
    let mut bad = q.clone();
    bad.attest[20] ^= 1;
    assert!(!run_python(&bad, &PLAN_HASH, &a.pcrs).status.success());
    let mut bad = q.clone();
    bad.signature.push(0);
    assert!(!run_python(&bad, &PLAN_HASH, &a.pcrs).status.success());
}
