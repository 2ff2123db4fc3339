//! CCID (USB Chip/Smart Card Interface Devices, rev. 1.1) message framing and the class
//! descriptor. Pure: no I/O, every input from the reader is parsed strictly.

use crate::error::Error;

/// Every bulk message starts with this many header bytes.
pub const HEADER_LEN: usize = 10;

/// `bDescriptorType` of the CCID class descriptor (also used by pre-standard readers).
pub const CLASS_DESCRIPTOR_TYPE: u8 = 0x21;
/// `bInterfaceClass` of a CCID interface.
pub const INTERFACE_CLASS: u8 = 0x0B;
/// `bInterfaceClass` (vendor-specific) of readers made before CCID was final; taken when the
/// interface carries a 54-byte class descriptor, as libccid does.
pub const VENDOR_INTERFACE_CLASS: u8 = 0xFF;
/// `bDescriptorType` some of those readers give their class descriptor.
pub const VENDOR_CLASS_DESCRIPTOR_TYPE: u8 = 0xFF;

/// Whether `d` (one descriptor: `bLength` `bDescriptorType` ...) is a CCID class descriptor:
/// 54 bytes of type 0x21, or 0xFF as pre-standard readers wrote it.
pub fn is_class_descriptor(d: &[u8]) -> bool {
    d.len() == ClassDescriptor::LEN
        && usize::from(d[0]) == ClassDescriptor::LEN
        && matches!(d[1], CLASS_DESCRIPTOR_TYPE | VENDOR_CLASS_DESCRIPTOR_TYPE)
}

pub const PC_TO_RDR_ICC_POWER_ON: u8 = 0x62;
pub const PC_TO_RDR_ICC_POWER_OFF: u8 = 0x63;
pub const PC_TO_RDR_GET_SLOT_STATUS: u8 = 0x65;
pub const PC_TO_RDR_XFR_BLOCK: u8 = 0x6F;
pub const PC_TO_RDR_SET_PARAMETERS: u8 = 0x6D;

pub const RDR_TO_PC_DATA_BLOCK: u8 = 0x80;
pub const RDR_TO_PC_SLOT_STATUS: u8 = 0x81;
pub const RDR_TO_PC_PARAMETERS: u8 = 0x82;
pub const RDR_TO_PC_NOTIFY_SLOT_CHANGE: u8 = 0x50;
pub const RDR_TO_PC_HARDWARE_ERROR: u8 = 0x51;

/// `dwFeatures`: automatic parameter negotiation made by the reader (proprietary algorithm).
pub const FEATURE_AUTO_NEGOTIATION: u32 = 0x0000_0040;
/// `dwFeatures`: automatic PPS made by the reader according to the active parameters.
pub const FEATURE_AUTO_PPS: u32 = 0x0000_0080;
/// `dwFeatures`: automatic IFSD exchange as first exchange (T=1).
pub const FEATURE_AUTO_IFSD: u32 = 0x0000_0400;

/// How the reader exchanges data with the card (`dwFeatures` bits 16..=18).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ExchangeLevel {
    /// The host drives the card byte by byte: not supported (no reader we target does this).
    Character,
    /// The host sends TPDUs; for T=0 it maps APDUs itself (GET RESPONSE, 6Cxx).
    Tpdu,
    /// The reader takes short APDUs (Lc, Le <= 256).
    ShortApdu,
    /// The reader takes short and extended APDUs, chained over several XfrBlocks if needed.
    ExtendedApdu,
}

impl std::fmt::Display for ExchangeLevel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::Character => "character",
            Self::Tpdu => "TPDU",
            Self::ShortApdu => "short APDU",
            Self::ExtendedApdu => "short and extended APDU",
        })
    }
}

/// The fields of the CCID class descriptor this driver uses.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ClassDescriptor {
    pub bcd_ccid: u16,
    pub max_slot_index: u8,
    /// Bit 0: T=0, bit 1: T=1.
    pub protocols: u32,
    pub features: u32,
    pub max_message_length: u32,
    pub max_busy_slots: u8,
    /// `dwDefaultClock` in kHz (the card's clock, for the T=1 block waiting time).
    pub default_clock_khz: u32,
    /// `dwMaxIFSD`: the largest T=1 information field the reader takes (0: not given).
    pub max_ifsd: u32,
}

impl ClassDescriptor {
    /// The descriptor is 54 bytes long.
    pub const LEN: usize = 54;

