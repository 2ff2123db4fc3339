//! Writes the real screens, as the serial console shows them in QEMU, to `docs/screens/*.txt`
//! for the README. Run: `cargo test -p e2e --test screens -- --ignored`.

use e2e::{Boot, CardBridge, Guest, Swtpm, workspace};
use std::time::Duration;

#[test]
#[ignore = "regenerates docs/screens from the built image"]
fn capture_screens() {
    let dir = workspace().join("docs/screens");
    std::fs::create_dir_all(&dir).unwrap();
    let tpm = Swtpm::start();
    let mut b = Boot::serial();
    b.extra.extend(tpm.qemu_args());
    b.extra.extend(["-device".into(), "virtio-rng-pci".into()]);
    let mut g = Guest::start(&b);
    g.wait_for_screen(e2e::FIRST_SCREEN, Duration::from_secs(180));
    std::fs::write(dir.join("boot.txt"), g.screen()).unwrap();
    g.send("e");
    g.wait_until_any(&["PASS:", "REFUSED:"], Duration::from_secs(180));
    std::fs::write(dir.join("entropy-check.txt"), g.screen()).unwrap();
    drop(g);

    let mut bridge = CardBridge::start(1);
    let mut b = Boot::serial();
    b.extra.extend(bridge.qemu_args());
    let mut g = Guest::start(&b);
    g.wait_for_screen(e2e::FIRST_SCREEN, Duration::from_secs(180));
    g.send("c");
    g.wait_for_screen("no card: insert one", Duration::from_secs(60));
    bridge.command("insert 0");
    g.wait_for_screen("PIN tries left", Duration::from_secs(60));
    std::fs::write(dir.join("card-check.txt"), g.screen()).unwrap();
}
