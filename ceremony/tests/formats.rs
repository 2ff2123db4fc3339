//! Round trips and refusals for the shard file and PIN file formats, and the verifier binary.

mod common;

use std::process::Command;

use ceremony::card::CardSerial;
use ceremony::ceremony::paths;
use ceremony::pinfile::{PinEntry, PinFile, PinFileError};
use ceremony::secret::{CardPins, Pin};
use ceremony::shardfile::{ShardFile, ShardFileError};
use ceremony::storage::{DirVolume, write_all};
use common::*;
use proptest::prelude::*;

fn shard_text() -> (Fixture, Done, String) {
    let f = fixture("shards", 3, 2);
    let done = run(&f, 5);
    let text = String::from_utf8(file(&done.files, paths::SHARDS).to_vec()).unwrap();
    (f, done, text)
}

#[test]
fn shard_file_round_trip_and_refusals() {
    let (_, done, text) = shard_text();
    let parsed = ShardFile::parse(&text).unwrap();
    assert_eq!(parsed.to_toml(), text, "serialization is stable");
    assert_eq!(parsed.shares.len(), 3);

    let refuse = |t: String| ShardFile::parse(&t).expect_err("should be refused");

    assert!(matches!(
        refuse(text.replace("format = \"sherd-shards/1\"", "format = \"sherd-shards/9\"")),
        ShardFileError::UnsupportedFormat { .. }
    ));
    assert!(
        matches!(refuse(format!("extra = 1\n{text}")), ShardFileError::Syntax(ref m) if m.contains("extra"))
    );
    assert!(matches!(
        refuse(text.replace("threshold = 2", "threshold = 4")),
        ShardFileError::Field {
            field: "threshold",
            ..
        }
    ));
    assert!(matches!(
        refuse(text.replace("count = 3", "count = 4")),
        ShardFileError::Field { field: "share", .. }
    ));

    // Reordered shares: swap the first two [[share]] tables.
    let parts: Vec<&str> = text.split("[[share]]").collect();
    let reordered = format!(
        "{}[[share]]{}[[share]]{}[[share]]{}",
        parts[0], parts[2], parts[1], parts[3]
    );
    assert!(matches!(
        refuse(reordered),
        ShardFileError::Share {
            position: 1,
            index: 2,
            ..
        }
    ));
    // Truncated: the last share missing.
    let truncated = format!("{}[[share]]{}[[share]]{}", parts[0], parts[1], parts[2]);
    assert!(matches!(
        refuse(truncated),
        ShardFileError::Field { field: "share", .. }
    ));

    // A wrong message hash names the share.
    let mut p = parsed.clone();
    let digest = ceremony::hex::encode(&p.shares[1].message_sha256());
    let wrong = text.replacen(&digest, &"0".repeat(64), 1);
    assert!(
        matches!(refuse(wrong), ShardFileError::Share { position: 2, index: 2, ref reason } if reason.contains("message_sha256"))
    );

    // A message encrypted to someone else's location key (share 1's message under share 2).
    p.shares[1].message = p.shares[0].message.clone();
    assert!(
        matches!(refuse(p.to_toml()), ShardFileError::Share { position: 2, ref reason, .. } if reason.contains("encrypted to"))
    );

    // A location certificate swapped for another.
    let mut p = parsed.clone();
    p.shares[0].location_cert = p.shares[2].location_cert.clone();
    assert!(matches!(
        refuse(p.to_toml()),
        ShardFileError::Share { position: 1, .. }
    ));

    // Root fingerprint that does not match the root certificate.
    let fpr = parsed.root_fingerprint().to_hex();
    assert!(matches!(
        refuse(text.replace(&fpr, &"A".repeat(40))),
        ShardFileError::Field {
            field: "root_fingerprint",
            ..
        }
    ));

    let _ = done;
}

/// Found by the fuzzer: a certificate Sequoia reads but cannot write back (a signature names an
/// unknown kind of fingerprint) used to make `to_toml` panic. Such a file is now refused.
#[test]
fn shard_file_with_unwritable_certificate_is_refused() {
    let text = include_str!("../../fuzz/seeds/shard_file/unwritable-cert.toml");
    let err = ShardFile::parse(text).expect_err("should be refused");
    assert!(
        err.to_string().contains("cannot be written out again"),
        "unexpected refusal: {err}"
    );
}

fn pin_file(entries: &[(u8, String, String, String)]) -> PinFile {
    PinFile {
        ceremony_id: "pins".into(),
        holder: 3,
        name: "Holder 003".into(),
        cards: entries
            .iter()
            .map(|(c, s, u, a)| PinEntry {
                card: *c,
                serial: CardSerial(s.clone()),
                pins: CardPins {
                    user: Pin::from_string(u.clone()),
                    admin: Pin::from_string(a.clone()),
                },
            })
            .collect(),
    }
}

