//! The OpenPGP card operations of a ceremony, on openpgp-card 0.7, with a PIN-retry guard:
//! the retry counter is read before every PIN is presented and nothing is presented when a
//! mistake could lock the card.

use openpgp::Cert;
use openpgp::packet::key::{PublicParts, SecretParts, UnspecifiedRole};
use openpgp::packet::{Key, PKESK, SKESK};
use openpgp::parse::Parse;
use openpgp::parse::stream::{
    DecryptionHelper, DecryptorBuilder, MessageStructure, VerificationHelper,
};
use openpgp::policy::Policy;
use openpgp::serialize::stream::{Encryptor, LiteralWriter, Message, Signer as StreamSigner};
use openpgp::types::SymmetricAlgorithm;
use openpgp::{KeyHandle, crypto::SessionKey};
use openpgp_card::ocard::KeyType;
use openpgp_card::state::Open;
use secrecy::SecretString;
use sequoia_openpgp as openpgp;
use zeroize::Zeroizing;

use crate::backend::{ApduChannel, SharedCard};
use crate::error::{Error, Result};
use crate::glue::{CardSigner, UploadableKey};
use ceremony::pgp::EcdhDecryptor;
use hexstr::encode_upper;

/// A PIN. Zeroized on drop, never printed.
pub struct Pin(Zeroizing<String>);

impl Pin {
    /// OpenPGP card PINs are 6..=127 bytes (user) and 8..=127 (admin); the card enforces its
    /// own limits, we only refuse what no card accepts.
    pub fn new(pin: impl Into<String>) -> Result<Self> {
        let pin = Zeroizing::new(pin.into());
        if pin.len() < 6 || pin.len() > 127 {
            return Err(Error::Key(format!(
                "a PIN must be 6 to 127 bytes long, this one is {}",
                pin.len()
            )));
        }
        Ok(Self(pin))
    }

    /// The factory default user PIN (PW1).
    pub fn default_user() -> Self {
        Self(Zeroizing::new("123456".into()))
    }

    /// The factory default admin PIN (PW3).
    pub fn default_admin() -> Self {
        Self(Zeroizing::new("12345678".into()))
    }

    fn secret(&self) -> SecretString {
        SecretString::from(self.0.as_str().to_owned())
    }
}

/// Retry counters left for each PIN.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PinRetries {
    pub user: u8,
    pub reset_code: u8,
    pub admin: u8,
}

/// The public identity of a card, for screens and transcripts.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CardIdentity {
    /// AID-derived identifier `MMMM:SSSSSSSS` (manufacturer:serial), as GnuPG shows it.
    pub ident: String,
    pub manufacturer_id: u16,
    pub manufacturer: String,
    pub serial: u32,
    /// OpenPGP card spec version, e.g. 0x0304.
    pub spec_version: u16,
    pub signing_fingerprint: Option<String>,
    pub decryption_fingerprint: Option<String>,
    pub authentication_fingerprint: Option<String>,
    pub retries: PinRetries,
}

impl CardIdentity {
    /// Whether any key slot is filled: such a card is not blank.
    pub fn holds_keys(&self) -> bool {
        self.signing_fingerprint.is_some()
            || self.decryption_fingerprint.is_some()
            || self.authentication_fingerprint.is_some()
    }
}

#[derive(Clone, Copy)]
enum Which {
    User,
    Admin,
}

/// An OpenPGP card on any APDU channel.
pub struct OpenPgpCard {
    card: openpgp_card::Card<Open>,
    raw: SharedCard,
    min_retries: u8,
    /// `MMMM:SSSSSSSS` from the AID, read once: it never changes.
    ident: String,
    /// Most bytes one GET CHALLENGE returns; 0 if the card has no GET CHALLENGE.
    max_challenge: usize,
    /// Set (to the operation) when openpgp-card panicked: the handle is not used again.
    poisoned: Option<&'static str>,
}

