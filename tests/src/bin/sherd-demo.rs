//! `sherd-demo`: walk through a whole ceremony in QEMU, in this terminal, with virtual hardware.
//!
//! Boots the built image (`out/`) with a software TPM, virtio-rng, a card reader holding
//! virtual OpenPGP cards, a boot stick with the ISO, a plan stick with throwaway holders, and an
//! empty data stick. Keys go to sherd's serial console, except after Ctrl-]:
//!   Ctrl-] 1..6  insert blank card 1..6      Ctrl-] 0  take the card out
//!   Ctrl-] q     stop QEMU                   Ctrl-] Ctrl-]  a Ctrl-] for the guest
//! Afterwards it copies the data stick's files out and says how to verify them.
//!
//! The demo's folder is `target/demo`, or `$SHERD_DEMO_DIR`.
//!
//! The terminal: QEMU gets pipes, never this terminal (it sets `O_NONBLOCK` on its standard
//! streams, which on a terminal is the demo's own input's file description too); the demo
//! copies QEMU's output to the terminal itself. The terminal is raw while QEMU runs and put
//! back on every way out: QEMU exiting, Ctrl-] q, the input ending, a signal, a panic.

use e2e::demo::{self, Key, KeyReader};
use e2e::tty::{self, RawMode, Signals};
use e2e::{CardBridge, Swtpm};
use std::io::{Read, Write};
use std::os::fd::AsFd;
use std::path::PathBuf;
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc::{RecvTimeoutError, Sender, channel};
use std::time::Duration;

const CARDS: usize = 6;

/// What the main loop hears from the threads.
enum Event {
    Key(Key),
    /// The terminal's input ended (end of file or an error): nobody can type any more.
    InputEnded(String),
    /// The guest's serial line could not take a key: QEMU is gone or going.
    GuestGone,
    Signal(nix::sys::signal::Signal),
}

/// Why the demo stopped QEMU itself.
enum Stop {
    Asked,
    InputEnded(String),
    Signal(nix::sys::signal::Signal),
}

