//! `/init`, the only program in the sherd image.
//!
//! Run by the kernel as PID 1 it does the work of [`pid1`]; started by PID 1 again with
//! `SHERD_ROLE=ui` it is the ceremony's user interface on the console. Run any other way (on a
//! developer's host, say) it refuses, because PID 1's job mounts filesystems and powers off.

mod cmdline;
mod devices;
mod journal;
mod machine;
mod pid1;
mod selftest;
mod uefi;
mod ui;

use std::process::ExitCode;

/// Environment variable naming the role of a non-PID-1 process.
pub const ENV_ROLE: &str = "SHERD_ROLE";
pub const ROLE_UI: &str = "ui";
/// The rootfs tree hash PID 1 computed before mounting anything (hex).
pub const ENV_ROOTFS_TREE: &str = "SHERD_ROOTFS_TREE";
/// `serial` or `vt`: what kind of console the UI draws on.
pub const ENV_CONSOLE_KIND: &str = "SHERD_CONSOLE";
/// `card` when the boot entry asked for the card self-test instead of the ceremony.
pub const ENV_SELFTEST: &str = "SHERD_SELFTEST";
/// The `findiso=` value from the kernel command line (the boot loader's path to the ISO).
pub const ENV_FINDISO: &str = "SHERD_FINDISO";
/// The UI's exit code for "the operator asked to power off".
pub const EXIT_POWER_OFF: i32 = 80;
/// Where the UI's panic hook leaves the last panic's message (tmpfs) instead of printing it over
/// the page on the console; PID 1 shows it on the fatal screen when the UI died of it.
pub const UI_PANIC_FILE: &str = "/run/sherd-ui-panic.txt";

/// The tree hash PID 1 passed in [`ENV_ROOTFS_TREE`], if it is one (64 lower-case hex digits,
/// as PID 1 writes it): the boot page and the attestation both show it, so they read it alike.
pub fn rootfs_tree() -> Option<String> {
    std::env::var(ENV_ROOTFS_TREE)
        .ok()
        .filter(|h| hexstr::decode_array::<32>(h).is_some())
}

fn main() -> ExitCode {
    if std::process::id() == 1 {
        pid1::run();
    }
    match std::env::var(ENV_ROLE).as_deref() {
        Ok(ROLE_UI) => ui::run(),
        _ => {
            eprintln!(
                "sherd init: this program is PID 1 of the sherd image and is not PID 1 here \
                 (pid {}), so it does nothing.\n\
                 To look at the screens on this machine, run it with {ENV_ROLE}={ROLE_UI}.",
                std::process::id()
            );
            ExitCode::from(2)
        }
    }
}