/// What [`OpenPgpCard::provision`] puts on a card.
pub struct Provision<'a> {
    /// The certificate the keys belong to (the test decryption encrypts to it).
    pub cert: &'a Cert,
    /// Cv25519 encryption subkey, with unencrypted secret material.
    pub decryption: &'a Key<SecretParts, UnspecifiedRole>,
    /// Ed25519 signing key, if the card shall also sign.
    pub signing: Option<&'a Key<SecretParts, UnspecifiedRole>>,
    pub user_pin: &'a Pin,
    pub admin_pin: &'a Pin,
    pub policy: &'a dyn Policy,
}

/// Outcome of [`OpenPgpCard::provision`] (public values only).
#[derive(Clone, Debug)]
pub struct ProvisionReport {
    /// The card as it is now: serial, fingerprints, tries left.
    pub identity: CardIdentity,
    /// APDUs the provisioning took.
    pub apdus: u64,
    pub elapsed: std::time::Duration,
}

/// Presenting a PIN is refused with fewer tries left than this: one mistake then still
/// leaves a try, so a typo or a wrong PIN file never locks a card.
pub const DEFAULT_MIN_PIN_RETRIES: u8 = 2;

impl OpenPgpCard {
    /// Select the OpenPGP application and read the card's capabilities.
    pub fn open(channel: impl ApduChannel + 'static) -> Result<Self> {
        let raw = SharedCard::new(channel);
        let (card, ident, max_challenge) = catch_card_panic("opening the card", || {
            let mut card = openpgp_card::Card::<Open>::new(
                Box::new(raw.clone()) as Box<dyn card_backend::CardBackend + Send + Sync>
            )?;
            let tx = card.transaction()?;
            let caps = tx.extended_capabilities()?;
            // Some cards (opcard 1.11) answer GET CHALLENGE and announce its maximum length
            // without setting the capability bit; a card that really lacks it answers 6D00.
            let max = if caps.get_challenge() || caps.max_len_challenge() > 0 {
                usize::from(caps.max_len_challenge()).clamp(1, 255)
            } else {
                0
            };
            let ident = tx.application_identifier()?.ident();
            drop(tx);
            Ok((card, ident, max))
        })?;
        Ok(Self {
            card,
            raw,
            min_retries: DEFAULT_MIN_PIN_RETRIES,
            ident,
            max_challenge,
            poisoned: None,
        })
    }

    /// Every operation that calls into openpgp-card runs through here: a panic in it (see
    /// [`catch_card_panic`]) becomes [`Error::Interrupted`] and poisons the handle, since
    /// openpgp-card's state and the card's are unknown then; a poisoned handle refuses every
    /// operation without touching the card.
    fn with_card<T>(
        &mut self,
        during: &'static str,
        op: impl FnOnce(&mut Self) -> Result<T>,
    ) -> Result<T> {
        self.check_poisoned()?;
        let r = catch_card_panic(during, || op(&mut *self));
        if let Err(Error::Interrupted { during, .. }) = &r {
            self.poisoned = Some(during);
        }
        r
    }

    fn check_poisoned(&self) -> Result<()> {
        match self.poisoned {
            Some(during) => Err(Error::Interrupted {
                during,
                detail: "this card handle was poisoned by the earlier failure".into(),
            }),
            None => Ok(()),
        }
    }

    /// Change the PIN-retry margin (at least 1: presenting with 0 tries left is impossible).
    pub fn set_min_pin_retries(&mut self, n: u8) {
        self.min_retries = n.max(1);
    }

    /// The card's `MMMM:SSSSSSSS` identifier (manufacturer and serial from the AID).
    pub fn ident(&self) -> &str {
        &self.ident
    }

    /// APDUs sent to the card so far.
    pub fn apdu_count(&self) -> u64 {
        self.raw.apdu_count()
    }

