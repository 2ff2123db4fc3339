#![forbid(unsafe_code)]
//! The Authenticode SHA-256 of a PE/COFF image (Microsoft's "Windows Authenticode Portable
//! Executable Signature Format"): the digest UEFI firmware extends into PCR 4 when it starts an
//! EFI application (TCG PC Client Platform Firmware Profile, `EV_EFI_BOOT_SERVICES_APPLICATION`).
//! The build records it in the manifest so the witnesses can find the kernel in the firmware's
//! event log.
//!
//! What is hashed: the headers up to `SizeOfHeaders` without the checksum field and without the
//! certificate-table directory entry; then each section's raw data in file order; then whatever
//! follows the last section, minus an attached certificate table.

use sha2::{Digest, Sha256};

#[derive(Debug, PartialEq, Eq)]
pub enum PeError {
    NotPe(&'static str),
    /// A header field points outside the file.
    OutOfBounds(&'static str),
}

impl std::fmt::Display for PeError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            PeError::NotPe(why) => write!(f, "not a PE/COFF image: {why}"),
            PeError::OutOfBounds(what) => write!(f, "PE/COFF {what} points outside the file"),
        }
    }
}

fn u16_at(b: &[u8], at: usize, what: &'static str) -> Result<usize, PeError> {
    b.get(at..at + 2)
        .map(|s| u16::from_le_bytes([s[0], s[1]]) as usize)
        .ok_or(PeError::OutOfBounds(what))
}

fn u32_at(b: &[u8], at: usize, what: &'static str) -> Result<usize, PeError> {
    b.get(at..at + 4)
        .map(|s| u32::from_le_bytes([s[0], s[1], s[2], s[3]]) as usize)
        .ok_or(PeError::OutOfBounds(what))
}

fn part<'a>(b: &'a [u8], from: usize, to: usize, what: &'static str) -> Result<&'a [u8], PeError> {
    b.get(from..to).ok_or(PeError::OutOfBounds(what))
}

