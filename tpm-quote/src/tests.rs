//! Unit tests of the parsers, the verifier and the command bytes, with hand-built vectors and a
//! scripted transport.

use std::collections::VecDeque;
use std::io::{Read, Write};

use p256::ecdsa::signature::Signer;
use p256::ecdsa::{Signature, SigningKey};
use sha2::{Digest, Sha256};

use crate::*;

// ---- hand-built structures -------------------------------------------------------------

fn signing_key(seed: u8) -> SigningKey {
    SigningKey::from_bytes(&[seed; 32].into()).unwrap()
}

fn point(key: &SigningKey) -> ([u8; 32], [u8; 32]) {
    let p = key.verifying_key().to_encoded_point(false);
    (
        p.x().unwrap().as_slice().try_into().unwrap(),
        p.y().unwrap().as_slice().try_into().unwrap(),
    )
}

/// A `TPMT_PUBLIC` of the template's shape with this x and y (as given, any length).
fn public_with(x: &[u8], y: &[u8]) -> Vec<u8> {
    let mut v = AK_TEMPLATE[..20].to_vec();
    v.extend_from_slice(&(x.len() as u16).to_be_bytes());
    v.extend_from_slice(x);
    v.extend_from_slice(&(y.len() as u16).to_be_bytes());
    v.extend_from_slice(y);
    v
}

fn public_of(key: &SigningKey) -> Vec<u8> {
    let (x, y) = point(key);
    public_with(&x, &y)
}

const QD: [u8; 32] = [0xa1; 32];

fn pcrs() -> [[u8; 32]; 8] {
    let mut p = [[0u8; 32]; 8];
    for (i, v) in p.iter_mut().enumerate() {
        *v = [i as u8 * 17; 32];
    }
    p
}

/// A quote's `TPMS_ATTEST`, field by field.
struct AttestFields {
    magic: u32,
    typ: u16,
    signer: Vec<u8>,
    extra: Vec<u8>,
    safe: u8,
    clock: u64,
    selection: Vec<u8>,
    digest: Vec<u8>,
}

impl AttestFields {
    fn good(ak_public: &[u8]) -> Self {
        let mut sel = 1u32.to_be_bytes().to_vec();
        sel.extend_from_slice(&[0x00, 0x0b, 0x03, 0xff, 0x00, 0x00]);
        AttestFields {
            magic: TPM_GENERATED_VALUE,
            typ: TPM_ST_ATTEST_QUOTE,
            signer: qualified_name(ak_public),
            extra: QD.to_vec(),
            safe: 1,
            clock: 0x0012_3456,
            selection: sel,
            digest: pcr_digest(&pcrs()).to_vec(),
        }
    }

    fn bytes(&self) -> Vec<u8> {
        let mut v = self.magic.to_be_bytes().to_vec();
        v.extend_from_slice(&self.typ.to_be_bytes());
        v.extend_from_slice(&(self.signer.len() as u16).to_be_bytes());
        v.extend_from_slice(&self.signer);
        v.extend_from_slice(&(self.extra.len() as u16).to_be_bytes());
        v.extend_from_slice(&self.extra);
        v.extend_from_slice(&self.clock.to_be_bytes());
        v.extend_from_slice(&7u32.to_be_bytes()); // resetCount
        v.extend_from_slice(&2u32.to_be_bytes()); // restartCount
        v.push(self.safe);
        v.extend_from_slice(&0x2019_1023_0016_3636u64.to_be_bytes()); // firmwareVersion
        v.extend_from_slice(&self.selection);
        v.extend_from_slice(&(self.digest.len() as u16).to_be_bytes());
        v.extend_from_slice(&self.digest);
        v
    }
}

fn signature_bytes(r: &[u8], s: &[u8]) -> Vec<u8> {
    let mut v = vec![0x00, 0x18, 0x00, 0x0b];
    v.extend_from_slice(&(r.len() as u16).to_be_bytes());
    v.extend_from_slice(r);
    v.extend_from_slice(&(s.len() as u16).to_be_bytes());
    v.extend_from_slice(s);
    v
}

fn sign(key: &SigningKey, attest: &[u8]) -> Vec<u8> {
    let sig: Signature = key.sign(attest);
    let (r, s) = sig.split_bytes();
    signature_bytes(&r, &s)
}

/// A quote signed by `key` over these attest fields.
fn quote_of(key: &SigningKey, fields: &AttestFields) -> Quote {
    let attest = fields.bytes();
    Quote {
        signature: sign(key, &attest),
        attest,
        ak_public: public_of(key),
        ek_cert: None,
    }
}

fn good() -> Quote {
    let key = signing_key(0x42);
    quote_of(&key, &AttestFields::good(&public_of(&key)))
}

fn parse_err(e: QuoteError) -> ParseError {
    match e {
        QuoteError::Parse(p) => p,
        e => panic!("not a parse error: {e}"),
    }
}

// ---- verify --------------------------------------------------------------------------------

#[test]
fn a_good_quote_verifies_and_reports_its_fields() {
    let q = good();
    let r = verify(&q, &QD, &pcrs()).unwrap();
    assert_eq!(r.ak_name, ak_name(&q.ak_public));
    assert_eq!(r.ak_name.len(), 68);
    assert!(r.ak_name.starts_with("000b"));
    assert_eq!(
        r.ak_name[4..],
        hexstr::encode(&Sha256::digest(&q.ak_public))
    );
    assert_eq!(
        r.qualified_signer,
        hexstr::encode(&qualified_name(&q.ak_public))
    );
    assert_eq!(r.pcr_digest, hexstr::encode(&pcr_digest(&pcrs())));
    assert_eq!(
        (r.clock, r.reset_count, r.restart_count, r.safe),
        (0x123456, 7, 2, true)
    );
    assert_eq!(r.firmware_version_text(), "0x20191023.0x00163636");
}

