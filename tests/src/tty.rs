//! The host terminal, as `sherd-demo` uses it: raw mode that is undone on every way out (a
//! panic in any thread included), reads and writes that survive `EINTR` and a non-blocking
//! file description (`EAGAIN`), and the signals that would otherwise end the demo with the
//! terminal left raw.
//!
//! Why the care: a terminal's fds 0, 1 and 2 are usually one open file description, so any
//! child given one of them can change the others' flags (QEMU sets `O_NONBLOCK` on its
//! stdio). The demo gives its children none of them, and still copes if something else does.

use nix::fcntl::{FcntlArg, OFlag, fcntl};
use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
use nix::sys::signal::{SigSet, Signal};
use nix::sys::termios::{self, SetArg, Termios};
use std::io::{self, Read, Write};
use std::os::fd::{AsFd, BorrowedFd};
use std::sync::{Arc, Mutex};

/// Clears `O_NONBLOCK` on `fd`'s open file description (another program may have left it
/// set on the terminal).
pub fn make_blocking(fd: BorrowedFd) -> io::Result<()> {
    let flags = OFlag::from_bits_truncate(fcntl(fd, FcntlArg::F_GETFL)?);
    if flags.contains(OFlag::O_NONBLOCK) {
        fcntl(fd, FcntlArg::F_SETFL(flags - OFlag::O_NONBLOCK))?;
    }
    Ok(())
}

/// Waits until `fd` is ready for `what` (or has hung up); `EINTR` counts as ready.
fn wait_ready(fd: BorrowedFd, what: PollFlags) -> io::Result<()> {
    let mut fds = [PollFd::new(fd, what)];
    match poll(&mut fds, PollTimeout::NONE) {
        Ok(_) | Err(nix::errno::Errno::EINTR) => Ok(()),
        Err(e) => Err(e.into()),
    }
}

/// One `read` that returns data, end of file (0) or a real error: `EINTR` is retried, and
/// `EAGAIN` (a non-blocking description) waits for input instead of failing.
pub fn read_some<R: Read + AsFd>(r: &mut R, buf: &mut [u8]) -> io::Result<usize> {
    loop {
        match r.read(buf) {
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                wait_ready(r.as_fd(), PollFlags::POLLIN)?
            }
            other => return other,
        }
    }
}

/// `write_all` that retries `EINTR` and waits out `EAGAIN`.
pub fn write_all<W: Write + AsFd>(w: &mut W, mut buf: &[u8]) -> io::Result<()> {
    while !buf.is_empty() {
        match w.write(buf) {
            Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
            Ok(n) => buf = &buf[n..],
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                wait_ready(w.as_fd(), PollFlags::POLLOUT)?
            }
            Err(e) => return Err(e),
        }
    }
    loop {
        match w.flush() {
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                wait_ready(w.as_fd(), PollFlags::POLLOUT)?
            }
            other => return other,
        }
    }
}

/// The terminal on standard input in raw mode until this is dropped. The settings it found
/// are put back on drop and by a panic hook (a panic in any thread), so no way out of the
/// demo leaves the terminal raw, short of `SIGKILL`.
pub struct RawMode {
    saved: Arc<Mutex<Option<Termios>>>,
}

fn restore(saved: &Mutex<Option<Termios>>) {
    let saved = saved.lock().unwrap_or_else(|p| p.into_inner());
    if let Some(t) = saved.as_ref() {
        let _ = termios::tcsetattr(io::stdin(), SetArg::TCSANOW, t);
    }
}

impl RawMode {
    /// Raw mode on standard input; `None` when standard input is not a terminal (nothing to
    /// set or restore then).
    pub fn enter() -> Option<RawMode> {
        let saved = termios::tcgetattr(io::stdin()).ok()?;
        let mut raw = saved.clone();
        termios::cfmakeraw(&mut raw);
        let saved = Arc::new(Mutex::new(Some(saved)));
        let for_hook = Arc::clone(&saved);
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            restore(&for_hook);
            previous(info);
        }));
        termios::tcsetattr(io::stdin(), SetArg::TCSANOW, &raw).ok()?;
        Some(RawMode { saved })
    }
}

impl Drop for RawMode {
    fn drop(&mut self) {
        restore(&self.saved);
        // The hook stays installed; with nothing saved it restores nothing.
        *self.saved.lock().unwrap_or_else(|p| p.into_inner()) = None;
    }
}

/// The signals that end a terminal program (hang-up, interrupt, quit, terminate), blocked in
/// the calling thread and in every thread it starts afterwards, so that they arrive only
/// through [`Signals::wait`] and the demo can restore the terminal before it ends.
pub struct Signals(SigSet);

impl Signals {
    pub fn block() -> io::Result<Signals> {
        let mut set = SigSet::empty();
        for s in [
            Signal::SIGHUP,
            Signal::SIGINT,
            Signal::SIGQUIT,
            Signal::SIGTERM,
        ] {
            set.add(s);
        }
        set.thread_block()?;
        Ok(Signals(set))
    }

    /// Waits for one of the blocked signals.
    pub fn wait(&self) -> io::Result<Signal> {
        Ok(self.0.wait()?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::net::UnixStream;

    fn nonblocking_pair() -> (UnixStream, UnixStream) {
        let (a, b) = UnixStream::pair().unwrap();
        a.set_nonblocking(true).unwrap();
        b.set_nonblocking(true).unwrap();
        (a, b)
    }

    #[test]
    fn a_read_on_a_nonblocking_description_waits_for_input() {
        let (mut a, mut b) = nonblocking_pair();
        let t = std::thread::spawn(move || {
            std::thread::sleep(std::time::Duration::from_millis(200));
            b.write_all(b"key").unwrap();
            b
        });
        let mut buf = [0u8; 8];
        // A plain read fails at once; read_some waits.
        assert_eq!(
            a.read(&mut buf).unwrap_err().kind(),
            io::ErrorKind::WouldBlock
        );
        let n = read_some(&mut a, &mut buf).unwrap();
        assert_eq!(&buf[..n], b"key");
        drop(t.join().unwrap());
        assert_eq!(read_some(&mut a, &mut buf).unwrap(), 0, "end of file");
    }

    #[test]
    fn a_write_to_a_full_nonblocking_description_waits_and_loses_nothing() {
        let (mut a, mut b) = nonblocking_pair();
        let data: Vec<u8> = (0..4_000_000u32).map(|i| i as u8).collect();
        let expect = data.clone();
        let reader = std::thread::spawn(move || {
            let mut got = Vec::new();
            let mut buf = [0u8; 65536];
            loop {
                match read_some(&mut b, &mut buf).unwrap() {
                    0 => return got,
                    n => got.extend_from_slice(&buf[..n]),
                }
            }
        });
        write_all(&mut a, &data).unwrap();
        drop(a);
        assert!(reader.join().unwrap() == expect);
    }

    #[test]
    fn make_blocking_clears_the_flag() {
        let (a, _b) = nonblocking_pair();
        make_blocking(a.as_fd()).unwrap();
        let flags = OFlag::from_bits_truncate(fcntl(a.as_fd(), FcntlArg::F_GETFL).unwrap());
        assert!(!flags.contains(OFlag::O_NONBLOCK));
    }
}
