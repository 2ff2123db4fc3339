//! The few OpenPGP operations the ceremony needs, on top of Sequoia: encrypt-and-sign to given
//! keys, decrypt-and-verify through any `Decryptor` (a card or a software key), armor.

use std::cell::RefCell;
use std::io::{Read, Write};
use std::rc::Rc;
use std::time::SystemTime;

use sequoia_openpgp as openpgp;
use zeroize::Zeroizing;

use openpgp::Cert;
use openpgp::KeyHandle;
use openpgp::crypto::{self, KeyPair, SessionKey, mpi};
use openpgp::packet::key::{PublicParts, UnspecifiedRole};
use openpgp::packet::{Key, PKESK, SKESK};
use openpgp::parse::Parse;
use openpgp::parse::stream::{
    DecryptionHelper, DecryptorBuilder, MessageLayer, MessageStructure, VerificationHelper,
};
use openpgp::policy::StandardPolicy;
use openpgp::serialize::stream::{Armorer, Encryptor, LiteralWriter, Message, Recipient, Signer};
use openpgp::types::{Curve, Features, SymmetricAlgorithm};

/// Why a sealed message could not be opened.
#[derive(Debug, thiserror::Error, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum OpenError {
    /// The bytes are not a well-formed OpenPGP message (bad armor, bad packets, or data after
    /// the message); the parser's reason.
    #[error("not a readable OpenPGP message: {0}")]
    Malformed(String),
    /// None of the message's recipients is a key that was offered: the message belongs to
    /// another holder or another ceremony.
    #[error("the message is not encrypted to this key ({key}); it is someone else's")]
    NotForThisKey {
        /// Upper-case hex fingerprints of the decryption keys offered, joined by ", " (or the
        /// certificate's own fingerprint when it has no usable encryption key).
        key: String,
    },
    /// The card's decryption did not happen: wrong PIN, blocked, or the card or reader failed
    /// (a card pulled mid-way is one); its message. Not "refused": most of these are not the
    /// card's choice.
    #[error("the card could not decrypt: {0}")]
    Card(String),
    /// A recipient matched but the session key or the data did not decrypt: the message was
    /// altered, or the key is not the one it was encrypted to.
    #[error("decryption failed (the message was altered or the key is wrong): {0}")]
    DecryptionFailed(String),
    /// The message decrypted, but it is not exactly one good signature by the expected signer
    /// (the root key) around literal data; what was wrong.
    #[error("the signature does not check out: {0}")]
    BadSignature(String),
}

/// Encrypts `plaintext` to `recipients` (SEIPDv1, AES-256), signed by `signer` with creation
/// time `time`; returns the binary message.
pub(crate) fn encrypt_and_sign(
    plaintext: &[u8],
    recipients: &[Key<PublicParts, UnspecifiedRole>],
    signer: impl crypto::Signer + Send + Sync,
    time: SystemTime,
) -> openpgp::Result<Vec<u8>> {
    let mut out = Vec::new();
    {
        let message = Message::new(&mut out);
        let recipients = recipients.iter().map(|k| {
            // SEIPDv1 so every OpenPGP implementation a holder may use can read it.
            Recipient::new(Features::empty().set_seipdv1(), k.key_handle(), k)
        });
        let message = Encryptor::for_recipients(message, recipients)
            .symmetric_algo(SymmetricAlgorithm::AES256)
            .build()?;
        let message = Signer::new(message, signer)?.creation_time(time).build()?;
        let mut literal = LiteralWriter::new(message).date(time)?.build()?;
        literal.write_all(plaintext)?;
        literal.finalize()?;
    }
    Ok(out)
}

/// ASCII-armors bytes as `kind`.
pub(crate) fn armor(bytes: &[u8], kind: openpgp::armor::Kind) -> Vec<u8> {
    let mut out = Vec::new();
    {
        let message = Message::new(&mut out);
        let mut w = Armorer::new(message)
            .kind(kind)
            .build()
            .expect("armoring to memory");
        w.write_all(bytes).expect("writing to memory");
        w.finalize().expect("writing to memory");
    }
    out
}

/// Removes ASCII armor of the given kind (strictly: one block of that kind, nothing after it).
pub fn dearmor(text: &[u8], kind: openpgp::armor::Kind) -> Result<Vec<u8>, String> {
    let mut out = Vec::new();
    let mut reader =
        openpgp::armor::Reader::from_bytes(text, openpgp::armor::ReaderMode::Tolerant(Some(kind)));
    reader
        .read_to_end(&mut out)
        .map_err(|e| format!("bad ASCII armor: {e}"))?;
    if out.is_empty() {
        return Err("empty armored block".into());
    }
    Ok(out)
}

