//! The recovery ceremony through its driver on a host: a 2-of-3 generation made with software
//! cards, then a scripted console presses the keys the operator and witnesses would while fake
//! devices serve the request stick, the generation folder and the cards. The cards go in and
//! out of the one reader as the people at the table would: a card is inserted when the page on
//! screen asks for one, and taken out when the page says to take it out.
//!
//! Checks the outputs (a signature Sequoia verifies, the transcript's records and final words),
//! that no PIN, share or secret ever reached a page, that every page fits 80x24, and the
//! refusals: each shown on a page, the ceremony going on without losing anything.

#[path = "../../ceremony/tests/common/mod.rs"]
mod common;

use ceremony::card::{
    CardError, CardSerial, LocationCard, PersonalDecryptCard, SoftwareCard, SoftwarePersonalCard,
};
use ceremony::ceremony::NextCard;
use ceremony::ceremony::paths as gen_paths;
use ceremony::keys::CardImport;
use ceremony::openpgp::Cert;
use ceremony::openpgp::parse::Parse;
use ceremony::recovery::PinnedRoot;
use ceremony::recovery_flow::{RecoveryRecord, RecoveryShare, paths, records};
use ceremony::request::Request;
use ceremony::secret::{CardPins, Pin, SharedSecret};
use ceremony::storage::{DirVolume, OutputFile, WriteReport, write_all};
use ceremony::transcript::{self, Transcript};
use ceremony_tui::ceremony::screens::{Attestation, IsoCheck, PcrLine};
use ceremony_tui::ceremony::script::Script;
use ceremony_tui::ceremony::{CardPoll, Console, Gathered, Page};
use ceremony_tui::entropy_check::EntropyView;
use ceremony_tui::keys::Key;
use ceremony_tui::recovery::driver::Outcome;
use ceremony_tui::recovery::{GenerationInput, RecoveryDevices, RequestInput, RequestPoll, run};
use std::cell::RefCell;
use std::collections::VecDeque;
use std::path::{Path, PathBuf};
use std::rc::Rc;
use std::time::Duration;

/// After the plan time (2026-11-24T09:00:00Z).
const REQUEST_TIME: &str = "2026-11-25T10:00:00Z";
/// The file the sign requests name, and its bytes.
const FILE_NAME: &str = "release-1.2.tar.gz";
const FILE_BYTES: &[u8] = b"release 1.2: the bytes the root key signs\n";
/// Holder 3 changed their personal card's PIN: not hex, not digits only, so it cannot turn up
/// inside a hash shown on a page by chance.
const CHANGED_PIN: &str = "Qz7!pKw9";

fn sha256(bytes: &[u8]) -> [u8; 32] {
    use ceremony::openpgp::types::HashAlgorithm;
    let mut h = HashAlgorithm::SHA256.context().unwrap().for_digest();
    h.update(bytes);
    h.into_digest().unwrap().try_into().unwrap()
}

/// A finished 2-of-3 generation ceremony (holder i's backup is holder i+1, holder 3's is 1).
struct Generation {
    id: String,
    fixture: common::Fixture,
    files: Vec<OutputFile>,
    /// Each holder's (only) location card, shared with the fake reader.
    cards: Vec<Rc<RefCell<SoftwareCard>>>,
}

fn generation(id: &str, seed: u8) -> Generation {
    let fixture = common::fixture_with(id, 3, 2, &[1, 1, 1]);
    let done = common::run(&fixture, seed);
    Generation {
        id: id.to_owned(),
        fixture,
        files: done.files,
        cards: done
            .cards
            .into_iter()
            .map(|mut c| Rc::new(RefCell::new(c.remove(0))))
            .collect(),
    }
}

impl Generation {
    fn root(&self) -> Cert {
        Cert::from_bytes(common::file(&self.files, gen_paths::ROOT_CERT)).unwrap()
    }

    fn pinned(&self) -> PinnedRoot {
        let files = self.folder().files;
        PinnedRoot::from_generation(&move |p: &str| {
            files
                .get(p)
                .cloned()
                .ok_or_else(|| std::io::Error::new(std::io::ErrorKind::NotFound, "missing"))
        })
        .expect("the generation folder verifies")
    }

    /// The generation folder as the data stick holds it.
    fn folder(&self) -> GenerationInput {
        GenerationInput {
            location: "USB stick GEN (sdc1)".into(),
            files: self
                .files
                .iter()
                .map(|f| (f.path.clone(), f.bytes.clone()))
                .collect(),
        }
    }

    fn request_text(&self, root_fingerprint: &str, operation: &str) -> String {
        format!(
            "format = \"sherd-request/1\"\nceremony_id = \"{}\"\nroot_fingerprint = \"{}\"\n\
             time = {REQUEST_TIME}\n\n{operation}",
            self.id, root_fingerprint
        )
    }

    /// A request on a stick with no approvals (the fixture's plan has no policy).
    fn request(&self, operation: &str, files: &[(&str, &[u8])]) -> RequestInput {
        self.request_for(&self.root().fingerprint().to_hex(), operation, files)
    }

    fn request_for(
        &self,
        root_fingerprint: &str,
        operation: &str,
        files: &[(&str, &[u8])],
    ) -> RequestInput {
        RequestInput {
            location: "USB stick REQ (sdb1)".into(),
            bytes: self.request_text(root_fingerprint, operation).into_bytes(),
            approvals: Vec::new(),
            files: files
                .iter()
                .map(|(n, b)| ((*n).to_owned(), b.to_vec()))
                .collect(),
        }
    }

    /// Holder `index`'s personal card (1-based), with the factory default PIN.
    fn personal(&self, index: u8) -> Card {
        let cert = &self.fixture.personal[usize::from(index) - 1];
        Card::personal(
            SoftwarePersonalCard::new(&format!("0006:{index:08}"), cert).expect("a personal key"),
        )
    }

    /// Holder `index`'s location card.
    fn location(&self, index: u8) -> Card {
        Card::Location(self.cards[usize::from(index) - 1].clone())
    }
}

/// A `sign` request for [`FILE_NAME`] with [`FILE_BYTES`].
fn sign_operation() -> String {
    format!(
        "[sign]\n[[sign.file]]\nname = \"{FILE_NAME}\"\nsha256 = \"{}\"\n",
        ceremony::hex::encode(&sha256(FILE_BYTES))
    )
}

/// A card the people at the table hold; it stays inspectable after the driver drops it.
#[derive(Clone)]
enum Card {
    Personal(Rc<RefCell<SoftwarePersonalCard>>),
    Location(Rc<RefCell<SoftwareCard>>),
}

