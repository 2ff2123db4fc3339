//! An OpenPGP card's GET CHALLENGE (ISO 7816-4, OpenPGP card spec 7.2.15) as a source, through
//! a small trait the card stack implements, so this crate needs no smart-card code.

use zeroize::Zeroizing;

use crate::source::{Conditioning, DeviceKey, Source, SourceError, SourceInfo, SourceKind};

/// What the card stack provides. Implemented by the `cards` crate for a connected card.
pub trait ChallengeCard: Send {
    /// Stable identity of the card, e.g. its application identifier (AID) or
    /// manufacturer + serial; it names the card on screen and decides independence (two
    /// sources with the same identity are one device).
    fn identity(&self) -> String;

    /// Most bytes one GET CHALLENGE may ask for (the card's extended capabilities say; at
    /// least 1).
    fn max_challenge_len(&self) -> usize;

    /// Sends GET CHALLENGE for exactly `len` bytes (`len <= max_challenge_len()`) and returns
    /// the card's answer without the status word.
    fn get_challenge(
        &mut self,
        len: usize,
    ) -> Result<Zeroizing<Vec<u8>>, Box<dyn std::error::Error + Send + Sync>>;
}

pub struct CardSource<C: ChallengeCard> {
    card: C,
    info: SourceInfo,
}

impl<C: ChallengeCard> CardSource<C> {
    pub fn new(card: C) -> Self {
        let id = card.identity();
        CardSource {
            info: SourceInfo {
                kind: SourceKind::OpenPgpCard,
                identity: format!("OpenPGP card {id}"),
                device: DeviceKey(format!("openpgp-card:{id}")),
                conditioning: Conditioning::Whitened,
                sample_bits: 8,
                claimed_h: super::WHITENED_CLAIM,
                claim_basis: "GET CHALLENGE returns the card's DRBG output, seeded by its TRNG",
                virtual_device: None,
            },
            card,
        }
    }
}

impl<C: ChallengeCard> Source for CardSource<C> {
    fn info(&self) -> &SourceInfo {
        &self.info
    }

    fn fill(&mut self, buf: &mut [u8]) -> Result<(), SourceError> {
        let max = self.card.max_challenge_len().max(1);
        for chunk in buf.chunks_mut(max) {
            let got = self
                .card
                .get_challenge(chunk.len())
                .map_err(|e| SourceError::Card {
                    identity: self.info.identity.clone(),
                    source: e,
                })?;
            if got.len() != chunk.len() {
                return Err(SourceError::CardLength {
                    identity: self.info.identity.clone(),
                    got: got.len(),
                    wanted: chunk.len(),
                });
            }
            chunk.copy_from_slice(&got);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Counting {
        next: u8,
        calls: Vec<usize>,
        short: bool,
    }

    impl ChallengeCard for Counting {
        fn identity(&self) -> String {
            "D2760001240103040006123456780000".into()
        }
        fn max_challenge_len(&self) -> usize {
            100
        }
        fn get_challenge(
            &mut self,
            len: usize,
        ) -> Result<Zeroizing<Vec<u8>>, Box<dyn std::error::Error + Send + Sync>> {
            self.calls.push(len);
            let n = if self.short { len - 1 } else { len };
            let v = (0..n)
                .map(|_| {
                    self.next = self.next.wrapping_add(1);
                    self.next
                })
                .collect();
            Ok(Zeroizing::new(v))
        }
    }

    #[test]
    fn requests_are_split_at_the_card_limit() {
        let mut s = CardSource::new(Counting {
            next: 0,
            calls: vec![],
            short: false,
        });
        let mut buf = [0u8; 250];
        s.fill(&mut buf).unwrap();
        assert_eq!(s.card.calls, vec![100, 100, 50]);
        assert_eq!(buf[249], 250);
        assert_eq!(
            s.info().device,
            DeviceKey("openpgp-card:D2760001240103040006123456780000".into())
        );
    }

    #[test]
    fn a_short_answer_is_an_error() {
        let mut s = CardSource::new(Counting {
            next: 0,
            calls: vec![],
            short: true,
        });
        let err = s.fill(&mut [0u8; 10]).unwrap_err();
        assert!(
            matches!(
                err,
                SourceError::CardLength {
                    got: 9,
                    wanted: 10,
                    ..
                }
            ),
            "{err}"
        );
    }
}
