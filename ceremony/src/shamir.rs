//! Shamir M-of-N over GF(256) with vsss-rs, in the common share layout: one x byte (1..=N, the
//! holder index) followed by one y byte per secret byte, as keyfork, Vault, QuorumOS, sharks and
//! blahaj use, so holders are not locked in to this tool.
//!
//! Every split and every combination runs twice, with vsss-rs and with `shamir-gf256`, a second
//! implementation written apart from it (docs/dual-implementations.md), and is refused with
//! [`ShamirError::ImplementationsDisagree`] unless the two give the same bytes. The split's
//! polynomial coefficients are drawn once, from the DRBG, by vsss-rs; the bytes it drew are kept
//! and handed to the second implementation as coefficients (see [`vsss_coefficients`]).

use core::convert::Infallible;

use vsss_rs::Gf256;
use zeroize::Zeroizing;

use crate::rng::SecretRng;
use crate::secret::{RootSecret, ShareBytes};

/// Why splitting or combining refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[non_exhaustive]
pub enum ShamirError {
    /// The threshold is 0 or larger than the share count.
    #[error(
        "threshold {threshold} of {count} shares is impossible: need 1 <= threshold <= count <= 255"
    )]
    Parameters {
        /// Threshold M asked for.
        threshold: usize,
        /// Share count N asked for.
        count: usize,
    },
    /// Fewer shares were given than the threshold.
    #[error("need at least {need} shares to recombine, got {have}")]
    NotEnoughShares {
        /// Number of shares given.
        have: usize,
        /// Number needed: the threshold (at least 1).
        need: usize,
    },
    /// A share's x byte is 0, the secret's own coordinate.
    #[error("share {position} has x = 0, which is the secret's own coordinate: it is not a share")]
    ZeroIndex {
        /// 1-based position of the share in the input list.
        position: usize,
    },
    /// Two shares have the same x coordinate.
    #[error("shares {first} and {second} both have x = {x}: a duplicate share")]
    DuplicateIndex {
        /// The repeated x coordinate (holder index).
        x: u8,
        /// 1-based position of its first occurrence in the input list.
        first: usize,
        /// 1-based position of its second occurrence.
        second: usize,
    },
    /// A share's length differs from the first share's, or is under 2 bytes (x and one y).
    #[error("share {position} is {len} bytes; the others are {expected}")]
    LengthMismatch {
        /// 1-based position of the share in the input list.
        position: usize,
        /// Its length in bytes, x byte included.
        len: usize,
        /// The first share's length in bytes.
        expected: usize,
    },
    /// A share was asked to be rebuilt at x = 0, the secret's own coordinate.
    #[error("x = 0 is the secret's own coordinate: a share is rebuilt at a holder index, 1..=255")]
    ZeroTarget,
    /// vsss-rs refused the split or the combination; its message.
    #[error("vsss-rs refused: {0}")]
    Library(String),
    /// vsss-rs and the second implementation gave different bytes (or the second refused, or
    /// vsss-rs drew its coefficients other than as [`vsss_coefficients`] reads them): nothing
    /// from this split or combination is used.
    #[error(
        "vsss-rs and {second} disagree on the {operation}: the two Shamir implementations gave different results, so none is used"
    )]
    ImplementationsDisagree {
        /// "split", "combination" or "interpolation".
        operation: &'static str,
        /// The second implementation's name.
        second: &'static str,
    },
}

/// The second Shamir implementation a split or combination is checked against. The only one in
/// the workspace is [`ShamirGf256`], the default of [`split`] and [`combine`]; the trait exists
/// so tests can hand [`split_with`] and [`combine_with`] a wrong one and see them refuse.
pub trait SecondShamir {
    /// Its name, for messages and records.
    fn name(&self) -> &'static str;

    /// Shares with x = `xs` (x byte, then y bytes) of `secret` under polynomials of degree
    /// `threshold - 1` whose coefficients a_1..a_{t-1} for secret byte `i` are
    /// `coefficients[i * (threshold - 1)..(i + 1) * (threshold - 1)]`.
    fn split_with_coefficients(
        &self,
        secret: &[u8],
        threshold: usize,
        coefficients: &[u8],
        xs: &[u8],
    ) -> Result<Vec<Zeroizing<Vec<u8>>>, shamir_gf256::Error>;

    /// The value at x = 0 of the polynomial through all the given shares.
    fn combine(&self, shares: &[&[u8]]) -> Result<Zeroizing<Vec<u8>>, shamir_gf256::Error>;

    /// The values (y bytes) at x = `at` of the polynomials through all the given shares.
    fn interpolate(
        &self,
        shares: &[&[u8]],
        at: u8,
    ) -> Result<Zeroizing<Vec<u8>>, shamir_gf256::Error>;
}

/// The `shamir-gf256` crate: constant-time GF(2^8) arithmetic written independently of vsss-rs.
#[derive(Debug, Clone, Copy, Default)]
pub struct ShamirGf256;

impl SecondShamir for ShamirGf256 {
    fn name(&self) -> &'static str {
        "shamir-gf256"
    }

    fn split_with_coefficients(
        &self,
        secret: &[u8],
        threshold: usize,
        coefficients: &[u8],
        xs: &[u8],
    ) -> Result<Vec<Zeroizing<Vec<u8>>>, shamir_gf256::Error> {
        shamir_gf256::split_with_coefficients(secret, threshold, coefficients, xs)
    }

    fn combine(&self, shares: &[&[u8]]) -> Result<Zeroizing<Vec<u8>>, shamir_gf256::Error> {
        shamir_gf256::combine(shares)
    }

    fn interpolate(
        &self,
        shares: &[&[u8]],
        at: u8,
    ) -> Result<Zeroizing<Vec<u8>>, shamir_gf256::Error> {
        shamir_gf256::interpolate(shares, at)
    }
}

/// What the cross-check of one split or combination compared, for the caller to record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CrossCheck {
    /// The second implementation's name.
    pub second: &'static str,
    /// Values compared byte for byte: the shares of a split, the one secret of a combination.
    pub values: usize,
    /// Bytes compared in all.
    pub bytes: usize,
    /// Polynomial coefficients both implementations used (split only; 0 for a combination).
    pub coefficients: usize,
    /// Bytes vsss-rs drew from the DRBG (split only).
    pub rng_bytes: usize,
}

