//! The ceremony's rules for what a device shows, in one place: which card may be used, and
//! when a plan stick is read again. The driver asks these; they touch no device themselves.

use super::driver::{CardPoll, PlanPoll};
use super::screens::CardState;
use std::collections::BTreeSet;

/// Which card in the reader may be provisioned.
///
/// - A card that holds keys is refused, unless its provisioning was started (and interrupted)
///   in this ceremony: sherd never erases a card it did not start on.
/// - After a failed attempt, the card must leave the reader before the next try, so a person
///   decides to try again (with the same card or a spare).
#[derive(Clone, Debug, Default)]
pub struct CardPolicy {
    /// Cards whose provisioning failed part way in this ceremony: they may hold our keys, and
    /// may be reset again.
    interrupted: BTreeSet<String>,
    /// A card was in the reader when an attempt failed and has not left it since.
    must_leave: bool,
}

/// What to do with what the reader shows.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CardDecision {
    /// Keep waiting; the page shows this.
    Wait(CardState),
    /// Provision the card with this identity; it may hold keys only if this ceremony started
    /// on it (the core checks both again on the open card).
    Use { ident: String, may_hold_keys: bool },
}

impl CardPolicy {
    /// An attempt on card `ident` failed part way: it may be reset again, once it has left
    /// the reader and come back.
    pub fn failed(&mut self, ident: Option<String>) {
        if let Some(ident) = ident {
            self.interrupted.insert(ident);
        }
        self.must_leave = true;
    }

    /// A new request for a card, after an error or not.
    pub fn request(&mut self, after_error: bool) {
        self.must_leave = after_error;
    }

    pub fn judge(&mut self, poll: CardPoll) -> CardDecision {
        match poll {
            CardPoll::NoReader => {
                self.must_leave = false;
                CardDecision::Wait(CardState::NoReader)
            }
            CardPoll::Empty => {
                self.must_leave = false;
                CardDecision::Wait(CardState::Empty)
            }
            CardPoll::Problem(e) => CardDecision::Wait(CardState::Problem(e)),
            CardPoll::Card { ident, .. } if self.must_leave => {
                CardDecision::Wait(CardState::Problem(format!(
                    "card {ident}: remove it first, then insert it (or a spare) again"
                )))
            }
            CardPoll::Card { ident, holds_keys } => {
                let started_here = self.interrupted.contains(&ident);
                if holds_keys && !started_here {
                    CardDecision::Wait(CardState::NotBlank(ident))
                } else {
                    CardDecision::Use {
                        ident,
                        may_hold_keys: started_here,
                    }
                }
            }
        }
    }
}

/// When a plan stick is read: a plan the flow refused is not offered again until the stick
/// has been taken out (so a corrected plan is a new insertion, checked again by the holders).
#[derive(Clone, Debug, Default)]
pub struct PlanPolicy {
    refused: Option<String>,
}

/// What to do with what the plan-stick search shows.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PlanDecision {
    /// Keep waiting; the page shows this status.
    Wait(String),
    /// Hand this plan to the flow.
    Read { text: String, location: String },
}

impl PlanPolicy {
    /// The flow refused `text`.
    pub fn refused(&mut self, text: String) {
        self.refused = Some(text);
    }

    pub fn judge(&mut self, poll: PlanPoll) -> PlanDecision {
        match poll {
            PlanPoll::Found { text, location } => {
                if self.refused.as_deref() == Some(text.as_str()) {
                    PlanDecision::Wait(format!(
                        "{location}: still the refused plan; remove the stick"
                    ))
                } else {
                    PlanDecision::Read { text, location }
                }
            }
            PlanPoll::Waiting(w) => {
                self.refused = None;
                PlanDecision::Wait(w)
            }
            PlanPoll::Problem(e) => PlanDecision::Wait(e),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn card(ident: &str, holds_keys: bool) -> CardPoll {
        CardPoll::Card {
            ident: ident.into(),
            holds_keys,
        }
    }

    #[test]
    fn a_card_holding_keys_is_refused_unless_this_ceremony_started_on_it() {
        let mut p = CardPolicy::default();
        assert_eq!(
            p.judge(card("A", true)),
            CardDecision::Wait(CardState::NotBlank("A".into()))
        );
        assert_eq!(
            p.judge(card("B", false)),
            CardDecision::Use {
                ident: "B".into(),
                may_hold_keys: false
            }
        );
        // B's provisioning fails part way: it holds keys now, and must leave first.
        p.failed(Some("B".into()));
        assert!(matches!(
            p.judge(card("B", true)),
            CardDecision::Wait(CardState::Problem(m)) if m.contains("remove it first")
        ));
        assert_eq!(
            p.judge(CardPoll::Empty),
            CardDecision::Wait(CardState::Empty)
        );
        assert_eq!(
            p.judge(card("B", true)),
            CardDecision::Use {
                ident: "B".into(),
                may_hold_keys: true
            }
        );
        assert_eq!(
            p.judge(card("A", true)),
            CardDecision::Wait(CardState::NotBlank("A".into()))
        );
    }

    #[test]
    fn a_refused_plan_is_read_again_only_after_the_stick_left() {
        let mut p = PlanPolicy::default();
        let found = || PlanPoll::Found {
            text: "plan".into(),
            location: "sdb1".into(),
        };
        assert!(matches!(p.judge(found()), PlanDecision::Read { .. }));
        p.refused("plan".into());
        assert!(
            matches!(p.judge(found()), PlanDecision::Wait(m) if m.contains("remove the stick"))
        );
        assert_eq!(
            p.judge(PlanPoll::Waiting("no stick".into())),
            PlanDecision::Wait("no stick".into())
        );
        assert!(matches!(p.judge(found()), PlanDecision::Read { .. }));
    }
}
