//! The native build's steps, in order, and the check that the stagex Containerfile mirrors
//! each of them (`# step: NAME` before the `RUN` that does it) with every image pinned by
//! digest.

/// `(step, what sherd-image does for it)`, in the order `sherd-image build` runs them.
pub const BUILD_STEPS: &[(&str, &str)] = &[
    (
        "kernel",
        "unpack the pinned linux-source tarball, apply image/kernel.config (olddefconfig), make \
         bzImage with KBUILD_BUILD_TIMESTAMP/USER/HOST fixed",
    ),
    (
        "init",
        "cargo build --locked --release -p sherd-init --target x86_64-unknown-linux-musl with \
         +crt-static and the path remapping, checked to be static-pie",
    ),
    (
        "initramfs",
        "the cpio from image/initramfs.list by sherd-image's writer (mtime SOURCE_DATE_EPOCH, \
         uid/gid 0) and the rootfs tree listing",
    ),
    (
        "efi",
        "the kernel relinked in its build tree with the initramfs and command line built in \
         (BOOTX64.EFI), and the FAT image efiboot.img holding it as EFI/BOOT/BOOTX64.EFI",
    ),
    (
        "iso",
        "xorriso with SOURCE_DATE_EPOCH: boot/vmlinuz, boot/initrd.img, boot/grub/grub.cfg; \
         efiboot.img appended as the EFI system partition (GPT) and the El Torito EFI image",
    ),
    (
        "manifest",
        "manifest.txt, SHA256SUMS and B3SUMS over the artifacts and the toolchain",
    ),
];

/// Problems with a Containerfile, one sentence each; empty when it is well-formed.
pub fn check_containerfile(text: &str) -> Vec<String> {
    let mut problems = Vec::new();
    let lines: Vec<&str> = text.lines().collect();
    let mut stages: Vec<String> = Vec::new();
    let mut seen: Vec<&str> = Vec::new();
    for (i, raw) in lines.iter().enumerate() {
        let n = i + 1;
        let l = raw.trim();
        let mut w = l.split_whitespace();
        let first = w.next().unwrap_or("");
        if first.eq_ignore_ascii_case("FROM") {
            let rest: Vec<&str> = w.filter(|t| !t.starts_with("--platform")).collect();
            let image = rest.first().copied().unwrap_or("");
            if let [_, as_kw, name] = rest.as_slice()
                && as_kw.eq_ignore_ascii_case("AS")
            {
                stages.push(name.to_ascii_lowercase());
            }
            let earlier = stages
                .iter()
                .rev()
                .skip(usize::from(rest.len() == 3))
                .any(|s| *s == image.to_ascii_lowercase());
            // `scratch` is the empty image: nothing to pin.
            if !earlier && image != "scratch" && !pinned_stagex(image) {
                problems.push(format!(
                    "line {n}: FROM {image} is not pinned: use \
                     stagex/NAME[:TAG]@sha256:<64 lowercase hex> (or an earlier stage)"
                ));
            }
        }
        if let Some(step) = l.strip_prefix("# step:") {
            let step = step.trim();
            if !BUILD_STEPS.iter().any(|(s, _)| *s == step) {
                problems.push(format!(
                    "line {n}: step {step:?} is no native build step (known: {})",
                    step_names().join(", ")
                ));
                continue;
            }
            if seen.contains(&step) {
                problems.push(format!("line {n}: step {step:?} is marked twice"));
            }
            seen.push(step);
            // The step's RUN is the next instruction; comments may come between.
            let run = lines[n..]
                .iter()
                .map(|l| l.trim())
                .find(|l| !l.is_empty() && !l.starts_with('#'));
            match run {
                Some(r) if r.starts_with("RUN ") => {
                    if !r.contains("--network=none") {
                        problems.push(format!(
                            "line {n}: the RUN of step {step:?} lacks --network=none: build \
                             steps run offline"
                        ));
                    }
                }
                _ => problems.push(format!(
                    "line {n}: step {step:?} is not followed by its RUN instruction"
                )),
            }
        }
    }
    for (step, _) in BUILD_STEPS {
        if !seen.contains(step) {
            problems.push(format!(
                "native build step {step:?} has no `# step: {step}` counterpart"
            ));
        }
    }
    let order: Vec<&str> = step_names()
        .into_iter()
        .filter(|s| seen.contains(s))
        .collect();
    if seen.len() == order.len() && seen != order {
        problems.push(format!(
            "steps are in the order {}; the native build runs {}",
            seen.join(", "),
            order.join(", ")
        ));
    }
    if !text.contains("SOURCE_DATE_EPOCH") {
        problems.push("SOURCE_DATE_EPOCH is never set".into());
    }
    problems
}

pub fn step_names() -> Vec<&'static str> {
    BUILD_STEPS.iter().map(|(s, _)| *s).collect()
}

/// `stagex/NAME[:TAG]@sha256:HEX`, optionally behind `docker.io/`.
pub fn pinned_stagex(image: &str) -> bool {
    let image = image.strip_prefix("docker.io/").unwrap_or(image);
    let Some(rest) = image.strip_prefix("stagex/") else {
        return false;
    };
    let Some((name, digest)) = rest.split_once("@sha256:") else {
        return false;
    };
    let name = name.split_once(':').map_or(name, |(n, _)| n);
    !name.is_empty()
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_')
        && crate::release::is_hex(digest, 64)
}

#[cfg(test)]
mod tests {
    use super::*;

    const D: &str = "2fbe7b164dd92edb9c1096152f6d27592d8a69b1b8eb2fc907b5fadea7d11668";

    #[test]
    fn pins() {
        assert!(pinned_stagex(&format!("stagex/pallet-rust@sha256:{D}")));
        assert!(pinned_stagex(&format!(
            "docker.io/stagex/core-gcc:1@sha256:{D}"
        )));
        assert!(!pinned_stagex("stagex/pallet-rust:latest"));
        assert!(!pinned_stagex(&format!("stagex/x@sha256:{}", &D[1..])));
        assert!(!pinned_stagex(&format!("debian@sha256:{D}")));
        assert!(!pinned_stagex(&format!(
            "stagex/x@sha256:{}",
            D.to_uppercase()
        )));
    }

    #[test]
    fn finds_missing_and_unmarked_steps() {
        let f = format!(
            "FROM stagex/core-busybox@sha256:{D} AS base\nFROM base AS build\n\
             ENV SOURCE_DATE_EPOCH=1\n# step: kernel\nRUN --network=none make\n\
             # step: init\nRUN cargo build\nFROM alpine\n"
        );
        let p = check_containerfile(&f);
        assert!(
            p.iter().any(|p| p.contains("lacks --network=none")),
            "{p:?}"
        );
        assert!(p.iter().any(|p| p.contains("FROM alpine")), "{p:?}");
        assert!(p.iter().any(|p| p.contains("\"manifest\" has no")), "{p:?}");
        assert!(!p.iter().any(|p| p.contains("FROM base")), "{p:?}");
    }
}
