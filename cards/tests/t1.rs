//! The card stack over an emulated TPDU-level reader that speaks only T=1 (like a Nitrokey
//! Pro, or an SCR3310 with a T=1 card), with the virtual OpenPGP card behind a T=1 card front
//! that receives 32 bytes per block (commands are chained), sends 64 (responses are chained),
//! asks for a waiting time extension once and corrupts one block (a retransmission).

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use cards::ccid::{ClassDescriptor, IccStatus};
use cards::reader::{Protocol, Reader, Transport};
use cards::{Error, OpenPgpCard, Pin, Result};
use openpgp::cert::prelude::*;
use openpgp::policy::StandardPolicy;
use openpgp::serialize::stream::{Encryptor, LiteralWriter, Message};
use sequoia_openpgp as openpgp;
use std::io::Write;
use vscard_bridge::{T1Card, VirtualCard};

/// The reader: CCID on the USB side, T=1 blocks to the card front.
struct State {
    card: T1Card,
    present: bool,
    powered: bool,
    /// bProtocolNum and abProtocolDataStructure of the last SetParameters.
    parameters: Option<(u8, Vec<u8>)>,
    /// bBWI of every XfrBlock.
    bwis: Vec<u8>,
    xfr_blocks: u64,
    queue: VecDeque<Vec<u8>>,
}

#[derive(Clone)]
struct T1Reader(Arc<Mutex<State>>);

fn reply(ty: u8, seq: u8, status: u8, error: u8, specific: u8, data: &[u8]) -> Vec<u8> {
    let mut m = vec![ty];
    m.extend_from_slice(&(data.len() as u32).to_le_bytes());
    m.extend_from_slice(&[0, seq, status, error, specific]);
    m.extend_from_slice(data);
    m
}

impl Transport for T1Reader {
    fn bulk_out(&mut self, msg: &[u8], _: Duration) -> Result<()> {
        let mut s = self.0.lock().unwrap();
        let len = u32::from_le_bytes(msg[1..5].try_into().unwrap()) as usize;
        assert_eq!(msg.len(), 10 + len, "dwLength does not match the message");
        let (seq, data) = (msg[6], &msg[10..]);
        let icc = match (s.present, s.powered) {
            (false, _) => 2,
            (true, false) => 1,
            (true, true) => 0,
        };
        let answer = match msg[0] {
            0x62 if s.present => {
                s.powered = true;
                s.parameters = None;
                s.card.power_cycle();
                let atr = s.card.atr();
                reply(0x80, seq, 0, 0, 0, &atr)
            }
            0x62 => reply(0x80, seq, 0x42, 0xFE, 0, &[]),
            0x63 => {
                s.powered = false;
                reply(0x81, seq, icc & 2, 0, 0, &[])
            }
            0x65 => reply(0x81, seq, icc, 0, 0, &[]),
            0x6D if icc == 0 => {
                s.parameters = Some((msg[7], data.to_vec()));
                reply(0x82, seq, 0, 0, msg[7], data)
            }
            0x6F if icc != 0 => reply(0x80, seq, 0x40 | icc, 0xFE, 0, &[]),
            0x6F => {
                // This reader does not negotiate: the host must set T=1 first.
                assert_eq!(
                    s.parameters.as_ref().map(|p| p.0),
                    Some(1),
                    "XfrBlock before SetParameters(T=1)"
                );
                s.xfr_blocks += 1;
                s.bwis.push(msg[7]);
                let block = s.card.block(data);
                reply(0x80, seq, 0, 0, 0, &block)
            }
            other => panic!("unexpected CCID command {other:#04x}"),
        };
        s.queue.push_back(answer);
        Ok(())
    }

    fn bulk_in(&mut self, _: usize, after: Duration) -> Result<Vec<u8>> {
        self.0
            .lock()
            .unwrap()
            .queue
            .pop_front()
            .ok_or(Error::Timeout {
                what: "bulk-in",
                after,
            })
    }

    fn interrupt_in(&mut self, _: Duration) -> Result<Option<Vec<u8>>> {
        Ok(None)
    }
}