#[test]
fn the_pcr_digest_is_sha256_of_the_eight_values_in_order() {
    let mut cat = Vec::new();
    for p in pcrs() {
        cat.extend_from_slice(&p);
    }
    assert_eq!(pcr_digest(&pcrs()), <[u8; 32]>::from(Sha256::digest(&cat)));
    // Known answer: eight zero PCRs.
    assert_eq!(
        hexstr::encode(&pcr_digest(&[[0u8; 32]; 8])),
        hexstr::encode(&Sha256::digest([0u8; 256]))
    );
}

#[test]
fn the_qualified_name_is_over_the_endorsement_handle_and_the_name() {
    let q = good();
    let mut h = Sha256::new();
    h.update([0x40, 0x00, 0x00, 0x0b]);
    h.update(ak_name_bytes(&q.ak_public));
    let mut want = vec![0x00, 0x0b];
    want.extend_from_slice(&h.finalize());
    assert_eq!(qualified_name(&q.ak_public), want);
}

#[test]
fn wrong_qualifying_data_pcrs_or_signer_are_refused() {
    let q = good();
    let mut qd = QD;
    qd[0] ^= 1;
    let e = verify(&q, &qd, &pcrs()).unwrap_err();
    assert!(matches!(e, QuoteError::QualifyingData { .. }), "{e}");
    assert!(e.to_string().contains(&hexstr::encode(&QD)), "{e}");
    assert!(matches!(
        verify(&q, &[], &pcrs()),
        Err(QuoteError::QualifyingData { .. })
    ));
    let mut p = pcrs();
    p[7][31] ^= 1;
    let e = verify(&q, &QD, &p).unwrap_err();
    assert!(matches!(e, QuoteError::PcrDigest { .. }), "{e}");

    // Signed honestly, but naming a signer in the owner hierarchy (or another key).
    let key = signing_key(0x42);
    let public = public_of(&key);
    let mut f = AttestFields::good(&public);
    let mut h = Sha256::new();
    h.update(0x4000_0001u32.to_be_bytes());
    h.update(ak_name_bytes(&public));
    f.signer = [&[0x00, 0x0b][..], &h.finalize()].concat();
    let e = verify(&quote_of(&key, &f), &QD, &pcrs()).unwrap_err();
    assert!(matches!(e, QuoteError::QualifiedSigner { .. }), "{e}");
}

#[test]
fn another_key_or_a_changed_byte_fails_the_signature() {
    let q = good();
    let other = Quote {
        ak_public: public_of(&signing_key(0x43)),
        ..q.clone()
    };
    assert_eq!(
        verify(&other, &QD, &pcrs()),
        Err(QuoteError::Signature(
            "ECDSA P-256 over SHA-256(attest) fails"
        ))
    );
    // extraData's last byte, changed and then expected: only the signature can catch it.
    let mut bad = q.clone();
    let at = 4 + 2 + 2 + 34 + 2 + 31;
    bad.attest[at] ^= 1;
    let mut qd = QD;
    qd[31] ^= 1;
    assert!(matches!(
        verify(&bad, &qd, &pcrs()),
        Err(QuoteError::Signature(_))
    ));
    // r + 1.
    let mut bad = q.clone();
    bad.signature[4 + 2 + 31] = bad.signature[4 + 2 + 31].wrapping_add(1);
    assert!(matches!(
        verify(&bad, &QD, &pcrs()),
        Err(QuoteError::Signature(_))
    ));
}

#[test]
fn r_or_s_zero_or_too_big_is_refused() {
    let q = good();
    let sig = parse_signature(&q.signature).unwrap();
    for (r, s) in [
        (vec![0u8], sig.s.to_vec()),
        (sig.r.to_vec(), vec![0u8]),
        (vec![0xff; 32], sig.s.to_vec()),
    ] {
        let bad = Quote {
            signature: signature_bytes(&r, &s),
            ..q.clone()
        };
        assert_eq!(
            verify(&bad, &QD, &pcrs()),
            Err(QuoteError::Signature(
                "r or s is zero or not below the group order"
            ))
        );
    }
}

#[test]
fn a_high_s_signature_verifies_as_tpms_do_not_normalise_s() {
    // ECDSA (r, s) and (r, n - s) are both valid; TPMs return either.
    let q = good();
    let sig = parse_signature(&q.signature).unwrap();
    let parsed = Signature::from_scalars(sig.r, sig.s).unwrap();
    let flipped = match parsed.normalize_s() {
        Some(low) => low, // it was high: use the low one
        None => {
            // it was low: make the high one, n - s
            let (r, s) = parsed.split_scalars();
            Signature::from_scalars(r, -*s).unwrap()
        }
    };
    assert_ne!(flipped, parsed);
    let (r, s) = flipped.split_bytes();
    let other = Quote {
        signature: signature_bytes(&r, &s),
        ..q.clone()
    };
    verify(&other, &QD, &pcrs()).unwrap();
}

