//! A T=1 front for a virtual card: what a T=1 card (ISO/IEC 7816-3 clause 11) does with the
//! blocks a TPDU-level reader forwards. Written apart from the card stack's `t1` module, so
//! the two check each other. To exercise the host, it receives at most `ifsc` bytes per block
//! (32: commands get chained), sends at most `send_max` bytes per block (responses get
//! chained), can ask for a waiting time extension before answering one chosen APDU, and can
//! corrupt one chosen reply block (its LRC) so the host must ask for it again. Behind it, the
//! card answers short APDUs like [`T0Card::short_apdu`] (61xx beyond Le).
//!
//! In negotiable mode ([`T1Card::negotiable`]) its ATR offers T=0 first and T=1 second, so it
//! runs T=1 only after a PPS exchange (ISO/IEC 7816-3 clause 9) asks for it as the first
//! exchange after the ATR: it echoes a correct request (9.3), stays mute after an erroneous one
//! (a wrong PCK, a malformed or unexpected request) until the next power cycle, and answers no
//! block while T=1 is not in force.

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
    /// PPS requests received, and those left without an answer (erroneous or unexpected).
    pub pps: u64,
    pub pps_unanswered: u64,
    /// Blocks left without an answer because T=1 was not in force.
    pub refused_blocks: u64,
}

/// Where the card stands with its protocol since the last power cycle.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    /// Right after the ATR: a PPS request may come; any other exchange starts the first
    /// protocol the ATR offers, at the default Fi/Di.
    AfterAtr,
    /// T=1 in force, at this Fi/Di (TA1's coding; 0x11 the default).
    T1 { fidi: u8 },
    /// T=0 in force (the first protocol offered, or the one a PPS kept): blocks get no answer.
    T0,
    /// After a PPS request it did not answer (erroneous, for a protocol not offered, or not
    /// the first exchange after the ATR): no answer to anything until the next power cycle.
    Mute,
}

pub struct T1Card {
    card: T0Card,
    /// Negotiable mode with T=0 offered first (then T=1), and the ATR's TA1 if any.
    t0_first: bool,
    ta1: Option<u8>,
    mode: Mode,
    /// Answer a PPS request for T=1 with `FF 00 FF` (T=0 kept, no PPS1): the card refuses T=1.
    pub pps_keeps_t0: bool,
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
            t0_first: false,
            ta1: None,
            mode: Mode::AfterAtr,
            pps_keeps_t0: false,
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

    /// As [`T1Card::new`], but in negotiable mode offering T=0 first and T=1 second (no TA2),
    /// with `ta1` (Fi/Di the card can run) if given: T=1 only after a PPS exchange.
    pub fn negotiable(card: VirtualCard, ifsc: u8, send_max: usize, ta1: Option<u8>) -> Self {
        Self {
            t0_first: true,
            ta1,
            ..Self::new(card, ifsc, send_max)
        }
    }

    pub fn card(&self) -> &VirtualCard {
        self.card.card()
    }

    pub fn mode(&self) -> Mode {
        self.mode
    }

    /// The ATR's TA1, if it has one.
    pub fn ta1(&self) -> Option<u8> {
        self.ta1
    }

    /// Whether the card runs T=1 only after a PPS asking for it (negotiable mode, T=0 first,
    /// and no exchange yet since the ATR).
    pub fn needs_pps(&self) -> bool {
        self.t0_first && self.mode == Mode::AfterAtr
    }

    /// Whether the card answers a T=1 block now: T=1 in force, or right after the ATR when
    /// T=1 is the first protocol offered.
    pub fn runs_t1(&self) -> bool {
        match self.mode {
            Mode::T1 { .. } => true,
            Mode::AfterAtr => !self.t0_first,
            Mode::T0 | Mode::Mute => false,
        }
    }

    /// The ATR. By default TD1 and TD2 announce T=1 (and nothing else), TA3 = IFSC, TB3 = BWI 4
    /// and CWI 5, no TC3 (LRC). In negotiable mode: TA1 if given, TD1 announces T=0 and TD2
    /// T=1 with the same TA3 and TB3. Then the virtual card's historical bytes; TCK.
    pub fn atr(&self) -> Vec<u8> {
        let historical = &crate::ATR[2..];
        let mut atr = vec![0x3B, 0x80 | historical.len() as u8];
        if self.t0_first {
            if let Some(ta1) = self.ta1 {
                atr[1] |= 0x10;
                atr.push(ta1);
            }
            // TD1: TD2 follows, T=0.
            atr.push(0x80);
        } else {
            // TD1: TD2 follows, T=1.
            atr.push(0x81);
        }
        // TD2: TA3 and TB3 follow, T=1.
        atr.extend_from_slice(&[0x31, self.ifsc, 0x45]);
        atr.extend_from_slice(historical);
        atr.push(lrc(&atr[1..]));
        atr
    }

    /// Power cycle: the card and the block protocol start over.
    pub fn power_cycle(&mut self) {
        self.card.power_cycle();
        self.reset_protocol();
        self.ifsd = 32;
        self.mode = Mode::AfterAtr;
    }

    /// Answer a PPS request (PPSS FF, PPS0, PPS1 to PPS3 as PPS0 says, PCK), or `None` for no
    /// answer. Taken only as the first exchange after the ATR and for a protocol the ATR
    /// offers; PPS1 is echoed when it is the ATR's TA1 or the default 0x11, else left out (the
    /// default Fi/Di stays); PPS2 and PPS3 are left out.
    pub fn pps(&mut self, req: &[u8]) -> Option<Vec<u8>> {
        self.stats.pps += 1;
        let answer = self.pps_answer(req);
        if answer.is_none() {
            self.stats.pps_unanswered += 1;
            self.mode = Mode::Mute;
        }
        answer
    }

