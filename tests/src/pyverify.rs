//! The cross-check of sherd's `sherd-verify` against the independent Python verifier
//! (`verifiers/python/sherd_verify.py`): both are run on the same folder and must come to the
//! same verdict. Standard library only, so the ceremony crate's host tests include this file
//! too (by `#[path]`) and every caller uses the one [`same_verdict`].

use std::ffi::OsStr;
use std::path::Path;
use std::process::Command;

/// Where the messages of the two verifiers may differ after a common stem, as
/// `verifiers/python/README.md` ("Where it differs from sherd-verify") documents: OpenPGP errors
/// are worded by each verifier itself (sherd-verify passes on Sequoia's), and `plan.toml` and
/// `request.toml` errors are the Python verifier's own. Each entry is (how the failure begins,
/// the stem): a failure beginning so may differ only after the first occurrence of the stem;
/// every other failure must be the same line. A recovery folder's failure that is its
/// generation folder's (`the generation folder does not verify: ...`) is compared as that
/// generation failure.
const WORDED_APART: [(&str, &str); 9] = [
    (
        "transcript.txt.sig: ",
        "transcript.txt.sig: the transcript signature does not verify: ",
    ),
    ("witness-signatures/", " over transcript.txt: "),
    ("root-cert.asc: ", "root-cert.asc: "),
    ("plan.toml: ", "plan.toml: "),
    // Recovery folders (sherd-verify --recovery).
    (
        "transcript.txt.sig: not a good signature over transcript.txt by the generation's root key ",
        "by the generation's root key ",
    ),
    ("request.toml: ", "request.toml: "),
    (
        "certified/cert.asc: ",
        "certified/cert.asc: not a certificate: ",
    ),
    ("", ": not an OpenPGP signature: "),
    ("", ": not a good signature by the root key over "),
];

/// How a recovery folder's failure that is its generation folder's begins.
const GENERATION_FAILS: &str = "the generation folder does not verify: ";

/// One verifier's verdict on a folder: its exit status and its standard output.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verdict {
    /// 0 pass, 1 fail (any other value is a usage error or a crash).
    pub status: i32,
    /// What it printed: `PASS <folder>` and the values, or `FAIL <folder>: <the failure>`.
    pub stdout: String,
}

impl Verdict {
    /// The `FAIL <folder>: <failure>` line, if the verdict is a failure.
    pub fn fail_line(&self) -> Option<&str> {
        self.stdout.lines().find(|l| l.starts_with("FAIL "))
    }
}

fn run(cmd: &mut Command, what: &str) -> Verdict {
    let out = cmd.output().unwrap_or_else(|e| panic!("{what}: {e}"));
    Verdict {
        status: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
    }
}

/// Runs `sherd_verify` (the binary) and the Python verifier of the workspace at `root` on
/// `folder`, and panics unless they agree: both pass (status 0) with byte-identical output, or
/// both fail (status 1) with the same `FAIL` line, up to a documented difference in wording
/// after one of the stems in `WORDED_APART`. Returns sherd-verify's verdict.
///
/// The Python verifier needs Python 3.11 and python3-cryptography (`scripts/setup` installs
/// them).
pub fn same_verdict(root: &Path, sherd_verify: &Path, folder: &Path) -> Verdict {
    run_both(root, sherd_verify, &[folder.as_os_str()], folder)
}

/// [`same_verdict`] for a recovery folder: both verifiers run as `--recovery <recovery>
/// --generation <generation> [--files <files>]`, and must agree as there.
pub fn same_recovery_verdict(
    root: &Path,
    sherd_verify: &Path,
    recovery: &Path,
    generation: &Path,
    files: Option<&Path>,
) -> Verdict {
    same_recovery_verdict_replaced(root, sherd_verify, recovery, generation, &[], files)
}

/// [`same_recovery_verdict`] for a recovery whose root is pinned with replace-card folders:
/// `--replaced <folder>` for each of `replaced`, in order.
pub fn same_recovery_verdict_replaced(
    root: &Path,
    sherd_verify: &Path,
    recovery: &Path,
    generation: &Path,
    replaced: &[&Path],
    files: Option<&Path>,
) -> Verdict {
    let mut args = vec![
        "--recovery".as_ref(),
        recovery.as_os_str(),
        "--generation".as_ref(),
        generation.as_os_str(),
    ];
    for r in replaced {
        args.extend(["--replaced".as_ref(), r.as_os_str()]);
    }
    if let Some(files) = files {
        args.extend(["--files".as_ref(), files.as_os_str()]);
    }
    run_both(root, sherd_verify, &args, recovery)
}

