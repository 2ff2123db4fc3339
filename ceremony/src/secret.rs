//! Wrappers for secret values.
//!
//! None of them implements `Debug`, `Display`, `Clone`, `Serialize` or `PartialEq`: a secret can
//! reach a screen, a log or a second copy only through an explicit, greppable `expose_*` call.
//! All are zeroized on drop. The `assert_not_impl!` block at the end makes adding such a trait a
//! compile error, not a review finding.

use zeroize::{Zeroize, ZeroizeOnDrop, Zeroizing};

use crate::rng::SecretRng;

/// Length of the root secret in bytes (256 bits).
pub const ROOT_SECRET_LEN: usize = 32;

/// The 256-bit root secret everything else is derived from.
#[derive(Zeroize, ZeroizeOnDrop)]
pub struct RootSecret(Box<[u8; ROOT_SECRET_LEN]>);

impl RootSecret {
    /// Draws a fresh root secret from the DRBG.
    pub fn generate(rng: &mut dyn SecretRng) -> Self {
        let mut bytes = Box::new([0u8; ROOT_SECRET_LEN]);
        rng.fill(&mut bytes[..]);
        Self(bytes)
    }

    /// Takes a secret recovered from shares (or a test vector); the source slice is the caller's
    /// to wipe.
    pub fn from_slice(bytes: &[u8]) -> Option<Self> {
        let array: &[u8; ROOT_SECRET_LEN] = bytes.try_into().ok()?;
        Some(Self(Box::new(*array)))
    }

    /// The secret bytes. Only key derivation, splitting and commitments should call this.
    pub fn expose_secret(&self) -> &[u8; ROOT_SECRET_LEN] {
        &self.0
    }

    /// Constant-time equality, for verification without exposing either value.
    pub fn ct_eq(&self, other: &RootSecret) -> bool {
        let mut diff = 0u8;
        for (a, b) in self.0.iter().zip(other.0.iter()) {
            diff |= a ^ b;
        }
        diff == 0
    }
}

/// One Shamir share in the common layout: the x coordinate byte, then one y byte per secret
/// byte.
#[derive(Zeroize, ZeroizeOnDrop)]
pub struct ShareBytes(Vec<u8>);

impl ShareBytes {
    pub(crate) fn new(bytes: Vec<u8>) -> Self {
        Self(bytes)
    }

    /// Takes share bytes parsed from elsewhere (x byte || y bytes).
    pub fn from_slice(bytes: &[u8]) -> Self {
        Self(bytes.to_vec())
    }

    /// The x coordinate (the holder index, 1..=255).
    pub fn x(&self) -> u8 {
        self.0.first().copied().unwrap_or(0)
    }

    /// The share bytes, x || y.
    pub fn expose_secret(&self) -> &[u8] {
        &self.0
    }

    /// An explicit copy, for recombination attempts that consume their inputs.
    pub fn duplicate(&self) -> Self {
        Self(self.0.clone())
    }
}

/// A smart-card PIN (ASCII digits).
#[derive(Zeroize, ZeroizeOnDrop)]
pub struct Pin(String);

impl Pin {
    /// Minimum user PIN (PW1) length in the OpenPGP card specification 3.4.
    pub const USER_MIN: usize = 6;
    /// Minimum admin PIN (PW3) length in the OpenPGP card specification 3.4.
    pub const ADMIN_MIN: usize = 8;
    /// Maximum PIN length in the OpenPGP card specification 3.4 (cards may allow less; 32 is
    /// the smallest maximum we know of in current tokens, and our lengths stay below it).
    pub const MAX: usize = 127;

    /// Draws `len` uniform decimal digits from the DRBG (rejection sampling, no modulo bias).
    pub fn generate(rng: &mut dyn SecretRng, len: usize) -> Self {
        let mut pin = String::with_capacity(len);
        let mut byte = Zeroizing::new([0u8; 1]);
        while pin.len() < len {
            rng.fill(&mut byte[..]);
            // 250 is the largest multiple of 10 that fits in a byte.
            if byte[0] < 250 {
                pin.push(char::from(b'0' + byte[0] % 10));
            }
        }
        Self(pin)
    }

    /// A PIN parsed from a PIN file or given by a test.
    pub fn from_string(pin: String) -> Self {
        Self(pin)
    }

    /// The PIN text; callers must only hand it to a card or into an encrypted PIN file.
    pub fn expose_secret(&self) -> &str {
        &self.0
    }

    /// The number of characters (public: lengths are fixed by this crate).
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Whether the PIN is empty.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

/// The user and admin PIN of one location card.
#[derive(Zeroize, ZeroizeOnDrop)]
pub struct CardPins {
    /// PW1: needed to decrypt.
    pub user: Pin,
    /// PW3: needed to change keys or reset the user PIN.
    pub admin: Pin,
}

impl CardPins {
    /// Length of generated user PINs: 12 digits (~40 bits) against a 3-try retry counter.
    pub const USER_LEN: usize = 12;
    /// Length of generated admin PINs: 16 digits (~53 bits).
    pub const ADMIN_LEN: usize = 16;

