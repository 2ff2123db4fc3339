//! `sherd-release step NAME`: the native build cut at its step boundaries, so the stagex
//! Containerfile can run each step in its own offline `RUN`. Every step calls the same
//! sherd-image library code as `sherd-image build`; the test `stepwise_pipeline_matches` in
//! `tests/tests/reproducible.rs` checks that the six steps give the same bytes as one
//! `sherd-image build`.
//!
//! State between steps lives in the output directory: the artifacts under their final names,
//! and `.steps/kernel-release` for the manifest.

use crate::Result;
use sherd_image::util::{self, pinned_env, run};
use sherd_image::{initramfs, iso, kernel, manifest};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

pub struct Options {
    /// The source tree (a git checkout: the commit goes into `/init` and the manifest).
    pub src: PathBuf,
    pub out: PathBuf,
    pub cache: PathBuf,
    pub tarball: PathBuf,
    pub release: bool,
}

fn log(msg: &str) {
    eprintln!("sherd-release step: {msg}");
}

/// SOURCE_DATE_EPOCH is required: the Containerfile fixes it, and a step must not guess it.
fn sde() -> Result<i64> {
    let s = std::env::var("SOURCE_DATE_EPOCH")
        .map_err(|_| "SOURCE_DATE_EPOCH is not set: set it to the release's (its manifest's source-date-epoch line)")?;
    s.parse()
        .map_err(|_| format!("SOURCE_DATE_EPOCH={s:?} is not a number"))
}

/// The commit as `sherd-image build` records it (`-dirty` with uncommitted changes).
fn commit(src: &Path) -> Result<String> {
    let git = |args: &[&str]| -> Result<String> {
        let mut c = Command::new("git");
        c.arg("-C").arg(src).args(args);
        Ok(run(pinned_env(&mut c))?.trim().to_owned())
    };
    let c = git(&["rev-parse", "HEAD"]).map_err(|e| {
        format!("{e}\n(the steps run in a git checkout: the commit is part of /init)")
    })?;
    let dirty = !git(&["status", "--porcelain", "--untracked-files=no"])?.is_empty();
    Ok(if dirty { format!("{c}-dirty") } else { c })
}

fn write(out: &Path, name: &str, data: &[u8]) -> Result<()> {
    let p = out.join(name);
    if let Some(d) = p.parent() {
        std::fs::create_dir_all(d).map_err(|e| format!("{}: {e}", d.display()))?;
    }
    util::write_atomic(&p, data)
}

fn read_out(out: &Path, name: &str, step: &str) -> Result<Vec<u8>> {
    util::read(&out.join(name))
        .map_err(|e| format!("{e}: run `sherd-release step {step}` first (steps run in order)"))
}

