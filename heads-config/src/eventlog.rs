//! The TCG PC Client "crypto agile" firmware event log, as Linux exposes it in
//! `/sys/kernel/security/tpm0/binary_bios_measurements` (SeaBIOS writes one when a TPM2 is
//! attached; format in `docs/formats/tcg-event-log.md`).
//!
//! Layout, all integers little-endian:
//! - first event, SHA-1 format (`TCG_PCClientPCREvent`): pcr u32, type u32, digest [20],
//!   size u32, data; its data is the `Spec ID Event03` structure naming the log's banks and
//!   their digest sizes;
//! - then `TCG_PCR_EVENT2`: pcr u32, type u32, count u32, count x (alg u16, digest), size u32,
//!   data.
//!
//! The log comes from outside (firmware, through the kernel), so every length is checked
//! against what is left and against fixed bounds before use.

use crate::pcr::{self, Bank};

/// TPM_ALG_ID values (TPM 2.0 Part 2, table 9).
pub const ALG_SHA1: u16 = 0x0004;
pub const ALG_SHA256: u16 = 0x000b;

/// Event types this module gives meaning to.
pub const EV_NO_ACTION: u32 = 0x0000_0003;

const SPEC_ID_SIGNATURE: &[u8; 16] = b"Spec ID Event03\0";
const STARTUP_LOCALITY_SIGNATURE: &[u8; 16] = b"StartupLocality\0";
/// Bounds well above any real log, so a hostile one cannot make us allocate without limit.
const MAX_LOG_BYTES: usize = 16 << 20;
const MAX_EVENT_DATA: usize = 1 << 20;
const MAX_ALGORITHMS: usize = 16;
const MAX_DIGEST_LEN: usize = 64;
/// Platform PCRs are 0..=23.
const MAX_PCR_INDEX: u32 = 23;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    #[error("the event log is empty")]
    Empty,
    #[error("the event log is {0} bytes, more than the {MAX_LOG_BYTES} a firmware log can be")]
    TooLarge(usize),
    #[error("event {event} at byte {offset}: the log ends inside its {field}")]
    Truncated {
        event: usize,
        offset: usize,
        field: &'static str,
    },
    #[error(
        "the first event is not a crypto-agile Spec ID event (signature {0:?}); only TPM2 \
         (TCG PC Client crypto-agile) logs are supported"
    )]
    NotCryptoAgile(String),
    #[error("the Spec ID event is malformed: {0}")]
    BadSpecId(&'static str),
    #[error("event {event} at byte {offset}: {what}")]
    BadEvent {
        event: usize,
        offset: usize,
        what: String,
    },
}

/// The banks the log carries, from its Spec ID event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SpecId {
    pub platform_class: u32,
    pub spec_version: (u8, u8, u8),
    pub uintn_size: u8,
    /// (TPM_ALG_ID, digest size)
    pub algorithms: Vec<(u16, u16)>,
}

/// One measurement: which PCR, what kind, one digest per bank, and the event data.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Event {
    pub pcr_index: u32,
    pub event_type: u32,
    pub digests: Vec<(u16, Vec<u8>)>,
    pub data: Vec<u8>,
}

impl Event {
    /// The digest this event carries for `bank`, if the log has that bank.
    pub fn digest(&self, bank: Bank) -> Option<&[u8]> {
        let alg = alg_id(bank);
        self.digests
            .iter()
            .find(|(a, _)| *a == alg)
            .map(|(_, d)| d.as_slice())
    }
}

/// A parsed log: its Spec ID header and the events after it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EventLog {
    pub spec_id: SpecId,
    pub events: Vec<Event>,
}

pub fn alg_id(bank: Bank) -> u16 {
    match bank {
        Bank::Sha1 => ALG_SHA1,
        Bank::Sha256 => ALG_SHA256,
    }
}

struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
    event: usize,
    event_start: usize,
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize, field: &'static str) -> Result<&'a [u8], Error> {
        let end = self.pos.checked_add(n).filter(|&e| e <= self.buf.len());
        let Some(end) = end else {
            return Err(Error::Truncated {
                event: self.event,
                offset: self.event_start,
                field,
            });
        };
        let s = &self.buf[self.pos..end];
        self.pos = end;
        Ok(s)
    }
    fn u8(&mut self, f: &'static str) -> Result<u8, Error> {
        Ok(self.take(1, f)?[0])
    }
    fn u16(&mut self, f: &'static str) -> Result<u16, Error> {
        let b = self.take(2, f)?;
        Ok(u16::from_le_bytes([b[0], b[1]]))
    }
    fn u32(&mut self, f: &'static str) -> Result<u32, Error> {
        let b = self.take(4, f)?;
        Ok(u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
    }
    fn bad(&self, what: impl Into<String>) -> Error {
        Error::BadEvent {
            event: self.event,
            offset: self.event_start,
            what: what.into(),
        }
    }
}

/// Parses a whole crypto-agile log. Trailing zero bytes (unused log area some firmware leaves)
/// end the log; anything else that does not parse is an error.
pub fn parse(log: &[u8]) -> Result<EventLog, Error> {
    if log.is_empty() {
        return Err(Error::Empty);
    }
    if log.len() > MAX_LOG_BYTES {
        return Err(Error::TooLarge(log.len()));
    }
    let mut r = Reader {
        buf: log,
        pos: 0,
        event: 0,
        event_start: 0,
    };
    let spec_id = parse_spec_id_event(&mut r)?;
    let mut events = Vec::new();
    while r.pos < log.len() {
        if log[r.pos..].iter().all(|&b| b == 0) {
            break;
        }
        r.event += 1;
        r.event_start = r.pos;
        events.push(parse_event2(&mut r, &spec_id)?);
    }
    Ok(EventLog { spec_id, events })
}

fn parse_spec_id_event(r: &mut Reader) -> Result<SpecId, Error> {
    let pcr_index = r.u32("PCR index")?;
    let event_type = r.u32("event type")?;
    r.take(20, "SHA-1 digest")?;
    let size = r.u32("event size")? as usize;
    if size > MAX_EVENT_DATA {
        return Err(Error::BadSpecId("its data size is implausibly large"));
    }
    let data = r.take(size, "Spec ID data")?;
    let sig = data.get(..16).unwrap_or(data);
    if sig != SPEC_ID_SIGNATURE {
        return Err(Error::NotCryptoAgile(
            String::from_utf8_lossy(sig).into_owned(),
        ));
    }
    if pcr_index != 0 || event_type != EV_NO_ACTION {
        return Err(Error::BadSpecId(
            "it must be an EV_NO_ACTION event on PCR 0",
        ));
    }
    let mut d = Reader {
        buf: data,
        pos: 16,
        event: 0,
        event_start: 0,
    };
    let short = |_| Error::BadSpecId("its data ends early");
    let platform_class = d.u32("").map_err(short)?;
    let minor = d.u8("").map_err(short)?;
    let major = d.u8("").map_err(short)?;
    let errata = d.u8("").map_err(short)?;
    let uintn_size = d.u8("").map_err(short)?;
    let n = d.u32("").map_err(short)? as usize;
    if n == 0 || n > MAX_ALGORITHMS {
        return Err(Error::BadSpecId("it must list between 1 and 16 algorithms"));
    }
    let mut algorithms = Vec::with_capacity(n);
    for _ in 0..n {
        let alg = d.u16("").map_err(short)?;
        let len = d.u16("").map_err(short)?;
        if len == 0 || len as usize > MAX_DIGEST_LEN {
            return Err(Error::BadSpecId("a digest size is 0 or above 64"));
        }
        if algorithms.iter().any(|&(a, _)| a == alg) {
            return Err(Error::BadSpecId("an algorithm is listed twice"));
        }
        let expected = match alg {
            ALG_SHA1 => Some(20),
            ALG_SHA256 => Some(32),
            _ => None,
        };
        if expected.is_some_and(|e| e != len) {
            return Err(Error::BadSpecId(
                "SHA-1 or SHA-256 has the wrong digest size",
            ));
        }
        algorithms.push((alg, len));
    }
    let vendor = d.u8("").map_err(short)? as usize;
    d.take(vendor, "").map_err(short)?;
    if d.pos != data.len() {
        return Err(Error::BadSpecId("bytes follow its vendor info"));
    }
    Ok(SpecId {
        platform_class,
        spec_version: (major, minor, errata),
        uintn_size,
        algorithms,
    })
}