#[test]
fn short_ecc_values_are_left_padded() {
    // A key whose x starts with a zero byte, and a signature with r < 2^248: found by search.
    let key = (0u32..100_000)
        .map(|i| SigningKey::from_bytes(&Sha256::digest(i.to_be_bytes())).unwrap())
        .find(|k| point(k).0[0] == 0)
        .expect("a key whose x starts with 00");
    let (x, y) = point(&key);
    let public = public_with(&x[1..], &y);
    let ak = parse_ak_public(&public).unwrap();
    assert_eq!((ak.x, ak.y), (x, y));
    // Another clock value until r starts with a zero byte.
    let mut f = AttestFields::good(&public);
    let (attest, r, s) = (0u64..100_000)
        .find_map(|clock| {
            f.clock = clock;
            let attest = f.bytes();
            let sig: Signature = key.sign(&attest);
            let (r, s) = sig.split_bytes();
            (r[0] == 0).then_some((attest, r, s))
        })
        .expect("a signature whose r starts with 00");
    let q = Quote {
        signature: signature_bytes(&r[1..], &s),
        attest,
        ak_public: public,
        ek_cert: None,
    };
    verify(&q, &QD, &pcrs()).unwrap();
}

#[test]
fn a_point_off_the_curve_is_refused() {
    let q = good();
    let (x, mut y) = point(&signing_key(0x42));
    y[31] ^= 1;
    let bad = Quote {
        ak_public: public_with(&x, &y),
        ..q
    };
    assert_eq!(verify(&bad, &QD, &pcrs()), Err(QuoteError::BadPoint));
}

// ---- parse errors: truncation and trailing bytes everywhere ---------------------------------

#[test]
fn every_truncation_and_any_trailing_byte_is_refused() {
    let q = good();
    type Parser = fn(&[u8]) -> Result<(), ParseError>;
    let parsers: [(&str, &[u8], Parser); 3] = [
        ("TPMT_PUBLIC", &q.ak_public, |b| {
            parse_ak_public(b).map(|_| ())
        }),
        ("TPMS_ATTEST", &q.attest, |b| parse_attest(b).map(|_| ())),
        ("TPMT_SIGNATURE", &q.signature, |b| {
            parse_signature(b).map(|_| ())
        }),
    ];
    for (name, bytes, parse) in parsers {
        parse(bytes).unwrap();
        for n in 0..bytes.len() {
            let e = parse(&bytes[..n]).expect_err(&format!("{name} cut to {n} bytes"));
            assert_eq!(e.structure, name);
            assert!(
                e.problem.contains("truncated") || e.problem.contains("bytes; a P-256 value"),
                "{name} cut to {n}: {e}"
            );
        }
        let mut longer = bytes.to_vec();
        longer.push(0);
        let e = parse(&longer).unwrap_err();
        assert_eq!(
            e.to_string(),
            format!(
                "{name}: end at byte {}: 1 trailing bytes after the structure",
                bytes.len()
            )
        );
    }
    // And through verify.
    let mut bad = q.clone();
    bad.attest.extend_from_slice(&[0, 0]);
    let e = verify(&bad, &QD, &pcrs()).unwrap_err();
    assert!(e.to_string().contains("2 trailing bytes"), "{e}");
}

// ---- TPMT_PUBLIC --------------------------------------------------------------------------

/// The public part with bytes [at..at + new.len()] replaced.
fn patched(bytes: &[u8], at: usize, new: &[u8]) -> Vec<u8> {
    let mut v = bytes.to_vec();
    v[at..at + new.len()].copy_from_slice(new);
    v
}

#[test]
fn a_public_part_not_of_the_template_is_refused_naming_the_field() {
    let public = public_of(&signing_key(7));
    let cases: &[(usize, &[u8], &str)] = &[
        (
            0,
            &[0x00, 0x01],
            "type at byte 0: 0x0001, expected 0x0023 (TPM_ALG_ECC)",
        ), // RSA
        (2, &[0x00, 0x04], "nameAlg at byte 2: 0x0004"), // SHA-1
        (
            4,
            &[0x00, 0x06, 0x00, 0x72],
            "objectAttributes at byte 4: 0x00060072",
        ), // + decrypt
        (
            4,
            &[0x00, 0x04, 0x00, 0x72],
            "objectAttributes at byte 4: 0x00040072",
        ), // not restricted
        (
            4,
            &[0x00, 0x05, 0x00, 0x70],
            "objectAttributes at byte 4: 0x00050070",
        ), // not fixedTPM
        (
            10,
            &[0x00, 0x06],
            "parameters.symmetric.algorithm at byte 10: 0x0006",
        ), // AES
        (
            12,
            &[0x00, 0x1c],
            "parameters.scheme.scheme at byte 12: 0x001c",
        ), // ECSCHNORR
        (
            14,
            &[0x00, 0x0c],
            "parameters.scheme.details.hashAlg at byte 14: 0x000c",
        ), // SHA-384
        (16, &[0x00, 0x04], "parameters.curveID at byte 16: 0x0004"), // P-384
        (
            18,
            &[0x00, 0x20],
            "parameters.kdf.scheme at byte 18: 0x0020",
        ),
    ];
    for (at, new, want) in cases {
        let e = parse_ak_public(&patched(&public, *at, new)).unwrap_err();
        assert!(
            e.to_string().starts_with(&format!("TPMT_PUBLIC: {want}")),
            "{e}"
        );
    }
    // A non-empty authPolicy.
    let mut v = public[..8].to_vec();
    v.extend_from_slice(&[0x00, 0x01, 0xaa]);
    v.extend_from_slice(&public[10..]);
    let e = parse_ak_public(&v).unwrap_err();
    assert_eq!(
        e.to_string(),
        "TPMT_PUBLIC: authPolicy at byte 8: 1 bytes, expected empty"
    );
    // The template itself: x and y empty.
    let e = parse_ak_public(&AK_TEMPLATE).unwrap_err();
    assert_eq!(
        e.to_string(),
        "TPMT_PUBLIC: unique.x at byte 20: 0 bytes; a P-256 value has 1 to 32"
    );
    // x of 33 bytes.
    let (x, y) = point(&signing_key(7));
    let e = parse_ak_public(&public_with(&[&[0u8][..], &x].concat(), &y)).unwrap_err();
    assert_eq!(e.field, "unique.x");
    // A size running past the end.
    let e = parse_ak_public(&patched(&public, 54, &[0x00, 0x40])).unwrap_err();
    assert_eq!(
        e.to_string(),
        "TPMT_PUBLIC: unique.y at byte 54: its size says 64 bytes but only 32 follow (truncated)"
    );
    // Through verify.
    let q = Quote {
        ak_public: patched(&public, 0, &[0x00, 0x01]),
        ..good()
    };
    assert_eq!(
        parse_err(verify(&q, &QD, &pcrs()).unwrap_err()).field,
        "type"
    );
}

