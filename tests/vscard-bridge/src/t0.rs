//! A T=0 front for a virtual card: what a real T=0 card does with TPDUs that QEMU's usb-ccid
//! (TPDU level, T=0) forwards verbatim. Data never comes back in the same exchange as command
//! data (case 4 answers 61xx), and nothing longer than the TPDU asks for (or 256 bytes)
//! comes back at once: the rest waits for GET RESPONSE. Chained commands (CLA bit 0x10) are
//! put together as a card does.

use crate::virtual_card::VirtualCard;

pub struct T0Card {
    card: VirtualCard,
    pending: Vec<u8>,
    pending_sw: [u8; 2],
    /// ISO 7816-4 command chaining, as a card (or a token's APDU dispatcher) does it: the
    /// data of the parts so far (CLA bit 0x10: more follow, each answered 9000).
    chain: Vec<u8>,
}

impl T0Card {
    pub fn new(card: VirtualCard) -> Self {
        Self {
            card,
            pending: Vec::new(),
            pending_sw: [0x90, 0x00],
            chain: Vec::new(),
        }
    }

    pub fn card(&self) -> &VirtualCard {
        &self.card
    }

    /// Power cycle (card inserted again).
    pub fn power_cycle(&mut self) {
        self.pending.clear();
        self.chain.clear();
        self.card.reset();
    }

    /// Answer one TPDU: `CLA INS P1 P2 P3 [data]`.
    pub fn tpdu(&mut self, tpdu: &[u8]) -> Vec<u8> {
        if tpdu.len() < 5 {
            return vec![0x67, 0x00];
        }
        let p3 = tpdu[4];
        let body = &tpdu[5..];
        let le = if p3 == 0 { 256 } else { usize::from(p3) };
        if tpdu[1] == 0xC0 && body.is_empty() && !self.pending.is_empty() {
            return self.serve_pending(le);
        }
        self.pending.clear();
        let apdu = if body.is_empty() {
            // Case 1 or 2: P3 is Le.
            tpdu.to_vec()
        } else {
            if body.len() != usize::from(p3) {
                return vec![0x67, 0x00];
            }
            // Case 3 or 4: the card itself knows whether it has data to return.
            let mut a = tpdu.to_vec();
            a.push(0x00);
            a
        };
        let expected = if body.is_empty() { le } else { 256 };
        let Some(apdu) = self.dechain(&apdu, body, expected) else {
            return vec![0x90, 0x00];
        };
        let resp = self.card.transmit(&apdu);
        let (data, sw) = resp.split_at(resp.len() - 2);
        if data.is_empty() {
            return sw.to_vec();
        }
        if !body.is_empty() || data.len() > le {
            self.pending = data.to_vec();
            self.pending_sw = [sw[0], sw[1]];
            return vec![0x61, self.pending.len().min(256) as u8];
        }
        resp
    }

    /// Answer one short APDU the way a card without extended length does: at most Le
    /// (or 256) bytes at once, the rest through GET RESPONSE (61xx).
    pub fn short_apdu(&mut self, apdu: &[u8]) -> Vec<u8> {
        if apdu.len() >= 4 && apdu[1] == 0xC0 && !self.pending.is_empty() {
            let le = match apdu.get(4) {
                Some(0) | None => 256,
                Some(&b) => usize::from(b),
            };
            return self.serve_pending(le);
        }
        self.pending.clear();
        let view = iso7816::command::CommandView::try_from(apdu).ok();
        let le = view.as_ref().map(|c| c.expected()).unwrap_or(0).min(256);
        let whole = match view {
            Some(c) => match self.dechain(apdu, c.data(), c.expected()) {
                Some(whole) => whole,
                None => return vec![0x90, 0x00],
            },
            None => apdu.to_vec(),
        };
        let resp = self.card.transmit(&whole);
        let (data, sw) = resp.split_at(resp.len() - 2);
        if data.len() <= le {
            return resp;
        }
        self.pending = data[le..].to_vec();
        self.pending_sw = [sw[0], sw[1]];
        let mut out = data[..le].to_vec();
        out.extend_from_slice(&[0x61, self.pending.len().min(256) as u8]);
        out
    }

    /// One command with its data and expected length: a chained part (CLA bit 0x10) is kept
    /// and `None` returned (answer 9000); the last part gives the whole command, extended
    /// length when it does not fit a short one. Unchained commands pass as they are.
    fn dechain(&mut self, apdu: &[u8], data: &[u8], expected: usize) -> Option<Vec<u8>> {
        if apdu[0] & 0x10 != 0 {
            self.chain.extend_from_slice(data);
            return None;
        }
        if self.chain.is_empty() {
            return Some(apdu.to_vec());
        }
        let mut all = std::mem::take(&mut self.chain);
        all.extend_from_slice(data);
        let mut out = apdu[..4].to_vec();
        if all.len() <= 255 && expected <= 256 {
            out.push(all.len() as u8);
            out.extend_from_slice(&all);
            if expected > 0 {
                out.push(expected as u8);
            }
        } else {
            out.push(0);
            out.extend_from_slice(&(all.len() as u16).to_be_bytes());
            out.extend_from_slice(&all);
            if expected > 0 {
                out.extend_from_slice(&(expected.min(65_536) as u16).to_be_bytes());
            }
        }
        Some(out)
    }

    fn serve_pending(&mut self, le: usize) -> Vec<u8> {
        let n = le.min(self.pending.len());
        let mut out: Vec<u8> = self.pending.drain(..n).collect();
        if self.pending.is_empty() {
            out.extend_from_slice(&self.pending_sw);
        } else {
            out.extend_from_slice(&[0x61, self.pending.len().min(256) as u8]);
        }
        out
    }
}
