//! Glue between openpgp-card 0.7 and sequoia-openpgp 2.x (openpgp-card-sequoia is dead):
//! a Sequoia key as `CardUploadableKey`, and card-backed Sequoia `Decryptor` and `Signer`.

use openpgp::crypto::{self, mpi};
use openpgp::packet::Key;
use openpgp::packet::key::{PublicParts, SecretParts, UnspecifiedRole};
use openpgp::types::{Curve, HashAlgorithm};
use openpgp_card::ocard::crypto::{CardUploadableKey, EccKey, EccType, PrivateKeyMaterial};
use openpgp_card::ocard::data::{Fingerprint, KeyGenerationTime};
use sequoia_openpgp as openpgp;
use zeroize::Zeroizing;

use crate::error::{Error, Result};

/// A v4 Ed25519 or Cv25519 key of a Sequoia certificate with unencrypted secret material,
/// in the form openpgp-card uploads.
pub struct UploadableKey {
    fingerprint: [u8; 20],
    created: u32,
    oid: Vec<u8>,
    ecc_type: EccType,
    private: Zeroizing<Vec<u8>>,
    /// The public point as in the public key DO: 0x40 || 32 bytes for 25519 (import
    /// format 0xFF sends it along).
    public: Vec<u8>,
}

// Holds a private key: never printed.
impl std::fmt::Debug for UploadableKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "UploadableKey({})",
            hexstr::encode_upper(&self.fingerprint)
        )
    }
}

impl UploadableKey {
    pub fn new(key: &Key<SecretParts, UnspecifiedRole>) -> Result<Self> {
        let fp = key.fingerprint();
        let fingerprint: [u8; 20] = fp.as_bytes().try_into().map_err(|_| {
            Error::Key(format!(
                "key {fp} is not a v4 key; OpenPGP cards (spec 3.4) store only v4 \
                 fingerprints. Generate the key with the RFC 4880 profile"
            ))
        })?;
        let created = key
            .creation_time()
            .duration_since(std::time::UNIX_EPOCH)
            .map_err(|_| Error::Key(format!("key {fp} was created before 1970")))?
            .as_secs();
        let created = u32::try_from(created)
            .map_err(|_| Error::Key(format!("key {fp} was created after 2106")))?;
        let secret = match key.optional_secret() {
            Some(openpgp::packet::key::SecretKeyMaterial::Unencrypted(u)) => u,
            _ => {
                return Err(Error::Key(format!(
                    "key {fp} has no unencrypted secret material to import; decrypt it first"
                )));
            }
        };
        let (oid, ecc_type, public, private) = match key.mpis() {
            mpi::PublicKey::EdDSA {
                curve: Curve::Ed25519,
                q,
            } => {
                let private = secret.map(|s| match s {
                    mpi::SecretKeyMaterial::EdDSA { scalar } => {
                        Ok(Zeroizing::new(scalar.value_padded(32).to_vec()))
                    }
                    _ => Err(Error::Key(format!(
                        "key {fp} pairs an EdDSA public key with other secret material; \
                         it is corrupt"
                    ))),
                })?;
                (
                    Curve::Ed25519.oid().to_vec(),
                    EccType::EdDSA,
                    q.value().to_vec(),
                    private,
                )
            }
            mpi::PublicKey::ECDH {
                curve: Curve::Cv25519,
                q,
                ..
            } => {
                let private = secret.map(|s| match s {
                    mpi::SecretKeyMaterial::ECDH { scalar } => {
                        // Sent as OpenPGP (and GnuPG) store it, big-endian; the card
                        // reverses it into X25519's little-endian form itself.
                        Ok(Zeroizing::new(scalar.value_padded(32).to_vec()))
                    }
                    _ => Err(Error::Key(format!(
                        "key {fp} pairs an ECDH public key with other secret material; \
                         it is corrupt"
                    ))),
                })?;
                (
                    Curve::Cv25519.oid().to_vec(),
                    EccType::ECDH,
                    q.value().to_vec(),
                    private,
                )
            }
            other => {
                return Err(Error::Key(format!(
                    "key {fp} uses {}; sherd imports only Ed25519 (signing) and Cv25519 \
                     (decryption) keys",
                    other
                        .algo()
                        .map(|a| a.to_string())
                        .unwrap_or_else(|| "an unknown algorithm".into())
                )));
            }
        };
        Ok(Self {
            fingerprint,
            created,
            oid,
            ecc_type,
            private,
            public,
        })
    }

    pub fn fingerprint_bytes(&self) -> [u8; 20] {
        self.fingerprint
    }
}

struct Ecc {
    oid: Vec<u8>,
    ecc_type: EccType,
    private: Zeroizing<Vec<u8>>,
    public: Vec<u8>,
}

