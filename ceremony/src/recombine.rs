//! Recombination: from opened envelopes back to the root secret, refusing anything doubtful and
//! naming the share at fault. The secret is returned only after the commitment and the root
//! fingerprint check out.

use std::collections::HashMap;

use crate::envelope::{Envelope, EnvelopeHeader};
use crate::hex;
use crate::keys::{self, KeyError, RootKey};
use crate::rng::SecretRng;
use crate::secret::{RootSecret, ShareBytes};
use crate::shamir::{self, ShamirError};

/// What the shares must belong to (from the shard file, which the transcript signs).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Expected {
    /// The ceremony id.
    pub ceremony_id: String,
    /// The root certificate fingerprint (raw bytes).
    pub root_fingerprint: Vec<u8>,
}

/// Why recombination refused. Positions are 1-based places in the input list; indices are the
/// share indices (holder numbers) the envelopes claim.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[non_exhaustive]
pub enum RecombineError {
    /// The list of envelopes is empty.
    #[error("no shares given")]
    NoShares,
    /// A share's ceremony id or root fingerprint is not the expected one.
    #[error(
        "share at position {position} (index {index}) is from another ceremony: its {field} is {found}, expected {expected}"
    )]
    Foreign {
        /// 1-based position of the share in the input list.
        position: usize,
        /// The share index its envelope claims.
        index: u8,
        /// Which field differs: `ceremony id` or `root fingerprint`.
        field: &'static str,
        /// The share's value (a fingerprint as upper-case hex).
        found: String,
        /// The expected value (a fingerprint as upper-case hex).
        expected: String,
    },
    /// A share disagrees with the majority of the shares on threshold, share count, key time,
    /// plan hash or commitment.
    #[error(
        "share at position {position} (index {index}) disagrees with the other shares: its {field} is {found}, the others say {expected}"
    )]
    Mismatch {
        /// 1-based position of the first dissenting share in the input list.
        position: usize,
        /// The share index its envelope claims.
        index: u8,
        /// Which field differs, e.g. `plan hash`.
        field: &'static str,
        /// The share's value (hashes as lower-case hex, times as Unix seconds).
        found: String,
        /// The value most shares agree on (ties: the earliest), in the same spelling.
        expected: String,
    },
    /// The same share (identical bytes) was given twice.
    #[error("share index {index} is given twice (positions {first} and {second}); remove one")]
    Duplicate {
        /// The repeated share index.
        index: u8,
        /// 1-based position of its first occurrence.
        first: usize,
        /// 1-based position of its second occurrence.
        second: usize,
    },
    /// Two shares with different bytes claim the same index: at least one is forged.
    #[error(
        "two different shares both claim index {index} (positions {first} and {second}); at least one is forged"
    )]
    ConflictingDuplicate {
        /// The share index both claim.
        index: u8,
        /// 1-based position of the first.
        first: usize,
        /// 1-based position of the second.
        second: usize,
    },
    /// Fewer shares than the threshold.
    #[error("need {need} shares, have {have}")]
    NotEnoughShares {
        /// Number of shares given.
        have: usize,
        /// The threshold M from the envelopes.
        need: usize,
    },
    /// An extra share (beyond the M that match the commitment) gives a different secret when
    /// it replaces one of them: it is corrupt or forged.
    #[error(
        "share at position {position} (index {index}) does not lie on the same polynomial as the others: it is corrupt or forged"
    )]
    Inconsistent {
        /// 1-based position of the share in the input list.
        position: usize,
        /// The share index its envelope claims.
        index: u8,
    },
    /// No M of the shares (within the search bound) recombine to a secret matching the
    /// commitment.
    #[error(
        "the shares at positions {positions:?} recombine to a secret that does not match the commitment; one of them is wrong, bring one more share to find which"
    )]
    CommitmentMismatch {
        /// 1-based positions of the shares involved.
        positions: Vec<usize>,
    },
    /// The secret matches the commitment but derives a different root key than expected.
    #[error("the recombined secret derives root fingerprint {derived}, expected {expected}")]
    FingerprintMismatch {
        /// Fingerprint of the root key derived from the secret, upper-case hex.
        derived: String,
        /// The expected root fingerprint, upper-case hex.
        expected: String,
    },
    /// The Shamir combination refused the shares' structure.
    #[error(transparent)]
    Shamir(#[from] ShamirError),
    /// Deriving the root key from the recombined secret failed (a bug, not bad input).
    #[error(transparent)]
    Key(#[from] KeyErrorEq),
}

/// [`KeyError`] as text, so [`RecombineError`] can be compared in tests.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("{0}")]
pub struct KeyErrorEq(pub String);

impl From<KeyError> for RecombineError {
    fn from(e: KeyError) -> Self {
        RecombineError::Key(KeyErrorEq(e.to_string()))
    }
}

/// The result of a successful recombination.
pub struct Recovered {
    /// The root secret.
    pub secret: RootSecret,
    /// The root key derived from it (fingerprint checked).
    pub root: RootKey,
    /// Share indices used, in input order.
    pub indices: Vec<u8>,
}

fn commitment_ok(candidate: &[u8], header: &EnvelopeHeader) -> bool {
    match RootSecret::from_slice(candidate) {
        Some(s) => {
            let c = keys::commitment(&s, &header.ceremony_id);
            c.iter()
                .zip(header.commitment.iter())
                .fold(0u8, |a, (x, y)| a | (x ^ y))
                == 0
        }
        None => false,
    }
}

/// The value most shares agree on (ties: the earliest), for naming the odd one out.
fn majority<T: Eq + std::hash::Hash + Clone>(values: &[T]) -> T {
    let mut counts: HashMap<&T, (usize, usize)> = HashMap::new();
    for (i, v) in values.iter().enumerate() {
        counts.entry(v).or_insert((0, i)).0 += 1;
    }
    let (v, _) = counts
        .into_iter()
        .max_by(|a, b| a.1.0.cmp(&b.1.0).then(b.1.1.cmp(&a.1.1)))
        .expect("non-empty");
    v.clone()
}

/// Checks that the envelopes belong to `expected` and to each other; returns them with their
/// positions, sorted by nothing (input order).
pub fn check_headers(expected: &Expected, envelopes: &[&Envelope]) -> Result<(), RecombineError> {
    if envelopes.is_empty() {
        return Err(RecombineError::NoShares);
    }
    for (i, e) in envelopes.iter().enumerate() {
        let h = &e.header;
        if h.ceremony_id != expected.ceremony_id {
            return Err(RecombineError::Foreign {
                position: i + 1,
                index: h.index,
                field: "ceremony id",
                found: h.ceremony_id.clone(),
                expected: expected.ceremony_id.clone(),
            });
        }
        if h.root_fingerprint != expected.root_fingerprint {
            return Err(RecombineError::Foreign {
                position: i + 1,
                index: h.index,
                field: "root fingerprint",
                found: hex::encode_upper(&h.root_fingerprint),
                expected: hex::encode_upper(&expected.root_fingerprint),
            });
        }
    }
    macro_rules! agree {
        ($field:ident, $name:expr, $fmt:expr) => {{
            let values: Vec<_> = envelopes.iter().map(|e| e.header.$field.clone()).collect();
            let m = majority(&values);
            if let Some(i) = values.iter().position(|v| *v != m) {
                return Err(RecombineError::Mismatch {
                    position: i + 1,
                    index: envelopes[i].header.index,
                    field: $name,
                    found: $fmt(&values[i]),
                    expected: $fmt(&m),
                });
            }
        }};
    }
    agree!(threshold, "threshold", |v: &u8| v.to_string());
    agree!(count, "share count", |v: &u8| v.to_string());
    agree!(key_time, "key time", |v: &u32| v.to_string());
    agree!(plan_hash, "plan hash", |v: &[u8; 32]| hex::encode(v));
    agree!(commitment, "commitment", |v: &[u8; 32]| hex::encode(v));
    let mut seen: HashMap<u8, usize> = HashMap::new();
    for (i, e) in envelopes.iter().enumerate() {
        if let Some(&first) = seen.get(&e.header.index) {
            let same = envelopes[first - 1].share.expose_secret() == e.share.expose_secret();
            return Err(if same {
                RecombineError::Duplicate {
                    index: e.header.index,
                    first,
                    second: i + 1,
                }
            } else {
                RecombineError::ConflictingDuplicate {
                    index: e.header.index,
                    first,
                    second: i + 1,
                }
            });
        }
        seen.insert(e.header.index, i + 1);
    }
    Ok(())
}

/// Recombines opened envelopes into the root secret and root key.
///
/// Checks, in order: every envelope is for `expected`; all agree on threshold, count, key time,
/// plan hash and commitment (the odd one out is named); no index twice; enough shares; the
/// secret from the first M matches the commitment; every further share is consistent with it;
/// the derived root fingerprint is the expected one. If the first M do not match the
/// commitment and more shares were given, the culprit is searched for among them.
pub fn recombine(
    expected: &Expected,
    envelopes: &[&Envelope],
) -> Result<Recovered, RecombineError> {
    check_headers(expected, envelopes)?;
    let header = &envelopes[0].header;
    let m = usize::from(header.threshold);
    if envelopes.len() < m {
        return Err(RecombineError::NotEnoughShares {
            have: envelopes.len(),
            need: m,
        });
    }
    let shares: Vec<&ShareBytes> = envelopes.iter().map(|e| &e.share).collect();

    let base: Vec<usize> = match find_consistent_subset(&shares, m, header)? {
        Some(b) => b,
        None => {
            return Err(RecombineError::CommitmentMismatch {
                positions: (1..=envelopes.len()).collect(),
            });
        }
    };
    // Every share outside the base must agree with it: replace one base share by it.
    for j in 0..shares.len() {
        if base.contains(&j) {
            continue;
        }
        let mut picked: Vec<&ShareBytes> = base[..m - 1].iter().map(|&i| shares[i]).collect();
        picked.push(shares[j]);
        let candidate = shamir::combine(&picked, header.threshold)?;
        if !commitment_ok(&candidate, header) {
            return Err(RecombineError::Inconsistent {
                position: j + 1,
                index: envelopes[j].header.index,
            });
        }
    }
    let picked: Vec<&ShareBytes> = base.iter().map(|&i| shares[i]).collect();
    let secret_bytes = shamir::combine(&picked, header.threshold)?;
    let secret =
        RootSecret::from_slice(&secret_bytes).ok_or(RecombineError::CommitmentMismatch {
            positions: base.iter().map(|i| i + 1).collect(),
        })?;
    let root = RootKey::derive(&secret, &header.ceremony_id, header.key_time)?;
    let derived = root.fingerprint();
    if derived.as_bytes() != expected.root_fingerprint.as_slice() {
        return Err(RecombineError::FingerprintMismatch {
            derived: derived.to_hex(),
            expected: hex::encode_upper(&expected.root_fingerprint),
        });
    }
    Ok(Recovered {
        secret,
        root,
        indices: envelopes.iter().map(|e| e.header.index).collect(),
    })
}

/// Why a recovery from a shard file stopped.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum RecoverError {
    /// A share could not be opened (wrong card or PIN, bad signature, invalid envelope).
    #[error("share {index} ({holder}): {source}")]
    Open {
        /// The share's index (= holder index, 1-based).
        index: u8,
        /// The holder's name, from the shard file.
        holder: String,
        /// Why opening failed.
        source: crate::envelope::OpenShareError,
    },
    /// An index asked for is not in 1..=N of the shard file.
    #[error("share {index} is not in the shard file")]
    NoSuchShare {
        /// The index asked for.
        index: u8,
    },
    /// The opened shares were refused by [`recombine`].
    #[error(transparent)]
    Recombine(#[from] RecombineError),
}

/// Recovers the root secret from a shard file: opens the shares with the given indices through
/// `open` (typically: ask for that holder's card and PIN, then
/// [`crate::envelope::open_with_card`]), naming the share whose opening fails, then
/// [`recombine`]s them against the shard file's ceremony id and root fingerprint.
pub fn recover(
    shards: &crate::shardfile::ShardFile,
    indices: &[u8],
    open: &mut dyn FnMut(
        &crate::shardfile::SealedShare,
    ) -> Result<Envelope, crate::envelope::OpenShareError>,
) -> Result<Recovered, RecoverError> {
    let mut opened = Vec::with_capacity(indices.len());
    for &index in indices {
        let share = shards
            .share(index)
            .ok_or(RecoverError::NoSuchShare { index })?;
        let env = open(share).map_err(|source| RecoverError::Open {
            index,
            holder: share.holder.clone(),
            source,
        })?;
        opened.push(env);
    }
    let refs: Vec<&Envelope> = opened.iter().collect();
    Ok(recombine(&shards.expected(), &refs)?)
}

/// At most this many M-subsets are tried when looking for a consistent one.
const SEARCH_BOUND: u128 = 10_000;

/// The first M-subset (in lexicographic order of positions) that matches the commitment.
fn find_consistent_subset(
    shares: &[&ShareBytes],
    m: usize,
    header: &EnvelopeHeader,
) -> Result<Option<Vec<usize>>, RecombineError> {
    let mut tried: u128 = 0;
    let mut found = None;
    let mut disagreement = None;
    for_each_subset(shares.len(), m, &mut |subset| {
        tried += 1;
        let picked: Vec<&ShareBytes> = subset.iter().map(|&i| shares[i]).collect();
        match shamir::combine(&picked, header.threshold) {
            Ok(c) if commitment_ok(&c, header) => {
                found = Some(subset.to_vec());
                return false;
            }
            // The two Shamir implementations disagreeing is not a wrong subset: stop and say so.
            Err(e @ ShamirError::ImplementationsDisagree { .. }) => {
                disagreement = Some(e);
                return false;
            }
            _ => {}
        }
        tried < SEARCH_BOUND
    });
    if let Some(e) = disagreement {
        return Err(e.into());
    }
    Ok(found)
}

/// Calls `f` with every k-subset of 0..n in lexicographic order until it returns false.
pub fn for_each_subset(n: usize, k: usize, f: &mut dyn FnMut(&[usize]) -> bool) {
    if k > n {
        return;
    }
    if k == 0 {
        f(&[]);
        return;
    }
    let mut idx: Vec<usize> = (0..k).collect();
    loop {
        if !f(&idx) {
            return;
        }
        let mut i = k;
        while i > 0 && idx[i - 1] == n - k + i - 1 {
            i -= 1;
        }
        if i == 0 {
            return;
        }
        idx[i - 1] += 1;
        for j in i..k {
            idx[j] = idx[j - 1] + 1;
        }
    }
}

/// C(n, k), or `u128::MAX` when it does not fit (C(255, 128) is about 5.7e75).
pub fn binomial(n: u64, k: u64) -> u128 {
    if k > n {
        return 0;
    }
    let k = k.min(n - k);
    let mut acc: u128 = 1;
    for i in 0..k {
        // acc * (n - i) / (i + 1) is C(n, i + 1) exactly; stop when it no longer fits.
        match acc.checked_mul(u128::from(n - i)) {
            Some(v) => acc = v / u128::from(i + 1),
            None => return u128::MAX,
        }
    }
    acc
}

/// Up to this many M-subsets, verification checks all of them.
pub const EXHAUSTIVE_BOUND: u128 = 20_000;
/// Above [`EXHAUSTIVE_BOUND`], this many uniformly random M-subsets are checked, in addition to
/// the N cyclic windows.
pub const RANDOM_SUBSETS: usize = 1_000;

/// How the M-subsets were checked.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SubsetReport {
    /// C(N, M).
    pub total: u128,
    /// Subsets actually recombined.
    pub checked: usize,
    /// Whether every subset was checked.
    pub exhaustive: bool,
}

