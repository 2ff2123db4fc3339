//! The bridge binary as the QEMU harness drives it: a socket for QEMU, a script on stdin.

use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::UnixStream;
use std::process::{Command, Stdio};
use std::time::Duration;

use vscard_bridge::vscard::{self, Msg};

#[test]
fn scripted_session_through_the_binary() {
    let dir = std::env::temp_dir().join(format!("vscard-bridge-cli-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let sock = dir.join("vsc.sock");
    let mut child = Command::new(env!("CARGO_BIN_EXE_vscard-bridge"))
        .args([
            "--listen",
            sock.to_str().unwrap(),
            "--cards",
            "2",
            "--insert",
            "none",
        ])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    let mut stdout = BufReader::new(child.stdout.take().unwrap());
    let mut line = String::new();
    stdout.read_line(&mut line).unwrap();
    assert_eq!(line.trim(), format!("listening {}", sock.display()));

    let mut qemu = UnixStream::connect(&sock).unwrap();
    qemu.set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    line.clear();
    stdout.read_line(&mut line).unwrap();
    assert_eq!(line.trim(), "connected");
    Msg::init().write_to(&mut qemu).unwrap();
    let mut next = || Msg::read_from(&mut qemu).unwrap().unwrap();
    assert_eq!(next().ty, vscard::INIT);
    assert_eq!(next().ty, vscard::READER_ADD);

    // Started empty: the script inserts card 1, then swaps to card 0.
    writeln!(stdin, "insert 1").unwrap();
    line.clear();
    stdout.read_line(&mut line).unwrap();
    assert_eq!(line.trim(), "ok inserted 1");
    assert_eq!(next().ty, vscard::ATR);
    writeln!(stdin, "insert 0").unwrap();
    line.clear();
    stdout.read_line(&mut line).unwrap();
    assert_eq!(line.trim(), "ok inserted 0");
    assert_eq!(next().ty, vscard::CARD_REMOVE);
    assert_eq!(next().ty, vscard::ATR);
    writeln!(stdin, "frobnicate").unwrap();
    line.clear();
    stdout.read_line(&mut line).unwrap();
    assert!(line.starts_with("error: unknown command"), "{line}");
    writeln!(stdin, "quit").unwrap();
    line.clear();
    stdout.read_line(&mut line).unwrap();
    assert_eq!(line.trim(), "ok bye");
    assert!(child.wait().unwrap().success());
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn bad_arguments_are_refused() {
    let out = Command::new(env!("CARGO_BIN_EXE_vscard-bridge"))
        .args([
            "--listen",
            "/nonexistent/x.sock",
            "--cards",
            "1",
            "--insert",
            "3",
        ])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("--insert must name one of the 1 cards"));
}

#[test]
fn personal_cards_are_checked_before_anything_listens() {
    let refused = |args: &[&str], why: &str| {
        let out = Command::new(env!("CARGO_BIN_EXE_vscard-bridge"))
            .args(["--listen", "/nonexistent/x.sock", "--cards", "2"])
            .args(args)
            .output()
            .unwrap();
        assert!(!out.status.success());
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(stderr.contains(why), "{args:?}: {stderr}");
    };
    refused(&["--personal", "2=/dev/null"], "there are only 2 cards");
    refused(&["--personal", "x"], "--personal wants N=VALUE");
    refused(
        &["--personal-pin", "1=24681357"],
        "card 1 is not made --personal",
    );
    refused(&["--personal", "1=/dev/null"], "not an OpenPGP key");
}