    /// Parse the class descriptor (`bLength` `bDescriptorType` ...).
    pub fn parse(d: &[u8]) -> Result<Self, Error> {
        if d.len() < Self::LEN || usize::from(d[0]) < Self::LEN {
            return Err(Error::Descriptor(format!(
                "the CCID class descriptor is {} bytes long (bLength {}), it must be {}",
                d.len(),
                d.first().copied().unwrap_or(0),
                Self::LEN
            )));
        }
        if !matches!(d[1], CLASS_DESCRIPTOR_TYPE | VENDOR_CLASS_DESCRIPTOR_TYPE) {
            return Err(Error::Descriptor(format!(
                "descriptor type {:#04x} is not the CCID class descriptor ({:#04x}, or {:#04x} \
                 before CCID was final)",
                d[1], CLASS_DESCRIPTOR_TYPE, VENDOR_CLASS_DESCRIPTOR_TYPE
            )));
        }
        let u32_at = |o: usize| u32::from_le_bytes([d[o], d[o + 1], d[o + 2], d[o + 3]]);
        let desc = Self {
            bcd_ccid: u16::from_le_bytes([d[2], d[3]]),
            max_slot_index: d[4],
            protocols: u32_at(6),
            features: u32_at(40),
            max_message_length: u32_at(44),
            max_busy_slots: d[53],
            default_clock_khz: u32_at(10),
            max_ifsd: u32_at(28),
        };
        if (desc.max_message_length as usize) < HEADER_LEN + 5 {
            return Err(Error::Descriptor(format!(
                "dwMaxCCIDMessageLength {} cannot even carry one short APDU",
                desc.max_message_length
            )));
        }
        Ok(desc)
    }

    /// The exchange level announced in `dwFeatures`. The highest level wins if a reader sets
    /// several bits (the spec says they are exclusive).
    pub fn exchange_level(&self) -> ExchangeLevel {
        if self.features & 0x0004_0000 != 0 {
            ExchangeLevel::ExtendedApdu
        } else if self.features & 0x0002_0000 != 0 {
            ExchangeLevel::ShortApdu
        } else if self.features & 0x0001_0000 != 0 {
            ExchangeLevel::Tpdu
        } else {
            ExchangeLevel::Character
        }
    }

    pub fn supports_t0(&self) -> bool {
        self.protocols & 1 != 0
    }

    pub fn supports_t1(&self) -> bool {
        self.protocols & 2 != 0
    }

    /// Largest abData a single message may carry.
    pub fn max_data_len(&self) -> usize {
        // Cap what a hostile descriptor can make us allocate per transfer.
        (self.max_message_length as usize).min(64 * 1024 + HEADER_LEN) - HEADER_LEN
    }
}

/// Every field of the 54-byte CCID class descriptor (CCID rev. 1.1, table 5.1-1), to build
/// one from recorded values: the descriptor table test, emulated readers and the catalogue
/// tool. Clocks in kHz, data rates in bps, as on the wire.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct DescriptorFields {
    /// `bDescriptorType`: 0x21 (some pre-standard readers wrote 0xFF).
    pub descriptor_type: u8,
    pub bcd_ccid: u16,
    pub max_slot_index: u8,
    pub voltage_support: u8,
    pub protocols: u32,
    pub default_clock_khz: u32,
    pub maximum_clock_khz: u32,
    pub num_clock_supported: u8,
    pub data_rate: u32,
    pub max_data_rate: u32,
    pub num_data_rates_supported: u8,
    pub max_ifsd: u32,
    pub synch_protocols: u32,
    pub mechanical: u32,
    pub features: u32,
    pub max_message_length: u32,
    pub class_get_response: u8,
    pub class_envelope: u8,
    pub lcd_layout: u16,
    pub pin_support: u8,
    pub max_busy_slots: u8,
}

