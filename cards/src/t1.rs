//! ISO/IEC 7816-3 clause 11, the T=1 block transmission protocol, for TPDU-level CCID
//! readers: block types, their encoding with LRC or CRC, the T=1 parameters of an ATR, and the
//! protocol state machine (chaining both ways, IFSD negotiation, waiting time extension,
//! retransmission, resynchronisation). Pure: blocks travel through a [`BlockTransport`], every
//! loop is bounded by a count and every wait by a [`Duration`] handed to the transport.
//!
//! Not implemented: NAD addressing (we send NAD 0 and do not look at the card's: one card per
//! slot needs none), the PPS exchange itself (the reader, or [`crate::reader`] before the
//! first block), and sending S(ABORT) ourselves.

use std::time::Duration;

use zeroize::Zeroizing;

use crate::error::{Error, Result};

/// Largest information field of a block (LEN 0xFF is reserved).
pub const MAX_INF: usize = 254;
/// IFSC and IFSD before any negotiation (ISO 7816-3 11.4.2).
pub const DEFAULT_IFS: u8 = 32;
/// The IFSD we ask the card for.
pub const WANTED_IFSD: u8 = 254;
/// Default BWI and CWI (ISO 7816-3 11.4.3).
pub const DEFAULT_BWI: u8 = 4;
pub const DEFAULT_CWI: u8 = 13;

/// Error detection code of the epilogue.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Edc {
    /// One byte, the XOR of all prologue and information bytes.
    Lrc,
    /// Two bytes (see [`crc`]).
    Crc,
}

impl Edc {
    pub fn bytes(self) -> usize {
        match self {
            Self::Lrc => 1,
            Self::Crc => 2,
        }
    }

    fn compute(self, data: &[u8]) -> Vec<u8> {
        match self {
            Self::Lrc => vec![lrc(data)],
            Self::Crc => crc(data).to_be_bytes().to_vec(),
        }
    }
}

/// Longitudinal redundancy check: XOR of all bytes.
pub fn lrc(data: &[u8]) -> u8 {
    data.iter().fold(0, |a, b| a ^ b)
}

/// The CRC of T=1 blocks: polynomial x^16 + x^12 + x^5 + 1 processed least significant bit
/// first (0x8408 reflected), initial value 0xFFFF, no final XOR; sent most significant byte
/// first. This is what libccid (the reader driver of pcsc-lite) computes, and so what cards
/// that work on Linux expect; ISO/IEC 7816-3 refers to ISO/IEC 13239 for it.
pub fn crc(data: &[u8]) -> u16 {
    let mut v: u16 = 0xFFFF;
    for &b in data {
        v ^= u16::from(b);
        for _ in 0..8 {
            v = if v & 1 != 0 {
                (v >> 1) ^ 0x8408
            } else {
                v >> 1
            };
        }
    }
    v
}

/// R-block error indication (PCB bits 4..1).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RCode {
    Ok,
    /// EDC or parity error.
    Edc,
    /// Any other error.
    Other,
}

/// S-blocks (PCB bits 6..1: response bit and type).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SBlock {
    ResynchRequest,
    ResynchResponse,
    IfsRequest(u8),
    IfsResponse(u8),
    AbortRequest,
    AbortResponse,
    WtxRequest(u8),
    WtxResponse(u8),
}

/// One T=1 block without its NAD and epilogue.
#[derive(Clone, PartialEq, Eq)]
pub enum Block {
    /// Information block: send sequence number N(S), more-data bit M, information field.
    I {
        ns: bool,
        more: bool,
        inf: Vec<u8>,
    },
    /// Receive ready block: N(R) is the N(S) of the I-block expected next.
    R {
        nr: bool,
        code: RCode,
    },
    S(SBlock),
}

impl Drop for Block {
    // Information fields carry PINs and key material.
    fn drop(&mut self) {
        if let Self::I { inf, .. } = self {
            zeroize::Zeroize::zeroize(inf);
        }
    }
}

impl std::fmt::Debug for Block {
    // Never print an information field: it may be a PIN.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::I { ns, more, inf } => write!(
                f,
                "I(N(S)={}, M={}, {} bytes)",
                u8::from(*ns),
                u8::from(*more),
                inf.len()
            ),
            Self::R { nr, code } => write!(f, "R(N(R)={}, {code:?})", u8::from(*nr)),
            Self::S(s) => write!(f, "S({s:?})"),
        }
    }
}

/// Why a received block is invalid; decides the R-block code of the answer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum BlockError {
    /// The error detection code does not match.
    Edc,
    /// Too short, wrong length, reserved PCB or a bad S-block parameter.
    Malformed(String),
}

impl std::fmt::Display for BlockError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Edc => f.write_str("bad error detection code"),
            Self::Malformed(m) => f.write_str(m),
        }
    }
}

impl Block {
    /// The protocol control byte.
    pub fn pcb(&self) -> u8 {
        match self {
            Self::I { ns, more, .. } => (u8::from(*ns) << 6) | (u8::from(*more) << 5),
            Self::R { nr, code } => {
                0x80 | (u8::from(*nr) << 4)
                    | match code {
                        RCode::Ok => 0,
                        RCode::Edc => 1,
                        RCode::Other => 2,
                    }
            }
            Self::S(s) => match s {
                SBlock::ResynchRequest => 0xC0,
                SBlock::ResynchResponse => 0xE0,
                SBlock::IfsRequest(_) => 0xC1,
                SBlock::IfsResponse(_) => 0xE1,
                SBlock::AbortRequest => 0xC2,
                SBlock::AbortResponse => 0xE2,
                SBlock::WtxRequest(_) => 0xC3,
                SBlock::WtxResponse(_) => 0xE3,
            },
        }
    }

    fn inf(&self) -> Vec<u8> {
        match self {
            Self::I { inf, .. } => inf.clone(),
            Self::R { .. } => Vec::new(),
            Self::S(
                SBlock::IfsRequest(v)
                | SBlock::IfsResponse(v)
                | SBlock::WtxRequest(v)
                | SBlock::WtxResponse(v),
            ) => vec![*v],
            Self::S(_) => Vec::new(),
        }
    }

    /// The whole block: NAD PCB LEN INF EDC. Panics on an information field longer than
    /// [`MAX_INF`] (the state machine never makes one).
    pub fn encode(&self, nad: u8, edc: Edc) -> Zeroizing<Vec<u8>> {
        let inf = Zeroizing::new(self.inf());
        assert!(inf.len() <= MAX_INF, "T=1 information field too long");
        let mut out = Zeroizing::new(Vec::with_capacity(3 + inf.len() + 2));
        out.extend_from_slice(&[nad, self.pcb(), inf.len() as u8]);
        out.extend_from_slice(&inf);
        let code = edc.compute(&out);
        out.extend_from_slice(&code);
        out
    }

