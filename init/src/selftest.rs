//! `sherd.selftest=card`: a hardware self-test of the reader and card path, chosen by a boot
//! entry of its own (the release entry never has it). It writes a throwaway key to a BLANK card:
//! factory reset, key import, random PINs, a test decryption on the card; then asks for the card
//! to be removed and inserted again and reads it back. A card that holds any key is refused and
//! left untouched. The PINs are random and never shown: the card stays usable only after another
//! factory reset, which needs no PIN.

use crate::journal::{self, Entry, Journal};
use cards::ccid::IccStatus;
use cards::discovery::{ReaderInfo, Watcher};
use cards::{OpenPgpCard, Pin, Provision};
use ceremony_tui::notice::{self, NoticeView};
use ceremony_tui::term::{self, ConsoleTerminal};
use sequoia_openpgp::cert::{CertBuilder, CipherSuite};
use sequoia_openpgp::policy::StandardPolicy;
use std::cell::RefCell;
use std::io;
use std::time::Duration;

#[derive(Clone, Debug, PartialEq, Eq)]
enum Stage {
    WaitCard,
    WaitRemoval { decryption_fpr: String },
    WaitReinsert { decryption_fpr: String },
    Done,
}

fn present(info: &ReaderInfo) -> bool {
    cards::usb::open(info)
        .and_then(|mut r| r.slot_status())
        .is_ok_and(|s| s != IccStatus::Absent)
}

fn open_card(info: &ReaderInfo) -> cards::Result<OpenPgpCard> {
    let mut reader = cards::usb::open(info)?;
    reader.power_on()?;
    OpenPgpCard::open(reader)
}

/// `n` random decimal digits from the kernel CSPRNG (rejection sampling, no modulo bias).
fn random_digits(n: usize) -> io::Result<Pin> {
    let mut digits = zeroize::Zeroizing::new(String::with_capacity(n));
    while digits.len() < n {
        let mut b = [0u8; 16];
        getrandom::fill(&mut b).map_err(|e| io::Error::other(e.to_string()))?;
        for x in b.iter().filter(|x| **x < 250) {
            if digits.len() < n {
                digits.push(char::from(b'0' + x % 10));
            }
        }
        b.fill(0);
    }
    Pin::new(digits.as_str()).map_err(|e| io::Error::other(e.to_string()))
}

/// Provisions a throwaway key onto the blank card in `info`. Returns lines for the screen and the
/// decryption key's fingerprint.
fn provision_blank(info: &ReaderInfo) -> Result<(Vec<String>, String), String> {
    let mut card = open_card(info).map_err(|e| format!("cannot open the card: {e}"))?;
    let id = card
        .identity()
        .map_err(|e| format!("cannot read the card: {e}"))?;
    let held: Vec<&str> = [
        ("signing", &id.signing_fingerprint),
        ("decryption", &id.decryption_fingerprint),
        ("authentication", &id.authentication_fingerprint),
    ]
    .iter()
    .filter(|(_, f)| f.is_some())
    .map(|(n, _)| *n)
    .collect();
    if !held.is_empty() {
        return Err(format!(
            "card {} holds a {} key: refused, nothing was written. Use a blank card.",
            id.ident,
            held.join(" and a ")
        ));
    }
    let policy = StandardPolicy::new();
    let (cert, _) = CertBuilder::new()
        .add_userid("sherd card self-test (throwaway)")
        .set_cipher_suite(CipherSuite::Cv25519)
        .add_storage_encryption_subkey()
        .generate()
        .map_err(|e| format!("cannot make the throwaway key: {e}"))?;
    let decryption = cert
        .keys()
        .secret()
        .with_policy(&policy, None)
        .for_storage_encryption()
        .next()
        .ok_or("the throwaway certificate has no encryption subkey")?
        .key()
        .clone()
        .role_into_unspecified();
    let (user, admin) = (
        random_digits(6).map_err(|e| e.to_string())?,
        random_digits(8).map_err(|e| e.to_string())?,
    );
    // Recorded before the reset (or nothing is done) and after, for PID 1's fatal screen.
    let journal = Journal::new(journal::PATH);
    let (serial, holder) = (id.ident.clone(), journal::SELF_TEST.to_owned());
    journal
        .append(&Entry::CardStart {
            serial: serial.clone(),
            holder: holder.clone(),
        })
        .map_err(|e| format!("{e}: card {} was left untouched", id.ident))?;
    let report = card
        .provision(&Provision {
            cert: &cert,
            decryption: &decryption,
            signing: None,
            user_pin: &user,
            admin_pin: &admin,
            policy: &policy,
        })
        .map_err(|e| format!("provisioning card {} failed: {e}", id.ident))?;
    let _ = journal.append(&Entry::CardDone { serial, holder });
    let fpr = decryption.fingerprint().to_hex();
    Ok((
        vec![
            format!("Card {} ({}) is blank.", id.ident, id.manufacturer),
            format!(
                "Provisioned in {:.2} s, {} APDUs: factory reset, key import, new PINs,",
                report.elapsed.as_secs_f64(),
                report.apdus
            ),
            "test decryption on the card: PASSED.".into(),
            format!("Decryption key on the card: {fpr}"),
        ],
        fpr,
    ))
}

