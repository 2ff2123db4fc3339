//! ISO 7816-4 command APDUs and the response handling that sits between the OpenPGP layer
//! and the reader: T=0 TPDU mapping (ISO 7816-3 12.2), GET RESPONSE for 61xx, resend for
//! 6Cxx, command chaining when a command is too long for the reader. Pure: the exchange with
//! the reader is a closure.

use crate::ccid::ExchangeLevel;
use zeroize::Zeroizing;

use crate::error::{Error, Result};

/// Largest response we assemble from GET RESPONSE rounds: the largest extended Le plus SW.
pub const MAX_RESPONSE: usize = 65536 + 2;
/// GET RESPONSE rounds that bring no data before we give up. Rounds that bring data are
/// bounded by [`MAX_RESPONSE`].
const MAX_EMPTY_GET_RESPONSE_ROUNDS: usize = 8;

/// A parsed command APDU.
#[derive(Clone, PartialEq, Eq)]
pub struct Apdu {
    pub cla: u8,
    pub ins: u8,
    pub p1: u8,
    pub p2: u8,
    pub data: Vec<u8>,
    /// Expected response length, 1..=65536; `None` when no response data is expected.
    pub le: Option<usize>,
}

// Command data may be a PIN or key material: never print it.
impl std::fmt::Debug for Apdu {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "Apdu {{ {:02X} {:02X} {:02X} {:02X}, {} data bytes, le {:?} }}",
            self.cla,
            self.ins,
            self.p1,
            self.p2,
            self.data.len(),
            self.le
        )
    }
}

impl Drop for Apdu {
    fn drop(&mut self) {
        zeroize::Zeroize::zeroize(&mut self.data);
    }
}

impl Apdu {
    /// Parse the four ISO 7816-4 cases, short and extended.
    pub fn parse(raw: &[u8]) -> Result<Self> {
        if raw.len() < 4 {
            return Err(Error::BadApdu(format!(
                "{} bytes, a command needs at least CLA INS P1 P2",
                raw.len()
            )));
        }
        let (cla, ins, p1, p2) = (raw[0], raw[1], raw[2], raw[3]);
        let body = &raw[4..];
        let short_le = |b: u8| if b == 0 { 256 } else { usize::from(b) };
        let ext_le = |h: u8, l: u8| match u16::from_be_bytes([h, l]) {
            0 => 65536,
            n => usize::from(n),
        };
        let (data, le): (&[u8], Option<usize>) = match body.len() {
            0 => (&[], None),
            1 => (&[], Some(short_le(body[0]))),
            _ if body[0] != 0 => {
                let lc = usize::from(body[0]);
                match body.len() - 1 {
                    n if n == lc => (&body[1..], None),
                    n if n == lc + 1 => (&body[1..=lc], Some(short_le(body[lc + 1]))),
                    n => {
                        return Err(Error::BadApdu(format!(
                            "Lc says {lc} data bytes but {n} bytes follow it"
                        )));
                    }
                }
            }
            3 => (&[], Some(ext_le(body[1], body[2]))),
            n if n >= 4 => {
                let lc = usize::from(u16::from_be_bytes([body[1], body[2]]));
                if lc == 0 {
                    return Err(Error::BadApdu("extended Lc of 0".into()));
                }
                match n - 3 {
                    m if m == lc => (&body[3..], None),
                    m if m == lc + 2 => (
                        &body[3..3 + lc],
                        Some(ext_le(body[3 + lc], body[3 + lc + 1])),
                    ),
                    m => {
                        return Err(Error::BadApdu(format!(
                            "extended Lc says {lc} data bytes but {m} bytes follow it"
                        )));
                    }
                }
            }
            n => {
                return Err(Error::BadApdu(format!(
                    "a {n}-byte body starting with 00 is neither short nor extended"
                )));
            }
        };
        Ok(Self {
            cla,
            ins,
            p1,
            p2,
            data: data.to_vec(),
            le,
        })
    }

    /// Short encoding; data must be <= 255 bytes. Le above 256 is capped at 256: the rest
    /// comes through GET RESPONSE.
    pub fn encode_short(&self) -> Result<Vec<u8>> {
        if self.data.len() > 255 {
            return Err(Error::BadApdu(format!(
                "{} data bytes do not fit a short APDU",
                self.data.len()
            )));
        }
        let mut out = vec![self.cla, self.ins, self.p1, self.p2];
        if !self.data.is_empty() {
            out.push(self.data.len() as u8);
            out.extend_from_slice(&self.data);
        }
        if let Some(le) = self.le {
            out.push(if le >= 256 { 0 } else { le as u8 });
        }
        Ok(out)
    }

