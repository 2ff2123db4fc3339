//! Everything a reader sends that is parsed on its own: bulk-in messages, the class
//! descriptor, interrupt notifications; and command APDUs handed to the driver.
#![no_main]

use cards::apdu::Apdu;
use cards::ccid::{self, ClassDescriptor, Parsed, Response};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let max = data.first().map_or(0, |&b| usize::from(b) * 64);
    match Response::parse(data, max) {
        Ok(Parsed::Complete(r, used)) => {
            assert!(used <= data.len());
            assert!(r.data.len() <= max);
            assert_eq!(used, ccid::HEADER_LEN + r.data.len());
        }
        Ok(Parsed::NeedMore(n)) => assert!(n > 0),
        Err(_) => {}
    }
    if let Ok(d) = ClassDescriptor::parse(data) {
        let _ = d.exchange_level();
        assert!(d.max_data_len() >= 5);
    }
    let _ = ccid::parse_notify_slot_change(data);
    if let Ok(a) = Apdu::parse(data) {
        assert!(a.le.is_none_or(|le| (1..=65536).contains(&le)));
        let _ = a.encode_short();
        let _ = a.encode_t0();
    }
});
