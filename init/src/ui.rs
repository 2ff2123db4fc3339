//! The UI role: gathers what the boot screen shows and runs the screens on the console that
//! PID 1 made this process's controlling terminal.

use crate::{ENV_CONSOLE_KIND, ENV_SELFTEST, EXIT_POWER_OFF};
use ceremony_tui::boot::{self, Action};
use ceremony_tui::card_check::{self, CardsView, ReaderRow, Slot};
use ceremony_tui::entropy_check;
use ceremony_tui::entropy_run;
use ceremony_tui::keys::Key;
use ceremony_tui::notice::{self, NoticeView};
use ceremony_tui::report;
use ceremony_tui::term::ConsoleTerminal;
use ceremony_tui::{BootInfo, BuildInfo, term};
use std::io;
use std::process::ExitCode;

/// The build's identity, embedded by `sherd-image` through these variables at compile time.
pub fn build_info() -> BuildInfo {
    BuildInfo {
        version: env!("CARGO_PKG_VERSION").to_owned(),
        commit: option_env!("SHERD_GIT_COMMIT").map(str::to_owned),
        source_date_epoch: option_env!("SHERD_SOURCE_DATE_EPOCH").and_then(|s| s.parse().ok()),
        toolchain: option_env!("SHERD_TOOLCHAIN")
            .map(BuildInfo::parse_toolchain)
            .unwrap_or_default(),
    }
}

fn boot_info() -> BootInfo {
    let kernel_release = nix::sys::utsname::uname()
        .map(|u| u.release().to_string_lossy().into_owned())
        .unwrap_or_else(|e| format!("unknown ({e})"));
    let tty = std::fs::read_link("/proc/self/fd/0")
        .map(|p| p.display().to_string())
        .unwrap_or_else(|_| "?".into());
    let kind = std::env::var(ENV_CONSOLE_KIND).unwrap_or_else(|_| "terminal".into());
    BootInfo {
        build: build_info(),
        kernel_release,
        rootfs_tree: crate::rootfs_tree(),
        console: format!("{kind} ({tty})"),
    }
}

/// The report's first lines: this image and kernel.
fn report_header(what: &str, info: &BootInfo) -> String {
    let b = &info.build;
    let image = format!(
        "sherd {} (commit {}, rootfs tree {})",
        b.version,
        b.commit.as_deref().unwrap_or("unknown"),
        info.rootfs_tree.as_deref().unwrap_or("unknown")
    );
    report::header(what, &image, &info.kernel_release)
}

/// W on the card or entropy check: the report to every data stick (never the boot or plan
/// stick), then what happened, until a key.
fn write_report(t: &mut ConsoleTerminal, name: &str, text: String) -> io::Result<()> {
    let wait = NoticeView {
        title: "hardware report".into(),
        banner: "Writing the report to the data stick ...".into(),
        lines: Vec::new(),
    };
    t.draw(|f| notice::render(f, &wait, &[]))?;
    // One file per boot and check: the kernel's boot id tells boots apart without a clock.
    let boot_id = std::fs::read_to_string("/proc/sys/kernel/random/boot_id")
        .map(|s| {
            s.trim()
                .chars()
                .filter(char::is_ascii_hexdigit)
                .take(8)
                .collect()
        })
        .unwrap_or_else(|_| "unknown".to_owned());
    let path = format!("{name}-{boot_id}.txt");
    let file = ceremony::storage::OutputFile {
        path: path.clone(),
        bytes: text.into_bytes(),
    };
    let outcome = crate::devices::ImageDevices::new().write_outside_ceremony(report::DIR, &[file]);
    let v = NoticeView {
        title: "hardware report".into(),
        banner: match &outcome {
            Ok(w) => format!(
                "Written to {} as {}/{path}, and read back.",
                w.volumes.join(", "),
                report::DIR
            ),
            Err(p) => format!("NOT written: {p}"),
        },
        lines: vec![
            "The report holds public facts only: readers and their USB descriptors, card".into(),
            "identities, entropy sources and their test results. Send it to whoever asked".into(),
            "for it; it helps make sherd work on this hardware.".into(),
        ],
    };
    term::run_screen(
        t,
        |f| notice::render(f, &v, &[("Enter", "go back")]),
        |k| matches!(k, Key::Enter | Key::Esc).then_some(()),
    )
}

