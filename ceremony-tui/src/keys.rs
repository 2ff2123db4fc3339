//! Keys from the raw bytes a Linux console or a serial terminal sends.
//!
//! crossterm's event reader cannot run in the image: it wakes itself through a Unix socket pair,
//! and a kernel without a network stack has no Unix sockets. Decoding the few sequences an
//! operator's keyboard produces is small enough to do exactly, here, and to fuzz.

/// A key the screens can act on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Key {
    Char(char),
    /// Ctrl + a letter (`Ctrl('c')`), other than the ones below with names of their own.
    Ctrl(char),
    Enter,
    Esc,
    Backspace,
    Tab,
    Up,
    Down,
    Left,
    Right,
    Home,
    End,
    PageUp,
    PageDown,
    Insert,
    Delete,
    /// F1 to F12.
    F(u8),
}

const ESC: u8 = 0x1b;

/// Turns byte chunks into keys. Keeps an incomplete UTF-8 character or escape sequence between
/// chunks; an `ESC` that ends a chunk is the Escape key (terminals send a sequence in one write).
#[derive(Default)]
pub struct Decoder {
    pending: Vec<u8>,
}

/// How a decode attempt at the start of a buffer ended.
enum Step {
    Key(Option<Key>, usize),
    /// The buffer holds the beginning of something longer.
    Incomplete,
}

/// Longest escape sequence worth waiting for; anything longer is junk and dropped.
const MAX_SEQUENCE: usize = 32;

fn tilde_key(n: u32) -> Option<Key> {
    Some(match n {
        1 | 7 => Key::Home,
        2 => Key::Insert,
        3 => Key::Delete,
        4 | 8 => Key::End,
        5 => Key::PageUp,
        6 => Key::PageDown,
        11..=15 => Key::F((n - 10) as u8),
        17..=21 => Key::F((n - 11) as u8),
        23 | 24 => Key::F((n - 12) as u8),
        _ => return None,
    })
}

fn decode_escape(b: &[u8]) -> Step {
    debug_assert_eq!(b[0], ESC);
    let Some(&second) = b.get(1) else {
        return Step::Incomplete;
    };
    match second {
        b'[' => {
            // The Linux console's F1-F5: ESC [ [ A..E.
            if b.get(2) == Some(&b'[') {
                return match b.get(3) {
                    None => Step::Incomplete,
                    Some(c @ b'A'..=b'E') => Step::Key(Some(Key::F(c - b'A' + 1)), 4),
                    Some(_) => Step::Key(None, 4),
                };
            }
            // CSI: parameter bytes 0x30-0x3f, intermediates 0x20-0x2f, one final 0x40-0x7e.
            let mut i = 2;
            while let Some(&c) = b.get(i) {
                // Position-based, so the outcome does not depend on how reads split the input.
                if i >= MAX_SEQUENCE {
                    return Step::Key(None, MAX_SEQUENCE);
                }
                if (0x40..=0x7e).contains(&c) {
                    let params = std::str::from_utf8(&b[2..i]).unwrap_or("");
                    let first: Option<u32> = params.split(';').next().and_then(|p| p.parse().ok());
                    let key = match c {
                        b'A' => Some(Key::Up),
                        b'B' => Some(Key::Down),
                        b'C' => Some(Key::Right),
                        b'D' => Some(Key::Left),
                        b'H' => Some(Key::Home),
                        b'F' => Some(Key::End),
                        b'~' => first.and_then(tilde_key),
                        _ => None,
                    };
                    return Step::Key(key, i + 1);
                }
                if !(0x20..=0x3f).contains(&c) {
                    // Not a CSI after all: drop what we have, resynchronise at this byte.
                    return Step::Key(None, i);
                }
                i += 1;
            }
            Step::Incomplete
        }
        b'O' => match b.get(2) {
            None => Step::Incomplete,
            Some(&c) => Step::Key(
                match c {
                    b'A' => Some(Key::Up),
                    b'B' => Some(Key::Down),
                    b'C' => Some(Key::Right),
                    b'D' => Some(Key::Left),
                    b'H' => Some(Key::Home),
                    b'F' => Some(Key::End),
                    b'P'..=b'S' => Some(Key::F(c - b'P' + 1)),
                    _ => None,
                },
                3,
            ),
        },
        // ESC ESC, or Alt+key: report the Escape and let the next byte decode by itself.
        _ => Step::Key(Some(Key::Esc), 1),
    }
}

fn decode_one(b: &[u8]) -> Step {
    let c = b[0];
    match c {
        ESC => decode_escape(b),
        b'\r' | b'\n' => Step::Key(Some(Key::Enter), 1),
        b'\t' => Step::Key(Some(Key::Tab), 1),
        0x7f | 0x08 => Step::Key(Some(Key::Backspace), 1),
        0x01..=0x1a => Step::Key(Some(Key::Ctrl((b'a' + c - 1) as char)), 1),
        0x00..=0x1f => Step::Key(None, 1),
        0x20..=0x7e => Step::Key(Some(Key::Char(c as char)), 1),
        _ => {
            let len = match c {
                0xc2..=0xdf => 2,
                0xe0..=0xef => 3,
                0xf0..=0xf4 => 4,
                _ => return Step::Key(None, 1),
            };
            if b.len() < len {
                // Only wait if what we have so far is a valid prefix.
                return if b[1..].iter().all(|x| x & 0xc0 == 0x80) {
                    Step::Incomplete
                } else {
                    Step::Key(None, 1)
                };
            }
            match std::str::from_utf8(&b[..len]) {
                Ok(s) => Step::Key(s.chars().next().map(Key::Char), len),
                Err(_) => Step::Key(None, 1),
            }
        }
    }
}

