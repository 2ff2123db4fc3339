//! The recovery ceremony's pages, built from public views only (names, serials, fingerprints,
//! hashes, counts): no share, PIN or secret can reach them.

use super::RecoveryStep as S;
use crate::aloud;
use crate::ceremony::Page;
pub use crate::ceremony::screens::PinRefused;
use ceremony::card::MIN_PIN_RETRIES;

fn hash_lines(p: &mut Page, label: &str, hex: &str) {
    p.bold(label);
    for row in aloud::rows_of_hex(hex) {
        p.line(format!("  {row}"));
    }
}

/// Upper-case hex in groups of four, on one line (a fingerprint to compare, not to read aloud).
pub fn grouped_fingerprint(hex: &str) -> String {
    hex.as_bytes()
        .chunks(4)
        .map(|c| std::str::from_utf8(c).unwrap_or("?"))
        .collect::<Vec<_>>()
        .join(" ")
}

/// Waiting for the request stick (and the generation folder); after a refusal, why.
pub fn request_stick_page(refusal: Option<&str>, status: &str) -> Page {
    let mut p = Page::new(S::Request, "the request and the generation folder");
    p.bold("Insert the request stick (request.toml at its top, approvals/ beside it, and");
    p.bold("the files a sign request names) and the generation's data stick holding its");
    p.bold("folder sherd-<ceremony id>. Both may be one stick.");
    p.line("They are mounted read-only; nothing on them is changed.");
    p.blank();
    if let Some(e) = refusal {
        p.alert("THE REQUEST WAS REFUSED");
        p.line(e.to_owned());
        // A changed request is noticed by itself; a swapped generation stick is not (the
        // request is what the poll compares), so the page says to press R then.
        p.line("No card has been asked for. Correct the request or the sticks: a changed");
        p.line("request stick is read again by itself; after changing only another stick,");
        p.line("press R.");
        p.blank();
        p.key("R", "read again");
    }
    p.line(status.to_owned());
    p.key("A", "abort");
    p
}

/// What the pinned generation folder shows the witnesses.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PinnedView {
    pub ceremony_id: String,
    /// Where the folder was read.
    pub location: String,
    pub threshold: u8,
    pub holders: usize,
    /// Upper-case hex.
    pub root_fingerprint: String,
    /// The generation transcript's final hash, hex.
    pub final_hash: String,
    /// How many replace-card recovery folders the root was pinned with, after the generation
    /// folder.
    pub replaced: usize,
    /// How many reshare recovery folders it was pinned with (the holders and threshold above
    /// are then the last reshare's).
    pub reshared: usize,
}

/// The generation folder passed the offline verifier's checks: its final words, to compare
/// with the paper the witnesses kept.
pub fn pinned_page(v: &PinnedView) -> Page {
    let mut p = Page::new(S::Request, "the generation ceremony");
    p.line(format!(
        "{}: passed the offline verifier's checks.",
        v.location
    ));
    p.line(format!(
        "{} of {} holders recombine the root key",
        v.threshold, v.holders
    ));
    p.line(format!("  {}", grouped_fingerprint(&v.root_fingerprint)));
    p.line(applied_line(v.replaced, v.reshared));
    p.blank();
    hash_lines(
        &mut p,
        "Generation transcript final hash: compare with the words written down then",
        &v.final_hash,
    );
    p.blank();
    p.line("Y only if every word matches a witness's paper from the generation ceremony.");
    p.key("Y", "the words match");
    p.key("A", "abort");
    p
}

/// What the folders applied after the generation folder changed, in one line.
fn applied_line(replaced: usize, reshared: usize) -> String {
    let count = |n: usize, what: &str| match n {
        1 => format!("1 {what} folder"),
        n => format!("{n} {what} folders"),
    };
    match (replaced, reshared) {
        (0, 0) => "No replace-card or reshare folder was found: the generation's cards and PIN \
                   files."
            .into(),
        (1, 0) => "1 replace-card folder applied: its holder's new cards and PIN file.".into(),
        (n, 0) => format!("{n} replace-card folders applied, in order: new cards and PIN files."),
        (0, r) => format!(
            "{} applied: the holders above, their new cards and PIN files.",
            count(r, "reshare")
        ),
        (n, r) => format!(
            "{} and {} applied, in the order made: the holders above, their cards and PIN files.",
            count(r, "reshare"),
            count(n, "replace-card")
        ),
    }
}

