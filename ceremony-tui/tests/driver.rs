//! The whole ceremony through the driver on a host: a scripted console presses the keys the
//! operator and witnesses would, fake devices hand over software cards and a folder as the
//! data stick. Checks the outputs with the offline verifier, that no secret ever reached a
//! page, and the fault paths (refused plan, failed card, failed write, missing entropy).

#[path = "../../ceremony/tests/common/mod.rs"]
mod common;

use ceremony::card::{CardError, CardSerial, LocationCard, SoftwareCard};
use ceremony::keys::CardImport;
use ceremony::secret::{CardPins, Pin, SharedSecret};
use ceremony::storage::{DirVolume, OutputFile, WriteReport, write_all};
use ceremony_tui::ceremony::screens::{Attestation, IsoCheck, PcrLine};
use ceremony_tui::ceremony::script::Script;
use ceremony_tui::ceremony::{CardPoll, Devices, Gathered, Outcome, PlanPoll, run};
use ceremony_tui::entropy_check::EntropyView;
use ceremony_tui::keys::Key;
use std::cell::RefCell;
use std::collections::VecDeque;
use std::rc::Rc;

/// A software card that stays inspectable after the driver drops its handle.
#[derive(Clone)]
struct SharedCard(Rc<RefCell<SoftwareCard>>, Rc<RefCell<bool>>);

impl LocationCard for SharedCard {
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
        if self.1.replace(false) {
            return Err(CardError::Device("the card was pulled out (test)".into()));
        }
        self.0.borrow_mut().provision(key, pins)
    }
    fn ecdh(&mut self, pin: &Pin, eph: &[u8; 32]) -> Result<SharedSecret, CardError> {
        self.0.borrow_mut().ecdh(pin, eph)
    }
}

struct Fake {
    plan: Vec<PlanPoll>,
    entropy_fails: usize,
    /// What the driver asked of the entropy step: may virtual devices count?
    allow_virtual: Vec<bool>,
    /// Witnesses' personal cards, inserted in this order when the operator presses S.
    personal: VecDeque<ceremony::card::SoftwarePersonalCard>,
    queue: VecDeque<SharedCard>,
    inserted: Option<(SharedCard, bool)>,
    provisioned: Vec<SharedCard>,
    out: std::path::PathBuf,
    write_fails: usize,
}

impl Fake {
    fn new(plan: &str, cards: usize, out: &std::path::Path) -> Self {
        Fake {
            plan: vec![PlanPoll::Found {
                text: plan.to_owned(),
                location: "USB stick TEST (sdb1)".into(),
            }],
            entropy_fails: 0,
            allow_virtual: Vec::new(),
            personal: VecDeque::new(),
            queue: (0..cards)
                .map(|i| {
                    SharedCard(
                        Rc::new(RefCell::new(SoftwareCard::new(&format!(
                            "000F:0000{i:04X}"
                        )))),
                        Rc::new(RefCell::new(false)),
                    )
                })
                .collect(),
            inserted: None,
            provisioned: Vec::new(),
            out: out.to_owned(),
            write_fails: 0,
        }
    }
}

/// A deterministic entropy source double (ChaCha20 from a seed), whitened, 8 bits claimed.
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

