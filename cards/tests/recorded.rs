//! Real OpenPGP operations through emulated readers that present the recorded class
//! descriptors of a YubiKey 5 (extended APDU level), a Nitrokey Pro (TPDU level, T=1), an
//! SCM SCR3310 (TPDU level, T=0 and T=1; once with a T=0 card, once with a T=1 card), an
//! Elatec TWN4 (64-byte messages) and a Bit4id Digital-DNA Key BT (TPDU level, T=1 only, no
//! automatic PPS: the driver's own PPS moves a card in negotiable mode to T=1), with the
//! virtual OpenPGP card behind (`vscard_bridge::recorded`). Each reader holds the driver to
//! its descriptor: message sizes, protocols, the PPS, SetParameters before T=1, its own IFSD
//! exchange.

use std::io::Write;
use std::time::{Duration, Instant};

use cards::ccid::ExchangeLevel::{ExtendedApdu, Tpdu};
use cards::ccid::{DescriptorFields, ExchangeLevel};
use cards::reader::CardProtocols::{self, ByReader, T0AndT1, T1};
use cards::reader::{Decision, Protocol, Reader, decide};
use cards::{Error, OpenPgpCard, Pin};
use openpgp::cert::prelude::*;
use openpgp::parse::Parse;
use openpgp::parse::stream::{
    DetachedVerifierBuilder, MessageLayer, MessageStructure, VerificationHelper,
};
use openpgp::policy::StandardPolicy;
use openpgp::serialize::stream::{Encryptor, LiteralWriter, Message};
use sequoia_openpgp as openpgp;
use vscard_bridge::recorded::{
    BIT4ID_DIGITAL_DNA_KEY_BT, Card, ELATEC_TWN4, NITROKEY_PRO, PpsExchange, RecordedReader,
    SCR3310, SCR3310_263, YUBIKEY_5,
};
use vscard_bridge::t1::Mode;
use vscard_bridge::{T1Card, VirtualCard};

fn new_cert() -> openpgp::Cert {
    CertBuilder::new()
        .add_userid("sherd recorded-reader test holder")
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
    let mut sink = Vec::new();
    let m = Message::new(&mut sink);
    let m = Encryptor::for_recipients(m, recipients).build().unwrap();
    let mut w = LiteralWriter::new(m).build().unwrap();
    w.write_all(plaintext).unwrap();
    w.finalize().unwrap();
    sink
}

struct VerifyHelper<'a>(&'a openpgp::Cert);

impl VerificationHelper for VerifyHelper<'_> {
    fn get_certs(&mut self, _: &[openpgp::KeyHandle]) -> openpgp::Result<Vec<openpgp::Cert>> {
        Ok(vec![self.0.clone()])
    }
    fn check(&mut self, structure: MessageStructure) -> openpgp::Result<()> {
        for layer in structure {
            if let MessageLayer::SignatureGroup { results } = layer
                && results.iter().any(|r| r.is_ok())
            {
                return Ok(());
            }
        }
        Err(openpgp::anyhow::anyhow!("no valid signature"))
    }
}

fn verify(cert: &openpgp::Cert, sig: &[u8], data: &[u8]) -> openpgp::Result<()> {
    let p = StandardPolicy::new();
    let mut v =
        DetachedVerifierBuilder::from_bytes(sig)?.with_policy(&p, None, VerifyHelper(cert))?;
    v.verify_bytes(data)
}

/// The reader with `fields` and `card`: the decision is `level`/`protocols`, power-on picks
/// `protocol`.
fn open(
    fields: DescriptorFields,
    card: Card,
    (level, protocols): (ExchangeLevel, CardProtocols),
    protocol: Protocol,
) -> (Reader<RecordedReader>, RecordedReader) {
    let emulated = RecordedReader::new(fields, card);
    let desc = emulated.descriptor();
    assert_eq!(decide(&desc).unwrap(), Decision { level, protocols });
    let mut reader = Reader::new(emulated.clone(), desc, 0).unwrap();
    reader.power_on().unwrap();
    assert_eq!(reader.protocol(), protocol);
    (reader, emulated)
}

