//! The generation ceremony as one state machine: events in, effects out, no I/O of its own.
//! The TUI turns keys and device results into [`Event`]s and carries out the returned
//! [`Effect`]s; devices (DRBG, cards) come in with the events that need them. Effects carry
//! public data only (`WriteFiles`' files are all public too: sealed messages, certificates,
//! transcript).
//!
//! Each state holds exactly its data (the ceremony core's phase types from
//! [`crate::ceremony`]); a transition consumes the state. One table, [`Flow::handle`], says
//! which event each state takes; any other event is a bug in the caller and fails closed: the
//! ceremony is aborted and every secret dropped.
//!
//! Steps ([`Step`], the one list the screens show): attest -> plan -> entropy -> keys (+ seal)
//! -> cards -> verify -> write -> transcript (final words confirmed) -> power off.

use crate::card::LocationCard;
use crate::ceremony::{
    Approved, CardView, CeremonyError, FinishView, Finished, KeysView, NextCard, Planned,
    Provisioned, Record, Sealed, VerifyView,
};
use crate::plan::PlanSummary;
use crate::record::{Note, WitnessConfirm};
use crate::rng::SecretRng;
use crate::storage::{OutputFile, WriteReport};

/// The steps of the generation ceremony, as the screens' header names and numbers them.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Step {
    /// Boot attestation values shown and confirmed by the witnesses.
    Attest,
    /// The plan read from the plan stick, shown with its hash, and confirmed.
    Plan,
    /// Entropy gathered and its public report recorded.
    Entropy,
    /// Keys generated and shares sealed; the root fingerprint confirmed.
    Keys,
    /// Each location card provisioned and test-decrypted, one insertion each.
    Cards,
    /// Recombination, M-subset and root-key self-test checks.
    Verify,
    /// The output files written to the data sticks.
    Write,
    /// The final transcript hash shown as words and confirmed.
    Transcript,
    /// Secrets dropped; power off (also where an aborted ceremony ends).
    PowerOff,
}

impl Step {
    /// Every step, in order.
    pub const ALL: [Step; 9] = [
        Step::Attest,
        Step::Plan,
        Step::Entropy,
        Step::Keys,
        Step::Cards,
        Step::Verify,
        Step::Write,
        Step::Transcript,
        Step::PowerOff,
    ];

    /// The step's name on screen (sealing is done with the keys: it needs only the public
    /// location keys).
    pub fn name(self) -> &'static str {
        match self {
            Step::Attest => "Boot attestation",
            Step::Plan => "Plan",
            Step::Entropy => "Entropy",
            Step::Keys => "Keys and sealing",
            Step::Cards => "Cards",
            Step::Verify => "Verify",
            Step::Write => "Write",
            Step::Transcript => "Transcript",
            Step::PowerOff => "Power off",
        }
    }

    /// 1-based position, for "step k of 9".
    pub fn number(self) -> usize {
        Step::ALL.iter().position(|s| *s == self).unwrap_or(0) + 1
    }
}

/// Something that happened outside the core.
pub enum Event<'a> {
    /// Boot attestation values read, e.g. `image.iso-sha256`.
    Attested(Vec<Note>),
    /// The witnesses confirmed what is on screen (key presses on the operator's keyboard).
    Confirmed {
        /// Who confirmed: witnesses' names or "the witnesses present"; written as a
        /// `witness.confirm` record, except for the final words (the transcript is signed).
        witness: String,
    },
    /// The plan file's text was read from the plan stick.
    PlanRead(String),
    /// Entropy gathered: the public report and commitments, and the DRBG.
    EntropyReady {
        /// Public records of the entropy gathered, written to the transcript before the keys.
        report: Vec<Note>,
        /// The seeded DRBG the keys, PINs and share polynomials are drawn from.
        rng: &'a mut dyn SecretRng,
    },
    /// The card the screen approved was inserted for the requested holder and card.
    CardInserted {
        /// The open card.
        card: &'a mut dyn LocationCard,
        /// What the screen approved, checked again on `card` before it is reset.
        approved: Approved,
    },
    /// Run the verification with the DRBG (fresh nonce, random subsets).
    VerifyNow(&'a mut dyn SecretRng),
    /// The files were written, or why not.
    Written(Result<WriteReport, WriteFailed>),
    /// Stop the ceremony.
    Abort {
        /// Why, as shown to the operator in [`FlowError::Aborted`].
        reason: String,
    },
}