    fn pps_answer(&mut self, req: &[u8]) -> Option<Vec<u8>> {
        if self.mode != Mode::AfterAtr || req.len() < 3 || req[0] != 0xFF {
            return None;
        }
        let pps0 = req[1];
        let optional = (pps0 >> 4 & 0x07).count_ones() as usize;
        if req.len() != 3 + optional || lrc(req) != 0 {
            return None;
        }
        let protocol = pps0 & 0x0F;
        let offered = match protocol {
            0 => self.t0_first,
            1 => true,
            _ => false,
        };
        if !offered {
            return None;
        }
        if protocol == 1 && self.pps_keeps_t0 {
            self.mode = Mode::T0;
            return Some(vec![0xFF, 0x00, 0xFF]);
        }
        let pps1 = (pps0 & 0x10 != 0).then(|| req[2]);
        let fidi = pps1.filter(|&f| f == 0x11 || Some(f) == self.ta1);
        let mut answer = vec![0xFF, protocol | if fidi.is_some() { 0x10 } else { 0 }];
        answer.extend(fidi);
        answer.push(lrc(&answer));
        self.mode = match protocol {
            1 => Mode::T1 {
                fidi: fidi.unwrap_or(0x11),
            },
            _ => Mode::T0,
        };
        Some(answer)
    }

    fn reset_protocol(&mut self) {
        self.ns = false;
        self.nr = false;
        self.rx.clear();
        self.tx.clear();
        self.last.clear();
    }

    /// Answer one block from the host; empty: no answer (T=1 is not in force: see
    /// [`T1Card::runs_t1`]).
    pub fn block(&mut self, raw: &[u8]) -> Vec<u8> {
        self.stats.blocks += 1;
        if self.mode == Mode::AfterAtr {
            // Any exchange but a PPS starts the first protocol offered, at the default Fi/Di.
            self.mode = if self.t0_first {
                Mode::T0
            } else {
                Mode::T1 { fidi: 0x11 }
            };
        }
        if !matches!(self.mode, Mode::T1 { .. }) {
            self.stats.refused_blocks += 1;
            return Vec::new();
        }
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

    // Negotiable mode: TA1, T=0 first, T=1 second; no block is answered before the PPS (nor
    // after, once T=0 is in force); a wrong PCK leaves the card mute until a power cycle; the
    // request for T=1 at TA1 is echoed, one at a Fi/Di not offered is answered at the default;
    // a card keeping T=0 answers FF 00 FF.
    #[test]
    fn negotiable_mode_needs_a_pps_for_t1() {
        let mut c = T1Card::negotiable(VirtualCard::new(3), 254, 254, Some(0x96));
        let atr = c.atr();
        assert_eq!(&atr[..7], [0x3B, 0x9A, 0x96, 0x80, 0x31, 0xFE, 0x45]);
        assert_eq!(&atr[7..atr.len() - 1], &crate::ATR[2..]);
        assert_eq!(lrc(&atr[1..]), 0);
        let ifs = frame(0xC1, &[0xFE]);
        let pps = [0xFF, 0x11, 0x96, 0xFF ^ 0x11 ^ 0x96];
        assert!(c.needs_pps() && !c.runs_t1());
        assert!(c.block(&ifs).is_empty());
        assert_eq!((c.mode(), c.pps(&pps)), (Mode::T0, None));

        c.power_cycle();
        assert_eq!(c.pps(&[0xFF, 0x11, 0x96, 0x00]), None);
        assert_eq!(c.mode(), Mode::Mute);
        assert!(c.block(&ifs).is_empty());

        c.power_cycle();
        assert_eq!(c.pps(&pps).as_deref(), Some(&pps[..]));
        assert_eq!(c.mode(), Mode::T1 { fidi: 0x96 });
        assert!(c.runs_t1() && !c.needs_pps());
        assert_eq!(c.block(&ifs), frame(0xE1, &[0xFE]));
        assert_eq!(c.pps(&pps), None, "a PPS only right after the ATR");

        c.power_cycle();
        let faster = [0xFF, 0x11, 0x18, 0xFF ^ 0x11 ^ 0x18];
        assert_eq!(c.pps(&faster), Some(vec![0xFF, 0x01, 0xFE]));
        assert_eq!(c.mode(), Mode::T1 { fidi: 0x11 });

        c.power_cycle();
        c.pps_keeps_t0 = true;
        assert_eq!(c.pps(&pps), Some(vec![0xFF, 0x00, 0xFF]));
        assert!(c.block(&ifs).is_empty());
        assert_eq!(
            (c.stats.pps, c.stats.pps_unanswered, c.stats.refused_blocks),
            (6, 3, 3)
        );
    }

    // The card of `T1Card::new` runs T=1 from the ATR on, and takes a PPS for T=1 as its first
    // exchange too.
    #[test]
    fn t1_first_card_takes_blocks_or_a_pps() {
        let mut c = T1Card::new(VirtualCard::new(4), 32, 64);
        assert!(c.runs_t1() && !c.needs_pps());
        assert_eq!(c.pps(&[0xFF, 0x00, 0xFF]), None, "T=0 is not offered");
        c.power_cycle();
        assert_eq!(c.pps(&[0xFF, 0x01, 0xFE]), Some(vec![0xFF, 0x01, 0xFE]));
        assert_eq!(c.block(&frame(0xC1, &[0xFE])), frame(0xE1, &[0xFE]));
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
