//! The pages of the generation ceremony, built from public values only.

use super::page::Page;
use crate::aloud;
use crate::boot::grouped_hex;
use crate::entropy_check::EntropyView;
use ceremony::attest::{Item, QuoteOutcome, Verdict, Verdicts};
use ceremony::ceremony::{CardView, FinishView, KeysView, VerifyView};
use ceremony::flow::Step;
use ceremony::plan::PlanSummary;
use ceremony::record::{Fields, Note};

/// The image's SHA-256 as read back from the boot medium.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum IsoCheck {
    /// Found at `location` (disk, partition, path), by `via` (`findiso=` or a scan).
    Found {
        sha256: String,
        location: String,
        via: String,
    },
    /// Several candidate images and no `findiso=` to choose: each is shown.
    Several(Vec<(String, String)>),
    NotFound(String),
}

/// One TPM PCR as witnesses see it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PcrLine {
    pub index: u8,
    /// Hex (SHA-256 bank), or `None` without a TPM.
    pub value: Option<String>,
    /// `PASS`, `FAIL` or `UNKNOWN`: the word carries the meaning, not a colour.
    pub verdict: String,
    pub expectation: String,
    pub reason: String,
}

/// What the boot attestation shows (step 1). Public values only.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Attestation {
    pub iso: IsoCheck,
    pub rootfs_tree: Option<String>,
    pub kernel_release: String,
    pub boot_path: String,
    pub pcrs: Vec<PcrLine>,
    /// Booted by UEFI firmware (not Heads): what its event log and variables say.
    pub uefi: Option<UefiCheck>,
}

/// A UEFI boot's evidence. Hex values are SHA-256 (Authenticode hashes of EFI applications).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UefiCheck {
    /// `on`, `off`, `setup-mode`, or `unknown` with why.
    pub secure_boot: String,
    /// The applications the firmware measured into PCR 4, in order; `Err` says why unknown.
    pub measured: Result<Vec<String>, String>,
    /// Whether the event log replays to the live PCR 4.
    pub log_replays_pcr4: bool,
    /// The Authenticode hash of `EFI/BOOT/BOOTX64.EFI` on the boot stick; `Err` says why unknown.
    pub on_stick: Result<String, String>,
}

impl UefiCheck {
    /// True when the firmware started exactly the stick's application and nothing else from
    /// the boot option, and the log is PCR 4's.
    pub fn measured_the_stick(&self) -> bool {
        matches!((&self.measured, &self.on_stick), (Ok(m), Ok(s)) if m.as_slice() == [s.clone()])
            && self.log_replays_pcr4
    }
}

impl Attestation {
    /// The values the transcript records, in a fixed order.
    pub fn records(&self) -> Vec<Note> {
        let note = |kind: &str, fields: Fields| {
            Note::new(kind, fields).expect("attestation kinds are not the core's")
        };
        let mut r = Vec::new();
        match &self.iso {
            IsoCheck::Found {
                sha256,
                location,
                via,
            } => {
                r.push(note(
                    "image.iso-sha256",
                    Fields::new().with("sha256", sha256),
                ));
                r.push(note(
                    "image.iso-location",
                    Fields::new().with("location", location).with("via", via),
                ));
            }
            IsoCheck::Several(c) => {
                for (loc, h) in c {
                    r.push(note(
                        "image.iso-candidate",
                        Fields::new().with("sha256", h).with("location", loc),
                    ));
                }
            }
            IsoCheck::NotFound(why) => {
                r.push(note("image.iso-sha256", Fields::new().with("unknown", why)))
            }
        }
        r.push(note(
            "image.rootfs-tree-sha256",
            match &self.rootfs_tree {
                Some(h) => Fields::new().with("sha256", h),
                None => Fields::new().with("unknown", "not computed by sherd's PID 1"),
            },
        ));
        r.push(note(
            "boot.kernel-release",
            Fields::new().with("release", &self.kernel_release),
        ));
        r.push(note(
            "boot.path",
            Fields::new().with("path", &self.boot_path),
        ));
        if let Some(u) = &self.uefi {
            let joined = |v: &Result<Vec<String>, String>| match v {
                Ok(l) if l.is_empty() => "none".to_owned(),
                Ok(l) => l.join(","),
                Err(why) => format!("unknown: {why}"),
            };
            r.push(note(
                "boot.uefi",
                Fields::new()
                    .with("secure-boot", &u.secure_boot)
                    .with("pcr4-applications", joined(&u.measured))
                    .with(
                        "pcr4-log",
                        if u.log_replays_pcr4 {
                            "replays"
                        } else {
                            "does-not-replay"
                        },
                    )
                    .with(
                        "stick-application",
                        &match &u.on_stick {
                            Ok(h) => h.clone(),
                            Err(why) => format!("unknown: {why}"),
                        },
                    ),
            ));
        }
        for p in &self.pcrs {
            r.push(note(
                &format!("tpm.pcr{}-sha256", p.index),
                Fields::new()
                    .with("value", p.value.as_deref().unwrap_or("none"))
                    .with("verdict", &p.verdict),
            ));
        }
        r
    }
}

/// A hash under its label, one row per 4-byte group: hex, then its words (see [`aloud`]).
fn hash_lines(p: &mut Page, label: &str, hex: &str) {
    p.bold(label);
    for row in aloud::rows_of_hex(hex) {
        p.line(format!("  {row}"));
    }
}

