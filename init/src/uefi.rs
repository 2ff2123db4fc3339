//! Booted by UEFI firmware rather than Heads: the evidence the attestation shows. The firmware's
//! event log names the applications it measured into PCR 4; the stick it booted holds
//! `EFI/BOOT/BOOTX64.EFI`, whose Authenticode hash must be the one measured; efivarfs says
//! whether Secure Boot was on. Everything is read, nothing is written (efivarfs read-only).

use ceremony_tui::ceremony::screens::UefiCheck;
use heads_config::{eventlog, uefi};
use nix::mount::{MsFlags, mount};
use std::path::Path;

const EFI_DIR: &str = "/sys/firmware/efi";
const EFIVARS: &str = "/sys/firmware/efi/efivars";

/// Linux makes `/sys/firmware/efi` only when an EFI firmware started it (its EFI stub): never
/// under Heads (coreboot, kexec).
pub fn booted_by_uefi() -> bool {
    Path::new(EFI_DIR).is_dir()
}

/// `on`, `off`, `setup-mode`, or `unknown (why)`.
fn secure_boot() -> String {
    let var = |name: &str| {
        std::fs::read(format!("{EFIVARS}/{name}-{}", uefi::EFI_GLOBAL_VARIABLE))
            .map_err(|e| format!("{name}: {e}"))
    };
    if var("SecureBoot").is_err() {
        // Read-only: the attestation only looks. Already mounted (EBUSY) is fine.
        let _ = mount(
            Some("efivarfs"),
            EFIVARS,
            Some("efivarfs"),
            MsFlags::MS_RDONLY | MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC,
            None::<&str>,
        );
    }
    match (var("SecureBoot"), var("SetupMode")) {
        (Ok(sb), Ok(sm)) => uefi::secure_boot(&sb, &sm).map_or_else(
            || "unknown (SecureBoot or SetupMode holds no 0/1 value)".into(),
            |s| s.word().into(),
        ),
        (Err(e), _) | (_, Err(e)) => format!("unknown ({e})"),
    }
}

/// The evidence, from the event log (if the kernel exposes one), the live PCR 4 and the
/// stick's application (its Authenticode hash as hex, or why it is unknown).
pub fn check(
    log: Option<&[u8]>,
    pcr4: Option<[u8; 32]>,
    on_stick: Result<String, String>,
) -> UefiCheck {
    let (measured, log_replays_pcr4) = match (log.map(eventlog::parse), pcr4) {
        (None, _) => (
            Err("the kernel exposes no firmware event log".into()),
            false,
        ),
        (Some(Err(e)), _) => (Err(format!("the firmware event log: {e}")), false),
        (Some(Ok(_)), None) => (Err("no TPM PCR 4 to compare the log with".into()), false),
        (Some(Ok(l)), Some(live)) => {
            let p = uefi::pcr4(&l.events, &live);
            (
                Ok(p.applications.iter().map(|a| hexstr::encode(a)).collect()),
                p.replays,
            )
        }
    };
    UefiCheck {
        secure_boot: secure_boot(),
        measured,
        log_replays_pcr4,
        on_stick,
    }
}
