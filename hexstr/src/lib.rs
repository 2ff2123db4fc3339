//! Hexadecimal text, strict: each format spells hex one way (lower case for hashes, upper case
//! for OpenPGP fingerprints), so two hashes can be compared as text and a decoder that accepts
//! anything else would let two spellings of one value through.

#![forbid(unsafe_code)]

const LOWER: &[u8; 16] = b"0123456789abcdef";
const UPPER: &[u8; 16] = b"0123456789ABCDEF";

fn encode_with(bytes: &[u8], digits: &[u8; 16]) -> String {
    let mut out = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        out.push(char::from(digits[usize::from(b >> 4)]));
        out.push(char::from(digits[usize::from(b & 0x0f)]));
    }
    out
}

/// Encodes bytes as lower-case hex, two digits a byte.
pub fn encode(bytes: &[u8]) -> String {
    encode_with(bytes, LOWER)
}

/// Encodes bytes as upper-case hex (OpenPGP fingerprints are conventionally shown this way).
pub fn encode_upper(bytes: &[u8]) -> String {
    encode_with(bytes, UPPER)
}

fn nibble(c: u8, upper: bool) -> Option<u8> {
    match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' if !upper => Some(c - b'a' + 10),
        b'A'..=b'F' if upper => Some(c - b'A' + 10),
        _ => None,
    }
}

fn decode_case(text: &str, upper: bool) -> Option<Vec<u8>> {
    let bytes = text.as_bytes();
    if !bytes.len().is_multiple_of(2) {
        return None;
    }
    bytes
        .chunks(2)
        .map(|pair| Some((nibble(pair[0], upper)? << 4) | nibble(pair[1], upper)?))
        .collect()
}

/// Decodes lower-case hex; anything else (upper case, odd length, spaces) is `None`.
pub fn decode(text: &str) -> Option<Vec<u8>> {
    decode_case(text, false)
}

/// Decodes upper-case hex (fingerprints); anything else is `None`.
pub fn decode_upper(text: &str) -> Option<Vec<u8>> {
    decode_case(text, true)
}

/// Decodes exactly `N` bytes of lower-case hex.
pub fn decode_array<const N: usize>(text: &str) -> Option<[u8; N]> {
    decode(text)?.try_into().ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn round_trip(bytes in proptest::collection::vec(any::<u8>(), 0..64)) {
            prop_assert_eq!(decode(&encode(&bytes)).unwrap(), bytes.clone());
            prop_assert_eq!(decode_upper(&encode_upper(&bytes)).unwrap(), bytes.clone());
            prop_assert_eq!(encode_upper(&bytes), encode(&bytes).to_ascii_uppercase());
        }
    }

    #[test]
    fn strict() {
        assert_eq!(encode(&[0x00, 0xab, 0xff]), "00abff");
        assert_eq!(encode_upper(&[0x00, 0xab, 0x10]), "00AB10");
        assert_eq!(encode(&[]), "");
        assert_eq!(decode(""), Some(vec![]));
        assert!(decode("0").is_none());
        assert!(decode("AB").is_none());
        assert!(decode("aB").is_none());
        assert!(decode("zz").is_none());
        assert!(decode_upper("ab").is_none());
        assert!(decode(" 0").is_none());
        assert!(decode("00\n").is_none());
        assert!(decode_array::<2>("0011").is_some());
        assert!(decode_array::<2>("001122").is_none());
    }
}
