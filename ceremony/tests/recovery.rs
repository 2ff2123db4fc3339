//! Pinning the root before any card is touched: a recovery trusts only what a generation
//! folder that passes the offline verifier says, never a shard file's own certificates.
//!
//! The attack this guards against: location certificates are public (every shard file carries
//! them), so anyone can write a shard file with their own root key, their own commitment and
//! envelopes sealed to the real location keys. The genuine cards decrypt those envelopes, the
//! envelopes' signatures check out against the root certificate the same file embeds, and the
//! shares recombine to the attacker's secret: a recovery that trusted the file would then sign
//! with a key the attacker knows.

mod common;

use std::cell::Cell;
use std::collections::HashMap;

use ceremony::card::{CardError, CardSerial, LocationCard, SoftwareCard};
use ceremony::ceremony::paths;
use ceremony::envelope::{self, Envelope, EnvelopeHeader, OpenShareError};
use ceremony::keys::{self, CardImport, RootKey};
use ceremony::openpgp::Cert;
use ceremony::openpgp::parse::Parse;
use ceremony::pgp::OpenError;
use ceremony::recombine;
use ceremony::recovery::{PinError, PinnedRoot, RecoveryError};
use ceremony::request::Request;
use ceremony::secret::{CardPins, Pin, RootSecret, SharedSecret};
use ceremony::shamir;
use ceremony::shardfile::{SealedShare, ShardFile};
use ceremony::storage::OutputFile;
use ceremony::verify::{self, Failure};
use common::*;

const ID: &str = "recovery-pin";

/// A finished 2-of-3 generation ceremony, its cards and each holder's user PIN.
struct Generation {
    files: Vec<OutputFile>,
    cards: Vec<SoftwareCard>,
    pins: Vec<Pin>,
}

fn generation(id: &str, seed: u8) -> Generation {
    let f = fixture_with(id, 3, 2, &[1, 1, 1]);
    let done = run(&f, seed);
    let root = Cert::from_bytes(file(&done.files, paths::ROOT_CERT)).unwrap();
    let pins = (1..=3)
        .map(|i| user_pin(&f, &done.files, &root, i))
        .collect();
    Generation {
        cards: done.cards.into_iter().map(|mut c| c.remove(0)).collect(),
        files: done.files,
        pins,
    }
}

fn reader(files: &[OutputFile]) -> impl Fn(&str) -> std::io::Result<Vec<u8>> + use<> {
    let map: HashMap<String, Vec<u8>> = files
        .iter()
        .map(|f| (f.path.clone(), f.bytes.clone()))
        .collect();
    move |p: &str| {
        map.get(p)
            .cloned()
            .ok_or_else(|| std::io::Error::new(std::io::ErrorKind::NotFound, "missing"))
    }
}

/// The error of a call that must fail (an opened envelope has no `Debug`: it holds a share).
fn refused<T, E>(r: Result<T, E>) -> E {
    match r {
        Ok(_) => panic!("should be refused"),
        Err(e) => e,
    }
}

fn pin(files: &[OutputFile]) -> PinnedRoot {
    PinnedRoot::from_generation(&reader(files)).expect("the generation folder verifies")
}

fn replace(files: &[OutputFile], path: &str, bytes: Vec<u8>) -> Vec<OutputFile> {
    files
        .iter()
        .map(|f| OutputFile {
            path: f.path.clone(),
            bytes: if f.path == path {
                bytes.clone()
            } else {
                f.bytes.clone()
            },
        })
        .collect()
}

/// A location card that counts the decryptions asked of it.
struct Counting<'a> {
    card: &'a mut SoftwareCard,
    ecdh: &'a Cell<usize>,
}

impl LocationCard for Counting<'_> {
    fn serial(&mut self) -> Result<CardSerial, CardError> {
        self.card.serial()
    }
    fn holds_keys(&mut self) -> Result<bool, CardError> {
        self.card.holds_keys()
    }
    fn provision(
        &mut self,
        key: &CardImport<'_>,
        pins: &CardPins,
    ) -> Result<CardSerial, CardError> {
        self.card.provision(key, pins)
    }
    fn ecdh(&mut self, pin: &Pin, point: &[u8; 32]) -> Result<SharedSecret, CardError> {
        self.ecdh.set(self.ecdh.get() + 1);
        self.card.ecdh(pin, point)
    }
}

