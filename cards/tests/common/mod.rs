//! Test doubles: an emulated CCID reader (the USB side of the driver) holding a virtual
//! opcard, and a direct APDU channel to a virtual card.
#![allow(dead_code)]

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use cards::ccid::{ClassDescriptor, ExchangeLevel};
use cards::reader::{Reader, Transport};
use cards::{ApduChannel, Error, Result};
use vscard_bridge::{ATR, T0Card, VirtualCard};

/// A virtual card straight behind the APDU channel: extended APDUs, no CCID.
pub struct Direct {
    pub card: VirtualCard,
    pub apdus: u64,
}

impl ApduChannel for Direct {
    fn transmit(&mut self, apdu: &[u8]) -> Result<Vec<u8>> {
        self.apdus += 1;
        let r = self.card.transmit(apdu);
        if std::env::var_os("CARDS_TRACE").is_some() {
            eprintln!(
                "APDU {:02X?} ({} bytes) -> SW {:02X?}",
                &apdu[..4.min(apdu.len())],
                apdu.len(),
                &r[r.len() - 2..]
            );
        }
        Ok(r)
    }
    fn extended_apdus(&self) -> bool {
        true
    }
    fn apdu_count(&self) -> u64 {
        self.apdus
    }
}

/// What the emulated reader does, shared with the test so it can pull the card.
pub struct ReaderState {
    pub level: ExchangeLevel,
    pub card: T0Card,
    pub present: bool,
    pub powered: bool,
    /// Bulk-in transfers waiting for the host.
    pub queue: VecDeque<Vec<u8>>,
    pub interrupts: VecDeque<Vec<u8>>,
    /// Deliver each response in pieces of this size (short reads).
    pub split: usize,
    /// Send a time extension before every n-th XfrBlock answer.
    pub time_extension_every: u64,
    pub max_message: usize,
    /// Pending extended-level command parts and response parts.
    pub command_parts: Vec<u8>,
    pub response_rest: Vec<u8>,
    pub xfr_blocks: u64,
    /// The USB device is gone: every transfer fails as disconnected.
    pub unplugged: bool,
}

pub type Shared = Arc<Mutex<ReaderState>>;

pub struct Emulated(pub Shared);

fn header(ty: u8, len: usize, seq: u8, status: u8, error: u8, specific: u8) -> Vec<u8> {
    let mut m = vec![ty];
    m.extend_from_slice(&(len as u32).to_le_bytes());
    m.extend_from_slice(&[0, seq, status, error, specific]);
    m
}

fn data_block(seq: u8, status: u8, error: u8, chain: u8, data: &[u8]) -> Vec<u8> {
    let mut m = header(0x80, data.len(), seq, status, error, chain);
    m.extend_from_slice(data);
    m
}

impl ReaderState {
    fn icc(&self) -> u8 {
        match (self.present, self.powered) {
            (false, _) => 2,
            (true, false) => 1,
            (true, true) => 0,
        }
    }

    fn answer_apdu(&mut self, apdu: &[u8]) -> Vec<u8> {
        match self.level {
            ExchangeLevel::Tpdu => self.card.tpdu(apdu),
            ExchangeLevel::ShortApdu => self.card.short_apdu(apdu),
            _ => self.card.card().transmit(apdu),
        }
    }