impl Event<'_> {
    fn name(&self) -> &'static str {
        match self {
            Event::Attested(_) => "the attestation",
            Event::Confirmed { .. } => "a witness confirmation",
            Event::PlanRead(_) => "a plan",
            Event::EntropyReady { .. } => "entropy",
            Event::CardInserted { .. } => "a card",
            Event::VerifyNow(_) => "the verification",
            Event::Written(_) => "a write result",
            Event::Abort { .. } => "an abort",
        }
    }
}

/// Why writing the outputs failed (from the device layer, which knows sticks).
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct WriteFailed(pub Box<dyn std::error::Error + Send + Sync>);

impl WriteFailed {
    /// Wraps the device layer's error.
    pub fn new(e: impl std::error::Error + Send + Sync + 'static) -> Self {
        WriteFailed(Box::new(e))
    }
}

/// Why the flow refused something, up to the screen that explains it.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum FlowError {
    /// The plan was refused; the flow waits for another.
    #[error("{0}")]
    Plan(CeremonyError),
    /// A ceremony step refused (card, entropy record, verification, outputs).
    #[error("{0}")]
    Ceremony(#[from] CeremonyError),
    /// Writing failed; the same files can be written again.
    #[error("writing failed: {0}; use another stick or folder")]
    Write(WriteFailed),
    /// An event the state does not take: a bug in the caller. The ceremony was aborted.
    #[error(
        "{event} was not expected at step {step:?}: the ceremony was aborted and every secret wiped"
    )]
    OutOfOrder {
        /// The step the flow was at.
        step: Step,
        /// The unexpected event, described for the screen, e.g. "a card".
        event: &'static str,
    },
    /// The operator or the flow aborted.
    #[error("aborted: {0}")]
    Aborted(String),
}

/// What the outside should do or show next.
#[derive(Debug)]
pub enum Effect {
    /// Show the attestation values and ask witnesses to confirm.
    ConfirmAttestation,
    /// Ask for the plan stick.
    RequestPlan,
    /// Show the plan (with its hash as words) and ask witnesses to confirm.
    ConfirmPlan(Box<PlanSummary>),
    /// Gather entropy and send `EntropyReady`.
    RequestEntropy,
    /// Show the root fingerprint (words) and location fingerprints; witnesses confirm.
    ConfirmKeys(KeysView),
    /// Ask for a blank card; `done` of `total` cards are provisioned.
    RequestCard {
        /// Which holder's card, and which of their cards, to ask for.
        next: NextCard,
        /// Cards provisioned so far, over all holders.
        done: usize,
        /// Cards in the plan, over all holders.
        total: usize,
    },
    /// A card was provisioned and test-decrypted; remove it.
    CardDone(CardView),
    /// Send `VerifyNow`.
    RequestVerify,
    /// Verification passed.
    Verified(VerifyView),
    /// Write these files to every data stick (see [`crate::storage::write_all`]), then send
    /// `Written`.
    WriteFiles(Vec<OutputFile>),
    /// Show the final hash and words; witnesses write them down and confirm.
    ConfirmFinal(FinishView),
    /// Secrets are dropped; power off.
    WipeAndPowerOff,
    /// Show an error; the flow stays where it was, unless the error says it aborted.
    Error(FlowError),
}

/// Where the flow is. Each state holds exactly what it needs.
enum State {
    AwaitingAttestation,
    AttestationShown(Vec<Note>),
    AwaitingPlan(Vec<Record>),
    PlanShown(Planned),
    AwaitingEntropy(Planned),
    KeysShown(Sealed),
    Cards(Sealed),
    AwaitingVerify(Provisioned),
    /// The outputs exist and every secret is gone; they are written until that succeeds.
    Writing {
        finished: Finished,
        files: Vec<OutputFile>,
        view: FinishView,
    },
    FinalShown(Finished),
    Done,
    Aborted,
}

