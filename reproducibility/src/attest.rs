//! Builders' attestations: an armored detached OpenPGP signature over the exact bytes of a
//! release manifest, one file per builder (`manifest.txt.NAME.asc`), and the k-of-n check over
//! a release folder. The same signing makes `sherd.iso.asc`, which Heads checks with gpg.

use crate::Result;
use crate::builders::Builders;
use openpgp::armor;
use openpgp::cert::prelude::*;
use openpgp::crypto::{Password, Signer};
use openpgp::packet::key::{SecretParts, UnspecifiedRole};
use openpgp::packet::{Key, Signature};
use openpgp::parse::{PacketParser, PacketParserResult, Parse};
use openpgp::policy::{HashAlgoSecurity, Policy, StandardPolicy};
use openpgp::serialize::stream::{Armorer, Message, Signer as StreamSigner};
use openpgp::{Packet, packet::Tag};
use sequoia_openpgp as openpgp;
use std::io::Write;
use std::path::{Path, PathBuf};

pub const MANIFEST: &str = "manifest.txt";

/// Name of a builder's signature file in a release folder.
pub fn signature_file_name(builder: &str) -> String {
    format!("{MANIFEST}.{builder}.asc")
}

/// Reads a secret key file (a TSK, armored or binary).
pub fn read_key(path: &Path) -> Result<Cert> {
    let cert = Cert::from_file(path).map_err(|e| {
        format!(
            "{}: not an OpenPGP secret key ({e}); give the builder's key exported with its \
             secret parts (sq key export, or gpg --export-secret-keys)",
            path.display()
        )
    })?;
    if !cert.is_tsk() {
        return Err(format!(
            "{}: holds certificate {} without secret key material; give the secret key file",
            path.display(),
            cert.fingerprint()
        ));
    }
    Ok(cert)
}

/// The key of `tsk` that signs: live, not revoked, signing-capable, with its secret.
pub fn signing_key(tsk: &Cert) -> Result<Key<SecretParts, UnspecifiedRole>> {
    let p = StandardPolicy::new();
    tsk.keys()
        .with_policy(&p, None)
        .supported()
        .alive()
        .revoked(false)
        .for_signing()
        .secret()
        .next()
        .map(|ka| ka.key().clone())
        .ok_or_else(|| {
            format!(
                "key {} has no live, unrevoked signing key with its secret part here (a key \
                 kept on a card signs with --card)",
                tsk.fingerprint()
            )
        })
}

/// Makes the key usable for signing; `password` is asked for only when the key is encrypted.
pub fn unlock(
    key: Key<SecretParts, UnspecifiedRole>,
    password: impl FnOnce() -> Result<Password>,
) -> Result<Box<dyn Signer + Send + Sync>> {
    let fpr = key.fingerprint();
    let key = if key.secret().is_encrypted() {
        key.decrypt_secret(&password()?)
            .map_err(|_| format!("key {fpr}: wrong password (the secret key stays locked)"))?
    } else {
        key
    };
    let pair = key
        .into_keypair()
        .map_err(|e| format!("key {fpr}: cannot sign with it: {e}"))?;
    Ok(Box::new(pair))
}

/// An armored detached signature over `data`.
pub fn sign_detached(signer: Box<dyn Signer + Send + Sync>, data: &[u8]) -> Result<Vec<u8>> {
    let mut out = Vec::new();
    let run = || -> openpgp::Result<()> {
        let m = Message::new(&mut out);
        let m = Armorer::new(m).kind(armor::Kind::Signature).build()?;
        let mut s = StreamSigner::new(m, signer)?.detached().build()?;
        s.write_all(data)?;
        s.finalize()?;
        Ok(())
    };
    run().map_err(|e| format!("signing failed: {e}"))?;
    Ok(out)
}

/// Armors a binary signature (what an OpenPGP card returns).
pub fn armor_signature(binary: &[u8]) -> Result<Vec<u8>> {
    let mut out = Vec::new();
    let mut run = || -> std::io::Result<()> {
        let mut w = armor::Writer::new(&mut out, armor::Kind::Signature)?;
        w.write_all(binary)?;
        w.finalize()?;
        Ok(())
    };
    run().map_err(|e| format!("armoring the signature: {e}"))?;
    Ok(out)
}