impl DescriptorFields {
    /// The descriptor's bytes, `bLength` 54 first.
    pub fn to_bytes(&self) -> [u8; ClassDescriptor::LEN] {
        let mut d = Vec::with_capacity(ClassDescriptor::LEN);
        d.extend_from_slice(&[ClassDescriptor::LEN as u8, self.descriptor_type]);
        d.extend_from_slice(&self.bcd_ccid.to_le_bytes());
        d.extend_from_slice(&[self.max_slot_index, self.voltage_support]);
        for v in [
            self.protocols,
            self.default_clock_khz,
            self.maximum_clock_khz,
        ] {
            d.extend_from_slice(&v.to_le_bytes());
        }
        d.push(self.num_clock_supported);
        for v in [self.data_rate, self.max_data_rate] {
            d.extend_from_slice(&v.to_le_bytes());
        }
        d.push(self.num_data_rates_supported);
        for v in [
            self.max_ifsd,
            self.synch_protocols,
            self.mechanical,
            self.features,
            self.max_message_length,
        ] {
            d.extend_from_slice(&v.to_le_bytes());
        }
        d.extend_from_slice(&[self.class_get_response, self.class_envelope]);
        d.extend_from_slice(&self.lcd_layout.to_le_bytes());
        d.extend_from_slice(&[self.pin_support, self.max_busy_slots]);
        d.try_into().expect("54 bytes")
    }
}

/// Voltage selection for `PC_to_RDR_IccPowerOn`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Voltage {
    Automatic = 0,
    V5 = 1,
    V3 = 2,
    V1_8 = 3,
}

/// A message from host to reader.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Command<'a> {
    PowerOn(Voltage),
    PowerOff,
    GetSlotStatus,
    /// abData with wLevelParameter (chaining for extended APDU level, else 0).
    XfrBlock {
        data: &'a [u8],
        level: u16,
    },
    /// A TPDU-level T=1 block with `bBWI`: the reader waits `bwi` block waiting times for
    /// the answer (0: one).
    XfrBlockBwi {
        data: &'a [u8],
        bwi: u8,
    },
    /// `bProtocolNum` (0: T=0, 1: T=1) and `abProtocolDataStructure`.
    SetParameters {
        protocol: u8,
        data: &'a [u8],
    },
}

impl Command<'_> {
    pub fn message_type(&self) -> u8 {
        match self {
            Self::PowerOn(_) => PC_TO_RDR_ICC_POWER_ON,
            Self::PowerOff => PC_TO_RDR_ICC_POWER_OFF,
            Self::GetSlotStatus => PC_TO_RDR_GET_SLOT_STATUS,
            Self::XfrBlock { .. } | Self::XfrBlockBwi { .. } => PC_TO_RDR_XFR_BLOCK,
            Self::SetParameters { .. } => PC_TO_RDR_SET_PARAMETERS,
        }
    }

    /// The response message type the reader must answer with.
    pub fn response_type(&self) -> u8 {
        match self {
            Self::PowerOn(_) | Self::XfrBlock { .. } | Self::XfrBlockBwi { .. } => {
                RDR_TO_PC_DATA_BLOCK
            }
            Self::PowerOff | Self::GetSlotStatus => RDR_TO_PC_SLOT_STATUS,
            Self::SetParameters { .. } => RDR_TO_PC_PARAMETERS,
        }
    }

    /// Encode with header. `bBWI` is left 0: the reader's default block waiting time.
    pub fn encode(&self, slot: u8, seq: u8) -> Vec<u8> {
        let (data, specific): (&[u8], [u8; 3]) = match self {
            Self::PowerOn(v) => (&[], [*v as u8, 0, 0]),
            Self::PowerOff | Self::GetSlotStatus => (&[], [0, 0, 0]),
            Self::XfrBlock { data, level } => {
                let l = level.to_le_bytes();
                (data, [0, l[0], l[1]])
            }
            Self::XfrBlockBwi { data, bwi } => (data, [*bwi, 0, 0]),
            Self::SetParameters { protocol, data } => (data, [*protocol, 0, 0]),
        };
        let mut out = Vec::with_capacity(HEADER_LEN + data.len());
        out.push(self.message_type());
        out.extend_from_slice(&(data.len() as u32).to_le_bytes());
        out.push(slot);
        out.push(seq);
        out.extend_from_slice(&specific);
        out.extend_from_slice(data);
        out
    }
}

/// `bmICCStatus`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum IccStatus {
    PresentActive,
    PresentInactive,
    Absent,
}

/// `bmCommandStatus`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CommandStatus {
    Ok,
    Failed,
    TimeExtension,
}

/// A message from reader to host on the bulk-in endpoint.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Response {
    pub message_type: u8,
    pub slot: u8,
    pub seq: u8,
    pub icc: IccStatus,
    pub command: CommandStatus,
    /// bError: the error code, or the BWT multiplier of a time extension.
    pub error: u8,
    /// bChainParameter (DataBlock), bClockStatus (SlotStatus), bProtocolNum (Parameters).
    pub specific: u8,
    pub data: Vec<u8>,
}

