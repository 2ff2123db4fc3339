//! The kernel: Debian's `linux-source-6.12` tarball, pinned by version and SHA-256, configured by
//! the checked-in `image/kernel.config`, built with fixed build identity, and cached outside the
//! repository keyed by everything that goes into it.

use crate::util::{self, Result, pinned_env, run};
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

/// The kernel source this release is built from.
pub struct Pin {
    pub package: &'static str,
    pub version: &'static str,
    pub tarball: &'static str,
    pub sha256: &'static str,
    /// The directory the tarball unpacks to.
    pub top_dir: &'static str,
}

pub const PIN: Pin = Pin {
    package: "linux-source-6.12",
    version: "6.12.117-1~deb12u1",
    tarball: "/usr/src/linux-source-6.12.tar.xz",
    sha256: "585a4a074597aefa2b1a68ada83a3184ba351c127544dea80618bbcceaa3961f",
    top_dir: "linux-source-6.12",
};

/// Bump when the way the kernel is built changes (flags, environment), so caches miss.
const RECIPE: &str = "sherd kernel recipe 1";
/// The kernel's idea of its build time (`uname -v`): fixed, and independent of sherd's commits
/// so that the kernel is rebuilt only when its inputs change.
const BUILD_TIMESTAMP: &str = "1970-01-01 00:00:00 UTC";

/// What was found where the pinned source should be.
#[derive(Clone, Debug)]
pub struct SourceCheck {
    pub tarball: PathBuf,
    pub sha256: String,
    /// `None` when the tarball matches the pin; otherwise the sentence for the manifest.
    pub warning: Option<String>,
}

/// Hashes the tarball and compares it with the pin. In release mode a mismatch is an error.
pub fn check_source(tarball: &Path, release: bool) -> Result<SourceCheck> {
    let sha256 = util::sha256_file(tarball).map_err(|e| {
        format!(
            "kernel source {e}; install it with: apt-get install {}={}",
            PIN.package, PIN.version
        )
    })?;
    let warning = (sha256 != PIN.sha256).then(|| {
        format!(
            "kernel source {} has SHA-256 {sha256}, expected {} ({} {})",
            tarball.display(),
            PIN.sha256,
            PIN.package,
            PIN.version
        )
    });
    match warning {
        Some(w) if release => Err(format!(
            "{w}; a release must be built from the pinned source: install {}={} or update the pin \
             in image/src/kernel.rs deliberately",
            PIN.package, PIN.version
        )),
        warning => Ok(SourceCheck {
            tarball: tarball.to_owned(),
            sha256,
            warning,
        }),
    }
}

/// A built kernel.
pub struct Kernel {
    pub bzimage: Vec<u8>,
    /// `uname -r` of the built kernel.
    pub release: String,
    pub cache_key: String,
    pub from_cache: bool,
}

pub struct Options<'a> {
    pub source: &'a SourceCheck,
    pub config: &'a [u8],
    pub cache_dir: &'a Path,
    /// Versions of the tools that compile the kernel (part of the cache key).
    pub tool_versions: &'a str,
    /// Build from scratch, ignoring what the cache holds, and replace it.
    pub fresh: bool,
    pub jobs: usize,
    pub log: &'a dyn Fn(&str),
}

pub fn cache_key(source_sha256: &str, config: &[u8], tool_versions: &str) -> String {
    util::sha256_hex(
        format!(
            "{RECIPE}\nsource {source_sha256}\nconfig {}\ntools {tool_versions}\n",
            util::sha256_hex(config)
        )
        .as_bytes(),
    )
}

fn unpack(tarball: &Path, into: &Path) -> Result<PathBuf> {
    if into.exists() {
        fs::remove_dir_all(into).map_err(|e| format!("{}: {e}", into.display()))?;
    }
    fs::create_dir_all(into).map_err(|e| format!("{}: {e}", into.display()))?;
    run(Command::new("tar")
        .arg("-xf")
        .arg(tarball)
        .arg("-C")
        .arg(into))?;
    Ok(into.join(PIN.top_dir))
}

