//! The boot attestation's final verdicts, once the plan is known, and the deviation the
//! witnesses record when one of them is not PASS. Pure: the ceremony's driver and
//! `sherd-verify` both judge with these functions, so the verifier recomputes exactly what the
//! witnesses were shown (docs/formats/attestation.md).
//!
//! Before the plan, the attestation page judges PCR 0-7 by Heads' rules alone (with a firmware
//! event log's replay as information). After it, each PCR the plan's `[machine]` table records
//! is judged against that value instead, and the TPM quote made with the plan hash is judged:
//! its signature, qualifying data and PCR digest against the values shown at the attestation,
//! and its key against the recorded key name. FAIL or UNKNOWN anywhere stops the ceremony
//! until the witnesses type a reason: an `attest.deviation` record (the IANA KSK ceremony's
//! exception log is the model).

use std::fmt;

use crate::plan::Machine;
use crate::record::{Fields, Note};

/// One verdict, written as its word: the word carries the meaning, not a colour.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// The value is the expected one.
    Pass,
    /// The value differs from the expected one.
    Fail,
    /// Nothing to compare with (no expectation, no TPM, no quote).
    Unknown,
}

impl Verdict {
    /// `PASS`, `FAIL`, `UNKNOWN`.
    pub fn word(self) -> &'static str {
        match self {
            Verdict::Pass => "PASS",
            Verdict::Fail => "FAIL",
            Verdict::Unknown => "UNKNOWN",
        }
    }

    /// The word back; None for anything else.
    pub fn from_word(word: &str) -> Option<Verdict> {
        match word {
            "PASS" => Some(Verdict::Pass),
            "FAIL" => Some(Verdict::Fail),
            "UNKNOWN" => Some(Verdict::Unknown),
            _ => None,
        }
    }
}

impl fmt::Display for Verdict {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.word())
    }
}

/// What is judged.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Item {
    /// PCR 0..=7 of the SHA-256 bank.
    Pcr(u8),
    /// The TPM quote: its signature, its qualifying data (the plan hash) and its PCR digest
    /// (the values shown at the attestation).
    Quote,
    /// The quote's key against the key name the plan's `[machine]` table records.
    QuoteKey,
}

impl Item {
    /// The field name in `attest.verdicts` and `attest.deviation`: `pcr0`..`pcr7`, `quote`,
    /// `quote-key`.
    pub fn field(self) -> String {
        match self {
            Item::Pcr(i) => format!("pcr{i}"),
            Item::Quote => "quote".into(),
            Item::QuoteKey => "quote-key".into(),
        }
    }

    /// What a witness reads: `PCR4`, `TPM quote`, `quote key`.
    pub fn label(self) -> String {
        match self {
            Item::Pcr(i) => format!("PCR{i}"),
            Item::Quote => "TPM quote".into(),
            Item::QuoteKey => "quote key".into(),
        }
    }
}

/// One PCR as the attestation page read and judged it, before the plan.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Reading {
    /// The value read (SHA-256 bank); None without a TPM.
    pub value: Option<[u8; 32]>,
    /// The verdict shown at the attestation (Heads' rules, the event log as information).
    pub verdict: Verdict,
}

/// The TPM quote, judged against the plan hash and the PCR values shown at the attestation.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum QuoteOutcome {
    /// The quote verifies: signature, qualifying data and PCR digest.
    Verified {
        /// The attestation key's TPM name, hex.
        ak_name: String,
    },
    /// A quote was made but does not verify; `why` says which check failed.
    Invalid {
        /// The attestation key's TPM name, hex (from the recorded public area).
        ak_name: String,
        /// The failed check, e.g. the PCR digest differs (a PCR changed after the attestation).
        why: String,
    },
    /// No quote (no TPM, a TPM error, a rehearsal): why.
    NotMade(String),
}

impl QuoteOutcome {
    /// Judges a quote the TPM made (or the reason there is none) against the plan hash and the
    /// eight values the attestation recorded: the one rule the driver and the verifier share.
    pub fn judge(
        quote: Result<&tpm_quote::Quote, &str>,
        plan_hash: &[u8; 32],
        attested: &[Option<[u8; 32]>; 8],
    ) -> QuoteOutcome {
        Self::judge_with_report(quote, plan_hash, attested).0
    }

