//! The driver against the VSCard bridge, with a stand-in for QEMU's usb-ccid +
//! ccid-card-passthru in between (CCID on one side, VSCard on the other, as QEMU 7.2 does it):
//! the path the end-to-end test in QEMU takes, minus the guest kernel.

use std::collections::VecDeque;
use std::io::Write;
use std::os::unix::net::UnixStream;
use std::sync::{Arc, Mutex, mpsc};
use std::time::{Duration, Instant};

use cards::ccid::{ClassDescriptor, IccStatus};
use cards::reader::{Reader, Transport};
use cards::{Error, OpenPgpCard, Pin, Provision, Result};
use openpgp::cert::prelude::*;
use openpgp::policy::StandardPolicy;
use openpgp::serialize::stream::{Encryptor, LiteralWriter, Message};
use sequoia_openpgp as openpgp;
use vscard_bridge::bridge::{Bridge, Control, Event, spawn_reader};
use vscard_bridge::vscard::{self, Msg};
use vscard_bridge::{T0Card, VirtualCard};

/// QEMU's side: the usb-ccid device state and the chardev to the bridge.
struct Qemu {
    sock: UnixStream,
    from_bridge: mpsc::Receiver<Msg>,
    atr: Option<Vec<u8>>,
    powered: bool,
    bulk_in: VecDeque<Vec<u8>>,
    irq: VecDeque<Vec<u8>>,
}

impl Qemu {
    fn handle_async(&mut self, m: Msg) -> Option<Msg> {
        match m.ty {
            vscard::ATR => {
                self.atr = Some(m.payload);
                self.powered = false;
                self.irq.push_back(vec![0x50, 0b11]);
                Msg::error(0, vscard::SUCCESS)
                    .write_to(&mut self.sock)
                    .unwrap();
                None
            }
            vscard::CARD_REMOVE => {
                self.atr = None;
                self.powered = false;
                self.irq.push_back(vec![0x50, 0b10]);
                Msg::error(0, vscard::SUCCESS)
                    .write_to(&mut self.sock)
                    .unwrap();
                None
            }
            vscard::ERROR | vscard::INIT | vscard::READER_ADD => None,
            _ => Some(m),
        }
    }

    fn pump(&mut self) {
        while let Ok(m) = self.from_bridge.try_recv() {
            assert!(self.handle_async(m).is_none(), "unexpected message");
        }
    }

    fn icc(&self) -> u8 {
        match (&self.atr, self.powered) {
            (None, _) => 2,
            (Some(_), false) => 1,
            (Some(_), true) => 0,
        }
    }
}

fn block(ty: u8, seq: u8, status: u8, error: u8, data: &[u8]) -> Vec<u8> {
    let mut m = vec![ty];
    m.extend_from_slice(&(data.len() as u32).to_le_bytes());
    m.extend_from_slice(&[0, seq, status, error, 0]);
    m.extend_from_slice(data);
    m
}

#[derive(Clone)]
struct Usb(Arc<Mutex<Qemu>>);

impl Transport for Usb {
    fn bulk_out(&mut self, msg: &[u8], _: Duration) -> Result<()> {
        let mut q = self.0.lock().unwrap();
        q.pump();
        let seq = msg[6];
        let answer = match msg[0] {
            0x62 => match q.atr.clone() {
                Some(atr) => {
                    q.powered = true;
                    block(0x80, seq, 0, 0, &atr)
                }
                None => block(0x80, seq, 0x42, 0xFE, &[]),
            },
            0x63 => {
                q.powered = false;
                block(0x81, seq, q.icc(), 0, &[])
            }
            0x65 => block(0x81, seq, q.icc(), 0, &[]),
            0x6F if q.icc() != 0 => block(0x80, seq, q.icc(), 0, &[]),
            0x6F => {
                Msg::new(vscard::APDU, 0, msg[10..].to_vec())
                    .write_to(&mut q.sock)
                    .unwrap();
                loop {
                    let m = q
                        .from_bridge
                        .recv_timeout(Duration::from_secs(30))
                        .expect("the bridge did not answer");
                    if let Some(m) = q.handle_async(m) {
                        assert_eq!(m.ty, vscard::APDU);
                        break block(0x80, seq, 0, 0, &m.payload);
                    }
                    if q.atr.is_none() {
                        // QEMU flushes the pending answer of a pulled card.
                        break block(0x80, seq, 0x02, 0, &[]);
                    }
                }
            }
            other => panic!("unexpected CCID command {other:#04x}"),
        };
        q.bulk_in.push_back(answer);
        Ok(())
    }

