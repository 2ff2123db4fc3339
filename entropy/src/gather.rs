//! Drawing from the sources, health testing, committing, the policy, and mixing.

use std::collections::BTreeMap;
use std::fmt;
use std::time::{Duration, Instant};

use zeroize::Zeroizing;

use crate::estimate::{self, Estimates};
use crate::health::{Alpha, Cutoffs, HealthTester, MIN_STARTUP_SAMPLES};
use crate::mix::{self, Commitment, Contribution, Drbg};
use crate::source::{Conditioning, DeviceKey, Machine, Source, SourceInfo, SourceKind};

/// What [`gather`] requires. [`Policy::default`] is the ceremony's policy.
#[derive(Clone, Debug, PartialEq)]
pub struct Policy {
    /// Independent healthy hardware sources required (at least 2; lower values are refused).
    pub min_hardware_sources: usize,
    /// False-positive probability of each health test.
    pub alpha: Alpha,
    /// Samples tested and discarded before a source's output is used (at least 1024).
    pub startup_samples: usize,
    /// Bytes each source contributes to the mix after start-up.
    pub contribution_bytes: usize,
    /// Bits of credited min-entropy a hardware source must bring to count: 256 + 64 for a
    /// 256-bit seed (SP 800-90C's n + 64), so that each counted source could seed it alone.
    pub min_credited_bits: f64,
    /// Whether virtual devices (a software TPM, virtio-rng, anything on a machine that runs
    /// under a hypervisor) may count as hardware. Only for tests and rehearsals; a plan sets it
    /// explicitly and every page then says so.
    pub allow_virtual_hardware: bool,
}

impl Default for Policy {
    fn default() -> Self {
        Policy {
            min_hardware_sources: 2,
            alpha: Alpha::default(),
            startup_samples: MIN_STARTUP_SAMPLES,
            contribution_bytes: 256,
            min_credited_bits: 320.0,
            allow_virtual_hardware: false,
        }
    }
}

impl Policy {
    fn check(&self) -> Result<(), Error> {
        if self.min_hardware_sources < 2 {
            return Err(Error::Policy(format!(
                "min_hardware_sources = {}; the ceremony requires at least 2",
                self.min_hardware_sources
            )));
        }
        if self.startup_samples < MIN_STARTUP_SAMPLES {
            return Err(Error::Policy(format!(
                "startup_samples = {}; SP 800-90B requires at least {MIN_STARTUP_SAMPLES}",
                self.startup_samples
            )));
        }
        if self.contribution_bytes < 32 {
            return Err(Error::Policy(format!(
                "contribution_bytes = {}; each source must contribute at least 32 bytes",
                self.contribution_bytes
            )));
        }
        Ok(())
    }
}

/// How one source fared.
#[derive(Clone, Debug, PartialEq)]
pub enum Status {
    /// Passed start-up and continuous tests; its contribution was committed and mixed.
    Healthy,
    /// A health test failed (latched); nothing of it was mixed.
    HealthFailed(crate::health::Failure),
    /// Opening or reading it failed, or its claim was invalid; nothing of it was mixed.
    Error(String),
}

/// Whether a source counted towards the hardware-source requirement, and why (not).
#[derive(Clone, Debug, PartialEq)]
pub enum Counted {
    /// One of the independent healthy hardware sources.
    Yes,
    /// The kernel CSPRNG: mixed, never counted.
    OsSource,
    /// Healthy, mixed, but the same physical device as source number `same_as` (0-based).
    SameDeviceAs { same_as: usize, device: DeviceKey },
    /// Healthy and mixed, but credited with too little entropy to count.
    TooLittleEntropy { credited_bits: f64, needed: f64 },
    /// Healthy and mixed, but a virtual device, and the policy does not allow those.
    Virtual { why: String },
    /// Not healthy: excluded.
    Excluded,
}

