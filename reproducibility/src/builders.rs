//! `releases/builders.toml`: the build parties whose signatures count, and how many must sign
//! (format: `docs/formats/builders.md`). The file comes from outside review, so it is parsed
//! strictly: unknown fields, duplicate names or keys, secret key material and impossible
//! thresholds are refused with the line to fix.

use crate::Result;
use openpgp::Cert;
use openpgp::cert::CertParser;
use openpgp::parse::Parse;
use openpgp::policy::StandardPolicy;
use sequoia_openpgp as openpgp;
use serde::Deserialize;

pub const FORMAT: &str = "sherd-builders 1";
/// Builder names end up in file names (`manifest.txt.NAME.asc`), so they are kept plain.
pub const MAX_NAME: usize = 64;

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
struct RawFile {
    format: String,
    threshold: u64,
    #[serde(default)]
    builder: Vec<RawBuilder>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
struct RawBuilder {
    name: String,
    certificate: String,
    #[serde(default)]
    test_key: bool,
    #[serde(default)]
    note: Option<String>,
}

#[derive(Clone, Debug)]
pub struct Builder {
    pub name: String,
    pub cert: Cert,
    /// A key made for tests and the first release folder; real build parties replace it.
    pub test_key: bool,
    pub note: Option<String>,
}

#[derive(Clone, Debug)]
pub struct Builders {
    /// k: how many distinct builders must sign a manifest.
    pub threshold: usize,
    pub builders: Vec<Builder>,
}

impl Builders {
    pub fn parse(text: &str) -> Result<Builders> {
        let raw: RawFile = toml::from_str(text).map_err(|e| e.to_string())?;
        if raw.format != FORMAT {
            return Err(format!(
                "format is {:?}; this sherd-release reads {FORMAT:?}",
                raw.format
            ));
        }
        if raw.builder.is_empty() {
            return Err("no [[builder]] is listed: add one table per build party".into());
        }
        let mut builders: Vec<Builder> = Vec::new();
        for (i, b) in raw.builder.into_iter().enumerate() {
            let at = format!("builder {} ({:?})", i + 1, b.name);
            check_name(&b.name).map_err(|e| format!("{at}: {e}"))?;
            if builders.iter().any(|o| o.name == b.name) {
                return Err(format!(
                    "{at}: the name is listed twice; each build party is listed once"
                ));
            }
            let cert = parse_cert(&b.certificate).map_err(|e| format!("{at}: {e}"))?;
            for o in &builders {
                if let Some(fp) = shared_key(&o.cert, &cert) {
                    return Err(format!(
                        "{at}: key {fp} is also builder {:?}'s; one party's key would count \
                         twice",
                        o.name
                    ));
                }
            }
            builders.push(Builder {
                name: b.name,
                cert,
                test_key: b.test_key,
                note: b.note,
            });
        }
        let n = builders.len();
        let threshold = usize::try_from(raw.threshold).unwrap_or(usize::MAX);
        if threshold == 0 {
            return Err("threshold is 0: at least one builder must sign; set 1 or more".into());
        }
        if threshold > n {
            return Err(format!(
                "threshold is {threshold} but only {n} builder{} listed: no release could ever \
                 verify; lower it or list more builders",
                if n == 1 { " is" } else { "s are" }
            ));
        }
        Ok(Builders {
            threshold,
            builders,
        })
    }

    pub fn read(path: &std::path::Path) -> Result<Builders> {
        let text = std::fs::read_to_string(path).map_err(|e| {
            format!(
                "{}: {e} (the builders file lists who may sign releases; see \
                 docs/formats/builders.md)",
                path.display()
            )
        })?;
        Builders::parse(&text).map_err(|e| format!("{}: {e}", path.display()))
    }

    /// The builder whose certificate holds the key with this fingerprint or key ID (hex).
    pub fn by_key(&self, handle: &openpgp::KeyHandle) -> Option<&Builder> {
        self.builders
            .iter()
            .find(|b| b.cert.keys().any(|k| k.key().key_handle().aliases(handle)))
    }

    pub fn by_name(&self, name: &str) -> Option<&Builder> {
        self.builders.iter().find(|b| b.name == name)
    }
}

fn check_name(name: &str) -> Result<()> {
    let ok = !name.is_empty()
        && name.len() <= MAX_NAME
        && !name.starts_with('-')
        && name
            .bytes()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == b'-');
    if ok {
        Ok(())
    } else {
        Err(format!(
            "a name is 1 to {MAX_NAME} of a-z, 0-9 and '-', not starting with '-' (it becomes \
             part of the signature's file name)"
        ))
    }
}

fn parse_cert(armored: &str) -> Result<Cert> {
    let mut certs = CertParser::from_bytes(armored.as_bytes())
        .map_err(|e| format!("certificate: {e}"))?
        .collect::<std::result::Result<Vec<_>, _>>()
        .map_err(|e| format!("certificate: {e}"))?;
    if certs.len() != 1 {
        return Err(format!(
            "certificate holds {} OpenPGP certificates; give exactly one (the builder's)",
            certs.len()
        ));
    }
    let cert = certs.remove(0);
    if cert.is_tsk() {
        return Err(format!(
            "certificate {} contains secret key material: put only the public certificate here \
             (sq cert export, or gpg --export --armor)",
            cert.fingerprint()
        ));
    }
    let p = StandardPolicy::new();
    let valid = cert
        .with_policy(&p, None)
        .map_err(|e| format!("certificate {} is not valid: {e}", cert.fingerprint()))?;
    if valid
        .keys()
        .alive()
        .revoked(false)
        .for_signing()
        .next()
        .is_none()
    {
        return Err(format!(
            "certificate {} has no live signing-capable key: the builder cannot sign with it",
            cert.fingerprint()
        ));
    }
    Ok(cert)
}

fn shared_key(a: &Cert, b: &Cert) -> Option<openpgp::Fingerprint> {
    a.keys().find_map(|ka| {
        b.keys()
            .any(|kb| kb.key().fingerprint() == ka.key().fingerprint())
            .then(|| ka.key().fingerprint())
    })
}
