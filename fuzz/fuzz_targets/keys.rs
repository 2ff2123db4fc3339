//! Bytes from the console (a hostile USB keyboard included): decoding never panics, and split
//! reads give the same keys as one read.
#![no_main]

use ceremony_tui::keys::Decoder;

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let mut whole = Decoder::new();
    let a = whole.feed(data);
    if data.len() > 1 {
        // Splitting the input at a point must not lose or invent keys, except that an ESC
        // ending the first part is read as the Escape key (terminals never split a sequence).
        let cut = usize::from(data[0]) % data.len();
        if cut > 0 && data[cut - 1] != 0x1b && !data[..cut].contains(&0x1b) {
            let mut split = Decoder::new();
            let mut b = split.feed(&data[..cut]);
            b.extend(split.feed(&data[cut..]));
            assert_eq!(a, b);
        }
    }
});
