//! One CCID slot over an abstract bulk/interrupt transport: power on, slot status, XfrBlock
//! with time extensions, sequence checking and XfrBlock chaining, and APDU exchange per the
//! reader's exchange level. At TPDU level the protocol follows the ATR and the reader's
//! `dwProtocols`: T=1 blocks ([`crate::t1`]) when the card runs T=1 right after its ATR (its
//! first or only protocol) and the reader has T=1, T=0 TPDUs otherwise. Every wait is bounded.

use std::time::{Duration, Instant};

use crate::apdu;
use crate::ccid::{
    self, ClassDescriptor, Command, CommandStatus, ExchangeLevel, IccStatus, Parsed, Response,
    Voltage,
};
use crate::error::{Error, Result};
use crate::t1::{self, AtrInfo, BlockTransport, T1};

/// The transmission protocol with the card.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Protocol {
    /// T=0 TPDUs, or APDUs the reader maps itself (APDU level).
    T0,
    /// T=1 blocks built here (TPDU level).
    T1,
}

/// Which card protocols a reader leaves to this driver, from its class descriptor alone.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CardProtocols {
    /// APDU level: the reader itself speaks T=0 or T=1 with the card.
    ByReader,
    /// TPDU level, T=0 only (also a reader announcing neither, like QEMU 7.2's usb-ccid).
    T0,
    /// TPDU level, T=1 only: a card speaking only T=0 is refused at power-on.
    T1,
    /// TPDU level, both: T=1 with a card that runs it right after its ATR, else T=0.
    T0AndT1,
}

/// What the driver makes of a reader from its class descriptor: the exchange level and the
/// card protocols, see [`decide`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Decision {
    pub level: ExchangeLevel,
    pub protocols: CardProtocols,
}

impl std::fmt::Display for Decision {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.protocols {
            CardProtocols::ByReader => write!(f, "{} level", self.level),
            CardProtocols::T0 => write!(f, "{} level, T=0", self.level),
            CardProtocols::T1 => write!(f, "{} level, T=1", self.level),
            CardProtocols::T0AndT1 => write!(f, "{} level, T=0 and T=1", self.level),
        }
    }
}

/// The reader decision, pure: what [`Reader::new`] accepts or refuses and the protocols
/// [`Reader::power_on`] may choose from at TPDU level. Character-level readers are refused.
/// QEMU 7.2's usb-ccid writes dwProtocols byte-swapped (0x00010000), so it announces neither
/// T=0 nor T=1: a TPDU reader without T=1 is taken as a T=0 reader. One with T=1 speaks T=1
/// to cards that run it (see `power_on`).
pub fn decide(desc: &ClassDescriptor) -> Result<Decision> {
    let level = desc.exchange_level();
    let protocols = match level {
        ExchangeLevel::Character => {
            return Err(Error::Unsupported(
                "character-level exchange; sherd drives TPDU (T=0 and T=1) and APDU-level \
                 readers"
                    .into(),
            ));
        }
        ExchangeLevel::ShortApdu | ExchangeLevel::ExtendedApdu => CardProtocols::ByReader,
        ExchangeLevel::Tpdu => match (desc.supports_t0(), desc.supports_t1()) {
            (true, true) => CardProtocols::T0AndT1,
            (false, true) => CardProtocols::T1,
            (_, false) => CardProtocols::T0,
        },
    };
    Ok(Decision { level, protocols })
}

/// The USB side of a reader. Implemented over usbfs by [`crate::usb::UsbTransport`] and by
/// scripted doubles in tests.
pub trait Transport: Send + Sync {
    /// Send one bulk-out transfer.
    fn bulk_out(&mut self, data: &[u8], timeout: Duration) -> Result<()>;
    /// Receive one bulk-in transfer of at most `max_len` bytes. It may be shorter than a
    /// whole CCID message: the caller keeps reading.
    fn bulk_in(&mut self, max_len: usize, timeout: Duration) -> Result<Vec<u8>>;
    /// Wait up to `timeout` for an interrupt-in message. `Ok(None)` if none came or the
    /// reader has no interrupt endpoint.
    fn interrupt_in(&mut self, timeout: Duration) -> Result<Option<Vec<u8>>>;
}

/// Bounds on every wait. A reader or card pulled mid-transfer ends in an error within
/// `transfer` (no answer) or at once (disconnect), never a hang.
#[derive(Clone, Copy, Debug)]
pub struct Timeouts {
    /// One bulk transfer.
    pub transfer: Duration,
    /// One CCID command including all time extensions the card asks for.
    pub command: Duration,
    /// Stale answers (wrong sequence number) skipped before giving up.
    pub max_stale: u32,
}

impl Default for Timeouts {
    fn default() -> Self {
        Self {
            transfer: Duration::from_secs(10),
            // Card-side Curve25519 takes well under a second; RSA key generation (which we
            // never do) would need minutes.
            command: Duration::from_secs(60),
            max_stale: 8,
        }
    }
}

/// Counters for measurements.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Stats {
    /// APDUs given to [`Reader::transmit`].
    pub apdus: u64,
    /// CCID XfrBlock round trips (TPDUs, GET RESPONSE and chain parts included).
    pub xfr_blocks: u64,
    /// Time extensions the card requested.
    pub time_extensions: u64,
}

/// A CCID reader slot.
pub struct Reader<T> {
    transport: T,
    desc: ClassDescriptor,
    slot: u8,
    seq: u8,
    timeouts: Timeouts,
    atr: Option<Vec<u8>>,
    stats: Stats,
    /// The T=1 session with the powered card, when T=1 was selected.
    t1: Option<T1>,
}

impl<T: Transport> Reader<T> {
    /// Wrap a transport. Refuses readers this driver cannot drive.
    pub fn new(transport: T, desc: ClassDescriptor, slot: u8) -> Result<Self> {
        if slot > desc.max_slot_index {
            return Err(Error::Unsupported(format!(
                "slot {slot} does not exist, the reader has {} slots",
                u16::from(desc.max_slot_index) + 1
            )));
        }
        decide(&desc)?;
        Ok(Self {
            transport,
            desc,
            slot,
            seq: 0,
            timeouts: Timeouts::default(),
            atr: None,
            stats: Stats::default(),
            t1: None,
        })
    }

    pub fn set_timeouts(&mut self, timeouts: Timeouts) {
        self.timeouts = timeouts;
    }

    pub fn descriptor(&self) -> &ClassDescriptor {
        &self.desc
    }

    pub fn exchange_level(&self) -> ExchangeLevel {
        self.desc.exchange_level()
    }

    /// The ATR of the last power-on, if the card is powered.
    pub fn atr(&self) -> Option<&[u8]> {
        self.atr.as_deref()
    }

    pub fn stats(&self) -> Stats {
        self.stats
    }

    /// The protocol in use with the powered card (T=0 when no card is powered).
    pub fn protocol(&self) -> Protocol {
        if self.t1.is_some() {
            Protocol::T1
        } else {
            Protocol::T0
        }
    }

    /// The longest answer (data + SW) one exchange with the powered card can bring when the
    /// reader's messages cannot carry a whole short answer (256 bytes and SW): T=0 TPDUs and
    /// short APDUs through readers with dwMaxCCIDMessageLength below 268. `None`: no limit
    /// below a short answer (T=1 and extended APDU level chain).
    pub fn max_answer(&self) -> Option<usize> {
        let n = self.desc.max_data_len();
        let unchained = matches!(
            self.desc.exchange_level(),
            ExchangeLevel::Tpdu | ExchangeLevel::ShortApdu
        ) && self.t1.is_none();
        (unchained && n < 258).then_some(n)
    }

