use super::gf256::{add, inv, mul};
use super::*;
use proptest::prelude::*;

/// Slow reference multiplication, written differently from [`gf256::mul`]: the full carry-less
/// product as a 15-bit number, then reduced by long division by 0x11b from the top bit down.
fn reference_mul(a: u8, b: u8) -> u8 {
    let mut product: u16 = 0;
    for bit in 0..8 {
        if a & (1 << bit) != 0 {
            product ^= u16::from(b) << bit;
        }
    }
    for bit in (8..15).rev() {
        if product & (1 << bit) != 0 {
            product ^= 0x11b << (bit - 8);
        }
    }
    u8::try_from(product).expect("reduced below 2^8")
}

/// Evaluates a polynomial given lowest coefficient first, term by term (no Horner).
fn reference_eval(coefficients: &[u8], x: u8) -> u8 {
    let mut y = 0;
    let mut power = 1;
    for &c in coefficients {
        y ^= reference_mul(c, power);
        power = reference_mul(power, x);
    }
    y
}

#[test]
fn mul_matches_the_reference_for_every_pair() {
    for a in 0..=255u8 {
        for b in 0..=255u8 {
            assert_eq!(mul(a, b), reference_mul(a, b), "{a:#04x} * {b:#04x}");
        }
    }
}

/// FIPS-197 section 4.2's worked products, which pin the field to AES's polynomial.
#[test]
fn mul_gives_the_aes_examples() {
    assert_eq!(mul(0x57, 0x83), 0xc1);
    assert_eq!(mul(0x57, 0x13), 0xfe);
    assert_eq!(mul(0x57, 0x02), 0xae);
    assert_eq!(mul(0x80, 0x02), 0x1b);
    assert_eq!(gf256::MODULUS, 0x11b);
}

#[test]
fn every_nonzero_element_times_its_inverse_is_one() {
    assert_eq!(inv(0), 0);
    for a in 1..=255u8 {
        assert_eq!(mul(a, inv(a)), 1, "{a:#04x}");
        assert_eq!(reference_mul(a, inv(a)), 1, "{a:#04x}");
        assert_eq!(inv(inv(a)), a);
    }
}

#[test]
fn field_laws_hold() {
    for a in 0..=255u8 {
        assert_eq!(mul(a, 1), a);
        assert_eq!(mul(a, 0), 0);
        assert_eq!(add(a, a), 0);
        for b in [0x00u8, 0x01, 0x02, 0x03, 0x53, 0x80, 0xca, 0xff] {
            assert_eq!(mul(a, b), mul(b, a));
            for c in [0x01u8, 0x1b, 0x8d, 0xfe] {
                assert_eq!(mul(a, add(b, c)), add(mul(a, b), mul(a, c)));
                assert_eq!(mul(mul(a, b), c), mul(a, mul(b, c)));
            }
        }
    }
}

/// One byte worked by hand: f(x) = 0x42 + 0x03 x, so f(1) = 0x41 and f(2) = 0x42 + 0x06 = 0x44.
#[test]
fn a_share_worked_by_hand() {
    let shares = split_with_coefficients(&[0x42], 2, &[0x03], &[1, 2]).unwrap();
    assert_eq!(&shares[0][..], &[1, 0x41]);
    assert_eq!(&shares[1][..], &[2, 0x44]);
    assert_eq!(&combine(&[&shares[1], &shares[0]]).unwrap()[..], &[0x42]);
}

#[test]
fn threshold_one_shares_are_the_secret() {
    let shares = split_with_coefficients(b"abc", 1, &[], &[7, 200]).unwrap();
    assert_eq!(&shares[0][..], b"\x07abc");
    assert_eq!(&shares[1][..], b"\xc8abc");
    assert_eq!(&combine(&[&shares[1]]).unwrap()[..], b"abc");
}

#[test]
fn refusals() {
    assert_eq!(
        split_with_coefficients(&[], 1, &[], &[1]),
        Err(Error::EmptySecret)
    );
    assert_eq!(
        split_with_coefficients(&[1], 0, &[], &[1]),
        Err(Error::Threshold {
            threshold: 0,
            count: 1
        })
    );
    assert_eq!(
        split_with_coefficients(&[1], 3, &[1, 2], &[1, 2]),
        Err(Error::Threshold {
            threshold: 3,
            count: 2
        })
    );
    assert_eq!(
        split_with_coefficients(&[1, 2], 2, &[1], &[1, 2]),
        Err(Error::CoefficientCount {
            expected: 2,
            got: 1
        })
    );
    assert_eq!(
        split_with_coefficients(&[1], 2, &[1], &[1, 0]),
        Err(Error::ZeroX { position: 2 })
    );
    assert_eq!(
        split_with_coefficients(&[1], 2, &[1], &[5, 5]),
        Err(Error::DuplicateX { x: 5 })
    );
    assert_eq!(combine(&[]), Err(Error::NoShares));
    assert_eq!(
        combine(&[&[1, 2, 3], &[2, 3]]),
        Err(Error::Length {
            position: 2,
            len: 2,
            expected: 3
        })
    );
    assert_eq!(
        combine(&[&[1]]),
        Err(Error::Length {
            position: 1,
            len: 1,
            expected: 1
        })
    );
    assert_eq!(
        combine(&[&[1, 2], &[0, 3]]),
        Err(Error::ZeroX { position: 2 })
    );
    assert_eq!(
        combine(&[&[9, 2], &[9, 3]]),
        Err(Error::DuplicateX { x: 9 })
    );
}

