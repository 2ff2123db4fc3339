//! PCR arithmetic and what Heads extends: the expected PCR4 after a clean USB boot.
//!
//! A PCR is extended as `E(p, d) = H(p || d)`, in the bank's own hash. Heads measures with
//! `tpmr extend -ix 4 -ic <string>`, i.e. it extends the hash of the string (no newline).

use sha1::Sha1;
use sha2::{Digest, Sha256};

/// A PCR bank: TPM2 chips keep SHA-256 (and usually SHA-1); TPM1.2 chips only SHA-1.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Bank {
    Sha1,
    Sha256,
}

impl Bank {
    pub const ALL: [Bank; 2] = [Bank::Sha256, Bank::Sha1];

    pub fn digest_len(self) -> usize {
        match self {
            Bank::Sha1 => 20,
            Bank::Sha256 => 32,
        }
    }

    /// The name Linux uses in `/sys/class/tpm/tpm0/pcr-<name>/`.
    pub fn name(self) -> &'static str {
        match self {
            Bank::Sha1 => "sha1",
            Bank::Sha256 => "sha256",
        }
    }

    /// The bank's hash of `data`.
    pub fn hash(self, data: &[u8]) -> Vec<u8> {
        match self {
            Bank::Sha1 => Sha1::digest(data).to_vec(),
            Bank::Sha256 => Sha256::digest(data).to_vec(),
        }
    }
}

/// A PCR after reset (localities 0-2): all zero bytes.
pub fn zero(bank: Bank) -> Vec<u8> {
    vec![0; bank.digest_len()]
}

/// `H(pcr || digest)` in the bank's hash: what the TPM does on TPM2_PCR_Extend / TPM_Extend.
pub fn extend(bank: Bank, pcr: &[u8], digest: &[u8]) -> Vec<u8> {
    let mut buf = Vec::with_capacity(pcr.len() + digest.len());
    buf.extend_from_slice(pcr);
    buf.extend_from_slice(digest);
    bank.hash(&buf)
}

/// What Heads extends into PCR4 on a clean USB/ISO boot, in order: `usb` from `usb-init`, then
/// `generic` from `kexec-select-boot` just before kexec. A `recovery` extend (recovery shell)
/// or a retried boot changes the value, which is the point.
pub const HEADS_USB_BOOT_PCR4_EXTENDS: [&str; 2] = ["usb", "generic"];

/// PCR4 as Heads leaves it after a USB boot, starting from `start` (zero under coreboot+Heads;
/// the firmware's own value under SeaBIOS in QEMU): `E(E(start, H("usb")), H("generic"))`.
pub fn heads_usb_boot_pcr4(bank: Bank, start: &[u8]) -> Vec<u8> {
    HEADS_USB_BOOT_PCR4_EXTENDS
        .iter()
        .fold(start.to_vec(), |p, s| {
            extend(bank, &p, &bank.hash(s.as_bytes()))
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::hex::encode;

    // Computed independently with Python's hashlib:
    //   h = hashlib.sha256 (or hashlib.sha1); u = h(b"usb").digest(); g = h(b"generic").digest()
    //   h(h(z + u).digest() + g).hexdigest()   with z = bytes(32) (bytes(20)), or bytes(range(n))
    // and cross-checked with sha256sum/sha1sum over `xxd -r -p` of the concatenations.
    const SHA256_USB: &str = "04b961957b4302de0ec524dd4d50749faea13f0d189721daf44dc67e0c88490d";
    const SHA256_GENERIC: &str = "3a2e8954befdbd6e7eac2f10d4301a2923cd65a5f38bf80914019b55a03f78c4";
    const SHA256_PCR4_FROM_ZERO: &str =
        "bd6d4e413f2b44119bd0b4bc7060fe415c5c23c51a96f370c240f78a6dca21c3";
    const SHA256_PCR4_FROM_COUNTING: &str =
        "6cdc1b0636d04e66d8230ef1def55980030cd92b8c91a864b8732ef5dd19cee4";
    const SHA1_USB: &str = "c950059e02a519e254e1bcfeed662e5691e79cdb";
    const SHA1_GENERIC: &str = "46a808cfd5beafa5e60aefee867bf92025dc2849";
    const SHA1_PCR4_FROM_ZERO: &str = "80b0b64ebe62878af530af531fb061d006a417ec";
    const SHA1_PCR4_FROM_COUNTING: &str = "ab939c5233ded6a9d624f9970b92cce9004738ea";

    #[test]
    fn string_digests() {
        assert_eq!(encode(&Bank::Sha256.hash(b"usb")), SHA256_USB);
        assert_eq!(encode(&Bank::Sha256.hash(b"generic")), SHA256_GENERIC);
        assert_eq!(encode(&Bank::Sha1.hash(b"usb")), SHA1_USB);
        assert_eq!(encode(&Bank::Sha1.hash(b"generic")), SHA1_GENERIC);
    }

    #[test]
    fn pcr4_after_a_heads_usb_boot() {
        let s = Bank::Sha256;
        assert_eq!(
            encode(&heads_usb_boot_pcr4(s, &zero(s))),
            SHA256_PCR4_FROM_ZERO
        );
        let b = Bank::Sha1;
        assert_eq!(
            encode(&heads_usb_boot_pcr4(b, &zero(b))),
            SHA1_PCR4_FROM_ZERO
        );
    }

    #[test]
    fn pcr4_from_a_firmware_value() {
        for (bank, want) in [
            (Bank::Sha256, SHA256_PCR4_FROM_COUNTING),
            (Bank::Sha1, SHA1_PCR4_FROM_COUNTING),
        ] {
            let start: Vec<u8> = (0..bank.digest_len() as u8).collect();
            assert_eq!(encode(&heads_usb_boot_pcr4(bank, &start)), want);
        }
    }

    #[test]
    fn extend_is_hash_of_concatenation() {
        let b = Bank::Sha256;
        let d = b.hash(b"usb");
        assert_eq!(extend(b, &zero(b), &d), b.hash(&[zero(b), d].concat()));
        assert_eq!(zero(Bank::Sha1).len(), 20);
        assert_eq!(Bank::Sha256.name(), "sha256");
    }
}
