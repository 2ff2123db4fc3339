//! Lower-case hexadecimal, the one spelling our formats accept (strict, so hashes compare as text).

/// Encodes bytes as lower-case hex.
pub fn encode(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut out = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        out.push(char::from(DIGITS[usize::from(b >> 4)]));
        out.push(char::from(DIGITS[usize::from(b & 0x0f)]));
    }
    out
}

/// Encodes bytes as upper-case hex (OpenPGP fingerprints are conventionally shown this way).
pub fn encode_upper(bytes: &[u8]) -> String {
    encode(bytes).to_ascii_uppercase()
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
            prop_assert_eq!(decode_upper(&encode_upper(&bytes)).unwrap(), bytes);
        }
    }

    #[test]
    fn strict() {
        assert_eq!(encode(&[0x00, 0xab, 0xff]), "00abff");
        assert!(decode("0").is_none());
        assert!(decode("AB").is_none());
        assert!(decode_upper("ab").is_none());
        assert!(decode(" 0").is_none());
        assert!(decode_array::<2>("0011").is_some());
        assert!(decode_array::<2>("001122").is_none());
    }
}
