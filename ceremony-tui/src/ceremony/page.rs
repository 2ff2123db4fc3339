//! One ceremony screen as plain data, and how it is drawn.
//!
//! Every screen of the ceremony is a [`Page`]: strings, and nothing else. Pages are built from
//! the ceremony core's public views (plan summary, fingerprints, serials, hashes); the core's
//! secret types implement neither `Display` nor `Debug` nor `Clone`, so no secret can be
//! formatted into a page by accident.

use crate::boot::render_footer;
use ceremony::flow::Step;
use ratatui::Frame;
use ratatui::layout::{Constraint, Layout};
use ratatui::style::{Modifier, Style};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Borders, Paragraph, Wrap};

/// How one line is shown. Meaning never rests on colour: alerts also say so in words.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Tone {
    Plain,
    Bold,
    /// Reverse video: a failure or something the operator must act on.
    Alert,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PageLine {
    pub tone: Tone,
    pub text: String,
}

/// Which ceremony a page belongs to, and its step there (the header's "step k of n").
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Stage {
    Generation(Step),
    Recovery(crate::recovery::RecoveryStep),
}

impl From<Step> for Stage {
    fn from(s: Step) -> Self {
        Stage::Generation(s)
    }
}

impl From<crate::recovery::RecoveryStep> for Stage {
    fn from(s: crate::recovery::RecoveryStep) -> Self {
        Stage::Recovery(s)
    }
}

impl Stage {
    /// The step's name on screen.
    pub fn name(self) -> &'static str {
        match self {
            Stage::Generation(s) => s.name(),
            Stage::Recovery(s) => s.name(),
        }
    }

    /// The header's step line: `step 3 of 9: Keys`, `recovery step 2 of 8: Request`.
    pub fn header(self) -> String {
        match self {
            Stage::Generation(s) => {
                format!("step {} of {}: {}", s.number(), Step::ALL.len(), s.name())
            }
            Stage::Recovery(s) => format!(
                "recovery step {} of {}: {}",
                s.number(),
                crate::recovery::RecoveryStep::ALL.len(),
                s.name()
            ),
        }
    }
}

/// A ceremony screen. Public values only.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Page {
    /// The ceremony and step the page belongs to (its header says "step k of n").
    pub step: Stage,
    pub ceremony_id: Option<String>,
    pub rehearsal: bool,
    /// The plan lets virtual devices count as hardware (tests and rehearsals).
    pub virtual_hardware: bool,
    /// The box's title, e.g. `insert a card`.
    pub title: String,
    pub lines: Vec<PageLine>,
    /// `(key, what it does)`, shown in the footer.
    pub keys: Vec<(String, String)>,
}

impl Page {
    pub fn new(step: impl Into<Stage>, title: impl Into<String>) -> Self {
        Page {
            step: step.into(),
            ceremony_id: None,
            rehearsal: false,
            virtual_hardware: false,
            title: title.into(),
            lines: Vec::new(),
            keys: Vec::new(),
        }
    }

    pub fn line(&mut self, text: impl Into<String>) -> &mut Self {
        self.push(Tone::Plain, text)
    }

    pub fn bold(&mut self, text: impl Into<String>) -> &mut Self {
        self.push(Tone::Bold, text)
    }

    pub fn alert(&mut self, text: impl Into<String>) -> &mut Self {
        self.push(Tone::Alert, text)
    }

    pub fn blank(&mut self) -> &mut Self {
        self.push(Tone::Plain, "")
    }

    fn push(&mut self, tone: Tone, text: impl Into<String>) -> &mut Self {
        self.lines.push(PageLine {
            tone,
            text: text.into(),
        });
        self
    }

    pub fn key(&mut self, key: &str, what: &str) -> &mut Self {
        self.keys.push((key.into(), what.into()));
        self
    }

    /// The whole page as text (for logs of what was shown, and tests).
    pub fn text(&self) -> String {
        let mut s = format!("{}: {}\n", self.step.name(), self.title);
        for l in &self.lines {
            s.push_str(&l.text);
            s.push('\n');
        }
        s
    }
}