impl Decoder {
    pub fn new() -> Self {
        Self::default()
    }

    /// Decodes one chunk as read from the terminal.
    pub fn feed(&mut self, chunk: &[u8]) -> Vec<Key> {
        self.pending.extend_from_slice(chunk);
        let mut keys = Vec::new();
        let mut pos = 0;
        while pos < self.pending.len() {
            match decode_one(&self.pending[pos..]) {
                Step::Key(k, used) => {
                    keys.extend(k);
                    pos += used;
                }
                Step::Incomplete => {
                    let rest = &self.pending[pos..];
                    // A lone ESC at the end of a chunk is the Escape key.
                    if rest == [ESC] {
                        keys.push(Key::Esc);
                        pos += 1;
                    }
                    break;
                }
            }
        }
        self.pending.drain(..pos);
        keys
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keys(chunks: &[&[u8]]) -> Vec<Key> {
        let mut d = Decoder::new();
        chunks.iter().flat_map(|c| d.feed(c)).collect()
    }

    #[test]
    fn plain_keys() {
        assert_eq!(
            keys(&[b"pP\r\n\t\x7f\x08\x03"]),
            vec![
                Key::Char('p'),
                Key::Char('P'),
                Key::Enter,
                Key::Enter,
                Key::Tab,
                Key::Backspace,
                Key::Backspace,
                Key::Ctrl('c')
            ]
        );
    }

    #[test]
    fn console_and_xterm_sequences() {
        assert_eq!(
            keys(&[b"\x1b[A\x1b[B\x1b[C\x1b[D\x1bOA\x1b[1~\x1b[4~\x1b[3~\x1b[5~\x1b[6~"]),
            vec![
                Key::Up,
                Key::Down,
                Key::Right,
                Key::Left,
                Key::Up,
                Key::Home,
                Key::End,
                Key::Delete,
                Key::PageUp,
                Key::PageDown
            ]
        );
        // Linux console F1..F5, xterm F1..F4 and F5..F12.
        assert_eq!(
            keys(&[b"\x1b[[A\x1b[[E\x1bOP\x1bOS\x1b[15~\x1b[24~\x1b[1;5A"]),
            vec![
                Key::F(1),
                Key::F(5),
                Key::F(1),
                Key::F(4),
                Key::F(5),
                Key::F(12),
                Key::Up
            ]
        );
    }

    #[test]
    fn sequences_split_across_reads_and_a_lone_escape() {
        assert_eq!(keys(&[b"\x1b[", b"A"]), vec![Key::Up]);
        assert_eq!(keys(&[b"\x1b", b"x"]), vec![Key::Esc, Key::Char('x')]);
        assert_eq!(keys(&[b"a\x1b"]), vec![Key::Char('a'), Key::Esc]);
        assert_eq!(keys(&[b"\x1b\x1b[A"]), vec![Key::Esc, Key::Up]);
    }

    #[test]
    fn utf8_whole_and_split_and_invalid() {
        assert_eq!(keys(&["é".as_bytes()]), vec![Key::Char('é')]);
        let e = "€".as_bytes();
        assert_eq!(keys(&[&e[..1], &e[1..]]), vec![Key::Char('€')]);
        assert_eq!(keys(&[b"\xff\xc3(a"]), vec![Key::Char('('), Key::Char('a')]);
    }

    #[test]
    fn junk_is_dropped_and_decoding_resynchronises() {
        assert_eq!(keys(&[b"\x1b[99~x"]), vec![Key::Char('x')]);
        assert_eq!(
            keys(&[b"\x1b[12\x01q"]),
            vec![Key::Ctrl('a'), Key::Char('q')]
        );
        // A sequence longer than any real key is dropped after MAX_SEQUENCE bytes, not buffered
        // forever; what follows decodes by itself, however the reads were split.
        let long = [&[0x1b, b'['][..], &[b'1'; 40][..]].concat();
        let mut d = Decoder::new();
        assert_eq!(d.feed(&long), vec![Key::Char('1'); 10]);
        assert!(d.pending.is_empty());
        assert_eq!(d.feed(b"q"), vec![Key::Char('q')]);
        let mut whole = long.clone();
        whole.push(b'A');
        assert_eq!(keys(&[&whole]), keys(&[&long[..20], &long[20..], b"A"]));
    }

    #[test]
    fn any_input_terminates_and_leaves_little_pending() {
        // A cheap exhaustive-ish check over short byte strings (the fuzz target goes further).
        let alphabet = [0x1b, b'[', b'O', b'1', b'~', b'A', 0xc3, 0xa9, b'a', 0x00];
        for a in alphabet {
            for b in alphabet {
                for c in alphabet {
                    let mut d = Decoder::new();
                    let _ = d.feed(&[a, b, c]);
                    assert!(d.pending.len() <= 3);
                }
            }
        }
    }
}
