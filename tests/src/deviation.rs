//! The page "the boot against the plan", as every QEMU ceremony meets it. Under QEMU no PCR
//! can PASS (SeaBIOS, a software TPM, and a plan that records no laptop's values), so the
//! ceremony stops there until the witnesses agree why it may go on and the operator types the
//! reason: [`record_deviation`] does that on any console the tests drive (the serial line,
//! the demo's pseudo-terminal, the VGA console's keyboard), and [`assert_recorded`] checks the
//! outputs afterwards.

use crate::Guest;
use crate::pty::PtySession;
use crate::vga::VgaGuest;
use ceremony::attest;
use ceremony::record::Note;
use ceremony::transcript::Transcript;
use std::path::Path;
use std::time::Duration;

/// What is true of every QEMU ceremony the tests run, as the witnesses would say it.
pub const QEMU_REASON: &str = "QEMU test machine: SeaBIOS and swtpm, no recorded laptop values";

/// How long a page may take: the verdicts page follows the TPM quote, slow under TCG.
const BOUND: Duration = Duration::from_secs(120);

/// A console a test types on and reads, as the operator does.
pub trait Operator {
    /// Types `text`, a key per character.
    fn type_text(&mut self, text: &str);
    /// Waits until the screen shows `text`; panics with the screen otherwise.
    fn wait_for(&mut self, text: &str, timeout: Duration);
}

impl Operator for Guest {
    fn type_text(&mut self, text: &str) {
        self.send(text);
    }
    fn wait_for(&mut self, text: &str, timeout: Duration) {
        self.wait_for_screen(text, timeout);
    }
}

impl Operator for PtySession {
    fn type_text(&mut self, text: &str) {
        self.send(text.as_bytes());
    }
    fn wait_for(&mut self, text: &str, timeout: Duration) {
        self.wait_for_screen(text, timeout);
    }
}

impl Operator for VgaGuest {
    /// On the emulated keyboard: letters, digits, space and the punctuation below (shifted
    /// as on a US keyboard, the kernel's default keymap); `\r` is Enter.
    fn type_text(&mut self, text: &str) {
        for c in text.chars() {
            let lower = c.to_ascii_lowercase().to_string();
            let key = match c {
                'a'..='z' | '0'..='9' => lower,
                'A'..='Z' => format!("shift-{lower}"),
                ' ' => "spc".into(),
                '\r' => "ret".into(),
                ',' => "comma".into(),
                '.' => "dot".into(),
                '-' => "minus".into(),
                '/' => "slash".into(),
                ';' => "semicolon".into(),
                ':' => "shift-semicolon".into(),
                '(' => "shift-9".into(),
                ')' => "shift-0".into(),
                other => panic!("no key for {other:?} in VgaGuest::type_text"),
            };
            self.sendkey(&key);
        }
    }
    fn wait_for(&mut self, text: &str, timeout: Duration) {
        self.wait_for_text(&[text], timeout);
    }
}

/// From the plan's confirmation: waits for the verdicts page to offer a deviation (some item
/// is not PASS), opens the deviation page with D, types `reason`, waits until the page shows
/// it as typed, and records it with Enter. The ceremony then goes on to the entropy step.
pub fn record_deviation(op: &mut impl Operator, reason: &str) {
    op.wait_for("D  record a deviation", BOUND);
    op.type_text("d");
    op.wait_for("Reason the witnesses agree on", BOUND);
    op.type_text(reason);
    op.wait_for(&format!("> {reason}_"), BOUND);
    op.type_text("\r");
}

/// The ceremony's output folder records the boot's verdicts and the deviation with `reason`:
/// `transcript.txt` has one `attest.verdicts` record with an item not PASS, followed by one
/// `attest.deviation` record whose reason is `reason`; and `sherd-verify` on the folder
/// passes and prints the deviation in its `boot:` lines, and the independent Python verifier
/// prints the same ([`crate::verify_both`]).
pub fn assert_recorded(folder: &Path, reason: &str) {
    let bytes = std::fs::read(folder.join("transcript.txt"))
        .unwrap_or_else(|e| panic!("{}/transcript.txt: {e}", folder.display()));
    let t = Transcript::parse(&bytes).expect("transcript.txt parses");
    let of_kind = |kind: &str| -> Vec<(u32, Note)> {
        t.records()
            .iter()
            .filter(|r| r.kind == kind)
            .map(|r| {
                let note = Note::parse(&r.kind, &r.value)
                    .unwrap_or_else(|e| panic!("record {}: {e}", r.seq));
                (r.seq, note)
            })
            .collect()
    };
    let verdicts = of_kind(attest::VERDICTS);
    let deviations = of_kind(attest::DEVIATION);
    assert_eq!(verdicts.len(), 1, "one {} record", attest::VERDICTS);
    assert_eq!(deviations.len(), 1, "one {} record", attest::DEVIATION);
    let (vseq, v) = &verdicts[0];
    let (dseq, d) = &deviations[0];
    assert!(
        v.fields().pairs().iter().any(|(_, w)| w != "PASS"),
        "an item is not PASS: {}",
        v.encode()
    );
    assert_eq!(*dseq, vseq + 1, "the deviation follows the verdicts");
    assert_eq!(
        d.fields().get("reason"),
        Some(reason),
        "the reason as typed: {}",
        d.encode()
    );

    // sherd-verify, and the Python verifier beside it with the same output.
    let verdict = crate::verify_both(folder);
    let said = verdict.stdout;
    assert_eq!(verdict.status, 0, "sherd-verify failed:\n{said}");
    let line = said
        .lines()
        .find(|l| l.contains("DEVIATION recorded for "))
        .unwrap_or_else(|| panic!("sherd-verify names no deviation:\n{said}"));
    assert!(
        line.ends_with(&format!(": \"{reason}\"")),
        "sherd-verify's deviation line: {line}\n{said}"
    );
    assert!(said.contains("\nboot:"), "a boot: block\n{said}");
}
