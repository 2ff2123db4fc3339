//! The UI role: gathers what the boot screen shows and runs the screens on the console that
//! PID 1 made this process's controlling terminal.

use crate::{ENV_CONSOLE_KIND, ENV_SELFTEST, EXIT_POWER_OFF};
use ceremony_tui::boot::{self, Action};
use ceremony_tui::card_check::{self, CardsView, ReaderRow, Slot};
use ceremony_tui::entropy_check;
use ceremony_tui::entropy_run;
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

/// Finds the sources, draws from each with the ceremony's policy, and shows the outcome. The
/// seeded DRBG is dropped (and wiped) at once: this is a check, not the ceremony.
fn check_entropy(t: &mut ConsoleTerminal) -> io::Result<()> {
    let (sources, absent) = entropy_run::discover();
    // No plan yet: virtual devices do not count here (a test plan may allow them later).
    let view = match entropy_run::gather(sources, absent, &entropy_run::policy(false), &mut |v| {
        let _ = t.draw(|f| entropy_check::render(f, v));
    }) {
        // The DRBG is dropped (and wiped) here: this is a check.
        Ok(o) => o.view,
        Err(v) => v,
    };
    term::run_screen(
        t,
        |f| entropy_check::render(f, &view),
        entropy_check::on_key,
    )?;
    Ok(())
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
fn check_cards(t: &mut ConsoleTerminal) -> io::Result<()> {
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
    term::run_live_screen(
        t,
        std::time::Duration::from_millis(500),
        |f| card_check::render(f, &view.borrow()),
        card_check::on_key,
        tick,
    )?;
    Ok(())
}

fn screens(t: &mut ConsoleTerminal, info: &BootInfo) -> io::Result<()> {
    loop {
        match term::run_screen(t, |f| boot::render(f, info), boot::on_key)? {
            Action::PowerOff => return Ok(()),
            Action::CheckEntropy => check_entropy(t)?,
            Action::CheckCards => check_cards(t)?,
            Action::MachineValues => crate::machine::run(t)?,
            Action::Ceremony => {
                let mut devices = crate::devices::ImageDevices::new();
                let mut console = term::TermConsole::new(t);
                // Completed or aborted, the power-off page was shown and P pressed.
                ceremony_tui::ceremony::run(&mut console, &mut devices)?;
                return Ok(());
            }
        }
    }
}

pub fn run() -> ExitCode {
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