    /// Parse a whole block; returns its NAD too. Strict: exact length, valid EDC, no
    /// reserved PCB bits, S-block parameters in range.
    pub fn decode(raw: &[u8], edc: Edc) -> std::result::Result<(u8, Block), BlockError> {
        let min = 3 + edc.bytes();
        if raw.len() < min {
            return Err(BlockError::Malformed(format!(
                "a {}-byte block is shorter than the {min} bytes of prologue and epilogue",
                raw.len()
            )));
        }
        let len = usize::from(raw[2]);
        if raw.len() != min + len {
            return Err(BlockError::Malformed(format!(
                "block LEN {len} does not match its {} bytes",
                raw.len()
            )));
        }
        let (body, code) = raw.split_at(3 + len);
        if edc.compute(body) != code {
            return Err(BlockError::Edc);
        }
        if len > MAX_INF {
            return Err(BlockError::Malformed("LEN 255 is reserved".into()));
        }
        let (nad, pcb, inf) = (raw[0], raw[1], &body[3..]);
        let malformed = |what: &str| Err(BlockError::Malformed(format!("{what} (PCB {pcb:#04x})")));
        let block = match pcb >> 6 {
            0 | 1 => {
                if pcb & 0x1F != 0 {
                    return malformed("I-block with reserved bits set");
                }
                Block::I {
                    ns: pcb & 0x40 != 0,
                    more: pcb & 0x20 != 0,
                    inf: inf.to_vec(),
                }
            }
            2 => {
                let code = match pcb & 0x2F {
                    0 => RCode::Ok,
                    1 => RCode::Edc,
                    2 => RCode::Other,
                    _ => return malformed("R-block with reserved bits set"),
                };
                if len != 0 {
                    return malformed("R-block with an information field");
                }
                Block::R {
                    nr: pcb & 0x10 != 0,
                    code,
                }
            }
            _ => {
                let value = |ok: fn(u8) -> bool| match inf {
                    [v] if ok(*v) => Ok(*v),
                    _ => Err(BlockError::Malformed(format!(
                        "S-block {pcb:#04x} with a bad parameter {inf:02X?}"
                    ))),
                };
                let empty = || {
                    if inf.is_empty() {
                        Ok(())
                    } else {
                        Err(BlockError::Malformed(format!(
                            "S-block {pcb:#04x} with an information field"
                        )))
                    }
                };
                let ifs = |v: u8| (1..=MAX_INF as u8).contains(&v);
                let wtx = |v: u8| v != 0;
                Block::S(match pcb & 0x3F {
                    0x00 => empty().map(|_| SBlock::ResynchRequest)?,
                    0x20 => empty().map(|_| SBlock::ResynchResponse)?,
                    0x01 => SBlock::IfsRequest(value(ifs)?),
                    0x21 => SBlock::IfsResponse(value(ifs)?),
                    0x02 => empty().map(|_| SBlock::AbortRequest)?,
                    0x22 => empty().map(|_| SBlock::AbortResponse)?,
                    0x03 => SBlock::WtxRequest(value(wtx)?),
                    0x23 => SBlock::WtxResponse(value(wtx)?),
                    _ => return malformed("unknown S-block"),
                })
            }
        };
        Ok((nad, block))
    }
}

/// The T=1 parameters a card announces in its ATR.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Params {
    /// Largest information field the card receives.
    pub ifsc: u8,
    /// Block waiting integer (0..=9).
    pub bwi: u8,
    /// Character waiting integer.
    pub cwi: u8,
    pub edc: Edc,
}

impl Default for Params {
    fn default() -> Self {
        Self {
            ifsc: DEFAULT_IFS,
            bwi: DEFAULT_BWI,
            cwi: DEFAULT_CWI,
            edc: Edc::Lrc,
        }
    }
}

impl Params {
    /// Block waiting time, ISO 7816-3 11.4.3: 11 etu + 2^BWI x 960 x Fd / f, with Fd = 372
    /// (the default, in force until a PPS changes it; a faster etu only shortens the 11
    /// etu) and the card's clock `clock_khz`.
    pub fn bwt(&self, clock_khz: u32) -> Duration {
        let f = u64::from(clock_khz.max(1)) * 1000;
        let clocks = (11 + (960u64 << self.bwi.min(15))) * 372;
        Duration::from_nanos(clocks * 1_000_000_000 / f)
    }
}

/// What an ATR says about protocols (ISO 7816-3 8.2).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AtrInfo {
    /// Inverse convention (TS = 3F).
    pub inverse: bool,
    /// TA1 (Fi, Di), if present.
    pub ta1: Option<u8>,
    /// TC1 (extra guard time N), if present.
    pub tc1: Option<u8>,
    /// Protocols offered by TD1, TD2, ... in order (T=15 left out); empty means T=0 only.
    pub offered: Vec<u8>,
    /// TA2, the specific mode byte: the card runs this protocol right after the ATR.
    pub specific: Option<u8>,
    /// T=1 parameters (defaults where the ATR is silent).
    pub t1: Params,
}

impl AtrInfo {
    /// Parse the interface bytes of an ATR. Checks TCK when it must be present.
    pub fn parse(atr: &[u8]) -> Result<Self> {
        let bad = |why: String| Error::Card(format!("the ATR {atr:02X?} is invalid: {why}"));
        let inverse = match atr.first() {
            Some(0x3B) => false,
            Some(0x3F) => true,
            _ => return Err(bad("TS is neither 3B nor 3F".into())),
        };
        let t0 = *atr.get(1).ok_or_else(|| bad("no T0".into()))?;
        let historical = usize::from(t0 & 0x0F);
        let mut y = t0 >> 4;
        let mut pos = 2;
        let mut info = AtrInfo {
            inverse,
            ta1: None,
            tc1: None,
            offered: Vec::new(),
            specific: None,
            t1: Params::default(),
        };
        let (mut seen_ifsc, mut seen_bwi, mut seen_edc) = (false, false, false);
        // Group i's interface bytes; `proto` is the protocol TD(i-1) announced.
        let mut i = 1;
        let mut proto: Option<u8> = None;
        loop {
            let mut next = |what: &str| -> Result<u8> {
                let b = *atr
                    .get(pos)
                    .ok_or_else(|| bad(format!("it ends before {what}{i}")))?;
                pos += 1;
                Ok(b)
            };
            let ta = if y & 1 != 0 { Some(next("TA")?) } else { None };
            let tb = if y & 2 != 0 { Some(next("TB")?) } else { None };
            let tc = if y & 4 != 0 { Some(next("TC")?) } else { None };
            let td = if y & 8 != 0 { Some(next("TD")?) } else { None };
            match i {
                1 => {
                    info.ta1 = ta;
                    info.tc1 = tc;
                }
                2 => info.specific = ta,
                _ if proto == Some(1) => {
                    if let (Some(v), false) = (ta, seen_ifsc) {
                        if !(1..=0xFE).contains(&v) {
                            return Err(bad(format!("IFSC {v:#04x} is out of range")));
                        }
                        info.t1.ifsc = v;
                        seen_ifsc = true;
                    }
                    if let (Some(v), false) = (tb, seen_bwi) {
                        if v >> 4 > 9 {
                            return Err(bad(format!("BWI {} is above 9", v >> 4)));
                        }
                        info.t1.bwi = v >> 4;
                        info.t1.cwi = v & 0x0F;
                        seen_bwi = true;
                    }
                    if let (Some(v), false) = (tc, seen_edc) {
                        info.t1.edc = if v & 1 != 0 { Edc::Crc } else { Edc::Lrc };
                        seen_edc = true;
                    }
                }
                _ => {}
            }
            let Some(td) = td else { break };
            let t = td & 0x0F;
            if t != 15 && !info.offered.contains(&t) {
                info.offered.push(t);
            }
            proto = Some(t);
            y = td >> 4;
            i += 1;
            if i > 32 {
                return Err(bad("too many interface byte groups".into()));
            }
        }
        let tck = info.offered.iter().any(|&t| t != 0);
        let want = pos + historical + usize::from(tck);
        if atr.len() < want {
            return Err(bad(format!(
                "{} bytes, its interface and historical bytes need {want}",
                atr.len()
            )));
        }
        if tck && lrc(&atr[1..want]) != 0 {
            return Err(bad("TCK does not check".into()));
        }
        Ok(info)
    }

