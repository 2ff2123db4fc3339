//! Keys: the root certificate derived from the root secret, location keys, PINs.
//!
//! Root derivation (docs/formats/keys.md): two 32-byte seeds by HKDF-SHA256 from the root
//! secret with salt `sherd/v1` and the infos below, one per key, so no output ever serves two
//! purposes. The certificate's creation time is the plan time, so the same secret and time
//! always give the same fingerprint, and a recovery can prove it rebuilt the same key.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use sequoia_openpgp as openpgp;
use zeroize::Zeroizing;

use openpgp::Cert;
use openpgp::Fingerprint;
use openpgp::Packet;
use openpgp::crypto::KeyPair;
use openpgp::packet::key::{
    Key4, PrimaryRole, PublicParts, SecretParts, SubordinateRole, UnspecifiedRole,
};
use openpgp::packet::signature::SignatureBuilder;
use openpgp::packet::{Key, UserID};
use openpgp::serialize::SerializeInto;
use openpgp::types::{Features, HashAlgorithm, KeyFlags, SignatureType, SymmetricAlgorithm};

use crate::dual::{self, Disagreement, DualSigner, Ed25519Compact, SecondEd25519};
use crate::kdf;
use crate::rng::SecretRng;
use crate::secret::RootSecret;

/// HKDF salt for every derivation from the root secret.
pub const DERIVATION_SALT: &[u8] = b"sherd/v1";
/// HKDF info for the Ed25519 primary key seed.
pub const INFO_ROOT_PRIMARY: &[u8] = b"sherd/v1/root/primary/ed25519";
/// HKDF info for the Cv25519 encryption subkey scalar.
pub const INFO_ROOT_SUBKEY: &[u8] = b"sherd/v1/root/subkey/cv25519";
/// HMAC message prefix for the commitment to the root secret.
pub const COMMITMENT_PREFIX: &[u8] = b"sherd/v1/commitment\0";

/// A key-building step failed inside Sequoia, or its result and a second implementation's
/// differ ([`KeyError::disagreement`]); this indicates a bug, a fault or an unsupported build,
/// not bad input.
#[derive(Debug, thiserror::Error)]
#[error("building {what} failed: {reason}")]
pub struct KeyError {
    /// Which step.
    pub what: &'static str,
    /// Sequoia's error chain.
    pub reason: String,
    /// Set when the step failed because two implementations disagree
    /// (docs/dual-implementations.md): nothing from it may be used.
    pub disagreement: Option<Disagreement>,
}

impl KeyError {
    fn disagree(what: &'static str, d: Disagreement) -> KeyError {
        KeyError {
            what,
            reason: d.to_string(),
            disagreement: Some(d),
        }
    }
}

pub(crate) fn key_err(what: &'static str) -> impl Fn(openpgp::anyhow::Error) -> KeyError {
    move |e| KeyError {
        what,
        reason: format!("{e:#}"),
        disagreement: dual::disagreement_in(&e),
    }
}

/// The commitment to the root secret carried in every share envelope:
/// HMAC-SHA256(key = secret, "sherd/v1/commitment\0" || ceremony id). It binds shares to one
/// secret without revealing anything about it (the secret is 256 uniform bits).
pub fn commitment(secret: &RootSecret, ceremony_id: &str) -> [u8; 32] {
    *kdf::hmac_sha256(
        secret.expose_secret(),
        &[COMMITMENT_PREFIX, ceremony_id.as_bytes()],
    )
}

fn time_of(unix: u32) -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(u64::from(unix))
}

fn clamp(mut scalar: [u8; 32]) -> [u8; 32] {
    scalar[0] &= 248;
    scalar[31] &= 127;
    scalar[31] |= 64;
    scalar
}

/// Key flags and features every certificate we make carries.
fn features() -> Features {
    // SEIPDv1 only: readable by every OpenPGP implementation a holder may use later.
    Features::empty().set_seipdv1()
}