#[test]
fn ak_name_is_the_sha256_name_of_the_bytes() {
    let public = public_of(&signing_key(1));
    let name = ak_name(&public);
    assert_eq!(
        name,
        format!("000b{}", hexstr::encode(&Sha256::digest(&public)))
    );
    assert_eq!(hexstr::decode(&name).unwrap(), ak_name_bytes(&public));
}

#[test]
fn the_template_bytes_are_the_documented_ones() {
    assert_eq!(
        hexstr::encode(&AK_TEMPLATE),
        "0023000b00050072000000100018000b0003001000000000"
    );
    assert_eq!(AK_ATTRIBUTES, 0x0005_0072);
}

// ---- TPMS_ATTEST --------------------------------------------------------------------------

#[test]
fn an_attest_not_of_a_quote_of_pcr_0_to_7_is_refused_naming_the_field() {
    let public = public_of(&signing_key(3));
    let check = |f: AttestFields, want: &str| {
        let e = parse_attest(&f.bytes()).unwrap_err();
        assert!(
            e.to_string().starts_with(&format!("TPMS_ATTEST: {want}")),
            "{e}"
        );
    };
    let sel = |count: u32, rest: &[u8]| [&count.to_be_bytes()[..], rest].concat();

    let mut f = AttestFields::good(&public);
    f.magic = 0xff54_4348;
    check(
        f,
        "magic at byte 0: 0xff544348, expected 0xff544347 (TPM_GENERATED_VALUE)",
    );
    let mut f = AttestFields::good(&public);
    f.typ = 0x8017; // TPM_ST_ATTEST_CERTIFY
    check(
        f,
        "type at byte 4: 0x8017, expected 0x8018 (TPM_ST_ATTEST_QUOTE)",
    );
    let mut f = AttestFields::good(&public);
    f.signer = vec![0x00, 0x04, 1, 2, 3]; // a SHA-1 name
    check(
        f,
        "qualifiedSigner at byte 6: 0004010203, expected a SHA-256 name",
    );
    let mut f = AttestFields::good(&public);
    f.safe = 2;
    check(f, "clockInfo.safe at byte 92: 2, a TPMI_YES_NO is 0 or 1");
    let mut f = AttestFields::good(&public);
    f.selection = sel(
        2,
        &[
            0x00, 0x0b, 0x03, 0xff, 0x00, 0x00, 0x00, 0x04, 0x03, 0xff, 0x00, 0x00,
        ],
    );
    check(
        f,
        "attested.quote.pcrSelect.count at byte 101: 2 PCR banks selected",
    );
    let mut f = AttestFields::good(&public);
    f.selection = sel(0, &[]);
    check(
        f,
        "attested.quote.pcrSelect.count at byte 101: 0 PCR banks selected",
    );
    let mut f = AttestFields::good(&public);
    f.selection = sel(1, &[0x00, 0x04, 0x03, 0xff, 0x00, 0x00]); // SHA-1 bank
    check(
        f,
        "attested.quote.pcrSelect[0].hash at byte 105: 0x0004, expected 0x000b",
    );
    let mut f = AttestFields::good(&public);
    f.selection = sel(1, &[0x00, 0x0b, 0x04, 0xff, 0x00, 0x00, 0x00]);
    check(
        f,
        "attested.quote.pcrSelect[0].sizeofSelect at byte 107: 4, expected 3",
    );
    let mut f = AttestFields::good(&public);
    f.selection = sel(1, &[0x00, 0x0b, 0x03, 0xff, 0x01, 0x00]); // PCR 8 too
    check(
        f,
        "attested.quote.pcrSelect[0].pcrSelect at byte 108: PCRs ff0100 selected",
    );
    let mut f = AttestFields::good(&public);
    f.selection = sel(1, &[0x00, 0x0b, 0x03, 0x7f, 0x00, 0x00]); // PCR 7 missing
    check(
        f,
        "attested.quote.pcrSelect[0].pcrSelect at byte 108: PCRs 7f0000 selected",
    );
    let mut f = AttestFields::good(&public);
    f.digest = vec![0; 20];
    check(
        f,
        "attested.quote.pcrDigest at byte 111: 20 bytes, expected 32 (SHA-256)",
    );
}