    /// The protocol the card uses right after the ATR: the one of its specific mode (TA2),
    /// else the first one offered (T=0 if none is).
    pub fn first_protocol(&self) -> u8 {
        match self.specific {
            Some(ta2) => ta2 & 0x0F,
            None => self.offered.first().copied().unwrap_or(0),
        }
    }

    pub fn offers(&self, t: u8) -> bool {
        match self.specific {
            Some(ta2) => ta2 & 0x0F == t,
            None => self.offered.contains(&t) || (t == 0 && self.offered.is_empty()),
        }
    }
}

/// Carries one block to the card and returns the card's answer block.
pub trait BlockTransport {
    /// Send `block`, wait at most `wait` (the block waiting time, extended by WTX) for the
    /// answer. An error is final unless [`recoverable`] says the block was lost.
    fn exchange(&mut self, block: &[u8], wait: Duration) -> Result<Vec<u8>>;
}

/// Transport errors that mean "no valid block came back" rather than "the reader or card is
/// gone": the reader reported the card mute, a parity error or an overrun.
pub fn recoverable(e: &Error) -> bool {
    matches!(
        e,
        Error::Slot {
            code: 0xFC..=0xFE,
            ..
        }
    )
}

/// Bounds of the error recovery.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limits {
    /// Invalid blocks or retransmission requests in a row before resynchronising.
    pub retries: u32,
    /// S(RESYNCH request) attempts before giving up (ISO 7816-3: 3).
    pub resynch_attempts: u32,
    /// Waiting time extensions the card may ask for during one APDU.
    pub wtx: u32,
    /// S(IFS) or S(ABORT) requests from the card during one APDU.
    pub card_requests: u32,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            retries: 3,
            resynch_attempts: 3,
            wtx: 256,
            card_requests: 8,
        }
    }
}

/// Counters for measurements and tests.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Stats {
    pub blocks: u64,
    pub retransmissions: u64,
    pub wtx: u64,
    pub resynchs: u64,
}

/// What the next answer of the card must be.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Expect {
    /// An R-block acknowledging our chained I-block.
    Ack,
    /// An I-block.
    Info,
}

enum Failure {
    /// Not recoverable (reader or card gone, card aborted): return as is.
    Fatal(Error),
    /// Retries used up: resynchronise. `executed` when the card may have run the command.
    Exhausted { executed: bool, why: String },
}

impl From<Error> for Failure {
    fn from(e: Error) -> Self {
        Self::Fatal(e)
    }
}

/// The host side of one T=1 session (one power-on of the card).
pub struct T1 {
    params: Params,
    ifsc: u8,
    ifsd: u8,
    /// Largest information field the reader carries (its message size less the block's
    /// prologue and epilogue); our I-blocks follow the smaller of this and IFSC.
    max_send: usize,
    bwt: Duration,
    /// N(S) of our next I-block.
    ns: bool,
    /// N(S) we expect on the card's next I-block.
    nr: bool,
    limits: Limits,
    stats: Stats,
    /// An earlier APDU ended with the card out of step: resynchronise first.
    needs_resynch: bool,
}

impl T1 {
    /// A session with the card's ATR `params`, our receive size `ifsd` (what the reader can
    /// take; negotiated by [`T1::negotiate_ifsd`]) and the block waiting time `bwt`.
    pub fn new(params: Params, bwt: Duration) -> Self {
        Self {
            params,
            ifsc: params.ifsc,
            ifsd: DEFAULT_IFS,
            max_send: MAX_INF,
            bwt,
            ns: false,
            nr: false,
            limits: Limits::default(),
            stats: Stats::default(),
            needs_resynch: false,
        }
    }

    /// Cap our information fields at `n` bytes (at least 1) when the reader's messages
    /// cannot carry a block of IFSC bytes.
    pub fn set_max_send(&mut self, n: usize) {
        self.max_send = n.clamp(1, MAX_INF);
    }

    pub fn set_limits(&mut self, limits: Limits) {
        self.limits = limits;
    }

    pub fn stats(&self) -> Stats {
        self.stats
    }

    /// The card's current information field size.
    pub fn ifsc(&self) -> u8 {
        self.ifsc
    }

    /// Ours, as the card knows it.
    pub fn ifsd(&self) -> u8 {
        self.ifsd
    }

    /// Block waiting time without extension.
    pub fn bwt(&self) -> Duration {
        self.bwt
    }

    /// Tell the card we take information fields of `ifsd` bytes (S(IFS request)). Called
    /// once after power-on unless the reader does it. A card that does not confirm leaves
    /// the default of 32 in force.
    pub fn negotiate_ifsd(&mut self, t: &mut dyn BlockTransport, ifsd: u8) -> Result<()> {
        let ifsd = ifsd.clamp(1, MAX_INF as u8);
        match self.s_exchange(t, SBlock::IfsRequest(ifsd)) {
            Ok(SBlock::IfsResponse(v)) if v == ifsd => {
                self.ifsd = ifsd;
                Ok(())
            }
            Ok(_) => Ok(()),
            Err(Failure::Fatal(e)) => Err(e),
            Err(Failure::Exhausted { .. }) => Ok(()),
        }
    }

