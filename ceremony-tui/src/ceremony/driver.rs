//! The generation ceremony from the first attestation page to power-off: the ceremony core's
//! [`Flow`] decides what comes next; this driver shows each step's page, waits for keys and
//! devices, and feeds what happened back to the flow.
//!
//! Devices come in through [`Devices`] (real hardware in the image, in-process virtual cards
//! and a folder in a rehearsal, scripted doubles in tests) and the screen through [`Console`].

use super::intent::{self, Intent};
use super::page::Page;
use super::policy::{CardDecision, CardPolicy, PlanDecision, PlanPolicy};
use super::screens::{self, Attestation, CardState};
use crate::entropy_check::EntropyView;
use crate::keys::Key;
use ceremony::attest::{self, QuoteOutcome, Reading, Verdicts};
use ceremony::card::CardSerial;
use ceremony::card::{LocationCard, PersonalCard};
use ceremony::ceremony::{Approved, NextCard, VerifyView};
use ceremony::flow::{Effect, Event, Flow, FlowError, WriteFailed};
use ceremony::record::Note;
use ceremony::rng::SecretRng;
use ceremony::secret::Pin;
use ceremony::storage::{OutputFile, WriteReport};
use ceremony::witness::{PinRequest, WitnessSigning};
use std::collections::VecDeque;
use std::io;
use std::time::Duration;

/// Where pages are shown and keys come from.
pub trait Console {
    fn show(&mut self, page: &Page) -> io::Result<()>;
    /// The next key, or `None` after `wait` without one.
    fn next_key(&mut self, wait: Duration) -> io::Result<Option<Key>>;
}

/// What the plan-stick search sees now.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PlanPoll {
    /// Nothing yet; what was looked at.
    Waiting(String),
    Found {
        text: String,
        location: String,
    },
    /// A stick is there but cannot be used (e.g. two plan files): what to do.
    Problem(String),
}

/// What the card reader holds now.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CardPoll {
    NoReader,
    Empty,
    Card { ident: String, holds_keys: bool },
    Problem(String),
}

/// Entropy gathered under the ceremony's policy.
pub struct Gathered {
    pub view: EntropyView,
    /// Public values for the transcript (sources, results, commitments).
    pub records: Vec<ceremony::record::Note>,
    /// The seeded DRBG.
    pub rng: Box<dyn SecretRng>,
}

impl From<crate::entropy_run::Outcome> for Gathered {
    fn from(o: crate::entropy_run::Outcome) -> Self {
        Gathered {
            view: o.view,
            records: o.records,
            rng: Box::new(o.drbg),
        }
    }
}

/// The hardware the ceremony uses.
pub trait Devices {
    /// What can go wrong with these devices; shown to the operator as it says.
    type Error: std::error::Error + Send + Sync + 'static;

    /// A rehearsal: every page says so.
    fn rehearsal(&self) -> bool {
        false
    }
    fn attest(&mut self) -> Attestation;
    fn poll_plan(&mut self) -> PlanPoll;
    /// Quotes PCR 0-7 with the TPM, the plan hash as qualifying data; or says why there is no
    /// quote. The driver judges it against the values shown at the attestation and records it
    /// ([`crate::quote::record`]).
    fn quote(&mut self, plan_hash: &[u8; 32]) -> Result<tpm_quote::Quote, String>;
    /// Gathers entropy under the ceremony's policy (virtual devices counting only when the
    /// plan allows them), reporting progress; on refusal returns the view that says why.
    fn gather_entropy(
        &mut self,
        allow_virtual_hardware: bool,
        progress: &mut dyn FnMut(&EntropyView),
    ) -> Result<Gathered, EntropyView>;
    fn poll_card(&mut self) -> CardPoll;
    /// Opens the card in the reader as a witness's personal card (for their signature).
    fn open_personal_card(&mut self) -> Result<Box<dyn PersonalCard>, Self::Error>;
    /// Opens the card that [`Devices::poll_card`] last saw.
    fn open_card(&mut self) -> Result<Box<dyn LocationCard>, Self::Error>;
    /// Says which holder the card opened next is for, before [`Devices::open_card`]: the
    /// image names the holder in the progress journal PID 1 shows if this program dies.
    fn card_for(&mut self, _next: &NextCard) {}
    /// Data sticks ready to be written, by label.
    fn poll_sticks(&mut self) -> Result<Vec<String>, Self::Error>;
    /// Writes `files` under `dir` on every stick (see `ceremony::storage::write_all`), then
    /// syncs and unmounts them.
    fn write(&mut self, dir: &str, files: &[OutputFile]) -> Result<WriteReport, Self::Error>;
    /// A key the pages do not use (a rehearsal uses some to insert virtual cards).
    fn on_key(&mut self, _key: Key) -> bool {
        false
    }
    /// Footer entries for those keys.
    fn key_hints(&self) -> Vec<(String, String)> {
        Vec::new()
    }
}