fn make(src: &Path) -> Command {
    let mut c = Command::new("make");
    pinned_env(&mut c)
        .current_dir(src)
        .arg("ARCH=x86_64")
        // Kernel identity that would otherwise come from the builder's machine and clock.
        .env("KBUILD_BUILD_TIMESTAMP", BUILD_TIMESTAMP)
        .env("KBUILD_BUILD_USER", "sherd")
        .env("KBUILD_BUILD_HOST", "sherd")
        .env("KBUILD_BUILD_VERSION", "1")
        .env("KCONFIG_NOTIMESTAMP", "1")
        .env(
            "KCFLAGS",
            format!(
                "-ffile-prefix-map={}=/usr/src/{}",
                src.display(),
                PIN.top_dir
            ),
        )
        // Keep the caller's SOURCE_DATE_EPOCH (sherd's commit time) out of the kernel.
        .env_remove("SOURCE_DATE_EPOCH")
        .env_remove("KBUILD_OUTPUT")
        .env_remove("ARCH")
        .env_remove("CROSS_COMPILE")
        .env_remove("MAKEFLAGS");
    c
}

/// Where a kernel's build tree lives in the cache. It is kept (about 1.5 GB) because the EFI
/// kernel is the same build relinked with the initramfs inside: kbuild then recompiles only what
/// the changed options touch. The path is fixed per key because kbuild records every command line,
/// and the file-prefix map in them names the tree: a tree moved elsewhere would rebuild from
/// scratch.
fn tree_dir(cache_dir: &Path, key: &str) -> PathBuf {
    cache_dir.join("kernel").join(key).join("tree")
}

/// Marks a tree whose first (plain) build finished, so a half-built tree is never reused.
const TREE_DONE: &str = ".sherd-tree-complete";

/// One build at a time per kernel key: the tree is shared state.
fn lock(cache_dir: &Path, key: &str) -> Result<fs::File> {
    let dir = cache_dir.join("kernel").join(key);
    fs::create_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    let path = dir.join("lock");
    let f = fs::File::create(&path).map_err(|e| format!("{}: {e}", path.display()))?;
    f.lock().map_err(|e| format!("{}: {e}", path.display()))?;
    Ok(f)
}

/// Unpacks the source into the key's tree and builds the plain kernel there.
fn build_tree(o: &Options, key: &str) -> Result<PathBuf> {
    let work = tree_dir(o.cache_dir, key);
    (o.log)(&format!(
        "kernel: unpacking {} into {}",
        o.source.tarball.display(),
        work.display()
    ));
    let src = unpack(&o.source.tarball, &work)?;
    configure(&src, o.config)?;
    (o.log)(&format!(
        "kernel: building with -j{} (a few minutes)",
        o.jobs
    ));
    make_bzimage(&src, o.jobs)?;
    util::write_atomic(&work.join(TREE_DONE), key.as_bytes())?;
    Ok(src)
}

/// Writes `.config` and insists that olddefconfig keeps it as it is: the checked-in config is
/// the whole configuration, never a starting point the kernel completes silently.
fn configure(src: &Path, config: &[u8]) -> Result<()> {
    util::write_atomic(&src.join(".config"), config)?;
    run(make(src).arg("-s").arg("olddefconfig"))?;
    if util::read(&src.join(".config"))? != config {
        return Err(
            "the kernel configuration is not complete for this kernel source (olddefconfig \
             changed it); run `sherd-image kernel-config` and review the diff"
                .into(),
        );
    }
    Ok(())
}

fn make_bzimage(src: &Path, jobs: usize) -> Result<Vec<u8>> {
    run(make(src).arg(format!("-j{jobs}")).arg("-s").arg("bzImage"))?;
    util::read(&src.join("arch/x86/boot/bzImage"))
}

