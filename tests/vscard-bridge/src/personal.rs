//! A virtual card made into a personal card: the signing key (and the encryption subkey, if
//! there is one) of a throwaway certificate imported through the card stack itself (the same
//! OpenPGP card operations the image uses), so a test can have a witness sign, or a share
//! holder open their PIN file, with "their own" card under QEMU.

use std::sync::Arc;

use cards::{OpenPgpCard, Pin};
use sequoia_openpgp::Cert;
use sequoia_openpgp::parse::Parse;
use sequoia_openpgp::policy::StandardPolicy;

use crate::VirtualCard;
use crate::direct::Direct;

/// Resets `card` and imports the signing key of `tsk` (an armored or binary secret key) as
/// its signature key and, if `tsk` has a Cv25519 encryption subkey with its secret, that as
/// its decryption key, under the factory admin PIN; with `user_pin`, the user PIN is then
/// changed from the default to it (a witness who changed theirs types it at the ceremony).
/// Returns the fingerprint of the imported key, upper-case hex.
pub fn make_personal(
    card: &Arc<VirtualCard>,
    tsk: &[u8],
    user_pin: Option<&str>,
) -> Result<String, String> {
    let cert = Cert::from_bytes(tsk).map_err(|e| format!("not an OpenPGP key: {e}"))?;
    let policy = StandardPolicy::new();
    let key = cert
        .keys()
        .secret()
        .with_policy(&policy, None)
        .for_signing()
        .next()
        .ok_or("the key has no valid signing (sub)key with its secret")?
        .key()
        .clone()
        .role_into_unspecified();
    let decryption = cert
        .keys()
        .secret()
        .with_policy(&policy, None)
        .for_transport_encryption()
        .next()
        .map(|k| k.key().clone().role_into_unspecified());
    fn err(what: &'static str) -> impl Fn(cards::Error) -> String {
        move |e| format!("{what}: {e}")
    }
    let mut c = OpenPgpCard::open(Direct::new(Arc::clone(card))).map_err(err("opening"))?;
    c.factory_reset().map_err(err("factory reset"))?;
    c.import_keys(&Pin::default_admin(), Some(&key), decryption.as_ref())
        .map_err(err("importing the keys"))?;
    if let Some(pin) = user_pin {
        let pin = Pin::new(pin).map_err(err("the user PIN"))?;
        c.change_user_pin(&Pin::default_user(), &pin)
            .map_err(err("changing the user PIN"))?;
    }
    Ok(key.fingerprint().to_hex())
}

#[cfg(test)]
mod tests {
    use super::*;
    use sequoia_openpgp::cert::{CertBuilder, CipherSuite};
    use sequoia_openpgp::serialize::SerializeInto;

    #[test]
    fn the_card_holds_the_signing_key_and_the_changed_pin() {
        let (cert, _) = CertBuilder::general_purpose(["Wendy"])
            .set_cipher_suite(CipherSuite::Cv25519)
            .generate()
            .unwrap();
        let tsk = cert.as_tsk().armored().to_vec().unwrap();
        let card = Arc::new(VirtualCard::new(0x5750_0001));
        let fpr = make_personal(&card, &tsk, Some("24681357")).unwrap();
        let policy = StandardPolicy::new();
        let signing = cert.keys().with_policy(&policy, None).for_signing();
        assert_eq!(
            signing
                .map(|k| k.key().fingerprint().to_hex())
                .collect::<Vec<_>>(),
            std::slice::from_ref(&fpr)
        );
        let mut c = OpenPgpCard::open(Direct::new(Arc::clone(&card))).unwrap();
        let id = c.identity().unwrap();
        assert_eq!(id.signing_fingerprint.map(|f| f.to_uppercase()), Some(fpr));
        let encryption = cert
            .keys()
            .with_policy(&policy, None)
            .for_transport_encryption()
            .map(|k| k.key().fingerprint().to_hex())
            .collect::<Vec<_>>();
        assert_eq!(
            id.decryption_fingerprint
                .map(|f| f.to_uppercase())
                .into_iter()
                .collect::<Vec<_>>(),
            encryption
        );
        // The default user PIN no longer works; the new one does.
        assert!(
            c.change_user_pin(&Pin::default_user(), &Pin::default_user())
                .is_err()
        );
        c.change_user_pin(
            &Pin::new("24681357").unwrap(),
            &Pin::new("24681357").unwrap(),
        )
        .unwrap();

        // A public certificate has no secret to import.
        let public = cert.armored().to_vec().unwrap();
        assert!(make_personal(&card, &public, None).is_err());
    }
}
