//! The TPM source against a real software TPM (swtpm), over its raw command socket.
//! Fails, never skips, when swtpm is not installed.

mod common;

use std::os::unix::net::UnixStream;
use std::process::Command;
use std::time::{Duration, Instant};

use common::*;
use entropy::health::{Alpha, Cutoffs, HealthTester, Verdict};
use entropy::{Counted, DeviceKey, Error, HwrngSource, Policy, Source, TpmSource};
use swtpm_socket::Swtpm;

fn start_swtpm() -> Swtpm {
    Swtpm::start()
}

fn tpm_source(s: &Swtpm) -> TpmSource<UnixStream> {
    let stream = s.connect(Duration::from_secs(20));
    TpmSource::new(stream, "swtpm", DeviceKey::tpm_chip(0)).unwrap()
}

#[test]
fn get_random_from_swtpm_passes_the_health_tests() {
    let tpm = start_swtpm();
    let mut src = tpm_source(&tpm);
    // swtpm reports IBM as manufacturer.
    assert!(src.vendor().starts_with("IBM"), "vendor {:?}", src.vendor());
    assert!(src.info().identity.contains("TPM 2.0 IBM"));
    let mut t = HealthTester::new(Cutoffs::new(8.0, 8, Alpha::default()).unwrap(), 1024).unwrap();
    let n = 16384;
    let mut buf = vec![0u8; n];
    let start = Instant::now();
    src.fill(&mut buf).unwrap();
    let secs = start.elapsed().as_secs_f64();
    eprintln!(
        "swtpm TPM2_GetRandom: {n} bytes in {secs:.3} s = {:.0} bytes/s",
        n as f64 / secs
    );
    t.feed(&buf).unwrap();
    assert_eq!(t.verdict(), Verdict::Healthy);
    // And the next draw is different (not a replay).
    let mut again = vec![0u8; 64];
    src.fill(&mut again).unwrap();
    assert_ne!(&again[..], &buf[..64]);
}

#[test]
fn swtpm_plus_an_independent_hwrng_pass_and_tpm_rng_does_not_count_twice() {
    let tpm = start_swtpm();
    // A /dev/hwrng stand-in: a file of good bytes, and sysfs naming the current device.
    let dir = tempfile::tempdir().unwrap();
    let mut bytes = vec![0u8; 4096];
    getrandom::fill(&mut bytes).unwrap();
    let dev = dir.path().join("hwrng");
    std::fs::write(&dev, &bytes).unwrap();

    // hwrng = virtio_rng.0: a different device from the TPM, so two count.
    std::fs::write(dir.path().join("rng_current"), "virtio_rng.0\n").unwrap();
    let mut sources: Vec<Box<dyn Source>> = vec![
        Box::new(tpm_source(&tpm)),
        Box::new(HwrngSource::open(&dev, dir.path()).unwrap()),
        os(1),
    ];
    // swtpm and virtio-rng are virtual devices: they count only where a plan allows that.
    let allow = Policy {
        allow_virtual_hardware: true,
        ..Policy::default()
    };
    let (_drbg, report) = gather(&mut sources, &allow).unwrap();
    assert_eq!(report.sources[0].counted, Counted::Yes);
    assert_eq!(report.sources[1].counted, Counted::Yes);
    // swtpm serves one client at a time: hang up before connecting again.
    drop(sources);

    // hwrng = tpm-rng-0: the same TPM, counted once, so refused.
    std::fs::write(dir.path().join("rng_current"), "tpm-rng-0\n").unwrap();
    let mut sources: Vec<Box<dyn Source>> = vec![
        Box::new(tpm_source(&tpm)),
        Box::new(HwrngSource::open(&dev, dir.path()).unwrap()),
        os(1),
    ];
    match gather(&mut sources, &allow) {
        Err(e @ Error::TooFewHardwareSources { .. }) => {
            assert!(e.to_string().contains("same device (tpm-chip-0)"), "{e}");
        }
        Err(e) => panic!("wrong refusal: {e}"),
        Ok(_) => panic!("TPM + tpm-rng must count as one device"),
    }
}

#[test]
fn tpm_alone_is_refused() {
    let tpm = start_swtpm();
    let mut sources: Vec<Box<dyn Source>> = vec![Box::new(tpm_source(&tpm)), os(1)];
    let allow = Policy {
        allow_virtual_hardware: true,
        ..Policy::default()
    };
    let e = gather(&mut sources, &allow).err().unwrap();
    assert!(
        matches!(e, Error::TooFewHardwareSources { missing: 1, .. }),
        "{e}"
    );
}

#[test]
fn swtpm_says_it_is_software_and_is_not_counted_without_the_flag() {
    let tpm = start_swtpm();
    let source = tpm_source(&tpm);
    let why = source
        .info()
        .virtual_device
        .clone()
        .expect("swtpm is virtual");
    assert!(why.contains("software TPM"), "{why}");
    let mut sources: Vec<Box<dyn Source>> = vec![Box::new(source), hw("hwrng:a", 2), os(1)];
    let e = gather(&mut sources, &Policy::default()).err().unwrap();
    let r = e.report().unwrap();
    assert!(
        matches!(&r.sources[0].counted, Counted::Virtual { why } if why.contains("software TPM")),
        "{:?}",
        r.sources[0].counted
    );
    assert!(
        e.to_string()
            .contains("only a test or rehearsal plan may allow"),
        "{e}"
    );
}

#[test]
fn entropy_dump_reads_a_socket_tpm() {
    let tpm = start_swtpm();
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("tpm.bin");
    let out = Command::new(env!("CARGO_BIN_EXE_entropy"))
        .args([
            "dump",
            "tpm",
            file.to_str().unwrap(),
            "5000",
            "--tpm-socket",
        ])
        .arg(&tpm.socket)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{err}");
    assert!(err.contains("TPM 2.0 IBM"), "{err}");
    let data = std::fs::read(&file).unwrap();
    assert_eq!(data.len(), 5000);
    let mut t = HealthTester::new(Cutoffs::new(8.0, 8, Alpha::default()).unwrap(), 1024).unwrap();
    t.feed(&data).unwrap();
}
