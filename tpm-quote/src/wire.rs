//! Reading TPM structures strictly: big-endian integers and `TPM2B_*` (a 16-bit size and that
//! many bytes), each read named by the field it is, so every error says what and where.

use crate::ParseError;

/// A cursor over one structure's bytes.
pub(crate) struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
    structure: &'static str,
}

impl<'a> Reader<'a> {
    pub(crate) fn new(structure: &'static str, buf: &'a [u8]) -> Self {
        Reader {
            buf,
            pos: 0,
            structure,
        }
    }

    /// Where the next field starts, counted from the structure's first byte.
    pub(crate) fn pos(&self) -> usize {
        self.pos
    }

    /// An error about the field starting at byte `at`.
    pub(crate) fn error_at(&self, field: &'static str, at: usize, problem: String) -> ParseError {
        ParseError {
            structure: self.structure,
            field,
            offset: at,
            problem,
        }
    }

    pub(crate) fn take(&mut self, field: &'static str, n: usize) -> Result<&'a [u8], ParseError> {
        let left = self.buf.len() - self.pos;
        if n > left {
            return Err(self.error_at(
                field,
                self.pos,
                format!("needs {n} bytes but only {left} are left (truncated)"),
            ));
        }
        let out = &self.buf[self.pos..self.pos + n];
        self.pos += n;
        Ok(out)
    }

    pub(crate) fn u8(&mut self, field: &'static str) -> Result<u8, ParseError> {
        Ok(self.take(field, 1)?[0])
    }

    pub(crate) fn u16(&mut self, field: &'static str) -> Result<u16, ParseError> {
        let b = self.take(field, 2)?;
        Ok(u16::from_be_bytes([b[0], b[1]]))
    }

    pub(crate) fn u32(&mut self, field: &'static str) -> Result<u32, ParseError> {
        let b = self.take(field, 4)?;
        Ok(u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
    }

    pub(crate) fn u64(&mut self, field: &'static str) -> Result<u64, ParseError> {
        let b = self.take(field, 8)?;
        let mut a = [0u8; 8];
        a.copy_from_slice(b);
        Ok(u64::from_be_bytes(a))
    }

    /// A `TPM2B_*`: its 16-bit size, then that many bytes.
    pub(crate) fn tpm2b(&mut self, field: &'static str) -> Result<&'a [u8], ParseError> {
        let at = self.pos;
        let n = usize::from(self.u16(field)?);
        let left = self.buf.len() - self.pos;
        if n > left {
            return Err(self.error_at(
                field,
                at,
                format!("its size says {n} bytes but only {left} follow (truncated)"),
            ));
        }
        self.take(field, n)
    }

    /// A 16-bit field that must have one value (an algorithm, a tag).
    pub(crate) fn expect_u16(
        &mut self,
        field: &'static str,
        want: u16,
        want_name: &str,
    ) -> Result<(), ParseError> {
        let at = self.pos;
        let got = self.u16(field)?;
        if got != want {
            return Err(self.error_at(
                field,
                at,
                format!("{got:#06x}, expected {want:#06x} ({want_name})"),
            ));
        }
        Ok(())
    }

    /// The structure must end here: no trailing bytes.
    pub(crate) fn finish(self) -> Result<(), ParseError> {
        let left = self.buf.len() - self.pos;
        if left != 0 {
            return Err(self.error_at(
                "end",
                self.pos,
                format!("{left} trailing bytes after the structure"),
            ));
        }
        Ok(())
    }
}

/// Appends TPM structures to a command buffer.
pub(crate) trait Put {
    fn u8(&mut self, v: u8);
    fn u16(&mut self, v: u16);
    fn u32(&mut self, v: u32);
    /// A `TPM2B_*` of these bytes. Panics above 65535 bytes (never built here).
    fn tpm2b(&mut self, v: &[u8]);
}

impl Put for Vec<u8> {
    fn u8(&mut self, v: u8) {
        self.push(v);
    }
    fn u16(&mut self, v: u16) {
        self.extend_from_slice(&v.to_be_bytes());
    }
    fn u32(&mut self, v: u32) {
        self.extend_from_slice(&v.to_be_bytes());
    }
    fn tpm2b(&mut self, v: &[u8]) {
        self.u16(u16::try_from(v.len()).expect("a TPM2B of at most 65535 bytes"));
        self.extend_from_slice(v);
    }
}
