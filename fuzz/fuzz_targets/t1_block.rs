//! The T=1 block protocol against a hostile card: the input as one block (and as an ATR) for
//! the parsers, then whole APDU exchanges whose every answer block is fuzz-chosen. Decoding
//! must round-trip, every block the host sends must be valid, and each exchange must end
//! within a computed number of blocks even when the card's answers repeat forever.
#![no_main]

use std::time::Duration;

use cards::apdu::MAX_RESPONSE;
use cards::t1::{AtrInfo, Block, BlockTransport, Edc, Limits, MAX_INF, Params, T1, crc, lrc};
use cards::{Error, Result};
use libfuzzer_sys::fuzz_target;

/// One answer of the card, chosen by the input.
enum Answer {
    /// Bytes as they are (usually a bad EDC or length).
    Raw(Vec<u8>),
    /// PCB and information field, framed with NAD 0, LEN and the right EDC (or a wrong one).
    Framed {
        pcb: u8,
        inf: Vec<u8>,
        bad_edc: bool,
    },
    /// The reader reports no valid block (card mute, parity error, overrun): recoverable.
    Lost(u8),
    /// The card was pulled: final.
    Pulled,
}

/// Splits the input into answers: a kind byte, then for the kinds with bytes a length byte
/// and that many bytes.
fn answers(mut data: &[u8]) -> Vec<Answer> {
    let mut out = Vec::new();
    while let Some((&kind, rest)) = data.split_first() {
        data = rest;
        match kind % 5 {
            0..=2 => {
                let Some((&len, rest)) = data.split_first() else {
                    break;
                };
                let n = usize::from(len).min(rest.len());
                let bytes = &rest[..n];
                data = &rest[n..];
                out.push(match kind % 5 {
                    0 => Answer::Raw(bytes.to_vec()),
                    k => match bytes.split_first() {
                        Some((&pcb, inf)) => Answer::Framed {
                            pcb,
                            inf: inf.to_vec(),
                            bad_edc: k == 2,
                        },
                        None => Answer::Raw(Vec::new()),
                    },
                });
            }
            3 => out.push(Answer::Lost(kind / 5 % 3)),
            _ => out.push(Answer::Pulled),
        }
    }
    out
}

/// The card: plays the answers in order and then again from the start, forever (a card
/// stuck in a loop); checks each block the host sends.
struct Card {
    answers: Vec<Answer>,
    next: usize,
    edc: Edc,
    max_send: usize,
    exchanges: u64,
    /// More exchanges than this in one call of the state machine is a hang.
    bound: u64,
}

impl BlockTransport for Card {
    fn exchange(&mut self, block: &[u8], wait: Duration) -> Result<Vec<u8>> {
        self.exchanges += 1;
        assert!(
            self.exchanges <= self.bound,
            "T=1 exchange beyond its bound of {} blocks",
            self.bound
        );
        assert!(!wait.is_zero());
        let (nad, sent) = Block::decode(block, self.edc).expect("the host sent an invalid block");
        assert_eq!(nad, 0);
        if let Block::I { inf, .. } = &sent {
            assert!(!inf.is_empty() && inf.len() <= self.max_send);
        }
        if self.answers.is_empty() {
            return Err(mute(0));
        }
        let answer = &self.answers[self.next % self.answers.len()];
        self.next += 1;
        match answer {
            Answer::Raw(b) => Ok(b.clone()),
            Answer::Framed { pcb, inf, bad_edc } => {
                let inf = &inf[..inf.len().min(MAX_INF)];
                let mut b = vec![0, *pcb, inf.len() as u8];
                b.extend_from_slice(inf);
                match self.edc {
                    Edc::Lrc => b.push(lrc(&b)),
                    Edc::Crc => b.extend_from_slice(&crc(&b).to_be_bytes()),
                }
                if *bad_edc {
                    *b.last_mut().unwrap() ^= 0x01;
                }
                Ok(b)
            }
            Answer::Lost(k) => Err(mute(*k)),
            Answer::Pulled => Err(Error::NoCard),
        }
    }
}