proptest! {
    #[test]
    fn pin_file_round_trip(entries in proptest::collection::vec(
        (1u8..9, "[A-Z0-9:]{1,20}", "[0-9]{6,32}", "[0-9]{8,32}"), 1..5)
    ) {
        let pf = pin_file(&entries);
        let text = pf.encode();
        let back = PinFile::decode(&text).unwrap();
        prop_assert_eq!(back.holder, 3);
        prop_assert_eq!(&back.name, "Holder 003");
        prop_assert_eq!(back.cards.len(), entries.len());
        for (b, e) in back.cards.iter().zip(&entries) {
            prop_assert_eq!(b.card, e.0);
            prop_assert_eq!(&b.serial.0, &e.1);
            prop_assert_eq!(b.pins.user.expose_secret(), e.2.as_str());
            prop_assert_eq!(b.pins.admin.expose_secret(), e.3.as_str());
        }
        // Every truncation is refused.
        for cut in 0..text.len() {
            prop_assert!(PinFile::decode(&text[..cut]).is_err());
        }
    }

    #[test]
    fn shard_and_pin_parsers_never_panic(s in "\\PC{0,400}") {
        let _ = ShardFile::parse(&s);
        let _ = PinFile::decode(&s);
    }
}

#[test]
fn pin_file_refusals() {
    let good = pin_file(&[(1, "S1".into(), "123456".into(), "12345678".into())])
        .encode()
        .to_string();
    assert!(PinFile::decode(&good).is_ok());
    for bad in [
        good.replace("user=123456", "user=12345"),
        good.replace("admin=12345678", "admin=1234567"),
        good.replace("sherd-pins/1", "sherd-pins/2"),
        good.replace("card=1 serial=S1", "serial=S1 card=1"),
        good.replace("holder=3", "holder=300"),
        good.replace("holder=3", "holder=03"),
        good.replace("holder=3", "holder=+3"),
        good.replace("card=1 ", "card=01 "),
        good.replace("card=1 ", "card=0 "),
        good.replace("end=1", "end=01"),
        good.replace("serial=S1", "serial="),
        good.replace("ceremony=pins", "ceremony=Pins"),
        format!("{good}extra\n"),
    ] {
        assert!(
            matches!(PinFile::decode(&bad), Err(PinFileError::BadLine { .. })),
            "{bad}"
        );
    }
}

#[test]
fn verifier_binary_pass_and_fail() {
    let (_, done, _) = shard_text();
    let stick = tempfile::tempdir().unwrap();
    let mut v = DirVolume::new(stick.path());
    write_all(&mut [&mut v], "out", &done.files).unwrap();
    let dir = stick.path().join("out");

    let ok = Command::new(env!("CARGO_BIN_EXE_sherd-verify"))
        .arg(&dir)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&ok.stdout);
    assert!(ok.status.success(), "{stdout}");
    assert!(stdout.starts_with("PASS"), "{stdout}");
    assert!(
        stdout.contains(&done.view.transcript_final_words),
        "{stdout}"
    );

    std::fs::write(
        dir.join(paths::pin_file(2)),
        b"-----BEGIN PGP MESSAGE-----\n\nAAAA\n-----END PGP MESSAGE-----\n",
    )
    .unwrap();
    let bad = Command::new(env!("CARGO_BIN_EXE_sherd-verify"))
        .arg(&dir)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&bad.stdout);
    assert_eq!(bad.status.code(), Some(1), "{stdout}");
    assert!(
        stdout.starts_with("FAIL") && stdout.contains("pins/holder-002.asc"),
        "{stdout}"
    );

    let usage = Command::new(env!("CARGO_BIN_EXE_sherd-verify"))
        .output()
        .unwrap();
    assert_eq!(usage.status.code(), Some(2));
}

/// The sealed forms are what the docs promise: v3 PKESKs and SEIPDv1 (readable by every
/// OpenPGP implementation), one PKESK per share message.
#[test]
fn sealed_messages_are_pkesk_v3_and_seipd_v1() {
    use ceremony::openpgp::Packet;
    use ceremony::openpgp::parse::{PacketParser, PacketParserResult, Parse};
    let (_, done, text) = shard_text();
    let shards = ShardFile::parse(&text).unwrap();
    let pin = ceremony::pgp::dearmor(
        file(&done.files, &paths::pin_file(1)),
        ceremony::openpgp::armor::Kind::Message,
    )
    .unwrap();
    for (msg, pkesks) in [(&shards.shares[0].message, 1), (&pin, 2)] {
        let mut seen = (0, 0);
        let mut ppr = PacketParser::from_bytes(msg).unwrap();
        while let PacketParserResult::Some(pp) = ppr {
            match &pp.packet {
                Packet::PKESK(p) => {
                    assert_eq!(p.version(), 3);
                    seen.0 += 1;
                }
                Packet::SEIP(s) => {
                    assert_eq!(s.version(), 1);
                    seen.1 += 1;
                    break;
                }
                p => panic!("unexpected {}", p.tag()),
            }
            ppr = pp.next().unwrap().1;
        }
        assert_eq!(seen, (pkesks, 1));
    }
}
