//! Hardware entropy sources, SP 800-90B health tests, commit-then-mix, and the DRBG.
//!
//! # Use (PID 1 / the ceremony TUI)
//!
//! ```no_run
//! use entropy::{Config, Event, Policy};
//!
//! // Every source found on this machine, the kernel CSPRNG last. Cards are added by the
//! // card stack through `entropy::CardSource::new(card)` where `card: impl ChallengeCard`.
//! let mut sources = entropy::discover(&Config::default());
//! let machine = entropy::Machine::detect();
//! let result = entropy::gather_with_progress(&mut sources, &Policy::default(), &machine, &mut |ev| {
//!     match ev {
//!         Event::SourceStarted { index, total, info } => { /* "drawing 1/4: tpm ..." */ }
//!         Event::Drawn { index, bytes, total } => { /* progress bar */ }
//!         Event::StartupPassed { index } => {}
//!         Event::SourceFinished(report) => { /* show report: status, H, commitment */ }
//!         Event::Mixing { contributions } => {}
//!     }
//! });
//! match result {
//!     Ok((mut drbg, report)) => {
//!         // `report` (Display, or its fields) goes to the screen and the transcript.
//!         let mut root = zeroize::Zeroizing::new([0u8; 32]);
//!         drbg.fill(&mut *root);
//!     }
//!     Err(e) => {
//!         // e names what is missing; e.report() still has every source's result.
//!         eprintln!("{e}");
//!     }
//! }
//! ```
//!
//! # What happens
//! 1. Each source, in order: its claim (kind, identity, device, raw or whitened, bits per
//!    sample, claimed min-entropy `H` per sample) gives the SP 800-90B cutoffs ([`health`]).
//!    At least 1024 start-up samples are drawn, tested and discarded; then the contribution
//!    (256 bytes by default) is drawn with every sample tested. A Repetition Count Test or
//!    Adaptive Proportion Test failure latches: that source is excluded and its reason
//!    reported. An I/O error excludes it too.
//! 2. Each healthy contribution is committed to (BLAKE3 `derive_key`, [`mix::COMMIT_CONTEXT`])
//!    as soon as it is drawn, and the commitment is in the report before anything is mixed.
//! 3. Policy ([`Policy`]): at least two healthy hardware sources on different physical devices
//!    (the TPM and `/dev/hwrng` = `tpm-rng-0` are one device), each credited with at least
//!    320 bits, plus a healthy kernel CSPRNG, which is always mixed in and never counted as
//!    hardware. A whitened source is credited by its claim once its tests pass; a raw one by
//!    the least of its claim and SP 800-90B estimates over 1,000,000 samples ([`Assessment`]).
//!    Virtual devices (a software TPM, virtio-rng, anything under a hypervisor: [`Machine`])
//!    count only when [`Policy::allow_virtual_hardware`] is set. Otherwise a typed [`Error`]
//!    names what is missing.
//! 4. All healthy contributions, labelled and length-prefixed, in source order, are mixed with
//!    BLAKE3 `derive_key` ([`mix::MIX_CONTEXT`]) into a 32-byte seed for ChaCha20 ([`Drbg`]).
//!
//! Secrets (contributions, seed, DRBG) have no Debug or Display and are zeroized on drop. The
//! [`Report`] and its commitments are public values.

pub mod estimate;
pub mod gather;
pub mod health;
pub mod mix;
pub mod source;
pub mod sources;

use std::path::{Path, PathBuf};

pub use gather::{
    Assessment, Counted, Error, Event, Policy, Report, SourceReport, Status, gather,
    gather_with_progress,
};
pub use mix::{Commitment, Drbg};
pub use source::{Conditioning, DeviceKey, Machine, Source, SourceError, SourceInfo, SourceKind};
pub use sources::card::{CardSource, ChallengeCard};
pub use sources::cpu::CpuSource;
pub use sources::hwrng::HwrngSource;
pub use sources::os::OsCsprng;
pub use sources::serial::{SerialTrngConfig, SerialTrngSource};
pub use sources::tpm::TpmSource;

