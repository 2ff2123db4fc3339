#![forbid(unsafe_code)]
//! What booting sherd through Heads depends on, in one place: the grub.cfg rules Heads' parser
//! imposes, the PCR values a clean Heads USB boot leaves, the firmware's TCG event log (SeaBIOS
//! in QEMU) and its replay, the attestation verdicts shown to witnesses, and the USB stick layout.
//! Facts: `../shared/reference/heads.md`; owner's guide: `docs/heads.md`.

pub mod attest;
pub mod eventlog;
pub mod grub;
pub mod hex;
pub mod pcr;
pub mod stick;
pub mod uefi;