    pub fn identity(&mut self) -> Result<CardIdentity> {
        self.with_card("reading the card's identity", |c| {
            let mut tx = c.card.transaction()?;
            let aid = tx.application_identifier()?;
            let fps = tx.fingerprints()?;
            let fp = |f: Option<&openpgp_card::ocard::data::Fingerprint>| {
                f.map(|f| encode_upper(f.as_bytes()))
            };
            let pw = tx.pw_status_bytes()?;
            Ok(CardIdentity {
                ident: aid.ident(),
                manufacturer_id: aid.manufacturer(),
                manufacturer: aid.manufacturer_name().to_owned(),
                serial: aid.serial(),
                spec_version: aid.version(),
                signing_fingerprint: fp(fps.signature()),
                decryption_fingerprint: fp(fps.decryption()),
                authentication_fingerprint: fp(fps.authentication()),
                retries: PinRetries {
                    user: pw.err_count_pw1(),
                    reset_code: pw.err_count_rc(),
                    admin: pw.err_count_pw3(),
                },
            })
        })
    }

    pub fn pin_retries(&mut self) -> Result<PinRetries> {
        self.with_card("reading the PIN retry counters", |c| {
            let mut tx = c.card.transaction()?;
            retries(&mut tx)
        })
    }

    /// Erase the card (keys, PINs back to factory defaults). Works on a card with blocked
    /// PINs: this is how a card someone locked is recovered.
    pub fn factory_reset(&mut self) -> Result<()> {
        self.with_card("the factory reset", |c| {
            c.card.transaction()?.factory_reset()?;
            Ok(())
        })
    }

    pub fn change_user_pin(&mut self, old: &Pin, new: &Pin) -> Result<()> {
        self.with_card("the user PIN change", |c| {
            let mut tx = c.card.transaction()?;
            guard(&mut tx, Which::User, c.min_retries)?;
            let r = tx.change_user_pin(old.secret(), new.secret());
            pin_result(&mut tx, Which::User, r)?;
            Ok(())
        })
    }

    pub fn change_admin_pin(&mut self, old: &Pin, new: &Pin) -> Result<()> {
        self.with_card("the admin PIN change", |c| {
            let mut tx = c.card.transaction()?;
            guard(&mut tx, Which::Admin, c.min_retries)?;
            let r = tx.change_admin_pin(old.secret(), new.secret());
            pin_result(&mut tx, Which::Admin, r)?;
            Ok(())
        })
    }

    /// Present the user PIN (PW1 for decryption). For tests and checks of a PIN file.
    pub fn verify_user_pin(&mut self, pin: &Pin) -> Result<()> {
        self.with_card("the user PIN check", |c| {
            let mut tx = c.card.transaction()?;
            guard(&mut tx, Which::User, c.min_retries)?;
            let r = tx.verify_user_pin(pin.secret());
            pin_result(&mut tx, Which::User, r)?;
            Ok(())
        })
    }

    /// Import the certificate's Ed25519 signing key (if `signing` has secrets) and Cv25519
    /// decryption subkey into the signing and decryption slots.
    pub fn import_keys(
        &mut self,
        admin: &Pin,
        signing: Option<&Key<SecretParts, UnspecifiedRole>>,
        decryption: Option<&Key<SecretParts, UnspecifiedRole>>,
    ) -> Result<()> {
        self.with_card("the key import", |c| {
            let sig = signing.map(UploadableKey::new).transpose()?;
            let dec = decryption.map(UploadableKey::new).transpose()?;
            let mut tx = c.card.transaction()?;
            guard(&mut tx, Which::Admin, c.min_retries)?;
            let r = tx.verify_admin_pin(admin.secret());
            pin_result(&mut tx, Which::Admin, r)?;
            {
                let mut admin_card = tx.as_admin_card(None)?;
                if let Some(k) = &sig {
                    admin_card.import_key(k, KeyType::Signing)?;
                }
                if let Some(k) = &dec {
                    admin_card.import_key(k, KeyType::Decryption)?;
                }
            }
            // Read back: the card must now hold exactly these fingerprints.
            tx.invalidate_cache()?;
            let fps = tx.fingerprints()?;
            for (k, got, slot) in [
                (&sig, fps.signature(), "signing"),
                (&dec, fps.decryption(), "decryption"),
            ] {
                if let Some(k) = k
                    && got.map(|f| f.as_bytes()) != Some(&k.fingerprint_bytes()[..])
                {
                    return Err(Error::Key(format!(
                        "after import the card's {slot} slot holds {:?}, not {}",
                        got.map(|f| encode_upper(f.as_bytes())),
                        encode_upper(&k.fingerprint_bytes())
                    )));
                }
            }
            Ok(())
        })
    }

