//! Witnesses sign with their own hardware: before the outputs are written, each witness's
//! personal OpenPGP card makes a detached signature over the exact bytes of `transcript.txt`,
//! stored as `witness-signatures/<k>.sig` (k: the witness's 1-based index in the plan). The
//! format is specified in docs/formats/witness-signatures.md.
//!
//! Driving it, between [`crate::ceremony::Verified::finish`] (the flow's `WriteFiles` effect)
//! and writing the files:
//!
//! ```
//! # fn walk(files: &mut Vec<ceremony::storage::OutputFile>,
//! #         card: &mut dyn ceremony::card::PersonalCard) -> Result<(), Box<dyn std::error::Error>> {
//! use ceremony::witness::WitnessSigning;
//! let mut signing = WitnessSigning::from_outputs(files)?; // or ::for_finished(&finished)
//! if signing.any_certificates() {
//!     // For each card a witness inserts; `None` from the PIN prompt gives up on this card.
//!     // The screen reads a changed PIN blind.
//!     let signed = signing.sign(card, &mut |_request| None)?;
//!     println!("signed by witness {} ({})", signed.witness, signed.name);
//! }
//! // Before writing: with require_witness_signatures, every witness has signed.
//! signing.check_complete()?;
//! files.extend(signing.output_files());
//! # Ok(()) }
//! ```

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use sequoia_openpgp as openpgp;

use openpgp::Packet;
use openpgp::parse::{PacketParser, PacketParserResult, Parse};
use openpgp::policy::{HashAlgoSecurity, Policy, StandardPolicy};
use openpgp::types::SignatureType;

use crate::card::{CardError, DEFAULT_USER_PIN, MIN_PIN_RETRIES, PersonalCard};
use crate::ceremony::{Finished, paths};
use crate::plan::{self, PersonalCert, Plan};
use crate::secret::Pin;
use crate::storage::OutputFile;

/// One witness's signature over the transcript, checked against their certificate.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WitnessSignature {
    /// The witness's index in the plan, 1-based.
    pub witness: usize,
    /// The witness's name, as in the plan.
    pub name: String,
    /// Serial of the card that signed (`MMMM:SSSSSSSS`).
    pub serial: String,
    /// Fingerprint of the witness's certificate the signature verifies against, upper-case hex.
    pub cert_fingerprint: String,
    /// Fingerprint of the signing key on the card, upper-case hex.
    pub key_fingerprint: String,
    /// The binary detached OpenPGP signature, the content of the signature file.
    pub signature: Vec<u8>,
}

impl WitnessSignature {
    /// The signature file, ready to be written with the other outputs.
    pub fn output_file(&self) -> OutputFile {
        OutputFile {
            path: paths::witness_signature(self.witness),
            bytes: self.signature.clone(),
        }
    }
}

/// What the caller is asked when the card refused the default PIN or could not be given it:
/// the PIN of this card, read blind (never echoed, never logged).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PinRequest {
    /// The witness whose card it is, 1-based.
    pub witness: usize,
    /// The witness's name.
    pub name: String,
    /// The card's serial.
    pub serial: String,
    /// User-PIN tries left on the card; at least [`MIN_PIN_RETRIES`] (else nothing is asked).
    pub retries_left: u8,
    /// Whether the card just refused a PIN (the default or one typed).
    pub after_wrong_pin: bool,
}

