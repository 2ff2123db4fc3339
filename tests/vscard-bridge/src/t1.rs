//! A T=1 front for a virtual card: what a T=1 card (ISO/IEC 7816-3 clause 11) does with the
//! blocks a TPDU-level reader forwards. Written apart from the card stack's `t1` module, so
//! the two check each other. To exercise the host, it receives at most `ifsc` bytes per block
//! (32: commands get chained), sends at most `send_max` bytes per block (responses get
//! chained), can ask for a waiting time extension before answering one chosen APDU, and can
//! corrupt one chosen reply block (its LRC) so the host must ask for it again. Behind it, the
//! card answers short APDUs like [`T0Card::short_apdu`] (61xx beyond Le).

use crate::T0Card;
use crate::virtual_card::VirtualCard;

/// What the front saw and did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct T1CardStats {
    /// Blocks received from the host.
    pub blocks: u64,
    /// APDUs the card answered.
    pub apdus: u64,
    /// I-blocks with the M bit received (chained command parts).
    pub chained_in: u64,
    /// I-blocks with the M bit sent (chained response parts).
    pub chained_out: u64,
    /// S(WTX request) sent.
    pub wtx: u64,
    /// Reply blocks sent with a wrong LRC.
    pub corrupted: u64,
    /// Blocks sent again because the host asked (R-block with an error or old N(R)).
    pub resent: u64,
    /// S(IFS request) and S(RESYNCH request) received.
    pub ifs_requests: u64,
    pub resynchs: u64,
    /// IFSD the host announced last.
    pub ifsd: u64,
}

pub struct T1Card {
    card: T0Card,
    ifsc: u8,
    send_max: usize,
    ifsd: usize,
    /// N(S) of the card's next I-block; N(S) expected on the host's next I-block.
    ns: bool,
    nr: bool,
    rx: Vec<u8>,
    tx: Vec<u8>,
    /// The last block sent (as it should have arrived), for retransmissions.
    last: Vec<u8>,
    replies: u64,
    /// Ask for a WTX before answering this APDU (1-based).
    pub wtx_on_apdu: Option<u64>,
    /// Corrupt this reply block (1-based).
    pub corrupt_reply: Option<u64>,
    pub stats: T1CardStats,
}

fn lrc(b: &[u8]) -> u8 {
    b.iter().fold(0, |a, x| a ^ x)
}

fn frame(pcb: u8, inf: &[u8]) -> Vec<u8> {
    let mut b = vec![0x00, pcb, inf.len() as u8];
    b.extend_from_slice(inf);
    b.push(lrc(&b));
    b
}

fn r_block(nr: bool, code: u8) -> Vec<u8> {
    frame(0x80 | (u8::from(nr) << 4) | code, &[])
}

impl T1Card {
    /// A T=1 card that receives `ifsc` bytes per block and sends at most `send_max`.
    pub fn new(card: VirtualCard, ifsc: u8, send_max: usize) -> Self {
        Self {
            card: T0Card::new(card),
            ifsc,
            send_max: send_max.clamp(1, 254),
            ifsd: 32,
            ns: false,
            nr: false,
            rx: Vec::new(),
            tx: Vec::new(),
            last: Vec::new(),
            replies: 0,
            wtx_on_apdu: None,
            corrupt_reply: None,
            stats: T1CardStats::default(),
        }
    }

    pub fn card(&self) -> &VirtualCard {
        self.card.card()
    }

    /// The ATR: TD1 and TD2 announce T=1 (and nothing else), TA3 = IFSC, TB3 = BWI 4 and
    /// CWI 5, no TC3 (LRC); the virtual card's historical bytes; TCK.
    pub fn atr(&self) -> Vec<u8> {
        let historical = &crate::ATR[2..];
        let mut atr = vec![
            0x3B,
            0x80 | historical.len() as u8,
            0x81,
            0x31,
            self.ifsc,
            0x45,
        ];
        atr.extend_from_slice(historical);
        atr.push(lrc(&atr[1..]));
        atr
    }

    /// Power cycle: the card and the block protocol start over.
    pub fn power_cycle(&mut self) {
        self.card.power_cycle();
        self.reset_protocol();
        self.ifsd = 32;
    }

    fn reset_protocol(&mut self) {
        self.ns = false;
        self.nr = false;
        self.rx.clear();
        self.tx.clear();
        self.last.clear();
    }