/// Per-source results, for the screen and the transcript. Holds no secrets.
#[derive(Clone, Debug, PartialEq)]
pub struct SourceReport {
    pub index: usize,
    pub kind: SourceKind,
    pub identity: String,
    pub device: DeviceKey,
    pub conditioning: Conditioning,
    pub sample_bits: u32,
    pub claimed_h: f64,
    pub claim_basis: &'static str,
    /// Cutoffs used (absent when the claim was invalid).
    pub cutoffs: Option<Cutoffs>,
    /// Bytes read from the device: start-up + contribution.
    pub bytes_drawn: usize,
    /// Bytes that went into the mix (0 unless healthy).
    pub bytes_contributed: usize,
    pub samples_tested: u64,
    pub startup_passed: bool,
    pub status: Status,
    /// Why the device is virtual, if it is (its own report, or the machine's hypervisor).
    pub virtual_device: Option<String>,
    /// How its credit was decided (absent when it failed before that).
    pub assessment: Option<Assessment>,
    /// Credited min-entropy of the contribution: see [`Assessment`].
    pub credited_bits: f64,
    /// The commitment to the contribution (only for healthy sources), recorded before mixing.
    pub commitment: Option<Commitment>,
    pub counted: Counted,
    /// Time spent drawing from the device.
    pub elapsed: Duration,
}

/// How a healthy source's contribution is credited.
#[derive(Clone, Debug, PartialEq)]
pub enum Assessment {
    /// Conditioned output: credited by its claim, after start-up and continuous tests on every
    /// sample passed. On whitened output those tests catch only stuck or grossly biased
    /// output; no test on our side can measure the noise under a conditioner.
    ByClaim,
    /// Raw noise: SP 800-90B estimates over [`estimate::ASSESSMENT_SAMPLES`] samples drawn
    /// after start-up (tested, assessed, then discarded); credited by the least of the claim
    /// and the estimate.
    Estimated(Estimates),
}

impl Assessment {
    /// Min-entropy per sample the contribution is credited with.
    pub fn per_sample(&self, claimed_h: f64) -> f64 {
        match self {
            Assessment::ByClaim => claimed_h,
            Assessment::Estimated(e) => e.per_sample().min(claimed_h),
        }
    }
}

impl fmt::Display for Assessment {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Assessment::ByClaim => {
                f.write_str("by claim (whitened; tests catch only stuck or grossly biased output)")
            }
            Assessment::Estimated(e) => write!(
                f,
                "SP 800-90B over {} samples: MCV {:.3}, bits MCV {:.3} collision {:.3} Markov {:.3} per bit, H {:.3}",
                e.samples,
                e.mcv,
                e.bit_mcv,
                e.bit_collision,
                e.bit_markov,
                e.per_sample()
            ),
        }
    }
}

impl SourceReport {
    fn new(index: usize, info: &SourceInfo) -> Self {
        SourceReport {
            index,
            kind: info.kind,
            identity: info.identity.clone(),
            device: info.device.clone(),
            conditioning: info.conditioning,
            sample_bits: info.sample_bits,
            claimed_h: info.claimed_h,
            claim_basis: info.claim_basis,
            cutoffs: None,
            bytes_drawn: 0,
            bytes_contributed: 0,
            samples_tested: 0,
            startup_passed: false,
            status: Status::Error("not started".into()),
            virtual_device: None,
            assessment: None,
            credited_bits: 0.0,
            commitment: None,
            counted: Counted::Excluded,
            elapsed: Duration::ZERO,
        }
    }

    pub fn is_healthy(&self) -> bool {
        self.status == Status::Healthy
    }

    /// Bytes per second drawn from the device.
    pub fn throughput(&self) -> Option<f64> {
        let s = self.elapsed.as_secs_f64();
        (s > 0.0).then(|| self.bytes_drawn as f64 / s)
    }

