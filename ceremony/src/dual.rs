//! Second implementations of the root key's cryptography, checked against the first before any
//! result is used (docs/dual-implementations.md):
//!
//! - every signature the root key makes (its certificate's self-signatures, the share envelopes,
//!   the PIN files, the self-test, the transcript) goes through [`DualSigner`], which has the
//!   same digest signed a second time by [`SecondEd25519`] (`ed25519-compact`, not Sequoia's
//!   ed25519-dalek) and returns the signature only if both are byte for byte the same;
//! - the root key derivation (HKDF-SHA256, RFC 5869) is computed a second time by
//!   [`hkdf_sha256`], written here from the RFC independently of `kdf.rs`;
//! - every v4 fingerprint of a key sherd makes is computed a second time by [`v4_fingerprint`]
//!   over a key packet body built here from the raw public key (RFC 4880 section 12.2), with
//!   the public key itself computed by `ed25519-compact` from the secret, and SHA-1 from the
//!   `sha1` crate (Sequoia uses `sha1collisiondetection`).
//!
//! A disagreement is a [`Disagreement`]: the step that met it stops and nothing from it is
//! written or used. [`Seconds`] carries the second implementations into a ceremony; tests give
//! it deliberately wrong ones ([`crate::ceremony::Planned::checked_against`]).

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use sequoia_openpgp as openpgp;
use sha2::Digest;
use zeroize::Zeroizing;

use openpgp::crypto::{self, KeyPair, mpi};
use openpgp::packet::Key;
use openpgp::packet::key::{PublicParts, UnspecifiedRole};
use openpgp::types::HashAlgorithm;

use crate::shamir::SecondShamir;

/// The second Ed25519 implementation's name and version, as the transcript records it.
pub const ED25519_SECOND: &str = "ed25519-compact-2.6.1";
/// The second HKDF and fingerprint implementations' name, as the transcript records it.
pub const KEYS_SECOND: &str = "sherd-dual-rfc5869-rfc4880+sha1-0.11";

/// The first and second implementation gave different results: nothing from the step is used.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Disagreement {
    /// A root key signature (or the public key behind it) differs between Sequoia and the
    /// second Ed25519.
    #[error(
        "the root key's signature from Sequoia (ed25519-dalek) and from {second} differ: the two Ed25519 implementations disagree, so neither signature is used"
    )]
    Signature {
        /// The second implementation's name.
        second: &'static str,
    },
    /// The root key derivation (HKDF-SHA256) differs between the two implementations.
    #[error(
        "the root key derivation (HKDF-SHA256) differs between kdf.rs and the second implementation: the key is not used"
    )]
    Hkdf,
    /// A v4 fingerprint differs between Sequoia and the second computation.
    #[error(
        "the v4 fingerprint of {key} is {first} by Sequoia and {second} by the second computation (RFC 4880 12.2): the key is not used"
    )]
    Fingerprint {
        /// Which key: `the root primary key`, `holder 2's location subkey`, ...
        key: String,
        /// Sequoia's fingerprint, upper-case hex.
        first: String,
        /// The second computation's, upper-case hex.
        second: String,
    },
}

/// The second Ed25519 implementation every root signature is checked against. The only one in
/// the workspace is [`Ed25519Compact`]; the trait exists so tests can give a ceremony a wrong
/// one and see it stop.
pub trait SecondEd25519: Send + Sync {
    /// Its name and version, for messages and the transcript.
    fn name(&self) -> &'static str;
    /// The public key of the 32-byte secret seed (RFC 8032 section 5.1.5).
    fn public_key(&self, seed: &[u8; 32]) -> [u8; 32];
    /// The RFC 8032 (pure Ed25519, deterministic) signature of `message` with `seed`.
    fn sign(&self, seed: &[u8; 32], message: &[u8]) -> [u8; 64];
}

/// Frank Denis's `ed25519-compact`: its own field arithmetic and SHA-512, no code shared with
/// ed25519-dalek / curve25519-dalek.
#[derive(Clone, Copy, Debug, Default)]
pub struct Ed25519Compact;

