//! `sherd-release rebuild`: a build party rebuilds a release from its git commit, somewhere
//! else and in a different environment, and compares every artifact with the release manifest.

use crate::Result;
use crate::release::{self, Manifest};
use sherd_image::manifest::Toolchain;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

pub struct Options {
    pub manifest: PathBuf,
    /// The git repository holding the release's commit.
    pub repo: PathBuf,
    pub report_only: bool,
    /// Reuse the shared kernel cache instead of building the kernel (development only).
    pub kernel_cache: bool,
    /// Overlay the working tree's changes on the commit: for a manifest built from a dirty
    /// tree (tests), never for a release.
    pub from_worktree: bool,
    /// The release's own artifacts, for diffoscope to look inside a differing one.
    pub artifacts: Option<PathBuf>,
    pub work: Option<PathBuf>,
    pub keep: bool,
}

/// What the rebuild varies against a typical build, shown to the builder and in the docs.
pub const VARIED: &[(&str, &str)] = &[
    ("umask", "0077"),
    ("TZ", "Pacific/Chatham"),
    ("LANG", "fr_FR.UTF-8"),
    ("LC_ALL", "fr_FR.UTF-8"),
];

/// What it cannot vary here, and why.
pub const NOT_VARIED: &[&str] = &[
    "user and uid: changing them needs root or a second account (the kernel and cargo record \
     neither: KBUILD_BUILD_USER is fixed, paths are remapped)",
    "HOME, CARGO_HOME, RUSTUP_HOME: the pinned Rust toolchain lives there",
    "hostname: needs a UTS namespace (KBUILD_BUILD_HOST is fixed)",
    "the clock: only by running at another time, which a rebuild does; every timestamp in the \
     artifacts comes from SOURCE_DATE_EPOCH",
    "number of CPUs and the file system",
];

#[derive(Debug)]
pub struct Outcome {
    pub identical: bool,
    pub work: PathBuf,
    pub lines: Vec<String>,
}

fn say(msg: &str) {
    eprintln!("sherd-release: {msg}");
}

fn git(dir: &Path, args: &[&str]) -> Result<String> {
    let out = Command::new("git")
        .arg("-C")
        .arg(dir)
        .args(args)
        .env("LC_ALL", "C")
        .output()
        .map_err(|e| format!("cannot run git: {e} (install git)"))?;
    if !out.status.success() {
        return Err(format!(
            "git {} in {} failed: {}",
            args.join(" "),
            dir.display(),
            String::from_utf8_lossy(&out.stderr).trim()
        ));
    }
    Ok(String::from_utf8_lossy(&out.stdout).trim().to_owned())
}