/// DRBG bytes vsss-rs 6.0.1 consumes per coefficient: one `next_u32`, of which it keeps the low
/// byte (see [`vsss_coefficients`]).
const RNG_BYTES_PER_COEFFICIENT: usize = 4;

/// The coefficients vsss-rs 6.0.1 made of the DRBG bytes it drew for a split, in the order
/// [`SecondShamir::split_with_coefficients`] takes them.
///
/// How vsss-rs draws (read from its source: `Gf256::split_bytes_with_participant_ids_iter`,
/// `Polynomial::fill`, `IdentifierGf256::random_coefficient`, `Gf256::try_random`; pinned by
/// this module's tests and checked again by every split, since a different reading gives
/// different shares): for each secret byte in order, one polynomial, whose coefficients
/// a_1..a_{t-1} are drawn in that order, each by one `next_u32()` truncated to its low byte.
/// Zero is kept (no rejection, no retry); nothing else is drawn. Through [`RecordingRng`] a
/// `u32` is four DRBG bytes little-endian, so its low byte is the first of the four.
pub fn vsss_coefficients(drawn: &[u8]) -> Zeroizing<Vec<u8>> {
    let mut out = Zeroizing::new(Vec::with_capacity(drawn.len() / RNG_BYTES_PER_COEFFICIENT));
    out.extend(
        drawn
            .chunks_exact(RNG_BYTES_PER_COEFFICIENT)
            .map(|four| four[0]),
    );
    out
}

/// The DRBG as vsss-rs sees it (a rand_core `CryptoRng`), keeping a copy of every byte it hands
/// out and counting the calls by kind. The copy's buffer is allocated once, at the size the
/// split should draw, and never grows (a grown `Vec` would leave an unzeroized copy behind):
/// bytes beyond it are counted, not kept, and the cross-check then refuses.
struct RecordingRng<'a> {
    drbg: &'a mut dyn SecretRng,
    kept: Zeroizing<Vec<u8>>,
    drawn: usize,
    u32_calls: usize,
    other_calls: usize,
}

impl<'a> RecordingRng<'a> {
    fn new(drbg: &'a mut dyn SecretRng, expected: usize) -> Self {
        Self {
            drbg,
            kept: Zeroizing::new(Vec::with_capacity(expected)),
            drawn: 0,
            u32_calls: 0,
            other_calls: 0,
        }
    }

    fn draw(&mut self, out: &mut [u8]) {
        self.drbg.fill(out);
        self.drawn += out.len();
        let room = self.kept.capacity() - self.kept.len();
        self.kept.extend_from_slice(&out[..out.len().min(room)]);
    }

    /// Whether vsss-rs drew exactly as [`vsss_coefficients`] reads it: `coefficients` calls of
    /// `next_u32` and nothing else.
    fn drew_as_read(&self, coefficients: usize) -> bool {
        self.other_calls == 0
            && self.u32_calls == coefficients
            && self.drawn == coefficients * RNG_BYTES_PER_COEFFICIENT
            && self.kept.len() == self.drawn
    }
}

impl rand_core::TryRng for RecordingRng<'_> {
    type Error = Infallible;

    fn try_next_u32(&mut self) -> Result<u32, Infallible> {
        self.u32_calls += 1;
        let mut b = Zeroizing::new([0u8; 4]);
        self.draw(&mut b[..]);
        Ok(u32::from_le_bytes(*b))
    }

    fn try_next_u64(&mut self) -> Result<u64, Infallible> {
        self.other_calls += 1;
        let mut b = Zeroizing::new([0u8; 8]);
        self.draw(&mut b[..]);
        Ok(u64::from_le_bytes(*b))
    }

    fn try_fill_bytes(&mut self, dst: &mut [u8]) -> Result<(), Infallible> {
        self.other_calls += 1;
        self.draw(dst);
        Ok(())
    }
}

impl rand_core::TryCryptoRng for RecordingRng<'_> {}

thread_local! {
    /// Combinations on this thread that both implementations agreed on.
    static COMBINATIONS_CHECKED: core::cell::Cell<usize> = const { core::cell::Cell::new(0) };
}

/// How many combinations both implementations have agreed on, on this thread, since it
/// started: a caller takes the difference around its own calls (the ceremony's verify step
/// does, for its `dual.shamir` record) without threading a counter through every function that
/// recombines.
pub fn combinations_checked() -> usize {
    COMBINATIONS_CHECKED.with(core::cell::Cell::get)
}

/// Equal lengths and bytes, without stopping at the first difference.
fn same_bytes(a: &[u8], b: &[u8]) -> bool {
    let mut diff = u8::from(a.len() != b.len());
    for (x, y) in a.iter().zip(b) {
        diff |= x ^ y;
    }
    diff == 0
}

/// Splits the root secret into `count` shares with x = 1..=count, any `threshold` of which
/// recombine. Polynomial coefficients come from the DRBG. Checked against [`ShamirGf256`].
pub fn split(
    secret: &RootSecret,
    threshold: u8,
    count: u8,
    rng: &mut dyn SecretRng,
) -> Result<Vec<ShareBytes>, ShamirError> {
    split_with(secret, threshold, count, rng, &ShamirGf256).map(|(shares, _)| shares)
}

