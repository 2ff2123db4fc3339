//! The progress journal: one line per irreversible act (a card reset and provisioned, a file
//! written to a stick), appended and fsync'd by the UI as it goes, read by PID 1 when the UI
//! dies so the fatal screen says what was really done. Public facts only (card serials, holder
//! names, stick labels, file paths). The format is in `docs/ceremony.md`.
#![forbid(unsafe_code)]

use std::fs::OpenOptions;
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};

/// Where the image keeps it: on the `/run` tmpfs PID 1 mounts, gone at power-off.
pub const PATH: &str = "/run/sherd-progress";
/// The first line of every journal.
pub const HEADER: &str = "sherd progress 1";
/// Who a card is for in the card self-test.
pub const SELF_TEST: &str = "the card self-test (a throwaway key)";
/// A journal is a few dozen short lines; anything larger is not one.
pub const MAX_BYTES: u64 = 256 * 1024;

/// One act, or the start of one. A card's `holder` is the holder's name from the plan, or
/// [`SELF_TEST`] for the card self-test's throwaway key.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Entry {
    /// Written right before a card is reset: if no `CardDone` follows, it may be partly
    /// provisioned.
    CardStart { serial: String, holder: String },
    /// The card holds its location key and PINs.
    CardDone { serial: String, holder: String },
    /// Written before the first change to a stick (a folder, a temporary file).
    StickStart { volume: String },
    /// A file is complete under its final name on a stick.
    File { volume: String, path: String },
}

impl Entry {
    fn kind(&self) -> &'static str {
        match self {
            Entry::CardStart { .. } => "card-start",
            Entry::CardDone { .. } => "card-done",
            Entry::StickStart { .. } => "stick-start",
            Entry::File { .. } => "file",
        }
    }

    fn fields(&self) -> Vec<&str> {
        match self {
            Entry::CardStart { serial, holder } | Entry::CardDone { serial, holder } => {
                vec![serial, holder]
            }
            Entry::StickStart { volume } => vec![volume],
            Entry::File { volume, path } => vec![volume, path],
        }
    }

    /// The line, `\n` included. Tabs and control characters in a value become `?` (they are
    /// the separators, and PID 1 prints these values on the console); an empty value is `?`.
    pub fn line(&self) -> String {
        let mut s = self.kind().to_owned();
        for f in self.fields() {
            s.push('\t');
            if f.is_empty() {
                s.push('?');
            }
            s.extend(f.chars().map(|c| if c.is_control() { '?' } else { c }));
        }
        s.push('\n');
        s
    }

    fn parse(line: &str) -> Result<Entry, String> {
        if line.chars().any(|c| c.is_control() && c != '\t') {
            return Err("a control character".into());
        }
        let mut parts = line.split('\t');
        let kind = parts.next().unwrap_or_default();
        let fields: Vec<String> = parts.map(str::to_owned).collect();
        if fields.iter().any(String::is_empty) {
            return Err("an empty field".into());
        }
        let want = match kind {
            "card-start" | "card-done" | "file" => 2,
            "stick-start" => 1,
            _ => return Err(format!("unknown kind {kind:?}")),
        };
        if fields.len() != want {
            return Err(format!("{kind} takes {want} fields, not {}", fields.len()));
        }
        let mut f = fields.into_iter();
        let mut next = || f.next().unwrap_or_default();
        Ok(match kind {
            "card-start" => Entry::CardStart {
                serial: next(),
                holder: next(),
            },
            "card-done" => Entry::CardDone {
                serial: next(),
                holder: next(),
            },
            "stick-start" => Entry::StickStart { volume: next() },
            _ => Entry::File {
                volume: next(),
                path: next(),
            },
        })
    }
}

/// Why the journal could not be written or read.
#[derive(Debug, thiserror::Error)]
pub enum JournalError {
    #[error("cannot write the progress journal {path}: {source}")]
    Write { path: String, source: io::Error },
    #[error("cannot read the progress journal {path}: {source}")]
    Read { path: String, source: io::Error },
    #[error("the progress journal is larger than {MAX_BYTES} bytes")]
    TooLarge,
    #[error("the progress journal is not UTF-8 text")]
    NotText,
    #[error("the progress journal does not start with {HEADER:?}")]
    BadHeader,
    #[error("line {line} of the progress journal is not an entry ({what})")]
    BadLine { line: usize, what: String },
}

/// The writer: each append opens the file, writes one whole line, fsyncs and closes, so a
/// handle can go anywhere (a card wrapper, a stick wrapper) and nothing is buffered.
#[derive(Clone, Debug)]
pub struct Journal {
    path: PathBuf,
}

impl Journal {
    pub fn new(path: impl Into<PathBuf>) -> Journal {
        Journal { path: path.into() }
    }