/// Under UEFI: which application the firmware measured, against the one on the stick.
fn uefi_page(u: &UefiCheck) -> Page {
    let mut p = Page::new(Step::Attest, "boot attestation: the UEFI firmware");
    p.line(format!(
        "Booted by UEFI firmware, no boot loader. Secure Boot: {}.",
        u.secure_boot
    ));
    if u.measured_the_stick() {
        p.line("The firmware measured one EFI application into PCR 4, and it is the");
        p.line("kernel on the boot stick above. Compare with the manifest's efi-authenticode:");
        if let Ok(h) = &u.on_stick {
            hash_lines(&mut p, "EFI/BOOT/BOOTX64.EFI, Authenticode SHA-256", h);
        }
        p.line("The firmware's event log replays to PCR 4 as the TPM reads it now.");
        return p;
    }
    match &u.measured {
        Ok(m) if m.is_empty() => {
            p.alert("The event log shows NO application measured into PCR 4.");
        }
        Ok(m) => {
            p.alert(format!(
                "The firmware measured {} EFI application(s) into PCR 4:",
                m.len()
            ));
            for h in m {
                p.line(format!("  {}", grouped_hex(h)));
            }
        }
        Err(why) => {
            p.alert(format!("What the firmware measured is UNKNOWN: {why}"));
        }
    }
    match &u.on_stick {
        Ok(h) => {
            p.line("EFI/BOOT/BOOTX64.EFI on the boot stick, Authenticode SHA-256:");
            p.line(format!("  {}", grouped_hex(h)));
        }
        Err(why) => {
            p.alert(format!("The stick's EFI application: UNKNOWN ({why})"));
        }
    }
    if !u.log_replays_pcr4 {
        p.alert("The event log does NOT replay to PCR 4: it is not this boot's record.");
    }
    p.alert("So the firmware did not provably start only sherd's kernel: do not go on");
    p.alert("unless the witnesses can explain it.");
    p
}

/// The attestation, as several pages the witnesses leaf through (80x25 holds one at a time).
pub fn attestation_pages(a: &Attestation) -> Vec<Page> {
    let mut pages = Vec::new();
    let mut p = Page::new(Step::Attest, "boot attestation 1: the image");
    p.line("Compare each value with the release manifest the build parties signed.");
    match &a.iso {
        IsoCheck::Found {
            sha256,
            location,
            via,
        } => {
            hash_lines(
                &mut p,
                "Boot image (ISO) SHA-256, read back from the boot stick",
                sha256,
            );
            p.line(format!("found at {location} (via {via})"));
        }
        IsoCheck::Several(c) => {
            p.alert("SEVERAL boot images found and no findiso= to tell which one booted:");
            for (loc, h) in c {
                p.line(format!("  {loc}"));
                p.line(format!("    {}", grouped_hex(h)));
            }
        }
        IsoCheck::NotFound(why) => {
            p.alert("Boot image (ISO) SHA-256: UNKNOWN");
            p.line(format!("  {why}"));
        }
    }
    pages.push(p);

    let mut p = Page::new(Step::Attest, "boot attestation 2: the running system");
    p.line("Compare each value with the release manifest the build parties signed.");
    match &a.rootfs_tree {
        Some(h) => hash_lines(&mut p, "Root filesystem tree SHA-256, computed at boot", h),
        None => {
            p.alert("Root filesystem tree SHA-256: UNKNOWN (not computed by sherd's PID 1)");
        }
    }
    p.line(format!(
        "Kernel {}   boot path: {}",
        a.kernel_release, a.boot_path
    ));
    pages.push(p);

    if let Some(u) = &a.uefi {
        pages.push(uefi_page(u));
    }

    let no_tpm = a.pcrs.iter().all(|x| x.value.is_none());
    for half in a.pcrs.chunks(4) {
        let first = half.first().map_or(0, |x| x.index);
        let last = half.last().map_or(0, |x| x.index);
        let mut p = Page::new(
            Step::Attest,
            format!("boot attestation: TPM PCR {first} to {last}"),
        );
        if no_tpm {
            p.alert("NO TPM: the PCRs cannot be read; the measured boot is UNKNOWN.");
        }
        for x in half {
            let v = x.value.as_deref().unwrap_or("(none)");
            p.bold(format!("PCR{} {v:<64} {}", x.index, x.verdict));
            let mut why = format!("  expected: {}", x.expectation);
            if !x.reason.is_empty() && x.verdict != "PASS" {
                why.push_str(&format!("; {}", x.reason));
            }
            p.line(why);
        }
        pages.push(p);
    }

    // Two to a page: each value takes a row per 4-byte group.
    for chunk in a.pcrs.chunks(2) {
        let first = chunk.first().map_or(0, |x| x.index);
        let last = chunk.last().map_or(0, |x| x.index);
        let mut p = Page::new(
            Step::Attest,
            format!("boot attestation: PCR {first} to {last} as words"),
        );
        for x in chunk {
            match &x.value {
                Some(v) => hash_lines(&mut p, &format!("PCR{} ({})", x.index, x.verdict), v),
                None => {
                    p.bold(format!("PCR{}: no value", x.index));
                }
            }
        }
        pages.push(p);
    }
    let n = pages.len();
    for (i, p) in pages.iter_mut().enumerate() {
        p.title = format!("{} [page {} of {n}]", p.title, i + 1);
        p.key("Tab", "next page");
        p.key("R", "read again");
        p.key("Y", "witnesses confirm");
        p.key("A", "abort");
    }
    pages
}

/// The boot judged against the confirmed plan ([`ceremony::attest`]): one line per item. All
/// PASS: the witnesses confirm. Anything else: the ceremony stops until they record a
/// deviation, or abort.
pub fn verdicts_page(v: &Verdicts, quote: &QuoteOutcome, error: Option<&str>) -> Page {
    let mut p = Page::new(Step::Plan, "the boot against the plan");
    match &v.machine {
        Some(m) => p.line(format!(
            "Judged against the values the plan records for the laptop {m}."
        )),
        None => p.line(
            "The plan records no values for this laptop: Heads' rules only (PCR 2, 5, 6, 7 \
             cannot PASS).",
        ),
    };
    p.blank();
    for j in &v.items {
        let line = format!("{:<10} {:<8} {}", j.item.label(), j.verdict.word(), j.why);
        if j.verdict == Verdict::Pass {
            p.line(truncate(&line, 78));
        } else {
            p.bold(truncate(&line, 78));
        }
    }
    let key_recorded = v.items.iter().any(|j| j.item == Item::QuoteKey);
    if let (false, QuoteOutcome::Verified { ak_name } | QuoteOutcome::Invalid { ak_name, .. }) =
        (key_recorded, quote)
    {
        p.line(format!(
            "quote key  {}... not in the plan: tied to no known TPM",
            &ak_name[..ak_name.len().min(16)]
        ));
    }
    p.blank();
    let open = v.open();
    if open.is_empty() {
        p.bold("Every item is PASS. Witnesses confirm with Y.");
        p.key("Y", "witnesses confirm");
    } else {
        p.alert(format!(
            "{} item{} not PASS: the ceremony stops here.",
            open.len(),
            if open.len() == 1 { " is" } else { "s are" }
        ));
        p.line("Go on only if the witnesses agree why: D types the reason, which the");
        p.line("transcript records as a deviation with these values. Otherwise abort.");
        p.key("D", "record a deviation");
    }
    if let Some(e) = error {
        p.alert(e);
    }
    p.key("A", "abort");
    p
}

