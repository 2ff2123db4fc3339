//! Counts how the reader decision (`cards::reader::decide`) takes every device of the public
//! CCID catalogue: the `readers/` folder of Ludovic Rousseau's CCID driver, one text file per
//! device with the `lsusb -v`-style dump of its CCID interfaces. The catalogue is not in this
//! repository; run by hand against a copy:
//!
//! ```sh
//! cargo run -p cards --example ccid_catalogue -- /path/to/CCID/readers [--list]
//! ```
//!
//! Each interface block (from one ` idVendor:` line to the next) with a "CCID Class
//! Descriptor" has its descriptor fields read by name, rebuilt into the 54 bytes and run
//! through `ClassDescriptor::parse` and `decide`. Interfaces of a class discovery does not
//! list (it lists 0x0B, and 0xFF with a class descriptor) are counted apart. A device (file)
//! counts by its best interface. `--list` prints one line per interface.

use std::collections::BTreeMap;
use std::path::Path;

use cards::ccid::{
    ClassDescriptor, DescriptorFields, ExchangeLevel, INTERFACE_CLASS, VENDOR_INTERFACE_CLASS,
};
use cards::reader::{CardProtocols, decide};

/// The value after `name:` on the first line of `block` that has it, first word only.
fn field<'a>(block: &'a str, name: &str) -> Option<&'a str> {
    block.lines().find_map(|l| {
        let rest = l.trim_start().strip_prefix(name)?.strip_prefix(':')?;
        Some(rest.trim())
    })
}

fn hex(s: &str) -> Option<u32> {
    u32::from_str_radix(s.split_whitespace().next()?.strip_prefix("0x")?, 16).ok()
}

fn dec(s: &str) -> Option<u32> {
    s.split_whitespace().next()?.parse().ok()
}

/// "3.580 MHz" -> 3580 (kHz).
fn khz(s: &str) -> Option<u32> {
    let v = s.split_whitespace().next()?;
    let (whole, frac) = v.split_once('.').unwrap_or((v, "0"));
    let frac = format!("{frac:0<3}");
    Some(whole.parse::<u32>().ok()? * 1000 + frac.get(..3)?.parse::<u32>().ok()?)
}

/// "1.10" -> 0x0110 (BCD as printed).
fn bcd(s: &str) -> Option<u16> {
    let (major, minor) = s.split_whitespace().next()?.split_once('.')?;
    Some(u16::from_str_radix(major, 16).ok()? << 8 | u16::from_str_radix(minor, 16).ok()?)
}

/// "0x0000 0x0003" -> 0x00000003 (high word first, as printed).
fn protocols(s: &str) -> Option<u32> {
    let mut w = s.split_whitespace();
    let hi = hex(w.next()?)?;
    let lo = hex(w.next()?)?;
    Some(hi << 16 | lo)
}

struct Interface {
    vid: u32,
    pid: u32,
    class: u32,
    fields: DescriptorFields,
}

/// The fields of one interface block, or the name of the first one missing.
fn interface(block: &str) -> Result<Interface, &'static str> {
    let at = block
        .find("CCID Class Descriptor")
        .ok_or("no class descriptor")?;
    let d = &block[at..];
    macro_rules! get {
        ($src:expr, $name:literal, $conv:expr) => {
            field($src, $name).and_then($conv).ok_or($name)?
        };
    }
    let byte = |s: &str| hex(s).and_then(|v| u8::try_from(v).ok());
    let dec_byte = |s: &str| dec(s).and_then(|v| u8::try_from(v).ok());
    let fields = DescriptorFields {
        descriptor_type: get!(d, "bDescriptorType", byte),
        bcd_ccid: get!(d, "bcdCCID", bcd),
        max_slot_index: get!(d, "bMaxSlotIndex", byte),
        voltage_support: get!(d, "bVoltageSupport", byte),
        protocols: get!(d, "dwProtocols", protocols),
        default_clock_khz: get!(d, "dwDefaultClock", khz),
        maximum_clock_khz: get!(d, "dwMaximumClock", khz),
        num_clock_supported: get!(d, "bNumClockSupported", dec_byte),
        data_rate: get!(d, "dwDataRate", dec),
        max_data_rate: get!(d, "dwMaxDataRate", dec),
        num_data_rates_supported: get!(d, "bNumDataRatesSupported", dec_byte),
        max_ifsd: get!(d, "dwMaxIFSD", dec),
        synch_protocols: get!(d, "dwSynchProtocols", hex),
        mechanical: get!(d, "dwMechanical", hex),
        features: get!(d, "dwFeatures", hex),
        max_message_length: get!(d, "dwMaxCCIDMessageLength", dec),
        class_get_response: get!(d, "bClassGetResponse", byte),
        class_envelope: get!(d, "bClassEnvelope", byte),
        lcd_layout: get!(d, "wLcdLayout", |s| hex(s)
            .and_then(|v| u16::try_from(v).ok())),
        pin_support: get!(d, "bPINSupport", byte),
        max_busy_slots: get!(d, "bMaxCCIDBusySlots", dec_byte),
    };
    Ok(Interface {
        vid: get!(block, "idVendor", hex),
        pid: get!(block, "idProduct", hex),
        class: get!(block, "bInterfaceClass", hex),
        fields,
    })
}

/// The outcome for one interface, ordered from best to worst.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Outcome {
    Accepted(String),
    /// Accepted by the decision but on an interface discovery does not list.
    NotDiscovered(String),
    Refused(String),
    Unreadable(String),
}