    /// Decrypt an OpenPGP message encrypted to `cert`'s Cv25519 subkey held by this card;
    /// the session key is recovered on the card.
    pub fn decrypt_message(
        &mut self,
        user_pin: &Pin,
        cert: &Cert,
        policy: &dyn Policy,
        message: &[u8],
    ) -> Result<Zeroizing<Vec<u8>>> {
        self.with_card("decryption", |c| {
            let mut tx = c.card.transaction()?;
            guard(&mut tx, Which::User, c.min_retries)?;
            let r = tx.verify_user_pin(user_pin.secret());
            pin_result(&mut tx, Which::User, r)?;
            let on_card = tx
                .fingerprints()?
                .decryption()
                .map(|f| f.as_bytes().to_vec());
            let key = key_on_card(cert, policy, None, on_card, CardSlot::Decryption)?;
            let helper = Helper {
                decryptor: EcdhDecryptor::new(key, |point: &[u8; 32]| {
                    let shared = tx
                        .card()
                        .decipher(openpgp_card::ocard::crypto::Cryptogram::ECDH(point))?;
                    Ok(shared.into())
                }),
            };
            let mut d = DecryptorBuilder::from_bytes(message)?.with_policy(policy, None, helper)?;
            // The plaintext is secret: read through a buffer we wipe, into a vector sized so
            // that it rarely reallocates (a reallocation would leave a copy behind).
            let mut out = Zeroizing::new(Vec::with_capacity(message.len() + 4096));
            let mut buf = Zeroizing::new([0u8; 4096]);
            loop {
                let n = std::io::Read::read(&mut d, &mut buf[..])
                    .map_err(|e| Error::Key(format!("decrypting the message failed: {e}")))?;
                if n == 0 {
                    break;
                }
                if out.len() + n > out.capacity() {
                    let mut bigger = Zeroizing::new(Vec::with_capacity(2 * (out.len() + n)));
                    bigger.extend_from_slice(&out);
                    out = bigger;
                }
                out.extend_from_slice(&buf[..n]);
            }
            Ok(out)
        })
    }

    /// Raw card-side X25519 with the decryption key: presents the user PIN (after the retry
    /// guard) and returns the shared secret for `ephemeral_public` (RFC 7748 byte order,
    /// without OpenPGP's 0x40 prefix).
    pub fn ecdh(
        &mut self,
        user_pin: &Pin,
        ephemeral_public: &[u8; 32],
    ) -> Result<Zeroizing<[u8; 32]>> {
        self.with_card("the ECDH operation", |c| {
            let mut tx = c.card.transaction()?;
            guard(&mut tx, Which::User, c.min_retries)?;
            let r = tx.verify_user_pin(user_pin.secret());
            pin_result(&mut tx, Which::User, r)?;
            let shared = Zeroizing::new(tx.card().decipher(
                openpgp_card::ocard::crypto::Cryptogram::ECDH(ephemeral_public),
            )?);
            let shared: [u8; 32] = shared.as_slice().try_into().map_err(|_| {
                Error::Card(format!(
                    "the card returned a {}-byte X25519 shared secret, expected 32",
                    shared.len()
                ))
            })?;
            Ok(Zeroizing::new(shared))
        })
    }