/// Typing the deviation's reason: the items it covers with their values, and the reason as
/// typed so far (public, recorded as typed).
pub fn deviation_page(v: &Verdicts, typed: &str, error: Option<&str>) -> Page {
    let mut p = Page::new(Step::Plan, "record a deviation");
    p.bold("Not PASS, and recorded with the reason:");
    for j in v.open() {
        // A PCR's 64 hex digits fit on its line; a key name (68) is shortened here only.
        let value = match (j.item, j.value.as_deref()) {
            (Item::Pcr(_), Some(v)) => v.to_owned(),
            (_, Some(v)) => format!("{}...", &v[..v.len().min(16)]),
            (_, None) => String::new(),
        };
        p.line(format!(
            "{} {:<7} {value}",
            j.item.label(),
            j.verdict.word()
        ));
    }
    p.blank();
    p.bold("Reason the witnesses agree on (typed by the operator; recorded as typed):");
    p.line(format!("> {typed}_"));
    p.line(format!(
        "  {} of {} characters; at least {}",
        typed.len(),
        ceremony::attest::REASON_LEN.end(),
        ceremony::attest::REASON_LEN.start()
    ));
    if let Some(e) = error {
        p.alert(e);
    }
    p.key("Enter", "witnesses agree: record it");
    p.key("Esc", "back");
    p
}

/// The plan as read from the plan stick, with each witness's confirmation so far.
pub fn plan_page(s: &PlanSummary, confirmed: &[bool], location: &str) -> Page {
    let mut p = Page::new(Step::Plan, "the plan");
    let n = s.holders.len();
    p.bold(format!(
        "Ceremony {}  at {}  threshold {} of {n}",
        s.ceremony_id, s.time_rfc3339, s.threshold
    ));
    if s.allow_virtual_hardware {
        p.alert(format!(
            "read from {location}; allows VIRTUAL hardware: tests and rehearsals only"
        ));
    } else {
        p.line(format!("read from {location}"));
    }
    if let Some(m) = &s.machine {
        let pcrs: Vec<String> = (0..8)
            .filter(|&i| m.pcrs[i].is_some())
            .map(|i| i.to_string())
            .collect();
        p.line(format!(
            "laptop {}: PCR {} recorded{}",
            m.name,
            pcrs.join(","),
            if m.quote_key.is_some() {
                ", and its quote key"
            } else {
                ""
            }
        ));
    }
    const SHOWN: usize = 6;
    for h in s.holders.iter().take(SHOWN) {
        p.line(format!(
            "  holder {}: {} ({} card{}), backup {}",
            h.index,
            h.name,
            h.cards,
            if h.cards == 1 { "" } else { "s" },
            h.backup
        ));
    }
    if n > SHOWN {
        p.line(format!(
            "  ... and {} more holders (all are in the transcript)",
            n - SHOWN
        ));
    }
    hash_lines(
        &mut p,
        "Plan SHA-256: compare with the copy each holder brought",
        &s.hash_hex,
    );
    p.bold("Witnesses: press your number to confirm the plan and its hash");
    for (i, w) in s.witnesses.iter().enumerate().take(9) {
        let mark = if confirmed.get(i).copied().unwrap_or(false) {
            "[CONFIRMED]"
        } else {
            "[ waiting ]"
        };
        p.line(format!("  {} {mark} {w}", i + 1));
    }
    p.key("1-9", "witness confirms");
    if confirmed.iter().all(|c| *c) {
        p.key("Y", "go on");
    }
    p.key("A", "abort");
    p
}

pub fn keys_page(k: &KeysView, sealed: usize) -> Page {
    let mut p = Page::new(Step::Keys, "the root key");
    hash_lines(
        &mut p,
        "Root certificate fingerprint (Ed25519 primary, Cv25519 encryption subkey)",
        &k.root_fingerprint,
    );
    p.blank();
    p.bold("Location keys, one per holder (their cards are provisioned next)");
    const SHOWN: usize = 8;
    for (i, name, fp) in k.locations.iter().take(SHOWN) {
        p.line(format!(
            "  {i:>3} {:<20} {}",
            truncate(name, 20),
            grouped_hex(fp)
        ));
    }
    if k.locations.len() > SHOWN {
        p.line(format!(
            "  ... and {} more (in the transcript)",
            k.locations.len() - SHOWN
        ));
    }
    p.blank();
    p.line(format!(
        "{sealed} shares sealed, each to its holder's location key, signed by the root key."
    ));
    p.line("Witnesses write down the fingerprint words, then confirm.");
    p.key("Y", "witnesses confirm");
    p.key("A", "abort");
    p
}

fn truncate(s: &str, n: usize) -> String {
    if s.chars().count() <= n {
        s.to_owned()
    } else {
        let mut t: String = s.chars().take(n - 1).collect();
        t.push('~');
        t
    }
}

/// What the card step knows about the reader right now.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CardState {
    NoReader,
    Empty,
    /// A card that holds keys and was not interrupted in this ceremony: refused.
    NotBlank(String),
    Problem(String),
}

/// Which card the ceremony asks for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CardRequest {
    pub holder: u8,
    pub card: u8,
    pub name: String,
    /// Cards this holder gets.
    pub cards: u8,
    /// Cards provisioned so far, of `total` in the ceremony.
    pub done: usize,
    pub total: usize,
}

