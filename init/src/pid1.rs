//! PID 1: small and boring. It lists the root filesystem before touching it, mounts the pseudo
//! filesystems, starts the ceremony UI on the console as a child, reaps zombies, and powers off.
//! It never exits (the kernel would panic) and never offers a shell.

use crate::cmdline::{self, BootParams, Console};
use crate::journal::{self, Entry, JournalError, Summary};
use crate::{
    ENV_CONSOLE_KIND, ENV_FINDISO, ENV_ROLE, ENV_ROOTFS_TREE, ENV_SELFTEST, EXIT_POWER_OFF, ROLE_UI,
};
use nix::libc;
use nix::mount::{MsFlags, mount};
use nix::sys::reboot::{RebootMode, reboot};
use nix::sys::wait::{WaitStatus, waitpid};
use nix::unistd::Pid;
use std::fs::{File, OpenOptions};
use std::io::{Read, Write};
use std::os::fd::AsRawFd;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;
use std::time::Duration;

/// One pseudo filesystem PID 1 mounts, in order.
pub struct MountSpec {
    pub source: &'static str,
    pub target: &'static str,
    pub fstype: &'static str,
    pub flags: MsFlags,
    pub data: Option<&'static str>,
}

const NOSUID_NODEV_NOEXEC: MsFlags = MsFlags::MS_NOSUID
    .union(MsFlags::MS_NODEV)
    .union(MsFlags::MS_NOEXEC);

/// Every mount the image makes. The mount points exist in the initramfs (see `image/`), so PID 1
/// creates nothing in the root filesystem it has just hashed.
pub const MOUNTS: &[MountSpec] = &[
    MountSpec {
        source: "proc",
        target: "/proc",
        fstype: "proc",
        flags: NOSUID_NODEV_NOEXEC,
        data: None,
    },
    MountSpec {
        source: "sysfs",
        target: "/sys",
        fstype: "sysfs",
        flags: NOSUID_NODEV_NOEXEC,
        data: None,
    },
    // Device nodes must work here, so no MS_NODEV.
    MountSpec {
        source: "devtmpfs",
        target: "/dev",
        fstype: "devtmpfs",
        flags: MsFlags::MS_NOSUID.union(MsFlags::MS_NOEXEC),
        data: Some("mode=0755"),
    },
    MountSpec {
        source: "tmpfs",
        target: "/run",
        fstype: "tmpfs",
        flags: NOSUID_NODEV_NOEXEC,
        data: Some("mode=0755,size=16m"),
    },
    MountSpec {
        source: "tmpfs",
        target: "/tmp",
        fstype: "tmpfs",
        flags: NOSUID_NODEV_NOEXEC,
        data: Some("mode=1777,size=64m"),
    },
    // The TPM event log lives here; absent kernels simply lack the directory.
    MountSpec {
        source: "securityfs",
        target: "/sys/kernel/security",
        fstype: "securityfs",
        flags: NOSUID_NODEV_NOEXEC,
        data: None,
    },
];

/// Columns and rows given to a serial line whose size the kernel does not know (it reads 0x0).
const SERIAL_COLS: u16 = 80;
const SERIAL_ROWS: u16 = 24;

pub fn run() -> ! {
    // Files the ceremony writes are nobody else's business.
    nix::sys::stat::umask(nix::sys::stat::Mode::from_bits_truncate(0o077));
    let outcome = std::panic::catch_unwind(boot);
    let reason = match outcome {
        Ok(Ok(never)) => match never {},
        Ok(Err(reason)) => reason,
        Err(panic) => format!(
            "PID 1 panicked: {}",
            panic
                .downcast_ref::<&str>()
                .map(|s| s.to_string())
                .or_else(|| panic.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "unknown panic".into())
        ),
    };
    fatal(&reason)
}

enum Never {}