impl Card {
    fn personal(c: SoftwarePersonalCard) -> Card {
        Card::Personal(Rc::new(RefCell::new(c)))
    }

    fn serial(&self) -> String {
        match self {
            Card::Personal(c) => PersonalDecryptCard::serial(&mut *c.borrow_mut()).unwrap().0,
            Card::Location(c) => c.borrow_mut().serial().unwrap().0,
        }
    }
}

struct SharedPersonal(Rc<RefCell<SoftwarePersonalCard>>);

impl PersonalDecryptCard for SharedPersonal {
    fn serial(&mut self) -> Result<CardSerial, CardError> {
        PersonalDecryptCard::serial(&mut *self.0.borrow_mut())
    }
    fn decryption_fingerprint(
        &mut self,
    ) -> Result<Option<ceremony::openpgp::Fingerprint>, CardError> {
        self.0.borrow_mut().decryption_fingerprint()
    }
    fn user_pin_retries(&mut self) -> Result<u8, CardError> {
        PersonalDecryptCard::user_pin_retries(&mut *self.0.borrow_mut())
    }
    fn ecdh(&mut self, pin: &Pin, eph: &[u8; 32]) -> Result<SharedSecret, CardError> {
        PersonalDecryptCard::ecdh(&mut *self.0.borrow_mut(), pin, eph)
    }
}

struct SharedLocation(Rc<RefCell<SoftwareCard>>);

/// A card opened to be provisioned (replace-card's new card): provisioning goes through.
struct NewCard(Rc<RefCell<SoftwareCard>>);

impl LocationCard for NewCard {
    fn serial(&mut self) -> Result<CardSerial, CardError> {
        self.0.borrow_mut().serial()
    }
    fn holds_keys(&mut self) -> Result<bool, CardError> {
        self.0.borrow_mut().holds_keys()
    }
    fn provision(
        &mut self,
        key: &CardImport<'_>,
        pins: &CardPins,
    ) -> Result<CardSerial, CardError> {
        self.0.borrow_mut().provision(key, pins)
    }
    fn ecdh(&mut self, pin: &Pin, eph: &[u8; 32]) -> Result<SharedSecret, CardError> {
        self.0.borrow_mut().ecdh(pin, eph)
    }
}

/// A deterministic entropy source for the replace-card's entropy step (the real gathering and
/// policy run over it).
struct TestSource {
    info: entropy::SourceInfo,
    rng: rand_chacha::ChaCha20Rng,
}

impl TestSource {
    fn boxed(kind: entropy::SourceKind, device: &str, seed: u8) -> Box<dyn entropy::Source> {
        use rand_core::SeedableRng;
        Box::new(TestSource {
            info: entropy::SourceInfo {
                kind,
                identity: format!("test {device}"),
                device: entropy::DeviceKey(device.into()),
                conditioning: entropy::Conditioning::Whitened,
                sample_bits: 8,
                claimed_h: 8.0,
                claim_basis: "test double",
                virtual_device: None,
            },
            rng: rand_chacha::ChaCha20Rng::from_seed([seed; 32]),
        })
    }
}

impl entropy::Source for TestSource {
    fn info(&self) -> &entropy::SourceInfo {
        &self.info
    }
    fn fill(&mut self, buf: &mut [u8]) -> Result<(), entropy::SourceError> {
        use rand_core::Rng;
        self.rng.fill_bytes(buf);
        Ok(())
    }
}

impl LocationCard for SharedLocation {
    fn serial(&mut self) -> Result<CardSerial, CardError> {
        self.0.borrow_mut().serial()
    }
    fn holds_keys(&mut self) -> Result<bool, CardError> {
        self.0.borrow_mut().holds_keys()
    }
    fn provision(
        &mut self,
        _key: &CardImport<'_>,
        _pins: &CardPins,
    ) -> Result<CardSerial, CardError> {
        panic!("a recovery never provisions a card")
    }
    fn ecdh(&mut self, pin: &Pin, eph: &[u8; 32]) -> Result<SharedSecret, CardError> {
        self.0.borrow_mut().ecdh(pin, eph)
    }
}

/// The test devices' failures.
#[derive(Debug, thiserror::Error)]
enum FakeError {
    #[error("no card in the reader")]
    NoCard,
    #[error("card {0} is not a personal card")]
    NotPersonal(String),
    #[error("card {0} is not a location card")]
    NotLocation(String),
    #[error("TEST stick: writing failed: the stick was pulled out (test)")]
    Pulled,
    #[error(transparent)]
    Write(#[from] ceremony::storage::WriteError),
}

struct Fake {
    /// The page on screen now: what the people at the table read.
    screen: Rc<RefCell<String>>,
    /// The request sticks, in the order they come: the next replaces the one in the slot
    /// once a page says the request was refused.
    requests: VecDeque<RequestInput>,
    generation: GenerationInput,
    /// The recovery folders on the sticks (replace-card ones among them).
    recoveries: Vec<GenerationInput>,
    /// Each entropy step's `allow_virtual_hardware`.
    allow_virtual: Vec<bool>,
    /// The folder names the driver asked for.
    generation_asked: Vec<String>,
    /// The cards, in the order the people bring them.
    cards: VecDeque<Card>,
    inserted: Option<Card>,
    card_polls: usize,
    /// `personal <serial>` / `location <serial>`: each card the driver opened, in order.
    opened: Vec<String>,
    out: PathBuf,
    writes: usize,
    /// The next write stops after this many files, as a stick pulled out part way.
    write_fails_after: Option<usize>,
}

impl Fake {
    fn new(
        screen: Rc<RefCell<String>>,
        g: &Generation,
        requests: Vec<RequestInput>,
        cards: Vec<Card>,
        out: &Path,
    ) -> Self {
        Fake {
            screen,
            requests: requests.into(),
            generation: g.folder(),
            recoveries: Vec::new(),
            allow_virtual: Vec::new(),
            generation_asked: Vec::new(),
            cards: cards.into(),
            inserted: None,
            card_polls: 0,
            opened: Vec::new(),
            out: out.to_owned(),
            writes: 0,
            write_fails_after: None,
        }
    }
}

impl RecoveryDevices for Fake {
    type Error = FakeError;