    /// Step 5 of a ceremony for one blank card: factory reset, import of the decryption key
    /// (and the signing key, if given), user and admin PINs set from the factory defaults, then
    /// a test decryption of a message Sequoia encrypts to `cert` on the spot.
    pub fn provision(&mut self, p: &Provision<'_>) -> Result<ProvisionReport> {
        let start = std::time::Instant::now();
        let apdus = self.apdu_count();
        // Everything that can be checked without the card first: a bad key set must not
        // cost a card its contents.
        let check = format!("sherd provisioning check for card {}", self.ident);
        let recipient = p
            .cert
            .keys()
            .with_policy(p.policy, None)
            .key_handle(p.decryption.fingerprint())
            .for_storage_encryption()
            .next()
            .ok_or_else(|| {
                Error::Key(format!(
                    "{} is not a valid storage encryption subkey of {} under the policy",
                    p.decryption.fingerprint(),
                    p.cert.fingerprint()
                ))
            })?;
        let mut message = Vec::new();
        {
            let m = Message::new(&mut message);
            let m = Encryptor::for_recipients(m, [recipient]).build()?;
            let mut w = LiteralWriter::new(m).build()?;
            std::io::Write::write_all(&mut w, check.as_bytes())
                .map_err(|e| Error::Key(format!("encrypting the check message: {e}")))?;
            w.finalize()?;
        }
        // Keys the card cannot take (v6, RSA, locked secrets) are refused here too.
        if let Some(k) = p.signing {
            UploadableKey::new(k)?;
        }
        UploadableKey::new(p.decryption)?;
        self.factory_reset()?;
        self.import_keys(&Pin::default_admin(), p.signing, Some(p.decryption))?;
        self.change_user_pin(&Pin::default_user(), p.user_pin)?;
        self.change_admin_pin(&Pin::default_admin(), p.admin_pin)?;
        let plain = self.decrypt_message(p.user_pin, p.cert, p.policy, &message)?;
        if plain.as_slice() != check.as_bytes() {
            return Err(Error::Card(
                "the test decryption returned something else than was encrypted".into(),
            ));
        }
        Ok(ProvisionReport {
            identity: self.identity()?,
            apdus: self.apdu_count() - apdus,
            elapsed: start.elapsed(),
        })
    }

    /// A binary detached signature over `data` by `cert`'s signing key held by this card.
    pub fn sign_detached(
        &mut self,
        user_pin: &Pin,
        cert: &Cert,
        policy: &dyn Policy,
        data: &[u8],
    ) -> Result<Vec<u8>> {
        self.sign_detached_at(user_pin, cert, policy, None, data)
    }

    /// [`Self::sign_detached`] at a given time: the card's key must be a signing key of `cert`
    /// valid at `time`, and the signature's creation time is `time` (`None`: now). A ceremony
    /// signs at its plan time, never by the machine clock.
    pub fn sign_detached_at(
        &mut self,
        user_pin: &Pin,
        cert: &Cert,
        policy: &dyn Policy,
        time: Option<std::time::SystemTime>,
        data: &[u8],
    ) -> Result<Vec<u8>> {
        self.with_card("signing", |c| {
            let mut tx = c.card.transaction()?;
            guard(&mut tx, Which::User, c.min_retries)?;
            let r = tx.verify_user_signing_pin(user_pin.secret());
            pin_result(&mut tx, Which::User, r)?;
            let on_card = tx
                .fingerprints()?
                .signature()
                .map(|f| f.as_bytes().to_vec());
            let key = key_on_card(cert, policy, time, on_card, CardSlot::Signing)?;
            let signer = CardSigner::new(&mut tx, key);
            let mut sig = Vec::new();
            {
                let m = Message::new(&mut sig);
                let mut s = StreamSigner::new(m, signer)?;
                if let Some(t) = time {
                    s = s.creation_time(t);
                }
                let mut s = s.detached().build()?;
                std::io::Write::write_all(&mut s, data)
                    .map_err(|e| Error::Key(format!("signing: {e}")))?;
                s.finalize()?;
            }
            Ok(sig)
        })
    }

