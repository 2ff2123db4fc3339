//! Shamir secret sharing over GF(2^8), the second implementation sherd runs beside vsss-rs so
//! that two independently written programs must agree before a share leaves the machine or a
//! recombined secret is used (docs/dual-implementations.md).
//!
//! The field is GF(2^8) modulo the AES polynomial x^8 + x^4 + x^3 + x + 1 (0x11b), the one vsss-rs
//! uses; the share layout is the common one: the x byte, then one y byte per secret byte.
//!
//! The arithmetic is written to be constant-time at the source level: multiplication is a
//! shift-and-add over all eight bits with masks instead of branches, reduction is masked, the
//! inverse is a^254 by a fixed chain of squarings and multiplications. No table is indexed by
//! a value, and no branch or loop bound depends on secret bytes (only on lengths, thresholds and
//! x coordinates, which are public).
//!
//! This crate does not draw randomness: the caller gives the polynomial coefficients, so the
//! same coefficients vsss-rs drew can be fed here and the shares compared byte for byte.

#![forbid(unsafe_code)]

use zeroize::Zeroizing;

/// GF(2^8) modulo x^8 + x^4 + x^3 + x + 1.
pub mod gf256 {
    /// The reduction polynomial x^8 + x^4 + x^3 + x + 1 (AES's), as a 9-bit number.
    pub const MODULUS: u16 = 0x11b;

    /// The low eight bits of [`MODULUS`]: what a carry out of bit 7 folds back in.
    const REDUCE: u8 = (MODULUS & 0xff) as u8;

    /// `0xff` when `bit` is 1, `0x00` when it is 0 (`bit` must be 0 or 1).
    const fn mask(bit: u8) -> u8 {
        0u8.wrapping_sub(bit)
    }

    /// Addition (and subtraction): exclusive or.
    pub const fn add(a: u8, b: u8) -> u8 {
        a ^ b
    }

    /// Multiplication: for each bit of `b`, add the running multiple of `a` under a mask, then
    /// double `a` and reduce it under a mask. Eight rounds whatever the operands.
    pub const fn mul(a: u8, b: u8) -> u8 {
        let mut product = 0u8;
        let mut multiple = a;
        let mut i = 0;
        while i < 8 {
            product ^= multiple & mask((b >> i) & 1);
            let carry = multiple >> 7;
            multiple = (multiple << 1) ^ (REDUCE & mask(carry));
            i += 1;
        }
        product
    }

    /// The multiplicative inverse, a^254 (a^255 = 1 for a != 0), as the product of a^2, a^4, ...,
    /// a^128: seven squarings and six multiplications for every input. The inverse of 0 is 0.
    pub const fn inv(a: u8) -> u8 {
        let mut power = mul(a, a);
        let mut result = power;
        let mut i = 2;
        while i < 8 {
            power = mul(power, power);
            result = mul(result, power);
            i += 1;
        }
        result
    }
}

/// Why a split or a combination was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Error {
    /// The secret has no bytes.
    EmptySecret,
    /// The threshold is 0 or exceeds the number of x coordinates.
    Threshold {
        /// The threshold asked for.
        threshold: usize,
        /// The number of x coordinates given.
        count: usize,
    },
    /// The coefficients are not `(threshold - 1)` per secret byte.
    CoefficientCount {
        /// `secret.len() * (threshold - 1)`.
        expected: usize,
        /// The number given.
        got: usize,
    },
    /// No shares were given to combine.
    NoShares,
    /// An x coordinate is 0, the secret's own point (1-based position in the input).
    ZeroX {
        /// 1-based position of the x coordinate or share in the input.
        position: usize,
    },
    /// Two x coordinates are equal.
    DuplicateX {
        /// The repeated x coordinate.
        x: u8,
    },
    /// A share is shorter than 2 bytes or differs in length from the first one.
    Length {
        /// 1-based position of the share in the input.
        position: usize,
        /// Its length, x byte included.
        len: usize,
        /// The first share's length.
        expected: usize,
    },
}

impl core::fmt::Display for Error {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            Self::EmptySecret => write!(f, "the secret is empty"),
            Self::Threshold { threshold, count } => {
                write!(
                    f,
                    "threshold {threshold} of {count} x coordinates is impossible"
                )
            }
            Self::CoefficientCount { expected, got } => {
                write!(f, "{got} coefficients given; the split needs {expected}")
            }
            Self::NoShares => write!(f, "no shares to combine"),
            Self::ZeroX { position } => write!(f, "x coordinate {position} is 0"),
            Self::DuplicateX { x } => write!(f, "x = {x} appears twice"),
            Self::Length {
                position,
                len,
                expected,
            } => write!(f, "share {position} is {len} bytes; expected {expected}"),
        }
    }
}

impl std::error::Error for Error {}

/// Refuses x coordinates that are 0 or repeated.
fn check_xs(xs: impl Iterator<Item = u8>) -> Result<(), Error> {
    let mut seen = [false; 256];
    for (i, x) in xs.enumerate() {
        if x == 0 {
            return Err(Error::ZeroX { position: i + 1 });
        }
        if seen[usize::from(x)] {
            return Err(Error::DuplicateX { x });
        }
        seen[usize::from(x)] = true;
    }
    Ok(())
}