/// Where [`discover`] looks. [`Config::default`] is the real machine.
#[derive(Clone, Debug, PartialEq)]
pub struct Config {
    /// Normally `/dev`.
    pub dev_dir: PathBuf,
    /// Normally `/sys`.
    pub sysfs_dir: PathBuf,
    /// Use the CPU's RDSEED (or RDRAND).
    pub cpu: bool,
    /// Use `/dev/hwrng`.
    pub hwrng: bool,
    /// When the TPM is a source and `/dev/hwrng` serves the TPM too (`tpm-rng-*`), switch the
    /// kernel's hwrng to another device it offers (needs root), so hwrng adds a device.
    pub hwrng_avoid_tpm: bool,
    /// Use the TPM (`tpmrm0`, else `tpm0`).
    pub tpm: bool,
    /// Serial TRNGs given explicitly.
    pub serial_trngs: Vec<SerialTrngConfig>,
    /// Also use `ttyACM*` devices whose USB ids are a known TRNG (whitened, 8 bits claimed).
    pub auto_serial_trngs: bool,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            dev_dir: "/dev".into(),
            sysfs_dir: "/sys".into(),
            cpu: true,
            hwrng: true,
            hwrng_avoid_tpm: true,
            tpm: true,
            serial_trngs: vec![],
            auto_serial_trngs: true,
        }
    }
}

/// A source that was looked for and not used, and why.
#[derive(Clone, Debug, PartialEq)]
pub struct Absent {
    pub what: String,
    pub reason: String,
}

/// [`discover`] plus what was not found and why (for `entropy probe` and the screen).
pub struct Discovery {
    pub sources: Vec<Box<dyn Source>>,
    pub absent: Vec<Absent>,
}

/// Every real source on this machine (CPU, TPM, hwrng, serial TRNGs), then the kernel CSPRNG.
/// OpenPGP cards are not found here: the card stack wraps each card in a [`CardSource`] and
/// the caller pushes it onto the list.
pub fn discover(config: &Config) -> Vec<Box<dyn Source>> {
    discover_verbose(config).sources
}

/// Like [`discover`], also saying what was not found.
pub fn discover_verbose(config: &Config) -> Discovery {
    let mut sources: Vec<Box<dyn Source>> = Vec::new();
    let mut absent = Vec::new();
    let mut note = |what: &str, e: &dyn std::fmt::Display| {
        absent.push(Absent {
            what: what.into(),
            reason: e.to_string(),
        })
    };
    if config.cpu {
        match CpuSource::open() {
            Ok(s) => sources.push(Box::new(s)),
            Err(e) => note("CPU RDSEED/RDRAND", &e),
        }
    }
    let mut have_tpm = false;
    if config.tpm {
        match open_tpm(&config.dev_dir) {
            Ok(s) => {
                sources.push(s);
                have_tpm = true;
            }
            Err(e) => note("TPM 2.0", &e),
        }
    }
    if config.hwrng {
        let hw_random = config.sysfs_dir.join("class/misc/hw_random");
        if have_tpm
            && config.hwrng_avoid_tpm
            && let Err(e) = sources::hwrng::prefer_non_tpm(&hw_random)
        {
            note("hwrng other than the TPM", &e);
        }
        match HwrngSource::open(&config.dev_dir.join("hwrng"), &hw_random) {
            Ok(s) => sources.push(Box::new(s)),
            Err(e) => note("hwrng", &e),
        }
    }
    let mut serial = config.serial_trngs.clone();
    if config.auto_serial_trngs {
        for path in sources::serial::find_known_trngs(&config.dev_dir, &config.sysfs_dir) {
            if !serial.iter().any(|c| c.path == path) {
                serial.push(SerialTrngConfig::whitened(path));
            }
        }
    }
    for c in &serial {
        match SerialTrngSource::open(c, &config.sysfs_dir) {
            Ok(s) => sources.push(Box::new(s)),
            Err(e) => note(&format!("serial TRNG {}", c.path.display()), &e),
        }
    }
    sources.push(Box::new(OsCsprng::new()));
    Discovery { sources, absent }
}

/// The TPM's character device under `dev_dir`: `tpmrm0` first (the kernel's resource
/// manager lets the TPM be shared: the entropy step and the quote both use it), then `tpm0`.
pub fn tpm_device(dev_dir: &Path) -> Result<PathBuf, SourceError> {
    let rm = dev_dir.join("tpmrm0");
    let raw = dev_dir.join("tpm0");
    if rm.exists() {
        Ok(rm)
    } else if raw.exists() {
        Ok(raw)
    } else {
        Err(SourceError::Other(format!(
            "neither {} nor {} exists (no TPM 2.0, or its driver is not built in)",
            rm.display(),
            raw.display()
        )))
    }
}

fn open_tpm(dev_dir: &Path) -> Result<Box<dyn Source>, SourceError> {
    Ok(Box::new(TpmSource::open_device(&tpm_device(dev_dir)?)?))
}
