#![forbid(unsafe_code)]
//! `sherd-release`: what a build party runs to rebuild, attest and verify a release.

use sequoia_openpgp as openpgp;
use sherd_release::attest::{self, SignatureFile};
use sherd_release::builders::Builders;
use sherd_release::{Result, pipeline, rebuild, steps};
use std::io::{BufRead, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

const USAGE: &str = "usage:
  sherd-release rebuild --manifest releases/VER/manifest.txt [--report-only] [--kernel-cache]
                        [--from-worktree] [--artifacts DIR] [--work DIR] [--keep] [--repo DIR]
  sherd-release sign --manifest M (--key KEYFILE [--password-file F] | --card [--reader ID]
                     [--pin-file F] [--cert CERT]) [--builders FILE] [--out FILE]
  sherd-release sign-iso --iso out/sherd.iso (--key KEYFILE | --card ...) [--out FILE]
  sherd-release verify --release releases/VER [--builders FILE]
  sherd-release step kernel|init|initramfs|iso|manifest [--src DIR] [--out DIR] [--cache DIR]
                     [--kernel-tarball FILE] [--release-mode]
  sherd-release test-key NAME DIR
  sherd-release check-builders FILE
  sherd-release check-stagex [FILE...]";

#[derive(Default)]
struct Args {
    opts: Vec<(String, Option<String>)>,
    positional: Vec<String>,
}

/// Options that take no value.
const FLAGS: &[&str] = &[
    "--report-only",
    "--kernel-cache",
    "--from-worktree",
    "--keep",
    "--card",
    "--release-mode",
];
const VALUED: &[&str] = &[
    "--manifest",
    "--artifacts",
    "--work",
    "--repo",
    "--key",
    "--password-file",
    "--reader",
    "--pin-file",
    "--cert",
    "--builders",
    "--out",
    "--iso",
    "--release",
    "--src",
    "--cache",
    "--kernel-tarball",
];

impl Args {
    fn parse(mut it: impl Iterator<Item = String>) -> Result<Args> {
        let mut a = Args::default();
        while let Some(arg) = it.next() {
            if FLAGS.contains(&arg.as_str()) {
                a.opts.push((arg, None));
            } else if VALUED.contains(&arg.as_str()) {
                let v = it.next().ok_or_else(|| format!("{arg} needs a value"))?;
                a.opts.push((arg, Some(v)));
            } else if arg.starts_with("--") {
                return Err(format!("unknown option {arg}\n{USAGE}"));
            } else {
                a.positional.push(arg);
            }
        }
        Ok(a)
    }
    fn flag(&self, name: &str) -> bool {
        self.opts.iter().any(|(k, _)| k == name)
    }
    fn path(&self, name: &str) -> Option<PathBuf> {
        self.opts
            .iter()
            .rev()
            .find(|(k, _)| k == name)
            .and_then(|(_, v)| v.as_ref().map(PathBuf::from))
    }
    fn need(&self, name: &str) -> Result<PathBuf> {
        self.path(name)
            .ok_or_else(|| format!("{name} is required\n{USAGE}"))
    }
}

fn main() -> ExitCode {
    let mut argv = std::env::args().skip(1);
    let cmd = argv.next().unwrap_or_default();
    let result = Args::parse(argv).and_then(|a| match cmd.as_str() {
        "rebuild" => cmd_rebuild(&a),
        "sign" => cmd_sign(&a),
        "sign-iso" => cmd_sign_iso(&a),
        "verify" => cmd_verify(&a),
        "check-builders" => {
            let f = a.positional.first().ok_or(USAGE)?;
            let b = Builders::read(Path::new(f))?;
            println!(
                "{f}: {} builders, threshold {}",
                b.builders.len(),
                b.threshold
            );
            Ok(true)
        }
        "check-stagex" => cmd_check_stagex(&a),
        "step" => cmd_step(&a),
        "test-key" => cmd_test_key(&a),
        "-h" | "--help" | "help" => {
            println!("{USAGE}");
            Ok(true)
        }
        _ => Err(USAGE.into()),
    });
    match result {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::FAILURE,
        Err(e) => {
            eprintln!("sherd-release: error: {e}");
            ExitCode::from(2)
        }
    }
}

/// The checkout the command runs in (where `releases/` and `image/` are).
fn repo_root() -> Result<PathBuf> {
    let cwd = std::env::current_dir().map_err(|e| e.to_string())?;
    cwd.ancestors()
        .find(|d| d.join("image/initramfs.list").is_file() && d.join(".git").exists())
        .map(Path::to_owned)
        .ok_or_else(|| "run sherd-release inside a git checkout of sherd".into())
}

fn cmd_rebuild(a: &Args) -> Result<bool> {
    let o = rebuild::Options {
        manifest: a.need("--manifest")?,
        repo: match a.path("--repo") {
            Some(r) => r,
            None => repo_root()?,
        },
        report_only: a.flag("--report-only"),
        kernel_cache: a.flag("--kernel-cache"),
        from_worktree: a.flag("--from-worktree"),
        artifacts: a.path("--artifacts"),
        work: a.path("--work"),
        keep: a.flag("--keep"),
    };
    let r = rebuild::rebuild(&o)?;
    for l in &r.lines {
        println!("{l}");
    }
    if r.identical {
        println!(
            "REPRODUCED: every artifact and the manifest are identical to {}",
            o.manifest.display()
        );
        if o.report_only && r.lines.iter().any(|l| l.starts_with("toolchain differs")) {
            println!("(with a different toolchain: --report-only)");
        }
    } else {
        println!(
            "NOT REPRODUCED: see above; the rebuild is kept in {}",
            r.work.display()
        );
    }
    Ok(r.identical)
}

/// Reads a secret from a file (first line) or from the terminal without echo.
fn secret(file: Option<PathBuf>, prompt: &str) -> Result<String> {
    if let Some(f) = file {
        let t = std::fs::read_to_string(&f).map_err(|e| format!("{}: {e}", f.display()))?;
        return Ok(t.lines().next().unwrap_or("").to_owned());
    }
    read_no_echo(prompt)
}

fn read_no_echo(prompt: &str) -> Result<String> {
    use nix::sys::termios::{LocalFlags, SetArg, tcgetattr, tcsetattr};
    let tty = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/tty")
        .map_err(|e| format!("no terminal to ask for the {prompt} ({e}): give it in a file"))?;
    let old = tcgetattr(&tty).map_err(|e| format!("terminal: {e}"))?;
    let mut quiet = old.clone();
    quiet.local_flags.remove(LocalFlags::ECHO);
    tcsetattr(&tty, SetArg::TCSANOW, &quiet).map_err(|e| format!("terminal: {e}"))?;
    let mut line = String::new();
    let r = (|| -> std::io::Result<()> {
        let mut w = &tty;
        write!(w, "{prompt}: ")?;
        w.flush()?;
        std::io::BufReader::new(&tty).read_line(&mut line)?;
        writeln!(w)?;
        Ok(())
    })();
    // Echo comes back whatever happened.
    let _ = tcsetattr(&tty, SetArg::TCSANOW, &old);
    r.map_err(|e| format!("reading the {prompt}: {e}"))?;
    Ok(line.trim_end_matches(['\r', '\n']).to_owned())
}

fn default_builders(a: &Args, near: &Path) -> PathBuf {
    a.path("--builders").unwrap_or_else(|| {
        // A release folder sits in releases/, beside builders.toml.
        near.parent()
            .and_then(Path::parent)
            .map(|p| p.join("builders.toml"))
            .filter(|p| p.is_file())
            .unwrap_or_else(|| PathBuf::from("releases/builders.toml"))
    })
}

/// Signs `data` with the key file or the card; returns the armored signature and the signing
/// certificate's fingerprint.
fn sign_data(a: &Args, data: &[u8], cert_hint: Option<&Builders>) -> Result<(Vec<u8>, String)> {
    if a.flag("--card") == a.path("--key").is_some() {
        return Err(format!(
            "give exactly one of --key KEYFILE and --card\n{USAGE}"
        ));
    }
    if let Some(key) = a.path("--key") {
        let tsk = attest::read_key(&key)?;
        let k = attest::signing_key(&tsk)?;
        let fpr = k.fingerprint().to_hex();
        let signer = attest::unlock(k, || {
            secret(a.path("--password-file"), &format!("password of key {fpr}")).map(Into::into)
        })?;
        return Ok((attest::sign_detached(signer, data)?, fpr));
    }
    card_sign(a, data, cert_hint)
}

fn card_sign(a: &Args, data: &[u8], builders: Option<&Builders>) -> Result<(Vec<u8>, String)> {
    use cards::discovery;
    let readers = discovery::scan(Path::new(discovery::SYSFS_USB_DEVICES))
        .map_err(|e| format!("looking for card readers: {e}"))?;
    let wanted = a
        .opts
        .iter()
        .find(|(k, _)| k == "--reader")
        .and_then(|(_, v)| v.clone());
    let info = match (&wanted, readers.as_slice()) {
        (Some(id), rs) => rs
            .iter()
            .find(|r| &r.id == id)
            .ok_or_else(|| format!("no reader {id}; sherd-cards list shows the readers"))?,
        (None, [one]) => one,
        (None, []) => return Err("no CCID card reader found: plug one in".into()),
        (None, _) => {
            return Err(format!(
                "{} readers found ({}); choose one with --reader ID",
                readers.len(),
                readers
                    .iter()
                    .map(|r| r.id.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            ));
        }
    };
    let err = |e: cards::Error| format!("card in {}: {e}", info.name());
    let mut reader = cards::usb::open(info).map_err(err)?;
    reader.power_on().map_err(err)?;
    let mut card = cards::OpenPgpCard::open(reader).map_err(err)?;
    let cert = match a.path("--cert") {
        Some(c) => {
            use openpgp::parse::Parse;
            Some(openpgp::Cert::from_file(&c).map_err(|e| format!("{}: {e}", c.display()))?)
        }
        None => None,
    };
    let (cert, fp) = attest::card_certificate(&mut card, builders, cert)?;
    let pin = secret(
        a.path("--pin-file"),
        &format!("user PIN of card {}", card.ident()),
    )?;
    let pin = cards::Pin::new(pin).map_err(err)?;
    Ok((attest::sign_with_card(&mut card, &pin, &cert, data)?, fp))
}

fn cmd_sign(a: &Args) -> Result<bool> {
    let manifest = a.need("--manifest")?;
    let data = std::fs::read(&manifest).map_err(|e| format!("{}: {e}", manifest.display()))?;
    sherd_release::release::Manifest::parse(&String::from_utf8_lossy(&data)).map_err(|e| {
        format!(
            "{}: {e}; only a sherd manifest is signed",
            manifest.display()
        )
    })?;
    let bpath = default_builders(a, &manifest);
    let builders = Builders::read(&bpath).ok();
    let (sig, fpr) = sign_data(a, &data, builders.as_ref())?;
    let handle: openpgp::KeyHandle = fpr.parse().map_err(|e| format!("{e}"))?;
    let out = match a.path("--out") {
        Some(o) => o,
        None => {
            let b = builders
                .as_ref()
                .and_then(|b| b.by_key(&handle))
                .ok_or_else(|| {
                    format!(
                        "key {fpr} is no builder's in {}: add the builder there (reviewed) or \
                         give --out FILE",
                        bpath.display()
                    )
                })?;
            manifest.with_file_name(attest::signature_file_name(&b.name))
        }
    };
    write_new(&out, &sig)?;
    println!("wrote {} (key {fpr})", out.display());
    Ok(true)
}

fn cmd_sign_iso(a: &Args) -> Result<bool> {
    let iso = a.need("--iso")?;
    let data = std::fs::read(&iso).map_err(|e| format!("{}: {e}", iso.display()))?;
    let builders = Builders::read(&default_builders(a, Path::new("releases/x"))).ok();
    let (sig, fpr) = sign_data(a, &data, builders.as_ref())?;
    let out = a.path("--out").unwrap_or_else(|| {
        let mut s = iso.clone().into_os_string();
        s.push(".asc");
        s.into()
    });
    write_new(&out, &sig)?;
    println!(
        "wrote {} (key {fpr}); Heads checks it with gpg --verify {} {}",
        out.display(),
        out.display(),
        iso.display()
    );
    Ok(true)
}

/// Writes through a temporary name and a rename, so a reader never sees half a signature.
fn write_new(path: &Path, data: &[u8]) -> Result<()> {
    sherd_image::util::write_atomic(path, data)
}

fn cmd_verify(a: &Args) -> Result<bool> {
    let release = a.need("--release")?;
    let manifest_path = release.join(attest::MANIFEST);
    let manifest =
        std::fs::read(&manifest_path).map_err(|e| format!("{}: {e}", manifest_path.display()))?;
    let bpath = default_builders(a, &manifest_path);
    let builders = Builders::read(&bpath)?;
    let files: Vec<SignatureFile> = attest::release_signatures(&release)?;
    match attest::verify(&builders, &manifest, &files) {
        Ok(v) => {
            for s in &v.signed {
                println!(
                    "signed      {}{} (key {}, {})",
                    s.builder,
                    if s.test_key { " [TEST KEY]" } else { "" },
                    s.key,
                    s.file.display()
                );
            }
            for n in &v.not_signed {
                println!("not signed  {n}");
            }
            println!(
                "OK: {} of {} listed builders signed {} ({} required)",
                v.signed.len(),
                builders.builders.len(),
                manifest_path.display(),
                v.threshold
            );
            if v.signed.iter().any(|s| s.test_key) {
                println!(
                    "WARNING: a TEST KEY signed; real build parties replace it in {}",
                    bpath.display()
                );
            }
            Ok(true)
        }
        Err(e) => {
            println!("FAILED: {}", manifest_path.display());
            for l in e.lines() {
                println!("  {l}");
            }
            Ok(false)
        }
    }
}

fn cmd_check_stagex(a: &Args) -> Result<bool> {
    let files: Vec<PathBuf> = if a.positional.is_empty() {
        vec![repo_root()?.join("stagex/Containerfile")]
    } else {
        a.positional.iter().map(PathBuf::from).collect()
    };
    let mut ok = true;
    for f in files {
        let t = std::fs::read_to_string(&f).map_err(|e| format!("{}: {e}", f.display()))?;
        let p = steps::check_containerfile(&t);
        for l in &p {
            println!("{}: {l}", f.display());
        }
        ok &= p.is_empty();
        if p.is_empty() {
            println!(
                "{}: pins well-formed, every native step mirrored",
                f.display()
            );
        }
    }
    Ok(ok)
}

fn cmd_step(a: &Args) -> Result<bool> {
    let step = a
        .positional
        .first()
        .ok_or_else(|| format!("which step?\n{USAGE}"))?;
    let src = match a.path("--src") {
        Some(s) => s,
        None => repo_root()?,
    };
    let o = pipeline::Options {
        out: a.path("--out").unwrap_or_else(|| src.join("out")),
        cache: a.path("--cache").unwrap_or_else(|| {
            std::env::var_os("SHERD_CACHE")
                .map(PathBuf::from)
                .or_else(|| std::env::var_os("HOME").map(|h| Path::new(&h).join(".cache/sherd")))
                .unwrap_or_else(|| "/tmp/sherd".into())
        }),
        tarball: a
            .path("--kernel-tarball")
            .unwrap_or_else(|| sherd_image::kernel::PIN.tarball.into()),
        release: a.flag("--release-mode"),
        src,
    };
    pipeline::run_step(step, &o)?;
    Ok(true)
}

/// A throwaway Ed25519 builder key for tests and rehearsals: the secret key unencrypted, the
/// certificate, and the `[[builder]]` table for builders.toml marked `test-key = true`.
fn cmd_test_key(a: &Args) -> Result<bool> {
    use openpgp::cert::prelude::*;
    use openpgp::serialize::SerializeInto;
    let [name, dir] = a.positional.as_slice() else {
        return Err(format!("test-key needs NAME and DIR\n{USAGE}"));
    };
    let (cert, _) = CertBuilder::new()
        .set_cipher_suite(CipherSuite::Cv25519)
        .add_userid(format!("{name} (sherd TEST builder key, not for releases)"))
        .add_signing_subkey()
        .generate()
        .map_err(|e| format!("generating the key: {e}"))?;
    let armored = |r: openpgp::Result<Vec<u8>>| r.map_err(|e| format!("serializing: {e}"));
    let secret = armored(cert.as_tsk().armored().to_vec())?;
    let public = armored(cert.armored().to_vec())?;
    let dir = Path::new(dir);
    std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    write_new(&dir.join(format!("{name}.secret.asc")), &secret)?;
    write_new(&dir.join(format!("{name}.cert.asc")), &public)?;
    println!(
        "[[builder]]\nname = \"{name}\"\ntest-key = true\nnote = \"TEST KEY: made by \
         sherd-release test-key; its signature proves nothing\"\ncertificate = \"\"\"\n{}\"\"\"",
        String::from_utf8_lossy(&public)
    );
    eprintln!(
        "wrote {}/{name}.secret.asc (unencrypted) and {name}.cert.asc",
        dir.display()
    );
    Ok(true)
}
