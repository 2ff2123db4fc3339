//! The image boots in QEMU (TCG, serial console) to its first screen, shows the tree hash the
//! manifest records, and powers off cleanly when the operator presses P.

use e2e::{Boot, Guest, hash_after, manifest_field};
use std::time::Duration;

/// Generous: TCG on a shared 2-core machine. The usual figure is a few seconds.
const BOOT_BOUND: Duration = Duration::from_secs(180);

#[test]
#[ignore = "needs the built image; the README's test command runs it"]
fn boots_to_first_screen_shows_tree_hash_and_powers_off() {
    let mut g = Guest::start(&Boot::serial());
    let t = g.wait_for_screen(e2e::FIRST_SCREEN, BOOT_BOUND);
    eprintln!("boot to first screen: {:.2} s", t.as_secs_f64());
    g.wait_for_screen("6.12", Duration::from_secs(5));
    let screen = g.screen();
    assert!(screen.contains("sherd 0.1.0"), "{screen}");
    assert!(screen.contains("-sherd"), "kernel release shown: {screen}");
    assert!(screen.contains("serial (/dev/ttyS0)"), "{screen}");

    let shown = hash_after(&screen, "Root filesystem tree").unwrap_or_else(|| {
        panic!("no tree hash on screen:\n{screen}");
    });
    let manifest = manifest_field("rootfs-tree");
    assert_eq!(
        format!("sha256 {shown}"),
        manifest,
        "the tree hash PID 1 computed at boot must equal the build's"
    );
    let commit = manifest_field("git-commit");
    assert!(screen.contains(&commit[..commit.len().min(40)]), "{screen}");

    g.send("p");
    g.wait_for_output("reboot: Power down", Duration::from_secs(60));
    let st = g.wait_exit(Duration::from_secs(30));
    assert!(st.success(), "QEMU exit status {st}");
}

#[test]
#[ignore = "needs the built image; the README's test command runs it"]
fn unknown_boot_words_from_heads_are_tolerated() {
    let mut b = Boot::serial();
    b.append = format!(
        "iso-scan/filename=/sherd.iso findiso=/sherd.iso img_dev=/dev/disk/by-uuid/1234-ABCD \
         img_loop=/sherd.iso iso=1234-ABCD/sherd.iso live-media=/dev/disk/by-uuid/1234-ABCD \
         intel_iommu=on {}",
        b.append
    );
    let mut g = Guest::start(&b);
    g.wait_for_screen(e2e::FIRST_SCREEN, BOOT_BOUND);
    g.send("P");
    g.wait_for_output("reboot: Power down", Duration::from_secs(60));
    assert!(g.wait_exit(Duration::from_secs(30)).success());
}

#[test]
#[ignore = "needs the built image; the README's test command runs it"]
fn a_bad_sherd_parameter_is_a_fatal_screen_not_a_silent_default() {
    let mut b = Boot::serial();
    b.append.push_str(" sherd.consol=ttyS0");
    let mut g = Guest::start(&b);
    g.wait_for_output("FATAL ERROR", BOOT_BOUND);
    g.wait_for_output("unknown sherd parameter", Duration::from_secs(5));
    g.send("\r");
    g.wait_for_output("reboot: Power down", Duration::from_secs(60));
    assert!(g.wait_exit(Duration::from_secs(30)).success());
}