#[test]
fn attest_fields_are_read_at_their_offsets() {
    let public = public_of(&signing_key(3));
    let a = parse_attest(&AttestFields::good(&public).bytes()).unwrap();
    assert_eq!(a.qualified_signer, qualified_name(&public));
    assert_eq!(a.extra_data, QD);
    assert_eq!(a.clock, 0x123456);
    assert_eq!((a.reset_count, a.restart_count, a.safe), (7, 2, true));
    assert_eq!(a.firmware_version, 0x2019_1023_0016_3636);
    assert_eq!(a.pcr_digest, pcr_digest(&pcrs()));
    // Empty extraData parses (and then differs from a plan hash).
    let mut f = AttestFields::good(&public);
    f.extra = vec![];
    f.safe = 0;
    let a = parse_attest(&f.bytes()).unwrap();
    assert!(a.extra_data.is_empty() && !a.safe);
}

// ---- TPMT_SIGNATURE -----------------------------------------------------------------------

#[test]
fn a_signature_not_ecdsa_sha256_is_refused_naming_the_field() {
    let good = good().signature;
    let e = parse_signature(&patched(&good, 0, &[0x00, 0x14])).unwrap_err(); // RSASSA
    assert_eq!(
        e.to_string(),
        "TPMT_SIGNATURE: sigAlg at byte 0: 0x0014, expected 0x0018 (TPM_ALG_ECDSA)"
    );
    let e = parse_signature(&patched(&good, 2, &[0x00, 0x0c])).unwrap_err(); // SHA-384
    assert_eq!(
        e.to_string(),
        "TPMT_SIGNATURE: signature.hash at byte 2: 0x000c, expected 0x000b (TPM_ALG_SHA256)"
    );
    let e = parse_signature(&signature_bytes(&[], &[1; 32])).unwrap_err();
    assert_eq!(
        e.to_string(),
        "TPMT_SIGNATURE: signature.signatureR at byte 4: 0 bytes; a P-256 value has 1 to 32"
    );
    let e = parse_signature(&signature_bytes(&[1; 32], &[1; 33])).unwrap_err();
    assert_eq!(e.field, "signature.signatureS");
    assert_eq!(e.offset, 38);
    let s = parse_signature(&signature_bytes(&[1], &[2; 32])).unwrap();
    assert_eq!(s.r[..31], [0u8; 31]);
    assert_eq!(s.r[31], 1);
}

// ---- response codes --------------------------------------------------------------------------

#[test]
fn response_codes_are_named_with_where_they_point() {
    assert_eq!(
        rc_meaning(0x18b),
        "TPM_RC_HANDLE: no such handle (about handle 1)"
    );
    assert_eq!(
        rc_meaning(0x1c4),
        "TPM_RC_VALUE: out of range (about parameter 1)"
    );
    assert!(rc_meaning(0x9a2).starts_with("TPM_RC_BAD_AUTH"));
    assert!(rc_meaning(0x9a2).ends_with("(about session 1)"));
    assert!(rc_meaning(0x2c5).starts_with("TPM_RC_HIERARCHY"));
    assert!(rc_meaning(0x2c5).ends_with("(about parameter 2)"));
    assert!(rc_meaning(0x902).starts_with("TPM_RC_OBJECT_MEMORY"));
    assert!(rc_meaning(0x101).starts_with("TPM_RC_FAILURE"));
    assert!(rc_meaning(0x100).starts_with("TPM_RC_INITIALIZE"));
}

// ---- command bytes and response parsing, over a scripted transport ---------------------------

/// Records what is written; answers each command with the next scripted response, handed out
/// `piece` bytes per read (a socket may split a response).
struct Script {
    sent: Vec<Vec<u8>>,
    replies: VecDeque<Vec<u8>>,
    pending: VecDeque<u8>,
    piece: usize,
}

impl Script {
    fn new(replies: Vec<Vec<u8>>, piece: usize) -> Self {
        Script {
            sent: Vec::new(),
            replies: replies.into(),
            pending: VecDeque::new(),
            piece,
        }
    }
}

impl Write for Script {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.sent.push(buf.to_vec());
        self.pending = self.replies.pop_front().unwrap_or_default().into();
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Read for Script {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = buf.len().min(self.piece).min(self.pending.len());
        for b in buf.iter_mut().take(n) {
            *b = self.pending.pop_front().unwrap();
        }
        Ok(n)
    }
}

fn hex(s: &str) -> Vec<u8> {
    hexstr::decode(&s.split_whitespace().collect::<String>()).unwrap()
}

/// A response: header, handles, then (with sessions) parameterSize, params and an empty
/// password-session response.
fn reply(handles: &[u32], params: &[u8], sessions: bool) -> Vec<u8> {
    let mut v = vec![
        0x80,
        if sessions { 0x02 } else { 0x01 },
        0,
        0,
        0,
        0,
        0,
        0,
        0,
        0,
    ];
    for h in handles {
        v.extend_from_slice(&h.to_be_bytes());
    }
    if sessions {
        v.extend_from_slice(&(params.len() as u32).to_be_bytes());
    }
    v.extend_from_slice(params);
    if sessions {
        v.extend_from_slice(&[0, 0, 1, 0, 0]);
    }
    let n = v.len() as u32;
    v[2..6].copy_from_slice(&n.to_be_bytes());
    v
}

fn error_reply(rc: u32) -> Vec<u8> {
    let mut v = hex("8001 0000000a");
    v.extend_from_slice(&rc.to_be_bytes());
    v
}

fn create_primary_params(public: &[u8], name: &[u8]) -> Vec<u8> {
    let mut p = (public.len() as u16).to_be_bytes().to_vec();
    p.extend_from_slice(public);
    p.extend_from_slice(&hex("0000 0000 8021 4000000b 0000"));
    p.extend_from_slice(&(name.len() as u16).to_be_bytes());
    p.extend_from_slice(name);
    p
}