    /// Send one APDU (as I-blocks chained by IFSC) and return the card's whole answer.
    pub fn transmit(&mut self, t: &mut dyn BlockTransport, apdu: &[u8]) -> Result<Vec<u8>> {
        if apdu.is_empty() {
            return Err(Error::BadApdu("an empty command".into()));
        }
        if self.needs_resynch {
            self.resynch(t)?;
        }
        let mut resynchs = 0;
        loop {
            match self.try_transmit(t, apdu) {
                Ok(r) => return Ok(r),
                Err(Failure::Fatal(e)) => {
                    self.needs_resynch = true;
                    return Err(e);
                }
                Err(Failure::Exhausted { executed, why }) => {
                    self.resynch(t)?;
                    if executed {
                        return Err(Error::Card(format!(
                            "T=1 transmission failed after the whole command reached the \
                             card ({why}); the link is resynchronised, but the command may \
                             or may not have run"
                        )));
                    }
                    resynchs += 1;
                    if resynchs >= self.limits.resynch_attempts {
                        return Err(Error::Card(format!(
                            "T=1 transmission keeps failing ({why}) even after {resynchs} \
                             resynchronisations; take the card out and put it in again"
                        )));
                    }
                }
            }
        }
    }

    fn try_transmit(
        &mut self,
        t: &mut dyn BlockTransport,
        apdu: &[u8],
    ) -> std::result::Result<Vec<u8>, Failure> {
        let mut budget = Budget::default();
        // The command, chained by the IFSC in force (the card may change it meanwhile).
        let mut off = 0;
        let mut reply = loop {
            let n = usize::from(self.ifsc)
                .min(self.max_send)
                .min(apdu.len() - off);
            let more = off + n < apdu.len();
            let block = Block::I {
                ns: self.ns,
                more,
                inf: apdu[off..off + n].to_vec(),
            };
            let expect = if more { Expect::Ack } else { Expect::Info };
            let reply = self.await_reply(t, &block, expect, !more, &mut budget)?;
            self.ns = !self.ns;
            off += n;
            if !more {
                break reply;
            }
        };
        // The response, acknowledging each chained part.
        let mut out = Vec::new();
        let mut empty_parts = 0;
        loop {
            let Block::I { more, inf, .. } = &reply else {
                unreachable!("await_reply returns an I-block when one is expected")
            };
            let more = *more;
            if inf.is_empty() && more {
                empty_parts += 1;
                if empty_parts > self.limits.card_requests {
                    return Err(Failure::Fatal(Error::Card(
                        "the card keeps sending empty chained blocks".into(),
                    )));
                }
            }
            if out.len() + inf.len() > crate::apdu::MAX_RESPONSE {
                return Err(Failure::Fatal(Error::Card(format!(
                    "the card's chained response grew beyond {} bytes",
                    crate::apdu::MAX_RESPONSE
                ))));
            }
            out.extend_from_slice(inf);
            self.nr = !self.nr;
            if !more {
                return Ok(out);
            }
            let ack = Block::R {
                nr: self.nr,
                code: RCode::Ok,
            };
            reply = self.await_reply(t, &ack, Expect::Info, true, &mut budget)?;
        }
    }

    /// Send `ours` and return the card's valid answer of the `expect`ed kind, answering
    /// WTX and IFS requests and recovering from errors on the way.
    fn await_reply(
        &mut self,
        t: &mut dyn BlockTransport,
        ours: &Block,
        expect: Expect,
        executed: bool,
        budget: &mut Budget,
    ) -> std::result::Result<Block, Failure> {
        let edc = self.params.edc;
        let ours_raw = ours.encode(0, edc);
        let mut to_send = ours_raw.clone();
        let mut wait = self.bwt;
        let mut errors = 0;
        loop {
            self.stats.blocks += 1;
            let received = match t.exchange(&to_send, wait) {
                Ok(raw) => Block::decode(&raw, edc).map(|(_, b)| b),
                Err(e) if recoverable(&e) => Err(BlockError::Malformed(e.to_string())),
                Err(e) => return Err(Failure::Fatal(e)),
            };
            wait = self.bwt;
            // On an error: ask the card to send its last block again (R-block with the
            // error), or send ours again.
            let (why, code, resend_ours) = match &received {
                Err(BlockError::Edc) => ("a block with a bad EDC".to_string(), RCode::Edc, false),
                Err(BlockError::Malformed(m)) => (m.clone(), RCode::Other, false),
                Ok(Block::S(SBlock::WtxRequest(m))) => {
                    budget.wtx += 1;
                    self.stats.wtx += 1;
                    if budget.wtx > self.limits.wtx {
                        return Err(Failure::Fatal(Error::Card(format!(
                            "the card asked for more than {} waiting time extensions",
                            self.limits.wtx
                        ))));
                    }
                    wait = self.bwt * u32::from(*m);
                    to_send = Block::S(SBlock::WtxResponse(*m)).encode(0, edc);
                    continue;
                }
                Ok(Block::S(SBlock::IfsRequest(v))) => {
                    budget.requests += 1;
                    if budget.requests > self.limits.card_requests {
                        return Err(Failure::Fatal(Error::Card(
                            "the card keeps sending S-block requests".into(),
                        )));
                    }
                    self.ifsc = *v;
                    to_send = Block::S(SBlock::IfsResponse(*v)).encode(0, edc);
                    continue;
                }
                Ok(Block::S(SBlock::AbortRequest)) => {
                    // Answer it; whatever the card sends then, this APDU is over and the
                    // next one starts from a resynchronisation.
                    let resp = Block::S(SBlock::AbortResponse).encode(0, edc);
                    self.stats.blocks += 1;
                    let _ = t.exchange(&resp, self.bwt);
                    self.needs_resynch = true;
                    return Err(Failure::Fatal(Error::Card(
                        "the card aborted the T=1 exchange (S(ABORT request))".into(),
                    )));
                }
                Ok(Block::S(s)) => (format!("an unexpected S-block {s:?}"), RCode::Other, false),
                // The card did not get our block (our I-block, or our R-block acknowledging
                // its chained part): send it again.
                Ok(Block::R { nr, .. }) if *nr == self.ns => (
                    "the card asked for our block again".into(),
                    RCode::Other,
                    true,
                ),
                Ok(Block::R { .. }) if expect == Expect::Ack => {
                    return Ok(Block::R {
                        nr: !self.ns,
                        code: RCode::Ok,
                    });
                }
                Ok(b @ Block::R { .. }) => (
                    format!("{b:?} where an I-block was due"),
                    RCode::Other,
                    false,
                ),
                Ok(Block::I { ns, .. }) if expect == Expect::Info && *ns == self.nr => {
                    return received.map_err(|_| unreachable!("matched as Ok"));
                }
                Ok(b @ Block::I { .. }) => (format!("{b:?} out of sequence"), RCode::Other, false),
            };
            errors += 1;
            self.stats.retransmissions += 1;
            if errors > self.limits.retries {
                return Err(Failure::Exhausted { executed, why });
            }
            to_send = if resend_ours {
                ours_raw.clone()
            } else {
                Block::R { nr: self.nr, code }.encode(0, edc)
            };
        }
    }

