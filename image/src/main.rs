#![forbid(unsafe_code)]
//! `sherd-image`: builds the sherd image (kernel, initramfs, ISO, manifest) reproducibly.
//!
//! ```text
//! sherd-image build [--out DIR] [--release] [--fresh-kernel] [--kernel-tarball FILE] [--cache DIR]
//! sherd-image kernel-config [--kernel-tarball FILE] [--cache DIR]
//! sherd-image list-initramfs FILE
//! sherd-image check-static FILE
//! ```

use sherd_image::util::{self, Result, pinned_env, run};
use sherd_image::{cpio, elf, initramfs, iso, kernel, manifest};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};

#[derive(Default)]
struct Args {
    out: Option<PathBuf>,
    cache: Option<PathBuf>,
    tarball: Option<PathBuf>,
    release: bool,
    fresh_kernel: bool,
    /// A fault-injection test build: `/init` with `ceremony/fault-wrong-second-shamir`, written
    /// as `init` and `initrd.img` only.
    fault_second_shamir: bool,
    positional: Vec<String>,
}

fn parse_args(mut it: impl Iterator<Item = String>) -> Result<Args> {
    let mut a = Args::default();
    while let Some(arg) = it.next() {
        let mut value = |name: &str| {
            it.next()
                .map(PathBuf::from)
                .ok_or_else(|| format!("{name} needs a value"))
        };
        match arg.as_str() {
            "--out" => a.out = Some(value("--out")?),
            "--cache" => a.cache = Some(value("--cache")?),
            "--kernel-tarball" => a.tarball = Some(value("--kernel-tarball")?),
            "--release" => a.release = true,
            "--fresh-kernel" => a.fresh_kernel = true,
            "--fault-wrong-second-shamir-for-tests" => a.fault_second_shamir = true,
            s if s.starts_with("--") => return Err(format!("unknown option {s}")),
            _ => a.positional.push(arg),
        }
    }
    Ok(a)
}

/// The workspace root: the nearest directory upwards with `image/initramfs.list`.
fn find_repo() -> Result<PathBuf> {
    let cwd = std::env::current_dir().map_err(|e| e.to_string())?;
    cwd.ancestors()
        .find(|d| d.join("image/initramfs.list").is_file())
        .map(Path::to_owned)
        .ok_or_else(|| "run sherd-image inside the sherd source tree".into())
}

