//! Times split + seal + verify for N=5/M=3 and N=255/M=128 with software cards, and prints the
//! size of every output file. Run: `cargo run --release -p ceremony --example bench`.
//! (Measurements only; no test asserts on times.)

#[path = "../tests/common/mod.rs"]
mod common;

use std::time::Instant;

use ceremony::card::SoftwareCard;
use ceremony::ceremony::Planned;

fn main() {
    for (n, m) in [(5usize, 3usize), (255, 128)] {
        let f = common::fixture_with(&format!("bench-{n}-{m}"), n, m, &vec![1u8; n]);
        let mut rng = common::seeded(1);
        let t0 = Instant::now();
        let c = Planned::new(&f.plan_text).unwrap();
        let t_plan = t0.elapsed();
        let t = Instant::now();
        let (c, _) = c.generate_keys(&mut rng).unwrap();
        let t_keys = t.elapsed();
        let t = Instant::now();
        let (mut c, _) = c.seal_shares(&mut rng).unwrap();
        let t_seal = t.elapsed();
        let t = Instant::now();
        for i in 1..=n {
            let mut card = SoftwareCard::new(&format!("{i:08}"));
            let ok = common::approve(&mut card);
            c.provision_card(u8::try_from(i).unwrap(), 1, &mut card, &ok)
                .unwrap();
        }
        let c = c.cards_complete().unwrap();
        let t_cards = t.elapsed();
        let t = Instant::now();
        let (c, v) = c.verify(&mut rng).unwrap();
        let t_verify = t.elapsed();
        let t = Instant::now();
        let (_, files, _) = c.finish().unwrap();
        let t_finish = t.elapsed();
        println!("N={n} M={m}");
        println!("  plan parse+validate      {:>9.3} s", t_plan.as_secs_f64());
        println!(
            "  keys (root+{n} locations) {:>9.3} s",
            t_keys.as_secs_f64()
        );
        println!("  split + seal             {:>9.3} s", t_seal.as_secs_f64());
        println!(
            "  cards (provision+test-decrypt+PIN files) {:>9.3} s",
            t_cards.as_secs_f64()
        );
        println!(
            "  verify ({})  {:>9.3} s",
            v.subsets.describe(),
            t_verify.as_secs_f64()
        );
        println!(
            "  finish (files, transcript signature) {:>9.3} s",
            t_finish.as_secs_f64()
        );
        println!(
            "  split+seal+verify total  {:>9.3} s",
            (t_seal + t_verify).as_secs_f64()
        );
        let mut pin_sizes: Vec<usize> = Vec::new();
        for f in &files {
            if f.path.starts_with("pins/") {
                pin_sizes.push(f.bytes.len());
            } else {
                println!("  {:<22} {:>9} bytes", f.path, f.bytes.len());
            }
        }
        println!(
            "  pins/holder-NNN.asc    {:>9} files, {}..{} bytes each",
            pin_sizes.len(),
            pin_sizes.iter().min().unwrap(),
            pin_sizes.iter().max().unwrap()
        );
    }
}