    /// Why the source was excluded, or `None` if it is healthy.
    pub fn failure_reason(&self) -> Option<String> {
        match &self.status {
            Status::Healthy => None,
            Status::HealthFailed(f) => Some(f.to_string()),
            Status::Error(e) => Some(e.clone()),
        }
    }
}

impl fmt::Display for SourceReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "#{} {} {} [{}, device {}]",
            self.index, self.kind, self.identity, self.conditioning, self.device
        )?;
        match &self.cutoffs {
            Some(c) => writeln!(f, "   cutoffs: {c}")?,
            None => writeln!(f, "   cutoffs: none (claim H={} invalid)", self.claimed_h)?,
        }
        writeln!(f, "   claim basis: {}", self.claim_basis)?;
        if let Some(why) = &self.virtual_device {
            writeln!(f, "   VIRTUAL: {why}")?;
        }
        if let Some(a) = &self.assessment {
            writeln!(f, "   assessed {a}")?;
        }
        writeln!(
            f,
            "   drawn {} bytes ({} samples tested) in {:.3} s, contributed {}, credited {:.0} bits",
            self.bytes_drawn,
            self.samples_tested,
            self.elapsed.as_secs_f64(),
            self.bytes_contributed,
            self.credited_bits
        )?;
        match &self.status {
            Status::Healthy => writeln!(
                f,
                "   start-up and continuous RCT/APT: passed; commitment {}",
                self.commitment
                    .map(|c| c.to_hex())
                    .unwrap_or_else(|| "-".into())
            )?,
            Status::HealthFailed(x) => writeln!(f, "   EXCLUDED: {x}")?,
            Status::Error(e) => writeln!(f, "   EXCLUDED: {e}")?,
        }
        let counted = match &self.counted {
            Counted::Yes => "counts as an independent hardware source".to_string(),
            Counted::OsSource => "OS source: mixed, not counted as hardware".to_string(),
            Counted::SameDeviceAs { same_as, device } => {
                format!("mixed, not counted: same device ({device}) as #{same_as}")
            }
            Counted::TooLittleEntropy {
                credited_bits,
                needed,
            } => format!("mixed, not counted: {credited_bits:.0} credited bits < {needed:.0}"),
            Counted::Virtual { why } => {
                format!("mixed, not counted: virtual ({why}) and the plan does not allow that")
            }
            Counted::Excluded => "not mixed".to_string(),
        };
        write!(f, "   {counted}")
    }
}

/// Everything [`gather`] did, for the transcript and the screen. Holds no secrets.
#[derive(Clone, Debug, PartialEq)]
pub struct Report {
    pub sources: Vec<SourceReport>,
    pub policy: Policy,
    /// Devices of the independent healthy hardware sources that counted.
    pub counted_devices: Vec<DeviceKey>,
    /// BLAKE3 context of the mixer.
    pub mixer_context: &'static str,
    /// Whether the seed was derived (false when the policy refused).
    pub mixed: bool,
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for s in &self.sources {
            writeln!(f, "{s}")?;
        }
        write!(
            f,
            "independent healthy hardware sources: {} of {} required ({})",
            self.counted_devices.len(),
            self.policy.min_hardware_sources,
            self.counted_devices
                .iter()
                .map(|d| d.0.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        )?;
        if self.mixed {
            write!(
                f,
                "\nmixed with BLAKE3 derive_key({:?})",
                self.mixer_context
            )?;
        }
        Ok(())
    }
}

/// Progress, for a screen that shows live per-source results.
#[derive(Clone, Debug)]
pub enum Event<'a> {
    /// Starting on source `index` of `total`.
    SourceStarted {
        index: usize,
        total: usize,
        info: &'a SourceInfo,
    },
    /// Bytes drawn so far from source `index`, of `total` (start-up + contribution); sent
    /// after every chunk of up to 256 bytes, for a progress bar.
    Drawn {
        index: usize,
        bytes: usize,
        total: usize,
    },
    /// Start-up testing of source `index` passed (its contribution is being drawn next).
    StartupPassed { index: usize },
    /// Source `index` is done: healthy and committed, or excluded with a reason; its
    /// `counted` field is final.
    SourceFinished(&'a SourceReport),
    /// All commitments are recorded; mixing now.
    Mixing { contributions: usize },
}