fn default_cache() -> PathBuf {
    if let Some(d) = std::env::var_os("SHERD_CACHE") {
        return d.into();
    }
    let base = std::env::var_os("XDG_CACHE_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| Path::new(&h).join(".cache")))
        .unwrap_or_else(|| "/tmp".into());
    base.join("sherd")
}

fn log(msg: &str) {
    eprintln!("sherd-image: {msg}");
}

/// `commit` (with `-dirty` when the tree has changes) and the commit time.
fn git_identity(repo: &Path) -> (String, Option<i64>) {
    let git = |args: &[&str]| {
        let mut c = Command::new("git");
        c.arg("-C").arg(repo).args(args);
        run(pinned_env(&mut c)).ok().map(|s| s.trim().to_owned())
    };
    let Some(commit) = git(&["rev-parse", "HEAD"]) else {
        return ("unknown".into(), None);
    };
    let dirty =
        git(&["status", "--porcelain", "--untracked-files=no"]).is_some_and(|s| !s.is_empty());
    let time = git(&["log", "-1", "--format=%ct"]).and_then(|t| t.parse().ok());
    (
        if dirty {
            format!("{commit}-dirty")
        } else {
            commit
        },
        time,
    )
}

struct Tools {
    all: manifest::Toolchain,
}

impl Tools {
    fn probe(repo: &Path) -> Result<Tools> {
        Ok(Tools {
            all: manifest::Toolchain::probe(repo)?,
        })
    }

    fn kernel_key(&self) -> String {
        self.all.kernel_key()
    }

    fn embedded(&self) -> String {
        self.all.embedded()
    }
}

fn build(a: &Args) -> Result<()> {
    let repo = find_repo()?;
    let out = a.out.clone().unwrap_or_else(|| repo.join("out"));
    // A fault-injection build is for one test: never a release, never in the image folder
    // everything else (the README's boot command, the build parties) reads.
    let features: &[&str] = if a.fault_second_shamir {
        if a.release {
            return Err(
                "--fault-wrong-second-shamir-for-tests is a test build, never a release".into(),
            );
        }
        if a.out.is_none() || out == repo.join("out") {
            return Err(
                "--fault-wrong-second-shamir-for-tests writes only to an explicit --out folder other than out/"
                    .into(),
            );
        }
        &["ceremony/fault-wrong-second-shamir"]
    } else {
        &[]
    };
    let cache = a.cache.clone().unwrap_or_else(default_cache);
    std::fs::create_dir_all(&out).map_err(|e| format!("{}: {e}", out.display()))?;
    let version = env!("CARGO_PKG_VERSION");

    let tools = Tools::probe(&repo)?;
    let (commit, commit_time) = git_identity(&repo);
    let sde: i64 = match std::env::var("SOURCE_DATE_EPOCH") {
        Ok(s) => s
            .parse()
            .map_err(|_| format!("SOURCE_DATE_EPOCH={s:?} is not a number"))?,
        Err(_) => commit_time.ok_or(
            "no git commit time to use as SOURCE_DATE_EPOCH: build from a git checkout or set it",
        )?,
    };
    if a.release && commit.ends_with("-dirty") {
        return Err("a release is built from a clean checkout: commit or stash first".into());
    }

    let tarball = a
        .tarball
        .clone()
        .unwrap_or_else(|| kernel::PIN.tarball.into());
    let source = kernel::check_source(&tarball, a.release)?;
    if let Some(w) = &source.warning {
        log(&format!(
            "WARNING: {w} (test build; recorded in the manifest)"
        ));
    }
    let config = util::read(&repo.join("image/kernel.config"))?;
    let jobs = std::thread::available_parallelism().map_or(1, |n| n.get());
    let k = kernel::build(&kernel::Options {
        source: &source,
        config: &config,
        cache_dir: &cache,
        tool_versions: &tools.kernel_key(),
        fresh: a.fresh_kernel,
        jobs,
        log: &log,
    })?;

    let init = sherd_image::init::build_init(&repo, &commit, sde, &tools.embedded(), features)?;
    let list_text = String::from_utf8(util::read(&repo.join("image/initramfs.list"))?)
        .map_err(|_| "image/initramfs.list is not UTF-8")?;
    let list = initramfs::parse_list(&list_text).map_err(|e| e.to_string())?;
    let mut sources = BTreeMap::new();
    sources.insert("init".to_owned(), init.clone());
    let mtime = u32::try_from(sde).map_err(|_| "SOURCE_DATE_EPOCH out of range for cpio")?;
    let ramfs = initramfs::build(&list, &sources, mtime).map_err(|e| e.to_string())?;
    if a.fault_second_shamir {
        // Its one test boots initrd.img beside out/'s kernel: an EFI kernel, ISO or manifest
        // would only cost a relink, and nothing must take this folder for an image.
        util::write_atomic(&out.join("init"), &init)?;
        util::write_atomic(&out.join("initrd.img"), &ramfs.cpio)?;
        println!(
            "sherd fault-injection TEST build in {}: init and initrd.img only (no EFI kernel, \
             ISO or manifest); boot initrd.img with out/vmlinuz",
            out.display()
        );
        return Ok(());
    }

    let efi = kernel::build_efi(
        &kernel::Options {
            source: &source,
            config: &config,
            cache_dir: &cache,
            tool_versions: &tools.kernel_key(),
            fresh: a.fresh_kernel,
            jobs,
            log: &log,
        },
        &ramfs.cpio,
        iso::KERNEL_CMDLINE,
    )?;

    let efi_authenticode =
        authenticode::authenticode_sha256(&efi).map_err(|e| format!("the EFI kernel: {e}"))?;
    let efi_img = iso::efi_boot_image(&efi)?;

    let grub = iso::grub_cfg(version);
    iso::check_heads_rules(&grub).map_err(|e| format!("generated grub.cfg: {e}"))?;
    let iso_path = out.join("sherd.iso");
    iso::build(
        &out.join(".iso-staging"),
        &iso_path,
        &k.bzimage,
        &ramfs.cpio,
        &grub,
        &efi_img,
        sde,
    )?;
    let iso_bytes = util::read(&iso_path)?;

    util::write_atomic(&out.join("vmlinuz"), &k.bzimage)?;
    util::write_atomic(&out.join("initrd.img"), &ramfs.cpio)?;
    util::write_atomic(&out.join("init"), &init)?;
    util::write_atomic(&out.join("BOOTX64.EFI"), &efi)?;
    util::write_atomic(&out.join("efiboot.img"), &efi_img)?;
    util::write_atomic(&out.join("rootfs.tree"), ramfs.tree.listing().as_bytes())?;

    let mut warnings = Vec::new();
    warnings.extend(source.warning.clone());
    let m = manifest::Manifest {
        version: version.to_owned(),
        git_commit: commit,
        source_date_epoch: sde,
        release_mode: a.release,
        toolchain: tools.all.clone(),
        kernel_package: kernel::PIN.package.to_owned(),
        kernel_package_version: kernel::PIN.version.to_owned(),
        kernel_source_sha256: source.sha256.clone(),
        kernel_source_pinned_sha256: kernel::PIN.sha256.to_owned(),
        kernel_config_sha256: util::sha256_hex(&config),
        kernel_release: k.release.clone(),
        kernel_cmdline: iso::KERNEL_CMDLINE.to_owned(),
        efi_authenticode_sha256: hexstr::encode(&efi_authenticode),
        rootfs_tree_sha256: hexstr::encode(&ramfs.tree.hash()),
        warnings,
        artifacts: vec![
            manifest::Artifact::of("BOOTX64.EFI", &efi),
            manifest::Artifact::of("efiboot.img", &efi_img),
            manifest::Artifact::of("init", &init),
            manifest::Artifact::of("initrd.img", &ramfs.cpio),
            manifest::Artifact::of("rootfs.tree", ramfs.tree.listing().as_bytes()),
            manifest::Artifact::of("sherd.iso", &iso_bytes),
            manifest::Artifact::of("vmlinuz", &k.bzimage),
        ],
    };
    util::write_atomic(&out.join("manifest.txt"), m.render().as_bytes())?;
    util::write_atomic(&out.join("SHA256SUMS"), m.sha256sums().as_bytes())?;
    util::write_atomic(&out.join("B3SUMS"), m.b3sums().as_bytes())?;

    println!("sherd {version} built in {}", out.display());
    println!(
        "  kernel      {} ({} bytes, {} {})",
        k.release,
        k.bzimage.len(),
        if k.from_cache {
            "from cache"
        } else {
            "built, cache key"
        },
        &k.cache_key[..16]
    );
    println!(
        "  initramfs   {} bytes, {} entries",
        ramfs.cpio.len(),
        ramfs.tree.len()
    );
    println!("  efi kernel  {} bytes", efi.len());
    println!("  iso         {} bytes", iso_bytes.len());
    println!("  rootfs tree {}", m.rootfs_tree_sha256);
    println!("  iso sha256  {}", util::sha256_hex(&iso_bytes));
    println!("  efi authenticode sha256 {}", m.efi_authenticode_sha256);
    Ok(())
}

fn main() -> ExitCode {
    let mut argv = std::env::args().skip(1);
    let cmd = argv.next().unwrap_or_default();
    let result = parse_args(argv).and_then(|a| match cmd.as_str() {
        "build" => build(&a),
        "kernel-config" => {
            let repo = find_repo()?;
            let tarball = a
                .tarball
                .clone()
                .unwrap_or_else(|| kernel::PIN.tarball.into());
            let source = kernel::check_source(&tarball, false)?;
            kernel::regenerate_config(
                &repo,
                &source,
                &a.cache.clone().unwrap_or_else(default_cache),
            )?;
            println!("wrote image/kernel.config; review it with git diff");
            Ok(())
        }
        "list-initramfs" => {
            let file = a.positional.first().ok_or("list-initramfs FILE")?;
            for m in cpio::read(&util::read(Path::new(file))?).map_err(|e| e.to_string())? {
                println!(
                    "{:06o} {} {} {:>9} /{}",
                    m.member.mode,
                    m.member.uid,
                    m.member.gid,
                    m.member.data.len(),
                    m.member.name
                );
            }
            Ok(())
        }
        "check-static" => {
            let file = a.positional.first().ok_or("check-static FILE")?;
            let l = elf::linkage(&util::read(Path::new(file))?)?;
            println!("{file}: {l}");
            if l == elf::Linkage::StaticPie {
                Ok(())
            } else {
                Err("not static-pie".into())
            }
        }
        _ => Err(
            "usage: sherd-image build|kernel-config|list-initramfs FILE|check-static FILE \
                  [--out DIR] [--release] [--fresh-kernel] [--kernel-tarball FILE] [--cache DIR] \
                  [--fault-wrong-second-shamir-for-tests (a test build, with --out)]"
                .into(),
        ),
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("sherd-image: error: {e}");
            ExitCode::FAILURE
        }
    }
}