    /// The T=0 TPDU header + body for a short command (ISO 7816-3 12.2): P3 is Lc when there
    /// is data (case 3 and 4; Le is dropped, the card answers 61xx), else Le (case 2), else 0.
    pub fn encode_t0(&self) -> Result<Vec<u8>> {
        if self.data.len() > 255 {
            return Err(Error::BadApdu(format!(
                "{} data bytes do not fit one T=0 TPDU",
                self.data.len()
            )));
        }
        let mut out = vec![self.cla, self.ins, self.p1, self.p2];
        if !self.data.is_empty() {
            out.push(self.data.len() as u8);
            out.extend_from_slice(&self.data);
        } else {
            out.push(match self.le {
                None => 0,
                Some(le) if le >= 256 => 0,
                Some(le) => le as u8,
            });
        }
        Ok(out)
    }
}

/// Split a response into data and SW1 SW2.
pub fn split_status(resp: &[u8]) -> Result<(&[u8], u8, u8)> {
    match resp {
        [data @ .., sw1, sw2] => Ok((data, *sw1, *sw2)),
        _ => Err(Error::Card(format!(
            "a {}-byte response has no status word",
            resp.len()
        ))),
    }
}

/// Send `raw` through a reader at `level` and return the complete response (data + SW).
///
/// `xfr` sends one message's worth of bytes to the card and returns what it answered.
pub fn exchange(
    raw: &[u8],
    level: ExchangeLevel,
    xfr: &mut dyn FnMut(&[u8]) -> Result<Vec<u8>>,
) -> Result<Vec<u8>> {
    exchange_within(raw, level, usize::MAX, usize::MAX, xfr)
}

/// [`exchange`] through a reader whose messages carry at most `max_answer` bytes of answer
/// (data + SW) and `max_command` bytes of command per exchange: GET RESPONSE asks for no more
/// than fits, and at short APDU and T=0 TPDU level a command whose data does not fit is
/// chained (ISO 7816-4 command chaining) in parts that do.
pub fn exchange_within(
    raw: &[u8],
    level: ExchangeLevel,
    max_answer: usize,
    max_command: usize,
    xfr: &mut dyn FnMut(&[u8]) -> Result<Vec<u8>>,
) -> Result<Vec<u8>> {
    // Below 3 bytes nothing could come back; such a reader fails at its first answer anyway.
    let max_le = max_answer.saturating_sub(2).clamp(1, 256);
    // Command data per message: the 5-byte T=0 header (CLA INS P1 P2 P3), or a short APDU's
    // 4-byte header, Lc and Le.
    let header = if level == ExchangeLevel::Tpdu { 5 } else { 6 };
    let max_data = max_command.saturating_sub(header).clamp(1, 255);
    let cmd = Apdu::parse(raw)?;
    match level {
        ExchangeLevel::Character => Err(Error::Unsupported(
            "character-level CCID readers are not supported; use a TPDU or APDU reader".into(),
        )),
        // The reader takes extended APDUs and chains them itself: send as given.
        ExchangeLevel::ExtendedApdu => {
            let first = xfr(raw)?;
            complete_response(&cmd, first, level, max_le, xfr)
        }
        ExchangeLevel::ShortApdu | ExchangeLevel::Tpdu => {
            if cmd.data.len() <= max_data {
                send_short(&cmd, level, max_le, xfr)
            } else {
                send_chained(&cmd, level, max_le, max_data, xfr)
            }
        }
    }
}

fn send_short(
    cmd: &Apdu,
    level: ExchangeLevel,
    max_le: usize,
    xfr: &mut dyn FnMut(&[u8]) -> Result<Vec<u8>>,
) -> Result<Vec<u8>> {
    // "Up to 256 bytes" through a reader whose messages carry less: ask for what fits; a
    // card with more answers 61xx (GET RESPONSE follows) or 6Cxx (refused below).
    let capped;
    let cmd = if cmd.le == Some(256) && max_le < 256 {
        let mut c = cmd.clone();
        c.le = Some(max_le);
        capped = c;
        &capped
    } else {
        cmd
    };
    // The command may carry a PIN or key material: wipe our copy once sent.
    let bytes = Zeroizing::new(if level == ExchangeLevel::Tpdu {
        cmd.encode_t0()?
    } else {
        cmd.encode_short()?
    });
    let first = xfr(&bytes)?;
    complete_response(cmd, first, level, max_le, xfr)
}

