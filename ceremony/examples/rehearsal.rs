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
    println!("wrote {out}/sherd-rehearsal");
    println!("final hash words: {}", done.view.transcript_final_words);
}