    /// Draws both PINs from the DRBG.
    pub fn generate(rng: &mut dyn SecretRng) -> Self {
        Self {
            user: Pin::generate(rng, Self::USER_LEN),
            admin: Pin::generate(rng, Self::ADMIN_LEN),
        }
    }
}

/// An X25519 shared secret computed by a card.
#[derive(Zeroize, ZeroizeOnDrop)]
pub struct SharedSecret(Box<[u8; 32]>);

impl SharedSecret {
    /// Wraps the 32 bytes a card returned for an ECDH operation.
    pub fn new(bytes: [u8; 32]) -> Self {
        Self(Box::new(bytes))
    }

    /// The shared secret, for the session-key unwrap.
    pub fn expose_secret(&self) -> &[u8; 32] {
        &self.0
    }
}

/// Fails to compile if `$t` implements `$trait`: with an implementation, two blanket impls
/// apply and the inferred type parameter is ambiguous.
macro_rules! assert_not_impl {
    ($t:ty: $($trait:path),+) => {
        $(
            const _: fn() = || {
                trait AmbiguousIfImpl<A> {
                    fn some_item() {}
                }
                impl<T: ?Sized> AmbiguousIfImpl<()> for T {}
                #[allow(dead_code)]
                struct Invalid;
                impl<T: ?Sized + $trait> AmbiguousIfImpl<Invalid> for T {}
                let _ = <$t as AmbiguousIfImpl<_>>::some_item;
            };
        )+
    };
}

assert_not_impl!(RootSecret: core::fmt::Debug, core::fmt::Display, Clone, PartialEq, serde::Serialize);
assert_not_impl!(ShareBytes: core::fmt::Debug, core::fmt::Display, Clone, PartialEq, serde::Serialize);
assert_not_impl!(Pin: core::fmt::Debug, core::fmt::Display, Clone, PartialEq, serde::Serialize);
assert_not_impl!(CardPins: core::fmt::Debug, core::fmt::Display, Clone, PartialEq, serde::Serialize);
assert_not_impl!(crate::envelope::Envelope: core::fmt::Debug, core::fmt::Display, Clone, PartialEq, serde::Serialize);
assert_not_impl!(crate::keys::RootKey: core::fmt::Debug, core::fmt::Display, Clone, PartialEq, serde::Serialize);
assert_not_impl!(crate::keys::LocationKey: core::fmt::Debug, core::fmt::Display, Clone, PartialEq, serde::Serialize);
assert_not_impl!(crate::pinfile::PinFile: core::fmt::Debug, core::fmt::Display, Clone, PartialEq, serde::Serialize);
assert_not_impl!(crate::ceremony::Keyed: core::fmt::Debug, core::fmt::Display, Clone, PartialEq, serde::Serialize);
assert_not_impl!(crate::ceremony::Sealed: core::fmt::Debug, core::fmt::Display, Clone, PartialEq, serde::Serialize);
assert_not_impl!(crate::ceremony::Provisioned: core::fmt::Debug, core::fmt::Display, Clone, PartialEq, serde::Serialize);
assert_not_impl!(crate::ceremony::Verified: core::fmt::Debug, core::fmt::Display, Clone, PartialEq, serde::Serialize);
assert_not_impl!(crate::recombine::Recovered: core::fmt::Debug, core::fmt::Display, Clone, PartialEq, serde::Serialize);
assert_not_impl!(crate::flow::Flow: core::fmt::Debug, core::fmt::Display, Clone, PartialEq, serde::Serialize);
assert_not_impl!(SharedSecret: core::fmt::Debug, core::fmt::Display, Clone, PartialEq, serde::Serialize);

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rng::tests::seeded;

    #[test]
    fn pins_are_digits_within_card_limits() {
        let mut rng = seeded(7);
        for _ in 0..50 {
            let pins = CardPins::generate(&mut rng);
            assert_eq!(pins.user.len(), CardPins::USER_LEN);
            assert_eq!(pins.admin.len(), CardPins::ADMIN_LEN);
            assert!(pins.user.len() >= Pin::USER_MIN && pins.user.len() <= Pin::MAX);
            assert!(pins.admin.len() >= Pin::ADMIN_MIN && pins.admin.len() <= Pin::MAX);
            assert!(
                pins.user
                    .expose_secret()
                    .bytes()
                    .all(|b| b.is_ascii_digit())
            );
            assert!(
                pins.admin
                    .expose_secret()
                    .bytes()
                    .all(|b| b.is_ascii_digit())
            );
        }
    }

    #[test]
    fn pin_digits_are_roughly_uniform() {
        let mut rng = seeded(8);
        let mut counts = [0u32; 10];
        let pin = Pin::generate(&mut rng, 20_000);
        for b in pin.expose_secret().bytes() {
            counts[usize::from(b - b'0')] += 1;
        }
        // Expected 2000 each; 5 sigma is about 212.
        for c in counts {
            assert!((1788..=2212).contains(&c), "digit counts {counts:?}");
        }
    }

    #[test]
    fn root_secret_from_slice_checks_length() {
        assert!(RootSecret::from_slice(&[1u8; 31]).is_none());
        let a = RootSecret::from_slice(&[1u8; 32]).unwrap();
        let b = RootSecret::from_slice(&[1u8; 32]).unwrap();
        let c = RootSecret::from_slice(&[2u8; 32]).unwrap();
        assert!(a.ct_eq(&b));
        assert!(!a.ct_eq(&c));
    }
}
