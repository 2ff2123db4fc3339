//! The first screen: what is running, and what it was built from.
//!
//! Witnesses compare the root filesystem tree hash on this screen with the one in the release
//! manifest that several build parties signed.

use crate::keys::Key;
use crate::time;
use ratatui::Frame;
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::style::{Modifier, Style};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Borders, Paragraph};

/// What the build embedded in the binary. Every field is public information.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BuildInfo {
    pub version: String,
    /// Git commit of the source, `-dirty` appended when the tree had changes; `None` when the
    /// binary was not built by the image tool.
    pub commit: Option<String>,
    pub source_date_epoch: Option<i64>,
    /// `(tool, version line)` pairs in the order the build recorded them.
    pub toolchain: Vec<(String, String)>,
}

impl BuildInfo {
    /// Parses the `tool=version;tool=version` form the image tool passes at build time.
    pub fn parse_toolchain(s: &str) -> Vec<(String, String)> {
        s.split(';')
            .filter_map(|kv| kv.split_once('='))
            .map(|(k, v)| (k.trim().to_owned(), v.trim().to_owned()))
            .filter(|(k, _)| !k.is_empty())
            .collect()
    }
}

/// Everything the boot screen shows.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BootInfo {
    pub build: BuildInfo,
    pub kernel_release: String,
    /// Hex SHA-256 of the rootfs listing, computed by PID 1 before it mounted anything.
    pub rootfs_tree: Option<String>,
    /// e.g. `serial (/dev/ttyS0)`.
    pub console: String,
}

/// What the operator asked for on this screen.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Action {
    /// Begin the generation ceremony (its first step is the boot attestation).
    Ceremony,
    /// Begin a recovery ceremony: use a generated key (its first step is the boot
    /// attestation too).
    Recovery,
    PowerOff,
    CheckEntropy,
    CheckCards,
    /// Show this machine's PCRs and attestation key name, to record in a plan beforehand.
    MachineValues,
}

/// Maps a key to an action; every other key is ignored.
pub fn on_key(key: Key) -> Option<Action> {
    match key {
        Key::Char('p' | 'P') => Some(Action::PowerOff),
        Key::Char('g' | 'G') => Some(Action::Ceremony),
        Key::Char('r' | 'R') => Some(Action::Recovery),
        Key::Char('e' | 'E') => Some(Action::CheckEntropy),
        Key::Char('c' | 'C') => Some(Action::CheckCards),
        Key::Char('m' | 'M') => Some(Action::MachineValues),
        _ => None,
    }
}

/// Splits a hex string into groups of 8 so witnesses can read it aloud in chunks.
pub fn grouped_hex(hex: &str) -> String {
    hex.as_bytes()
        .chunks(8)
        .map(|c| std::str::from_utf8(c).unwrap_or("?"))
        .collect::<Vec<_>>()
        .join(" ")
}

fn field<'a>(label: &'a str, value: String) -> Line<'a> {
    Line::from(vec![Span::raw(format!("  {label:<14}")), Span::raw(value)])
}

fn heading(text: &str) -> Line<'_> {
    Line::from(Span::styled(
        text,
        Style::default().add_modifier(Modifier::BOLD),
    ))
}

pub fn render(frame: &mut Frame, info: &BootInfo) {
    // Two footer rows: six keys do not fit one 80-column row. The row with P stays last (the
    // end-to-end tests wait for it as the sign that the screen is drawn).
    let [main, more, footer] = Layout::vertical([
        Constraint::Min(3),
        Constraint::Length(1),
        Constraint::Length(1),
    ])
    .areas(frame.area());

    let b = &info.build;
    let mut lines = Vec::new();
    // A fault-injection test build says so first (the constant is `None` in every real build).
    if let Some(fault) = ceremony::dual::FAULT_INJECTION {
        lines.push(heading(fault));
    }
    lines.extend([
        heading("This machine is running"),
        field("kernel", info.kernel_release.clone()),
        field("console", info.console.clone()),
        Line::raw(""),
        heading("Root filesystem tree (SHA-256): compare with the signed manifest"),
    ]);
    lines.push(match &info.rootfs_tree {
        Some(h) => Line::raw(format!("  {}", grouped_hex(h))),
        None => Line::raw("  UNKNOWN: not computed at boot (not started by sherd's PID 1)"),
    });
    lines.push(Line::raw(""));
    lines.push(heading("Built from"));
    lines.push(field(
        "commit",
        b.commit
            .clone()
            .unwrap_or_else(|| "unknown (not built by sherd-image)".into()),
    ));
    lines.push(field(
        "source date",
        match b.source_date_epoch {
            Some(t) => format!("{t} ({})", time::utc(t)),
            None => "unknown".into(),
        },
    ));
    for (tool, version) in &b.toolchain {
        lines.push(field(tool, version.clone()));
    }

    let block = Block::default()
        .borders(Borders::ALL)
        .title(format!(" sherd {} ", b.version))
        .title(Line::from(" boot ").right_aligned());
    frame.render_widget(Paragraph::new(lines).block(block), main);
    render_footer(
        frame,
        more,
        &[
            ("R", "recovery: use the key"),
            ("M", "this machine's values (for a plan)"),
        ],
    );
    render_footer(
        frame,
        footer,
        &[
            ("G", "begin the ceremony"),
            ("E", "test entropy"),
            ("C", "check cards"),
            ("P", "power off"),
        ],
    );
}

