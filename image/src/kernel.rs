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
    /// Build from scratch and neither read nor write the cache.
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

/// Builds the kernel, or takes it from the cache.
pub fn build(o: &Options) -> Result<Kernel> {
    let key = cache_key(&o.source.sha256, o.config, o.tool_versions);
    let slot = o.cache_dir.join("kernel").join(&key);
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
    let work =
        o.cache_dir
            .join("kernel")
            .join(format!("build-{}-{}", &key[..16], std::process::id()));
    (o.log)(&format!(
        "kernel: unpacking {} into {}",
        o.source.tarball.display(),
        work.display()
    ));
    let src = unpack(&o.source.tarball, &work)?;
    util::write_atomic(&src.join(".config"), o.config)?;
    run(make(&src).arg("-s").arg("olddefconfig"))?;
    let after = util::read(&src.join(".config"))?;
    if after != o.config {
        return Err(
            "image/kernel.config is not a complete configuration for this kernel source \
             (olddefconfig changed it); run `sherd-image kernel-config` and review the diff"
                .into(),
        );
    }
    (o.log)(&format!(
        "kernel: building with -j{} (a few minutes)",
        o.jobs
    ));
    run(make(&src)
        .arg(format!("-j{}", o.jobs))
        .arg("-s")
        .arg("bzImage"))?;
    let release = run(make(&src).arg("-s").arg("kernelrelease"))?
        .trim()
        .to_owned();
    let bzimage = util::read(&src.join("arch/x86/boot/bzImage"))?;
    if !o.fresh {
        fs::create_dir_all(&slot).map_err(|e| format!("{}: {e}", slot.display()))?;
        util::write_atomic(&slot.join("release"), release.as_bytes())?;
        util::write_atomic(&slot.join("bzImage"), &bzimage)?;
    }
    fs::remove_dir_all(&work).map_err(|e| format!("{}: {e}", work.display()))?;
    Ok(Kernel {
        bzimage,
        release,
        cache_key: key,
        from_cache: false,
    })
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
    fn cache_key_changes_with_every_input() {
        let k = cache_key("a", b"cfg", "gcc 12");
        assert_ne!(k, cache_key("b", b"cfg", "gcc 12"));
        assert_ne!(k, cache_key("a", b"cfg2", "gcc 12"));
        assert_ne!(k, cache_key("a", b"cfg", "gcc 13"));
        assert_eq!(k, cache_key("a", b"cfg", "gcc 12"));
    }
}
