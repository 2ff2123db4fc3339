//! The event/effect flow drives a whole ceremony with software cards, fails closed on an
//! out-of-order event, and wipes on abort.

mod common;

use std::collections::HashMap;

use ceremony::card::SoftwareCard;
use ceremony::ceremony::{CeremonyError, NextCard};
use ceremony::flow::{Effect, Event, Flow, FlowError, Step, WriteFailed};
use ceremony::plan::PlanError;
use ceremony::record::{CoreRecord, Fields, Note};
use ceremony::storage::{DirVolume, write_all};
use common::*;

fn note(kind: &str, key: &str, value: &str) -> Note {
    Note::new(kind, Fields::new().with(key, value)).unwrap()
}

fn attestation() -> Vec<Note> {
    vec![
        note("image.iso-sha256", "sha256", &"ab".repeat(32)),
        note("image.kernel", "release", "6.12.0"),
    ]
}

#[test]
fn a_whole_ceremony_through_events() {
    let f = fixture("flow", 3, 2);
    let mut rng = seeded(31);
    let mut flow = Flow::new();

    assert!(matches!(
        &flow.handle(Event::Attested(attestation()))[..],
        [Effect::ConfirmAttestation]
    ));
    assert!(matches!(
        &flow.handle(Event::Confirmed {
            witness: "Wendy".into()
        })[..],
        [Effect::RequestPlan]
    ));

    let bad = flow.handle(Event::PlanRead("format = \"sherd-plan/1\"".into()));
    assert!(
        matches!(
            &bad[..],
            [
                Effect::Error(FlowError::Plan(CeremonyError::Plan(PlanError::Syntax(_)))),
                Effect::RequestPlan
            ]
        ),
        "{bad:?}"
    );
    let plan = flow.handle(Event::PlanRead(f.plan_text.clone()));
    assert!(
        matches!(&plan[..], [Effect::ConfirmPlan(s)] if s.ceremony_id == "flow" && s.threshold == 2)
    );
    assert!(matches!(
        &flow.handle(Event::Confirmed {
            witness: "Walter".into()
        })[..],
        [Effect::RequestEntropy]
    ));

    let report = common::entropy_notes();
    let keys = flow.handle(Event::EntropyReady {
        report,
        rng: &mut rng,
    });
    assert!(matches!(&keys[..], [Effect::ConfirmKeys(k)] if k.locations.len() == 3));
    let first = flow.handle(Event::Confirmed {
        witness: "Wendy".into(),
    });
    assert!(
        matches!(
            &first[..],
            [Effect::RequestCard {
                next: NextCard {
                    holder: 1,
                    card: 1,
                    cards_for_holder: 2,
                    ..
                },
                done: 0,
                total: 4,
            }]
        ),
        "{first:?}"
    );

    // Four cards: holder 1 has two.
    let mut cards: Vec<SoftwareCard> = (0..4)
        .map(|i| SoftwareCard::new(&format!("CARD{i}")))
        .collect();
    let mut expected_next = vec![(1u8, 2u8), (2, 1), (3, 1)].into_iter();
    for (i, card) in cards.iter_mut().enumerate() {
        let approved = approve(card);
        let out = flow.handle(Event::CardInserted { card, approved });
        assert!(
            matches!(&out[0], Effect::CardDone(v) if v.serial == format!("CARD{i}")),
            "{out:?}"
        );
        match expected_next.next() {
            Some((h, c)) => assert!(
                matches!(&out[1], Effect::RequestCard { next, .. } if next.holder == h && next.card == c),
                "{out:?}"
            ),
            None => assert!(matches!(out[1], Effect::RequestVerify)),
        }
    }
    assert_eq!(flow.step(), Step::Verify);
    let out = flow.handle(Event::VerifyNow(&mut rng));
    let [Effect::Verified(v), Effect::WriteFiles(files)] = &out[..] else {
        panic!("{out:?}")
    };
    assert!(v.subsets.exhaustive);

    // A failed write offers the same files again.
    let full = std::io::Error::new(std::io::ErrorKind::StorageFull, "stick full");
    let again = flow.handle(Event::Written(Err(WriteFailed::new(full))));
    assert!(
        matches!(&again[..], [Effect::Error(FlowError::Write(_)), Effect::WriteFiles(f2)] if f2 == files)
    );

    let stick = tempfile::tempdir().unwrap();
    let mut vol = DirVolume::new(stick.path());
    let report = write_all(&mut [&mut vol], "out", files).unwrap();
    let fin = flow.handle(Event::Written(Ok(report)));
    let [Effect::ConfirmFinal(view)] = &fin[..] else {
        panic!("{fin:?}")
    };
    let checked = ceremony::verify::verify_dir(&stick.path().join("out")).unwrap();
    assert_eq!(checked.transcript_final_words, view.transcript_final_words);

    // The attestation and every witness confirmation are in the signed transcript, in order.
    let t = flow.transcript().unwrap();
    let kinds: Vec<&str> = t.records().iter().map(|r| r.kind.as_str()).collect();
    assert_eq!(
        &kinds[..4],
        [
            "image.iso-sha256",
            "image.kernel",
            "witness.confirm",
            "ceremony.plan"
        ]
    );
    let steps: Vec<String> = t
        .core_records()
        .unwrap()
        .into_iter()
        .filter_map(|(_, r)| match r {
            CoreRecord::WitnessConfirm(w) => Some(w.step),
            _ => None,
        })
        .collect();
    assert_eq!(steps, ["attestation", "plan", "root-fingerprint"]);
    let map: HashMap<&str, usize> = kinds.iter().enumerate().map(|(i, k)| (*k, i)).collect();
    assert!(map["entropy.source"] < map["root.fingerprint"]);

    assert!(matches!(
        &flow.handle(Event::Confirmed {
            witness: "Wendy".into()
        })[..],
        [Effect::WipeAndPowerOff]
    ));
    assert_eq!(flow.step(), Step::PowerOff);
    assert!(
        flow.done() && flow.transcript().is_none(),
        "secrets dropped"
    );
}

