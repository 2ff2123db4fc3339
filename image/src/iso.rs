//! The ISO: `boot/vmlinuz`, `boot/initrd.img` and a `boot/grub/grub.cfg` that Heads' parser
//! (`kexec-parse-boot.sh`) and GRUB both read, written by xorriso with SOURCE_DATE_EPOCH.

use crate::util::{self, Result, pinned_env, run};
use std::fs;
use std::path::Path;
use std::process::Command;

// The grub.cfg and the rules Heads' parser imposes on it live with the rest of what Heads
// depends on; re-exported so the build and the tests keep one name for them.
pub use heads_config::grub::{KERNEL_CMDLINE, check_heads_rules, grub_cfg};
pub const VOLUME_ID: &str = "SHERD";

/// Lays out the ISO tree in `staging` and runs xorriso.
pub fn build(
    staging: &Path,
    iso: &Path,
    vmlinuz: &[u8],
    initrd: &[u8],
    grub: &str,
    source_date_epoch: i64,
) -> Result<()> {
    if staging.exists() {
        fs::remove_dir_all(staging).map_err(|e| format!("{}: {e}", staging.display()))?;
    }
    let grub_dir = staging.join("boot/grub");
    fs::create_dir_all(&grub_dir).map_err(|e| format!("{}: {e}", grub_dir.display()))?;
    util::write_atomic(&staging.join("boot/vmlinuz"), vmlinuz)?;
    util::write_atomic(&staging.join("boot/initrd.img"), initrd)?;
    util::write_atomic(&grub_dir.join("grub.cfg"), grub.as_bytes())?;
    // xorriso takes file dates from the disk (SOURCE_DATE_EPOCH covers only the volume's own
    // dates), so every staged file and directory gets the same fixed time.
    let when = std::time::UNIX_EPOCH
        + std::time::Duration::from_secs(u64::try_from(source_date_epoch).unwrap_or(0));
    for p in [
        "boot/vmlinuz",
        "boot/initrd.img",
        "boot/grub/grub.cfg",
        "boot/grub",
        "boot",
        "",
    ] {
        let path = staging.join(p);
        fs::File::open(&path)
            .and_then(|f| f.set_times(fs::FileTimes::new().set_accessed(when).set_modified(when)))
            .map_err(|e| format!("{}: {e}", path.display()))?;
    }
    if iso.exists() {
        fs::remove_file(iso).map_err(|e| format!("{}: {e}", iso.display()))?;
    }
    // -r: Rock Ridge with owner 0 and rationalised permissions, so the builder's umask and user
    // do not leak in; SOURCE_DATE_EPOCH fixes every date and the volume UUID.
    run(pinned_env(
        Command::new("xorriso")
            .env("SOURCE_DATE_EPOCH", source_date_epoch.to_string())
            .args(["-as", "mkisofs", "-quiet", "-r", "-V", VOLUME_ID, "-o"])
            .arg(iso)
            .arg(staging),
    ))
    .map_err(|e| format!("{e}\n(is xorriso installed? apt-get install xorriso)"))?;
    fs::remove_dir_all(staging).map_err(|e| format!("{}: {e}", staging.display()))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    // The rules themselves are tested in heads-config; here, that the build's config obeys them.
    #[test]
    fn our_grub_cfg_follows_heads_rules() {
        let cfg = grub_cfg("0.1.0");
        check_heads_rules(&cfg).unwrap();
        assert!(cfg.len() < 512);
        assert!(check_heads_rules(&(cfg.clone() + &cfg)).is_err());
    }
}