/// Finds the sources, draws from each with the ceremony's policy, and shows the outcome. The
/// seeded DRBG is dropped (and wiped) at once: this is a check, not the ceremony.
fn check_entropy(t: &mut ConsoleTerminal, info: &BootInfo) -> io::Result<()> {
    let (sources, absent) = entropy_run::discover();
    // No plan yet: virtual devices do not count here (a test plan may allow them later).
    let view = match entropy_run::gather(sources, absent, &entropy_run::policy(false), &mut |v| {
        let _ = t.draw(|f| entropy_check::render(f, v));
    }) {
        // The DRBG is dropped (and wiped) here: this is a check.
        Ok(o) => o.view,
        Err(v) => v,
    };
    loop {
        match term::run_screen(
            t,
            |f| entropy_check::render(f, &view),
            entropy_check::on_key,
        )? {
            entropy_check::Action::Back => return Ok(()),
            entropy_check::Action::Write => write_report(
                t,
                "entropy",
                report::entropy(&report_header("entropy check", info), &view),
            )?,
        }
    }
}

/// The raw USB descriptors sysfs keeps for a reader's device (public facts: what the CCID
/// catalogue records), as hex.
fn usb_descriptors(info: &cards::discovery::ReaderInfo) -> Option<String> {
    // `sysfs_path` is the USB device's directory, which holds `descriptors`.
    std::fs::read(info.sysfs_path.join("descriptors"))
        .ok()
        .map(|b| hexstr::encode(&b))
}

/// What is in one reader, read without a PIN: the card's public identity.
fn read_slot(info: &cards::discovery::ReaderInfo) -> (String, Slot) {
    let mut reader = match cards::usb::open(info) {
        Ok(r) => r,
        Err(e) => {
            return (
                "?".into(),
                Slot::Error(format!("cannot open the reader: {e}")),
            );
        }
    };
    let level = reader.exchange_level().to_string();
    match reader.slot_status() {
        Ok(cards::ccid::IccStatus::Absent) => return (level, Slot::Empty),
        Ok(_) => {}
        Err(e) => return (level, Slot::Error(e.to_string())),
    }
    if let Err(e) = reader.power_on() {
        return (level, Slot::Error(format!("the card does not answer: {e}")));
    }
    let slot = match cards::OpenPgpCard::open(reader).and_then(|mut c| c.identity()) {
        Ok(id) => {
            let key = |k: &Option<String>| k.clone().unwrap_or_else(|| "(empty)".into());
            Slot::Card {
                lines: vec![
                    format!(
                        "OpenPGP card {} ({}), spec {}.{}",
                        id.ident,
                        id.manufacturer,
                        id.spec_version >> 8,
                        id.spec_version & 0xff
                    ),
                    format!("signing key:        {}", key(&id.signing_fingerprint)),
                    format!("decryption key:     {}", key(&id.decryption_fingerprint)),
                    format!(
                        "authentication key: {}",
                        key(&id.authentication_fingerprint)
                    ),
                    format!(
                        "PIN tries left: user {}, reset code {}, admin {}",
                        id.retries.user, id.retries.reset_code, id.retries.admin
                    ),
                ],
            }
        }
        Err(e) => Slot::Error(format!("not a usable OpenPGP card: {e}")),
    };
    (level, slot)
}

/// Lists readers and their cards, polling sysfs and each reader's slot twice a second.
fn check_cards(t: &mut ConsoleTerminal, info: &BootInfo) -> io::Result<()> {
    let mut watcher = cards::discovery::Watcher::system();
    // Per reader: card present at the last look, and the row shown.
    let mut known: std::collections::BTreeMap<String, (bool, ReaderRow)> = Default::default();
    let view = std::cell::RefCell::new(CardsView::default());
    let tick = || {
        let mut view = view.borrow_mut();
        let mut changed = false;
        match watcher.poll() {
            Ok(events) => changed |= !events.is_empty(),
            Err(e) => {
                let msg = Some(e.to_string());
                changed |= view.scan_error != msg;
                view.scan_error = msg;
            }
        }
        let readers: Vec<_> = watcher.readers().cloned().collect();
        known.retain(|id, _| readers.iter().any(|r| &r.id == id));
        for info in &readers {
            let present = cards::usb::open(info)
                .and_then(|mut r| r.slot_status())
                .map(|s| s != cards::ccid::IccStatus::Absent)
                .unwrap_or(false);
            if known.get(&info.id).map(|(p, _)| *p) != Some(present) {
                let (level, slot) = read_slot(info);
                let row = ReaderRow {
                    name: info.name(),
                    level,
                    slot,
                };
                known.insert(info.id.clone(), (present, row));
                changed = true;
            }
        }
        if changed {
            view.readers = known.values().map(|(_, r)| r.clone()).collect();
        }
        changed
    };
    let mut tick = tick;
    loop {
        match term::run_live_screen(
            t,
            std::time::Duration::from_millis(500),
            |f| card_check::render(f, &view.borrow()),
            card_check::on_key,
            &mut tick,
        )? {
            card_check::Action::Back => return Ok(()),
            card_check::Action::Write => {
                let text = report::cards(
                    &report_header("card check", info),
                    &view.borrow(),
                    &reader_descriptors(),
                );
                write_report(t, "cards", text)?;
            }
        }
    }
}