impl SecondEd25519 for Ed25519Compact {
    fn name(&self) -> &'static str {
        ED25519_SECOND
    }

    fn public_key(&self, seed: &[u8; 32]) -> [u8; 32] {
        // An all-zero seed is refused by try_from_seed; it cannot come out of HKDF in practice,
        // and then no public key matches: the check fails closed.
        match ed25519_compact::KeyPair::try_from_seed(ed25519_compact::Seed::new(*seed)) {
            Ok(kp) => *kp.pk,
            Err(_) => [0u8; 32],
        }
    }

    fn sign(&self, seed: &[u8; 32], message: &[u8]) -> [u8; 64] {
        match ed25519_compact::KeyPair::try_from_seed(ed25519_compact::Seed::new(*seed)) {
            // No noise: the deterministic signature of RFC 8032.
            Ok(kp) => *kp.sk.sign(message, None),
            Err(_) => [0u8; 64],
        }
    }
}

/// The second implementations a ceremony checks its results against.
#[derive(Clone)]
pub struct Seconds {
    /// Shamir split and combination ([`crate::shamir::split_with`]).
    pub shamir: Arc<dyn SecondShamir + Send + Sync>,
    /// Ed25519 signatures by the root key.
    pub ed25519: Arc<dyn SecondEd25519>,
}

impl Default for Seconds {
    /// The real ones: `shamir-gf256` and `ed25519-compact` (in a fault-injection test build
    /// only, [`FAULT_INJECTION`], a wrong second Shamir).
    fn default() -> Self {
        Seconds {
            shamir: default_shamir(),
            ed25519: Arc::new(Ed25519Compact),
        }
    }
}

/// What this build's second implementations deliberately get wrong, if anything: `None` in
/// every real build; a test build made with the `fault-wrong-second-shamir` feature says so.
pub const FAULT_INJECTION: Option<&str> = if cfg!(feature = "fault-wrong-second-shamir") {
    Some("FAULT-INJECTION TEST BUILD: its second Shamir is deliberately wrong")
} else {
    None
};

#[cfg(not(feature = "fault-wrong-second-shamir"))]
fn default_shamir() -> Arc<dyn SecondShamir + Send + Sync> {
    Arc::new(crate::shamir::ShamirGf256)
}

#[cfg(feature = "fault-wrong-second-shamir")]
fn default_shamir() -> Arc<dyn SecondShamir + Send + Sync> {
    Arc::new(fault::WrongSplit)
}

/// The fault-injection test build's wrong second Shamir (never in a real build).
#[cfg(feature = "fault-wrong-second-shamir")]
mod fault {
    use crate::shamir::{SecondShamir, ShamirGf256};
    use zeroize::Zeroizing;

    /// Splits as `shamir-gf256` does, then changes the last share's first y byte.
    pub(super) struct WrongSplit;

    impl SecondShamir for WrongSplit {
        fn name(&self) -> &'static str {
            "wrong-split-fault-injection"
        }
        fn split_with_coefficients(
            &self,
            secret: &[u8],
            threshold: usize,
            coefficients: &[u8],
            xs: &[u8],
        ) -> Result<Vec<Zeroizing<Vec<u8>>>, shamir_gf256::Error> {
            let mut shares =
                ShamirGf256.split_with_coefficients(secret, threshold, coefficients, xs)?;
            if let Some(last) = shares.last_mut() {
                last[1] ^= 1;
            }
            Ok(shares)
        }
        fn combine(&self, shares: &[&[u8]]) -> Result<Zeroizing<Vec<u8>>, shamir_gf256::Error> {
            ShamirGf256.combine(shares)
        }
        fn interpolate(
            &self,
            shares: &[&[u8]],
            at: u8,
        ) -> Result<Zeroizing<Vec<u8>>, shamir_gf256::Error> {
            ShamirGf256.interpolate(shares, at)
        }
    }
}

impl std::fmt::Debug for Seconds {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Seconds")
            .field("shamir", &self.shamir.name())
            .field("ed25519", &self.ed25519.name())
            .finish()
    }
}

/// A Sequoia signer for an Ed25519 (EdDSA legacy, v4) key that has every digest it signs signed
/// a second time by a [`SecondEd25519`] and returns the signature only if the two are the same
/// 64 bytes (and the second derives the same public key from the secret). Counts the
/// signatures that agreed.
pub(crate) struct DualSigner<'a> {
    first: KeyPair,
    second: &'a dyn SecondEd25519,
    agreed: &'a AtomicUsize,
}