    /// Counters of the T=1 session, if T=1 is in use.
    pub fn t1_stats(&self) -> Option<t1::Stats> {
        self.t1.as_ref().map(T1::stats)
    }

    pub fn transport_mut(&mut self) -> &mut T {
        &mut self.transport
    }

    /// Ask the reader whether a card is in the slot.
    pub fn slot_status(&mut self) -> Result<IccStatus> {
        let r = self.command(&Command::GetSlotStatus, "GetSlotStatus")?;
        if r.icc == IccStatus::Absent {
            self.atr = None;
            self.t1 = None;
        }
        Ok(r.icc)
    }

    /// Power the card on and return its ATR. At TPDU level with a T=1 card and reader, also
    /// set the T=1 parameters (`PC_to_RDR_SetParameters`, unless the reader negotiates them
    /// itself) and the IFSD (unless the reader exchanges it itself).
    pub fn power_on(&mut self) -> Result<Vec<u8>> {
        self.atr = None;
        self.t1 = None;
        let r = self.command(&Command::PowerOn(Voltage::Automatic), "IccPowerOn")?;
        self.check_ok(&r, "IccPowerOn")?;
        if r.data.is_empty() || !matches!(r.data[0], 0x3B | 0x3F) {
            return Err(Error::Card(format!(
                "the ATR {:02X?} does not start with 3B or 3F",
                r.data
            )));
        }
        self.atr = Some(r.data.clone());
        if self.desc.exchange_level() == ExchangeLevel::Tpdu
            && let Some(info) = self.choose_t1(&r.data)?
            && let Err(e) = self.start_t1(&info)
        {
            self.atr = None;
            return Err(e);
        }
        Ok(r.data)
    }

    /// Whether to speak T=1 with the card whose ATR is `atr` (TPDU level). T=1 when the card
    /// runs it right after the ATR (its specific mode, or its first offered protocol) and
    /// the reader has it; T=0 otherwise, as for a reader without T=1. A reader without T=0
    /// takes a card that offers T=1 second only if the reader makes the PPS itself.
    fn choose_t1(&self, atr: &[u8]) -> Result<Option<AtrInfo>> {
        let d = &self.desc;
        if !d.supports_t1() {
            return Ok(None);
        }
        let info = match AtrInfo::parse(atr) {
            Ok(info) => info,
            Err(_) if d.supports_t0() => return Ok(None),
            Err(e) => return Err(e),
        };
        if info.first_protocol() == 1 {
            return Ok(Some(info));
        }
        if d.supports_t0() && info.offers(0) {
            return Ok(None);
        }
        match (info.offers(1), d.supports_t0()) {
            // Negotiable mode: a PPS exchange switches the card to T=1 (the reader's own when it
            // makes one, else sherd's: see `start_t1`).
            (true, _) if info.specific.is_none() => Ok(Some(info)),
            (true, _) => Err(Error::Unsupported(
                "the card is fixed to T=0 (specific mode) and this TPDU reader speaks only T=1"
                    .into(),
            )),
            (false, false) => Err(Error::Unsupported(
                "the card speaks only T=0 and this TPDU reader only T=1".into(),
            )),
            (false, true) => Ok(None),
        }
    }

    /// The PPS exchange (ISO/IEC 7816-3, 9) that moves a card in negotiable mode from its first
    /// protocol to T=1, for readers that make none themselves: PPSS FF, PPS0 with T=1 (and
    /// PPS1 = the ATR's TA1 when it asks for other than the default Fi/Di), PCK. The card
    /// echoes the request to accept it, or leaves PPS1 out to keep the default Fi/Di. Returns
    /// the Fi/Di byte in force.
    fn pps_to_t1(&mut self, ta1: Option<u8>) -> Result<u8> {
        let ta1 = ta1.filter(|&t| t != 0x11);
        let mut req = vec![0xFF, if ta1.is_some() { 0x11 } else { 0x01 }];
        req.extend(ta1);
        req.push(req.iter().fold(0, |a, x| a ^ x));
        let r = self.command(
            &Command::XfrBlock {
                data: &req,
                level: 0,
            },
            "PPS",
        )?;
        let answer = self.checked_data_block(r)?.data;
        let default = [0xFF, 0x01, 0xFE];
        if answer == req {
            Ok(ta1.unwrap_or(0x11))
        } else if answer == default {
            Ok(0x11)
        } else {
            Err(Error::Card(format!(
                "the card answered the PPS request {req:02X?} (switch to T=1) with \
                 {answer:02X?}: it refuses T=1 with this reader"
            )))
        }
    }

    /// Set up T=1 with the powered card.
    fn start_t1(&mut self, info: &AtrInfo) -> Result<()> {
        let p = info.t1;
        let features = self.desc.features;
        let reader_negotiates =
            features & (ccid::FEATURE_AUTO_PPS | ccid::FEATURE_AUTO_NEGOTIATION) != 0;
        // A card in negotiable mode that starts in T=0 runs T=1 only after a PPS: sherd sends it
        // when the reader does not.
        let pps_fidi =
            (info.specific.is_none() && info.first_protocol() != 1 && !reader_negotiates)
                .then(|| self.pps_to_t1(info.ta1))
                .transpose()?;
        if features & ccid::FEATURE_AUTO_NEGOTIATION == 0 {
            // Fi/Di: in specific mode the ATR's TA1 unless TA2 says implicit values; in
            // negotiable mode TA1 only if a PPS agreed it (the reader's or sherd's), else the
            // defaults the card starts with.
            let fidi = match (info.specific, pps_fidi) {
                (Some(ta2), _) if ta2 & 0x10 != 0 => 0x11,
                (Some(_), _) => info.ta1.unwrap_or(0x11),
                (None, Some(agreed)) => agreed,
                (None, None) if features & ccid::FEATURE_AUTO_PPS != 0 => info.ta1.unwrap_or(0x11),
                (None, None) => 0x11,
            };
            let data = [
                fidi,
                0x10 | u8::from(p.edc == t1::Edc::Crc) | (u8::from(info.inverse) << 1),
                info.tc1.unwrap_or(0),
                (p.bwi << 4) | p.cwi,
                0x00,
                p.ifsc,
                0x00,
            ];
            let r = self.command(
                &Command::SetParameters {
                    protocol: 1,
                    data: &data,
                },
                "SetParameters",
            )?;
            self.check_ok(&r, "SetParameters")?;
        }
        let mut session = T1::new(p, p.bwt(self.clock_khz()));
        session.set_max_send(self.desc.max_data_len().saturating_sub(3 + p.edc.bytes()));
        if features & ccid::FEATURE_AUTO_IFSD == 0 {
            let mut ifsd = self.desc.max_data_len().saturating_sub(5).min(t1::MAX_INF);
            if self.desc.max_ifsd != 0 {
                ifsd = ifsd.min(self.desc.max_ifsd as usize);
            }
            let ifsd = u8::try_from(ifsd.max(1)).unwrap_or(t1::WANTED_IFSD);
            let bwt = session.bwt();
            session.negotiate_ifsd(&mut Link { reader: self, bwt }, ifsd)?;
        }
        self.t1 = Some(session);
        Ok(())
    }

    /// The card's clock for the block waiting time: the reader's default clock if it gives a
    /// plausible one, else 3.58 MHz (the slowest common default: the longest wait).
    fn clock_khz(&self) -> u32 {
        match self.desc.default_clock_khz {
            k @ 1000..=20_000 => k,
            _ => 3580,
        }
    }

