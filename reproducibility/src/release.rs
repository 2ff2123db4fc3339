//! A release manifest read back (the reader is the image crate's, next to the writer; format:
//! `docs/formats/manifest.md`), and the comparison of the toolchain it records with a builder's.

use sherd_image::manifest::Toolchain;
pub use sherd_image::manifest::{Artifact, Recorded as Manifest, TOOLCHAIN_KEYS, is_hex};

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