/// "Insert holder 2's card 1 of 1."
pub fn card_request_page(r: &CardRequest, state: &CardState, last_error: Option<&str>) -> Page {
    let CardRequest {
        holder,
        card,
        name,
        cards,
        done,
        total,
    } = r;
    let mut p = Page::new(Step::Cards, format!("card {} of {total}", done + 1));
    p.bold(format!(
        "Insert a BLANK OpenPGP card for holder {holder} ({name}): card {card} of {cards}."
    ));
    p.line("It is reset, given its location key and new PINs, and tested, in one insertion.");
    p.line("The PINs are never shown: they go, encrypted, into the holder's PIN file.");
    p.blank();
    if let Some(e) = last_error {
        p.alert("THE LAST ATTEMPT FAILED");
        p.line(e.to_owned());
        p.line("Nothing from that attempt was recorded. A card that was part way through is");
        p.line("reset and provisioned from the start when it is inserted again; or use a");
        p.line("spare blank card.");
        p.blank();
    }
    match state {
        CardState::NoReader => p.line("Waiting for a card reader: plug one in."),
        CardState::Empty => p.line("Reader ready; waiting for the card."),
        CardState::NotBlank(ident) => {
            p.alert(format!("Card {ident} is NOT BLANK: it holds keys."));
            p.line("sherd does not erase a card it did not start on. Remove it and insert a");
            p.line("blank card (a card can be reset deliberately on another machine).")
        }
        CardState::Problem(e) => {
            p.alert("The card cannot be used:");
            p.line(e.clone())
        }
    };
    p.key("A", "abort");
    p
}

pub fn card_busy_page(holder: u8, card: u8, ident: &str) -> Page {
    let mut p = Page::new(Step::Cards, "provisioning");
    p.bold(format!(
        "Provisioning card {ident} for holder {holder}, card {card}."
    ));
    p.line("Do not remove the card.");
    p
}

pub fn card_done_page(v: &CardView) -> Page {
    let mut p = Page::new(Step::Cards, "card ready");
    p.bold(format!(
        "Card {} is ready for holder {}, card {}.",
        v.serial, v.holder, v.card
    ));
    p.line(format!(
        "It holds location key {}",
        grouped_hex(&v.location_fingerprint)
    ));
    p.line("and decrypted its holder's sealed share in a test.");
    p.blank();
    p.alert("Remove the card now and give it to its holder (write the serial on it).");
    p
}

/// The subset check in words for the witnesses (the transcript keeps the exact line).
fn subsets_in_words(r: &ceremony::recombine::SubsetReport) -> String {
    if r.exhaustive {
        format!(
            "all {} sets of shares recombine to the same secret",
            r.checked
        )
    } else {
        format!(
            "{} of the {} sets of shares (a stated sample) recombine to the same secret",
            r.checked, r.total
        )
    }
}

pub fn verify_page(v: Option<&VerifyView>) -> Page {
    let mut p = Page::new(Step::Verify, "verification");
    match v {
        None => {
            p.bold("Verifying: every card's share, the M-subsets, the root key...");
        }
        Some(v) => {
            p.bold("Verification PASSED");
            p.line(format!("  shares: {}", subsets_in_words(&v.subsets)));
            p.line("  every card decrypted its own share during its insertion");
            p.line(format!(
                "  the root key signed and verified a fresh nonce {}",
                v.self_test_nonce
            ));
        }
    }
    p
}

/// The write step: which data sticks are in, and what happened.
/// While the boot stick, the TPM and the machine are read (again, after R).
pub fn reading_attestation_page(again: bool) -> Page {
    let mut p = Page::new(Step::Attest, "reading the boot attestation");
    p.bold(if again {
        "Reading the boot stick, the TPM and this machine again..."
    } else {
        "Reading the boot stick, the TPM and this machine..."
    });
    p
}

/// Waiting for the plan stick; after a refused plan, why it was refused.
pub fn plan_stick_page(refusal: Option<&str>, status: &str) -> Page {
    let mut p = Page::new(Step::Plan, "the plan stick");
    p.bold("Insert the plan stick: a USB stick with sherd-plan.toml at its root.");
    p.line("It is mounted read-only; nothing on it is changed.");
    p.blank();
    if let Some(e) = refusal {
        p.alert("THE PLAN WAS REFUSED");
        p.line(e.to_owned());
        p.line("Nothing has been generated. Correct the plan on another machine,");
        p.line("check its hash with every holder again, and insert the stick.");
        p.blank();
    }
    p.line(status.to_owned());
    p.key("A", "abort");
    p
}

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

/// The entropy report once the policy is met.
pub fn entropy_passed_page(v: &EntropyView) -> Page {
    let mut p = entropy_page(v);
    p.key("Enter", "go on");
    p.key("A", "abort");
    p
}

/// The entropy report when the policy refused: what to attach, and R.
pub fn entropy_refused_page(v: &EntropyView) -> Page {
    let mut p = entropy_page(v);
    p.line("Nothing has been generated. Attach another hardware source");
    p.line("(TPM, USB TRNG, an OpenPGP card in the reader) and retry.");
    p.key("R", "retry");
    p.key("A", "abort");
    p
}

/// The flow stopped with no way on (e.g. key generation failed): say so; A aborts.
pub fn stopped_page(step: Step, what: &str) -> Page {
    let mut p = error_page(
        step,
        what,
        "Nothing has been written to any stick.",
        "Press A to abort the ceremony; every secret is wiped.",
    );
    p.key("A", "abort");
    p
}

/// One witness on the signatures page.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WitnessRow {
    /// Index in the plan, 1-based.
    pub index: usize,
    pub name: String,
    /// The serial of the card that signed, once signed.
    pub signed_with: Option<String>,
    /// Whether the plan gives this witness a certificate (without one they cannot sign).
    pub has_certificate: bool,
}

