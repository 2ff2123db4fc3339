//! The policy and the whole gather path, driven by test doubles.

mod common;

use common::*;
use entropy::health::Failure;
use entropy::{Assessment, Counted, DeviceKey, Error, Event, Machine, Policy, SourceKind, Status};

fn refused(r: Result<(entropy::Drbg, entropy::Report), Error>) -> Error {
    match r {
        Ok(_) => panic!("expected the policy to refuse"),
        Err(e) => e,
    }
}

#[test]
fn one_hardware_source_plus_the_csprng_is_refused_naming_what_is_missing() {
    let mut sources = vec![hw("hwrng:a", 1), os(2)];
    let e = refused(gather(&mut sources, &Policy::default()));
    let msg = e.to_string();
    match &e {
        Error::TooFewHardwareSources {
            required,
            missing,
            counted,
            report,
            ..
        } => {
            assert_eq!((*required, *missing), (2, 1));
            assert_eq!(counted, &vec!["hwrng test double hwrng:a".to_string()]);
            assert!(!report.mixed);
            assert_eq!(report.sources.len(), 2);
            assert!(report.sources.iter().all(|s| s.commitment.is_some()));
        }
        other => panic!("wrong error: {other}"),
    }
    assert!(
        msg.contains("1 independent healthy hardware source(s)"),
        "{msg}"
    );
    assert!(msg.contains("2 required, 1 missing"), "{msg}");
    assert!(
        msg.contains("Connect another hardware entropy source"),
        "{msg}"
    );
}

#[test]
fn two_independent_hardware_sources_plus_the_csprng_pass() {
    let mut sources = vec![hw("hwrng:a", 1), hw("hwrng:b", 2), os(3)];
    let (mut drbg, report) = gather(&mut sources, &Policy::default()).unwrap();
    assert!(report.mixed);
    assert_eq!(
        report.counted_devices,
        vec![DeviceKey("hwrng:a".into()), DeviceKey("hwrng:b".into())]
    );
    assert_eq!(report.sources[2].counted, Counted::OsSource);
    for s in &report.sources {
        assert_eq!(s.status, Status::Healthy);
        assert!(s.startup_passed);
        assert_eq!(s.bytes_drawn, 1024 + 256);
        assert_eq!(s.samples_tested, 1280);
        assert_eq!(s.bytes_contributed, 256);
        // Whitened: credited by the claim (8 bits per byte) once the tests pass.
        assert_eq!(s.assessment, Some(Assessment::ByClaim));
        assert_eq!(s.credited_bits, 8.0 * 256.0);
    }
    // Deterministic doubles give a deterministic DRBG; a different byte anywhere changes it.
    let first = drbg_bytes(&mut drbg);
    let mut again = vec![hw("hwrng:a", 1), hw("hwrng:b", 2), os(3)];
    let (mut d2, _) = gather(&mut again, &Policy::default()).unwrap();
    assert_eq!(drbg_bytes(&mut d2), first);
    let mut changed = vec![hw("hwrng:a", 1), hw("hwrng:b", 2), os(4)];
    let (mut d3, _) = gather(&mut changed, &Policy::default()).unwrap();
    assert_ne!(drbg_bytes(&mut d3), first);
}

#[test]
fn a_stuck_source_is_excluded_reported_and_not_mixed() {
    let stuck = |value| {
        double(
            SourceKind::Tpm,
            "tpm-chip-0",
            Behaviour::StuckAfter {
                seed: 9,
                n: 2000,
                value,
            },
        )
        .boxed()
    };
    // Stuck after 2000 bytes: start-up (1024) passes, the contribution fails the RCT.
    let mut sources = vec![hw("hwrng:a", 1), stuck(0x00), hw("hwrng:b", 2), os(3)];
    let policy = Policy {
        contribution_bytes: 2048,
        ..Policy::default()
    };
    let (mut drbg, report) = gather(&mut sources, &policy).unwrap();
    let bad = &report.sources[1];
    assert!(bad.startup_passed);
    assert_eq!(bad.counted, Counted::Excluded);
    assert!(bad.commitment.is_none());
    assert_eq!(bad.bytes_contributed, 0);
    match &bad.status {
        Status::HealthFailed(Failure::Repetition {
            value, at_sample, ..
        }) => {
            assert_eq!(*value, 0);
            // The run starts at byte 2000 and fails at the cutoff (5 at H=8, alpha=2^-30).
            assert!((2004..=2005).contains(at_sample), "{at_sample}");
        }
        other => panic!("expected an RCT failure, got {other:?}"),
    }
    assert!(
        bad.to_string()
            .contains("EXCLUDED: Repetition Count Test failed")
    );
    // Nothing of the failed source reached the mix: stuck at another value, same DRBG.
    let mut other = vec![hw("hwrng:a", 1), stuck(0xFF), hw("hwrng:b", 2), os(3)];
    let (mut d2, _) = gather(&mut other, &policy).unwrap();
    assert_eq!(drbg_bytes(&mut drbg), drbg_bytes(&mut d2));
}