impl State {
    fn step(&self) -> Step {
        match self {
            State::AwaitingAttestation | State::AttestationShown(_) => Step::Attest,
            State::AwaitingPlan(_) | State::PlanShown(_) => Step::Plan,
            State::AwaitingEntropy(_) => Step::Entropy,
            State::KeysShown(_) => Step::Keys,
            State::Cards(_) => Step::Cards,
            State::AwaitingVerify(_) => Step::Verify,
            State::Writing { .. } => Step::Write,
            State::FinalShown(_) => Step::Transcript,
            State::Done | State::Aborted => Step::PowerOff,
        }
    }
}

/// The generation ceremony's flow.
pub struct Flow {
    state: State,
}

impl Default for Flow {
    fn default() -> Self {
        Self::new()
    }
}

fn confirmation(witness: String, step: &str) -> Record {
    Record::WitnessConfirm(WitnessConfirm {
        name: witness,
        step: step.to_owned(),
    })
}

/// The card to ask for next, or the verification once every card is done.
fn cards_or_verify(sealed: Sealed, effects: &mut Vec<Effect>) -> State {
    match sealed.next_card() {
        Some(next) => {
            let total = sealed.cards_total();
            let done = total - sealed.cards_missing().len();
            effects.push(Effect::RequestCard { next, done, total });
            State::Cards(sealed)
        }
        None => match sealed.cards_complete() {
            Ok(p) => {
                effects.push(Effect::RequestVerify);
                State::AwaitingVerify(p)
            }
            Err(r) => {
                // Only reached if sealing the PIN files failed: nothing can go on.
                effects.push(Effect::Error(FlowError::Ceremony(r.error)));
                effects.push(Effect::WipeAndPowerOff);
                State::Aborted
            }
        },
    }
}

impl Flow {
    /// A flow at its first step, waiting for the boot attestation.
    pub fn new() -> Self {
        Flow {
            state: State::AwaitingAttestation,
        }
    }

    /// The step the flow is at (what the screens' header shows).
    pub fn step(&self) -> Step {
        self.state.step()
    }

    /// Whether the flow was aborted (every secret dropped).
    pub fn aborted(&self) -> bool {
        matches!(self.state, State::Aborted)
    }

    /// Whether the flow is done (the final words were confirmed; every secret dropped).
    pub fn done(&self) -> bool {
        matches!(self.state, State::Done)
    }

    /// The transcript so far, once the plan is accepted.
    pub fn transcript(&self) -> Option<&crate::transcript::Transcript> {
        match &self.state {
            State::PlanShown(c) | State::AwaitingEntropy(c) => Some(c.transcript()),
            State::KeysShown(c) | State::Cards(c) => Some(c.transcript()),
            State::AwaitingVerify(c) => Some(c.transcript()),
            State::Writing { finished, .. } | State::FinalShown(finished) => {
                Some(finished.transcript())
            }
            _ => None,
        }
    }

