//! Randomness comes in through one small trait, so the lead can plug in the `entropy` crate's
//! DRBG (a `rand_chacha::ChaCha20Rng`, rand_core 0.10) and tests can use seeded generators.
//! All key material, shares and PINs are drawn from it or derived deterministically.

use core::convert::Infallible;

/// A source of secret random bytes (the ceremony's DRBG).
pub trait SecretRng {
    /// Fills `out` entirely with random bytes.
    fn fill(&mut self, out: &mut [u8]);
}

impl<R: rand_core::CryptoRng + ?Sized> SecretRng for R {
    fn fill(&mut self, out: &mut [u8]) {
        self.fill_bytes(out);
    }
}

/// Presents a [`SecretRng`] as a rand_core `CryptoRng`, for vsss-rs.
pub(crate) struct AsCryptoRng<'a>(pub(crate) &'a mut dyn SecretRng);

impl rand_core::TryRng for AsCryptoRng<'_> {
    type Error = Infallible;

    fn try_next_u32(&mut self) -> Result<u32, Infallible> {
        let mut b = [0u8; 4];
        self.0.fill(&mut b);
        Ok(u32::from_le_bytes(b))
    }

    fn try_next_u64(&mut self) -> Result<u64, Infallible> {
        let mut b = [0u8; 8];
        self.0.fill(&mut b);
        Ok(u64::from_le_bytes(b))
    }

    fn try_fill_bytes(&mut self, dst: &mut [u8]) -> Result<(), Infallible> {
        self.0.fill(dst);
        Ok(())
    }
}

impl rand_core::TryCryptoRng for AsCryptoRng<'_> {}

#[cfg(test)]
pub(crate) mod tests {
    use rand_chacha::ChaCha20Rng;
    use rand_core::SeedableRng;

    /// A deterministic generator for tests.
    pub(crate) fn seeded(seed: u8) -> ChaCha20Rng {
        ChaCha20Rng::from_seed([seed; 32])
    }

    #[test]
    fn chacha_plugs_in() {
        use super::SecretRng;
        let mut a = seeded(1);
        let mut b = seeded(1);
        let mut x = [0u8; 32];
        let mut y = [0u8; 32];
        a.fill(&mut x);
        b.fill(&mut y);
        assert_eq!(x, y);
        assert_ne!(x, [0u8; 32]);
    }
}