/// ISO 7816-4 5.1.1.1 command chaining: all but the last chunk with CLA bit 0x10, each
/// acknowledged with 9000. The OpenPGP card announces chaining support in its capabilities.
fn send_chained(
    cmd: &Apdu,
    level: ExchangeLevel,
    max_le: usize,
    max_data: usize,
    xfr: &mut dyn FnMut(&[u8]) -> Result<Vec<u8>>,
) -> Result<Vec<u8>> {
    if cmd.cla & 0x10 != 0 {
        return Err(Error::BadApdu(
            "a command already marked as chained is too long for a short APDU".into(),
        ));
    }
    let chunks: Vec<&[u8]> = cmd.data.chunks(max_data).collect();
    let last = chunks.len() - 1;
    for (i, chunk) in chunks.into_iter().enumerate() {
        let part = Apdu {
            cla: if i == last { cmd.cla } else { cmd.cla | 0x10 },
            ins: cmd.ins,
            p1: cmd.p1,
            p2: cmd.p2,
            data: chunk.to_vec(),
            le: if i == last { cmd.le } else { None },
        };
        let resp = send_short(&part, level, max_le, xfr)?;
        if i == last {
            return Ok(resp);
        }
        let (_, sw1, sw2) = split_status(&resp)?;
        if (sw1, sw2) != (0x90, 0x00) {
            // The card refused the chain (6884: chaining unsupported, or any error): the
            // caller sees the card's answer.
            return Ok(resp);
        }
    }
    unreachable!("the last chunk returns")
}

/// Follow 6Cxx (resend with the exact Le, once) and 61xx (GET RESPONSE until done, asking
/// for at most `max_le` bytes at a time).
fn complete_response(
    cmd: &Apdu,
    mut resp: Vec<u8>,
    level: ExchangeLevel,
    max_le: usize,
    xfr: &mut dyn FnMut(&[u8]) -> Result<Vec<u8>>,
) -> Result<Vec<u8>> {
    let (_, sw1, sw2) = split_status(&resp)?;
    if sw1 == 0x6C {
        let exact = if sw2 == 0 { 256 } else { usize::from(sw2) };
        if exact > max_le {
            return Err(Error::Card(format!(
                "the card wants to send {exact} bytes in one answer (6C{sw2:02X}), more than \
                 this reader's messages carry ({max_le}); use a reader with larger messages \
                 or a T=1 card"
            )));
        }
        let mut again = cmd.clone();
        again.le = Some(exact);
        let bytes = if level == ExchangeLevel::Tpdu {
            again.encode_t0()?
        } else {
            again.encode_short()?
        };
        resp = xfr(&bytes)?;
        let (_, sw1, sw2) = split_status(&resp)?;
        if sw1 == 0x6C {
            return Err(Error::Card(format!(
                "the card asked twice for a different Le (6C{sw2:02X}); it is misbehaving"
            )));
        }
    }
    let mut empty_rounds = 0;
    loop {
        let (_, sw1, sw2) = split_status(&resp)?;
        if sw1 != 0x61 {
            return Ok(resp);
        }
        resp.truncate(resp.len() - 2);
        // GET RESPONSE on the command's logical channel.
        let get_response = Apdu {
            cla: cmd.cla & 0x03,
            ins: 0xC0,
            p1: 0,
            p2: 0,
            data: Vec::new(),
            le: Some(if sw2 == 0 { 256 } else { usize::from(sw2) }.min(max_le)),
        };
        let mut next = send_once(&get_response, level, xfr)?;
        let (_, nsw1, nsw2) = split_status(&next)?;
        if nsw1 == 0x6C {
            // Some T=0 cards answer GET RESPONSE with the exact length they have.
            let mut exact = get_response.clone();
            exact.le = Some(if nsw2 == 0 { 256 } else { usize::from(nsw2) });
            next = send_once(&exact, level, xfr)?;
        }
        if next.len() == 2 {
            empty_rounds += 1;
            if empty_rounds > MAX_EMPTY_GET_RESPONSE_ROUNDS {
                return Err(Error::Card(format!(
                    "the card announced more data (61xx) but sent none in \
                     {MAX_EMPTY_GET_RESPONSE_ROUNDS} GET RESPONSE rounds"
                )));
            }
        }
        if resp.len() + next.len() > MAX_RESPONSE {
            return Err(Error::Card(format!(
                "the card's response grew beyond {MAX_RESPONSE} bytes"
            )));
        }
        resp.extend_from_slice(&next);
    }
}

