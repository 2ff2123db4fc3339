//! The release manifest: one line per fact, `key value...`, in a fixed order, so that build
//! parties can compare it byte for byte and sign it (format: `docs/formats/manifest.md`).

use crate::util::{self, Result, pinned_env, run};
use std::fmt::Write;
use std::path::Path;
use std::process::Command;

/// Version 2 added the `tool-detail` and `debian-package` lines; version 3 the
/// `efi-authenticode` line and the `BOOTX64.EFI` and `efiboot.img` artifacts.
pub const FORMAT: &str = "sherd-manifest 3";

/// The Debian packages whose versions can change the artifacts' bytes: the kernel's compiler,
/// assembler, linker and build tools, its source, and the ISO writer with its libraries.
pub const DEBIAN_PACKAGES: &[&str] = &[
    "bc",
    "binutils",
    "bison",
    "cpp-12",
    "flex",
    "gcc-12",
    "libburn4",
    "libc6-dev",
    "libelf-dev",
    "libisoburn1",
    "libisofs6",
    "libssl-dev",
    "linux-source-6.12",
    "make",
    "perl",
    "xorriso",
];

/// The builder's toolchain as the manifest records it; probed in the source tree, because
/// `rust-toolchain.toml` there selects the Rust toolchain.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Toolchain {
    /// `(tool, first line of its version output)`: rustc, cargo, gcc, ld, make, xorriso.
    pub tools: Vec<(String, String)>,
    /// `(tool, key, value)` from `rustc -vV` and `cargo -vV`: the exact source commit of the
    /// compiler, which a version number alone does not pin (nightlies and distro builds share
    /// version numbers).
    pub details: Vec<(String, String, String)>,
    /// `(package, version, architecture)` of [`DEBIAN_PACKAGES`] that are installed; empty on a
    /// builder without dpkg (the stagex pipeline).
    pub debian_packages: Vec<(String, String, String)>,
}

impl Toolchain {
    pub fn probe(cwd: &Path) -> Result<Toolchain> {
        let mut t = Toolchain::default();
        for (name, prog, arg) in [
            ("rustc", "rustc", "-V"),
            ("cargo", "cargo", "-V"),
            ("gcc", "gcc", "--version"),
            ("ld", "ld", "--version"),
            ("make", "make", "--version"),
            ("xorriso", "xorriso", "-version"),
        ] {
            let v = util::version_line(prog, arg, cwd)
                .map_err(|e| format!("{e}\n(the build needs {prog}; see README.md)"))?;
            t.tools.push((name.to_owned(), v));
        }
        for prog in ["rustc", "cargo"] {
            let mut c = Command::new(prog);
            c.arg("-vV").current_dir(cwd);
            let out = run(pinned_env(&mut c))?;
            t.details.extend(verbose_version_details(prog, &out));
        }
        t.debian_packages = debian_packages(cwd);
        Ok(t)
    }

    /// The version line of `tool`, or "" if it was not probed.
    pub fn get(&self, tool: &str) -> &str {
        self.tools
            .iter()
            .find(|(n, _)| n == tool)
            .map(|(_, v)| v.as_str())
            .unwrap_or("")
    }

    fn joined(&self, tools: &[&str]) -> String {
        tools
            .iter()
            .map(|t| format!("{t}={}", self.get(t)))
            .collect::<Vec<_>>()
            .join(";")
    }

    /// What compiles the kernel, for its cache key.
    pub fn kernel_key(&self) -> String {
        self.joined(&["gcc", "ld", "make"])
    }

    /// What is embedded in `/init` (`SHERD_TOOLCHAIN`) and shown on the boot screen.
    pub fn embedded(&self) -> String {
        self.joined(&["rustc", "cargo", "gcc", "xorriso"])
    }

    /// The manifest lines this toolchain contributes, in manifest order.
    pub fn lines(&self) -> Vec<(&'static str, String)> {
        let mut l = Vec::new();
        for (tool, v) in &self.tools {
            l.push(("tool", format!("{tool} {v}")));
        }
        for (tool, k, v) in &self.details {
            l.push(("tool-detail", format!("{tool} {k} {v}")));
        }
        for (p, v, a) in &self.debian_packages {
            l.push(("debian-package", format!("{p} {v} {a}")));
        }
        l
    }
}