/// A TPDU reader with T=1 only, automatic PPS but no automatic parameter negotiation and no
/// automatic IFSD exchange, 271-byte messages, a 4 MHz default clock, IFSD 254.
fn descriptor() -> ClassDescriptor {
    let mut d = vec![0x36, 0x21, 0x10, 0x01, 0x00, 0x07];
    d.extend_from_slice(&2u32.to_le_bytes()); // dwProtocols: T=1
    d.extend_from_slice(&4000u32.to_le_bytes()); // dwDefaultClock
    d.extend_from_slice(&[0; 14]);
    d.extend_from_slice(&254u32.to_le_bytes()); // dwMaxIFSD
    d.extend_from_slice(&[0; 8]);
    d.extend_from_slice(&0x0001_00BAu32.to_le_bytes()); // dwFeatures
    d.extend_from_slice(&271u32.to_le_bytes());
    d.extend_from_slice(&[0xFF, 0xFF, 0, 0, 0, 1]);
    ClassDescriptor::parse(&d).unwrap()
}

fn t1_reader(serial: u32, wtx_on_apdu: u64, corrupt_reply: u64) -> (Reader<T1Reader>, T1Reader) {
    let mut card = T1Card::new(VirtualCard::new(serial), 32, 64);
    card.wtx_on_apdu = Some(wtx_on_apdu);
    card.corrupt_reply = Some(corrupt_reply);
    let shared = T1Reader(Arc::new(Mutex::new(State {
        card,
        present: true,
        powered: false,
        parameters: None,
        bwis: Vec::new(),
        xfr_blocks: 0,
        queue: VecDeque::new(),
    })));
    let mut reader = Reader::new(shared.clone(), descriptor(), 0).unwrap();
    reader.power_on().unwrap();
    assert_eq!(reader.protocol(), Protocol::T1);
    (reader, shared)
}

fn new_cert() -> openpgp::Cert {
    CertBuilder::new()
        .add_userid("sherd T=1 test holder")
        .set_cipher_suite(CipherSuite::Cv25519)
        .add_signing_subkey()
        .add_storage_encryption_subkey()
        .generate()
        .unwrap()
        .0
}

fn encrypt_to(cert: &openpgp::Cert, plaintext: &[u8]) -> Vec<u8> {
    let p = StandardPolicy::new();
    let recipients = cert
        .keys()
        .with_policy(&p, None)
        .supported()
        .alive()
        .revoked(false)
        .for_storage_encryption();
    let mut out = Vec::new();
    let message = Message::new(&mut out);
    let message = Encryptor::for_recipients(message, recipients)
        .build()
        .unwrap();
    let mut w = LiteralWriter::new(message).build().unwrap();
    w.write_all(plaintext).unwrap();
    w.finalize().unwrap();
    out
}

// SET PARAMETERS with the ATR's T=1 values, IFSD 254, then SELECT and GET DATA.
#[test]
fn select_and_get_data_over_t1() {
    let (mut reader, shared) = t1_reader(0x7100, 2, 3);
    {
        let s = shared.0.lock().unwrap();
        // Fi/Di default (no TA1), LRC and direct convention, guard time 0, BWI 4 CWI 5, no
        // clock stop, IFSC 32, NAD 0.
        assert_eq!(
            s.parameters,
            Some((1, vec![0x11, 0x10, 0x00, 0x45, 0x00, 0x20, 0x00]))
        );
        assert_eq!((s.card.stats.ifs_requests, s.card.stats.ifsd), (1, 254));
    }
    let select = [
        0x00, 0xA4, 0x04, 0x00, 0x06, 0xD2, 0x76, 0x00, 0x01, 0x24, 0x01, 0x00,
    ];
    assert_eq!(reader.transmit(&select).unwrap(), [0x90, 0x00]);
    // Application related data: more than 64 bytes, so the response comes in chained
    // blocks; the second APDU also got a WTX (bBWI 2 on the block after it) and the
    // third reply block a bad LRC.
    let ard = reader.transmit(&[0x00, 0xCA, 0x00, 0x6E, 0x00]).unwrap();
    assert!(ard.len() > 64 + 2, "{} bytes", ard.len());
    assert_eq!(&ard[ard.len() - 2..], [0x90, 0x00]);
    // Its first data object: the AID (4F).
    assert_eq!(ard[0], 0x4F);
    let s = shared.0.lock().unwrap();
    let stats = s.card.stats;
    assert_eq!((stats.wtx, stats.corrupted), (1, 1));
    assert!(stats.resent >= 1 && stats.chained_out >= 1, "{stats:?}");
    assert!(s.bwis.contains(&2), "{:?}", s.bwis);
    let host = reader.t1_stats().unwrap();
    assert_eq!((host.wtx, host.retransmissions, host.resynchs), (1, 1, 0));
}