/// Before anything is written: each witness signs the transcript with their own card.
pub fn witness_page(
    rows: &[WitnessRow],
    transcript_final_hash: &str,
    required: bool,
    error: Option<&str>,
) -> Page {
    let mut p = Page::new(Step::Write, "witness signatures");
    p.bold("Each witness inserts their own OpenPGP card, which signs the transcript: its");
    p.bold("exact bytes, so everything shown so far, the attestation included.");
    p.line(format!("Transcript final hash: {transcript_final_hash}"));
    p.line("The operator presses S once the card is in the reader. A card whose PIN was");
    p.line("changed asks for it; what is typed is never shown.");
    p.blank();
    for r in rows {
        let mark = match (&r.signed_with, r.has_certificate) {
            (Some(serial), _) => format!("[ SIGNED  ] with card {serial}"),
            (None, true) => "[ waiting ]".to_string(),
            (None, false) => "[ cannot  ] no certificate in the plan".to_string(),
        };
        p.line(format!("  {} {mark} {}", r.index, r.name));
    }
    if let Some(e) = error {
        p.blank();
        p.alert("NOT SIGNED");
        p.line(e.to_owned());
    }
    let missing = rows.iter().filter(|r| r.signed_with.is_none()).count();
    p.blank();
    p.key("S", "sign with the card in the reader");
    if missing == 0 {
        p.line("Every witness has signed.");
        p.key("Y", "go on to write");
    } else if required {
        p.line(format!(
            "The plan requires every witness's signature: {missing} missing."
        ));
    } else {
        p.line(format!(
            "{missing} witness(es) have not signed; Y goes on without their signatures."
        ));
        p.key("Y", "go on without them");
    }
    p.key("A", "abort");
    p
}

/// Which PIN the card refused just before a PIN page.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PinRefused {
    /// None: the default could not be tried without eating into the last tries.
    Nothing,
    /// The factory default user PIN, tried first: this card's PIN was changed.
    Default,
    /// The PIN typed on the previous page.
    Typed,
}

/// A card's PIN, typed blind.
pub fn pin_page(name: &str, serial: &str, retries_left: u8, refused: PinRefused) -> Page {
    let mut p = Page::new(Step::Write, "witness card PIN");
    match refused {
        PinRefused::Nothing => {}
        PinRefused::Default => {
            p.alert("The card refused the default PIN 123456: its PIN was changed.");
            p.line("That try counts; the right PIN resets the card's counter.");
        }
        PinRefused::Typed => {
            p.alert("The card refused the PIN typed.");
        }
    }
    p.bold(format!(
        "{name}: type the user PIN of card {serial}, then Enter."
    ));
    p.line("Nothing you type is shown, not even its length.");
    p.line(format!("The card allows {retries_left} more tries."));
    p.key("Enter", "done");
    p.key("Esc", "do not sign with this card");
    p
}

/// While the outputs are written: no key does anything, no stick may be pulled.
pub fn writing_page(verified: Option<&VerifyView>, sticks: &[String], files: usize) -> Page {
    let mut p = write_page(
        verified,
        sticks,
        files,
        Some("Writing, reading back and comparing... do not remove any stick."),
        None,
    );
    p.keys.clear();
    p
}

pub fn write_page(
    verified: Option<&VerifyView>,
    sticks: &[String],
    files: usize,
    status: Option<&str>,
    error: Option<&str>,
) -> Page {
    let mut p = Page::new(Step::Write, "write the outputs");
    if let Some(v) = verified {
        p.line(format!(
            "Verification PASSED: {}",
            subsets_in_words(&v.subsets)
        ));
        p.blank();
    }
    p.bold(format!(
        "Insert the data stick(s): {files} files (certificates, shard file, PIN files,"
    ));
    p.bold("transcript, any witness signatures) go to every stick listed, read back and");
    p.bold("compared.");
    p.blank();
    if let Some(e) = error {
        p.alert("WRITING FAILED");
        p.line(e.to_owned());
        p.line("Nothing is lost: the outputs are still in memory. Insert a fresh stick, or");
        p.line("the same one after checking it, and press W again.");
        p.blank();
    }
    if sticks.is_empty() {
        p.line("No data stick found yet.");
    } else {
        for s in sticks {
            p.line(format!("  stick: {s}"));
        }
        p.key("W", "write to these sticks");
    }
    if let Some(s) = status {
        p.blank();
        p.bold(s.to_owned());
    }
    p.key("A", "abort");
    p
}

pub fn final_page(f: &FinishView, written: &[String], witness_signatures: usize) -> Page {
    let mut p = Page::new(Step::Transcript, "the transcript");
    p.bold("Written and read back:");
    for w in written.iter().take(4) {
        p.line(format!("  {w}"));
    }
    if witness_signatures == 0 {
        p.line(format!("  {} files of the ceremony", f.files.len()));
    } else {
        p.line(format!(
            "  {} files of the ceremony and {witness_signatures} witness signature(s)",
            f.files.len()
        ));
    }
    p.blank();
    hash_lines(
        &mut p,
        "Transcript final hash: every witness writes these words down",
        &f.transcript_final_hash,
    );
    p.blank();
    p.line("An auditor later checks the transcript on the stick against these words.");
    p.key("Y", "words written down");
    p
}

pub fn power_off_page(aborted: Option<&str>) -> Page {
    let mut p = Page::new(Step::PowerOff, "done");
    match aborted {
        Some(why) => {
            p.alert("CEREMONY ABORTED");
            p.line(why.to_owned());
            p.line("Nothing was written. Cards provisioned so far hold keys no share needs:");
            p.line("reset them before another ceremony.");
        }
        None => {
            p.bold("The ceremony is complete.");
            p.line("Give each holder their card(s); keep the data sticks as the plan says.");
        }
    }
    p.blank();
    p.line("The root secret, shares and PINs have been wiped from memory.");
    p.line("Power off now; nothing of this session survives in the machine.");
    p.key("P", "power off");
    p
}

pub fn abort_confirm_page(step: Step) -> Page {
    let mut p = Page::new(step, "abort?");
    p.alert("Abort the ceremony?");
    p.line("Every secret is wiped and nothing more is written. This cannot be undone.");
    p.key("Y", "yes, abort");
    p.key("N", "no, go back");
    p
}