impl<'a> DualSigner<'a> {
    pub(crate) fn new(
        first: KeyPair,
        second: &'a dyn SecondEd25519,
        agreed: &'a AtomicUsize,
    ) -> Self {
        DualSigner {
            first,
            second,
            agreed,
        }
    }

    /// The 32-byte seed and public key of the first signer, if it is an Ed25519 key.
    fn seed_and_public(&self) -> Option<(Zeroizing<[u8; 32]>, [u8; 32])> {
        let public = match self.first.public().mpis() {
            mpi::PublicKey::EdDSA { q, .. } => match q.value() {
                [0x40, rest @ ..] => <[u8; 32]>::try_from(rest).ok()?,
                _ => return None,
            },
            _ => return None,
        };
        let seed = self.first.secret().map(|m| match m {
            mpi::SecretKeyMaterial::EdDSA { scalar } => {
                let padded = scalar.value_padded(32);
                let mut s = Zeroizing::new([0u8; 32]);
                s.copy_from_slice(&padded);
                Some(s)
            }
            _ => None,
        })?;
        Some((seed, public))
    }
}

impl crypto::Signer for DualSigner<'_> {
    fn public(&self) -> &Key<PublicParts, UnspecifiedRole> {
        self.first.public()
    }

    fn acceptable_hashes(&self) -> &[HashAlgorithm] {
        self.first.acceptable_hashes()
    }

    fn sign(&mut self, hash_algo: HashAlgorithm, digest: &[u8]) -> openpgp::Result<mpi::Signature> {
        let disagree = || {
            openpgp::anyhow::Error::new(Disagreement::Signature {
                second: self.second.name(),
            })
        };
        let sig = self.first.sign(hash_algo, digest)?;
        let mpi::Signature::EdDSA { r, s } = &sig else {
            return Err(disagree());
        };
        let mut first = [0u8; 64];
        first[..32].copy_from_slice(&r.value_padded(32)?);
        first[32..].copy_from_slice(&s.value_padded(32)?);
        let (seed, public) = self.seed_and_public().ok_or_else(disagree)?;
        let second_public = self.second.public_key(&seed);
        let second = self.second.sign(&seed, digest);
        if !same(&public, &second_public) || !same(&first, &second) {
            return Err(disagree());
        }
        self.agreed.fetch_add(1, Ordering::Relaxed);
        Ok(sig)
    }
}

/// Equal lengths and bytes, without stopping at the first difference.
pub(crate) fn same(a: &[u8], b: &[u8]) -> bool {
    let mut diff = u8::from(a.len() != b.len());
    for (x, y) in a.iter().zip(b) {
        diff |= x ^ y;
    }
    diff == 0
}

/// The [`Disagreement`] in a Sequoia error chain, if one caused it.
pub(crate) fn disagreement_in(e: &openpgp::anyhow::Error) -> Option<Disagreement> {
    e.chain()
        .find_map(|c| c.downcast_ref::<Disagreement>())
        .cloned()
}

// ---- HKDF-SHA256, the second time (RFC 5869 over RFC 2104 HMAC) ----

/// HMAC-SHA256 as RFC 2104 defines it: H((K' xor opad) || H((K' xor ipad) || text)), K' the
/// key hashed if longer than the 64-byte block, then zero-padded to it. Written over one
/// buffer per hash, unlike `kdf.rs`'s streaming version.
fn hmac(key: &[u8], text: &[u8]) -> Zeroizing<Vec<u8>> {
    const B: usize = 64;
    let mut k0 = Zeroizing::new(if key.len() > B {
        sha2::Sha256::digest(key).to_vec()
    } else {
        key.to_vec()
    });
    k0.resize(B, 0);
    let mut inner = Zeroizing::new(Vec::with_capacity(B + text.len()));
    inner.extend(k0.iter().map(|b| b ^ 0x36));
    inner.extend_from_slice(text);
    let inner_hash = Zeroizing::new(sha2::Sha256::digest(&inner[..]).to_vec());
    let mut outer = Zeroizing::new(Vec::with_capacity(B + 32));
    outer.extend(k0.iter().map(|b| b ^ 0x5c));
    outer.extend_from_slice(&inner_hash);
    Zeroizing::new(sha2::Sha256::digest(&outer[..]).to_vec())
}