    fn bulk_in(&mut self, _: usize, after: Duration) -> Result<Vec<u8>> {
        self.0
            .lock()
            .unwrap()
            .bulk_in
            .pop_front()
            .ok_or(Error::Timeout {
                what: "bulk-in",
                after,
            })
    }

    fn interrupt_in(&mut self, timeout: Duration) -> Result<Option<Vec<u8>>> {
        let deadline = Instant::now() + timeout;
        loop {
            {
                let mut q = self.0.lock().unwrap();
                q.pump();
                if let Some(m) = q.irq.pop_front() {
                    return Ok(Some(m));
                }
            }
            if Instant::now() >= deadline {
                return Ok(None);
            }
            std::thread::sleep(Duration::from_millis(5));
        }
    }
}

/// QEMU 7.2's class descriptor values that matter (TPDU, byte-swapped dwProtocols).
fn qemu_descriptor() -> ClassDescriptor {
    let mut d = vec![0x36, 0x21, 0x10, 0x01, 0x00, 0x07, 0x00, 0x00, 0x01, 0x00];
    d.extend_from_slice(&[0; 30]);
    d.extend_from_slice(&0x0001_04FEu32.to_le_bytes());
    d.extend_from_slice(&0x0001_0012u32.to_le_bytes());
    d.extend_from_slice(&[0xFF, 0xFF, 0, 0, 1, 1]);
    ClassDescriptor::parse(&d).unwrap()
}

fn control(tx: &mpsc::Sender<Event>, c: Control) -> String {
    let (atx, arx) = mpsc::channel();
    tx.send(Event::Control(c, atx)).unwrap();
    arx.recv_timeout(Duration::from_secs(30)).unwrap()
}

fn open_card(usb: &Usb) -> OpenPgpCard {
    let mut reader = Reader::new(usb.clone(), qemu_descriptor(), 0).unwrap();
    assert!(reader.wait_for_card(true, Duration::from_secs(10)).unwrap());
    reader.power_on().unwrap();
    OpenPgpCard::open(reader).unwrap()
}

