//! Inside the booted image, the card check finds QEMU's usb-ccid reader through sysfs, talks
//! CCID over usbfs to a virtual OpenPGP card served by the VSCard bridge, and follows the card
//! being inserted, removed and another one inserted.

use e2e::{Boot, CardBridge, Guest};
use std::time::Duration;

const BOUND: Duration = Duration::from_secs(180);

#[test]
#[ignore = "needs the built image; the README's test command runs it"]
fn reader_and_cards_are_seen_inserted_removed_and_swapped() {
    let mut bridge = CardBridge::start(2);
    let mut b = Boot::serial();
    b.extra.extend(bridge.qemu_args());
    let mut g = Guest::start(&b);
    g.wait_for_screen(e2e::FIRST_SCREEN, BOUND);
    g.send("c");
    g.wait_for_screen("no card: insert one", Duration::from_secs(60));
    let screen = g.screen();
    assert!(screen.contains("Reader"), "{screen}");

    bridge.command("insert 0");
    let t = g.wait_for_screen("OpenPGP card", Duration::from_secs(60));
    eprintln!("card 0 identified {:.2} s after boot", t.as_secs_f64());
    let first = g.screen();
    eprintln!("{first}");
    assert!(first.contains("PIN tries left: user 3"), "{first}");
    let ident = |s: &str| {
        s.lines()
            .find(|l| l.contains("OpenPGP card "))
            .and_then(|l| l.split("OpenPGP card ").nth(1))
            .and_then(|r| r.split_whitespace().next())
            .map(str::to_owned)
    };
    let id0 = ident(&first).expect("card ident on screen");

    bridge.command("remove");
    g.wait_for_screen("no card: insert one", Duration::from_secs(30));
    bridge.command("insert 1");
    g.wait_for_screen("OpenPGP card", Duration::from_secs(30));
    let id1 = ident(&g.screen()).expect("second card ident");
    assert_ne!(id0, id1, "the second card is another card");

    g.back_and_power_off();
}

/// The card self-test entry (`sherd.selftest=card`): the image's own /init drives a blank
/// virtual card through factory reset, key import, new PINs and a test decryption on the card,
/// over QEMU's usb-ccid, then sees the card removed and re-detected with its new key.
#[test]
#[ignore = "needs the built image; the README's test command runs it"]
fn selftest_provisions_a_blank_card_and_re_detects_it() {
    let mut bridge = CardBridge::start(1);
    let mut b = Boot::serial();
    b.append.push_str(" sherd.selftest=card");
    b.extra.extend(bridge.qemu_args());
    let mut g = Guest::start(&b);
    g.wait_for_screen("insert a blank OpenPGP card", BOUND);
    bridge.command("insert 0");
    g.wait_until_any(
        &["Now remove the card.", "SELF-TEST FAILED"],
        Duration::from_secs(120),
    );
    let screen = g.screen();
    eprintln!("{screen}");
    assert!(
        screen.contains("test decryption on the card: PASSED"),
        "{screen}"
    );
    let provisioned = screen
        .lines()
        .find(|l| l.contains("Provisioned in"))
        .expect("provisioning line");
    eprintln!(
        "in QEMU: {}",
        provisioned.trim_matches(|c| c == '│' || c == ' ')
    );
    bridge.command("remove");
    g.wait_for_screen("Insert the same card again", Duration::from_secs(30));
    bridge.command("insert 0");
    g.wait_until_any(
        &["SELF-TEST PASSED", "SELF-TEST FAILED"],
        Duration::from_secs(60),
    );
    let screen = g.screen();
    assert!(
        screen.contains("re-detected with the same decryption key"),
        "{screen}"
    );
    assert!(screen.contains("SELF-TEST PASSED"), "{screen}");
    g.send("p");
    g.wait_for_output("reboot: Power down", Duration::from_secs(60));
}