    /// Send an S-block request until its response comes (bounded), answering WTX.
    fn s_exchange(
        &mut self,
        t: &mut dyn BlockTransport,
        req: SBlock,
    ) -> std::result::Result<SBlock, Failure> {
        let raw = Block::S(req).encode(0, self.params.edc);
        let mut to_send = raw.clone();
        let mut wait = self.bwt;
        let mut errors = 0;
        let mut wtx = 0;
        loop {
            self.stats.blocks += 1;
            let got = match t.exchange(&to_send, wait) {
                Ok(b) => Block::decode(&b, self.params.edc).ok().map(|(_, b)| b),
                Err(e) if recoverable(&e) => None,
                Err(e) => return Err(Failure::Fatal(e)),
            };
            wait = self.bwt;
            match (req, got) {
                (_, Some(Block::S(SBlock::WtxRequest(m)))) if wtx < self.limits.wtx => {
                    wtx += 1;
                    self.stats.wtx += 1;
                    wait = self.bwt * u32::from(m);
                    to_send = Block::S(SBlock::WtxResponse(m)).encode(0, self.params.edc);
                    continue;
                }
                (SBlock::IfsRequest(_), Some(Block::S(r @ SBlock::IfsResponse(_))))
                | (SBlock::ResynchRequest, Some(Block::S(r @ SBlock::ResynchResponse))) => {
                    return Ok(r);
                }
                _ => {}
            }
            errors += 1;
            if errors > self.limits.retries {
                return Err(Failure::Exhausted {
                    executed: false,
                    why: format!("no valid answer to {req:?}"),
                });
            }
            to_send = raw.clone();
        }
    }

    /// S(RESYNCH): both sequence numbers back to 0, the ATR's IFSC, IFSD negotiated again.
    fn resynch(&mut self, t: &mut dyn BlockTransport) -> Result<()> {
        self.stats.resynchs += 1;
        match self.s_exchange(t, SBlock::ResynchRequest) {
            Ok(_) => {}
            Err(Failure::Fatal(e)) => return Err(e),
            Err(Failure::Exhausted { .. }) => {
                self.needs_resynch = true;
                return Err(Error::Card(
                    "the card does not answer T=1 resynchronisation; take it out and put it in \
                     again"
                        .into(),
                ));
            }
        }
        self.ns = false;
        self.nr = false;
        self.ifsc = self.params.ifsc;
        self.needs_resynch = false;
        let wanted = self.ifsd;
        self.ifsd = DEFAULT_IFS;
        if wanted != DEFAULT_IFS {
            self.negotiate_ifsd(t, wanted)?;
        }
        Ok(())
    }
}

#[derive(Default)]
struct Budget {
    wtx: u32,
    requests: u32,
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::collections::VecDeque;

    /// Build a block by hand (independently of `Block::encode`) with an LRC.
    fn raw(pcb: u8, inf: &[u8]) -> Vec<u8> {
        let mut b = vec![0, pcb, inf.len() as u8];
        b.extend_from_slice(inf);
        b.push(b.iter().fold(0, |a, x| a ^ x));
        b
    }

    /// A scripted card: each step is the block the host must send and what comes back.
    struct Script {
        steps: VecDeque<(Vec<u8>, Result<Vec<u8>>)>,
        waits: Vec<Duration>,
    }

    impl Script {
        fn new(steps: Vec<(Vec<u8>, Result<Vec<u8>>)>) -> Self {
            Self {
                steps: steps.into(),
                waits: Vec::new(),
            }
        }
    }

    impl BlockTransport for Script {
        fn exchange(&mut self, block: &[u8], wait: Duration) -> Result<Vec<u8>> {
            self.waits.push(wait);
            let (expect, answer) = self
                .steps
                .pop_front()
                .unwrap_or_else(|| panic!("host sent {block:02X?} after the script ended"));
            assert_eq!(block, expect.as_slice(), "host sent the wrong block");
            answer
        }
    }

    fn session() -> T1 {
        T1::new(Params::default(), Duration::from_millis(100))
    }

    #[test]
    fn lrc_and_crc_vectors() {
        // S(IFS request 254): the LRC of 00 C1 01 FE is 3E.
        assert_eq!(lrc(&[0x00, 0xC1, 0x01, 0xFE]), 0x3E);
        assert_eq!(
            Block::S(SBlock::IfsRequest(254))
                .encode(0, Edc::Lrc)
                .as_slice(),
            [0x00, 0xC1, 0x01, 0xFE, 0x3E]
        );
        // CRC vectors computed with Python's binascii.crc_hqx (the same polynomial, not
        // reflected) on bit-reversed input bytes, the result bit-reversed; "123456789"
        // gives 0x6F91, the catalogued check value of this CRC (CRC-16/MCRF4XX).
        assert_eq!(crc(b"123456789"), 0x6F91);
        assert_eq!(crc(&[0, 0, 0]), 0x3933);
        assert_eq!(crc(&[0x00, 0xC1, 0x01, 0xFE]), 0x544E);
        assert_eq!(crc(&[]), 0xFFFF);
        assert_eq!(
            Block::I {
                ns: false,
                more: false,
                inf: vec![0x00, 0xA4, 0x04, 0x00, 0x00]
            }
            .encode(0, Edc::Crc)
            .as_slice(),
            [0x00, 0x00, 0x05, 0x00, 0xA4, 0x04, 0x00, 0x00, 0xDB, 0xBB]
        );
    }

    #[test]
    fn pcb_values() {
        let pcb = |b: Block| b.pcb();
        assert_eq!(
            pcb(Block::I {
                ns: true,
                more: true,
                inf: vec![]
            }),
            0x60
        );
        assert_eq!(
            pcb(Block::R {
                nr: true,
                code: RCode::Ok
            }),
            0x90
        );
        assert_eq!(
            pcb(Block::R {
                nr: false,
                code: RCode::Edc
            }),
            0x81
        );
        assert_eq!(
            pcb(Block::R {
                nr: true,
                code: RCode::Other
            }),
            0x92
        );
        assert_eq!(pcb(Block::S(SBlock::ResynchRequest)), 0xC0);
        assert_eq!(pcb(Block::S(SBlock::WtxResponse(2))), 0xE3);
        assert_eq!(pcb(Block::S(SBlock::AbortResponse)), 0xE2);
    }