    /// Handles one event; returns what to do next. This match is the whole transition table:
    /// an event a state does not take aborts the ceremony (fail closed).
    pub fn handle(&mut self, event: Event<'_>) -> Vec<Effect> {
        let state = std::mem::replace(&mut self.state, State::Aborted);
        let mut fx = Vec::new();
        self.state = match (state, event) {
            (_, Event::Abort { reason }) => {
                // The state, and every secret in it, is dropped here.
                fx.push(Effect::Error(FlowError::Aborted(reason)));
                fx.push(Effect::WipeAndPowerOff);
                State::Aborted
            }
            (State::AwaitingAttestation, Event::Attested(notes)) => {
                fx.push(Effect::ConfirmAttestation);
                State::AttestationShown(notes)
            }
            (State::AttestationShown(notes), Event::Confirmed { witness }) => {
                let mut prior: Vec<Record> = notes.into_iter().map(Record::Note).collect();
                prior.push(confirmation(witness, "attestation"));
                fx.push(Effect::RequestPlan);
                State::AwaitingPlan(prior)
            }
            (State::AwaitingPlan(prior), Event::PlanRead(text)) => {
                match Planned::with_prior_records(&text, &prior) {
                    Ok(c) => {
                        fx.push(Effect::ConfirmPlan(Box::new(c.plan().summary())));
                        State::PlanShown(c)
                    }
                    Err(e) => {
                        fx.push(Effect::Error(FlowError::Plan(e)));
                        fx.push(Effect::RequestPlan);
                        State::AwaitingPlan(prior)
                    }
                }
            }
            (State::PlanShown(mut c), Event::Confirmed { witness }) => {
                match c.record(&confirmation(witness, "plan")) {
                    Ok(_) => {
                        fx.push(Effect::RequestEntropy);
                        State::AwaitingEntropy(c)
                    }
                    Err(e) => {
                        fx.push(Effect::Error(e.into()));
                        State::PlanShown(c)
                    }
                }
            }
            (State::AwaitingEntropy(mut c), Event::EntropyReady { report, rng }) => {
                let recorded = report
                    .into_iter()
                    .try_for_each(|n| c.record(&Record::Note(n)).map(|_| ()));
                match recorded {
                    Err(e) => {
                        // A report the transcript refuses is a bug in the caller: stop.
                        fx.push(Effect::Error(e.into()));
                        fx.push(Effect::WipeAndPowerOff);
                        State::Aborted
                    }
                    Ok(()) => match c.generate_keys(rng) {
                        Err(r) => {
                            // Key derivation failing is a fault of this machine or build, not
                            // something to retry: stop.
                            fx.push(Effect::Error(r.error.into()));
                            fx.push(Effect::WipeAndPowerOff);
                            State::Aborted
                        }
                        // Sealing needs only public location keys; done now so that each card
                        // decrypts its own real share during its single insertion.
                        Ok((keyed, keys)) => match keyed.seal_shares(rng) {
                            Ok((sealed, _)) => {
                                fx.push(Effect::ConfirmKeys(keys));
                                State::KeysShown(sealed)
                            }
                            Err(r) => {
                                fx.push(Effect::Error(r.error.into()));
                                fx.push(Effect::WipeAndPowerOff);
                                State::Aborted
                            }
                        },
                    },
                }
            }
            (State::KeysShown(mut c), Event::Confirmed { witness }) => {
                match c.record(&confirmation(witness, "root-fingerprint")) {
                    Ok(_) => cards_or_verify(c, &mut fx),
                    Err(e) => {
                        fx.push(Effect::Error(e.into()));
                        State::KeysShown(c)
                    }
                }
            }
            (State::Cards(mut c), Event::CardInserted { card, approved }) => match c.next_card() {
                Some(next) => match c.provision_card(next.holder, next.card, card, &approved) {
                    Ok(view) => {
                        fx.push(Effect::CardDone(view));
                        cards_or_verify(c, &mut fx)
                    }
                    Err(e) => {
                        fx.push(Effect::Error(e.into()));
                        cards_or_verify(c, &mut fx)
                    }
                },
                None => cards_or_verify(c, &mut fx),
            },
            (State::AwaitingVerify(c), Event::VerifyNow(rng)) => match c.verify(rng) {
                Err(r) => {
                    // Nothing from this ceremony may be used; the operator aborts.
                    fx.push(Effect::Error(r.error.into()));
                    State::AwaitingVerify(*r.state)
                }
                Ok((verified, view)) => match verified.finish() {
                    Ok((finished, files, fin)) => {
                        fx.push(Effect::Verified(view));
                        fx.push(Effect::WriteFiles(files.clone()));
                        State::Writing {
                            finished,
                            files,
                            view: fin,
                        }
                    }
                    Err(r) => {
                        fx.push(Effect::Error(r.error.into()));
                        fx.push(Effect::WipeAndPowerOff);
                        State::Aborted
                    }
                },
            },
            (
                State::Writing {
                    finished,
                    files,
                    view,
                },
                Event::Written(result),
            ) => match result {
                Ok(_) => {
                    fx.push(Effect::ConfirmFinal(view));
                    State::FinalShown(finished)
                }
                Err(e) => {
                    fx.push(Effect::Error(FlowError::Write(e)));
                    fx.push(Effect::WriteFiles(files.clone()));
                    State::Writing {
                        finished,
                        files,
                        view,
                    }
                }
            },
            (State::FinalShown(_), Event::Confirmed { .. }) => {
                // The transcript is already signed; the confirmation is the witnesses' record
                // of the final words, made on paper.
                fx.push(Effect::WipeAndPowerOff);
                State::Done
            }
            (state, event) => {
                // Fail closed: drop the state (and every secret in it).
                fx.push(Effect::Error(FlowError::OutOfOrder {
                    step: state.step(),
                    event: event.name(),
                }));
                fx.push(Effect::WipeAndPowerOff);
                State::Aborted
            }
        };
        fx
    }
}
