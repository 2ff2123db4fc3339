//! The verdicts on PCR 0-7 that sherd's attestation screen shows witnesses, with the
//! expectation in plain words. Pure: the caller reads the PCRs and the event log.
//!
//! Rules (`../shared/reference/heads.md`): under coreboot+Heads PCR 0, 1 and 3 stay zero and
//! PCR4 holds `E(E(0, H("usb")), H("generic"))` after a USB boot: those are the only PASS. When
//! a firmware event log exists (SeaBIOS in QEMU, where the Heads stand-in does Heads' extends),
//! a PCR equal to its log's replay (PCR4: Heads' extends on top of it) is UNKNOWN, shown as
//! information: any firmware that keeps a log matches its own replay. PCR 2, 5, 6, 7 depend on
//! the board, the ROM and its user files: only the owner's recorded values can judge them.

use crate::eventlog;
use crate::hex::encode;
use crate::pcr::{self, Bank};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    Pass,
    Fail,
    Unknown,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PcrVerdict {
    pub index: u8,
    /// The value read (SHA-256 bank), None when there is no TPM or it could not be read.
    pub value: Option<Vec<u8>>,
    pub verdict: Verdict,
    /// What the value should be, in words a witness can follow.
    pub expectation: String,
    /// Why the verdict is what it is.
    pub reason: String,
}

/// Judges PCR 0-7 of the SHA-256 bank (`pcrs[i]` is PCR i, None without a TPM), against the
/// firmware event log when there is one (`binary_bios_measurements`).
pub fn judge(pcrs: &[Option<Vec<u8>>; 8], event_log: Option<&[u8]>) -> Vec<PcrVerdict> {
    let bank = Bank::Sha256;
    // Ok(Some(events)) with a usable log, Ok(None) without one, Err(why) for a bad log.
    let log: Result<Option<Vec<eventlog::Event>>, String> = match event_log {
        None => Ok(None),
        Some(bytes) => match eventlog::parse(bytes) {
            Ok(l)
                if l.spec_id
                    .algorithms
                    .iter()
                    .any(|&(a, _)| a == eventlog::ALG_SHA256) =>
            {
                Ok(Some(l.events))
            }
            Ok(_) => Err("the firmware event log has no SHA-256 bank".into()),
            Err(e) => Err(format!("the firmware event log could not be read: {e}")),
        },
    };
    pcrs.iter()
        .enumerate()
        .map(|(i, value)| {
            let index = i as u8;
            let (verdict, expectation, reason) = judge_one(index, value.as_deref(), &log, bank);
            PcrVerdict {
                index,
                value: value.clone(),
                verdict,
                expectation,
                reason,
            }
        })
        .collect()
}

/// One PCR. Only Heads' rules give PASS: PCR 0, 1 and 3 zero, PCR4 the USB boot from a reset
/// PCR. A firmware event log's replay is information: equal to it means the log is consistent
/// with the PCR, not that the firmware is the expected one (any firmware that keeps a log would
/// pass), so it is UNKNOWN; different from both is FAIL.
fn judge_one(
    index: u8,
    value: Option<&[u8]>,
    log: &Result<Option<Vec<eventlog::Event>>, String>,
    bank: Bank,
) -> (Verdict, String, String) {
    let heads = match (index, heads_value(index)) {
        (4, Some(v)) => (
            v.to_vec(),
            "E(E(0,H(usb)),H(generic)): Heads' USB boot from a reset PCR".to_string(),
        ),
        (_, Some(v)) => (v.to_vec(), "zero under Heads".to_string()),
        (_, None) => {
            return (
                Verdict::Unknown,
                "board-specific".to_string(),
                "depends on the board's firmware, ROM and its files: compare with the owner's \
                 recorded values"
                    .to_string(),
            );
        }
    };
    let expectation = format!("{} = {}", heads.1, encode(&heads.0));
    let Some(v) = value else {
        return (
            Verdict::Unknown,
            expectation,
            "no TPM: nothing to compare".into(),
        );
    };
    if v.len() != bank.digest_len() {
        return (
            Verdict::Fail,
            expectation,
            format!("read {} bytes, a SHA-256 PCR has 32", v.len()),
        );
    }
    if v == heads.0.as_slice() {
        return (Verdict::Pass, expectation, "equals Heads' value".into());
    }
    // The log's replay (PCR4: Heads' extends on top of it), when there is a usable log.
    let replay = match log {
        Ok(Some(ev)) => eventlog::replay(ev, index.into(), bank).map(|x| {
            if index == 4 {
                pcr::heads_usb_boot_pcr4(bank, &x)
            } else {
                x
            }
        }),
        _ => None,
    };
    match (log, replay) {
        (_, Some(r)) if v == r.as_slice() => (
            Verdict::Unknown,
            expectation,
            if index == 4 {
                "not Heads' value; equals Heads' extends on top of the firmware event log's \
                 replay (information only: a log replay is not a PASS)"
            } else {
                "not zero; equals the replay of the firmware event log (information only: any \
                 firmware that keeps a log matches its own replay)"
            }
            .to_string(),
        ),
        (Err(why), _) => (
            Verdict::Fail,
            expectation,
            format!("{why}: do not trust this boot until it is explained"),
        ),
        _ => (
            Verdict::Fail,
            expectation,
            if index == 4 {
                "differs: a recovery shell, a retried boot or a different boot path changes PCR4"
            } else {
                "differs: this firmware measured something the expectation lacks"
            }
            .to_string(),
        ),
    }
}

