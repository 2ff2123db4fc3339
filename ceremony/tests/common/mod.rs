//! Shared fixtures: personal certificates, plans, and a full simulated ceremony with software
//! cards standing in for location cards.
#![allow(dead_code)]

use std::time::{Duration, UNIX_EPOCH};

use ceremony::card::SoftwareCard;
use ceremony::ceremony::{FinishView, Planned, Record};
use ceremony::openpgp::Cert;
use ceremony::openpgp::cert::{CertBuilder, CipherSuite};
use ceremony::openpgp::serialize::SerializeInto;
use ceremony::record::{Fields, Note, WitnessConfirm};
use ceremony::storage::OutputFile;
use rand_chacha::ChaCha20Rng;
use rand_core::SeedableRng;

pub const PLAN_TIME: u32 = 1_795_510_800;
pub const PLAN_TIME_STR: &str = "2026-11-24T09:00:00Z";

pub fn seeded(seed: u8) -> ChaCha20Rng {
    ChaCha20Rng::from_seed([seed; 32])
}

/// A holder's personal certificate with secret keys (the test plays the holder).
pub fn personal(name: &str) -> Cert {
    CertBuilder::general_purpose([name])
        .set_cipher_suite(CipherSuite::Cv25519)
        .set_creation_time(UNIX_EPOCH + Duration::from_secs(u64::from(PLAN_TIME) - 30 * 86_400))
        .set_validity_period(None)
        .generate()
        .expect("test key generation")
        .0
}

pub fn armored_public(cert: &Cert) -> String {
    String::from_utf8(
        cert.clone()
            .strip_secret_key_material()
            .armored()
            .to_vec()
            .unwrap(),
    )
    .unwrap()
}

pub struct Fixture {
    pub plan_text: String,
    pub names: Vec<String>,
    pub personal: Vec<Cert>,
    pub cards: Vec<u8>,
}

pub fn holder_name(i: usize) -> String {
    format!("Holder {i:03}")
}

/// A plan with `n` holders (holder i's backup is holder i+1), threshold `m`, `cards[i]` cards.
pub fn fixture_with(id: &str, n: usize, m: usize, cards: &[u8]) -> Fixture {
    let names: Vec<String> = (1..=n).map(holder_name).collect();
    let personal: Vec<Cert> = names.iter().map(|n| personal(n)).collect();
    let mut text = format!(
        "format = \"sherd-plan/1\"\nceremony_id = \"{id}\"\ntime = {PLAN_TIME_STR}\nthreshold = {m}\n\n"
    );
    for i in 0..n {
        text.push_str(&format!(
            "[[holder]]\nname = \"{}\"\nbackup = \"{}\"\ncards = {}\ncerts = [\n'''\n{}''',\n]\n\n",
            names[i],
            names[(i + 1) % n],
            cards[i],
            armored_public(&personal[i])
        ));
    }
    text.push_str(
        "[[witness]]\nname = \"Wendy Witness\"\n\n[[witness]]\nname = \"Walter Witness\"\n",
    );
    Fixture {
        plan_text: text,
        names,
        personal,
        cards: cards.to_vec(),
    }
}

pub fn fixture(id: &str, n: usize, m: usize) -> Fixture {
    let mut cards = vec![1u8; n];
    cards[0] = 2;
    fixture_with(id, n, m, &cards)
}

/// What a screen approves for a blank card: its own serial.
pub fn approve(card: &mut dyn ceremony::card::LocationCard) -> ceremony::ceremony::Approved {
    ceremony::ceremony::Approved {
        serial: card.serial().expect("a serial"),
        may_hold_keys: false,
    }
}

/// A caller's record with one field.
pub fn note(kind: &str, key: &str, value: &str) -> Record {
    Record::Note(Note::new(kind, Fields::new().with(key, value)).expect("a caller's kind"))
}

pub struct Done {
    pub files: Vec<OutputFile>,
    /// The finished ceremony (its plan and signed transcript).
    pub finished: ceremony::ceremony::Finished,
    pub view: FinishView,
    /// cards[holder-1][card-1]
    pub cards: Vec<Vec<SoftwareCard>>,
}

