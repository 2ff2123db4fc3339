//! Hex as witnesses read PCRs aloud: the workspace's one strict implementation (`hexstr`).
//! The sysfs spelling of a PCR (upper case, a newline) is read by `attest::parse_sysfs_pcr`.

pub use hexstr::*;