/// The request, as the witnesses confirm it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RequestView {
    /// Where request.toml was read.
    pub location: String,
    /// `sign`, `certify`, ...
    pub operation: String,
    /// What it does, a line each (file names, the challenge, user IDs).
    pub what: Vec<String>,
    /// The request time, UTC.
    pub time: String,
    /// What the plan's policy decided, in words.
    pub policy: String,
    /// The request's canonical hash, hex.
    pub hash: String,
}

pub fn request_page(v: &RequestView) -> Page {
    let mut p = Page::new(S::Request, "the request");
    p.bold(format!("{} request, dated {}", v.operation, v.time));
    p.line(format!("read from {}", v.location));
    for w in v.what.iter().take(4) {
        p.line(format!("  {w}"));
    }
    if v.what.len() > 4 {
        p.line(format!("  ... and {} more", v.what.len() - 4));
    }
    p.line(v.policy.clone());
    hash_lines(
        &mut p,
        "Request hash: compare with the hash the requester gave the witnesses",
        &v.hash,
    );
    p.key("Y", "the hash matches");
    p.key("A", "abort");
    p
}

/// One file a `sign` request names, its bytes' hash (equal to the request's) to confirm.
pub fn file_page(position: usize, count: usize, name: &str, size: usize, sha256: &str) -> Page {
    let mut p = Page::new(S::Request, format!("file {position} of {count} to sign"));
    p.bold(format!("{name}: {size} bytes, read from the request stick"));
    p.line("Its SHA-256 is the one the request names. The requester reads it aloud:");
    p.blank();
    hash_lines(&mut p, "SHA-256 of the file", sha256);
    p.blank();
    p.line("Nothing is signed until the holders have brought their shares.");
    p.key("Y", "this is the file to sign");
    p.key("A", "abort");
    p
}

/// One holder on the holders' page.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HolderRow {
    pub index: u8,
    pub name: String,
    pub backup: String,
    pub accepted: bool,
}

/// Who comes next: the operator presses the holder's number.
pub fn holders_page(rows: &[HolderRow], progress: &str, error: Option<&str>) -> Page {
    let mut p = Page::new(S::Holders, "holders' shares");
    p.bold(format!("{progress}. Holders, in any order, one at a time:"));
    for r in rows.iter().take(9) {
        p.line(format!(
            "  {}  {:<20} backup {:<20} {}",
            r.index,
            r.name,
            r.backup,
            if r.accepted { "share in" } else { "" }
        ));
    }
    if rows.len() > 9 {
        p.line(format!(
            "  (holders 10 to {} cannot be chosen here)",
            rows.len()
        ));
    }
    p.blank();
    if let Some(e) = error {
        p.alert("REFUSED");
        p.line(e.to_owned());
        p.line("Nothing was accepted from that turn; nothing already in was lost.");
        p.blank();
    }
    p.line("Press the number of the holder whose share comes next.");
    p.key("1-9", "holder");
    p.key("A", "abort");
    p
}

/// Waiting for a holder's (or their backup's) personal card.
pub fn personal_card_page(index: u8, name: &str, backup: &str, status: &str) -> Page {
    let mut p = Page::new(S::Holders, format!("holder {index}: personal card"));
    p.bold(format!(
        "{name}: insert your personal OpenPGP card (or {backup}'s, as your backup)."
    ));
    p.line("It decrypts your PIN file from the generation folder; nothing on it changes.");
    p.line(format!(
        "The factory default user PIN is tried first when the card has more than {MIN_PIN_RETRIES}"
    ));
    p.line("tries left; if it was changed, or fewer tries are left, you type it.");
    p.blank();
    p.line(status.to_owned());
    p.key("Esc", "another holder");
    p.key("A", "abort");
    p
}

/// A personal card's user PIN, typed blind; `refused` is the PIN the card refused just before.
pub fn pin_page(name: &str, serial: &str, retries_left: u8, refused: PinRefused) -> Page {
    let mut p = Page::new(S::Holders, "personal card PIN");
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
    // The card may be the holder's or their backup's: its owner types.
    p.bold(format!(
        "{name}'s turn: the owner of card {serial} types its user PIN,"
    ));
    p.bold("then Enter.");
    p.line("Nothing you type is shown, not even its length.");
    p.line(format!(
        "The card allows {retries_left} more tries; the last one is never used."
    ));
    p.key("Enter", "done");
    p.key("Esc", "give up with this card");
    p
}

