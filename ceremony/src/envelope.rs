//! The share envelope: one share with the facts needed to recombine it safely, encrypted to the
//! holder's location key and signed by the root key. Format: docs/formats/share-envelope.md.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use sequoia_openpgp as openpgp;
use zeroize::Zeroizing;

use openpgp::Cert;

use crate::card::LocationCard;
use crate::hex;
use crate::keys::{KeyError, RootKey, key_err};
use crate::pgp::{self, OpenError};
use crate::secret::{Pin, ShareBytes};

/// First bytes of every envelope plaintext.
pub const MAGIC: &[u8; 8] = b"SHERDENV";
/// The envelope format version this crate writes and reads.
pub const VERSION: u8 = 1;

/// The public part of an envelope: everything but the share.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EnvelopeHeader {
    /// Ceremony id (as in the plan).
    pub ceremony_id: String,
    /// Holder index = the share's x coordinate, 1..=count.
    pub index: u8,
    /// Threshold M.
    pub threshold: u8,
    /// Number of shares N.
    pub count: u8,
    /// The root key's creation time = the plan time (Unix seconds); with the secret it fixes
    /// the root fingerprint.
    pub key_time: u32,
    /// The canonical plan hash.
    pub plan_hash: [u8; 32],
    /// Commitment to the root secret ([`crate::keys::commitment`]).
    pub commitment: [u8; 32],
    /// The root certificate's fingerprint (20 bytes for v4).
    pub root_fingerprint: Vec<u8>,
}

/// A decrypted share envelope. Holds a share: no Debug, no Clone.
pub struct Envelope {
    /// The public facts.
    pub header: EnvelopeHeader,
    /// The share (x || y); x equals `header.index`.
    pub share: ShareBytes,
}

/// Why envelope bytes were refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[non_exhaustive]
pub enum EnvelopeError {
    /// The plaintext does not start with [`MAGIC`] (or is shorter than it): not an envelope.
    #[error("not a sherd share envelope (bad magic)")]
    BadMagic,
    /// The version byte is not [`VERSION`]; the version found.
    #[error("envelope version {0} is not supported (this build reads version {VERSION})")]
    UnsupportedVersion(u8),
    /// The plaintext ends inside a field.
    #[error("envelope truncated in field {field}")]
    Truncated {
        /// Name of the field that was cut short, e.g. `plan_hash`.
        field: &'static str,
    },
    /// Bytes follow the share, the last field.
    #[error("{count} unexpected bytes after the envelope")]
    TrailingBytes {
        /// Number of extra bytes.
        count: usize,
    },
    /// A field's value is out of range or inconsistent with another (ceremony id, index,
    /// threshold, fingerprint length, share).
    #[error("invalid field {field}: {reason}")]
    InvalidField {
        /// Name of the offending field, e.g. `index`.
        field: &'static str,
        /// What is wrong with its value.
        reason: String,
    },
}

struct Reader<'a> {
    bytes: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize, field: &'static str) -> Result<&'a [u8], EnvelopeError> {
        let end = self.pos.checked_add(n).filter(|&e| e <= self.bytes.len());
        let end = end.ok_or(EnvelopeError::Truncated { field })?;
        let out = &self.bytes[self.pos..end];
        self.pos = end;
        Ok(out)
    }

    fn byte(&mut self, field: &'static str) -> Result<u8, EnvelopeError> {
        Ok(self.take(1, field)?[0])
    }
}

fn invalid(field: &'static str, reason: impl Into<String>) -> EnvelopeError {
    EnvelopeError::InvalidField {
        field,
        reason: reason.into(),
    }
}

impl Envelope {
    /// Encodes the envelope plaintext (zeroized when dropped: it contains the share).
    pub fn encode(&self) -> Zeroizing<Vec<u8>> {
        let h = &self.header;
        let share = self.share.expose_secret();
        let mut out = Zeroizing::new(Vec::with_capacity(128 + share.len()));
        out.extend_from_slice(MAGIC);
        out.push(VERSION);
        out.push(u8::try_from(h.ceremony_id.len()).expect("validated id length"));
        out.extend_from_slice(h.ceremony_id.as_bytes());
        out.push(h.index);
        out.push(h.threshold);
        out.push(h.count);
        out.extend_from_slice(&h.key_time.to_be_bytes());
        out.extend_from_slice(&h.plan_hash);
        out.extend_from_slice(&h.commitment);
        out.push(u8::try_from(h.root_fingerprint.len()).expect("fingerprint is 20 or 32 bytes"));
        out.extend_from_slice(&h.root_fingerprint);
        out.push(u8::try_from(share.len()).expect("share is 33 bytes"));
        out.extend_from_slice(share);
        out
    }

