//! The generation ceremony from the first attestation page to power-off: the ceremony core's
//! [`Flow`] decides what comes next; this driver shows each step's page, waits for keys and
//! devices, and feeds what happened back to the flow.
//!
//! Devices come in through [`Devices`] (real hardware in the image, in-process virtual cards
//! and a folder in a rehearsal, scripted doubles in tests) and the screen through [`Console`].

use super::page::Page;
use super::screens::{self, Attestation, CardState};
use crate::entropy_check::EntropyView;
use crate::keys::Key;
use ceremony::card::LocationCard;
use ceremony::ceremony::NextCard;
use ceremony::ceremony::VerifyView;
use ceremony::flow::{Effect, Event, Flow, Step, WriteFailed};
use ceremony::rng::SecretRng;
use ceremony::storage::{OutputFile, WriteReport};
use std::collections::{BTreeSet, VecDeque};
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
    /// Gathers entropy, reporting progress; on refusal returns the view that says why.
    fn gather_entropy(
        &mut self,
        progress: &mut dyn FnMut(&EntropyView),
    ) -> Result<Gathered, EntropyView>;
    fn poll_card(&mut self) -> CardPoll;
    /// Opens the card that [`Devices::poll_card`] last saw.
    fn open_card(&mut self) -> Result<Box<dyn LocationCard>, Self::Error>;
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

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Attest {
    Confirmed,
    ReadAgain,
}

const TICK: Duration = Duration::from_millis(300);

fn is_abort(k: Key) -> bool {
    matches!(k, Key::Char('a' | 'A'))
}

fn is_yes(k: Key) -> bool {
    matches!(k, Key::Char('y' | 'Y'))
}

struct Driver<'a, C: Console, D: Devices> {
    con: &'a mut C,
    dev: &'a mut D,
    flow: Flow,
    ceremony_id: Option<String>,
    plan_location: String,
    rng: Option<Box<dyn SecretRng>>,
    verified: Option<VerifyView>,
    /// The last error the flow reported, shown by the next page that waits.
    error: Option<String>,
    /// Cards whose provisioning failed part way in this ceremony: they may hold our keys, and
    /// are reset again when inserted.
    interrupted: BTreeSet<String>,
    card_in_hand: Option<String>,
    /// The plan text last handed to the flow (to wait for a change after a refusal).
    plan_text: Option<String>,
    /// What the write step wrote, per stick.
    written: Vec<String>,
}

/// Runs the ceremony to its end. Returns when the operator may power off.
pub fn run(con: &mut impl Console, dev: &mut impl Devices) -> io::Result<Outcome> {
    let mut d = Driver {
        con,
        dev,
        flow: Flow::new(),
        ceremony_id: None,
        plan_location: String::new(),
        rng: None,
        verified: None,
        error: None,
        interrupted: BTreeSet::new(),
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
        if let Some(Key::Char('p' | 'P')) = d.con.next_key(Duration::from_secs(60))? {
            return Ok(outcome);
        }
    }
}

