//! HMAC-SHA256 and HKDF-SHA256 (RFC 2104, RFC 5869), written out over `sha2` so the derivation
//! is short enough to audit and to re-implement from docs/formats/keys.md.

use sha2::{Digest, Sha256};
use zeroize::Zeroizing;

const BLOCK: usize = 64;

/// HMAC-SHA256(key, message parts concatenated).
pub(crate) fn hmac_sha256(key: &[u8], parts: &[&[u8]]) -> Zeroizing<[u8; 32]> {
    let mut k = Zeroizing::new([0u8; BLOCK]);
    if key.len() > BLOCK {
        let d: [u8; 32] = Sha256::digest(key).into();
        k[..32].copy_from_slice(&d);
    } else {
        k[..key.len()].copy_from_slice(key);
    }
    let mut ipad = Zeroizing::new([0x36u8; BLOCK]);
    let mut opad = Zeroizing::new([0x5cu8; BLOCK]);
    for i in 0..BLOCK {
        ipad[i] ^= k[i];
        opad[i] ^= k[i];
    }
    let mut inner = Sha256::new();
    inner.update(&ipad[..]);
    for p in parts {
        inner.update(p);
    }
    let inner: Zeroizing<[u8; 32]> = Zeroizing::new(inner.finalize().into());
    let mut outer = Sha256::new();
    outer.update(&opad[..]);
    outer.update(&inner[..]);
    Zeroizing::new(outer.finalize().into())
}

/// HKDF-SHA256 extract-then-expand into `out` (at most 255 * 32 bytes).
pub(crate) fn hkdf_sha256(ikm: &[u8], salt: &[u8], info: &[u8], out: &mut [u8]) {
    assert!(out.len() <= 255 * 32, "HKDF output too long");
    let prk = hmac_sha256(salt, &[ikm]);
    let mut t: Zeroizing<[u8; 32]> = Zeroizing::new([0u8; 32]);
    let mut t_len = 0;
    for (i, chunk) in out.chunks_mut(32).enumerate() {
        let counter = [u8::try_from(i + 1).expect("checked above")];
        t = hmac_sha256(&prk[..], &[&t[..t_len], info, &counter]);
        t_len = 32;
        chunk.copy_from_slice(&t[..chunk.len()]);
    }
}

/// SHA-256 of a byte string.
pub(crate) fn sha256(bytes: &[u8]) -> [u8; 32] {
    Sha256::digest(bytes).into()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::hex;

    #[test]
    fn rfc4231_case_2() {
        let mac = hmac_sha256(b"Jefe", &[b"what do ya want ", b"for nothing?"]);
        assert_eq!(
            hex::encode(&mac[..]),
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
    }

    #[test]
    fn rfc4231_case_6_long_key() {
        let key = [0xaau8; 131];
        let mac = hmac_sha256(
            &key,
            &[b"Test Using Larger Than Block-Size Key - Hash Key First"],
        );
        assert_eq!(
            hex::encode(&mac[..]),
            "60e431591ee0b67f0d8a26aacbf5b77f8e0bc6213728c5140546040f0ee37f54"
        );
    }

    #[test]
    fn rfc5869_case_1() {
        let ikm = [0x0bu8; 22];
        let salt = hex::decode("000102030405060708090a0b0c").unwrap();
        let info = hex::decode("f0f1f2f3f4f5f6f7f8f9").unwrap();
        let mut okm = [0u8; 42];
        hkdf_sha256(&ikm, &salt, &info, &mut okm);
        assert_eq!(
            hex::encode(&okm),
            "3cb25f25faacd57a90434f64d0362f2a2d2d0a90cf1a5a4c5db02d56ecc4c5bf34007208d5b887185865"
        );
    }
}