/// The certificate of the key in the card's signature slot: `cert` when given, otherwise the
/// listed builder's that holds that key. Returns it with the slot's fingerprint.
pub fn card_certificate(
    card: &mut cards::OpenPgpCard,
    builders: Option<&Builders>,
    cert: Option<Cert>,
) -> Result<(Cert, String)> {
    let id = card
        .identity()
        .map_err(|e| format!("card {}: {e}", card.ident()))?;
    let fp = id
        .signing_fingerprint
        .ok_or_else(|| format!("card {} has no key in its signature slot", id.ident))?;
    let handle: openpgp::KeyHandle = fp
        .parse()
        .map_err(|e| format!("card {}: signature key fingerprint {fp}: {e}", id.ident))?;
    let cert = match cert {
        Some(c) => c,
        None => builders
            .and_then(|b| b.by_key(&handle))
            .map(|b| b.cert.clone())
            .ok_or_else(|| {
                format!(
                    "card {}'s signature key {fp} is no listed builder's: give its certificate \
                     with --cert FILE",
                    id.ident
                )
            })?,
    };
    if !cert.keys().any(|k| k.key().key_handle().aliases(&handle)) {
        return Err(format!(
            "certificate {} does not hold card {}'s signature key {fp}",
            cert.fingerprint(),
            id.ident
        ));
    }
    Ok((cert, fp))
}

/// An armored detached signature over `data` by the card's signature key.
pub fn sign_with_card(
    card: &mut cards::OpenPgpCard,
    pin: &cards::Pin,
    cert: &Cert,
    data: &[u8],
) -> Result<Vec<u8>> {
    let p = StandardPolicy::new();
    let sig = card
        .sign_detached(pin, cert, &p, data)
        .map_err(|e| format!("card {}: {e}", card.ident()))?;
    armor_signature(&sig)
}

/// A builder whose signature over the manifest checked out.
#[derive(Clone, Debug)]
pub struct Signed {
    pub builder: String,
    pub key: String,
    pub file: PathBuf,
    pub test_key: bool,
}

#[derive(Clone, Debug)]
pub struct Verdict {
    pub threshold: usize,
    pub signed: Vec<Signed>,
    /// Listed builders without a good signature.
    pub not_signed: Vec<String>,
}

/// One signature file to check: its path (for messages and the builder name it carries) and
/// its bytes.
pub struct SignatureFile {
    pub path: PathBuf,
    pub bytes: Vec<u8>,
}

/// The builder name a file called `manifest.txt.NAME.asc` claims, if it is one.
pub fn claimed_builder(path: &Path) -> Option<&str> {
    path.file_name()?
        .to_str()?
        .strip_prefix(MANIFEST)?
        .strip_prefix('.')?
        .strip_suffix(".asc")
}

/// The signature files of a release folder, sorted by name.
pub fn release_signatures(release: &Path) -> Result<Vec<SignatureFile>> {
    let rd = std::fs::read_dir(release).map_err(|e| format!("{}: {e}", release.display()))?;
    let mut v = Vec::new();
    for e in rd {
        let path = e.map_err(|e| format!("{}: {e}", release.display()))?.path();
        if claimed_builder(&path).is_some() {
            let bytes = std::fs::read(&path).map_err(|e| format!("{}: {e}", path.display()))?;
            v.push(SignatureFile { path, bytes });
        }
    }
    v.sort_by(|a, b| a.path.cmp(&b.path));
    Ok(v)
}