/// Why a card did not sign, or the signatures are not complete. Each names the card and, once
/// known, the witness.
#[derive(Debug, thiserror::Error, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum SignError {
    /// The card or reader failed (reading the card, or signing).
    #[error("card {serial}: {source}")]
    Card {
        /// The card's serial, or `?` if it could not be read.
        serial: String,
        /// The card's error.
        source: CardError,
    },
    /// The card has an empty signing slot: it is not anyone's personal card.
    #[error("card {serial} holds no signing key: insert the witness's own personal card")]
    NoSigningKey {
        /// The card's serial.
        serial: String,
    },
    /// The card's signing key is not a signing key of any witness's certificate in the plan.
    #[error(
        "card {serial}: its signing key {key} is not in any witness's certificate in the plan: insert a witness's own card (the plan's [[witness]] certs)"
    )]
    NotAWitnessCard {
        /// The card's serial.
        serial: String,
        /// The fingerprint of the card's signing key, upper-case hex.
        key: String,
    },
    /// The card belongs to a witness whose signature is already made.
    #[error(
        "card {serial} is witness {witness} ({name})'s, who has already signed: the next witness's card, please"
    )]
    AlreadySigned {
        /// The card's serial.
        serial: String,
        /// The witness's index, 1-based.
        witness: usize,
        /// The witness's name.
        name: String,
    },
    /// The card has too few PIN tries left to present a PIN safely; nothing was presented.
    #[error(
        "card {serial} of witness {witness} ({name}): only {retries_left} PIN tries left, at least {MIN_PIN_RETRIES} needed; no PIN was presented: the witness unblocks their card with its admin PIN or reset code at home"
    )]
    PinRetriesLow {
        /// The card's serial.
        serial: String,
        /// The witness's index, 1-based.
        witness: usize,
        /// The witness's name.
        name: String,
        /// User-PIN tries left.
        retries_left: u8,
    },
    /// The caller gave no PIN (the witness chose not to type it).
    #[error("card {serial} of witness {witness} ({name}): no PIN given, nothing signed")]
    NoPin {
        /// The card's serial.
        serial: String,
        /// The witness's index, 1-based.
        witness: usize,
        /// The witness's name.
        name: String,
    },
    /// The card returned a signature that does not verify against the witness's certificate.
    #[error(
        "card {serial} of witness {witness} ({name}): its signature does not verify against the witness's certificate ({reason}); the card or reader is faulty"
    )]
    BadSignature {
        /// The card's serial.
        serial: String,
        /// The witness's index, 1-based.
        witness: usize,
        /// The witness's name.
        name: String,
        /// Why the signature was refused.
        reason: String,
    },
    /// The plan requires every witness's signature and these have not signed.
    #[error(
        "the plan requires every witness's signature; not yet signed: {}",
        .missing.join(", ")
    )]
    Incomplete {
        /// Names of the witnesses who have not signed, in plan order.
        missing: Vec<String>,
    },
}

