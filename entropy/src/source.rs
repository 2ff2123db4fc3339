//! The entropy source trait and what each source says about itself.

use std::fmt;
use std::path::PathBuf;

/// What kind of source this is. Every kind but [`SourceKind::OsCsprng`] is hardware.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum SourceKind {
    /// The x86 `RDSEED` instruction (the CPU's conditioned entropy source).
    CpuRdseed,
    /// The x86 `RDRAND` instruction (the CPU's DRBG), used only where `RDSEED` is missing.
    CpuRdrand,
    /// Linux `/dev/hwrng`: whichever device the kernel currently selects.
    Hwrng,
    /// TPM 2.0 `TPM2_GetRandom`.
    Tpm,
    /// A USB serial (CDC ACM) TRNG such as a TrueRNG.
    UsbSerialTrng,
    /// An OpenPGP card's `GET CHALLENGE`.
    OpenPgpCard,
    /// The kernel CSPRNG through `getrandom(2)`: always mixed in, never counted as hardware.
    OsCsprng,
}

impl SourceKind {
    pub fn is_hardware(self) -> bool {
        self != SourceKind::OsCsprng
    }

    /// A short stable name, used in mixer labels and on the command line.
    pub fn name(self) -> &'static str {
        match self {
            SourceKind::CpuRdseed => "rdseed",
            SourceKind::CpuRdrand => "rdrand",
            SourceKind::Hwrng => "hwrng",
            SourceKind::Tpm => "tpm",
            SourceKind::UsbSerialTrng => "usb-trng",
            SourceKind::OpenPgpCard => "openpgp-card",
            SourceKind::OsCsprng => "os-csprng",
        }
    }
}

impl fmt::Display for SourceKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Whether the bytes a source gives us are its raw noise or already conditioned.
///
/// Health tests on whitened output only catch gross failures (stuck, constant, heavily
/// repeating output); the report says which it was so nobody reads more into a pass.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Conditioning {
    Raw,
    Whitened,
}

impl fmt::Display for Conditioning {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Conditioning::Raw => "raw",
            Conditioning::Whitened => "whitened",
        })
    }
}

/// Identifies the physical generator behind a source, so that two sources fed by the same
/// device (the TPM through `TPM2_GetRandom` and `/dev/hwrng` = `tpm-rng-0`) are counted once.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct DeviceKey(pub String);

impl DeviceKey {
    /// The key of the TPM chip with kernel number `n` (`/dev/tpm<n>`, `/dev/tpmrm<n>`,
    /// hwrng `tpm-rng-<n>`).
    pub fn tpm_chip(n: u32) -> Self {
        DeviceKey(format!("tpm-chip-{n}"))
    }

    pub fn cpu() -> Self {
        DeviceKey("cpu".into())
    }
}

impl fmt::Display for DeviceKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// What a source says about itself: shown on screen and recorded in the transcript.
#[derive(Clone, Debug, PartialEq)]
pub struct SourceInfo {
    pub kind: SourceKind,
    /// Human-readable identity of the device, e.g. `/dev/hwrng (virtio_rng.0)`.
    pub identity: String,
    /// The physical generator, for the independence rule.
    pub device: DeviceKey,
    pub conditioning: Conditioning,
    /// Bits per sample for the health tests: 8 (each byte a sample) or 1 (each bit).
    pub sample_bits: u32,
    /// Claimed min-entropy per sample in bits; sets the health-test cutoffs and caps credit.
    pub claimed_h: f64,
    /// Why that claim (one sentence, shown in the report).
    pub claim_basis: &'static str,
    /// Why this device is virtual, when the device itself says so (a software TPM,
    /// virtio-rng). [`Machine`] adds the hypervisor case for every source.
    pub virtual_device: Option<String>,
}

/// What the machine says about itself that bears on every source.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Machine {
    /// Why this machine is virtual, when its CPU says it runs under a hypervisor: then every
    /// device it shows may be the host's, passed through or emulated.
    pub hypervisor: Option<String>,
}

impl Machine {
    /// Reads the CPU's flags from `/proc/cpuinfo` (the kernel's copy of CPUID).
    pub fn detect() -> Self {
        Self::from_cpuinfo(&std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default())
    }

    /// From the text of `/proc/cpuinfo`: the `hypervisor` flag is CPUID leaf 1, ECX bit 31,
    /// which hypervisors set for their guests.
    pub fn from_cpuinfo(text: &str) -> Self {
        let flagged = text
            .lines()
            .filter(|l| l.starts_with("flags"))
            .filter_map(|l| l.split_once(':'))
            .any(|(_, flags)| flags.split_whitespace().any(|f| f == "hypervisor"));
        Machine {
            hypervisor: flagged.then(|| "under a hypervisor (CPUID hypervisor bit)".to_string()),
        }
    }
}

/// A source of entropy. Implementations read from one device; they do no health testing of
/// their own ([`crate::gather`] does it on every byte they return).
pub trait Source: Send {
    fn info(&self) -> &SourceInfo;

    /// Fills `buf` completely with fresh samples, or fails. Must never return bytes it did not
    /// get from the device (no padding, no reuse).
    fn fill(&mut self, buf: &mut [u8]) -> Result<(), SourceError>;
}

/// Why a source could not be opened or read.
#[derive(Debug, thiserror::Error)]
pub enum SourceError {
    #[error("cannot open {path}: {source}")]
    Open {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("reading {what} failed: {source}")]
    Io {
        what: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{what} returned end of file after {got} of {wanted} bytes; the device went away")]
    ShortRead {
        what: String,
        got: usize,
        wanted: usize,
    },
    #[error(
        "{what} delivered no data for {} s ({got} of {wanted} bytes); the device is stalled or \
         was unplugged",
        after.as_secs()
    )]
    Stalled {
        what: String,
        after: std::time::Duration,
        got: usize,
        wanted: usize,
    },
    #[error(
        "{instruction} gave no value after {tries} retries; the CPU's entropy source is \
         exhausted or broken"
    )]
    CpuExhausted {
        instruction: &'static str,
        tries: u32,
    },
    #[error("{0} is not available on this CPU")]
    CpuUnsupported(&'static str),
    #[error("the TPM answered {command} with response code {rc:#x} ({meaning})")]
    TpmResponse {
        command: &'static str,
        rc: u32,
        meaning: &'static str,
    },
    #[error("malformed TPM response to {command}: {problem}")]
    TpmMalformed {
        command: &'static str,
        problem: String,
    },
    #[error("the OpenPGP card {identity} failed GET CHALLENGE: {source}")]
    Card {
        identity: String,
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    #[error("the OpenPGP card {identity} returned {got} bytes to GET CHALLENGE for {wanted}")]
    CardLength {
        identity: String,
        got: usize,
        wanted: usize,
    },
    #[error("the kernel CSPRNG failed: {0}")]
    Os(getrandom::Error),
    #[error("{0}")]
    Other(String),
}
