//! Emulated CCID readers (the USB side, as the card stack's `Transport`) that present real
//! devices' recorded class descriptors and behave as those descriptors say, with a virtual
//! card behind: a YubiKey 5 (extended APDU level), a Nitrokey Pro (TPDU level, T=1, with the
//! T=1 card front) and an SCM SCR3310 (TPDU level, T=0 and T=1, with either front; also the
//! variant with 263-byte messages), an Elatec TWN4 (TPDU level, 64-byte messages), and a Bit4id
//! Digital-DNA Key BT (TPDU level, T=1 only, no automatic PPS: the host makes it).
//!
//! The descriptors' numbers come from the public catalogue of CCID devices (the `readers/`
//! folder of Ludovic Rousseau's CCID driver, commit 5de6a9661c371d74d5c1e16fd4d01727ae2d9db3;
//! the YubiKey 5 is the firmware 5.03 dump in the file named for the YubiKey 4).
//!
//! What the reader holds the host to (each breach is recorded in `violations` and the
//! message refused): no message longer than dwMaxCCIDMessageLength either way (longer
//! answers are chained only at extended APDU level); at TPDU level the card's protocol must be
//! one the reader announces, and T=1 blocks only after `PC_to_RDR_SetParameters` for T=1
//! unless the reader negotiates itself (dwFeatures 0x40). A reader with automatic IFSD
//! exchange (0x400) sends the card S(IFS request) with its dwMaxIFSD itself, before the
//! host's first block.
//!
//! PPS (ISO/IEC 7816-3 clause 9), for a T=1 card front in negotiable mode: a reader that makes
//! no PPS itself (neither dwFeatures 0x40 nor 0x80) forwards an XfrBlock starting with PPSS
//! (FF) to the card as it is and returns the card's answer; such a request is a violation when
//! the reader makes the PPS itself, or after SetParameters. A reader with automatic PPS (0x80)
//! makes it at SetParameters for T=1 (with its bmFindexDindex), one with automatic parameter
//! negotiation (0x40) at power-on (with the ATR's TA1). Every PPS exchange is logged in
//! `pps`. A T=1 block while the card does not run T=1 (no PPS switched it) is a violation, and
//! so is SetParameters for T=1 with a Fi/Di other than the one the card runs.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use cards::ccid::{self, ClassDescriptor, DescriptorFields, ExchangeLevel};
use cards::reader::Transport;
use cards::{Error, Result};

use crate::t1::Mode;
use crate::{ATR, T0Card, T1Card, VirtualCard};

/// Yubico YubiKey 5 (OTP+FIDO+CCID, 1050:0407, firmware 5.03): extended APDU level, T=1,
/// 3072-byte messages.
pub const YUBIKEY_5: DescriptorFields = DescriptorFields {
    descriptor_type: 0x21,
    bcd_ccid: 0x0100,
    max_slot_index: 0,
    voltage_support: 0x07,
    protocols: 0x0000_0002,
    default_clock_khz: 4000,
    maximum_clock_khz: 4000,
    num_clock_supported: 0,
    data_rate: 307_200,
    max_data_rate: 307_200,
    num_data_rates_supported: 0,
    max_ifsd: 3062,
    synch_protocols: 0,
    mechanical: 0,
    features: 0x0004_00FE,
    max_message_length: 3072,
    class_get_response: 0xFF,
    class_envelope: 0xFF,
    lcd_layout: 0,
    pin_support: 0,
    max_busy_slots: 1,
};

/// Nitrokey Pro (20A0:4108): TPDU level, T=1 only, automatic PPS and IFSD exchange but not
/// parameter negotiation, 271-byte messages, IFSD 254.
pub const NITROKEY_PRO: DescriptorFields = DescriptorFields {
    descriptor_type: 0x21,
    bcd_ccid: 0x0110,
    max_slot_index: 0,
    voltage_support: 0x02,
    protocols: 0x0000_0002,
    default_clock_khz: 3600,
    maximum_clock_khz: 3600,
    num_clock_supported: 0,
    data_rate: 9677,
    max_data_rate: 116_129,
    num_data_rates_supported: 0,
    max_ifsd: 254,
    synch_protocols: 0,
    mechanical: 0,
    features: 0x0001_04BA,
    max_message_length: 271,
    class_get_response: 0,
    class_envelope: 0,
    lcd_layout: 0,
    pin_support: 0,
    max_busy_slots: 1,
};