/// [`split`] checked against `second`: vsss-rs splits with coefficients from the DRBG, `second`
/// splits with the same coefficients (the bytes vsss-rs drew, read by [`vsss_coefficients`]),
/// and the shares are returned only if both sets are byte for byte the same.
pub fn split_with(
    secret: &RootSecret,
    threshold: u8,
    count: u8,
    rng: &mut dyn SecretRng,
    second: &dyn SecondShamir,
) -> Result<(Vec<ShareBytes>, CrossCheck), ShamirError> {
    let (t, n) = (usize::from(threshold), usize::from(count));
    if t == 0 || t > n {
        return Err(ShamirError::Parameters {
            threshold: t,
            count: n,
        });
    }
    let disagree = || ShamirError::ImplementationsDisagree {
        operation: "split",
        second: second.name(),
    };
    let bytes = secret.expose_secret();
    let coefficient_count = bytes.len() * (t - 1);
    let (first, coefficients, rng_bytes) = if t == 1 {
        // A degree-0 polynomial: every share carries the secret itself. Only reachable when the
        // plan explicitly allowed it; vsss-rs refuses threshold 1.
        let shares = (1..=count)
            .map(|x| {
                let mut v = Vec::with_capacity(1 + bytes.len());
                v.push(x);
                v.extend_from_slice(bytes);
                ShareBytes::new(v)
            })
            .collect();
        (shares, Zeroizing::new(Vec::new()), 0)
    } else {
        let ids = (1..=count).map(|x| vsss_rs::IdentifierGf256(Gf256(x)));
        let mut recorder = RecordingRng::new(rng, coefficient_count * RNG_BYTES_PER_COEFFICIENT);
        let shares = Gf256::split_bytes_with_participant_ids_iter(t, n, bytes, &mut recorder, ids)
            .map_err(|e| ShamirError::Library(e.to_string()))?;
        let shares: Vec<ShareBytes> = shares.into_iter().map(ShareBytes::new).collect();
        if !recorder.drew_as_read(coefficient_count) {
            return Err(disagree());
        }
        (shares, vsss_coefficients(&recorder.kept), recorder.drawn)
    };
    let xs: Vec<u8> = (1..=count).collect();
    let theirs = second
        .split_with_coefficients(bytes, t, &coefficients, &xs)
        .map_err(|_| disagree())?;
    let mut agree = theirs.len() == first.len();
    let mut compared = 0;
    for (ours, theirs) in first.iter().zip(&theirs) {
        agree &= same_bytes(ours.expose_secret(), theirs);
        compared += theirs.len();
    }
    if !agree {
        return Err(disagree());
    }
    let check = CrossCheck {
        second: second.name(),
        values: first.len(),
        bytes: compared,
        coefficients: coefficients.len(),
        rng_bytes,
    };
    Ok((first, check))
}

/// sherd's own checks before any interpolation: at least `threshold` (and one) shares, equal
/// lengths of at least 2 bytes, no x = 0, no x twice.
fn check_structure(shares: &[&ShareBytes], threshold: u8) -> Result<(), ShamirError> {
    let need = usize::from(threshold).max(1);
    if shares.len() < need {
        return Err(ShamirError::NotEnoughShares {
            have: shares.len(),
            need,
        });
    }
    let expected = shares[0].expose_secret().len();
    let mut seen: [Option<usize>; 256] = [None; 256];
    for (i, s) in shares.iter().enumerate() {
        let bytes = s.expose_secret();
        if bytes.len() != expected || bytes.len() < 2 {
            return Err(ShamirError::LengthMismatch {
                position: i + 1,
                len: bytes.len(),
                expected,
            });
        }
        let x = bytes[0];
        if x == 0 {
            return Err(ShamirError::ZeroIndex { position: i + 1 });
        }
        if let Some(first) = seen[usize::from(x)] {
            return Err(ShamirError::DuplicateIndex {
                x,
                first,
                second: i + 1,
            });
        }
        seen[usize::from(x)] = Some(i + 1);
    }
    Ok(())
}

/// Combines shares by Lagrange interpolation at x = 0. Checks only structure (count, zero or
/// duplicate x, lengths); whether the result is the right secret is for the caller to check
/// against the commitment ([`crate::recombine`] does). Checked against [`ShamirGf256`].
pub fn combine(shares: &[&ShareBytes], threshold: u8) -> Result<Zeroizing<Vec<u8>>, ShamirError> {
    combine_with(shares, threshold, &ShamirGf256).map(|(secret, _)| secret)
}

/// [`combine`] checked against `second`: both interpolate all the shares given, and the result is
/// returned only if the two are byte for byte the same.
pub fn combine_with(
    shares: &[&ShareBytes],
    threshold: u8,
    second: &dyn SecondShamir,
) -> Result<(Zeroizing<Vec<u8>>, CrossCheck), ShamirError> {
    check_structure(shares, threshold)?;
    let disagree = || ShamirError::ImplementationsDisagree {
        operation: "combination",
        second: second.name(),
    };
    let first = if shares.len() == 1 {
        Zeroizing::new(shares[0].expose_secret()[1..].to_vec())
    } else {
        let owned: Zeroizing<Vec<Vec<u8>>> =
            Zeroizing::new(shares.iter().map(|s| s.expose_secret().to_vec()).collect());
        Zeroizing::new(
            Gf256::combine_bytes(&owned[..]).map_err(|e| ShamirError::Library(e.to_string()))?,
        )
    };
    let slices: Vec<&[u8]> = shares.iter().map(|s| s.expose_secret()).collect();
    let theirs = second.combine(&slices).map_err(|_| disagree())?;
    if !same_bytes(&first, &theirs) {
        return Err(disagree());
    }
    COMBINATIONS_CHECKED.with(|c| c.set(c.get() + 1));
    let check = CrossCheck {
        second: second.name(),
        values: 1,
        bytes: theirs.len(),
        coefficients: 0,
        rng_bytes: 0,
    };
    Ok((first, check))
}

/// Rebuilds the share with x = `at` (a holder index) from shares of the same polynomials, by
/// Lagrange interpolation at x = `at` through all the shares given: the share a lost card held,
/// from any `threshold` of the others (the holder's own share among them or not). Checks the
/// structure as [`combine`] does; whether the shares are the right ones is the caller's to
/// check (against the commitment, by recombining with the result). Checked against
/// [`ShamirGf256`].
pub fn interpolate(
    shares: &[&ShareBytes],
    threshold: u8,
    at: u8,
) -> Result<ShareBytes, ShamirError> {
    interpolate_with(shares, threshold, at, &ShamirGf256).map(|(share, _)| share)
}