    /// Power the card off (best effort when it was already removed).
    pub fn power_off(&mut self) -> Result<()> {
        self.atr = None;
        self.t1 = None;
        let r = self.command(&Command::PowerOff, "IccPowerOff")?;
        if r.command == CommandStatus::Failed && r.icc != IccStatus::Absent {
            return Err(self.slot_error(&r, "IccPowerOff"));
        }
        Ok(())
    }

    /// Send a command APDU and return the complete response (data + SW1 SW2).
    pub fn transmit(&mut self, apdu_bytes: &[u8]) -> Result<Vec<u8>> {
        if self.atr.is_none() {
            return Err(Error::NoCard);
        }
        self.stats.apdus += 1;
        if let Some(mut session) = self.t1.take() {
            // T=1 carries whole short APDUs: GET RESPONSE and 6Cxx as at short APDU level.
            let bwt = session.bwt();
            let r = apdu::exchange(apdu_bytes, ExchangeLevel::ShortApdu, &mut |bytes| {
                session.transmit(&mut Link { reader: self, bwt }, bytes)
            });
            if self.atr.is_some() {
                self.t1 = Some(session);
            }
            return r;
        }
        let level = self.desc.exchange_level();
        // T=0 TPDUs and short APDUs get their answer in one message: GET RESPONSE asks for
        // no more than the reader's messages carry (some have 263 bytes, not 268).
        // Commands too: a T=0 TPDU or short APDU longer than one message goes out chained.
        let max_answer = self.max_answer().unwrap_or(usize::MAX);
        let max_command = self.desc.max_data_len();
        apdu::exchange_within(apdu_bytes, level, max_answer, max_command, &mut |bytes| {
            self.xfr_block(bytes)
        })
    }

    /// Wait up to `timeout` for a slot change on the interrupt endpoint. Returns the new
    /// presence of our slot if it changed.
    pub fn wait_slot_change(&mut self, timeout: Duration) -> Result<Option<bool>> {
        let Some(msg) = self.transport.interrupt_in(timeout)? else {
            return Ok(None);
        };
        let slots = ccid::parse_notify_slot_change(&msg)?;
        match slots.get(usize::from(self.slot)) {
            Some(&(present, true)) => {
                if !present {
                    self.atr = None;
                    self.t1 = None;
                }
                Ok(Some(present))
            }
            _ => Ok(None),
        }
    }

    /// Wait up to `timeout` until a card is in the slot (`present`) or gone (`!present`).
    /// Asks the slot status, and between asks waits on the interrupt endpoint (at most
    /// 250 ms, for readers without one). Returns whether that state was reached.
    pub fn wait_for_card(&mut self, present: bool, timeout: Duration) -> Result<bool> {
        let deadline = Instant::now() + timeout;
        loop {
            if (self.slot_status()? != IccStatus::Absent) == present {
                return Ok(true);
            }
            let now = Instant::now();
            if now >= deadline {
                return Ok(false);
            }
            self.wait_slot_change((deadline - now).min(Duration::from_millis(250)))?;
        }
    }

    /// One XfrBlock exchange; chains the command and the response over several messages when
    /// they do not fit one (extended APDU level only; other levels never exceed one message).
    fn xfr_block(&mut self, data: &[u8]) -> Result<Vec<u8>> {
        let max = self.desc.max_data_len();
        let mut resp = if data.len() <= max {
            self.xfr_part(data, 0x0000)?
        } else {
            if self.desc.exchange_level() != ExchangeLevel::ExtendedApdu {
                return Err(Error::BadApdu(format!(
                    "{} bytes exceed the reader's {max}-byte messages",
                    data.len()
                )));
            }
            let chunks: Vec<&[u8]> = data.chunks(max).collect();
            let last = chunks.len() - 1;
            let mut r = None;
            for (i, chunk) in chunks.into_iter().enumerate() {
                let level = match i {
                    0 => 0x0001,
                    _ if i == last => 0x0002,
                    _ => 0x0003,
                };
                let part = self.xfr_part(chunk, level)?;
                if i != last && (part.specific != 0x10 || !part.data.is_empty()) {
                    return Err(Error::Protocol(format!(
                        "the reader answered chained command part {i} with chain parameter \
                         {:#04x} and {} bytes instead of an empty 0x10 block",
                        part.specific,
                        part.data.len()
                    )));
                }
                r = Some(part);
            }
            r.expect("at least one chunk")
        };
        let mut out = std::mem::take(&mut resp.data);
        let mut chain = resp.specific;
        while matches!(chain, 0x01 | 0x03) {
            if out.len() > apdu::MAX_RESPONSE {
                return Err(Error::Protocol(format!(
                    "the reader's chained response grew beyond {} bytes",
                    apdu::MAX_RESPONSE
                )));
            }
            let mut next = self.xfr_part(&[], 0x0010)?;
            out.append(&mut next.data);
            chain = next.specific;
        }
        if !matches!(chain, 0x00 | 0x02) {
            return Err(Error::Protocol(format!(
                "unknown response chain parameter {chain:#04x}"
            )));
        }
        Ok(out)
    }

    fn xfr_part(&mut self, data: &[u8], level: u16) -> Result<Response> {
        self.stats.xfr_blocks += 1;
        let r = self.command(&Command::XfrBlock { data, level }, "XfrBlock")?;
        self.checked_data_block(r)
    }

    /// One T=1 block to the card and its answer block. The reader waits up to `bwi` block
    /// waiting times for the card (0: one); we wait twice `wait` and 2 s more for the reader,
    /// at most the command timeout.
    fn t1_block(&mut self, block: &[u8], bwi: u8, wait: Duration) -> Result<Vec<u8>> {
        self.stats.xfr_blocks += 1;
        let limit = (wait * 2 + Duration::from_secs(2)).min(self.timeouts.command);
        let r = self.command_within(
            &Command::XfrBlockBwi { data: block, bwi },
            "XfrBlock",
            limit,
        )?;
        Ok(self.checked_data_block(r)?.data)
    }

    fn checked_data_block(&mut self, r: Response) -> Result<Response> {
        self.check_ok(&r, "XfrBlock")?;
        // Some readers (QEMU) answer an APDU for a pulled or unpowered card with an empty
        // block and no failure status: the ICC status tells.
        match r.icc {
            IccStatus::PresentActive => Ok(r),
            IccStatus::Absent => {
                self.atr = None;
                Err(Error::NoCard)
            }
            IccStatus::PresentInactive => {
                self.atr = None;
                Err(Error::Card(
                    "the card is not powered (it was reset or reinserted); power it on again"
                        .into(),
                ))
            }
        }
    }

    fn check_ok(&mut self, r: &Response, during: &'static str) -> Result<()> {
        match r.command {
            CommandStatus::Ok => Ok(()),
            _ if r.icc == IccStatus::Absent => {
                self.atr = None;
                self.t1 = None;
                Err(Error::NoCard)
            }
            _ => Err(self.slot_error(r, during)),
        }
    }

    fn slot_error(&self, r: &Response, during: &'static str) -> Error {
        Error::Slot {
            code: r.error,
            meaning: ccid::slot_error_meaning(r.error),
            during,
        }
    }

    /// Send a command and return the reader's final answer (after time extensions). A
    /// failed command status is returned, not turned into an error: callers decide.
    fn command(&mut self, cmd: &Command<'_>, what: &'static str) -> Result<Response> {
        self.command_within(cmd, what, self.timeouts.command)
    }