/// Builds the kernel, or takes it from the cache. `fresh` builds the tree from scratch even
/// when the cache has this kernel, and replaces the cached one.
pub fn build(o: &Options) -> Result<Kernel> {
    let key = cache_key(&o.source.sha256, o.config, o.tool_versions);
    let slot = o.cache_dir.join("kernel").join(&key);
    let _lock = lock(o.cache_dir, &key)?;
    if !o.fresh
        && let (Ok(bzimage), Ok(release)) = (
            fs::read(slot.join("bzImage")),
            fs::read_to_string(slot.join("release")),
        )
    {
        (o.log)(&format!("kernel: from cache {}", slot.display()));
        return Ok(Kernel {
            bzimage,
            release: release.trim().to_owned(),
            cache_key: key,
            from_cache: true,
        });
    }
    let src = build_tree(o, &key)?;
    let bzimage = util::read(&src.join("arch/x86/boot/bzImage"))?;
    let release = run(make(&src).arg("-s").arg("kernelrelease"))?
        .trim()
        .to_owned();
    util::write_atomic(&slot.join("release"), release.as_bytes())?;
    util::write_atomic(&slot.join("bzImage"), &bzimage)?;
    Ok(Kernel {
        bzimage,
        release,
        cache_key: key,
        from_cache: false,
    })
}

/// Bump when the way the EFI kernel is derived changes, so its cache misses.
const EFI_RECIPE: &str = "sherd efi kernel recipe 1";
/// Where the initramfs goes inside the tree; relative, so the path is the same on every machine.
const EFI_INITRAMFS: &str = "usr/sherd-initramfs.cpio";

/// The EFI kernel's configuration: the plain one with the command line built in and fixed
/// (UEFI firmware passes none from a removable medium, and a boot entry that passes some is
/// ignored: `CMDLINE_OVERRIDE`) and the initramfs built in, uncompressed. The kernel's
/// EFI stub can load an initrd only from `initrd=` in the load options the firmware or a boot
/// loader passes, never from the built-in command line, so without a boot loader the initramfs
/// has to be inside the EFI application. That also puts it under the firmware's measurement.
pub fn efi_config(plain: &str, cmdline: &str) -> Result<String> {
    if cmdline.contains('"') || cmdline.contains('\\') {
        return Err(format!(
            "kernel command line {cmdline:?} holds a quote or backslash"
        ));
    }
    let mut out = String::with_capacity(plain.len() + 256);
    let (mut saw_cmdline, mut saw_source) = (false, false);
    for line in plain.lines() {
        match line {
            "# CONFIG_CMDLINE_BOOL is not set" => {
                saw_cmdline = true;
                out.push_str("CONFIG_CMDLINE_BOOL=y\n");
                out.push_str(&format!("CONFIG_CMDLINE=\"{cmdline}\"\n"));
                out.push_str("CONFIG_CMDLINE_OVERRIDE=y\n");
            }
            "CONFIG_INITRAMFS_SOURCE=\"\"" => {
                saw_source = true;
                out.push_str(&format!("CONFIG_INITRAMFS_SOURCE=\"{EFI_INITRAMFS}\"\n"));
                out.push_str("CONFIG_INITRAMFS_ROOT_UID=0\n");
                out.push_str("CONFIG_INITRAMFS_ROOT_GID=0\n");
                out.push_str("CONFIG_INITRAMFS_COMPRESSION_NONE=y\n");
            }
            l => {
                out.push_str(l);
                out.push('\n');
            }
        }
    }
    if !(saw_cmdline && saw_source) {
        return Err(
            "image/kernel.config must leave CONFIG_CMDLINE_BOOL off and \
                    CONFIG_INITRAMFS_SOURCE empty: the EFI kernel sets both"
                .into(),
        );
    }
    Ok(out)
}

/// olddefconfig may reorder lines and add options that stay off; anything else it changes is an
/// error, so the EFI kernel is the plain one plus exactly the lines [`efi_config`] adds.
pub fn check_efi_config(wanted: &str, after: &str) -> Result<()> {
    let have: std::collections::BTreeSet<&str> = after.lines().collect();
    let want: std::collections::BTreeSet<&str> = wanted.lines().collect();
    let missing: Vec<&str> = want.difference(&have).copied().collect();
    let added: Vec<&str> = have
        .difference(&want)
        .copied()
        .filter(|l| !(l.starts_with("# CONFIG_") && l.ends_with(" is not set")))
        .collect();
    if missing.is_empty() && added.is_empty() {
        return Ok(());
    }
    Err(format!(
        "olddefconfig changed the EFI kernel's configuration (see kernel::efi_config): \
         dropped {missing:?}, added {added:?}"
    ))
}