    /// [`QuoteOutcome::judge`], with the quote's report when it verifies (the verifier prints
    /// the TPM's firmware version from it).
    pub fn judge_with_report(
        quote: Result<&tpm_quote::Quote, &str>,
        plan_hash: &[u8; 32],
        attested: &[Option<[u8; 32]>; 8],
    ) -> (QuoteOutcome, Option<tpm_quote::QuoteReport>) {
        let quote = match quote {
            Ok(q) => q,
            Err(why) => return (QuoteOutcome::NotMade(why.to_owned()), None),
        };
        let ak_name = tpm_quote::ak_name(&quote.ak_public);
        let mut values = [[0u8; 32]; 8];
        for (slot, v) in values.iter_mut().zip(attested) {
            match v {
                Some(v) => *slot = *v,
                None => {
                    let why = "the attestation read no PCR values to compare the quote with";
                    return (
                        QuoteOutcome::Invalid {
                            ak_name,
                            why: why.into(),
                        },
                        None,
                    );
                }
            }
        }
        match tpm_quote::verify(quote, plan_hash, &values) {
            Ok(report) => (QuoteOutcome::Verified { ak_name }, Some(report)),
            Err(tpm_quote::QuoteError::PcrDigest { .. }) => (
                QuoteOutcome::Invalid {
                    ak_name,
                    why: "a PCR changed since the attestation: quoted values differ".into(),
                },
                None,
            ),
            Err(e) => (
                QuoteOutcome::Invalid {
                    ak_name,
                    why: e.to_string(),
                },
                None,
            ),
        }
    }
}

/// One judged item, with what a witness needs to follow the verdict.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Judged {
    /// What was judged.
    pub item: Item,
    /// The verdict.
    pub verdict: Verdict,
    /// The value judged (a PCR's hex, the quote key's name), if any.
    pub value: Option<String>,
    /// Why, in words: what it was compared with.
    pub why: String,
}

/// The final verdicts: PCR 0-7, the quote and, when the plan records a key name, the quote's
/// key. Recorded as `attest.verdicts`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Verdicts {
    /// The plan's `[machine]` name, if the plan records one.
    pub machine: Option<String>,
    /// PCR 0-7, then the quote, then the quote key (only when recorded in the plan).
    pub items: Vec<Judged>,
}

/// The record kinds.
pub const VERDICTS: &str = "attest.verdicts";
/// See [`VERDICTS`].
pub const DEVIATION: &str = "attest.deviation";

/// The final verdicts (see the module's documentation for the rules).
pub fn judge(readings: &[Reading; 8], machine: Option<&Machine>, quote: &QuoteOutcome) -> Verdicts {
    let mut items = Vec::with_capacity(10);
    for (i, r) in readings.iter().enumerate() {
        let index = u8::try_from(i).expect("eight PCRs");
        let recorded = machine.and_then(|m| m.pcrs[i].map(|v| (m.name.as_str(), v)));
        let (verdict, why) = match (recorded, r.value) {
            (Some((name, _)), None) => (
                Verdict::Unknown,
                format!("no TPM value to compare with the value recorded for {name}"),
            ),
            (Some((name, want)), Some(v)) if v == want => (
                Verdict::Pass,
                format!("equals the value recorded for {name}"),
            ),
            (Some((name, _)), Some(_)) => (
                Verdict::Fail,
                format!("differs from the value recorded for {name}"),
            ),
            (None, _) => (
                r.verdict,
                "Heads' rules, as at the attestation: not in the plan".into(),
            ),
        };
        items.push(Judged {
            item: Item::Pcr(index),
            verdict,
            value: Some(
                r.value
                    .map_or_else(|| "none".into(), |v| hexstr::encode(&v)),
            ),
            why,
        });
    }
    let (verdict, why) = match quote {
        QuoteOutcome::Verified { .. } => (
            Verdict::Pass,
            "signed by its key over PCR 0-7 as shown and the plan hash".to_string(),
        ),
        QuoteOutcome::Invalid { why, .. } => (Verdict::Fail, why.clone()),
        QuoteOutcome::NotMade(why) => (Verdict::Unknown, format!("no quote: {why}")),
    };
    items.push(Judged {
        item: Item::Quote,
        verdict,
        value: None,
        why,
    });
    if let Some((name, want)) = machine.and_then(|m| m.quote_key.map(|k| (&m.name, k))) {
        let want = hexstr::encode(&want);
        let (verdict, value, why) = match quote {
            QuoteOutcome::Verified { ak_name } | QuoteOutcome::Invalid { ak_name, .. } => {
                if *ak_name == want {
                    (
                        Verdict::Pass,
                        Some(ak_name.clone()),
                        format!("the key recorded for {name}: made by its TPM"),
                    )
                } else {
                    (
                        Verdict::Fail,
                        Some(ak_name.clone()),
                        format!("not the key recorded for {name}: another TPM"),
                    )
                }
            }
            QuoteOutcome::NotMade(_) => (
                Verdict::Unknown,
                None,
                "no quote, so no key to compare".into(),
            ),
        };
        items.push(Judged {
            item: Item::QuoteKey,
            verdict,
            value,
            why,
        });
    }
    Verdicts {
        machine: machine.map(|m| m.name.clone()),
        items,
    }
}