const FLUSH_OF_80000001: &str = "8001 0000000e 00000165 80000001";

#[test]
fn create_ak_sends_the_documented_bytes_and_checks_the_answer() {
    let public = public_of(&signing_key(9));
    let name = ak_name_bytes(&public);
    let mut t = Script::new(
        vec![reply(
            &[0x8000_0001],
            &create_primary_params(&public, &name),
            true,
        )],
        3,
    );
    let (h, got) = create_ak(&mut t).unwrap();
    assert_eq!((h, got), (0x8000_0001, public.clone()));
    assert_eq!(
        t.sent,
        [hex("8002 00000041 00000131 4000000b
             00000009 40000009 0000 01 0000
             0004 0000 0000
             0018 0023000b00050072000000100018000b0003001000000000
             0000
             00000000")]
    );

    // A name that is not the public part's: refused, and the key flushed.
    let mut t = Script::new(
        vec![
            reply(
                &[0x8000_0001],
                &create_primary_params(&public, &[0; 34]),
                true,
            ),
            reply(&[], &[], false),
        ],
        4096,
    );
    let e = create_ak(&mut t).unwrap_err();
    assert!(
        e.to_string()
            .starts_with("TPM2_CreatePrimary: malformed response: the TPM names the key 0000"),
        "{e}"
    );
    assert_eq!(t.sent[1], hex(FLUSH_OF_80000001));

    // A key not of the template's shape: refused, and flushed.
    let rsa = patched(&public, 0, &[0x00, 0x01]);
    let mut t = Script::new(
        vec![
            reply(
                &[0x8000_0001],
                &create_primary_params(&rsa, &ak_name_bytes(&rsa)),
                true,
            ),
            reply(&[], &[], false),
        ],
        4096,
    );
    let e = create_ak(&mut t).unwrap_err();
    assert!(
        e.to_string()
            .contains("the key made is not the template's: TPMT_PUBLIC: type"),
        "{e}"
    );
    assert_eq!(t.sent[1], hex(FLUSH_OF_80000001));

    // Refused by the TPM: the command and the code are named.
    let mut t = Script::new(vec![error_reply(0x9a2)], 4096);
    let e = create_ak(&mut t).unwrap_err();
    assert!(
        e.to_string()
            .starts_with("TPM2_CreatePrimary: the TPM answered 0x9a2, TPM_RC_BAD_AUTH"),
        "{e}"
    );
}

#[test]
fn quote_with_key_sends_the_documented_bytes() {
    let q = good();
    let mut params = (q.attest.len() as u16).to_be_bytes().to_vec();
    params.extend_from_slice(&q.attest);
    params.extend_from_slice(&q.signature);
    let mut t = Script::new(vec![reply(&[], &params, true)], 7);
    let (attest, signature) = quote_with_key(&mut t, 0x8000_0001, &QD).unwrap();
    assert_eq!((attest, signature), (q.attest.clone(), q.signature.clone()));
    assert_eq!(
        t.sent,
        [hex(&format!(
            "8002 00000049 00000158 80000001
             00000009 40000009 0000 01 0000
             0020 {}
             0010
             00000001 000b 03 ff0000",
            hexstr::encode(&QD)
        ))]
    );
    // Too much qualifying data: nothing sent.
    let mut t = Script::new(vec![], 4096);
    let e = quote_with_key(&mut t, 0x8000_0001, &[0; 65]).unwrap_err();
    assert!(matches!(e, TpmError::QualifyingDataTooLong(65)), "{e}");
    assert!(t.sent.is_empty());
    // Trailing bytes after the signature.
    params.push(0);
    let mut t = Script::new(vec![reply(&[], &params, true)], 4096);
    let e = quote_with_key(&mut t, 0x8000_0001, &QD).unwrap_err();
    assert!(e.to_string().contains("TPMT_SIGNATURE: end at byte"), "{e}");
}

#[test]
fn quote_flushes_the_key_even_when_the_quote_fails() {
    let public = public_of(&signing_key(9));
    let mut t = Script::new(
        vec![
            reply(
                &[0x8000_0001],
                &create_primary_params(&public, &ak_name_bytes(&public)),
                true,
            ),
            error_reply(0x1c4),
            reply(&[], &[], false),
        ],
        4096,
    );
    let e = quote(&mut t, &QD).unwrap_err();
    assert!(
        e.to_string()
            .starts_with("TPM2_Quote: the TPM answered 0x1c4"),
        "{e}"
    );
    assert_eq!(t.sent.len(), 3);
    assert_eq!(t.sent[2], hex(FLUSH_OF_80000001));
}

#[test]
fn retry_codes_are_sent_again() {
    let mut t = Script::new(
        vec![
            error_reply(0x922),
            error_reply(0x90a),
            reply(&[], &[], false),
        ],
        4096,
    );
    flush_context(&mut t, 0x8000_0001).unwrap();
    assert_eq!(t.sent.len(), 3);
    assert!(t.sent.iter().all(|c| *c == hex(FLUSH_OF_80000001)));
}

fn pcr_read_params(counter: u32, values: &[[u8; 32]]) -> Vec<u8> {
    let mut p = counter.to_be_bytes().to_vec();
    p.extend_from_slice(&hex("00000001 000b 03 ff0000"));
    p.extend_from_slice(&(values.len() as u32).to_be_bytes());
    for v in values {
        p.extend_from_slice(&[0x00, 0x20]);
        p.extend_from_slice(v);
    }
    p
}

#[test]
fn pcr_read_sends_the_documented_bytes_and_wants_all_eight() {
    let mut t = Script::new(vec![reply(&[], &pcr_read_params(42, &pcrs()), false)], 1);
    let r = pcr_read(&mut t).unwrap();
    assert_eq!(
        r,
        PcrRead {
            update_counter: 42,
            values: pcrs()
        }
    );
    assert_eq!(
        t.sent,
        [hex("8001 00000014 0000017e 00000001 000b 03 ff0000")]
    );

    let mut t = Script::new(
        vec![reply(&[], &pcr_read_params(42, &pcrs()[..7]), false)],
        4096,
    );
    let e = pcr_read(&mut t).unwrap_err();
    assert!(
        e.to_string()
            .contains("pcrValues.count at byte 14: 7 digests, expected 8"),
        "{e}"
    );

    // The TPM returning a smaller selection (no SHA-256 bank: none).
    let mut p = 42u32.to_be_bytes().to_vec();
    p.extend_from_slice(&hex("00000001 000b 03 000000 00000000"));
    let mut t = Script::new(vec![reply(&[], &p, false)], 4096);
    let e = pcr_read(&mut t).unwrap_err();
    assert!(
        e.to_string()
            .contains("pcrSelectionOut[0].pcrSelect at byte 11: PCRs 000000"),
        "{e}"
    );
}

#[test]
fn malformed_response_headers_are_refused() {
    // Size in the header larger than what follows the header: the transport reads until the
    // TPM hangs up.
    let mut r = reply(&[], &[], false);
    r[5] = 20;
    let mut t = Script::new(vec![r], 4096);
    let e = flush_context(&mut t, 1).unwrap_err();
    assert!(
        e.to_string().contains("hung up after 10 of 20 bytes"),
        "{e}"
    );
    // A TPM 1.2.
    let mut t = Script::new(vec![hex("00c4 0000000a 00000000")], 4096);
    let e = flush_context(&mut t, 1).unwrap_err();
    assert!(e.to_string().contains("TPM 1.2"), "{e}");
    // Sessions tag where none were sent.
    let mut t = Script::new(vec![reply(&[], &[], true)], 4096);
    let e = flush_context(&mut t, 1).unwrap_err();
    assert!(e.to_string().contains("tag 0x8002, expected 0x8001"), "{e}");
    // Junk after the session response.
    let q = good();
    let mut params = (q.attest.len() as u16).to_be_bytes().to_vec();
    params.extend_from_slice(&q.attest);
    params.extend_from_slice(&q.signature);
    let mut r = reply(&[], &params, true);
    r.push(0);
    let n = r.len() as u32;
    r[2..6].copy_from_slice(&n.to_be_bytes());
    let mut t = Script::new(vec![r], 4096);
    let e = quote_with_key(&mut t, 1, &QD).unwrap_err();
    assert!(e.to_string().contains("response: end at byte"), "{e}");
}

#[test]
fn an_ek_certificate_is_read_in_pieces_and_absence_is_none() {
    // Absent: TPM_RC_HANDLE for both indices.
    let mut t = Script::new(vec![error_reply(0x18b), error_reply(0x18b)], 4096);
    assert_eq!(read_ek_cert(&mut t).unwrap(), None);
    assert_eq!(
        t.sent,
        [
            hex("8001 0000000e 00000169 01c00002"),
            hex("8001 0000000e 00000169 01c0000a")
        ]
    );
    // Present at the RSA index, 1100 bytes, readable with its own authorization: three reads.
    let cert: Vec<u8> = (0..1100u32).map(|i| i as u8).collect();
    let mut nv_public = hex("01c00002 000b");
    nv_public.extend_from_slice(&((1u32 << 18) | (1 << 29)).to_be_bytes()); // AUTHREAD, WRITTEN
    nv_public.extend_from_slice(&hex("0000"));
    nv_public.extend_from_slice(&1100u16.to_be_bytes());
    let mut p = (nv_public.len() as u16).to_be_bytes().to_vec();
    p.extend_from_slice(&nv_public);
    p.extend_from_slice(&hex("0000"));
    let mut replies = vec![reply(&[], &p, false)];
    for chunk in cert.chunks(512) {
        let mut d = (chunk.len() as u16).to_be_bytes().to_vec();
        d.extend_from_slice(chunk);
        replies.push(reply(&[], &d, true));
    }
    let mut t = Script::new(replies, 100);
    assert_eq!(
        read_ek_cert(&mut t).unwrap(),
        Some((EK_CERT_RSA_INDEX, cert))
    );
    assert_eq!(
        t.sent[1..],
        [
            hex(
                "8002 00000023 0000014e 01c00002 01c00002 00000009 40000009 0000 01 0000 0200 0000"
            ),
            hex(
                "8002 00000023 0000014e 01c00002 01c00002 00000009 40000009 0000 01 0000 0200 0200"
            ),
            hex(
                "8002 00000023 0000014e 01c00002 01c00002 00000009 40000009 0000 01 0000 004c 0400"
            ),
        ]
    );
}

// ---- a quote made by swtpm (libtpms), recorded ----------------------------------------------

/// swtpm 0.7.1, fresh state, PCR 0-7 zero, qualifying data 32 bytes of 5a (the same quote is
/// the fuzz seed `fuzz/seeds/tpm_quote/swtpm-quote`).
const SWTPM_ATTEST: &str = "ff54434780180022000baa7bd237314d3350f33900d0413fb834283cdf3f9187fdb482ca50db9ba42ca000205a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a00000000000004b9000000020000000000201910230016363600000001000b03ff000000205341e6b2646979a70e57653007a1f310169421ec9bdd9f1a5648f75ade005af1";
const SWTPM_SIGNATURE: &str = "0018000b002083493fd8eec5aecf0970dfb6e31d7858afb66e6a6e2c40ae22947e05fd8717d80020105ba908f39ece5bf7f4df09b46746d0af988dff4257ec8c4dce7070b3bc2e70";
const SWTPM_AK_PUBLIC: &str = "0023000b00050072000000100018000b00030010002092fce65c586d9de872d23eac41094de9c5d55b30e901e5d00f046dcd4a77f5be0020ed8ba112ce1235053a26ee93bf94570e84560d8e1952cd0cb5430258a7cb79dd";

#[test]
fn a_recorded_swtpm_quote_verifies() {
    let q = Quote {
        attest: hex(SWTPM_ATTEST),
        signature: hex(SWTPM_SIGNATURE),
        ak_public: hex(SWTPM_AK_PUBLIC),
        ek_cert: None,
    };
    let r = verify(&q, &[0x5a; 32], &[[0; 32]; 8]).unwrap();
    // The name tpm2_readpublic printed for the key tpm2_createprimary made from the same
    // template on the same swtpm.
    assert_eq!(
        r.ak_name,
        "000b15688d31f0bfaee02bd551aa8af55ba0fc50e10c46f401d4c3661e7d0ff1a540"
    );
    assert_eq!(
        r.pcr_digest,
        "5341e6b2646979a70e57653007a1f310169421ec9bdd9f1a5648f75ade005af1"
    );
    assert_eq!(
        (r.clock, r.reset_count, r.restart_count, r.safe),
        (1209, 2, 0, false)
    );
    assert_eq!(r.firmware_version_text(), "0x20191023.0x00163636");
    let seed = std::fs::read(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../fuzz/seeds/tpm_quote/swtpm-quote"
    ))
    .unwrap();
    assert_eq!(seed[4..4 + q.attest.len()], q.attest);
}

// ---- verify_known_ak, ak_public and attest's own checks ---------------------------------------

#[test]
fn verify_known_ak_wants_the_recorded_name() {
    let q = good();
    let name = ak_name(&q.ak_public);
    verify_known_ak(&q, &QD, &pcrs(), &name).unwrap();
    let other = ak_name(&public_of(&signing_key(0x43)));
    let e = verify_known_ak(&q, &QD, &pcrs(), &other).unwrap_err();
    assert_eq!(
        e,
        QuoteError::UnknownKey {
            expected: other,
            found: name.clone()
        }
    );
    // Upper case is another spelling, not the recorded name.
    assert!(verify_known_ak(&q, &QD, &pcrs(), &name.to_uppercase()).is_err());
    // The other checks still come first.
    assert!(matches!(
        verify_known_ak(&q, &[], &pcrs(), &name),
        Err(QuoteError::QualifyingData { .. })
    ));
}

#[test]
fn ak_public_makes_and_flushes_the_key() {
    let public = public_of(&signing_key(9));
    let mut t = Script::new(
        vec![
            reply(
                &[0x8000_0001],
                &create_primary_params(&public, &ak_name_bytes(&public)),
                true,
            ),
            reply(&[], &[], false),
        ],
        4096,
    );
    assert_eq!(ak_public(&mut t).unwrap(), public);
    assert_eq!(t.sent[1], hex(FLUSH_OF_80000001));
}

/// The replies `attest` gets from a TPM whose PCRs read `first` and then `second`, quoting
/// `good()`.
fn attest_script(first: (u32, [[u8; 32]; 8]), second: (u32, [[u8; 32]; 8])) -> Script {
    let q = good();
    let mut quoted = (q.attest.len() as u16).to_be_bytes().to_vec();
    quoted.extend_from_slice(&q.attest);
    quoted.extend_from_slice(&q.signature);
    Script::new(
        vec![
            reply(&[], &pcr_read_params(first.0, &first.1), false),
            reply(
                &[0x8000_0001],
                &create_primary_params(&q.ak_public, &ak_name_bytes(&q.ak_public)),
                true,
            ),
            reply(&[], &quoted, true),
            reply(&[], &[], false),
            error_reply(0x18b),
            error_reply(0x18b),
            reply(&[], &pcr_read_params(second.0, &second.1), false),
        ],
        4096,
    )
}

#[test]
fn attest_checks_the_pcrs_did_not_change_and_the_quote_verifies() {
    let a = attest(&mut attest_script((5, pcrs()), (5, pcrs())), &QD).unwrap();
    assert_eq!(a.quote, good());
    assert_eq!(a.pcrs, pcrs());
    assert_eq!(a.report, verify(&good(), &QD, &pcrs()).unwrap());

    let e = attest(&mut attest_script((5, pcrs()), (6, pcrs())), &QD).unwrap_err();
    assert!(
        matches!(
            e,
            TpmError::PcrsChanged {
                before: 5,
                after: 6
            }
        ),
        "{e}"
    );

    let mut other = pcrs();
    other[0][0] ^= 1;
    let e = attest(&mut attest_script((5, other), (5, other)), &QD).unwrap_err();
    assert!(
        matches!(e, TpmError::SelfCheck(QuoteError::PcrDigest { .. })),
        "{e}"
    );
    let e = attest(&mut attest_script((5, pcrs()), (5, pcrs())), &[0; 32]).unwrap_err();
    assert!(
        matches!(e, TpmError::SelfCheck(QuoteError::QualifyingData { .. })),
        "{e}"
    );
}