/// Heads' value of PCR `index` in the SHA-256 bank after a clean USB boot, where Heads' rules
/// fix one: zero for PCR 0, 1 and 3, the USB boot's extends from a reset PCR for PCR4; None
/// for the board-specific PCR 2, 5, 6 and 7 (and anything above 7).
pub fn heads_value(index: u8) -> Option<[u8; 32]> {
    let bank = Bank::Sha256;
    let v = match index {
        0 | 1 | 3 => pcr::zero(bank),
        4 => pcr::heads_usb_boot_pcr4(bank, &pcr::zero(bank)),
        _ => return None,
    };
    <[u8; 32]>::try_from(v).ok()
}

/// Reads PCR 0-7 of the SHA-256 bank from sysfs text (`/sys/class/tpm/tpm0/pcr-sha256/N`
/// holds hex and a newline); a missing or malformed file gives None.
pub fn parse_sysfs_pcr(text: &str) -> Option<Vec<u8>> {
    // sysfs ends the digest with a newline and Linux prints it in upper case: trim and fold.
    crate::hex::decode(&text.trim().to_ascii_lowercase())
        .filter(|v| v.len() == Bank::Sha256.digest_len())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::eventlog::tests::LogBuilder;
    use crate::hex::decode;

    /// PCR4 after Heads' USB boot from zero; computed with Python's hashlib (see pcr.rs).
    const HEADS_PCR4: &str = "bd6d4e413f2b44119bd0b4bc7060fe415c5c23c51a96f370c240f78a6dca21c3";

    fn heads_pcrs() -> [Option<Vec<u8>>; 8] {
        let mut p: [Option<Vec<u8>>; 8] = Default::default();
        for (i, v) in p.iter_mut().enumerate() {
            *v = Some(if i == 4 {
                decode(HEADS_PCR4).unwrap()
            } else {
                vec![i as u8; 32]
            });
        }
        for i in [0, 1, 3] {
            p[i] = Some(vec![0; 32]);
        }
        p
    }

    #[test]
    fn a_clean_heads_boot_passes() {
        let v = judge(&heads_pcrs(), None);
        assert_eq!(v.len(), 8);
        for r in &v {
            let want = if [2, 5, 6, 7].contains(&r.index) {
                Verdict::Unknown
            } else {
                Verdict::Pass
            };
            assert_eq!(r.verdict, want, "{r:?}");
        }
        assert!(v[0].expectation.starts_with("zero under Heads"));
        assert!(v[4].expectation.contains(HEADS_PCR4));
        assert!(v[7].reason.contains("owner's recorded values"));
    }

    #[test]
    fn a_recovery_extend_fails_pcr4() {
        let mut p = heads_pcrs();
        let b = Bank::Sha256;
        p[4] = Some(pcr::extend(b, p[4].as_ref().unwrap(), &b.hash(b"recovery")));
        let v = judge(&p, None);
        assert_eq!(v[4].verdict, Verdict::Fail);
        assert!(v[4].reason.contains("recovery shell"));
        p[1] = Some(vec![1; 32]);
        assert_eq!(judge(&p, None)[1].verdict, Verdict::Fail);
        p[3] = Some(vec![0; 20]);
        assert!(judge(&p, None)[3].reason.contains("32"));
    }

    #[test]
    fn no_tpm_is_unknown() {
        let v = judge(&Default::default(), None);
        assert!(
            v.iter()
                .all(|r| r.verdict == Verdict::Unknown && r.value.is_none())
        );
        assert!(v[4].reason.contains("no TPM"));
    }

    #[test]
    fn with_a_firmware_log() {
        let log = LogBuilder::new()
            .event(0, 8, b"bios")
            .event(4, 5, b"Calling INT 19h")
            .event(4, 4, &[0; 4])
            .0;
        let b = Bank::Sha256;
        // Computed independently with Python's hashlib:
        //   h = hashlib.sha256; x = bytes(32)
        //   for d in [b"Calling INT 19h", bytes(4)]: x = h(x + h(d).digest()).digest()
        //   for s in [b"usb", b"generic"]: x = h(x + h(s).digest()).digest()
        //   pcr0 = h(bytes(32) + h(b"bios").digest()).digest()
        let pcr4 = "963b35d0b3f36245e0e4e1e976c16420ce4c71b8f2017fffcce30b61d16b0057";
        let pcr0 = "7447ee2aee3ddbd44b22fb93defe4947a0b54aa3b9d89ced4c4d1332608ef623";
        let mut p = heads_pcrs();
        p[4] = decode(pcr4);
        p[0] = decode(pcr0);
        let v = judge(&p, Some(&log));
        // Equal to the log's replay: information, never PASS.
        assert_eq!(v[4].verdict, Verdict::Unknown, "{:?}", v[4]);
        assert!(v[4].reason.contains("firmware event log's replay"));
        assert_eq!(v[0].verdict, Verdict::Unknown, "{:?}", v[0]);
        assert!(v[0].reason.contains("information only"));
        // PCR1 is zero, as under Heads: that is a PASS, log or not.
        assert_eq!(v[1].verdict, Verdict::Pass);
        // Heads' own PCR4 value passes under any firmware.
        p[4] = Some(pcr::heads_usb_boot_pcr4(b, &pcr::zero(b)));
        assert_eq!(judge(&p, Some(&log))[4].verdict, Verdict::Pass);
        // Neither Heads' value nor the replay: FAIL.
        p[0] = Some(vec![9; 32]);
        assert_eq!(judge(&p, Some(&log))[0].verdict, Verdict::Fail);
    }

    #[test]
    fn a_bad_log_fails_what_it_would_judge() {
        // Heads' values still pass; anything else cannot be explained by the unreadable log.
        let v = judge(&heads_pcrs(), Some(b"garbage"));
        assert_eq!(v[4].verdict, Verdict::Pass);
        let mut p = heads_pcrs();
        p[4] = Some(vec![7; 32]);
        let v = judge(&p, Some(b"garbage"));
        assert_eq!(v[4].verdict, Verdict::Fail);
        assert!(
            v[4].reason.contains("event log could not be read"),
            "{}",
            v[4].reason
        );
        assert_eq!(v[2].verdict, Verdict::Unknown);
    }

    #[test]
    fn heads_values_are_those_the_judge_passes() {
        assert_eq!(heads_value(0), Some([0; 32]));
        assert_eq!(heads_value(4).map(|v| encode(&v)), Some(HEADS_PCR4.into()));
        assert_eq!(heads_value(2), None);
        assert_eq!(heads_value(8), None);
        let v = judge(&heads_pcrs(), None);
        for r in &v {
            let heads = heads_value(r.index).map(|h| h.to_vec());
            assert_eq!(
                r.verdict == Verdict::Pass,
                heads.is_some() && heads == r.value,
                "{r:?}"
            );
        }
    }

    #[test]
    fn sysfs_text() {
        assert_eq!(
            parse_sysfs_pcr(&format!("{HEADS_PCR4}\n")),
            decode(HEADS_PCR4)
        );
        assert_eq!(
            parse_sysfs_pcr(&format!("{}\n", HEADS_PCR4.to_ascii_uppercase())),
            decode(HEADS_PCR4)
        );
        assert_eq!(parse_sysfs_pcr("00\n"), None);
        assert_eq!(parse_sysfs_pcr(&"zz".repeat(32)), None);
    }
}