impl SubsetReport {
    /// One-line description for the transcript.
    pub fn describe(&self) -> String {
        let total = if self.total == u128::MAX {
            "over-2^128".to_string()
        } else {
            self.total.to_string()
        };
        format!(
            "checked={} total={} policy={}",
            self.checked,
            total,
            if self.exhaustive {
                "all"
            } else {
                "cyclic-windows+random"
            }
        )
    }
}

/// Verifies that M-subsets of `shares` recombine to `secret`: all of them when
/// C(N, M) <= [`EXHAUSTIVE_BOUND`]; otherwise the N cyclic windows {i, i+1, ..., i+M-1 mod N}
/// (every share in M subsets, every adjacent pair together) plus [`RANDOM_SUBSETS`] uniformly
/// random subsets drawn from the DRBG. Returns the first failing subset's positions otherwise.
pub fn verify_subsets(
    secret: &RootSecret,
    shares: &[&ShareBytes],
    threshold: u8,
    rng: &mut dyn SecretRng,
) -> Result<SubsetReport, Vec<usize>> {
    let n = shares.len();
    let m = usize::from(threshold);
    let total = binomial(n as u64, m as u64);
    let mut checked = 0usize;
    let mut failed: Option<Vec<usize>> = None;
    let mut check = |subset: &[usize]| -> bool {
        checked += 1;
        let picked: Vec<&ShareBytes> = subset.iter().map(|&i| shares[i]).collect();
        let ok = shamir::combine(&picked, threshold)
            .ok()
            .and_then(|c| RootSecret::from_slice(&c))
            .is_some_and(|c| c.ct_eq(secret));
        if !ok {
            failed = Some(subset.iter().map(|i| i + 1).collect());
        }
        ok
    };
    let exhaustive = total <= EXHAUSTIVE_BOUND;
    if exhaustive {
        for_each_subset(n, m, &mut check);
    } else {
        let mut go = true;
        for start in 0..n {
            let window: Vec<usize> = (0..m).map(|k| (start + k) % n).collect();
            if !check(&window) {
                go = false;
                break;
            }
        }
        let mut pool: Vec<usize> = (0..n).collect();
        for _ in 0..RANDOM_SUBSETS {
            if !go {
                break;
            }
            // Partial Fisher-Yates with rejection sampling (no modulo bias).
            for k in 0..m {
                let range = n - k;
                let j = k + uniform_below(rng, range);
                pool.swap(k, j);
            }
            let mut subset = pool[..m].to_vec();
            subset.sort_unstable();
            go = check(&subset);
        }
    }
    match failed {
        Some(f) => Err(f),
        None => Ok(SubsetReport {
            total,
            checked,
            exhaustive,
        }),
    }
}

