//! A program run in a real pseudo-terminal, as a person runs it in theirs: its standard
//! input, output and error are the terminal (one open file description, as a login terminal's
//! are), and the test types on the other side and reads the screen.

use crate::Console;
use nix::pty::{Winsize, openpty};
use nix::sys::termios::{Termios, tcgetattr};
use std::fs::File;
use std::io::Write;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::thread;
use std::time::{Duration, Instant};

pub struct PtySession {
    child: Child,
    keyboard: File,
    /// The terminal's side the program has; kept open here so the test can look at (and
    /// change) what the program's terminal file description looks like.
    terminal: OwnedFd,
    console: Console,
}

/// The program's terminal: `s.screen()`, `s.wait_for_screen(..)`, ...
impl std::ops::Deref for PtySession {
    type Target = Console;
    fn deref(&self) -> &Console {
        &self.console
    }
}

impl PtySession {
    /// Starts `cmd` on a new `cols` x `rows` pseudo-terminal.
    pub fn spawn(mut cmd: Command, cols: u16, rows: u16) -> PtySession {
        let size = Winsize {
            ws_row: rows,
            ws_col: cols,
            ws_xpixel: 0,
            ws_ypixel: 0,
        };
        let pty = openpty(&size, None).expect("a pseudo-terminal");
        // fds 0, 1 and 2 are duplicates of one descriptor: one open file description.
        let dup = |fd: &OwnedFd| Stdio::from(fd.try_clone().expect("dup"));
        let child = cmd
            .stdin(dup(&pty.slave))
            .stdout(dup(&pty.slave))
            .stderr(dup(&pty.slave))
            .spawn()
            .unwrap_or_else(|e| panic!("{cmd:?}: {e}"));
        let screen = File::from(pty.master.try_clone().expect("dup"));
        PtySession {
            child,
            keyboard: File::from(pty.master),
            terminal: pty.slave,
            console: Console::read_from(screen),
        }
    }

    /// Types `keys`.
    pub fn send(&mut self, keys: &[u8]) {
        self.keyboard.write_all(keys).unwrap();
        self.keyboard.flush().unwrap();
    }

    /// The terminal as the program sees it (its settings, its file status flags).
    pub fn terminal(&self) -> BorrowedFd<'_> {
        self.terminal.as_fd()
    }

    /// The terminal's settings now.
    pub fn settings(&self) -> Termios {
        tcgetattr(self.terminal.as_fd()).expect("tcgetattr")
    }

    /// Waits for the program to exit within `timeout`; kills it otherwise.
    pub fn wait_exit(&mut self, timeout: Duration) -> ExitStatus {
        crate::wait_child(&mut self.child, timeout, "the program", &self.console)
    }

    /// The program's process id (to send it signals).
    pub fn pid(&self) -> u32 {
        self.child.id()
    }
}

impl Drop for PtySession {
    /// SIGTERM first, so the program can stop what it started (the demo's QEMU); SIGKILL if
    /// it has not ended 20 s later.
    fn drop(&mut self) {
        if let Ok(pid) = i32::try_from(self.child.id()) {
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(pid),
                nix::sys::signal::Signal::SIGTERM,
            );
        }
        let t0 = Instant::now();
        while t0.elapsed() < Duration::from_secs(20) {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            thread::sleep(Duration::from_millis(50));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