/// HKDF-SHA256 (RFC 5869 section 2): PRK = HMAC(salt, IKM); T(0) = empty,
/// T(i) = HMAC(PRK, T(i-1) || info || i); OKM = the first `len` bytes of T(1) || T(2) || ...
/// `None` if `len` is over 255 * 32.
pub fn hkdf_sha256(ikm: &[u8], salt: &[u8], info: &[u8], len: usize) -> Option<Zeroizing<Vec<u8>>> {
    const HASH_LEN: usize = 32;
    if len > 255 * HASH_LEN {
        return None;
    }
    // RFC 5869 2.2: an absent salt is HashLen zeros (HMAC pads the empty key the same way).
    let prk = hmac(salt, ikm);
    let mut okm = Zeroizing::new(Vec::with_capacity(len + HASH_LEN));
    let mut previous: Zeroizing<Vec<u8>> = Zeroizing::new(Vec::new());
    let mut i: u8 = 0;
    while okm.len() < len {
        i += 1;
        let mut text = Zeroizing::new(Vec::with_capacity(previous.len() + info.len() + 1));
        text.extend_from_slice(&previous);
        text.extend_from_slice(info);
        text.push(i);
        previous = hmac(&prk, &text);
        okm.extend_from_slice(&previous);
    }
    okm.truncate(len);
    Some(okm)
}

// ---- v4 fingerprints, the second time (RFC 4880 section 12.2) ----

/// The curve OID of Ed25519 in OpenPGP (1.3.6.1.4.1.11591.15.1, RFC 4880bis / RFC 9580 9.2).
const OID_ED25519: &[u8] = &[0x2b, 0x06, 0x01, 0x04, 0x01, 0xda, 0x47, 0x0f, 0x01];
/// The curve OID of Curve25519 for ECDH (1.3.6.1.4.1.3029.1.5.1).
const OID_CV25519: &[u8] = &[0x2b, 0x06, 0x01, 0x04, 0x01, 0x97, 0x55, 0x01, 0x05, 0x01];

/// A v4 public key packet body: version 4, creation time, algorithm, the curve OID (length
/// byte, then the OID), the point as an MPI (bit count 263: 0x40 then 32 bytes), then `extra`.
fn ecc_key_body(time_unix: u32, algo: u8, oid: &[u8], point: &[u8; 32], extra: &[u8]) -> Vec<u8> {
    let mut body = vec![4];
    body.extend_from_slice(&time_unix.to_be_bytes());
    body.push(algo);
    body.push(u8::try_from(oid.len()).expect("short OID"));
    body.extend_from_slice(oid);
    // 33 bytes whose first is 0x40 (bit 6 set): 32 * 8 + 7 = 263 bits.
    body.extend_from_slice(&263u16.to_be_bytes());
    body.push(0x40);
    body.extend_from_slice(point);
    body.extend_from_slice(extra);
    body
}

/// The body of a v4 EdDSA (algorithm 22) Ed25519 public key packet.
pub fn ed25519_key_body(time_unix: u32, public: &[u8; 32]) -> Vec<u8> {
    ecc_key_body(time_unix, 22, OID_ED25519, public, &[])
}

/// The body of a v4 ECDH (algorithm 18) Curve25519 public key packet with KDF parameters
/// SHA-256 (8) and AES-128 (7), as sherd makes its encryption subkeys.
pub fn cv25519_key_body(time_unix: u32, public: &[u8; 32]) -> Vec<u8> {
    ecc_key_body(time_unix, 18, OID_CV25519, public, &[3, 1, 8, 7])
}

/// The v4 fingerprint (RFC 4880 12.2): SHA-1 over 0x99, the body's length as two bytes
/// big-endian, and the public key packet body.
pub fn v4_fingerprint(body: &[u8]) -> [u8; 20] {
    let mut h = sha1::Sha1::new();
    h.update([0x99]);
    h.update(
        u16::try_from(body.len())
            .expect("a key body under 64 KiB")
            .to_be_bytes(),
    );
    h.update(body);
    h.finalize().into()
}