/// SCM Microsystems SCR3310 v2 (04E6:5116): TPDU level, T=0 and T=1, automatic PPS, no
/// automatic IFSD exchange, 271-byte messages, IFSD 252.
pub const SCR3310: DescriptorFields = DescriptorFields {
    descriptor_type: 0x21,
    bcd_ccid: 0x0110,
    max_slot_index: 0,
    voltage_support: 0x01,
    protocols: 0x0000_0003,
    default_clock_khz: 4000,
    maximum_clock_khz: 8000,
    num_clock_supported: 0,
    data_rate: 10_753,
    max_data_rate: 344_105,
    num_data_rates_supported: 0,
    max_ifsd: 252,
    synch_protocols: 0,
    mechanical: 0,
    features: 0x0001_00BA,
    max_message_length: 271,
    class_get_response: 0xFF,
    class_envelope: 0xFF,
    lcd_layout: 0,
    pin_support: 0,
    max_busy_slots: 1,
};

/// SCM Microsystems SCR3310 (04E6:511F, CCID 1.00): as [`SCR3310`] but 263-byte messages,
/// too small for a whole short answer (256 bytes, SW and the 10-byte header).
pub const SCR3310_263: DescriptorFields = DescriptorFields {
    bcd_ccid: 0x0100,
    max_message_length: 263,
    ..SCR3310
};

/// Elatec TWN4 SmartCard NFC (09D8:0427, six slots): TPDU level, T=0 and T=1, 64-byte
/// messages, no automatic PPS or IFSD exchange, IFSD 254.
pub const ELATEC_TWN4: DescriptorFields = DescriptorFields {
    descriptor_type: 0x21,
    bcd_ccid: 0x0110,
    max_slot_index: 5,
    voltage_support: 0x07,
    protocols: 0x0000_0003,
    default_clock_khz: 5000,
    maximum_clock_khz: 15_000,
    num_clock_supported: 0,
    data_rate: 13_441,
    max_data_rate: 625_000,
    num_data_rates_supported: 0,
    max_ifsd: 254,
    synch_protocols: 1,
    mechanical: 0,
    features: 0x0001_0032,
    max_message_length: 64,
    class_get_response: 0xFF,
    class_envelope: 0xFF,
    lcd_layout: 0,
    pin_support: 0,
    max_busy_slots: 1,
};

/// Bit4id Digital-DNA Key BT (25DD:2361): TPDU level, T=1 only, automatic clock frequency and
/// baud rate changes but neither automatic parameter negotiation (0x40) nor automatic PPS
/// (0x80), no automatic IFSD exchange, 271-byte messages, IFSD 247.
pub const BIT4ID_DIGITAL_DNA_KEY_BT: DescriptorFields = DescriptorFields {
    descriptor_type: 0x21,
    bcd_ccid: 0x0110,
    max_slot_index: 0,
    voltage_support: 0x02,
    protocols: 0x0000_0002,
    default_clock_khz: 4000,
    maximum_clock_khz: 4000,
    num_clock_supported: 0,
    data_rate: 10_752,
    max_data_rate: 129_500,
    num_data_rates_supported: 0,
    max_ifsd: 247,
    synch_protocols: 0,
    mechanical: 0,
    features: 0x0001_0030,
    max_message_length: 271,
    class_get_response: 0,
    class_envelope: 0,
    lcd_layout: 0,
    pin_support: 0,
    max_busy_slots: 1,
};

/// The card in the slot: a T=0 card (or, at APDU level, the token's own card), or a T=1
/// card.
pub enum Card {
    T0(T0Card),
    T1(Box<T1Card>),
}

impl Card {
    /// A T=0 card front for `card`.
    pub fn t0(card: VirtualCard) -> Self {
        Self::T0(T0Card::new(card))
    }

    /// A T=1 card front for `card` receiving `ifsc` bytes per block, sending at most
    /// `send_max`.
    pub fn t1(card: VirtualCard, ifsc: u8, send_max: usize) -> Self {
        Self::T1(Box::new(T1Card::new(card, ifsc, send_max)))
    }

