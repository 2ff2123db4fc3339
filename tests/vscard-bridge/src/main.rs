//! vscard-bridge: serve virtual OpenPGP cards to QEMU.
//!
//! QEMU side: `-device usb-ccid -device ccid-card-passthru,chardev=c
//! -chardev socket,id=c,path=SOCK,server=off` with `vscard-bridge --listen SOCK`, or
//! `server=on,wait=off` with `vscard-bridge --connect SOCK`. Script on stdin, one command a
//! line, each answered on stdout: `insert N`, `remove`, `remove-after N`, `remove-at-ins XX`,
//! `apdu N HEX`, `status`, `quit`.
//!
//! `--again` (with `--listen`) serves one QEMU session after another with the same cards, as
//! the same cards go to a second boot (a recovery after a generation); without it the bridge
//! ends with its one session.
//!
//! `--personal N=KEY` (repeatable) makes card N a witness's personal card before the session:
//! the signing key of KEY (a throwaway secret key file, armored or binary) imported through the
//! card stack under the factory PINs, its fingerprint printed as `personal N FINGERPRINT`.
//! `--personal-pin N=PIN` then changes that card's user PIN from 123456 to PIN, so a test can
//! have the witness type it. Both exist for tests only (a PIN given as an argument is visible
//! to every process on the host).

use std::io::BufRead;
use std::os::unix::net::{UnixListener, UnixStream};
use std::sync::{Arc, mpsc};

use vscard_bridge::bridge::{Bridge, Event, parse_control, spawn_reader};
use vscard_bridge::{T0Card, VirtualCard};

const USAGE: &str = "usage: vscard-bridge (--listen PATH | --connect PATH) [--cards N] \
                     [--serial-base HEX] [--insert N|none] [--personal N=KEYFILE]... \
                     [--personal-pin N=PIN]... [--again]";

/// `N=VALUE` of `--personal` and `--personal-pin`.
fn card_and_value(flag: &str, arg: &str) -> Result<(usize, String), String> {
    let (n, v) = arg
        .split_once('=')
        .ok_or_else(|| format!("{flag} wants N=VALUE, got {arg:?}"))?;
    let n = n
        .parse()
        .map_err(|_| format!("{flag} wants a card number before '=', got {n:?}"))?;
    Ok((n, v.to_owned()))
}

fn main() {
    if let Err(e) = run() {
        eprintln!("vscard-bridge: {e}");
        std::process::exit(1);
    }
}

fn run() -> Result<(), String> {
    let mut listen = None;
    let mut connect = None;
    let mut cards = 1usize;
    let mut serial_base = 0x5348_0001u32;
    let mut insert = Some(0usize);
    let mut personal: Vec<(usize, String)> = Vec::new();
    let mut personal_pins: Vec<(usize, String)> = Vec::new();
    let mut again = false;
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        let mut value = || {
            args.next()
                .ok_or_else(|| format!("{a} needs a value\n{USAGE}"))
        };
        match a.as_str() {
            "--listen" => listen = Some(value()?),
            "--connect" => connect = Some(value()?),
            "--cards" => cards = value()?.parse().map_err(|e| format!("--cards: {e}"))?,
            "--serial-base" => {
                serial_base = u32::from_str_radix(value()?.trim_start_matches("0x"), 16)
                    .map_err(|e| format!("--serial-base: {e}"))?
            }
            "--insert" => {
                let v = value()?;
                insert = if v == "none" {
                    None
                } else {
                    Some(v.parse().map_err(|e| format!("--insert: {e}"))?)
                }
            }
            "--personal" => personal.push(card_and_value(&a, &value()?)?),
            "--personal-pin" => personal_pins.push(card_and_value(&a, &value()?)?),
            "--again" => again = true,
            "-h" | "--help" => {
                println!("{USAGE}");
                return Ok(());
            }
            _ => return Err(format!("unknown argument {a:?}\n{USAGE}")),
        }
    }
    if cards == 0 || insert.is_some_and(|n| n >= cards) {
        return Err(format!("--insert must name one of the {cards} cards"));
    }
    if let Some((n, _)) = personal
        .iter()
        .chain(&personal_pins)
        .find(|(n, _)| *n >= cards)
    {
        return Err(format!("--personal {n}: there are only {cards} cards"));
    }
    if let Some((n, _)) = personal_pins
        .iter()
        .find(|(n, _)| !personal.iter().any(|(p, _)| p == n))
    {
        return Err(format!(
            "--personal-pin {n}: card {n} is not made --personal"
        ));
    }
    // The cards are made before QEMU connects, so a personal card is ready when inserted.
    let mut virtual_cards: Vec<Arc<VirtualCard>> = (0..cards)
        .map(|i| Arc::new(VirtualCard::new(serial_base.wrapping_add(i as u32))))
        .collect();
    for (n, path) in &personal {
        let tsk = std::fs::read(path).map_err(|e| format!("--personal {n}: {path}: {e}"))?;
        let pin = personal_pins
            .iter()
            .rev()
            .find(|(p, _)| p == n)
            .map(|(_, pin)| pin.as_str());
        let fpr = vscard_bridge::personal::make_personal(&virtual_cards[*n], &tsk, pin)
            .map_err(|e| format!("--personal {n}: {path}: {e}"))?;
        println!("personal {n} {fpr}");
    }
    let (tx, rx) = mpsc::channel();
    // The script: stdin lines become control events, answers go to stdout.
    let control = tx.clone();
    std::thread::spawn(move || {
        for line in std::io::stdin().lock().lines() {
            let Ok(line) = line else { return };
            if line.trim().is_empty() {
                continue;
            }
            match parse_control(&line) {
                Ok(c) => {
                    let (atx, arx) = mpsc::channel();
                    if control.send(Event::Control(c, atx)).is_err() {
                        return;
                    }
                    if let Ok(answer) = arx.recv() {
                        println!("{answer}");
                    }
                }
                Err(e) => println!("error: {e}"),
            }
        }
    });
    let cards = virtual_cards
        .drain(..)
        .map(|c| {
            // The card stack's channel to it is gone: this is the only reference left.
            T0Card::new(Arc::try_unwrap(c).unwrap_or_else(|_| unreachable!("card still shared")))
        })
        .collect();
    let mut bridge = Bridge::new(cards);
    let listener = match (&listen, &connect) {
        (Some(path), None) => {
            let _ = std::fs::remove_file(path);
            let l = UnixListener::bind(path).map_err(|e| format!("listening on {path}: {e}"))?;
            println!("listening {path}");
            Some(l)
        }
        (None, Some(_)) => None,
        _ => return Err(USAGE.into()),
    };
    loop {
        let stream = match (&listener, &connect) {
            (Some(l), _) => l.accept().map_err(|e| format!("accepting: {e}"))?.0,
            (None, Some(path)) => {
                UnixStream::connect(path).map_err(|e| format!("connecting to {path}: {e}"))?
            }
            (None, None) => return Err(USAGE.into()),
        };
        println!("connected");
        spawn_reader(stream.try_clone().map_err(|e| e.to_string())?, tx.clone());
        let mut w = stream;
        bridge
            .serve(&mut w, &rx, insert, &mut |m| {
                eprintln!("vscard-bridge: {m}")
            })
            .map_err(|e| format!("session: {e}"))?;
        eprintln!("vscard-bridge: session ended after {} APDUs", bridge.apdus);
        if !(again && listener.is_some()) {
            break;
        }
    }
    Ok(())
}
