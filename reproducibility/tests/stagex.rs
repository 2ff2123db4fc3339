//! The stagex Containerfiles cannot run here (no container engine), so this checks what can be
//! checked without one: every image pinned by a well-formed digest, every native build step
//! mirrored by a marked, offline RUN, SOURCE_DATE_EPOCH fixed.

use sherd_release::steps;
use std::path::Path;

#[test]
fn containerfiles_are_pinned_and_mirror_every_native_step() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../stagex");
    let mut checked = 0;
    for e in std::fs::read_dir(&dir).expect("stagex/ exists") {
        let p = e.unwrap().path();
        let name = p.file_name().unwrap().to_string_lossy().into_owned();
        if !name.starts_with("Containerfile") || name.ends_with(".dockerignore") {
            continue;
        }
        let text = std::fs::read_to_string(&p).unwrap();
        let problems = steps::check_containerfile(&text);
        assert!(
            problems.is_empty(),
            "{}:\n{}",
            p.display(),
            problems.join("\n")
        );
        checked += 1;
    }
    assert!(checked > 0, "no Containerfile in {}", dir.display());
}

#[test]
fn every_pin_in_the_stagex_readme_table_is_used() {
    // The README cites where each digest came from; a digest there and not in the
    // Containerfile (or the reverse) means one was edited without the other.
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../stagex");
    let readme = std::fs::read_to_string(dir.join("README.md")).unwrap();
    let cf = std::fs::read_to_string(dir.join("Containerfile")).unwrap();
    for l in cf
        .lines()
        .filter(|l| l.trim_start().starts_with("FROM stagex/"))
    {
        let digest = l
            .split("@sha256:")
            .nth(1)
            .unwrap()
            .split_whitespace()
            .next()
            .unwrap();
        assert!(
            readme.contains(digest),
            "{digest} is not cited in stagex/README.md"
        );
    }
}

#[test]
fn the_kernel_pin_is_the_native_builds() {
    let cf = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../stagex/Containerfile"),
    )
    .unwrap();
    let pin = sherd_image::kernel::PIN;
    assert!(
        cf.contains(&format!("ARG KERNEL_TARBALL_SHA256={}", pin.sha256)),
        "stagex/Containerfile's KERNEL_TARBALL_SHA256 is not image/src/kernel.rs's pin"
    );
    assert!(
        cf.contains(&format!(
            "ARG KERNEL_DEB={}_{}_all.deb",
            pin.package, pin.version
        )),
        "stagex/Containerfile's KERNEL_DEB is not {} {}",
        pin.package,
        pin.version
    );
}