    fn handle(&mut self, msg: &[u8]) {
        assert!(msg.len() >= 10, "host sent a {}-byte message", msg.len());
        let len = u32::from_le_bytes(msg[1..5].try_into().unwrap()) as usize;
        assert_eq!(msg.len(), 10 + len, "dwLength does not match the message");
        assert_eq!(msg[5], 0, "only slot 0 exists");
        let seq = msg[6];
        let data = &msg[10..];
        let out = match msg[0] {
            0x62 if self.present => {
                self.powered = true;
                self.card.power_cycle();
                data_block(seq, 0, 0, 0, &ATR)
            }
            0x62 if !self.present => data_block(seq, 0x42, 0xFE, 0, &[]),
            // Like QEMU: an APDU for a missing or unpowered card gets an empty block, no
            // failure status, and the ICC status.
            0x6F if !self.present || !self.powered => data_block(seq, self.icc(), 0, 0, &[]),
            0x63 => {
                self.powered = false;
                header(0x81, 0, seq, self.icc(), 0, 0)
            }
            0x65 => header(0x81, 0, seq, self.icc(), 0, 0),
            0x6F => {
                self.xfr_blocks += 1;
                if self.time_extension_every > 0
                    && self.xfr_blocks.is_multiple_of(self.time_extension_every)
                {
                    self.queue.push_back(data_block(seq, 0x80, 1, 0, &[]));
                }
                let level = u16::from_le_bytes([msg[8], msg[9]]);
                let max = self.max_message - 10;
                let resp = match level {
                    0 => self.answer_apdu(data),
                    1 | 3 => {
                        self.command_parts.extend_from_slice(data);
                        self.queue.push_back(data_block(seq, 0, 0, 0x10, &[]));
                        return;
                    }
                    2 => {
                        self.command_parts.extend_from_slice(data);
                        let cmd = std::mem::take(&mut self.command_parts);
                        self.answer_apdu(&cmd)
                    }
                    0x10 => std::mem::take(&mut self.response_rest),
                    other => panic!("unknown wLevelParameter {other:#x}"),
                };
                if self.level == ExchangeLevel::Tpdu && resp.len() > 374 {
                    // QEMU 7.2 cannot pass more to the guest.
                    data_block(seq, 0x40, 0xFB, 0, &[])
                } else if resp.len() > max {
                    assert_eq!(self.level, ExchangeLevel::ExtendedApdu);
                    let first = if level == 0x10 { 0x03 } else { 0x01 };
                    self.response_rest = resp[max..].to_vec();
                    data_block(seq, 0, 0, first, &resp[..max])
                } else {
                    let chain = if level == 0x10 { 0x02 } else { 0x00 };
                    data_block(seq, 0, 0, chain, &resp)
                }
            }
            other => panic!("unexpected CCID command {other:#04x}"),
        };
        self.queue.push_back(out);
    }

    /// Pull the card: the reader notifies the host on the interrupt endpoint.
    pub fn remove_card(&mut self) {
        self.present = false;
        self.powered = false;
        self.interrupts.push_back(vec![0x50, 0b10]);
    }

    pub fn insert_card(&mut self) {
        self.present = true;
        self.interrupts.push_back(vec![0x50, 0b11]);
    }
}

impl Transport for Emulated {
    fn bulk_out(&mut self, data: &[u8], _: Duration) -> Result<()> {
        let mut s = self.0.lock().unwrap();
        if s.unplugged {
            return Err(Error::Disconnected);
        }
        s.handle(data);
        Ok(())
    }

    fn bulk_in(&mut self, max_len: usize, timeout: Duration) -> Result<Vec<u8>> {
        let mut s = self.0.lock().unwrap();
        if s.unplugged {
            return Err(Error::Disconnected);
        }
        let split = s.split.min(max_len);
        match s.queue.pop_front() {
            Some(mut m) => {
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
        Ok(self.0.lock().unwrap().interrupts.pop_front())
    }
}

/// A class descriptor for an emulated reader.
pub fn descriptor(level: ExchangeLevel, max_message: usize) -> ClassDescriptor {
    let features: u32 = match level {
        ExchangeLevel::Tpdu => 0x0001_00BA,
        ExchangeLevel::ShortApdu => 0x0002_00BA,
        ExchangeLevel::ExtendedApdu => 0x0004_00BA,
        ExchangeLevel::Character => 0,
    };
    let mut d = vec![0x36, 0x21, 0x10, 0x01, 0x00, 0x07];
    // QEMU 7.2 (the TPDU reader we emulate) writes dwProtocols byte-swapped.
    let protocols: u32 = if level == ExchangeLevel::Tpdu {
        0x0001_0000
    } else {
        1
    };
    d.extend_from_slice(&protocols.to_le_bytes());
    d.extend_from_slice(&[0; 30]);
    d.extend_from_slice(&features.to_le_bytes());
    d.extend_from_slice(&(max_message as u32).to_le_bytes());
    d.extend_from_slice(&[0xFF, 0xFF, 0, 0, 0, 1]);
    ClassDescriptor::parse(&d).unwrap()
}

/// A reader at `level` with a fresh virtual card (serial `serial`) inserted and powered.
pub fn emulated_reader(
    level: ExchangeLevel,
    max_message: usize,
    serial: u32,
) -> (Reader<Emulated>, Shared) {
    let state = Arc::new(Mutex::new(ReaderState {
        level,
        card: T0Card::new(VirtualCard::new(serial)),
        present: true,
        powered: false,
        queue: VecDeque::new(),
        interrupts: VecDeque::new(),
        split: 64,
        time_extension_every: 5,
        max_message,
        command_parts: Vec::new(),
        response_rest: Vec::new(),
        xfr_blocks: 0,
        unplugged: false,
    }));
    let mut reader =
        Reader::new(Emulated(state.clone()), descriptor(level, max_message), 0).unwrap();
    reader.power_on().unwrap();
    (reader, state)
}