/// How [`build_cert`] checks its work against the second implementations.
struct CertChecks<'a> {
    /// Names the certificate in a disagreement: `the root`, `holder 2's location`.
    label: String,
    /// The second Ed25519, for the primary's public key (and signatures, below).
    second: &'a dyn SecondEd25519,
    /// When set, every self-signature is made through [`DualSigner`] and counted here.
    signatures: Option<&'a AtomicUsize>,
}

/// Builds a v4 certificate: Ed25519 primary (flags as given), one user ID, a Cv25519 encryption
/// subkey; all signatures dated `time_unix`. Both fingerprints are computed a second time
/// ([`dual::v4_fingerprint`], from public keys the second implementations derive from the
/// secrets) and must equal Sequoia's.
fn build_cert(
    primary_seed: &[u8; 32],
    primary_flags: KeyFlags,
    user_id: &str,
    subkey_scalar: &[u8; 32],
    time_unix: u32,
    checks: &CertChecks<'_>,
) -> Result<(Cert, Key<SecretParts, SubordinateRole>), KeyError> {
    let time = time_of(time_unix);
    let primary: Key<SecretParts, PrimaryRole> = Key4::import_secret_ed25519(primary_seed, time)
        .map_err(key_err("the Ed25519 primary key"))?
        .into();
    let subkey: Key<SecretParts, SubordinateRole> = Key4::import_secret_cv25519(
        subkey_scalar,
        HashAlgorithm::SHA256,
        SymmetricAlgorithm::AES128,
        time,
    )
    .map_err(key_err("the Cv25519 subkey"))?
    .into();
    let pair: KeyPair = primary
        .clone()
        .into_keypair()
        .map_err(key_err("the primary signer"))?;
    let mut signer: Box<dyn openpgp::crypto::Signer + Send + Sync + '_> = match checks.signatures {
        Some(count) => Box::new(DualSigner::new(pair, checks.second, count)),
        None => Box::new(pair),
    };
    let signer = &mut *signer;
    let primary_public = primary.parts_as_public();
    dual::check_fingerprint(
        || format!("{} primary key", checks.label),
        primary.fingerprint().as_bytes(),
        &dual::v4_fingerprint(&dual::ed25519_key_body(
            time_unix,
            &dual::ed25519_public(checks.second, primary_seed),
        )),
    )
    .map_err(|d| KeyError::disagree("the Ed25519 primary key", d))?;
    dual::check_fingerprint(
        || format!("{} encryption subkey", checks.label),
        subkey.fingerprint().as_bytes(),
        &dual::v4_fingerprint(&dual::cv25519_key_body(
            time_unix,
            &dual::x25519_public(subkey_scalar),
        )),
    )
    .map_err(|d| KeyError::disagree("the Cv25519 subkey", d))?;

    let direct = SignatureBuilder::new(SignatureType::DirectKey)
        .set_signature_creation_time(time)
        .and_then(|b| b.set_key_flags(primary_flags.clone()))
        .and_then(|b| b.set_features(features()))
        .and_then(|b| {
            b.set_hash_algo(HashAlgorithm::SHA512)
                .set_preferred_hash_algorithms(vec![HashAlgorithm::SHA512, HashAlgorithm::SHA256])
        })
        .and_then(|b| {
            b.set_preferred_symmetric_algorithms(vec![
                SymmetricAlgorithm::AES256,
                SymmetricAlgorithm::AES128,
            ])
        })
        .and_then(|b| b.sign_direct_key(signer, primary_public))
        .map_err(key_err("the direct-key signature"))?;
    let uid = UserID::from(user_id);
    let uid_sig = SignatureBuilder::new(SignatureType::PositiveCertification)
        .set_signature_creation_time(time)
        .and_then(|b| b.set_key_flags(primary_flags))
        .and_then(|b| b.set_features(features()))
        .and_then(|b| b.set_primary_userid(true))
        .and_then(|b| {
            b.set_hash_algo(HashAlgorithm::SHA512)
                .set_preferred_hash_algorithms(vec![HashAlgorithm::SHA512, HashAlgorithm::SHA256])
        })
        .and_then(|b| {
            b.set_preferred_symmetric_algorithms(vec![
                SymmetricAlgorithm::AES256,
                SymmetricAlgorithm::AES128,
            ])
        })
        .and_then(|b| b.sign_userid_binding(signer, primary_public, &uid))
        .map_err(key_err("the user ID binding"))?;
    let sub_sig = SignatureBuilder::new(SignatureType::SubkeyBinding)
        .set_signature_creation_time(time)
        .and_then(|b| {
            b.set_key_flags(
                KeyFlags::empty()
                    .set_transport_encryption()
                    .set_storage_encryption(),
            )
        })
        .and_then(|b| {
            b.set_hash_algo(HashAlgorithm::SHA512).sign_subkey_binding(
                signer,
                primary_public,
                &subkey,
            )
        })
        .map_err(key_err("the subkey binding"))?;
    let cert = Cert::try_from(vec![Packet::from(primary)])
        .and_then(|c| {
            c.insert_packets(vec![
                Packet::from(direct),
                Packet::from(uid),
                Packet::from(uid_sig),
                Packet::from(subkey.clone()),
                Packet::from(sub_sig),
            ])
        })
        .map(|(c, _)| c)
        .map_err(key_err("the certificate"))?;
    Ok((cert, subkey))
}

