//! `rebuild`'s refusals, which come before any compiling: a manifest from a dirty tree, and a
//! builder whose toolchain differs from the release's (probed in a real clone of this
//! repository's HEAD). The build itself is exercised by the e2e test `fresh_kernel_too`.

use sherd_release::rebuild::{self, Options};
use std::path::{Path, PathBuf};
use std::process::Command;

fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_owned()
}

fn head() -> String {
    let out = Command::new("git")
        .arg("-C")
        .arg(workspace())
        .args(["rev-parse", "HEAD"])
        .output()
        .unwrap();
    String::from_utf8(out.stdout).unwrap().trim().to_owned()
}

fn manifest(commit: &str, tool: &str) -> String {
    let h = "ab".repeat(32);
    format!(
        "format sherd-manifest 2\nversion 0.1.0\ngit-commit {commit}\nsource-date-epoch 1\n\
         mode test\ntool rustc {tool}\nartifact init size 3 sha256 {h} blake3 {h}\n"
    )
}

fn options(dir: &Path, text: &str) -> Options {
    let m = dir.join("manifest.txt");
    std::fs::write(&m, text).unwrap();
    Options {
        manifest: m,
        repo: workspace(),
        report_only: false,
        kernel_cache: true,
        from_worktree: false,
        artifacts: None,
        work: Some(dir.join("work")),
        keep: true,
    }
}

#[test]
fn refuses_a_manifest_built_from_a_dirty_tree() {
    let d = tempfile::tempdir().unwrap();
    let e = rebuild::rebuild(&options(
        d.path(),
        &manifest(&format!("{}-dirty", head()), "x"),
    ))
    .unwrap_err();
    assert!(
        e.contains("built from uncommitted changes") && e.contains("--from-worktree"),
        "{e}"
    );
}

#[test]
fn refuses_a_different_toolchain_and_lists_the_difference() {
    let d = tempfile::tempdir().unwrap();
    let e = rebuild::rebuild(&options(
        d.path(),
        &manifest(&head(), "rustc 0.0.1 (not this one)"),
    ))
    .unwrap_err();
    assert!(
        e.contains("toolchain differs from the release's")
            && e.contains(
                "release has `tool rustc rustc 0.0.1 (not this one)`, here `tool rustc rustc 1."
            )
            && e.contains("--report-only"),
        "{e}"
    );
    // The clone is at the release's commit, somewhere else.
    let src = d
        .path()
        .join("work/elsewhere/a/deeper/checkout/sherd-rebuilt");
    let out = Command::new("git")
        .arg("-C")
        .arg(&src)
        .args(["rev-parse", "HEAD"])
        .output()
        .unwrap();
    assert_eq!(String::from_utf8(out.stdout).unwrap().trim(), head());
}

#[test]
fn refuses_a_commit_that_is_not_in_the_repository() {
    let d = tempfile::tempdir().unwrap();
    let e = rebuild::rebuild(&options(d.path(), &manifest(&"0".repeat(40), "x"))).unwrap_err();
    assert!(e.contains("git fetch it first"), "{e}");
}

#[test]
fn from_worktree_lays_the_working_trees_changes_over_the_commit() {
    let d = tempfile::tempdir().unwrap();
    let mut o = options(
        d.path(),
        &manifest(
            &format!("{}-dirty", head()),
            "rustc 0.0.1 (stops before building)",
        ),
    );
    o.from_worktree = true;
    let e = rebuild::rebuild(&o).unwrap_err();
    let clean = Command::new("git")
        .arg("-C")
        .arg(workspace())
        .args(["status", "--porcelain", "--untracked-files=no"])
        .output()
        .unwrap()
        .stdout
        .is_empty();
    if clean {
        assert!(e.contains("has no changes against the commit"), "{e}");
        return;
    }
    // It got as far as the toolchain check, on a clone that carries the changes.
    assert!(e.contains("toolchain differs"), "{e}");
    let src = d
        .path()
        .join("work/elsewhere/a/deeper/checkout/sherd-rebuilt");
    let status = Command::new("git")
        .arg("-C")
        .arg(&src)
        .args(["status", "--porcelain", "--untracked-files=no"])
        .output()
        .unwrap();
    assert!(!status.stdout.is_empty(), "the clone shows no changes");
}
