//! A VSCard session: serves virtual cards to one QEMU `ccid-card-passthru` peer, with
//! scripted insertion and removal.

use std::io::{self, Read, Write};
use std::sync::mpsc;

use crate::t0::T0Card;
use crate::virtual_card::ATR;
use crate::vscard::{self, Msg};

/// A command from the test script.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Control {
    /// Insert card N (removing the current one first).
    Insert(usize),
    /// Pull the current card.
    Remove,
    /// Pull the current card right after answering N more APDUs (a card yanked mid-operation).
    RemoveAfter(u64),
    /// Pull the card (the one in now, or the next one inserted) when an APDU with this INS
    /// byte arrives, before the card sees it: a card yanked while the host waits for, e.g., a
    /// decryption (PSO, INS 2A). Armed until it fires, a `remove` or the session's end, so
    /// arm it just before the card meant. The APDU is never answered: QEMU's usb-ccid drops a
    /// pending answer when its card goes (its `ccid_card_card_removed` resets the bulk-in
    /// queue), so the host learns it from its own timeout.
    RemoveAtIns(u8),
    /// Send one short APDU (hex) to card N directly, not through QEMU: the host checks what a
    /// card holds after a ceremony. Answered with the response in hex.
    Apdu(usize, Vec<u8>),
    /// Report what is inserted.
    Status,
    /// End the session.
    Quit,
}

/// Parse one line of the control script: `insert N`, `remove`, `remove-after N`,
/// `remove-at-ins XX` (hex), `apdu N HEX`, `status`, `quit`.
pub fn parse_control(line: &str) -> Result<Control, String> {
    if let Some(rest) = line.trim().strip_prefix("apdu ") {
        let mut w = rest.split_whitespace();
        let (Some(n), Some(hex), None) = (w.next(), w.next(), w.next()) else {
            return Err(format!(
                "apdu wants a card number and hex bytes, got {line:?}"
            ));
        };
        let n = n
            .parse()
            .map_err(|_| format!("apdu wants a card number, got {n:?}"))?;
        let bytes = (0..hex.len())
            .step_by(2)
            .map(|i| {
                hex.get(i..i + 2)
                    .and_then(|b| u8::from_str_radix(b, 16).ok())
            })
            .collect::<Option<Vec<u8>>>()
            .filter(|b| b.len() >= 4)
            .ok_or_else(|| format!("apdu wants at least 4 bytes of hex, got {hex:?}"))?;
        return Ok(Control::Apdu(n, bytes));
    }
    let mut words = line.split_whitespace();
    let cmd = words.next().unwrap_or("");
    let arg = words.next();
    let extra = words.next();
    if extra.is_some() {
        return Err(format!("too many words in {line:?}"));
    }
    match (cmd, arg) {
        ("insert", Some(n)) => n
            .parse()
            .map(Control::Insert)
            .map_err(|_| format!("insert wants a card number, got {n:?}")),
        ("remove", None) => Ok(Control::Remove),
        ("remove-after", Some(n)) => n
            .parse()
            .map(Control::RemoveAfter)
            .map_err(|_| format!("remove-after wants a number of APDUs, got {n:?}")),
        ("remove-at-ins", Some(ins)) => u8::from_str_radix(ins, 16)
            .map(Control::RemoveAtIns)
            .map_err(|_| format!("remove-at-ins wants an INS byte in hex, got {ins:?}")),
        ("status", None) => Ok(Control::Status),
        ("quit", None) => Ok(Control::Quit),
        _ => Err(format!(
            "unknown command {line:?}; use `insert N`, `remove`, `remove-after N`, `remove-at-ins XX`, `apdu N HEX`, `status` or `quit`"
        )),
    }
}

/// What drives the session loop.
pub enum Event {
    /// A message (or end of stream, or a read error) from the peer.
    Peer(io::Result<Option<Msg>>),
    /// A script command; the answer line goes back on the sender.
    Control(Control, mpsc::Sender<String>),
}

/// Forward the peer's messages into `events` until it closes.
pub fn spawn_reader(
    mut r: impl Read + Send + 'static,
    events: mpsc::Sender<Event>,
) -> std::thread::JoinHandle<()> {
    std::thread::spawn(move || {
        loop {
            let m = Msg::read_from(&mut r);
            let end = !matches!(m, Ok(Some(_)));
            if events.send(Event::Peer(m)).is_err() || end {
                return;
            }
        }
    })
}

/// The cards and which one is in the reader.
pub struct Bridge {
    cards: Vec<T0Card>,
    inserted: Option<usize>,
    /// APDUs answered (for measurements).
    pub apdus: u64,
    /// APDUs still to answer before the card is pulled (`remove-after`).
    remove_after: Option<u64>,
    /// The INS byte whose APDU pulls the card before it is answered (`remove-at-ins`).
    remove_at_ins: Option<u8>,
}

