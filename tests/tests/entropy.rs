//! Inside the booted image, the boot screen's entropy check finds QEMU's virtio-rng through the
//! kernel hwrng and the emulated TPM (swtpm) through /dev/tpmrm0 and health-tests both. Both
//! are virtual devices on a virtual machine, and the check has no plan that allows those, so
//! it refuses them by name; the ceremony test shows the same machine passing under a test plan
//! that allows virtual hardware.

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
fn virtio_rng_and_swtpm_are_healthy_but_refused_as_virtual_without_a_plan_allowing_them() {
    let tpm = Swtpm::start();
    let mut b = Boot::serial();
    b.extra.extend(tpm.qemu_args());
    b.extra.extend(["-device".into(), "virtio-rng-pci".into()]);
    let mut g = Guest::start(&b);
    let screen = check(&mut g);
    assert!(screen.contains("REFUSED:"), "{screen}");
    assert!(!screen.contains("[ COUNTED ]"), "{screen}");
    // Both were drawn, tested and mixed, and each is named as virtual.
    let flat = screen.split_whitespace().collect::<Vec<_>>().join(" ");
    assert!(flat.contains("virtio_rng"), "{screen}");
    assert!(flat.contains(" tpm "), "{screen}");
    assert!(
        flat.matches("VIRTUAL: not counted").count() >= 2,
        "each virtual source says so: {screen}"
    );
    // The verdict says why: the devices name themselves (and QEMU sets the hypervisor bit).
    assert!(
        flat.contains("0 of 2 independent hardware sources"),
        "{screen}"
    );
    assert!(flat.contains("a software TPM (swtpm)"), "{screen}");
    assert!(flat.contains("virtio-rng"), "{screen}");
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
