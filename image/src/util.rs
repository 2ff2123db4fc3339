//! Small helpers: running tools with a controlled environment, hashing, atomic writes.

use std::fs;
use std::io::Write;
use std::path::Path;
use std::process::Command;

pub type Result<T> = std::result::Result<T, String>;

/// The environment every tool the build runs sees, whatever the builder's shell has: fixed
/// locale, time zone and umask-independent outputs are what make two builds comparable.
pub fn pinned_env(cmd: &mut Command) -> &mut Command {
    cmd.env("LC_ALL", "C")
        .env("LANG", "C")
        .env("TZ", "UTC")
        .env_remove("LANGUAGE")
}

/// Runs a command, failing with its name, status and the tail of its output.
pub fn run(cmd: &mut Command) -> Result<String> {
    let out = cmd
        .output()
        .map_err(|e| format!("cannot run {:?}: {e}", cmd.get_program()))?;
    if !out.status.success() {
        let err = String::from_utf8_lossy(&out.stderr);
        let tail: Vec<&str> = err.lines().rev().take(30).collect();
        return Err(format!(
            "{:?} failed ({}):\n{}",
            cmd.get_program(),
            out.status,
            tail.into_iter().rev().collect::<Vec<_>>().join("\n")
        ));
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// First line of a tool's version output (`gcc --version`, `xorriso -version`).
pub fn version_line(program: &str, arg: &str, cwd: &Path) -> Result<String> {
    let mut c = Command::new(program);
    c.arg(arg).current_dir(cwd);
    let out = run(pinned_env(&mut c))?;
    Ok(out.lines().next().unwrap_or("").trim().to_owned())
}

pub fn sha256_hex(data: &[u8]) -> String {
    hexstr::encode(&treehash::sha256(data))
}

pub fn blake3_hex(data: &[u8]) -> String {
    blake3::hash(data).to_hex().to_string()
}

pub fn sha256_file(path: &Path) -> Result<String> {
    treehash::hash_file(path)
        .map(|(_, h)| hexstr::encode(&h))
        .map_err(|e| format!("{}: {e}", path.display()))
}

/// Writes through a temporary name in the same directory, fsyncs, renames: a reader never sees
/// half a file, and a crash leaves the old one.
pub fn write_atomic(path: &Path, data: &[u8]) -> Result<()> {
    let tmp = path.with_extension(format!(
        "{}.tmp{}",
        path.extension().and_then(|e| e.to_str()).unwrap_or(""),
        std::process::id()
    ));
    let ctx = |e: std::io::Error| format!("{}: {e}", tmp.display());
    let mut f = fs::File::create(&tmp).map_err(ctx)?;
    f.write_all(data).map_err(ctx)?;
    f.sync_all().map_err(ctx)?;
    fs::rename(&tmp, path).map_err(|e| format!("{}: {e}", path.display()))
}

pub fn read(path: &Path) -> Result<Vec<u8>> {
    fs::read(path).map_err(|e| format!("{}: {e}", path.display()))
}