fn send_once(
    cmd: &Apdu,
    level: ExchangeLevel,
    xfr: &mut dyn FnMut(&[u8]) -> Result<Vec<u8>>,
) -> Result<Vec<u8>> {
    let bytes = if level == ExchangeLevel::Tpdu {
        cmd.encode_t0()?
    } else {
        cmd.encode_short()?
    };
    let resp = xfr(&bytes)?;
    split_status(&resp)?;
    Ok(resp)
}

/// What a status word means, for error messages (ISO 7816-4 and OpenPGP card 3.4 7.1).
pub fn status_meaning(sw1: u8, sw2: u8) -> &'static str {
    match (sw1, sw2) {
        (0x90, 0x00) => "success",
        (0x63, _) => "verification failed (wrong PIN)",
        (0x64, _) | (0x65, _) => "execution error, the card state may have changed",
        (0x66, _) => "security-related issue",
        (0x67, 0x00) => "wrong length",
        (0x68, 0x82) => "secure messaging not supported",
        (0x68, 0x83) => "last command of a chain expected",
        (0x68, 0x84) => "command chaining not supported",
        (0x69, 0x82) => "security status not satisfied (PIN not verified)",
        (0x69, 0x83) => "authentication method blocked (PIN locked)",
        (0x69, 0x85) => "conditions of use not satisfied",
        (0x6A, 0x80) => "incorrect parameters in the data field",
        (0x6A, 0x82) => "file or application not found",
        (0x6A, 0x88) => "referenced data not found",
        (0x6B, 0x00) => "wrong parameters P1-P2",
        (0x6D, 0x00) => "instruction not supported",
        (0x6E, 0x00) => "class not supported",
        (0x6F, _) => "no precise diagnosis",
        _ => "unknown status",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Replays a recorded exchange: each step is (what the host must send, what comes back).
    struct Transcript {
        steps: std::collections::VecDeque<(Vec<u8>, Vec<u8>)>,
    }

    impl Transcript {
        fn new(steps: &[(&[u8], &[u8])]) -> Self {
            Self {
                steps: steps
                    .iter()
                    .map(|(a, b)| (a.to_vec(), b.to_vec()))
                    .collect(),
            }
        }

        fn xfr(&mut self, sent: &[u8]) -> Result<Vec<u8>> {
            let (expect, reply) = self
                .steps
                .pop_front()
                .unwrap_or_else(|| panic!("unexpected extra exchange {sent:02X?}"));
            assert_eq!(sent, expect.as_slice(), "host sent the wrong bytes");
            Ok(reply)
        }

        fn run(mut self, raw: &[u8], level: ExchangeLevel) -> Result<Vec<u8>> {
            let r = exchange(raw, level, &mut |b| self.xfr(b));
            assert!(
                self.steps.is_empty(),
                "exchanges left over: {:?}",
                self.steps
            );
            r
        }
    }

    #[test]
    fn parses_all_cases() {
        let c1 = Apdu::parse(&[0, 0x44, 0, 0]).unwrap();
        assert_eq!((c1.data.len(), c1.le), (0, None));
        let c2 = Apdu::parse(&[0, 0xCA, 0, 0x6E, 0]).unwrap();
        assert_eq!(c2.le, Some(256));
        let c3 = Apdu::parse(&[0, 0x20, 0, 0x81, 2, 0x31, 0x32]).unwrap();
        assert_eq!((c3.data.as_slice(), c3.le), (&[0x31, 0x32][..], None));
        let c4 = Apdu::parse(&[0, 0x2A, 0x80, 0x86, 1, 0xAA, 0x10]).unwrap();
        assert_eq!((c4.data.len(), c4.le), (1, Some(16)));
        let e2 = Apdu::parse(&[0, 0xCA, 0, 0x6E, 0, 0, 0]).unwrap();
        assert_eq!(e2.le, Some(65536));
        let mut e4 = vec![0, 0xDB, 0x3F, 0xFF, 0, 0x01, 0x2C];
        e4.extend(std::iter::repeat_n(0x55, 300));
        e4.extend_from_slice(&[0x02, 0x00]);
        let e4 = Apdu::parse(&e4).unwrap();
        assert_eq!((e4.data.len(), e4.le), (300, Some(512)));
        assert!(Apdu::parse(&[0, 1, 2]).is_err());
        assert!(Apdu::parse(&[0, 1, 2, 3, 5, 1]).is_err());
        assert!(Apdu::parse(&[0, 1, 2, 3, 0, 1]).is_err());
        assert!(Apdu::parse(&[0, 1, 2, 3, 0, 0, 0, 0]).is_err());
    }

    #[test]
    fn apdu_debug_hides_data() {
        let c = Apdu::parse(&[0, 0x20, 0, 0x81, 6, b'1', b'2', b'3', b'4', b'5', b'6']).unwrap();
        let shown = format!("{c:?}");
        assert!(!shown.contains("31"), "{shown}");
        assert!(shown.contains("6 data bytes"));
    }

    // SELECT of the OpenPGP application on a T=0 card: case 4 TPDU without Le, the card
    // answers 61xx, the driver fetches with GET RESPONSE.
    #[test]
    fn t0_case4_uses_get_response() {
        let select = [
            0x00, 0xA4, 0x04, 0x00, 0x06, 0xD2, 0x76, 0x00, 0x01, 0x24, 0x01, 0x00,
        ];
        let resp = Transcript::new(&[
            (&select[..11], &[0x61, 0x03]),
            (
                &[0x00, 0xC0, 0x00, 0x00, 0x03],
                &[0xAA, 0xBB, 0xCC, 0x90, 0x00],
            ),
        ])
        .run(&select, ExchangeLevel::Tpdu)
        .unwrap();
        assert_eq!(resp, [0xAA, 0xBB, 0xCC, 0x90, 0x00]);
    }

    // A response longer than 256 bytes arrives in several GET RESPONSE rounds.
    #[test]
    fn chained_61xx_rounds_are_concatenated() {
        let mut first = vec![0x11; 256];
        first.extend_from_slice(&[0x61, 0x00]);
        let mut second = vec![0x22; 256];
        second.extend_from_slice(&[0x61, 0x10]);
        let mut third = vec![0x33; 16];
        third.extend_from_slice(&[0x90, 0x00]);
        let resp = Transcript::new(&[
            (&[0x00, 0xCA, 0x00, 0x6E, 0x00], &first),
            (&[0x00, 0xC0, 0x00, 0x00, 0x00], &second),
            (&[0x00, 0xC0, 0x00, 0x00, 0x10], &third),
        ])
        .run(&[0x00, 0xCA, 0x00, 0x6E, 0x00], ExchangeLevel::ShortApdu)
        .unwrap();
        assert_eq!(resp.len(), 256 + 256 + 16 + 2);
        assert_eq!(&resp[..256], &[0x11; 256][..]);
        assert_eq!(&resp[256..512], &[0x22; 256][..]);
        assert_eq!(
            &resp[512..],
            [[0x33; 16].as_slice(), &[0x90, 0x00]].concat()
        );
    }

    // A reader with 263-byte messages carries 253 bytes of answer: GET RESPONSE asks for
    // 251 bytes at most, and the card announces the rest with 61xx.
    #[test]
    fn get_response_fits_the_readers_messages() {
        let mut third = vec![0x33; 10];
        third.extend_from_slice(&[0x90, 0x00]);
        let mut t = Transcript::new(&[
            (&[0x00, 0xCA, 0x00, 0x6E, 0xFB], &[0x61, 0x00]),
            (
                &[0x00, 0xC0, 0x00, 0x00, 0xFB],
                &[[0x11; 251].as_slice(), &[0x61, 0x05]].concat(),
            ),
            (&[0x00, 0xC0, 0x00, 0x00, 0x05], &third[5..]),
        ]);
        let resp = exchange_within(
            &[0x00, 0xCA, 0x00, 0x6E, 0x00],
            ExchangeLevel::Tpdu,
            253,
            usize::MAX,
            &mut |b| t.xfr(b),
        )
        .unwrap();
        assert!(t.steps.is_empty());
        assert_eq!(resp.len(), 251 + 5 + 2);
    }

    // A 64-byte reader at T=0 TPDU level (54 bytes of abData): a 60-byte command goes out in
    // two chained parts, 49 bytes and the 5-byte header, then the rest.
    #[test]
    fn commands_are_chained_to_fit_the_readers_messages() {
        let data: Vec<u8> = (0..60).collect();
        let mut raw = vec![0x00, 0xDB, 0x3F, 0xFF, 60];
        raw.extend_from_slice(&data);
        let first = [[0x10, 0xDB, 0x3F, 0xFF, 49].as_slice(), &data[..49]].concat();
        let second = [[0x00, 0xDB, 0x3F, 0xFF, 11].as_slice(), &data[49..]].concat();
        let mut t = Transcript::new(&[(&first, &[0x90, 0x00]), (&second, &[0x90, 0x00])]);
        let resp = exchange_within(&raw, ExchangeLevel::Tpdu, 54, 54, &mut |b| t.xfr(b)).unwrap();
        assert_eq!(resp, [0x90, 0x00]);
        assert!(t.steps.is_empty());
    }

    // "Up to 256" becomes "up to what fits"; a card insisting on more is a clear error.
    #[test]
    fn le_256_is_capped_to_the_readers_messages() {
        let mut t = Transcript::new(&[(
            &[0x00, 0xCA, 0x00, 0x6E, 0xFB],
            &[[0x11; 100].as_slice(), &[0x90, 0x00]].concat(),
        )]);
        let resp = exchange_within(
            &[0x00, 0xCA, 0x00, 0x6E, 0x00],
            ExchangeLevel::ShortApdu,
            253,
            usize::MAX,
            &mut |b| t.xfr(b),
        )
        .unwrap();
        assert_eq!(resp.len(), 102);
        let mut t = Transcript::new(&[(&[0x00, 0xCA, 0x00, 0x6E, 0xFB], &[0x6C, 0xFE])]);
        let e = exchange_within(
            &[0x00, 0xCA, 0x00, 0x6E, 0x00],
            ExchangeLevel::Tpdu,
            253,
            usize::MAX,
            &mut |b| t.xfr(b),
        )
        .unwrap_err();
        assert!(e.to_string().contains("254 bytes in one answer"), "{e}");
    }

    // 6Cxx: the card wants the exact Le, resend once with it.
    #[test]
    fn t0_6cxx_resends_with_exact_le() {
        let resp = Transcript::new(&[
            (&[0x00, 0xCA, 0x00, 0x4F, 0x00], &[0x6C, 0x10]),
            (
                &[0x00, 0xCA, 0x00, 0x4F, 0x10],
                &[[0x42; 16].as_slice(), &[0x90, 0x00]].concat(),
            ),
        ])
        .run(&[0x00, 0xCA, 0x00, 0x4F, 0x00], ExchangeLevel::Tpdu)
        .unwrap();
        assert_eq!(resp.len(), 18);
        let looping = Transcript::new(&[
            (&[0x00, 0xCA, 0x00, 0x4F, 0x00], &[0x6C, 0x10]),
            (&[0x00, 0xCA, 0x00, 0x4F, 0x10], &[0x6C, 0x11]),
        ])
        .run(&[0x00, 0xCA, 0x00, 0x4F, 0x00], ExchangeLevel::Tpdu);
        assert!(matches!(looping, Err(Error::Card(_))));
    }

    // Case 1 in T=0 sends P3 = 0.
    #[test]
    fn t0_case1_sends_p3_zero() {
        let resp = Transcript::new(&[(&[0x00, 0x44, 0x00, 0x00, 0x00], &[0x90, 0x00])])
            .run(&[0x00, 0x44, 0x00, 0x00], ExchangeLevel::Tpdu)
            .unwrap();
        assert_eq!(resp, [0x90, 0x00]);
    }

    // A 300-byte extended command (key import) on a short-only reader becomes a chain.
    #[test]
    fn long_command_is_chained() {
        let mut raw = vec![0x00, 0xDB, 0x3F, 0xFF, 0x00, 0x01, 0x2C];
        raw.extend((0..300).map(|i| i as u8));
        let mut first = vec![0x10, 0xDB, 0x3F, 0xFF, 0xFF];
        first.extend((0..255).map(|i| i as u8));
        let mut second = vec![0x00, 0xDB, 0x3F, 0xFF, 45];
        second.extend((255..300).map(|i| i as u8));
        for level in [ExchangeLevel::Tpdu, ExchangeLevel::ShortApdu] {
            let resp = Transcript::new(&[(&first, &[0x90, 0x00]), (&second, &[0x90, 0x00])])
                .run(&raw, level)
                .unwrap();
            assert_eq!(resp, [0x90, 0x00]);
        }
        // A card that refuses chaining stops the chain with its own answer.
        let resp = Transcript::new(&[(&first, &[0x68, 0x84])])
            .run(&raw, ExchangeLevel::ShortApdu)
            .unwrap();
        assert_eq!(resp, [0x68, 0x84]);
    }

    #[test]
    fn extended_level_passes_through() {
        let mut raw = vec![0x00, 0xDB, 0x3F, 0xFF, 0x00, 0x01, 0x2C];
        raw.extend(std::iter::repeat_n(7, 300));
        let resp = Transcript::new(&[(&raw, &[0x90, 0x00])])
            .run(&raw, ExchangeLevel::ExtendedApdu)
            .unwrap();
        assert_eq!(resp, [0x90, 0x00]);
    }

    #[test]
    fn hostile_cards_are_bounded() {
        // A card answering 61xx forever is cut off.
        let mut calls = 0usize;
        let r = exchange(
            &[0, 0xCA, 0, 0x6E, 0],
            ExchangeLevel::ShortApdu,
            &mut |_| {
                calls += 1;
                Ok(vec![0x61, 0x01])
            },
        );
        assert!(matches!(r, Err(Error::Card(_))));
        assert!(calls <= MAX_EMPTY_GET_RESPONSE_ROUNDS + 2);
        // One that sends a byte per round forever is cut off by the size bound.
        let mut calls = 0usize;
        let r = exchange(
            &[0, 0xCA, 0, 0x6E, 0],
            ExchangeLevel::ShortApdu,
            &mut |_| {
                calls += 1;
                Ok(vec![0xAA, 0x61, 0x01])
            },
        );
        assert!(matches!(r, Err(Error::Card(_))));
        assert!(calls <= MAX_RESPONSE + 1);
        // A response without status word.
        let r = exchange(
            &[0, 0xCA, 0, 0x6E, 0],
            ExchangeLevel::ShortApdu,
            &mut |_| Ok(vec![0x90]),
        );
        assert!(matches!(r, Err(Error::Card(_))));
        // Errors from the reader propagate unchanged.
        let r = exchange(&[0, 0xCA, 0, 0x6E, 0], ExchangeLevel::Tpdu, &mut |_| {
            Err(Error::Disconnected)
        });
        assert!(matches!(r, Err(Error::Disconnected)));
    }

    mod props {
        use super::super::*;
        use proptest::prelude::*;

        proptest! {
            // Short APDUs survive encode -> parse unchanged.
            #[test]
            fn short_encoding_round_trips(
                cla in 0u8..0xFE, ins: u8, p1: u8, p2: u8,
                data in proptest::collection::vec(any::<u8>(), 0..=255),
                le in proptest::option::of(1usize..=256),
            ) {
                let a = Apdu { cla, ins, p1, p2, data, le };
                let b = Apdu::parse(&a.encode_short().unwrap()).unwrap();
                prop_assert_eq!(a, b);
            }

            // Whatever chunk sizes a card uses for 61xx, the caller gets exactly its data.
            #[test]
            fn get_response_reassembles(
                data in proptest::collection::vec(any::<u8>(), 0..2000),
                chunk in 1usize..=256,
                tpdu: bool,
            ) {
                let level = if tpdu { ExchangeLevel::Tpdu } else { ExchangeLevel::ShortApdu };
                let mut pos = 0usize;
                let mut first = true;
                let resp = exchange(&[0x00, 0xCA, 0x00, 0x6E, 0x00], level, &mut |sent| {
                    if first {
                        first = false;
                    } else {
                        assert_eq!(&sent[..4], &[0x00, 0xC0, 0x00, 0x00]);
                    }
                    let n = chunk.min(data.len() - pos);
                    let mut out = data[pos..pos + n].to_vec();
                    pos += n;
                    let left = data.len() - pos;
                    if left == 0 {
                        out.extend_from_slice(&[0x90, 0x00]);
                    } else {
                        out.extend_from_slice(&[0x61, left.min(256) as u8]);
                    }
                    Ok(out)
                })
                .unwrap();
                prop_assert_eq!(&resp[..resp.len() - 2], data.as_slice());
                prop_assert_eq!(&resp[resp.len() - 2..], &[0x90, 0x00]);
            }
        }
    }
}