/// A whole provisioning (`OpenPgpCard::provision`: reset, import of a signing and a
/// decryption key, both PINs, a test decryption), then a signature Sequoia verifies, a
/// decryption, and GET CHALLENGE longer than one short answer.
fn provision_sign_decrypt(what: &str, reader: Reader<RecordedReader>, emulated: &RecordedReader) {
    let p = StandardPolicy::new();
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
    let (user, admin) = (Pin::new("602214").unwrap(), Pin::new("13806490").unwrap());
    let xfr_before = emulated.state().xfr_blocks;
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
    let xfrs = emulated.state().xfr_blocks - xfr_before;
    assert_eq!(
        report.identity.decryption_fingerprint.as_deref(),
        Some(dec.fingerprint().to_hex().as_str())
    );
    assert_eq!(
        report.identity.signing_fingerprint.as_deref(),
        Some(sig.fingerprint().to_hex().as_str())
    );
    let message = encrypt_to(&cert, b"shard 3 of 5");
    let plain = card.decrypt_message(&user, &cert, &p, &message).unwrap();
    assert_eq!(plain.as_slice(), b"shard 3 of 5");
    let signature = card.sign_detached(&user, &cert, &p, b"nonce 11").unwrap();
    verify(&cert, &signature, b"nonce 11").unwrap();
    assert!(verify(&cert, &signature, b"nonce 12").is_err());
    assert_eq!(card.get_challenge(300).unwrap().len(), 300);
    let s = emulated.state();
    assert!(s.violations.is_empty(), "{what}: {:?}", s.violations);
    println!(
        "MEASURE {what}: provisioning took {} APDUs, {xfrs} XfrBlocks, {secs:.3}s; largest \
         messages {} bytes out, {} in",
        report.apdus, s.largest_out, s.largest_in
    );
}

#[test]
fn yubikey_5() {
    let (reader, emulated) = open(
        YUBIKEY_5,
        Card::t0(VirtualCard::new(0x5001)),
        (ExtendedApdu, ByReader),
        Protocol::T0,
    );
    provision_sign_decrypt("YubiKey 5 (extended APDU level)", reader, &emulated);
    // Nothing needed chaining over several XfrBlocks with 3072-byte messages, and the driver
    // sent no SetParameters (the token handles its card).
    let s = emulated.state();
    assert!(s.largest_in <= 3072 && s.parameters.is_none());
}

#[test]
fn nitrokey_pro() {
    let (reader, emulated) = open(
        NITROKEY_PRO,
        Card::t1(VirtualCard::new(0x5002), 254, 254),
        (Tpdu, T1),
        Protocol::T1,
    );
    // SetParameters for T=1 with the ATR's values (the reader does PPS but not the
    // parameter negotiation).
    assert_eq!(
        emulated.state().parameters,
        Some((1, vec![0x11, 0x10, 0x00, 0x45, 0x00, 0xFE, 0x00]))
    );
    provision_sign_decrypt("Nitrokey Pro (TPDU, T=1)", reader, &emulated);
    let s = emulated.state();
    let Card::T1(card) = &s.card else {
        unreachable!()
    };
    // The reader, not the driver, told the card IFSD 254 (once: no power-on since).
    assert!(s.ifsd_sent);
    assert_eq!((card.stats.ifs_requests, card.stats.ifsd), (1, 254));
    // Answers longer than 254 bytes (GET CHALLENGE 300) came in chained blocks, and no block
    // was sent again.
    assert!(card.stats.chained_out >= 1, "{:?}", card.stats);
    assert_eq!((card.stats.resent, card.stats.resynchs), (0, 0));
}