    /// Appends `entry` (after the header, when the file is new) and fsyncs it. Call it before
    /// the act for the `*Start` entries and refuse the act if it fails: the journal then never
    /// says less than what was done.
    pub fn append(&self, entry: &Entry) -> Result<(), JournalError> {
        let err = |source| JournalError::Write {
            path: self.path.display().to_string(),
            source,
        };
        let mut f = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.path)
            .map_err(err)?;
        let mut text = String::new();
        if f.metadata().map_err(err)?.len() == 0 {
            text.push_str(HEADER);
            text.push('\n');
        }
        text.push_str(&entry.line());
        // One write: a crash leaves at most the last line torn, which the reader drops.
        f.write_all(text.as_bytes()).map_err(err)?;
        f.sync_data().map_err(err)
    }
}

/// What the journal at `path` says; `Ok(vec![])` if there is none.
pub fn read(path: &Path) -> Result<Vec<Entry>, JournalError> {
    let err = |source| JournalError::Read {
        path: path.display().to_string(),
        source,
    };
    let f = match std::fs::File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(err(e)),
    };
    let mut bytes = Vec::new();
    f.take(MAX_BYTES + 1).read_to_end(&mut bytes).map_err(err)?;
    if bytes.len() as u64 > MAX_BYTES {
        return Err(JournalError::TooLarge);
    }
    parse(&bytes)
}

/// Parses a journal strictly, except for a last line without its `\n`: the writer died while
/// writing it, and the act it would announce had not begun (start lines come before acts) or
/// had ended (done lines come after), so dropping it keeps every other line's meaning.
pub fn parse(bytes: &[u8]) -> Result<Vec<Entry>, JournalError> {
    // Cut at the last newline first: a torn line may end inside a UTF-8 sequence.
    let whole = match bytes.iter().rposition(|&b| b == b'\n') {
        Some(i) => &bytes[..=i],
        None => return Ok(Vec::new()),
    };
    let text = std::str::from_utf8(whole).map_err(|_| JournalError::NotText)?;
    let mut lines = text.split_terminator('\n');
    if lines.next() != Some(HEADER) {
        return Err(JournalError::BadHeader);
    }
    lines
        .enumerate()
        .map(|(i, l)| Entry::parse(l).map_err(|what| JournalError::BadLine { line: i + 2, what }))
        .collect()
}

/// What happened to one card, in journal order.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CardOutcome {
    pub serial: String,
    pub holder: String,
    /// Provisioning finished (a later attempt may have finished what an earlier one began).
    pub done: bool,
}

/// What was written to one stick, in journal order.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StickOutcome {
    pub volume: String,
    pub files: Vec<String>,
}

/// The journal folded per card and per stick.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Summary {
    pub cards: Vec<CardOutcome>,
    pub sticks: Vec<StickOutcome>,
}

