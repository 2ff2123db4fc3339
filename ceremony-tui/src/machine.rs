//! The boot screen's "this machine's values": PCR 0-7 (SHA-256 bank) and the TPM name of the
//! attestation key, read on this boot, to record in a plan's `[machine]` table beforehand.
//!
//! The pages render plain public values (PCRs and a key's name are no secrets); reading them
//! and writing the table to a stick is the image's job (`init`).

use crate::aloud;
use crate::boot::{grouped_hex, render_footer};
use crate::keys::Key;
use ceremony::plan::{Machine, QUOTE_KEY_LEN};
use ratatui::Frame;
use ratatui::layout::{Constraint, Layout};
use ratatui::style::{Modifier, Style};
use ratatui::text::Line;
use ratatui::widgets::{Block, Borders, Paragraph, Wrap};

/// The folder and file W writes on a data stick.
pub const DIR: &str = "sherd-machine";
pub const FILE: &str = "machine.toml";

/// The `name` written: a placeholder the owner must replace with the laptop's label (a plan
/// accepts it, so a forgotten edit still parses; the name is only a label).
pub const PLACEHOLDER_NAME: &str = "name-this-laptop";

/// Why a PCR has no value.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum PcrProblem {
    #[error("{path} does not exist: the kernel shows no TPM 2.0 with a SHA-256 bank")]
    Missing { path: String },
    #[error("{path}: {error}")]
    Unreadable { path: String, error: String },
    #[error("{path} does not hold 64 hex digits")]
    NotAValue { path: String },
}

/// Why the attestation key's name is not known.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum KeyProblem {
    #[error("no TPM: {0}")]
    NoTpm(String),
    #[error("cannot open {device}: {error}")]
    Open { device: String, error: String },
    #[error("the TPM ({device}) refused to make the key: {error}")]
    Tpm { device: String, error: String },
}

/// Why W wrote nothing.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum WriteProblem {
    #[error("nothing to write: no value could be read on this machine")]
    NothingRead,
    #[error(
        "no data stick found: plug in a data stick (vfat, exfat or ext4, not the boot or plan \
         stick), wait a few seconds, then press W again"
    )]
    NoStick,
    #[error(
        "several boot images (.iso) on the sticks and no findiso= to tell which one booted: \
         pull every stick but the data stick and the boot stick, then press W again"
    )]
    SeveralBootImages,
    #[error(
        "{volume} already holds {DIR}/{FILE}: nothing was changed; use another stick, or move \
         that file away on another computer, then press W again"
    )]
    AlreadyThere { volume: String },
    #[error("{0}; check the stick (or use another) and press W again")]
    Stick(String),
}

/// What W did: the sticks written (their labels), each holding `DIR/FILE`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Written {
    pub volumes: Vec<String>,
}

/// Everything the pages show. Public values only.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MachineView {
    /// `pcrs[i]`: PCR i of the SHA-256 bank, as the boot attestation reads it, or why not.
    pub pcrs: [Result<[u8; 32], PcrProblem>; 8],
    /// Where the PCRs were read (shown, so an owner knows what was compared).
    pub pcr_source: String,
    /// The attestation key's TPM name (`000b` and SHA-256 of its public area), or why not.
    pub key_name: Result<[u8; QUOTE_KEY_LEN], KeyProblem>,
    /// The outcome of the last W, if W was pressed.
    pub written: Option<Result<Written, WriteProblem>>,
}

impl MachineView {
    /// The `[machine]` table of what was read, with the placeholder name, or `None` when
    /// nothing was read (a plan refuses a table without values).
    pub fn machine(&self) -> Option<Machine> {
        let m = Machine {
            name: PLACEHOLDER_NAME.into(),
            pcrs: std::array::from_fn(|i| self.pcrs[i].as_ref().ok().copied()),
            quote_key: self.key_name.as_ref().ok().copied(),
        };
        (m.pcrs.iter().any(Option::is_some) || m.quote_key.is_some()).then_some(m)
    }

