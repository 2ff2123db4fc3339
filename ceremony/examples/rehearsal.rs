//! A rehearsal: a full ceremony with throwaway personal keys and software cards, written to a
//! folder that `sherd-verify` can check. Run:
//! `cargo run -p ceremony --example rehearsal -- <output dir> [N] [M]`.

#[path = "../tests/common/mod.rs"]
mod common;

use ceremony::storage::{DirVolume, write_all};

fn main() {
    let mut args = std::env::args().skip(1);
    let out = args.next().expect("usage: rehearsal <output dir> [N] [M]");
    let n: usize = args.next().map(|s| s.parse().unwrap()).unwrap_or(5);
    let m: usize = args.next().map(|s| s.parse().unwrap()).unwrap_or(3);
    let f = common::fixture("rehearsal", n, m);
    let done = common::run(&f, 99);
    std::fs::create_dir_all(&out).unwrap();
    let mut v = DirVolume::new(&out);
    write_all(&mut [&mut v], "sherd-rehearsal", &done.files).unwrap();
    // The throwaway personal keys, so a rehearsal can practise opening PIN files with ordinary
    // OpenPGP tools. Rehearsal only: real holders' keys never touch the machine.
    let keys = std::path::Path::new(&out).join("rehearsal-personal-keys");
    std::fs::create_dir_all(&keys).unwrap();
    for (i, k) in f.personal.iter().enumerate() {
        use ceremony::openpgp::serialize::SerializeInto;
        std::fs::write(
            keys.join(format!("holder-{:03}.key.asc", i + 1)),
            k.as_tsk().armored().to_vec().unwrap(),
        )
        .unwrap();
    }
    println!("wrote {out}/sherd-rehearsal and {out}/rehearsal-personal-keys");
    println!("final hash words: {}", done.view.transcript_final_words);
}