/// The user ID of a ceremony's root certificate.
pub fn root_user_id(ceremony_id: &str) -> String {
    format!("sherd root key ({ceremony_id})")
}

/// The root key: Ed25519 primary for certification and signing, Cv25519 encryption subkey.
/// Holds secret key material (inside Sequoia's protected memory); no Debug, no Clone.
///
/// Every signature it makes is checked against a second Ed25519 implementation
/// ([`dual::DualSigner`]), its derivation against a second HKDF and its fingerprints against a
/// second computation; [`RootKey::cross_checks`] counts them.
pub struct RootKey {
    cert: Cert,
    second: Arc<dyn SecondEd25519>,
    signatures: AtomicUsize,
    derivations: usize,
    fingerprints: usize,
}

/// What a root key's results were checked against, and how many times, so far.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CrossChecks {
    /// The second Ed25519's name and version.
    pub ed25519: &'static str,
    /// Signatures made and found byte-identical by both Ed25519 implementations (the
    /// certificate's self-signatures included).
    pub signatures: usize,
    /// HKDF-SHA256 outputs computed twice and found equal (2: the primary seed and the
    /// subkey scalar).
    pub derivations: usize,
    /// v4 fingerprints computed twice and found equal (2: primary key and subkey).
    pub fingerprints: usize,
}

impl RootKey {
    /// Derives the root certificate from the secret, the ceremony id (user ID only: it does not
    /// change the fingerprint) and the plan time.
    pub fn derive(
        secret: &RootSecret,
        ceremony_id: &str,
        time_unix: u32,
    ) -> Result<RootKey, KeyError> {
        Self::derive_with(secret, ceremony_id, time_unix, Arc::new(Ed25519Compact))
    }

