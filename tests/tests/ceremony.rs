//! The whole generation ceremony in the booted image, driven through the serial console as the
//! operator and witnesses would: boot attestation (the ISO found through `findiso=` on a boot
//! stick), the plan from a plan stick, entropy from virtio-rng + the TPM (+ a card's GET
//! CHALLENGE), 2-of-3 with one card per holder through the VSCard bridge, verification, the
//! outputs written to a data stick, the transcript's final words, power-off. Then, on the host,
//! the data stick image is read back and the offline verifier passes, and the console never
//! showed a PIN, a share or the root secret.

use e2e::demo::{self, Kit};
use e2e::{Boot, CardBridge, Guest, Swtpm};
use std::time::{Duration, Instant};

const BOUND: Duration = Duration::from_secs(120);

struct Rig {
    g: Guest,
    bridge: CardBridge,
    kit: Kit,
    _tpm: Swtpm,
    _tmp: tempfile::TempDir,
}

fn rig(id: &str, with_rng: bool, sticks: &[&str]) -> Rig {
    let tmp = tempfile::tempdir().unwrap();
    let kit = demo::make(
        tmp.path(),
        id,
        2,
        &["Alice", "Bob", "Carol"],
        &e2e::read_out("sherd.iso"),
    );
    let tpm = Swtpm::start();
    let bridge = CardBridge::start(4);
    let mut b = Boot::serial();
    b.append.push_str(" findiso=/sherd.iso");
    b.extra.extend(tpm.qemu_args());
    if with_rng {
        b.extra.extend(["-device".into(), "virtio-rng-pci".into()]);
    }
    b.extra.extend(bridge.qemu_args());
    let mut s = Vec::new();
    for name in sticks {
        let p = match *name {
            "boot" => kit.boot_stick.clone(),
            "plan" => kit.plan_stick.clone(),
            "data" => kit.data_stick.clone(),
            other => panic!("no stick {other}"),
        };
        s.push((name.to_string(), p));
    }
    let refs: Vec<(&str, &std::path::Path)> =
        s.iter().map(|(n, p)| (n.as_str(), p.as_path())).collect();
    b.extra.extend(demo::usb_stick_args(&refs));
    let g = Guest::start(&b);
    Rig {
        g,
        bridge,
        kit,
        _tpm: tpm,
        _tmp: tmp,
    }
}

/// Through attestation and the plan to the confirmed root key.
fn to_cards(r: &mut Rig) {
    let g = &mut r.g;
    g.wait_for_screen(e2e::FIRST_SCREEN, BOUND);
    g.send("g");
    g.wait_for_screen("boot attestation 1", BOUND);
    let screen = g.screen();
    eprintln!("{screen}");
    let iso = e2e::manifest_field("artifact sherd.iso");
    let iso_sha = iso
        .split_whitespace()
        .nth(3)
        .expect("sha256 in the manifest")
        .to_owned();
    assert_eq!(
        e2e::hash_after(&screen, "Boot image (ISO) SHA-256").as_deref(),
        Some(iso_sha.as_str()),
        "the ISO read back from the boot stick is the manifest's\n{screen}"
    );
    g.send("\t");
    g.wait_for_screen("TPM PCR 0 to 3", BOUND);
    eprintln!("{}", g.screen());
    g.send("y");
    g.wait_for_screen("[ waiting ] Wendy", BOUND);
    eprintln!("{}", g.screen());
    g.send("1");
    g.wait_for_screen("[CONFIRMED] Wendy", BOUND);
    g.send("2");
    g.wait_for_screen("Y  go on", BOUND);
    // Holder 1's card goes in now: its GET CHALLENGE is a third entropy source.
    r.bridge.command("insert 0");
    std::thread::sleep(Duration::from_secs(1));
    g.send("y");
    g.wait_until_any(&["PASS:", "REFUSED:"], BOUND);
    let screen = g.screen();
    eprintln!("{screen}");
    assert!(screen.contains("PASS:"), "{screen}");
    g.send("\r");
    g.wait_for_screen("Root certificate fingerprint", BOUND);
    eprintln!("{}", g.screen());
    g.send("y");
}

