//! The entropy check: which randomness sources this machine has, whether each passed its health
//! tests, and whether together they meet the ceremony's rule (two independent hardware sources
//! plus the kernel CSPRNG). Run from the boot screen before a ceremony, and again inside it.

use crate::boot::render_footer;
use crate::keys::Key;
use ratatui::Frame;
use ratatui::layout::{Constraint, Layout};
use ratatui::style::{Modifier, Style};
use ratatui::text::Line;
use ratatui::widgets::{Block, Borders, Paragraph, Wrap};

/// One source as the screen shows it. Public values only: no sample byte ever reaches here.
#[derive(Clone, Debug, PartialEq)]
pub struct SourceRow {
    /// `cpu`, `tpm`, `hwrng`, `usb-trng`, `card`, `os`.
    pub kind: String,
    pub identity: String,
    /// `raw` or `whitened` (what the device delivers).
    pub conditioning: String,
    pub healthy: bool,
    /// Counted towards the two hardware sources.
    pub counted: bool,
    /// e.g. `256 B, 2048 bits by claim, commitment 3f2a9b1c...`,
    /// or why it was excluded or not counted.
    pub detail: String,
}

#[derive(Clone, Debug, PartialEq)]
pub struct EntropyView {
    /// Set while sources are still being drawn: what is happening now.
    pub progress: Option<String>,
    pub rows: Vec<SourceRow>,
    /// Sources looked for and not found, with the reason.
    pub absent: Vec<(String, String)>,
    /// `Some(true)` when the rule is met, `Some(false)` when refused, `None` while running.
    pub ok: Option<bool>,
    pub verdict: String,
}

impl EntropyView {
    /// Before any source is drawn.
    pub fn looking() -> Self {
        EntropyView {
            progress: Some("looking for sources".into()),
            rows: Vec::new(),
            absent: Vec::new(),
            ok: None,
            verdict: String::new(),
        }
    }
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

/// The screen's text, line by line, each marked bold or not: shared by this check and the
/// ceremony's entropy step. The tags carry the meaning in words, so nothing rests on colour.
pub fn body(v: &EntropyView) -> Vec<(bool, String)> {
    let mut lines = vec![(true, "Randomness sources found on this machine".to_owned())];
    for r in &v.rows {
        let tag = match (r.healthy, r.counted) {
            (true, true) => "[ COUNTED ]",
            (true, false) => "[ MIXED   ]",
            (false, _) => "[ FAILED  ]",
        };
        lines.push((
            !r.healthy,
            format!("{tag} {:<8} {} ({})", r.kind, r.identity, r.conditioning),
        ));
        lines.push((false, format!("              {}", r.detail)));
    }
    for (what, why) in &v.absent {
        lines.push((false, format!("[ ABSENT  ] {what}: {why}")));
    }
    if v.rows
        .iter()
        .any(|r| r.healthy && r.conditioning == "whitened")
    {
        lines.push((
            false,
            "Whitened output: its tests catch only stuck or grossly biased output.".into(),
        ));
    }
    lines.push((false, String::new()));
    match (&v.progress, v.ok) {
        (Some(p), _) => lines.push((false, format!("Testing... {p}"))),
        (None, Some(true)) => lines.push((true, format!("PASS: {}", v.verdict))),
        (None, Some(false)) => lines.push((true, format!("REFUSED: {}", v.verdict))),
        (None, None) => {}
    }
    lines
}

pub fn render(frame: &mut Frame, v: &EntropyView) {
    let [main, footer] =
        Layout::vertical([Constraint::Min(3), Constraint::Length(1)]).areas(frame.area());
    let bold = Style::default().add_modifier(Modifier::BOLD);
    let lines: Vec<Line> = body(v)
        .into_iter()
        .map(|(strong, text)| {
            if strong {
                Line::styled(text, bold)
            } else {
                Line::raw(text)
            }
        })
        .collect();
    let block = Block::default()
        .borders(Borders::ALL)
        .title(" sherd ")
        .title(Line::from(" entropy check ").right_aligned());
    frame.render_widget(
        Paragraph::new(lines)
            .block(block)
            .wrap(Wrap { trim: false }),
        main,
    );
    if v.progress.is_none() {
        render_footer(
            frame,
            footer,
            &[
                ("Enter", "go back"),
                ("W", "write a report to a data stick"),
            ],
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ratatui::Terminal;
    use ratatui::backend::TestBackend;

    fn view() -> EntropyView {
        EntropyView {
            progress: None,
            rows: vec![
                SourceRow {
                    kind: "tpm".into(),
                    identity: "TPM 2.0 tpm0 (IBM SW TPM)".into(),
                    conditioning: "whitened".into(),
                    healthy: true,
                    counted: true,
                    detail: "256 B, 2048 bits by claim, commitment 3f2a9b1c0a1b2c3d".into(),
                },
                SourceRow {
                    kind: "hwrng".into(),
                    identity: "virtio_rng.0".into(),
                    conditioning: "whitened".into(),
                    healthy: true,
                    counted: true,
                    detail: "256 B, 2048 bits by claim, commitment 0a1b2c3d3f2a9b1c".into(),
                },
                SourceRow {
                    kind: "os".into(),
                    identity: "getrandom".into(),
                    conditioning: "whitened".into(),
                    healthy: true,
                    counted: false,
                    detail: "mixed in, never counted as hardware".into(),
                },
            ],
            absent: vec![("CPU RDSEED/RDRAND".into(), "the CPU lacks both".into())],
            ok: Some(true),
            verdict: "2 independent hardware sources + the kernel CSPRNG".into(),
        }
    }

    fn draw(v: &EntropyView) -> TestBackend {
        let mut t = Terminal::new(TestBackend::new(80, 25)).unwrap();
        t.draw(|f| render(f, v)).unwrap();
        t.backend().clone()
    }

    #[test]
    fn entropy_pass_80x25() {
        insta::assert_snapshot!(draw(&view()));
    }

    #[test]
    fn entropy_refused_80x25() {
        let mut v = view();
        v.rows.remove(0);
        v.rows[0].healthy = false;
        v.rows[0].counted = false;
        v.rows[0].detail = "repetition count test failed: 5 equal samples in a row".into();
        v.ok = Some(false);
        v.verdict = "0 independent healthy hardware sources, 2 required".into();
        insta::assert_snapshot!(draw(&v));
    }

    #[test]
    fn back_keys() {
        assert_eq!(on_key(Key::Enter), Some(Action::Back));
        assert_eq!(on_key(Key::Esc), Some(Action::Back));
        assert_eq!(on_key(Key::Char('p')), None);
        assert_eq!(on_key(Key::Char('W')), Some(Action::Write));
    }
}
