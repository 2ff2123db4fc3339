//! A TPM quote comes from the ceremony's output folder (and first from the TPM): parsing and
//! verifying any bytes must return, never panic.
//!
//! Input: attest length (2 bytes), signature length (2 bytes), the attest, the signature, and
//! the attestation key's public part (the rest). Each parser also gets the whole input.
#![no_main]

use libfuzzer_sys::fuzz_target;
use tpm_quote::{Quote, parse_ak_public, parse_attest, parse_signature, verify};

fuzz_target!(|data: &[u8]| {
    let _ = parse_ak_public(data);
    let _ = parse_attest(data);
    let _ = parse_signature(data);
    if data.len() < 4 {
        return;
    }
    let a = usize::from(u16::from_be_bytes([data[0], data[1]]));
    let s = usize::from(u16::from_be_bytes([data[2], data[3]]));
    let rest = &data[4..];
    if a + s > rest.len() {
        return;
    }
    let quote = Quote {
        attest: rest[..a].to_vec(),
        signature: rest[a..a + s].to_vec(),
        ak_public: rest[a + s..].to_vec(),
        ek_cert: None,
    };
    // The seed's qualifying data and PCR values (a swtpm quote over PCR 0-7 after extends).
    if let Ok(report) = verify(&quote, &[0x5a; 32], &[[0u8; 32]; 8]) {
        assert_eq!(report.ak_name.len(), 68);
    }
});