    fn attest(&mut self) -> Attestation {
        Attestation {
            iso: IsoCheck::Found {
                sha256: "ab".repeat(32),
                location: "USB stick (sdb1) /sherd.iso".into(),
                via: "findiso=".into(),
            },
            rootfs_tree: Some("cd".repeat(32)),
            kernel_release: "6.12.117".into(),
            boot_path: "test".into(),
            uefi: None,
            pcrs: (0..8)
                .map(|i| {
                    let heads = heads_config::attest::heads_value(i);
                    PcrLine {
                        index: i,
                        value: Some(hexstr::encode(&heads.unwrap_or([i; 32]))),
                        verdict: if heads.is_some() { "PASS" } else { "UNKNOWN" }.into(),
                        expectation: "Heads' rules".into(),
                        reason: String::new(),
                    }
                })
                .collect(),
        }
    }

    fn poll_request(&mut self) -> RequestPoll {
        if self.requests.len() > 1 && self.screen.borrow().contains("THE REQUEST WAS REFUSED") {
            self.requests.pop_front();
        }
        match self.requests.front() {
            Some(r) => RequestPoll::Found(r.clone()),
            None => RequestPoll::Waiting("no request stick".into()),
        }
    }

    fn read_generation(&mut self, name: &str) -> Result<GenerationInput, String> {
        self.generation_asked.push(name.to_owned());
        Ok(self.generation.clone())
    }

    fn read_recoveries(&mut self, ceremony_id: &str) -> Result<Vec<GenerationInput>, String> {
        assert_eq!(
            ceremony_id,
            &self.generation_asked.last().unwrap()["sherd-".len()..]
        );
        Ok(self.recoveries.clone())
    }

    fn gather_entropy(
        &mut self,
        allow_virtual_hardware: bool,
        progress: &mut dyn FnMut(&EntropyView),
    ) -> Result<Gathered, EntropyView> {
        self.allow_virtual.push(allow_virtual_hardware);
        let mut sources: Vec<Box<dyn entropy::Source>> = vec![
            TestSource::boxed(entropy::SourceKind::Tpm, "tpm-chip-0", 1),
            TestSource::boxed(entropy::SourceKind::Hwrng, "hwrng:test", 2),
            TestSource::boxed(entropy::SourceKind::OsCsprng, "os-csprng", 3),
        ];
        ceremony_tui::entropy_run::gather_on(
            &mut sources,
            Vec::new(),
            &ceremony_tui::entropy_run::policy(allow_virtual_hardware),
            &entropy::Machine::default(),
            progress,
        )
        .map(Gathered::from)
    }

    fn open_new_card(&mut self, next: &NextCard) -> Result<Box<dyn LocationCard>, FakeError> {
        match &self.inserted {
            Some(Card::Location(c)) => {
                self.opened.push(format!(
                    "new {} for holder {} card {}",
                    self.inserted.as_ref().unwrap().serial(),
                    next.holder,
                    next.card
                ));
                Ok(Box::new(NewCard(c.clone())))
            }
            Some(c) => Err(FakeError::NotLocation(c.serial())),
            None => Err(FakeError::NoCard),
        }
    }

    fn poll_card(&mut self) -> CardPoll {
        self.card_polls += 1;
        let screen = self.screen.borrow().to_lowercase();
        let take_out = |c: &Card| {
            screen.contains("take the card")
                || screen.contains("remove the card now")
                || (matches!(c, Card::Personal(_)) && screen.contains("take the personal card out"))
        };
        let insert = screen.contains("insert your personal openpgp card")
            || screen.contains("insert one of")
            || screen.contains("insert a blank openpgp card");
        let holds_keys = |c: &Card| match c {
            Card::Location(l) => l.borrow_mut().holds_keys().unwrap(),
            Card::Personal(_) => false,
        };
        match &self.inserted {
            Some(c) if take_out(c) => {
                self.inserted = None;
                CardPoll::Empty
            }
            Some(c) => CardPoll::Card {
                ident: c.serial(),
                holds_keys: holds_keys(c),
            },
            None if insert => match self.cards.pop_front() {
                Some(c) => {
                    let ident = c.serial();
                    let holds_keys = holds_keys(&c);
                    self.inserted = Some(c);
                    CardPoll::Card { ident, holds_keys }
                }
                None => CardPoll::Empty,
            },
            None => CardPoll::Empty,
        }
    }

    fn open_personal_card(&mut self) -> Result<Box<dyn PersonalDecryptCard>, FakeError> {
        match &self.inserted {
            Some(Card::Personal(c)) => {
                self.opened.push(format!(
                    "personal {}",
                    self.inserted.as_ref().unwrap().serial()
                ));
                Ok(Box::new(SharedPersonal(c.clone())))
            }
            Some(c) => Err(FakeError::NotPersonal(c.serial())),
            None => Err(FakeError::NoCard),
        }
    }

    fn open_location_card(&mut self) -> Result<Box<dyn LocationCard>, FakeError> {
        match &self.inserted {
            Some(Card::Location(c)) => {
                self.opened.push(format!(
                    "location {}",
                    self.inserted.as_ref().unwrap().serial()
                ));
                Ok(Box::new(SharedLocation(c.clone())))
            }
            Some(c) => Err(FakeError::NotLocation(c.serial())),
            None => Err(FakeError::NoCard),
        }
    }

    fn poll_sticks(&mut self) -> Result<Vec<String>, FakeError> {
        Ok(vec!["TEST stick".into()])
    }