/// The entropy records the image's entropy step writes, for two physical hardware sources and
/// the kernel CSPRNG (the image writes them through `ceremony_tui::entropy_run`).
pub fn entropy_notes() -> Vec<Note> {
    let source = |kind: &str, identity: &str, counted: bool| {
        Note::new(
            "entropy.source",
            Fields::new()
                .with("source", kind)
                .with("identity", identity)
                .with("conditioning", "whitened")
                .with("healthy", "true")
                .with("counted", counted.to_string())
                .with("bytes", "256")
                .with("commitment", "ab".repeat(32))
                .with("virtual", "no")
                .with("credited-bits", "2048")
                .with("assessment", "claim")
                .with("claimed-h", "8"),
        )
        .expect("a caller's kind")
    };
    vec![
        Note::new(
            "entropy.policy",
            Fields::new()
                .with("hardware-sources", "2")
                .with("credited-bits", "320")
                .with("allow-virtual-hardware", "false")
                .with("hypervisor", "no"),
        )
        .expect("a caller's kind"),
        source("tpm", "/dev/tpmrm0: TPM 2.0 test", true),
        source("hwrng", "/dev/hwrng (test)", true),
        source("os-csprng", "getrandom(2) (kernel CSPRNG)", false),
        Note::new(
            "entropy.mixer",
            Fields::new().with("context", ceremony::verify::MIX_CONTEXT),
        )
        .expect("a caller's kind"),
    ]
}

/// Runs every step of a ceremony with software cards.
pub fn run(f: &Fixture, seed: u8) -> Done {
    let mut rng = seeded(seed);
    let mut c = Planned::new(&f.plan_text).expect("plan");
    c.record(&note("image.iso-sha256", "sha256", &"0".repeat(64)))
        .unwrap();
    c.record(&Record::WitnessConfirm(WitnessConfirm {
        name: "Wendy".into(),
        step: "plan".into(),
    }))
    .unwrap();
    for n in entropy_notes() {
        c.record(&Record::Note(n)).unwrap();
    }
    let (c, _) = c.generate_keys(&mut rng).expect("keys");
    let (mut c, _) = c.seal_shares(&mut rng).expect("seal");
    let mut cards = Vec::new();
    for (i, &k) in f.cards.iter().enumerate() {
        let mut hc = Vec::new();
        for j in 1..=k {
            let mut card = SoftwareCard::new(&format!("000F:{:04X}{:02X}", i + 1, j));
            let ok = approve(&mut card);
            c.provision_card(u8::try_from(i + 1).unwrap(), j, &mut card, &ok)
                .expect("card");
            hc.push(card);
        }
        cards.push(hc);
    }
    let c = c.cards_complete().expect("every card");
    let (c, _) = c.verify(&mut rng).expect("verify");
    let (finished, files, view) = c.finish().expect("finish");
    Done {
        files,
        finished,
        view,
        cards,
    }
}

pub fn file<'a>(files: &'a [OutputFile], path: &str) -> &'a [u8] {
    &files
        .iter()
        .find(|f| f.path == path)
        .unwrap_or_else(|| panic!("no {path}"))
        .bytes
}

/// A software decryptor for a holder's personal certificate (the test plays the holder).
pub fn decryptor_of(personal: &Cert) -> ceremony::openpgp::crypto::KeyPair {
    ceremony::pgp::software_decryptor(personal).expect("a personal key with its secret")
}

/// The first card's user PIN of holder `index`, read from the PIN file with the holder's key.
pub fn user_pin(
    f: &Fixture,
    files: &[OutputFile],
    root: &Cert,
    index: u8,
) -> ceremony::secret::Pin {
    let mut kp = decryptor_of(&f.personal[usize::from(index) - 1]);
    let pins = ceremony::pinfile::PinFile::open(
        file(files, &ceremony::ceremony::paths::pin_file(index)),
        &mut kp,
        root,
    )
    .unwrap();
    ceremony::secret::Pin::from_string(pins.cards[0].pins.user.expose_secret().to_string())
}

/// The fixture's plan with witness certificates: `certs[k-1]` for witness k ("Wendy Witness",
/// "Walter Witness"), `None` for none; `require` sets require_witness_signatures.
pub fn with_witness_certs(mut f: Fixture, certs: [Option<&Cert>; 2], require: bool) -> Fixture {
    let plain = "[[witness]]\nname = \"Wendy Witness\"\n\n[[witness]]\nname = \"Walter Witness\"\n";
    assert!(f.plan_text.ends_with(plain));
    f.plan_text.truncate(f.plan_text.len() - plain.len());
    if require {
        f.plan_text = f.plan_text.replacen(
            "threshold = ",
            "require_witness_signatures = true\nthreshold = ",
            1,
        );
    }
    for (name, cert) in ["Wendy Witness", "Walter Witness"].iter().zip(certs) {
        f.plan_text
            .push_str(&format!("[[witness]]\nname = \"{name}\"\n"));
        if let Some(c) = cert {
            f.plan_text
                .push_str(&format!("certs = ['''\n{}''']\n", armored_public(c)));
        }
        f.plan_text.push('\n');
    }
    f
}
pub mod recovery;
