//! vscard-bridge: serve virtual OpenPGP cards to QEMU.
//!
//! QEMU side: `-device usb-ccid -device ccid-card-passthru,chardev=c
//! -chardev socket,id=c,path=SOCK,server=off` with `vscard-bridge --listen SOCK`, or
//! `server=on,wait=off` with `vscard-bridge --connect SOCK`. Script on stdin, one command a
//! line, each answered on stdout: `insert N`, `remove`, `status`, `quit`.

use std::io::BufRead;
use std::os::unix::net::{UnixListener, UnixStream};
use std::sync::mpsc;

use vscard_bridge::bridge::{Bridge, Event, parse_control, spawn_reader};
use vscard_bridge::{T0Card, VirtualCard};

const USAGE: &str = "usage: vscard-bridge (--listen PATH | --connect PATH) [--cards N] \
                     [--serial-base HEX] [--insert N|none]";

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
    let stream = match (listen, connect) {
        (Some(path), None) => {
            let _ = std::fs::remove_file(&path);
            let l = UnixListener::bind(&path).map_err(|e| format!("listening on {path}: {e}"))?;
            println!("listening {path}");
            l.accept()
                .map_err(|e| format!("accepting on {path}: {e}"))?
                .0
        }
        (None, Some(path)) => {
            UnixStream::connect(&path).map_err(|e| format!("connecting to {path}: {e}"))?
        }
        _ => return Err(USAGE.into()),
    };
    println!("connected");
    let (tx, rx) = mpsc::channel();
    spawn_reader(stream.try_clone().map_err(|e| e.to_string())?, tx.clone());
    // The script: stdin lines become control events, answers go to stdout.
    std::thread::spawn(move || {
        for line in std::io::stdin().lock().lines() {
            let Ok(line) = line else { return };
            if line.trim().is_empty() {
                continue;
            }
            match parse_control(&line) {
                Ok(c) => {
                    let (atx, arx) = mpsc::channel();
                    if tx.send(Event::Control(c, atx)).is_err() {
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
    let cards = (0..cards)
        .map(|i| T0Card::new(VirtualCard::new(serial_base.wrapping_add(i as u32))))
        .collect();
    let mut bridge = Bridge::new(cards);
    let mut w = stream;
    bridge
        .serve(&mut w, &rx, insert, &mut |m| {
            eprintln!("vscard-bridge: {m}")
        })
        .map_err(|e| format!("session: {e}"))?;
    eprintln!("vscard-bridge: session ended after {} APDUs", bridge.apdus);
    Ok(())
}