/// How the ceremony ended. Either way every secret has been dropped and wiped.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Outcome {
    Completed,
    Aborted(String),
}

enum Stop {
    Abort(String),
    Io(io::Error),
}

impl From<io::Error> for Stop {
    fn from(e: io::Error) -> Self {
        Stop::Io(e)
    }
}

type R<T> = Result<T, Stop>;

const TICK: Duration = Duration::from_millis(300);

struct Driver<'a, C: Console, D: Devices> {
    con: &'a mut C,
    dev: &'a mut D,
    flow: Flow,
    ceremony_id: Option<String>,
    /// The plan lets virtual devices count as hardware: every page from then on says so.
    virtual_hardware: bool,
    /// The confirmed plan's hash: the TPM quote's qualifying data.
    plan_hash: Option<[u8; 32]>,
    /// The PCR values and verdicts the witnesses confirmed at the attestation.
    readings: Option<[Reading; 8]>,
    /// The confirmed plan's `[machine]` table, if it has one.
    machine: Option<ceremony::plan::Machine>,
    /// Where the plan was read from, for the plan page.
    plan_location: String,
    rng: Option<Box<dyn SecretRng>>,
    verified: Option<VerifyView>,
    /// The last error the flow reported, shown by the next page that waits.
    error: Option<String>,
    cards: CardPolicy,
    plans: PlanPolicy,
    /// The card being provisioned, while the flow works on it.
    card_in_hand: Option<String>,
    /// The plan text last handed to the flow (to wait for a change after a refusal).
    plan_text: Option<String>,
    /// What the write step wrote, per stick.
    written: Vec<String>,
    /// The witnesses' signature files, once the signing step is done (kept for a retried
    /// write, so nobody signs twice).
    witness_files: Option<Vec<OutputFile>>,
}

/// The attestation's pages and which one is shown.
struct AttestWait {
    pages: Vec<Page>,
    shown: usize,
}

/// Looking for the plan stick.
struct PlanWait {
    status: String,
    found: Option<(String, String)>,
}

/// Each witness's confirmation of the plan.
struct WitnessWait {
    confirmed: Vec<bool>,
}

/// Waiting for a card for one holder.
struct CardWait {
    state: CardState,
}

/// Looking for data sticks.
struct StickWait {
    sticks: Vec<String>,
    scan_error: Option<String>,
}