    /// The file W writes: a comment saying what to do, then the table.
    pub fn file_text(&self) -> Option<String> {
        let m = self.machine()?;
        let missing: Vec<String> = (0..8)
            .filter(|&i| m.pcrs[i].is_none())
            .map(|i| format!("pcr{i}"))
            .chain(m.quote_key.is_none().then(|| "quote_key".into()))
            .collect();
        let mut s = String::from(
            "# This laptop's values, read by sherd's boot screen (\"this machine's values\").\n\
             # Replace the name with the laptop's label, check the values against the screen,\n\
             # then add this table to the ceremony's plan.\n",
        );
        if !missing.is_empty() {
            s.push_str(&format!(
                "# Not read on this machine: {}.\n",
                missing.join(", ")
            ));
        }
        s.push_str(&m.to_toml());
        Some(s)
    }
}

/// The pages: what the values are for with all of them at a glance, then each value as rows
/// to read aloud (hex and PGP words), two PCRs to a page, then the key's name.
pub const PAGES: usize = 6;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Action {
    Next,
    Previous,
    Write,
    Back,
}

pub fn on_key(key: Key) -> Option<Action> {
    match key {
        Key::Tab | Key::Right | Key::PageDown | Key::Down | Key::Char(' ') => Some(Action::Next),
        Key::Left | Key::PageUp | Key::Up => Some(Action::Previous),
        Key::Char('w' | 'W') => Some(Action::Write),
        Key::Esc | Key::Char('q' | 'Q' | 'b' | 'B') => Some(Action::Back),
        _ => None,
    }
}

fn bold(text: impl Into<String>) -> Line<'static> {
    Line::styled(text.into(), Style::default().add_modifier(Modifier::BOLD))
}

/// Reverse video: something the owner must act on (also said in words).
fn alert(text: impl Into<String>) -> Line<'static> {
    Line::styled(
        text.into(),
        Style::default().add_modifier(Modifier::REVERSED),
    )
}

fn first_page(v: &MachineView) -> Vec<Line<'static>> {
    let mut l = vec![
        Line::raw(
            "Record these values in the plan's [machine] table: the ceremony then judges each \
             PCR against them (PASS only when equal) and wants its quote made by this key.",
        ),
        Line::raw(
            "They are only as trustworthy as this boot: record them on a boot the owner trusts \
             (right after Heads was flashed and sealed, say), witnessed.",
        ),
        Line::raw(""),
        bold(format!("PCR 0-7, SHA-256 bank, from {}", v.pcr_source)),
    ];
    match &v.pcrs {
        // No TPM (or no SHA-256 bank): one line says so, not eight alike.
        [Err(e), rest @ ..] if rest.iter().all(Result::is_err) => {
            l.push(alert(format!("  PCR 0-7 NOT READ: {e}")));
        }
        _ => {
            for (i, p) in v.pcrs.iter().enumerate() {
                l.push(match p {
                    Ok(x) => Line::raw(format!("  PCR{i} {}", grouped_hex(&hexstr::encode(x)))),
                    Err(e) => alert(format!("  PCR{i} NOT READ: {e}")),
                });
            }
        }
    }
    l.push(bold(
        "Attestation key name (the key sherd's TPM quote is made with)",
    ));
    l.push(match &v.key_name {
        Ok(k) => Line::raw(format!("  {}", grouped_hex(&hexstr::encode(k)))),
        Err(e) => alert(format!("  NOT READ: {e}")),
    });
    match &v.written {
        None => l.push(Line::raw(format!(
            "Next pages: each value in hex and words, to read aloud. W writes the table to a \
             data stick as {DIR}/{FILE}."
        ))),
        Some(Ok(w)) => {
            l.push(bold(format!(
                "WRITTEN: {DIR}/{FILE} on {}.",
                w.volumes.join(", ")
            )));
            l.push(Line::raw(format!(
                "Edit name = \"{PLACEHOLDER_NAME}\" to the laptop's label, then add it to the plan."
            )));
        }
        Some(Err(e)) => l.push(alert(format!("NOT WRITTEN: {e}"))),
    }
    l
}

fn value_lines(l: &mut Vec<Line<'static>>, label: String, bytes: &[u8]) {
    l.push(bold(label));
    for row in aloud::rows_of_hex(&hexstr::encode(bytes)) {
        l.push(Line::raw(format!("  {row}")));
    }
}