/// The rehearsal banner, on every screen of a rehearsal.
pub const REHEARSAL_BANNER: &str =
    "REHEARSAL: practice only. No real keys, no real cards, nothing here is kept.";

/// The banner on every page after a plan that allows virtual hardware.
pub const VIRTUAL_BANNER: &str =
    "VIRTUAL HARDWARE ALLOWED by the plan: tests and rehearsals only, no real keys.";

impl Page {
    /// Header rows above the box: the banners and the step line.
    pub fn header_rows(&self) -> u16 {
        1 + u16::from(self.rehearsal)
            + u16::from(self.virtual_hardware)
            + u16::from(ceremony::dual::FAULT_INJECTION.is_some())
    }
}

/// `text` cut to `width` columns with a visible `...` when longer (a 64-character ceremony id
/// does not fit the header beside the step: cut, it says so, and pages that matter show it in
/// full).
fn fit(text: String, width: usize) -> String {
    if text.chars().count() <= width || width < 4 {
        return text;
    }
    let mut cut: String = text.chars().take(width - 3).collect();
    cut.push_str("...");
    cut
}

pub fn render(frame: &mut Frame, page: &Page) {
    let rows = page.header_rows();
    let [header, main, footer] = Layout::vertical([
        Constraint::Length(rows),
        Constraint::Min(3),
        Constraint::Length(1),
    ])
    .areas(frame.area());
    let rev = Style::default().add_modifier(Modifier::REVERSED);
    let mut head = Vec::new();
    // A fault-injection test build says so on every page (never a real build: the constant is
    // `None` there).
    if let Some(fault) = ceremony::dual::FAULT_INJECTION {
        head.push(Line::styled(
            fit(format!(" {fault}"), usize::from(header.width)),
            rev.add_modifier(Modifier::BOLD),
        ));
    }
    if page.rehearsal {
        head.push(Line::styled(
            format!(" {REHEARSAL_BANNER}"),
            rev.add_modifier(Modifier::BOLD),
        ));
    }
    if page.virtual_hardware {
        head.push(Line::styled(
            format!(" {VIRTUAL_BANNER}"),
            rev.add_modifier(Modifier::BOLD),
        ));
    }
    let mut h = format!(" sherd  {}", page.step.header());
    if let Some(id) = &page.ceremony_id {
        h.push_str(&format!("   ceremony {id}"));
    }
    head.push(Line::styled(fit(h, usize::from(header.width)), rev));
    frame.render_widget(Paragraph::new(head).style(rev), header);

    let lines: Vec<Line> = page
        .lines
        .iter()
        .map(|l| match l.tone {
            Tone::Plain => Line::raw(l.text.clone()),
            Tone::Bold => Line::styled(
                l.text.clone(),
                Style::default().add_modifier(Modifier::BOLD),
            ),
            Tone::Alert => Line::from(Span::styled(
                l.text.clone(),
                rev.add_modifier(Modifier::BOLD),
            )),
        })
        .collect();
    let block = Block::default()
        .borders(Borders::ALL)
        .title(Line::from(format!(" {} ", page.title)).right_aligned());
    frame.render_widget(
        Paragraph::new(lines)
            .block(block)
            .wrap(Wrap { trim: false }),
        main,
    );
    let keys: Vec<(&str, &str)> = page
        .keys
        .iter()
        .map(|(k, w)| (k.as_str(), w.as_str()))
        .collect();
    render_footer(frame, footer, &keys);
}

#[cfg(test)]
mod fit_tests {
    use super::fit;

    #[test]
    fn a_long_header_is_cut_visibly() {
        assert_eq!(fit("abc".into(), 80), "abc");
        assert_eq!(fit("abcdefghij".into(), 8), "abcde...");
        assert_eq!(fit("abcdefgh".into(), 8), "abcdefgh");
    }
}