/// The PIN file is open: the personal card goes out, a location card comes in.
pub fn location_card_page(
    index: u8,
    name: &str,
    read_by: &str,
    serials: &[String],
    status: &str,
    error: Option<&str>,
) -> Page {
    let mut p = Page::new(S::Holders, format!("holder {index}: location card"));
    p.line(format!(
        "{name}'s PIN file was read with the personal card of {read_by}."
    ));
    p.bold(format!(
        "Take the personal card out, then insert one of {name}'s location cards:"
    ));
    p.line(format!("  {}", serials.join(", ")));
    p.blank();
    if let Some(e) = error {
        p.alert("REFUSED");
        p.line(e.to_owned());
        p.line("Nothing was accepted. Take the card out; insert one of the cards above.");
        p.blank();
    }
    p.line(status.to_owned());
    p.key("Esc", "another holder");
    p.key("A", "abort");
    p
}

/// A share is in: the card goes out.
pub fn share_accepted_page(index: u8, name: &str, card: &str, progress: &str) -> Page {
    let mut p = Page::new(S::Holders, format!("holder {index}: share accepted"));
    p.bold(format!(
        "{name}'s share opened on card {card} and checked against the pinned root."
    ));
    p.line("It stays in memory only; it is never shown or written.");
    p.blank();
    p.bold(format!("{progress}."));
    p.blank();
    p.line("Take the card out.");
    p
}

/// While a card works: no key does anything, the card stays in.
pub fn card_busy_page(title: &str, what: &str) -> Page {
    let mut p = Page::new(S::Holders, title.to_owned());
    p.bold(what.to_owned());
    p.line("Do not remove the card.");
    p
}

/// What the operation did, for the write page.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DoneView {
    /// Upper-case hex.
    pub root_fingerprint: String,
    pub holders: Vec<u8>,
    /// A line per output of the operation.
    pub outputs: Vec<String>,
    pub files: usize,
}

pub fn write_page(
    v: &DoneView,
    sticks: &[String],
    status: Option<&str>,
    error: Option<&str>,
) -> Page {
    let mut p = Page::new(S::Write, "write the outputs");
    p.line(format!(
        "Recombined from holders {}: the root key, with the pinned fingerprint",
        v.holders
            .iter()
            .map(u8::to_string)
            .collect::<Vec<_>>()
            .join(", ")
    ));
    p.line(format!("  {}", grouped_fingerprint(&v.root_fingerprint)));
    p.line("Its self-test signature verified. The shares and the secret are wiped.");
    for o in v.outputs.iter().take(3) {
        p.line(format!("  {o}"));
    }
    if v.outputs.len() > 3 {
        p.line(format!("  ... and {} more", v.outputs.len() - 3));
    }
    p.blank();
    p.bold(format!(
        "Insert the data stick(s): {} files go to every stick listed, read back and compared.",
        v.files
    ));
    if let Some(e) = error {
        p.alert("WRITING FAILED");
        p.line(e.to_owned());
        p.line("Nothing is lost: the outputs are still in memory. Insert a fresh stick and");
        p.line("press W again.");
    }
    if sticks.is_empty() {
        p.line("No data stick found yet.");
    } else {
        for s in sticks.iter().take(3) {
            p.line(format!("  stick: {s}"));
        }
        p.key("W", "write to these sticks");
    }
    if let Some(s) = status {
        p.bold(s.to_owned());
    }
    p.key("A", "abort");
    p
}

pub fn final_page(final_hash: &str, written: &[String], files: usize) -> Page {
    let mut p = Page::new(S::Transcript, "the recovery transcript");
    p.bold(format!(
        "{files} files of the recovery written and read back:"
    ));
    // The last line names the folder (the driver puts it there).
    let (folder, sticks) = written
        .split_last()
        .map_or((None, written), |(f, s)| (Some(f), s));
    for w in sticks.iter().take(3) {
        p.line(format!("  {w}"));
    }
    if let Some(f) = folder {
        p.line(format!("  {f}"));
    }
    p.blank();
    hash_lines(
        &mut p,
        "Recovery transcript final hash: every witness writes these words down",
        final_hash,
    );
    p.blank();
    p.line("An auditor later checks the transcript on the stick against these words.");
    p.key("Y", "words written down");
    p
}