fn main() {
    // Blocked before any thread starts (the card bridge and the harness start some), so every
    // thread inherits the mask and these signals arrive only at the signal thread. Children
    // start with an empty mask: std's Command resets it.
    let signals = Signals::block().expect("block signals");
    let ws = e2e::workspace();
    let out = e2e::out_dir();
    let iso = std::fs::read(out.join("sherd.iso")).unwrap_or_else(|e| {
        eprintln!(
            "{}: {e}; build the image first (./scripts/run does)",
            out.display()
        );
        std::process::exit(1)
    });
    let dir: PathBuf = std::env::var_os("SHERD_DEMO_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| ws.join("target/demo"));
    let _ = std::fs::remove_dir_all(&dir);
    let kit = demo::make(&dir, "demo-ceremony", 2, &["Alice", "Bob", "Carol"], &iso);
    let tpm = Swtpm::start();
    let log = std::fs::File::create(dir.join("card-bridge.log")).expect("demo folder");
    let mut bridge = CardBridge::start_with(CARDS, log.into());
    let mut boot = e2e::Boot::serial();
    boot.append.push_str(" findiso=/sherd.iso");
    boot.extra = vec!["-device".into(), "virtio-rng-pci".into()];
    let mut args = boot.qemu_args();
    args.extend(tpm.qemu_args());
    args.extend(bridge.qemu_args());
    args.extend(demo::usb_stick_args(&[
        ("boot", &kit.boot_stick),
        ("plan", &kit.plan_stick),
        ("data", &kit.data_stick),
    ]));
    println!(
        "sherd demo: a 2-of-3 ceremony for Alice, Bob and Carol (throwaway keys in {}).",
        dir.join("holders").display()
    );
    println!(
        "On the first screen press G. Cards: Ctrl-] 1..{CARDS} inserts a blank card, Ctrl-] 0 takes it out, Ctrl-] q stops QEMU."
    );
    std::thread::sleep(Duration::from_secs(3));

    // An earlier program may have left the terminal non-blocking; the reads below cope
    // anyway, but a shell after the demo would not.
    let _ = tty::make_blocking(std::io::stdin().as_fd());
    let mut qemu = Command::new("qemu-system-x86_64")
        .args(&args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| {
            eprintln!("qemu-system-x86_64: {e} (./scripts/setup installs it)");
            std::process::exit(1)
        });
    let raw = RawMode::enter();
    let stop = run(&mut qemu, &mut bridge, signals, &dir);
    let _ = qemu.kill();
    let status = qemu.wait();
    drop(raw);
    drop(bridge);
    drop(tpm);

    println!();
    match stop {
        Some(Stop::Asked) => println!("QEMU stopped (Ctrl-] q)."),
        Some(Stop::InputEnded(why)) => {
            println!("The terminal's input ended ({why}), so QEMU was stopped.")
        }
        Some(Stop::Signal(s)) => println!("{s} received, so QEMU was stopped."),
        None => match status {
            Ok(st) if st.success() => {}
            Ok(st) => println!("QEMU ended: {st}."),
            Err(e) => println!("QEMU: {e}."),
        },
    }
    let copy = dir.join("data-stick");
    match demo::copy_out(&kit.data_stick, &copy) {
        Ok(n) if n > 0 => {
            println!("The data stick image is {}.", kit.data_stick.display());
            println!("Its files are copied to {}.", copy.display());
            println!("Verify them as an auditor would, offline:");
            println!(
                "  cargo run -q --locked -p ceremony --bin sherd-verify -- {}",
                copy.join("sherd-demo-ceremony").display()
            );
            println!(
                "The holders' (throwaway) secret keys, to open their PIN files: {}",
                dir.join("holders").display()
            );
        }
        Ok(_) => println!(
            "Nothing was written to the data stick ({}): the ceremony did not reach its write step.",
            kit.data_stick.display()
        ),
        Err(e) => println!("Cannot read the data stick image: {e}"),
    }
}

/// Runs until QEMU exits (`None`) or the demo stops it (why).
fn run(
    qemu: &mut Child,
    bridge: &mut CardBridge,
    signals: Signals,
    dir: &std::path::Path,
) -> Option<Stop> {
    let (tx, rx) = channel::<Event>();
    let to_guest = qemu.stdin.take().expect("piped");
    let guest_out = qemu.stdout.take().expect("piped");
    let guest_err = qemu.stderr.take().expect("piped");
    let (Some(out), Some(err)) = (
        terminal(std::io::stdout().as_fd()),
        terminal(std::io::stderr().as_fd()),
    ) else {
        return Some(Stop::InputEnded(
            "the demo's standard output is closed".into(),
        ));
    };
    std::thread::spawn(move || copy_to_terminal(guest_out, out, false));
    // Raw mode: a bare newline would not return the cursor.
    std::thread::spawn(move || copy_to_terminal(guest_err, err, true));
    let t = tx.clone();
    std::thread::spawn(move || {
        if let Ok(s) = signals.wait() {
            let _ = t.send(Event::Signal(s));
        }
    });
    std::thread::spawn(move || read_keys(to_guest, tx));
    let mut refusals = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(dir.join("demo.log"))
        .ok();
    loop {
        if let Ok(Some(_)) = qemu.try_wait() {
            return None;
        }
        match rx.recv_timeout(Duration::from_millis(200)) {
            Ok(Event::Key(Key::Card(mv))) => {
                if let Err(why) = bridge.try_command(&mv.command()) {
                    // No card in, or one already in: nothing changes. A bell says so without
                    // drawing over the guest's screen; the reason goes to demo.log.
                    if let Some(mut t) = terminal(std::io::stdout().as_fd()) {
                        let _ = tty::write_all(&mut t, b"\x07");
                    }
                    if let Some(f) = refusals.as_mut() {
                        let _ = writeln!(f, "{why}");
                    }
                }
            }
            Ok(Event::Key(Key::Quit)) => return Some(Stop::Asked),
            Ok(Event::Key(_)) => {}
            Ok(Event::InputEnded(why)) => return Some(Stop::InputEnded(why)),
            // QEMU is exiting; the next try_wait sees it.
            Ok(Event::GuestGone) => {}
            Ok(Event::Signal(s)) => return Some(Stop::Signal(s)),
            Err(RecvTimeoutError::Timeout) => {}
            // Every thread that could wake us has ended: nothing can be typed any more.
            Err(RecvTimeoutError::Disconnected) => {
                return Some(Stop::InputEnded("the demo's input threads ended".into()));
            }
        }
    }
}

/// An unbuffered handle on one of the demo's standard streams.
fn terminal(fd: std::os::fd::BorrowedFd) -> Option<std::fs::File> {
    fd.try_clone_to_owned().ok().map(std::fs::File::from)
}

/// The terminal's keys: to the guest, or to the main loop for the demo's commands.
fn read_keys(mut to_guest: ChildStdin, tx: Sender<Event>) {
    let Some(mut input) = terminal(std::io::stdin().as_fd()) else {
        let _ = tx.send(Event::InputEnded("standard input is closed".into()));
        return;
    };
    let mut keys = KeyReader::new(CARDS);
    let mut buf = [0u8; 64];
    loop {
        let n = match tty::read_some(&mut input, &mut buf) {
            Ok(0) => {
                let _ = tx.send(Event::InputEnded("end of file".into()));
                return;
            }
            Ok(n) => n,
            Err(e) => {
                let _ = tx.send(Event::InputEnded(e.to_string()));
                return;
            }
        };
        for &b in &buf[..n] {
            let event = match keys.key(b) {
                Key::Guest(k) => match tty::write_all(&mut to_guest, &[k]) {
                    Ok(()) => continue,
                    Err(_) => Event::GuestGone,
                },
                Key::Nothing => continue,
                other => Event::Key(other),
            };
            let gone = matches!(event, Event::GuestGone);
            if tx.send(event).is_err() || gone {
                return;
            }
        }
    }
}

/// Copies QEMU's output to the terminal until QEMU closes it; `crlf` turns bare newlines into
/// CR LF (for QEMU's own messages on standard error, written as for a cooked terminal).
fn copy_to_terminal<W: Write + AsFd>(mut from: impl Read + AsFd, mut to: W, crlf: bool) {
    let mut buf = [0u8; 4096];
    let mut last = 0u8;
    loop {
        let n = match tty::read_some(&mut from, &mut buf) {
            Ok(0) | Err(_) => return,
            Ok(n) => n,
        };
        let chunk = &buf[..n];
        let written = if crlf {
            let mut v = Vec::with_capacity(n * 2);
            for &b in chunk {
                if b == b'\n' && last != b'\r' {
                    v.push(b'\r');
                }
                v.push(b);
                last = b;
            }
            tty::write_all(&mut to, &v)
        } else {
            tty::write_all(&mut to, chunk)
        };
        if written.is_err() {
            return;
        }
    }
}
