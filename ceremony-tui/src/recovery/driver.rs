//! The recovery ceremony from the first attestation page to power-off. The core's phases
//! (`Requested`, `Collecting`, `Recombined`, `Finished`) decide what may happen; this driver
//! shows each step's page, waits for keys, sticks and cards, and hands them to the phase.
//!
//! One card reader is enough: each holder's personal card reads their PIN file and goes out,
//! then one of their location cards opens their share and goes out.

use super::RecoveryStep as S;
use super::screens::{self, DoneView, HolderRow, PinnedView, RequestView};
use crate::ceremony::intent::{self, Intent};
use crate::ceremony::policy::{CardDecision, CardPolicy};
use crate::ceremony::screens::{
    Attestation, PinRefused, attestation_pages, reading_attestation_page,
};
use crate::ceremony::screens::{CardRequest, CardState};
use crate::ceremony::{CardPoll, Console, Gathered, Page};
use crate::entropy_check::EntropyView;
use crate::keys::Key;
use ceremony::card::CardSerial;
use ceremony::card::{
    CardError, DEFAULT_USER_PIN, LocationCard, MIN_PIN_RETRIES, PersonalDecryptCard,
};
use ceremony::ceremony::Record as CallerRecord;
use ceremony::ceremony::{Approved, CardView, NextCard};
use ceremony::record::WitnessConfirm;
use ceremony::recovery::{ApprovalFile, PinnedRoot, ReplacedFolder};
use ceremony::recovery_flow::{
    Collecting, Finished, FlowError, HolderFault, HolderInput, PinsRead, RecoveryRecord,
    ReplacingCards, Requested, Resharing,
};
use ceremony::request::{Operation, Request};
use ceremony::secret::Pin;
use ceremony::storage::{OutputFile, WriteReport};
use std::collections::BTreeMap;
use std::io;
use std::time::Duration;

/// What the request-stick search sees now.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RequestPoll {
    /// Nothing yet; what was looked at.
    Waiting(String),
    Found(RequestInput),
    /// A stick is there but cannot be used (e.g. two request files): what to do.
    Problem(String),
}

/// The request stick's contents the recovery uses.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RequestInput {
    /// Where request.toml was read, for the pages.
    pub location: String,
    /// request.toml's exact bytes.
    pub bytes: Vec<u8>,
    /// The approvals folder's files, in name order.
    pub approvals: Vec<ApprovalFile>,
    /// The files a `sign` request names that are on the stick, by name.
    pub files: BTreeMap<String, Vec<u8>>,
}

/// The generation ceremony's output folder, read from a stick.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GenerationInput {
    /// Where it was read, for the pages.
    pub location: String,
    /// Its files by path relative to the folder (`pins/holder-001.asc`).
    pub files: BTreeMap<String, Vec<u8>>,
}

/// The hardware a recovery uses.
pub trait RecoveryDevices {
    /// What can go wrong with these devices; shown to the operator as it says.
    type Error: std::error::Error + Send + Sync + 'static;

    /// A rehearsal: every page says so.
    fn rehearsal(&self) -> bool {
        false
    }
    fn attest(&mut self) -> Attestation;
    /// Looks for the request stick.
    fn poll_request(&mut self) -> RequestPoll;
    /// Reads the folder `name` (`sherd-<ceremony id>`) from whichever stick holds it.
    fn read_generation(&mut self, name: &str) -> Result<GenerationInput, String>;
    /// Reads every recovery folder of the ceremony on the sticks (`sherd-<ceremony
    /// id>-recovery-*`), whatever its operation: the driver keeps the replace-card ones and
    /// pins the root with them, in the order they were made. None found: empty.
    fn read_recoveries(&mut self, ceremony_id: &str) -> Result<Vec<GenerationInput>, String>;
    /// Gathers entropy as the generation does (`crate::ceremony::Devices::gather_entropy`):
    /// virtual devices count only when `allow_virtual_hardware` (the generation plan's
    /// `allow_virtual_hardware`); on refusal returns the view that says why.
    fn gather_entropy(
        &mut self,
        allow_virtual_hardware: bool,
        progress: &mut dyn FnMut(&EntropyView),
    ) -> Result<Gathered, EntropyView>;
    /// Opens the card in the reader to provision it as `next` (a replace-card's new card).
    fn open_new_card(&mut self, next: &NextCard) -> Result<Box<dyn LocationCard>, Self::Error>;
    fn poll_card(&mut self) -> CardPoll;
    /// Opens the card in the reader as a holder's personal card (it only decrypts).
    fn open_personal_card(&mut self) -> Result<Box<dyn PersonalDecryptCard>, Self::Error>;
    /// Opens the card in the reader as a location card (it only decrypts here).
    fn open_location_card(&mut self) -> Result<Box<dyn LocationCard>, Self::Error>;
    /// Data sticks ready to be written, by label.
    fn poll_sticks(&mut self) -> Result<Vec<String>, Self::Error>;
    /// Writes `files` under `dir` on every data stick, then syncs and unmounts them.
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

/// How the recovery ended. Either way every secret has been dropped and wiped.
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

/// The witnesses present confirmed by key presses (not by name: no one is identified).
const PRESENT: &str = "the witnesses present";

struct Driver<'a, C: Console, D: RecoveryDevices> {
    con: &'a mut C,
    dev: &'a mut D,
    step: S,
    ceremony_id: Option<String>,
    /// A write failed: a stick may hold part of the outputs.
    write_failed: bool,
}

