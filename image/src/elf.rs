//! Checks that `/init` is a static position-independent executable: it must run with no dynamic
//! loader and no shared library in the image, and PIE keeps ASLR.

use std::fmt;

#[derive(Debug, PartialEq, Eq)]
pub enum Linkage {
    StaticPie,
    /// Static but not position-independent (ET_EXEC).
    StaticNoPie,
    /// Asks for a program interpreter or shared libraries.
    Dynamic(String),
}

impl fmt::Display for Linkage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Linkage::StaticPie => write!(f, "static-pie"),
            Linkage::StaticNoPie => write!(f, "static, not PIE"),
            Linkage::Dynamic(why) => write!(f, "dynamically linked ({why})"),
        }
    }
}

const PT_DYNAMIC: u32 = 2;
const PT_INTERP: u32 = 3;
const DT_NULL: u64 = 0;
const DT_NEEDED: u64 = 1;
const DT_FLAGS_1: u64 = 0x6fff_fffb;
const DF_1_PIE: u64 = 0x0800_0000;

fn u16le(b: &[u8], o: usize) -> Option<u16> {
    Some(u16::from_le_bytes(b.get(o..o + 2)?.try_into().ok()?))
}
fn u32le(b: &[u8], o: usize) -> Option<u32> {
    Some(u32::from_le_bytes(b.get(o..o + 4)?.try_into().ok()?))
}
fn u64le(b: &[u8], o: usize) -> Option<u64> {
    Some(u64::from_le_bytes(b.get(o..o + 8)?.try_into().ok()?))
}

/// Classifies an x86-64 little-endian ELF executable. `Err` says why it is not one.
pub fn linkage(b: &[u8]) -> Result<Linkage, String> {
    if b.get(..4) != Some(b"\x7fELF") {
        return Err("not an ELF file".into());
    }
    if b.get(4) != Some(&2) || b.get(5) != Some(&1) {
        return Err("not a 64-bit little-endian ELF file".into());
    }
    let bad = || "truncated ELF header".to_string();
    let e_type = u16le(b, 16).ok_or_else(bad)?;
    let phoff = u64le(b, 32).ok_or_else(bad)? as usize;
    let phentsize = u16le(b, 54).ok_or_else(bad)? as usize;
    let phnum = u16le(b, 56).ok_or_else(bad)? as usize;
    if phentsize < 56 {
        return Err("program header entries too small".into());
    }
    let mut dynamic = None;
    for i in 0..phnum {
        let o = phoff + i * phentsize;
        let p_type = u32le(b, o).ok_or("truncated program headers")?;
        match p_type {
            PT_INTERP => {
                return Ok(Linkage::Dynamic(
                    "has a PT_INTERP program interpreter".into(),
                ));
            }
            PT_DYNAMIC => {
                let off = u64le(b, o + 8).ok_or("truncated program headers")? as usize;
                let size = u64le(b, o + 32).ok_or("truncated program headers")? as usize;
                dynamic = Some((off, size));
            }
            _ => {}
        }
    }
    match (e_type, dynamic) {
        (2, _) => Ok(Linkage::StaticNoPie),
        (3, None) => Err("ET_DYN without a dynamic section (a shared object?)".into()),
        (3, Some((off, size))) => {
            let mut pie = false;
            for i in 0..size / 16 {
                let tag = u64le(b, off + 16 * i).ok_or("truncated dynamic section")?;
                let val = u64le(b, off + 16 * i + 8).ok_or("truncated dynamic section")?;
                match tag {
                    DT_NULL => break,
                    DT_NEEDED => {
                        return Ok(Linkage::Dynamic("needs a shared library".into()));
                    }
                    DT_FLAGS_1 if val & DF_1_PIE != 0 => pie = true,
                    _ => {}
                }
            }
            if pie {
                Ok(Linkage::StaticPie)
            } else {
                Err("ET_DYN without DF_1_PIE: a shared object, not an executable".into())
            }
        }
        (t, _) => Err(format!("ELF type {t} is not an executable")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_binaries_are_classified() {
        // The test binary itself is a dynamically linked glibc PIE.
        let me = std::fs::read(std::env::current_exe().unwrap()).unwrap();
        assert!(matches!(linkage(&me), Ok(Linkage::Dynamic(_))));
        assert!(linkage(b"#!/bin/sh\n").is_err());
        assert!(linkage(&me[..40]).is_err());
    }

    #[test]
    fn hand_made_static_pie() {
        // ELF header + one PT_DYNAMIC header + a dynamic section with DT_FLAGS_1 = PIE.
        let mut b = vec![0u8; 64 + 56 + 32];
        b[..4].copy_from_slice(b"\x7fELF");
        b[4] = 2;
        b[5] = 1;
        b[16..18].copy_from_slice(&3u16.to_le_bytes());
        b[32..40].copy_from_slice(&64u64.to_le_bytes());
        b[54..56].copy_from_slice(&56u16.to_le_bytes());
        b[56..58].copy_from_slice(&1u16.to_le_bytes());
        b[64..68].copy_from_slice(&PT_DYNAMIC.to_le_bytes());
        b[72..80].copy_from_slice(&120u64.to_le_bytes());
        b[96..104].copy_from_slice(&32u64.to_le_bytes());
        b[120..128].copy_from_slice(&DT_FLAGS_1.to_le_bytes());
        b[128..136].copy_from_slice(&DF_1_PIE.to_le_bytes());
        assert_eq!(linkage(&b), Ok(Linkage::StaticPie));
        // The same with DT_NEEDED is dynamic.
        b[120..128].copy_from_slice(&DT_NEEDED.to_le_bytes());
        assert!(matches!(linkage(&b), Ok(Linkage::Dynamic(_))));
        // ET_EXEC is static but not PIE.
        b[16..18].copy_from_slice(&2u16.to_le_bytes());
        assert_eq!(linkage(&b), Ok(Linkage::StaticNoPie));
    }
}