    /// GET CHALLENGE (OpenPGP card 3.4 7.2.15): `n` random bytes from the card's RNG, in
    /// rounds of at most what the card announces (and the reader's messages carry).
    pub fn get_challenge(&mut self, n: usize) -> Result<Zeroizing<Vec<u8>>> {
        // No call into openpgp-card here, but a poisoned handle is not used at all.
        self.check_poisoned()?;
        let max = self.max_challenge;
        if max == 0 {
            return Err(Error::Unsupported(
                "the card announces neither GET CHALLENGE nor a challenge length (extended \
                 capabilities)"
                    .into(),
            ));
        }
        // A reader whose messages cannot carry a whole short answer bounds the rounds too.
        let max = match self.raw.max_answer() {
            Some(a) => max.min(a.saturating_sub(2).max(1)),
            None => max,
        };
        let mut out = Zeroizing::new(Vec::with_capacity(n));
        while out.len() < n {
            let want = (n - out.len()).min(max);
            let le = if want == 256 { 0 } else { want as u8 };
            let resp = Zeroizing::new(self.raw.transmit(&[0x00, 0x84, 0x00, 0x00, le])?);
            let (data, sw1, sw2) = crate::apdu::split_status(&resp)?;
            if (sw1, sw2) != (0x90, 0x00) {
                return Err(Error::Status {
                    sw1,
                    sw2,
                    during: "GET CHALLENGE",
                    meaning: crate::apdu::status_meaning(sw1, sw2),
                });
            }
            if data.len() != want {
                return Err(Error::Card(format!(
                    "GET CHALLENGE for {want} bytes returned {}",
                    data.len()
                )));
            }
            out.extend_from_slice(data);
        }
        Ok(out)
    }
}

/// Runs `op`, which calls into openpgp-card, turning a panic into [`Error::Interrupted`].
/// openpgp-card 0.7 panics (`unreachable!()` in `state::Transaction::ard`) when it has to read
/// the application related data again and that fails, e.g. because the card was pulled out in
/// the middle of an operation; uncaught, that would end the ceremony program. The image's
/// release profile keeps Rust's default `panic = "unwind"`, so the unwind can be caught here.
/// The panic hook still runs: the default one prints on stderr, the image's UI keeps it off the
/// console (init's `ui::keep_panics_off_the_console`).
fn catch_card_panic<T>(during: &'static str, op: impl FnOnce() -> Result<T>) -> Result<T> {
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(op)).unwrap_or_else(|payload| {
        let detail = payload
            .downcast_ref::<&str>()
            .map(|s| (*s).to_owned())
            .or_else(|| payload.downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "a panic without a message".into());
        Err(Error::Interrupted { during, detail })
    })
}

fn retries(
    tx: &mut openpgp_card::Card<openpgp_card::state::Transaction<'_>>,
) -> Result<PinRetries> {
    // Fresh counters, never the cached application data.
    tx.invalidate_cache()?;
    let pw = tx.pw_status_bytes()?;
    Ok(PinRetries {
        user: pw.err_count_pw1(),
        reset_code: pw.err_count_rc(),
        admin: pw.err_count_pw3(),
    })
}

fn guard(
    tx: &mut openpgp_card::Card<openpgp_card::state::Transaction<'_>>,
    which: Which,
    min: u8,
) -> Result<()> {
    let r = retries(tx)?;
    let (left, pin) = match which {
        Which::User => (r.user, "user PIN (PW1)"),
        Which::Admin => (r.admin, "admin PIN (PW3)"),
    };
    if left < min {
        return Err(Error::PinRetriesLow {
            pin,
            left,
            needed: min,
        });
    }
    Ok(())
}

/// Turn a refused PIN into `Error::WrongPin` with the tries left (read fresh), so the screen
/// can say exactly where the card stands. Cards differ: 63Cx, 6300, 6982 or 6983.
fn pin_result<T>(
    tx: &mut openpgp_card::Card<openpgp_card::state::Transaction<'_>>,
    which: Which,
    r: std::result::Result<T, openpgp_card::Error>,
) -> Result<T> {
    use openpgp_card::ocard::StatusBytes;
    match r {
        Ok(v) => Ok(v),
        Err(openpgp_card::Error::CardStatus(
            StatusBytes::PasswordNotChecked(_)
            | StatusBytes::UnknownStatus(0x63, _)
            | StatusBytes::SecurityStatusNotSatisfied
            | StatusBytes::AuthenticationMethodBlocked,
        )) => {
            let r = retries(tx)?;
            let (pin, left) = match which {
                Which::User => ("user PIN (PW1)", r.user),
                Which::Admin => ("admin PIN (PW3)", r.admin),
            };
            Err(Error::WrongPin { pin, left })
        }
        Err(e) => Err(e.into()),
    }
}

