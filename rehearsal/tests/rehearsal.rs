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

/// A recovery rehearsed after the generation, with the same box of virtual cards: the
/// holders' personal cards added, the demo `prove-quorum` request, holders 3 and 1 chosen,
/// each card picked by going round the box (N) and inserted (I). The recovery folder passes
/// the recovery verifier against the generation folder.
#[test]
fn a_recovery_rehearsed_after_the_generation_proves_the_quorum() {
    let tmp = tempfile::tempdir().unwrap();
    let names: Vec<String> = ["Ann", "Ben", "Cat"].map(String::from).to_vec();
    let keys: Vec<_> = names.iter().map(|n| kit::personal_key(n)).collect();
    let plan = tmp.path().join("sherd-plan.toml");
    std::fs::write(&plan, kit::plan_text("rehearsal-test", 2, &names, &keys)).unwrap();
    let out = tmp.path().join("stick");
    let mut dev = Rehearsal::new(plan, out.clone(), 3);
    let steps = generation_steps();
    let mut con = Script::new(&steps);
    assert_eq!(run(&mut con, &mut dev).unwrap(), Outcome::Completed);
    let generation = out.join("sherd-rehearsal-test");

    sherd_rehearsal::recovery::write_demo_request(&out, &generation).unwrap();
    for (n, k) in names.iter().zip(&keys) {
        dev.add_personal_card_named(k, &format!("{n}'s personal card"))
            .unwrap();
    }
    dev.from_the_first_card();
    // The box: cards 1-3 are holders 1-3's location cards, then Ann's, Ben's, Cat's personal.
    let n = ("[N] another card", Key::Char('n'));
    let mut steps = vec![
        ("boot attestation 1", Key::Char('y')),
        ("[Y] the words match", Key::Char('y')),
        ("[Y] the hash matches", Key::Char('y')),
        ("Press the number of the holder", Key::Char('3')),
    ];
    steps.extend([n; 5]);
    steps.extend([
        ("[I] insert Cat's personal card", Key::Char('i')),
        ("Take the personal card out", Key::Char('o')),
    ]);
    steps.extend([n; 2]);
    steps.extend([
        ("52450003", Key::Char('i')),
        ("share accepted", Key::Char('o')),
        ("Press the number of the holder", Key::Char('1')),
        ("[I] insert Ann's personal card", Key::Char('i')),
        ("Take the personal card out", Key::Char('o')),
    ]);
    steps.extend([n; 2]);
    steps.extend([
        ("52450001", Key::Char('i')),
        ("share accepted", Key::Char('o')),
        ("[W] write to these sticks", Key::Char('w')),
        ("Recovery transcript final hash", Key::Char('y')),
        ("[P] power off", Key::Char('p')),
    ]);
    let mut con = Script::new(&steps);
    let outcome = ceremony_tui::recovery::run(&mut con, &mut dev).unwrap();
    assert_eq!(
        outcome,
        ceremony_tui::recovery::driver::Outcome::Completed,
        "{}",
        con.all_text()
    );
    assert!(con.pages.iter().all(|p| p.starts_with("REHEARSAL")));
    let rec = std::fs::read_dir(&out)
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| {
            p.file_name().is_some_and(|n| {
                n.to_string_lossy()
                    .starts_with("sherd-rehearsal-test-recovery-")
            })
        })
        .expect("a recovery folder");
    ceremony::verify_recovery::verify_recovery_dir(&generation, &rec)
        .expect("the recovery verifier passes on the rehearsal's recovery folder");
    assert!(rec.join("quorum/challenge.txt.sig").exists());
}

/// The keys of a 2-of-3 rehearsal generation, one card per holder inserted when asked.
fn generation_steps() -> Vec<(&'static str, Key)> {
    let mut steps = vec![
        ("boot attestation 1", Key::Char('y')),
        ("[ waiting ] Wendy", Key::Char('1')),
        ("[ waiting ] Walter", Key::Char('2')),
        ("[Y] go on", Key::Char('y')),
    ];
    steps.extend(deviation_steps("rehearsal on a host: no TPM quote"));
    steps.extend([
        ("[Enter] go on", Key::Enter),
        ("Root certificate fingerprint", Key::Char('y')),
    ]);
    for holder in ["for holder 1", "for holder 2", "for holder 3"] {
        steps.extend([
            (holder, Key::Char('i')),
            ("Remove the card now", Key::Char('o')),
        ]);
    }
    steps.extend([
        ("[W] write", Key::Char('w')),
        ("Transcript final hash", Key::Char('y')),
        ("[P] power off", Key::Char('p')),
    ]);
    steps
}