#[test]
fn scr3310_with_a_t0_card() {
    let (reader, emulated) = open(
        SCR3310,
        Card::t0(VirtualCard::new(0x5003)),
        (Tpdu, T0AndT1),
        Protocol::T0,
    );
    provision_sign_decrypt("SCR3310 with a T=0 card (TPDU, T=0)", reader, &emulated);
    assert!(emulated.state().parameters.is_none());
}

#[test]
fn scr3310_with_a_t1_card() {
    let (reader, emulated) = open(
        SCR3310,
        Card::t1(VirtualCard::new(0x5004), 254, 254),
        (Tpdu, T0AndT1),
        Protocol::T1,
    );
    {
        // No automatic IFSD exchange: the driver asked for min(dwMaxIFSD 252, what fits
        // 271-byte messages).
        let s = emulated.state();
        let Card::T1(card) = &s.card else {
            unreachable!()
        };
        assert_eq!((card.stats.ifs_requests, card.stats.ifsd), (1, 252));
        assert!(!s.ifsd_sent);
        assert_eq!(s.parameters.as_ref().map(|p| p.0), Some(1));
    }
    provision_sign_decrypt("SCR3310 with a T=1 card (TPDU, T=1)", reader, &emulated);
}

// The card pulled from the SCR3310 and put back: no card, at once; then T=1 again.
#[test]
fn scr3310_card_pulled_and_reinserted() {
    let (mut reader, emulated) = open(
        SCR3310,
        Card::t1(VirtualCard::new(0x5005), 254, 254),
        (Tpdu, T0AndT1),
        Protocol::T1,
    );
    let select = [
        0x00, 0xA4, 0x04, 0x00, 0x06, 0xD2, 0x76, 0x00, 0x01, 0x24, 0x01, 0x00,
    ];
    assert_eq!(reader.transmit(&select).unwrap(), [0x90, 0x00]);
    emulated.remove_card();
    assert!(matches!(reader.transmit(&select), Err(Error::NoCard)));
    assert_eq!(
        reader.wait_slot_change(std::time::Duration::ZERO).unwrap(),
        Some(false)
    );
    emulated.insert_card();
    assert!(
        reader
            .wait_for_card(true, std::time::Duration::from_secs(1))
            .unwrap()
    );
    reader.power_on().unwrap();
    assert_eq!(reader.protocol(), Protocol::T1);
    assert_eq!(reader.transmit(&select).unwrap(), [0x90, 0x00]);
    assert!(emulated.state().violations.is_empty());
}

// The SCR3310 with 263-byte messages and a T=0 card: answers of up to 253 bytes per
// message, so GET RESPONSE and GET CHALLENGE ask for no more than that.
#[test]
fn scr3310_with_263_byte_messages() {
    let (reader, emulated) = open(
        SCR3310_263,
        Card::t0(VirtualCard::new(0x5006)),
        (Tpdu, T0AndT1),
        Protocol::T0,
    );
    assert_eq!(reader.max_answer(), Some(253));
    provision_sign_decrypt(
        "SCR3310 with 263-byte messages, T=0 card",
        reader,
        &emulated,
    );
    assert!(emulated.state().largest_in <= 263);
}

// The Elatec TWN4 (64-byte messages): with a T=0 card, commands longer than 49 bytes (key
// import, signing) go out chained and answers come 52 bytes at a time; with a T=1 card, blocks
// of at most 49 bytes (IFSD) and 50 out.
#[test]
fn elatec_twn4_with_64_byte_messages() {
    let (reader, emulated) = open(
        ELATEC_TWN4,
        Card::t0(VirtualCard::new(0x5007)),
        (Tpdu, T0AndT1),
        Protocol::T0,
    );
    assert_eq!(reader.max_answer(), Some(54));
    provision_sign_decrypt(
        "Elatec TWN4 (64-byte messages), T=0 card",
        reader,
        &emulated,
    );
    assert!(emulated.state().largest_out <= 64 && emulated.state().largest_in <= 64);
    let (reader, emulated) = open(
        ELATEC_TWN4,
        Card::t1(VirtualCard::new(0x5008), 254, 254),
        (Tpdu, T0AndT1),
        Protocol::T1,
    );
    provision_sign_decrypt(
        "Elatec TWN4 (64-byte messages), T=1 card",
        reader,
        &emulated,
    );
    let s = emulated.state();
    let Card::T1(card) = &s.card else {
        unreachable!()
    };
    assert_eq!(card.stats.ifsd, 49);
    assert!(s.largest_out <= 64 && s.largest_in <= 64);
}