#[test]
fn a_failing_source_leaves_too_few_and_the_error_says_why() {
    let mut sources = vec![
        hw("hwrng:a", 1),
        double(SourceKind::UsbSerialTrng, "usb:x", Behaviour::Biased(5)).boxed(),
        os(3),
    ];
    let e = refused(gather(&mut sources, &Policy::default()));
    let msg = e.to_string();
    assert!(msg.contains("Adaptive Proportion Test failed"), "{msg}");
    assert!(msg.contains("#1 usb-trng"), "{msg}");
    let r = e.report().unwrap();
    assert!(matches!(
        r.sources[1].status,
        Status::HealthFailed(Failure::Proportion { value: 0x42, .. })
    ));
    // Biased from the first byte: it fails during start-up.
    assert!(!r.sources[1].startup_passed);
}

#[test]
fn two_sources_of_one_device_count_once() {
    let mut sources = vec![
        hw("tpm-chip-0", 1),
        double(SourceKind::Tpm, "tpm-chip-0", Behaviour::Good(2)).boxed(),
        os(3),
    ];
    let e = refused(gather(&mut sources, &Policy::default()));
    assert!(
        e.to_string().contains("same device (tpm-chip-0) as #0"),
        "{e}"
    );
    let r = e.report().unwrap();
    assert_eq!(r.counted_devices, vec![DeviceKey::tpm_chip(0)]);
    assert_eq!(
        r.sources[1].counted,
        Counted::SameDeviceAs {
            same_as: 0,
            device: DeviceKey::tpm_chip(0)
        }
    );
    // Both are healthy and committed even so.
    assert!(r.sources[1].is_healthy() && r.sources[1].commitment.is_some());
}

#[test]
fn the_kernel_csprng_is_required() {
    let mut none = vec![hw("hwrng:a", 1), hw("hwrng:b", 2)];
    let e = refused(gather(&mut none, &Policy::default()));
    assert!(matches!(e, Error::NoOsCsprng { .. }), "{e}");
    assert!(
        e.to_string().contains("no kernel CSPRNG source was given"),
        "{e}"
    );

    let mut broken = vec![
        hw("hwrng:a", 1),
        hw("hwrng:b", 2),
        double(
            SourceKind::OsCsprng,
            "os-csprng",
            Behaviour::StuckAfter {
                seed: 1,
                n: 0,
                value: 7,
            },
        )
        .boxed(),
    ];
    let e = refused(gather(&mut broken, &Policy::default()));
    assert!(e.to_string().contains("Repetition Count Test"), "{e}");
}

#[test]
fn the_csprng_never_counts_as_hardware() {
    // Two OS sources and one hardware source: still one hardware source.
    let mut sources = vec![hw("hwrng:a", 1), os(2), os(3)];
    let e = refused(gather(&mut sources, &Policy::default()));
    assert!(matches!(e, Error::TooFewHardwareSources { missing: 1, .. }));
}

#[test]
fn an_unplugged_source_is_excluded_with_its_error() {
    let mut sources = vec![
        hw("hwrng:a", 1),
        double(
            SourceKind::UsbSerialTrng,
            "usb:y",
            Behaviour::IoErrorAfter { seed: 4, n: 1100 },
        )
        .boxed(),
        hw("hwrng:b", 2),
        os(3),
    ];
    let (_d, report) = gather(&mut sources, &Policy::default()).unwrap();
    let r = &report.sources[1];
    assert!(r.startup_passed);
    assert_eq!(r.counted, Counted::Excluded);
    assert!(
        r.failure_reason().unwrap().contains("device unplugged"),
        "{:?}",
        r.status
    );
}