    /// [`Self::command`] with its own bound on the whole command.
    fn command_within(
        &mut self,
        cmd: &Command<'_>,
        what: &'static str,
        limit: Duration,
    ) -> Result<Response> {
        let seq = self.seq;
        self.seq = self.seq.wrapping_add(1);
        // The message may carry a PIN or key material: wipe our copy once sent.
        let message = zeroize::Zeroizing::new(cmd.encode(self.slot, seq));
        self.transport.bulk_out(&message, self.timeouts.transfer)?;
        let deadline = Instant::now() + limit;
        let mut stale = 0;
        loop {
            let r = self.read_message(deadline, limit, what)?;
            if r.seq != seq || r.slot != self.slot {
                // An answer to an earlier command that timed out: skip a few.
                stale += 1;
                if stale > self.timeouts.max_stale {
                    return Err(Error::Protocol(format!(
                        "{stale} answers with the wrong sequence number (expected {seq}, slot \
                         {}) to {what}",
                        self.slot
                    )));
                }
                continue;
            }
            if r.message_type != cmd.response_type() {
                return Err(Error::Protocol(format!(
                    "{what} was answered with message type {:#04x}, expected {:#04x}",
                    r.message_type,
                    cmd.response_type()
                )));
            }
            if r.command == CommandStatus::TimeExtension {
                self.stats.time_extensions += 1;
                continue;
            }
            return Ok(r);
        }
    }

    /// Read one whole bulk-in message, across as many transfers as it takes.
    fn read_message(
        &mut self,
        deadline: Instant,
        limit: Duration,
        what: &'static str,
    ) -> Result<Response> {
        let max_data = self.desc.max_data_len();
        let mut buf = Vec::new();
        loop {
            match Response::parse(&buf, max_data)? {
                Parsed::Complete(r, _) => return Ok(r),
                Parsed::NeedMore(_) => {}
            }
            let now = Instant::now();
            if now >= deadline {
                return Err(Error::Timeout { what, after: limit });
            }
            let wait = self.timeouts.transfer.min(deadline - now);
            let chunk = self
                .transport
                .bulk_in(ccid::HEADER_LEN + max_data - buf.len(), wait)
                .map_err(|e| match e {
                    Error::Timeout { .. } => Error::Timeout { what, after: wait },
                    other => other,
                })?;
            buf.extend_from_slice(&chunk);
        }
    }
}

/// The reader as the T=1 state machine's block transport.
struct Link<'a, T> {
    reader: &'a mut Reader<T>,
    /// The session's block waiting time.
    bwt: Duration,
}

