//! Inside the booted image, the entropy check finds QEMU's virtio-rng through the kernel hwrng
//! and the emulated TPM (swtpm) through /dev/tpmrm0, health-tests both and counts them as two
//! independent hardware sources; without the TPM it refuses.

use e2e::{Boot, Guest, Swtpm};
use std::time::Duration;

const BOUND: Duration = Duration::from_secs(180);

fn check(g: &mut Guest) -> String {
    g.wait_for_screen(e2e::FIRST_SCREEN, BOUND);
    g.send("e");
    let t = g.started.elapsed();
    g.wait_until_any(&["PASS:", "REFUSED:"], BOUND);
    eprintln!(
        "entropy check in the guest: {:.2} s",
        (g.started.elapsed() - t).as_secs_f64()
    );
    let screen = g.screen();
    eprintln!("{screen}");
    screen
}

#[test]
#[ignore = "needs the built image; the README's test command runs it"]
fn virtio_rng_and_swtpm_are_two_hardware_sources() {
    let tpm = Swtpm::start();
    let mut b = Boot::serial();
    b.extra.extend(tpm.qemu_args());
    b.extra.extend(["-device".into(), "virtio-rng-pci".into()]);
    let mut g = Guest::start(&b);
    let screen = check(&mut g);
    assert!(
        screen.contains("PASS: 2 independent hardware sources"),
        "{screen}"
    );
    let counted: Vec<&str> = screen
        .lines()
        .filter(|l| l.contains("[ COUNTED ]"))
        .collect();
    assert_eq!(counted.len(), 2, "{screen}");
    assert!(counted.iter().any(|l| l.contains("virtio_rng")), "{screen}");
    assert!(counted.iter().any(|l| l.contains(" tpm ")), "{screen}");
    assert!(
        screen.contains("getrandom"),
        "the kernel CSPRNG is mixed in: {screen}"
    );
    g.back_and_power_off();
}

#[test]
#[ignore = "needs the built image; the README's test command runs it"]
fn one_hardware_source_is_refused() {
    let mut b = Boot::serial();
    b.extra.extend(["-device".into(), "virtio-rng-pci".into()]);
    let mut g = Guest::start(&b);
    let screen = check(&mut g);
    assert!(screen.contains("REFUSED:"), "{screen}");
    assert!(screen.contains("virtio_rng"), "{screen}");
}