    #[test]
    fn rejects_bad_blocks() {
        let d = |b: &[u8]| Block::decode(b, Edc::Lrc);
        assert_eq!(d(&[0x00, 0x00, 0x00, 0x01]), Err(BlockError::Edc));
        assert!(matches!(d(&[0, 0]), Err(BlockError::Malformed(_))));
        // LEN says 2, one byte there.
        assert!(matches!(
            d(&raw(0x00, &[1, 2])[..5]),
            Err(BlockError::Malformed(_))
        ));
        // Reserved bits, an R-block with data, S(IFS) with 0 or 255, an unknown S-block.
        for bad in [
            raw(0x01, &[]),
            raw(0x80, &[1]),
            raw(0x84, &[]),
            raw(0xC1, &[0]),
            raw(0xC1, &[0xFF]),
            raw(0xC1, &[]),
            raw(0xC3, &[0]),
            raw(0xC0, &[1]),
            raw(0xC5, &[]),
        ] {
            assert!(
                matches!(d(&bad), Err(BlockError::Malformed(_))),
                "{bad:02X?}"
            );
        }
        let mut long = vec![0, 0, 0xFF];
        long.extend_from_slice(&[0; 255]);
        long.push(lrc(&long));
        assert!(d(&long).is_err());
    }

    #[test]
    fn atr_parameters() {
        // 3B DA 18 FF 81 B1 FE 75 1F 03 + historical + TCK: an OpenPGP card 3.x style ATR
        // (TA1=18, TD1: T=1, TD2: TA3 TB3 TC3 T=1, TA3 IFSC FE, TB3 BWI 7 CWI 5, TC3 LRC).
        let mut atr = vec![0x3B, 0xDA, 0x18, 0xFF, 0x81, 0xB1, 0xFE, 0x75, 0x1F, 0x03];
        atr.extend_from_slice(b"\x00\x31\xC5\x73\xC0\x01\x40\x00\x90\x00");
        atr.push(lrc(&atr[1..]));
        let info = AtrInfo::parse(&atr).unwrap();
        assert_eq!(info.ta1, Some(0x18));
        assert_eq!(info.offered, [1]);
        assert_eq!(info.first_protocol(), 1);
        assert!(info.offers(1) && !info.offers(0));
        assert_eq!(
            info.t1,
            Params {
                ifsc: 0xFE,
                bwi: 7,
                cwi: 5,
                edc: Edc::Lrc
            }
        );
        // A wrong TCK, a truncated ATR.
        let mut bad = atr.clone();
        *bad.last_mut().unwrap() ^= 1;
        assert!(AtrInfo::parse(&bad).is_err());
        assert!(AtrInfo::parse(&atr[..8]).is_err());
        // T=0 only, no TD1: defaults, no TCK.
        let t0 = AtrInfo::parse(&[0x3B, 0x02, 0x14, 0x50]).unwrap();
        assert_eq!(t0.first_protocol(), 0);
        assert!(t0.offers(0) && !t0.offers(1));
        assert_eq!(t0.t1, Params::default());
        // T=0 first, then T=1 with CRC (TC3 = 01); TA2 specific mode T=1.
        let mut both = vec![0x3B, 0x80, 0x80, 0x41, 0x01];
        both.push(lrc(&both[1..]));
        let both = AtrInfo::parse(&both).unwrap();
        assert_eq!(both.offered, [0, 1]);
        assert_eq!(both.first_protocol(), 0);
        assert_eq!(both.t1.edc, Edc::Crc);
        let mut specific = vec![0x3B, 0x80, 0x90, 0x11, 0x00];
        specific.push(lrc(&specific[1..]));
        let specific = AtrInfo::parse(&specific).unwrap();
        assert_eq!(
            (specific.specific, specific.first_protocol()),
            (Some(0x11), 1)
        );
        // BWT at 4 MHz, BWI 4: 11 etu + 16 x 960 etu, 372 clocks each.
        let bwt = Params::default().bwt(4000);
        assert_eq!(bwt.as_micros(), (11 + 16 * 960) * 372 / 4);
    }

    #[test]
    fn ifsd_negotiation() {
        let mut s = session();
        let mut t = Script::new(vec![(raw(0xC1, &[0xFE]), Ok(raw(0xE1, &[0xFE])))]);
        s.negotiate_ifsd(&mut t, 254).unwrap();
        assert_eq!(s.ifsd(), 254);
        // A card that answers rubbish three times and then nothing keeps IFSD 32.
        let mut s = session();
        let steps = (0..4)
            .map(|_| (raw(0xC1, &[0xFE]), Ok(raw(0x82, &[]))))
            .collect();
        s.negotiate_ifsd(&mut Script::new(steps), 254).unwrap();
        assert_eq!(s.ifsd(), 32);
    }

    #[test]
    fn simple_apdu() {
        let mut s = session();
        let mut t = Script::new(vec![
            (
                raw(0x00, &[0, 0xCA, 0, 0x6E, 0]),
                Ok(raw(0x00, &[1, 2, 0x90, 0])),
            ),
            (raw(0x40, &[0, 0xCA, 0, 0x6E, 0]), Ok(raw(0x40, &[0x90, 0]))),
        ]);
        assert_eq!(
            s.transmit(&mut t, &[0, 0xCA, 0, 0x6E, 0]).unwrap(),
            [1, 2, 0x90, 0]
        );
        // Sequence numbers alternate.
        assert_eq!(
            s.transmit(&mut t, &[0, 0xCA, 0, 0x6E, 0]).unwrap(),
            [0x90, 0]
        );
        assert!(t.steps.is_empty());
    }

    // IFSC 32: a 70-byte APDU goes out in 32 + 32 + 6, each acknowledged by R(N(R)).
    #[test]
    fn long_command_is_chained() {
        let apdu: Vec<u8> = (0..70).collect();
        let mut s = session();
        let mut t = Script::new(vec![
            (raw(0x20, &apdu[..32]), Ok(raw(0x90, &[]))),
            (raw(0x60, &apdu[32..64]), Ok(raw(0x80, &[]))),
            (raw(0x00, &apdu[64..]), Ok(raw(0x00, &[0x90, 0x00]))),
        ]);
        assert_eq!(s.transmit(&mut t, &apdu).unwrap(), [0x90, 0x00]);
        assert!(t.steps.is_empty());
    }

    // A long response comes in three chained I-blocks, each acknowledged.
    #[test]
    fn long_response_is_chained_in() {
        let mut s = session();
        let mut t = Script::new(vec![
            (raw(0x00, &[0, 0xB0, 0, 0, 0]), Ok(raw(0x20, &[1; 100]))),
            (raw(0x90, &[]), Ok(raw(0x60, &[2; 100]))),
            (raw(0x80, &[]), Ok(raw(0x00, &[3, 0x90, 0x00]))),
        ]);
        let r = s.transmit(&mut t, &[0, 0xB0, 0, 0, 0]).unwrap();
        assert_eq!(r.len(), 203);
        assert_eq!((r[0], r[100], r[200]), (1, 2, 3));
        assert!(t.steps.is_empty());
    }