fn boot() -> Result<Never, String> {
    // The tree hash first: nothing has been mounted or created yet, so this is exactly what the
    // bootloader handed the kernel (the initramfs), comparable with the build manifest.
    let tree = treehash::Tree::scan(Path::new("/"))
        .map_err(|e| format!("cannot list the root filesystem: {e}"))?;
    let tree_hex = hexstr::encode(&tree.hash());

    for m in MOUNTS {
        mount(Some(m.source), m.target, Some(m.fstype), m.flags, m.data).map_err(|e| {
            format!(
                "cannot mount {} on {}: {e}; the kernel lacks a feature sherd needs",
                m.fstype, m.target
            )
        })?;
    }
    // Keep late kernel messages (USB plugging, errors of pulled sticks, ...) off the screens:
    // console log level 1 lets only emergencies (KERN_EMERG) through; the rest stays in dmesg.
    // SAFETY: klogctl with a null buffer and length 1 only sets the console log level.
    unsafe { libc::klogctl(8, std::ptr::null_mut(), 1) };

    let line = std::fs::read_to_string("/proc/cmdline")
        .map_err(|e| format!("cannot read /proc/cmdline: {e}"))?;
    let params = cmdline::parse(line.trim_end()).map_err(|e| e.to_string())?;

    let code = supervise_ui(&params, &tree_hex)?;
    if code == EXIT_POWER_OFF {
        power_off();
    }
    let panic = std::fs::read_to_string(crate::UI_PANIC_FILE).ok();
    Err(unexpected_exit(code, panic.as_deref()))
}

/// Opens the console device for the UI child, sizing a serial line that reports 0x0.
fn open_console(console: &Console) -> Result<File, String> {
    let tty = OpenOptions::new()
        .read(true)
        .write(true)
        .custom_flags(libc::O_NOCTTY)
        .open(console.device())
        .map_err(|e| format!("cannot open the console {}: {e}", console.device()))?;
    if let Console::Serial { .. } = console {
        let mut ws = libc::winsize {
            ws_row: 0,
            ws_col: 0,
            ws_xpixel: 0,
            ws_ypixel: 0,
        };
        // SAFETY: TIOCGWINSZ writes and TIOCSWINSZ reads one winsize, which `ws` is and which
        // lives across both calls; the fd is the open console.
        unsafe {
            if libc::ioctl(tty.as_raw_fd(), libc::TIOCGWINSZ, &mut ws) == 0
                && (ws.ws_col == 0 || ws.ws_row == 0)
            {
                ws.ws_col = SERIAL_COLS;
                ws.ws_row = SERIAL_ROWS;
                libc::ioctl(tty.as_raw_fd(), libc::TIOCSWINSZ, &ws);
            }
        }
    }
    Ok(tty)
}

/// Starts the UI as a child in its own session with the console as its controlling terminal,
/// then reaps every child until the UI itself ends. Returns the UI's exit code (or 128+signal).
fn supervise_ui(params: &BootParams, tree_hex: &str) -> Result<i32, String> {
    let tty = open_console(&params.console)?;
    let kind = match params.console {
        Console::Serial { .. } => "serial",
        Console::Vt { .. } => "vt",
    };
    let mut env = vec![
        format!("{ENV_ROLE}={ROLE_UI}"),
        format!("{ENV_ROOTFS_TREE}={tree_hex}"),
        format!("{ENV_CONSOLE_KIND}={kind}"),
        "TERM=linux".to_owned(),
        "PATH=/".to_owned(),
    ];
    if let Some(cmdline::SelfTest::Card) = params.selftest {
        env.push(format!("{ENV_SELFTEST}=card"));
    }
    if let Some(f) = &params.findiso {
        env.push(format!("{ENV_FINDISO}={f}"));
    }
    let ui = spawn_on_console(&tty, &env)?;
    drop(tty);
    loop {
        // PID 1 inherits every orphan: reap them all, return when the UI itself is gone.
        match waitpid(None, None) {
            Ok(WaitStatus::Exited(pid, code)) if pid == ui => return Ok(code),
            Ok(WaitStatus::Signaled(pid, sig, _)) if pid == ui => return Ok(128 + sig as i32),
            Ok(_) => {}
            Err(nix::errno::Errno::EINTR) => {}
            Err(e) => return Err(format!("waiting for the ceremony program failed: {e}")),
        }
    }
}

/// The steps between fork and exec, so a failure names the one that failed.
const CHILD_STEPS: [&str; 4] = [
    "setsid",
    "make the console the controlling terminal (TIOCSCTTY)",
    "dup2 the console onto stdin/stdout/stderr",
    "execve /proc/self/exe",
];