/// The footer line: the keys that act on this screen, each key in reverse video so it stands
/// out without colour, followed by what it does. Must fit 80 columns.
pub fn render_footer(frame: &mut Frame, area: Rect, keys: &[(&str, &str)]) {
    let mut spans = vec![Span::raw(" ")];
    for (i, (key, what)) in keys.iter().enumerate() {
        if i > 0 {
            spans.push(Span::raw("   "));
        }
        spans.push(Span::styled(
            format!(" {key} "),
            Style::default().add_modifier(Modifier::REVERSED),
        ));
        spans.push(Span::raw(format!(" {what}")));
    }
    frame.render_widget(Paragraph::new(Line::from(spans)), area);
}

#[cfg(test)]
mod tests {
    use super::*;
    use ratatui::Terminal;
    use ratatui::backend::TestBackend;

    fn sample() -> BootInfo {
        BootInfo {
            build: BuildInfo {
                version: "0.1.0".into(),
                commit: Some("0123456789abcdef0123456789abcdef01234567".into()),
                source_date_epoch: Some(1_700_000_000),
                toolchain: BuildInfo::parse_toolchain(
                    "rustc=rustc 1.95.0 (59807616e 2026-04-14);cargo=cargo 1.95.0;\
                     gcc=gcc (Debian 12.2.0-14+deb12u1) 12.2.0;xorriso=xorriso 1.5.4",
                ),
            },
            kernel_release: "6.12.57-sherd".into(),
            rootfs_tree: Some(
                "3f2a9b1c0a1b2c3d3f2a9b1c0a1b2c3d3f2a9b1c0a1b2c3d3f2a9b1c0a1b2c3d".into(),
            ),
            console: "serial (/dev/ttyS0)".into(),
        }
    }

    fn draw(info: &BootInfo, w: u16, h: u16) -> TestBackend {
        let mut t = Terminal::new(TestBackend::new(w, h)).unwrap();
        t.draw(|f| render(f, info)).unwrap();
        t.backend().clone()
    }

    #[test]
    fn boot_screen_80x25() {
        insta::assert_snapshot!(draw(&sample(), 80, 25));
    }

    #[test]
    fn boot_screen_unknown_build_80x24() {
        let mut i = sample();
        i.build.commit = None;
        i.build.source_date_epoch = None;
        i.build.toolchain.clear();
        i.rootfs_tree = None;
        insta::assert_snapshot!(draw(&i, 80, 24));
    }

    #[test]
    fn footer_fits_80_columns() {
        let b = draw(&sample(), 80, 24);
        let last: String = (0..80)
            .map(|x| b.buffer()[(x, 23)].symbol().to_owned())
            .collect();
        assert!(last.trim_end().ends_with("P  power off"), "{last:?}");
        let above: String = (0..80)
            .map(|x| b.buffer()[(x, 22)].symbol().to_owned())
            .collect();
        assert!(
            above
                .trim_end()
                .ends_with("this machine's values (for a plan)"),
            "{above:?}"
        );
    }

    #[test]
    fn p_powers_off_and_other_keys_do_nothing() {
        assert_eq!(on_key(Key::Char('p')), Some(Action::PowerOff));
        assert_eq!(on_key(Key::Char('P')), Some(Action::PowerOff));
        assert_eq!(on_key(Key::Char('e')), Some(Action::CheckEntropy));
        assert_eq!(on_key(Key::Char('C')), Some(Action::CheckCards));
        assert_eq!(on_key(Key::Char('g')), Some(Action::Ceremony));
        assert_eq!(on_key(Key::Char('R')), Some(Action::Recovery));
        assert_eq!(on_key(Key::Char('m')), Some(Action::MachineValues));
        assert_eq!(on_key(Key::Char('M')), Some(Action::MachineValues));
        assert_eq!(on_key(Key::Char('q')), None);
        assert_eq!(on_key(Key::Enter), None);
        assert_eq!(on_key(Key::Ctrl('p')), None);
    }

    #[test]
    fn toolchain_parsing_keeps_order_and_drops_junk() {
        assert_eq!(
            BuildInfo::parse_toolchain("a=1 2; b = x=y ;;=z;c"),
            vec![("a".into(), "1 2".into()), ("b".into(), "x=y".into())]
        );
    }

    #[test]
    fn hex_is_grouped_by_eight() {
        assert_eq!(grouped_hex("0123456789abcdef01"), "01234567 89abcdef 01");
    }
}