impl Bridge {
    pub fn new(cards: Vec<T0Card>) -> Self {
        Self {
            cards,
            inserted: None,
            apdus: 0,
            remove_after: None,
            remove_at_ins: None,
        }
    }

    pub fn inserted(&self) -> Option<usize> {
        self.inserted
    }

    /// Run one session until the peer closes or `quit`. `initial` is inserted as soon as
    /// the reader is attached.
    pub fn serve(
        &mut self,
        w: &mut impl Write,
        events: &mpsc::Receiver<Event>,
        initial: Option<usize>,
        log: &mut dyn FnMut(&str),
    ) -> io::Result<()> {
        // QEMU speaks first: its Init.
        let init = match events.recv() {
            Ok(Event::Peer(Ok(Some(m)))) => m,
            Ok(Event::Peer(Ok(None))) | Err(_) => return Ok(()),
            Ok(Event::Peer(Err(e))) => return Err(e),
            Ok(Event::Control(c, answer)) => {
                let _ = answer.send(format!("error: not connected yet, {c:?} ignored"));
                return self.serve(w, events, initial, log);
            }
        };
        let version =
            vscard::check_init(&init).map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))?;
        log(&format!("peer Init, version {version:#x}"));
        Msg::init().write_to(w)?;
        Msg::new(
            vscard::READER_ADD,
            vscard::UNDEFINED_READER_ID,
            b"sherd virtual reader\0".to_vec(),
        )
        .write_to(w)?;
        self.inserted = None;
        self.remove_after = None;
        self.remove_at_ins = None;
        if let Some(n) = initial {
            self.insert(w, n)?;
        }
        loop {
            match events.recv() {
                Err(_) | Ok(Event::Peer(Ok(None))) => return Ok(()),
                Ok(Event::Peer(Err(e))) => return Err(e),
                Ok(Event::Peer(Ok(Some(m)))) => self.handle_peer(w, m, log)?,
                Ok(Event::Control(c, answer)) => {
                    let quit = c == Control::Quit;
                    let reply = match self.control(w, c) {
                        Ok(s) => format!("ok {s}"),
                        Err(e) if e.kind() == io::ErrorKind::InvalidInput => {
                            format!("error: {e}")
                        }
                        Err(e) => return Err(e),
                    };
                    let _ = answer.send(reply);
                    if quit {
                        return Ok(());
                    }
                }
            }
        }
    }

    fn insert(&mut self, w: &mut impl Write, n: usize) -> io::Result<()> {
        if n >= self.cards.len() {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("there is no card {n}; cards are 0..{}", self.cards.len()),
            ));
        }
        if self.inserted.is_some() {
            self.remove(w)?;
        }
        self.cards[n].power_cycle();
        Msg::new(vscard::ATR, vscard::MINIMAL_READER_ID, ATR.to_vec()).write_to(w)?;
        self.inserted = Some(n);
        Ok(())
    }

    fn remove(&mut self, w: &mut impl Write) -> io::Result<()> {
        if self.inserted.take().is_none() {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "no card is inserted",
            ));
        }
        // `remove-after` counts the APDUs of the card that was in.
        self.remove_after = None;
        Msg::new(vscard::CARD_REMOVE, vscard::MINIMAL_READER_ID, Vec::new()).write_to(w)
    }

    fn control(&mut self, w: &mut impl Write, c: Control) -> io::Result<String> {
        match c {
            Control::Insert(n) => self.insert(w, n).map(|()| format!("inserted {n}")),
            Control::Remove => {
                self.remove_at_ins = None;
                self.remove(w).map(|()| "removed".into())
            }
            Control::RemoveAfter(n) => {
                if self.inserted.is_none() {
                    return Err(io::Error::new(
                        io::ErrorKind::InvalidInput,
                        "no card is inserted",
                    ));
                }
                self.remove_after = Some(n);
                Ok(format!("removing after {n} more APDUs"))
            }
            Control::RemoveAtIns(ins) => {
                self.remove_at_ins = Some(ins);
                Ok(format!("removing at the next APDU with INS {ins:02X}"))
            }
            Control::Apdu(n, apdu) => {
                let card = self.cards.get_mut(n).ok_or_else(|| {
                    io::Error::new(io::ErrorKind::InvalidInput, format!("there is no card {n}"))
                })?;
                Ok(card
                    .short_apdu(&apdu)
                    .iter()
                    .map(|b| format!("{b:02x}"))
                    .collect())
            }
            Control::Status => Ok(match self.inserted {
                Some(n) => format!("card {n} inserted, {} APDUs served", self.apdus),
                None => format!("no card inserted, {} APDUs served", self.apdus),
            }),
            Control::Quit => Ok("bye".into()),
        }
    }

    fn handle_peer(
        &mut self,
        w: &mut impl Write,
        m: Msg,
        log: &mut dyn FnMut(&str),
    ) -> io::Result<()> {
        match m.ty {
            vscard::APDU => {
                let Some(n) = self.inserted else {
                    log("APDU with no card inserted");
                    return Msg::error(m.reader_id, vscard::GENERAL_ERROR).write_to(w);
                };
                if self.remove_at_ins.is_some() && self.remove_at_ins == m.payload.get(1).copied() {
                    self.remove_at_ins = None;
                    log(&format!(
                        "pulling card {n} at its INS {:02X} APDU, as scripted",
                        m.payload[1]
                    ));
                    return self.remove(w);
                }
                self.apdus += 1;
                let resp = self.cards[n].tpdu(&m.payload);
                Msg::new(vscard::APDU, vscard::MINIMAL_READER_ID, resp).write_to(w)?;
                match self.remove_after {
                    Some(0 | 1) => {
                        self.remove_after = None;
                        log(&format!("pulling card {n} as scripted"));
                        self.remove(w)
                    }
                    Some(k) => {
                        self.remove_after = Some(k - 1);
                        Ok(())
                    }
                    None => Ok(()),
                }
            }
            // QEMU acknowledges ReaderAdd, ATR and CardRemove with Error(code).
            vscard::ERROR => {
                if m.error_code() != Some(vscard::SUCCESS) {
                    log(&format!("peer reported error {:?}", m.error_code()));
                }
                Ok(())
            }
            // QEMU answers our Init with another Init of its own.
            vscard::INIT => Ok(()),
            vscard::FLUSH => Msg::new(vscard::FLUSH_COMPLETE, m.reader_id, Vec::new()).write_to(w),
            other => {
                log(&format!("ignoring VSCard message type {other}"));
                Ok(())
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::net::UnixStream;
    use std::time::Duration;

    use crate::virtual_card::VirtualCard;

    fn recv(peer: &mut UnixStream) -> Msg {
        Msg::read_from(peer)
            .unwrap()
            .expect("bridge closed the connection")
    }

    fn control(tx: &mpsc::Sender<Event>, c: Control) -> String {
        let (atx, arx) = mpsc::channel();
        tx.send(Event::Control(c, atx)).unwrap();
        arx.recv_timeout(Duration::from_secs(30)).unwrap()
    }

    /// A fake QEMU on one end of a socketpair drives the real bridge on the other.
    #[test]
    fn session_with_fake_qemu() {
        let (mut qemu, ours) = UnixStream::pair().unwrap();
        qemu.set_read_timeout(Some(Duration::from_secs(30)))
            .unwrap();
        let (tx, rx) = mpsc::channel();
        spawn_reader(ours.try_clone().unwrap(), tx.clone());
        let bridge = std::thread::spawn(move || {
            let cards = (0..2)
                .map(|i| T0Card::new(VirtualCard::new(0x100 + i)))
                .collect();
            let mut b = Bridge::new(cards);
            let mut w = ours;
            let mut logged = Vec::new();
            b.serve(&mut w, &rx, Some(0), &mut |m| logged.push(m.to_owned()))
                .unwrap();
            // The handshake and QEMU's acknowledgements are not noise; the APDU sent while
            // no card was inserted is.
            assert!(logged.iter().all(|l| !l.contains("ignoring")), "{logged:?}");
            assert!(
                logged.iter().any(|l| l.contains("no card inserted")),
                "{logged:?}"
            );
            b.apdus
        });

        // QEMU's Init, then ours, the reader, the first card.
        Msg::new(vscard::INIT, vscard::UNDEFINED_READER_ID, {
            let mut p = b"VSCD".to_vec();
            p.extend_from_slice(&2u32.to_be_bytes());
            p.extend_from_slice(&0u32.to_be_bytes());
            p
        })
        .write_to(&mut qemu)
        .unwrap();
        assert_eq!(vscard::check_init(&recv(&mut qemu)), Ok(vscard::VERSION));
        // QEMU answers an Init with its own Init.
        Msg::init().write_to(&mut qemu).unwrap();
        assert_eq!(recv(&mut qemu).ty, vscard::READER_ADD);
        Msg::error(0, vscard::SUCCESS).write_to(&mut qemu).unwrap();
        let atr = recv(&mut qemu);
        assert_eq!((atr.ty, atr.payload.as_slice()), (vscard::ATR, &ATR[..]));
        Msg::error(0, vscard::SUCCESS).write_to(&mut qemu).unwrap();

        // SELECT as a T=0 TPDU: the card answers 61xx, GET RESPONSE fetches the data.
        let select = [
            0x00, 0xA4, 0x04, 0x00, 0x06, 0xD2, 0x76, 0x00, 0x01, 0x24, 0x01,
        ];
        Msg::new(vscard::APDU, 0, select.to_vec())
            .write_to(&mut qemu)
            .unwrap();
        let r = recv(&mut qemu);
        assert_eq!(r.ty, vscard::APDU);
        let r = if r.payload[0] == 0x61 {
            Msg::new(vscard::APDU, 0, vec![0, 0xC0, 0, 0, r.payload[1]])
                .write_to(&mut qemu)
                .unwrap();
            recv(&mut qemu)
        } else {
            r
        };
        assert_eq!(&r.payload[r.payload.len() - 2..], &[0x90, 0x00]);

        // GET DATA 4F (AID): the serial of card 0 is 0x100.
        Msg::new(vscard::APDU, 0, vec![0, 0xCA, 0, 0x4F, 0])
            .write_to(&mut qemu)
            .unwrap();
        let aid = recv(&mut qemu).payload;
        assert_eq!(&aid[aid.len() - 2..], &[0x90, 0x00], "{aid:02X?}");
        assert_eq!(&aid[10..14], &0x100u32.to_be_bytes());

        // Swap to card 1: a CardRemove and a new ATR; its AID carries serial 0x101.
        assert_eq!(control(&tx, Control::Insert(1)), "ok inserted 1");
        assert_eq!(recv(&mut qemu).ty, vscard::CARD_REMOVE);
        assert_eq!(recv(&mut qemu).ty, vscard::ATR);
        Msg::new(vscard::APDU, 0, select.to_vec())
            .write_to(&mut qemu)
            .unwrap();
        let r = recv(&mut qemu).payload;
        if r[0] == 0x61 {
            Msg::new(vscard::APDU, 0, vec![0, 0xC0, 0, 0, r[1]])
                .write_to(&mut qemu)
                .unwrap();
            recv(&mut qemu);
        }
        Msg::new(vscard::APDU, 0, vec![0, 0xCA, 0, 0x4F, 0])
            .write_to(&mut qemu)
            .unwrap();
        let aid = recv(&mut qemu).payload;
        assert_eq!(&aid[10..14], &0x101u32.to_be_bytes());

        // Pulled at an INS: the card is removed before it sees GET DATA (CA), which gets no
        // answer; the card inserted next is not affected.
        assert!(control(&tx, Control::RemoveAtIns(0xCA)).starts_with("ok removing at"));
        Msg::new(vscard::APDU, 0, vec![0, 0xCA, 0, 0x4F, 0])
            .write_to(&mut qemu)
            .unwrap();
        assert_eq!(recv(&mut qemu).ty, vscard::CARD_REMOVE);
        assert!(control(&tx, Control::Status).contains("no card inserted"));
        assert_eq!(control(&tx, Control::Insert(1)), "ok inserted 1");
        assert_eq!(recv(&mut qemu).ty, vscard::ATR);
        Msg::new(vscard::APDU, 0, vec![0, 0xCA, 0, 0x4F, 0])
            .write_to(&mut qemu)
            .unwrap();
        // Answered by the card (whatever it says before a SELECT), not pulled again.
        assert_eq!(recv(&mut qemu).ty, vscard::APDU);

        // Bad script commands are answered, not fatal.
        assert!(control(&tx, Control::Insert(7)).starts_with("error: there is no card 7"));
        assert_eq!(control(&tx, Control::Remove), "ok removed");
        assert_eq!(recv(&mut qemu).ty, vscard::CARD_REMOVE);
        assert!(control(&tx, Control::Remove).starts_with("error:"));
        // An APDU with no card is refused with a VSCard error.
        Msg::new(vscard::APDU, 0, vec![0, 0xCA, 0, 0x4F, 0])
            .write_to(&mut qemu)
            .unwrap();
        assert_eq!(recv(&mut qemu).error_code(), Some(vscard::GENERAL_ERROR));
        assert!(control(&tx, Control::Status).contains("no card inserted"));

        // QEMU goes away: the session ends cleanly.
        drop(qemu);
        let apdus = bridge.join().unwrap();
        assert!(apdus >= 4, "{apdus}");
    }

    #[test]
    fn parses_control_lines() {
        assert_eq!(parse_control("insert 2"), Ok(Control::Insert(2)));
        assert_eq!(parse_control("  remove "), Ok(Control::Remove));
        assert_eq!(parse_control("quit"), Ok(Control::Quit));
        assert!(parse_control("insert").is_err());
        assert!(parse_control("insert x").is_err());
        assert!(parse_control("remove 1").is_err());
        assert!(parse_control("eject").is_err());
        assert_eq!(
            parse_control("remove-at-ins 2A"),
            Ok(Control::RemoveAtIns(0x2A))
        );
        assert!(parse_control("remove-at-ins PSO").is_err());
    }
}
