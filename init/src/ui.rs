//! The UI role: gathers what the boot screen shows and runs the screens on the console that
//! PID 1 made this process's controlling terminal.

use crate::{ENV_CONSOLE_KIND, ENV_ROOTFS_TREE, EXIT_POWER_OFF};
use ceremony_tui::boot::{self, Action};
use ceremony_tui::{BootInfo, BuildInfo, term};
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
        rootfs_tree: std::env::var(ENV_ROOTFS_TREE)
            .ok()
            .filter(|h| h.len() == 64 && h.bytes().all(|b| b.is_ascii_hexdigit())),
        console: format!("{kind} ({tty})"),
    }
}

pub fn run() -> ExitCode {
    let info = boot_info();
    let result = term::enter().and_then(|mut t| {
        let a = term::run_screen(&mut t, |f| boot::render(f, &info), boot::on_key);
        term::leave(&mut t)?;
        a
    });
    match result {
        Ok(Action::PowerOff) => {
            println!("\r\nsherd: powering off.\r");
            ExitCode::from(EXIT_POWER_OFF as u8)
        }
        Err(e) => {
            eprintln!("\r\nsherd: the console failed: {e}\r");
            ExitCode::from(1)
        }
    }
}
