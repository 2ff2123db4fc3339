//! The witnessed recovery ceremony: the generation folder pinned, a request checked and
//! confirmed, holders' shares one at a time, the root key recombined and proven, the request's
//! operation, the outputs written and the transcript's final words. The ceremony core's
//! `ceremony::recovery_flow` phases decide what may happen; this module shows each step's page
//! and feeds devices and keys to them.

pub mod driver;
pub mod screens;

pub use driver::{GenerationInput, RecoveryDevices, RequestInput, RequestPoll, run};

/// The recovery ceremony's steps, as the page header counts them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RecoveryStep {
    /// Boot attestation values shown and confirmed by the witnesses (as at generation).
    Attest,
    /// The generation folder pinned and its final words compared; the request checked against
    /// it and its policy, its hash confirmed.
    Request,
    /// Each holder's personal card reads their PIN file, their location card opens their share.
    Holders,
    /// The root key recombined, proven to be the pinned one, and the operation carried out.
    Operation,
    /// The output folder written to the data sticks.
    Write,
    /// The recovery transcript's final hash shown as words and confirmed.
    Transcript,
    /// Secrets dropped; power off.
    PowerOff,
}

impl RecoveryStep {
    /// Every step, in order.
    pub const ALL: [RecoveryStep; 7] = [
        RecoveryStep::Attest,
        RecoveryStep::Request,
        RecoveryStep::Holders,
        RecoveryStep::Operation,
        RecoveryStep::Write,
        RecoveryStep::Transcript,
        RecoveryStep::PowerOff,
    ];

    /// The step's name on screen.
    pub fn name(self) -> &'static str {
        match self {
            RecoveryStep::Attest => "Boot attestation",
            RecoveryStep::Request => "Generation and request",
            RecoveryStep::Holders => "Holders' shares",
            RecoveryStep::Operation => "Recombine and carry out",
            RecoveryStep::Write => "Write",
            RecoveryStep::Transcript => "Transcript",
            RecoveryStep::PowerOff => "Power off",
        }
    }

    /// 1-based position in [`RecoveryStep::ALL`].
    pub fn number(self) -> usize {
        RecoveryStep::ALL
            .iter()
            .position(|s| *s == self)
            .map_or(0, |i| i + 1)
    }
}