impl Summary {
    pub fn of(entries: &[Entry]) -> Summary {
        let mut s = Summary::default();
        for e in entries {
            match e {
                Entry::CardStart { serial, holder } | Entry::CardDone { serial, holder } => {
                    let done = matches!(e, Entry::CardDone { .. });
                    match s.cards.iter_mut().find(|c| c.serial == *serial) {
                        // A new start after a done (reset again) leaves it provisioned or
                        // partly so: the start says it may be partial.
                        Some(c) => {
                            c.done = done;
                            c.holder = holder.clone();
                        }
                        None => s.cards.push(CardOutcome {
                            serial: serial.clone(),
                            holder: holder.clone(),
                            done,
                        }),
                    }
                }
                Entry::StickStart { volume } | Entry::File { volume, .. } => {
                    let i = match s.sticks.iter().position(|t| t.volume == *volume) {
                        Some(i) => i,
                        None => {
                            s.sticks.push(StickOutcome {
                                volume: volume.clone(),
                                files: Vec::new(),
                            });
                            s.sticks.len() - 1
                        }
                    };
                    if let Entry::File { path, .. } = e
                        && !s.sticks[i].files.contains(path)
                    {
                        s.sticks[i].files.push(path.clone());
                    }
                }
            }
        }
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A fresh directory for one test (init has no test-only dependencies).
    fn tempdir(name: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("sherd-journal-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).unwrap();
        d
    }

    fn card(done: bool, serial: &str, holder: &str) -> Entry {
        let (serial, holder) = (serial.to_owned(), holder.to_owned());
        if done {
            Entry::CardDone { serial, holder }
        } else {
            Entry::CardStart { serial, holder }
        }
    }

    fn file(volume: &str, path: &str) -> Entry {
        Entry::File {
            volume: volume.into(),
            path: path.into(),
        }
    }

    #[test]
    fn appended_entries_read_back_with_one_header() {
        let dir = tempdir("append");
        let path = dir.join("j");
        assert_eq!(read(&path).unwrap(), [], "no journal: nothing done");
        let j = Journal::new(&path);
        let entries = [
            card(false, "0005:0000A1B2", "Alice Ångström"),
            card(true, "0005:0000A1B2", "Alice Ångström"),
            Entry::StickStart {
                volume: "data stick sdc1 (SanDisk Ultra, 32.0 GB)".into(),
            },
            file(
                "data stick sdc1 (SanDisk Ultra, 32.0 GB)",
                "sherd-c1/root.asc",
            ),
        ];
        for e in &entries {
            j.append(e).unwrap();
        }
        assert_eq!(read(&path).unwrap(), entries);
        let text = std::fs::read_to_string(&path).unwrap();
        assert_eq!(text.matches(HEADER).count(), 1);
        assert!(text.starts_with("sherd progress 1\ncard-start\t0005:0000A1B2\tAlice"));
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn values_cannot_break_the_line_or_the_console() {
        let e = card(false, "", "Eve\t\n\x1b[2J");
        assert_eq!(e.line(), "card-start\t?\tEve???[2J\n");
        let back = parse(format!("{HEADER}\n{}", e.line()).as_bytes()).unwrap();
        assert_eq!(back, [card(false, "?", "Eve???[2J")]);
    }

    #[test]
    fn a_torn_last_line_is_dropped() {
        let full = format!("{HEADER}\n{}", file("v", "a").line());
        for cut in 0..full.len() {
            let got = parse(&full.as_bytes()[..cut]).unwrap();
            assert_eq!(got, [], "cut at {cut}");
        }
        assert_eq!(parse(full.as_bytes()).unwrap(), [file("v", "a")]);
        // Torn inside a multi-byte character.
        let mut b = format!("{HEADER}\n{}", file("v", "a").line()).into_bytes();
        b.extend_from_slice("file\tv\tå".as_bytes());
        b.pop();
        assert_eq!(parse(&b).unwrap(), [file("v", "a")]);
    }

    #[test]
    fn anything_else_is_refused() {
        let bad = |body: &str| parse(format!("{HEADER}\n{body}").as_bytes()).unwrap_err();
        assert!(matches!(
            parse(b"sherd progress 2\n").unwrap_err(),
            JournalError::BadHeader
        ));
        assert!(matches!(
            parse(b"card-done\ta\tb\n").unwrap_err(),
            JournalError::BadHeader
        ));
        for body in [
            "card-gone\ta\tb\n",
            "card-done\ta\n",
            "card-done\ta\tb\tc\n",
            "file\t\tb\n",
            "stick-start\n",
            "stick-start\tv\x1b\n",
            "stick-start\tv\r\n",
            "\n",
        ] {
            match bad(body) {
                JournalError::BadLine { line: 2, .. } => {}
                e => panic!("{body:?}: {e}"),
            }
        }
        assert!(matches!(
            parse(format!("{HEADER}\n\u{fffd}").as_bytes()),
            Ok(v) if v.is_empty()
        ));
        assert!(matches!(
            parse(b"sherd progress 1\nfile\tv\t\xff\n").unwrap_err(),
            JournalError::NotText
        ));
    }

    #[test]
    fn too_large_is_refused_unread() {
        let dir = tempdir("large");
        let path = dir.join("j");
        std::fs::write(&path, vec![b'x'; MAX_BYTES as usize + 1]).unwrap();
        assert!(matches!(read(&path).unwrap_err(), JournalError::TooLarge));
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn summary_per_card_and_stick() {
        let s = Summary::of(&[
            card(false, "A", "Alice"),
            card(true, "A", "Alice"),
            card(false, "B", "Bob"),
            // Bob's card failed; retried on the same card, it finished.
            card(false, "B", "Bob"),
            card(true, "B", "Bob"),
            card(false, "C", "Carol"),
            Entry::StickStart {
                volume: "s1".into(),
            },
            file("s1", "d/a"),
            Entry::StickStart {
                volume: "s2".into(),
            },
            file("s1", "d/b"),
        ]);
        let c = |serial: &str, holder: &str, done| CardOutcome {
            serial: serial.into(),
            holder: holder.into(),
            done,
        };
        assert_eq!(
            s.cards,
            [
                c("A", "Alice", true),
                c("B", "Bob", true),
                c("C", "Carol", false)
            ]
        );
        assert_eq!(
            s.sticks,
            [
                StickOutcome {
                    volume: "s1".into(),
                    files: vec!["d/a".into(), "d/b".into()],
                },
                StickOutcome {
                    volume: "s2".into(),
                    files: vec![],
                }
            ]
        );
        assert_eq!(Summary::of(&[]), Summary::default());
    }
}