/// Runs both verifiers with `args`; `folder` is the one their verdict names.
fn run_both(root: &Path, sherd_verify: &Path, args: &[&OsStr], folder: &Path) -> Verdict {
    let rust = run(
        Command::new(sherd_verify).args(args),
        &sherd_verify.display().to_string(),
    );
    let script = root.join("verifiers/python/sherd_verify.py");
    let python = run(
        Command::new("python3").arg(&script).args(args),
        "python3 (./scripts/setup installs python3 and python3-cryptography)",
    );
    let both = format!(
        "on {}\n--- sherd-verify (status {}):\n{}--- {} (status {}):\n{}",
        folder.display(),
        rust.status,
        rust.stdout,
        script.display(),
        python.status,
        python.stdout
    );
    assert!(
        matches!(rust.status, 0 | 1) && python.status == rust.status,
        "the verifiers' exit statuses differ or one did not run to a verdict {both}"
    );
    if rust.status == 0 {
        assert_eq!(
            rust.stdout, python.stdout,
            "both pass, with other output {both}"
        );
        return rust;
    }
    let (r, p) = match (rust.fail_line(), python.fail_line()) {
        (Some(r), Some(p)) => (r, p),
        _ => panic!("status 1 without a FAIL line {both}"),
    };
    let head = format!("FAIL {}: ", folder.display());
    let agree = match (r.strip_prefix(&head), p.strip_prefix(&head)) {
        (Some(r), Some(p)) => same_failure(r, p),
        _ => false,
    };
    assert!(agree, "the verifiers name different failures {both}");
    rust
}

/// Whether two failures (a `FAIL` line after `FAIL <folder>: `) name the same failure: the same
/// text, or differing only after a stem of `WORDED_APART`.
fn same_failure(rust: &str, python: &str) -> bool {
    if let (Some(r), Some(p)) = (
        rust.strip_prefix(GENERATION_FAILS),
        python.strip_prefix(GENERATION_FAILS),
    ) {
        return same_failure(r, p);
    }
    rust == python
        || WORDED_APART.iter().any(|(begins, stem)| {
            let end = rust.find(stem).map(|i| i + stem.len());
            rust.starts_with(begins)
                && end.is_some_and(|end| python.get(..end) == Some(&rust[..end]))
        })
}

#[cfg(test)]
mod tests {
    use super::same_failure;

    #[test]
    fn failures_are_the_same_line_up_to_the_documented_wording() {
        let line = "transcript.txt: line 7: record number 7, expected 6";
        assert!(same_failure(line, line));
        assert!(!same_failure(
            line,
            "transcript.txt: line 7: record number 8, expected 6"
        ));
        assert!(!same_failure(&format!("transcript.txt: {line}"), line));
        let sig = "transcript.txt.sig: the transcript signature does not verify: ";
        assert!(same_failure(
            &format!("{sig}Message has been manipulated"),
            &format!("{sig}bad signature (the key did not make it over these bytes)")
        ));
        assert!(!same_failure(
            &format!("{sig}x"),
            "transcript.txt.sig: cannot read: x"
        ));
        assert!(same_failure("plan.toml: a", "plan.toml: b"));
        // A recovery folder's generation failure is compared as the generation's.
        let g = "the generation folder does not verify: ";
        assert!(same_failure(
            &format!("{g}plan.toml: a"),
            &format!("{g}plan.toml: b")
        ));
        assert!(!same_failure(
            &format!("{g}shards.toml: a"),
            &format!("{g}shards.toml: b")
        ));
        let r = "transcript.txt.sig: not a good signature over transcript.txt by the generation's root key ";
        assert!(same_failure(
            &format!("{r}AB: made by the root key, but (Sequoia's words)"),
            &format!("{r}AB: made by the root key, but (the Python verifier's)")
        ));
        assert!(!same_failure(
            "signatures/a.sig: 3 bytes, the record says 4",
            "signatures/a.sig: 3 bytes, the record says 5"
        ));
        // A value compared in another file must be the same, though the line names plan.toml.
        assert!(!same_failure(
            "SHA-256 of plan.toml: transcript.txt record 26 (output.file) says 00, found 01",
            "SHA-256 of plan.toml: transcript.txt record 26 (output.file) says 00, found 02"
        ));
    }
}
