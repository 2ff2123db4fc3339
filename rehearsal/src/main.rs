#![forbid(unsafe_code)]
//! `sherd-rehearsal`: the ceremony's screens in this terminal, with virtual cards.
//!
//! ```text
//! sherd-rehearsal [--plan FILE] [--out DIR] [--cards N] [--then-recover]
//! ```
//! Without `--plan`, a plan with three throwaway holders (2 of 3) is written to `DIR`, with the
//! holders' secret keys, so trainees can practise opening PIN files afterwards.
//!
//! `--then-recover` (with the demo plan): once the generation is complete, a recovery with the
//! same virtual cards, the holders' personal cards added to the box, and a demo `prove-quorum`
//! request in `DIR/rehearsal-request/`. `I` then goes round the box, naming the next card.

use ceremony_tui::term;
use sherd_rehearsal::{Rehearsal, kit};
use std::path::PathBuf;
use std::process::ExitCode;

const USAGE: &str = "usage: sherd-rehearsal [--plan FILE] [--out DIR] [--cards N] [--then-recover]";

fn main() -> ExitCode {
    let mut plan = None;
    let mut out = PathBuf::from("rehearsal-out");
    let mut cards = 6usize;
    let mut then_recover = false;
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        let mut value = || args.next().ok_or(format!("{a} needs a value\n{USAGE}"));
        let r: Result<(), String> = (|| {
            match a.as_str() {
                "--plan" => plan = Some(PathBuf::from(value()?)),
                "--out" => out = PathBuf::from(value()?),
                "--cards" => cards = value()?.parse().map_err(|e| format!("--cards: {e}"))?,
                "--then-recover" => then_recover = true,
                "-h" | "--help" => return Err(USAGE.into()),
                _ => return Err(format!("unknown argument {a:?}\n{USAGE}")),
            }
            Ok(())
        })();
        if let Err(e) = r {
            eprintln!("{e}");
            return ExitCode::from(2);
        }
    }
    if let Err(e) = std::fs::create_dir_all(&out) {
        eprintln!("cannot create {}: {e}", out.display());
        return ExitCode::FAILURE;
    }
    if then_recover && plan.is_some() {
        eprintln!(
            "--then-recover needs the demo plan (its holders' keys make their personal cards)"
        );
        return ExitCode::from(2);
    }
    let mut holder_keys = Vec::new();
    let plan = match plan {
        Some(p) => p,
        None => {
            let names: Vec<String> = ["Alice", "Bob", "Carol"].map(String::from).to_vec();
            let keys: Vec<_> = names.iter().map(|n| kit::personal_key(n)).collect();
            let p = out.join("sherd-plan.toml");
            let holders = out.join("rehearsal-holder-keys");
            let written = std::fs::write(&p, kit::plan_text("rehearsal", 2, &names, &keys))
                .and_then(|()| std::fs::create_dir_all(&holders))
                .and_then(|()| {
                    names.iter().zip(&keys).try_for_each(|(n, k)| {
                        std::fs::write(
                            holders.join(format!("{}.key.asc", n.to_lowercase())),
                            kit::armored_secret(k),
                        )
                    })
                });
            if let Err(e) = written {
                eprintln!("cannot write the demo plan into {}: {e}", out.display());
                return ExitCode::FAILURE;
            }
            holder_keys = names.into_iter().zip(keys).collect();
            p
        }
    };
    let mut devices = Rehearsal::new(plan, out.clone(), cards);
    let result = term::enter().and_then(|mut t| {
        let mut r = ceremony_tui::ceremony::run(&mut term::TermConsole::new(&mut t), &mut devices)
            .map(|o| format!("{o:?}"));
        if then_recover && matches!(r.as_deref(), Ok("Completed")) {
            r = recover(&mut t, &mut devices, &out, &holder_keys);
        }
        term::leave(&mut t)?;
        r
    });
    match result {
        Ok(outcome) => {
            println!(
                "\r\nrehearsal ended: {outcome}. Outputs (if written) are in {}.",
                out.display()
            );
            println!(
                "Check them as an auditor would: cargo run -p ceremony --bin sherd-verify -- {}/sherd-<ceremony id>",
                out.display()
            );
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("the terminal failed: {e}");
            ExitCode::FAILURE
        }
    }
}

/// The recovery after the generation: the demo request, the holders' personal cards, the same
/// box of virtual cards.
fn recover(
    t: &mut term::ConsoleTerminal,
    devices: &mut Rehearsal,
    out: &std::path::Path,
    holders: &[(String, ceremony::openpgp::Cert)],
) -> std::io::Result<String> {
    let generation = out.join("sherd-rehearsal");
    sherd_rehearsal::recovery::write_demo_request(out, &generation)
        .map_err(std::io::Error::other)?;
    for (name, key) in holders {
        devices
            .add_personal_card_named(key, &format!("{name}'s personal card"))
            .map_err(std::io::Error::other)?;
    }
    devices.from_the_first_card();
    ceremony_tui::recovery::run(&mut term::TermConsole::new(t), devices)
        .map(|o| format!("generation Completed, then recovery {o:?}"))
}
