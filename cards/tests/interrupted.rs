//! A card pulled out in the middle of an operation. openpgp-card 0.7 panics when re-reading the
//! application related data fails (`unreachable!()` in its `state::Transaction::ard`); the
//! card stack must turn that into an error and never use the handle again.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use cards::{ApduChannel, Error, OpenPgpCard, Pin, Result};
use vscard_bridge::VirtualCard;

/// A direct channel to a virtual card that is pulled out after `pull_after` APDUs: every
/// later command fails the way a reader reports an empty slot.
struct Pullable {
    card: Arc<VirtualCard>,
    sent: Arc<AtomicU64>,
    pull_after: Arc<AtomicU64>,
}

impl ApduChannel for Pullable {
    fn transmit(&mut self, apdu: &[u8]) -> Result<Vec<u8>> {
        if self.sent.load(Ordering::SeqCst) >= self.pull_after.load(Ordering::SeqCst) {
            return Err(Error::NoCard);
        }
        self.sent.fetch_add(1, Ordering::SeqCst);
        Ok(self.card.transmit(apdu))
    }
    fn extended_apdus(&self) -> bool {
        true
    }
    fn apdu_count(&self) -> u64 {
        self.sent.load(Ordering::SeqCst)
    }
}

struct Rig {
    card: OpenPgpCard,
    sent: Arc<AtomicU64>,
    pull_after: Arc<AtomicU64>,
}

/// A freshly opened handle on `card`, pulled out `after` APDUs from now.
fn open(card: &Arc<VirtualCard>, after: u64) -> Rig {
    card.reset();
    let sent = Arc::new(AtomicU64::new(0));
    let pull_after = Arc::new(AtomicU64::new(u64::MAX));
    let handle = OpenPgpCard::open(Pullable {
        card: card.clone(),
        sent: sent.clone(),
        pull_after: pull_after.clone(),
    })
    .unwrap();
    pull_after.store(
        sent.load(Ordering::SeqCst).saturating_add(after),
        Ordering::SeqCst,
    );
    Rig {
        card: handle,
        sent,
        pull_after,
    }
}

// Reading the PIN retry counters drops openpgp-card's cached application data and reads it
// again: pulled right after the transaction's first read, openpgp-card panics. The caller gets
// an error telling the operator what to do, and the handle stays shut after the card is back.
#[test]
fn a_panic_in_openpgp_card_is_an_error_and_poisons_the_handle() {
    let vc = Arc::new(VirtualCard::new(0xA000));
    let mut rig = open(&vc, 1);
    let e = rig.card.pin_retries().unwrap_err();
    let Error::Interrupted { during, detail } = &e else {
        panic!("expected Error::Interrupted, got {e:?}");
    };
    assert_eq!(*during, "reading the PIN retry counters");
    assert!(detail.contains("unreachable"), "{detail}");
    let shown = e.to_string();
    assert!(
        shown.contains("take the card out and insert it again")
            && shown.contains("nothing was lost"),
        "{shown}"
    );

    // The card is back, but this handle is poisoned: every operation fails the same way and
    // nothing reaches the card.
    rig.pull_after.store(u64::MAX, Ordering::SeqCst);
    let sent = rig.sent.load(Ordering::SeqCst);
    for e in [
        rig.card.identity().map(|_| ()).unwrap_err(),
        rig.card.pin_retries().map(|_| ()).unwrap_err(),
        rig.card.verify_user_pin(&Pin::default_user()).unwrap_err(),
        rig.card.factory_reset().unwrap_err(),
        rig.card.get_challenge(8).map(|_| ()).unwrap_err(),
    ] {
        assert!(
            matches!(
                e,
                Error::Interrupted {
                    during: "reading the PIN retry counters",
                    ..
                }
            ),
            "{e:?}"
        );
    }
    assert_eq!(rig.sent.load(Ordering::SeqCst), sent);

    // A new handle on the reinserted card works.
    let mut again = open(&vc, u64::MAX);
    assert_eq!(again.card.pin_retries().unwrap().user, 3);
    assert_eq!(again.card.identity().unwrap().serial, 0xA000);
}

// Pulled after any number of APDUs of a PIN check, a PIN change, an identity read and a
// factory reset: always an error until the card stays in for all of them, never a panic out of
// the card stack; the handle is poisoned exactly when openpgp-card panicked, and otherwise
// works again once the card is back.
#[test]
fn pulled_at_any_point_never_panics() {
    let steps = |card: &mut OpenPgpCard| -> Result<()> {
        card.verify_user_pin(&Pin::default_user())?;
        let pin = Pin::default_user();
        card.change_user_pin(&pin, &pin)?;
        card.identity()?;
        card.factory_reset()
    };
    // How many APDUs the steps take with the card left in.
    let mut whole = open(&Arc::new(VirtualCard::new(0xA001)), u64::MAX);
    let before = whole.sent.load(Ordering::SeqCst);
    steps(&mut whole.card).unwrap();
    let apdus = whole.sent.load(Ordering::SeqCst) - before;
    assert!(apdus > 5, "{apdus} APDUs");

    let mut interrupted = 0;
    for after in 0..=apdus {
        // A fresh card each time: a factory reset cut short leaves a card terminated.
        let mut rig = open(&Arc::new(VirtualCard::new(0xA001)), after);
        let r = steps(&mut rig.card);
        rig.pull_after.store(u64::MAX, Ordering::SeqCst);
        match r {
            Ok(()) => assert_eq!(after, apdus),
            Err(Error::Interrupted { .. }) => {
                interrupted += 1;
                assert!(matches!(
                    rig.card.identity(),
                    Err(Error::Interrupted { .. })
                ));
            }
            Err(e) => {
                // An ordinary error: openpgp-card found the card missing where it checks. The
                // handle is not poisoned and works again, unless the cut fell between the
                // factory reset's TERMINATE DF and ACTIVATE FILE (its last two APDUs): that
                // leaves the card itself terminated.
                assert!(after < apdus, "{e:?}");
                assert!(
                    matches!(e, Error::OpenPgpCard(_) | Error::NoCard),
                    "after {after}: {e:?}"
                );
                match rig.card.identity() {
                    Ok(_) => {}
                    Err(Error::OpenPgpCard(_)) if after + 1 == apdus => {}
                    Err(e) => panic!("after {after}: the handle fails with {e:?}"),
                }
            }
        }
    }
    assert!(interrupted > 0, "openpgp-card never panicked");
}
