//! Writes pictures of the real VGA console, as a monitor shows it, to `docs/screens/*.png` for
//! the README: the image booted in QEMU with a standard VGA card, PID 1 on the VT
//! (`console=ttyS0 console=tty0`: the kernel's messages also go to the serial line), keys typed
//! on the emulated keyboard. Run: `./scripts/screens` (or
//! `cargo test -p e2e --test vga_screens -- --ignored --nocapture`).
//!
//! The first boot is in VGA text mode (80x25, 720x400), as QEMU's direct kernel boot and BIOS
//! bootloaders leave it: the first screen, the entropy check (virtio-rng and a software TPM),
//! and the first two pages of the ceremony's boot attestation with the ISO found on a boot
//! stick. The second boot asks for a VESA 1024x768 framebuffer (`vga=0x318`), which is what
//! fbcon draws on when the firmware hands over a framebuffer (Heads, UEFI): the first screen.

use e2e::vga::{Screen, TEXT_ROWS, VgaGuest};
use e2e::{CardBridge, Swtpm, workspace};
use std::path::Path;
use std::time::{Duration, Instant};

const BOUND: Duration = Duration::from_secs(180);
/// On the first screen once it is fully drawn, on an 80-column VT.
const FIRST_SCREEN: &str = " P  power off";

fn save(g: &mut VgaGuest, dir: &Path, name: &str, t0: Instant) -> Screen {
    let path = dir.join(name);
    let (screen, size) = g.screendump_png(&path);
    eprintln!(
        "{:6.1} s  {name}: {}x{}, {} colours, {size} bytes",
        t0.elapsed().as_secs_f64(),
        screen.width,
        screen.height,
        screen.colours().len()
    );
    assert!(size < 60_000, "{name} is {size} bytes");
    screen
}

#[test]
#[ignore = "regenerates docs/screens/*.png from the built image"]
fn capture_screens_vga() {
    let t0 = Instant::now();
    let dir = workspace().join("docs/screens");
    std::fs::create_dir_all(&dir).unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let kit = e2e::demo::make(
        tmp.path(),
        "vga-ceremony",
        2,
        &["Alice", "Bob", "Carol"],
        &e2e::read_out("sherd.iso"),
    );

    let tpm = Swtpm::start();
    let mut bridge = CardBridge::start(3);
    let mut extra = tpm.qemu_args();
    extra.extend(["-device".into(), "virtio-rng-pci".into()]);
    // The bridge's arguments bring the xHCI controller the sticks hang on.
    extra.extend(bridge.qemu_args());
    extra.extend(e2e::demo::usb_stick_args(&[
        ("boot", kit.boot_stick.as_path()),
        ("plan", kit.plan_stick.as_path()),
        ("data", kit.data_stick.as_path()),
    ]));
    let mut g = VgaGuest::start(
        "console=ttyS0 console=tty0 loglevel=3 findiso=/sherd.iso",
        &extra,
    );
    let text = g.wait_for_text(&[FIRST_SCREEN], BOUND);
    eprintln!("{text}");
    let boot = save(&mut g, &dir, "boot.png", t0);
    assert_eq!(
        boot.text_cell(),
        Some((9, 16)),
        "expected VGA text mode, 80x{TEXT_ROWS} cells of 9x16"
    );

    g.sendkey("e");
    let text = g.wait_for_text(&["PASS:", "REFUSED:"], BOUND);
    eprintln!("{text}");
    save(&mut g, &dir, "entropy-check.png", t0);

    g.sendkey("ret");
    g.wait_for_text(&[FIRST_SCREEN], BOUND);
    g.sendkey("g");
    let text = g.wait_for_text(&["boot attestation 1"], BOUND);
    eprintln!("{text}");
    save(&mut g, &dir, "attestation-1.png", t0);
    g.sendkey("tab");
    g.wait_for_text(&["[page 2 of"], BOUND);
    g.sendkey("tab");
    let text = g.wait_for_text(&["TPM PCR 0 to 3"], BOUND);
    eprintln!("{text}");
    save(&mut g, &dir, "attestation-2.png", t0);

    // On through the ceremony: the plan, the boot against the plan (a deviation recorded),
    // entropy (with a card's GET CHALLENGE), the root key, a card, the transcript's final words.
    g.sendkey("y");
    g.wait_for_text(&["[ waiting ] Wendy"], BOUND);
    g.sendkey("1");
    g.wait_for_text(&["[CONFIRMED] Wendy"], BOUND);
    g.sendkey("2");
    g.wait_for_text(&["Y  go on"], BOUND);
    save(&mut g, &dir, "ceremony-plan.png", t0);
    bridge.command("insert 0");
    std::thread::sleep(Duration::from_secs(1));
    g.sendkey("y");
    // The boot against the plan: no PCR can PASS under QEMU, so a deviation is recorded.
    g.wait_for_text(&["D  record a deviation"], BOUND);
    save(&mut g, &dir, "ceremony-boot-verdicts.png", t0);
    e2e::deviation::record_deviation(&mut g, e2e::deviation::QEMU_REASON);
    g.wait_for_text(&["PASS:"], BOUND);
    save(&mut g, &dir, "ceremony-entropy.png", t0);
    g.sendkey("ret");
    g.wait_for_text(&["Root certificate fingerprint"], BOUND);
    save(&mut g, &dir, "ceremony-keys.png", t0);
    g.sendkey("y");
    for i in 0..3 {
        if i > 0 {
            g.wait_for_text(&[&format!("for holder {}", i + 1)], BOUND);
            bridge.command(&format!("insert {i}"));
        }
        g.wait_for_text(&["Remove the card now"], BOUND);
        if i == 0 {
            save(&mut g, &dir, "ceremony-card-ready.png", t0);
        }
        bridge.command("remove");
    }
    g.wait_for_text(&["W  write"], BOUND);
    g.sendkey("w");
    g.wait_for_text(&["Transcript final hash"], BOUND);
    save(&mut g, &dir, "ceremony-transcript.png", t0);
    drop(g);
    drop(bridge);
    drop(tpm);

    // A framebuffer console: no text buffer to read, so the first screen is known by its
    // footer (ink on the last row of 16-pixel cells) and a stable picture.
    let mut g = VgaGuest::start("vga=0x318 console=ttyS0 console=tty0 loglevel=3", &[]);
    g.wait_for_picture(
        "first screen on the framebuffer (a footer on the last text row)",
        |s| s.text_cell().is_none() && s.has_ink(s.height - 16..s.height),
        BOUND,
    );
    save(&mut g, &dir, "boot-1024x768.png", t0);
    eprintln!("captured in {:.0} s", t0.elapsed().as_secs_f64());
}
