//! Randomness comes in through one small trait, so the lead can plug in the `entropy` crate's
//! DRBG (a `rand_chacha::ChaCha20Rng`, rand_core 0.10) and tests can use seeded generators.
//! All key material, shares and PINs are drawn from it or derived deterministically.

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