impl EccKey for Ecc {
    fn oid(&self) -> &[u8] {
        &self.oid
    }
    fn private(&self) -> &[u8] {
        &self.private
    }
    fn public(&self) -> &[u8] {
        &self.public
    }
    fn ecc_type(&self) -> EccType {
        self.ecc_type
    }
}

impl CardUploadableKey for UploadableKey {
    fn private_key(&self) -> Result<PrivateKeyMaterial, openpgp_card::Error> {
        Ok(PrivateKeyMaterial::E(Box::new(Ecc {
            oid: self.oid.clone(),
            ecc_type: self.ecc_type,
            private: self.private.clone(),
            public: self.public.clone(),
        })))
    }

    fn timestamp(&self) -> KeyGenerationTime {
        KeyGenerationTime::from(self.created)
    }

    fn fingerprint(&self) -> Result<Fingerprint, openpgp_card::Error> {
        Ok(Fingerprint::from(self.fingerprint))
    }
}

/// A Sequoia `Signer` whose private operation (EdDSA) runs on the card. The signing PIN
/// must already be verified in `tx`.
pub struct CardSigner<'a, 'b> {
    tx: &'a mut openpgp_card::Card<openpgp_card::state::Transaction<'b>>,
    public: Key<PublicParts, UnspecifiedRole>,
}

impl<'a, 'b> CardSigner<'a, 'b> {
    pub fn new(
        tx: &'a mut openpgp_card::Card<openpgp_card::state::Transaction<'b>>,
        public: Key<PublicParts, UnspecifiedRole>,
    ) -> Self {
        Self { tx, public }
    }
}

impl crypto::Signer for CardSigner<'_, '_> {
    fn public(&self) -> &Key<PublicParts, UnspecifiedRole> {
        &self.public
    }

    fn acceptable_hashes(&self) -> &[HashAlgorithm] {
        &[HashAlgorithm::SHA512, HashAlgorithm::SHA256]
    }

    fn sign(
        &mut self,
        _hash_algo: HashAlgorithm,
        digest: &[u8],
    ) -> openpgp::Result<mpi::Signature> {
        match self.public.mpis() {
            mpi::PublicKey::EdDSA {
                curve: Curve::Ed25519,
                ..
            } => {
                let sig = self
                    .tx
                    .card()
                    .signature_for_hash(openpgp_card::ocard::crypto::SigningAlgo::ECC, digest)?;
                if sig.len() != 64 {
                    return Err(openpgp::Error::MalformedMPI(format!(
                        "the card returned a {}-byte Ed25519 signature, expected 64",
                        sig.len()
                    ))
                    .into());
                }
                Ok(mpi::Signature::EdDSA {
                    r: mpi::MPI::new(&sig[..32]),
                    s: mpi::MPI::new(&sig[32..]),
                })
            }
            _ => Err(openpgp::Error::InvalidOperation(
                "the card signer handles Ed25519 only".into(),
            )
            .into()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use hexstr::encode_upper;
    use openpgp::cert::prelude::*;

    fn secret_keys(profile: openpgp::Profile) -> Vec<Key<SecretParts, UnspecifiedRole>> {
        let (cert, _) = CertBuilder::new()
            .set_profile(profile)
            .unwrap()
            .set_cipher_suite(CipherSuite::Cv25519)
            .add_storage_encryption_subkey()
            .generate()
            .unwrap();
        cert.keys()
            .secret()
            .map(|k| k.key().clone().role_into_unspecified())
            .collect()
    }

    #[test]
    fn converts_v4_25519_keys() {
        let keys = secret_keys(openpgp::Profile::RFC4880);
        assert_eq!(keys.len(), 2);
        for k in &keys {
            let u = UploadableKey::new(k).unwrap();
            assert_eq!(&u.fingerprint_bytes()[..], k.fingerprint().as_bytes());
            assert_eq!(u.private.len(), 32);
            assert_eq!(u.public.len(), 33);
            assert_eq!(u.public[0], 0x40);
            // The debug form shows the fingerprint, never the secret.
            let shown = format!("{u:?}");
            assert!(shown.contains(&encode_upper(&u.fingerprint_bytes())));
            assert!(!shown.contains(&encode_upper(&u.private)));
        }
    }

    #[test]
    fn refuses_what_a_card_cannot_hold() {
        // v6 keys have 32-byte fingerprints (and native X25519/Ed25519 packets).
        let v6 = secret_keys(openpgp::Profile::RFC9580);
        let e = UploadableKey::new(&v6[0]).unwrap_err();
        assert!(e.to_string().contains("not a v4 key"), "{e}");
        // A key whose secret is encrypted.
        let k = &secret_keys(openpgp::Profile::RFC4880)[1];
        let locked = k.clone().encrypt_secret(&"passphrase".into()).unwrap();
        let e = UploadableKey::new(&locked).unwrap_err();
        assert!(e.to_string().contains("no unencrypted secret"), "{e}");
    }
}