/// The attacker's shard file for the genuine ceremony: the same public facts (ceremony id,
/// plan hash, threshold, key time, holders, location certificates), but the attacker's own
/// root key and secret, so their own commitment, and envelopes made with the crate's own
/// sealing, signed by the attacker's root and encrypted to the genuine location keys.
fn substituted(genuine: &ShardFile) -> (ShardFile, RootKey) {
    let secret = RootSecret::from_slice(&[0xA7; 32]).unwrap();
    let root = RootKey::derive(&secret, &genuine.ceremony_id, genuine.key_time).unwrap();
    let commitment = keys::commitment(&secret, &genuine.ceremony_id);
    let shares =
        shamir::split(&secret, genuine.threshold, genuine.count, &mut seeded(0xA7)).unwrap();
    let sealed = genuine
        .shares
        .iter()
        .zip(shares)
        .map(|(g, share)| {
            let env = Envelope {
                header: EnvelopeHeader {
                    ceremony_id: genuine.ceremony_id.clone(),
                    index: g.index,
                    threshold: genuine.threshold,
                    count: genuine.count,
                    key_time: genuine.key_time,
                    plan_hash: genuine.plan_hash,
                    commitment,
                    root_fingerprint: root.fingerprint().as_bytes().to_vec(),
                },
                share,
            };
            SealedShare {
                index: g.index,
                holder: g.holder.clone(),
                location_cert: g.location_cert.clone(),
                message: envelope::seal(&env, &root, &g.location_cert).unwrap(),
            }
        })
        .collect();
    let forged = ShardFile {
        root_cert: root.public_cert(),
        shares: sealed,
        ..genuine.clone()
    };
    // A well-formed shard file: it parses like any other.
    let forged = ShardFile::parse(&forged.to_toml()).expect("the substituted file parses");
    (forged, root)
}

#[test]
fn a_substituted_shard_file_is_refused_and_the_genuine_one_opens() {
    let mut g = generation(ID, 41);
    let pinned = pin(&g.files);
    let genuine =
        ShardFile::parse(std::str::from_utf8(file(&g.files, paths::SHARDS)).unwrap()).unwrap();
    let (forged, attacker) = substituted(&genuine);
    assert_ne!(attacker.fingerprint(), *pinned.root_fingerprint());

    // Why pinning is needed: trusting the file's own certificates, the genuine cards open the
    // attacker's envelopes and the shares recombine to the attacker's key.
    let recovered = {
        let cards = &mut g.cards;
        let pins = &g.pins;
        recombine::recover(&forged, &[3, 1], &mut |s| {
            let i = usize::from(s.index) - 1;
            envelope::open_with_card(
                &s.message,
                &mut cards[i],
                &pins[i],
                &s.location_cert,
                &forged.root_cert,
            )
        })
        .expect("the unpinned path is fooled")
    };
    assert_eq!(recovered.root.fingerprint(), attacker.fingerprint());

    // The pinned path refuses the file as a whole, naming the root fingerprint.
    let e = pinned.check_shard_file(&forged).unwrap_err();
    assert_eq!(
        e,
        RecoveryError::ShardFileMismatch {
            field: "root_fingerprint".into(),
            expected: pinned.root_fingerprint().to_hex(),
            found: attacker.fingerprint().to_hex(),
        }
    );
    assert!(
        e.to_string()
            .starts_with("the shard file is not the generation ceremony's: its root_fingerprint"),
        "{e}"
    );
    // Even with the genuine root certificate put back in it, each envelope differs from the
    // one the signed transcript records.
    let relabelled = ShardFile {
        root_cert: genuine.root_cert.clone(),
        ..forged.clone()
    };
    assert!(matches!(
        pinned.check_shard_file(&relabelled),
        Err(RecoveryError::ShardFileMismatch { ref field, .. }) if field == "share 1 message SHA-256"
    ));

    // Each of the attacker's envelopes is refused before the card is asked to decrypt it.
    for index in 1..=3u8 {
        let i = usize::from(index) - 1;
        let calls = Cell::new(0);
        let mut card = Counting {
            card: &mut g.cards[i],
            ecdh: &calls,
        };
        let e = refused(pinned.open_message(
            index,
            &forged.share(index).unwrap().message,
            &mut card,
            &g.pins[i],
        ));
        assert_eq!(
            e,
            RecoveryError::NotTheSealedShare {
                index,
                expected: ceremony::hex::encode(&genuine.share(index).unwrap().message_sha256()),
                found: ceremony::hex::encode(&forged.share(index).unwrap().message_sha256()),
            }
        );
        assert!(
            e.to_string()
                .contains("is not the one the generation transcript records"),
            "{e}"
        );
        assert_eq!(calls.get(), 0, "holder {index}'s card was not used");
    }

    // And what the pinned path decrypts with (the pinned location certificate, the pinned
    // root certificate) refuses the attacker's envelope on its signature, card or no card.
    let e = refused(envelope::open_with_card(
        &forged.share(2).unwrap().message,
        &mut g.cards[1],
        &g.pins[1],
        &pinned.share(2).unwrap().location_cert,
        pinned.root_cert(),
    ));
    assert!(
        matches!(e, OpenShareError::Open(OpenError::BadSignature(_))),
        "{e:?}"
    );

    // The genuine shares open through the pinned path, in any order, and recombine to the
    // pinned root.
    let e3 = pinned.open_share(3, &mut g.cards[2], &g.pins[2]).unwrap();
    let e1 = pinned
        .open_message(
            1,
            &genuine.share(1).unwrap().message,
            &mut g.cards[0],
            &g.pins[0],
        )
        .unwrap();
    assert_eq!((e3.header.index, e1.header.index), (3, 1));
    assert_eq!(pinned.check_shard_file(&genuine), Ok(()));
    let recovered = pinned.recombine(&[&e3, &e1]).unwrap();
    assert_eq!(recovered.root.fingerprint(), *pinned.root_fingerprint());
    assert_eq!(recovered.indices, [3, 1]);

    // A genuine envelope under another holder's index is not that holder's share.
    assert!(matches!(
        pinned.open_message(
            2,
            &genuine.share(1).unwrap().message,
            &mut g.cards[0],
            &g.pins[0]
        ),
        Err(RecoveryError::NotTheSealedShare { index: 2, .. })
    ));
    // The wrong card for a holder: the pinned location key is not on it, so its answer does
    // not decrypt the session key.
    let e = refused(pinned.open_share(2, &mut g.cards[0], &g.pins[0]));
    assert!(
        matches!(
            e,
            RecoveryError::Open {
                index: 2,
                source: OpenShareError::Open(OpenError::DecryptionFailed(_)),
                ..
            }
        ),
        "{e:?}"
    );
    assert!(e.to_string().starts_with("holder 2 (Holder 002): "), "{e}");
}

