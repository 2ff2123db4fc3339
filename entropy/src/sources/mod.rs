//! The real sources. Each one only reads its device; health testing happens in
//! [`crate::gather`].

pub mod card;
pub mod cpu;
pub mod hwrng;
pub mod os;
pub mod serial;
pub mod tpm;

use std::io::{self, Read};

use crate::source::SourceError;

/// Claimed min-entropy per byte of a conditioned (whitened) hardware output. The vendors
/// claim full entropy for these outputs; the health tests then use the tightest cutoffs, which
/// is what catches a stuck or degraded conditioner. Credit is further capped by the measured
/// most-common-value estimate.
pub const WHITENED_CLAIM: f64 = 8.0;

/// Reads exactly `buf.len()` bytes, retrying short reads and EINTR; end of file is an error
/// because a device must never run dry silently.
pub(crate) fn read_full(r: &mut impl Read, buf: &mut [u8], what: &str) -> Result<(), SourceError> {
    let mut got = 0;
    while got < buf.len() {
        match r.read(&mut buf[got..]) {
            Ok(0) => {
                return Err(SourceError::ShortRead {
                    what: what.to_string(),
                    got,
                    wanted: buf.len(),
                });
            }
            Ok(n) => got += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => {
                return Err(SourceError::Io {
                    what: what.to_string(),
                    source: e,
                });
            }
        }
    }
    Ok(())
}
