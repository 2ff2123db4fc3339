//! Hardware reports: what the card check (C) and the entropy check (E) showed, as plain text
//! for a data stick, so that whoever tries sherd on new hardware can send the facts back. Public
//! facts only: reader names and USB descriptors, card identities (serials, fingerprints, PIN
//! tries left), entropy sources and their test results. Never a PIN, key or drawn byte.

use crate::card_check::{CardsView, Slot};
use crate::entropy_check::{self, EntropyView};

/// The folder the reports go to on a data stick.
pub const DIR: &str = "sherd-report";

/// The first lines of every report: which image, on what.
pub fn header(what: &str, image: &str, kernel: &str) -> String {
    format!("sherd hardware report: {what}\nimage: {image}\nkernel: {kernel}\n\n")
}

/// The card check as text; `descriptors` are (reader name, hex of its USB descriptors).
pub fn cards(header: &str, v: &CardsView, descriptors: &[(String, String)]) -> String {
    let mut s = header.to_owned();
    if let Some(e) = &v.scan_error {
        s.push_str(&format!("cannot scan for readers: {e}\n"));
    }
    if v.readers.is_empty() {
        s.push_str("no reader attached\n");
    }
    for r in &v.readers {
        s.push_str(&format!("reader {} ({})\n", r.name, r.level));
        match &r.slot {
            Slot::Empty => s.push_str("  no card\n"),
            Slot::Card { lines } => lines.iter().for_each(|l| s.push_str(&format!("  {l}\n"))),
            Slot::Error(e) => s.push_str(&format!("  ERROR: {e}\n")),
        }
        if let Some((_, hex)) = descriptors.iter().find(|(n, _)| *n == r.name) {
            s.push_str(&format!("  usb descriptors: {hex}\n"));
        }
    }
    s
}

/// The entropy check as text: the screen's own lines.
pub fn entropy(header: &str, v: &EntropyView) -> String {
    let mut s = header.to_owned();
    for (_, line) in entropy_check::body(v) {
        s.push_str(&line);
        s.push('\n');
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::card_check::ReaderRow;

    #[test]
    fn the_card_report_lists_each_reader_with_its_descriptors() {
        let v = CardsView {
            readers: vec![
                ReaderRow {
                    name: "Yubico YubiKey [1050:0407]".into(),
                    level: "APDU".into(),
                    slot: Slot::Card {
                        lines: vec!["OpenPGP card D276000124010304000612345678 (Yubico)".into()],
                    },
                },
                ReaderRow {
                    name: "SCM SCR3310 [04e6:5116]".into(),
                    level: "TPDU T=0".into(),
                    slot: Slot::Empty,
                },
            ],
            scan_error: None,
        };
        let h = header("card check", "sherd 0.1.0 (abc)", "6.12.117-sherd");
        let text = cards(
            &h,
            &v,
            &[("SCM SCR3310 [04e6:5116]".into(), "12010002".into())],
        );
        assert_eq!(
            text,
            "sherd hardware report: card check\nimage: sherd 0.1.0 (abc)\n\
             kernel: 6.12.117-sherd\n\n\
             reader Yubico YubiKey [1050:0407] (APDU)\n  \
             OpenPGP card D276000124010304000612345678 (Yubico)\n\
             reader SCM SCR3310 [04e6:5116] (TPDU T=0)\n  no card\n  \
             usb descriptors: 12010002\n"
        );
        assert!(cards(&h, &CardsView::default(), &[]).ends_with("no reader attached\n"));
    }
}
