//! `sherd-demo`: walk through a whole ceremony in QEMU, in this terminal, with virtual hardware.
//!
//! Boots the built image (`out/`) with a software TPM, virtio-rng, a card reader holding
//! virtual OpenPGP cards, a boot stick with the ISO, a plan stick with throwaway holders, and an
//! empty data stick. Keys go to sherd's serial console, except after Ctrl-]:
//!   Ctrl-] 1..9  insert blank card 1..9      Ctrl-] 0  take the card out
//!   Ctrl-] q     stop QEMU
//! Afterwards it copies the data stick's files out and says how to verify them.

use e2e::demo;
use e2e::{CardBridge, Swtpm};
use nix::sys::termios::{self, SetArg};
use std::io::{Read, Write};
use std::path::PathBuf;
use std::process::{Command, Stdio};

const CARDS: usize = 6;

fn main() {
    let ws = e2e::workspace();
    let out = e2e::out_dir();
    let iso = std::fs::read(out.join("sherd.iso")).unwrap_or_else(|e| {
        eprintln!(
            "{}: {e}; build the image first (./scripts/run does)",
            out.display()
        );
        std::process::exit(1)
    });
    let dir: PathBuf = ws.join("target/demo");
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
        "sherd demo: a 2-of-3 ceremony for Alice, Bob and Carol (throwaway keys in {}).\r",
        dir.join("holders").display()
    );
    println!(
        "On the first screen press G. Cards: Ctrl-] 1..{CARDS} inserts a blank card, Ctrl-] 0 takes it out, Ctrl-] q stops QEMU.\r"
    );
    std::thread::sleep(std::time::Duration::from_secs(3));

    let mut qemu = Command::new("qemu-system-x86_64")
        .args(&args)
        .stdin(Stdio::piped())
        .spawn()
        .expect("qemu-system-x86_64 (./scripts/setup installs it)");
    let mut to_guest = qemu.stdin.take().unwrap();
    let stdin = std::io::stdin();
    let saved = termios::tcgetattr(&stdin).ok();
    if let Some(t) = &saved {
        let mut raw = t.clone();
        termios::cfmakeraw(&mut raw);
        let _ = termios::tcsetattr(&stdin, SetArg::TCSANOW, &raw);
    }
    // Keys: forwarded to the guest, except the Ctrl-] commands for the card bridge.
    let (tx, rx) = std::sync::mpsc::channel::<String>();
    std::thread::spawn(move || {
        let mut input = std::io::stdin().lock();
        let mut buf = [0u8; 64];
        let mut prefix = false;
        while let Ok(n) = input.read(&mut buf) {
            if n == 0 {
                return;
            }
            for &b in &buf[..n] {
                if prefix {
                    prefix = false;
                    let cmd = match b {
                        b'1'..=b'9' => format!("insert {}", b - b'1'),
                        b'0' => "remove".into(),
                        b'q' | b'Q' => "quit".into(),
                        _ => continue,
                    };
                    if tx.send(cmd).is_err() {
                        return;
                    }
                } else if b == 0x1d {
                    prefix = true;
                } else if to_guest
                    .write_all(&[b])
                    .and_then(|()| to_guest.flush())
                    .is_err()
                {
                    return;
                }
            }
        }
    });
    loop {
        if let Ok(Some(_)) = qemu.try_wait() {
            break;
        }
        match rx.recv_timeout(std::time::Duration::from_millis(200)) {
            Ok(cmd) if cmd == "quit" => {
                let _ = qemu.kill();
            }
            Ok(cmd) => {
                // A refused command (no card in, or one already in) changes nothing.
                let _ =
                    std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| bridge.command(&cmd)));
            }
            Err(_) => {}
        }
    }
    let _ = qemu.wait();
    if let Some(t) = &saved {
        let _ = termios::tcsetattr(&stdin, SetArg::TCSANOW, t);
    }
    drop(bridge);
    drop(tpm);

    println!();
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