/// The `-vV` keys that identify a Rust tool's build; `binary`, `release` and cargo's library
/// versions add nothing the first line and the commit do not already pin.
fn verbose_version_details(tool: &str, out: &str) -> Vec<(String, String, String)> {
    const KEYS: &[(&str, &str)] = &[
        ("commit-hash", "commit-hash"),
        ("commit-date", "commit-date"),
        ("host", "host"),
        ("LLVM version", "llvm-version"),
    ];
    let mut d = Vec::new();
    for line in out.lines() {
        let Some((k, v)) = line.split_once(": ") else {
            continue;
        };
        if let Some((_, key)) = KEYS.iter().find(|(from, _)| *from == k) {
            d.push((tool.to_owned(), (*key).to_owned(), v.trim().to_owned()));
        }
    }
    d
}

/// Versions of the installed [`DEBIAN_PACKAGES`], sorted by name; none without dpkg-query.
fn debian_packages(cwd: &Path) -> Vec<(String, String, String)> {
    let mut c = Command::new("dpkg-query");
    c.arg("-W")
        .arg("-f=${db:Status-Abbrev} ${Package} ${Version} ${Architecture}\n")
        .args(DEBIAN_PACKAGES)
        .current_dir(cwd);
    pinned_env(&mut c);
    // dpkg-query exits non-zero when one of the packages is unknown but still lists the rest.
    let Ok(out) = c.output() else {
        return Vec::new();
    };
    let mut v: Vec<_> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| {
            let mut w = l.split_whitespace();
            // `ii` = wanted install, installed; anything else is not what builds the image.
            (w.next()? == "ii").then_some(())?;
            let (p, ver, arch) = (w.next()?, w.next()?, w.next()?);
            Some((p.to_owned(), ver.to_owned(), arch.to_owned()))
        })
        .collect();
    v.sort();
    v
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Artifact {
    pub name: String,
    pub size: u64,
    pub sha256: String,
    pub blake3: String,
}