/// fork + exec of this same binary with `env`, the console as fds 0-2 and controlling terminal.
/// A failing step in the child is reported through a close-on-exec pipe as (step, errno).
fn spawn_on_console(tty: &File, env: &[String]) -> Result<Pid, String> {
    use std::ffi::CString;
    let exe = c"/proc/self/exe";
    let argv = [c"sherd-ui".as_ptr(), std::ptr::null()];
    let envs: Vec<CString> = env
        .iter()
        .map(|e| CString::new(e.as_str()).map_err(|_| format!("NUL in environment {e:?}")))
        .collect::<Result<_, _>>()?;
    let mut envp: Vec<*const libc::c_char> = envs.iter().map(|e| e.as_ptr()).collect();
    envp.push(std::ptr::null());
    let mut fds = [0 as libc::c_int; 2];
    // SAFETY: pipe2 fills the two-element array.
    if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) } < 0 {
        return Err(format!("pipe2: {}", std::io::Error::last_os_error()));
    }
    let (rd, wr) = (fds[0], fds[1]);
    let tty_fd = tty.as_raw_fd();
    // SAFETY: the child only makes async-signal-safe calls (no allocation) before execve or _exit.
    let pid = unsafe { libc::fork() };
    if pid < 0 {
        return Err(format!("fork: {}", std::io::Error::last_os_error()));
    }
    if pid == 0 {
        // SAFETY: in the forked child only async-signal-safe calls on valid fds and the
        // NUL-terminated arrays built above (which fork copied), then execve or _exit.
        // (std::process::Command with a pre_exec hook was tried instead: in the image the
        // spawn failed with ENOSYS, so this stays hand-written.)
        unsafe {
            let fail = |step: u8| -> ! {
                let errno = *libc::__errno_location();
                let msg = [step, errno as u8, (errno >> 8) as u8];
                libc::write(wr, msg.as_ptr().cast(), msg.len());
                libc::_exit(127)
            };
            if libc::setsid() < 0 {
                fail(0);
            }
            if libc::ioctl(tty_fd, libc::TIOCSCTTY, 0) < 0 {
                fail(1);
            }
            for fd in 0..3 {
                if libc::dup2(tty_fd, fd) < 0 {
                    fail(2);
                }
            }
            libc::execve(exe.as_ptr(), argv.as_ptr(), envp.as_ptr());
            fail(3);
        }
    }
    // SAFETY: closing our copy of the write end; reading at most 3 bytes into a local buffer.
    let mut msg = [0u8; 3];
    let n = unsafe {
        libc::close(wr);
        let n = libc::read(rd, msg.as_mut_ptr().cast(), msg.len());
        libc::close(rd);
        n
    };
    if n == 3 {
        let errno = i32::from(msg[1]) | (i32::from(msg[2]) << 8);
        return Err(format!(
            "cannot start the ceremony program: {} failed: {}",
            CHILD_STEPS.get(usize::from(msg[0])).unwrap_or(&"?"),
            std::io::Error::from_raw_os_error(errno)
        ));
    }
    Ok(Pid::from_raw(pid))
}

/// The fatal screen's reason when the UI ended other than by powering off; `panic` is what its
/// panic hook left in [`crate::UI_PANIC_FILE`], shown only when the UI died of a panic (a caught
/// one, such as a pulled card's, may have left the file earlier).
fn unexpected_exit(code: i32, panic: Option<&str>) -> String {
    let mut reason = format!(
        "the ceremony program stopped unexpectedly ({})",
        describe_exit(code)
    );
    if let (101, Some(p)) = (code, panic) {
        reason.push_str(": ");
        reason.push_str(p.trim_end());
    }
    reason
}

fn describe_exit(code: i32) -> String {
    match code {
        c if c > 128 => format!("killed by signal {}", c - 128),
        101 => "it panicked, exit code 101".into(),
        c => format!("exit code {c}"),
    }
}

/// Flushes what was written and powers off. Never returns.
pub fn power_off() -> ! {
    nix::unistd::sync();
    let _ = reboot(RebootMode::RB_POWER_OFF);
    // Power-off failed (no ACPI?): halting is the safe remainder.
    let _ = reboot(RebootMode::RB_HALT_SYSTEM);
    loop {
        std::thread::sleep(Duration::from_secs(3600));
    }
}

