//! The hardware reports a person trying sherd on new hardware sends back: W on the card check
//! (C) and on the entropy check (E) writes what the screen showed, with the readers' USB
//! descriptors, to `sherd-report/` on the data stick, never on the boot stick.

use e2e::{Boot, CardBridge, Guest, Swtpm};
use std::time::Duration;

const BOUND: Duration = Duration::from_secs(180);

/// W, and back to the check. USB sticks appear some seconds after boot: as a person would, press
/// W again while the screen says no data stick was found.
fn write_report(g: &mut Guest, check: &str) {
    for _ in 0..20 {
        g.send("w");
        g.wait_until_any(&["Written to", "NOT written"], BOUND);
        let after = g.screen();
        g.send("\r");
        g.wait_for_screen(check, BOUND);
        if after.contains("Written to") {
            return;
        }
        assert!(after.contains("no data stick found"), "{after}");
        std::thread::sleep(Duration::from_secs(2));
    }
    panic!("the data stick was never found");
}

#[test]
#[ignore = "needs the built image; the README's test command runs it"]
fn w_on_the_card_and_entropy_checks_writes_reports_to_the_data_stick() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data-stick.img");
    let boot_stick = tmp.path().join("boot-stick.img");
    heads_config::stick::write_disk_image(&data, "DATA", &[], 0).unwrap();
    let iso = e2e::read_out("sherd.iso");
    heads_config::stick::write_disk_image(&boot_stick, "SHERD", &[("sherd.iso", &iso)], 0).unwrap();
    let tpm = Swtpm::start();
    let mut bridge = CardBridge::start(1);
    let mut b = Boot::serial();
    b.append.push_str(" findiso=/sherd.iso");
    b.extra.extend(tpm.qemu_args());
    b.extra.extend(["-device".into(), "virtio-rng-pci".into()]);
    // The bridge's arguments bring the xHCI controller the sticks hang on.
    b.extra.extend(bridge.qemu_args());
    b.extra.extend(e2e::demo::usb_stick_args(&[
        ("boot", boot_stick.as_path()),
        ("data", data.as_path()),
    ]));
    let mut g = Guest::start(&b);
    g.wait_for_screen(e2e::FIRST_SCREEN, BOUND);

    g.send("c");
    bridge.command("insert 0");
    g.wait_for_screen("OpenPGP card", Duration::from_secs(60));
    assert!(g.screen().contains("W  write a report"), "{}", g.screen());
    write_report(&mut g, "card check");
    g.send("\x1b");
    g.wait_for_screen(e2e::FIRST_SCREEN, BOUND);

    g.send("e");
    g.wait_for_screen("W  write a report", BOUND);
    write_report(&mut g, "entropy check");
    g.back_and_power_off();
    drop(tpm);

    let files = heads_config::stick::read_files(&data).unwrap();
    let text = |prefix: &str| {
        files
            .iter()
            .find(|(n, _)| n.starts_with(&format!("sherd-report/{prefix}-")))
            .map(|(_, b)| String::from_utf8(b.clone()).unwrap())
            .unwrap_or_else(|| panic!("sherd-report/{prefix}-*.txt on the data stick: {files:?}"))
    };
    let cards = text("cards");
    eprintln!("{cards}");
    assert!(cards.starts_with("sherd hardware report: card check\nimage: sherd "));
    assert!(cards.contains("\nreader "), "{cards}");
    assert!(cards.contains("OpenPGP card"), "{cards}");
    // QEMU's usb-ccid: a device descriptor (0x12 bytes, type 1) first.
    assert!(cards.contains("usb descriptors: 1201"), "{cards}");
    let entropy = text("entropy");
    eprintln!("{entropy}");
    assert!(
        entropy.contains("Randomness sources found on this machine"),
        "{entropy}"
    );
    let boot_files = heads_config::stick::read_files(&boot_stick).unwrap();
    assert!(
        boot_files
            .iter()
            .all(|(n, _)| !n.starts_with("sherd-report")),
        "nothing written to the boot stick"
    );
}
