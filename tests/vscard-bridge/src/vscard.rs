//! The VSCard protocol (libcacard `vscard_common.h`) spoken by QEMU's ccid-card-passthru:
//! a 12-byte header `{type, reader_id, length}` (big-endian u32s) and `length` payload bytes.

use std::io::{self, Read, Write};

pub const INIT: u32 = 1;
pub const ERROR: u32 = 2;
pub const READER_ADD: u32 = 3;
pub const READER_REMOVE: u32 = 4;
pub const ATR: u32 = 5;
pub const CARD_REMOVE: u32 = 6;
pub const APDU: u32 = 7;
pub const FLUSH: u32 = 8;
pub const FLUSH_COMPLETE: u32 = 9;

/// Sent in Init, raw bytes (not an integer).
pub const MAGIC: [u8; 4] = *b"VSCD";
/// Protocol version 0.0.2, as libcacard encodes it.
pub const VERSION: u32 = 2;
pub const UNDEFINED_READER_ID: u32 = 0xFFFF_FFFF;
pub const MINIMAL_READER_ID: u32 = 0;

/// Error codes carried by Error messages.
pub const SUCCESS: u32 = 0;
pub const GENERAL_ERROR: u32 = 1;

/// QEMU buffers 64 KiB of input; nothing legitimate is larger.
pub const MAX_PAYLOAD: u32 = 64 * 1024 - 12;

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Msg {
    pub ty: u32,
    pub reader_id: u32,
    pub payload: Vec<u8>,
}

impl Msg {
    pub fn new(ty: u32, reader_id: u32, payload: impl Into<Vec<u8>>) -> Self {
        Self {
            ty,
            reader_id,
            payload: payload.into(),
        }
    }

    /// Our Init: magic, version, no capabilities.
    pub fn init() -> Self {
        let mut p = MAGIC.to_vec();
        p.extend_from_slice(&VERSION.to_be_bytes());
        p.extend_from_slice(&0u32.to_be_bytes());
        Self::new(INIT, UNDEFINED_READER_ID, p)
    }

    pub fn error(reader_id: u32, code: u32) -> Self {
        Self::new(ERROR, reader_id, code.to_be_bytes())
    }

    /// For Error messages: the code.
    pub fn error_code(&self) -> Option<u32> {
        (self.ty == ERROR && self.payload.len() >= 4)
            .then(|| u32::from_be_bytes(self.payload[..4].try_into().expect("4 bytes")))
    }

    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(12 + self.payload.len());
        out.extend_from_slice(&self.ty.to_be_bytes());
        out.extend_from_slice(&self.reader_id.to_be_bytes());
        out.extend_from_slice(&(self.payload.len() as u32).to_be_bytes());
        out.extend_from_slice(&self.payload);
        out
    }

    pub fn write_to(&self, w: &mut impl Write) -> io::Result<()> {
        w.write_all(&self.encode())?;
        w.flush()
    }

    /// Read one message; `Ok(None)` on a clean end of stream between messages.
    pub fn read_from(r: &mut impl Read) -> io::Result<Option<Self>> {
        let mut header = [0u8; 12];
        let mut got = 0;
        while got < header.len() {
            match r.read(&mut header[got..])? {
                0 if got == 0 => return Ok(None),
                0 => {
                    return Err(io::Error::new(
                        io::ErrorKind::UnexpectedEof,
                        "the peer closed the connection inside a VSCard header",
                    ));
                }
                n => got += n,
            }
        }
        let word = |i: usize| u32::from_be_bytes(header[i..i + 4].try_into().expect("4 bytes"));
        let (ty, reader_id, len) = (word(0), word(4), word(8));
        if len > MAX_PAYLOAD {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!("VSCard message type {ty} announces {len} bytes, more than {MAX_PAYLOAD}"),
            ));
        }
        let mut payload = vec![0; len as usize];
        r.read_exact(&mut payload)?;
        Ok(Some(Self {
            ty,
            reader_id,
            payload,
        }))
    }
}

/// Check a peer's Init payload.
pub fn check_init(msg: &Msg) -> Result<u32, String> {
    if msg.ty != INIT {
        return Err(format!("expected Init (1), got message type {}", msg.ty));
    }
    if msg.payload.len() < 8 || msg.payload[..4] != MAGIC {
        return Err(format!("Init without the VSCD magic: {:02x?}", msg.payload));
    }
    Ok(u32::from_be_bytes(
        msg.payload[4..8].try_into().expect("4 bytes"),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_splits() {
        let m = Msg::new(APDU, 0, vec![0x00, 0xA4, 0x04, 0x00]);
        let bytes = m.encode();
        assert_eq!(&bytes[..12], &[0, 0, 0, 7, 0, 0, 0, 0, 0, 0, 0, 4]);
        // Delivered one byte at a time, it still parses.
        struct Trickle(Vec<u8>, usize);
        impl Read for Trickle {
            fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
                if self.1 >= self.0.len() || buf.is_empty() {
                    return Ok(0);
                }
                buf[0] = self.0[self.1];
                self.1 += 1;
                Ok(1)
            }
        }
        let mut t = Trickle([bytes.clone(), Msg::init().encode()].concat(), 0);
        assert_eq!(Msg::read_from(&mut t).unwrap(), Some(m));
        let init = Msg::read_from(&mut t).unwrap().unwrap();
        assert_eq!(check_init(&init), Ok(VERSION));
        assert_eq!(Msg::read_from(&mut t).unwrap(), None);
    }

    #[test]
    fn rejects_truncated_and_oversized() {
        let bytes = Msg::new(ATR, 0, vec![0x3B, 0]).encode();
        assert!(Msg::read_from(&mut &bytes[..5]).is_err());
        assert!(Msg::read_from(&mut &bytes[..13]).is_err());
        let mut huge = Msg::new(APDU, 0, vec![]).encode();
        huge[8..12].copy_from_slice(&0x0100_0000u32.to_be_bytes());
        assert!(Msg::read_from(&mut huge.as_slice()).is_err());
        assert!(check_init(&Msg::new(INIT, 0, b"XXXX\0\0\0\x02".to_vec())).is_err());
        assert_eq!(Msg::error(0, GENERAL_ERROR).error_code(), Some(1));
    }
}