/// Outcome of feeding bytes received so far to [`Response::parse`].
#[derive(Debug, PartialEq, Eq)]
pub enum Parsed {
    /// A complete message; `usize` is how many bytes it used.
    Complete(Response, usize),
    /// The header says more bytes follow; read at least this many more.
    NeedMore(usize),
}

impl Response {
    /// Parse one bulk-in message. Trailing bytes after `dwLength` are not consumed.
    /// `max_data` bounds what a reader may claim to send (its own dwMaxCCIDMessageLength).
    pub fn parse(buf: &[u8], max_data: usize) -> Result<Parsed, Error> {
        if buf.len() < HEADER_LEN {
            return Ok(Parsed::NeedMore(HEADER_LEN - buf.len()));
        }
        let message_type = buf[0];
        if !matches!(
            message_type,
            RDR_TO_PC_DATA_BLOCK | RDR_TO_PC_SLOT_STATUS | RDR_TO_PC_PARAMETERS | 0x83 | 0x84
        ) {
            return Err(Error::Protocol(format!(
                "the reader sent bulk message type {message_type:#04x}, which is not a \
                 RDR_to_PC response"
            )));
        }
        let len = u32::from_le_bytes([buf[1], buf[2], buf[3], buf[4]]) as usize;
        if len > max_data {
            return Err(Error::Protocol(format!(
                "the reader announced a {len}-byte response, more than its own limit of \
                 {max_data}"
            )));
        }
        if buf.len() < HEADER_LEN + len {
            return Ok(Parsed::NeedMore(HEADER_LEN + len - buf.len()));
        }
        let status = buf[7];
        let icc = match status & 0x03 {
            0 => IccStatus::PresentActive,
            1 => IccStatus::PresentInactive,
            2 => IccStatus::Absent,
            _ => {
                return Err(Error::Protocol(format!(
                    "bStatus {status:#04x} has the reserved ICC status 3"
                )));
            }
        };
        let command = match status >> 6 {
            0 => CommandStatus::Ok,
            1 => CommandStatus::Failed,
            2 => CommandStatus::TimeExtension,
            _ => {
                return Err(Error::Protocol(format!(
                    "bStatus {status:#04x} has the reserved command status 3"
                )));
            }
        };
        Ok(Parsed::Complete(
            Self {
                message_type,
                slot: buf[5],
                seq: buf[6],
                icc,
                command,
                error: buf[8],
                specific: buf[9],
                data: buf[HEADER_LEN..HEADER_LEN + len].to_vec(),
            },
            HEADER_LEN + len,
        ))
    }
}

/// What `bError` means when `bmCommandStatus` says the command failed.
pub fn slot_error_meaning(code: u8) -> &'static str {
    match code {
        0xFF => "command aborted",
        0xFE => "card mute (it did not answer in time)",
        0xFD => "parity error in the transfer",
        0xFC => "overrun in the transfer",
        0xFB => "hardware error",
        0xF8 => "bad ATR TS byte",
        0xF7 => "bad ATR TCK byte",
        0xF6 => "card protocol not supported",
        0xF5 => "card class not supported",
        0xF4 => "procedure byte conflict",
        0xF3 => "protocol deactivated",
        0xF2 => "busy with an automatic sequence",
        0xF0 => "PIN pad timeout",
        0xEF => "PIN pad cancelled",
        0xE0 => "slot busy",
        0x00 => "command not supported by the reader",
        0x01..=0x7F => "bad parameter in the command",
        _ => "vendor-specific error",
    }
}