/// [`interpolate`] checked against `second`; the share is returned only if the two agree byte
/// for byte.
///
/// vsss-rs interpolates only at x = 0, so it is given the shares moved by `at`: in GF(2^8)
/// addition is XOR, so the polynomials q(x) = p(x XOR `at`) pass through (x_j XOR `at`, y_j)
/// and q(0) = p(`at`). When `at` is one of the shares' x the polynomials pass through that
/// share, which is the result (vsss-rs is not asked: its x would be 0); `second` interpolates
/// at `at` directly, with its own Lagrange weights, in every case.
pub fn interpolate_with(
    shares: &[&ShareBytes],
    threshold: u8,
    at: u8,
    second: &dyn SecondShamir,
) -> Result<(ShareBytes, CrossCheck), ShamirError> {
    if at == 0 {
        return Err(ShamirError::ZeroTarget);
    }
    check_structure(shares, threshold)?;
    let disagree = || ShamirError::ImplementationsDisagree {
        operation: "interpolation",
        second: second.name(),
    };
    let own = shares.iter().find(|s| s.x() == at);
    let first: Zeroizing<Vec<u8>> = match (own, shares) {
        (Some(s), _) => Zeroizing::new(s.expose_secret()[1..].to_vec()),
        (None, [one]) => Zeroizing::new(one.expose_secret()[1..].to_vec()),
        (None, _) => {
            let moved: Zeroizing<Vec<Vec<u8>>> = Zeroizing::new(
                shares
                    .iter()
                    .map(|s| {
                        let mut v = s.expose_secret().to_vec();
                        v[0] ^= at;
                        v
                    })
                    .collect(),
            );
            Zeroizing::new(
                Gf256::combine_bytes(&moved[..])
                    .map_err(|e| ShamirError::Library(e.to_string()))?,
            )
        }
    };
    let slices: Vec<&[u8]> = shares.iter().map(|s| s.expose_secret()).collect();
    let theirs = second.interpolate(&slices, at).map_err(|_| disagree())?;
    if !same_bytes(&first, &theirs) {
        return Err(disagree());
    }
    let mut share = Vec::with_capacity(1 + first.len());
    share.push(at);
    share.extend_from_slice(&first);
    let check = CrossCheck {
        second: second.name(),
        values: 1,
        bytes: theirs.len(),
        coefficients: 0,
        rng_bytes: 0,
    };
    Ok((ShareBytes::new(share), check))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rng::tests::seeded;
    use proptest::prelude::*;

    fn secret(seed: u8) -> RootSecret {
        RootSecret::generate(&mut seeded(seed))
    }

    /// All k-subsets of 0..n, in lexicographic order.
    pub(crate) fn subsets(n: usize, k: usize) -> Vec<Vec<usize>> {
        let mut out = Vec::new();
        let mut idx: Vec<usize> = (0..k).collect();
        loop {
            out.push(idx.clone());
            let mut i = k;
            while i > 0 && idx[i - 1] == n - k + i - 1 {
                i -= 1;
            }
            if i == 0 {
                return out;
            }
            idx[i - 1] += 1;
            for j in i..k {
                idx[j] = idx[j - 1] + 1;
            }
        }
    }

    #[test]
    fn layout_is_x_then_y() {
        let s = secret(1);
        let shares = split(&s, 3, 5, &mut seeded(2)).unwrap();
        for (i, sh) in shares.iter().enumerate() {
            assert_eq!(sh.expose_secret().len(), 33);
            assert_eq!(usize::from(sh.x()), i + 1);
        }
    }

    #[test]
    fn every_m_subset_recombines_and_no_smaller_one_does() {
        for (m, n) in [(2u8, 2u8), (2, 3), (3, 5), (4, 7), (5, 5)] {
            let s = secret(m ^ n);
            let shares = split(&s, m, n, &mut seeded(n)).unwrap();
            for subset in subsets(usize::from(n), usize::from(m)) {
                let picked: Vec<&ShareBytes> = subset.iter().map(|&i| &shares[i]).collect();
                let got = combine(&picked, m).unwrap();
                assert_eq!(
                    &got[..],
                    &s.expose_secret()[..],
                    "subset {subset:?} of {m}-of-{n}"
                );
            }
            for subset in subsets(usize::from(n), usize::from(m) - 1) {
                let picked: Vec<&ShareBytes> = subset.iter().map(|&i| &shares[i]).collect();
                assert_eq!(
                    combine(&picked, m).unwrap_err(),
                    ShamirError::NotEnoughShares {
                        have: usize::from(m) - 1,
                        need: usize::from(m)
                    }
                );
                if m > 2 {
                    // Interpolating M-1 points anyway gives a different value, not the secret.
                    let got = combine(&picked, m - 1).unwrap();
                    assert_ne!(&got[..], &s.expose_secret()[..]);
                }
            }
        }
    }

    #[test]
    fn threshold_one_is_the_secret() {
        let s = secret(9);
        let shares = split(&s, 1, 3, &mut seeded(3)).unwrap();
        for sh in &shares {
            assert_eq!(&combine(&[sh], 1).unwrap()[..], &s.expose_secret()[..]);
        }
    }

    #[test]
    fn structural_rejections() {
        let s = secret(4);
        let shares = split(&s, 2, 3, &mut seeded(5)).unwrap();
        assert_eq!(
            combine(&[&shares[0], &shares[0]], 2).unwrap_err(),
            ShamirError::DuplicateIndex {
                x: 1,
                first: 1,
                second: 2
            }
        );
        let mut zero = shares[1].expose_secret().to_vec();
        zero[0] = 0;
        let zero = ShareBytes::from_slice(&zero);
        assert_eq!(
            combine(&[&shares[0], &zero], 2).unwrap_err(),
            ShamirError::ZeroIndex { position: 2 }
        );
        let short = ShareBytes::from_slice(&shares[1].expose_secret()[..20]);
        assert_eq!(
            combine(&[&shares[0], &short], 2).unwrap_err(),
            ShamirError::LengthMismatch {
                position: 2,
                len: 20,
                expected: 33
            }
        );
        assert!(matches!(
            split(&s, 4, 3, &mut seeded(1)),
            Err(ShamirError::Parameters { .. })
        ));
        assert!(matches!(
            split(&s, 0, 3, &mut seeded(1)),
            Err(ShamirError::Parameters { .. })
        ));
    }

    /// GF(256) with the AES polynomial, written independently of both libraries.
    fn gf_mul(mut a: u8, mut b: u8) -> u8 {
        let mut p = 0u8;
        while b != 0 {
            if b & 1 != 0 {
                p ^= a;
            }
            let hi = a & 0x80;
            a <<= 1;
            if hi != 0 {
                a ^= 0x1b;
            }
            b >>= 1;
        }
        p
    }

    fn gf_inv(a: u8) -> u8 {
        (1..=255u8)
            .find(|&b| gf_mul(a, b) == 1)
            .expect("nonzero has an inverse")
    }

    /// Lagrange interpolation of points (x_i, y_i) evaluated at `at`.
    fn interpolate(points: &[(u8, u8)], at: u8) -> u8 {
        let mut acc = 0u8;
        for (i, &(xi, yi)) in points.iter().enumerate() {
            let mut term = yi;
            for (j, &(xj, _)) in points.iter().enumerate() {
                if i != j {
                    term = gf_mul(term, gf_mul(at ^ xj, gf_inv(xi ^ xj)));
                }
            }
            acc ^= term;
        }
        acc
    }

    /// blahaj (and sharks, and so keyfork) share our byte layout but compute in GF(2^8) modulo
    /// 0x11d, while vsss-rs (and Vault) use the AES polynomial 0x11b: shares do not move between
    /// the two families. With x = {1, 2} the Lagrange weights need 1/3, which differs between the
    /// fields, so blahaj gets a wrong secret from our shares. (For some x sets, e.g. {1, 2, 3}, no
    /// reduction happens and both agree by accident.) Pinned so a change on either side is
    /// noticed; see docs/formats/share-envelope.md.
    #[test]
    fn blahaj_uses_a_different_field() {
        for seed in 0..16u8 {
            let s = secret(seed);
            let ours = split(&s, 2, 3, &mut seeded(seed ^ 0x44)).unwrap();
            let theirs: Vec<blahaj::Share> = ours[..2]
                .iter()
                .map(|sh| blahaj::Share::try_from(sh.expose_secret()).unwrap())
                .collect();
            let recovered = blahaj::Sharks(2).recover(&theirs).unwrap();
            assert_ne!(&recovered[..], &s.expose_secret()[..]);

            // blahaj is self-consistent with the same layout (x byte || y bytes).
            let dealt: Vec<blahaj::Share> = blahaj::Sharks(2)
                .dealer(s.expose_secret())
                .take(3)
                .collect();
            assert!(dealt.iter().all(|sh| Vec::from(sh).len() == 33));
            assert_eq!(
                &blahaj::Sharks(2).recover(&dealt[1..]).unwrap()[..],
                &s.expose_secret()[..]
            );
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(48))]

        /// M-1 shares are consistent with every possible secret: for any target, a forged M-th
        /// share exists that makes them recombine to it. So M-1 shares reveal nothing.
        #[test]
        fn m_minus_one_shares_fit_any_secret(
            seed in any::<u8>(), m in 2u8..6, extra in 0u8..4, target in proptest::array::uniform32(any::<u8>())
        ) {
            let n = m + extra;
            let s = secret(seed);
            let shares = split(&s, m, n, &mut seeded(seed.wrapping_add(1))).unwrap();
            let known = &shares[..usize::from(m) - 1];
            let forged_x = n + 1;
            let mut forged = vec![forged_x];
            for (byte, &t) in target.iter().enumerate() {
                let mut pts: Vec<(u8, u8)> = known.iter().map(|s| (s.x(), s.expose_secret()[byte + 1])).collect();
                pts.push((0, t));
                forged.push(interpolate(&pts, forged_x));
            }
            let forged = ShareBytes::from_slice(&forged);
            let mut picked: Vec<&ShareBytes> = known.iter().collect();
            picked.push(&forged);
            let got = combine(&picked, m).unwrap();
            prop_assert_eq!(&got[..], &target[..]);
        }

        #[test]
        fn split_combine_round_trip(seed in any::<u8>(), m in 2u8..8, extra in 0u8..6, rot in 0usize..16) {
            let n = m + extra;
            let s = secret(seed);
            let shares = split(&s, m, n, &mut seeded(seed ^ 0x5a)).unwrap();
            let mut order: Vec<usize> = (0..usize::from(n)).collect();
            order.rotate_left(rot % usize::from(n));
            let picked: Vec<&ShareBytes> = order[..usize::from(m)].iter().map(|&i| &shares[i]).collect();
            prop_assert_eq!(&combine(&picked, m).unwrap()[..], &s.expose_secret()[..]);
        }

        /// An independent GF(2^8) implementation (textbook Lagrange over the AES polynomial
        /// 0x11b, above) recombines vsss-rs shares, and vsss-rs recombines shares it made.
        #[test]
        fn cross_check_with_independent_gf256(
            seed in any::<u8>(), m in 2u8..6, extra in 0u8..4, coeffs in proptest::collection::vec(any::<u8>(), 5 * 32)
        ) {
            let n = m + extra;
            let s = secret(seed);
            let ours = split(&s, m, n, &mut seeded(seed ^ 0x33)).unwrap();
            let tail = &ours[usize::from(n - m)..];
            let mut recovered = [0u8; 32];
            for (byte, out) in recovered.iter_mut().enumerate() {
                let pts: Vec<(u8, u8)> = tail.iter().map(|sh| (sh.x(), sh.expose_secret()[byte + 1])).collect();
                *out = interpolate(&pts, 0);
            }
            prop_assert_eq!(&recovered[..], &s.expose_secret()[..]);

            // Shares dealt by hand: y = secret + c1 x + ... + c_{m-1} x^{m-1}.
            let dealt: Vec<ShareBytes> = (1..=n).map(|x| {
                let mut v = vec![x];
                for byte in 0..32 {
                    let mut y = s.expose_secret()[byte];
                    let mut xp = 1u8;
                    for k in 1..usize::from(m) {
                        xp = gf_mul(xp, x);
                        y ^= gf_mul(coeffs[(k - 1) * 32 + byte], xp);
                    }
                    v.push(y);
                }
                ShareBytes::from_slice(&v)
            }).collect();
            let picked: Vec<&ShareBytes> = dealt[..usize::from(m)].iter().collect();
            prop_assert_eq!(&combine(&picked, m).unwrap()[..], &s.expose_secret()[..]);
        }

    }

    // --- The two implementations ---

    /// vsss-rs multiplies in GF(2^8) modulo x^8 + x^4 + x^3 + x + 1 (0x11b, AES's): its public
    /// `Gf256` product equals shamir-gf256's for every pair, and 0x80 * 2 reduces by 0x1b.
    #[test]
    fn vsss_rs_uses_the_aes_polynomial() {
        assert_eq!((Gf256(0x80) * Gf256(0x02)).0, 0x1b);
        assert_eq!((Gf256(0x57) * Gf256(0x83)).0, 0xc1);
        for a in 0..=255u8 {
            for b in 0..=255u8 {
                assert_eq!(
                    (Gf256(a) * Gf256(b)).0,
                    shamir_gf256::gf256::mul(a, b),
                    "{a:#04x} * {b:#04x}"
                );
            }
        }
        assert_eq!(shamir_gf256::gf256::MODULUS, 0x11b);
    }

    /// A DRBG stand-in that hands out a script, then 0x01 bytes, counting all it gave.
    struct Scripted {
        script: Vec<u8>,
        given: usize,
    }

    impl SecretRng for Scripted {
        fn fill(&mut self, out: &mut [u8]) {
            for b in out {
                *b = self.script.get(self.given).copied().unwrap_or(1);
                self.given += 1;
            }
        }
    }

    /// Counts the bytes a real DRBG gives.
    struct Counting<R>(R, usize);

    impl<R: SecretRng> SecretRng for Counting<R> {
        fn fill(&mut self, out: &mut [u8]) {
            self.0.fill(out);
            self.1 += out.len();
        }
    }

    /// Measured: a vsss-rs split of a 32-byte secret draws 4 * 32 * (M - 1) DRBG bytes, all by
    /// `next_u32`, and nothing for M = 1 (which vsss-rs does not do; sherd writes it itself).
    #[test]
    fn vsss_rs_draws_four_bytes_per_coefficient_by_next_u32() {
        for (m, n) in [(1u8, 1u8), (1, 4), (2, 2), (2, 5), (3, 5), (7, 9), (10, 10)] {
            let mut drbg = Counting(seeded(m ^ n), 0);
            let (shares, check) = split_with(&secret(m), m, n, &mut drbg, &ShamirGf256).unwrap();
            let coefficients = 32 * (usize::from(m) - 1);
            assert_eq!(drbg.1, 4 * coefficients, "{m}-of-{n}");
            assert_eq!(
                check,
                CrossCheck {
                    second: "shamir-gf256",
                    values: usize::from(n),
                    bytes: usize::from(n) * 33,
                    coefficients,
                    rng_bytes: 4 * coefficients,
                }
            );
            assert_eq!(shares.len(), usize::from(n));
        }
        // The kinds of call, seen by the recording adapter directly.
        let mut drbg = seeded(3);
        let mut recorder = RecordingRng::new(&mut drbg, 4 * 64);
        let ids = (1..=4u8).map(|x| vsss_rs::IdentifierGf256(Gf256(x)));
        Gf256::split_bytes_with_participant_ids_iter(3, 4, [7u8; 32], &mut recorder, ids).unwrap();
        assert_eq!(
            (recorder.u32_calls, recorder.other_calls, recorder.drawn),
            (64, 0, 256)
        );
        assert!(recorder.drew_as_read(64));
        assert!(!recorder.drew_as_read(63));
    }

    /// Measured: the coefficient is the first byte of each four (the u32's low byte, little
    /// endian), the three others are ignored, the order is secret byte by secret byte and
    /// a_1 before a_2, and a zero coefficient is kept (no rejection, no extra draw).
    #[test]
    fn vsss_rs_coefficients_are_the_low_byte_of_each_u32_in_byte_order() {
        let s = secret(21);
        let (t, n) = (4usize, 6u8);
        // a_k for secret byte i is (i * 7 + k * 31) mod 256, or 0 when 5 divides i; the three
        // other bytes of each four are noise.
        let want: Vec<u8> = (0..32usize)
            .flat_map(|i| {
                (1..t).map(move |k| {
                    if i % 5 == 0 {
                        0
                    } else {
                        ((i * 7 + k * 31) % 256) as u8
                    }
                })
            })
            .collect();
        assert!(want.contains(&0));
        let script: Vec<u8> = want.iter().flat_map(|&a| [a, 0xa5, 0x5a, 0xff]).collect();
        let mut drbg = Scripted { script, given: 0 };
        let (shares, _) = split_with(&s, t as u8, n, &mut drbg, &ShamirGf256).unwrap();
        assert_eq!(drbg.given, 4 * want.len());
        let xs: Vec<u8> = (1..=n).collect();
        let theirs =
            shamir_gf256::split_with_coefficients(s.expose_secret(), t, &want, &xs).unwrap();
        for (ours, theirs) in shares.iter().zip(&theirs) {
            assert_eq!(ours.expose_secret(), &theirs[..]);
        }
        assert_eq!(&vsss_coefficients(&drbg.script)[..], &want[..]);

        // All coefficients zero: every share carries the secret, and no byte more is drawn.
        let mut drbg = Scripted {
            script: [0u8, 9, 9, 9].repeat(32 * (t - 1)),
            given: 0,
        };
        let (shares, _) = split_with(&s, t as u8, n, &mut drbg, &ShamirGf256).unwrap();
        assert_eq!(drbg.given, 4 * 32 * (t - 1));
        for sh in &shares {
            assert_eq!(&sh.expose_secret()[1..], &s.expose_secret()[..]);
        }
    }

    /// A second implementation that is wrong in a chosen way.
    enum Wrong {
        /// Flips the low bit of one y byte of one share (split) or of the secret (combine).
        FlipBit,
        /// Draws nothing and uses zero coefficients, ignoring the ones it is given.
        IgnoresCoefficients,
        /// Returns the first share's y bytes whatever the others say.
        FirstShareOnly,
        /// Refuses everything.
        Refuses,
    }

    impl SecondShamir for Wrong {
        fn name(&self) -> &'static str {
            "a wrong one"
        }

        fn split_with_coefficients(
            &self,
            secret: &[u8],
            threshold: usize,
            coefficients: &[u8],
            xs: &[u8],
        ) -> Result<Vec<Zeroizing<Vec<u8>>>, shamir_gf256::Error> {
            match self {
                Wrong::FlipBit => {
                    let mut shares =
                        ShamirGf256.split_with_coefficients(secret, threshold, coefficients, xs)?;
                    let last = shares.len() - 1;
                    shares[last][5] ^= 1;
                    Ok(shares)
                }
                Wrong::IgnoresCoefficients => {
                    let zeros = vec![0u8; coefficients.len()];
                    ShamirGf256.split_with_coefficients(secret, threshold, &zeros, xs)
                }
                Wrong::FirstShareOnly => {
                    ShamirGf256.split_with_coefficients(secret, threshold, coefficients, xs)
                }
                Wrong::Refuses => Err(shamir_gf256::Error::EmptySecret),
            }
        }

        fn combine(&self, shares: &[&[u8]]) -> Result<Zeroizing<Vec<u8>>, shamir_gf256::Error> {
            match self {
                Wrong::FlipBit => {
                    let mut s = ShamirGf256.combine(shares)?;
                    s[0] ^= 1;
                    Ok(s)
                }
                Wrong::IgnoresCoefficients => ShamirGf256.combine(shares),
                Wrong::FirstShareOnly => Ok(Zeroizing::new(shares[0][1..].to_vec())),
                Wrong::Refuses => Err(shamir_gf256::Error::NoShares),
            }
        }

        fn interpolate(
            &self,
            shares: &[&[u8]],
            at: u8,
        ) -> Result<Zeroizing<Vec<u8>>, shamir_gf256::Error> {
            match self {
                Wrong::FlipBit => {
                    let mut s = ShamirGf256.interpolate(shares, at)?;
                    s[0] ^= 1;
                    Ok(s)
                }
                Wrong::IgnoresCoefficients => ShamirGf256.interpolate(shares, at),
                Wrong::FirstShareOnly => Ok(Zeroizing::new(shares[0][1..].to_vec())),
                Wrong::Refuses => Err(shamir_gf256::Error::NoShares),
            }
        }
    }

    #[test]
    fn a_wrong_second_implementation_stops_the_interpolation() {
        let s = secret(33);
        let shares = split(&s, 3, 5, &mut seeded(4)).unwrap();
        let picked: Vec<&ShareBytes> = [&shares[0], &shares[2], &shares[4]].into();
        let refused = || ShamirError::ImplementationsDisagree {
            operation: "interpolation",
            second: "a wrong one",
        };
        for at in [2u8, 4] {
            for wrong in [Wrong::FlipBit, Wrong::FirstShareOnly, Wrong::Refuses] {
                assert_eq!(
                    interpolate_with(&picked, 3, at, &wrong).err(),
                    Some(refused()),
                    "at {at}"
                );
            }
        }
        // At a share's own x, vsss-rs is not asked, but the second still is.
        for wrong in [Wrong::FlipBit, Wrong::Refuses] {
            assert_eq!(
                interpolate_with(&picked, 3, 3, &wrong).err(),
                Some(refused())
            );
        }
        let (got, check) = interpolate_with(&picked, 3, 2, &Wrong::IgnoresCoefficients).unwrap();
        assert_eq!(got.expose_secret(), shares[1].expose_secret());
        assert_eq!((check.values, check.bytes), (1, 32));
    }

    #[test]
    fn interpolation_refusals() {
        let s = secret(34);
        let shares = split(&s, 2, 3, &mut seeded(6)).unwrap();
        let picked: Vec<&ShareBytes> = shares[..2].iter().collect();
        assert_eq!(
            super::interpolate(&picked, 2, 0).err(),
            Some(ShamirError::ZeroTarget)
        );
        assert_eq!(
            super::interpolate(&picked[..1], 2, 3).err(),
            Some(ShamirError::NotEnoughShares { have: 1, need: 2 })
        );
        assert_eq!(
            super::interpolate(&[&shares[0], &shares[0]], 2, 3).err(),
            Some(ShamirError::DuplicateIndex {
                x: 1,
                first: 1,
                second: 2
            })
        );
        // Threshold 1: every share is the secret, and so is the rebuilt one.
        let one = split(&s, 1, 3, &mut seeded(6)).unwrap();
        let got = super::interpolate(&[&one[0]], 1, 3).unwrap();
        assert_eq!(got.expose_secret(), one[2].expose_secret());
    }

    #[test]
    fn a_wrong_second_implementation_stops_the_split() {
        let s = secret(30);
        let refused = || ShamirError::ImplementationsDisagree {
            operation: "split",
            second: "a wrong one",
        };
        for wrong in [Wrong::FlipBit, Wrong::IgnoresCoefficients, Wrong::Refuses] {
            assert_eq!(
                split_with(&s, 3, 5, &mut seeded(1), &wrong).err(),
                Some(refused())
            );
        }
        // Threshold 1 (written by sherd, not vsss-rs) is checked too.
        for wrong in [Wrong::FlipBit, Wrong::Refuses] {
            assert_eq!(
                split_with(&s, 1, 3, &mut seeded(1), &wrong).err(),
                Some(refused())
            );
        }
        // A second implementation that is right where it matters lets the split through.
        assert!(split_with(&s, 3, 5, &mut seeded(1), &Wrong::FirstShareOnly).is_ok());
        // With zero coefficients (threshold 1) ignoring them changes nothing.
        assert!(split_with(&s, 1, 3, &mut seeded(1), &Wrong::IgnoresCoefficients).is_ok());
    }

    #[test]
    fn a_wrong_second_implementation_stops_the_combination() {
        let s = secret(31);
        let shares = split(&s, 3, 5, &mut seeded(2)).unwrap();
        let picked: Vec<&ShareBytes> = shares[1..4].iter().collect();
        let refused = || ShamirError::ImplementationsDisagree {
            operation: "combination",
            second: "a wrong one",
        };
        for wrong in [Wrong::FlipBit, Wrong::FirstShareOnly, Wrong::Refuses] {
            assert_eq!(combine_with(&picked, 3, &wrong).err(), Some(refused()));
        }
        let (got, check) = combine_with(&picked, 3, &Wrong::IgnoresCoefficients).unwrap();
        assert_eq!(&got[..], &s.expose_secret()[..]);
        assert_eq!((check.values, check.bytes), (1, 32));
        // One share (threshold 1, written by sherd) is checked too.
        let one = split(&s, 1, 2, &mut seeded(2)).unwrap();
        assert_eq!(
            combine_with(&[&one[0]], 1, &Wrong::FlipBit).err(),
            Some(refused())
        );
    }

    /// More shares than the threshold, one of them corrupt: vsss-rs and shamir-gf256 both
    /// interpolate through all the shares given, so they agree on the same wrong value (which
    /// the commitment check in recombine then refuses).
    #[test]
    fn both_interpolate_every_share_given() {
        let s = secret(32);
        let mut shares = split(&s, 3, 5, &mut seeded(3)).unwrap();
        let mut bad = shares[4].expose_secret().to_vec();
        bad[7] ^= 0x40;
        shares[4] = ShareBytes::from_slice(&bad);
        let picked: Vec<&ShareBytes> = shares.iter().collect();
        let got = combine(&picked, 3).unwrap();
        assert_ne!(&got[..], &s.expose_secret()[..]);
        let good: Vec<&ShareBytes> = shares[..4].iter().collect();
        assert_eq!(&combine(&good, 3).unwrap()[..], &s.expose_secret()[..]);
    }

    #[test]
    fn recording_refuses_draws_it_does_not_model() {
        use rand_core::TryRng;
        let mut drbg = seeded(4);
        let mut recorder = RecordingRng::new(&mut drbg, 8);
        let mut buf = [0u8; 8];
        recorder.try_fill_bytes(&mut buf).unwrap();
        assert!(!recorder.drew_as_read(2));
        // Beyond the planned size bytes are counted, not kept (the buffer never grows).
        let mut drbg = seeded(4);
        let mut recorder = RecordingRng::new(&mut drbg, 4);
        recorder.try_next_u32().unwrap();
        recorder.try_next_u32().unwrap();
        assert_eq!((recorder.kept.len(), recorder.drawn), (4, 8));
        assert!(!recorder.drew_as_read(2));
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(128))]

        /// Random secrets, thresholds 1..=10 and counts up to 15: `split` runs both
        /// implementations (it refuses unless they agree), and every combination of a random
        /// subset does too.
        #[test]
        fn the_two_implementations_agree_on_sherd_splits(
            seed in any::<u8>(), bytes in proptest::array::uniform32(any::<u8>()),
            t in 1u8..=10, extra in 0u8..=5, pick in proptest::sample::subsequence((0..15usize).collect::<Vec<_>>(), 1..=15)
        ) {
            let s = RootSecret::from_slice(&bytes).unwrap();
            let n = t + extra;
            let (shares, check) = split_with(&s, t, n, &mut seeded(seed), &ShamirGf256).unwrap();
            prop_assert_eq!(check.coefficients, 32 * usize::from(t - 1));
            let picked: Vec<&ShareBytes> = pick.iter().filter(|&&i| i < usize::from(n)).map(|&i| &shares[i]).collect();
            prop_assume!(!picked.is_empty());
            let (got, _) = combine_with(&picked, 1, &ShamirGf256).unwrap();
            if picked.len() >= usize::from(t) {
                prop_assert_eq!(&got[..], &bytes[..]);
            }
        }

        /// Interpolating any M of a split's shares at x = i gives share i, for every i of the
        /// split (one of the M or not), both implementations agreeing; at an x beyond the
        /// split, the same value from any two M-subsets.
        #[test]
        fn any_m_shares_rebuild_every_share(
            seed in any::<u8>(), bytes in proptest::array::uniform32(any::<u8>()),
            t in 1u8..=8, extra in 0u8..=5,
            pick in proptest::sample::subsequence((0..13usize).collect::<Vec<_>>(), 1..=13).prop_shuffle(),
            rot in 0usize..13,
        ) {
            let s = RootSecret::from_slice(&bytes).unwrap();
            let n = t + extra;
            let shares = split(&s, t, n, &mut seeded(seed)).unwrap();
            let chosen: Vec<usize> = pick.iter().copied().filter(|&i| i < usize::from(n)).collect();
            prop_assume!(chosen.len() >= usize::from(t));
            let subset: Vec<&ShareBytes> = chosen[..usize::from(t)].iter().map(|&i| &shares[i]).collect();
            for want in &shares {
                let (got, check) = interpolate_with(&subset, t, want.x(), &ShamirGf256).unwrap();
                prop_assert_eq!(got.expose_secret(), want.expose_secret());
                prop_assert_eq!((check.values, check.bytes), (1, 32));
            }
            if n < 255 {
                let mut other = chosen.clone();
                other.rotate_left(rot % chosen.len());
                let subset2: Vec<&ShareBytes> = other[..usize::from(t)].iter().map(|&i| &shares[i]).collect();
                let a = super::interpolate(&subset, t, n + 1).unwrap();
                let b = super::interpolate(&subset2, t, n + 1).unwrap();
                prop_assert_eq!(a.expose_secret(), b.expose_secret());
                // And the share beyond recombines with M - 1 others to the secret.
                let mut with: Vec<&ShareBytes> = subset[..usize::from(t) - 1].to_vec();
                with.push(&a);
                prop_assert_eq!(&combine(&with, t).unwrap()[..], &bytes[..]);
            }
        }

        /// Random x sets and secret lengths, straight at vsss-rs: the bytes it draws, read by
        /// `vsss_coefficients`, make shamir-gf256 give the same shares, and each combines any
        /// subset of the other's shares to the same value.
        #[test]
        fn the_two_implementations_agree_on_random_x_sets(
            seed in any::<u8>(), secret in proptest::collection::vec(any::<u8>(), 1..48),
            t in 2usize..=10, extra in 0usize..=6,
            xs in proptest::sample::subsequence((1..=255u8).collect::<Vec<_>>(), 16).prop_shuffle(),
            take in 1usize..=16,
        ) {
            let xs = &xs[..t + extra];
            let coefficient_count = secret.len() * (t - 1);
            let mut drbg = seeded(seed);
            let mut recorder = RecordingRng::new(&mut drbg, 4 * coefficient_count);
            let ids = xs.iter().map(|&x| vsss_rs::IdentifierGf256(Gf256(x)));
            let ours = Gf256::split_bytes_with_participant_ids_iter(t, xs.len(), &secret, &mut recorder, ids).unwrap();
            prop_assert!(recorder.drew_as_read(coefficient_count));
            let coefficients = vsss_coefficients(&recorder.kept);
            let theirs = shamir_gf256::split_with_coefficients(&secret, t, &coefficients, xs).unwrap();
            prop_assert_eq!(ours.len(), theirs.len());
            for (a, b) in ours.iter().zip(&theirs) {
                prop_assert_eq!(&a[..], &b[..]);
            }
            let k = take.min(xs.len());
            let picked: Vec<ShareBytes> = ours[..k].iter().map(|s| ShareBytes::from_slice(s)).collect();
            let refs: Vec<&ShareBytes> = picked.iter().collect();
            let (got, _) = combine_with(&refs, 1, &ShamirGf256).unwrap();
            if k >= t {
                prop_assert_eq!(&got[..], &secret[..]);
            }
        }
    }
}