    // The card asks for more time: S(WTX response) echoes the multiplier and the next wait
    // is that many block waiting times.
    #[test]
    fn waiting_time_extension() {
        let mut s = session();
        let mut t = Script::new(vec![
            (
                raw(0x00, &[0, 0x2A, 0x9E, 0x9A, 1, 0xAA, 0]),
                Ok(raw(0xC3, &[5])),
            ),
            (raw(0xE3, &[5]), Ok(raw(0xC3, &[2]))),
            (raw(0xE3, &[2]), Ok(raw(0x00, &[0xBB, 0x90, 0]))),
        ]);
        let r = s
            .transmit(&mut t, &[0, 0x2A, 0x9E, 0x9A, 1, 0xAA, 0])
            .unwrap();
        assert_eq!(r, [0xBB, 0x90, 0]);
        let bwt = Duration::from_millis(100);
        assert_eq!(t.waits, [bwt, bwt * 5, bwt * 2]);
        assert_eq!(s.stats().wtx, 2);
    }

    // A response with a bad LRC: the host asks for it again with R(N(R), EDC error).
    #[test]
    fn corrupted_block_is_retransmitted() {
        let mut bad = raw(0x00, &[0x90, 0x00]);
        *bad.last_mut().unwrap() ^= 0x55;
        let mut s = session();
        let mut t = Script::new(vec![
            (raw(0x00, &[0, 0x84, 0, 0, 8]), Ok(bad)),
            (raw(0x81, &[]), Ok(raw(0x00, &[0x90, 0x00]))),
        ]);
        assert_eq!(
            s.transmit(&mut t, &[0, 0x84, 0, 0, 8]).unwrap(),
            [0x90, 0x00]
        );
        assert_eq!(s.stats().retransmissions, 1);
        // The card did not get our block (R-block with our N(S)): we send it again; a
        // mute card reported by the reader is asked to send again too.
        let mut t = Script::new(vec![
            (raw(0x40, &[0, 0x84, 0, 0, 8]), Ok(raw(0x91, &[]))),
            (raw(0x40, &[0, 0x84, 0, 0, 8]), Err(mute())),
            (raw(0x92, &[]), Ok(raw(0x40, &[0x90, 0x00]))),
        ]);
        assert_eq!(
            s.transmit(&mut t, &[0, 0x84, 0, 0, 8]).unwrap(),
            [0x90, 0x00]
        );
        assert!(t.steps.is_empty());
    }

    fn mute() -> Error {
        Error::Slot {
            code: 0xFE,
            meaning: "card mute",
            during: "XfrBlock",
        }
    }

    // Errors on a chained command part before the last: after three R-blocks, RESYNCH, then
    // the whole command again from N(S) 0.
    #[test]
    fn resynch_after_repeated_errors() {
        let apdu: Vec<u8> = (0..40).collect();
        let mut s = session();
        // Move N(S) to 1 first, so the reset to 0 shows.
        let mut t = Script::new(vec![
            (raw(0x00, &[0, 0xCA, 0, 0x6E, 0]), Ok(raw(0x00, &[0x90, 0]))),
            (raw(0x60, &apdu[..32]), Ok(vec![0x00, 0x00])),
            (raw(0x92, &[]), Ok(vec![0x00, 0x00])),
            (raw(0x92, &[]), Ok(vec![0x00, 0x00])),
            (raw(0x92, &[]), Ok(vec![0x00, 0x00])),
            (raw(0xC0, &[]), Ok(raw(0xE0, &[]))),
            (raw(0x20, &apdu[..32]), Ok(raw(0x90, &[]))),
            (raw(0x40, &apdu[32..]), Ok(raw(0x00, &[0x90, 0x00]))),
        ]);
        s.transmit(&mut t, &[0, 0xCA, 0, 0x6E, 0]).unwrap();
        assert_eq!(s.transmit(&mut t, &apdu).unwrap(), [0x90, 0x00]);
        assert_eq!(s.stats().resynchs, 1);
        assert!(t.steps.is_empty());
    }

    // Errors after the whole command reached the card: RESYNCH, then an error that says the
    // command may have run (never sent twice).
    #[test]
    fn no_resend_after_the_command_reached_the_card() {
        let mut s = session();
        let mut steps = vec![(raw(0x00, &[0, 0x20, 0, 0x81, 1, 0x31]), Ok(vec![1]))];
        steps.extend((0..3).map(|_| (raw(0x82, &[]), Ok(vec![1]))));
        steps.push((raw(0xC0, &[]), Ok(raw(0xE0, &[]))));
        let mut t = Script::new(steps);
        let e = s
            .transmit(&mut t, &[0, 0x20, 0, 0x81, 1, 0x31])
            .unwrap_err();
        assert!(e.to_string().contains("may or may not have run"), "{e}");
        assert!(t.steps.is_empty());
    }

    // A card that never answers properly: bounded, then a clear error.
    #[test]
    fn hopeless_card_gives_an_error() {
        struct Rubbish(u32);
        impl BlockTransport for Rubbish {
            fn exchange(&mut self, _: &[u8], _: Duration) -> Result<Vec<u8>> {
                self.0 += 1;
                Ok(vec![0xFF; 3])
            }
        }
        let mut s = session();
        let mut t = Rubbish(0);
        let e = s.transmit(&mut t, &[0, 0xCA, 0, 0x6E, 0]).unwrap_err();
        assert!(e.to_string().contains("resynchronisation"), "{e}");
        assert!(t.0 < 20, "{} exchanges", t.0);
        // Endless WTX requests end too.
        struct Wtx(u32);
        impl BlockTransport for Wtx {
            fn exchange(&mut self, _: &[u8], _: Duration) -> Result<Vec<u8>> {
                self.0 += 1;
                Ok(raw(0xC3, &[1]))
            }
        }
        let mut t = Wtx(0);
        assert!(session().transmit(&mut t, &[0, 0xCA, 0, 0x6E, 0]).is_err());
        assert!(t.0 <= 300);
        // A pulled card is final at once.
        let mut t = Script::new(vec![(
            raw(0x00, &[0, 0xCA, 0, 0x6E, 0]),
            Err(Error::NoCard),
        )]);
        assert!(matches!(
            session().transmit(&mut t, &[0, 0xCA, 0, 0x6E, 0]),
            Err(Error::NoCard)
        ));
    }

    // The card lowers its IFSC mid-chain; the rest of the command follows the new size.
    #[test]
    fn card_changes_ifsc() {
        let apdu: Vec<u8> = (0..50).collect();
        let mut s = session();
        let mut t = Script::new(vec![
            (raw(0x20, &apdu[..32]), Ok(raw(0xC1, &[10]))),
            (raw(0xE1, &[10]), Ok(raw(0x90, &[]))),
            (raw(0x60, &apdu[32..42]), Ok(raw(0x80, &[]))),
            (raw(0x00, &apdu[42..]), Ok(raw(0x00, &[0x90, 0x00]))),
        ]);
        assert_eq!(s.transmit(&mut t, &apdu).unwrap(), [0x90, 0x00]);
        assert_eq!(s.ifsc(), 10);
    }