impl Verdicts {
    /// The items that are not PASS: each needs the witnesses' deviation.
    pub fn open(&self) -> Vec<&Judged> {
        self.items
            .iter()
            .filter(|j| j.verdict != Verdict::Pass)
            .collect()
    }

    /// `attest.verdicts [machine=<name>] pcr0=PASS .. pcr7=UNKNOWN quote=PASS [quote-key=PASS]`.
    pub fn note(&self) -> Note {
        let mut f = Fields::new();
        if let Some(m) = &self.machine {
            f = f.with("machine", m);
        }
        for j in &self.items {
            f = f.with(&j.item.field(), j.verdict.word());
        }
        Note::new(VERDICTS, f).expect("not a core kind")
    }
}

/// Shortest and longest deviation reason, in characters.
pub const REASON_LEN: std::ops::RangeInclusive<usize> = 10..=200;

/// Why a typed reason cannot be recorded.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ReasonError {
    /// Too short to explain anything, or too long for one record.
    #[error(
        "the reason has {0} characters: type {min} to {max} saying why the ceremony may go on",
        min = REASON_LEN.start(), max = REASON_LEN.end()
    )]
    Length(usize),
    /// Only printable ASCII and spaces (what the keyboard types, and what reads the same
    /// everywhere).
    #[error("only letters, digits, punctuation and spaces can be recorded")]
    Character,
}

/// A reason as it will be recorded: trimmed, printable ASCII and spaces, [`REASON_LEN`].
pub fn check_reason(reason: &str) -> Result<&str, ReasonError> {
    let r = reason.trim();
    if !r.chars().all(|c| c.is_ascii_graphic() || c == ' ') {
        return Err(ReasonError::Character);
    }
    if !REASON_LEN.contains(&r.len()) {
        return Err(ReasonError::Length(r.len()));
    }
    Ok(r)
}