/// The key handles a message is encrypted to (from its PKESK packets), for auditors. The
/// message must have the sealed form of share-envelope.md and pin-file.md: v3 PKESK packets,
/// then one SEIPD packet of version 1, nothing else (the Python verifier checks the same, in
/// the same words; a malformed packet's reason may be worded differently).
pub fn message_recipients(message: &[u8]) -> Result<Vec<KeyHandle>, String> {
    use openpgp::Packet;
    use openpgp::packet::{SEIP, Tag};
    use openpgp::parse::{PacketParser, PacketParserResult};
    let mut out = Vec::new();
    let mut sealed = false;
    let mut ppr = PacketParser::from_bytes(message).map_err(|e| format!("{e:#}"))?;
    let mut i = 0usize;
    while let PacketParserResult::Some(mut pp) = ppr {
        i += 1;
        // A PKESK or SEIPD of a version Sequoia does not read comes as an unknown packet, its
        // body rewound: the version is its first byte.
        let unread = match &pp.packet {
            Packet::Unknown(u) if matches!(u.tag(), Tag::PKESK | Tag::SEIP) => Some(u.tag()),
            _ => None,
        };
        if let Some(tag) = unread {
            let version = pp
                .buffer_unread_content()
                .ok()
                .and_then(|b| b.first().copied());
            let v = version.map_or_else(|| "?".to_string(), |v| v.to_string());
            match tag {
                Tag::PKESK if !sealed && version != Some(3) => {
                    return Err(format!("PKESK version {v}: only v3 is read"));
                }
                Tag::SEIP if !out.is_empty() && !sealed && version != Some(1) => {
                    return Err(format!("SEIPD version {v}, expected 1"));
                }
                _ => {}
            }
        }
        match &pp.packet {
            Packet::PKESK(PKESK::V3(p)) if !sealed => {
                out.push(p.recipient().ok_or("anonymous recipient")?.into());
            }
            Packet::PKESK(p) if !sealed => {
                return Err(format!("PKESK version {}: only v3 is read", p.version()));
            }
            Packet::SEIP(SEIP::V1(_)) if !out.is_empty() && !sealed => sealed = true,
            Packet::SEIP(s) if !out.is_empty() && !sealed => {
                return Err(format!("SEIPD version {}, expected 1", s.version()));
            }
            other => {
                return Err(format!(
                    "not the sealed form (PKESK packets, then one SEIPD v1 packet): packet {i} \
                     has tag {}",
                    u8::from(other.tag())
                ));
            }
        }
        // Siblings only: the encrypted data's content is not parsed.
        let (_, next) = pp.next().map_err(|e| format!("{e:#}"))?;
        ppr = next;
    }
    if !sealed {
        return Err("not the sealed form: no SEIPD packet after the PKESK packets".into());
    }
    Ok(out)
}

/// What the helper learned, shared with the caller because Sequoia consumes the helper when
/// building the decryptor fails.
#[derive(Default)]
struct Diag {
    signature_problem: Option<String>,
    matched_recipient: bool,
}

struct Helper<'a> {
    decryptors: Vec<&'a mut dyn crypto::Decryptor>,
    signer: &'a Cert,
    diag: Rc<RefCell<Diag>>,
}

impl VerificationHelper for Helper<'_> {
    fn get_certs(&mut self, _ids: &[KeyHandle]) -> openpgp::Result<Vec<Cert>> {
        Ok(vec![self.signer.clone()])
    }

    fn check(&mut self, structure: MessageStructure) -> openpgp::Result<()> {
        let mut layers = structure.into_iter();
        let problem = match (layers.next(), layers.next(), layers.next()) {
            (
                Some(MessageLayer::Encryption { .. }),
                Some(MessageLayer::SignatureGroup { results }),
                None,
            ) => {
                if results.len() != 1 {
                    Some(format!(
                        "expected exactly one signature, found {}",
                        results.len()
                    ))
                } else {
                    results.iter().find_map(|r| match r {
                        Ok(good) if good.ka.cert().fingerprint() == self.signer.fingerprint() => {
                            None
                        }
                        Ok(good) => Some(format!(
                            "signed by {}, expected {}",
                            good.ka.cert().fingerprint(),
                            self.signer.fingerprint()
                        )),
                        Err(e) => Some(e.to_string()),
                    })
                }
            }
            _ => Some("expected exactly: encryption, one signature, literal data".into()),
        };
        match problem {
            None => Ok(()),
            Some(p) => {
                self.diag.borrow_mut().signature_problem = Some(p.clone());
                Err(openpgp::anyhow::anyhow!(p))
            }
        }
    }
}