/// Checks that at least k distinct listed builders signed exactly `manifest`. Every signature
/// present must be good: a bad, unlisted or duplicate one is an error, not something to skip,
/// because it means the release folder is not what its builders published.
pub fn verify(builders: &Builders, manifest: &[u8], files: &[SignatureFile]) -> Result<Verdict> {
    let p = StandardPolicy::new();
    let mut problems = Vec::new();
    let mut signed: Vec<Signed> = Vec::new();
    for f in files {
        let shown = f.path.display();
        let sigs = match signatures(&f.bytes) {
            Ok(s) => s,
            Err(e) => {
                problems.push(format!("{shown}: {e}"));
                continue;
            }
        };
        for sig in sigs {
            match check_one(builders, &p, &sig, manifest) {
                Err(e) => problems.push(format!("{shown}: {e}")),
                Ok((name, key)) => {
                    if let Some(claimed) = claimed_builder(&f.path)
                        && claimed != name
                    {
                        problems.push(format!(
                            "{shown}: named for builder {claimed:?} but signed by builder \
                             {name:?}'s key {key}; rename it to {}",
                            signature_file_name(&name)
                        ));
                        continue;
                    }
                    if let Some(first) = signed.iter().find(|s| s.builder == name) {
                        problems.push(format!(
                            "{shown}: builder {name:?} signed again (already counted from {}); \
                             each builder counts once: keep one signature",
                            first.file.display()
                        ));
                        continue;
                    }
                    let test_key = builders.by_name(&name).is_some_and(|b| b.test_key);
                    signed.push(Signed {
                        builder: name,
                        key,
                        file: f.path.clone(),
                        test_key,
                    });
                }
            }
        }
    }
    let not_signed: Vec<String> = builders
        .builders
        .iter()
        .filter(|b| !signed.iter().any(|s| s.builder == b.name))
        .map(|b| b.name.clone())
        .collect();
    if signed.len() < builders.threshold {
        problems.push(format!(
            "{} of the {} required builders signed{}; not signed: {}",
            signed.len(),
            builders.threshold,
            if signed.is_empty() {
                String::new()
            } else {
                format!(
                    " ({})",
                    signed
                        .iter()
                        .map(|s| s.builder.as_str())
                        .collect::<Vec<_>>()
                        .join(", ")
                )
            },
            not_signed.join(", ")
        ));
    }
    if problems.is_empty() {
        Ok(Verdict {
            threshold: builders.threshold,
            signed,
            not_signed,
        })
    } else {
        Err(problems.join("\n"))
    }
}

/// The signature packets of a detached signature file; anything else in it is refused.
fn signatures(bytes: &[u8]) -> Result<Vec<Signature>> {
    let mut out = Vec::new();
    let mut ppr = PacketParser::from_bytes(bytes)
        .map_err(|e| format!("not an OpenPGP signature file: {e}"))?;
    while let PacketParserResult::Some(pp) = ppr {
        let (packet, next) = pp
            .next()
            .map_err(|e| format!("not an OpenPGP signature file: {e}"))?;
        match packet {
            Packet::Signature(s) => out.push(s),
            other => {
                return Err(format!(
                    "holds a {} packet; a detached signature file holds only signatures",
                    Tag::from(&other)
                ));
            }
        }
        ppr = next;
    }
    if out.is_empty() {
        return Err("holds no signature".into());
    }
    Ok(out)
}

/// Which listed builder made `sig`, and the key, if it is a good signature over `data`.
fn check_one(
    builders: &Builders,
    p: &dyn Policy,
    sig: &Signature,
    data: &[u8],
) -> Result<(String, String)> {
    let issuers = sig.get_issuers();
    let shown = issuers
        .first()
        .map(|h| h.to_string())
        .unwrap_or_else(|| "(no issuer recorded)".into());
    let builder = issuers
        .iter()
        .find_map(|h| builders.by_key(h))
        .ok_or_else(|| {
            format!(
                "signed by key {shown}, which is no listed builder's (releases/builders.toml): \
                 an unlisted key does not count; add the builder through review or remove the file"
            )
        })?;
    let when = sig.signature_creation_time();
    let ka = builder
        .cert
        .keys()
        .with_policy(p, when)
        .for_signing()
        .key_handles(issuers.iter())
        .next()
        .ok_or_else(|| {
            format!(
                "builder {:?}'s key {shown} was not a valid signing key when the signature was \
                 made (expired, revoked, not signing-capable, or dated before the key)",
                builder.name
            )
        })?;
    p.signature(sig, HashAlgoSecurity::CollisionResistance)
        .map_err(|e| {
            format!(
                "builder {:?}'s signature is refused by the policy: {e}",
                builder.name
            )
        })?;
    sig.verify_message(ka.key(), data).map_err(|_| {
        format!(
            "builder {:?}'s signature (key {}) does not match {MANIFEST}: the manifest was \
             changed after it was signed, or the signature is over another file",
            builder.name,
            ka.key().fingerprint()
        )
    })?;
    Ok((builder.name.clone(), ka.key().fingerprint().to_hex()))
}