fn uniform_below(rng: &mut dyn SecretRng, bound: usize) -> usize {
    let bound = u32::try_from(bound).expect("at most 255");
    let zone = u32::MAX - (u32::MAX % bound);
    loop {
        let mut b = [0u8; 4];
        rng.fill(&mut b);
        let v = u32::from_le_bytes(b);
        if v < zone {
            return usize::try_from(v % bound).expect("fits");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn binomials() {
        assert_eq!(binomial(5, 3), 10);
        assert_eq!(binomial(60, 30), 118_264_581_564_861_424);
        assert_eq!(binomial(255, 128), u128::MAX);
        assert_eq!(binomial(255, 1), 255);
        assert_eq!(binomial(3, 4), 0);
    }

    use crate::rng::tests::seeded;
    use crate::shamir;

    #[test]
    fn exhaustive_below_the_bound_sampled_above() {
        let secret = RootSecret::generate(&mut seeded(1));
        let shares = shamir::split(&secret, 3, 6, &mut seeded(2)).unwrap();
        let refs: Vec<&ShareBytes> = shares.iter().collect();
        let r = verify_subsets(&secret, &refs, 3, &mut seeded(3)).unwrap();
        assert_eq!(
            r,
            SubsetReport {
                total: 20,
                checked: 20,
                exhaustive: true
            }
        );

        // C(20, 10) = 184,756 > 20,000: N windows plus the random sample.
        let shares = shamir::split(&secret, 10, 20, &mut seeded(4)).unwrap();
        let refs: Vec<&ShareBytes> = shares.iter().collect();
        let r = verify_subsets(&secret, &refs, 10, &mut seeded(5)).unwrap();
        assert_eq!(
            r,
            SubsetReport {
                total: 184_756,
                checked: 20 + RANDOM_SUBSETS,
                exhaustive: false
            }
        );
        assert_eq!(
            r.describe(),
            "checked=1020 total=184756 policy=cyclic-windows+random"
        );
    }

    #[test]
    fn a_corrupt_share_fails_every_policy() {
        let secret = RootSecret::generate(&mut seeded(6));
        for (m, n) in [(3u8, 6u8), (10, 20)] {
            let mut shares = shamir::split(&secret, m, n, &mut seeded(7)).unwrap();
            let mut bad = shares[4].expose_secret().to_vec();
            bad[9] ^= 0x80;
            shares[4] = ShareBytes::from_slice(&bad);
            let refs: Vec<&ShareBytes> = shares.iter().collect();
            let failed = verify_subsets(&secret, &refs, m, &mut seeded(8)).unwrap_err();
            assert!(
                failed.contains(&5),
                "{m}-of-{n}: failing subset {failed:?} should contain share 5"
            );
            assert_eq!(failed.len(), usize::from(m));
        }
        // A different secret fails at the first subset.
        let other = RootSecret::generate(&mut seeded(9));
        let shares = shamir::split(&secret, 2, 3, &mut seeded(10)).unwrap();
        let refs: Vec<&ShareBytes> = shares.iter().collect();
        assert_eq!(
            verify_subsets(&other, &refs, 2, &mut seeded(11)).unwrap_err(),
            vec![1, 2]
        );
    }

    #[test]
    fn uniform_below_covers_the_range() {
        let mut rng = seeded(12);
        let mut seen = [0u32; 7];
        for _ in 0..7000 {
            seen[uniform_below(&mut rng, 7)] += 1;
        }
        assert!(seen.iter().all(|&c| (800..=1200).contains(&c)), "{seen:?}");
    }

    #[test]
    fn subsets_enumerated_once() {
        let mut seen = Vec::new();
        for_each_subset(6, 3, &mut |s| {
            seen.push(s.to_vec());
            true
        });
        assert_eq!(seen.len(), 20);
        let mut dedup = seen.clone();
        dedup.sort();
        dedup.dedup();
        assert_eq!(dedup.len(), 20);
        assert!(seen.iter().all(|s| s.windows(2).all(|w| w[0] < w[1])));
    }
}
