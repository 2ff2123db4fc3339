#![no_main]
// Envelope decoding refuses or round-trips exactly: one encoding per envelope.
use ceremony::envelope::Envelope;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(env) = Envelope::decode(data) {
        assert_eq!(&env.encode()[..], data, "decode/encode is not the identity");
    }
});
