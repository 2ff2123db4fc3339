//! The card check: every smart-card reader attached, and what card is in it, updated live as
//! readers and cards come and go. It only reads: no PIN is tried and nothing is written, so
//! share holders can check their cards (and operators their readers) before a ceremony.

use crate::boot::render_footer;
use crate::keys::Key;
use ratatui::Frame;
use ratatui::layout::{Constraint, Layout};
use ratatui::style::{Modifier, Style};
use ratatui::text::Line;
use ratatui::widgets::{Block, Borders, Paragraph, Wrap};

/// What is in a reader, as public facts.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Slot {
    Empty,
    /// An OpenPGP card: `lines` are its identity (ident, manufacturer, keys, PIN tries left).
    Card {
        lines: Vec<String>,
    },
    /// The reader or card answered with an error; the text says what and what to do.
    Error(String),
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ReaderRow {
    /// sysfs id (`1-1`) and product name.
    pub name: String,
    /// CCID exchange level, e.g. `TPDU T=0`.
    pub level: String,
    pub slot: Slot,
}

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct CardsView {
    pub readers: Vec<ReaderRow>,
    /// A problem scanning for readers at all.
    pub scan_error: Option<String>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Action {
    Back,
    /// Write what the screen shows to a data stick (`report`).
    Write,
}

pub fn on_key(key: Key) -> Option<Action> {
    match key {
        Key::Enter | Key::Esc | Key::Char('b' | 'B') => Some(Action::Back),
        Key::Char('w' | 'W') => Some(Action::Write),
        _ => None,
    }
}

pub fn render(frame: &mut Frame, v: &CardsView) {
    let [main, footer] =
        Layout::vertical([Constraint::Min(3), Constraint::Length(1)]).areas(frame.area());
    let bold = Style::default().add_modifier(Modifier::BOLD);
    let mut lines = vec![Line::styled(
        "Smart-card readers (read only: no PIN is tried, nothing is written)",
        bold,
    )];
    if let Some(e) = &v.scan_error {
        lines.push(Line::raw(format!("Cannot scan for readers: {e}")));
    }
    if v.readers.is_empty() {
        lines.push(Line::raw(
            "No reader attached. Plug in a CCID smart-card reader.",
        ));
    }
    for r in &v.readers {
        lines.push(Line::raw(""));
        lines.push(Line::styled(
            format!("Reader {} ({})", r.name, r.level),
            bold,
        ));
        match &r.slot {
            Slot::Empty => lines.push(Line::raw("  no card: insert one")),
            Slot::Card { lines: l } => lines.extend(l.iter().map(|s| Line::raw(format!("  {s}")))),
            Slot::Error(e) => lines.push(Line::raw(format!("  ERROR: {e}"))),
        }
    }
    let block = Block::default()
        .borders(Borders::ALL)
        .title(" sherd ")
        .title(Line::from(" card check ").right_aligned());
    frame.render_widget(
        Paragraph::new(lines)
            .block(block)
            .wrap(Wrap { trim: false }),
        main,
    );
    render_footer(
        frame,
        footer,
        &[
            ("Enter", "go back"),
            ("W", "write a report to a data stick"),
        ],
    );
}

#[cfg(test)]
mod tests {
    use super::*;
    use ratatui::Terminal;
    use ratatui::backend::TestBackend;

    fn draw(v: &CardsView) -> TestBackend {
        let mut t = Terminal::new(TestBackend::new(80, 25)).unwrap();
        t.draw(|f| render(f, v)).unwrap();
        t.backend().clone()
    }

    #[test]
    fn cards_80x25() {
        let v = CardsView {
            readers: vec![
                ReaderRow {
                    name: "1-1 QEMU USB CCID".into(),
                    level: "TPDU T=0".into(),
                    slot: Slot::Card {
                        lines: vec![
                            "OpenPGP card 000F:53480001 (Nitrokey), spec 3.4".into(),
                            "keys: signing (empty), decryption (empty), authentication (empty)"
                                .into(),
                            "PIN tries left: user 3, reset code 0, admin 3".into(),
                        ],
                    },
                },
                ReaderRow {
                    name: "1-2 QEMU USB CCID".into(),
                    level: "TPDU T=0".into(),
                    slot: Slot::Empty,
                },
            ],
            scan_error: None,
        };
        insta::assert_snapshot!(draw(&v));
    }

    #[test]
    fn no_reader_80x25() {
        insta::assert_snapshot!(draw(&CardsView::default()));
    }

    #[test]
    fn back_keys() {
        assert_eq!(on_key(Key::Esc), Some(Action::Back));
        assert_eq!(on_key(Key::Char('c')), None);
        assert_eq!(on_key(Key::Char('w')), Some(Action::Write));
    }
}