pub fn rebuild(o: &Options) -> Result<Outcome> {
    let text = std::fs::read_to_string(&o.manifest)
        .map_err(|e| format!("{}: {e}", o.manifest.display()))?;
    let release = Manifest::parse(&text).map_err(|e| format!("{}: {e}", o.manifest.display()))?;
    let recorded = release.git_commit();
    let (commit, dirty) = match recorded.strip_suffix("-dirty") {
        Some(c) => (c, true),
        None => (recorded, false),
    };
    if !release::is_hex(commit, 40) {
        return Err(format!(
            "{}: git-commit is {recorded:?}; only a build from a git checkout can be rebuilt",
            o.manifest.display()
        ));
    }
    if dirty && !o.from_worktree {
        return Err(format!(
            "{}: built from uncommitted changes ({recorded}): no commit reproduces it. Releases \
             are built from a clean checkout (sherd-image build --release); to test a working \
             tree against its own build, pass --from-worktree",
            o.manifest.display()
        ));
    }
    if o.from_worktree && !dirty {
        return Err(format!(
            "--from-worktree is for manifests built from a dirty tree; {} names the clean commit \
             {commit}: rebuild it without the flag",
            o.manifest.display()
        ));
    }

    let work = match &o.work {
        Some(w) => {
            std::fs::create_dir_all(w).map_err(|e| format!("{}: {e}", w.display()))?;
            w.clone()
        }
        None => tempfile::Builder::new()
            .prefix("sherd-rebuild-")
            .tempdir()
            .map_err(|e| format!("cannot make a work directory: {e}"))?
            .keep(),
    };
    // A path unlike any checkout's, so that a leaked build path shows as a difference.
    let src = work.join("elsewhere/a/deeper/checkout/sherd-rebuilt");
    let out = work.join("out");
    say(&format!(
        "cloning {commit} from {} into {}",
        o.repo.display(),
        src.display()
    ));
    let repo = o.repo.to_string_lossy().into_owned();
    let src_s = src.to_string_lossy().into_owned();
    git(
        &work,
        &[
            "clone",
            "--quiet",
            "--no-hardlinks",
            "--no-checkout",
            &repo,
            &src_s,
        ],
    )?;
    git(&src, &["checkout", "--quiet", "--detach", commit]).map_err(|e| {
        format!("{e}\n(the release's commit {commit} is not in {repo}: git fetch it first)")
    })?;
    if o.from_worktree {
        overlay_worktree(&o.repo, &src)?;
        let now = git(&src, &["status", "--porcelain", "--untracked-files=no"])?;
        if now.is_empty() {
            return Err(
                "--from-worktree: the working tree has no changes against the commit any more, \
                 so it is not the tree the manifest was built from"
                    .into(),
            );
        }
    }

    let here = Toolchain::probe(&src)?;
    let diffs = release::toolchain_differences(&release.toolchain(), &here);
    let mut lines = Vec::new();
    if !diffs.is_empty() {
        let list = diffs
            .iter()
            .map(|d| format!("  {d}"))
            .collect::<Vec<_>>()
            .join("\n");
        if !o.report_only {
            return Err(format!(
                "this machine's toolchain differs from the release's, so the bytes would too:\n\
                 {list}\nInstall the release's versions (docs/reproducing.md says how) or pass \
                 --report-only to build anyway and see what differs"
            ));
        }
        say(&format!(
            "toolchain differs from the release's (--report-only: building anyway):\n{list}"
        ));
        lines.push(format!("toolchain differs:\n{list}"));
    } else {
        say("toolchain matches the release's tool, tool-detail and debian-package lines");
    }

    let sde = release.source_date_epoch()?.to_string();
    let mut c = Command::new("sh");
    let umask = VARIED[0].1;
    c.arg("-c")
        .arg(format!("umask {umask} && exec \"$@\""))
        .arg("sh")
        .arg("cargo")
        .args([
            "run",
            "--locked",
            "--quiet",
            "-p",
            "sherd-image",
            "--",
            "build",
        ])
        .arg("--out")
        .arg(&out)
        .current_dir(&src)
        // Only what the toolchain needs passes through; the rest is set here.
        .env_clear()
        .env("SOURCE_DATE_EPOCH", &sde)
        .env("CARGO_TARGET_DIR", work.join("target"))
        .env("TMPDIR", {
            let t = work.join("tmp");
            std::fs::create_dir_all(&t).map_err(|e| format!("{}: {e}", t.display()))?;
            t
        });
    for (k, v) in &VARIED[1..] {
        c.env(k, v);
    }
    for k in [
        "PATH",
        "HOME",
        "CARGO_HOME",
        "RUSTUP_HOME",
        "USER",
        "LOGNAME",
        "SHERD_CACHE",
        "XDG_CACHE_HOME",
    ] {
        if let Some(v) = std::env::var_os(k) {
            c.env(k, v);
        }
    }
    // A release manifest says `mode release`; the same mode gives the same line.
    if release.get("mode") == Some("release") {
        c.arg("--release");
    }
    if o.kernel_cache {
        say("--kernel-cache: the kernel comes from the shared cache (development only)");
    } else {
        c.arg("--fresh-kernel")
            .arg("--cache")
            .arg(work.join("kernel-cache"));
    }
    say(&format!(
        "building with {} (SOURCE_DATE_EPOCH={sde}{})",
        VARIED
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join(" "),
        if o.kernel_cache { "" } else { ", fresh kernel" }
    ));
    say(&format!("not varied: {}", NOT_VARIED.join("; ")));
    let start = Instant::now();
    let st = c.status().map_err(|e| format!("cannot run cargo: {e}"))?;
    let took = start.elapsed().as_secs();
    if !st.success() {
        return Err(format!(
            "the rebuild failed ({st}) after {took} s; its tree is kept in {}",
            work.display()
        ));
    }
    lines.push(format!("rebuilt in {took} s"));

    let mut identical = true;
    for a in &release.artifacts {
        let path = out.join(&a.name);
        let got = std::fs::read(&path).ok();
        let verdict = match &got {
            None => "MISSING".to_owned(),
            Some(b) => {
                let h = sherd_image::util::sha256_hex(b);
                if h == a.sha256 && b.len() as u64 == a.size {
                    "identical".to_owned()
                } else {
                    format!("DIFFERS (rebuilt sha256 {h}, {} bytes)", b.len())
                }
            }
        };
        if verdict != "identical" {
            identical = false;
        }
        lines.push(format!("{:<12} {verdict}", a.name));
        if verdict.starts_with("DIFFERS") {
            lines.push(explain(o, a, &path, &work));
        }
    }
    let rebuilt = std::fs::read(out.join("manifest.txt")).unwrap_or_default();
    if rebuilt == text.as_bytes() {
        lines.push("manifest.txt identical, byte for byte".into());
    } else {
        identical = false;
        lines.push(format!(
            "manifest.txt DIFFERS:\n{}",
            line_diff(&text, &String::from_utf8_lossy(&rebuilt))
        ));
    }
    if identical && !o.keep && o.work.is_none() {
        let _ = std::fs::remove_dir_all(&work);
    }
    Ok(Outcome {
        identical,
        work,
        lines,
    })
}

