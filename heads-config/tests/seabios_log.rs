//! A real firmware event log: SeaBIOS 1.16.2 (Debian 12's QEMU 7.2) with swtpm, read from
//! `/sys/kernel/security/tpm0/binary_bios_measurements` by the Heads stand-in in
//! `tests/tests/heads.rs`. The expected values are what the TPM itself reported in that boot
//! (`/sys/class/tpm/tpm0/pcr-sha256/N`), an independent computation of the same chains.

use heads_config::attest::{Verdict, judge};
use heads_config::eventlog::{self, ALG_SHA1, ALG_SHA256};
use heads_config::hex::{decode, encode};
use heads_config::pcr::{self, Bank};

const LOG_HEX: &str = include_str!("data/seabios-qemu-swtpm.eventlog.hex");
/// PCR 0-7 (SHA-256) as the TPM reported them before the stand-in's extends.
const FIRMWARE_PCRS: [&str; 8] = [
    "e21b703ee69c77476bccb43ec0336a9a1b2914b378944f7b00a10214ca8fea93",
    "88ba7fc80810305689d2e7124a99b4149e1289d32e95ee092e584f33979568b7",
    "355bcf2212dec850df460564d19d59a658cc5808972574d611dea6481e3ba306",
    "e21b703ee69c77476bccb43ec0336a9a1b2914b378944f7b00a10214ca8fea93",
    "1eb9aa21337cc1fa31ce5f56900d7bf59b9dda366823095aed06544caa2557ca",
    "e21b703ee69c77476bccb43ec0336a9a1b2914b378944f7b00a10214ca8fea93",
    "e21b703ee69c77476bccb43ec0336a9a1b2914b378944f7b00a10214ca8fea93",
    "e21b703ee69c77476bccb43ec0336a9a1b2914b378944f7b00a10214ca8fea93",
];
/// PCR 4 as the TPM reported it after the stand-in extended SHA-256("usb"), SHA-256("generic").
const PCR4_AFTER_HEADS_EXTENDS: &str =
    "6628f72f61e8801d21c1d72baa38564c4657e5209a1d241e928af541dcf6a71b";

fn log() -> Vec<u8> {
    decode(&LOG_HEX.replace('\n', "")).expect("fixture is hex")
}

#[test]
fn seabios_log_parses_and_replays_to_what_the_tpm_reported() {
    let l = eventlog::parse(&log()).unwrap();
    let algs: Vec<u16> = l.spec_id.algorithms.iter().map(|&(a, _)| a).collect();
    assert_eq!(algs, [ALG_SHA1, ALG_SHA256, 0x000c, 0x000d]);
    for (i, want) in FIRMWARE_PCRS.iter().enumerate() {
        let got = eventlog::replay(&l.events, i as u32, Bank::Sha256).unwrap();
        assert_eq!(&encode(&got), want, "PCR {i}");
    }
    let x = decode(FIRMWARE_PCRS[4]).unwrap();
    assert_eq!(
        encode(&pcr::heads_usb_boot_pcr4(Bank::Sha256, &x)),
        PCR4_AFTER_HEADS_EXTENDS
    );
}

#[test]
fn judge_shows_the_stand_in_boot_as_its_log_replay_never_pass() {
    let mut pcrs: [Option<Vec<u8>>; 8] = std::array::from_fn(|i| decode(FIRMWARE_PCRS[i]));
    pcrs[4] = decode(PCR4_AFTER_HEADS_EXTENDS);
    let v = judge(&pcrs, Some(&log()));
    for r in &v {
        // SeaBIOS is not Heads: nothing is a PASS. PCR 0, 1, 3 equal the real log's replay
        // and PCR4 Heads' extends on top of it: information, UNKNOWN.
        assert_eq!(r.verdict, Verdict::Unknown, "{r:?}");
        if [0, 1, 3, 4].contains(&r.index) {
            assert!(r.reason.contains("replay"), "{r:?}");
        }
    }
    // One measurement more than the log shows: FAIL.
    pcrs[0] = Some(vec![0x5a; 32]);
    assert_eq!(judge(&pcrs, Some(&log()))[0].verdict, Verdict::Fail);
    pcrs[0] = decode(FIRMWARE_PCRS[0]);
    // Without the log, Heads' own expectations apply, which SeaBIOS does not meet.
    let v = judge(&pcrs, None);
    assert!([0, 1, 3, 4].iter().all(|&i| v[i].verdict == Verdict::Fail));
}

#[test]
fn every_truncation_of_the_real_log_is_refused_or_shorter() {
    let full = log();
    let n = eventlog::parse(&full).unwrap().events.len();
    for cut in 0..full.len() {
        if let Ok(l) = eventlog::parse(&full[..cut]) {
            // Only cuts at event boundaries parse, and give fewer events.
            assert!(l.events.len() < n, "cut at {cut}");
        }
    }
}