/// Runs the ceremony to its end. Returns when the operator may power off.
pub fn run(con: &mut impl Console, dev: &mut impl Devices) -> io::Result<Outcome> {
    let mut d = Driver {
        con,
        dev,
        flow: Flow::new(),
        ceremony_id: None,
        virtual_hardware: false,
        plan_hash: None,
        readings: None,
        machine: None,
        witness_files: None,
        plan_location: String::new(),
        rng: None,
        verified: None,
        error: None,
        cards: CardPolicy::default(),
        plans: PlanPolicy::default(),
        card_in_hand: None,
        plan_text: None,
        written: Vec::new(),
    };
    let outcome = match d.main() {
        Ok(()) => Outcome::Completed,
        Err(Stop::Io(e)) => return Err(e),
        Err(Stop::Abort(reason)) => {
            d.flow.handle(Event::Abort {
                reason: reason.clone(),
            });
            Outcome::Aborted(reason)
        }
    };
    d.rng = None;
    let mut page = screens::power_off_page(match &outcome {
        Outcome::Aborted(r) => Some(r),
        Outcome::Completed => None,
    });
    loop {
        d.show(&mut page)?;
        if let Some(k) = d.con.next_key(Duration::from_secs(60))?
            && intent::power_off(k) == Intent::PowerOff
        {
            return Ok(outcome);
        }
    }
}

/// The witnesses present confirmed by key presses (not by name: no one is identified).
const PRESENT: &str = "the witnesses present";