#[test]
fn a_source_claiming_too_little_entropy_is_mixed_but_not_counted() {
    // H = 1 bit per byte: 256 bytes credit at most 256 bits < 320.
    let low = double(SourceKind::Hwrng, "hwrng:low", Behaviour::Good(8)).with_claim(1.0);
    let mut sources = vec![hw("hwrng:a", 1), low.boxed(), os(3)];
    let e = refused(gather(&mut sources, &Policy::default()));
    let r = e.report().unwrap();
    assert!(matches!(
        r.sources[1].counted,
        Counted::TooLittleEntropy { credited_bits, .. } if credited_bits == 256.0
    ));
    assert!(
        e.to_string().contains("only 256 credited bits, 320 needed"),
        "{e}"
    );
}

#[test]
fn an_impossible_claim_is_excluded() {
    let bad = double(SourceKind::Hwrng, "hwrng:bad", Behaviour::Good(8)).with_claim(9.0);
    let mut sources = vec![hw("hwrng:a", 1), bad.boxed(), hw("hwrng:b", 2), os(3)];
    let (_d, report) = gather(&mut sources, &Policy::default()).unwrap();
    assert!(
        report.sources[1]
            .failure_reason()
            .unwrap()
            .contains("invalid claim")
    );
    assert_eq!(report.sources[1].bytes_drawn, 0);
}

#[test]
fn policies_below_the_ceremony_minimum_are_rejected() {
    let mut sources = vec![hw("hwrng:a", 1), os(3)];
    for p in [
        Policy {
            min_hardware_sources: 1,
            ..Policy::default()
        },
        Policy {
            startup_samples: 512,
            ..Policy::default()
        },
        Policy {
            contribution_bytes: 16,
            ..Policy::default()
        },
    ] {
        assert!(matches!(gather(&mut sources, &p), Err(Error::Policy(_))));
    }
}

#[test]
fn progress_reports_every_commitment_before_mixing() {
    let mut sources = vec![hw("hwrng:a", 1), hw("hwrng:b", 2), os(3)];
    let mut log = Vec::new();
    let (_d, report) = entropy::gather_with_progress(
        &mut sources,
        &Policy::default(),
        &Machine::default(),
        &mut |ev| {
            log.push(match ev {
                Event::SourceStarted { index, total, .. } => format!("start {index}/{total}"),
                Event::StartupPassed { index } => format!("startup {index}"),
                Event::Drawn {
                    index,
                    bytes,
                    total,
                } => format!("drawn {index} {bytes}/{total}"),
                Event::SourceFinished(r) => format!(
                    "done {} {} {:?}",
                    r.index,
                    r.commitment.expect("committed when finished"),
                    r.counted
                ),
                Event::Mixing { contributions } => format!("mix {contributions}"),
            })
        },
    )
    .unwrap();
    let c = |i: usize| report.sources[i].commitment.unwrap();
    let mut want = Vec::new();
    for i in 0..3 {
        want.push(format!("start {i}/3"));
        // 1024 start-up bytes in chunks of 256, then 256 contribution bytes.
        for b in [256, 512, 768, 1024] {
            want.push(format!("drawn {i} {b}/1280"));
        }
        want.push(format!("startup {i}"));
        want.push(format!("drawn {i} 1280/1280"));
        let counted = if i < 2 { "Yes" } else { "OsSource" };
        want.push(format!("done {i} {} {counted}", c(i)));
    }
    want.push("mix 3".into());
    assert_eq!(log, want);
}

#[test]
fn a_refused_gather_never_announces_mixing() {
    let mut sources = vec![hw("hwrng:a", 1), os(3)];
    let mut mixed = false;
    let r = entropy::gather_with_progress(
        &mut sources,
        &Policy::default(),
        &Machine::default(),
        &mut |ev| {
            if matches!(ev, Event::Mixing { .. }) {
                mixed = true;
            }
        },
    );
    assert!(r.is_err());
    assert!(!mixed);
}

/// Secret-holding types must not implement Debug: this fails to compile if one does
/// (two blanket impls become applicable and the call is ambiguous).
#[test]
fn secrets_are_not_debug() {
    trait NotDebug<A> {
        fn check() {}
    }
    impl<T: ?Sized> NotDebug<()> for T {}
    struct IsDebug;
    impl<T: ?Sized + std::fmt::Debug> NotDebug<IsDebug> for T {}
    <entropy::Drbg as NotDebug<_>>::check();
    <entropy::mix::Seed as NotDebug<_>>::check();
    <entropy::mix::Contribution as NotDebug<_>>::check();
}