/// The EFI application: the plain kernel relinked with `initramfs` and `cmdline` built in.
pub fn build_efi(o: &Options, initramfs: &[u8], cmdline: &str) -> Result<Vec<u8>> {
    let key = cache_key(&o.source.sha256, o.config, o.tool_versions);
    let efi_key = util::sha256_hex(
        format!(
            "{EFI_RECIPE}\ninitramfs {}\ncmdline {cmdline}\n",
            util::sha256_hex(initramfs)
        )
        .as_bytes(),
    );
    let slot = o
        .cache_dir
        .join("kernel")
        .join(&key)
        .join("efi")
        .join(&efi_key);
    let _lock = lock(o.cache_dir, &key)?;
    if !o.fresh
        && let Ok(efi) = fs::read(slot.join("BOOTX64.EFI"))
    {
        (o.log)(&format!("efi kernel: from cache {}", slot.display()));
        return Ok(efi);
    }
    let tree = tree_dir(o.cache_dir, &key);
    let src = if tree.join(TREE_DONE).is_file() {
        tree.join(PIN.top_dir)
    } else {
        (o.log)("efi kernel: no build tree for this kernel in the cache; building it first");
        build_tree(o, &key)?
    };
    let plain = std::str::from_utf8(o.config).map_err(|_| "kernel config is not UTF-8")?;
    let config = efi_config(plain, cmdline)?;
    util::write_atomic(&src.join(EFI_INITRAMFS), initramfs)?;
    util::write_atomic(&src.join(".config"), config.as_bytes())?;
    run(make(&src).arg("-s").arg("olddefconfig"))?;
    let after = String::from_utf8(util::read(&src.join(".config"))?)
        .map_err(|_| "the EFI kernel's .config is not UTF-8")?;
    check_efi_config(&config, &after)?;
    (o.log)("efi kernel: relinking with the initramfs and command line built in");
    let efi = make_bzimage(&src, o.jobs)?;
    fs::create_dir_all(&slot).map_err(|e| format!("{}: {e}", slot.display()))?;
    util::write_atomic(&slot.join("BOOTX64.EFI"), &efi)?;
    Ok(efi)
}

/// Lines of the fragment that the full config does not satisfy.
pub fn unsatisfied(fragment: &str, config: &str) -> Vec<String> {
    let have: std::collections::BTreeMap<&str, &str> = config
        .lines()
        .filter_map(|l| {
            if let Some(rest) = l.strip_prefix("# ") {
                rest.strip_suffix(" is not set").map(|k| (k, "n"))
            } else {
                l.split_once('=')
            }
        })
        .collect();
    fragment
        .lines()
        .filter_map(|l| {
            let want = if let Some(rest) = l.strip_prefix("# CONFIG_") {
                (format!("CONFIG_{}", rest.strip_suffix(" is not set")?), "n")
            } else if l.starts_with("CONFIG_") {
                let (k, v) = l.split_once('=')?;
                (k.to_owned(), v)
            } else {
                return None;
            };
            let got = have.get(want.0.as_str()).copied().unwrap_or("n");
            (got != want.1).then(|| format!("{l}   (config has {}={got})", want.0))
        })
        .collect()
}