    /// Decodes and validates envelope plaintext.
    pub fn decode(bytes: &[u8]) -> Result<Envelope, EnvelopeError> {
        let mut r = Reader { bytes, pos: 0 };
        if r.take(8, "magic").map_err(|_| EnvelopeError::BadMagic)? != MAGIC {
            return Err(EnvelopeError::BadMagic);
        }
        let version = r.byte("version")?;
        if version != VERSION {
            return Err(EnvelopeError::UnsupportedVersion(version));
        }
        let id_len = r.byte("ceremony_id length")?;
        let id = r.take(usize::from(id_len), "ceremony_id")?;
        let id = std::str::from_utf8(id).map_err(|_| invalid("ceremony_id", "not UTF-8"))?;
        crate::plan::check_ceremony_id(id).map_err(|e| invalid("ceremony_id", e.to_string()))?;
        let index = r.byte("index")?;
        let threshold = r.byte("threshold")?;
        let count = r.byte("count")?;
        if index == 0 || index > count {
            return Err(invalid("index", format!("{index} is not in 1..={count}")));
        }
        if threshold == 0 || threshold > count {
            return Err(invalid(
                "threshold",
                format!("{threshold} is not in 1..={count}"),
            ));
        }
        let key_time = u32::from_be_bytes(r.take(4, "key_time")?.try_into().expect("4 bytes"));
        let plan_hash: [u8; 32] = r.take(32, "plan_hash")?.try_into().expect("32 bytes");
        let commitment: [u8; 32] = r.take(32, "commitment")?.try_into().expect("32 bytes");
        let fpr_len = r.byte("root_fingerprint length")?;
        if fpr_len != 20 && fpr_len != 32 {
            return Err(invalid(
                "root_fingerprint",
                format!("length {fpr_len}, expected 20 (v4) or 32 (v6)"),
            ));
        }
        let root_fingerprint = r.take(usize::from(fpr_len), "root_fingerprint")?.to_vec();
        let share_len = r.byte("share length")?;
        if share_len < 2 {
            return Err(invalid("share", "shorter than x byte plus one y byte"));
        }
        let share = r.take(usize::from(share_len), "share")?;
        if share[0] != index {
            return Err(invalid(
                "share",
                format!("x = {} but index = {index}", share[0]),
            ));
        }
        if r.pos != bytes.len() {
            return Err(EnvelopeError::TrailingBytes {
                count: bytes.len() - r.pos,
            });
        }
        Ok(Envelope {
            header: EnvelopeHeader {
                ceremony_id: id.to_string(),
                index,
                threshold,
                count,
                key_time,
                plan_hash,
                commitment,
                root_fingerprint,
            },
            share: ShareBytes::from_slice(share),
        })
    }

    /// The root fingerprint as upper-case hex.
    pub fn root_fingerprint_hex(&self) -> String {
        hex::encode_upper(&self.header.root_fingerprint)
    }
}

/// Encrypts the envelope to `location_cert`'s encryption subkey and signs it with the root key;
/// returns the binary OpenPGP message.
pub fn seal(
    envelope: &Envelope,
    root: &RootKey,
    location_cert: &Cert,
) -> Result<Vec<u8>, KeyError> {
    let time = UNIX_EPOCH + Duration::from_secs(u64::from(envelope.header.key_time));
    let keys = crate::plan::encryption_keys(location_cert, time);
    if keys.is_empty() {
        return Err(KeyError {
            what: "the share message",
            reason: "location certificate has no encryption key".into(),
            disagreement: None,
        });
    }
    pgp::encrypt_and_sign(&envelope.encode(), &keys, root.signer(), time)
        .map_err(key_err("the share message"))
}

/// The reference time for verifying messages signed by a root certificate: its creation time
/// (= the plan time), because the machine clock is not trusted.
pub(crate) fn reference_time(root_cert: &Cert) -> SystemTime {
    root_cert.primary_key().key().creation_time() + Duration::from_secs(1)
}

/// Decrypts a sealed share with a card holding the location key of `location_cert`, verifies
/// the root signature, and decodes the envelope.
pub fn open_with_card(
    message: &[u8],
    card: &mut dyn LocationCard,
    user_pin: &Pin,
    location_cert: &Cert,
    root_cert: &Cert,
) -> Result<Envelope, OpenShareError> {
    let time = reference_time(root_cert);
    let keys = crate::plan::encryption_keys(location_cert, time);
    let public = keys.into_iter().next().ok_or_else(|| {
        OpenShareError::Open(OpenError::NotForThisKey {
            key: location_cert.fingerprint().to_hex(),
        })
    })?;
    let slot = pgp::CardErrorSlot::default();
    // Sequoia only reports "could not decrypt"; the slot keeps what the card said.
    let mut decryptor = pgp::EcdhDecryptor::new(public, |point| {
        card.ecdh(user_pin, point)
            .map(|shared| shared.expose_secret()[..].into())
            .map_err(|e| {
                *slot.borrow_mut() = Some(e.to_string());
                openpgp::anyhow::anyhow!(e)
            })
    });
    let plaintext = pgp::decrypt_and_verify(message, vec![&mut decryptor], root_cert, time, &slot)?;
    Ok(Envelope::decode(&plaintext)?)
}

