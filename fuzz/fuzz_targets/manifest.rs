#![no_main]
// A release manifest is read from a download before anything is rebuilt or signed: refuse,
// never panic.
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data)
        && let Ok(m) = sherd_release::release::Manifest::parse(text)
    {
        let _ = m.toolchain();
        let _ = m.source_date_epoch();
    }
});
