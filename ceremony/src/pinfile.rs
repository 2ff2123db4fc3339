//! PIN files: the PINs of a holder's location cards, encrypted to the holder's and the backup
//! holder's personal certificates and signed by the root key. Format: docs/formats/pin-file.md.

use sequoia_openpgp as openpgp;
use zeroize::Zeroizing;

use openpgp::Cert;
use openpgp::crypto;

use crate::card::CardSerial;
use crate::envelope::reference_time;
use crate::keys::{KeyError, RootKey, key_err};
use crate::pgp::{self, OpenError};
use crate::secret::{CardPins, Pin};

/// The first line of every PIN file plaintext.
pub const HEADER: &str = "sherd-pins/1";

/// One card's entry.
pub struct PinEntry {
    /// Card number within the holder, 1-based.
    pub card: u8,
    /// The card's serial.
    pub serial: CardSerial,
    /// Its PINs.
    pub pins: CardPins,
}

/// A PIN file's contents. Holds PINs: no Debug, no Clone.
pub struct PinFile {
    /// Ceremony id, as in the plan.
    pub ceremony_id: String,
    /// Holder index, 1-based, as in the plan.
    pub holder: u8,
    /// Holder name, as in the plan.
    pub name: String,
    /// One entry per location card of the holder (at least one); the ceremony writes them
    /// card 1 first.
    pub cards: Vec<PinEntry>,
}

/// A decimal number in its one canonical spelling (no sign, no leading zeros), so that every
/// accepted plaintext has exactly one encoding.
fn canonical_u8(text: &str) -> Option<u8> {
    let n = text.parse::<u8>().ok()?;
    (n.to_string() == text).then_some(n)
}

/// Why a PIN file plaintext was refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum PinFileError {
    /// The plaintext is not a well-formed PIN file.
    #[error("line {line}: {reason}")]
    BadLine {
        /// Line number, 1-based; 0 when the fault is not on one line (not UTF-8, no final
        /// newline, no `end=` line).
        line: usize,
        /// What is wrong with it.
        reason: String,
    },
    /// The armored message could not be opened: not for this key, wrong card or PIN, or the
    /// root signature does not check out.
    #[error(transparent)]
    Open(#[from] OpenError),
}

impl PinFile {
    /// The plaintext (zeroized on drop).
    pub fn encode(&self) -> Zeroizing<String> {
        // Reserved up front, and PINs pushed piece by piece: neither a reallocation nor a
        // format! temporary may leave an unzeroized copy of a PIN in freed memory.
        let mut s = Zeroizing::new(String::with_capacity(256 + self.cards.len() * 320));
        s.push_str(HEADER);
        s.push('\n');
        s.push_str(&format!(
            "ceremony={}\nholder={}\nname={}\n",
            self.ceremony_id, self.holder, self.name
        ));
        for e in &self.cards {
            s.push_str(&format!("card={} serial={} user=", e.card, e.serial.0));
            s.push_str(e.pins.user.expose_secret());
            s.push_str(" admin=");
            s.push_str(e.pins.admin.expose_secret());
            s.push('\n');
        }
        // A closing count, so a plaintext cut at a line boundary is still refused.
        s.push_str(&format!("end={}\n", self.cards.len()));
        s
    }