/// A threshold, a set of distinct nonzero x coordinates at least that large, a secret and the
/// coefficients it needs.
fn case() -> impl Strategy<Value = (usize, Vec<u8>, Vec<u8>, Vec<u8>)> {
    (1usize..=10, 0usize..6, 1usize..40).prop_flat_map(|(t, extra, len)| {
        (
            Just(t),
            proptest::sample::subsequence((1..=255u8).collect::<Vec<_>>(), t + extra)
                .prop_shuffle(),
            proptest::collection::vec(any::<u8>(), len),
            proptest::collection::vec(any::<u8>(), len * (t - 1)),
        )
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    /// Each share's y bytes are the per-byte polynomials evaluated term by term with the
    /// reference multiplication, and any `t` of the shares give the secret back.
    #[test]
    fn shares_are_the_polynomials_and_any_t_recombine(
        (t, xs, secret, coefficients) in case(), rot in 0usize..16
    ) {
        let shares = split_with_coefficients(&secret, t, &coefficients, &xs).unwrap();
        prop_assert_eq!(shares.len(), xs.len());
        for (share, &x) in shares.iter().zip(&xs) {
            prop_assert_eq!(share[0], x);
            prop_assert_eq!(share.len(), 1 + secret.len());
            for (i, &s) in secret.iter().enumerate() {
                let mut poly = vec![s];
                poly.extend_from_slice(&coefficients[i * (t - 1)..(i + 1) * (t - 1)]);
                prop_assert_eq!(share[1 + i], reference_eval(&poly, x));
            }
        }
        let mut order: Vec<usize> = (0..xs.len()).collect();
        order.rotate_left(rot % xs.len());
        let picked: Vec<&[u8]> = order[..t].iter().map(|&i| &shares[i][..]).collect();
        prop_assert_eq!(&combine(&picked).unwrap()[..], &secret[..]);
        let all: Vec<&[u8]> = shares.iter().map(|s| &s[..]).collect();
        prop_assert_eq!(&combine(&all).unwrap()[..], &secret[..]);
    }

    /// With `t - 1` shares and no more, interpolation lands on the secret only when the top
    /// coefficient of every byte is 0: a nonzero top coefficient moves the result.
    #[test]
    fn fewer_than_t_shares_miss_a_secret_with_nonzero_top_coefficients(
        (t, xs, secret, mut coefficients) in case()
    ) {
        prop_assume!(t >= 2);
        for i in 0..secret.len() {
            coefficients[i * (t - 1) + (t - 2)] |= 1;
        }
        let shares = split_with_coefficients(&secret, t, &coefficients, &xs).unwrap();
        let picked: Vec<&[u8]> = shares[..t - 1].iter().map(|s| &s[..]).collect();
        let got = combine(&picked).unwrap();
        for (g, s) in got.iter().zip(&secret) {
            prop_assert_ne!(g, s);
        }
    }

    /// Any `t` of the shares interpolated at the x of any share (one of the `t` or not) give
    /// that share's y bytes; at 0, the secret. Refusals are `combine`'s.
    #[test]
    fn any_t_shares_rebuild_every_share(
        (t, xs, secret, coefficients) in case(), rot in 0usize..16, target in 0usize..16
    ) {
        let shares = split_with_coefficients(&secret, t, &coefficients, &xs).unwrap();
        let mut order: Vec<usize> = (0..xs.len()).collect();
        order.rotate_left(rot % xs.len());
        let picked: Vec<&[u8]> = order[..t].iter().map(|&i| &shares[i][..]).collect();
        let want = &shares[target % xs.len()];
        prop_assert_eq!(&interpolate(&picked, want[0]).unwrap()[..], &want[1..]);
        prop_assert_eq!(&interpolate(&picked, 0).unwrap()[..], &secret[..]);
        prop_assert_eq!(interpolate(&picked, 0).unwrap(), combine(&picked).unwrap());
        // An x that is no share's: the polynomial's value there, term by term.
        if let Some(other) = (1..=255u8).find(|x| !xs.contains(x)) {
            let got = interpolate(&picked, other).unwrap();
            for (i, &s) in secret.iter().enumerate() {
                let mut poly = vec![s];
                poly.extend_from_slice(&coefficients[i * (t - 1)..(i + 1) * (t - 1)]);
                prop_assert_eq!(got[i], reference_eval(&poly, other));
            }
        }
    }
}

#[test]
fn interpolate_refuses_what_combine_refuses() {
    assert_eq!(interpolate(&[], 1), Err(Error::NoShares));
    assert_eq!(
        interpolate(&[&[1, 2], &[0, 3]], 4),
        Err(Error::ZeroX { position: 2 })
    );
    assert_eq!(
        interpolate(&[&[9, 2], &[9, 3]], 4),
        Err(Error::DuplicateX { x: 9 })
    );
    assert_eq!(
        interpolate(&[&[1, 2, 3], &[2, 3]], 4),
        Err(Error::Length {
            position: 2,
            len: 2,
            expected: 3
        })
    );
}