/// The Ed25519 public key of `seed`, by the second implementation.
pub fn ed25519_public(second: &dyn SecondEd25519, seed: &[u8; 32]) -> [u8; 32] {
    second.public_key(seed)
}

/// The X25519 public key of an already clamped scalar (RFC 7748 order), by `ed25519-compact`'s
/// X25519 (Sequoia uses x25519-dalek).
pub fn x25519_public(scalar: &[u8; 32]) -> [u8; 32] {
    match ed25519_compact::x25519::SecretKey::new(*scalar).recover_public_key() {
        Ok(pk) => *pk,
        Err(_) => [0u8; 32],
    }
}

/// Compares a Sequoia fingerprint with the second computation's.
pub(crate) fn check_fingerprint(
    key: impl FnOnce() -> String,
    first: &[u8],
    second: &[u8; 20],
) -> Result<(), Disagreement> {
    if same(first, second) {
        Ok(())
    } else {
        Err(Disagreement::Fingerprint {
            key: key(),
            first: crate::hex::encode_upper(first),
            second: crate::hex::encode_upper(second),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::hex;
    use proptest::prelude::*;
    use sequoia_openpgp::packet::key::{Key4, PrimaryRole, SecretParts};
    use sequoia_openpgp::types::SymmetricAlgorithm;
    use std::time::{Duration, UNIX_EPOCH};

    #[test]
    fn rfc5869_case_1() {
        let ikm = [0x0bu8; 22];
        let salt = hex::decode("000102030405060708090a0b0c").unwrap();
        let info = hex::decode("f0f1f2f3f4f5f6f7f8f9").unwrap();
        let okm = hkdf_sha256(&ikm, &salt, &info, 42).unwrap();
        assert_eq!(
            hex::encode(&okm),
            "3cb25f25faacd57a90434f64d0362f2a2d2d0a90cf1a5a4c5db02d56ecc4c5bf34007208d5b887185865"
        );
        let mut first = [0u8; 42];
        crate::kdf::hkdf_sha256(&ikm, &salt, &info, &mut first);
        assert_eq!(&first[..], &okm[..]);
    }

    #[test]
    fn rfc5869_case_3_empty_salt_and_info() {
        let okm = hkdf_sha256(&[0x0bu8; 22], &[], &[], 42).unwrap();
        assert_eq!(
            hex::encode(&okm),
            "8da4e775a563c18f715f802a063c5a31b8a11f5c5ee1879ec3454e5f3c738d2d9d201395faa4b61a96c8"
        );
        assert!(hkdf_sha256(b"k", b"s", b"i", 255 * 32 + 1).is_none());
    }

    #[test]
    fn rfc8032_test_1() {
        // RFC 8032 7.1, TEST 1 (empty message).
        let seed: [u8; 32] =
            hex::decode_array("9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60")
                .unwrap();
        let e = Ed25519Compact;
        assert_eq!(
            hex::encode(&e.public_key(&seed)),
            "d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a"
        );
        assert_eq!(
            hex::encode(&e.sign(&seed, b"")),
            "e5564300c360ac729086e2cc806e828a84877f1eb8e5d974d873e065224901555fb8821590a33bacc61e39701cf9b46bd25bf5f0595bbe24655141438e7a100b"
        );
    }

    fn sequoia_pair(seed: &[u8; 32], time: u32) -> KeyPair {
        let key: Key<SecretParts, PrimaryRole> =
            Key4::import_secret_ed25519(seed, UNIX_EPOCH + Duration::from_secs(time.into()))
                .unwrap()
                .into();
        key.into_keypair().unwrap()
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]

        /// Sequoia's Ed25519 (ed25519-dalek) and ed25519-compact give the same public key and
        /// the same signature for random seeds and digests of every length a hash gives.
        #[test]
        fn the_two_ed25519_agree(seed in any::<[u8; 32]>(), digest in proptest::collection::vec(any::<u8>(), 0..80)) {
            prop_assume!(seed != [0u8; 32]);
            let mut pair = sequoia_pair(&seed, 1_700_000_000);
            let agreed = AtomicUsize::new(0);
            let mut dual = DualSigner::new(pair.clone(), &Ed25519Compact, &agreed);
            let first = crypto::Signer::sign(&mut pair, HashAlgorithm::SHA512, &digest).unwrap();
            let checked = crypto::Signer::sign(&mut dual, HashAlgorithm::SHA512, &digest).unwrap();
            prop_assert_eq!(first, checked);
            prop_assert_eq!(agreed.load(Ordering::Relaxed), 1);
        }

        /// kdf.rs and this module's HKDF agree on random inputs and lengths.
        #[test]
        fn the_two_hkdf_agree(
            ikm in proptest::collection::vec(any::<u8>(), 0..100),
            salt in proptest::collection::vec(any::<u8>(), 0..100),
            info in proptest::collection::vec(any::<u8>(), 0..60),
            len in 0usize..200,
        ) {
            let mut first = vec![0u8; len];
            crate::kdf::hkdf_sha256(&ikm, &salt, &info, &mut first);
            let second = hkdf_sha256(&ikm, &salt, &info, len).unwrap();
            prop_assert_eq!(&first[..], &second[..]);
        }

        /// Sequoia's v4 fingerprints and the second computation agree for random keys and
        /// times.
        #[test]
        fn the_two_fingerprints_agree(seed in any::<[u8; 32]>(), scalar in any::<[u8; 32]>(), time in 1u32..u32::MAX) {
            prop_assume!(seed != [0u8; 32]);
            let pair = sequoia_pair(&seed, time);
            let public = Ed25519Compact.public_key(&seed);
            let second = v4_fingerprint(&ed25519_key_body(time, &public));
            prop_assert_eq!(pair.public().fingerprint().as_bytes().to_vec(), second.to_vec());

            let mut clamped = scalar;
            clamped[0] &= 248;
            clamped[31] &= 127;
            clamped[31] |= 64;
            let sub: Key<SecretParts, PrimaryRole> = Key4::import_secret_cv25519(
                &clamped,
                HashAlgorithm::SHA256,
                SymmetricAlgorithm::AES128,
                UNIX_EPOCH + Duration::from_secs(time.into()),
            )
            .unwrap()
            .into();
            let second = v4_fingerprint(&cv25519_key_body(time, &x25519_public(&clamped)));
            prop_assert_eq!(sub.fingerprint().as_bytes().to_vec(), second.to_vec());
        }
    }

    /// Flips one bit of every signature.
    struct Flipped;
    impl SecondEd25519 for Flipped {
        fn name(&self) -> &'static str {
            "flipped"
        }
        fn public_key(&self, seed: &[u8; 32]) -> [u8; 32] {
            Ed25519Compact.public_key(seed)
        }
        fn sign(&self, seed: &[u8; 32], message: &[u8]) -> [u8; 64] {
            let mut s = Ed25519Compact.sign(seed, message);
            s[63] ^= 1;
            s
        }
    }

    /// Signs right, but with another key's public key.
    struct OtherKey;
    impl SecondEd25519 for OtherKey {
        fn name(&self) -> &'static str {
            "other-key"
        }
        fn public_key(&self, _seed: &[u8; 32]) -> [u8; 32] {
            Ed25519Compact.public_key(&[7u8; 32])
        }
        fn sign(&self, seed: &[u8; 32], message: &[u8]) -> [u8; 64] {
            Ed25519Compact.sign(seed, message)
        }
    }

    #[test]
    fn a_wrong_second_signer_refuses_the_signature() {
        for wrong in [&Flipped as &dyn SecondEd25519, &OtherKey] {
            let agreed = AtomicUsize::new(0);
            let mut dual = DualSigner::new(sequoia_pair(&[3u8; 32], 1), wrong, &agreed);
            let e = crypto::Signer::sign(&mut dual, HashAlgorithm::SHA512, &[1u8; 64]).unwrap_err();
            assert_eq!(
                disagreement_in(&e),
                Some(Disagreement::Signature {
                    second: wrong.name()
                })
            );
            assert_eq!(agreed.load(Ordering::Relaxed), 0);
        }
    }
}