impl DecryptionHelper for Helper<'_> {
    fn decrypt(
        &mut self,
        pkesks: &[PKESK],
        _skesks: &[SKESK],
        sym_algo: Option<SymmetricAlgorithm>,
        decrypt: &mut dyn FnMut(Option<SymmetricAlgorithm>, &SessionKey) -> bool,
    ) -> openpgp::Result<Option<Cert>> {
        for pkesk in pkesks {
            let Some(recipient) = pkesk.recipient() else {
                continue;
            };
            for d in self.decryptors.iter_mut() {
                if !recipient.aliases(d.public().key_handle()) {
                    continue;
                }
                self.diag.borrow_mut().matched_recipient = true;
                if let Some((algo, sk)) = pkesk.decrypt(&mut **d, sym_algo)
                    && decrypt(algo, &sk)
                {
                    return Ok(None);
                }
            }
        }
        Err(openpgp::anyhow::anyhow!(
            "no session key could be decrypted"
        ))
    }
}

/// The decryptor of a holder whose personal key is held in software (a rehearsal's throwaway
/// holders, a test): the first transport-encryption subkey of `tsk` with its secret. `None` if
/// it has no such key or the secret is encrypted.
pub fn software_decryptor(tsk: &Cert) -> Option<KeyPair> {
    let policy = StandardPolicy::new();
    tsk.keys()
        .with_policy(&policy, None)
        .for_transport_encryption()
        .secret()
        .next()?
        .key()
        .clone()
        .into_keypair()
        .ok()
}

/// A Sequoia `Decryptor` for a Cv25519 encryption key whose X25519 operation happens elsewhere,
/// on a card: `ecdh` is given the sender's bare ephemeral point and returns the shared secret.
/// The one place that unwraps the OpenPGP point encoding, for the ceremony and `cards` alike.
pub struct EcdhDecryptor<F> {
    public: Key<PublicParts, UnspecifiedRole>,
    ecdh: F,
}

impl<F> EcdhDecryptor<F>
where
    F: FnMut(&[u8; 32]) -> openpgp::Result<crypto::mem::Protected>,
{
    /// A decryptor for the Cv25519 encryption key `public`; `ecdh` receives the sender's bare
    /// 32-byte ephemeral point and returns the 32-byte X25519 shared secret.
    pub fn new(public: Key<PublicParts, UnspecifiedRole>, ecdh: F) -> Self {
        EcdhDecryptor { public, ecdh }
    }
}

impl<F> crypto::Decryptor for EcdhDecryptor<F>
where
    F: FnMut(&[u8; 32]) -> openpgp::Result<crypto::mem::Protected>,
{
    fn public(&self) -> &Key<PublicParts, UnspecifiedRole> {
        &self.public
    }

    fn decrypt(
        &mut self,
        ciphertext: &mpi::Ciphertext,
        plaintext_len: Option<usize>,
    ) -> openpgp::Result<SessionKey> {
        let (
            mpi::Ciphertext::ECDH { e, .. },
            mpi::PublicKey::ECDH {
                curve: Curve::Cv25519,
                ..
            },
        ) = (ciphertext, self.public.mpis())
        else {
            return Err(openpgp::Error::InvalidOperation(
                "a card decrypts Cv25519 ECDH messages only".into(),
            )
            .into());
        };
        // The card wants the bare point; OpenPGP prefixes it with 0x40.
        let point: &[u8; 32] = match e.value() {
            [0x40, rest @ ..] => rest.try_into().ok(),
            _ => None,
        }
        .ok_or_else(|| {
            openpgp::Error::MalformedPacket(format!(
                "a Cv25519 ephemeral key is 0x40 and 32 bytes, this one is {} bytes",
                e.value().len()
            ))
        })?;
        let shared = (self.ecdh)(point)?;
        crypto::ecdh::decrypt_unwrap(&self.public, &shared, ciphertext, plaintext_len)
    }
}

/// A shared slot a card-backed decryptor writes its error into (Sequoia only reports "could not
/// decrypt"; the operator needs to know the card said "wrong PIN").
pub(crate) type CardErrorSlot = Rc<RefCell<Option<String>>>;