    /// [`RootKey::derive`] with its signatures checked against `second` (a test gives a wrong
    /// one here; everything else uses [`Ed25519Compact`]). The HKDF outputs are checked
    /// against [`dual::hkdf_sha256`], the fingerprints against [`dual::v4_fingerprint`].
    pub fn derive_with(
        secret: &RootSecret,
        ceremony_id: &str,
        time_unix: u32,
        second: Arc<dyn SecondEd25519>,
    ) -> Result<RootKey, KeyError> {
        let mut primary_seed = Zeroizing::new([0u8; 32]);
        kdf::hkdf_sha256(
            secret.expose_secret(),
            DERIVATION_SALT,
            INFO_ROOT_PRIMARY,
            &mut primary_seed[..],
        );
        let mut sub = Zeroizing::new([0u8; 32]);
        kdf::hkdf_sha256(
            secret.expose_secret(),
            DERIVATION_SALT,
            INFO_ROOT_SUBKEY,
            &mut sub[..],
        );
        for (info, first) in [
            (INFO_ROOT_PRIMARY, &primary_seed[..]),
            (INFO_ROOT_SUBKEY, &sub[..]),
        ] {
            let again = dual::hkdf_sha256(secret.expose_secret(), DERIVATION_SALT, info, 32);
            // Secret bytes: compared without stopping at the first difference.
            let agree = again.is_some_and(|a| dual::same(&a, first));
            if !agree {
                return Err(KeyError::disagree("the root key", Disagreement::Hkdf));
            }
        }
        let sub = Zeroizing::new(clamp(*sub));
        let signatures = AtomicUsize::new(0);
        let (cert, _) = build_cert(
            &primary_seed,
            KeyFlags::empty().set_certification().set_signing(),
            &root_user_id(ceremony_id),
            &sub,
            time_unix,
            &CertChecks {
                label: "the root".into(),
                second: &*second,
                signatures: Some(&signatures),
            },
        )?;
        Ok(RootKey {
            cert,
            second,
            signatures,
            derivations: 2,
            fingerprints: 2,
        })
    }

    /// What this key's results were checked against so far (docs/dual-implementations.md).
    pub fn cross_checks(&self) -> CrossChecks {
        CrossChecks {
            ed25519: self.second.name(),
            signatures: self.signatures.load(Ordering::Relaxed),
            derivations: self.derivations,
            fingerprints: self.fingerprints,
        }
    }

    /// The fingerprint of the primary key.
    pub fn fingerprint(&self) -> Fingerprint {
        self.cert.fingerprint()
    }

    /// The public certificate.
    pub fn public_cert(&self) -> Cert {
        self.cert.clone().strip_secret_key_material()
    }

    /// The public certificate, ASCII-armored.
    pub fn armored_public_cert(&self) -> Vec<u8> {
        self.public_cert()
            .armored()
            .to_vec()
            .expect("serializing to memory cannot fail")
    }

    /// A signer for the primary key (signs envelopes, PIN files, the self-test, the
    /// transcript): the one way to the root key's secret, and every signature through it is
    /// checked against the second Ed25519 ([`DualSigner`]).
    pub(crate) fn signer(&self) -> DualSigner<'_> {
        let pair = self
            .cert
            .primary_key()
            .key()
            .clone()
            .parts_into_secret()
            .and_then(|k| k.into_keypair())
            .expect("derived keys always carry unencrypted secrets");
        DualSigner::new(pair, &*self.second, &self.signatures)
    }

    /// Signs `nonce` with the primary key and verifies the signature against the public
    /// certificate: proof that the key works before anything leaves the machine.
    pub fn self_test(&self, nonce: &[u8]) -> Result<(), KeyError> {
        let mut signer = self.signer();
        // Dated at the key's creation time: the machine clock is not trusted.
        let created = self.cert.primary_key().key().creation_time();
        let sig = SignatureBuilder::new(SignatureType::Binary)
            .set_signature_creation_time(created)
            .and_then(|b| b.sign_message(&mut signer, nonce))
            .map_err(key_err("the self-test signature"))?;
        let public = self.public_cert();
        sig.verify_message(public.primary_key().key(), nonce)
            .map_err(key_err("the self-test verification"))
    }
}

/// A holder's location key: a Cv25519 key that lives on the holder's location cards, inside a
/// small certificate (Ed25519 certification-only primary, discarded after the ceremony) so that
/// ordinary OpenPGP tools can encrypt to it and show its fingerprint.
pub struct LocationKey {
    holder: u8,
    scalar: Zeroizing<[u8; 32]>,
    subkey: Key<SecretParts, SubordinateRole>,
    cert: Cert,
}