/// Runs the recovery to its end. Returns when the operator may power off.
pub fn run(con: &mut impl Console, dev: &mut impl RecoveryDevices) -> io::Result<Outcome> {
    let mut d = Driver {
        con,
        dev,
        step: S::Attest,
        ceremony_id: None,
        write_failed: false,
    };
    let outcome = match d.main() {
        Ok(()) => Outcome::Completed,
        Err(Stop::Io(e)) => return Err(e),
        Err(Stop::Abort(reason)) => Outcome::Aborted(reason),
    };
    let mut page = screens::power_off_page(
        match &outcome {
            Outcome::Aborted(r) => Some(r),
            Outcome::Completed => None,
        },
        d.write_failed,
    );
    loop {
        d.show(&mut page)?;
        if let Some(k) = d.con.next_key(Duration::from_secs(60))?
            && intent::power_off(k) == Intent::PowerOff
        {
            return Ok(outcome);
        }
    }
}

/// A request that passed the core's checks, and what came with it.
struct Started {
    requested: Requested,
    input: RequestInput,
    generation: GenerationInput,
}

/// Why the request was not taken, and which inputs (so the same ones are not tried again
/// until they change or R is pressed).
struct Refusal {
    why: String,
    inputs: Option<RequestInput>,
}

impl<C: Console, D: RecoveryDevices> Driver<'_, C, D> {
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

    /// Shows the page `view` builds until `on_key` or `tick` gives a result; A asks whether to
    /// abort.
    fn wait<T>(
        &mut self,
        mut view: impl FnMut(&mut Self) -> Page,
        mut on_key: impl FnMut(&mut Self, Key) -> Option<T>,
        mut tick: impl FnMut(&mut Self) -> Option<T>,
    ) -> R<T> {
        loop {
            if let Some(t) = tick(self) {
                return Ok(t);
            }
            let mut page = view(self);
            self.show(&mut page)?;
            let Some(key) = self.con.next_key(TICK)? else {
                continue;
            };
            if matches!(key, Key::Char('a' | 'A')) {
                self.confirm_abort()?;
                continue;
            }
            if let Some(t) = on_key(self, key) {
                return Ok(t);
            }
            self.dev.on_key(key);
        }
    }

    fn confirm(&mut self, page: Page) -> R<()> {
        self.wait(
            |_| page.clone(),
            |_, k| matches!(k, Key::Char('y' | 'Y')).then_some(()),
            |_| None,
        )
    }

    fn confirm_abort(&mut self) -> R<()> {
        let mut page = screens::abort_confirm_page(self.step);
        loop {
            self.show(&mut page)?;
            match self
                .con
                .next_key(Duration::from_secs(60))?
                .map(intent::abort_question)
            {
                Some(Intent::Abort) => {
                    return Err(Stop::Abort(format!(
                        "aborted by the operator at recovery step {}",
                        self.step.name()
                    )));
                }
                Some(Intent::Cancel) => return Ok(()),
                _ => {}
            }
        }
    }

    /// Waits until the card reader holds no card.
    fn wait_card_out(&mut self, page: Page) -> R<()> {
        self.wait(
            |_| page.clone(),
            |_, _| None,
            |d| (!matches!(d.dev.poll_card(), CardPoll::Card { .. })).then_some(()),
        )
    }

    fn main(&mut self) -> R<()> {
        self.show(&mut reading_attestation_page(false))?;
        let mut attestation = self.dev.attest();
        while self.confirm_attestation(&attestation)? == Intent::ReadAgain {
            self.show(&mut reading_attestation_page(true))?;
            attestation = self.dev.attest();
        }
        self.step = S::Request;
        let Started {
            mut requested,
            input,
            generation,
        } = self.start()?;
        let allow_virtual = requested.pinned().plan().allow_virtual_hardware;
        self.ceremony_id = Some(requested.request().ceremony_id.clone());
        for note in attestation.records() {
            self.record(&mut requested, CallerRecord::Note(note))?;
        }
        self.confirm_attestation_record(&mut requested, "attestation")?;

        let pinned = requested.pinned();
        let view = PinnedView {
            ceremony_id: pinned.ceremony_id().to_owned(),
            location: generation.location.clone(),
            threshold: pinned.plan().threshold,
            holders: pinned.plan().holders.len(),
            root_fingerprint: pinned.root_fingerprint().to_hex(),
            final_hash: ceremony::hex::encode(&pinned.final_hash()),
            replaced: pinned.replacements().len(),
            reshared: pinned.reshares().len(),
        };
        self.confirm(screens::pinned_page(&view))?;
        self.confirm_attestation_record(&mut requested, "generation-words")?;

        self.confirm(screens::request_page(&request_view(&requested, &input)))?;
        if let Operation::Sign { files } = &requested.request().operation {
            let n = files.len();
            for (i, f) in files.iter().enumerate() {
                let size = input.files.get(&f.name).map_or(0, Vec::len);
                self.confirm(screens::file_page(
                    i + 1,
                    n,
                    &f.name,
                    size,
                    &ceremony::hex::encode(&f.sha256),
                ))?;
            }
        }
        let hash = requested.request().hash();
        let mut collecting = match requested.confirm(&hash) {
            Ok(c) => c,
            Err(refused) => return Err(Stop::Abort(refused.error.to_string())),
        };
        if matches!(collecting.request().operation, Operation::Sign { .. }) {
            self.record_collecting(&mut collecting, "files")?;
        }

        self.step = S::Holders;
        self.holders(&mut collecting)?;

        self.step = S::Operation;
        let new_keys = matches!(
            collecting.request().operation,
            Operation::ReplaceCard { .. } | Operation::Reshare { .. }
        );
        // replace-card and reshare draw new location keys and PINs (and reshare new shares):
        // entropy first, gathered as at generation. It is gathered now, before the shares are
        // recombined, because the core takes callers' records (the entropy report) only until
        // then.
        let rng = if new_keys {
            let g = self.entropy(allow_virtual)?;
            for note in g.records {
                self.record_note(&mut collecting, note)?;
            }
            Some(g.rng)
        } else {
            None
        };
        let recombined = match collecting.recombine() {
            Ok(r) => r,
            Err(refused) => return self.stopped(&refused.error.to_string()),
        };
        let holders = recombined.holders();
        let root = recombined.root_fingerprint().to_hex();
        let reshare = matches!(recombined.request().operation, Operation::Reshare { .. });
        let finished = match rng {
            // The DRBG is dropped as soon as the first step has drawn from it.
            Some(mut rng) if reshare => {
                let started = recombined
                    .start_reshare(rng.as_mut())
                    .map(|(c, v)| (c, screens::reshare_page(&v)))
                    .map_err(|r| r.error.to_string());
                drop(rng);
                self.with_new_cards(started)?
            }
            Some(mut rng) => {
                let started = recombined
                    .start_replace_card(rng.as_mut())
                    .map(|(c, v)| (c, screens::replace_page(&v)))
                    .map_err(|r| r.error.to_string());
                drop(rng);
                self.with_new_cards(started)?
            }
            None => {
                let files = &input.files;
                match recombined.perform(&|name| {
                    files.get(name).cloned().ok_or_else(|| {
                        io::Error::new(io::ErrorKind::NotFound, "not on the request stick")
                    })
                }) {
                    Ok(f) => f,
                    // The root key is dropped (wiped) with the refused phase.
                    Err(refused) => return self.stopped(&refused.error.to_string()),
                }
            }
        };
        let done = DoneView {
            root_fingerprint: root,
            holders,
            outputs: outputs(&finished),
            files: finished.files.len(),
        };
        self.step = S::Write;
        let written = self.write(&finished, &done, &hash)?;
        self.step = S::Transcript;
        // The outputs are written by now: there is nothing left to abort, so A does nothing
        // here (as on the generation's final page).
        let mut page = screens::final_page(
            &ceremony::hex::encode(&finished.final_hash),
            &written,
            finished.files.len(),
        );
        loop {
            self.show(&mut page)?;
            let Some(key) = self.con.next_key(TICK)? else {
                continue;
            };
            if intent::final_words(key) == Intent::Confirm {
                return Ok(());
            }
            self.dev.on_key(key);
        }
    }

    /// The stopped page, until A: the recovery ends there (every secret is dropped with the
    /// phase that held it).
    fn stopped<T>(&mut self, what: &str) -> R<T> {
        let page = screens::stopped_page(self.step, what);
        self.wait(|_| page.clone(), |_, _| None::<()>, |_| None)?;
        Err(Stop::Abort(what.to_owned()))
    }

    /// The entropy step, as the generation's: the report shown, Enter goes on; a refusal is
    /// shown and R tries again. Returns the seeded DRBG and the report's records.
    fn entropy(&mut self, allow_virtual: bool) -> R<Gathered> {
        loop {
            let mut looking = crate::ceremony::screens::entropy_page(&EntropyView::looking());
            looking.step = S::Operation.into();
            looking.virtual_hardware = allow_virtual;
            self.show(&mut looking)?;
            let rehearsal = self.dev.rehearsal();
            let id = self.ceremony_id.clone();
            let con = &mut *self.con;
            let result = self.dev.gather_entropy(allow_virtual, &mut |v| {
                let mut p = crate::ceremony::screens::entropy_page(v);
                p.step = S::Operation.into();
                p.rehearsal = rehearsal;
                p.virtual_hardware = allow_virtual;
                p.ceremony_id = id.clone();
                let _ = con.show(&p);
            });
            let (mut page, ok) = match &result {
                Ok(g) => (crate::ceremony::screens::entropy_passed_page(&g.view), true),
                Err(view) => (crate::ceremony::screens::entropy_refused_page(view), false),
            };
            page.step = S::Operation.into();
            page.virtual_hardware = allow_virtual;
            let go = if ok {
                intent::entropy_passed
            } else {
                intent::refused
            };
            self.wait(
                |_| page.clone(),
                |_, k| matches!(go(k), Intent::GoOn | Intent::Retry).then_some(()),
                |_| None,
            )?;
            if let Ok(g) = result {
                return Ok(g);
            }
        }
    }

    /// replace-card or reshare after recombination, once its first step has drawn what it
    /// needs from the entropy step's DRBG (`started`: the phase that provisions the new cards
    /// and the page that says what was made, or why the step was refused): the page confirmed,
    /// each new blank card provisioned in one insertion, then the folder made.
    fn with_new_cards<N: NewCards>(&mut self, started: Result<(N, Page), String>) -> R<Finished> {
        let (mut cards, page) = match started {
            Ok(s) => s,
            Err(why) => return self.stopped(&why),
        };
        self.confirm(page)?;
        self.new_cards(&mut cards)?;
        match cards.finish() {
            Ok(f) => Ok(f),
            Err(why) => self.stopped(&why),
        }
    }

    /// Provisions each new blank card `cards` asks for, in its one insertion, as the
    /// generation's card step does: a refused card is named on the next request page and the
    /// card (or another) may be tried again.
    fn new_cards(&mut self, cards: &mut dyn NewCards) -> R<()> {
        let mut policy = CardPolicy::default();
        let mut error: Option<String> = None;
        let total = cards.total();
        while let Some(next) = cards.next_card() {
            let done = total - cards.missing();
            let request = CardRequest {
                holder: next.holder,
                card: next.card,
                name: next.holder_name.clone(),
                cards: next.cards_for_holder,
                done,
                total,
            };
            policy.request(error.is_some());
            let state = std::cell::RefCell::new(CardState::Empty);
            let (ident, may_hold_keys) = self.wait(
                |_| {
                    let mut p = crate::ceremony::screens::card_request_page(
                        &request,
                        &state.borrow(),
                        error.as_deref(),
                    );
                    p.step = S::Operation.into();
                    p
                },
                |_, _| None,
                |d| match policy.judge(d.dev.poll_card()) {
                    CardDecision::Use {
                        ident,
                        may_hold_keys,
                    } => Some((ident, may_hold_keys)),
                    CardDecision::Wait(s) => {
                        *state.borrow_mut() = s;
                        None
                    }
                },
            )?;
            let mut busy = crate::ceremony::screens::card_busy_page(next.holder, next.card, &ident);
            busy.step = S::Operation.into();
            self.show(&mut busy)?;
            let approved = Approved {
                serial: CardSerial(ident.clone()),
                may_hold_keys,
            };
            let result = match self.dev.open_new_card(&next) {
                Err(e) => Err(format!("card {ident}: {e}")),
                Ok(mut device) => cards
                    .provision(&next, device.as_mut(), &approved)
                    .map_err(|e| format!("card {ident}: {e}")),
            };
            match result {
                Ok(card) => {
                    error = None;
                    let mut page = crate::ceremony::screens::card_done_page(&card);
                    page.step = S::Operation.into();
                    self.wait_card_out(page)?;
                }
                Err(e) => {
                    policy.failed(Some(ident));
                    error = Some(e);
                }
            }
        }
        Ok(())
    }

    fn record_note(&mut self, c: &mut Collecting, note: ceremony::record::Note) -> R<()> {
        c.record(&CallerRecord::Note(note))
            .map(|_| ())
            .map_err(|e| Stop::Abort(format!("the transcript refused a record: {e}")))
    }

    fn record(&mut self, requested: &mut Requested, r: CallerRecord) -> R<()> {
        requested
            .record(&r)
            .map(|_| ())
            .map_err(|e| Stop::Abort(format!("the transcript refused a record: {e}")))
    }

    fn confirm_attestation_record(&mut self, requested: &mut Requested, step: &str) -> R<()> {
        self.record(
            requested,
            CallerRecord::WitnessConfirm(WitnessConfirm {
                name: PRESENT.into(),
                step: step.into(),
            }),
        )
    }

    fn record_collecting(&mut self, c: &mut Collecting, step: &str) -> R<()> {
        c.record(&CallerRecord::WitnessConfirm(WitnessConfirm {
            name: PRESENT.into(),
            step: step.into(),
        }))
        .map(|_| ())
        .map_err(|e| Stop::Abort(format!("the transcript refused a record: {e}")))
    }

    fn confirm_attestation(&mut self, a: &Attestation) -> R<Intent> {
        let mut pages = attestation_pages(a);
        for p in &mut pages {
            p.step = S::Attest.into();
        }
        let shown = std::cell::Cell::new(0);
        self.wait(
            |_| pages[shown.get()].clone(),
            |_, k| {
                let n = pages.len();
                match intent::attestation(k) {
                    Intent::NextPage => shown.set((shown.get() + 1) % n),
                    Intent::PreviousPage => shown.set((shown.get() + n - 1) % n),
                    i @ (Intent::ReadAgain | Intent::Confirm) => return Some(i),
                    _ => {}
                }
                None
            },
            |_| None,
        )
    }

    /// Waits for a request that passes every check made before a card: the request parses,
    /// its generation folder is on a stick and passes the offline verifier's checks, the
    /// request is for that root and passes the plan's policy, it is an operation this version
    /// carries out, and the files it names are on the stick with their hashes.
    fn start(&mut self) -> R<Started> {
        let mut refusal: Option<Refusal> = None;
        loop {
            // One look at the sticks per tick: what it found is both the page's status line
            // and, when it is a new request, the answer.
            let status = std::cell::RefCell::new(String::new());
            let input = self.wait(
                |_| {
                    screens::request_stick_page(
                        refusal.as_ref().map(|r| r.why.as_str()),
                        &status.borrow(),
                    )
                },
                |_, k| matches!(k, Key::Char('r' | 'R')).then_some(None),
                |d| {
                    let poll = d.dev.poll_request();
                    *status.borrow_mut() = match &poll {
                        RequestPoll::Waiting(s) | RequestPoll::Problem(s) => s.clone(),
                        RequestPoll::Found(i) => format!("found {}", i.location),
                    };
                    match poll {
                        RequestPoll::Found(i)
                            if refusal.as_ref().and_then(|r| r.inputs.as_ref()) != Some(&i) =>
                        {
                            Some(Some(i))
                        }
                        _ => None,
                    }
                },
            )?;
            let Some(input) = input else {
                // R: the same sticks again.
                if let Some(r) = &mut refusal {
                    r.inputs = None;
                }
                continue;
            };
            match self.check(&input) {
                Ok((requested, generation)) => {
                    return Ok(Started {
                        requested,
                        input,
                        generation,
                    });
                }
                Err(why) => {
                    refusal = Some(Refusal {
                        why,
                        inputs: Some(input),
                    });
                }
            }
        }
    }

    fn check(&mut self, input: &RequestInput) -> Result<(Requested, GenerationInput), String> {
        let text = std::str::from_utf8(&input.bytes)
            .map_err(|_| format!("request.toml on {}: not UTF-8 text", input.location))?;
        let request =
            Request::parse(text).map_err(|e| format!("request.toml on {}: {e}", input.location))?;
        let folder = format!("sherd-{}", request.ceremony_id);
        let generation = self
            .dev
            .read_generation(&folder)
            .map_err(|e| format!("the generation folder {folder}: {e}"))?;
        let files = &generation.files;
        let recoveries = self
            .dev
            .read_recoveries(&request.ceremony_id)
            .map_err(|e| format!("the recovery folders {folder}-recovery-*: {e}"))?;
        let replaced = applied_folders(&request.ceremony_id, recoveries)?;
        let readers: Vec<_> = replaced
            .iter()
            .map(|f| {
                move |path: &str| {
                    f.files
                        .get(path)
                        .cloned()
                        .ok_or_else(|| io::Error::new(io::ErrorKind::NotFound, "not in the folder"))
                }
            })
            .collect();
        let listers: Vec<_> = replaced
            .iter()
            .map(|f| move || Ok(f.files.keys().cloned().collect()))
            .collect();
        let folders: Vec<ReplacedFolder<'_>> = replaced
            .iter()
            .zip(&readers)
            .zip(&listers)
            .map(|((f, read), list)| ReplacedFolder {
                name: f.location.clone(),
                read,
                list,
            })
            .collect();
        let pinned = PinnedRoot::from_generation_with(
            &|path| {
                files
                    .get(path)
                    .cloned()
                    .ok_or_else(|| io::Error::new(io::ErrorKind::NotFound, "not in the folder"))
            },
            &folders,
        )
        .map_err(|e| match folders.len() {
            // The location already names the folder (`/sherd-<id> on sdb1 (…)`).
            0 => format!(
                "{} did not pass the offline verifier's checks: {e}",
                generation.location
            ),
            n => format!(
                "{} with the {n} replace-card and reshare folder(s) after it did not pass the \
                 offline verifier's checks: {e}",
                generation.location
            ),
        })?;
        let requested =
            Requested::start(pinned, &input.bytes, &input.approvals).map_err(|e| match e {
                // The page already says the request was refused: the reason alone.
                FlowError::Request(r) => format!("request.toml on {}: {r}", input.location),
                FlowError::NotForThisRoot(r) => r.to_string(),
                other => other.to_string(),
            })?;
        let on_stick = |name: &str| {
            input.files.get(name).cloned().ok_or_else(|| {
                io::Error::new(
                    io::ErrorKind::NotFound,
                    "not at the top of the request stick",
                )
            })
        };
        requested
            .check_files(&on_stick)
            .map_err(|e| e.to_string())?;
        Ok((requested, generation))
    }

    /// Holders, one at a time, until M shares are in.
    fn holders(&mut self, c: &mut Collecting) -> R<()> {
        let mut error: Option<String> = None;
        while !c.progress().complete() {
            let rows = holder_rows(c);
            let progress = c.progress().to_string();
            let chosen = self.wait(
                |_| screens::holders_page(&rows, &progress, error.as_deref()),
                |_, k| match k {
                    Key::Char(ch @ '1'..='9') => Some(ch as u8 - b'0'),
                    _ => None,
                },
                |_| None,
            )?;
            let Some(row) = rows.iter().find(|r| r.index == chosen) else {
                error = Some(format!(
                    "there is no holder {chosen} in {}",
                    c.pinned().plan_label()
                ));
                continue;
            };
            if row.accepted {
                error = Some(format!(
                    "holder {chosen} ({}): this holder's share is already in; each holder \
                     counts once",
                    row.name
                ));
                continue;
            }
            // The pinned PIN file: the generation's, or the last replace-card folder's for
            // this holder.
            let Some(pin_file) = c.pinned().share(chosen).map(|s| s.pin_file.clone()) else {
                error = Some(format!(
                    "holder {chosen} ({}): no pinned share for this holder",
                    row.name
                ));
                continue;
            };
            let input = HolderInput {
                index: chosen,
                pin_file: &pin_file,
                sealed_share: None,
            };
            error = self.holder_turn(c, &input, row)?.err();
        }
        Ok(())
    }

    /// One holder's turn: `Ok(Err(why))` when the turn ended without a share (shown on the
    /// holders' page), `Ok(Ok(()))` when the share is in.
    fn holder_turn(
        &mut self,
        c: &mut Collecting,
        input: &HolderInput<'_>,
        row: &HolderRow,
    ) -> R<Result<(), String>> {
        let pins = match self.read_pins(c, input, row)? {
            Some(Ok(p)) => p,
            Some(Err(e)) => return Ok(Err(e)),
            None => {
                return Ok(Err(format!(
                    "holder {} ({}): turn given up",
                    row.index, row.name
                )));
            }
        };
        let read_by = if pins.reader() == "backup" {
            format!("{}, the backup holder", pins.reader_name())
        } else {
            format!("{}, the holder", pins.reader_name())
        };
        let serials = pins.location_cards();
        let mut error: Option<String> = None;
        // Waiting for the card to come out takes no key but A: the page offers no Esc until
        // the reader is empty.
        let mut out = screens::location_card_page(
            row.index,
            &row.name,
            &read_by,
            &serials,
            "waiting for the personal card to come out",
            None,
        );
        out.keys.retain(|(k, _)| k != "Esc");
        self.wait_card_out(out)?;
        loop {
            // A location card in (any card: a wrong one is refused by name).
            let status = std::cell::RefCell::new(String::new());
            let got = self.wait(
                |_| {
                    screens::location_card_page(
                        row.index,
                        &row.name,
                        &read_by,
                        &serials,
                        &status.borrow(),
                        error.as_deref(),
                    )
                },
                |_, k| (k == Key::Esc).then_some(None),
                |d| card_in(d.dev.poll_card(), &status).map(Some),
            )?;
            let Some(card) = got else {
                return Ok(Err(format!(
                    "holder {} ({}): turn given up before a location card",
                    row.index, row.name
                )));
            };
            self.show(&mut screens::card_busy_page(
                "location card",
                "The location card decrypts the share...",
            ))?;
            let r = match self.dev.open_location_card() {
                Err(e) => Err(format!("cannot open the card in the reader: {e}")),
                Ok(mut card) => c
                    .accept_location_keeping(&pins, input, card.as_mut())
                    .map_err(|e| e.to_string()),
            };
            match r {
                Ok(progress) => {
                    self.wait_card_out(screens::share_accepted_page(
                        row.index,
                        &row.name,
                        &card,
                        &progress.to_string(),
                    ))?;
                    return Ok(Ok(()));
                }
                Err(e) => {
                    error = Some(e);
                    let mut page = screens::card_busy_page("location card", "");
                    page.lines.clear();
                    page.alert("REFUSED");
                    page.line(error.clone().unwrap_or_default());
                    page.bold("Take the card out.");
                    self.wait_card_out(page)?;
                }
            }
        }
    }

    /// The personal card's half: `None` when the holder gave up (Esc).
    fn read_pins(
        &mut self,
        c: &Collecting,
        input: &HolderInput<'_>,
        row: &HolderRow,
    ) -> R<Option<Result<PinsRead, String>>> {
        // Whatever card is in now belongs to someone else's turn: wait for it to go first.
        if matches!(self.dev.poll_card(), CardPoll::Card { .. }) {
            let mut page = screens::card_busy_page("holder's turn", "");
            page.lines.clear();
            page.bold(format!(
                "Holder {} ({}): take the card in the reader out first.",
                row.index, row.name
            ));
            self.wait_card_out(page)?;
        }
        let status = std::cell::RefCell::new(String::new());
        let inserted = self.wait(
            |_| screens::personal_card_page(row.index, &row.name, &row.backup, &status.borrow()),
            |_, k| (k == Key::Esc).then_some(false),
            |d| card_in(d.dev.poll_card(), &status).map(|_| true),
        )?;
        if !inserted {
            return Ok(None);
        }
        self.show(&mut screens::card_busy_page(
            "personal card",
            "The personal card decrypts the PIN file...",
        ))?;
        let mut card = match self.dev.open_personal_card() {
            Ok(c) => c,
            Err(e) => {
                let why = format!("cannot open the card in the reader: {e}");
                self.take_out_after(&why)?;
                return Ok(Some(Err(why)));
            }
        };
        let refusal = |fault| {
            FlowError::Holder {
                index: row.index,
                holder: row.name.clone(),
                fault: HolderFault::PersonalCard(fault),
            }
            .to_string()
        };
        let mut retries = match card.user_pin_retries() {
            Ok(n) => n,
            Err(e) => return self.give_up(card, refusal(e)),
        };
        // The factory default PIN first only when a refusal still leaves the guard's margin
        // for the holder's own PIN (as for the witnesses' cards at generation); a PIN is never
        // asked for when the card could not take it (the core would not present it).
        let mut next = (retries > MIN_PIN_RETRIES).then(|| {
            (
                Pin::from_string(DEFAULT_USER_PIN.into()),
                PinRefused::Default,
            )
        });
        let mut refused = PinRefused::Nothing;
        loop {
            let (pin, if_refused) = match next.take() {
                Some(first) => first,
                None => {
                    if retries < MIN_PIN_RETRIES {
                        let low = CardError::PinRetriesLow {
                            retries_left: retries,
                            needed: MIN_PIN_RETRIES,
                        };
                        return self.give_up(card, refusal(low));
                    }
                    let serial = card.serial().map(|s| s.0).unwrap_or_else(|_| "?".into());
                    match self.read_pin(&row.name, &serial, retries, refused)? {
                        Some(typed) => (typed, PinRefused::Typed),
                        None => {
                            let why = format!(
                                "holder {} ({}): the PIN was not typed; nothing was read",
                                row.index, row.name
                            );
                            return self.give_up(card, why);
                        }
                    }
                }
            };
            match c.read_pin_file(input, card.as_mut(), &pin) {
                Ok(p) => return Ok(Some(Ok(p))),
                Err(FlowError::Holder {
                    fault: HolderFault::PersonalCard(CardError::WrongPin { retries_left }),
                    ..
                }) => {
                    retries = retries_left;
                    refused = if_refused;
                }
                Err(e) => return self.give_up(card, e.to_string()),
            }
        }
    }

    /// Ends a turn at the personal card: the card handle dropped, the refusal shown until the
    /// card is out.
    fn give_up(
        &mut self,
        card: Box<dyn PersonalDecryptCard>,
        why: String,
    ) -> R<Option<Result<PinsRead, String>>> {
        drop(card);
        self.take_out_after(&why)?;
        Ok(Some(Err(why)))
    }

    fn take_out_after(&mut self, why: &str) -> R<()> {
        let mut page = Page::new(self.step, "refused");
        page.alert("REFUSED");
        page.line(why.to_owned());
        page.bold("Take the card out.");
        self.wait_card_out(page)
    }

    /// Reads a personal card's PIN blind: nothing is echoed; Esc gives up on this card.
    fn read_pin(
        &mut self,
        name: &str,
        serial: &str,
        retries_left: u8,
        refused: PinRefused,
    ) -> io::Result<Option<Pin>> {
        // Room for the longest PIN, so the buffer never moves and leaves a copy behind; wiped
        // however this returns.
        let mut typed = zeroize::Zeroizing::new(String::with_capacity(Pin::MAX + 1));
        let mut page = screens::pin_page(name, serial, retries_left, refused);
        loop {
            self.show(&mut page)?;
            let Some(key) = self.con.next_key(TICK)? else {
                continue;
            };
            match key {
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

    /// The write step; returns what was written, per stick.
    fn write(&mut self, f: &Finished, done: &DoneView, hash: &[u8; 32]) -> R<Vec<String>> {
        let dir = format!(
            "sherd-{}-recovery-{}",
            self.ceremony_id.clone().unwrap_or_default(),
            &ceremony::hex::encode(hash)[..8]
        );
        let mut error: Option<String> = None;
        loop {
            let sticks = self.wait(
                |d| {
                    let sticks = d.dev.poll_sticks().unwrap_or_default();
                    screens::write_page(done, &sticks, None, error.as_deref())
                },
                |d, k| {
                    if matches!(k, Key::Char('w' | 'W')) {
                        d.dev.poll_sticks().ok().filter(|s| !s.is_empty())
                    } else {
                        None
                    }
                },
                |_| None,
            )?;
            self.show(&mut screens::write_page(
                done,
                &sticks,
                Some("Writing, reading back and comparing... do not remove any stick."),
                None,
            ))?;
            match self.dev.write(&dir, &f.files) {
                Ok(report) if !report.volumes.is_empty() => {
                    return Ok(report
                        .volumes
                        .iter()
                        .map(|(label, paths)| format!("{label}: {} files", paths.len()))
                        .chain(std::iter::once(format!("folder {dir}/")))
                        .collect());
                }
                Ok(_) => error = Some("no data stick was written".into()),
                Err(e) => {
                    self.write_failed = true;
                    error = Some(e.to_string());
                }
            }
        }
    }
}

fn holder_rows(c: &Collecting) -> Vec<HolderRow> {
    let plan = c.pinned().plan();
    let accepted = c.holders();
    plan.holders
        .iter()
        .enumerate()
        .map(|(i, h)| {
            let index = u8::try_from(i + 1).unwrap_or(u8::MAX);
            HolderRow {
                index,
                name: h.name.clone(),
                backup: plan
                    .holder(h.backup)
                    .map(|b| b.name.clone())
                    .unwrap_or_default(),
                accepted: accepted.contains(&index),
            }
        })
        .collect()
}

/// One look at the reader: the card's ident when one is in; otherwise `None`, with what the
/// reader shows written to `status` for the waiting page.
fn card_in(poll: CardPoll, status: &std::cell::RefCell<String>) -> Option<String> {
    *status.borrow_mut() = match poll {
        CardPoll::Card { ident, .. } => return Some(ident),
        CardPoll::Empty => "the reader is empty".into(),
        CardPoll::NoReader => "no card reader found".into(),
        CardPoll::Problem(p) => p,
    };
    None
}

fn request_view(r: &Requested, input: &RequestInput) -> RequestView {
    let req = r.request();
    let what = match &req.operation {
        Operation::Sign { files } => files
            .iter()
            .map(|f| {
                let size = input.files.get(&f.name).map_or(0, Vec::len);
                format!("sign {} ({size} bytes)", f.name)
            })
            .collect(),
        Operation::ProveQuorum { challenge } => vec![format!("sign the challenge: {challenge}")],
        Operation::Certify(c) => {
            let mut v: Vec<String> = c.user_ids.iter().map(|u| format!("certify {u}")).collect();
            v.push(format!(
                "of certificate {}{}",
                screens::grouped_fingerprint(&c.cert.fingerprint().to_hex()),
                match c.expiry_unix {
                    Some(e) => format!(", expiring {}", crate::time::utc(i64::from(e))),
                    None => ", not expiring".into(),
                }
            ));
            v
        }
        Operation::ReplaceCard { holder, cards } => {
            let name = r
                .pinned()
                .plan()
                .holder(*holder)
                .map(|h| h.name.clone())
                .unwrap_or_default();
            vec![
                format!("replace holder {holder}'s ({name}) location cards"),
                format!("with {cards} new blank card(s) under a new location key"),
            ]
        }
        Operation::Reshare { plan, .. } => {
            let old = r.pinned().plan();
            let mut v = vec![
                format!(
                    "split the SAME root key anew: {} of {} holders (now {} of {})",
                    plan.threshold,
                    plan.holders.len(),
                    old.threshold,
                    old.holders.len()
                ),
                plan.holders
                    .iter()
                    .map(|h| format!("{} ({})", h.name, screens::cards_word(h.cards)))
                    .collect::<Vec<_>>()
                    .join(", "),
                format!(
                    "new blank cards for every holder; {}",
                    ceremony::policy::PolicyChange::between(
                        old.policy.as_ref(),
                        plan.policy.as_ref()
                    )
                ),
            ];
            v.push("the old shares still open this key until their cards are destroyed".into());
            v
        }
    };
    RequestView {
        location: input.location.clone(),
        operation: req.operation.name().to_owned(),
        what,
        time: crate::time::utc(i64::from(req.time_unix)),
        policy: r.approved().to_string(),
        hash: req.hash_hex(),
    }
}

fn outputs(f: &Finished) -> Vec<String> {
    f.files
        .iter()
        .filter(|o| {
            !matches!(
                o.path.as_str(),
                "request.toml" | "root-cert.asc" | "transcript.txt" | "transcript.txt.sig"
            )
        })
        .map(|o| o.path.clone())
        .collect()
}

/// The replace-card and reshare folders among `recoveries` (the ceremony's recovery folders),
/// in the order they were made: each one's transcript names the folders its root was pinned
/// with (`recovery.replaced`, `recovery.reshared`), so the k-th made names k-1. Folders of
/// other operations are left out; one whose transcript cannot be read is refused (sherd
/// writes one in every folder). Whether the chain holds is the core's check
/// ([`PinnedRoot::with_folder`]).
fn applied_folders(
    ceremony_id: &str,
    recoveries: Vec<GenerationInput>,
) -> Result<Vec<GenerationInput>, String> {
    let mut found: Vec<(usize, GenerationInput)> = Vec::new();
    for f in recoveries {
        let records = f
            .files
            .get(ceremony::recovery_flow::paths::TRANSCRIPT)
            .ok_or_else(|| "no transcript.txt".to_owned())
            .and_then(|b| ceremony::transcript::Transcript::parse(b).map_err(|e| e.to_string()))
            .and_then(|t| ceremony::recovery_flow::records(&t).map_err(|e| e.to_string()))
            .map_err(|e| {
                format!(
                    "{}: a recovery folder of ceremony {ceremony_id} whose transcript cannot \
                     be read ({e}); take it off the sticks or mend it",
                    f.location
                )
            })?;
        if records
            .iter()
            .any(|r| matches!(r, RecoveryRecord::Rebuilt(_) | RecoveryRecord::Reshare(_)))
        {
            let before = records
                .iter()
                .filter(|r| matches!(r, RecoveryRecord::Replaced(_) | RecoveryRecord::Reshared(_)))
                .count();
            found.push((before, f));
        }
    }
    found.sort_by(|a, b| a.0.cmp(&b.0).then_with(|| a.1.location.cmp(&b.1.location)));
    Ok(found.into_iter().map(|(_, f)| f).collect())
}

/// The new blank cards an operation provisions after recombination (replace-card's for one
/// holder), in the order the core asks for them.
trait NewCards {
    fn next_card(&self) -> Option<NextCard>;
    /// How many new cards in all.
    fn total(&self) -> usize;
    /// How many are still to provision.
    fn missing(&self) -> usize;
    fn provision(
        &mut self,
        next: &NextCard,
        device: &mut dyn LocationCard,
        approved: &Approved,
    ) -> Result<CardView, FlowError>;
    /// Once every card is in: the folder made (the phase's secrets dropped either way).
    fn finish(self) -> Result<Finished, String>;
}

impl NewCards for ReplacingCards {
    fn next_card(&self) -> Option<NextCard> {
        ReplacingCards::next_card(self)
    }
    fn total(&self) -> usize {
        self.cards_total()
    }
    fn missing(&self) -> usize {
        self.cards_missing().len()
    }
    fn provision(
        &mut self,
        next: &NextCard,
        device: &mut dyn LocationCard,
        approved: &Approved,
    ) -> Result<CardView, FlowError> {
        self.provision_card(next.card, device, approved)
    }
    fn finish(self) -> Result<Finished, String> {
        ReplacingCards::finish(self).map_err(|r| r.error.to_string())
    }
}

impl NewCards for Resharing {
    fn next_card(&self) -> Option<NextCard> {
        Resharing::next_card(self)
    }
    fn total(&self) -> usize {
        self.cards_total()
    }
    fn missing(&self) -> usize {
        self.cards_missing().len()
    }
    fn provision(
        &mut self,
        next: &NextCard,
        device: &mut dyn LocationCard,
        approved: &Approved,
    ) -> Result<CardView, FlowError> {
        self.provision_card(next.holder, next.card, device, approved)
    }
    fn finish(self) -> Result<Finished, String> {
        Resharing::finish(self).map_err(|r| r.error.to_string())
    }
}
