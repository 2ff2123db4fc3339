//! The README's first command as a person runs it: `sherd-demo` (what `scripts/run` starts) in
//! a real pseudo-terminal whose fds 0, 1 and 2 are one open file description, as a login
//! terminal's are. The test types a whole 2-of-3 ceremony, card moves included (Ctrl-] 1..3,
//! Ctrl-] 0), as keys on that terminal, and reads the screen the demo draws. Part way through,
//! it sets O_NONBLOCK on the terminal's file description, as a child sharing it would (QEMU
//! does so to its standard streams): every key after that must still reach the guest. At the
//! end the data stick's files verify offline, and the terminal is back in the mode it was in.

use e2e::pty::PtySession;
use nix::fcntl::{FcntlArg, OFlag, fcntl};
use nix::sys::termios::LocalFlags;
use std::process::Command;
use std::time::{Duration, Instant};

const BOUND: Duration = Duration::from_secs(120);

/// Ctrl-], then the demo's command key.
fn demo_command(s: &mut PtySession, key: u8) {
    s.send(&[e2e::demo::COMMAND_PREFIX, key]);
}

#[test]
#[ignore = "needs the built image; the README's test command runs it"]
fn the_demo_in_a_terminal_walks_through_a_whole_ceremony() {
    let t0 = Instant::now();
    let out = e2e::out_dir();
    let bin = e2e::workspace_bin("e2e", "sherd-demo");
    // The demo builds the card bridge itself; built here first so its time is not the demo's.
    e2e::workspace_bin("vscard-bridge", "vscard-bridge");
    let dir = tempfile::tempdir().unwrap();
    let mut cmd = Command::new(bin);
    cmd.env("SHERD_DEMO_DIR", dir.path()).env("SHERD_OUT", &out);
    let mut s = PtySession::spawn(cmd, e2e::COLS, e2e::ROWS);
    let cooked = s.settings();
    assert!(
        cooked
            .local_flags
            .contains(LocalFlags::ICANON | LocalFlags::ECHO)
    );

    s.wait_for_screen(e2e::FIRST_SCREEN, BOUND);
    let raw = s.settings();
    assert!(
        !raw.local_flags.contains(LocalFlags::ICANON)
            && !raw.local_flags.contains(LocalFlags::ECHO),
        "the demo's terminal is raw while QEMU runs"
    );
    s.send(b"g");
    s.wait_for_screen("boot attestation 1", BOUND);
    // What QEMU did to the demo's terminal before: the keys must still arrive.
    let flags = OFlag::from_bits_truncate(fcntl(s.terminal(), FcntlArg::F_GETFL).unwrap());
    fcntl(s.terminal(), FcntlArg::F_SETFL(flags | OFlag::O_NONBLOCK)).unwrap();
    s.send(b"\t");
    s.wait_for_screen("boot attestation 2", BOUND);
    s.send(b"y");
    s.wait_for_screen("[ waiting ] Wendy", BOUND);
    s.send(b"1");
    s.wait_for_screen("[CONFIRMED] Wendy", BOUND);
    s.send(b"2");
    s.wait_for_screen("Y  go on", BOUND);
    // Holder 1's card goes in before entropy: its GET CHALLENGE is a source too.
    demo_command(&mut s, b'1');
    std::thread::sleep(Duration::from_secs(1));
    s.send(b"y");
    // The boot against the plan: no PCR can PASS under QEMU, so a deviation is recorded.
    e2e::deviation::record_deviation(&mut s, e2e::deviation::QEMU_REASON);
    s.wait_until_any(&["PASS:", "REFUSED:"], BOUND);
    assert!(s.screen().contains("PASS:"), "{}", s.screen());
    s.send(b"\r");
    s.wait_for_screen("Root certificate fingerprint", BOUND);
    let fingerprint = e2e::read_aloud_after(&s.screen(), "Root certificate fingerprint")
        .unwrap_or_else(|| panic!("fingerprint rows\n{}", s.screen()))
        .0;
    s.send(b"y");
    for card in 1..=3u8 {
        if card > 1 {
            s.wait_for_screen(&format!("for holder {card}"), BOUND);
            demo_command(&mut s, b'0' + card);
        }
        s.wait_for_screen("Remove the card now", BOUND);
        demo_command(&mut s, b'0');
    }
    s.wait_for_screen("W  write", BOUND);
    s.send(b"w");
    s.wait_for_screen("Transcript final hash", BOUND);
    let (_, words) = e2e::read_aloud_after(&s.screen(), "Transcript final hash")
        .unwrap_or_else(|| panic!("final hash rows\n{}", s.screen()));
    s.send(b"y");
    s.wait_for_screen("P  power off", BOUND);
    s.send(b"p");
    s.wait_for_output("Verify them as an auditor would", BOUND);
    let st = s.wait_exit(Duration::from_secs(60));
    assert!(st.success(), "sherd-demo exit status {st}");
    let wall = t0.elapsed();

    let after = s.settings();
    assert_eq!(
        after.local_flags, cooked.local_flags,
        "the terminal is back in the mode it was in"
    );
    let folder = dir.path().join("data-stick/sherd-demo-ceremony");
    let report = ceremony::verify::verify_dir(&folder)
        .unwrap_or_else(|e| panic!("the demo's data stick does not verify: {e}"));
    e2e::deviation::assert_recorded(&folder, e2e::deviation::QEMU_REASON);
    assert_eq!((report.threshold, report.count, report.cards), (2, 3, 3));
    assert_eq!(report.transcript_final_words, words, "the words on screen");
    assert_eq!(
        report.root_fingerprint.to_lowercase(),
        fingerprint.to_lowercase(),
        "the fingerprint on screen"
    );
    eprintln!(
        "MEASURE demo walk-through in a pseudo-terminal {:.1} s (build checks, boot and host copy included)",
        wall.as_secs_f64()
    );
}

