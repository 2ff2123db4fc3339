//! Booted by UEFI firmware instead of Heads: what the firmware's event log says it started, and
//! the Secure Boot state it reports. Pure: the caller reads the log, the live PCR 4 and the EFI
//! variables.
//!
//! A UEFI firmware extends PCR 4 with the Authenticode hash of every EFI application it starts
//! (`EV_EFI_BOOT_SERVICES_APPLICATION` in the TCG PC Client Platform Firmware Profile), besides
//! `EV_EFI_ACTION` strings and a separator. sherd boots with no boot loader, so a clean boot shows
//! exactly one application: `EFI/BOOT/BOOTX64.EFI`, whose hash the manifest records.

use crate::eventlog::{self, Event};
use crate::pcr::Bank;

pub const EV_EFI_BOOT_SERVICES_APPLICATION: u32 = 0x8000_0003;
/// The EFI global variable namespace (`SecureBoot`, `SetupMode`).
pub const EFI_GLOBAL_VARIABLE: &str = "8be4df61-93ca-11d2-aa0d-00e098032b8c";

/// What the event log shows about PCR 4.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Pcr4Log {
    /// The SHA-256 digest of each application the firmware measured into PCR 4, in order.
    pub applications: Vec<[u8; 32]>,
    /// Whether the log's PCR 4 events replay to the live PCR 4.
    pub replays: bool,
}

/// Reads PCR 4's story from a parsed log's events and the live value (SHA-256 bank).
pub fn pcr4(events: &[Event], live: &[u8]) -> Pcr4Log {
    let applications = events
        .iter()
        .filter(|e| e.pcr_index == 4 && e.event_type == EV_EFI_BOOT_SERVICES_APPLICATION)
        .filter_map(|e| e.digest(Bank::Sha256)?.try_into().ok())
        .collect();
    let replays = eventlog::replay(events, 4, Bank::Sha256).is_some_and(|r| r == live);
    Pcr4Log {
        applications,
        replays,
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SecureBoot {
    /// `SecureBoot` = 1: the firmware checks signatures against its db (the image is unsigned,
    /// so only a db holding its hash would have let it start).
    On,
    /// `SecureBoot` = 0 and `SetupMode` = 0.
    Off,
    /// `SetupMode` = 1: no platform key, anything may be enrolled.
    SetupMode,
}

impl SecureBoot {
    pub fn word(self) -> &'static str {
        match self {
            SecureBoot::On => "on",
            SecureBoot::Off => "off",
            SecureBoot::SetupMode => "setup-mode",
        }
    }
}

/// The state from the contents of the `SecureBoot` and `SetupMode` files of efivarfs (4 bytes of
/// attributes, then the one-byte value). None when either is missing or malformed.
pub fn secure_boot(secure_boot: &[u8], setup_mode: &[u8]) -> Option<SecureBoot> {
    let value = |b: &[u8]| match b {
        [_, _, _, _, v @ (0 | 1)] => Some(*v),
        _ => None,
    };
    match (value(secure_boot)?, value(setup_mode)?) {
        (_, 1) => Some(SecureBoot::SetupMode),
        (1, 0) => Some(SecureBoot::On),
        _ => Some(SecureBoot::Off),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pcr;

    fn event(pcr_index: u32, event_type: u32, digest: &[u8]) -> Event {
        Event {
            pcr_index,
            event_type,
            digests: vec![(eventlog::ALG_SHA256, digest.to_vec())],
            data: Vec::new(),
        }
    }

    #[test]
    fn one_application_and_a_replay() {
        let app = [7u8; 32];
        let action = Bank::Sha256.hash(b"Calling EFI Application from Boot Option");
        let sep = Bank::Sha256.hash(&[0, 0, 0, 0]);
        let events = vec![
            event(4, 0x8000_0007, &action),
            event(4, 4, &sep),
            event(0, 8, &[1; 32]),
            event(4, EV_EFI_BOOT_SERVICES_APPLICATION, &app),
        ];
        let mut live = pcr::zero(Bank::Sha256);
        for d in [&action[..], &sep, &app] {
            live = pcr::extend(Bank::Sha256, &live, d);
        }
        let l = pcr4(&events, &live);
        assert_eq!(l.applications, vec![app]);
        assert!(l.replays);
        assert!(!pcr4(&events, &[0; 32]).replays);
        // A second application (a boot loader before the kernel) is listed too.
        let mut more = events.clone();
        more.insert(2, event(4, EV_EFI_BOOT_SERVICES_APPLICATION, &[9; 32]));
        assert_eq!(pcr4(&more, &live).applications.len(), 2);
    }

    #[test]
    fn secure_boot_states() {
        let v = |b: u8| [7, 0, 0, 0, b];
        assert_eq!(secure_boot(&v(1), &v(0)), Some(SecureBoot::On));
        assert_eq!(secure_boot(&v(0), &v(0)), Some(SecureBoot::Off));
        assert_eq!(secure_boot(&v(0), &v(1)), Some(SecureBoot::SetupMode));
        assert_eq!(secure_boot(&v(2), &v(0)), None);
        assert_eq!(secure_boot(&[1], &v(0)), None);
    }
}
