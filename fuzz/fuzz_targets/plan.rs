#![no_main]
// The plan parser and validator must refuse, never panic, on any input.
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data)
        && let Ok(plan) = ceremony::plan::Plan::parse(text)
    {
        // Anything accepted has a well-formed canonical encoding and summary.
        let _ = plan.canonical_bytes();
        let _ = plan.summary();
    }
});