fn outcome(i: &Interface) -> Outcome {
    let raw = i.fields.to_bytes();
    let d = match ClassDescriptor::parse(&raw) {
        Ok(d) => d,
        Err(e) => return Outcome::Refused(format!("descriptor refused: {e}")),
    };
    match decide(&d) {
        Err(e) => Outcome::Refused(e.to_string()),
        // Discovery lists class 0x0B, and class 0xFF with the class descriptor (which every
        // block here has).
        Ok(x) if ![INTERFACE_CLASS, VENDOR_INTERFACE_CLASS].contains(&(i.class as u8)) => {
            Outcome::NotDiscovered(x.to_string())
        }
        Ok(x) => Outcome::Accepted(x.to_string()),
    }
}

fn main() {
    let mut args = std::env::args().skip(1);
    let Some(dir) = args.next() else {
        eprintln!("usage: ccid_catalogue /path/to/CCID/readers [--list]");
        std::process::exit(2);
    };
    let list = args.any(|a| a == "--list");
    let mut files: Vec<_> = std::fs::read_dir(Path::new(&dir))
        .expect("reading the readers folder")
        .flatten()
        .map(|e| e.path())
        .collect();
    files.sort();
    let mut per_interface: BTreeMap<Outcome, u32> = BTreeMap::new();
    let mut per_device: BTreeMap<Outcome, u32> = BTreeMap::new();
    let mut skipped = Vec::new();
    let (mut interfaces, mut devices, mut before) = (0, 0, 0);
    // Devices through which a T=1 card (or the token's own card) can be reached: before,
    // now.
    let mut t1_cards = (0, 0);
    // dwMaxCCIDMessageLength of accepted interfaces below extended APDU level, when below 271.
    let mut short_messages: BTreeMap<(String, u32), u32> = BTreeMap::new();
    for path in files {
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        if path.is_dir() {
            skipped.push(format!("{name}/ (a folder)"));
            continue;
        }
        let Ok(bytes) = std::fs::read(&path) else {
            skipped.push(format!("{name} (unreadable)"));
            continue;
        };
        let text = String::from_utf8_lossy(&bytes);
        let mut best: Option<Outcome> = None;
        let mut blocks: Vec<&str> = Vec::new();
        let mut rest = &text[..];
        while let Some(at) = rest.find(" idVendor:") {
            let next = rest[at + 1..].find("\n idVendor:").map(|n| at + 1 + n + 1);
            let end = next.unwrap_or(rest.len());
            blocks.push(&rest[at..end]);
            rest = &rest[end..];
        }
        let blocks: Vec<&str> = blocks
            .into_iter()
            .filter(|b| b.contains("CCID Class Descriptor"))
            .collect();
        if blocks.is_empty() {
            skipped.push(format!("{name} (no CCID class descriptor)"));
            continue;
        }
        devices += 1;
        let (mut accepted_before, mut t1_now, mut t1_before) = (false, false, false);
        for (n, b) in blocks.iter().enumerate() {
            interfaces += 1;
            let o = match interface(b) {
                Ok(i) => {
                    let o = outcome(&i);
                    if list {
                        println!("{name}#{n} {:04x}:{:04x} {o:?}", i.vid, i.pid);
                    }
                    if let Outcome::Accepted(_) = o {
                        let d = ClassDescriptor::parse(&i.fields.to_bytes()).unwrap();
                        let x = decide(&d).unwrap();
                        // Before issue 16 a TPDU reader with only T=1 was refused, TPDU
                        // readers spoke only T=0, and discovery and the descriptor parser
                        // took only class 0x0B and type 0x21.
                        let standard = i.class == u32::from(INTERFACE_CLASS)
                            && i.fields.descriptor_type == 0x21;
                        if standard && x.protocols != CardProtocols::T1 {
                            accepted_before = true;
                        }
                        if x.protocols != CardProtocols::T0 {
                            t1_now = true;
                            if standard && x.protocols == CardProtocols::ByReader {
                                t1_before = true;
                            }
                        }
                        if x.level != ExchangeLevel::ExtendedApdu && d.max_message_length < 271 {
                            *short_messages
                                .entry((x.to_string(), d.max_message_length))
                                .or_default() += 1;
                        }
                    }
                    o
                }
                Err(missing) => Outcome::Unreadable(format!("no readable {missing}")),
            };
            *per_interface.entry(o.clone()).or_default() += 1;
            if best.as_ref().is_none_or(|b| o < *b) {
                best = Some(o);
            }
        }
        before += u32::from(accepted_before);
        t1_cards.0 += u32::from(t1_before);
        t1_cards.1 += u32::from(t1_now);
        *per_device.entry(best.expect("one block")).or_default() += 1;
    }
    let report = |what: &str, total: u32, counts: &BTreeMap<Outcome, u32>| {
        println!("{what}: {total}");
        for (o, n) in counts {
            let (kind, why) = match o {
                Outcome::Accepted(x) => ("accepted", x),
                Outcome::NotDiscovered(x) => ("not discovered (interface class)", x),
                Outcome::Refused(x) => ("refused", x),
                Outcome::Unreadable(x) => ("unreadable", x),
            };
            println!("  {n:>4}  {kind}: {why}");
        }
    };
    report(
        "devices (files), by their best interface",
        devices,
        &per_device,
    );
    report("CCID interfaces", interfaces, &per_interface);
    println!(
        "devices accepted before issue 16 (TPDU readers with only T=1 refused, class 0x0B and \
         type 0x21 only): {before}"
    );
    println!(
        "devices that can reach a T=1 card (APDU level, or TPDU with T=1): before {}, now {}",
        t1_cards.0, t1_cards.1
    );
    println!("accepted interfaces below extended APDU level with dwMaxCCIDMessageLength < 271:");
    for ((decision, len), n) in short_messages {
        println!("  {n:>4}  {decision}, {len} bytes");
    }
    for s in skipped {
        println!("skipped: {s}");
    }
}