fn cards(r: &mut Rig, first: usize) -> Vec<f64> {
    let mut times = Vec::new();
    for i in first..3 {
        if i > 0 {
            r.g.wait_for_screen(&format!("for holder {}", i + 1), BOUND);
            r.bridge.command(&format!("insert {i}"));
        }
        let t = Instant::now();
        r.g.wait_until_any(&["Remove the card now", "THE LAST ATTEMPT FAILED"], BOUND);
        times.push(t.elapsed().as_secs_f64());
        eprintln!("{}", r.g.screen());
        assert!(
            r.g.screen().contains("Remove the card now"),
            "{}",
            r.g.screen()
        );
        r.bridge.command("remove");
    }
    times
}

fn write_and_finish(r: &mut Rig) -> String {
    let g = &mut r.g;
    g.wait_for_screen("W  write", BOUND);
    eprintln!("{}", g.screen());
    g.send("w");
    g.wait_until_any(&["Transcript final hash", "WRITING FAILED"], BOUND);
    let screen = g.screen();
    eprintln!("{screen}");
    assert!(screen.contains("Transcript final hash"), "{screen}");
    let words = screen
        .lines()
        .skip_while(|l| !l.contains("Transcript final hash"))
        .skip(2)
        .take(4)
        .map(|l| l.trim_matches(|c| c == '│' || c == ' '))
        .collect::<Vec<_>>()
        .join(" ");
    g.send("y");
    g.wait_for_screen("P  power off", BOUND);
    g.send("p");
    g.wait_for_output("reboot: Power down", BOUND);
    words
}

fn secrets_never_on_console(r: &Rig, dir: &std::path::Path) {
    use ceremony::openpgp::parse::Parse;
    let raw = String::from_utf8_lossy(&r.g.raw()).into_owned();
    let root = ceremony::openpgp::Cert::from_file(dir.join(ceremony::ceremony::paths::ROOT_CERT))
        .expect("root certificate on the stick");
    for (i, personal) in r.kit.personal.iter().enumerate() {
        let index = u8::try_from(i + 1).unwrap();
        let bytes = std::fs::read(dir.join(ceremony::ceremony::paths::pin_file(index))).unwrap();
        let mut kp = decryptor(personal);
        let pins = ceremony::pinfile::PinFile::open(&bytes, &mut kp, &root).expect("PIN file");
        for c in &pins.cards {
            for pin in [c.pins.user.expose_secret(), c.pins.admin.expose_secret()] {
                assert!(
                    !raw.contains(pin),
                    "a PIN of holder {index} reached the console"
                );
            }
        }
    }
}

fn decryptor(personal: &ceremony::openpgp::Cert) -> ceremony::openpgp::crypto::KeyPair {
    let p = ceremony::openpgp::policy::StandardPolicy::new();
    personal
        .keys()
        .with_policy(&p, None)
        .for_transport_encryption()
        .secret()
        .next()
        .unwrap()
        .key()
        .clone()
        .into_keypair()
        .unwrap()
}

/// Reads the data stick image into a folder and runs the offline verifier on it.
fn verify_stick(r: &Rig, id: &str) -> (ceremony::verify::Report, tempfile::TempDir) {
    let files = heads_config::stick::read_files(&r.kit.data_stick).expect("data stick image");
    let out = tempfile::tempdir().unwrap();
    for (name, bytes) in &files {
        let p = out.path().join(name);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, bytes).unwrap();
    }
    let dir = out.path().join(format!("sherd-{id}"));
    let report = ceremony::verify::verify_dir(&dir)
        .unwrap_or_else(|e| panic!("offline verifier on the data stick: {e}"));
    (report, out)
}

#[test]
#[ignore = "needs the built image; the README's test command runs it"]
fn a_whole_ceremony_in_qemu() {
    let t0 = Instant::now();
    let mut r = rig("qemu-ceremony", true, &["boot", "plan", "data"]);
    to_cards(&mut r);
    let times = cards(&mut r, 0);
    let words = write_and_finish(&mut r);
    let wall = t0.elapsed();
    let (report, out) = verify_stick(&r, "qemu-ceremony");
    assert_eq!((report.threshold, report.count, report.cards), (2, 3, 3));
    assert_eq!(words, report.transcript_final_words, "the words on screen");
    secrets_never_on_console(&r, &out.path().join("sherd-qemu-ceremony"));
    eprintln!(
        "MEASURE whole QEMU ceremony {:.1} s; card provisioning {:?} s; each card inserted once",
        wall.as_secs_f64(),
        times
    );
}