/// The T=1 card front of the reader's slot.
fn t1_card(s: &vscard_bridge::recorded::State) -> &T1Card {
    let Card::T1(card) = &s.card else {
        unreachable!("a T=1 card front")
    };
    card
}

// A card in negotiable mode (TA1 0x96, T=0 offered first, T=1 second, no TA2) in the Bit4id
// Digital-DNA Key BT (TPDU level, T=1 only, neither automatic parameter negotiation nor
// automatic PPS): the driver's PPS `FF 11 96 78`, once, forwarded by the reader and echoed by
// the card; SetParameters for T=1 at Fi/Di 0x96; S(IFS request) for 247 (the reader's
// dwMaxIFSD); then the whole provisioning, signature and decryption in T=1.
#[test]
fn bit4id_host_pps_moves_a_negotiable_card_to_t1() {
    let (reader, emulated) = open(
        BIT4ID_DIGITAL_DNA_KEY_BT,
        Card::t1_negotiable(VirtualCard::new(0x5009), 254, 254, Some(0x96)),
        (Tpdu, T1),
        Protocol::T1,
    );
    assert_eq!(
        &reader.atr().unwrap()[..7],
        [0x3B, 0x9A, 0x96, 0x80, 0x31, 0xFE, 0x45]
    );
    let pps = vec![0xFF, 0x11, 0x96, 0xFF ^ 0x11 ^ 0x96];
    assert_eq!(pps[3], 0x78);
    let exchange = echoed(false, &pps);
    {
        let s = emulated.state();
        assert_eq!(s.pps, std::slice::from_ref(&exchange));
        assert_eq!(
            s.parameters,
            Some((1, vec![0x96, 0x10, 0x00, 0x45, 0x00, 0xFE, 0x00]))
        );
        let card = t1_card(&s);
        assert_eq!(card.mode(), Mode::T1 { fidi: 0x96 });
        assert_eq!((card.stats.ifs_requests, card.stats.ifsd), (1, 247));
        assert!(!s.ifsd_sent);
        assert!(s.violations.is_empty(), "{:?}", s.violations);
    }
    provision_sign_decrypt(
        "Bit4id Digital-DNA Key BT (TPDU, T=1 after the driver's PPS)",
        reader,
        &emulated,
    );
    let s = emulated.state();
    assert_eq!(s.pps, [exchange]);
    let card = t1_card(&s);
    assert_eq!(card.mode(), Mode::T1 { fidi: 0x96 });
    assert_eq!(
        (
            card.stats.pps,
            card.stats.pps_unanswered,
            card.stats.refused_blocks
        ),
        (1, 0, 0)
    );
}

