//! Hashes and fingerprints laid out to be read aloud.
//!
//! One row per 4-byte group: the group's number, its 8 hex digits, then its four PGP words, in
//! columns as wide as the longest word each column can hold (9 letters for the even table, 11
//! for the odd one). A reader keeps their place by the group number, a listener can follow in
//! hex or in words, and no word is ever split from its hex group or wrapped to another line:
//! the widest possible row is [`MAX_ROW_WIDTH`] columns, well inside an 80-column box.

use ceremony::words::{EVEN, ODD};

/// Bytes per row: one hex group of 8 digits, four words.
pub const GROUP: usize = 4;

/// The longest word in the even and odd tables (checked by a test against the tables).
const EVEN_WIDTH: usize = 9;
const ODD_WIDTH: usize = 11;

/// The widest row [`rows`] can produce, whatever the bytes: `nn  xxxxxxxx  ` then the words.
pub const MAX_ROW_WIDTH: usize = 2 + 2 + 2 * GROUP + 2 + 2 * EVEN_WIDTH + 2 * ODD_WIDTH + 3;

// Inside a bordered 80-column box, after the page's 2-space indent.
const _: () = assert!(MAX_ROW_WIDTH <= 80 - 2 - 2);

/// `bytes` as rows to read aloud (see the module's documentation). Rows carry no leading
/// indentation and no trailing spaces.
pub fn rows(bytes: &[u8]) -> Vec<String> {
    rows_cased(bytes, false)
}

/// As [`rows`], the hex in upper case when `upper` (OpenPGP fingerprints are shown so).
fn rows_cased(bytes: &[u8], upper: bool) -> Vec<String> {
    bytes
        .chunks(GROUP)
        .enumerate()
        .map(|(g, chunk)| {
            let hex = if upper {
                ceremony::hex::encode_upper(chunk)
            } else {
                ceremony::hex::encode(chunk)
            };
            let mut row = format!("{:>2}  {hex:<8}  ", g + 1);
            for (i, b) in chunk.iter().enumerate() {
                // Positions are counted from the start of the value, so parity is the byte's.
                let (word, width) = if (g * GROUP + i).is_multiple_of(2) {
                    (EVEN[usize::from(*b)], EVEN_WIDTH)
                } else {
                    (ODD[usize::from(*b)], ODD_WIDTH)
                };
                row.push_str(&format!("{word:<width$} "));
            }
            row.truncate(row.trim_end().len());
            row
        })
        .collect()
}

/// A hex string as [`rows`], in the case it came in (hashes lower, fingerprints upper); hex
/// that does not parse is shown as it came (it came from outside, so it is shown, not
/// hidden), in one row.
pub fn rows_of_hex(hex: &str) -> Vec<String> {
    let lower = ceremony::hex::decode(hex).map(|b| (b, false));
    match lower.or_else(|| ceremony::hex::decode_upper(hex).map(|b| (b, true))) {
        Some((b, upper)) if !b.is_empty() => rows_cased(&b, upper),
        _ => vec![format!("(not hex: {hex})")],
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ceremony::words::to_words;

    /// The inside of a bordered box on an 80-column console, less the page's 2-space indent.
    const ROOM: usize = 80 - 2 - 2;

    #[test]
    fn column_widths_are_the_tables_longest_words() {
        let longest = |t: &[&str; 256]| t.iter().map(|w| w.chars().count()).max().unwrap();
        assert_eq!(longest(&EVEN), EVEN_WIDTH);
        assert_eq!(longest(&ODD), ODD_WIDTH);
    }

    /// Each row: its number, the group's hex, and exactly that group's words, in order.
    fn check(bytes: &[u8]) {
        let r = rows(bytes);
        assert_eq!(r.len(), bytes.len().div_ceil(GROUP));
        let words = to_words(bytes);
        for (g, row) in r.iter().enumerate() {
            assert!(row.chars().count() <= MAX_ROW_WIDTH, "{row:?}");
            assert!(row.chars().count() <= ROOM, "{row:?}");
            let fields: Vec<&str> = row.split_whitespace().collect();
            assert_eq!(fields[0], (g + 1).to_string());
            let chunk = &bytes[g * GROUP..((g + 1) * GROUP).min(bytes.len())];
            let hex = ceremony::hex::encode(chunk);
            assert_eq!(fields[1], hex);
            assert_eq!(&fields[2..], &words[g * GROUP..g * GROUP + chunk.len()]);
        }
        // Aligned: the hex and each word column start at the same place on every full row.
        let starts = |row: &str| -> Vec<usize> {
            let mut s = Vec::new();
            let mut prev = ' ';
            for (i, c) in row.chars().enumerate() {
                if c != ' ' && prev == ' ' {
                    s.push(i);
                }
                prev = c;
            }
            s
        };
        let full: Vec<Vec<usize>> = r
            .iter()
            .filter(|row| row.split_whitespace().count() == 2 + GROUP)
            .map(|row| starts(row)[1..].to_vec())
            .collect();
        assert!(full.windows(2).all(|w| w[0] == w[1]), "{r:#?}");
    }

    #[test]
    fn twenty_and_thirty_two_byte_values_at_80_columns() {
        let sha256: Vec<u8> = (0u8..32)
            .map(|i| i.wrapping_mul(37).wrapping_add(11))
            .collect();
        let fingerprint: Vec<u8> = (0u8..20).map(|i| 0xff - i * 7).collect();
        check(&sha256);
        check(&fingerprint);
        assert_eq!(rows(&sha256).len(), 8);
        assert_eq!(rows(&fingerprint).len(), 5);
        // The widest words at every position still fit.
        let widest = |t: &[&str; 256]| {
            u8::try_from(t.iter().enumerate().max_by_key(|(_, w)| w.len()).unwrap().0).unwrap()
        };
        let worst: Vec<u8> = (0..32)
            .map(|i| {
                if i % 2 == 0 {
                    widest(&EVEN)
                } else {
                    widest(&ODD)
                }
            })
            .collect();
        check(&worst);
        assert_eq!(rows(&worst)[0].chars().count(), MAX_ROW_WIDTH);
    }

    #[test]
    fn a_value_that_is_not_a_whole_number_of_groups() {
        check(&[1, 2, 3, 4, 5, 6]);
        assert_eq!(
            rows(&[0xab]),
            vec![" 1  ab        aardvark".replace("aardvark", EVEN[0xab])]
        );
    }

    #[test]
    fn hex_that_does_not_parse_is_shown_as_it_came() {
        assert_eq!(rows_of_hex("xyz"), vec!["(not hex: xyz)".to_owned()]);
        assert_eq!(rows_of_hex(""), vec!["(not hex: )".to_owned()]);
        assert_eq!(rows_of_hex("00ff"), rows(&[0, 0xff]));
        assert_eq!(
            rows_of_hex("00FF"),
            vec![rows(&[0, 0xff])[0].replace("ff", "FF")]
        );
        assert_eq!(rows_of_hex("00fF"), vec!["(not hex: 00fF)".to_owned()]);
    }

    proptest::proptest! {
        #[test]
        fn any_value_reads_back_and_fits(bytes in proptest::collection::vec(proptest::num::u8::ANY, 1..64)) {
            check(&bytes);
        }
    }
}
