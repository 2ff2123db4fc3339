//! APDU response handling against a hostile card: any sequence of answers must end, without
//! panic, in a bounded response or an error.
#![no_main]

use cards::Error;
use cards::apdu::{self, MAX_RESPONSE};
use cards::ccid::ExchangeLevel;
use libfuzzer_sys::fuzz_target;

/// Split the input into length-prefixed pieces.
fn pieces(mut data: &[u8]) -> Vec<&[u8]> {
    let mut out = Vec::new();
    while let Some((&len, rest)) = data.split_first() {
        let n = usize::from(len).min(rest.len());
        out.push(&rest[..n]);
        data = &rest[n..];
    }
    out
}

fuzz_target!(|data: &[u8]| {
    let Some((&sel, rest)) = data.split_first() else {
        return;
    };
    let level = match sel % 3 {
        0 => ExchangeLevel::Tpdu,
        1 => ExchangeLevel::ShortApdu,
        _ => ExchangeLevel::ExtendedApdu,
    };
    let mut parts = pieces(rest).into_iter();
    let Some(cmd) = parts.next() else { return };
    // Long commands (chaining) come from repeating the fuzzed command bytes.
    let mut cmd = cmd.to_vec();
    if sel & 0x80 != 0 && cmd.len() >= 4 {
        let data: Vec<u8> = cmd[4..].iter().copied().cycle().take(600).collect();
        cmd.truncate(4);
        cmd.extend_from_slice(&[0, (data.len() >> 8) as u8, data.len() as u8]);
        cmd.extend_from_slice(&data);
    }
    let mut calls = 0usize;
    let r = apdu::exchange(&cmd, level, &mut |sent| {
        calls += 1;
        assert!(calls < 10_000, "unbounded exchange");
        // A short APDU is at most header, Lc, 255 data bytes and Le.
        assert!(sent.len() <= 4 + 1 + 255 + 1 || level == ExchangeLevel::ExtendedApdu);
        parts.next().map(<[u8]>::to_vec).ok_or(Error::Disconnected)
    });
    if let Ok(resp) = r {
        assert!(resp.len() >= 2 && resp.len() <= MAX_RESPONSE + 256);
    }
});
