//! Two builds of the same source in different directories, as different umasks, time zones and
//! locales, give the same bytes. The kernel comes from the shared cache here (its own rebuild is
//! `fresh_kernel_too`, slower, run on demand and by the release check).

use e2e::{manifest_field, workspace};
use std::path::{Path, PathBuf};
use std::process::Command;

const ARTIFACTS: &[&str] = &[
    "init",
    "initrd.img",
    "rootfs.tree",
    "sherd.iso",
    "vmlinuz",
    "manifest.txt",
    "SHA256SUMS",
    "B3SUMS",
];

/// Copies the files git would commit (tracked, plus untracked but not ignored) to `dst`.
fn copy_source(dst: &Path) {
    let ws = workspace();
    let out = Command::new("git")
        .arg("-C")
        .arg(&ws)
        .args([
            "ls-files",
            "-z",
            "--cached",
            "--others",
            "--exclude-standard",
        ])
        .output()
        .expect("git is needed");
    assert!(out.status.success());
    for name in out.stdout.split(|b| *b == 0).filter(|n| !n.is_empty()) {
        let rel = std::str::from_utf8(name).unwrap();
        let from = ws.join(rel);
        if !from.is_file() {
            continue; // deleted in the working tree
        }
        let to = dst.join(rel);
        std::fs::create_dir_all(to.parent().unwrap()).unwrap();
        std::fs::copy(&from, &to).unwrap();
    }
}

fn tool() -> PathBuf {
    let st = Command::new("cargo")
        .current_dir(workspace())
        .args(["build", "--locked", "-q", "-p", "sherd-image"])
        .status()
        .unwrap();
    assert!(st.success());
    workspace().join("target/debug/sherd-image")
}

/// Builds in `dir` with the given umask and environment; returns the out directory.
fn build_in(dir: &Path, umask: &str, tz: &str, lang: &str, extra: &[&str]) -> PathBuf {
    copy_source(dir);
    let out = dir.join("out");
    let sde = manifest_field("source-date-epoch");
    let st = Command::new("sh")
        .arg("-c")
        .arg(format!("umask {umask} && exec \"$@\""))
        .arg("sh")
        .arg(tool())
        .arg("build")
        .arg("--out")
        .arg(&out)
        .args(extra)
        .current_dir(dir)
        .env("SOURCE_DATE_EPOCH", sde)
        .env("TZ", tz)
        .env("LANG", lang)
        .env("LC_ALL", lang)
        .status()
        .unwrap();
    assert!(st.success(), "build in {} failed", dir.display());
    out
}

fn compare(a: &Path, b: &Path) {
    let mut differ = Vec::new();
    for name in ARTIFACTS {
        let (x, y) = (
            std::fs::read(a.join(name)).unwrap(),
            std::fs::read(b.join(name)).unwrap(),
        );
        if x != y {
            differ.push(*name);
        }
    }
    assert!(
        differ.is_empty(),
        "not reproducible: {differ:?} differ between {} and {} (try diffoscope on them)",
        a.display(),
        b.display()
    );
}

fn scratch(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("sherd-repro-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    d
}

#[test]
#[ignore = "needs the built image; the README's test command runs it"]
fn two_builds_in_different_places_and_environments_are_identical() {
    let a = scratch("a").join("src");
    let b = scratch("b").join("a/much/deeper/path/sherd");
    let out_a = build_in(&a, "022", "UTC", "C", &[]);
    let out_b = build_in(&b, "077", "Pacific/Chatham", "fr_FR.UTF-8", &[]);
    compare(&out_a, &out_b);
    let _ = std::fs::remove_dir_all(a.parent().unwrap());
    let _ = std::fs::remove_dir_all(b.ancestors().nth(5).unwrap());
}

#[test]
#[ignore = "slow (rebuilds the kernel): cargo test -p e2e --test reproducible -- --ignored fresh_kernel_too"]
fn fresh_kernel_too() {
    let a = scratch("ka").join("src");
    let b = scratch("kb").join("other/place");
    let out_a = build_in(&a, "022", "UTC", "C", &[]);
    let out_b = build_in(&b, "027", "Asia/Kolkata", "C.UTF-8", &["--fresh-kernel"]);
    compare(&out_a, &out_b);
    let _ = std::fs::remove_dir_all(a.parent().unwrap());
    let _ = std::fs::remove_dir_all(b.ancestors().nth(2).unwrap());
}
