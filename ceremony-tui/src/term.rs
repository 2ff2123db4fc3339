//! The terminal on the Linux console or a serial line.
//!
//! The console ignores the alternate screen, so screens are cleared explicitly; no mouse capture
//! and no keyboard-enhancement flags, which neither the console nor a serial terminal speaks.

use crate::keys::{Decoder, Key};
use crossterm::cursor::{Hide, MoveTo, Show};
use crossterm::execute;
use crossterm::terminal::{Clear, ClearType, disable_raw_mode, enable_raw_mode};
use ratatui::backend::CrosstermBackend;
use ratatui::{Frame, Terminal};
use std::io::{self, Stdout};

pub type ConsoleTerminal = Terminal<CrosstermBackend<Stdout>>;

/// Puts the terminal in raw mode and clears it. Undo with [`leave`].
pub fn enter() -> io::Result<ConsoleTerminal> {
    enable_raw_mode()?;
    let mut out = io::stdout();
    execute!(out, Hide, Clear(ClearType::All), MoveTo(0, 0))?;
    // Not `Terminal::clear`: it asks the terminal for the cursor position (`CSI 6n`), which a
    // serial line with nobody answering never returns. The screen was cleared just above.
    Terminal::new(CrosstermBackend::new(out))
}

/// Restores the cursor and cooked mode, leaving the last screen visible.
pub fn leave(t: &mut ConsoleTerminal) -> io::Result<()> {
    execute!(t.backend_mut(), Show)?;
    disable_raw_mode()
}

/// Draws a screen and waits until `on_key` returns an action. Keys are read from standard input
/// (the console, in raw mode) and decoded by [`Decoder`].
pub fn run_screen<A>(
    t: &mut ConsoleTerminal,
    render: impl FnMut(&mut Frame),
    on_key: impl FnMut(Key) -> Option<A>,
) -> io::Result<A> {
    // A still screen is a live one that never changes by itself.
    run_live_screen(
        t,
        std::time::Duration::from_secs(60),
        render,
        on_key,
        || false,
    )
}

/// Like [`run_screen`], for screens that change by themselves: `tick` runs at least every
/// `period` (and after each key) and returns whether the view changed.
pub fn run_live_screen<A>(
    t: &mut ConsoleTerminal,
    period: std::time::Duration,
    mut render: impl FnMut(&mut Frame),
    mut on_key: impl FnMut(Key) -> Option<A>,
    mut tick: impl FnMut() -> bool,
) -> io::Result<A> {
    let mut decoder = Decoder::new();
    tick();
    t.draw(&mut render)?;
    loop {
        for key in read_keys(&mut decoder, period)? {
            if let Some(a) = on_key(key) {
                return Ok(a);
            }
        }
        if tick() {
            t.draw(&mut render)?;
        }
    }
}

/// Waits up to `wait` for input on standard input and returns the keys it decodes (none when
/// the time ran out).
fn read_keys(decoder: &mut Decoder, wait: std::time::Duration) -> io::Result<Vec<Key>> {
    use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
    use std::os::fd::AsFd;
    let stdin = io::stdin();
    let timeout =
        PollTimeout::try_from(wait.as_millis().min(60_000) as i32).unwrap_or(PollTimeout::MAX);
    let ready = {
        let mut fds = [PollFd::new(stdin.as_fd(), PollFlags::POLLIN)];
        match poll(&mut fds, timeout) {
            Ok(n) => n > 0,
            Err(nix::errno::Errno::EINTR) => false,
            Err(e) => return Err(e.into()),
        }
    };
    if !ready {
        return Ok(Vec::new());
    }
    // Straight from the descriptor: std's buffered Stdin could keep bytes poll cannot see.
    let mut buf = [0u8; 64];
    let n = nix::unistd::read(stdin.as_fd(), &mut buf)?;
    if n == 0 {
        return Err(io::Error::new(
            io::ErrorKind::UnexpectedEof,
            "the console closed its input",
        ));
    }
    Ok(decoder.feed(&buf[..n]))
}

/// The ceremony's [`crate::ceremony::Console`] on this terminal.
pub struct TermConsole<'a> {
    t: &'a mut ConsoleTerminal,
    decoder: Decoder,
    pending: std::collections::VecDeque<Key>,
    /// The page on screen: drawing it again would still send style resets down the line.
    shown: Option<crate::ceremony::Page>,
}

impl<'a> TermConsole<'a> {
    pub fn new(t: &'a mut ConsoleTerminal) -> Self {
        TermConsole {
            t,
            decoder: Decoder::new(),
            pending: Default::default(),
            shown: None,
        }
    }
}

impl crate::ceremony::Console for TermConsole<'_> {
    fn show(&mut self, page: &crate::ceremony::Page) -> io::Result<()> {
        if self.shown.as_ref() == Some(page) {
            return Ok(());
        }
        self.t.draw(|f| crate::ceremony::page::render(f, page))?;
        self.shown = Some(page.clone());
        Ok(())
    }

    fn next_key(&mut self, wait: std::time::Duration) -> io::Result<Option<Key>> {
        if self.pending.is_empty() {
            let keys = read_keys(&mut self.decoder, wait)?;
            self.pending.extend(keys);
        }
        Ok(self.pending.pop_front())
    }
}
