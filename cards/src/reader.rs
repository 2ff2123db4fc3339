//! One CCID slot over an abstract bulk/interrupt transport: power on, slot status, XfrBlock
//! with time extensions, sequence checking and XfrBlock chaining, and APDU exchange per the
//! reader's exchange level. Every wait is bounded.

use std::time::{Duration, Instant};

use crate::apdu;
use crate::ccid::{
    self, ClassDescriptor, Command, CommandStatus, ExchangeLevel, IccStatus, Parsed, Response,
    Voltage,
};
use crate::error::{Error, Result};

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
        match desc.exchange_level() {
            ExchangeLevel::Character => {
                return Err(Error::Unsupported(
                    "character-level exchange; sherd drives TPDU (T=0) and APDU-level readers"
                        .into(),
                ));
            }
            // QEMU 7.2's usb-ccid writes dwProtocols byte-swapped (0x00010000), so it
            // announces neither T=0 nor T=1: take a reader without T=1 as a T=0 reader.
            ExchangeLevel::Tpdu if !desc.supports_t0() && desc.supports_t1() => {
                return Err(Error::Unsupported(
                    "TPDU-level reader without T=0; only T=0 TPDUs are implemented".into(),
                ));
            }
            _ => {}
        }
        Ok(Self {
            transport,
            desc,
            slot,
            seq: 0,
            timeouts: Timeouts::default(),
            atr: None,
            stats: Stats::default(),
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

    pub fn transport_mut(&mut self) -> &mut T {
        &mut self.transport
    }

    /// Ask the reader whether a card is in the slot.
    pub fn slot_status(&mut self) -> Result<IccStatus> {
        let r = self.command(&Command::GetSlotStatus, "GetSlotStatus")?;
        if r.icc == IccStatus::Absent {
            self.atr = None;
        }
        Ok(r.icc)
    }

    /// Power the card on and return its ATR.
    pub fn power_on(&mut self) -> Result<Vec<u8>> {
        self.atr = None;
        let r = self.command(&Command::PowerOn(Voltage::Automatic), "IccPowerOn")?;
        self.check_ok(&r, "IccPowerOn")?;
        if r.data.is_empty() || !matches!(r.data[0], 0x3B | 0x3F) {
            return Err(Error::Card(format!(
                "the ATR {:02X?} does not start with 3B or 3F",
                r.data
            )));
        }
        self.atr = Some(r.data.clone());
        Ok(r.data)
    }

    /// Power the card off (best effort when it was already removed).
    pub fn power_off(&mut self) -> Result<()> {
        self.atr = None;
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
        let level = self.desc.exchange_level();
        apdu::exchange(apdu_bytes, level, &mut |bytes| self.xfr_block(bytes))
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
        let seq = self.seq;
        self.seq = self.seq.wrapping_add(1);
        // The message may carry a PIN or key material: wipe our copy once sent.
        let message = zeroize::Zeroizing::new(cmd.encode(self.slot, seq));
        self.transport.bulk_out(&message, self.timeouts.transfer)?;
        let deadline = Instant::now() + self.timeouts.command;
        let mut stale = 0;
        loop {
            let r = self.read_message(deadline, what)?;
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
    fn read_message(&mut self, deadline: Instant, what: &'static str) -> Result<Response> {
        let max_data = self.desc.max_data_len();
        let mut buf = Vec::new();
        loop {
            match Response::parse(&buf, max_data)? {
                Parsed::Complete(r, _) => return Ok(r),
                Parsed::NeedMore(_) => {}
            }
            let now = Instant::now();
            if now >= deadline {
                return Err(Error::Timeout {
                    what,
                    after: self.timeouts.command,
                });
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
        d.features = 0x0001_0000;
        d.protocols = 2;
        assert!(Reader::new(Scripted::new(vec![]), d.clone(), 0).is_err());
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
}
