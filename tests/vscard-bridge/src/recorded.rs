//! Emulated CCID readers (the USB side, as the card stack's `Transport`) that present real
//! devices' recorded class descriptors and behave as those descriptors say, with a virtual
//! card behind: a YubiKey 5 (extended APDU level), a Nitrokey Pro (TPDU level, T=1, with the
//! T=1 card front) and an SCM SCR3310 (TPDU level, T=0 and T=1, with either front; also the
//! variant with 263-byte messages), and an Elatec TWN4 (TPDU level, 64-byte messages).
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

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use cards::ccid::{self, ClassDescriptor, DescriptorFields, ExchangeLevel};
use cards::reader::Transport;
use cards::{Error, Result};

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
                if features & ccid::FEATURE_AUTO_NEGOTIATION == 0
                    && self.parameters.as_ref().map(|p| p.0) != Some(1)
                {
                    self.violations
                        .push("T=1 block before SetParameters for T=1".into());
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
                message(0x80, seq, 0, 0, 0, &self.card.atr())
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
    }
}