/// Slot changes from `RDR_to_PC_NotifySlotChange` (interrupt endpoint): for each slot,
/// (present, changed).
pub fn parse_notify_slot_change(msg: &[u8]) -> Result<Vec<(bool, bool)>, Error> {
    match msg.first() {
        Some(&RDR_TO_PC_NOTIFY_SLOT_CHANGE) => {}
        Some(&RDR_TO_PC_HARDWARE_ERROR) => {
            return Err(Error::Protocol(format!(
                "the reader reported a hardware error on its interrupt endpoint: {msg:02x?}"
            )));
        }
        Some(t) => {
            return Err(Error::Protocol(format!(
                "unknown interrupt message type {t:#04x}"
            )));
        }
        None => return Err(Error::Protocol("empty interrupt message".into())),
    }
    let mut slots = Vec::new();
    for byte in &msg[1..] {
        for i in 0..4 {
            let bits = byte >> (2 * i);
            slots.push((bits & 1 != 0, bits & 2 != 0));
        }
    }
    Ok(slots)
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// A descriptor with the fields QEMU 7.2's usb-ccid reader announces that matter here:
    /// CCID 1.10, one slot, T=0 only, TPDU level, 0x10F-byte messages. The other bytes are
    /// what a typical reader fills in.
    pub(crate) fn qemu_like_descriptor() -> Vec<u8> {
        let mut d = vec![0x36, 0x21, 0x10, 0x01, 0x00, 0x07];
        d.extend_from_slice(&1u32.to_le_bytes()); // dwProtocols: T=0
        d.extend_from_slice(&[0xA0, 0x0F, 0, 0]); // default clock
        d.extend_from_slice(&[0xA0, 0x0F, 0, 0]); // max clock
        d.push(0);
        d.extend_from_slice(&[0x80, 0x25, 0, 0]); // data rate
        d.extend_from_slice(&[0x80, 0x25, 0, 0]);
        d.push(0);
        d.extend_from_slice(&0xFEu32.to_le_bytes()); // max IFSD
        d.extend_from_slice(&0u32.to_le_bytes()); // synch protocols
        d.extend_from_slice(&0u32.to_le_bytes()); // mechanical
        d.extend_from_slice(&0x0001_00BAu32.to_le_bytes()); // features: TPDU + automatics
        d.extend_from_slice(&0x10Fu32.to_le_bytes()); // max message length
        d.extend_from_slice(&[0xFF, 0xFF, 0, 0, 0, 1]);
        assert_eq!(d.len(), 54);
        d
    }

    #[test]
    fn descriptor_fields_build_the_same_bytes() {
        let f = DescriptorFields {
            descriptor_type: 0x21,
            bcd_ccid: 0x0110,
            voltage_support: 0x07,
            protocols: 1,
            default_clock_khz: 4000,
            maximum_clock_khz: 4000,
            data_rate: 9600,
            max_data_rate: 9600,
            max_ifsd: 0xFE,
            features: 0x0001_00BA,
            max_message_length: 0x10F,
            class_get_response: 0xFF,
            class_envelope: 0xFF,
            max_busy_slots: 1,
            ..DescriptorFields::default()
        };
        assert_eq!(f.to_bytes().to_vec(), qemu_like_descriptor());
    }

    #[test]
    fn parses_class_descriptor() {
        let d = ClassDescriptor::parse(&qemu_like_descriptor()).unwrap();
        assert_eq!(d.bcd_ccid, 0x0110);
        assert_eq!(d.exchange_level(), ExchangeLevel::Tpdu);
        assert!(d.supports_t0());
        assert!(!d.supports_t1());
        assert_eq!(d.max_message_length, 0x10F);
        assert_eq!(d.max_data_len(), 0x10F - 10);
    }

    #[test]
    fn exchange_levels_from_features() {
        let mut raw = qemu_like_descriptor();
        for (features, level) in [
            (0x0000_0000u32, ExchangeLevel::Character),
            (0x0001_0000, ExchangeLevel::Tpdu),
            (0x0002_0000, ExchangeLevel::ShortApdu),
            (0x0004_0000, ExchangeLevel::ExtendedApdu),
            (0x0004_04BE, ExchangeLevel::ExtendedApdu),
        ] {
            raw[40..44].copy_from_slice(&features.to_le_bytes());
            assert_eq!(
                ClassDescriptor::parse(&raw).unwrap().exchange_level(),
                level
            );
        }
    }

    #[test]
    fn rejects_bad_descriptors() {
        let raw = qemu_like_descriptor();
        assert!(ClassDescriptor::parse(&raw[..53]).is_err());
        let mut wrong_type = raw.clone();
        wrong_type[1] = 0x24;
        assert!(ClassDescriptor::parse(&wrong_type).is_err());
        let mut tiny = raw;
        tiny[44..48].copy_from_slice(&12u32.to_le_bytes());
        assert!(ClassDescriptor::parse(&tiny).is_err());
    }

    #[test]
    fn encodes_commands() {
        assert_eq!(
            Command::PowerOn(Voltage::Automatic).encode(0, 7),
            [0x62, 0, 0, 0, 0, 0, 7, 0, 0, 0]
        );
        assert_eq!(
            Command::XfrBlock {
                data: &[0x00, 0xA4],
                level: 0x10
            }
            .encode(1, 0xFF),
            [0x6F, 2, 0, 0, 0, 1, 0xFF, 0, 0x10, 0, 0x00, 0xA4]
        );
        assert_eq!(Command::GetSlotStatus.encode(0, 3)[0], 0x65);
        assert_eq!(
            Command::XfrBlockBwi {
                data: &[0x00, 0x00, 0x00, 0x00],
                bwi: 3
            }
            .encode(0, 2),
            [0x6F, 4, 0, 0, 0, 0, 2, 3, 0, 0, 0, 0, 0, 0]
        );
        // T=1 protocol data: Fi/Di 11, LRC direct, guard time 0, BWI 4 CWI 13, no clock
        // stop, IFSC 32, NAD 0 (CCID rev 1.1, 6.1.7).
        let t1 = [0x11, 0x10, 0x00, 0x4D, 0x00, 0x20, 0x00];
        let set = Command::SetParameters {
            protocol: 1,
            data: &t1,
        };
        assert_eq!(
            set.encode(0, 4),
            [
                0x6D, 7, 0, 0, 0, 0, 4, 1, 0, 0, 0x11, 0x10, 0x00, 0x4D, 0x00, 0x20, 0x00
            ]
        );
        assert_eq!(set.response_type(), RDR_TO_PC_PARAMETERS);
        assert_eq!(Command::PowerOff.response_type(), RDR_TO_PC_SLOT_STATUS);
    }

    #[test]
    fn parses_responses_and_partial_input() {
        let msg = [0x80, 2, 0, 0, 0, 0, 5, 0x00, 0, 0, 0x90, 0x00, 0xAA];
        assert_eq!(
            Response::parse(&msg[..4], 100).unwrap(),
            Parsed::NeedMore(6)
        );
        assert_eq!(
            Response::parse(&msg[..11], 100).unwrap(),
            Parsed::NeedMore(1)
        );
        let Parsed::Complete(r, used) = Response::parse(&msg, 100).unwrap() else {
            panic!("complete message not parsed");
        };
        assert_eq!(used, 12);
        assert_eq!(r.seq, 5);
        assert_eq!(r.data, [0x90, 0x00]);
        assert_eq!(r.icc, IccStatus::PresentActive);
        assert_eq!(r.command, CommandStatus::Ok);

        let ext = [0x80, 0, 0, 0, 0, 0, 1, 0x80, 3, 0];
        let Parsed::Complete(r, _) = Response::parse(&ext, 100).unwrap() else {
            panic!("time extension not parsed");
        };
        assert_eq!(r.command, CommandStatus::TimeExtension);
        assert_eq!(r.error, 3);

        let absent = [0x81, 0, 0, 0, 0, 0, 1, 0x42, 0xFE, 0];
        let Parsed::Complete(r, _) = Response::parse(&absent, 100).unwrap() else {
            panic!("slot status not parsed");
        };
        assert_eq!(
            (r.icc, r.command),
            (IccStatus::Absent, CommandStatus::Failed)
        );
    }

    #[test]
    fn rejects_hostile_responses() {
        // A length beyond the reader's own limit must not make us wait for or allocate it.
        let huge = [0x80, 0xFF, 0xFF, 0xFF, 0x7F, 0, 0, 0, 0, 0];
        assert!(Response::parse(&huge, 1000).is_err());
        assert!(Response::parse(&[0x6F, 0, 0, 0, 0, 0, 0, 0, 0, 0], 10).is_err());
        assert!(Response::parse(&[0x80, 0, 0, 0, 0, 0, 0, 0x03, 0, 0], 10).is_err());
        assert!(Response::parse(&[0x80, 0, 0, 0, 0, 0, 0, 0xC0, 0, 0], 10).is_err());
    }

    #[test]
    fn parses_slot_change_notifications() {
        // Slot 0 present and changed, slot 1 absent and changed.
        assert_eq!(
            parse_notify_slot_change(&[0x50, 0b0000_1011]).unwrap()[..2],
            [(true, true), (false, true)]
        );
        assert!(parse_notify_slot_change(&[0x51, 0, 0, 1]).is_err());
        assert!(parse_notify_slot_change(&[]).is_err());
    }
}