/// Splits `secret` into one share per x coordinate in `xs` (in that order), each byte by its own
/// polynomial of degree `threshold - 1`: `f(x) = secret[i] + a_1 x + ... + a_{t-1} x^{t-1}`.
///
/// `coefficients` holds `threshold - 1` bytes per secret byte, byte by byte: for secret byte
/// `i`, `a_k` is `coefficients[i * (threshold - 1) + (k - 1)]`. Any byte value is a valid
/// coefficient, zero included. Each share is the x byte followed by one y byte per secret byte.
pub fn split_with_coefficients(
    secret: &[u8],
    threshold: usize,
    coefficients: &[u8],
    xs: &[u8],
) -> Result<Vec<Zeroizing<Vec<u8>>>, Error> {
    if secret.is_empty() {
        return Err(Error::EmptySecret);
    }
    if threshold == 0 || threshold > xs.len() {
        return Err(Error::Threshold {
            threshold,
            count: xs.len(),
        });
    }
    let degree = threshold - 1;
    let expected = secret.len() * degree;
    if coefficients.len() != expected {
        return Err(Error::CoefficientCount {
            expected,
            got: coefficients.len(),
        });
    }
    check_xs(xs.iter().copied())?;
    let mut shares = Vec::with_capacity(xs.len());
    for &x in xs {
        // Allocated at full size once: no reallocation leaves a copy of y bytes behind.
        let mut share = Zeroizing::new(Vec::with_capacity(1 + secret.len()));
        share.push(x);
        for (i, &constant) in secret.iter().enumerate() {
            let row = &coefficients[i * degree..(i + 1) * degree];
            // Horner: ((a_{t-1} x + a_{t-2}) x + ... + a_1) x + secret.
            let mut y = 0u8;
            for &a in row.iter().rev() {
                y = gf256::add(gf256::mul(y, x), a);
            }
            y = gf256::add(gf256::mul(y, x), constant);
            share.push(y);
        }
        shares.push(share);
    }
    Ok(shares)
}

/// Recombines shares (x byte, then y bytes) by Lagrange interpolation at x = 0 over all the
/// shares given: `secret = sum_i y_i * prod_{j != i} x_j / (x_j - x_i)`.
///
/// Refuses no shares, lengths under 2 or unequal, and x coordinates that are 0 or repeated.
/// Whether the result is the right secret cannot be known here: more shares than the threshold
/// that do not lie on one polynomial still give a value.
pub fn combine(shares: &[&[u8]]) -> Result<Zeroizing<Vec<u8>>, Error> {
    let first = shares.first().ok_or(Error::NoShares)?;
    let expected = first.len();
    for (i, s) in shares.iter().enumerate() {
        if s.len() != expected || s.len() < 2 {
            return Err(Error::Length {
                position: i + 1,
                len: s.len(),
                expected,
            });
        }
    }
    check_xs(shares.iter().map(|s| s[0]))?;
    // The Lagrange weights at 0 depend only on the x coordinates (public).
    let weights: Vec<u8> = shares
        .iter()
        .enumerate()
        .map(|(i, si)| {
            let (mut numerator, mut denominator) = (1u8, 1u8);
            for (j, sj) in shares.iter().enumerate() {
                if i != j {
                    numerator = gf256::mul(numerator, sj[0]);
                    denominator = gf256::mul(denominator, gf256::add(sj[0], si[0]));
                }
            }
            gf256::mul(numerator, gf256::inv(denominator))
        })
        .collect();
    let mut secret = Zeroizing::new(vec![0u8; expected - 1]);
    for (share, &weight) in shares.iter().zip(&weights) {
        for (out, &y) in secret.iter_mut().zip(&share[1..]) {
            *out = gf256::add(*out, gf256::mul(weight, y));
        }
    }
    Ok(secret)
}

/// The values at x = `at` of the polynomials through all the given shares (x byte, then y
/// bytes), one per y byte, by Lagrange interpolation at `at`:
/// `y(at) = sum_i y_i * prod_{j != i} (at - x_j) / (x_i - x_j)`. With `at` = 0 this is
/// [`combine`]; with `at` one of the shares' x it is that share's y bytes. This rebuilds the
/// share of x = `at` (a lost card's) from any threshold's worth of the others.
///
/// Refuses what [`combine`] refuses. `at` is public (a holder index), as the x coordinates are.
pub fn interpolate(shares: &[&[u8]], at: u8) -> Result<Zeroizing<Vec<u8>>, Error> {
    let first = shares.first().ok_or(Error::NoShares)?;
    let expected = first.len();
    for (i, s) in shares.iter().enumerate() {
        if s.len() != expected || s.len() < 2 {
            return Err(Error::Length {
                position: i + 1,
                len: s.len(),
                expected,
            });
        }
    }
    check_xs(shares.iter().map(|s| s[0]))?;
    // The Lagrange basis polynomials evaluated at `at`: public, from the x coordinates only.
    let weights: Vec<u8> = shares
        .iter()
        .enumerate()
        .map(|(i, si)| {
            let (mut numerator, mut denominator) = (1u8, 1u8);
            for (j, sj) in shares.iter().enumerate() {
                if i != j {
                    numerator = gf256::mul(numerator, gf256::add(at, sj[0]));
                    denominator = gf256::mul(denominator, gf256::add(si[0], sj[0]));
                }
            }
            gf256::mul(numerator, gf256::inv(denominator))
        })
        .collect();
    let mut values = Zeroizing::new(vec![0u8; expected - 1]);
    for (share, &weight) in shares.iter().zip(&weights) {
        for (out, &y) in values.iter_mut().zip(&share[1..]) {
            *out = gf256::add(*out, gf256::mul(weight, y));
        }
    }
    Ok(values)
}

#[cfg(test)]
mod tests;