/// Why [`gather`] refused.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(
        "refusing to seed the DRBG: {} independent healthy hardware source(s) [{}], {required} \
         required, {missing} missing{}. Connect another hardware entropy source (TPM, hwrng, USB \
         TRNG, OpenPGP card) or fix the excluded one, and run the entropy step again",
        counted.len(),
        counted.join(", "),
        if problems.is_empty() { String::new() } else { format!("; {}", problems.join("; ")) }
    )]
    TooFewHardwareSources {
        required: usize,
        missing: usize,
        /// Identities of the sources that counted.
        counted: Vec<String>,
        /// Why other hardware sources did not count.
        problems: Vec<String>,
        report: Box<Report>,
    },
    #[error(
        "refusing to seed the DRBG: the kernel CSPRNG did not contribute ({reason}); it is always \
         mixed in besides the hardware sources, so add entropy::OsCsprng to the sources"
    )]
    NoOsCsprng { reason: String, report: Box<Report> },
    #[error("invalid entropy policy: {0}")]
    Policy(String),
}

impl Error {
    /// The per-source report, when sources were drawn before refusing.
    pub fn report(&self) -> Option<&Report> {
        match self {
            Error::TooFewHardwareSources { report, .. } | Error::NoOsCsprng { report, .. } => {
                Some(report)
            }
            Error::Policy(_) => None,
        }
    }
}

const CHUNK: usize = 256;

/// Draws from one source: start-up bytes (tested, then discarded), for raw noise the
/// assessment samples (tested, assessed, discarded), and the contribution (tested as it
/// arrives). Fills in `rep`; returns the contribution when healthy.
fn draw(
    index: usize,
    source: &mut dyn Source,
    policy: &Policy,
    rep: &mut SourceReport,
    progress: &mut dyn FnMut(Event<'_>),
) -> Option<Zeroizing<Vec<u8>>> {
    let info = source.info().clone();
    let cutoffs = match Cutoffs::new(info.claimed_h, info.sample_bits, policy.alpha) {
        Ok(c) => c,
        Err(e) => {
            rep.status = Status::Error(format!("invalid claim: {e}"));
            return None;
        }
    };
    rep.cutoffs = Some(cutoffs);
    let mut tester =
        HealthTester::new(cutoffs, policy.startup_samples).expect("policy checked start-up size");
    let start = Instant::now();
    // Raw noise is assessed on samples of its own, drawn after start-up and then discarded.
    let assess_bytes = match info.conditioning {
        Conditioning::Raw => estimate::ASSESSMENT_SAMPLES * info.sample_bits as usize / 8,
        Conditioning::Whitened => 0,
    };
    let total = tester.startup_bytes_remaining() + assess_bytes + policy.contribution_bytes;
    let mut drawn = Drawing {
        source,
        tester: &mut tester,
        index,
        total,
        progress,
    };
    let outcome = (|| -> Result<(Zeroizing<Vec<u8>>, Assessment), Status> {
        // Start-up: tested, then discarded.
        let mut startup = Zeroizing::new(vec![0u8; drawn.tester.startup_bytes_remaining()]);
        drawn.fill(&mut startup, rep, "during start-up: ")?;
        rep.startup_passed = true;
        (drawn.progress)(Event::StartupPassed { index });
        let assessment = if assess_bytes > 0 {
            let mut samples = Zeroizing::new(vec![0u8; assess_bytes]);
            drawn.fill(&mut samples, rep, "during assessment: ")?;
            let e = estimate::assess(&samples, info.sample_bits).ok_or_else(|| {
                Status::Error(format!(
                    "{} bits per sample cannot be assessed; use 1 or 8",
                    info.sample_bits
                ))
            })?;
            Assessment::Estimated(e)
        } else {
            Assessment::ByClaim
        };
        // Contribution: every byte tested before it may be mixed.
        let mut data = Zeroizing::new(vec![0u8; policy.contribution_bytes]);
        drawn.fill(&mut data, rep, "")?;
        Ok((data, assessment))
    })();
    let result = match outcome {
        Ok((data, assessment)) => {
            rep.status = Status::Healthy;
            rep.assessment = Some(assessment);
            Some(data)
        }
        Err(status) => {
            rep.status = status;
            None
        }
    };
    rep.elapsed = start.elapsed();
    rep.samples_tested = tester.samples();
    if let (Some(data), Some(a)) = (&result, &rep.assessment) {
        rep.bytes_contributed = data.len();
        let samples = (data.len() * 8) as f64 / info.sample_bits as f64;
        rep.credited_bits = a.per_sample(info.claimed_h) * samples;
    }
    result
}

/// One source being drawn: every byte is counted, reported and tested as it arrives.
struct Drawing<'a, 'p> {
    source: &'a mut dyn Source,
    tester: &'a mut HealthTester,
    index: usize,
    total: usize,
    progress: &'a mut dyn FnMut(Event<'p>),
}

