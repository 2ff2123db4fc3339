//! Building `/init`: the one recipe both `sherd-image build` and the stagex pipeline's steps
//! use, so the two cannot drift apart.

use crate::elf;
use crate::util::{self, Result, pinned_env, run};
use std::path::Path;
use std::process::Command;

/// The target `/init` is built for.
pub const MUSL: &str = "x86_64-unknown-linux-musl";

/// Builds `/init` for musl, static-pie, with paths remapped and a clean environment, into
/// `<repo>/target/image`; `toolchain` is embedded for the first screen. Checks the result is
/// static-pie. `features` are cargo features (`crate/feature`) of a test build; empty for
/// every real one.
pub fn build_init(
    repo: &Path,
    commit: &str,
    sde: i64,
    toolchain: &str,
    features: &[&str],
) -> Result<Vec<u8>> {
    let home = std::env::var("HOME").unwrap_or_else(|_| "/root".into());
    let cargo_home = std::env::var("CARGO_HOME").unwrap_or_else(|_| format!("{home}/.cargo"));
    let rustup_home = std::env::var("RUSTUP_HOME").unwrap_or_else(|_| format!("{home}/.rustup"));
    let target_dir = repo.join("target/image");
    let rustflags = [
        "-Ctarget-feature=+crt-static".to_owned(),
        format!("--remap-path-prefix={}=/sherd", repo.display()),
        format!("--remap-path-prefix={cargo_home}=/cargo"),
    ]
    .join("\x1f");
    let mut c = Command::new("cargo");
    // A clean environment: nothing from the builder's shell reaches the compiler.
    c.env_clear()
        .current_dir(repo)
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("HOME", &home)
        .env("CARGO_HOME", &cargo_home)
        .env("RUSTUP_HOME", &rustup_home)
        .env("CARGO_TARGET_DIR", &target_dir)
        .env("CARGO_ENCODED_RUSTFLAGS", rustflags)
        .env("CARGO_INCREMENTAL", "0")
        .env("SOURCE_DATE_EPOCH", sde.to_string())
        .env("SHERD_GIT_COMMIT", commit)
        .env("SHERD_SOURCE_DATE_EPOCH", sde.to_string())
        .env("SHERD_TOOLCHAIN", toolchain)
        .args([
            "build",
            "--locked",
            "--release",
            "-p",
            "sherd-init",
            "--target",
            MUSL,
        ]);
    if !features.is_empty() {
        c.arg("--features").arg(features.join(","));
    }
    // Offline in a container: crates were fetched before the network went away.
    if std::env::var_os("CARGO_NET_OFFLINE").is_some() {
        c.env("CARGO_NET_OFFLINE", "true");
    }
    pinned_env(&mut c);
    eprintln!("sherd-image: init: cargo build --locked --release (musl, static-pie)");
    run(&mut c)
        .map_err(|e| format!("{e}\n(the musl target is needed: rustup target add {MUSL})"))?;
    let path = target_dir.join(MUSL).join("release/init");
    let bin = util::read(&path)?;
    match elf::linkage(&bin)? {
        elf::Linkage::StaticPie => Ok(bin),
        other => Err(format!(
            "{} is {other}; /init must be static-pie",
            path.display()
        )),
    }
}
