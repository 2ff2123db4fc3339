//! Writes the real screens, as the serial console shows them in QEMU, to `docs/screens/*.txt`
//! for the README. Run: `cargo test -p e2e --test screens -- --ignored`.

use e2e::{Boot, Guest, Swtpm, workspace};
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
}