    /// Parses the plaintext strictly.
    pub fn decode(text: &str) -> Result<PinFile, PinFileError> {
        let bad = |line: usize, reason: &str| PinFileError::BadLine {
            line,
            reason: reason.to_string(),
        };
        let body = text
            .strip_suffix('\n')
            .ok_or_else(|| bad(0, "missing final newline"))?;
        let mut lines: Vec<&str> = body.split('\n').collect();
        let end = lines
            .pop()
            .and_then(|l| l.strip_prefix("end="))
            .ok_or_else(|| bad(0, "missing end= line"))?;
        if lines.first() != Some(&HEADER) {
            return Err(bad(1, "expected sherd-pins/1"));
        }
        let value = |i: usize, key: &str| -> Result<String, PinFileError> {
            lines
                .get(i)
                .and_then(|l| l.strip_prefix(key))
                .and_then(|l| l.strip_prefix('='))
                .map(str::to_string)
                .ok_or_else(|| bad(i + 1, &format!("expected {key}=")))
        };
        let ceremony_id = value(1, "ceremony")?;
        crate::plan::check_ceremony_id(&ceremony_id).map_err(|e| bad(2, &e.to_string()))?;
        let holder = canonical_u8(&value(2, "holder")?)
            .filter(|&h| h >= 1)
            .ok_or_else(|| bad(3, "holder must be 1..=255"))?;
        let name = value(3, "name")?;
        crate::plan::check_name("holder", &name).map_err(|e| bad(4, &e.to_string()))?;
        let mut cards = Vec::new();
        for (i, line) in lines.iter().enumerate().skip(4) {
            let f: Vec<&str> = line.split(' ').collect();
            let get = |k: usize, key: &str| {
                f.get(k)
                    .and_then(|p| p.strip_prefix(key))
                    .and_then(|p| p.strip_prefix('='))
            };
            let (Some(card), Some(serial), Some(user), Some(admin), 4) = (
                get(0, "card"),
                get(1, "serial"),
                get(2, "user"),
                get(3, "admin"),
                f.len(),
            ) else {
                return Err(bad(i + 1, "expected: card=N serial=S user=PIN admin=PIN"));
            };
            let card = canonical_u8(card)
                .filter(|&c| c >= 1)
                .ok_or_else(|| bad(i + 1, "card must be 1..=255"))?;
            if serial.is_empty() || !serial.bytes().all(|b| b.is_ascii_graphic()) {
                return Err(bad(i + 1, "serial must be printable ASCII without spaces"));
            }
            let pins_ok = |p: &str, min: usize| {
                p.len() >= min && p.len() <= Pin::MAX && p.bytes().all(|b| b.is_ascii_graphic())
            };
            if !pins_ok(user, Pin::USER_MIN) || !pins_ok(admin, Pin::ADMIN_MIN) {
                return Err(bad(i + 1, "PIN length outside the OpenPGP card limits"));
            }
            cards.push(PinEntry {
                card,
                serial: CardSerial(serial.to_string()),
                pins: CardPins {
                    user: Pin::from_string(user.to_string()),
                    admin: Pin::from_string(admin.to_string()),
                },
            });
        }
        if cards.is_empty() {
            return Err(bad(5, "no card lines"));
        }
        if end != cards.len().to_string() {
            return Err(bad(
                lines.len() + 1,
                "end= does not match the number of card lines",
            ));
        }
        Ok(PinFile {
            ceremony_id,
            holder,
            name,
            cards,
        })
    }

    /// Encrypts the PIN file to every encryption key of `recipients` (the holder's and the
    /// backup holder's personal certificates), signed by the root key; returns ASCII armor.
    pub fn seal(
        &self,
        root: &RootKey,
        recipients: &[&Cert],
        time_unix: u32,
    ) -> Result<Vec<u8>, KeyError> {
        self.seal_at(root, recipients, time_unix, time_unix)
    }

    /// [`PinFile::seal`] with the recipients' encryption keys taken as valid at `keys_unix`
    /// (the plan's time: after a reshare, the new plan's) and the root signature dated
    /// `signed_unix` (the root key's creation time, the generation plan's: a recovery opens a
    /// PIN file against the root certificate as of its creation, since the machine clock is
    /// not trusted).
    pub fn seal_at(
        &self,
        root: &RootKey,
        recipients: &[&Cert],
        keys_unix: u32,
        signed_unix: u32,
    ) -> Result<Vec<u8>, KeyError> {
        let at = |t: u32| std::time::UNIX_EPOCH + std::time::Duration::from_secs(u64::from(t));
        let keys: Vec<_> = recipients
            .iter()
            .flat_map(|c| crate::plan::encryption_keys(c, at(keys_unix)))
            .collect();
        let bin = pgp::encrypt_and_sign(
            self.encode().as_bytes(),
            &keys,
            root.signer(),
            at(signed_unix),
        )
        .map_err(key_err("a PIN file"))?;
        Ok(pgp::armor(&bin, openpgp::armor::Kind::Message))
    }

    /// Decrypts an armored PIN file with a personal key and checks the root signature.
    pub fn open(
        armored: &[u8],
        decryptor: &mut dyn crypto::Decryptor,
        root_cert: &Cert,
    ) -> Result<PinFile, PinFileError> {
        let bin =
            pgp::dearmor(armored, openpgp::armor::Kind::Message).map_err(OpenError::Malformed)?;
        let slot = pgp::CardErrorSlot::default();
        let plain = pgp::decrypt_and_verify(
            &bin,
            vec![decryptor],
            root_cert,
            reference_time(root_cert),
            &slot,
        )?;
        let text = std::str::from_utf8(&plain).map_err(|_| PinFileError::BadLine {
            line: 0,
            reason: "not UTF-8".into(),
        })?;
        PinFile::decode(text)
    }
}