/// Decrypts a message with one of `decryptors` and checks that it carries exactly one good
/// signature from `signer`'s certificate, valid at `time`.
pub(crate) fn decrypt_and_verify<'a>(
    message: &[u8],
    decryptors: Vec<&'a mut dyn crypto::Decryptor>,
    signer: &'a Cert,
    time: SystemTime,
    card_error: &CardErrorSlot,
) -> Result<Zeroizing<Vec<u8>>, OpenError> {
    let keys: Vec<String> = decryptors
        .iter()
        .map(|d| d.public().fingerprint().to_hex())
        .collect();
    let policy = StandardPolicy::new();
    let diag = Rc::new(RefCell::new(Diag::default()));
    let helper = Helper {
        decryptors,
        signer,
        diag: diag.clone(),
    };
    let classify = |e: String| -> OpenError {
        let d = diag.borrow();
        if let Some(c) = card_error.borrow().clone() {
            OpenError::Card(c)
        } else if let Some(p) = &d.signature_problem {
            OpenError::BadSignature(p.clone())
        } else if !d.matched_recipient {
            match message_recipients(message) {
                Ok(_) => OpenError::NotForThisKey {
                    key: keys.join(", "),
                },
                Err(_) => OpenError::Malformed(e),
            }
        } else {
            OpenError::DecryptionFailed(e)
        }
    };
    let builder = DecryptorBuilder::from_bytes(message)
        .map_err(|e| OpenError::Malformed(format!("{e:#}")))?;
    let mut decryptor = builder
        .with_policy(&policy, time, helper)
        .map_err(|e| classify(format!("{e:#}")))?;
    let mut plaintext = Zeroizing::new(Vec::new());
    decryptor
        .read_to_end(&mut plaintext)
        .map_err(|e| classify(e.to_string()))?;
    if !decryptor.message_processed() {
        return Err(OpenError::Malformed(
            "trailing data after the message".into(),
        ));
    }
    Ok(plaintext)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::keys::{LocationKey, RootKey};
    use crate::secret::RootSecret;
    use rand_chacha::ChaCha20Rng;
    use rand_core::SeedableRng;

    /// A message as sherd seals one: to a location key's subkey, signed by the root key (one
    /// v3 PKESK, one SEIPD v1).
    fn sealed() -> Vec<u8> {
        let time = 1_795_510_800;
        let root = RootKey::derive(&RootSecret::from_slice(&[7; 32]).unwrap(), "t", time).unwrap();
        let mut rng = ChaCha20Rng::from_seed([1; 32]);
        let location = LocationKey::generate(&mut rng, "t", 1, "A", time).unwrap();
        let at = std::time::UNIX_EPOCH + std::time::Duration::from_secs(time.into());
        encrypt_and_sign(b"x", &[location.public_subkey()], root.signer(), at).unwrap()
    }

    /// Where the first packet (the PKESK, one-byte new-format length) ends.
    fn pkesk_end(m: &[u8]) -> usize {
        assert_eq!(m[0], 0xC1, "a new-format PKESK first");
        assert!(m[1] < 192, "a one-byte length");
        2 + usize::from(m[1])
    }

    #[test]
    fn only_the_sealed_form_is_read_in_the_python_verifiers_words() {
        let m = sealed();
        assert_eq!(message_recipients(&m).unwrap().len(), 1);
        let form = "not the sealed form (PKESK packets, then one SEIPD v1 packet)";

        let mut marker = m.clone();
        marker.extend_from_slice(&[0xCA, 3, b'P', b'G', b'P']);
        assert_eq!(
            message_recipients(&marker).unwrap_err(),
            format!("{form}: packet 3 has tag 10")
        );
        let end = pkesk_end(&m);
        assert_eq!(
            message_recipients(&m[end..]).unwrap_err(),
            format!("{form}: packet 1 has tag 18")
        );
        assert_eq!(
            message_recipients(&m[..end]).unwrap_err(),
            "not the sealed form: no SEIPD packet after the PKESK packets"
        );
        let mut v5 = m.clone();
        v5[2] = 5;
        assert_eq!(
            message_recipients(&v5).unwrap_err(),
            "PKESK version 5: only v3 is read"
        );
        let mut seipd3 = m.clone();
        assert_eq!(seipd3[end] & 0x3F, 18, "the SEIPD next");
        // Its body starts after the new-format length (RFC 9580, 4.2.1).
        let body = end
            + match seipd3[end + 1] {
                0..=191 => 2,
                192..=223 => 3,
                255 => 6,
                // A partial body length: the first chunk starts right after it.
                _ => 2,
            };
        seipd3[body] = 3;
        assert_eq!(
            message_recipients(&seipd3).unwrap_err(),
            "SEIPD version 3, expected 1"
        );
    }
}