    // A reader whose messages carry 20-byte information fields caps the blocks below IFSC.
    #[test]
    fn reader_message_size_caps_blocks() {
        let apdu: Vec<u8> = (0..30).collect();
        let mut s = session();
        s.set_max_send(20);
        let mut t = Script::new(vec![
            (raw(0x20, &apdu[..20]), Ok(raw(0x90, &[]))),
            (raw(0x40, &apdu[20..]), Ok(raw(0x00, &[0x90, 0x00]))),
        ]);
        assert_eq!(s.transmit(&mut t, &apdu).unwrap(), [0x90, 0x00]);
    }

    #[test]
    fn abort_from_the_card() {
        let mut s = session();
        let mut t = Script::new(vec![
            (raw(0x00, &[0, 0xCA, 0, 0x6E, 0]), Ok(raw(0xC2, &[]))),
            (raw(0xE2, &[]), Ok(raw(0x82, &[]))),
            (raw(0xC0, &[]), Ok(raw(0xE0, &[]))),
            (raw(0x00, &[0, 0xCA, 0, 0x6E, 0]), Ok(raw(0x00, &[0x90, 0]))),
        ]);
        assert!(s.transmit(&mut t, &[0, 0xCA, 0, 0x6E, 0]).is_err());
        assert_eq!(
            s.transmit(&mut t, &[0, 0xCA, 0, 0x6E, 0]).unwrap(),
            [0x90, 0]
        );
    }

    /// A small card-side model: echoes the command's bytes reversed plus 9000, sends
    /// blocks of at most `send` bytes, corrupts the replies whose numbers are in `corrupt`.
    struct EchoCard {
        ifsc: usize,
        send: usize,
        nr: bool,
        ns: bool,
        rx: Vec<u8>,
        tx: Vec<u8>,
        last: Vec<u8>,
        n: usize,
        corrupt: Vec<usize>,
    }

    impl BlockTransport for EchoCard {
        fn exchange(&mut self, block: &[u8], _: Duration) -> Result<Vec<u8>> {
            self.n += 1;
            let decoded = Block::decode(block, Edc::Lrc);
            let reply = match &decoded {
                Err(_) => panic!("the host sent a bad block"),
                Ok((_, Block::I { ns, more, inf })) => {
                    assert!(inf.len() <= self.ifsc, "block beyond IFSC");
                    if *ns == self.nr {
                        self.nr = !self.nr;
                        self.rx.extend_from_slice(inf);
                    }
                    if *more {
                        raw(0x80 | (u8::from(self.nr) << 4), &[])
                    } else {
                        let mut r: Vec<u8> = std::mem::take(&mut self.rx);
                        r.reverse();
                        r.extend_from_slice(&[0x90, 0x00]);
                        self.tx = r;
                        self.next_part()
                    }
                }
                Ok((_, Block::R { nr, code })) => {
                    if *code == RCode::Ok && *nr == self.ns && !self.tx.is_empty() {
                        self.next_part()
                    } else {
                        self.last.clone()
                    }
                }
                Ok((_, b)) => panic!("unexpected {b:?}"),
            };
            self.last = reply.clone();
            if self.corrupt.contains(&self.n) {
                let mut bad = reply.clone();
                *bad.last_mut().unwrap() ^= 0xFF;
                return Ok(bad);
            }
            Ok(reply)
        }
    }

    impl EchoCard {
        fn next_part(&mut self) -> Vec<u8> {
            let n = self.send.min(self.tx.len());
            let part: Vec<u8> = self.tx.drain(..n).collect();
            let more = !self.tx.is_empty();
            let b = raw((u8::from(self.ns) << 6) | (u8::from(more) << 5), &part);
            self.ns = !self.ns;
            self.last = b.clone();
            b
        }
    }

    fn any_block() -> impl Strategy<Value = Block> {
        prop_oneof![
            (
                any::<bool>(),
                any::<bool>(),
                prop::collection::vec(any::<u8>(), 0..=254)
            )
                .prop_map(|(ns, more, inf)| Block::I { ns, more, inf }),
            (any::<bool>(), 0..3u8).prop_map(|(nr, c)| Block::R {
                nr,
                code: [RCode::Ok, RCode::Edc, RCode::Other][usize::from(c)]
            }),
            (1..=254u8, 0..8u8).prop_map(|(v, k)| Block::S(match k {
                0 => SBlock::ResynchRequest,
                1 => SBlock::ResynchResponse,
                2 => SBlock::IfsRequest(v),
                3 => SBlock::IfsResponse(v),
                4 => SBlock::AbortRequest,
                5 => SBlock::AbortResponse,
                6 => SBlock::WtxRequest(v),
                _ => SBlock::WtxResponse(v),
            })),
        ]
    }

    proptest! {
        #[test]
        fn every_block_round_trips(b in any_block(), nad in any::<u8>(), crc in any::<bool>()) {
            let edc = if crc { Edc::Crc } else { Edc::Lrc };
            let enc = b.encode(nad, edc);
            prop_assert_eq!(Block::decode(&enc, edc), Ok((nad, b.clone())));
            // Any single flipped bit is caught.
            for bit in 0..enc.len() * 8 {
                let mut bad = enc.to_vec();
                bad[bit / 8] ^= 1 << (bit % 8);
                prop_assert_ne!(Block::decode(&bad, edc), Ok((nad, b.clone())));
            }
        }

        #[test]
        fn decode_never_panics(bytes in prop::collection::vec(any::<u8>(), 0..300)) {
            let _ = Block::decode(&bytes, Edc::Lrc);
            let _ = Block::decode(&bytes, Edc::Crc);
            let _ = AtrInfo::parse(&bytes);
        }

        // Any command length, IFSC, card block size and one corrupted reply: the answer
        // arrives whole.
        #[test]
        fn chaining_both_ways_with_an_error(
            len in 1..600usize, ifsc in 1..=254u8, send in 1..=254usize,
            corrupt in 1..12usize,
        ) {
            let apdu: Vec<u8> = (0..len).map(|i| i as u8).collect();
            let mut card = EchoCard {
                ifsc: usize::from(ifsc), send, nr: false, ns: false, rx: vec![], tx: vec![],
                last: vec![], n: 0, corrupt: vec![corrupt],
            };
            let mut s = T1::new(Params { ifsc, ..Params::default() }, Duration::from_millis(1));
            for _ in 0..2 {
                let r = s.transmit(&mut card, &apdu).unwrap();
                let mut want = apdu.clone();
                want.reverse();
                want.extend_from_slice(&[0x90, 0x00]);
                prop_assert_eq!(r, want);
            }
        }
    }
}