impl<T: Transport> BlockTransport for Link<'_, T> {
    fn exchange(&mut self, block: &[u8], wait: Duration) -> Result<Vec<u8>> {
        // bBWI: how many block waiting times the reader waits (after a WTX, more than one).
        let bwt = self.bwt;
        let bwi = if wait > bwt && !bwt.is_zero() {
            u8::try_from(wait.as_nanos().div_ceil(bwt.as_nanos())).unwrap_or(u8::MAX)
        } else {
            0
        };
        self.reader.t1_block(block, bwi, wait)
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use std::collections::VecDeque;

    /// One recorded step on the wire.
    #[derive(Debug)]
    pub(crate) enum Step {
        /// The host must send exactly these bytes.
        Out(Vec<u8>),
        /// The reader delivers this bulk-in transfer.
        In(Vec<u8>),
        /// The next bulk-in fails like this.
        InErr(fn() -> Error),
        /// An interrupt-in message.
        Irq(Vec<u8>),
        /// Every further bulk-in delivers this, forever.
        InForever(Vec<u8>),
    }

    /// Replays a recorded exchange and fails the test on any deviation.
    pub(crate) struct Scripted {
        pub steps: VecDeque<Step>,
    }

    impl Scripted {
        pub(crate) fn new(steps: Vec<Step>) -> Self {
            Self {
                steps: steps.into(),
            }
        }
    }

    impl Transport for Scripted {
        fn bulk_out(&mut self, data: &[u8], _: Duration) -> Result<()> {
            match self.steps.pop_front() {
                Some(Step::Out(expect)) => {
                    assert_eq!(data, expect.as_slice(), "host sent the wrong message");
                    Ok(())
                }
                other => panic!("host sent {data:02X?}, script expected {other:?}"),
            }
        }

        fn bulk_in(&mut self, max_len: usize, timeout: Duration) -> Result<Vec<u8>> {
            match self.steps.pop_front() {
                Some(Step::In(mut data)) => {
                    assert!(data.len() <= max_len, "script delivers more than asked");
                    data.truncate(max_len);
                    Ok(data)
                }
                Some(Step::InErr(e)) => Err(e()),
                Some(Step::InForever(data)) => {
                    let out = data.clone();
                    self.steps.push_front(Step::InForever(data));
                    Ok(out)
                }
                // Nothing more from the reader: what a silent device looks like.
                None => Err(Error::Timeout {
                    what: "bulk-in",
                    after: timeout,
                }),
                Some(other) => panic!("host reads, script expected {other:?}"),
            }
        }

        fn interrupt_in(&mut self, _: Duration) -> Result<Option<Vec<u8>>> {
            match self.steps.front() {
                Some(Step::Irq(_)) => match self.steps.pop_front() {
                    Some(Step::Irq(m)) => Ok(Some(m)),
                    _ => unreachable!(),
                },
                _ => Ok(None),
            }
        }
    }

    pub(crate) fn msg(ty: u8, seq: u8, status: u8, error: u8, chain: u8, data: &[u8]) -> Vec<u8> {
        let mut m = vec![ty];
        m.extend_from_slice(&(data.len() as u32).to_le_bytes());
        m.extend_from_slice(&[0, seq, status, error, chain]);
        m.extend_from_slice(data);
        m
    }

    fn xfr(seq: u8, data: &[u8]) -> Vec<u8> {
        Command::XfrBlock { data, level: 0 }.encode(0, seq)
    }

    fn tpdu_desc() -> ClassDescriptor {
        ClassDescriptor::parse(&crate::ccid::tests::qemu_like_descriptor()).unwrap()
    }

    fn desc_with(features: u32, max_msg: u32) -> ClassDescriptor {
        let mut d = tpdu_desc();
        d.features = features;
        d.max_message_length = max_msg;
        d.protocols = 3;
        d
    }

    const ATR: &[u8] = &[0x3B, 0x02, 0x14, 0x50];

    fn powered(desc: ClassDescriptor, mut steps: Vec<Step>) -> Reader<Scripted> {
        let mut all = vec![
            Step::Out(vec![0x62, 0, 0, 0, 0, 0, 0, 0, 0, 0]),
            Step::In(msg(0x80, 0, 0, 0, 0, ATR)),
        ];
        all.append(&mut steps);
        let mut r = Reader::new(Scripted::new(all), desc, 0).unwrap();
        r.set_timeouts(Timeouts {
            transfer: Duration::from_millis(50),
            command: Duration::from_millis(500),
            max_stale: 2,
        });
        assert_eq!(r.power_on().unwrap(), ATR);
        r
    }

    fn finished(r: &Reader<Scripted>) {
        assert!(
            r.transport.steps.is_empty(),
            "left: {:?}",
            r.transport.steps
        );
    }

    // A QEMU-7.2-like TPDU/T=0 reader: SELECT with a time extension, then 61xx GET RESPONSE.
    #[test]
    fn tpdu_select_with_time_extension_and_get_response() {
        let select = [
            0x00, 0xA4, 0x04, 0x00, 0x06, 0xD2, 0x76, 0x00, 0x01, 0x24, 0x01, 0x00,
        ];
        let mut r = powered(
            tpdu_desc(),
            vec![
                Step::Out(xfr(1, &select[..11])),
                Step::In(msg(0x80, 1, 0x80, 1, 0, &[])),
                Step::In(msg(0x80, 1, 0x80, 1, 0, &[])),
                Step::In(msg(0x80, 1, 0x00, 0, 0, &[0x61, 0x02])),
                Step::Out(xfr(2, &[0x00, 0xC0, 0x00, 0x00, 0x02])),
                Step::In(msg(0x80, 2, 0x00, 0, 0, &[0x01, 0x02, 0x90, 0x00])),
            ],
        );
        assert_eq!(r.transmit(&select).unwrap(), [0x01, 0x02, 0x90, 0x00]);
        assert_eq!(
            r.stats(),
            Stats {
                apdus: 1,
                xfr_blocks: 2,
                time_extensions: 2
            }
        );
        finished(&r);
    }

    // A response split over several bulk-in transfers (short reads) is reassembled.
    #[test]
    fn short_reads_are_reassembled() {
        let mut data = vec![0x5A; 40];
        data.extend_from_slice(&[0x90, 0x00]);
        let whole = msg(0x80, 1, 0, 0, 0, &data);
        let mut r = powered(
            desc_with(0x0002_0000, 271),
            vec![
                Step::Out(xfr(1, &[0x00, 0xCA, 0x00, 0x6E, 0x00])),
                Step::In(whole[..7].to_vec()),
                Step::In(whole[7..16].to_vec()),
                Step::In(Vec::new()),
                Step::In(whole[16..].to_vec()),
            ],
        );
        assert_eq!(r.transmit(&[0x00, 0xCA, 0x00, 0x6E, 0x00]).unwrap(), data);
        finished(&r);
    }

    // The reader vanishes mid-transfer: a clean error at once, nothing retried.
    #[test]
    fn device_vanishing_mid_transfer() {
        let whole = msg(0x80, 1, 0, 0, 0, &[0x90, 0x00]);
        let mut r = powered(
            desc_with(0x0002_0000, 271),
            vec![
                Step::Out(xfr(1, &[0x00, 0x84, 0x00, 0x00, 0x08])),
                Step::In(whole[..5].to_vec()),
                Step::InErr(|| Error::Disconnected),
            ],
        );
        assert!(matches!(
            r.transmit(&[0x00, 0x84, 0x00, 0x00, 0x08]),
            Err(Error::Disconnected)
        ));
        finished(&r);
    }

    // A reader that stops answering (half a message, then silence) times out, bounded.
    #[test]
    fn silent_reader_times_out() {
        let whole = msg(0x80, 1, 0, 0, 0, &[0x90, 0x00]);
        let mut r = powered(
            desc_with(0x0002_0000, 271),
            vec![
                Step::Out(xfr(1, &[0x00, 0x84, 0x00, 0x00, 0x08])),
                Step::In(whole[..5].to_vec()),
            ],
        );
        let start = Instant::now();
        assert!(matches!(
            r.transmit(&[0x00, 0x84, 0x00, 0x00, 0x08]),
            Err(Error::Timeout { .. })
        ));
        assert!(start.elapsed() < Duration::from_secs(5));
    }

    // Time extensions forever: the command deadline ends it.
    #[test]
    fn endless_time_extensions_hit_the_deadline() {
        let steps = vec![
            Step::Out(xfr(1, &[0x00, 0x84, 0x00, 0x00, 0x08])),
            Step::InForever(msg(0x80, 1, 0x80, 1, 0, &[])),
        ];
        let mut r = powered(desc_with(0x0002_0000, 271), steps);
        let start = Instant::now();
        assert!(matches!(
            r.transmit(&[0x00, 0x84, 0x00, 0x00, 0x08]),
            Err(Error::Timeout { .. })
        ));
        assert!(start.elapsed() < Duration::from_secs(5));
    }

    // The card is pulled: the reader answers with "absent", we report no card and forget
    // the ATR so nothing else is sent until a new power-on.
    #[test]
    fn card_removed_mid_session() {
        let mut r = powered(
            desc_with(0x0002_0000, 271),
            vec![
                Step::Out(xfr(1, &[0x00, 0x84, 0x00, 0x00, 0x08])),
                Step::In(msg(0x80, 1, 0x42, 0xFE, 0, &[])),
                Step::Out(Command::GetSlotStatus.encode(0, 2)),
                Step::In(msg(0x81, 2, 0x02, 0, 0, &[])),
            ],
        );
        assert!(matches!(
            r.transmit(&[0x00, 0x84, 0x00, 0x00, 0x08]),
            Err(Error::NoCard)
        ));
        assert!(r.atr().is_none());
        assert!(matches!(
            r.transmit(&[0, 0x84, 0, 0, 8]),
            Err(Error::NoCard)
        ));
        assert_eq!(r.slot_status().unwrap(), IccStatus::Absent);
        finished(&r);
    }

    // An answer to an earlier, timed-out command is skipped; too many of them is an error.
    #[test]
    fn stale_sequence_numbers() {
        let mut r = powered(
            desc_with(0x0002_0000, 271),
            vec![
                Step::Out(xfr(1, &[0x00, 0x84, 0x00, 0x00, 0x01])),
                Step::In(msg(0x80, 0, 0, 0, 0, &[0x90, 0x00])),
                Step::In(msg(0x80, 1, 0, 0, 0, &[0x07, 0x90, 0x00])),
                Step::Out(xfr(2, &[0x00, 0x84, 0x00, 0x00, 0x01])),
                Step::In(msg(0x80, 9, 0, 0, 0, &[0x90, 0x00])),
                Step::In(msg(0x80, 9, 0, 0, 0, &[0x90, 0x00])),
                Step::In(msg(0x80, 9, 0, 0, 0, &[0x90, 0x00])),
            ],
        );
        assert_eq!(r.transmit(&[0, 0x84, 0, 0, 1]).unwrap(), [0x07, 0x90, 0x00]);
        assert!(matches!(
            r.transmit(&[0, 0x84, 0, 0, 1]),
            Err(Error::Protocol(_))
        ));
    }

    // Extended APDU level: a command longer than one message goes out in XfrBlock parts,
    // a long response comes back in parts.
    #[test]
    fn extended_level_xfr_block_chaining() {
        let mut raw = vec![0x00, 0xDB, 0x3F, 0xFF, 0x00, 0x00, 30];
        raw.extend(0..30u8);
        let max_msg = 10 + 20;
        let part = |seq, data: &[u8], level: u16| Command::XfrBlock { data, level }.encode(0, seq);
        let mut r = powered(
            desc_with(0x0004_0000, max_msg),
            vec![
                Step::Out(part(1, &raw[..20], 1)),
                Step::In(msg(0x80, 1, 0, 0, 0x10, &[])),
                Step::Out(part(2, &raw[20..], 2)),
                Step::In(msg(0x80, 2, 0, 0, 0x01, &[0xAB; 20])),
                Step::Out(part(3, &[], 0x10)),
                Step::In(msg(0x80, 3, 0, 0, 0x02, &[0xCD, 0x90, 0x00])),
            ],
        );
        let resp = r.transmit(&raw).unwrap();
        assert_eq!(resp.len(), 23);
        assert_eq!(&resp[20..], [0xCD, 0x90, 0x00]);
        finished(&r);
    }

    #[test]
    fn slot_errors_and_wrong_types_are_reported() {
        let mut r = powered(
            desc_with(0x0002_0000, 271),
            vec![
                Step::Out(xfr(1, &[0x00, 0x84, 0x00, 0x00, 0x01])),
                Step::In(msg(0x80, 1, 0x40, 0xFB, 0, &[])),
                Step::Out(xfr(2, &[0x00, 0x84, 0x00, 0x00, 0x01])),
                Step::In(msg(0x81, 2, 0x00, 0, 0, &[])),
            ],
        );
        let e = r.transmit(&[0, 0x84, 0, 0, 1]).unwrap_err();
        assert!(matches!(e, Error::Slot { code: 0xFB, .. }), "{e}");
        assert!(e.to_string().contains("hardware error"));
        assert!(matches!(
            r.transmit(&[0, 0x84, 0, 0, 1]),
            Err(Error::Protocol(_))
        ));
    }

    #[test]
    fn slot_change_notifications() {
        let mut r = powered(
            tpdu_desc(),
            vec![Step::Irq(vec![0x50, 0b10]), Step::Irq(vec![0x50, 0b11])],
        );
        assert_eq!(r.wait_slot_change(Duration::ZERO).unwrap(), Some(false));
        assert!(r.atr().is_none());
        assert_eq!(r.wait_slot_change(Duration::ZERO).unwrap(), Some(true));
        assert_eq!(r.wait_slot_change(Duration::ZERO).unwrap(), None);
    }

    #[test]
    fn waits_for_insertion() {
        let status = |seq, icc| {
            vec![
                Step::Out(Command::GetSlotStatus.encode(0, seq)),
                Step::In(msg(0x81, seq, icc, 0, 0, &[])),
            ]
        };
        let mut steps = status(1, 0x02);
        steps.push(Step::Irq(vec![0x50, 0b11]));
        steps.extend(status(2, 0x01));
        let mut r = powered(tpdu_desc(), steps);
        assert!(r.wait_for_card(true, Duration::from_secs(5)).unwrap());
        finished(&r);
        // Never inserted: false once the time is up.
        let mut r = powered(tpdu_desc(), status(1, 0x02));
        assert!(!r.wait_for_card(true, Duration::ZERO).unwrap());
        finished(&r);
        // Removal is waited for the same way.
        let mut r = powered(tpdu_desc(), status(1, 0x02));
        assert!(r.wait_for_card(false, Duration::ZERO).unwrap());
    }

    #[test]
    fn refuses_unusable_readers() {
        let mut d = tpdu_desc();
        d.features = 0;
        assert!(Reader::new(Scripted::new(vec![]), d.clone(), 0).is_err());
        // A TPDU reader with T=1 only is taken: it speaks T=1 (see the t1_* tests).
        d.features = 0x0001_0000;
        d.protocols = 2;
        assert!(Reader::new(Scripted::new(vec![]), d.clone(), 0).is_ok());
        d.protocols = 1;
        assert!(Reader::new(Scripted::new(vec![]), d, 1).is_err());
    }

    /// The class descriptor as QEMU 7.2's usb-ccid sends it: dwProtocols byte-swapped
    /// (00 00 01 00), dwFeatures 0x000104FE (TPDU), dwMaxCCIDMessageLength 0x00010012.
    fn qemu_descriptor() -> Vec<u8> {
        let mut d = vec![0x36, 0x21, 0x10, 0x01, 0x00, 0x07, 0x00, 0x00, 0x01, 0x00];
        d.extend_from_slice(&[0xA0, 0x0F, 0, 0, 0, 0, 1, 0, 0, 0x80, 0x25, 0, 0]);
        d.extend_from_slice(&[0x00, 0xC2, 0x01, 0x00, 0x00, 0xFE, 0, 0, 0]);
        d.extend_from_slice(&[0; 8]);
        d.extend_from_slice(&[0xFE, 0x04, 0x01, 0x00, 0x12, 0x00, 0x01, 0x00]);
        d.extend_from_slice(&[0xFF, 0xFF, 0x00, 0x00, 0x01, 0x01]);
        d
    }

    #[test]
    fn accepts_qemus_descriptor_as_t0() {
        let d = ClassDescriptor::parse(&qemu_descriptor()).unwrap();
        assert_eq!(d.protocols, 0x0001_0000);
        assert_eq!(d.features, 0x0001_04FE);
        assert_eq!(d.max_message_length, 0x0001_0012);
        assert_eq!(d.exchange_level(), ExchangeLevel::Tpdu);
        assert!(Reader::new(Scripted::new(vec![]), d, 0).is_ok());
    }

    // QEMU answers an APDU for a card pulled meanwhile with an empty block, "no error",
    // ICC status absent; or inactive if the card was reinserted but not powered.
    #[test]
    fn empty_ok_block_from_a_pulled_card() {
        let d = ClassDescriptor::parse(&qemu_descriptor()).unwrap();
        let mut r = powered(
            d.clone(),
            vec![
                Step::Out(xfr(1, &[0x00, 0xCA, 0x00, 0x4F, 0x00])),
                Step::In(msg(0x80, 1, 0x02, 0, 0, &[])),
            ],
        );
        assert!(matches!(
            r.transmit(&[0, 0xCA, 0, 0x4F, 0]),
            Err(Error::NoCard)
        ));
        let mut r = powered(
            d,
            vec![
                Step::Out(xfr(1, &[0x00, 0xCA, 0x00, 0x4F, 0x00])),
                Step::In(msg(0x80, 1, 0x01, 0, 0, &[])),
            ],
        );
        assert!(matches!(
            r.transmit(&[0, 0xCA, 0, 0x4F, 0]),
            Err(Error::Card(_))
        ));
        assert!(r.atr().is_none());
    }

    #[test]
    fn bad_atr_is_refused() {
        let mut r = Reader::new(
            Scripted::new(vec![
                Step::Out(vec![0x62, 0, 0, 0, 0, 0, 0, 0, 0, 0]),
                Step::In(msg(0x80, 0, 0, 0, 0, &[0x00, 0x11])),
            ]),
            tpdu_desc(),
            0,
        )
        .unwrap();
        assert!(matches!(r.power_on(), Err(Error::Card(_))));
        assert!(r.atr().is_none());
    }

    /// A T=1 block with LRC, built by hand.
    fn block(pcb: u8, inf: &[u8]) -> Vec<u8> {
        let mut b = vec![0, pcb, inf.len() as u8];
        b.extend_from_slice(inf);
        b.push(b.iter().fold(0, |a, x| a ^ x));
        b
    }

    /// TD1: T=1; TD2: T=1 with TA3 = IFSC 32 and TB3 = BWI 4, CWI 5; TCK.
    const T1_ATR: &[u8] = &[0x3B, 0x80, 0x81, 0x31, 0x20, 0x45, 0x55];

    fn t1_block_cmd(seq: u8, bwi: u8, data: &[u8]) -> Vec<u8> {
        Command::XfrBlockBwi { data, bwi }.encode(0, seq)
    }

    /// Power on a T=1 card: SetParameters (unless the reader negotiates), then the IFSD.
    fn t1_powered(features: u32, mut steps: Vec<Step>) -> Reader<Scripted> {
        let params = [0x11, 0x10, 0x00, 0x45, 0x00, 0x20, 0x00];
        let mut all = vec![
            Step::Out(vec![0x62, 0, 0, 0, 0, 0, 0, 0, 0, 0]),
            Step::In(msg(0x80, 0, 0, 0, 0, T1_ATR)),
        ];
        let mut seq = 1;
        if features & ccid::FEATURE_AUTO_NEGOTIATION == 0 {
            all.push(Step::Out(
                Command::SetParameters {
                    protocol: 1,
                    data: &params,
                }
                .encode(0, seq),
            ));
            all.push(Step::In(msg(0x82, seq, 0, 0, 1, &params)));
            seq += 1;
        }
        if features & ccid::FEATURE_AUTO_IFSD == 0 {
            all.push(Step::Out(t1_block_cmd(seq, 0, &block(0xC1, &[0xFE]))));
            all.push(Step::In(msg(0x80, seq, 0, 0, 0, &block(0xE1, &[0xFE]))));
        }
        all.append(&mut steps);
        let mut d = desc_with(features, 271);
        d.protocols = 2;
        let mut r = Reader::new(Scripted::new(all), d, 0).unwrap();
        r.set_timeouts(Timeouts {
            transfer: Duration::from_millis(50),
            command: Duration::from_millis(500),
            max_stale: 2,
        });
        assert_eq!(r.power_on().unwrap(), T1_ATR);
        assert_eq!(r.protocol(), Protocol::T1);
        r
    }

    // A TPDU reader with T=1 only (e.g. a Nitrokey Pro): SetParameters with the ATR's T=1
    // values, S(IFS) for 254, then an APDU in an I-block.
    #[test]
    fn t1_reader_sets_parameters_and_ifsd() {
        let apdu = [0x00, 0xCA, 0x00, 0x6E, 0x00];
        let mut r = t1_powered(
            0x0001_00BA,
            vec![
                Step::Out(t1_block_cmd(3, 0, &block(0x00, &apdu))),
                Step::In(msg(0x80, 3, 0x80, 1, 0, &[])),
                Step::In(msg(0x80, 3, 0, 0, 0, &block(0x00, &[1, 2, 0x90, 0x00]))),
            ],
        );
        assert_eq!(r.transmit(&apdu).unwrap(), [1, 2, 0x90, 0x00]);
        assert_eq!(r.t1_stats().unwrap().blocks, 2);
        finished(&r);
    }

    // Real OpenPGP cards' ATRs (TA1 0x18, TC1 0xFF, T=1 with IFSC 254, BWI 7, CWI 5, then
    // T=15) in readers with recorded descriptors: the 2.x card (as in a Nitrokey Pro) behind
    // the Nitrokey Pro's reader (T=1 only, automatic PPS and IFSD exchange): SetParameters
    // with TA1 (the reader makes the PPS) and nothing else; the 3.x card in an SCR3310 (T=0
    // and T=1, no automatic IFSD, dwMaxIFSD 252): the same, then S(IFS request) for 252.
    #[test]
    fn openpgp_card_atrs_in_recorded_readers() {
        const V2: &[u8] = &[
            0x3B, 0xDA, 0x18, 0xFF, 0x81, 0xB1, 0xFE, 0x75, 0x1F, 0x03, 0x00, 0x31, 0xC5, 0x73,
            0xC0, 0x01, 0x40, 0x00, 0x90, 0x00, 0x0C,
        ];
        const V3: &[u8] = &[
            0x3B, 0xDA, 0x18, 0xFF, 0x81, 0xB1, 0xFE, 0x75, 0x1F, 0x03, 0x00, 0x31, 0xF5, 0x73,
            0xC0, 0x01, 0x60, 0x00, 0x90, 0x00, 0x1C,
        ];
        let params = [0x18, 0x10, 0xFF, 0x75, 0x00, 0xFE, 0x00];
        for (atr, features, protocols, max_ifsd, clock) in [
            (V2, 0x0001_04BA, 2, 254, 3600),
            (V3, 0x0001_00BA, 3, 252, 4000),
        ] {
            let mut steps = vec![
                Step::Out(vec![0x62, 0, 0, 0, 0, 0, 0, 0, 0, 0]),
                Step::In(msg(0x80, 0, 0, 0, 0, atr)),
                Step::Out(
                    Command::SetParameters {
                        protocol: 1,
                        data: &params,
                    }
                    .encode(0, 1),
                ),
                Step::In(msg(0x82, 1, 0, 0, 1, &params)),
            ];
            if features & ccid::FEATURE_AUTO_IFSD == 0 {
                steps.push(Step::Out(t1_block_cmd(2, 0, &block(0xC1, &[252]))));
                steps.push(Step::In(msg(0x80, 2, 0, 0, 0, &block(0xE1, &[252]))));
            }
            let mut d = desc_with(features, 271);
            (d.protocols, d.max_ifsd, d.default_clock_khz) = (protocols, max_ifsd, clock);
            let mut r = Reader::new(Scripted::new(steps), d, 0).unwrap();
            assert_eq!(r.power_on().unwrap(), atr);
            assert_eq!(r.protocol(), Protocol::T1);
            finished(&r);
        }
    }

    // A reader that negotiates parameters and IFSD itself gets neither; a WTX request makes
    // the next XfrBlock carry bBWI = the multiplier; 61xx is followed with GET RESPONSE.
    #[test]
    fn t1_automatic_reader_wtx_and_get_response() {
        let apdu = [0x00, 0x2A, 0x80, 0x86, 0x02, 0xAA, 0xBB, 0x00];
        let mut r = t1_powered(
            0x0001_04FE,
            vec![
                Step::Out(t1_block_cmd(1, 0, &block(0x00, &apdu))),
                Step::In(msg(0x80, 1, 0, 0, 0, &block(0xC3, &[3]))),
                Step::Out(t1_block_cmd(2, 3, &block(0xE3, &[3]))),
                Step::In(msg(0x80, 2, 0, 0, 0, &block(0x00, &[0x61, 0x02]))),
                Step::Out(t1_block_cmd(3, 0, &block(0x40, &[0, 0xC0, 0, 0, 2]))),
                Step::In(msg(0x80, 3, 0, 0, 0, &block(0x40, &[7, 8, 0x90, 0x00]))),
            ],
        );
        assert_eq!(r.transmit(&apdu).unwrap(), [7, 8, 0x90, 0x00]);
        assert_eq!(r.t1_stats().unwrap().wtx, 1);
        finished(&r);
    }

    // The reader reports the card mute: the block is asked for again; then the card is
    // pulled: no card, the T=1 session is gone.
    #[test]
    fn t1_mute_card_then_pulled() {
        let apdu = [0x00, 0x84, 0x00, 0x00, 0x08];
        let mut r = t1_powered(
            0x0001_04FE,
            vec![
                Step::Out(t1_block_cmd(1, 0, &block(0x00, &apdu))),
                Step::In(msg(0x80, 1, 0x40, 0xFE, 0, &[])),
                Step::Out(t1_block_cmd(2, 0, &block(0x82, &[]))),
                Step::In(msg(0x80, 2, 0, 0, 0, &block(0x00, &[0x90, 0x00]))),
                Step::Out(t1_block_cmd(3, 0, &block(0x40, &apdu))),
                Step::In(msg(0x80, 3, 0x42, 0xFE, 0, &[])),
            ],
        );
        assert_eq!(r.transmit(&apdu).unwrap(), [0x90, 0x00]);
        assert!(matches!(r.transmit(&apdu), Err(Error::NoCard)));
        assert_eq!(r.protocol(), Protocol::T0);
        assert!(matches!(r.transmit(&apdu), Err(Error::NoCard)));
        finished(&r);
    }

    // A card that goes silent in T=1: every XfrBlock wait is bounded and the APDU fails.
    #[test]
    fn t1_silent_card_is_bounded() {
        let mut r = t1_powered(
            0x0001_04FE,
            vec![Step::Out(t1_block_cmd(
                1,
                0,
                &block(0, &[0, 0x84, 0, 0, 8]),
            ))],
        );
        let start = Instant::now();
        assert!(matches!(
            r.transmit(&[0x00, 0x84, 0x00, 0x00, 0x08]),
            Err(Error::Timeout { .. })
        ));
        assert!(start.elapsed() < Duration::from_secs(5));
    }

    // Protocol choice at TPDU level.
    /// A card in negotiable mode, T=0 first and T=1 second, TA1 = 0x96, in a T=1-only TPDU
    /// reader that makes no PPS itself: sherd sends PPS (FF 11 96 PCK) as a raw XfrBlock, and
    /// on the echo sets T=1 with Fi/Di 0x96; a card that keeps the default Fi/Di (FF 01 FE)
    /// gets 0x11; any other answer is an error naming both.
    #[test]
    fn host_pps_moves_a_negotiable_card_to_t1() {
        // TA1 96, TD1 T=0 with TD2 following, TD2 T=1 with TA3 (IFSC 32), TB3 (BWI 4, CWI 5).
        let mut atr = vec![0x3B, 0x90, 0x96, 0x80, 0x31, 0x20, 0x45];
        atr.push(atr[1..].iter().fold(0, |a, x| a ^ x));
        let pps = [0xFF, 0x11, 0x96, 0xFF ^ 0x11 ^ 0x96];
        for (answer, fidi) in [
            (pps.to_vec(), Some(0x96u8)),
            (vec![0xFF, 0x01, 0xFE], Some(0x11)),
            (vec![0xFF, 0x10, 0xEF], None),
        ] {
            let params = [fidi.unwrap_or(0), 0x10, 0x00, 0x45, 0x00, 0x20, 0x00];
            let mut steps = vec![
                Step::Out(vec![0x62, 0, 0, 0, 0, 0, 0, 0, 0, 0]),
                Step::In(msg(0x80, 0, 0, 0, 0, &atr)),
                Step::Out(
                    Command::XfrBlock {
                        data: &pps,
                        level: 0,
                    }
                    .encode(0, 1),
                ),
                Step::In(msg(0x80, 1, 0, 0, 0, &answer)),
            ];
            if fidi.is_some() {
                steps.push(Step::Out(
                    Command::SetParameters {
                        protocol: 1,
                        data: &params,
                    }
                    .encode(0, 2),
                ));
                steps.push(Step::In(msg(0x82, 2, 0, 0, 1, &params)));
                steps.push(Step::Out(t1_block_cmd(3, 0, &block(0xC1, &[0xFE]))));
                steps.push(Step::In(msg(0x80, 3, 0, 0, 0, &block(0xE1, &[0xFE]))));
            }
            let mut d = desc_with(0x0001_0000, 271);
            d.protocols = 2;
            let mut r = Reader::new(Scripted::new(steps), d, 0).unwrap();
            r.set_timeouts(Timeouts {
                transfer: Duration::from_millis(50),
                command: Duration::from_millis(500),
                max_stale: 2,
            });
            match fidi {
                Some(_) => {
                    assert_eq!(r.power_on().unwrap(), atr);
                    assert_eq!(r.protocol(), Protocol::T1);
                    finished(&r);
                }
                None => {
                    let e = r.power_on().unwrap_err().to_string();
                    assert!(e.contains("refuses T=1") && e.contains("FF, 10, EF"), "{e}");
                }
            }
        }
    }

    #[test]
    fn t1_protocol_choice() {
        let power = |protocols: u32, features: u32, atr: &[u8]| {
            let mut d = desc_with(features, 271);
            d.protocols = protocols;
            let mut r = Reader::new(
                Scripted::new(vec![
                    Step::Out(vec![0x62, 0, 0, 0, 0, 0, 0, 0, 0, 0]),
                    Step::In(msg(0x80, 0, 0, 0, 0, atr)),
                ]),
                d,
                0,
            )
            .unwrap();
            let res = r.power_on();
            (res, r.protocol())
        };
        // A T=0 card in a T=0/T=1 reader: T=0, nothing else sent.
        let (res, p) = power(3, 0x0001_04FE, ATR);
        assert!(res.is_ok());
        assert_eq!(p, Protocol::T0);
        // T=0 first, T=1 second: T=0 when the reader has it.
        let mut both = vec![0x3B, 0x80, 0x80, 0x01];
        both.push(both[1..].iter().fold(0, |a, x| a ^ x));
        assert_eq!(power(3, 0x0001_04FE, &both).1, Protocol::T0);
        // A T=0 card in a T=1-only reader: refused. (A T=1-second card there gets a PPS:
        // `host_pps_moves_a_negotiable_card_to_t1`.)
        assert!(matches!(
            power(2, 0x0001_04FE, ATR).0,
            Err(Error::Unsupported(_))
        ));
        // A T=1 card in QEMU's byte-swapped reader (no T=1 announced): T=0 as before.
        assert_eq!(power(0x0001_0000, 0x0001_04FE, T1_ATR).1, Protocol::T0);
        // APDU level: the reader handles the protocol.
        assert_eq!(power(3, 0x0002_04FE, T1_ATR).1, Protocol::T0);
        // The pure decision names the protocols power-on picks from: a T=1 card gets T=1
        // exactly when the decision has T=1, a T=0 card T=0 exactly when it has T=0.
        for protocols in [0, 1, 2, 3, 0x0001_0000] {
            let mut d = desc_with(0x0001_04FE, 271);
            d.protocols = protocols;
            let decision = decide(&d).unwrap();
            let (t0, t1) = match decision.protocols {
                CardProtocols::T0 => (true, false),
                CardProtocols::T1 => (false, true),
                CardProtocols::T0AndT1 => (true, true),
                CardProtocols::ByReader => unreachable!("TPDU level"),
            };
            let (res, p) = power(protocols, 0x0001_04FE, T1_ATR);
            assert_eq!(res.is_ok() && p == Protocol::T1, t1, "{protocols:#x}");
            let (res, p) = power(protocols, 0x0001_04FE, ATR);
            assert_eq!(res.is_ok() && p == Protocol::T0, t0, "{protocols:#x}");
        }
    }

    #[test]
    fn decisions() {
        let decision = |features: u32, protocols: u32| {
            let mut d = desc_with(features, 271);
            d.protocols = protocols;
            decide(&d).ok()
        };
        let ok = |level, protocols| Some(Decision { level, protocols });
        assert_eq!(
            decision(0x0004_00FE, 2),
            ok(ExchangeLevel::ExtendedApdu, CardProtocols::ByReader)
        );
        assert_eq!(
            decision(0x0002_0000, 1),
            ok(ExchangeLevel::ShortApdu, CardProtocols::ByReader)
        );
        assert_eq!(
            decision(0x0001_00BA, 3),
            ok(ExchangeLevel::Tpdu, CardProtocols::T0AndT1)
        );
        assert_eq!(
            decision(0x0001_04BA, 2),
            ok(ExchangeLevel::Tpdu, CardProtocols::T1)
        );
        assert_eq!(
            decision(0x0001_04FE, 0x0001_0000),
            ok(ExchangeLevel::Tpdu, CardProtocols::T0)
        );
        let Err(Error::Unsupported(m)) = decide(&desc_with(0x0000_00BA, 271)) else {
            panic!("a character-level reader is refused");
        };
        assert!(m.contains("character-level"), "{m}");
        assert_eq!(
            decide(&desc_with(0x0001_04BA, 271)).unwrap().to_string(),
            "TPDU level, T=0 and T=1"
        );
    }
}
