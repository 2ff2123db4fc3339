//! The ISO: `boot/vmlinuz`, `boot/initrd.img` and a `boot/grub/grub.cfg` that Heads' parser
//! (`kexec-parse-boot.sh`) and GRUB both read, written by xorriso with SOURCE_DATE_EPOCH.

use crate::util::{self, Result, pinned_env, run};
use std::fs;
use std::path::Path;
use std::process::Command;

/// The kernel command line. The last `console=` is the one PID 1 draws the screens on: the
/// display; the serial line gets the kernel's messages. No `$`, quotes or backticks: Heads
/// `eval`s entries.
pub const KERNEL_CMDLINE: &str = "console=ttyS0,115200 console=tty0 loglevel=3";
pub const VOLUME_ID: &str = "SHERD";
/// Heads warns past this many bytes of command line (its own words included).
const HEADS_CMDLINE_LIMIT: usize = 2047;

pub fn grub_cfg(version: &str) -> String {
    format!(
        "# sherd {version}: one entry, read by GRUB and by Heads' kexec-parse-boot.sh.\n\
         menuentry 'sherd-{version}' {{\n\
         linux /boot/vmlinuz {KERNEL_CMDLINE}\n\
         initrd /boot/initrd.img\n\
         }}\n"
    )
}

/// Checks a grub.cfg against the rules Heads applies (see `../shared/reference/heads.md`):
/// exactly one menuentry, braces on their own lines, one `linux` and one `initrd` line with
/// absolute paths, and a command line free of `$`, quotes and backticks, well under the limit.
pub fn check_heads_rules(cfg: &str) -> Result<()> {
    let lines: Vec<&str> = cfg
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .collect();
    let count = |p: &str| lines.iter().filter(|l| l.starts_with(p)).count();
    if count("menuentry") != 1 {
        return Err(format!(
            "needs exactly one menuentry, has {}",
            count("menuentry")
        ));
    }
    if !lines[0].starts_with("menuentry ") || !lines[0].ends_with(" {") {
        return Err("the menuentry line must come first and end with ` {`".into());
    }
    if lines.last() != Some(&"}") || count("}") != 1 {
        return Err("the entry must end with a line that is exactly `}`".into());
    }
    if count("linux") != 1 || count("initrd") != 1 {
        return Err(
            "needs exactly one linux line and one initrd line (Heads keeps one initrd)".into(),
        );
    }
    for l in &lines[1..lines.len() - 1] {
        let mut words = l.split_whitespace();
        let cmd = words.next().unwrap_or("");
        let path = words.next().unwrap_or("");
        if !matches!(cmd, "linux" | "initrd") {
            return Err(format!("unexpected line {l:?}"));
        }
        if !path.starts_with("/boot/") {
            return Err(format!("{cmd} path {path:?} must be absolute under /boot/"));
        }
        if l.contains(['$', '\'', '"', '`']) {
            return Err(format!("{l:?}: no $, quotes or backticks (Heads evals it)"));
        }
        if cmd == "initrd" && words.next().is_some() {
            return Err("one initrd only".into());
        }
        if cmd == "linux" && l.len() > HEADS_CMDLINE_LIMIT / 2 {
            return Err("the command line leaves too little room for Heads' own words".into());
        }
    }
    Ok(())
}

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

    #[test]
    fn our_grub_cfg_follows_heads_rules() {
        let cfg = grub_cfg("0.1.0");
        check_heads_rules(&cfg).unwrap();
        assert!(cfg.len() < 512);
    }

    #[test]
    fn heads_rule_violations_are_caught() {
        let good = grub_cfg("1");
        let cases = [
            (good.replace("loglevel=3", "root=$x"), "no $"),
            (good.replace("loglevel=3", "a=\"b\""), "no $"),
            (good.replace("loglevel=3", "`x`"), "no $"),
            (good.clone() + &good, "exactly one menuentry"),
            (
                good.replace("initrd /boot/initrd.img", "initrd /boot/a /boot/b"),
                "one initrd",
            ),
            (
                good.replace(
                    "initrd /boot/initrd.img\n",
                    "initrd /boot/a\ninitrd /boot/b\n",
                ),
                "exactly one linux line and one initrd",
            ),
            (good.replace("linux /boot/", "linux boot/"), "absolute"),
            (good.replace("}\n", "} \n}\n"), "exactly `}`"),
        ];
        for (cfg, want) in cases {
            let e = check_heads_rules(&cfg).unwrap_err();
            assert!(e.contains(want), "{cfg}\n=> {e}");
        }
    }
}
