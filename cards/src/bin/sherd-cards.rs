#![forbid(unsafe_code)]
//! `sherd-cards`: list CCID readers and the OpenPGP cards in them, through sherd's own
//! driver (no pcscd), so holders can check their cards before a ceremony.
//!
//! `sherd-cards list` prints each reader and card once; `sherd-cards watch` keeps polling
//! sysfs and the readers and prints readers and cards as they come and go.

use std::collections::BTreeMap;
use std::time::Duration;

use cards::ccid::IccStatus;
use cards::discovery::{self, Event, ReaderInfo, Watcher};
use cards::{OpenPgpCard, usb};

const USAGE: &str = "usage: sherd-cards list | sherd-cards watch";

fn main() {
    let arg = std::env::args().nth(1);
    let code = match arg.as_deref() {
        Some("list") | None => list(),
        Some("watch") => watch(),
        Some("-h" | "--help") => {
            println!("{USAGE}");
            0
        }
        Some(other) => {
            eprintln!("sherd-cards: unknown command {other:?}\n{USAGE}");
            2
        }
    };
    std::process::exit(code);
}

fn list() -> i32 {
    let readers = match discovery::scan(std::path::Path::new(discovery::SYSFS_USB_DEVICES)) {
        Ok(r) => r,
        Err(e) => {
            eprintln!("sherd-cards: {e}");
            return 1;
        }
    };
    if readers.is_empty() {
        println!("no CCID readers found");
        return 0;
    }
    let mut failed = false;
    for info in &readers {
        failed |= !describe(info);
    }
    i32::from(failed)
}

/// Print one reader and its card; false if something failed.
fn describe(info: &ReaderInfo) -> bool {
    println!("reader {}: {}", info.id, info.name());
    let mut reader = match usb::open(info) {
        Ok(r) => r,
        Err(e) => {
            println!("  cannot open: {e} (is /dev/bus/usb writable for this user?)");
            return false;
        }
    };
    let d = reader.descriptor();
    match cards::reader::decide(d) {
        Ok(decision) => println!(
            "  exchange: {decision} (dwProtocols {:#x}, dwFeatures {:#010x}, \
             dwMaxCCIDMessageLength {})",
            d.protocols, d.features, d.max_message_length
        ),
        Err(e) => println!("  {e}"),
    }
    match reader.slot_status() {
        Ok(IccStatus::Absent) => {
            println!("  no card");
            return true;
        }
        Ok(_) => {}
        Err(e) => {
            println!("  slot status failed: {e}");
            return false;
        }
    }
    match reader.power_on() {
        Ok(atr) => println!(
            "  ATR: {} (protocol {:?})",
            hexstr::encode_upper(&atr),
            reader.protocol()
        ),
        Err(e) => {
            println!("  power-on failed: {e}");
            return false;
        }
    }
    let mut card = match OpenPgpCard::open(reader) {
        Ok(c) => c,
        Err(e) => {
            println!("  not an OpenPGP card: {e}");
            return false;
        }
    };
    match card.identity() {
        Ok(id) => {
            println!(
                "  OpenPGP card {} ({}), spec {}.{}",
                id.ident,
                id.manufacturer,
                id.spec_version >> 8,
                id.spec_version & 0xFF
            );
            println!("  serial: {:08X}", id.serial);
            for (slot, fp) in [
                ("signing", &id.signing_fingerprint),
                ("decryption", &id.decryption_fingerprint),
                ("authentication", &id.authentication_fingerprint),
            ] {
                println!("  {slot} key: {}", fp.as_deref().unwrap_or("(empty)"));
            }
            println!(
                "  PIN tries left: user {}, reset code {}, admin {}",
                id.retries.user, id.retries.reset_code, id.retries.admin
            );
            true
        }
        Err(e) => {
            println!("  reading the card failed: {e}");
            false
        }
    }
}

fn watch() -> i32 {
    let mut watcher = Watcher::system();
    // Card presence per reader, from the last poll.
    let mut present: BTreeMap<String, bool> = BTreeMap::new();
    loop {
        match watcher.poll() {
            Ok(events) => {
                for e in events {
                    match e {
                        Event::Added(r) => println!("+ reader {}: {}", r.id, r.name()),
                        Event::Removed(r) => {
                            present.remove(&r.id);
                            println!("- reader {}", r.id);
                        }
                    }
                }
            }
            Err(e) => eprintln!("sherd-cards: {e}"),
        }
        let readers: Vec<ReaderInfo> = watcher.readers().cloned().collect();
        for info in readers {
            let now = usb::open(&info)
                .and_then(|mut r| r.slot_status())
                .map(|s| s != IccStatus::Absent)
                .unwrap_or(false);
            if present.insert(info.id.clone(), now) != Some(now) {
                if now {
                    describe(&info);
                } else {
                    println!("  no card in {}", info.id);
                }
            }
        }
        std::thread::sleep(Duration::from_millis(500));
    }
}