#[test]
fn the_pin_is_what_the_verifier_and_the_transcript_say() {
    let g = generation(ID, 42);
    let pinned = pin(&g.files);
    let report = verify::verify_with(&reader(&g.files)).unwrap();
    let root = Cert::from_bytes(file(&g.files, paths::ROOT_CERT)).unwrap();
    assert_eq!(pinned.root_cert().fingerprint(), root.fingerprint());
    assert_eq!(pinned.root_fingerprint().to_hex(), report.root_fingerprint);
    assert_eq!(pinned.ceremony_id(), ID);
    assert_eq!(pinned.final_words(), report.transcript_final_words);
    assert_eq!(
        ceremony::hex::encode(&pinned.final_hash()),
        report.transcript_final_hash
    );
    assert_eq!(pinned.report(), &report);
    assert_eq!(
        pinned.expected().root_fingerprint,
        root.fingerprint().as_bytes()
    );
    assert_eq!(pinned.shares().len(), 3);
    let shards =
        ShardFile::parse(std::str::from_utf8(file(&g.files, paths::SHARDS)).unwrap()).unwrap();
    for (p, s) in pinned.shares().iter().zip(&shards.shares) {
        assert_eq!(p.index, s.index);
        assert_eq!(p.holder, holder_name(usize::from(s.index)));
        assert_eq!(p.location_cert.fingerprint(), s.location_cert.fingerprint());
        assert_eq!(p.message, s.message);
        assert_eq!(p.message_sha256, s.message_sha256());
    }
    assert!(pinned.share(0).is_none() && pinned.share(4).is_none());

    // From a folder on disk too.
    let dir = tempfile::tempdir().unwrap();
    for f in &g.files {
        let path = dir.path().join(&f.path);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, &f.bytes).unwrap();
    }
    let from_dir = PinnedRoot::from_dir(dir.path()).unwrap();
    assert_eq!(from_dir.root_fingerprint(), pinned.root_fingerprint());
    assert_eq!(from_dir.final_words(), pinned.final_words());
}