/// Shows what went wrong on the console and what the ceremony had done by then (from its
/// progress journal), waits for Enter, powers off. Plain text: PID 1 does not depend on the UI
/// code that may be what failed.
fn fatal(reason: &str) -> ! {
    let journal = journal::read(Path::new(journal::PATH));
    let msg = fatal_message(reason, &journal);
    // Any console will do; try the kernel's, then the usual suspects (devtmpfs may be missing).
    for dev in ["/dev/console", "/dev/tty1", "/dev/ttyS0"] {
        if let Ok(mut c) = OpenOptions::new().read(true).write(true).open(dev) {
            let _ = c.write_all(msg.as_bytes());
            let mut b = [0u8; 1];
            loop {
                match c.read(&mut b) {
                    Ok(1) if b[0] == b'\r' || b[0] == b'\n' => power_off(),
                    Ok(1) => continue,
                    // No keyboard answer possible: leave the message up for a while.
                    _ => break,
                }
            }
            std::thread::sleep(Duration::from_secs(300));
            power_off();
        }
    }
    std::thread::sleep(Duration::from_secs(300));
    power_off()
}

/// Text columns the message is wrapped to (a serial console is 80 wide).
const WIDTH: usize = 76;

/// The fatal screen's text: `reason`, then exactly what the progress journal says was done.
/// "Nothing was written" only when the journal says nothing was; an unreadable journal says so.
pub fn fatal_message(reason: &str, journal: &Result<Vec<Entry>, JournalError>) -> String {
    let mut out = vec!["sherd: FATAL ERROR".to_owned(), String::new()];
    out.extend(wrap(reason, ""));
    out.push(String::new());
    match journal {
        Ok(entries) if entries.is_empty() => {
            out.push("Nothing was written to any card or stick.".into());
        }
        Ok(entries) => {
            let s = Summary::of(entries);
            out.push("What was done before this (from the progress journal):".into());
            for c in &s.cards {
                let what = if c.done {
                    "provisioned (it holds a key now)".to_owned()
                } else {
                    "MAY BE PARTLY PROVISIONED (its reset began, provisioning did not finish)"
                        .to_owned()
                };
                out.extend(wrap(
                    &format!("- card {} for {}: {what}", c.serial, c.holder),
                    "  ",
                ));
            }
            for t in &s.sticks {
                let what = if t.files.is_empty() {
                    "writing began, no file was completed (a folder or a temporary file may be \
                     there)"
                        .to_owned()
                } else {
                    format!(
                        "{} file(s) written and complete: {} (a half-written temporary file \
                         may be there too)",
                        t.files.len(),
                        t.files.join(", ")
                    )
                };
                out.extend(wrap(&format!("- {}: {what}", t.volume), "  "));
            }
            if s.sticks.is_empty() {
                out.push("Nothing was written to any stick.".into());
            }
            if s.cards.is_empty() {
                out.push("No card was changed.".into());
            }
        }
        Err(e) => {
            out.extend(wrap(
                &format!(
                    "What was written cannot be told ({e}): treat every card and stick used \
                     in this ceremony as possibly written."
                ),
                "",
            ));
        }
    }
    out.push(String::new());
    out.push("Press Enter to power off.".into());
    let mut msg = "\x1b[0m\x1b[2J\x1b[H\r\n".to_owned();
    for l in out {
        if !l.is_empty() {
            msg.push_str("  ");
        }
        msg.push_str(&l);
        msg.push_str("\r\n");
    }
    msg
}

