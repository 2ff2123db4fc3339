//! The ceremony as a state machine: events in, effects out, no I/O of its own (a sketch of the
//! design's intent on top of [`Ceremony`]). The TUI turns keys and device results into
//! [`Event`]s and carries out the returned [`Effect`]s; devices (DRBG, cards) come in with the
//! events that need them. Effects carry public data only, except `WriteFiles`, whose files are
//! all public too (sealed messages, certificates, transcript).
//!
//! Steps: attest -> plan -> entropy -> keys (+ seal) -> cards -> verify -> write -> transcript
//! (final words confirmed) -> wipe.

use crate::card::LocationCard;
use crate::ceremony::{CardView, Ceremony, FinishView, KeysView, NextAction, Record, VerifyView};
use crate::plan::PlanSummary;
use crate::record::{Note, WitnessConfirm};
use crate::rng::SecretRng;
use crate::storage::{OutputFile, WriteReport};

/// Where the flow is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Step {
    Attest,
    Plan,
    Entropy,
    Keys,
    Cards,
    Verify,
    Write,
    Transcript,
    Wipe,
    Aborted,
}

/// Something that happened outside the core.
pub enum Event<'a> {
    /// Boot attestation values read, e.g. `image.iso-sha256`.
    Attested(Vec<Note>),
    /// A witness confirmed what is on screen.
    Confirmed { witness: String },
    /// The plan file's text was read from the plan stick.
    PlanRead(String),
    /// Entropy gathered: the public report and commitments, and the DRBG.
    EntropyReady {
        report: Vec<Note>,
        rng: &'a mut dyn SecretRng,
    },
    /// A blank card was inserted for the requested holder and card.
    CardInserted(&'a mut dyn LocationCard),
    /// Run the verification with the DRBG (fresh nonce, random subsets).
    VerifyNow(&'a mut dyn SecretRng),
    /// The files were written (or not).
    Written(Result<WriteReport, String>),
    /// Stop the ceremony.
    Abort { reason: String },
}

/// What the outside should do or show next.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Effect {
    /// Show the attestation values and ask witnesses to confirm.
    ConfirmAttestation,
    /// Ask for the plan stick.
    RequestPlan,
    /// Show the plan (with its hash as words) and ask witnesses to confirm.
    ConfirmPlan(PlanSummary),
    /// Gather entropy and send `EntropyReady`.
    RequestEntropy,
    /// Show the root fingerprint (words) and location fingerprints; witnesses confirm.
    ConfirmKeys(KeysView),
    /// Ask for a blank card.
    RequestCard {
        holder: u8,
        card: u8,
        holder_name: String,
        cards_for_holder: u8,
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
    /// Wipe secrets (already dropped in the core) and power off.
    WipeAndPowerOff,
    /// Show an error; the flow stays where it was (or is aborted).
    Error(String),
}

/// The ceremony flow.
pub struct Flow {
    step: Step,
    attestation: Vec<Record>,
    ceremony: Option<Ceremony>,
    final_view: Option<FinishView>,
    files: Vec<OutputFile>,
}

impl Default for Flow {
    fn default() -> Self {
        Self::new()
    }
}

impl Flow {
    /// A flow at its first step, waiting for the boot attestation.
    pub fn new() -> Self {
        Self {
            step: Step::Attest,
            attestation: Vec::new(),
            ceremony: None,
            final_view: None,
            files: Vec::new(),
        }
    }

    /// The current step.
    pub fn step(&self) -> Step {
        self.step
    }

    /// The ceremony, once the plan is accepted (for its transcript and plan).
    pub fn ceremony(&self) -> Option<&Ceremony> {
        self.ceremony.as_ref()
    }

    fn c(&mut self) -> &mut Ceremony {
        self.ceremony.as_mut().expect("present after the plan step")
    }

    fn request_card_or_verify(&self) -> Effect {
        match self.ceremony.as_ref().map(Ceremony::next_action) {
            Some(NextAction::InsertCard {
                holder,
                card,
                holder_name,
                cards_for_holder,
            }) => Effect::RequestCard {
                holder,
                card,
                holder_name,
                cards_for_holder,
            },
            _ => Effect::RequestVerify,
        }
    }

    fn confirm(&mut self, witness: &str, what: &str) -> Result<(), String> {
        self.c()
            .record(&Record::WitnessConfirm(WitnessConfirm {
                name: witness.to_owned(),
                step: what.to_owned(),
            }))
            .map(|_| ())
            .map_err(|e| e.to_string())
    }

    /// Handles one event; returns what to do next. An event that does not fit the step is
    /// refused with `Effect::Error` and changes nothing.
    pub fn handle(&mut self, event: Event<'_>) -> Vec<Effect> {
        if let Event::Abort { reason } = &event {
            // Dropping the ceremony zeroizes every secret.
            self.ceremony = None;
            self.step = Step::Aborted;
            return vec![
                Effect::Error(format!("aborted: {reason}")),
                Effect::WipeAndPowerOff,
            ];
        }
        let refuse = |step: Step| vec![Effect::Error(format!("not expected at step {step:?}"))];
        match (self.step, event) {
            (Step::Attest, Event::Attested(records)) if self.attestation.is_empty() => {
                self.attestation = records.into_iter().map(Record::Note).collect();
                vec![Effect::ConfirmAttestation]
            }
            (Step::Attest, Event::Confirmed { witness }) if !self.attestation.is_empty() => {
                self.attestation.push(Record::WitnessConfirm(WitnessConfirm {
                    name: witness,
                    step: "attestation".into(),
                }));
                self.step = Step::Plan;
                vec![Effect::RequestPlan]
            }
            (Step::Plan, Event::PlanRead(text)) if self.ceremony.is_none() => {
                match Ceremony::with_prior_records(&text, &self.attestation) {
                    Ok(c) => {
                        let summary = c.plan().summary();
                        self.ceremony = Some(c);
                        vec![Effect::ConfirmPlan(summary)]
                    }
                    Err(e) => vec![Effect::Error(e.to_string()), Effect::RequestPlan],
                }
            }
            (Step::Plan, Event::Confirmed { witness }) if self.ceremony.is_some() => {
                match self.confirm(&witness, "plan") {
                    Ok(()) => {
                        self.step = Step::Entropy;
                        vec![Effect::RequestEntropy]
                    }
                    Err(e) => vec![Effect::Error(e)],
                }
            }
            (Step::Entropy, Event::EntropyReady { report, rng }) => {
                for note in report {
                    if let Err(e) = self.c().record(&Record::Note(note)) {
                        return vec![Effect::Error(e.to_string()), Effect::RequestEntropy];
                    }
                }
                let keys = match self.c().generate_keys(rng) {
                    Ok(k) => k,
                    Err(e) => return vec![Effect::Error(e.to_string())],
                };
                // Sealing needs only public location keys; do it now so each card decrypts
                // its own real share during its single insertion.
                if let Err(e) = self.c().seal_shares(rng) {
                    return vec![Effect::Error(e.to_string())];
                }
                self.step = Step::Keys;
                vec![Effect::ConfirmKeys(keys)]
            }
            (Step::Keys, Event::Confirmed { witness }) => {
                match self.confirm(&witness, "root-fingerprint") {
                    Ok(()) => {
                        self.step = Step::Cards;
                        vec![self.request_card_or_verify()]
                    }
                    Err(e) => vec![Effect::Error(e)],
                }
            }
            (Step::Cards, Event::CardInserted(card)) => {
                let NextAction::InsertCard {
                    holder, card: n, ..
                } = self.c().next_action()
                else {
                    return refuse(Step::Cards);
                };
                match self.c().provision_card(holder, n, card) {
                    Ok(view) => {
                        let next = self.request_card_or_verify();
                        if next == Effect::RequestVerify {
                            self.step = Step::Verify;
                        }
                        vec![Effect::CardDone(view), next]
                    }
                    Err(e) => vec![Effect::Error(e.to_string()), self.request_card_or_verify()],
                }
            }
            (Step::Verify, Event::VerifyNow(rng)) => {
                let view = match self.c().verify(rng) {
                    Ok(v) => v,
                    Err(e) => return vec![Effect::Error(e.to_string())],
                };
                match self.c().finish() {
                    Ok((files, fin)) => {
                        self.final_view = Some(fin);
                        self.files = files.clone();
                        self.step = Step::Write;
                        vec![Effect::Verified(view), Effect::WriteFiles(files)]
                    }
                    Err(e) => vec![Effect::Error(e.to_string())],
                }
            }
            (Step::Write, Event::Written(result)) => match result {
                Ok(_) => {
                    self.step = Step::Transcript;
                    vec![Effect::ConfirmFinal(
                        self.final_view.clone().expect("set with the files"),
                    )]
                }
                Err(e) => vec![
                    Effect::Error(format!("writing failed: {e}; use another stick or folder")),
                    Effect::WriteFiles(self.files.clone()),
                ],
            },
            (Step::Transcript, Event::Confirmed { .. }) => {
                // The transcript is already signed; the confirmation is the witnesses' record
                // of the final words, made on paper.
                self.ceremony = None;
                self.step = Step::Wipe;
                vec![Effect::WipeAndPowerOff]
            }
            (step, _) => refuse(step),
        }
    }
}