/// The last page; `write_failed`: a write failed, so a stick may hold part of the outputs.
pub fn power_off_page(aborted: Option<&str>, write_failed: bool) -> Page {
    let mut p = Page::new(S::PowerOff, "done");
    match aborted {
        Some(why) => {
            p.alert("RECOVERY ABORTED");
            p.line(why.to_owned());
            if write_failed {
                p.line("A write failed part way: a data stick may hold some of this recovery's");
                p.line("files, signatures among them, without its signed transcript.");
            } else {
                p.line("Nothing was written to any stick.");
            }
            p.line("The holders' cards are unchanged.");
        }
        None => {
            p.bold("The recovery is complete.");
            p.line("The holders take their cards home; keep the data sticks as agreed.");
        }
    }
    p.blank();
    p.line("The root key, the shares and the PINs have been wiped from memory.");
    p.line("Power off now; nothing of this session survives in the machine.");
    p.key("P", "power off");
    p
}

pub fn abort_confirm_page(step: S) -> Page {
    let mut p = Page::new(step, "abort?");
    p.alert("Abort the recovery?");
    if step == S::Write {
        p.line("The outputs, signed in memory only, are wiped; nothing more is written.");
    } else {
        p.line("Every share and secret is wiped and nothing is signed or written.");
    }
    p.key("Y", "yes, abort");
    p.key("N", "no, go back");
    p
}

/// The core refused with no way on (e.g. the shares did not recombine to the pinned root).
pub fn stopped_page(step: S, what: &str) -> Page {
    let mut p = Page::new(step, "problem");
    p.alert("PROBLEM");
    p.line(what.to_owned());
    p.blank();
    p.bold("What was kept");
    p.line("Nothing has been signed or written to any stick.");
    p.blank();
    p.bold("What you can do");
    p.line("Press A to abort the recovery; every share and secret is wiped.");
    p.key("A", "abort");
    p
}

/// replace-card: the share is rebuilt and sealed to a new location key; the new cards come
/// next. Public values only (the new key's fingerprint, the one it replaces, the sealed
/// share's hash).
pub fn replace_page(v: &ceremony::recovery_flow::ReplaceView) -> Page {
    let mut p = Page::new(S::Operation, "replace-card");
    p.bold(format!(
        "Holder {} ({}): share rebuilt and sealed to a NEW location key",
        v.holder, v.name
    ));
    p.line(format!(
        "  {}",
        grouped_fingerprint(&v.location_fingerprint)
    ));
    p.line("It replaces location key");
    p.line(format!("  {}", grouped_fingerprint(&v.replaces)));
    p.line(format!(
        "New sealed share SHA-256 {}...",
        &v.sealed_sha256[..v.sealed_sha256.len().min(16)]
    ));
    p.blank();
    p.line(format!(
        "Next: {} new BLANK OpenPGP card(s) for holder {}, one insertion each.",
        v.cards, v.holder
    ));
    p.line("The old cards of this holder are refused by every later recovery.");
    p.key("Y", "go on to the cards");
    p.key("A", "abort");
    p
}

/// reshare: the secret split anew, every M-subset checked, each new share sealed to a new
/// location key; what the old shares still mean, before the new cards.
pub fn reshare_page(v: &ceremony::recovery_flow::ReshareView) -> Page {
    let mut p = Page::new(S::Operation, "reshare");
    p.bold(format!(
        "The same root key, split anew: {} of {} holders (was {} of {})",
        v.threshold, v.count, v.old_threshold, v.old_count
    ));
    p.line(format!(
        "Every {}-holder subset checked: {} of {} recombine to the root key.",
        v.threshold,
        v.subsets_checked,
        if v.subsets_total == u128::MAX {
            "over 2^128".to_string()
        } else {
            v.subsets_total.to_string()
        }
    ));
    p.line("New location keys, each holder's share sealed to theirs:");
    for h in &v.holders {
        p.line(format!(
            "  {} {} ({}): {}",
            h.index,
            h.name,
            cards_word(h.cards),
            grouped_fingerprint(&h.location_fingerprint)
        ));
    }
    p.blank();
    p.alert("THE OLD SHARES STILL EXIST");
    p.line(format!(
        "Any {} of the {} old holders' cards, with their PIN files, still recombine",
        v.old_threshold, v.old_count
    ));
    p.line("to this key outside sherd until they are destroyed. sherd refuses them now.");
    p.line("Collect and destroy the old cards.");
    p.blank();
    let cards: u32 = v.holders.iter().map(|h| u32::from(h.cards)).sum();
    p.line(format!(
        "Next: {cards} new BLANK OpenPGP {}, one insertion each.",
        if cards == 1 { "card" } else { "cards" }
    ));
    p.key("Y", "go on to the cards");
    p.key("A", "abort");
    p
}

/// "1 card", "2 cards".
pub(crate) fn cards_word(n: u8) -> String {
    if n == 1 {
        "1 card".into()
    } else {
        format!("{n} cards")
    }
}