/// An event the state does not take is a bug in the caller: the flow fails closed.
#[test]
fn an_out_of_order_event_aborts_and_wipes() {
    let f = fixture("order", 2, 2);
    let mut flow = Flow::new();
    let out = flow.handle(Event::Confirmed {
        witness: "W".into(),
    });
    assert!(
        matches!(
            &out[..],
            [
                Effect::Error(FlowError::OutOfOrder {
                    step: Step::Attest,
                    ..
                }),
                Effect::WipeAndPowerOff
            ]
        ),
        "{out:?}"
    );
    assert!(flow.aborted());
    // Nothing is taken after that.
    let out = flow.handle(Event::PlanRead(f.plan_text.clone()));
    assert!(matches!(
        &out[..],
        [Effect::Error(FlowError::OutOfOrder { .. }), ..]
    ));
    assert!(flow.transcript().is_none());
}

#[test]
fn abort_wipes_at_any_step() {
    let f = fixture("abort", 2, 2);
    let mut rng = seeded(32);
    let mut flow = Flow::new();
    flow.handle(Event::Attested(attestation()));
    flow.handle(Event::Confirmed {
        witness: "W".into(),
    });
    flow.handle(Event::PlanRead(f.plan_text.clone()));
    flow.handle(Event::Confirmed {
        witness: "W".into(),
    });
    flow.handle(Event::EntropyReady {
        report: vec![],
        rng: &mut rng,
    });
    assert_eq!(flow.step(), Step::Keys);
    assert!(flow.transcript().is_some());
    let out = flow.handle(Event::Abort {
        reason: "witness objected".into(),
    });
    assert!(matches!(
        &out[..],
        [
            Effect::Error(FlowError::Aborted(_)),
            Effect::WipeAndPowerOff
        ]
    ));
    assert!(flow.aborted());
    assert!(
        flow.transcript().is_none(),
        "the ceremony and its secrets are dropped"
    );
    assert!(matches!(
        flow.handle(Event::Confirmed {
            witness: "W".into()
        })[..],
        [Effect::Error(_), Effect::WipeAndPowerOff]
    ));
}
