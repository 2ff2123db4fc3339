//! The firmware event log comes from outside: parsing, replaying and judging any bytes must
//! return, never panic, and a parsed log must replay every PCR in both banks.
#![no_main]

use heads_config::{attest, eventlog, pcr::Bank};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(log) = eventlog::parse(data) {
        for i in 0..24 {
            for bank in Bank::ALL {
                if let Some(v) = eventlog::replay(&log.events, i, bank) {
                    assert_eq!(v.len(), bank.digest_len());
                }
            }
        }
    }
    let pcrs: [Option<Vec<u8>>; 8] = Default::default();
    assert_eq!(attest::judge(&pcrs, Some(data)).len(), 8);
});