    /// As [`Card::t1`], but the card is in negotiable mode, offering T=0 first and T=1 second,
    /// with TA1 = `ta1` if given ([`T1Card::negotiable`]).
    pub fn t1_negotiable(card: VirtualCard, ifsc: u8, send_max: usize, ta1: Option<u8>) -> Self {
        Self::T1(Box::new(T1Card::negotiable(card, ifsc, send_max, ta1)))
    }

    fn atr(&self) -> Vec<u8> {
        match self {
            Self::T0(_) => ATR.to_vec(),
            Self::T1(c) => c.atr(),
        }
    }

    fn power_cycle(&mut self) {
        match self {
            Self::T0(c) => c.power_cycle(),
            Self::T1(c) => c.power_cycle(),
        }
    }
}

/// One PPS exchange with the card.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PpsExchange {
    /// Made by the reader itself (dwFeatures 0x40 or 0x80), not forwarded from the host.
    pub by_reader: bool,
    pub request: Vec<u8>,
    /// The card's answer; empty when it gave none.
    pub answer: Vec<u8>,
}

/// The reader's own PPS to switch the card to T=1 at `fidi`: `FF 11 fidi PCK`, or `FF 01 FE`
/// for the default 0x11.
fn reader_pps(card: &mut T1Card, fidi: u8, log: &mut Vec<PpsExchange>) {
    let mut request = vec![0xFF, 0x01];
    if fidi != 0x11 {
        request[1] |= 0x10;
        request.push(fidi);
    }
    request.push(request.iter().fold(0, |a, x| a ^ x));
    let answer = card.pps(&request).unwrap_or_default();
    log.push(PpsExchange {
        by_reader: true,
        request,
        answer,
    });
}

/// The reader's state, shared with the test.
pub struct State {
    pub fields: DescriptorFields,
    pub card: Card,
    pub present: bool,
    pub powered: bool,
    /// bProtocolNum and abProtocolDataStructure of the last SetParameters since power-on.
    pub parameters: Option<(u8, Vec<u8>)>,
    /// The reader's own IFS exchange with a T=1 card is done (dwFeatures 0x400).
    pub ifsd_sent: bool,
    /// Every PPS exchange since the reader was made, in order.
    pub pps: Vec<PpsExchange>,
    pub xfr_blocks: u64,
    /// The largest message seen from the host and sent to it.
    pub largest_out: usize,
    pub largest_in: usize,
    /// What the host did that this reader does not allow.
    pub violations: Vec<String>,
    queue: VecDeque<Vec<u8>>,
    interrupts: VecDeque<Vec<u8>>,
    command_parts: Vec<u8>,
    response_rest: Vec<u8>,
}

/// An emulated reader with a recorded class descriptor; clones share one reader.
#[derive(Clone)]
pub struct RecordedReader(pub Arc<Mutex<State>>);

fn message(ty: u8, seq: u8, status: u8, error: u8, specific: u8, data: &[u8]) -> Vec<u8> {
    let mut m = vec![ty];
    m.extend_from_slice(&(data.len() as u32).to_le_bytes());
    m.extend_from_slice(&[0, seq, status, error, specific]);
    m.extend_from_slice(data);
    m
}

impl RecordedReader {
    /// A reader presenting `fields` with `card` inserted (not powered).
    pub fn new(fields: DescriptorFields, card: Card) -> Self {
        Self(Arc::new(Mutex::new(State {
            fields,
            card,
            present: true,
            powered: false,
            parameters: None,
            ifsd_sent: false,
            pps: Vec::new(),
            xfr_blocks: 0,
            largest_out: 0,
            largest_in: 0,
            violations: Vec::new(),
            queue: VecDeque::new(),
            interrupts: VecDeque::new(),
            command_parts: Vec::new(),
            response_rest: Vec::new(),
        })))
    }

    /// The class descriptor as the driver reads it from the device.
    pub fn descriptor(&self) -> ClassDescriptor {
        let fields = self.0.lock().unwrap().fields;
        ClassDescriptor::parse(&fields.to_bytes()).expect("a recorded descriptor parses")
    }