/// Regenerates `image/kernel.config` from tinyconfig plus `image/kernel.fragment`.
pub fn regenerate_config(repo: &Path, source: &SourceCheck, cache_dir: &Path) -> Result<()> {
    let work = cache_dir.join("kernel").join("config-work");
    let src = unpack(&source.tarball, &work)?;
    run(make(&src).arg("-s").arg("tinyconfig"))?;
    let fragment_path = repo.join("image/kernel.fragment");
    run(pinned_env(
        Command::new(src.join("scripts/kconfig/merge_config.sh"))
            .current_dir(&src)
            .env("ARCH", "x86_64")
            .args(["-m", ".config"])
            .arg(&fragment_path),
    ))?;
    run(make(&src).arg("-s").arg("olddefconfig"))?;
    let config = util::read(&src.join(".config"))?;
    let fragment = String::from_utf8_lossy(&util::read(&fragment_path)?).into_owned();
    let missing = unsatisfied(&fragment, &String::from_utf8_lossy(&config));
    if !missing.is_empty() {
        return Err(format!(
            "the kernel refused some of image/kernel.fragment (a dependency is missing):\n  {}",
            missing.join("\n  ")
        ));
    }
    util::write_atomic(&repo.join("image/kernel.config"), &config)?;
    fs::remove_dir_all(&work).map_err(|e| format!("{}: {e}", work.display()))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn checked_in_config_satisfies_the_fragment_and_the_red_lines() {
        let config = include_str!("../kernel.config");
        let fragment = include_str!("../kernel.fragment");
        assert_eq!(unsatisfied(fragment, config), Vec::<String>::new());
        // The lines the threat model depends on, checked directly too.
        for off in ["NET", "MODULES", "FW_LOADER", "DEVMEM", "DEVPORT", "KEXEC"] {
            assert!(
                config.contains(&format!("# CONFIG_{off} is not set\n")),
                "CONFIG_{off} must be off"
            );
        }
        assert!(!config.contains("CONFIG_INET=y"));
    }

    #[test]
    fn unsatisfied_reports_each_mismatch() {
        let config = "CONFIG_A=y\n# CONFIG_B is not set\nCONFIG_C=\"x\"\n";
        assert!(
            unsatisfied("CONFIG_A=y\n# CONFIG_B is not set\nCONFIG_C=\"x\"", config).is_empty()
        );
        let bad = unsatisfied(
            "CONFIG_B=y\n# CONFIG_A is not set\n# CONFIG_D is not set\nCONFIG_E=y",
            config,
        );
        assert_eq!(bad.len(), 3, "{bad:?}");
        assert!(bad[0].contains("CONFIG_B=n"));
    }

    #[test]
    fn the_efi_config_adds_exactly_the_built_in_command_line_and_initramfs() {
        let plain = include_str!("../kernel.config");
        let efi = efi_config(plain, "console=tty0 loglevel=3").unwrap();
        for l in [
            "CONFIG_CMDLINE_BOOL=y",
            "CONFIG_CMDLINE=\"console=tty0 loglevel=3\"",
            "CONFIG_CMDLINE_OVERRIDE=y",
            "CONFIG_INITRAMFS_SOURCE=\"usr/sherd-initramfs.cpio\"",
            "CONFIG_INITRAMFS_COMPRESSION_NONE=y",
        ] {
            assert!(efi.lines().any(|x| x == l), "{l}");
        }
        assert!(efi_config(plain, "a\"b").is_err());
        assert!(efi_config(&efi, "x").is_err(), "only from the plain config");
        // olddefconfig reordering and a new option left off are fine; anything else is not.
        let mut reordered: Vec<&str> = efi.lines().collect();
        reordered.reverse();
        let r = reordered.join("\n") + "\n# CONFIG_NEW is not set\n";
        check_efi_config(&efi, &r).unwrap();
        assert!(check_efi_config(&efi, &(r.clone() + "CONFIG_NEW2=y\n")).is_err());
        assert!(check_efi_config(&efi, &r.replace("CONFIG_CMDLINE_OVERRIDE=y", "")).is_err());
    }

    #[test]
    fn cache_key_changes_with_every_input() {
        let k = cache_key("a", b"cfg", "gcc 12");
        assert_ne!(k, cache_key("b", b"cfg", "gcc 12"));
        assert_ne!(k, cache_key("a", b"cfg2", "gcc 12"));
        assert_ne!(k, cache_key("a", b"cfg", "gcc 13"));
        assert_eq!(k, cache_key("a", b"cfg", "gcc 12"));
    }
}