pub fn run(t: &mut ConsoleTerminal) -> io::Result<()> {
    let view = RefCell::new(NoticeView {
        title: "card self-test".into(),
        banner: "HARDWARE SELF-TEST, not a ceremony: a throwaway key goes onto a BLANK card."
            .into(),
        lines: vec!["Attach a smart-card reader and insert a blank OpenPGP card.".into()],
    });
    let stage = RefCell::new(Stage::WaitCard);
    let mut watcher = Watcher::system();
    let tick = || {
        let _ = watcher.poll();
        let Some(info) = watcher.readers().next().cloned() else {
            return false;
        };
        let mut st = stage.borrow_mut();
        let mut v = view.borrow_mut();
        let here = present(&info);
        match (&*st, here) {
            (Stage::WaitCard, true) => {
                v.lines
                    .push(format!("Reader {}: card inserted.", info.name()));
                match provision_blank(&info) {
                    Ok((lines, fpr)) => {
                        v.lines.extend(lines);
                        v.lines.push("Now remove the card.".into());
                        *st = Stage::WaitRemoval {
                            decryption_fpr: fpr,
                        };
                    }
                    Err(e) => {
                        v.lines.push(format!("SELF-TEST FAILED: {e}"));
                        *st = Stage::Done;
                    }
                }
                true
            }
            (Stage::WaitRemoval { decryption_fpr }, false) => {
                v.lines
                    .push("Card removed. Insert the same card again.".into());
                *st = Stage::WaitReinsert {
                    decryption_fpr: decryption_fpr.clone(),
                };
                true
            }
            (Stage::WaitReinsert { decryption_fpr }, true) => {
                let back = open_card(&info).and_then(|mut c| c.identity());
                match back {
                    Ok(id) if id.decryption_fingerprint.as_ref() == Some(decryption_fpr) => {
                        v.lines.push(format!(
                            "Card {} re-detected with the same decryption key.",
                            id.ident
                        ));
                        v.lines.push("SELF-TEST PASSED.".into());
                    }
                    Ok(id) => v.lines.push(format!(
                        "SELF-TEST FAILED: card {} came back with decryption key {:?}",
                        id.ident, id.decryption_fingerprint
                    )),
                    Err(e) => v
                        .lines
                        .push(format!("SELF-TEST FAILED: reading the card again: {e}")),
                }
                *st = Stage::Done;
                true
            }
            _ => false,
        }
    };
    term::run_live_screen(
        t,
        Duration::from_millis(300),
        |f| notice::render(f, &view.borrow(), &[("P", "power off")]),
        |k| matches!(k, ceremony_tui::keys::Key::Char('p' | 'P')).then_some(()),
        tick,
    )
}