impl Artifact {
    pub fn of(name: &str, data: &[u8]) -> Self {
        Artifact {
            name: name.to_owned(),
            size: data.len() as u64,
            sha256: util::sha256_hex(data),
            blake3: util::blake3_hex(data),
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Manifest {
    pub version: String,
    pub git_commit: String,
    pub source_date_epoch: i64,
    pub release_mode: bool,
    pub toolchain: Toolchain,
    pub kernel_package: String,
    pub kernel_package_version: String,
    pub kernel_source_sha256: String,
    pub kernel_source_pinned_sha256: String,
    pub kernel_config_sha256: String,
    pub kernel_release: String,
    pub kernel_cmdline: String,
    /// The Authenticode SHA-256 of `BOOTX64.EFI`: what UEFI firmware extends into PCR 4.
    pub efi_authenticode_sha256: String,
    pub rootfs_tree_sha256: String,
    pub warnings: Vec<String>,
    pub artifacts: Vec<Artifact>,
}

impl Manifest {
    pub fn render(&self) -> String {
        let mut s = String::new();
        let mut line = |k: &str, v: &str| {
            // Values are single lines by construction; keep it so for any future field.
            let v = v.replace(['\n', '\r'], " ");
            let _ = writeln!(s, "{k} {v}");
        };
        line("format", FORMAT);
        line("version", &self.version);
        line("git-commit", &self.git_commit);
        line("source-date-epoch", &self.source_date_epoch.to_string());
        line("mode", if self.release_mode { "release" } else { "test" });
        for (k, v) in self.toolchain.lines() {
            line(k, &v);
        }
        line(
            "kernel-source",
            &format!(
                "{} {} sha256 {}",
                self.kernel_package, self.kernel_package_version, self.kernel_source_sha256
            ),
        );
        line(
            "kernel-source-pinned",
            &format!("sha256 {}", self.kernel_source_pinned_sha256),
        );
        line(
            "kernel-config",
            &format!("sha256 {}", self.kernel_config_sha256),
        );
        line("kernel-release", &self.kernel_release);
        line("kernel-cmdline", &self.kernel_cmdline);
        line(
            "efi-authenticode",
            &format!("sha256 {}", self.efi_authenticode_sha256),
        );
        line(
            "rootfs-tree",
            &format!("sha256 {}", self.rootfs_tree_sha256),
        );
        for w in &self.warnings {
            line("warning", w);
        }
        for a in &self.artifacts {
            line(
                "artifact",
                &format!(
                    "{} size {} sha256 {} blake3 {}",
                    a.name, a.size, a.sha256, a.blake3
                ),
            );
        }
        s
    }

    /// `sha256sum -c` compatible lines for the artifacts.
    pub fn sha256sums(&self) -> String {
        self.artifacts
            .iter()
            .map(|a| format!("{}  {}\n", a.sha256, a.name))
            .collect()
    }

    /// `b3sum -c` compatible lines for the artifacts.
    pub fn b3sums(&self) -> String {
        self.artifacts
            .iter()
            .map(|a| format!("{}  {}\n", a.blake3, a.name))
            .collect()
    }
}

/// Keys whose lines describe the toolchain; a rebuild needs the same lines to give the same
/// bytes.
pub const TOOLCHAIN_KEYS: &[&str] = &["tool", "tool-detail", "debian-package"];

/// A manifest read back from its text, strictly: the one reader of the format, for build
/// parties (`sherd-release`) and the tests alike.
#[derive(Clone, Debug)]
pub struct Recorded {
    /// Every line as `(key, rest)`, in file order.
    pub lines: Vec<(String, String)>,
    pub artifacts: Vec<Artifact>,
}

impl Recorded {
    /// Parses a manifest of format 1, 2 or 3; refuses anything else with the line at fault.
    pub fn parse(text: &str) -> Result<Recorded> {
        let mut lines = Vec::new();
        let mut artifacts = Vec::new();
        for (i, l) in text.lines().enumerate() {
            let n = i + 1;
            let (k, v) = l
                .split_once(' ')
                .ok_or_else(|| format!("line {n}: {l:?} is not `KEY VALUE`"))?;
            if k == "artifact" {
                artifacts.push(parse_artifact(v).map_err(|e| format!("line {n}: {e}"))?);
            }
            lines.push((k.to_owned(), v.to_owned()));
        }
        let m = Recorded { lines, artifacts };
        match m.get("format") {
            Some("sherd-manifest 1" | "sherd-manifest 2" | "sherd-manifest 3") => {}
            other => {
                return Err(format!(
                    "format line is {other:?}; this build reads sherd-manifest 1 to 3"
                ));
            }
        }
        for key in ["version", "git-commit", "source-date-epoch"] {
            m.get(key)
                .ok_or_else(|| format!("no {key} line: not a complete sherd manifest"))?;
        }
        m.source_date_epoch()?;
        if m.artifacts.is_empty() {
            return Err("no artifact lines: not a complete sherd manifest".into());
        }
        Ok(m)
    }

    /// The value of the first `key` line.
    pub fn get(&self, key: &str) -> Option<&str> {
        self.lines
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    /// The artifact called `name`.
    pub fn artifact(&self, name: &str) -> Option<&Artifact> {
        self.artifacts.iter().find(|a| a.name == name)
    }

    pub fn git_commit(&self) -> &str {
        self.get("git-commit").unwrap_or("")
    }

    pub fn source_date_epoch(&self) -> Result<i64> {
        let v = self.get("source-date-epoch").unwrap_or("");
        v.parse()
            .map_err(|_| format!("source-date-epoch {v:?} is not a number"))
    }

    /// The toolchain lines, as `(key, value)`.
    pub fn toolchain(&self) -> Vec<(String, String)> {
        self.lines
            .iter()
            .filter(|(k, _)| TOOLCHAIN_KEYS.contains(&k.as_str()))
            .cloned()
            .collect()
    }
}

fn parse_artifact(v: &str) -> Result<Artifact> {
    let w: Vec<&str> = v.split(' ').collect();
    match w.as_slice() {
        [name, "size", size, "sha256", sha, "blake3", b3]
            if is_hex(sha, 64) && is_hex(b3, 64) && !name.contains('/') =>
        {
            Ok(Artifact {
                name: (*name).to_owned(),
                size: size
                    .parse()
                    .map_err(|_| format!("artifact {name}: size {size:?} is not a number"))?,
                sha256: (*sha).to_owned(),
                blake3: (*b3).to_owned(),
            })
        }
        _ => Err(format!(
            "artifact line {v:?} is not `NAME size BYTES sha256 HEX blake3 HEX`"
        )),
    }
}

/// Whether `s` is exactly `len` lower-case hex digits.
pub fn is_hex(s: &str, len: usize) -> bool {
    s.len() == len && s.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Manifest {
        Manifest {
            version: "0.1.0".into(),
            git_commit: "abc".into(),
            source_date_epoch: 1,
            release_mode: false,
            toolchain: Toolchain {
                tools: vec![("rustc".into(), "rustc 1.95.0".into())],
                details: vec![("rustc".into(), "commit-hash".into(), "5980".into())],
                debian_packages: vec![("make".into(), "4.3-4.1".into(), "amd64".into())],
            },
            kernel_package: "linux-source-6.12".into(),
            kernel_package_version: "6.12.117-1~deb12u1".into(),
            kernel_source_sha256: "aa".into(),
            kernel_source_pinned_sha256: "aa".into(),
            kernel_config_sha256: "cc".into(),
            kernel_release: "6.12.117-sherd".into(),
            kernel_cmdline: "console=tty0".into(),
            efi_authenticode_sha256: "ee".into(),
            rootfs_tree_sha256: "dd".into(),
            warnings: vec!["multi\nline".into()],
            artifacts: vec![Artifact::of("initrd.img", b"abc")],
        }
    }

    #[test]
    fn renders_one_fact_per_line() {
        let m = sample().render();
        assert!(m.starts_with("format sherd-manifest 3\nversion 0.1.0\n"));
        assert!(m.contains("\nkernel-cmdline console=tty0\nefi-authenticode sha256 ee\n"));
        assert!(m.contains(
            "tool rustc rustc 1.95.0\ntool-detail rustc commit-hash 5980\ndebian-package make 4.3-4.1 amd64\nkernel-source "
        ));
        // What the writer renders, the reader reads back.
        let r = Recorded::parse(&m).unwrap();
        assert_eq!(r.get("rootfs-tree"), Some("sha256 dd"));
        assert_eq!(r.get("warning"), Some("multi line"));
        assert_eq!(r.source_date_epoch(), Ok(1));
        assert_eq!(r.artifact("initrd.img"), Some(&sample().artifacts[0]));
        assert!(m.contains(
            "artifact initrd.img size 3 sha256 ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad blake3 6437b3ac38465133ffb63b75273a8db548c558465d79db03fd359c6cd5bd9d85\n"
        ));
        assert_eq!(
            sample().sha256sums(),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad  initrd.img\n"
        );
    }
}

#[cfg(test)]
mod toolchain_tests {
    use super::*;

    #[test]
    fn keeps_the_identifying_lines_of_rustc_vv() {
        let out = "rustc 1.95.0 (59807616e 2026-04-14)\nbinary: rustc\ncommit-hash: 59807616e1fa\n\
                   commit-date: 2026-04-14\nhost: x86_64-unknown-linux-gnu\nrelease: 1.95.0\n\
                   LLVM version: 22.1.2\n";
        let d = verbose_version_details("rustc", out);
        let keys: Vec<_> = d.iter().map(|(_, k, v)| format!("{k}={v}")).collect();
        assert_eq!(
            keys,
            [
                "commit-hash=59807616e1fa",
                "commit-date=2026-04-14",
                "host=x86_64-unknown-linux-gnu",
                "llvm-version=22.1.2"
            ]
        );
    }
}