// The same reader and a negotiable card without TA1: the PPS asks for T=1 at the default Fi/Di
// (`FF 01 FE`), SetParameters carries 0x11.
#[test]
fn bit4id_host_pps_at_the_default_fi_di() {
    let (mut reader, emulated) = open(
        BIT4ID_DIGITAL_DNA_KEY_BT,
        Card::t1_negotiable(VirtualCard::new(0x500A), 254, 254, None),
        (Tpdu, T1),
        Protocol::T1,
    );
    let select = [
        0x00, 0xA4, 0x04, 0x00, 0x06, 0xD2, 0x76, 0x00, 0x01, 0x24, 0x01, 0x00,
    ];
    assert_eq!(reader.transmit(&select).unwrap(), [0x90, 0x00]);
    let s = emulated.state();
    let pps = vec![0xFF, 0x01, 0xFE];
    assert_eq!(s.pps, [echoed(false, &pps)]);
    assert_eq!(s.parameters.as_ref().map(|p| p.1[0]), Some(0x11));
    assert_eq!(t1_card(&s).mode(), Mode::T1 { fidi: 0x11 });
    assert!(s.violations.is_empty(), "{:?}", s.violations);
}

// A negotiable card that answers the driver's PPS for T=1 by keeping T=0 (`FF 00 FF`): power-on
// fails at once with the error naming the request and the answer; no SetParameters, no block,
// and the card counts as not powered.
#[test]
fn bit4id_card_refusing_t1_in_the_pps_is_a_clear_error() {
    let mut card = T1Card::negotiable(VirtualCard::new(0x500B), 254, 254, Some(0x96));
    card.pps_keeps_t0 = true;
    let emulated = RecordedReader::new(BIT4ID_DIGITAL_DNA_KEY_BT, Card::T1(Box::new(card)));
    let desc = emulated.descriptor();
    let mut reader = Reader::new(emulated.clone(), desc, 0).unwrap();
    let start = Instant::now();
    let e = reader.power_on().unwrap_err();
    assert!(
        start.elapsed() < Duration::from_secs(2),
        "{:?}",
        start.elapsed()
    );
    assert!(matches!(e, Error::Card(_)), "{e:?}");
    assert_eq!(
        e.to_string(),
        "card protocol violation: the card answered the PPS request [FF, 11, 96, 78] (switch to \
         T=1) with [FF, 00, FF]: it refuses T=1 with this reader"
    );
    assert!(reader.atr().is_none());
    assert!(matches!(
        reader.transmit(&[0, 0xCA, 0, 0x6E, 0]),
        Err(Error::NoCard)
    ));
    let s = emulated.state();
    assert_eq!(s.pps.len(), 1);
    assert_eq!(s.pps[0].answer, [0xFF, 0x00, 0xFF]);
    assert!(s.parameters.is_none());
    let card = t1_card(&s);
    assert_eq!((card.mode(), card.stats.blocks), (Mode::T0, 0));
    assert!(s.violations.is_empty(), "{:?}", s.violations);
}

// The Nitrokey Pro's reader makes the PPS itself (dwFeatures 0x80): with the same negotiable
// card the driver sends none, SetParameters carries TA1, and the reader's own PPS at
// SetParameters (`FF 11 96 78`) switches the card.
#[test]
fn nitrokey_pro_makes_the_pps_itself() {
    let (reader, emulated) = open(
        NITROKEY_PRO,
        Card::t1_negotiable(VirtualCard::new(0x500C), 254, 254, Some(0x96)),
        (Tpdu, T1),
        Protocol::T1,
    );
    {
        let s = emulated.state();
        let pps = vec![0xFF, 0x11, 0x96, 0x78];
        assert_eq!(s.pps, [echoed(true, &pps)]);
        assert_eq!(s.parameters.as_ref().map(|p| p.1[0]), Some(0x96));
        assert_eq!(t1_card(&s).mode(), Mode::T1 { fidi: 0x96 });
    }
    provision_sign_decrypt(
        "Nitrokey Pro (TPDU, T=1 after the reader's PPS)",
        reader,
        &emulated,
    );
    assert_eq!(emulated.state().pps.len(), 1);
}

/// A PPS exchange the card accepted by echoing the request (ISO/IEC 7816-3 9.3).
fn echoed(by_reader: bool, request: &[u8]) -> PpsExchange {
    PpsExchange {
        by_reader,
        request: request.to_vec(),
        answer: request.to_vec(),
    }
}
