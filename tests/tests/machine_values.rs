//! The boot screen's "this machine's values" (M) in the booted image: the page shows PCR 0-7
//! and the attestation key's name, W writes the plan's `[machine]` table to the data stick
//! (not to the boot stick beside it), and the table, added to a plan, parses to the values on
//! the screen. A second boot with the same TPM state shows the same key name: the key is the
//! TPM's, not the boot's.

use ceremony_tui::machine::{self, MachineView};
use e2e::{Boot, Guest, Swtpm};
use std::path::Path;
use std::time::{Duration, Instant};

const BOUND: Duration = Duration::from_secs(180);

/// The tokens of a screen line, without the box around it.
fn tokens(line: &str) -> Vec<&str> {
    line.split(|c: char| c.is_whitespace() || c == '│')
        .filter(|t| !t.is_empty())
        .collect()
}

fn hex_array<const N: usize>(s: &str) -> Option<[u8; N]> {
    ceremony::hex::decode(s).and_then(|v| v.try_into().ok())
}

fn hex32(s: &str) -> [u8; 32] {
    hex_array(s).unwrap_or_else(|| panic!("not 64 hex digits: {s}"))
}

/// What the first page shows: PCR 0-7 (the `PCRn` lines, grouped hex) and the key name (the
/// line after its heading).
fn first_page(screen: &str) -> ([[u8; 32]; 8], [u8; 34]) {
    let mut pcrs = [None; 8];
    let mut key = None;
    let mut lines = screen.lines();
    while let Some(line) = lines.next() {
        let t = tokens(line);
        if let Some(i) = t.first().and_then(|w| w.strip_prefix("PCR"))
            && let Ok(i) = i.parse::<usize>()
            && t.len() == 9
        {
            pcrs[i] = Some(hex32(&t[1..].concat()));
        }
        if line.contains("Attestation key name") {
            let hex = tokens(lines.next().expect("a line after the heading")).concat();
            key = hex_array::<34>(&hex);
        }
    }
    let pcrs = pcrs.map(|p| p.unwrap_or_else(|| panic!("8 PCR values on:\n{screen}")));
    (
        pcrs,
        key.unwrap_or_else(|| panic!("a key name on:\n{screen}")),
    )
}

/// Boots with the TPM state in `state`, a boot stick holding the ISO and the data stick;
/// presses M and reads the first page, leafs through the others checking the words, then W
/// when `write`. Returns what was shown and the screen after W.
fn boot(state: &Path, sticks: &[(&str, &Path)], write: bool) -> ([[u8; 32]; 8], [u8; 34], String) {
    let tpm = Swtpm::start_in(state);
    let mut b = Boot::serial();
    b.append.push_str(" findiso=/sherd.iso");
    b.extra.extend(tpm.qemu_args());
    b.extra
        .extend(["-device".into(), "qemu-xhci,id=xhci".into()]);
    b.extra.extend(e2e::demo::usb_stick_args(sticks));
    let mut g = Guest::start(&b);
    g.wait_for_screen(e2e::FIRST_SCREEN, BOUND);
    assert!(
        g.screen().contains("M  this machine's values"),
        "{}",
        g.screen()
    );
    g.send("m");
    g.wait_for_screen("[page 1 of 6]", BOUND);
    let screen = g.screen();
    eprintln!("{screen}");
    assert!(!screen.contains("NOT READ"), "{screen}");
    let (pcrs, key) = first_page(&screen);
    assert_eq!(&key[..2], &[0x00, 0x0b], "a TPM name with SHA-256");
    // Each value again as rows to read aloud: hex and PGP words.
    for (page, first) in [(2, 0), (3, 2), (4, 4), (5, 6)] {
        g.send("\t");
        g.wait_for_screen(&format!("[page {page} of 6]"), BOUND);
        let screen = g.screen();
        for i in [first, first + 1] {
            let (hex, words) = e2e::read_aloud_after(&screen, &format!("PCR{i} (SHA-256 bank)"))
                .unwrap_or_else(|| panic!("PCR{i} as words on:\n{screen}"));
            assert_eq!(hex, ceremony::hex::encode(&pcrs[i]), "{screen}");
            assert_eq!(words, ceremony::words::to_phrase(&pcrs[i]), "{screen}");
        }
    }
    g.send("\x1b[6~"); // PgDn
    g.wait_for_screen("[page 6 of 6]", BOUND);
    let screen = g.screen();
    let (hex, words) = e2e::read_aloud_after(&screen, "Attestation key name (quote_key)")
        .unwrap_or_else(|| panic!("the key as words on:\n{screen}"));
    assert_eq!(hex, ceremony::hex::encode(&key));
    assert_eq!(words, ceremony::words::to_phrase(&key));
    let mut after = String::new();
    if write {
        g.send("w");
        // "NOT WRITTEN: <why>" too: the assertion below shows why.
        g.wait_until_any(&["WRITTEN: sherd-machine", "NOT WRITTEN:"], BOUND);
        after = g.screen();
        eprintln!("{after}");
    }
    // Esc: back to the first screen, then power off.
    g.send("\x1b");
    g.wait_for_screen(e2e::FIRST_SCREEN, BOUND);
    g.send("p");
    g.wait_for_output("reboot: Power down", Duration::from_secs(60));
    g.wait_exit(Duration::from_secs(30));
    drop(tpm);
    (pcrs, key, after)
}

