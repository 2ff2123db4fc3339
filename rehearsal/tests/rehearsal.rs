//! A whole rehearsal through the real card stack: virtual OpenPGP cards provisioned over the
//! `cards` crate's OpenPGP operations, the host's own randomness sources, a folder as the data
//! stick, keys pressed by a script. The outputs pass the offline verifier, and every page
//! carries the rehearsal banner.

use ceremony_tui::ceremony::script::{Script, deviation_steps};
use ceremony_tui::ceremony::{Outcome, run};
use ceremony_tui::keys::Key;
use sherd_rehearsal::{Rehearsal, kit};

#[test]
fn a_rehearsal_with_virtual_cards_verifies() {
    let tmp = tempfile::tempdir().unwrap();
    let names: Vec<String> = ["Ann", "Ben", "Cat"].map(String::from).to_vec();
    let keys: Vec<_> = names.iter().map(|n| kit::personal_key(n)).collect();
    let plan = tmp.path().join("sherd-plan.toml");
    std::fs::write(&plan, kit::plan_text("rehearsal-test", 2, &names, &keys)).unwrap();
    let out = tmp.path().join("stick");
    let mut dev = Rehearsal::new(plan, out.clone(), 3);
    let mut steps = vec![
        ("boot attestation 1", Key::Char('y')),
        // A card in the reader before the entropy step adds its GET CHALLENGE.
        ("[ waiting ] Wendy", Key::Char('i')),
        ("[O] take the card out", Key::Char('1')),
        ("[ waiting ] Walter", Key::Char('2')),
        ("[Y] go on", Key::Char('y')),
    ];
    // A host has no quote and no recorded laptop: the witnesses record why they go on.
    steps.extend(deviation_steps("rehearsal on a host: no TPM quote"));
    steps.extend([
        ("[Enter] go on", Key::Enter),
        ("Root certificate fingerprint", Key::Char('y')),
        ("Remove the card now", Key::Char('o')),
        ("for holder 2", Key::Char('i')),
        ("Remove the card now", Key::Char('o')),
        ("for holder 3", Key::Char('i')),
        ("Remove the card now", Key::Char('o')),
        ("[W] write", Key::Char('w')),
        ("Transcript final hash", Key::Char('y')),
        ("[P] power off", Key::Char('p')),
    ]);
    let mut con = Script::new(&steps);
    let outcome = run(&mut con, &mut dev).unwrap();
    assert_eq!(outcome, Outcome::Completed, "{}", con.all_text());
    assert!(con.pages.iter().all(|p| p.starts_with("REHEARSAL")));
    let report = ceremony::verify::verify_dir(&out.join("sherd-rehearsal-test"))
        .expect("the offline verifier passes on the rehearsal's outputs");
    assert_eq!((report.threshold, report.count, report.cards), (2, 3, 3));
}