    pub fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.0.lock().unwrap()
    }

    /// Pull the card: the reader notifies the host on the interrupt endpoint.
    pub fn remove_card(&self) {
        let mut s = self.state();
        s.present = false;
        s.powered = false;
        s.interrupts
            .push_back(vec![ccid::RDR_TO_PC_NOTIFY_SLOT_CHANGE, 0b10]);
    }

    pub fn insert_card(&self) {
        let mut s = self.state();
        s.present = true;
        s.interrupts
            .push_back(vec![ccid::RDR_TO_PC_NOTIFY_SLOT_CHANGE, 0b11]);
    }
}

impl State {
    fn level(&self) -> ExchangeLevel {
        ClassDescriptor::parse(&self.fields.to_bytes())
            .expect("a recorded descriptor parses")
            .exchange_level()
    }

    fn icc(&self) -> u8 {
        match (self.present, self.powered) {
            (false, _) => 2,
            (true, false) => 1,
            (true, true) => 0,
        }
    }

    fn violation(&mut self, what: String) {
        self.violations.push(what);
    }

    /// SetParameters for T=1 with bmFindexDindex `fidi` and a T=1 card: a reader with
    /// automatic PPS (and not automatic parameter negotiation, which made it at power-on) makes
    /// it now if the card needs one or `fidi` is not the default; then `fidi` must be what the
    /// card runs.
    fn t1_parameters(&mut self, fidi: u8) {
        let features = self.fields.features;
        let Card::T1(c) = &mut self.card else {
            return;
        };
        if features & ccid::FEATURE_AUTO_PPS != 0
            && features & ccid::FEATURE_AUTO_NEGOTIATION == 0
            && c.mode() == Mode::AfterAtr
            && (c.needs_pps() || fidi != 0x11)
        {
            reader_pps(c, fidi, &mut self.pps);
        }
        let runs = match c.mode() {
            Mode::T1 { fidi } => Some(fidi),
            Mode::AfterAtr if c.runs_t1() => Some(0x11),
            _ => None,
        };
        if let Some(runs) = runs
            && runs != fidi
        {
            self.violations.push(format!(
                "SetParameters for T=1 with Fi/Di {fidi:#04x}, but the card runs {runs:#04x}"
            ));
        }
    }

    /// One TPDU-level exchange: a T=0 TPDU or a T=1 block, as the card in the slot speaks.
    fn tpdu(&mut self, data: &[u8]) -> Option<Vec<u8>> {
        let features = self.fields.features;
        let protocols = self.fields.protocols;
        match &mut self.card {
            Card::T0(c) => {
                // A reader announcing neither protocol (QEMU's byte swap) is T=0.
                if protocols & 3 == 2 {
                    self.violations
                        .push("T=0 TPDU to a reader without T=0".into());
                    return None;
                }
                Some(c.tpdu(data))
            }
            Card::T1(c) => {
                if protocols & 2 == 0 {
                    self.violations
                        .push("T=1 block to a reader without T=1".into());
                    return None;
                }
                if data.first() == Some(&0xFF) {
                    // PPSS: a PPS request, not a T=1 block (whose NAD is never FF).
                    if features & (ccid::FEATURE_AUTO_PPS | ccid::FEATURE_AUTO_NEGOTIATION) != 0 {
                        self.violations.push(format!(
                            "PPS {data:02X?} from the host to a reader that makes the PPS itself"
                        ));
                        return None;
                    }
                    if self.parameters.is_some() {
                        self.violations
                            .push(format!("PPS {data:02X?} after SetParameters"));
                        return None;
                    }
                    let answer = c.pps(data);
                    self.pps.push(PpsExchange {
                        by_reader: false,
                        request: data.to_vec(),
                        answer: answer.clone().unwrap_or_default(),
                    });
                    if answer.is_none() {
                        self.violations
                            .push(format!("the card gave no answer to the PPS {data:02X?}"));
                    }
                    return answer;
                }
                if features & ccid::FEATURE_AUTO_NEGOTIATION == 0
                    && self.parameters.as_ref().map(|p| p.0) != Some(1)
                {
                    self.violations
                        .push("T=1 block before SetParameters for T=1".into());
                    return None;
                }
                if !c.runs_t1() {
                    c.block(data);
                    self.violations.push(format!(
                        "T=1 block while the card does not run T=1 (now {:?}): no PPS switched it",
                        c.mode()
                    ));
                    return None;
                }
                if features & ccid::FEATURE_AUTO_IFSD != 0 && !self.ifsd_sent {
                    // The reader's own first exchange: S(IFS request) with its dwMaxIFSD.
                    let ifsd = self.fields.max_ifsd.clamp(1, 254) as u8;
                    let mut s = vec![0x00, 0xC1, 0x01, ifsd];
                    s.push(s.iter().fold(0, |a, x| a ^ x));
                    let answer = c.block(&s);
                    assert_eq!(
                        &answer[1..4],
                        [0xE1, 0x01, ifsd],
                        "the card's S(IFS response)"
                    );
                    self.ifsd_sent = true;
                }
                Some(c.block(data))
            }
        }
    }