impl<C: Console, D: Devices> Driver<'_, C, D> {
    fn show(&mut self, page: &mut Page) -> io::Result<()> {
        page.ceremony_id = self.ceremony_id.clone();
        page.rehearsal = self.dev.rehearsal();
        page.virtual_hardware = self.virtual_hardware;
        for (k, w) in self.dev.key_hints() {
            if !page.keys.iter().any(|(kk, _)| *kk == k) {
                page.keys.push((k, w));
            }
        }
        self.con.show(page)
    }

    /// Shows the page `view` builds until `on_intent` or `tick` gives a result. Keys become
    /// intents through `keys` (the page's bindings, [`intent`]); `Abort` asks first.
    fn wait<S, T>(
        &mut self,
        state: &mut S,
        keys: fn(Key) -> Intent,
        mut view: impl FnMut(&Self, &S) -> Page,
        mut on_intent: impl FnMut(&mut Self, &mut S, Intent) -> Option<T>,
        mut tick: impl FnMut(&mut Self, &mut S) -> Option<T>,
    ) -> R<T> {
        loop {
            if let Some(t) = tick(self, state) {
                return Ok(t);
            }
            let mut page = view(self, state);
            self.show(&mut page)?;
            let Some(key) = self.con.next_key(TICK)? else {
                continue;
            };
            match keys(key) {
                Intent::Abort => self.confirm_abort()?,
                Intent::Other => {
                    self.dev.on_key(key);
                }
                i => {
                    if let Some(t) = on_intent(self, state, i) {
                        return Ok(t);
                    }
                }
            }
        }
    }

    /// A page that waits for the witnesses' Y (or an abort).
    fn confirm_page(&mut self, keys: fn(Key) -> Intent, page: Page) -> R<()> {
        self.wait(
            &mut (),
            keys,
            |_, _| page.clone(),
            |_, _, i| (i == Intent::Confirm).then_some(()),
            |_, _| None,
        )
    }

    fn confirm_abort(&mut self) -> R<()> {
        let mut page = screens::abort_confirm_page(self.flow.step());
        loop {
            self.show(&mut page)?;
            match self
                .con
                .next_key(Duration::from_secs(60))?
                .map(intent::abort_question)
            {
                Some(Intent::Abort) => {
                    return Err(Stop::Abort(format!(
                        "aborted by the operator at step {}",
                        self.flow.step().name()
                    )));
                }
                Some(Intent::Cancel) => return Ok(()),
                _ => {}
            }
        }
    }

    fn main(&mut self) -> R<()> {
        self.show(&mut screens::reading_attestation_page(false))?;
        let mut attestation = self.dev.attest();
        // Read again on request (a boot stick that was slow to appear) until confirmed.
        while self.confirm_attestation(&attestation)? == Intent::ReadAgain {
            self.show(&mut screens::reading_attestation_page(true))?;
            attestation = self.dev.attest();
        }
        self.readings = Some(readings(&attestation));
        let mut pending: VecDeque<Effect> = self
            .flow
            .handle(Event::Attested(attestation.records()))
            .into();
        while let Some(effect) = pending.pop_front() {
            let next = match effect {
                Effect::ConfirmAttestation => self.flow.handle(Event::Confirmed {
                    witness: PRESENT.into(),
                }),
                Effect::RequestPlan => {
                    let text = self.wait_plan()?;
                    self.flow.handle(Event::PlanRead(text))
                }
                Effect::ConfirmPlan(summary) => {
                    self.ceremony_id = Some(summary.ceremony_id.clone());
                    self.virtual_hardware = summary.allow_virtual_hardware;
                    self.machine = summary.machine.clone();
                    self.plan_hash = ceremony::hex::decode(&summary.hash_hex)
                        .and_then(|h| <[u8; 32]>::try_from(h).ok());
                    let names = self.confirm_plan(&summary)?;
                    self.flow.handle(Event::Confirmed { witness: names })
                }
                Effect::RequestEntropy => {
                    // The quote first: it binds the PCR values shown at the attestation to the
                    // plan just confirmed, before anything secret exists. Then the boot is
                    // judged against the plan; anything not PASS stops here until the
                    // witnesses record a deviation.
                    let plan_hash = self.plan_hash.expect("the plan was confirmed");
                    let quote = self.dev.quote(&plan_hash);
                    let mut report =
                        vec![crate::quote::record(quote.as_ref().map_err(String::as_str))];
                    report.extend(self.judge_boot(&plan_hash, quote.as_ref())?);
                    let g = self.entropy()?;
                    let rng = self.rng.insert(g.rng);
                    report.extend(g.records);
                    self.flow.handle(Event::EntropyReady {
                        report,
                        rng: rng.as_mut(),
                    })
                }
                Effect::ConfirmKeys(keys) => {
                    let sealed = keys.locations.len();
                    self.confirm_page(intent::confirm, screens::keys_page(&keys, sealed))?;
                    self.flow.handle(Event::Confirmed {
                        witness: PRESENT.into(),
                    })
                }
                Effect::RequestCard { next, done, total } => {
                    self.insert_card(&next, done, total)?
                }
                Effect::CardDone(view) => {
                    self.error = None;
                    self.wait(
                        &mut (),
                        |_| Intent::Other,
                        |_, _| screens::card_done_page(&view),
                        |_, _, _| None,
                        |d, _| (!matches!(d.dev.poll_card(), CardPoll::Card { .. })).then_some(()),
                    )?;
                    self.card_in_hand = None;
                    Vec::new()
                }
                Effect::RequestVerify => {
                    self.show(&mut screens::verify_page(None))?;
                    match self.rng.as_mut() {
                        Some(rng) => self.flow.handle(Event::VerifyNow(rng.as_mut())),
                        None => {
                            return Err(Stop::Abort(
                                "the verification was asked for before any entropy".into(),
                            ));
                        }
                    }
                }
                Effect::Verified(v) => {
                    self.verified = Some(v);
                    Vec::new()
                }
                Effect::WriteFiles(mut files) => {
                    // The core dropped its secrets when it made the files; so does the driver.
                    self.rng = None;
                    // The witnesses sign the final transcript before anything is written.
                    if self.witness_files.is_none() {
                        self.witness_files = Some(self.witness_signatures(&files)?);
                    }
                    files.extend(self.witness_files.iter().flatten().cloned());
                    let r = self.write(&files)?;
                    if r.is_ok() {
                        self.error = None;
                    }
                    self.flow.handle(Event::Written(r))
                }
                Effect::ConfirmFinal(fin) => {
                    let written = std::mem::take(&mut self.written);
                    let signatures = self.witness_files.as_ref().map_or(0, Vec::len);
                    self.confirm_page(
                        intent::final_words,
                        screens::final_page(&fin, &written, signatures),
                    )?;
                    self.flow.handle(Event::Confirmed {
                        witness: PRESENT.into(),
                    })
                }
                Effect::WipeAndPowerOff => {
                    return match self.error.take() {
                        Some(e) if self.flow.aborted() => Err(Stop::Abort(e)),
                        _ => Ok(()),
                    };
                }
                Effect::Error(e) => {
                    if let Some(ident) = self.card_in_hand.take() {
                        self.cards.failed(Some(ident));
                    }
                    if let (FlowError::Plan(_), Some(text)) = (&e, self.plan_text.take()) {
                        self.plans.refused(text);
                    }
                    self.error = Some(e.to_string());
                    Vec::new()
                }
            };
            // Effects the flow returns come before what was already queued.
            for e in next.into_iter().rev() {
                pending.push_front(e);
            }
        }
        // The flow stopped without a way on (e.g. key generation failed): say so, then abort.
        let what = self
            .error
            .take()
            .unwrap_or_else(|| "the ceremony stopped".into());
        let page = screens::stopped_page(self.flow.step(), &what);
        self.wait(
            &mut (),
            intent::waiting,
            |_, _| page.clone(),
            |_, _, _| None,
            |_, _| None,
        )?;
        Err(Stop::Abort(what))
    }

    fn confirm_attestation(&mut self, a: &Attestation) -> R<Intent> {
        let pages = screens::attestation_pages(a);
        let mut st = AttestWait { pages, shown: 0 };
        self.wait(
            &mut st,
            intent::attestation,
            |_, st| st.pages[st.shown].clone(),
            |_, st, i| {
                let n = st.pages.len();
                match i {
                    Intent::NextPage => st.shown = (st.shown + 1) % n,
                    Intent::PreviousPage => st.shown = (st.shown + n - 1) % n,
                    Intent::ReadAgain | Intent::Confirm => return Some(i),
                    _ => {}
                }
                None
            },
            |_, _| None,
        )
    }

    /// The boot judged against the plan: the final verdicts, and when one is not PASS, the
    /// deviation the witnesses agree on. Returns the records (`attest.verdicts`, and
    /// `attest.deviation` when there is one).
    fn judge_boot(
        &mut self,
        plan_hash: &[u8; 32],
        quote: Result<&tpm_quote::Quote, &String>,
    ) -> R<Vec<Note>> {
        let readings = self.readings.clone().expect("attested before the plan");
        let attested = readings.clone().map(|r| r.value);
        let outcome = QuoteOutcome::judge(quote.map_err(String::as_str), plan_hash, &attested);
        let verdicts = attest::judge(&readings, self.machine.as_ref(), &outcome);
        let mut error: Option<String> = None;
        loop {
            let page = screens::verdicts_page(&verdicts, &outcome, error.as_deref());
            let open = !verdicts.open().is_empty();
            let intent = self.wait(
                &mut (),
                intent::verdicts,
                |_, _| page.clone(),
                |_, _, i| match i {
                    Intent::Confirm if !open => Some(i),
                    Intent::Deviate if open => Some(i),
                    _ => None,
                },
                |_, _| None,
            )?;
            if intent == Intent::Confirm {
                return Ok(vec![verdicts.note()]);
            }
            match self.read_reason(&verdicts)? {
                Some(reason) => {
                    return Ok(vec![
                        verdicts.note(),
                        attest::deviation_note(&verdicts, &reason),
                    ]);
                }
                None => error = None,
            }
        }
    }

    /// The deviation's reason, typed on screen (public: shown as typed and recorded). Enter
    /// records it once it is a reason [`attest::check_reason`] accepts; Esc goes back.
    fn read_reason(&mut self, verdicts: &Verdicts) -> R<Option<String>> {
        let mut typed = String::new();
        let mut error: Option<String> = None;
        loop {
            let mut page = screens::deviation_page(verdicts, &typed, error.as_deref());
            self.show(&mut page)?;
            let Some(key) = self.con.next_key(TICK)? else {
                continue;
            };
            match key {
                Key::Enter => match attest::check_reason(&typed) {
                    Ok(r) => return Ok(Some(r.to_owned())),
                    Err(e) => error = Some(e.to_string()),
                },
                Key::Esc => return Ok(None),
                Key::Backspace => {
                    typed.pop();
                }
                Key::Char(c)
                    if (c.is_ascii_graphic() || c == ' ')
                        && typed.len() < *attest::REASON_LEN.end() =>
                {
                    typed.push(c)
                }
                _ => {}
            }
        }
    }

    fn wait_plan(&mut self) -> R<String> {
        let mut st = PlanWait {
            status: "looking for a plan stick".into(),
            found: None,
        };
        self.wait(
            &mut st,
            intent::waiting,
            |d, st| screens::plan_stick_page(d.error.as_deref(), &st.status),
            |_, _, _| None,
            |d, st| match d.plans.judge(d.dev.poll_plan()) {
                PlanDecision::Read { text, location } => {
                    st.found = Some((text, location));
                    Some(())
                }
                PlanDecision::Wait(status) => {
                    st.status = status;
                    None
                }
            },
        )?;
        let (text, location) = st.found.unwrap_or_default();
        self.plan_location = location;
        self.plan_text = Some(text.clone());
        Ok(text)
    }

    fn confirm_plan(&mut self, s: &ceremony::plan::PlanSummary) -> R<String> {
        let location = self.plan_location.clone();
        self.error = None;
        let mut st = WitnessWait {
            confirmed: vec![false; s.witnesses.len()],
        };
        self.wait(
            &mut st,
            intent::plan,
            |_, st| screens::plan_page(s, &st.confirmed, &location),
            |_, st, i| {
                match i {
                    Intent::Witness(n) => {
                        if let Some(c) = st.confirmed.get_mut(n) {
                            *c = true;
                        }
                    }
                    Intent::Confirm if st.confirmed.iter().all(|c| *c) => {
                        return Some(if s.witnesses.is_empty() {
                            "no witnesses named in the plan".to_owned()
                        } else {
                            s.witnesses.join(", ")
                        });
                    }
                    _ => {}
                }
                None
            },
            |_, _| None,
        )
    }

    /// The witnesses' signatures over the final transcript, when the plan gives witnesses
    /// certificates: each inserts their card and the operator presses S; Y goes on once all
    /// signed, or (unless the plan requires every signature) without the missing ones.
    fn witness_signatures(&mut self, files: &[OutputFile]) -> R<Vec<OutputFile>> {
        let mut s = match WitnessSigning::from_outputs(files) {
            Ok(s) => s,
            // The core always makes plan.toml and transcript.txt: a bug, shown, not hidden.
            Err(e) => return Err(Stop::Abort(format!("witness signatures: {e}"))),
        };
        if !s.any_certificates() {
            return Ok(Vec::new());
        }
        let final_hash = ceremony::transcript::Transcript::parse(s.transcript())
            .map(|t| ceremony::hex::encode(&t.final_hash()))
            .unwrap_or_else(|e| format!("unreadable ({e})"));
        let mut error: Option<String> = None;
        loop {
            let rows: Vec<screens::WitnessRow> = s
                .plan()
                .witnesses
                .iter()
                .enumerate()
                .map(|(i, name)| screens::WitnessRow {
                    index: i + 1,
                    name: name.clone(),
                    signed_with: s
                        .signed()
                        .iter()
                        .find(|w| w.witness == i + 1)
                        .map(|w| w.serial.clone()),
                    has_certificate: s
                        .plan()
                        .witness(i + 1)
                        .is_some_and(|(_, certs)| !certs.is_empty()),
                })
                .collect();
            let mut page =
                screens::witness_page(&rows, &final_hash, s.required(), error.as_deref());
            self.show(&mut page)?;
            let Some(key) = self.con.next_key(TICK)? else {
                continue;
            };
            match intent::witness_signatures(key) {
                Intent::Abort => self.confirm_abort()?,
                Intent::Confirm => {
                    let all = rows.iter().all(|r| r.signed_with.is_some());
                    if all || !s.required() {
                        return Ok(s.output_files());
                    }
                    error = s.check_complete().err().map(|e| e.to_string());
                }
                Intent::Sign => {
                    error = match self.dev.open_personal_card() {
                        Err(e) => Some(format!("cannot open the card in the reader: {e}")),
                        Ok(mut card) => {
                            let mut console: io::Result<()> = Ok(());
                            // The first request after a refusal follows the default PIN's.
                            let mut asked = 0;
                            let r = s
                                .sign(card.as_mut(), &mut |req| {
                                    let refused = match (req.after_wrong_pin, asked) {
                                        (false, _) => screens::PinRefused::Nothing,
                                        (true, 0) => screens::PinRefused::Default,
                                        (true, _) => screens::PinRefused::Typed,
                                    };
                                    asked += 1;
                                    match self.read_pin(req, refused) {
                                        Ok(pin) => pin,
                                        Err(e) => {
                                            console = Err(e);
                                            None
                                        }
                                    }
                                })
                                .map(|_| ());
                            console?;
                            r.err().map(|e| e.to_string())
                        }
                    };
                }
                _ => {
                    self.dev.on_key(key);
                }
            }
        }
    }

    /// Reads a witness card's PIN blind: nothing is echoed; Esc gives up on this card.
    fn read_pin(
        &mut self,
        req: &PinRequest,
        refused: screens::PinRefused,
    ) -> io::Result<Option<Pin>> {
        // Room for the longest PIN, so the buffer never moves and leaves a copy behind; wiped
        // however this returns (a console error included).
        let mut typed = zeroize::Zeroizing::new(String::with_capacity(Pin::MAX + 1));
        let mut page = screens::pin_page(&req.name, &req.serial, req.retries_left, refused);
        loop {
            self.show(&mut page)?;
            let Some(key) = self.con.next_key(TICK)? else {
                continue;
            };
            match key {
                // Pin takes the String and wipes it when dropped.
                Key::Enter if !typed.is_empty() => {
                    return Ok(Some(Pin::from_string(std::mem::take(&mut *typed))));
                }
                Key::Esc => return Ok(None),
                Key::Backspace => {
                    typed.pop();
                }
                Key::Char(c) if c.is_ascii_graphic() && typed.len() < Pin::MAX => typed.push(c),
                _ => {}
            }
        }
    }

    fn entropy(&mut self) -> R<Gathered> {
        loop {
            self.show(&mut screens::entropy_page(&EntropyView::looking()))?;
            let rehearsal = self.dev.rehearsal();
            let id = self.ceremony_id.clone();
            let virtual_hardware = self.virtual_hardware;
            let con = &mut *self.con;
            let result = self.dev.gather_entropy(virtual_hardware, &mut |v| {
                let mut p = screens::entropy_page(v);
                p.rehearsal = rehearsal;
                p.virtual_hardware = virtual_hardware;
                p.ceremony_id = id.clone();
                let _ = con.show(&p);
            });
            match result {
                Ok(g) => {
                    let page = screens::entropy_passed_page(&g.view);
                    self.wait(
                        &mut (),
                        intent::entropy_passed,
                        |_, _| page.clone(),
                        |_, _, i| (i == Intent::GoOn).then_some(()),
                        |_, _| None,
                    )?;
                    return Ok(g);
                }
                Err(view) => {
                    let page = screens::entropy_refused_page(&view);
                    self.wait(
                        &mut (),
                        intent::refused,
                        |_, _| page.clone(),
                        |_, _, i| (i == Intent::Retry).then_some(()),
                        |_, _| None,
                    )?;
                }
            }
        }
    }

    fn insert_card(&mut self, next: &NextCard, done: usize, total: usize) -> R<Vec<Effect>> {
        let request = screens::CardRequest {
            holder: next.holder,
            card: next.card,
            name: next.holder_name.clone(),
            cards: next.cards_for_holder,
            done,
            total,
        };
        self.cards.request(self.error.is_some());
        let mut st = CardWait {
            state: CardState::Empty,
        };
        let (ident, may_hold_keys) = self.wait(
            &mut st,
            intent::waiting,
            |d, st| screens::card_request_page(&request, &st.state, d.error.as_deref()),
            |_, _, _| None,
            |d, st| {
                let poll = d.dev.poll_card();
                match d.cards.judge(poll) {
                    CardDecision::Use {
                        ident,
                        may_hold_keys,
                    } => Some((ident, may_hold_keys)),
                    CardDecision::Wait(state) => {
                        st.state = state;
                        None
                    }
                }
            },
        )?;
        self.show(&mut screens::card_busy_page(next.holder, next.card, &ident))?;
        self.dev.card_for(next);
        let mut device = match self.dev.open_card() {
            Ok(c) => c,
            Err(e) => {
                self.error = Some(format!("card {ident}: {e}"));
                return Ok(vec![Effect::RequestCard {
                    next: next.clone(),
                    done,
                    total,
                }]);
            }
        };
        let approved = Approved {
            serial: CardSerial(ident.clone()),
            may_hold_keys,
        };
        self.card_in_hand = Some(ident);
        Ok(self.flow.handle(Event::CardInserted {
            card: device.as_mut(),
            approved,
        }))
    }

    fn write(&mut self, files: &[OutputFile]) -> R<Result<WriteReport, WriteFailed>> {
        let verified = self.verified.clone();
        let n = files.len();
        let mut st = StickWait {
            sticks: Vec::new(),
            scan_error: None,
        };
        self.wait(
            &mut st,
            intent::write,
            |d, st| {
                screens::write_page(
                    verified.as_ref(),
                    &st.sticks,
                    n,
                    st.scan_error.as_deref(),
                    d.error.as_deref(),
                )
            },
            |_, st, i| (i == Intent::Write && !st.sticks.is_empty()).then_some(()),
            |d, st| {
                match d.dev.poll_sticks() {
                    Ok(s) => {
                        st.sticks = s;
                        st.scan_error = None;
                    }
                    Err(e) => st.scan_error = Some(e.to_string()),
                }
                None
            },
        )?;
        if st.sticks.is_empty() {
            return Ok(Err(WriteFailed::new(NoDataStick)));
        }
        self.show(&mut screens::writing_page(verified.as_ref(), &st.sticks, n))?;
        let dir = format!(
            "sherd-{}",
            self.ceremony_id
                .clone()
                .unwrap_or_else(|| "ceremony".into())
        );
        let r = self.dev.write(&dir, files).map_err(WriteFailed::new);
        if let Ok(report) = &r {
            self.written = report
                .volumes
                .iter()
                .map(|(v, p)| format!("{v}: {} files under {dir}/", p.len()))
                .collect();
        }
        Ok(r)
    }
}

/// The attestation's PCR values and verdicts as the core judges them after the plan; a PCR the
/// attestation did not list, or a value that is not 32 bytes of hex, is read as none.
fn readings(a: &Attestation) -> [Reading; 8] {
    std::array::from_fn(|i| {
        let line = a.pcrs.iter().find(|p| usize::from(p.index) == i);
        Reading {
            value: line
                .and_then(|p| p.value.as_deref())
                .and_then(hexstr::decode_array),
            verdict: line
                .and_then(|p| attest::Verdict::from_word(&p.verdict))
                .unwrap_or(attest::Verdict::Unknown),
        }
    })
}

/// W was pressed with no data stick in.
#[derive(Debug, thiserror::Error)]
#[error("no data stick is inserted")]
struct NoDataStick;
