//! A release manifest read back (format: `docs/formats/manifest.md`), and the comparison of the
//! toolchain it records with a builder's.

use crate::Result;
pub use sherd_image::manifest::Artifact;
use sherd_image::manifest::Toolchain;

/// Keys whose lines describe the toolchain; a rebuild needs the same lines to give the same
/// bytes.
pub const TOOLCHAIN_KEYS: &[&str] = &["tool", "tool-detail", "debian-package"];

#[derive(Clone, Debug)]
pub struct Manifest {
    pub lines: Vec<(String, String)>,
    pub artifacts: Vec<Artifact>,
}

impl Manifest {
    pub fn parse(text: &str) -> Result<Manifest> {
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
        let m = Manifest { lines, artifacts };
        match m.get("format") {
            Some("sherd-manifest 1" | "sherd-manifest 2") => {}
            other => {
                return Err(format!(
                    "format line is {other:?}; this sherd-release reads sherd-manifest 1 and 2"
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

    pub fn get(&self, key: &str) -> Option<&str> {
        self.lines
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
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

pub fn is_hex(s: &str, len: usize) -> bool {
    s.len() == len && s.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

/// Identity of a toolchain line for matching: the key and the tool or package it is about
/// (plus the detail's name), so that a changed version shows as one difference.
fn line_id(key: &str, value: &str) -> String {
    let mut w = value.split(' ');
    let first = w.next().unwrap_or("");
    match key {
        "tool-detail" => format!("{key} {first} {}", w.next().unwrap_or("")),
        _ => format!("{key} {first}"),
    }
}

/// Differences between the release's toolchain lines and this builder's, one sentence each.
/// Only the keys the release records are compared (a format 1 manifest has no details).
pub fn toolchain_differences(release: &[(String, String)], here: &Toolchain) -> Vec<String> {
    let here: Vec<(String, String)> = here
        .lines()
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v))
        .collect();
    let recorded = |k: &str| release.iter().any(|(rk, _)| rk == k);
    let mut d = Vec::new();
    for (k, v) in release {
        let id = line_id(k, v);
        match here.iter().find(|(hk, hv)| line_id(hk, hv) == id) {
            Some((_, hv)) if hv == v => {}
            Some((hk, hv)) => d.push(format!("release has `{k} {v}`, here `{hk} {hv}`")),
            None => d.push(format!(
                "release has `{k} {v}`, here nothing (not installed?)"
            )),
        }
    }
    for (hk, hv) in &here {
        let id = line_id(hk, hv);
        if recorded(hk) && !release.iter().any(|(k, v)| line_id(k, v) == id) {
            d.push(format!("here `{hk} {hv}`, the release has no such line"));
        }
    }
    d
}

#[cfg(test)]
mod tests {
    use super::*;

    const M: &str = "format sherd-manifest 2\nversion 0.1.0\ngit-commit abc\n\
        source-date-epoch 5\nmode test\ntool rustc rustc 1.95.0\ntool-detail rustc commit-hash aa\n\
        debian-package make 4.3-4.1 amd64\nartifact init size 3 sha256 \
        ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad blake3 \
        6437b3ac38465133ffb63b75273a8db548c558465d79db03fd359c6cd5bd9d85\n";

    #[test]
    fn parses_and_compares_toolchains() {
        let m = Manifest::parse(M).unwrap();
        assert_eq!(m.artifacts[0].size, 3);
        assert_eq!(m.source_date_epoch().unwrap(), 5);
        let mut here = Toolchain {
            tools: vec![("rustc".into(), "rustc 1.95.0".into())],
            details: vec![("rustc".into(), "commit-hash".into(), "aa".into())],
            debian_packages: vec![("make".into(), "4.3-4.1".into(), "amd64".into())],
        };
        assert!(toolchain_differences(&m.toolchain(), &here).is_empty());
        here.debian_packages[0].1 = "4.4".into();
        here.tools.push(("gcc".into(), "gcc 13".into()));
        let d = toolchain_differences(&m.toolchain(), &here);
        assert_eq!(
            d,
            [
                "release has `debian-package make 4.3-4.1 amd64`, here `debian-package make 4.4 amd64`",
                "here `tool gcc gcc 13`, the release has no such line"
            ]
        );
    }

    #[test]
    fn refuses_broken_manifests() {
        assert!(Manifest::parse("format sherd-manifest 9\n").is_err());
        let bad = M.replace("size 3", "size three");
        assert!(Manifest::parse(&bad).unwrap_err().contains("not a number"));
        let bad = M.replace("init size", "../init size");
        assert!(Manifest::parse(&bad).unwrap_err().contains("NAME size"));
    }
}