    fn apdu(&mut self, apdu: &[u8]) -> Vec<u8> {
        let level = self.level();
        match &mut self.card {
            Card::T0(c) if level == ExchangeLevel::ShortApdu => c.short_apdu(apdu),
            Card::T0(c) => c.card().transmit(apdu),
            Card::T1(c) => c.card().transmit(apdu),
        }
    }

    fn handle(&mut self, msg: &[u8]) -> Result<()> {
        let max = self.fields.max_message_length as usize;
        self.largest_out = self.largest_out.max(msg.len());
        if msg.len() > max {
            let what = format!("a {}-byte message to a reader of {max}", msg.len());
            self.violation(what.clone());
            return Err(Error::Usb(what));
        }
        assert!(msg.len() >= 10, "host sent a {}-byte message", msg.len());
        let len = u32::from_le_bytes(msg[1..5].try_into().unwrap()) as usize;
        assert_eq!(msg.len(), 10 + len, "dwLength does not match the message");
        assert_eq!(msg[5], 0, "only slot 0 exists");
        let (seq, data) = (msg[6], &msg[10..]);
        let out = match msg[0] {
            ccid::PC_TO_RDR_ICC_POWER_ON if self.present => {
                self.powered = true;
                self.parameters = None;
                self.ifsd_sent = false;
                self.command_parts.clear();
                self.response_rest.clear();
                self.card.power_cycle();
                let atr = self.card.atr();
                if self.level() == ExchangeLevel::Tpdu
                    && self.fields.features & ccid::FEATURE_AUTO_NEGOTIATION != 0
                    && self.fields.protocols & 2 != 0
                    && let Card::T1(c) = &mut self.card
                    && c.needs_pps()
                {
                    let fidi = c.ta1().unwrap_or(0x11);
                    reader_pps(c, fidi, &mut self.pps);
                }
                message(0x80, seq, 0, 0, 0, &atr)
            }
            ccid::PC_TO_RDR_ICC_POWER_ON => message(0x80, seq, 0x42, 0xFE, 0, &[]),
            ccid::PC_TO_RDR_ICC_POWER_OFF => {
                self.powered = false;
                message(0x81, seq, self.icc(), 0, 0, &[])
            }
            ccid::PC_TO_RDR_GET_SLOT_STATUS => message(0x81, seq, self.icc(), 0, 0, &[]),
            ccid::PC_TO_RDR_SET_PARAMETERS if self.icc() == 0 => {
                let protocol = msg[7];
                let ok = match protocol {
                    0 => data.len() == 5 && self.fields.protocols & 1 != 0,
                    1 => data.len() == 7 && self.fields.protocols & 2 != 0,
                    _ => false,
                };
                if ok && protocol == 1 {
                    self.t1_parameters(data[0]);
                }
                if ok {
                    self.parameters = Some((protocol, data.to_vec()));
                    message(0x82, seq, 0, 0, protocol, data)
                } else {
                    self.violation(format!("SetParameters {protocol} with {data:02X?}"));
                    // bError 7: bProtocolNum not supported (offset of the field).
                    message(0x82, seq, 0x40, 0x07, protocol, &[])
                }
            }
            ccid::PC_TO_RDR_SET_PARAMETERS => message(0x82, seq, 0x40 | self.icc(), 0xFE, 0, &[]),
            ccid::PC_TO_RDR_XFR_BLOCK if self.icc() != 0 => {
                message(0x80, seq, 0x40 | self.icc(), 0xFE, 0, &[])
            }
            ccid::PC_TO_RDR_XFR_BLOCK => {
                self.xfr_blocks += 1;
                let level = self.level();
                let chain = u16::from_le_bytes([msg[8], msg[9]]);
                let resp = match (level, chain) {
                    (ExchangeLevel::Tpdu, 0) => match self.tpdu(data) {
                        Some(r) => r,
                        None => {
                            self.queue.push_back(message(0x80, seq, 0x40, 0xFE, 0, &[]));
                            return Ok(());
                        }
                    },
                    (ExchangeLevel::ExtendedApdu, 1 | 3) => {
                        self.command_parts.extend_from_slice(data);
                        self.queue.push_back(message(0x80, seq, 0, 0, 0x10, &[]));
                        return Ok(());
                    }
                    (ExchangeLevel::ExtendedApdu, 2) => {
                        self.command_parts.extend_from_slice(data);
                        let cmd = std::mem::take(&mut self.command_parts);
                        self.apdu(&cmd)
                    }
                    (ExchangeLevel::ExtendedApdu, 0x10) => std::mem::take(&mut self.response_rest),
                    (_, 0) => self.apdu(data),
                    (level, chain) => {
                        self.violation(format!("wLevelParameter {chain:#x} at {level} level"));
                        self.queue.push_back(message(0x80, seq, 0x40, 0x08, 0, &[]));
                        return Ok(());
                    }
                };
                let room = max - ccid::HEADER_LEN;
                if resp.len() <= room {
                    let specific = if chain == 0x10 { 0x02 } else { 0x00 };
                    message(0x80, seq, 0, 0, specific, &resp)
                } else if level == ExchangeLevel::ExtendedApdu {
                    let first = if chain == 0x10 { 0x03 } else { 0x01 };
                    self.response_rest = resp[room..].to_vec();
                    message(0x80, seq, 0, 0, first, &resp[..room])
                } else {
                    self.violation(format!(
                        "a {}-byte answer does not fit the reader's {max}-byte messages",
                        resp.len()
                    ));
                    // bError 0xFC: XFR_OVERRUN.
                    message(0x80, seq, 0x40, 0xFC, 0, &[])
                }
            }
            other => panic!("unexpected CCID command {other:#04x}"),
        };
        self.largest_in = self.largest_in.max(out.len());
        self.queue.push_back(out);
        Ok(())
    }
}