/// Something went wrong that the operator must read; the ceremony stays where it was.
pub fn error_page(step: Step, what: &str, kept: &str, todo: &str) -> Page {
    let mut p = Page::new(step, "problem");
    p.alert("PROBLEM");
    p.line(what.to_owned());
    p.blank();
    p.bold("What was kept");
    p.line(kept.to_owned());
    p.blank();
    p.bold("What you can do");
    p.line(todo.to_owned());
    p
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ceremony::page::render;
    use ceremony::plan::HolderSummary;
    use ratatui::Terminal;
    use ratatui::backend::TestBackend;

    /// A hash as PGP words, as the core's views carry it.
    fn words_of_hex(hex: &str) -> String {
        let bytes = ceremony::hex::decode(hex).or_else(|| ceremony::hex::decode_upper(hex));
        ceremony::words::to_phrase(&bytes.unwrap())
    }

    /// Every page fits the serial console (80x24): no row of a read-aloud hash wraps, and
    /// the page's rows, wrapped at the box's inner width, fit inside the box.
    pub(super) fn assert_fits(p: &Page) {
        let (inner_width, inner_rows) = (80 - 2, 24 - 1 - 2 - usize::from(p.header_rows()));
        let rows: usize = p
            .lines
            .iter()
            .map(|l| l.text.chars().count().div_ceil(inner_width).max(1))
            .sum();
        assert!(rows <= inner_rows, "{rows} rows:\n{}", p.text());
        for l in &p.lines {
            let t = l.text.trim_start();
            if t.split_whitespace().nth(1).is_some_and(|h| h.len() == 8)
                && t.starts_with(|c: char| c.is_ascii_digit())
            {
                assert!(l.text.chars().count() <= inner_width, "{}", l.text);
            }
        }
    }

    fn draw(mut p: Page) -> TestBackend {
        assert_fits(&p);
        p.ceremony_id = Some("acme-root-2026".into());
        let mut t = Terminal::new(TestBackend::new(80, 25)).unwrap();
        t.draw(|f| render(f, &p)).unwrap();
        t.backend().clone()
    }

    const H1: &str = "3f2a9b1c0a1b2c3d3f2a9b1c0a1b2c3d3f2a9b1c0a1b2c3d3f2a9b1c0a1b2c3d";

    fn attestation() -> Attestation {
        Attestation {
            iso: IsoCheck::Found {
                sha256: H1.into(),
                location: "QEMU HARDDISK (sda1) /sherd.iso".into(),
                via: "findiso=".into(),
            },
            rootfs_tree: Some("9e".repeat(32)),
            kernel_release: "6.12.117".into(),
            boot_path: "Heads (kexec, findiso=/sherd.iso)".into(),
            uefi: None,
            pcrs: (0..8)
                .map(|i| PcrLine {
                    index: i,
                    value: Some(if i == 4 { H1.into() } else { "00".repeat(32) }),
                    verdict: match i {
                        0 | 1 | 3 | 4 => "PASS".into(),
                        _ => "UNKNOWN".into(),
                    },
                    expectation: match i {
                        0 | 1 | 3 => "zero under Heads".into(),
                        4 => "E(E(0,H(usb)),H(generic))".into(),
                        _ => "board-specific".into(),
                    },
                    reason: "compare with the owner's recorded value".into(),
                })
                .collect(),
        }
    }

    fn plan() -> PlanSummary {
        PlanSummary {
            ceremony_id: "acme-root-2026".into(),
            time_rfc3339: "2026-11-24T09:00:00Z".into(),
            threshold: 2,
            holders: ["Alice", "Bob", "Carol"]
                .iter()
                .enumerate()
                .map(|(i, n)| HolderSummary {
                    index: i as u8 + 1,
                    name: (*n).into(),
                    backup: "Bob".into(),
                    cards: 1,
                    cert_fingerprints: vec![],
                })
                .collect(),
            witnesses: vec!["Wendy Witness".into(), "Walter Witness".into()],
            allow_virtual_hardware: false,
            witness_cert_fingerprints: vec![vec![], vec![]],
            require_witness_signatures: false,
            machine: None,
            hash_hex: H1.into(),
            hash_words: words_of_hex(H1),
        }
    }

    #[test]
    fn the_uefi_page_says_whether_the_firmware_started_the_sticks_kernel() {
        let good = UefiCheck {
            secure_boot: "off".into(),
            measured: Ok(vec![H1.into()]),
            log_replays_pcr4: true,
            on_stick: Ok(H1.into()),
        };
        let mut a = attestation();
        a.uefi = Some(good.clone());
        let pages = attestation_pages(&a);
        assert_eq!(pages.len(), 9, "one more page under UEFI");
        let page = &pages[2];
        assert_fits(page);
        let text = page.text();
        assert!(text.contains("the UEFI firmware"), "{text}");
        assert!(text.contains("Secure Boot: off."), "{text}");
        assert!(text.contains("kernel on the boot stick above"), "{text}");
        assert!(text.contains("3f2a9b1c"), "{text}");
        let note = a
            .records()
            .into_iter()
            .find(|n| n.kind() == "boot.uefi")
            .expect("a boot.uefi record");
        assert_eq!(
            note.encode(),
            format!(
                "secure-boot=off pcr4-applications={H1} pcr4-log=replays stick-application={H1}"
            )
        );
        // Each way it can fail is said, and the all-clear sentence is not.
        let other = "ab".repeat(32);
        for (bad, says) in [
            (
                UefiCheck {
                    measured: Ok(vec![other.clone(), H1.into()]),
                    ..good.clone()
                },
                "measured 2 EFI application(s)",
            ),
            (
                UefiCheck {
                    log_replays_pcr4: false,
                    ..good.clone()
                },
                "does NOT replay to PCR 4",
            ),
            (
                UefiCheck {
                    on_stick: Err("no stick holds sherd's EFI system partition".into()),
                    ..good.clone()
                },
                "UNKNOWN (no stick holds",
            ),
            (
                UefiCheck {
                    measured: Ok(vec![]),
                    ..good.clone()
                },
                "NO application measured",
            ),
        ] {
            assert!(!bad.measured_the_stick());
            let p = uefi_page(&bad);
            assert_fits(&p);
            let t = p.text();
            assert!(t.contains(says), "{t}");
            assert!(!t.contains("kernel on the boot stick above"), "{t}");
            assert!(t.contains("do not go on"), "{t}");
        }
        assert!(
            attestation()
                .records()
                .iter()
                .all(|n| n.kind() != "boot.uefi")
        );
    }

    #[test]
    fn attestation_pages_80x25() {
        let pages = attestation_pages(&attestation());
        // The image, the running system, PCRs 0-3 and 4-7, then the PCRs as words, two a page.
        assert_eq!(pages.len(), 8);
        for (i, p) in pages.into_iter().enumerate() {
            insta::assert_snapshot!(format!("attestation_{}", i + 1), draw(p));
        }
    }

    #[test]
    fn attestation_without_tpm_or_iso() {
        let mut a = attestation();
        a.iso = IsoCheck::NotFound("no removable disk holds /sherd.iso".into());
        for p in &mut a.pcrs {
            p.value = None;
            p.verdict = "UNKNOWN".into();
        }
        let pages = attestation_pages(&a);
        insta::assert_snapshot!(draw(pages[0].clone()));
        insta::assert_snapshot!(draw(pages[1].clone()));
        // The transcript records say so too.
        assert!(
            a.records()
                .iter()
                .any(|n| n.kind() == "image.iso-sha256" && n.fields().get("unknown").is_some())
        );
    }

    fn readings() -> [ceremony::attest::Reading; 8] {
        let a = attestation();
        std::array::from_fn(|i| ceremony::attest::Reading {
            value: a.pcrs[i].value.as_deref().and_then(hexstr::decode_array),
            verdict: Verdict::from_word(&a.pcrs[i].verdict).unwrap(),
        })
    }

    #[test]
    fn verdicts_without_a_machine_table_stop_for_a_deviation_80x25() {
        let q = QuoteOutcome::Verified {
            ak_name: format!("000b{}", "5a".repeat(32)),
        };
        let v = ceremony::attest::judge(&readings(), None, &q);
        let p = verdicts_page(&v, &q, None);
        assert!(p.keys.iter().any(|(k, _)| k == "D"));
        assert!(!p.keys.iter().any(|(k, _)| k == "Y"));
        insta::assert_snapshot!(draw(p));
        let typed = "no values recorded for this laptop yet";
        let e = "only letters, digits, punctuation and spaces can be recorded";
        insta::assert_snapshot!(draw(deviation_page(&v, typed, Some(e))));
    }

    #[test]
    fn verdicts_against_a_recorded_laptop_80x25() {
        let r = readings();
        let key = [0x00, 0x0b]
            .into_iter()
            .chain([0x5a; 32])
            .collect::<Vec<_>>();
        let m = ceremony::plan::Machine {
            name: "ceremony-laptop-1".into(),
            pcrs: std::array::from_fn(|i| r[i].value),
            quote_key: Some(key.clone().try_into().unwrap()),
        };
        let q = QuoteOutcome::Verified {
            ak_name: hexstr::encode(&key),
        };
        let v = ceremony::attest::judge(&r, Some(&m), &q);
        assert!(v.open().is_empty());
        let p = verdicts_page(&v, &q, None);
        assert!(p.keys.iter().any(|(k, _)| k == "Y"));
        insta::assert_snapshot!(draw(p));
        // A PCR changed since the attestation: the quote FAILs.
        let bad = QuoteOutcome::Invalid {
            ak_name: hexstr::encode(&key),
            why: "a PCR changed since the attestation: quoted values differ".into(),
        };
        let v = ceremony::attest::judge(&r, Some(&m), &bad);
        insta::assert_snapshot!(draw(verdicts_page(&v, &bad, None)));
    }

    #[test]
    fn plan_page_80x25() {
        insta::assert_snapshot!(draw(plan_page(&plan(), &[true, false], "USB stick (sdb1)")));
    }

    #[test]
    fn keys_page_80x25() {
        let k = KeysView {
            root_fingerprint: "0123456789ABCDEF0123456789ABCDEF01234567".into(),
            root_fingerprint_words: words_of_hex("0123456789ABCDEF0123456789ABCDEF01234567"),
            locations: vec![
                (
                    1,
                    "Alice".into(),
                    "AAAA0123456789ABCDEF0123456789ABCDEF0123".into(),
                ),
                (
                    2,
                    "Bob".into(),
                    "BBBB0123456789ABCDEF0123456789ABCDEF0123".into(),
                ),
                (
                    3,
                    "Carol".into(),
                    "CCCC0123456789ABCDEF0123456789ABCDEF0123".into(),
                ),
            ],
        };
        insta::assert_snapshot!(draw(keys_page(&k, 3)));
    }

    fn request() -> CardRequest {
        CardRequest {
            holder: 2,
            card: 1,
            name: "Bob".into(),
            cards: 1,
            done: 1,
            total: 3,
        }
    }

    #[test]
    fn card_pages_80x25() {
        insta::assert_snapshot!(
            "card_request",
            draw(card_request_page(&request(), &CardState::Empty, None))
        );
        insta::assert_snapshot!(
            "card_request_after_failure",
            draw(card_request_page(
                &request(),
                &CardState::NotBlank("000F:00001234".into()),
                Some("holder 2, card 1: the card or reader failed: the card was removed")
            ))
        );
        insta::assert_snapshot!("card_busy", draw(card_busy_page(2, 1, "000F:00001234")));
        let v = CardView {
            holder: 2,
            card: 1,
            serial: "000F:00001234".into(),
            location_fingerprint: "BBBB0123456789ABCDEF0123456789ABCDEF0123".into(),
        };
        insta::assert_snapshot!("card_done", draw(card_done_page(&v)));
    }

    fn verified() -> VerifyView {
        VerifyView {
            subsets: ceremony::recombine::SubsetReport {
                total: 3,
                checked: 3,
                exhaustive: true,
            },
            self_test_nonce: "5c1e0f2a".into(),
        }
    }

    #[test]
    fn verify_and_write_pages_80x25() {
        insta::assert_snapshot!("verifying", draw(verify_page(None)));
        insta::assert_snapshot!("verified", draw(verify_page(Some(&verified()))));
        insta::assert_snapshot!(
            "write_waiting",
            draw(write_page(Some(&verified()), &[], 9, None, None))
        );
        insta::assert_snapshot!(
            "write_failed",
            draw(write_page(
                Some(&verified()),
                &["SanDisk Cruzer (sdc1, vfat)".into()],
                9,
                None,
                Some("sdc1: writing transcript.txt failed: No such device (the stick was pulled)")
            ))
        );
    }

    #[test]
    fn final_power_off_abort_and_error_pages_80x25() {
        let f = FinishView {
            files: vec![("plan.toml".into(), 100, "00".repeat(32)); 9],
            transcript_final_hash: H1.into(),
            transcript_final_words: words_of_hex(H1),
        };
        insta::assert_snapshot!(
            "final",
            draw(final_page(
                &f,
                &["SanDisk Cruzer (sdc1): 9 files under sherd-acme-root-2026/".into()],
                0
            ))
        );
        insta::assert_snapshot!("power_off", draw(power_off_page(None)));
        insta::assert_snapshot!(
            "power_off_aborted",
            draw(power_off_page(Some(
                "aborted by the operator at step Cards"
            )))
        );
        insta::assert_snapshot!("abort_confirm", draw(abort_confirm_page(Step::Cards)));
        insta::assert_snapshot!(
            "error",
            draw(error_page(
                Step::Keys,
                "key generation failed: x",
                "Nothing has been written.",
                "Press A."
            ))
        );
    }

    #[test]
    fn rehearsal_banner_on_every_page() {
        let mut p = power_off_page(None);
        p.rehearsal = true;
        let b = draw(p);
        let top: String = (0..80)
            .map(|x| b.buffer()[(x, 0)].symbol().to_owned())
            .collect();
        assert!(top.contains("REHEARSAL"), "{top}");
        insta::assert_snapshot!("rehearsal", b);
    }
}

