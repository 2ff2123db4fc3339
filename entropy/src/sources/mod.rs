//! The real sources. Each one only reads its device; health testing happens in
//! [`crate::gather`].

pub mod card;
pub mod cpu;
pub mod hwrng;
pub mod os;
pub mod serial;
pub mod tpm;

use std::io::{self, Read};
use std::time::{Duration, Instant};

use crate::source::SourceError;

/// Claimed min-entropy per byte of a conditioned (whitened) hardware output. The vendors
/// claim full entropy for these outputs; the health tests then use the tightest cutoffs, which
/// is what catches a stuck or degraded conditioner. Credit is further capped by the measured
/// most-common-value estimate.
pub const WHITENED_CLAIM: f64 = 8.0;

/// How long a device may deliver nothing before it counts as stalled: a dead device must fail
/// the entropy step, not hang the ceremony.
pub const STALL_LIMIT: Duration = Duration::from_secs(10);

/// What a read of 0 bytes means for a device.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum ZeroRead {
    /// End of file: the device went away.
    Eof,
    /// No data yet (a tty with a read timer): keep waiting until the stall limit.
    Idle,
}

/// Reads exactly `buf.len()` bytes, retrying short reads, EINTR and EAGAIN (non-blocking
/// devices); fails when no byte arrives for `stall` or at end of file, because a device must
/// never run dry silently.
pub(crate) fn read_full(
    r: &mut impl Read,
    buf: &mut [u8],
    what: &str,
    zero: ZeroRead,
    stall: Duration,
) -> Result<(), SourceError> {
    let mut got = 0;
    let mut last_progress = Instant::now();
    while got < buf.len() {
        let idle = match r.read(&mut buf[got..]) {
            Ok(0) if zero == ZeroRead::Eof => {
                return Err(SourceError::ShortRead {
                    what: what.to_string(),
                    got,
                    wanted: buf.len(),
                });
            }
            Ok(0) => true,
            Ok(n) => {
                got += n;
                last_progress = Instant::now();
                false
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => false,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                std::thread::sleep(Duration::from_millis(1));
                true
            }
            Err(e) => {
                return Err(SourceError::Io {
                    what: what.to_string(),
                    source: e,
                });
            }
        };
        if idle && last_progress.elapsed() > stall {
            return Err(SourceError::Stalled {
                what: what.to_string(),
                after: stall,
                got,
                wanted: buf.len(),
            });
        }
    }
    Ok(())
}
