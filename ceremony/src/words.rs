//! Bytes as PGP words, for reading hashes and fingerprints aloud.

pub use crate::words_table::{EVEN, ODD};

/// The PGP words for `bytes`: the even table for bytes at even positions, the odd table for
/// bytes at odd positions.
pub fn to_words(bytes: &[u8]) -> Vec<&'static str> {
    bytes
        .iter()
        .enumerate()
        .map(|(i, b)| {
            let table = if i.is_multiple_of(2) { &EVEN } else { &ODD };
            table[usize::from(*b)]
        })
        .collect()
}

/// The PGP words for `bytes`, separated by single spaces.
pub fn to_phrase(bytes: &[u8]) -> String {
    to_words(bytes).join(" ")
}

fn byte_of(position: usize, word: &str) -> Option<u8> {
    let table = if position.is_multiple_of(2) {
        &EVEN
    } else {
        &ODD
    };
    table
        .iter()
        .position(|c| c.eq_ignore_ascii_case(word))
        .and_then(|p| u8::try_from(p).ok())
}

/// Parses words back to bytes (case-insensitive). `None` if any word is not in the table for its
/// position; [`first_bad_word`] tells which.
pub fn from_words(words: &[&str]) -> Option<Vec<u8>> {
    words
        .iter()
        .enumerate()
        .map(|(i, w)| byte_of(i, w))
        .collect()
}

/// The position of the first word that is not in the table for its position.
pub fn first_bad_word(words: &[&str]) -> Option<usize> {
    words
        .iter()
        .enumerate()
        .position(|(i, w)| byte_of(i, w).is_none())
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn published_example() {
        // The worked example that accompanies the published list.
        let bytes = crate::hex::decode("e58294f2e9a227486e8b061b31cc528fd7fa3f19").unwrap();
        assert_eq!(
            to_phrase(&bytes),
            "topmost Istanbul Pluto vagabond treadmill Pacific brackish dictator goldfish Medusa \
             afflict bravado chatter revolver Dupont midsummer stopwatch whimsical cowbell bottomless"
        );
    }

    #[test]
    fn tables_are_distinct() {
        let mut all: Vec<String> = EVEN
            .iter()
            .chain(ODD.iter())
            .map(|w| w.to_ascii_lowercase())
            .collect();
        all.sort();
        all.dedup();
        assert_eq!(
            all.len(),
            512,
            "a word appears twice: reading aloud would be ambiguous"
        );
    }

    #[test]
    fn position_matters() {
        assert!(
            from_words(&["adroitness"]).is_none(),
            "odd word at an even position"
        );
        assert_eq!(first_bad_word(&["aardvark", "aardvark"]), Some(1));
        assert_eq!(first_bad_word(&["aardvark", "adroitness"]), None);
    }

    proptest! {
        #[test]
        fn round_trip(bytes in proptest::collection::vec(any::<u8>(), 0..40)) {
            let words = to_words(&bytes);
            prop_assert_eq!(from_words(&words).unwrap(), bytes);
        }
    }
}