impl<C: Console, D: Devices> Driver<'_, C, D> {
    fn show(&mut self, page: &mut Page) -> io::Result<()> {
        page.ceremony_id = self.ceremony_id.clone();
        page.rehearsal = self.dev.rehearsal();
        for (k, w) in self.dev.key_hints() {
            if !page.keys.iter().any(|(kk, _)| *kk == k) {
                page.keys.push((k, w));
            }
        }
        self.con.show(page)
    }

    /// Shows the page `view` builds until `on_key` or `tick` gives a result. `A` asks whether
    /// to abort (when `abortable`).
    fn wait<S, T>(
        &mut self,
        abortable: bool,
        state: &mut S,
        mut view: impl FnMut(&mut Self, &S) -> Page,
        mut on_key: impl FnMut(&mut Self, &mut S, Key) -> Option<T>,
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
            if abortable && is_abort(key) {
                self.confirm_abort()?;
                continue;
            }
            if let Some(t) = on_key(self, state, key) {
                return Ok(t);
            }
            self.dev.on_key(key);
        }
    }

    fn confirm_abort(&mut self) -> R<()> {
        let mut page = screens::abort_confirm_page(self.flow.step());
        loop {
            self.show(&mut page)?;
            match self.con.next_key(Duration::from_secs(60))? {
                Some(k) if is_yes(k) => {
                    return Err(Stop::Abort(format!(
                        "aborted by the operator at step {}",
                        self.flow.step().name()
                    )));
                }
                Some(Key::Char('n' | 'N') | Key::Esc) => return Ok(()),
                _ => {}
            }
        }
    }

    fn main(&mut self) -> R<()> {
        let mut page = Page::new(Step::Attest, "reading the boot attestation");
        page.bold("Reading the boot stick, the TPM and this machine...");
        self.show(&mut page)?;
        let mut attestation = self.dev.attest();
        // Read again on request (a boot stick that was slow to appear) until confirmed.
        while self.confirm_attestation(&attestation)? == Attest::ReadAgain {
            let mut page = Page::new(Step::Attest, "reading the boot attestation");
            page.bold("Reading the boot stick, the TPM and this machine again...");
            self.show(&mut page)?;
            attestation = self.dev.attest();
        }
        let mut pending: VecDeque<Effect> = self
            .flow
            .handle(Event::Attested(attestation.records()))
            .into();
        while let Some(effect) = pending.pop_front() {
            let next = match effect {
                Effect::ConfirmAttestation => self.flow.handle(Event::Confirmed {
                    witness: "the witnesses present".into(),
                }),
                Effect::RequestPlan => {
                    let text = self.wait_plan()?;
                    self.flow.handle(Event::PlanRead(text))
                }
                Effect::ConfirmPlan(summary) => {
                    self.ceremony_id = Some(summary.ceremony_id.clone());
                    let names = self.confirm_plan(&summary)?;
                    self.flow.handle(Event::Confirmed { witness: names })
                }
                Effect::RequestEntropy => {
                    let g = self.entropy()?;
                    let rng = self.rng.insert(g.rng);
                    self.flow.handle(Event::EntropyReady {
                        report: g.records,
                        rng: rng.as_mut(),
                    })
                }
                Effect::ConfirmKeys(keys) => {
                    let sealed = keys.locations.len();
                    self.wait(
                        true,
                        &mut (),
                        |_, _| screens::keys_page(&keys, sealed),
                        |_, _, k| is_yes(k).then_some(()),
                        |_, _| None,
                    )?;
                    self.flow.handle(Event::Confirmed {
                        witness: "the witnesses present".into(),
                    })
                }
                Effect::RequestCard { next, done, total } => {
                    self.insert_card(&next, done, total)?
                }
                Effect::CardDone(view) => {
                    self.error = None;
                    self.wait(
                        false,
                        &mut (),
                        |_, _| screens::card_done_page(&view),
                        |_, _, _| None,
                        |d, _| (!matches!(d.dev.poll_card(), CardPoll::Card { .. })).then_some(()),
                    )?;
                    self.card_in_hand = None;
                    Vec::new()
                }
                Effect::RequestVerify => {
                    self.show(&mut screens::verify_page(None))?;
                    let rng = self.rng.as_mut().expect("seeded at the entropy step");
                    self.flow.handle(Event::VerifyNow(rng.as_mut()))
                }
                Effect::Verified(v) => {
                    self.verified = Some(v);
                    Vec::new()
                }
                Effect::WriteFiles(files) => {
                    let r = self.write(&files)?;
                    if r.is_ok() {
                        self.error = None;
                    }
                    self.flow.handle(Event::Written(r))
                }
                Effect::ConfirmFinal(fin) => {
                    // Secrets are not needed past this point.
                    self.rng = None;
                    let written = std::mem::take(&mut self.written);
                    self.wait(
                        false,
                        &mut (),
                        |_, _| screens::final_page(&fin, &written),
                        |_, _, k| is_yes(k).then_some(()),
                        |_, _| None,
                    )?;
                    self.flow.handle(Event::Confirmed {
                        witness: "the witnesses present".into(),
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
                        self.interrupted.insert(ident);
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
        let step = self.flow.step();
        self.wait(
            false,
            &mut (),
            |_, _| {
                let mut p = screens::error_page(
                    step,
                    &what,
                    "Nothing has been written to any stick.",
                    "Press A to abort the ceremony; every secret is wiped.",
                );
                p.key("A", "abort");
                p
            },
            |_, _, k| is_abort(k).then_some(()),
            |_, _| None,
        )?;
        Err(Stop::Abort(what))
    }

    fn confirm_attestation(&mut self, a: &Attestation) -> R<Attest> {
        let pages = screens::attestation_pages(a);
        let n = pages.len();
        self.wait(
            true,
            &mut 0usize,
            |_, i| pages[*i].clone(),
            |_, i, k| {
                match k {
                    Key::Tab | Key::Right | Key::PageDown | Key::Char(' ') => *i = (*i + 1) % n,
                    Key::Left | Key::PageUp => *i = (*i + n - 1) % n,
                    Key::Char('r' | 'R') => return Some(Attest::ReadAgain),
                    k if is_yes(k) => return Some(Attest::Confirmed),
                    _ => {}
                }
                None
            },
            |_, _| None,
        )
    }

    fn wait_plan(&mut self) -> R<String> {
        // A plan the flow refused is not read again until the stick is removed.
        let refused = if self.error.is_some() {
            self.plan_text.take()
        } else {
            None
        };
        struct St {
            refused: Option<String>,
            status: String,
            found: Option<String>,
        }
        let mut st = St {
            refused,
            status: "looking for a plan stick".into(),
            found: None,
        };
        let text = self.wait(
            true,
            &mut st,
            |d, st| {
                let mut p = Page::new(Step::Plan, "the plan stick");
                p.bold("Insert the plan stick: a USB stick with sherd-plan.toml at its root.");
                p.line("It is mounted read-only; nothing on it is changed.");
                p.blank();
                if let Some(e) = &d.error {
                    p.alert("THE PLAN WAS REFUSED");
                    p.line(e.clone());
                    p.line("Nothing has been generated. Correct the plan on another machine,");
                    p.line("check its hash with every holder again, and insert the stick.");
                    p.blank();
                }
                p.line(st.status.clone());
                p.key("A", "abort");
                p
            },
            |_, _, _| None,
            |d, st| match d.dev.poll_plan() {
                PlanPoll::Found { text, location } => {
                    if st.refused.as_deref() == Some(text.as_str()) {
                        st.status = format!("{location}: still the refused plan; remove the stick");
                        return None;
                    }
                    st.found = Some(location);
                    Some(text)
                }
                PlanPoll::Waiting(w) => {
                    st.refused = None;
                    st.status = w;
                    None
                }
                PlanPoll::Problem(e) => {
                    st.status = e;
                    None
                }
            },
        )?;
        let found = st.found;
        self.plan_location = found.unwrap_or_default();
        self.plan_text = Some(text.clone());
        Ok(text)
    }

    fn confirm_plan(&mut self, s: &ceremony::plan::PlanSummary) -> R<String> {
        let location = self.plan_location.clone();
        self.error = None;
        self.wait(
            true,
            &mut vec![false; s.witnesses.len()],
            |_, confirmed| screens::plan_page(s, confirmed, &location),
            |_, confirmed, k| {
                match k {
                    Key::Char(c @ '1'..='9') => {
                        let i = usize::from(c as u8 - b'1');
                        if i < confirmed.len() {
                            confirmed[i] = true;
                        }
                    }
                    k if is_yes(k) && confirmed.iter().all(|c| *c) => {
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

    fn entropy(&mut self) -> R<Gathered> {
        loop {
            let mut running = EntropyView {
                progress: Some("looking for sources".into()),
                rows: Vec::new(),
                absent: Vec::new(),
                ok: None,
                verdict: String::new(),
            };
            self.show(&mut entropy_page(&running))?;
            let rehearsal = self.dev.rehearsal();
            let id = self.ceremony_id.clone();
            let con = &mut *self.con;
            let result = self.dev.gather_entropy(&mut |v| {
                running = v.clone();
                let mut p = entropy_page(v);
                p.rehearsal = rehearsal;
                p.ceremony_id = id.clone();
                let _ = con.show(&p);
            });
            match result {
                Ok(g) => {
                    let view = g.view.clone();
                    self.wait(
                        true,
                        &mut (),
                        |_, _| {
                            let mut p = entropy_page(&view);
                            p.key("Enter", "go on");
                            p.key("A", "abort");
                            p
                        },
                        |_, _, k| matches!(k, Key::Enter).then_some(()),
                        |_, _| None,
                    )?;
                    return Ok(g);
                }
                Err(view) => {
                    self.wait(
                        true,
                        &mut (),
                        |_, _| {
                            let mut p = entropy_page(&view);
                            p.line("Nothing has been generated. Attach another hardware source");
                            p.line("(TPM, USB TRNG, an OpenPGP card in the reader) and retry.");
                            p.key("R", "retry");
                            p.key("A", "abort");
                            p
                        },
                        |_, _, k| matches!(k, Key::Char('r' | 'R')).then_some(()),
                        |_, _| None,
                    )?;
                }
            }
        }
    }

    fn insert_card(&mut self, next: &NextCard, done: usize, total: usize) -> R<Vec<Effect>> {
        let NextCard {
            holder,
            card,
            holder_name: name,
            cards_for_holder: cards,
        } = next.clone();
        let (holder, card, name, cards) = (holder, card, name.as_str(), cards);
        // After a failure the card must leave the reader before another try.
        let mut st = (CardState::Empty, self.error.is_some());
        let ident = self.wait(
            true,
            &mut st,
            |d, (state, _)| {
                let r = screens::CardRequest {
                    holder,
                    card,
                    name: name.to_owned(),
                    cards,
                    done,
                    total,
                };
                screens::card_request_page(&r, state, d.error.as_deref())
            },
            |_, _, _| None,
            |d, (state, must_leave)| {
                match d.dev.poll_card() {
                    CardPoll::NoReader => {
                        *must_leave = false;
                        *state = CardState::NoReader
                    }
                    CardPoll::Empty => {
                        *must_leave = false;
                        *state = CardState::Empty
                    }
                    CardPoll::Problem(e) => *state = CardState::Problem(e),
                    CardPoll::Card { ident, holds_keys } => {
                        if *must_leave {
                            *state = CardState::Problem(format!(
                                "card {ident}: remove it first, then insert it (or a spare) again"
                            ));
                        } else if holds_keys && !d.interrupted.contains(&ident) {
                            *state = CardState::NotBlank(ident);
                        } else {
                            return Some(ident);
                        }
                    }
                }
                None
            },
        )?;
        self.show(&mut screens::card_busy_page(holder, card, &ident))?;
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
        self.card_in_hand = Some(ident);
        Ok(self.flow.handle(Event::CardInserted(device.as_mut())))
    }

    fn write(&mut self, files: &[OutputFile]) -> R<Result<WriteReport, WriteFailed>> {
        let verified = self.verified.clone();
        let n = files.len();
        // (sticks found, scan error)
        let mut st: (Vec<String>, Option<String>) = (Vec::new(), None);
        self.wait(
            true,
            &mut st,
            |d, (sticks, scan_error)| {
                screens::write_page(
                    verified.as_ref(),
                    sticks,
                    n,
                    scan_error.as_deref(),
                    d.error.as_deref(),
                )
            },
            |_, (sticks, _), k| {
                (matches!(k, Key::Char('w' | 'W')) && !sticks.is_empty()).then_some(())
            },
            |d, (sticks, scan_error)| {
                match d.dev.poll_sticks() {
                    Ok(s) => {
                        *sticks = s;
                        *scan_error = None;
                    }
                    Err(e) => *scan_error = Some(e.to_string()),
                }
                None
            },
        )?;
        let sticks = st.0;
        if sticks.is_empty() {
            return Ok(Err(WriteFailed::new(NoDataStick)));
        }
        let mut page = screens::write_page(
            verified.as_ref(),
            &sticks,
            n,
            Some("Writing, reading back and comparing... do not remove any stick."),
            None,
        );
        page.keys.clear();
        self.show(&mut page)?;
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

/// W was pressed with no data stick in.
#[derive(Debug, thiserror::Error)]
#[error("no data stick is inserted")]
struct NoDataStick;

/// The entropy step's page, from the same lines as the boot screen's entropy check.
pub fn entropy_page(v: &EntropyView) -> Page {
    let mut p = Page::new(Step::Entropy, "randomness");
    for (strong, text) in crate::entropy_check::body(v) {
        if strong {
            p.bold(text);
        } else {
            p.line(text);
        }
    }
    p
}