struct Helper<D> {
    decryptor: D,
}

impl<D> VerificationHelper for Helper<D> {
    fn get_certs(&mut self, _ids: &[KeyHandle]) -> openpgp::Result<Vec<Cert>> {
        Ok(Vec::new())
    }

    // Only decryption is asked for; signatures inside the message are checked by callers
    // that know which certificates to trust.
    fn check(&mut self, _structure: MessageStructure) -> openpgp::Result<()> {
        Ok(())
    }
}

impl<D: openpgp::crypto::Decryptor> DecryptionHelper for Helper<D> {
    fn decrypt(
        &mut self,
        pkesks: &[PKESK],
        _skesks: &[SKESK],
        sym_algo: Option<SymmetricAlgorithm>,
        decrypt: &mut dyn FnMut(Option<SymmetricAlgorithm>, &SessionKey) -> bool,
    ) -> openpgp::Result<Option<Cert>> {
        let ours = openpgp::crypto::Decryptor::public(&self.decryptor).key_handle();
        for pkesk in pkesks {
            if pkesk.recipient().is_some_and(|r| !r.aliases(&ours)) {
                continue;
            }
            if let Some((algo, sk)) = pkesk.decrypt(&mut self.decryptor, sym_algo)
                && decrypt(algo, &sk)
            {
                return Ok(None);
            }
        }
        Err(openpgp::Error::MissingSessionKey(
            "no PKESK in the message could be decrypted with the card's key".into(),
        )
        .into())
    }
}

/// Which card key slot a certificate key is looked up for.
#[derive(Clone, Copy)]
enum CardSlot {
    Decryption,
    Signing,
}

/// The key of `cert` (valid under `policy` at `time`, `None`: now; usable for the slot's
/// purpose) whose fingerprint is the one the card reports for that slot: the card must hold a
/// key of this certificate.
fn key_on_card(
    cert: &Cert,
    policy: &dyn Policy,
    time: Option<std::time::SystemTime>,
    on_card: Option<Vec<u8>>,
    slot: CardSlot,
) -> Result<Key<PublicParts, UnspecifiedRole>> {
    let keys = cert.keys().with_policy(policy, time);
    let (mut keys, slot_name, expected) = match slot {
        CardSlot::Decryption => (
            keys.for_transport_encryption().for_storage_encryption(),
            "decryption",
            "an encryption subkey",
        ),
        CardSlot::Signing => (keys.for_signing(), "signing", "a signing key"),
    };
    keys.find(|k| Some(k.key().fingerprint().as_bytes().to_vec()) == on_card)
        .map(|k| k.key().clone().role_into_unspecified())
        .ok_or_else(|| {
            let fpr = on_card
                .as_deref()
                .map(encode_upper)
                .unwrap_or_else(|| "(none)".into());
            Error::Key(format!(
                "the card's {slot_name} key {fpr} is not {expected} of {}",
                cert.fingerprint()
            ))
        })
}

/// Parse a certificate (helper for callers holding bytes).
pub fn parse_cert(bytes: &[u8]) -> Result<Cert> {
    Ok(Cert::from_bytes(bytes)?)
}

/// The card as an entropy source for the `entropy` crate.
impl entropy::ChallengeCard for OpenPgpCard {
    fn identity(&self) -> String {
        self.ident.clone()
    }

    fn max_challenge_len(&self) -> usize {
        self.max_challenge.max(1)
    }

    fn get_challenge(
        &mut self,
        len: usize,
    ) -> std::result::Result<Zeroizing<Vec<u8>>, Box<dyn std::error::Error + Send + Sync>> {
        Ok(OpenPgpCard::get_challenge(self, len)?)
    }
}