pub fn run_step(step: &str, o: &Options) -> Result<()> {
    std::fs::create_dir_all(&o.out).map_err(|e| format!("{}: {e}", o.out.display()))?;
    if o.release && commit(&o.src)?.ends_with("-dirty") {
        return Err("a release is built from a clean checkout: commit or stash first".into());
    }
    let tools = manifest::Toolchain::probe(&o.src)?;
    match step {
        "kernel" | "efi" => {
            let source = kernel::check_source(&o.tarball, o.release)?;
            let config = util::read(&o.src.join("image/kernel.config"))?;
            let jobs = std::thread::available_parallelism().map_or(1, |n| n.get());
            let k = kernel::Options {
                source: &source,
                config: &config,
                cache_dir: &o.cache,
                tool_versions: &tools.kernel_key(),
                fresh: false,
                jobs,
                log: &log,
            };
            if step == "kernel" {
                let k = kernel::build(&k)?;
                write(&o.out, "vmlinuz", &k.bzimage)?;
                write(&o.out, ".steps/kernel-release", k.release.as_bytes())
            } else {
                let initrd = read_out(&o.out, "initrd.img", "initramfs")?;
                let efi = kernel::build_efi(&k, &initrd, iso::KERNEL_CMDLINE)?;
                write(&o.out, "efiboot.img", &iso::efi_boot_image(&efi)?)?;
                write(&o.out, "BOOTX64.EFI", &efi)
            }
        }
        "init" => {
            // `/init` exactly as `sherd-image build` compiles it (the same library function).
            let bin = sherd_image::init::build_init(
                &o.src,
                &commit(&o.src)?,
                sde()?,
                &tools.embedded(),
                &[],
            )?;
            write(&o.out, "init", &bin)
        }
        "initramfs" => {
            let init = read_out(&o.out, "init", "init")?;
            let text = String::from_utf8(util::read(&o.src.join("image/initramfs.list"))?)
                .map_err(|_| "image/initramfs.list is not UTF-8")?;
            let list = initramfs::parse_list(&text).map_err(|e| e.to_string())?;
            let mut sources = BTreeMap::new();
            sources.insert("init".to_owned(), init);
            let mtime =
                u32::try_from(sde()?).map_err(|_| "SOURCE_DATE_EPOCH out of range for cpio")?;
            let r = initramfs::build(&list, &sources, mtime).map_err(|e| e.to_string())?;
            write(&o.out, "initrd.img", &r.cpio)?;
            write(&o.out, "rootfs.tree", r.tree.listing().as_bytes())
        }
        "iso" => {
            let vmlinuz = read_out(&o.out, "vmlinuz", "kernel")?;
            let initrd = read_out(&o.out, "initrd.img", "initramfs")?;
            let efi_img = read_out(&o.out, "efiboot.img", "efi")?;
            let grub = iso::grub_cfg(env!("CARGO_PKG_VERSION"));
            iso::check_heads_rules(&grub).map_err(|e| format!("generated grub.cfg: {e}"))?;
            iso::build(
                &o.out.join(".iso-staging"),
                &o.out.join("sherd.iso"),
                &vmlinuz,
                &initrd,
                &grub,
                &efi_img,
                sde()?,
            )
        }
        "manifest" => write_manifest(o, &tools),
        other => Err(format!(
            "no step {other:?}; the steps are {}",
            crate::steps::step_names().join(", ")
        )),
    }
}

fn write_manifest(o: &Options, tools: &manifest::Toolchain) -> Result<()> {
    let source = kernel::check_source(&o.tarball, o.release)?;
    let config = util::read(&o.src.join("image/kernel.config"))?;
    let listing = read_out(&o.out, "rootfs.tree", "initramfs")?;
    let release = String::from_utf8(read_out(&o.out, ".steps/kernel-release", "kernel")?)
        .map_err(|_| ".steps/kernel-release is not UTF-8")?;
    let efi = read_out(&o.out, "BOOTX64.EFI", "efi")?;
    let efi_authenticode =
        authenticode::authenticode_sha256(&efi).map_err(|e| format!("BOOTX64.EFI: {e}"))?;
    let mut artifacts = Vec::new();
    for (name, step) in [
        ("BOOTX64.EFI", "efi"),
        ("efiboot.img", "efi"),
        ("init", "init"),
        ("initrd.img", "initramfs"),
        ("rootfs.tree", "initramfs"),
        ("sherd.iso", "iso"),
        ("vmlinuz", "kernel"),
    ] {
        artifacts.push(manifest::Artifact::of(name, &read_out(&o.out, name, step)?));
    }
    let m = manifest::Manifest {
        version: env!("CARGO_PKG_VERSION").to_owned(),
        git_commit: commit(&o.src)?,
        source_date_epoch: sde()?,
        release_mode: o.release,
        toolchain: tools.clone(),
        kernel_package: kernel::PIN.package.to_owned(),
        kernel_package_version: kernel::PIN.version.to_owned(),
        kernel_source_sha256: source.sha256.clone(),
        kernel_source_pinned_sha256: kernel::PIN.sha256.to_owned(),
        kernel_config_sha256: util::sha256_hex(&config),
        kernel_release: release.trim().to_owned(),
        kernel_cmdline: iso::KERNEL_CMDLINE.to_owned(),
        efi_authenticode_sha256: hexstr::encode(&efi_authenticode),
        // The tree hash is the SHA-256 of the listing (docs/formats/rootfs-tree.md).
        rootfs_tree_sha256: util::sha256_hex(&listing),
        warnings: source.warning.into_iter().collect(),
        artifacts,
    };
    write(&o.out, "manifest.txt", m.render().as_bytes())?;
    write(&o.out, "SHA256SUMS", m.sha256sums().as_bytes())?;
    write(&o.out, "B3SUMS", m.b3sums().as_bytes())?;
    log(&format!(
        "manifest: {}",
        o.out.join("manifest.txt").display()
    ));
    Ok(())
}