    fn write(&mut self, dir: &str, files: &[OutputFile]) -> Result<WriteReport, FakeError> {
        self.writes += 1;
        let mut v = DirVolume::new(&self.out);
        if let Some(n) = self.write_fails_after.take() {
            write_all(&mut [&mut v], dir, &files[..n])?;
            return Err(FakeError::Pulled);
        }
        Ok(write_all(&mut [&mut v], dir, files)?)
    }
}

/// The console: the script presses the keys, every page is checked to fit the serial console
/// and put on the screen the people at the table read.
struct Table {
    script: Script,
    screen: Rc<RefCell<String>>,
}

impl Table {
    fn new(steps: &[(&'static str, Key)]) -> Self {
        Table {
            script: Script::new(steps),
            screen: Rc::new(RefCell::new(String::new())),
        }
    }

    fn all_text(&self) -> String {
        self.script.all_text()
    }
}

impl Console for Table {
    fn show(&mut self, page: &Page) -> std::io::Result<()> {
        assert_fits(page);
        *self.screen.borrow_mut() = page.text();
        self.script.show(page)
    }

    fn next_key(&mut self, wait: Duration) -> std::io::Result<Option<Key>> {
        self.script.next_key(wait)
    }
}

/// A page fits the serial console (80x24): its rows, wrapped at the box's inner width, fit
/// inside the box; the header, the box title and the footer's keys fit their one row.
fn assert_fits(p: &Page) {
    let (width, inner_width) = (80, 80 - 2);
    let inner_rows = 24 - 1 - 2 - usize::from(p.header_rows());
    let rows: usize = p
        .lines
        .iter()
        .map(|l| l.text.chars().count().div_ceil(inner_width).max(1))
        .sum();
    assert!(rows <= inner_rows, "{rows} rows:\n{}", p.text());
    let mut header = format!(" sherd  {}", p.step.header());
    if let Some(id) = &p.ceremony_id {
        header.push_str(&format!("   ceremony {id}"));
    }
    assert!(header.chars().count() <= width, "header: {header}");
    assert!(
        p.title.chars().count() + 2 <= inner_width,
        "title: {}",
        p.title
    );
    let footer: usize = 1
        + p.keys
            .iter()
            .map(|(k, w)| k.chars().count() + 2 + 1 + w.chars().count())
            .sum::<usize>()
        + 3 * p.keys.len().saturating_sub(1);
    assert!(footer <= width, "footer of {footer} columns: {:?}", p.keys);
}

/// From the attestation to the holders' page: the attestation, the generation's words and the
/// request's hash confirmed.
const TO_HOLDERS: &[(&str, Key)] = &[
    ("boot attestation 1", Key::Char('y')),
    ("[Y] the words match", Key::Char('y')),
    ("[Y] the hash matches", Key::Char('y')),
];

/// The one file of a sign request confirmed.
const FILE: (&str, Key) = ("[Y] this is the file to sign", Key::Char('y'));

/// From the last share to power-off.
const TO_END: &[(&str, Key)] = &[
    ("[W] write to these sticks", Key::Char('w')),
    // The outputs are written: A on the final page does nothing.
    ("[Y] words written down", Key::Char('a')),
    ("[Y] words written down", Key::Char('y')),
    ("[P] power off", Key::Char('p')),
];

/// The holders' page with no share in yet; after the first share.
const FIRST: &str = "0 of 2 needed shares. Holders";
const SECOND: &str = "1 of 2 needed shares. Holders";

fn leak(v: Vec<(&'static str, Key)>) -> &'static [(&'static str, Key)] {
    Box::leak(v.into_boxed_slice())
}

fn walk(dir: &Path) -> Vec<OutputFile> {
    fn go(root: &Path, d: &Path, out: &mut Vec<OutputFile>) {
        for e in std::fs::read_dir(d).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                go(root, &p, out);
            } else {
                out.push(OutputFile {
                    path: p.strip_prefix(root).unwrap().to_string_lossy().into_owned(),
                    bytes: std::fs::read(&p).unwrap(),
                });
            }
        }
    }
    let mut out = Vec::new();
    go(dir, dir, &mut out);
    out
}

/// The one folder written under `out`: `sherd-<id>-recovery-<8 hex of the request hash>`.
fn written(out: &Path, g: &Generation, request: &RequestInput) -> (PathBuf, Vec<OutputFile>) {
    let hash = Request::parse(std::str::from_utf8(&request.bytes).unwrap())
        .unwrap()
        .hash_hex();
    let name = format!("sherd-{}-recovery-{}", g.id, &hash[..8]);
    let entries: Vec<String> = std::fs::read_dir(out)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(
        entries,
        std::slice::from_ref(&name),
        "one folder, named for the request"
    );
    let dir = out.join(name);
    let files = walk(&dir);
    (dir, files)
}

/// The recovery transcript, its signature by the root key checked, and its shares' records.
fn transcript_of(g: &Generation, files: &[OutputFile]) -> (Transcript, Vec<RecoveryShare>) {
    let text = common::file(files, paths::TRANSCRIPT);
    transcript::verify_signature(&g.root(), text, common::file(files, paths::TRANSCRIPT_SIG))
        .expect("the transcript is signed by the root key");
    let t = Transcript::parse(text).expect("the transcript parses");
    let shares = records(&t)
        .expect("recovery records")
        .into_iter()
        .filter_map(|r| match r {
            RecoveryRecord::Share(s) => Some(s),
            _ => None,
        })
        .collect();
    (t, shares)
}

/// The final words shown as rows of four, each after its hex group, are the transcript's.
fn assert_final_words_shown(text: &str, t: &Transcript) {
    let page = text
        .split("Transcript: the recovery transcript\n")
        .nth(1)
        .expect("the final page");
    let flat = page.split_whitespace().collect::<Vec<_>>().join(" ");
    let hash = ceremony::hex::encode(&t.final_hash());
    let words = t.final_words();
    let words: Vec<&str> = words.split(' ').collect();
    assert_eq!(words.len(), 32);
    for (g, four) in words.chunks(4).enumerate() {
        let row = format!("{} {} {}", g + 1, &hash[8 * g..8 * g + 8], four.join(" "));
        assert!(flat.contains(&row), "final words shown: {row}\n{page}");
    }
}

/// No location card PIN, share or root secret reached a page: the PINs read back from the PIN
/// files with the holders' keys, the shares opened with the location cards, the secret
/// recombined from them (hex either case, and as words).
fn assert_no_secret_shown(g: &Generation, text: &str) {
    let root = g.root();
    let pinned = g.pinned();
    let mut envelopes = Vec::new();
    for h in 1..=3u8 {
        let pin = common::user_pin(&g.fixture, &g.files, &root, h);
        assert!(
            !text.contains(pin.expose_secret()),
            "holder {h}'s PIN shown"
        );
        let card = &g.cards[usize::from(h) - 1];
        let envelope = pinned
            .open_share(h, &mut *card.borrow_mut(), &pin)
            .expect("the holder's card opens their share");
        let share = envelope.share.expose_secret();
        for hex in [
            ceremony::hex::encode(share),
            ceremony::hex::encode_upper(share),
        ] {
            assert!(!text.contains(&hex), "holder {h}'s share shown");
        }
        envelopes.push(envelope);
    }
    let secret = pinned
        .recombine(&[&envelopes[0], &envelopes[2]])
        .expect("the shares recombine")
        .secret;
    let secret = secret.expose_secret();
    for shown in [
        ceremony::hex::encode(secret),
        ceremony::hex::encode_upper(secret),
        ceremony::words::to_phrase(secret),
    ] {
        assert!(!text.contains(&shown), "the root secret shown");
    }
    // And half of it, as a hex row of a page would be.
    assert!(!text.contains(&ceremony::hex::encode(&secret[..8])));
}

#[test]
fn a_recovery_signs_a_file_with_holders_3_then_1() {
    let g = generation("tui-recovery", 81);
    let out = tempfile::tempdir().unwrap();
    let request = g.request(&sign_operation(), &[(FILE_NAME, FILE_BYTES)]);

    let mut steps = TO_HOLDERS.to_vec();
    steps.push(FILE);
    steps.push((FIRST, Key::Char('3')));
    // Holder 3's personal card refuses the default PIN; holder 3 types theirs, blind.
    steps.extend(
        CHANGED_PIN
            .chars()
            .map(|c| ("types its user PIN", Key::Char(c))),
    );
    steps.push(("types its user PIN", Key::Enter));
    // Holder 1's PIN file is read by their backup's (holder 2's) personal card.
    steps.push((SECOND, Key::Char('1')));
    steps.extend_from_slice(TO_END);
    let mut con = Table::new(leak(steps));

    let holder3 = SoftwarePersonalCard::new("0006:00000003", &g.fixture.personal[2])
        .unwrap()
        .with_user_pin(Pin::from_string(CHANGED_PIN.into()));
    let holder3 = Card::personal(holder3);
    let cards = vec![holder3.clone(), g.location(3), g.personal(2), g.location(1)];
    let mut dev = Fake::new(
        con.screen.clone(),
        &g,
        vec![request.clone()],
        cards,
        out.path(),
    );
    let outcome = run(&mut con, &mut dev).unwrap();
    let text = con.all_text();
    assert_eq!(outcome, Outcome::Completed, "{text}");
    assert!(con.script.steps.is_empty());
    assert_eq!(dev.generation_asked, ["sherd-tui-recovery"]);
    assert_eq!(
        dev.opened,
        [
            "personal 0006:00000003",
            "location 000F:000301",
            "personal 0006:00000002",
            "location 000F:000101",
        ]
    );
    assert_eq!(dev.writes, 1);
    // The right PIN resets the card's counter, as a card does.
    let Card::Personal(c) = &holder3 else {
        unreachable!()
    };
    assert_eq!(c.borrow().retries_left(), 3);

    // What the pages said on the way.
    assert!(
        text.contains("The card refused the default PIN 123456"),
        "{text}"
    );
    assert!(text.contains("The card allows 2 more tries; the last one is never used."));
    assert!(text.contains("Holder 003's share opened on card 000F:000301"));
    assert!(text.contains(
        "Holder 001's PIN file was read with the personal card of Holder 002, the backup holder."
    ));
    assert!(text.contains("Holder 001's share opened on card 000F:000101"));
    assert!(text.contains("The recovery is complete."));
    assert!(!text.contains("Abort the recovery?"));
    // While the personal card is still in, the page offers no key that does nothing.
    let out_pages: Vec<&String> = con
        .script
        .pages
        .iter()
        .filter(|p| p.contains("waiting for the personal card to come out"))
        .collect();
    assert_eq!(out_pages.len(), 2);
    assert!(
        out_pages.iter().all(|p| !p.contains("[Esc]")),
        "{out_pages:?}"
    );

    // The folder: the file's signature verifies over the file, not over other bytes.
    let (_, files) = written(out.path(), &g, &request);
    let root = g.root();
    // The root certificate in the folder is the re-derived key's: the pinned fingerprint.
    let cert = Cert::from_bytes(common::file(&files, paths::ROOT_CERT)).unwrap();
    assert_eq!(cert.fingerprint(), root.fingerprint());
    assert!(!cert.is_tsk(), "no secret key material written");
    assert_eq!(common::file(&files, paths::REQUEST), &request.bytes[..]);
    let sig = common::file(&files, &format!("signatures/{FILE_NAME}.sig"));
    transcript::verify_signature(&root, FILE_BYTES, sig).expect("Sequoia verifies the file");
    assert!(transcript::verify_signature(&root, b"other bytes", sig).is_err());

    // The transcript: holder 3, then holder 1 through their backup's card.
    let (t, shares) = transcript_of(&g, &files);
    let who: Vec<(u8, &str, &str, &str, &str)> = shares
        .iter()
        .map(|s| {
            (
                s.holder,
                s.reader.as_str(),
                s.reader_name.as_str(),
                s.personal_card.as_str(),
                s.card.as_str(),
            )
        })
        .collect();
    assert_eq!(
        who,
        [
            (3, "holder", "Holder 003", "0006:00000003", "000F:000301"),
            (1, "backup", "Holder 002", "0006:00000002", "000F:000101"),
        ]
    );
    let typed = records(&t).unwrap();
    assert!(typed.iter().any(|r| matches!(r,
        RecoveryRecord::Signed(s) if s.name == FILE_NAME && s.sha256.0 == sha256(FILE_BYTES))));
    assert!(typed.iter().any(|r| matches!(r,
        RecoveryRecord::Recombined(c) if c.holders == "3,1")));
    assert_final_words_shown(&text, &t);

    // No PIN typed, no location card PIN, no share and no secret ever reached a page; the
    // typed PIN is not in the transcript either.
    assert!(!text.contains(CHANGED_PIN));
    assert!(
        !String::from_utf8_lossy(common::file(&files, paths::TRANSCRIPT)).contains(CHANGED_PIN)
    );
    assert_no_secret_shown(&g, &text);
}

#[test]
fn refusals_at_the_holders_are_shown_and_lose_nothing() {
    let g = generation("tui-rec-refuse", 82);
    let out = tempfile::tempdir().unwrap();
    let request = g.request("[prove-quorum]\nchallenge = \"headline of the day\"\n", &[]);

    let mut steps = TO_HOLDERS.to_vec();
    steps.extend([
        (FIRST, Key::Char('3')),
        // Holder 3 again, once their share is in: refused on the holders' page.
        (SECOND, Key::Char('3')),
        // Holder 1, with a stranger's personal card: refused, naming the holder.
        ("each holder counts once", Key::Char('1')),
        // Holder 1 again, with their own personal card, then holder 3's location card
        // (refused, naming the card), then their own.
        ("nothing already in was lost", Key::Char('1')),
    ]);
    steps.extend_from_slice(TO_END);
    let mut con = Table::new(leak(steps));

    let stranger = common::personal("Sam Stranger");
    let stranger = Card::personal(SoftwarePersonalCard::new("0006:00000099", &stranger).unwrap());
    let cards = vec![
        g.personal(3),
        g.location(3),
        stranger,
        g.personal(1),
        g.location(3),
        g.location(1),
    ];
    let mut dev = Fake::new(
        con.screen.clone(),
        &g,
        vec![request.clone()],
        cards,
        out.path(),
    );
    let outcome = run(&mut con, &mut dev).unwrap();
    let text = con.all_text();
    assert_eq!(outcome, Outcome::Completed, "{text}");
    assert!(con.script.steps.is_empty());
    assert_eq!(
        dev.opened,
        [
            "personal 0006:00000003",
            "location 000F:000301",
            "personal 0006:00000099",
            "personal 0006:00000001",
            "location 000F:000301",
            "location 000F:000101",
        ]
    );

    // Each refusal on a page, naming the holder (and the card).
    assert!(
        text.contains(
            "holder 3 (Holder 003): this holder's share is already in; each holder counts once"
        ),
        "{text}"
    );
    assert!(
        text.contains("holder 1 (Holder 001): the personal card 0006:00000099 ("),
        "{text}"
    );
    assert!(text.contains("is neither the holder's nor the backup holder's (Holder 002)"));
    assert!(text.contains(
        "holder 1 (Holder 001): the location card 000F:000301 is not one of this holder's \
         cards (000F:000101)"
    ));
    assert!(text.contains("Nothing was accepted from that turn; nothing already in was lost."));
    // The holders' page after each refusal still counts holder 3's share.
    let holders_pages: Vec<&String> = con
        .script
        .pages
        .iter()
        .filter(|p| p.contains("REFUSED") && p.contains("needed shares. Holders"))
        .collect();
    assert_eq!(holders_pages.len(), 2, "{holders_pages:?}");
    assert!(holders_pages.iter().all(|p| p.contains(SECOND)));

    // The refusals added nothing: two shares, holders 3 then 1 (with their own card).
    let (_, files) = written(out.path(), &g, &request);
    let (t, shares) = transcript_of(&g, &files);
    let who: Vec<(u8, &str, &str)> = shares
        .iter()
        .map(|s| (s.holder, s.reader.as_str(), s.card.as_str()))
        .collect();
    assert_eq!(
        who,
        [(3, "holder", "000F:000301"), (1, "holder", "000F:000101")]
    );
    transcript::verify_signature(
        &g.root(),
        b"headline of the day",
        common::file(&files, paths::CHALLENGE_SIG),
    )
    .expect("the challenge is signed by the root key");
    assert_final_words_shown(&text, &t);
    assert_no_secret_shown(&g, &text);
}

/// A request refused on the request stick's page before any card; then the right stick is
/// inserted and the ceremony goes on to the generation's words, where the operator aborts.
fn refused_before_any_card(g: &Generation, bad: RequestInput, why: &str) {
    let out = tempfile::tempdir().unwrap();
    let good = g.request(&sign_operation(), &[(FILE_NAME, FILE_BYTES)]);
    let mut con = Table::new(&[
        ("boot attestation 1", Key::Char('y')),
        ("[Y] the words match", Key::Char('a')),
        ("Abort the recovery?", Key::Char('y')),
        ("RECOVERY ABORTED", Key::Char('p')),
    ]);
    let mut dev = Fake::new(
        con.screen.clone(),
        g,
        vec![bad, good],
        vec![g.personal(1), g.location(1)],
        out.path(),
    );
    let outcome = run(&mut con, &mut dev).unwrap();
    let text = con.all_text();
    assert!(matches!(outcome, Outcome::Aborted(_)), "{outcome:?}");
    let refused = text
        .split("THE REQUEST WAS REFUSED\n")
        .nth(1)
        .unwrap_or_else(|| panic!("no refusal shown:\n{text}"));
    assert!(refused.contains(why), "expected {why:?}:\n{refused}");
    assert!(refused.contains("No card has been asked for."));
    // The corrected request was taken: the generation's words came next.
    assert!(text.contains("[Y] the words match"));
    assert_eq!(
        (dev.card_polls, dev.opened.len(), dev.cards.len()),
        (0, 0, 2),
        "no card was looked for or opened"
    );
    assert_eq!(dev.writes, 0);
    assert!(std::fs::read_dir(out.path()).unwrap().next().is_none());
}

#[test]
fn requests_are_refused_on_the_request_page_before_any_card() {
    let g = generation("tui-rec-request", 83);

    // Another root's fingerprint.
    let other = "AB".repeat(20);
    let bad = g.request_for(&other, &sign_operation(), &[(FILE_NAME, FILE_BYTES)]);
    refused_before_any_card(&g, bad, &other);

    // The file on the stick has other bytes than the request's SHA-256.
    let bad = g.request(&sign_operation(), &[(FILE_NAME, b"other bytes\n")]);
    refused_before_any_card(
        &g,
        bad,
        &format!(
            "{FILE_NAME}: its SHA-256 is {}, the request says {}: not signed",
            ceremony::hex::encode(&sha256(b"other bytes\n")),
            ceremony::hex::encode(&sha256(FILE_BYTES))
        ),
    );

    // A reshare whose new plan the plan's own checks refuse (3 of 2 holders).
    let mut reshare = String::from("[reshare]\nthreshold = 3\n\n");
    for (i, backup) in [(0, 1), (1, 0)] {
        reshare.push_str(&format!(
            "[[reshare.holder]]\nname = \"{}\"\nbackup = \"{}\"\ncards = 1\n\
             certs = ['''\n{}''']\n\n",
            g.fixture.names[i],
            g.fixture.names[backup],
            common::armored_public(&g.fixture.personal[i])
        ));
    }
    reshare.push_str("[[reshare.witness]]\nname = \"Wendy\"\n");
    let bad = g.request(&reshare, &[]);
    refused_before_any_card(&g, bad, "reshare: ");
}

#[test]
fn abort_mid_holders_writes_nothing() {
    let g = generation("tui-rec-abort", 84);
    let out = tempfile::tempdir().unwrap();
    let request = g.request(&sign_operation(), &[(FILE_NAME, FILE_BYTES)]);
    let mut steps = TO_HOLDERS.to_vec();
    steps.extend([
        FILE,
        (FIRST, Key::Char('3')),
        (SECOND, Key::Char('a')),
        ("Abort the recovery?", Key::Char('y')),
        ("RECOVERY ABORTED", Key::Char('p')),
    ]);
    let mut con = Table::new(leak(steps));
    let mut dev = Fake::new(
        con.screen.clone(),
        &g,
        vec![request],
        vec![g.personal(3), g.location(3), g.personal(1), g.location(1)],
        out.path(),
    );
    let outcome = run(&mut con, &mut dev).unwrap();
    let text = con.all_text();
    assert_eq!(
        outcome,
        Outcome::Aborted("aborted by the operator at recovery step Holders' shares".into()),
        "{text}"
    );
    assert!(con.script.steps.is_empty());
    assert!(text.contains("Holder 003's share opened on card 000F:000301"));
    assert_eq!(dev.opened.len(), 2, "holder 1's cards were never asked for");
    assert_eq!(dev.writes, 0);
    assert!(
        std::fs::read_dir(out.path()).unwrap().next().is_none(),
        "nothing written"
    );
    assert_no_secret_shown(&g, &text);
}

#[test]
fn a_personal_card_is_never_asked_for_a_pin_it_could_not_take() {
    let g = generation("tui-rec-pins", 85);
    let out = tempfile::tempdir().unwrap();
    let request = g.request("[prove-quorum]\nchallenge = \"headline\"\n", &[]);
    let changed = |index: u8| {
        SoftwarePersonalCard::new(
            &format!("0006:{index:08}"),
            &g.fixture.personal[usize::from(index) - 1],
        )
        .unwrap()
        .with_user_pin(Pin::from_string(CHANGED_PIN.into()))
    };
    // Holder 3's card has 2 tries left: the default PIN is not tried (a refusal would leave
    // too few for their own), their PIN is asked for at once.
    let holder3 = Card::personal(changed(3).with_retries_left(2));
    // Holder 1 mistypes their changed PIN: 1 try left, which is never used.
    let holder1 = Card::personal(changed(1));
    const WRONG: &str = "Wr0ng!pin";

    let mut steps = TO_HOLDERS.to_vec();
    steps.push((FIRST, Key::Char('3')));
    steps.extend(
        CHANGED_PIN
            .chars()
            .map(|c| ("types its user PIN", Key::Char(c))),
    );
    steps.push(("types its user PIN", Key::Enter));
    steps.push((SECOND, Key::Char('1')));
    steps.extend(WRONG.chars().map(|c| ("types its user PIN", Key::Char(c))));
    steps.push(("types its user PIN", Key::Enter));
    // The turn ends; holder 1 comes back with their backup's card.
    steps.push(("nothing already in was lost", Key::Char('1')));
    steps.extend_from_slice(TO_END);
    let mut con = Table::new(leak(steps));
    let cards = vec![
        holder3.clone(),
        g.location(3),
        holder1.clone(),
        g.personal(2),
        g.location(1),
    ];
    let mut dev = Fake::new(
        con.screen.clone(),
        &g,
        vec![request.clone()],
        cards,
        out.path(),
    );
    let outcome = run(&mut con, &mut dev).unwrap();
    let text = con.all_text();
    assert_eq!(outcome, Outcome::Completed, "{text}");
    assert!(con.script.steps.is_empty());

    let pin_pages: Vec<&String> = con
        .script
        .pages
        .iter()
        .filter(|p| p.contains("types its user PIN"))
        .collect();
    assert_eq!(pin_pages.len(), 2, "{pin_pages:?}");
    // Holder 3: asked at once, nothing refused yet.
    assert!(pin_pages[0].contains("card 0006:00000003"));
    assert!(!pin_pages[0].contains("refused"), "{}", pin_pages[0]);
    assert!(pin_pages[0].contains("The card allows 2 more tries"));
    // Holder 1: after the default PIN, once; the wrong PIN typed leaves 1 try, not asked for.
    assert!(pin_pages[1].contains("card 0006:00000001"));
    assert!(pin_pages[1].contains("The card refused the default PIN 123456"));
    assert!(text.contains(
        "holder 1 (Holder 001): the personal card: refusing to present the user PIN: only 1 \
         tries left"
    ));
    let (Card::Personal(c3), Card::Personal(c1)) = (&holder3, &holder1) else {
        unreachable!()
    };
    assert_eq!(
        c3.borrow().retries_left(),
        3,
        "the right PIN resets the counter"
    );
    assert_eq!(c1.borrow().retries_left(), 1, "the last try was never used");

    let (_, files) = written(out.path(), &g, &request);
    let (_, shares) = transcript_of(&g, &files);
    let who: Vec<(u8, &str)> = shares
        .iter()
        .map(|s| (s.holder, s.reader.as_str()))
        .collect();
    assert_eq!(who, [(3, "holder"), (1, "backup")]);
    for typed in [CHANGED_PIN, WRONG] {
        assert!(!text.contains(typed));
    }
}

#[test]
fn an_abort_after_a_failed_write_says_what_the_sticks_may_hold() {
    let g = generation("tui-rec-write", 86);
    let out = tempfile::tempdir().unwrap();
    let request = g.request(&sign_operation(), &[(FILE_NAME, FILE_BYTES)]);
    let mut steps = TO_HOLDERS.to_vec();
    steps.extend([
        FILE,
        (FIRST, Key::Char('3')),
        (SECOND, Key::Char('1')),
        ("[W] write to these sticks", Key::Char('w')),
        ("WRITING FAILED", Key::Char('a')),
        ("Abort the recovery?", Key::Char('y')),
        ("RECOVERY ABORTED", Key::Char('p')),
    ]);
    let mut con = Table::new(leak(steps));
    let mut dev = Fake::new(
        con.screen.clone(),
        &g,
        vec![request],
        vec![g.personal(3), g.location(3), g.personal(1), g.location(1)],
        out.path(),
    );
    // The stick is pulled after request.toml, root-cert.asc and the file's signature.
    dev.write_fails_after = Some(3);
    let outcome = run(&mut con, &mut dev).unwrap();
    let text = con.all_text();
    assert!(matches!(outcome, Outcome::Aborted(_)), "{text}");
    assert!(con.script.steps.is_empty());
    assert!(text.contains("the stick was pulled out (test)"));
    // The abort question and the last page say what is true at this point.
    assert!(
        text.contains("The outputs, signed in memory only, are wiped; nothing more is written.")
    );
    assert!(text.contains("A write failed part way: a data stick may hold some of this"));
    assert!(!text.contains("Nothing was written"), "{text}");
    assert!(!text.contains("nothing is signed"), "{text}");
    // It does: the signature, without the transcript.
    let dir = std::fs::read_dir(out.path())
        .unwrap()
        .next()
        .unwrap()
        .unwrap();
    let files = walk(&dir.path());
    let mut paths: Vec<&str> = files.iter().map(|f| f.path.as_str()).collect();
    paths.sort_unstable();
    assert_eq!(
        paths,
        [
            "request.toml",
            "root-cert.asc",
            "signatures/release-1.2.tar.gz.sig"
        ]
    );
}

/// The replace-card on the host: holders 1 and 3 replace holder 2's card with a new
/// blank card (entropy gathered and recorded first); then a second recovery, its root pinned
/// with the replace-card folder, takes holder 2's share from the new card (their PIN file the
/// new one) with holder 1's and signs a file under the same root key.
#[test]
fn replace_card_then_the_new_card_recovers_the_same_root() {
    let g = generation("tui-replace", 83);
    let root = g.root();
    let replace = g.request("[replace-card]\nholder = 2\ncards = 1\n", &[]);
    let out = tempfile::tempdir().unwrap();
    let mut steps = TO_HOLDERS.to_vec();
    steps.push((FIRST, Key::Char('1')));
    steps.push((SECOND, Key::Char('3')));
    steps.push(("[Enter] go on", Key::Enter));
    steps.push(("[Y] go on to the cards", Key::Char('y')));
    steps.extend_from_slice(TO_END);
    let mut con = Table::new(leak(steps));
    let new_card = Rc::new(RefCell::new(SoftwareCard::new("000F:000901")));
    let cards = vec![
        g.personal(1),
        g.location(1),
        g.personal(3),
        g.location(3),
        Card::Location(new_card.clone()),
    ];
    let mut dev = Fake::new(
        con.screen.clone(),
        &g,
        vec![replace.clone()],
        cards,
        out.path(),
    );
    let outcome = run(&mut con, &mut dev).unwrap();
    let text = con.all_text();
    assert_eq!(outcome, Outcome::Completed, "{text}");
    assert!(con.script.steps.is_empty());
    // The fixture's plan does not allow virtual hardware: nor does the entropy step.
    assert_eq!(dev.allow_virtual, [false]);
    assert_eq!(
        dev.opened.last().map(String::as_str),
        Some("new 000F:000901 for holder 2 card 1")
    );
    assert!(
        text.contains("No replace-card or reshare folder was found"),
        "{text}"
    );
    assert!(
        text.contains("replace holder 2's (Holder 002) location cards"),
        "{text}"
    );
    assert!(
        text.contains("Card 000F:000901 is ready for holder 2, card 1."),
        "{text}"
    );
    let (dir, files) = written(out.path(), &g, &replace);
    let (t, _) = transcript_of(&g, &files);
    let typed = records(&t).unwrap();
    // The entropy report is in the transcript, before the recombination.
    let entropy_at = typed
        .iter()
        .position(|r| matches!(r, RecoveryRecord::Note(n) if n.kind() == "entropy.source"))
        .expect("the entropy report is recorded");
    let recombined_at = typed
        .iter()
        .position(|r| matches!(r, RecoveryRecord::Recombined(_)))
        .unwrap();
    assert!(entropy_at < recombined_at);
    let location = typed
        .iter()
        .find_map(|r| match r {
            RecoveryRecord::Location(l) => Some(l.fingerprint.0.clone()),
            _ => None,
        })
        .expect("recovery.location");
    // The new location fingerprint was shown, grouped; the new card holds its key.
    assert!(
        flat(&text).contains(&ceremony_tui::recovery::screens::grouped_fingerprint(
            &location
        )),
        "{text}"
    );
    assert!(typed.iter().any(|r| matches!(r,
        RecoveryRecord::Card(c) if c.holder == 2 && c.serial == "000F:000901")));
    // The folder passes the recovery verifier against the generation.
    let gen_dir = tempfile::tempdir().unwrap();
    write_all(&mut [&mut DirVolume::new(gen_dir.path())], "gen", &g.files).unwrap();
    let pinned = PinnedRoot::from_dirs(&gen_dir.path().join("gen"), &[dir.as_path()])
        .expect("the root pins with the replace-card folder");
    assert_eq!(pinned.replacements().len(), 1);
    assert_no_secret_shown(&g, &text);

    // The second recovery: holder 2 with the new card (their new PIN file), then holder 1;
    // a file signed under the same root.
    let sign = g.request(&sign_operation(), &[(FILE_NAME, FILE_BYTES)]);
    let out2 = tempfile::tempdir().unwrap();
    let mut steps = TO_HOLDERS.to_vec();
    steps.push(FILE);
    steps.push((FIRST, Key::Char('2')));
    steps.push((SECOND, Key::Char('1')));
    steps.extend_from_slice(TO_END);
    let mut con = Table::new(leak(steps));
    let cards = vec![
        g.personal(2),
        Card::Location(new_card.clone()),
        g.personal(1),
        g.location(1),
    ];
    let mut dev = Fake::new(
        con.screen.clone(),
        &g,
        vec![sign.clone()],
        cards,
        out2.path(),
    );
    dev.recoveries = vec![GenerationInput {
        location: "USB stick GEN (sdc1) /sherd-tui-replace-recovery-x".into(),
        files: files
            .iter()
            .map(|f| (f.path.clone(), f.bytes.clone()))
            .collect(),
    }];
    let outcome = run(&mut con, &mut dev).unwrap();
    let text = con.all_text();
    assert_eq!(outcome, Outcome::Completed, "{text}");
    assert!(con.script.steps.is_empty());
    assert!(text.contains("1 replace-card folder applied"), "{text}");
    assert!(
        dev.allow_virtual.is_empty(),
        "a sign request gathers no entropy"
    );
    let (_, files2) = written(out2.path(), &g, &sign);
    let cert = Cert::from_bytes(common::file(&files2, paths::ROOT_CERT)).unwrap();
    assert_eq!(cert.fingerprint(), root.fingerprint(), "the same root key");
    let sig = common::file(&files2, &format!("signatures/{FILE_NAME}.sig"));
    transcript::verify_signature(&root, FILE_BYTES, sig).expect("Sequoia verifies the file");
    let (t2, shares) = transcript_of(&g, &files2);
    let who: Vec<(u8, &str)> = shares.iter().map(|s| (s.holder, s.card.as_str())).collect();
    assert_eq!(who, [(2, "000F:000901"), (1, "000F:000101")]);
    assert!(
        records(&t2)
            .unwrap()
            .iter()
            .any(|r| matches!(r, RecoveryRecord::Replaced(r) if r.holder == 2))
    );
}

/// A page's text with its line breaks taken out.
fn flat(text: &str) -> String {
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}
