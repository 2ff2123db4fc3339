//! Writes the test fixture of the independent Python verifier (verifiers/python): a simulated
//! generation ceremony (3 holders, threshold 2, holder 1 with 2 cards, software cards,
//! throwaway keys) whose plan gives both witnesses a certificate and both sign, plus the
//! decrypted share envelopes (the plaintext of share-envelope.md, one file per holder), as a
//! recovery would obtain them with the location cards. Run:
//! `cargo run -p ceremony --example pyverify_fixture -- <output dir>`.
//! Throwaway keys only: the personal and witness keys are generated fresh and discarded.

#[path = "../tests/common/mod.rs"]
mod common;

use ceremony::card::SoftwarePersonalCard;
use ceremony::ceremony::paths;
use ceremony::envelope;
use ceremony::shardfile::ShardFile;
use ceremony::storage::{DirVolume, write_all};
use ceremony::witness::{PinRequest, WitnessSigning};

fn main() {
    let out = std::env::args()
        .nth(1)
        .expect("usage: pyverify_fixture <output dir>");
    let (wendy, walter) = (
        common::personal("Wendy Witness"),
        common::personal("Walter Witness"),
    );
    let f = common::with_witness_certs(
        common::fixture("pyverify", 3, 2),
        [Some(&wendy), Some(&walter)],
        false,
    );
    let mut done = common::run(&f, 77);

    let mut signing = WitnessSigning::for_finished(&done.finished);
    let mut no_pin = |_: &PinRequest| -> Option<ceremony::secret::Pin> { None };
    for (serial, cert) in [("0006:00000001", &wendy), ("0006:00000002", &walter)] {
        let mut card = SoftwarePersonalCard::new(serial, cert).expect("a signing key");
        signing.sign(&mut card, &mut no_pin).expect("witness signs");
    }
    let mut files = done.files.clone();
    files.extend(signing.output_files());

    std::fs::create_dir_all(&out).unwrap();
    let mut v = DirVolume::new(&out);
    write_all(&mut [&mut v], "sherd-pyverify", &files).unwrap();

    // The decrypted envelopes, opened as a recovery would: each holder's first card with the
    // user PIN from that holder's PIN file.
    let shards =
        ShardFile::parse(std::str::from_utf8(common::file(&files, paths::SHARDS)).unwrap())
            .unwrap();
    let dir = std::path::Path::new(&out).join("decrypted-shares");
    std::fs::create_dir_all(&dir).unwrap();
    for (i, s) in shards.shares.iter().enumerate() {
        let pin = common::user_pin(&f, &files, &shards.root_cert, s.index);
        let env = envelope::open_with_card(
            &s.message,
            &mut done.cards[i][0],
            &pin,
            &s.location_cert,
            &shards.root_cert,
        )
        .expect("the share opens");
        std::fs::write(dir.join(format!("holder-{}.env", s.index)), &*env.encode()).unwrap();
    }
    println!("wrote {out}/sherd-pyverify and {out}/decrypted-shares");
    println!("final hash words: {}", done.view.transcript_final_words);
}