fn parse_event2(r: &mut Reader, spec: &SpecId) -> Result<Event, Error> {
    let pcr_index = r.u32("PCR index")?;
    let event_type = r.u32("event type")?;
    if pcr_index > MAX_PCR_INDEX {
        return Err(r.bad(format!("PCR index {pcr_index} is above {MAX_PCR_INDEX}")));
    }
    let count = r.u32("digest count")? as usize;
    if count != spec.algorithms.len() {
        return Err(r.bad(format!(
            "it carries {count} digests, the Spec ID event lists {} banks",
            spec.algorithms.len()
        )));
    }
    let mut digests = Vec::with_capacity(count);
    for _ in 0..count {
        let alg = r.u16("digest algorithm")?;
        let Some(&(_, len)) = spec.algorithms.iter().find(|&&(a, _)| a == alg) else {
            return Err(r.bad(format!(
                "digest algorithm {alg:#06x} is not in the Spec ID event"
            )));
        };
        if digests.iter().any(|(a, _)| *a == alg) {
            return Err(r.bad(format!("digest algorithm {alg:#06x} appears twice")));
        }
        digests.push((alg, r.take(len as usize, "digest")?.to_vec()));
    }
    let size = r.u32("event size")? as usize;
    if size > MAX_EVENT_DATA {
        return Err(r.bad(format!("event data of {size} bytes is implausibly large")));
    }
    let data = r.take(size, "event data")?.to_vec();
    Ok(Event {
        pcr_index,
        event_type,
        digests,
        data,
    })
}