/// The values a card needs to import a location key as its decryption key.
pub struct CardImport<'a> {
    /// The X25519 secret scalar in RFC 7748 (little-endian) order, already clamped.
    pub x25519_secret: &'a [u8; 32],
    /// The X25519 public key (RFC 7748 order).
    pub x25519_public: [u8; 32],
    /// The v4 fingerprint of the encryption subkey (the card stores it for the KDF).
    pub fingerprint: [u8; 20],
    /// The subkey's creation time (Unix seconds), which the card also stores.
    pub creation_time: u32,
    /// The same key as a Sequoia key, for adapters that work with Sequoia types.
    pub sequoia_key: &'a Key<SecretParts, SubordinateRole>,
}

/// The user ID of a location certificate.
pub fn location_user_id(ceremony_id: &str, holder: u8, name: &str) -> String {
    format!("sherd location key ({ceremony_id}, holder {holder}: {name})")
}

impl LocationKey {
    /// Draws a location key for holder `holder` from the DRBG.
    pub fn generate(
        rng: &mut dyn SecretRng,
        ceremony_id: &str,
        holder: u8,
        name: &str,
        time_unix: u32,
    ) -> Result<LocationKey, KeyError> {
        let mut primary_seed = Zeroizing::new([0u8; 32]);
        rng.fill(&mut primary_seed[..]);
        let mut scalar = Zeroizing::new([0u8; 32]);
        rng.fill(&mut scalar[..]);
        let scalar = Zeroizing::new(clamp(*scalar));
        let (cert, subkey) = build_cert(
            &primary_seed,
            KeyFlags::empty().set_certification(),
            &location_user_id(ceremony_id, holder, name),
            &scalar,
            time_unix,
            // Its self-signatures are not the root key's: not dual-signed, but its two
            // fingerprints (recorded, and stored on the cards) are checked.
            &CertChecks {
                label: format!("holder {holder}'s location"),
                second: &Ed25519Compact,
                signatures: None,
            },
        )?;
        // The primary's secret is not needed again: nothing more is certified with it.
        let cert = cert.strip_secret_key_material();
        Ok(LocationKey {
            holder,
            scalar,
            subkey,
            cert,
        })
    }

    /// v4 fingerprints of this key computed twice and found equal (2: the certificate's
    /// primary key and its encryption subkey).
    pub fn fingerprint_checks(&self) -> usize {
        2
    }

    /// The holder index this key belongs to.
    pub fn holder(&self) -> u8 {
        self.holder
    }

    /// The public location certificate.
    pub fn cert(&self) -> &Cert {
        &self.cert
    }

    /// The public encryption subkey.
    pub fn public_subkey(&self) -> Key<PublicParts, UnspecifiedRole> {
        self.subkey
            .clone()
            .parts_into_public()
            .role_into_unspecified()
    }

    /// What a card import needs.
    pub fn card_import(&self) -> CardImport<'_> {
        let mut public = [0u8; 32];
        if let openpgp::crypto::mpi::PublicKey::ECDH { q, .. } = self.subkey.mpis() {
            // Sequoia stores Curve25519 points with a 0x40 prefix.
            public.copy_from_slice(&q.value()[1..33]);
        }
        let mut fingerprint = [0u8; 20];
        fingerprint.copy_from_slice(self.subkey.fingerprint().as_bytes());
        let creation_time = u32::try_from(
            self.subkey
                .creation_time()
                .duration_since(UNIX_EPOCH)
                .map(|d| d.as_secs())
                .unwrap_or(0),
        )
        .unwrap_or(0);
        CardImport {
            x25519_secret: &self.scalar,
            x25519_public: public,
            fingerprint,
            creation_time,
            sequoia_key: &self.subkey,
        }
    }
}
