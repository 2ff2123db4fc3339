//! The ISO: `boot/vmlinuz`, `boot/initrd.img` and a `boot/grub/grub.cfg` that Heads' parser
//! (`kexec-parse-boot.sh`) and GRUB both read, written by xorriso with SOURCE_DATE_EPOCH.
//!
//! For UEFI firmware the same file also carries an EFI system partition (a FAT image holding
//! only `EFI/BOOT/BOOTX64.EFI`, the kernel with its initramfs and command line built in),
//! appended after the ISO file system and named twice: by a GPT partition entry (a stick
//! written with `dd`) and by an El Torito EFI boot entry (optical media). No boot loader.

use crate::util::{self, Result, pinned_env, run};
use std::fs;
use std::path::Path;
use std::process::Command;

// The grub.cfg and the rules Heads' parser imposes on it live with the rest of what Heads
// depends on; re-exported so the build and the tests keep one name for them.
pub use heads_config::grub::{KERNEL_CMDLINE, check_heads_rules, grub_cfg};
pub const VOLUME_ID: &str = "SHERD";
/// The FAT volume label of the EFI system partition.
pub const EFI_LABEL: &str = "SHERD-EFI";
/// Where UEFI firmware looks on removable media for an x86-64 application (UEFI spec, 3.5.1).
pub const EFI_PATH: &str = "EFI/BOOT/BOOTX64.EFI";

/// The EFI system partition's FAT image. Its serial number is taken from the application's
/// hash, so it changes with the content and never with the build time.
pub fn efi_boot_image(efi_app: &[u8]) -> Result<Vec<u8>> {
    let h = treehash::sha256(efi_app);
    let serial = u32::from_le_bytes([h[0], h[1], h[2], h[3]]);
    crate::fat::image(&[(EFI_PATH, efi_app)], serial, EFI_LABEL)
        .map_err(|e| format!("EFI boot image: {e}"))
}

/// Lays out the ISO tree in `staging` and runs xorriso.
pub fn build(
    staging: &Path,
    iso: &Path,
    vmlinuz: &[u8],
    initrd: &[u8],
    grub: &str,
    efi_boot_image: &[u8],
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
    // The FAT image goes beside the tree, not into it: it is a partition, not a file on the ISO.
    let efi_img = staging.with_extension("efiboot.img");
    util::write_atomic(&efi_img, efi_boot_image)?;
    // -r: Rock Ridge with owner 0 and rationalised permissions, so the builder's umask and user
    // do not leak in; SOURCE_DATE_EPOCH fixes every date and the volume UUID.
    run(pinned_env(
        Command::new("xorriso")
            .env("SOURCE_DATE_EPOCH", source_date_epoch.to_string())
            .args(["-as", "mkisofs", "-quiet", "-r", "-V", VOLUME_ID])
            // The ISO file system also starts at 32 KiB as GPT partition 1, so a stick shows
            // two partitions: the ISO and, appended after it, the EFI system partition (type
            // 0xef; listed in the GPT, the protective MBR covers the whole image).
            .args(["-partition_offset", "16", "-append_partition", "2", "0xef"])
            .arg(&efi_img)
            .arg("-appended_part_as_gpt")
            // El Torito for optical media: the EFI entry points at that same partition, so
            // there is one copy of the FAT image. The boot catalog is kept out of the tree.
            .args([
                "-e",
                "--interval:appended_partition_2:all::",
                "-no-emul-boot",
                "-c",
                "boot.catalog",
                "--boot-catalog-hide",
                "-o",
            ])
            .arg(iso)
            .arg(staging),
    ))
    .map_err(|e| format!("{e}\n(is xorriso installed? apt-get install xorriso)"))?;
    fs::remove_dir_all(staging).map_err(|e| format!("{}: {e}", staging.display()))?;
    fs::remove_file(&efi_img).map_err(|e| format!("{}: {e}", efi_img.display()))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The EFI system partition, read back by dosfstools and mtools: FAT16, the application's
    /// bytes; the same input gives the same image.
    #[test]
    fn the_efi_image_reads_back_with_fsck_and_mtools() {
        for size in [10_000usize, 7_000_000] {
            let app: Vec<u8> = (0..size as u32)
                .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
                .collect();
            let img = efi_boot_image(&app).unwrap();
            assert_eq!(img, efi_boot_image(&app).unwrap(), "same input, same bytes");
            crate::fat::check_independently(&img, &[(EFI_PATH, &app)]);
        }
    }

    // The rules themselves are tested in heads-config; here, that the build's config obeys them.
    #[test]
    fn our_grub_cfg_follows_heads_rules() {
        let cfg = grub_cfg("0.1.0");
        check_heads_rules(&cfg).unwrap();
        assert!(cfg.len() < 512);
        assert!(check_heads_rules(&(cfg.clone() + &cfg)).is_err());
    }
}