// A whole provisioning (factory reset, key import, PINs, test decryption), then signing,
// decryption and GET CHALLENGE, all over T=1.
#[test]
fn provisioning_over_t1() {
    let p = StandardPolicy::new();
    let serial = 0x7101;
    let (reader, shared) = t1_reader(serial, 7, 20);
    let mut card = OpenPgpCard::open(reader).unwrap();
    let cert = new_cert();
    let key = |signing: bool| {
        let ka = cert.keys().secret().with_policy(&p, None);
        let k = if signing {
            ka.for_signing().next()
        } else {
            ka.for_storage_encryption().next()
        };
        k.unwrap().key().clone().role_into_unspecified()
    };
    let (sig, dec) = (key(true), key(false));
    let (user, admin) = (Pin::new("918273").unwrap(), Pin::new("56473829").unwrap());
    let xfr_before = shared.0.lock().unwrap().xfr_blocks;
    let start = Instant::now();
    let report = card
        .provision(&cards::Provision {
            cert: &cert,
            decryption: &dec,
            signing: Some(&sig),
            user_pin: &user,
            admin_pin: &admin,
            policy: &p,
        })
        .unwrap();
    let secs = start.elapsed().as_secs_f64();
    let xfrs = shared.0.lock().unwrap().xfr_blocks - xfr_before;
    println!(
        "MEASURE T=1 (IFSC 32, card blocks of 64, one WTX, one corrupted block): provisioning \
         took {} APDUs, {xfrs} XfrBlocks (T=1 blocks), {secs:.3}s",
        report.apdus
    );
    assert_eq!(report.identity.serial, serial);
    assert_eq!(
        report.identity.decryption_fingerprint.as_deref(),
        Some(dec.fingerprint().to_hex().as_str())
    );
    card.verify_user_pin(&user).unwrap();
    let message = encrypt_to(&cert, b"shard 2 of 3");
    let plain = card.decrypt_message(&user, &cert, &p, &message).unwrap();
    assert_eq!(plain.as_slice(), b"shard 2 of 3");
    let signature = card.sign_detached(&user, &cert, &p, b"nonce 7").unwrap();
    assert!(!signature.is_empty());
    assert_eq!(card.get_challenge(300).unwrap().len(), 300);

    let stats = shared.0.lock().unwrap().card.stats;
    assert_eq!((stats.wtx, stats.corrupted), (1, 1), "{stats:?}");
    // Key import and PIN changes are longer than 32 bytes: chained out; long answers
    // (GET DATA, GET CHALLENGE) chained in.
    assert!(stats.chained_in >= 5 && stats.chained_out >= 5, "{stats:?}");
    assert!(stats.resent >= 1 && stats.resynchs == 0, "{stats:?}");
}

// The card pulled while powered: no card, at once; after reinsertion and power-on, T=1 again.
#[test]
fn card_pulled_and_reinserted_over_t1() {
    let (mut reader, shared) = t1_reader(0x7102, 100, 1000);
    let select = [
        0x00, 0xA4, 0x04, 0x00, 0x06, 0xD2, 0x76, 0x00, 0x01, 0x24, 0x01, 0x00,
    ];
    assert_eq!(reader.transmit(&select).unwrap(), [0x90, 0x00]);
    shared.0.lock().unwrap().present = false;
    assert!(matches!(reader.transmit(&select), Err(Error::NoCard)));
    assert_eq!(reader.slot_status().unwrap(), IccStatus::Absent);
    shared.0.lock().unwrap().present = true;
    reader.power_on().unwrap();
    assert_eq!(reader.protocol(), Protocol::T1);
    assert_eq!(reader.transmit(&select).unwrap(), [0x90, 0x00]);
}
