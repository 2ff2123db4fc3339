#![no_main]
// Transcript parsing refuses or round-trips exactly (the signature covers the bytes).
use ceremony::transcript::Transcript;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(t) = Transcript::parse(data) {
        assert_eq!(
            t.to_text().as_bytes(),
            data,
            "parse/print is not the identity"
        );
    }
});