#[test]
fn virtual_devices_count_only_when_the_policy_allows_them() {
    let virt = || {
        double(SourceKind::Hwrng, "hwrng:virtio_rng.0", Behaviour::Good(7))
            .virtual_device("virtio-rng")
            .boxed()
    };
    let mut sources = vec![hw("hwrng:a", 1), virt(), os(3)];
    let e = refused(gather(&mut sources, &Policy::default()));
    assert!(matches!(
        &e.report().unwrap().sources[1].counted,
        Counted::Virtual { why } if why == "virtio-rng"
    ));
    let allow = Policy {
        allow_virtual_hardware: true,
        ..Policy::default()
    };
    let mut sources = vec![hw("hwrng:a", 1), virt(), os(3)];
    let (_d, report) = gather(&mut sources, &allow).unwrap();
    assert_eq!(report.sources[1].counted, Counted::Yes);
    assert_eq!(
        report.sources[1].virtual_device.as_deref(),
        Some("virtio-rng")
    );
}

#[test]
fn under_a_hypervisor_every_source_is_virtual() {
    let machine = Machine::from_cpuinfo("processor\t: 0\nflags\t\t: fpu sse2 rdrand hypervisor\n");
    assert!(machine.hypervisor.is_some());
    assert_eq!(
        Machine::from_cpuinfo("flags\t\t: fpu sse2 rdrand\n"),
        Machine::default()
    );
    let mut sources = vec![hw("hwrng:a", 1), hw("hwrng:b", 2), os(3)];
    let e = entropy::gather(&mut sources, &Policy::default(), &machine)
        .err()
        .expect("refused");
    let r = e.report().unwrap();
    assert!(
        r.sources[..2]
            .iter()
            .all(|s| matches!(s.counted, Counted::Virtual { .. }))
    );
    assert!(e.to_string().contains("CPUID hypervisor bit"), "{e}");
}

#[test]
fn a_raw_source_is_credited_by_its_assessment_not_its_claim() {
    // Raw bits claimed at 1 bit each, alternating 0101...: no runs and a balanced window, so
    // the health tests pass, but each bit is predictable from the last. Markov sees it.
    let alternating = double(
        SourceKind::UsbSerialTrng,
        "usb:raw",
        Behaviour::Constant(0x55),
    )
    .raw(1, 1.0);
    let mut sources = vec![
        hw("hwrng:a", 1),
        alternating.boxed(),
        hw("hwrng:b", 2),
        os(3),
    ];
    let (_d, report) = gather(&mut sources, &Policy::default()).unwrap();
    let r = &report.sources[1];
    assert!(r.is_healthy(), "{:?}", r.status);
    let Some(Assessment::Estimated(e)) = &r.assessment else {
        panic!("raw sources are assessed: {:?}", r.assessment);
    };
    assert_eq!(e.samples, 1_000_000);
    assert!(e.bit_mcv > 0.99 && e.bit_markov < 0.01, "{e:?}");
    assert!((r.credited_bits - e.per_sample() * 2048.0).abs() < 1e-9);
    assert!(r.credited_bits < 20.0);
    assert!(matches!(r.counted, Counted::TooLittleEntropy { .. }));
    // 1024 start-up bits, 1,000,000 assessed bits, 256 contributed bytes.
    assert_eq!(r.bytes_drawn, 128 + 125_000 + 256);

    // Good raw noise claimed at 8 is credited by the (lower) estimate.
    let good = double(SourceKind::UsbSerialTrng, "usb:raw2", Behaviour::Good(6)).raw(8, 8.0);
    let mut sources = vec![hw("hwrng:a", 1), good.boxed(), os(3)];
    let (_d, report) = gather(&mut sources, &Policy::default()).unwrap();
    let r = &report.sources[1];
    let Some(Assessment::Estimated(e)) = &r.assessment else {
        panic!("assessed");
    };
    assert!(e.per_sample() < 8.0 && e.per_sample() > 7.4, "{e:?}");
    assert_eq!(r.counted, Counted::Yes);
    assert!(r.credited_bits < 8.0 * 256.0);
}
