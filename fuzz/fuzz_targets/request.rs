#![no_main]
// The recovery request parser and validator must refuse, never panic, on any input.
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data)
        && let Ok(request) = ceremony::request::Request::parse(text)
    {
        // Anything accepted has a well-formed canonical encoding and a hash that reads aloud.
        let canonical = request.canonical_bytes();
        assert!(canonical.starts_with(ceremony::request::FORMAT.as_bytes()));
        let _ = request.hash_words();
        let _ = request.operation.name();
    }
});
