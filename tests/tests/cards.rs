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

    g.send("\r");
    g.wait_for_screen(e2e::FIRST_SCREEN, Duration::from_secs(10));
    g.send("p");
    g.wait_for_output("reboot: Power down", Duration::from_secs(60));
}