pub fn authenticode_sha256(pe: &[u8]) -> Result<[u8; 32], PeError> {
    if pe.get(..2) != Some(b"MZ") {
        return Err(PeError::NotPe("no MZ header"));
    }
    let nt = u32_at(pe, 0x3C, "e_lfanew")?;
    if pe.get(nt..nt + 4) != Some(b"PE\0\0") {
        return Err(PeError::NotPe("no PE signature where e_lfanew points"));
    }
    let coff = nt + 4;
    let sections = u16_at(pe, coff + 2, "NumberOfSections")?;
    let optional_size = u16_at(pe, coff + 16, "SizeOfOptionalHeader")?;
    let opt = coff + 20;
    // PE32 and PE32+ differ in where the data directories start.
    let (count_at, dirs_at) = match u16_at(pe, opt, "optional header magic")? {
        0x10B => (opt + 92, opt + 96),
        0x20B => (opt + 108, opt + 112),
        _ => {
            return Err(PeError::NotPe(
                "optional header magic is neither PE32 nor PE32+",
            ));
        }
    };
    let size_of_headers = u32_at(pe, opt + 60, "SizeOfHeaders")?;
    let checksum = opt + 64;
    let directories = u32_at(pe, count_at, "NumberOfRvaAndSizes")?;

    let mut h = Sha256::new();
    h.update(part(pe, 0, checksum, "checksum")?);
    // Directory 4 is the certificate table: excluded so that signing does not change the hash.
    let cert = (directories > 4).then_some(dirs_at + 4 * 8);
    // The table itself is appended at the end of the file; only its size matters here.
    let cert_size = match cert {
        Some(at) => {
            h.update(part(pe, checksum + 4, at, "certificate directory")?);
            h.update(part(pe, at + 8, size_of_headers, "SizeOfHeaders")?);
            u32_at(pe, at + 4, "certificate table")?
        }
        None => {
            h.update(part(pe, checksum + 4, size_of_headers, "SizeOfHeaders")?);
            0
        }
    };

    let table = opt + optional_size;
    let mut raw = Vec::with_capacity(sections);
    for i in 0..sections {
        let s = table + i * 40;
        let size = u32_at(pe, s + 16, "SizeOfRawData")?;
        let at = u32_at(pe, s + 20, "PointerToRawData")?;
        if size > 0 {
            raw.push((at, size));
        }
    }
    raw.sort_unstable();
    let mut hashed = size_of_headers;
    for (at, size) in raw {
        h.update(part(pe, at, at + size, "section data")?);
        hashed += size;
    }
    if pe.len() > hashed + cert_size {
        h.update(part(pe, hashed, pe.len() - cert_size, "trailing data")?);
    }
    Ok(h.finalize().into())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A minimal PE32+ with two sections and 16 data directories, built field by field.
    fn sample(cert: Option<&[u8]>) -> Vec<u8> {
        let mut b = vec![0u8; 0x400];
        b[..2].copy_from_slice(b"MZ");
        b[0x3C..0x40].copy_from_slice(&0x80u32.to_le_bytes());
        b[0x80..0x84].copy_from_slice(b"PE\0\0");
        let coff = 0x84;
        b[coff..coff + 2].copy_from_slice(&0x8664u16.to_le_bytes());
        b[coff + 2..coff + 4].copy_from_slice(&2u16.to_le_bytes());
        b[coff + 16..coff + 18].copy_from_slice(&240u16.to_le_bytes());
        let opt = coff + 20;
        b[coff + 18..coff + 20].copy_from_slice(&0x22u16.to_le_bytes()); // executable
        b[opt..opt + 2].copy_from_slice(&0x20Bu16.to_le_bytes());
        b[opt + 32..opt + 36].copy_from_slice(&0x1000u32.to_le_bytes()); // SectionAlignment
        b[opt + 36..opt + 40].copy_from_slice(&0x200u32.to_le_bytes()); // FileAlignment
        b[opt + 56..opt + 60].copy_from_slice(&0x3000u32.to_le_bytes()); // SizeOfImage
        b[opt + 68..opt + 70].copy_from_slice(&10u16.to_le_bytes()); // EFI application
        b[opt + 60..opt + 64].copy_from_slice(&0x200u32.to_le_bytes());
        b[opt + 64..opt + 68].copy_from_slice(&0xDEADBEEFu32.to_le_bytes());
        b[opt + 108..opt + 112].copy_from_slice(&16u32.to_le_bytes());
        let table = opt + 240;
        // Second section first in the table: hashing follows file order, not table order.
        for (i, (at, size)) in [(0x300u32, 0x100u32), (0x200, 0x100)].iter().enumerate() {
            let s = table + i * 40;
            b[s..s + 5].copy_from_slice(if i == 0 { b".data" } else { b".text" });
            b[s + 8..s + 12].copy_from_slice(&size.to_le_bytes());
            b[s + 12..s + 16].copy_from_slice(&(0x1000 * (2 - i as u32)).to_le_bytes());
            b[s + 16..s + 20].copy_from_slice(&size.to_le_bytes());
            b[s + 20..s + 24].copy_from_slice(&at.to_le_bytes());
        }
        for (i, x) in b[0x200..0x400].iter_mut().enumerate() {
            *x = i as u8;
        }
        b.extend_from_slice(b"trailing");
        if let Some(c) = cert {
            let at = b.len() as u32;
            let d = opt + 112 + 4 * 8;
            b[d..d + 4].copy_from_slice(&at.to_le_bytes());
            b[d + 4..d + 8].copy_from_slice(&(c.len() as u32).to_le_bytes());
            b.extend_from_slice(c);
        }
        b
    }

    #[test]
    fn checksum_and_certificate_do_not_change_the_hash_but_everything_else_does() {
        let plain = sample(None);
        let h = authenticode_sha256(&plain).unwrap();
        let mut other_checksum = plain.clone();
        other_checksum[0x84 + 20 + 64] ^= 0xFF;
        assert_eq!(authenticode_sha256(&other_checksum).unwrap(), h);
        // Signing adds a certificate table and its directory entry; the hash stays.
        assert_eq!(
            authenticode_sha256(&sample(Some(b"a signature"))).unwrap(),
            h
        );
        for at in [0x10, 0x250, 0x350, plain.len() - 1] {
            let mut changed = plain.clone();
            changed[at] ^= 1;
            assert_ne!(authenticode_sha256(&changed).unwrap(), h, "byte {at:#x}");
        }
    }

    /// pesign (Red Hat's, in C over NSS) computes the same digest.
    #[test]
    fn pesign_agrees() {
        let probe = std::process::Command::new("sh")
            .args(["-c", "command -v pesign"])
            .output()
            .unwrap();
        assert!(
            probe.status.success(),
            "pesign checks the Authenticode hash independently: apt-get install pesign \
             (scripts/setup does)"
        );
        for pe in [sample(None), sample(Some(&[7u8; 24]))] {
            let f = tempfile::NamedTempFile::new().unwrap();
            std::fs::write(f.path(), &pe).unwrap();
            let out = std::process::Command::new("pesign")
                .args(["-h", "-i"])
                .arg(f.path())
                .output()
                .unwrap();
            let text = String::from_utf8_lossy(&out.stdout);
            assert!(
                out.status.success(),
                "{text}{}",
                String::from_utf8_lossy(&out.stderr)
            );
            assert!(
                text.contains(&hexstr::encode(&authenticode_sha256(&pe).unwrap())),
                "pesign says {text}"
            );
        }
    }

    #[test]
    fn garbage_is_an_error_not_a_panic() {
        assert!(authenticode_sha256(b"").is_err());
        assert!(authenticode_sha256(b"MZ").is_err());
        let mut truncated = sample(None);
        truncated.truncate(0x250);
        assert!(authenticode_sha256(&truncated).is_err());
    }
}