/// Copies the working tree's tracked and untracked-but-not-ignored files over the clone and
/// removes the files deleted there, so the clone is the tree the dirty build saw.
fn overlay_worktree(repo: &Path, dst: &Path) -> Result<()> {
    // NUL-separated: git would quote unusual names in line mode.
    let listed = git(
        repo,
        &[
            "ls-files",
            "-z",
            "--cached",
            "--others",
            "--exclude-standard",
        ],
    )?;
    for rel in listed.split('\0').filter(|l| !l.is_empty()) {
        let from = repo.join(rel);
        let to = dst.join(rel);
        if from.is_file() {
            if let Some(p) = to.parent() {
                std::fs::create_dir_all(p).map_err(|e| format!("{}: {e}", p.display()))?;
            }
            std::fs::copy(&from, &to).map_err(|e| format!("{}: {e}", from.display()))?;
        } else if !from.exists() && to.is_file() {
            std::fs::remove_file(&to).map_err(|e| format!("{}: {e}", to.display()))?;
        }
    }
    Ok(())
}

/// Runs diffoscope on a differing artifact against the release's copy (or, without one, on
/// the two manifests) and says where its report is.
fn explain(o: &Options, a: &release::Artifact, rebuilt: &Path, work: &Path) -> String {
    let candidates: Vec<PathBuf> = o
        .artifacts
        .iter()
        .cloned()
        .chain(std::iter::once(o.repo.join("out")))
        .map(|d| d.join(&a.name))
        .collect();
    let original = candidates
        .into_iter()
        .find(|p| std::fs::read(p).is_ok_and(|b| sherd_image::util::sha256_hex(&b) == a.sha256));
    let Some(original) = original else {
        return format!(
            "  no copy of the release's {} was found (give --artifacts DIR with the release's \
             files to see inside the difference)",
            a.name
        );
    };
    let report = work.join(format!("diffoscope-{}.txt", a.name));
    let st = Command::new("diffoscope")
        .arg("--text")
        .arg(&report)
        .arg(&original)
        .arg(rebuilt)
        .status();
    match st {
        // diffoscope exits 1 when the files differ, which is the expected case here.
        Ok(s) if s.code() == Some(0) || s.code() == Some(1) => {
            format!("  diffoscope report: {}", report.display())
        }
        Ok(s) => format!(
            "  diffoscope failed ({s}); compare {} and {} by hand",
            original.display(),
            rebuilt.display()
        ),
        Err(_) => format!(
            "  diffoscope is not installed (apt-get install diffoscope-minimal); compare {} and {}",
            original.display(),
            rebuilt.display()
        ),
    }
}

/// The lines only one of two manifests has, marked `-` (release) and `+` (rebuilt).
pub fn line_diff(release: &str, rebuilt: &str) -> String {
    let a: Vec<&str> = release.lines().collect();
    let b: Vec<&str> = rebuilt.lines().collect();
    let mut out = Vec::new();
    for l in &a {
        if !b.contains(l) {
            out.push(format!("  - {l}"));
        }
    }
    for l in &b {
        if !a.contains(l) {
            out.push(format!("  + {l}"));
        }
    }
    if out.is_empty() {
        out.push("  (same lines, in another order or with other line ends)".into());
    }
    out.join("\n")
}
