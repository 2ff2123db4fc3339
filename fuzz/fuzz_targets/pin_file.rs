#![no_main]
// PIN file plaintext decoding refuses or round-trips exactly.
use ceremony::pinfile::PinFile;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data)
        && let Ok(pins) = PinFile::decode(text)
    {
        assert_eq!(
            pins.encode().as_str(),
            text,
            "decode/encode is not the identity"
        );
    }
});