#[test]
fn provision_swap_and_reinsert_through_the_bridge() {
    let (qemu_sock, bridge_sock) = UnixStream::pair().unwrap();
    let (events_tx, events_rx) = mpsc::channel();
    spawn_reader(bridge_sock.try_clone().unwrap(), events_tx.clone());
    let bridge = std::thread::spawn(move || {
        let cards = (0..2)
            .map(|i| T0Card::new(VirtualCard::new(0x5348_0001 + i)))
            .collect();
        let mut b = Bridge::new(cards);
        let mut w = bridge_sock;
        b.serve(&mut w, &events_rx, None, &mut |_| {}).unwrap();
        b.apdus
    });

    // QEMU's end of the chardev: its Init, then whatever the bridge sends.
    let (msg_tx, msg_rx) = mpsc::channel();
    let mut reader_sock = qemu_sock.try_clone().unwrap();
    std::thread::spawn(move || {
        while let Ok(Some(m)) = Msg::read_from(&mut reader_sock) {
            if msg_tx.send(m).is_err() {
                return;
            }
        }
    });
    let mut sock = qemu_sock;
    Msg::init().write_to(&mut sock).unwrap();
    let usb = Usb(Arc::new(Mutex::new(Qemu {
        sock,
        from_bridge: msg_rx,
        atr: None,
        powered: false,
        bulk_in: VecDeque::new(),
        irq: VecDeque::new(),
    })));

    // No card yet.
    let mut reader = Reader::new(usb.clone(), qemu_descriptor(), 0).unwrap();
    assert!(
        !reader
            .wait_for_card(true, Duration::from_millis(100))
            .unwrap()
    );
    assert!(matches!(reader.power_on(), Err(Error::NoCard)));
    drop(reader);

    // Card 0 in: provision it.
    assert_eq!(control(&events_tx, Control::Insert(0)), "ok inserted 0");
    let mut card = open_card(&usb);
    assert_eq!(card.identity().unwrap().serial, 0x5348_0001);
    let p = StandardPolicy::new();
    let (cert, _) = CertBuilder::new()
        .add_userid("location 1")
        .set_cipher_suite(CipherSuite::Cv25519)
        .add_storage_encryption_subkey()
        .generate()
        .unwrap();
    let key = cert
        .keys()
        .secret()
        .with_policy(&p, None)
        .for_storage_encryption()
        .next()
        .unwrap()
        .key()
        .clone()
        .role_into_unspecified();
    let mut message = Vec::new();
    {
        let m = Message::new(&mut message);
        let recipients = cert.keys().with_policy(&p, None).for_storage_encryption();
        let m = Encryptor::for_recipients(m, recipients).build().unwrap();
        let mut w = LiteralWriter::new(m).build().unwrap();
        w.write_all(b"share 1").unwrap();
        w.finalize().unwrap();
    }
    let user = Pin::new("502214").unwrap();
    let admin = Pin::new("77103358").unwrap();
    let report = card
        .provision(&Provision {
            cert: &cert,
            decryption: &key,
            signing: None,
            user_pin: &user,
            admin_pin: &admin,
            policy: &p,
        })
        .unwrap();
    println!(
        "MEASURE through the VSCard bridge (TPDU T=0): provisioning {} APDUs in {:.3}s",
        report.apdus,
        report.elapsed.as_secs_f64()
    );
    assert_eq!(report.identity.serial, 0x5348_0001);
    assert_eq!(
        report.identity.decryption_fingerprint.as_deref(),
        Some(key.fingerprint().to_hex().as_str())
    );
    let plain = card.decrypt_message(&user, &cert, &p, &message).unwrap();
    assert_eq!(plain.as_slice(), b"share 1");
    drop(card);

    // Pulled: the reader sees it go.
    assert_eq!(control(&events_tx, Control::Remove), "ok removed");
    let mut reader = Reader::new(usb.clone(), qemu_descriptor(), 0).unwrap();
    assert!(
        reader
            .wait_for_card(false, Duration::from_secs(10))
            .unwrap()
    );
    drop(reader);

    // Another card: a different serial, nothing on it.
    assert_eq!(control(&events_tx, Control::Insert(1)), "ok inserted 1");
    let mut other = open_card(&usb);
    let id = other.identity().unwrap();
    assert_eq!(id.serial, 0x5348_0002);
    assert_eq!(id.decryption_fingerprint, None);
    drop(other);

    // The first card again: re-detected, its key and PIN survived.
    assert_eq!(control(&events_tx, Control::Insert(0)), "ok inserted 0");
    let mut card = open_card(&usb);
    let id = card.identity().unwrap();
    assert_eq!(id.serial, 0x5348_0001);
    assert_eq!(
        id.decryption_fingerprint.as_deref(),
        Some(key.fingerprint().to_hex().as_str())
    );
    let plain = card.decrypt_message(&user, &cert, &p, &message).unwrap();
    assert_eq!(plain.as_slice(), b"share 1");

    // Pulled in the middle of a session: a clean error, not a hang.
    assert_eq!(control(&events_tx, Control::Remove), "ok removed");
    std::thread::sleep(Duration::from_millis(50));
    let e = card.identity().unwrap_err();
    assert!(e.to_string().contains("no card"), "{e}");
    let mut reader = Reader::new(usb.clone(), qemu_descriptor(), 0).unwrap();
    assert_eq!(reader.slot_status().unwrap(), IccStatus::Absent);

    assert_eq!(control(&events_tx, Control::Quit), "ok bye");
    assert!(bridge.join().unwrap() > 40);
}
