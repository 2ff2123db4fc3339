//! A screen of plain lines under a title, for hardware self-tests and other short flows whose
//! text is built as it goes. The lines are public values only.

use crate::boot::render_footer;
use ratatui::Frame;
use ratatui::layout::{Constraint, Layout};
use ratatui::style::{Modifier, Style};
use ratatui::text::Line;
use ratatui::widgets::{Block, Borders, Paragraph, Wrap};

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct NoticeView {
    /// Shown in the frame's top right, e.g. `card self-test`.
    pub title: String,
    /// Shown first, in bold: what this screen is and is not.
    pub banner: String,
    pub lines: Vec<String>,
}

pub fn render(frame: &mut Frame, v: &NoticeView, keys: &[(&str, &str)]) {
    let [main, footer] =
        Layout::vertical([Constraint::Min(3), Constraint::Length(1)]).areas(frame.area());
    let mut lines = vec![Line::styled(
        v.banner.clone(),
        Style::default().add_modifier(Modifier::BOLD),
    )];
    lines.extend(v.lines.iter().map(|l| Line::raw(l.clone())));
    let block = Block::default()
        .borders(Borders::ALL)
        .title(" sherd ")
        .title(Line::from(format!(" {} ", v.title)).right_aligned());
    frame.render_widget(
        Paragraph::new(lines)
            .block(block)
            .wrap(Wrap { trim: false }),
        main,
    );
    render_footer(frame, footer, keys);
}

#[cfg(test)]
mod tests {
    use super::*;
    use ratatui::Terminal;
    use ratatui::backend::TestBackend;

    #[test]
    fn notice_80x25() {
        let v = NoticeView {
            title: "card self-test".into(),
            banner: "HARDWARE SELF-TEST, not a ceremony".into(),
            lines: vec!["Reader 1-1:1.0 found".into(), "Insert a blank card".into()],
        };
        let mut t = Terminal::new(TestBackend::new(80, 25)).unwrap();
        t.draw(|f| render(f, &v, &[("P", "power off")])).unwrap();
        insta::assert_snapshot!(t.backend());
    }
}