impl Drawing<'_, '_> {
    /// Fills `out` from the device in chunks, testing every sample; the status that stops the
    /// source otherwise (`phase` prefixes a device error).
    fn fill(&mut self, out: &mut [u8], rep: &mut SourceReport, phase: &str) -> Result<(), Status> {
        for chunk in out.chunks_mut(CHUNK) {
            self.source
                .fill(chunk)
                .map_err(|e| Status::Error(format!("{phase}{e}")))?;
            rep.bytes_drawn += chunk.len();
            (self.progress)(Event::Drawn {
                index: self.index,
                bytes: rep.bytes_drawn,
                total: self.total,
            });
            self.tester.feed(chunk).map_err(Status::HealthFailed)?;
        }
        Ok(())
    }
}

/// Label of a contribution in the mix: index, kind and identity.
fn label(index: usize, info: &SourceInfo) -> String {
    format!("{index}|{}|{}", info.kind.name(), info.identity)
}

/// [`gather_with_progress`] without progress reports.
pub fn gather(
    sources: &mut [Box<dyn Source>],
    policy: &Policy,
    machine: &Machine,
) -> Result<(Drbg, Report), Error> {
    gather_with_progress(sources, policy, machine, &mut |_| {})
}

/// Draws from every source in order, health tests each one, commits to each healthy
/// contribution, applies the policy, and only then mixes the healthy contributions (in source
/// order) into the DRBG seed.
///
/// Refuses with [`Error::TooFewHardwareSources`] unless at least
/// `policy.min_hardware_sources` healthy hardware sources on different physical devices each
/// bring `policy.min_credited_bits`, and with [`Error::NoOsCsprng`] unless a healthy
/// [`SourceKind::OsCsprng`] source contributed. Both errors carry the full [`Report`].
/// A virtual device (its own report, or every source when `machine` runs under a
/// hypervisor) counts only when `policy.allow_virtual_hardware` is set.
pub fn gather_with_progress(
    sources: &mut [Box<dyn Source>],
    policy: &Policy,
    machine: &Machine,
    progress: &mut dyn FnMut(Event<'_>),
) -> Result<(Drbg, Report), Error> {
    policy.check()?;
    let total = sources.len();
    let mut reports = Vec::with_capacity(total);
    let mut contributions: Vec<Contribution> = Vec::new();
    // Independence: the first healthy, sufficiently credited source of each device counts.
    // That depends only on the sources before, so each report is final when it is shown.
    let mut first_of: BTreeMap<DeviceKey, usize> = BTreeMap::new();
    let mut counted_devices = Vec::new();
    for (index, source) in sources.iter_mut().enumerate() {
        let info = source.info().clone();
        progress(Event::SourceStarted {
            index,
            total,
            info: &info,
        });
        let mut rep = SourceReport::new(index, &info);
        rep.virtual_device = info
            .virtual_device
            .clone()
            .or_else(|| machine.hypervisor.clone());
        if let Some(data) = draw(index, source.as_mut(), policy, &mut rep, progress) {
            let c = Contribution::new(label(index, &info), data);
            // Commit now, before any other source is drawn or anything is mixed.
            rep.commitment = Some(c.commitment());
            contributions.push(c);
        }
        rep.counted = if !rep.is_healthy() {
            Counted::Excluded
        } else if !rep.kind.is_hardware() {
            Counted::OsSource
        } else if let Some(why) = rep
            .virtual_device
            .as_ref()
            .filter(|_| !policy.allow_virtual_hardware)
        {
            Counted::Virtual { why: why.clone() }
        } else if rep.credited_bits < policy.min_credited_bits {
            Counted::TooLittleEntropy {
                credited_bits: rep.credited_bits,
                needed: policy.min_credited_bits,
            }
        } else if let Some(&same_as) = first_of.get(&rep.device) {
            Counted::SameDeviceAs {
                same_as,
                device: rep.device.clone(),
            }
        } else {
            first_of.insert(rep.device.clone(), rep.index);
            counted_devices.push(rep.device.clone());
            Counted::Yes
        };
        progress(Event::SourceFinished(&rep));
        reports.push(rep);
    }

    let mut report = Report {
        sources: reports,
        policy: policy.clone(),
        counted_devices,
        mixer_context: mix::MIX_CONTEXT,
        mixed: false,
    };

    let os_ok = report
        .sources
        .iter()
        .any(|r| r.kind == SourceKind::OsCsprng && r.is_healthy());
    if !os_ok {
        let reason = report
            .sources
            .iter()
            .filter(|r| r.kind == SourceKind::OsCsprng)
            .filter_map(|r| r.failure_reason())
            .next()
            .unwrap_or_else(|| "no kernel CSPRNG source was given".into());
        return Err(Error::NoOsCsprng {
            reason,
            report: Box::new(report),
        });
    }
    let counted = report.counted_devices.len();
    if counted < policy.min_hardware_sources {
        let counted_names = report
            .sources
            .iter()
            .filter(|r| r.counted == Counted::Yes)
            .map(|r| format!("{} {}", r.kind, r.identity))
            .collect();
        let problems = report
            .sources
            .iter()
            .filter(|r| r.kind.is_hardware() && r.counted != Counted::Yes)
            .map(|r| {
                let why = match (&r.counted, r.failure_reason()) {
                    (_, Some(reason)) => format!("excluded: {reason}"),
                    (Counted::SameDeviceAs { same_as, device }, None) => {
                        format!("same device ({device}) as #{same_as}, counted once")
                    }
                    (
                        Counted::TooLittleEntropy {
                            credited_bits,
                            needed,
                        },
                        None,
                    ) => {
                        format!("only {credited_bits:.0} credited bits, {needed:.0} needed")
                    }
                    (Counted::Virtual { why }, None) => {
                        format!("virtual: {why}; only a test or rehearsal plan may allow that")
                    }
                    _ => "not counted".into(),
                };
                format!("#{} {} {}: {why}", r.index, r.kind, r.identity)
            })
            .collect();
        return Err(Error::TooFewHardwareSources {
            required: policy.min_hardware_sources,
            missing: policy.min_hardware_sources - counted,
            counted: counted_names,
            problems,
            report: Box::new(report),
        });
    }

    progress(Event::Mixing {
        contributions: contributions.len(),
    });
    let seed = mix::mix(&contributions);
    drop(contributions);
    report.mixed = true;
    Ok((Drbg::from_seed(seed), report))
}
