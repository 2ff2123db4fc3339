//! The kernel command line comes from the boot entry: whatever it says, parsing must end in a
//! value or an error naming the word, never a panic.
#![no_main]

#[path = "../../init/src/cmdline.rs"]
#[allow(dead_code)]
mod cmdline;

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let Ok(line) = std::str::from_utf8(data) else {
        return;
    };
    match cmdline::parse(line) {
        Ok(p) => {
            // The chosen console is always a device path the parser built itself.
            assert!(p.console.device().starts_with("/dev/tty"));
        }
        Err(e) => assert!(!e.to_string().is_empty()),
    }
    let _ = cmdline::words(line);
});