fn pcr_page(v: &MachineView, first: usize) -> Vec<Line<'static>> {
    let mut l = Vec::new();
    for i in first..first + 2 {
        match &v.pcrs[i] {
            Ok(x) => value_lines(&mut l, format!("PCR{i} (SHA-256 bank)"), x),
            Err(e) => l.push(alert(format!("PCR{i} NOT READ: {e}"))),
        }
        l.push(Line::raw(""));
    }
    l
}

fn key_page(v: &MachineView) -> Vec<Line<'static>> {
    let mut l = Vec::new();
    match &v.key_name {
        Ok(k) => value_lines(
            &mut l,
            "Attestation key name (quote_key): 000b, then the SHA-256 of its public area".into(),
            k,
        ),
        Err(e) => l.push(alert(format!("Attestation key name NOT READ: {e}"))),
    }
    l.push(Line::raw(""));
    l.push(Line::raw(
        "The same TPM makes the same key every time (a primary key of its endorsement \
         hierarchy), until its endorsement seed is changed.",
    ));
    l
}

/// Draws page `page` (0-based, below [`PAGES`]).
pub fn render(frame: &mut Frame, v: &MachineView, page: usize) {
    let page = page.min(PAGES - 1);
    let [main, footer] =
        Layout::vertical([Constraint::Min(3), Constraint::Length(1)]).areas(frame.area());
    let (what, lines) = match page {
        0 => ("what they are for".to_owned(), first_page(v)),
        1..=4 => {
            let first = 2 * (page - 1);
            (format!("PCR {first} and {}", first + 1), pcr_page(v, first))
        }
        _ => ("the attestation key".to_owned(), key_page(v)),
    };
    let block = Block::default()
        .borders(Borders::ALL)
        .title(" sherd ")
        .title(
            Line::from(format!(
                " this machine's values: {what} [page {} of {PAGES}] ",
                page + 1
            ))
            .right_aligned(),
        );
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
            ("Tab", "next page"),
            ("W", "write to a data stick"),
            ("Esc", "back"),
        ],
    );
}

#[cfg(test)]
mod tests {
    use super::*;
    use ratatui::Terminal;
    use ratatui::backend::TestBackend;

    fn sample() -> MachineView {
        MachineView {
            pcrs: std::array::from_fn(|i| {
                Ok(std::array::from_fn(|j| {
                    (i as u8)
                        .wrapping_mul(37)
                        .wrapping_add((j as u8).wrapping_mul(11))
                }))
            }),
            pcr_source: "/sys/class/tpm/tpm0/pcr-sha256".into(),
            key_name: Ok(std::array::from_fn(|j| match j {
                0 => 0x00,
                1 => 0x0b,
                _ => (j as u8).wrapping_mul(29),
            })),
            written: None,
        }
    }

    fn no_tpm() -> MachineView {
        MachineView {
            pcrs: std::array::from_fn(|i| {
                Err(PcrProblem::Missing {
                    path: format!("/sys/class/tpm/tpm0/pcr-sha256/{i}"),
                })
            }),
            pcr_source: "/sys/class/tpm/tpm0/pcr-sha256".into(),
            key_name: Err(KeyProblem::NoTpm(
                "neither /dev/tpmrm0 nor /dev/tpm0 exists (no TPM 2.0, or its driver is not \
                 built in)"
                    .into(),
            )),
            written: Some(Err(WriteProblem::NothingRead)),
        }
    }

    fn draw(v: &MachineView, page: usize, w: u16, h: u16) -> TestBackend {
        let mut t = Terminal::new(TestBackend::new(w, h)).unwrap();
        t.draw(|f| render(f, v, page)).unwrap();
        t.backend().clone()
    }

    fn text(b: &TestBackend) -> Vec<String> {
        let a = b.buffer().area;
        (0..a.height)
            .map(|y| {
                (0..a.width)
                    .map(|x| b.buffer()[(x, y)].symbol().to_owned())
                    .collect()
            })
            .collect()
    }

    #[test]
    fn pages_80x25() {
        let v = sample();
        for page in 0..PAGES {
            insta::assert_snapshot!(format!("page_{}", page + 1), draw(&v, page, 80, 25));
        }
    }