/// `text` in lines of at most [`WIDTH`] characters (longer words stay whole), the lines after
/// the first indented by `indent`.
fn wrap(text: &str, indent: &str) -> Vec<String> {
    let mut lines = Vec::new();
    let mut line = String::new();
    for word in text.split(' ') {
        if !line.is_empty() && line.chars().count() + 1 + word.chars().count() > WIDTH {
            lines.push(std::mem::replace(&mut line, indent.to_owned()));
        } else if !line.is_empty() && line != indent {
            line.push(' ');
        }
        line.push_str(word);
    }
    lines.push(line);
    lines
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_panic_is_on_the_fatal_screen_only_when_the_ui_died_of_it() {
        let died = unexpected_exit(101, Some("panicked at src/x.rs:1:2:\nboom\n"));
        assert_eq!(
            died,
            "the ceremony program stopped unexpectedly (it panicked, exit code 101): \
             panicked at src/x.rs:1:2:\nboom"
        );
        // An earlier, caught panic (a pulled card) is not why it exited with 1 or a signal.
        for code in [1, 137] {
            let r = unexpected_exit(code, Some("panicked at src/x.rs:1:2:\nboom"));
            assert!(!r.contains("boom"), "{r}");
        }
        assert_eq!(
            unexpected_exit(101, None),
            "the ceremony program stopped unexpectedly (it panicked, exit code 101)"
        );
    }

    fn card(done: bool, serial: &str, holder: &str) -> Entry {
        let (serial, holder) = (serial.to_owned(), holder.to_owned());
        if done {
            Entry::CardDone { serial, holder }
        } else {
            Entry::CardStart { serial, holder }
        }
    }

    /// The message without escapes and line ends, one line per entry.
    fn lines(journal: Result<Vec<Entry>, JournalError>) -> Vec<String> {
        let m = fatal_message("the ceremony program stopped unexpectedly", &journal);
        assert!(m.starts_with("\x1b[0m\x1b[2J\x1b[H\r\n"));
        assert!(m.ends_with("Press Enter to power off.\r\n"));
        assert!(m.lines().all(|l| l.chars().count() <= 80), "{m}");
        m.trim_start_matches("\x1b[0m\x1b[2J\x1b[H")
            .split("\r\n")
            .map(|l| l.trim().to_owned())
            .collect()
    }

    #[test]
    fn nothing_written_only_when_the_journal_says_nothing() {
        let l = lines(Ok(vec![]));
        assert!(l.contains(&"Nothing was written to any card or stick.".to_owned()));
        let l = lines(Ok(vec![card(true, "0005:0000A1B2", "Alice")])).join("\n");
        assert!(!l.contains("Nothing was written to any card"), "{l}");
    }

    #[test]
    fn cards_and_files_are_named() {
        let vol = "data stick sdc1 (SanDisk Ultra, 32.0 GB)";
        let l = lines(Ok(vec![
            card(false, "0005:0000A1B2", "Alice"),
            card(true, "0005:0000A1B2", "Alice"),
            card(false, "0005:0000C3D4", "Bob"),
            Entry::StickStart { volume: vol.into() },
            Entry::File {
                volume: vol.into(),
                path: "sherd-c1/root.asc".into(),
            },
            Entry::File {
                volume: vol.into(),
                path: "sherd-c1/holder-1.shard.asc".into(),
            },
        ]))
        .join("\n");
        assert!(
            l.contains("- card 0005:0000A1B2 for Alice: provisioned (it holds a key now)"),
            "{l}"
        );
        assert!(
            l.contains("- card 0005:0000C3D4 for Bob: MAY BE PARTLY PROVISIONED"),
            "{l}"
        );
        assert!(
            l.contains(&format!("- {vol}: 2 file(s) written and complete:")),
            "{l}"
        );
        assert!(l.contains("sherd-c1/root.asc,"), "{l}");
        assert!(l.contains("sherd-c1/holder-1.shard.asc"), "{l}");
        assert!(!l.contains("Nothing was written"), "{l}");
    }

    #[test]
    fn cards_only_says_no_stick_was_written() {
        let l = lines(Ok(vec![card(true, "S1", "Alice")])).join("\n");
        assert!(l.contains("Nothing was written to any stick."), "{l}");
        assert!(!l.contains("No card was changed"), "{l}");
    }

    #[test]
    fn a_stick_begun_without_a_finished_file() {
        let l = lines(Ok(vec![Entry::StickStart {
            volume: "data stick sdd1".into(),
        }]))
        .join("\n");
        assert!(
            l.contains("- data stick sdd1: writing began, no file was completed"),
            "{l}"
        );
        assert!(l.contains("No card was changed."), "{l}");
    }

    #[test]
    fn an_unreadable_journal_promises_nothing() {
        let l = lines(Err(JournalError::BadHeader)).join("\n");
        assert!(l.contains("What was written cannot be told"), "{l}");
        assert!(!l.contains("Nothing was written"), "{l}");
    }

    #[test]
    fn built_from_the_journal_file() {
        let dir = std::env::temp_dir().join(format!("sherd-fatal-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("progress");
        let j = journal::Journal::new(&path);
        j.append(&card(false, "S9", "Carol")).unwrap();
        let l = lines(journal::read(&path)).join("\n");
        assert!(
            l.contains("- card S9 for Carol: MAY BE PARTLY PROVISIONED"),
            "{l}"
        );
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn long_lines_wrap() {
        assert_eq!(wrap("a b", "  "), ["a b"]);
        let w = wrap(&"word ".repeat(40), "  ");
        assert!(w.len() > 1 && w.iter().all(|l| l.chars().count() <= WIDTH));
        assert!(w[1].starts_with("  word"));
    }
}