#[cfg(test)]
mod entropy_fit {
    //! The entropy page of the QEMU rig (swtpm, virtio-rng, a virtual card, the kernel CSPRNG,
    //! no CPU source) under a plan that allows virtual hardware: every row and the verdict fit.
    use super::*;
    use entropy::{Conditioning, DeviceKey, Machine, Source, SourceError, SourceInfo, SourceKind};
    use rand_core::{Rng, SeedableRng};

    struct Fake(SourceInfo, rand_chacha::ChaCha20Rng);

    impl Source for Fake {
        fn info(&self) -> &SourceInfo {
            &self.0
        }
        fn fill(&mut self, buf: &mut [u8]) -> Result<(), SourceError> {
            self.1.fill_bytes(buf);
            Ok(())
        }
    }

    fn fake(kind: SourceKind, identity: &str, device: &str, why: Option<&str>) -> Box<dyn Source> {
        Box::new(Fake(
            SourceInfo {
                kind,
                identity: identity.into(),
                device: DeviceKey(device.into()),
                conditioning: Conditioning::Whitened,
                sample_bits: 8,
                claimed_h: 8.0,
                claim_basis: "test",
                virtual_device: why.map(String::from),
            },
            rand_chacha::ChaCha20Rng::seed_from_u64(device.len() as u64),
        ))
    }