    #[test]
    fn written_and_failed_80x25() {
        let mut v = sample();
        v.written = Some(Ok(Written {
            volumes: vec!["sdb1 (vfat DATA 1234-ABCD)".into()],
        }));
        insta::assert_snapshot!("written", draw(&v, 0, 80, 25));
        v.written = Some(Err(WriteProblem::NoStick));
        insta::assert_snapshot!("no_stick", draw(&v, 0, 80, 25));
    }

    #[test]
    fn no_tpm_80x25() {
        let v = no_tpm();
        insta::assert_snapshot!("no_tpm_page_1", draw(&v, 0, 80, 25));
        insta::assert_snapshot!("no_tpm_page_2", draw(&v, 1, 80, 25));
        insta::assert_snapshot!("no_tpm_page_6", draw(&v, 5, 80, 25));
    }

    /// The serial console has 24 rows: every page of a full reading fits it, nothing cut off
    /// (the last text row is inside the box, the box is closed above the footer).
    #[test]
    fn every_page_fits_80x24() {
        for mut v in [sample(), no_tpm()] {
            for written in [
                None,
                Some(Ok(Written {
                    volumes: vec!["sdb1 (vfat DATA 1234-ABCD)".into()],
                })),
                Some(Err(WriteProblem::SeveralBootImages)),
                Some(Err(WriteProblem::NoStick)),
                Some(Err(WriteProblem::AlreadyThere {
                    volume: "sdb1 (vfat DATA 1234-ABCD)".into(),
                })),
            ] {
                v.written = written;
                for page in 0..PAGES {
                    let rows = text(&draw(&v, page, 80, 24));
                    // The row above the bottom border is the last one text may use: it must be
                    // empty, so no line was cut.
                    assert!(
                        rows[21].trim_matches(|c| c == '│' || c == ' ').is_empty(),
                        "page {} overflows:\n{}",
                        page + 1,
                        rows.join("\n")
                    );
                    assert!(rows[22].starts_with('└'), "{}", rows.join("\n"));
                    let footer = rows[23].trim_end();
                    assert!(footer.ends_with("Esc  back"), "{footer:?}");
                }
            }
        }
    }

    #[test]
    fn every_value_is_shown_as_hex_and_words() {
        let v = sample();
        let all: String = (0..PAGES)
            .map(|p| text(&draw(&v, p, 80, 25)).join("\n"))
            .collect();
        for p in &v.pcrs {
            let p = p.as_ref().unwrap();
            for row in aloud::rows(p) {
                assert!(all.contains(&row), "{row}");
            }
            assert!(all.contains(&grouped_hex(&hexstr::encode(p))));
        }
        for row in aloud::rows(v.key_name.as_ref().unwrap()) {
            assert!(all.contains(&row), "{row}");
        }
    }

    #[test]
    fn the_table_holds_what_was_read() {
        let v = sample();
        let t = v.file_text().unwrap();
        assert!(t.contains(&format!("name = \"{PLACEHOLDER_NAME}\"")), "{t}");
        assert!(ceremony::plan::check_name("machine", PLACEHOLDER_NAME).is_ok());
        let pcr3 = hexstr::encode(v.pcrs[3].as_ref().unwrap());
        assert!(t.contains(&format!("pcr3 = \"{pcr3}\"\n")), "{t}");
        assert!(!t.contains("Not read"), "{t}");
        let mut part = v.clone();
        part.pcrs[5] = Err(PcrProblem::NotAValue { path: "x".into() });
        part.key_name = Err(KeyProblem::NoTpm("none".into()));
        let t = part.file_text().unwrap();
        assert!(
            t.contains("# Not read on this machine: pcr5, quote_key.\n"),
            "{t}"
        );
        assert!(!t.contains("pcr5 ="), "{t}");
        assert_eq!(no_tpm().file_text(), None);
    }

    #[test]
    fn keys() {
        assert_eq!(on_key(Key::Right), Some(Action::Next));
        assert_eq!(on_key(Key::PageDown), Some(Action::Next));
        assert_eq!(on_key(Key::PageUp), Some(Action::Previous));
        assert_eq!(on_key(Key::Left), Some(Action::Previous));
        assert_eq!(on_key(Key::Char('W')), Some(Action::Write));
        assert_eq!(on_key(Key::Esc), Some(Action::Back));
        assert_eq!(on_key(Key::Char('q')), Some(Action::Back));
        assert_eq!(on_key(Key::Enter), None);
    }
}