/// The outputs given to [`WitnessSigning::from_outputs`] are not a finished ceremony's.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[non_exhaustive]
pub enum OutputsError {
    /// A file every finished ceremony has is not among them.
    #[error("the outputs have no {0}: not a finished ceremony's outputs")]
    Missing(&'static str),
    /// `plan.toml` is not UTF-8.
    #[error("plan.toml in the outputs is not UTF-8")]
    PlanNotUtf8,
    /// `plan.toml` is not a valid plan.
    #[error("plan.toml in the outputs: {0}")]
    Plan(#[from] crate::plan::PlanError),
}

/// The witnesses' signatures over one finished transcript, collected card by card.
#[derive(Clone, Debug)]
pub struct WitnessSigning {
    plan: Plan,
    transcript: Vec<u8>,
    signed: Vec<WitnessSignature>,
}

impl WitnessSigning {
    /// Signatures over `transcript` (the exact bytes of `transcript.txt`) for the witnesses of
    /// `plan`.
    pub fn new(plan: Plan, transcript: Vec<u8>) -> Self {
        WitnessSigning {
            plan,
            transcript,
            signed: Vec::new(),
        }
    }

    /// Signatures over a finished ceremony's transcript: the bytes written as `transcript.txt`.
    pub fn for_finished(finished: &Finished) -> Self {
        Self::new(
            finished.plan().clone(),
            finished.transcript().to_text().into_bytes(),
        )
    }

    /// Signatures over the outputs a finished ceremony is about to write (what
    /// [`crate::flow::Effect::WriteFiles`] carries): the plan from `plan.toml` and the exact
    /// bytes of `transcript.txt` among them.
    pub fn from_outputs(files: &[OutputFile]) -> Result<Self, OutputsError> {
        let get = |path: &'static str| {
            files
                .iter()
                .find(|f| f.path == path)
                .map(|f| f.bytes.clone())
                .ok_or(OutputsError::Missing(path))
        };
        let plan_text =
            String::from_utf8(get(paths::PLAN)?).map_err(|_| OutputsError::PlanNotUtf8)?;
        let plan = Plan::parse(&plan_text)?;
        Ok(Self::new(plan, get(paths::TRANSCRIPT)?))
    }

    /// The plan whose witnesses sign.
    pub fn plan(&self) -> &Plan {
        &self.plan
    }

    /// The bytes being signed: `transcript.txt`.
    pub fn transcript(&self) -> &[u8] {
        &self.transcript
    }

    /// Whether any witness has a certificate (else no card can sign: skip the step).
    pub fn any_certificates(&self) -> bool {
        self.plan.witness_certs.iter().any(|c| !c.is_empty())
    }

    /// Whether the plan requires every witness's signature before anything is written.
    pub fn required(&self) -> bool {
        self.plan.require_witness_signatures
    }

    /// The signatures made so far, in the order they were made.
    pub fn signed(&self) -> &[WitnessSignature] {
        &self.signed
    }

    /// The witnesses who have not signed yet, (index, name) in plan order; `can_sign` tells
    /// whether they have a certificate (without one they cannot sign).
    pub fn unsigned(&self) -> Vec<(usize, String, bool)> {
        self.plan
            .witnesses
            .iter()
            .zip(&self.plan.witness_certs)
            .enumerate()
            .map(|(i, (name, certs))| (i + 1, name.clone(), !certs.is_empty()))
            .filter(|(k, _, _)| !self.signed.iter().any(|s| s.witness == *k))
            .collect()
    }

    /// With `require_witness_signatures`, every witness has signed; without it, always `Ok`.
    pub fn check_complete(&self) -> Result<(), SignError> {
        if !self.required() {
            return Ok(());
        }
        let missing: Vec<String> = self.unsigned().into_iter().map(|(_, n, _)| n).collect();
        if missing.is_empty() {
            Ok(())
        } else {
            Err(SignError::Incomplete { missing })
        }
    }

    /// The signature files, in witness order, to write with the other outputs.
    pub fn output_files(&self) -> Vec<OutputFile> {
        let mut s: Vec<&WitnessSignature> = self.signed.iter().collect();
        s.sort_by_key(|s| s.witness);
        s.into_iter().map(WitnessSignature::output_file).collect()
    }

    /// Has the inserted card sign the transcript: finds the witness whose certificate holds the
    /// card's signing key (refusing a card of no witness, or of one who already signed), tries
    /// the default user PIN `123456` when a refusal would still leave a try for the witness's
    /// own PIN, otherwise (and after a refusal) asks `ask_pin` (`None`: give up), never
    /// presents a PIN with fewer than [`MIN_PIN_RETRIES`] tries left, and checks the signature
    /// against the witness's certificate before keeping it.
    pub fn sign(
        &mut self,
        card: &mut dyn PersonalCard,
        ask_pin: &mut dyn FnMut(&PinRequest) -> Option<Pin>,
    ) -> Result<&WitnessSignature, SignError> {
        let serial = card
            .serial()
            .map_err(|source| SignError::Card {
                serial: "?".into(),
                source,
            })?
            .0;
        let card_err = |source| SignError::Card {
            serial: serial.clone(),
            source,
        };
        let key = card
            .signing_fingerprint()
            .map_err(card_err)?
            .ok_or_else(|| SignError::NoSigningKey {
                serial: serial.clone(),
            })?;
        let time = self.plan.time();
        let found = self
            .plan
            .witness_certs
            .iter()
            .enumerate()
            .find_map(|(i, certs)| {
                certs
                    .iter()
                    .find(|c| {
                        plan::signing_keys(&c.cert, time)
                            .iter()
                            .any(|k| k.fingerprint() == key)
                    })
                    .map(|c| (i + 1, c))
            });
        let Some((witness, cert)) = found else {
            return Err(SignError::NotAWitnessCard {
                serial,
                key: key.to_hex(),
            });
        };
        let name = self.plan.witnesses[witness - 1].clone();
        if self.signed.iter().any(|s| s.witness == witness) {
            return Err(SignError::AlreadySigned {
                serial,
                witness,
                name,
            });
        }
        let low = |retries_left| SignError::PinRetriesLow {
            serial: serial.clone(),
            witness,
            name: name.clone(),
            retries_left,
        };
        let mut retries = card.user_pin_retries().map_err(card_err)?;
        let mut after_wrong_pin = false;
        let mut signature = None;
        // The default PIN only when a refusal still leaves the guard's margin for the
        // witness's own PIN.
        if retries > MIN_PIN_RETRIES {
            let default = Pin::from_string(DEFAULT_USER_PIN.to_string());
            match card.sign_detached(&default, &cert.cert, time, &self.transcript) {
                Ok(sig) => signature = Some(sig),
                Err(CardError::WrongPin { retries_left }) => {
                    retries = retries_left;
                    after_wrong_pin = true;
                }
                Err(CardError::PinRetriesLow { retries_left, .. }) => {
                    return Err(low(retries_left));
                }
                Err(e) => return Err(card_err(e)),
            }
        }
        let signature = match signature {
            Some(s) => s,
            None => loop {
                if retries < MIN_PIN_RETRIES {
                    return Err(low(retries));
                }
                let request = PinRequest {
                    witness,
                    name: name.clone(),
                    serial: serial.clone(),
                    retries_left: retries,
                    after_wrong_pin,
                };
                let Some(pin) = ask_pin(&request) else {
                    return Err(SignError::NoPin {
                        serial,
                        witness,
                        name,
                    });
                };
                match card.sign_detached(&pin, &cert.cert, time, &self.transcript) {
                    Ok(sig) => break sig,
                    Err(CardError::WrongPin { retries_left }) => {
                        retries = retries_left;
                        after_wrong_pin = true;
                    }
                    Err(CardError::PinRetriesLow { retries_left, .. }) => {
                        return Err(low(retries_left));
                    }
                    Err(e) => return Err(card_err(e)),
                }
            },
        };
        let by = verify_signature(
            std::slice::from_ref(cert),
            &self.transcript,
            &signature,
            self.plan.time_unix,
        )
        .map_err(|reason| SignError::BadSignature {
            serial: serial.clone(),
            witness,
            name: name.clone(),
            reason,
        })?;
        self.signed.push(WitnessSignature {
            witness,
            name,
            serial,
            cert_fingerprint: by.cert_fingerprint,
            key_fingerprint: by.key_fingerprint,
            signature,
        });
        Ok(self.signed.last().expect("just pushed"))
    }
}

/// Whose key made a witness signature that verified.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VerifiedBy {
    /// The certificate's fingerprint, upper-case hex.
    pub cert_fingerprint: String,
    /// The signing key's fingerprint, upper-case hex.
    pub key_fingerprint: String,
}