/// Why a sealed share could not be opened.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum OpenShareError {
    /// Decryption or the root signature check failed (wrong card or PIN, another holder's
    /// share, a message not signed by this root key).
    #[error(transparent)]
    Open(#[from] OpenError),
    /// The message decrypted and its signature checked out, but the plaintext is not a valid
    /// envelope.
    #[error("the decrypted envelope is invalid: {0}")]
    Envelope(#[from] EnvelopeError),
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn arb_envelope() -> impl Strategy<Value = (EnvelopeHeader, Vec<u8>)> {
        (
            "[a-z0-9][a-z0-9-]{0,63}",
            1u8..=255,
            any::<u32>(),
            proptest::array::uniform32(any::<u8>()),
            proptest::array::uniform32(any::<u8>()),
            prop_oneof![
                proptest::collection::vec(any::<u8>(), 20),
                proptest::collection::vec(any::<u8>(), 32)
            ],
            proptest::collection::vec(any::<u8>(), 1..64),
        )
            .prop_flat_map(|(id, count, key_time, plan_hash, commitment, fpr, y)| {
                (1..=count, 1..=count).prop_map(move |(index, threshold)| {
                    let mut share = vec![index];
                    share.extend_from_slice(&y);
                    (
                        EnvelopeHeader {
                            ceremony_id: id.clone(),
                            index,
                            threshold,
                            count,
                            key_time,
                            plan_hash,
                            commitment,
                            root_fingerprint: fpr.clone(),
                        },
                        share,
                    )
                })
            })
    }

    proptest! {
        #[test]
        fn round_trip((header, share) in arb_envelope()) {
            let env = Envelope { header: header.clone(), share: ShareBytes::from_slice(&share) };
            let bytes = env.encode();
            let back = Envelope::decode(&bytes).unwrap();
            prop_assert_eq!(back.header, header);
            prop_assert_eq!(back.share.expose_secret(), &share[..]);
        }

        #[test]
        fn every_truncation_is_rejected((header, share) in arb_envelope(), cut in any::<prop::sample::Index>()) {
            let env = Envelope { header, share: ShareBytes::from_slice(&share) };
            let bytes = env.encode();
            let cut = cut.index(bytes.len());
            prop_assert!(Envelope::decode(&bytes[..cut]).is_err());
        }

        #[test]
        fn trailing_bytes_are_rejected((header, share) in arb_envelope(), extra in proptest::collection::vec(any::<u8>(), 1..8)) {
            let env = Envelope { header, share: ShareBytes::from_slice(&share) };
            let mut bytes = env.encode().to_vec();
            bytes.extend_from_slice(&extra);
            prop_assert_eq!(Envelope::decode(&bytes).err().unwrap(), EnvelopeError::TrailingBytes { count: extra.len() });
        }

        #[test]
        fn decode_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..200)) {
            let _ = Envelope::decode(&bytes);
        }
    }

    #[test]
    fn specific_rejections() {
        let header = EnvelopeHeader {
            ceremony_id: "test".into(),
            index: 2,
            threshold: 2,
            count: 3,
            key_time: 1_800_000_000,
            plan_hash: [1; 32],
            commitment: [2; 32],
            root_fingerprint: vec![3; 20],
        };
        let mut share = vec![2u8];
        share.extend_from_slice(&[9; 32]);
        let env = Envelope {
            header,
            share: ShareBytes::from_slice(&share),
        };
        let good = env.encode().to_vec();
        assert!(Envelope::decode(&good).is_ok());

        let mut b = good.clone();
        b[0] ^= 1;
        assert_eq!(Envelope::decode(&b).err().unwrap(), EnvelopeError::BadMagic);
        let mut b = good.clone();
        b[8] = 2;
        assert_eq!(
            Envelope::decode(&b).err().unwrap(),
            EnvelopeError::UnsupportedVersion(2)
        );
        // index field sits after magic, version, id length and "test".
        let at_index = 8 + 1 + 1 + 4;
        let mut b = good.clone();
        b[at_index] = 0;
        assert!(matches!(
            Envelope::decode(&b).err().unwrap(),
            EnvelopeError::InvalidField { field: "index", .. }
        ));
        let mut b = good.clone();
        b[at_index] = 1; // share x stays 2
        assert!(matches!(
            Envelope::decode(&b).err().unwrap(),
            EnvelopeError::InvalidField { field: "share", .. }
        ));
        let mut b = good.clone();
        b[at_index + 1] = 4; // threshold above count
        assert!(matches!(
            Envelope::decode(&b).err().unwrap(),
            EnvelopeError::InvalidField {
                field: "threshold",
                ..
            }
        ));
        let mut b = good.clone();
        b[10] = b'A'; // upper case in the ceremony id
        assert!(matches!(
            Envelope::decode(&b).err().unwrap(),
            EnvelopeError::InvalidField {
                field: "ceremony_id",
                ..
            }
        ));
    }
}
