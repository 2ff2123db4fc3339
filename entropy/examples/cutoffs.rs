//! Prints the SP 800-90B cutoffs this crate computes, for the documentation:
//! `cargo run -p entropy --example cutoffs`.

use entropy::health::{Alpha, Cutoffs};

fn main() {
    println!("| H bits/sample | sample bits | alpha | RCT C | APT W | APT C |");
    println!("|---|---|---|---|---|---|");
    for (h, bits) in [
        (8.0, 8),
        (7.0, 8),
        (6.88, 8),
        (4.0, 8),
        (2.0, 8),
        (1.0, 1),
        (0.86, 1),
        (0.5, 1),
    ] {
        for a in [20.0, 30.0, 40.0] {
            let c = Cutoffs::new(h, bits, Alpha::pow2(a).expect("valid alpha")).expect("valid");
            println!(
                "| {h} | {bits} | 2^-{a} | {} | {} | {} |",
                c.rct, c.apt_window, c.apt
            );
        }
    }
}