/// Starts the demo in a terminal, waits for the first screen, does `stop`, and checks that the
/// demo says `says`, ends, and puts the terminal back.
fn stops_and_restores(stop: impl FnOnce(&mut PtySession), says: &str) {
    let bin = e2e::workspace_bin("e2e", "sherd-demo");
    e2e::workspace_bin("vscard-bridge", "vscard-bridge");
    let dir = tempfile::tempdir().unwrap();
    let mut cmd = Command::new(bin);
    cmd.env("SHERD_DEMO_DIR", dir.path());
    let mut s = PtySession::spawn(cmd, e2e::COLS, e2e::ROWS);
    let cooked = s.settings();
    s.wait_for_screen(e2e::FIRST_SCREEN, BOUND);
    stop(&mut s);
    s.wait_for_output(says, BOUND);
    s.wait_for_output("Nothing was written to the data stick", BOUND);
    let st = s.wait_exit(Duration::from_secs(60));
    assert!(st.success(), "sherd-demo exit status {st}");
    assert_eq!(s.settings().local_flags, cooked.local_flags);
}

/// Ctrl-] q stops QEMU; the demo says so, and puts the terminal back.
#[test]
#[ignore = "needs the built image; the README's test command runs it"]
fn the_demo_stops_on_ctrl_bracket_q_and_restores_the_terminal() {
    stops_and_restores(|s| demo_command(s, b'q'), "QEMU stopped (Ctrl-] q).");
}

/// A signal (here SIGTERM, as `kill` sends) stops QEMU the same way, and the terminal is put
/// back before the demo ends.
#[test]
#[ignore = "needs the built image; the README's test command runs it"]
fn the_demo_stops_on_sigterm_and_restores_the_terminal() {
    stops_and_restores(
        |s| {
            let pid = nix::unistd::Pid::from_raw(i32::try_from(s.pid()).unwrap());
            nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM).unwrap();
        },
        "SIGTERM received, so QEMU was stopped.",
    );
}