impl Transport for RecordedReader {
    fn bulk_out(&mut self, data: &[u8], _: Duration) -> Result<()> {
        self.state().handle(data)
    }

    /// Whole messages in 64-byte packets, as a full-speed bulk endpoint delivers them.
    fn bulk_in(&mut self, max_len: usize, timeout: Duration) -> Result<Vec<u8>> {
        let mut s = self.state();
        match s.queue.pop_front() {
            Some(mut m) => {
                let split = max_len.min(64);
                if m.len() > split {
                    let rest = m.split_off(split);
                    s.queue.push_front(rest);
                }
                Ok(m)
            }
            None => Err(Error::Timeout {
                what: "bulk-in",
                after: timeout,
            }),
        }
    }

    fn interrupt_in(&mut self, _: Duration) -> Result<Option<Vec<u8>>> {
        Ok(self.state().interrupts.pop_front())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn descriptors_parse_to_their_levels() {
        let level = |f: DescriptorFields| {
            ClassDescriptor::parse(&f.to_bytes())
                .unwrap()
                .exchange_level()
        };
        assert_eq!(level(YUBIKEY_5), ExchangeLevel::ExtendedApdu);
        assert_eq!(level(NITROKEY_PRO), ExchangeLevel::Tpdu);
        assert_eq!(level(SCR3310), ExchangeLevel::Tpdu);
        assert_eq!(level(BIT4ID_DIGITAL_DNA_KEY_BT), ExchangeLevel::Tpdu);
    }

    const PPS_96: [u8; 4] = [0xFF, 0x11, 0x96, 0x78];

    /// Send `cmd` and return the reader's answer: (bStatus, bError, abData).
    fn send(r: &mut RecordedReader, cmd: ccid::Command<'_>) -> (u8, u8, Vec<u8>) {
        r.bulk_out(&cmd.encode(0, 0), Duration::ZERO).unwrap();
        let mut m = Vec::new();
        while let Ok(part) = r.bulk_in(64, Duration::ZERO) {
            m.extend(part);
        }
        (m[7], m[8], m[10..].to_vec())
    }

    fn set_t1(r: &mut RecordedReader, fidi: u8) -> (u8, u8, Vec<u8>) {
        let data = [fidi, 0x10, 0x00, 0x45, 0x00, 0xFE, 0x00];
        send(
            r,
            ccid::Command::SetParameters {
                protocol: 1,
                data: &data,
            },
        )
    }

    fn xfr(data: &[u8]) -> ccid::Command<'_> {
        ccid::Command::XfrBlock { data, level: 0 }
    }