/// The value `pcr_index` should hold in `bank` if the firmware did exactly what it logged:
/// start from zero (or from the locality in a StartupLocality event, PCR 0 only) and extend
/// every event's digest except EV_NO_ACTION ones. None when the log lacks that bank.
pub fn replay(events: &[Event], pcr_index: u32, bank: Bank) -> Option<Vec<u8>> {
    let mut value = pcr::zero(bank);
    for e in events.iter().filter(|e| e.pcr_index == pcr_index) {
        if e.event_type == EV_NO_ACTION {
            if pcr_index == 0
                && e.data.len() == 17
                && e.data[..16] == STARTUP_LOCALITY_SIGNATURE[..]
            {
                *value.last_mut()? = e.data[16];
            }
            continue;
        }
        value = pcr::extend(bank, &value, e.digest(bank)?);
    }
    // A bank absent from every event would silently replay as zero: say None instead.
    if !events.is_empty() && events.iter().all(|e| e.digest(bank).is_none()) {
        return None;
    }
    Some(value)
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::hex::encode;

    /// A crypto-agile log with SHA-1 and SHA-256 banks, built byte by byte.
    pub struct LogBuilder(pub Vec<u8>);

    impl LogBuilder {
        pub fn new() -> Self {
            let mut spec = SPEC_ID_SIGNATURE.to_vec();
            spec.extend(0u32.to_le_bytes()); // platform class: client
            spec.extend([0, 2, 0, 2]); // version 2.0 errata 0, uintn 8 bytes (2)
            spec.extend(2u32.to_le_bytes());
            spec.extend(ALG_SHA1.to_le_bytes());
            spec.extend(20u16.to_le_bytes());
            spec.extend(ALG_SHA256.to_le_bytes());
            spec.extend(32u16.to_le_bytes());
            spec.push(0);
            let mut b = Vec::new();
            b.extend(0u32.to_le_bytes());
            b.extend(EV_NO_ACTION.to_le_bytes());
            b.extend([0; 20]);
            b.extend((spec.len() as u32).to_le_bytes());
            b.extend(spec);
            LogBuilder(b)
        }
        /// An event measuring `data` (digests are the hashes of the data, as SeaBIOS does).
        pub fn event(mut self, pcr: u32, ty: u32, data: &[u8]) -> Self {
            let b = &mut self.0;
            b.extend(pcr.to_le_bytes());
            b.extend(ty.to_le_bytes());
            b.extend(2u32.to_le_bytes());
            b.extend(ALG_SHA1.to_le_bytes());
            b.extend(Bank::Sha1.hash(data));
            b.extend(ALG_SHA256.to_le_bytes());
            b.extend(Bank::Sha256.hash(data));
            b.extend((data.len() as u32).to_le_bytes());
            b.extend(data);
            self
        }
    }

    #[test]
    fn parses_and_replays() {
        let log = LogBuilder::new()
            .event(4, 5, b"Calling INT 19h")
            .event(0, 1, b"bios")
            .event(4, 4, &[0; 4])
            .0;
        let parsed = parse(&log).unwrap();
        assert_eq!(
            parsed.spec_id.algorithms,
            [(ALG_SHA1, 20), (ALG_SHA256, 32)]
        );
        assert_eq!(parsed.events.len(), 3);
        // Computed independently with Python's hashlib:
        //   h = hashlib.sha256; p = bytes(32)
        //   for d in [b"Calling INT 19h", bytes(4)]: p = h(p + h(d).digest()).digest()
        assert_eq!(
            encode(&replay(&parsed.events, 4, Bank::Sha256).unwrap()),
            "5f7e39cf03e68bc327153ad329f3795b6ead4e3133bc468d163ea10ac574a51a"
        );
        assert_eq!(
            replay(&parsed.events, 7, Bank::Sha256).unwrap(),
            pcr::zero(Bank::Sha256)
        );
        // Trailing zero padding is the unused log area, not an event.
        let mut padded = log.clone();
        padded.extend([0; 100]);
        assert_eq!(parse(&padded).unwrap(), parsed);
    }

    #[test]
    fn startup_locality_sets_pcr0_start() {
        let mut data = STARTUP_LOCALITY_SIGNATURE.to_vec();
        data.push(3);
        let log = LogBuilder::new().event(0, EV_NO_ACTION, &data).0;
        let p = parse(&log).unwrap();
        let mut want = pcr::zero(Bank::Sha256);
        want[31] = 3;
        assert_eq!(replay(&p.events, 0, Bank::Sha256).unwrap(), want);
    }

    #[test]
    fn rejects_malformed_logs() {
        let good = LogBuilder::new().event(4, 5, b"x").0;
        assert_eq!(parse(&[]), Err(Error::Empty));
        // Every truncation is an error, never a panic or a shorter log.
        let header = LogBuilder::new().0.len();
        for n in 1..good.len() {
            // A log of only the Spec ID event is a valid empty log.
            if n == header || good[n..].iter().all(|&b| b == 0) {
                continue;
            }
            assert!(parse(&good[..n]).is_err(), "accepted a log cut at {n}");
        }
        let mut sha1_log = good.clone();
        sha1_log[32..48].copy_from_slice(b"Spec ID Event00\0");
        assert!(matches!(parse(&sha1_log), Err(Error::NotCryptoAgile(_))));
        let mut bad_pcr = LogBuilder::new().0;
        let at = bad_pcr.len();
        bad_pcr = LogBuilder(bad_pcr).event(99, 5, b"x").0;
        let e = parse(&bad_pcr).unwrap_err().to_string();
        assert!(
            e.contains("PCR index 99") && e.contains(&format!("byte {at}")),
            "{e}"
        );
        let mut bad_count = good.clone();
        bad_count[at + 8] = 1;
        assert!(
            parse(&bad_count)
                .unwrap_err()
                .to_string()
                .contains("carries 1 digests")
        );
        let mut huge = good.clone();
        let size_at = good.len() - 1 - 4;
        huge[size_at..size_at + 4].copy_from_slice(&u32::MAX.to_le_bytes());
        assert!(
            parse(&huge)
                .unwrap_err()
                .to_string()
                .contains("implausibly large")
        );
    }
}