/// Checks a witness signature file (docs/formats/witness-signatures.md): exactly one binary
/// OpenPGP signature packet (no armor), of type binary document, made at the plan time, with a
/// hash algorithm the standard policy accepts, that verifies over `transcript` with a live,
/// unrevoked signing key of one of `certs` at the plan time. The reason it does not, otherwise.
pub fn verify_signature(
    certs: &[PersonalCert],
    transcript: &[u8],
    signature: &[u8],
    time_unix: u32,
) -> Result<VerifiedBy, String> {
    // An OpenPGP packet's first byte has its top bit set; armor starts with '-'.
    if signature.first().is_none_or(|b| b & 0x80 == 0) {
        return Err("not a binary OpenPGP packet (ASCII armor or other data)".into());
    }
    let mut packets = Vec::new();
    let mut ppr = PacketParser::from_bytes(signature)
        .map_err(|e| format!("unreadable OpenPGP data: {e:#}"))?;
    while let PacketParserResult::Some(pp) = ppr {
        let (packet, next) = pp
            .next()
            .map_err(|e| format!("unreadable OpenPGP data: {e:#}"))?;
        packets.push(packet);
        ppr = next;
    }
    let sig = match packets.as_slice() {
        [Packet::Signature(s)] => s,
        [p] => return Err(format!("expected a signature packet, found {}", p.tag())),
        _ => {
            return Err(format!(
                "expected exactly one signature packet, found {} packets",
                packets.len()
            ));
        }
    };
    if sig.typ() != SignatureType::Binary {
        return Err(format!(
            "signature type {}, expected a binary document signature",
            sig.typ()
        ));
    }
    let time = UNIX_EPOCH + Duration::from_secs(u64::from(time_unix));
    if sig.signature_creation_time() != Some(time) {
        return Err(format!(
            "made at {}, not at the plan time {} (every signature of the ceremony carries the plan time)",
            sig.signature_creation_time()
                .map(unix)
                .map_or("an unknown time".into(), plan::rfc3339),
            plan::rfc3339(time_unix)
        ));
    }
    let policy = StandardPolicy::new();
    policy
        .signature(sig, HashAlgoSecurity::CollisionResistance)
        .map_err(|e| format!("refused by the standard policy: {e:#}"))?;
    for c in certs {
        for key in plan::signing_keys(&c.cert, time) {
            if sig.verify_message(&key, transcript).is_ok() {
                return Ok(VerifiedBy {
                    cert_fingerprint: c.fingerprint.to_hex(),
                    key_fingerprint: key.fingerprint().to_hex(),
                });
            }
        }
    }
    Err(format!(
        "no signing key of the witness's certificate{} {} verifies it over transcript.txt",
        if certs.len() == 1 { "" } else { "s" },
        certs
            .iter()
            .map(|c| c.fingerprint.to_hex())
            .collect::<Vec<_>>()
            .join(", ")
    ))
}

fn unix(t: SystemTime) -> u32 {
    t.duration_since(UNIX_EPOCH)
        .ok()
        .and_then(|d| u32::try_from(d.as_secs()).ok())
        .unwrap_or(u32::MAX)
}