fn mute(k: u8) -> Error {
    Error::Slot {
        code: 0xFC + k % 3,
        meaning: "lost block",
        during: "XfrBlock",
    }
}

/// Blocks one S-block exchange can take: every WTX, every retry, the answer.
fn s_exchange_bound(l: &Limits) -> u64 {
    u64::from(l.wtx + l.retries + 2)
}

/// Blocks one `transmit` of `len` bytes can take with `l` (see t1.rs): a resynchronisation
/// (with its IFSD negotiation) before, then up to `resynch_attempts` tries each followed by
/// one. A try: command parts (at worst one byte each) and response parts (one byte each, or
/// empty up to the card-request limit), each with its retries, plus the APDU's WTX and card
/// requests, plus S(ABORT) and its answer.
fn transmit_bound(l: &Limits, len: usize) -> u64 {
    let resynch = 2 * s_exchange_bound(l);
    let waits = (len + MAX_RESPONSE) as u64 + u64::from(l.card_requests) + 2;
    let one_try = waits * u64::from(l.retries + 2) + u64::from(l.wtx + l.card_requests) + 4;
    resynch + u64::from(l.resynch_attempts) * (one_try + resynch)
}

fn parsers(data: &[u8]) {
    for edc in [Edc::Lrc, Edc::Crc] {
        if let Ok((nad, block)) = Block::decode(data, edc) {
            // Decoding is strict, so encoding gives back the very bytes.
            assert_eq!(block.encode(nad, edc).as_slice(), data);
            let _ = format!("{block:?}");
        }
    }
    if let Ok(atr) = AtrInfo::parse(data) {
        assert!((1..=MAX_INF as u8).contains(&atr.t1.ifsc));
        assert!(atr.t1.bwi <= 9);
        assert!(atr.first_protocol() <= 15);
        let _ = atr.t1.bwt(4000);
    }
}

fuzz_target!(|data: &[u8]| {
    parsers(data);
    let [flags, ifsc, bw, max_send, len1, len2, ref rest @ ..] = *data else {
        return;
    };
    let edc = if flags & 1 != 0 { Edc::Crc } else { Edc::Lrc };
    let params = Params {
        ifsc: ifsc.clamp(1, MAX_INF as u8),
        bwi: (bw >> 4) % 10,
        cwi: bw & 0x0F,
        edc,
    };
    let limits = Limits::default();
    let max_send = usize::from(max_send).clamp(1, MAX_INF);
    let mut card = Card {
        answers: answers(rest),
        next: 0,
        edc,
        max_send,
        exchanges: 0,
        bound: 0,
    };
    // As the reader sets a session up: the ATR's parameters, the block waiting time at the
    // reader's clock, its message size; the IFSD negotiation when the reader leaves it to us.
    let mut session = T1::new(params, params.bwt(3580));
    session.set_max_send(max_send);
    if flags & 2 != 0 {
        card.bound = s_exchange_bound(&limits);
        let _ = session.negotiate_ifsd(&mut card, (flags >> 2).max(1) * 4);
        assert!((1..=MAX_INF as u8).contains(&session.ifsd()));
    }
    // Two APDUs (the second may start with the resynchronisation the first left due), long
    // enough to be chained at small IFSC.
    for len in [5 + usize::from(len1) * 3, 5 + usize::from(len2)] {
        let apdu: Vec<u8> = (0..len).map(|i| i as u8).collect();
        card.exchanges = 0;
        card.bound = transmit_bound(&limits, len);
        if let Ok(r) = session.transmit(&mut card, &apdu) {
            assert!(r.len() <= MAX_RESPONSE);
        }
        assert!((1..=MAX_INF as u8).contains(&session.ifsc()));
    }
    // A session whose card is gone answers with an error, never hangs.
    card.answers = vec![Answer::Pulled];
    card.exchanges = 0;
    card.bound = transmit_bound(&limits, 5);
    assert!(session.transmit(&mut card, &[0, 0xCA, 0, 0x6E, 0]).is_err());
});