/// The written file, added to a valid plan, parses as that plan's `[machine]` table.
fn plan_with(table: &str) -> ceremony::plan::Plan {
    let names = vec!["Alice".to_owned(), "Bob".to_owned()];
    let personal: Vec<_> = names
        .iter()
        .map(|n| sherd_rehearsal::kit::personal_key(n))
        .collect();
    let mut plan = sherd_rehearsal::kit::plan_text("machine-test", 2, &names, &personal);
    plan.push('\n');
    plan.push_str(table);
    ceremony::plan::Plan::parse(&plan).unwrap_or_else(|e| panic!("{e}\n{table}"))
}

#[test]
fn the_written_table_parses_in_a_plan() {
    let v = MachineView {
        pcrs: std::array::from_fn(|i| Ok([i as u8; 32])),
        pcr_source: "test".into(),
        key_name: Ok(std::array::from_fn(|j| if j == 1 { 0x0b } else { j as u8 })),
        written: None,
    };
    let m = plan_with(&v.file_text().unwrap())
        .machine
        .expect("a machine table");
    assert_eq!(m.name, machine::PLACEHOLDER_NAME);
    assert_eq!(m.pcrs, std::array::from_fn(|i| Some([i as u8; 32])));
    assert_eq!(m.quote_key, v.key_name.ok());
}

#[test]
#[ignore = "needs the built image; the README's test command runs it"]
fn m_shows_this_machines_values_w_writes_them_and_the_key_is_the_same_next_boot() {
    let t0 = Instant::now();
    let tmp = tempfile::tempdir().unwrap();
    let state = tmp.path().join("tpm-state");
    let data = tmp.path().join("data-stick.img");
    let boot_stick = tmp.path().join("boot-stick.img");
    heads_config::stick::write_disk_image(&data, "DATA", &[], 0).unwrap();
    let iso = e2e::read_out("sherd.iso");
    heads_config::stick::write_disk_image(&boot_stick, "SHERD", &[("sherd.iso", &iso)], 0).unwrap();

    let sticks = [("boot", boot_stick.as_path()), ("data", data.as_path())];
    let (pcrs, key, after) = boot(&state, &sticks, true);
    let path = format!("{}/{}", machine::DIR, machine::FILE);
    assert!(
        after.contains(&format!("WRITTEN: {path} on")),
        "one data stick written: {after}"
    );

    // On the data stick, and only there.
    let files = heads_config::stick::read_files(&data).unwrap();
    let (_, bytes) = files
        .iter()
        .find(|(n, _)| *n == path)
        .unwrap_or_else(|| panic!("{path} on the data stick: {files:?}"));
    let boot_files = heads_config::stick::read_files(&boot_stick).unwrap();
    assert!(
        boot_files.iter().all(|(n, _)| !n.starts_with(machine::DIR)),
        "nothing written to the boot stick: {:?}",
        boot_files.iter().map(|(n, _)| n).collect::<Vec<_>>()
    );
    let table = String::from_utf8(bytes.clone()).unwrap();
    eprintln!("{table}");
    let m = plan_with(&table).machine.expect("a machine table");
    assert_eq!(m.name, machine::PLACEHOLDER_NAME);
    assert_eq!(
        m.pcrs,
        pcrs.map(Some),
        "the PCRs written are the ones shown"
    );
    assert_eq!(m.quote_key, Some(key), "the key written is the one shown");

    // The same TPM on a second boot: the same key.
    let (pcrs2, key2, _) = boot(&state, &sticks, false);
    assert_eq!(
        key2, key,
        "the same TPM state gives the same attestation key"
    );
    eprintln!(
        "PCRs {} on the second boot; both boots in {:.0} s",
        if pcrs2 == pcrs {
            "the same"
        } else {
            "DIFFERENT"
        },
        t0.elapsed().as_secs_f64()
    );
}
