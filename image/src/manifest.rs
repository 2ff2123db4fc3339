//! The release manifest: one line per fact, `key value...`, in a fixed order, so that build
//! parties can compare it byte for byte and sign it (format: `docs/formats/manifest.md`).

use crate::util;
use std::fmt::Write;

pub const FORMAT: &str = "sherd-manifest 1";

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
    /// `(tool, version line)`: rustc, cargo, gcc, ld, make, xorriso.
    pub tools: Vec<(String, String)>,
    pub kernel_package: String,
    pub kernel_package_version: String,
    pub kernel_source_sha256: String,
    pub kernel_source_pinned_sha256: String,
    pub kernel_config_sha256: String,
    pub kernel_release: String,
    pub kernel_cmdline: String,
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
        for (tool, v) in &self.tools {
            line("tool", &format!("{tool} {v}"));
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

/// Reads the value of the first `key` line of a rendered manifest.
pub fn field<'a>(manifest: &'a str, key: &str) -> Option<&'a str> {
    manifest
        .lines()
        .find_map(|l| l.strip_prefix(key)?.strip_prefix(' '))
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
            tools: vec![("rustc".into(), "rustc 1.95.0".into())],
            kernel_package: "linux-source-6.12".into(),
            kernel_package_version: "6.12.117-1~deb12u1".into(),
            kernel_source_sha256: "aa".into(),
            kernel_source_pinned_sha256: "aa".into(),
            kernel_config_sha256: "cc".into(),
            kernel_release: "6.12.117-sherd".into(),
            kernel_cmdline: "console=tty0".into(),
            rootfs_tree_sha256: "dd".into(),
            warnings: vec!["multi\nline".into()],
            artifacts: vec![Artifact::of("initrd.img", b"abc")],
        }
    }

    #[test]
    fn renders_one_fact_per_line() {
        let m = sample().render();
        assert!(m.starts_with("format sherd-manifest 1\nversion 0.1.0\n"));
        assert_eq!(field(&m, "rootfs-tree"), Some("sha256 dd"));
        assert_eq!(field(&m, "warning"), Some("multi line"));
        assert!(m.contains(
            "artifact initrd.img size 3 sha256 ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad blake3 6437b3ac38465133ffb63b75273a8db548c558465d79db03fd359c6cd5bd9d85\n"
        ));
        assert_eq!(
            sample().sha256sums(),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad  initrd.img\n"
        );
    }
}
