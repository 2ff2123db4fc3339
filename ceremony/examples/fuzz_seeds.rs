//! Writes seed inputs for the fuzz targets (fuzz/seeds/<target>/) from a simulated
//! ceremony with test keys. Run: `cargo run -p ceremony --example fuzz_seeds -- <seeds dir>`.

#[path = "../tests/common/mod.rs"]
mod common;

use std::path::PathBuf;

use ceremony::card::CardSerial;
use ceremony::ceremony::paths;
use ceremony::envelope::{Envelope, EnvelopeHeader};
use ceremony::pinfile::{PinEntry, PinFile};
use ceremony::secret::{CardPins, Pin, ShareBytes};

fn main() {
    let dir = PathBuf::from(
        std::env::args()
            .nth(1)
            .expect("usage: fuzz_seeds <seeds dir>"),
    );
    let f = common::fixture("fuzz-seed", 2, 2);
    let done = common::run(&f, 3);
    let write = |target: &str, name: &str, bytes: &[u8]| {
        let d = dir.join(target);
        std::fs::create_dir_all(&d).unwrap();
        std::fs::write(d.join(name), bytes).unwrap();
    };
    write("plan", "plan.toml", common::file(&done.files, paths::PLAN));
    write(
        "shard_file",
        "shards.toml",
        common::file(&done.files, paths::SHARDS),
    );
    write(
        "transcript",
        "transcript.txt",
        common::file(&done.files, paths::TRANSCRIPT),
    );
    let mut share = vec![2u8];
    share.extend_from_slice(&[0x5a; 32]);
    let env = Envelope {
        header: EnvelopeHeader {
            ceremony_id: "fuzz-seed".into(),
            index: 2,
            threshold: 2,
            count: 3,
            key_time: common::PLAN_TIME,
            plan_hash: [1; 32],
            commitment: [2; 32],
            root_fingerprint: vec![3; 20],
        },
        share: ShareBytes::from_slice(&share),
    };
    write("envelope", "envelope.bin", &env.encode());
    let pins = PinFile {
        ceremony_id: "fuzz-seed".into(),
        holder: 1,
        name: "Holder 001".into(),
        cards: vec![PinEntry {
            card: 1,
            serial: CardSerial("000F:0001".into()),
            pins: CardPins {
                user: Pin::from_string("123456789012".into()),
                admin: Pin::from_string("1234567890123456".into()),
            },
        }],
    };
    write("pin_file", "pins.txt", pins.encode().as_bytes());
}
