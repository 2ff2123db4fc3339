//! The ISO written to a USB stick as `dd` writes it, booted by UEFI firmware (OVMF, Debian's
//! `ovmf`) with a software TPM: QEMU is given no kernel, no initrd and no command line, so the
//! firmware has to find `EFI/BOOT/BOOTX64.EFI` on the stick's EFI system partition by itself.
//! The framebuffer is read back as text with the kernel's own console font.

use e2e::vga::{Font, VgaGuest};
use e2e::{Swtpm, artifact_sha256, manifest_field, out_dir};
use std::time::Duration;

const BOUND: Duration = Duration::from_secs(300);
const OVMF_CODE: &str = "/usr/share/OVMF/OVMF_CODE_4M.fd";
const OVMF_VARS: &str = "/usr/share/OVMF/OVMF_VARS_4M.fd";

/// QEMU arguments for OVMF (a private copy of its variable store) and the stick.
fn firmware_and_stick(dir: &std::path::Path) -> Vec<String> {
    assert!(
        std::path::Path::new(OVMF_CODE).exists(),
        "{OVMF_CODE}: UEFI firmware for QEMU is needed: apt-get install ovmf (scripts/setup does)"
    );
    let vars = dir.join("OVMF_VARS.fd");
    std::fs::copy(OVMF_VARS, &vars).unwrap();
    // A stick is larger than the image: the rest of it is whatever was there before.
    let stick = dir.join("stick.img");
    std::fs::copy(out_dir().join("sherd.iso"), &stick).unwrap();
    let f = std::fs::OpenOptions::new()
        .write(true)
        .open(&stick)
        .unwrap();
    f.set_len(64 << 20).unwrap();
    vec![
        "-drive".into(),
        format!("if=pflash,format=raw,unit=0,readonly=on,file={OVMF_CODE}"),
        "-drive".into(),
        format!("if=pflash,format=raw,unit=1,file={}", vars.display()),
        "-device".into(),
        "qemu-xhci,id=xhci".into(),
        "-drive".into(),
        format!("if=none,id=stick,format=raw,file={}", stick.display()),
        "-device".into(),
        "usb-storage,bus=xhci.0,drive=stick,removable=on".into(),
    ]
}

#[test]
#[ignore = "boots the built image in QEMU under UEFI firmware: cargo test -p e2e --test uefi -- --ignored"]
fn the_iso_written_to_a_stick_boots_by_uefi_without_a_boot_loader() {
    let tmp = tempfile::tempdir().unwrap();
    let tpm = Swtpm::start();
    let mut args = firmware_and_stick(tmp.path());
    args.extend(tpm.qemu_args());
    args.extend(["-device".into(), "virtio-rng-pci".into()]);
    let mut g = VgaGuest::start_firmware(&args);
    let font = Font::from_kernel_source();
    let text = g.wait_for_fb_text(&font, &[e2e::FIRST_SCREEN], BOUND);
    eprintln!("{text}");
    // OVMF names what it started on the serial line: the stick, not a network or a shell.
    let serial = g.serial();
    assert!(
        serial.contains("BdsDxe: starting Boot") && serial.contains("USB"),
        "the firmware should say it started the USB stick's boot option:\n{serial}"
    );
    assert!(text.contains(&manifest_field("version")), "{text}");

    // The boot attestation: the image is the whole stick, hashed to its backup GPT header, and
    // equal to the released ISO; the firmware measured exactly the stick's BOOTX64.EFI.
    g.sendkey("g");
    let page1 = g.wait_for_fb_text(&font, &["boot attestation 1"], BOUND);
    assert_eq!(
        e2e::hash_after(&page1, "Boot image (ISO) SHA-256").as_deref(),
        Some(artifact_sha256("sherd.iso").as_str()),
        "{page1}"
    );
    assert!(page1.contains("the whole stick"), "{page1}");
    g.sendkey("tab");
    let page2 = g.wait_for_fb_text(&font, &["boot attestation 2"], BOUND);
    assert!(page2.contains("EFI system partition"), "{page2}");
    g.sendkey("tab");
    let uefi = g.wait_for_fb_text(&font, &["the UEFI firmware"], BOUND);
    eprintln!("{uefi}");
    // Debian's OVMF_VARS has no platform key enrolled: the firmware is in setup mode.
    assert!(uefi.contains("Secure Boot: setup-mode."), "{uefi}");
    assert!(uefi.contains("kernel on the boot stick above"), "{uefi}");
    let efi = manifest_field("efi-authenticode");
    assert_eq!(
        e2e::hash_after(&uefi, "EFI/BOOT/BOOTX64.EFI, Authenticode SHA-256")
            .map(|h| format!("sha256 {h}"))
            .as_deref(),
        Some(efi.as_str()),
        "{uefi}"
    );
    assert!(uefi.contains("replays to PCR 4"), "{uefi}");
}