#[test]
fn a_folder_that_does_not_verify_pins_nothing() {
    let g = generation(ID, 43);
    let genuine =
        ShardFile::parse(std::str::from_utf8(file(&g.files, paths::SHARDS)).unwrap()).unwrap();
    let (forged, _) = substituted(&genuine);

    // The substituted shard file put into the genuine folder: its hash is not the transcript's.
    let files = replace(&g.files, paths::SHARDS, forged.to_toml().into_bytes());
    let e = PinnedRoot::from_generation(&reader(&files)).unwrap_err();
    assert!(
        matches!(e, PinError::Verify(Failure::Mismatch { ref what, .. }) if what == "SHA-256 of shards.toml"),
        "{e}"
    );
    assert!(
        e.to_string()
            .starts_with("the generation folder does not verify: "),
        "{e}"
    );

    // A missing transcript signature.
    let files: Vec<OutputFile> = g
        .files
        .iter()
        .filter(|f| f.path != paths::TRANSCRIPT_SIG)
        .map(|f| OutputFile {
            path: f.path.clone(),
            bytes: f.bytes.clone(),
        })
        .collect();
    assert!(matches!(
        PinnedRoot::from_generation(&reader(&files)),
        Err(PinError::Verify(Failure::Unreadable { .. }))
    ));
}

fn request(id: &str, root: &str, time: &str, operation: &str) -> Request {
    Request::parse(&format!(
        "format = \"sherd-request/1\"\nceremony_id = \"{id}\"\nroot_fingerprint = \"{root}\"\n\
         time = {time}\n\n{operation}"
    ))
    .unwrap()
}

#[test]
fn requests_for_another_ceremony_root_or_holder_are_refused() {
    let g = generation(ID, 44);
    let pinned = pin(&g.files);
    let root = pinned.root_fingerprint().to_hex();
    let later = "2027-03-01T10:00:00Z";
    let prove = "[prove-quorum]\nchallenge = \"block 1\"\n";
    assert_eq!(
        pinned.check_request(&request(ID, &root, later, prove)),
        Ok(())
    );
    // The plan time itself is the earliest.
    assert_eq!(
        pinned.check_request(&request(ID, &root, PLAN_TIME_STR, prove)),
        Ok(())
    );
    // The fingerprint's case does not matter.
    assert_eq!(
        pinned.check_request(&request(ID, &root.to_ascii_lowercase(), later, prove)),
        Ok(())
    );

    assert_eq!(
        pinned.check_request(&request("another-ceremony", &root, later, prove)),
        Err(RecoveryError::OtherCeremony {
            request: "another-ceremony".into(),
            pinned: ID.into()
        })
    );

    // A whole folder of another ceremony under the same id verifies on its own, but its root
    // is not the one a request for the genuine key names, and its final words differ from
    // those the witnesses wrote down.
    let other = generation(ID, 45);
    let other_pinned = pin(&other.files);
    assert_ne!(other_pinned.final_words(), pinned.final_words());
    let e = other_pinned
        .check_request(&request(ID, &root, later, prove))
        .unwrap_err();
    assert_eq!(
        e,
        RecoveryError::OtherRoot {
            request: root.clone(),
            pinned: other_pinned.root_fingerprint().to_hex()
        }
    );
    assert!(
        e.to_string()
            .contains("the generation transcript's root key"),
        "{e}"
    );

    assert_eq!(
        pinned.check_request(&request(ID, &root, "2026-11-24T08:59:59Z", prove)),
        Err(RecoveryError::RequestBeforeKey {
            request: "2026-11-24T08:59:59Z".into(),
            key: PLAN_TIME_STR.into()
        })
    );

    let replace = |h: u8| format!("[replace-card]\nholder = {h}\ncards = 1\n");
    assert_eq!(
        pinned.check_request(&request(ID, &root, later, &replace(3))),
        Ok(())
    );
    assert_eq!(
        pinned.check_request(&request(ID, &root, later, &replace(4))),
        Err(RecoveryError::NoSuchHolder {
            plan: "the generation plan",
            holder: 4,
            count: 3
        })
    );
    assert_eq!(
        pinned
            .open_share(4, &mut SoftwareCard::new("000F:00000009"), &g.pins[0])
            .err(),
        Some(RecoveryError::NoSuchHolder {
            plan: "the generation plan",
            holder: 4,
            count: 3
        })
    );
}