/// (reader name as the card check shows it, hex of its USB descriptors) for every reader.
fn reader_descriptors() -> Vec<(String, String)> {
    let mut w = cards::discovery::Watcher::system();
    if w.poll().is_err() {
        return Vec::new();
    }
    w.readers()
        .filter_map(|r| Some((r.name(), usb_descriptors(r)?)))
        .collect()
}

fn screens(t: &mut ConsoleTerminal, info: &BootInfo) -> io::Result<()> {
    loop {
        match term::run_screen(t, |f| boot::render(f, info), boot::on_key)? {
            Action::PowerOff => return Ok(()),
            Action::CheckEntropy => check_entropy(t, info)?,
            Action::CheckCards => check_cards(t, info)?,
            Action::MachineValues => crate::machine::run(t)?,
            Action::Ceremony => {
                let mut devices = crate::devices::ImageDevices::new();
                let mut console = term::TermConsole::new(t);
                // Completed or aborted, the power-off page was shown and P pressed.
                ceremony_tui::ceremony::run(&mut console, &mut devices)?;
                return Ok(());
            }
            Action::Recovery => {
                let mut devices = crate::devices::ImageDevices::new();
                let mut console = term::TermConsole::new(t);
                // Completed or aborted, the power-off page was shown and P pressed.
                ceremony_tui::recovery::run(&mut console, &mut devices)?;
                return Ok(());
            }
        }
    }
}

/// Replaces Rust's default panic hook, which prints on stderr: here that is the console, and
/// the message would be drawn over the page (ratatui redraws only what it changed, so it could
/// stay there). A panic openpgp-card raises when a card is pulled mid-operation is caught and
/// shown by the page as an error; an uncaught one ends this program with exit code 101, and
/// PID 1 puts the message this hook wrote to `path` on its fatal screen.
pub fn keep_panics_off_the_console(path: std::path::PathBuf) {
    std::panic::set_hook(Box::new(move |info| {
        let _ = std::fs::write(&path, format!("{info}\n"));
    }));
}

pub fn run() -> ExitCode {
    keep_panics_off_the_console(crate::UI_PANIC_FILE.into());
    let info = boot_info();
    let selftest = std::env::var(ENV_SELFTEST).ok();
    let result = term::enter().and_then(|mut t| {
        let a = match selftest.as_deref() {
            Some("card") => crate::selftest::run(&mut t),
            _ => screens(&mut t, &info),
        };
        term::leave(&mut t)?;
        a
    });
    match result {
        Ok(()) => {
            println!("\r\nsherd: powering off.\r");
            ExitCode::from(EXIT_POWER_OFF as u8)
        }
        Err(e) => {
            eprintln!("\r\nsherd: the console failed: {e}\r");
            ExitCode::from(1)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_panic_goes_to_the_file_not_the_console() {
        let path = std::env::temp_dir().join(format!("sherd-ui-panic-{}.txt", std::process::id()));
        keep_panics_off_the_console(path.clone());
        let caught = std::panic::catch_unwind(|| panic!("the card went away ({})", 7));
        // Back to the default hook for every other test in this process.
        let _ = std::panic::take_hook();
        assert!(caught.is_err());
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(text.starts_with("panicked at init/src/ui.rs:"), "{text}");
        assert!(text.contains("the card went away (7)"), "{text}");
        let _ = std::fs::remove_file(&path);
    }
}