    /// Answer one block from the host.
    pub fn block(&mut self, raw: &[u8]) -> Vec<u8> {
        self.stats.blocks += 1;
        let reply = self.answer(raw);
        self.last = reply.clone();
        self.replies += 1;
        if self.corrupt_reply == Some(self.replies) {
            self.stats.corrupted += 1;
            let mut bad = reply;
            *bad.last_mut().expect("a block") ^= 0x5A;
            return bad;
        }
        reply
    }

    fn answer(&mut self, raw: &[u8]) -> Vec<u8> {
        if raw.len() < 4 || raw.len() != 4 + usize::from(raw[2]) {
            return r_block(self.nr, 2);
        }
        if lrc(raw) != 0 {
            return r_block(self.nr, 1);
        }
        let (pcb, inf) = (raw[1], &raw[3..raw.len() - 1]);
        match pcb & 0xC0 {
            0x00 | 0x40 => {
                let (ns, more) = (pcb & 0x40 != 0, pcb & 0x20 != 0);
                if ns != self.nr || inf.len() > usize::from(self.ifsc) {
                    return r_block(self.nr, 2);
                }
                self.nr = !self.nr;
                self.rx.extend_from_slice(inf);
                if more {
                    self.stats.chained_in += 1;
                    return r_block(self.nr, 0);
                }
                let apdu = std::mem::take(&mut self.rx);
                self.tx = self.card.short_apdu(&apdu);
                self.stats.apdus += 1;
                if self.wtx_on_apdu == Some(self.stats.apdus) {
                    self.stats.wtx += 1;
                    return frame(0xC3, &[2]);
                }
                self.next_part()
            }
            0x80 => {
                let nr = pcb & 0x10 != 0;
                if pcb & 0x0F == 0 && nr == self.ns && !self.tx.is_empty() {
                    self.next_part()
                } else {
                    self.stats.resent += 1;
                    self.last.clone()
                }
            }
            _ => match (pcb, inf) {
                (0xC1, &[v]) if v != 0 && v != 0xFF => {
                    self.stats.ifs_requests += 1;
                    self.stats.ifsd = u64::from(v);
                    self.ifsd = usize::from(v);
                    frame(0xE1, &[v])
                }
                (0xC0, &[]) => {
                    self.stats.resynchs += 1;
                    self.reset_protocol();
                    frame(0xE0, &[])
                }
                (0xE3, &[_]) if !self.tx.is_empty() => self.next_part(),
                _ => r_block(self.nr, 2),
            },
        }
    }

    fn next_part(&mut self) -> Vec<u8> {
        let n = self.tx.len().min(self.send_max).min(self.ifsd);
        let part: Vec<u8> = self.tx.drain(..n).collect();
        let more = !self.tx.is_empty();
        if more {
            self.stats.chained_out += 1;
        }
        let b = frame((u8::from(self.ns) << 6) | (u8::from(more) << 5), &part);
        self.ns = !self.ns;
        b
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn atr_announces_t1_with_the_ifsc() {
        let c = T1Card::new(VirtualCard::new(1), 32, 64);
        let atr = c.atr();
        assert_eq!(&atr[..6], [0x3B, 0x8A, 0x81, 0x31, 0x20, 0x45]);
        assert_eq!(lrc(&atr[1..]), 0);
    }

    // SELECT of the OpenPGP application in two chained blocks, a corrupted answer asked for
    // again, and S(IFS).
    #[test]
    fn chained_select_and_a_resend() {
        let mut c = T1Card::new(VirtualCard::new(2), 4, 64);
        c.corrupt_reply = Some(3);
        assert_eq!(c.block(&frame(0xC1, &[0xFE])), frame(0xE1, &[0xFE]));
        let select = [
            0x00, 0xA4, 0x04, 0x00, 0x06, 0xD2, 0x76, 0x00, 0x01, 0x24, 0x01,
        ];
        assert_eq!(c.block(&frame(0x20, &select[..4])), r_block(true, 0));
        let bad = c.block(&frame(0x60, &select[4..8]));
        assert_ne!(lrc(&bad), 0);
        assert_eq!(c.block(&r_block(false, 1)), r_block(false, 0));
        let answer = c.block(&frame(0x00, &select[8..]));
        assert_eq!(&answer[..2], [0x00, 0x00]);
        assert_eq!(&answer[answer.len() - 3..answer.len() - 1], [0x90, 0x00]);
        assert_eq!(
            (c.stats.chained_in, c.stats.resent, c.stats.corrupted),
            (2, 1, 1)
        );
    }
}
