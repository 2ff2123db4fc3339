#![no_main]
// releases/builders.toml comes from outside review: the parser must refuse, never panic.
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data)
        && let Ok(b) = sherd_release::builders::Builders::parse(text)
    {
        // Anything accepted keeps the promises verify relies on.
        assert!(b.threshold >= 1 && b.threshold <= b.builders.len());
    }
});