/// The test devices' failures.
#[derive(Debug, thiserror::Error)]
enum FakeError {
    #[error("no card")]
    NoCard,
    #[error("TEST stick: writing failed: the stick was pulled out (test)")]
    Pulled,
    #[error(transparent)]
    Write(#[from] ceremony::storage::WriteError),
}

impl Devices for Fake {
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
            // A clean Heads boot: Heads' values PASS, the board-specific PCRs are UNKNOWN.
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
    fn poll_plan(&mut self) -> PlanPoll {
        if self.plan.len() > 1 {
            self.plan.remove(0)
        } else {
            self.plan[0].clone()
        }
    }
    fn open_personal_card(&mut self) -> Result<Box<dyn ceremony::card::PersonalCard>, Self::Error> {
        match self.personal.pop_front() {
            Some(c) => Ok(Box::new(c)),
            None => Err(FakeError::NoCard),
        }
    }
    fn quote(&mut self, _plan_hash: &[u8; 32]) -> Result<tpm_quote::Quote, String> {
        Err("test double: no TPM".into())
    }
    fn gather_entropy(
        &mut self,
        allow_virtual_hardware: bool,
        progress: &mut dyn FnMut(&EntropyView),
    ) -> Result<Gathered, EntropyView> {
        self.allow_virtual.push(allow_virtual_hardware);
        // The real gathering and policy over deterministic test sources; a failing step has
        // one hardware source, which the policy refuses.
        let mut sources: Vec<Box<dyn entropy::Source>> = vec![
            TestSource::boxed(entropy::SourceKind::Tpm, "tpm-chip-0", 1),
            TestSource::boxed(entropy::SourceKind::Hwrng, "hwrng:test", 2),
            TestSource::boxed(entropy::SourceKind::OsCsprng, "os-csprng", 3),
        ];
        if self.entropy_fails > 0 {
            self.entropy_fails -= 1;
            sources.remove(1);
        }
        ceremony_tui::entropy_run::gather_on(
            &mut sources,
            Vec::new(),
            &ceremony_tui::entropy_run::policy(allow_virtual_hardware),
            &entropy::Machine::default(),
            progress,
        )
        .map(Gathered::from)
    }
    fn poll_card(&mut self) -> CardPoll {
        match &self.inserted {
            // A card that was used is taken out by the operator before the next look.
            Some((_, true)) => {
                self.inserted = None;
                CardPoll::Empty
            }
            Some((c, false)) => CardPoll::Card {
                ident: c.0.borrow_mut().serial().unwrap().0,
                holds_keys: false,
            },
            None => match self.queue.pop_front() {
                Some(c) => {
                    let ident = c.0.borrow_mut().serial().unwrap().0;
                    self.inserted = Some((c, false));
                    CardPoll::Card {
                        ident,
                        holds_keys: false,
                    }
                }
                None => CardPoll::Empty,
            },
        }
    }
    fn open_card(&mut self) -> Result<Box<dyn LocationCard>, FakeError> {
        let (c, used) = self.inserted.as_mut().ok_or(FakeError::NoCard)?;
        *used = true;
        self.provisioned.push(c.clone());
        Ok(Box::new(c.clone()))
    }
    fn poll_sticks(&mut self) -> Result<Vec<String>, FakeError> {
        Ok(vec!["TEST stick".into()])
    }
    fn write(&mut self, dir: &str, files: &[OutputFile]) -> Result<WriteReport, FakeError> {
        if self.write_fails > 0 {
            self.write_fails -= 1;
            return Err(FakeError::Pulled);
        }
        let mut v = DirVolume::new(&self.out);
        Ok(write_all(&mut [&mut v], dir, files)?)
    }
}

/// The attestation and the plan, up to the boot judged against the plan.
const TO_VERDICTS: &[(&str, Key)] = &[
    ("boot attestation 1", Key::Tab),
    ("boot attestation 2", Key::Tab),
    ("TPM PCR 0 to 3", Key::Char('y')),
    ("[ waiting ] Wendy", Key::Char('1')),
    ("[ waiting ] Walter", Key::Char('2')),
    ("[Y] go on", Key::Char('y')),
];

/// From the entropy report to power-off.
const FROM_ENTROPY: &[(&str, Key)] = &[
    ("[Enter] go on", Key::Enter),
    ("Root certificate fingerprint", Key::Char('y')),
    ("[W] write", Key::Char('w')),
    ("Transcript final hash", Key::Char('y')),
    ("[P] power off", Key::Char('p')),
];

/// The reason typed for the test double's boot (no TPM quote, no recorded laptop values).
const REASON: &str = "test double: no quote, no recorded laptop";

fn deviation_steps() -> Vec<(&'static str, Key)> {
    ceremony_tui::ceremony::script::deviation_steps(REASON)
}

/// The whole ceremony: attestation, plan, a deviation, then entropy to power-off.
fn happy() -> Vec<(&'static str, Key)> {
    let mut v = TO_VERDICTS.to_vec();
    v.extend(deviation_steps());
    v.extend_from_slice(FROM_ENTROPY);
    v
}

#[test]
fn a_whole_ceremony_writes_verifiable_outputs_and_shows_no_secret() {
    let f = common::fixture_with("tui-test", 3, 2, &[1, 1, 1]);
    let out = tempfile::tempdir().unwrap();
    let mut dev = Fake::new(&f.plan_text, 3, out.path());
    let mut con = Script::new(&happy());
    assert_eq!(run(&mut con, &mut dev).unwrap(), Outcome::Completed);
    assert!(con.steps.is_empty());

    let dir = out.path().join("sherd-tui-test");
    let report = ceremony::verify::verify_dir(&dir).expect("the offline verifier passes");
    assert_eq!((report.threshold, report.count, report.cards), (2, 3, 3));
    // The boot judged against the plan, and the deviation typed on screen, are recorded.
    let transcript = std::fs::read_to_string(dir.join("transcript.txt")).unwrap();
    assert!(transcript.contains(
        " attest.verdicts pcr0=PASS pcr1=PASS pcr2=UNKNOWN pcr3=PASS pcr4=PASS pcr5=UNKNOWN \
         pcr6=UNKNOWN pcr7=UNKNOWN quote=UNKNOWN\n"
    ));
    assert!(transcript.contains(&format!("quote=UNKNOWN reason=\"{REASON}\"\n")));
    let text = con.all_text();
    // Shown as rows of four words, each after its hex group.
    let flat = text.split_whitespace().collect::<Vec<_>>().join(" ");
    let words: Vec<&str> = report.transcript_final_words.split(' ').collect();
    for (g, four) in words.chunks(4).enumerate() {
        let hex = &report.transcript_final_hash[8 * g..8 * g + 8];
        let row = format!("{} {hex} {}", g + 1, four.join(" "));
        assert!(flat.contains(&row), "final words shown: {row}");
    }
    assert!(text.contains("step 4 of 9: Keys and sealing") || text.contains("Keys and sealing"));

    // The PINs, read back from the PIN files with the holders' keys, never reached a page.
    let files: Vec<OutputFile> = walk(&dir);
    use ceremony::openpgp::parse::Parse;
    let root = ceremony::openpgp::Cert::from_bytes(common::file(
        &files,
        ceremony::ceremony::paths::ROOT_CERT,
    ));
    let root = root.expect("root certificate");
    for h in 1..=3u8 {
        let pin = common::user_pin(&f, &files, &root, h);
        assert!(
            !text.contains(pin.expose_secret()),
            "holder {h}'s PIN on screen"
        );
    }
    // Every card was inserted once and decrypts its own share.
    assert_eq!(dev.provisioned.len(), 3);
    // A real plan: virtual devices never count, and no page says they may.
    assert_eq!(dev.allow_virtual, [false]);
    assert!(!text.contains("VIRTUAL HARDWARE ALLOWED"));
}

#[test]
fn a_plan_that_allows_virtual_hardware_says_so_on_every_page_after_it() {
    let f = common::fixture_with("tui-virtual", 3, 2, &[1, 1, 1]);
    let plan = f.plan_text.replacen(
        "threshold = 2\n",
        "threshold = 2\nallow_virtual_hardware = true\n",
        1,
    );
    assert_ne!(plan, f.plan_text, "the fixture's plan has a threshold line");
    let out = tempfile::tempdir().unwrap();
    let mut dev = Fake::new(&plan, 3, out.path());
    let mut con = Script::new(&happy());
    assert_eq!(run(&mut con, &mut dev).unwrap(), Outcome::Completed);
    assert_eq!(dev.allow_virtual, [true]);
    let pages = &con.pages;
    let plan_page = pages
        .iter()
        .position(|p| p.contains("allows VIRTUAL hardware"))
        .expect("the plan page says the plan allows virtual hardware");
    // From the plan page on, every page carries the banner; none before the plan was read.
    let first_banner = pages
        .iter()
        .position(|p| p.starts_with("VIRTUAL HARDWARE ALLOWED"))
        .expect("banner shown");
    assert_eq!(first_banner, plan_page);
    assert!(
        pages[..first_banner]
            .iter()
            .all(|p| !p.starts_with("VIRTUAL"))
    );
    assert!(
        pages[first_banner..]
            .iter()
            .all(|p| p.starts_with("VIRTUAL HARDWARE ALLOWED")),
        "a page after the plan without the banner"
    );
    let dir = out.path().join("sherd-tui-virtual");
    ceremony::verify::verify_dir(&dir).expect("the offline verifier passes");
}

fn walk(dir: &std::path::Path) -> Vec<OutputFile> {
    let mut out = Vec::new();
    fn go(root: &std::path::Path, d: &std::path::Path, out: &mut Vec<OutputFile>) {
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
    go(dir, dir, &mut out);
    out
}

#[test]
fn faults_are_shown_and_recovered_without_losing_anything() {
    let f = common::fixture_with("tui-faults", 2, 2, &[1, 1]);
    let out = tempfile::tempdir().unwrap();
    let mut dev = Fake::new(&f.plan_text, 3, out.path());
    // A plan with an error first, then the stick is pulled, then the corrected plan.
    dev.plan = vec![
        PlanPoll::Found {
            text: "format = \"sherd-plan/1\"\nbogus = 1\n".into(),
            location: "USB stick TEST (sdb1)".into(),
        },
        PlanPoll::Found {
            text: "format = \"sherd-plan/1\"\nbogus = 1\n".into(),
            location: "USB stick TEST (sdb1)".into(),
        },
        PlanPoll::Waiting("no plan stick".into()),
        PlanPoll::Found {
            text: f.plan_text.clone(),
            location: "USB stick TEST (sdb1)".into(),
        },
    ];
    dev.entropy_fails = 1;
    // The first card is pulled during provisioning; it comes back and is provisioned.
    *dev.queue[0].1.borrow_mut() = true;
    let first = dev.queue[0].clone();
    dev.queue.insert(1, first);
    dev.write_fails = 1;
    let mut steps = vec![
        ("boot attestation 1", Key::Char('y')),
        ("[R] retry", Key::Char('r')),
    ];
    steps.extend_from_slice(&TO_VERDICTS[3..]);
    // D, then Enter with no reason (refused, nothing recorded), Esc back to the verdicts,
    // then the deviation typed in full.
    steps.extend([
        ("[D] record a deviation", Key::Char('d')),
        ("record a deviation", Key::Enter),
        ("the reason has 0 characters", Key::Esc),
    ]);
    steps.extend(deviation_steps());
    steps.extend_from_slice(&FROM_ENTROPY[..3]);
    steps.extend_from_slice(&[
        ("WRITING FAILED", Key::Char('w')),
        ("Transcript final hash", Key::Char('y')),
        ("[P] power off", Key::Char('p')),
    ]);
    let mut con = Script::new(&steps);
    // The entropy refusal needs its retry key after the plan: reorder.
    con.steps = steps_in_order(&steps);
    assert_eq!(run(&mut con, &mut dev).unwrap(), Outcome::Completed);
    let text = con.all_text();
    assert!(text.contains("THE PLAN WAS REFUSED"), "{text}");
    assert!(text.contains("REFUSED: 1 of 2 independent hardware sources counted."));
    assert!(text.contains("THE LAST ATTEMPT FAILED"));
    assert!(text.contains("the card was pulled out"));
    assert!(text.contains("WRITING FAILED"));
    ceremony::verify::verify_dir(&out.path().join("sherd-tui-faults")).expect("verifies");
    // Card 0 was inserted twice (the pull, then the retry), card 1 once.
    assert_eq!(dev.provisioned.len(), 3);
}

fn steps_in_order(s: &[(&'static str, Key)]) -> VecDeque<(&'static str, Key)> {
    // attestation, plan confirmations, the deviation, then the entropy retry, then the rest.
    let mut v: Vec<_> = s.to_vec();
    let retry = v.remove(1);
    let at = v
        .iter()
        .position(|(w, _)| *w == "[Enter] witnesses agree")
        .unwrap()
        + 1;
    v.insert(at, retry);
    v.into()
}

#[test]
fn abort_wipes_and_offers_power_off() {
    let f = common::fixture_with("tui-abort", 2, 2, &[1, 1]);
    let out = tempfile::tempdir().unwrap();
    let mut dev = Fake::new(&f.plan_text, 2, out.path());
    let mut con = Script::new(&[
        ("boot attestation 1", Key::Char('a')),
        ("Abort the ceremony?", Key::Char('n')),
        ("boot attestation 1", Key::Char('y')),
        ("[ waiting ] Wendy", Key::Char('a')),
        ("Abort the ceremony?", Key::Char('y')),
        ("CEREMONY ABORTED", Key::Char('p')),
    ]);
    let o = run(&mut con, &mut dev).unwrap();
    assert!(matches!(o, Outcome::Aborted(_)), "{o:?}");
    assert!(
        std::fs::read_dir(out.path()).unwrap().next().is_none(),
        "nothing written"
    );
}

#[test]
fn witnesses_sign_with_their_cards_before_anything_is_written() {
    let wendy = common::personal("Wendy Witness");
    let walter = common::personal("Walter Witness");
    let f = common::with_witness_certs(
        common::fixture_with("tui-witness", 3, 2, &[1, 1, 1]),
        [Some(&wendy), Some(&walter)],
        true,
    );
    let out = tempfile::tempdir().unwrap();
    let mut dev = Fake::new(&f.plan_text, 3, out.path());
    let card = |serial: &str, cert| {
        ceremony::card::SoftwarePersonalCard::new(serial, cert).expect("a signing key")
    };
    // Wendy's card keeps the default PIN; Walter changed his.
    dev.personal.push_back(card("0005:00000001", &wendy));
    dev.personal.push_back(
        card("0005:00000002", &walter)
            .with_user_pin(ceremony::secret::Pin::from_string("654321".into())),
    );
    let all = happy();
    let write = all.iter().position(|(w, _)| *w == "[W] write").unwrap();
    let mut steps: Vec<(&str, Key)> = all[..write].to_vec();
    steps.extend([
        // Y before anyone signed: the plan requires every signature, so nothing happens.
        ("[S] sign with the card", Key::Char('y')),
        ("[S] sign with the card", Key::Char('s')),
        ("[ SIGNED  ] with card 0005:00000001 Wendy", Key::Char('s')),
        ("The card refused the default PIN 123456", Key::Char('6')),
        ("type the user PIN", Key::Char('5')),
        ("type the user PIN", Key::Char('4')),
        ("type the user PIN", Key::Char('3')),
        ("type the user PIN", Key::Char('2')),
        ("type the user PIN", Key::Char('1')),
        ("type the user PIN", Key::Enter),
        ("Every witness has signed", Key::Char('y')),
    ]);
    steps.extend(all[write..].iter().copied());
    let steps: &'static [(&'static str, Key)] = Box::leak(steps.into_boxed_slice());
    let mut con = Script::new(steps);
    assert_eq!(
        run(&mut con, &mut dev).unwrap(),
        Outcome::Completed,
        "{}",
        con.all_text()
    );
    let text = con.all_text();
    assert!(
        text.contains("requires every witness's signature: 2 missing"),
        "{text}"
    );
    // The PIN typed never reached a page.
    assert!(!text.contains("654321"));
    let dir = out.path().join("sherd-tui-witness");
    let report = ceremony::verify::verify_dir(&dir).expect("the offline verifier passes");
    assert_eq!(
        report.witnesses.line(),
        "signed by 2 of 2 witnesses: Wendy Witness, Walter Witness"
    );
}