    fn qemu_rig(tpm_rng: bool) -> Vec<Box<dyn Source>> {
        vec![
            fake(
                SourceKind::Tpm,
                "/dev/tpmrm0: TPM 2.0 IBM SW TPM fw 0x20191023.0x00163636",
                "tpm-chip-0",
                Some("a software TPM (swtpm)"),
            ),
            if tpm_rng {
                fake(
                    SourceKind::Hwrng,
                    "/dev/hwrng (tpm-rng-0)",
                    "tpm-chip-0",
                    None,
                )
            } else {
                fake(
                    SourceKind::Hwrng,
                    "/dev/hwrng (virtio_rng.0)",
                    "hwrng:virtio_rng.0",
                    Some("virtio-rng, the hypervisor's randomness"),
                )
            },
            fake(
                SourceKind::OsCsprng,
                "getrandom(2) (kernel CSPRNG)",
                "os-csprng",
                None,
            ),
            fake(
                SourceKind::OpenPgpCard,
                "OpenPGP card FFFE:53480001",
                "openpgp-card:FFFE:53480001",
                None,
            ),
        ]
    }

    #[test]
    fn the_qemu_entropy_pages_fit() {
        let machine = Machine::from_cpuinfo("flags : fpu hypervisor\n");
        let absent = vec![(
            "CPU RDSEED/RDRAND".to_string(),
            "RDSEED/RDRAND is not available on this CPU".to_string(),
        )];
        for tpm_rng in [false, true] {
            let o = crate::entropy_run::gather_on(
                &mut qemu_rig(tpm_rng),
                absent.clone(),
                &crate::entropy_run::policy(true),
                &machine,
                &mut |_| {},
            )
            .unwrap_or_else(|v| panic!("{}", v.verdict));
            let mut p = entropy_passed_page(&o.view);
            p.virtual_hardware = true;
            super::tests::assert_fits(&p);
        }
        // Without the plan's permission: refused, and the page that says why fits too.
        let v = crate::entropy_run::gather_on(
            &mut qemu_rig(false),
            absent,
            &crate::entropy_run::policy(false),
            &machine,
            &mut |_| {},
        )
        .err()
        .expect("refused without allow_virtual_hardware");
        assert!(
            v.verdict.contains("VIRTUAL (a software TPM"),
            "{}",
            v.verdict
        );
        super::tests::assert_fits(&entropy_refused_page(&v));
    }
}