/// `attest.deviation <item>=<VERDICT> [<item>-value=<hex>] .. reason="<typed>"`: every item
/// that is not PASS, its verdict and value, and the reason the witnesses agreed to go on.
/// `reason` must have passed [`check_reason`].
pub fn deviation_note(verdicts: &Verdicts, reason: &str) -> Note {
    let mut f = Fields::new();
    for j in verdicts.open() {
        let field = j.item.field();
        f = f.with(&field, j.verdict.word());
        if let Some(v) = &j.value {
            f = f.with(&format!("{field}-value"), v);
        }
    }
    Note::new(DEVIATION, f.with("reason", reason)).expect("not a core kind")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn heads_readings() -> [Reading; 8] {
        std::array::from_fn(|i| Reading {
            value: Some([i as u8; 32]),
            verdict: if [2, 5, 6, 7].contains(&i) {
                Verdict::Unknown
            } else {
                Verdict::Pass
            },
        })
    }

    fn machine(pcrs: &[usize], key: Option<[u8; 34]>) -> Machine {
        let mut m = Machine {
            name: "laptop-1".into(),
            pcrs: [None; 8],
            quote_key: key,
        };
        for &i in pcrs {
            m.pcrs[i] = Some([i as u8; 32]);
        }
        m
    }

    fn key(b: u8) -> [u8; 34] {
        let mut k = [b; 34];
        k[0] = 0;
        k[1] = 0x0b;
        k
    }

    #[test]
    fn without_a_machine_table_the_attestation_verdicts_stand() {
        let v = judge(
            &heads_readings(),
            None,
            &QuoteOutcome::NotMade("no TPM".into()),
        );
        assert_eq!(v.items.len(), 9);
        let open: Vec<String> = v.open().iter().map(|j| j.item.field()).collect();
        assert_eq!(open, ["pcr2", "pcr5", "pcr6", "pcr7", "quote"]);
        assert!(v.note().encode().starts_with("pcr0=PASS"));
    }

    #[test]
    fn recorded_values_decide_and_a_recorded_key_is_judged() {
        let mut readings = heads_readings();
        readings[6].value = Some([9; 32]);
        let m = machine(&[0, 1, 2, 3, 4, 5, 6, 7], Some(key(1)));
        let ok = QuoteOutcome::Verified {
            ak_name: hexstr::encode(&key(1)),
        };
        let v = judge(&readings, Some(&m), &ok);
        let open: Vec<(String, Verdict)> = v
            .open()
            .iter()
            .map(|j| (j.item.field(), j.verdict))
            .collect();
        assert_eq!(open, [("pcr6".to_string(), Verdict::Fail)]);
        assert!(v.items[2].why.contains("recorded for laptop-1"));
        assert_eq!(v.items[9].item, Item::QuoteKey);
        assert_eq!(v.items[9].verdict, Verdict::Pass);
        assert_eq!(
            v.note().encode(),
            "machine=laptop-1 pcr0=PASS pcr1=PASS pcr2=PASS pcr3=PASS \
             pcr4=PASS pcr5=PASS pcr6=FAIL pcr7=PASS quote=PASS quote-key=PASS"
        );
        // A recorded value overrides Heads' rule both ways.
        let mut r = heads_readings();
        r[0].value = Some([7; 32]);
        assert_eq!(judge(&r, Some(&m), &ok).items[0].verdict, Verdict::Fail);

        // Another TPM's key: FAIL; no quote: UNKNOWN.
        let other = QuoteOutcome::Verified {
            ak_name: hexstr::encode(&key(2)),
        };
        assert_eq!(
            judge(&heads_readings(), Some(&m), &other).items[9].verdict,
            Verdict::Fail
        );
        let none = QuoteOutcome::NotMade("x".into());
        let v = judge(&heads_readings(), Some(&m), &none);
        assert_eq!(v.items[8].verdict, Verdict::Unknown);
        assert_eq!(v.items[9].verdict, Verdict::Unknown);
        // No TPM at all: a recorded PCR is UNKNOWN, not PASS.
        let blank: [Reading; 8] = std::array::from_fn(|_| Reading {
            value: None,
            verdict: Verdict::Unknown,
        });
        assert!(
            judge(&blank, Some(&m), &none).items[..8]
                .iter()
                .all(|j| j.verdict == Verdict::Unknown)
        );
    }

    #[test]
    fn the_deviation_lists_every_open_item_with_its_value() {
        let v = judge(
            &heads_readings(),
            None,
            &QuoteOutcome::NotMade("no TPM".into()),
        );
        let reason = check_reason("  QEMU test machine: no recorded values  ").unwrap();
        let n = deviation_note(&v, reason).encode();
        let p2 = hexstr::encode(&[2; 32]);
        assert!(
            n.starts_with(&format!("pcr2=UNKNOWN pcr2-value={p2} pcr5=UNKNOWN")),
            "{n}"
        );
        assert!(
            n.ends_with("quote=UNKNOWN reason=\"QEMU test machine: no recorded values\""),
            "{n}"
        );
    }

    #[test]
    fn reasons_must_say_something() {
        assert_eq!(check_reason("ok"), Err(ReasonError::Length(2)));
        assert_eq!(
            check_reason(&"x".repeat(201)),
            Err(ReasonError::Length(201))
        );
        assert_eq!(
            check_reason("new line\nin the reason"),
            Err(ReasonError::Character)
        );
        assert_eq!(
            check_reason("é is not ascii at all"),
            Err(ReasonError::Character)
        );
        assert!(check_reason("the laptop was re-flashed on 2026-11-20").is_ok());
    }
}