    fn negotiable(fields: DescriptorFields) -> RecordedReader {
        let card = Card::t1_negotiable(VirtualCard::new(9), 254, 254, Some(0x96));
        let mut r = RecordedReader::new(fields, card);
        let atr = send(&mut r, ccid::Command::PowerOn(ccid::Voltage::Automatic)).2;
        assert_eq!(&atr[..3], [0x3B, 0x9A, 0x96]);
        r
    }

    // What the Bit4id reader (no automatic PPS) holds the host to: a T=1 block before the PPS
    // is refused (the card does not run T=1); a PPS after SetParameters is refused; the PPS
    // right after the ATR is forwarded and echoed, and SetParameters with another Fi/Di than
    // the agreed one is a violation.
    #[test]
    fn the_host_pps_comes_first() {
        let ifs = [0x00, 0xC1, 0x01, 0xF7, 0x37];
        let mut r = negotiable(BIT4ID_DIGITAL_DNA_KEY_BT);
        assert_eq!(set_t1(&mut r, 0x96).0, 0);
        assert_eq!(send(&mut r, xfr(&ifs)).0, 0x40);
        assert_eq!(send(&mut r, xfr(&PPS_96)).0, 0x40);
        let v = r.state().violations.clone();
        assert!(v[0].contains("does not run T=1 (now T0)"), "{v:?}");
        assert!(v[1].contains("after SetParameters"), "{v:?}");
        assert_eq!(v.len(), 2, "{v:?}");

        let mut r = negotiable(BIT4ID_DIGITAL_DNA_KEY_BT);
        assert_eq!(send(&mut r, xfr(&PPS_96)), (0, 0, PPS_96.to_vec()));
        assert_eq!(set_t1(&mut r, 0x11).0, 0);
        assert_eq!(send(&mut r, xfr(&ifs)).2, [0x00, 0xE1, 0x01, 0xF7, 0x17]);
        let v = r.state().violations.clone();
        assert!(
            v == ["SetParameters for T=1 with Fi/Di 0x11, but the card runs 0x96"],
            "{v:?}"
        );

        // A wrong PCK: the card stays mute, the reader reports it so.
        let mut r = negotiable(BIT4ID_DIGITAL_DNA_KEY_BT);
        assert_eq!(send(&mut r, xfr(&[0xFF, 0x11, 0x96, 0x00])).0, 0x40);
        let s = r.state();
        assert!(s.pps[0].answer.is_empty());
        assert!(
            s.violations[0].contains("no answer to the PPS"),
            "{:?}",
            s.violations
        );
    }

    // A reader making the PPS itself: the Nitrokey Pro's (0x80) at SetParameters, with its
    // Fi/Di, and refuses one from the host; with automatic parameter negotiation (0x40; the
    // Nitrokey Pro's descriptor with that bit added, no recorded device) at power-on with TA1.
    #[test]
    fn readers_that_make_the_pps_themselves() {
        let mut r = negotiable(NITROKEY_PRO);
        assert_eq!(send(&mut r, xfr(&PPS_96)).0, 0x40);
        assert!(r.state().violations[0].contains("makes the PPS itself"));
        assert!(r.state().pps.is_empty());
        assert_eq!(set_t1(&mut r, 0x96).0, 0);
        let log = [PpsExchange {
            by_reader: true,
            request: PPS_96.to_vec(),
            answer: PPS_96.to_vec(),
        }];
        assert_eq!(r.state().pps, log);

        let auto = DescriptorFields {
            features: NITROKEY_PRO.features | ccid::FEATURE_AUTO_NEGOTIATION,
            ..NITROKEY_PRO
        };
        let r = negotiable(auto);
        let s = r.state();
        assert_eq!(s.pps, log);
        assert!(s.violations.is_empty(), "{:?}", s.violations);
        let Card::T1(c) = &s.card else { unreachable!() };
        assert_eq!(c.mode(), Mode::T1 { fidi: 0x96 });
    }
}
