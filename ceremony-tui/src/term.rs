//! The terminal on the Linux console or a serial line.
//!
//! The console ignores the alternate screen, so screens are cleared explicitly; no mouse capture
//! and no keyboard-enhancement flags, which neither the console nor a serial terminal speaks.

use crossterm::cursor::{Hide, MoveTo, Show};
use crossterm::event::{self, Event};
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
    let mut t = Terminal::new(CrosstermBackend::new(out))?;
    t.clear()?;
    Ok(t)
}

/// Restores the cursor and cooked mode, leaving the last screen visible.
pub fn leave(t: &mut ConsoleTerminal) -> io::Result<()> {
    execute!(t.backend_mut(), Show)?;
    disable_raw_mode()
}

/// Draws a screen and waits until `on_event` returns an action; redraws on every event
/// (a resize included).
pub fn run_screen<A>(
    t: &mut ConsoleTerminal,
    mut render: impl FnMut(&mut Frame),
    mut on_event: impl FnMut(&Event) -> Option<A>,
) -> io::Result<A> {
    loop {
        t.draw(&mut render)?;
        let ev = event::read()?;
        if let Some(a) = on_event(&ev) {
            return Ok(a);
        }
    }
}
