//! The QEMU harness: boots the built image under TCG with its serial line on a pipe, keeps a
//! terminal emulator's view of the screen, and lets a test type and read like an operator.
//!
//! Tests find the artifacts in `$SHERD_OUT` (default `<workspace>/out`), built by
//! `sherd-image build` (the README's test command does that first).

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

pub mod demo;
pub mod deviation;
pub mod pty;
pub mod pyverify;
pub mod tty;
pub mod vga;

/// `text` without its terminal escape sequences (ESC up to and including the first letter).
pub fn strip_escapes(text: &str) -> String {
    let mut plain = String::new();
    let mut esc = false;
    for c in text.chars() {
        match (esc, c) {
            (false, '\x1b') => esc = true,
            (true, c) if c.is_ascii_alphabetic() => esc = false,
            (true, _) => {}
            (false, c) => plain.push(c),
        }
    }
    plain
}

/// Columns and rows PID 1 gives a serial console (see `init/src/pid1.rs`).
pub const COLS: u16 = 80;
/// Text that is on the first screen once it is fully drawn (the footer's last key).
pub const FIRST_SCREEN: &str = " P  power off";
pub const ROWS: u16 = 24;

pub fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("tests/ has a parent")
        .to_owned()
}

/// Where the built image is.
pub fn out_dir() -> PathBuf {
    let out = std::env::var_os("SHERD_OUT")
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace().join("out"));
    assert!(
        out.join("manifest.txt").is_file(),
        "no built image in {}: run `cargo run -p sherd-image -- build` first (the README's test \
         command does), or point SHERD_OUT at one",
        out.display()
    );
    out
}

pub fn read_out(name: &str) -> Vec<u8> {
    let p = out_dir().join(name);
    std::fs::read(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

/// The built image's manifest, read back by the same strict reader the build parties use.
pub fn manifest() -> sherd_image::manifest::Recorded {
    let m = String::from_utf8(read_out("manifest.txt")).expect("manifest is UTF-8");
    sherd_image::manifest::Recorded::parse(&m).unwrap_or_else(|e| panic!("out/manifest.txt: {e}"))
}

/// The SHA-256 (hex) the manifest records for artifact `name`, e.g. `sherd.iso`.
pub fn artifact_sha256(name: &str) -> String {
    manifest()
        .artifact(name)
        .unwrap_or_else(|| panic!("manifest has no artifact {name}"))
        .sha256
        .clone()
}

/// The value of a manifest line, e.g. `manifest_field("rootfs-tree")` = `sha256 <hex>`.
pub fn manifest_field(key: &str) -> String {
    assert!(
        !key.contains(' '),
        "manifest keys are one word ({key:?}); artifacts: artifact_sha256"
    );
    manifest()
        .get(key)
        .unwrap_or_else(|| panic!("manifest has no {key} line"))
        .to_owned()
}

struct Shared {
    raw: Vec<u8>,
    parser: vt100::Parser,
    eof: bool,
    /// When the program last printed anything: screens are drawn in several writes, so a
    /// matching line can appear before the rest of its screen has arrived.
    last_output: Instant,
}

/// What a program printed on a terminal (QEMU's serial line, or a pseudo-terminal): the raw
/// bytes and a terminal emulator's view of the screen, read by a thread as they come.
pub struct Console {
    shared: Arc<Mutex<Shared>>,
    pub started: Instant,
}

impl Console {
    /// Starts reading `from` until it ends (end of file or an error, as a pseudo-terminal
    /// gives `EIO` once its program is gone).
    pub fn read_from(mut from: impl Read + Send + 'static) -> Console {
        let shared = Arc::new(Mutex::new(Shared {
            raw: Vec::new(),
            parser: vt100::Parser::new(ROWS.try_into().unwrap(), COLS.try_into().unwrap(), 0),
            eof: false,
            last_output: Instant::now(),
        }));
        let s2 = Arc::clone(&shared);
        thread::spawn(move || {
            let mut buf = [0u8; 4096];
            loop {
                match from.read(&mut buf) {
                    Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                    Ok(0) | Err(_) => {
                        s2.lock().unwrap().eof = true;
                        return;
                    }
                    Ok(n) => {
                        let mut s = s2.lock().unwrap();
                        s.raw.extend_from_slice(&buf[..n]);
                        s.parser.process(&buf[..n]);
                        s.last_output = Instant::now();
                    }
                }
            }
        });
        Console {
            shared,
            started: Instant::now(),
        }
    }

    /// The screen as text, one line per row.
    pub fn screen(&self) -> String {
        self.shared.lock().unwrap().parser.screen().contents()
    }

    /// Everything printed so far, escape sequences included.
    pub fn raw(&self) -> Vec<u8> {
        self.shared.lock().unwrap().raw.clone()
    }

    /// Waits until the screen contains `text`; panics with the screen and the tail of the raw
    /// output when it does not within `timeout`.
    pub fn wait_for_screen(&self, text: &str, timeout: Duration) -> Duration {
        self.wait_until(timeout, &format!("screen to show {text:?}"), |g| {
            g.screen().contains(text)
        })
    }

    /// Waits until the screen contains any of `texts`.
    pub fn wait_until_any(&self, texts: &[&str], timeout: Duration) -> Duration {
        self.wait_until(timeout, &format!("screen to show one of {texts:?}"), |g| {
            let s = g.screen();
            texts.iter().any(|t| s.contains(t))
        })
    }

    /// Waits until the raw output contains `text`.
    pub fn wait_for_output(&self, text: &str, timeout: Duration) -> Duration {
        let needle = text.as_bytes();
        self.wait_until(timeout, &format!("output to contain {text:?}"), |g| {
            g.raw().windows(needle.len()).any(|w| w == needle)
        })
    }

    fn wait_until(&self, timeout: Duration, what: &str, ok: impl Fn(&Console) -> bool) -> Duration {
        let t0 = Instant::now();
        loop {
            if ok(self) {
                let at = self.started.elapsed();
                self.settle();
                return at;
            }
            let eof = self.shared.lock().unwrap().eof;
            if eof || t0.elapsed() > timeout {
                let raw = self.raw();
                let tail = String::from_utf8_lossy(&raw[raw.len().saturating_sub(3000)..]);
                panic!(
                    "timed out after {:?} waiting for the {what} (the program {}).\n--- screen ---\n{}\n--- last output ---\n{tail}",
                    t0.elapsed(),
                    if eof { "ended" } else { "is still running" },
                    self.screen()
                );
            }
            thread::sleep(Duration::from_millis(50));
        }
    }

    /// With `SHERD_CAPTURE_SCREENS=1` (as `scripts/screens` sets it), writes the screen as it
    /// is now to `docs/screens/<name>.txt` for the README; otherwise does nothing.
    pub fn capture(&self, name: &str) {
        if std::env::var_os("SHERD_CAPTURE_SCREENS").is_some() {
            let dir = workspace().join("docs/screens");
            std::fs::create_dir_all(&dir).unwrap();
            std::fs::write(dir.join(format!("{name}.txt")), self.screen()).unwrap();
        }
    }

    /// Waits until nothing was printed for a quarter of a second (at most 5 s), so that a
    /// screen whose first line matched has been drawn completely.
    fn settle(&self) {
        let t0 = Instant::now();
        while t0.elapsed() < Duration::from_secs(5) {
            if self.shared.lock().unwrap().last_output.elapsed() > Duration::from_millis(250) {
                return;
            }
            thread::sleep(Duration::from_millis(25));
        }
    }
}

/// A running QEMU guest, its serial line on a pipe.
pub struct Guest {
    child: Child,
    stdin: ChildStdin,
    console: Console,
    /// QEMU's monitor socket (plugging and pulling devices).
    monitor: PathBuf,
}

/// The guest's console: `g.screen()`, `g.wait_for_screen(..)`, ...
impl std::ops::Deref for Guest {
    type Target = Console;
    fn deref(&self) -> &Console {
        &self.console
    }
}

/// What to boot.
pub struct Boot {
    pub kernel: PathBuf,
    pub initrd: PathBuf,
    pub append: String,
    pub extra: Vec<String>,
    pub memory_mb: u32,
}

impl Boot {
    /// The built kernel and initramfs with a serial console.
    pub fn serial() -> Boot {
        let out = out_dir();
        Boot {
            kernel: out.join("vmlinuz"),
            initrd: out.join("initrd.img"),
            append: "console=ttyS0 loglevel=3".into(),
            extra: Vec::new(),
            memory_mb: 512,
        }
    }

    /// QEMU's arguments for this boot, on the serial console. TCG: KVM guests hang on these
    /// machines. -no-reboot turns a guest reboot into an exit.
    pub fn qemu_args(&self) -> Vec<String> {
        let mut a: Vec<String> = [
            "-machine",
            "q35",
            "-accel",
            "tcg",
            "-nographic",
            "-no-reboot",
        ]
        .map(String::from)
        .to_vec();
        a.extend(["-m".into(), self.memory_mb.to_string()]);
        a.extend(["-kernel".into(), self.kernel.display().to_string()]);
        a.extend(["-initrd".into(), self.initrd.display().to_string()]);
        a.extend(["-append".into(), self.append.clone()]);
        a.extend(self.extra.iter().cloned());
        a
    }
}

impl Guest {
    pub fn start(b: &Boot) -> Guest {
        let monitor = std::env::temp_dir().join(format!(
            "sherd-qemu-mon-{}-{}.sock",
            std::process::id(),
            UNIQUE.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
        ));
        let _ = std::fs::remove_file(&monitor);
        let mut cmd = Command::new("qemu-system-x86_64");
        cmd.args(b.qemu_args())
            .arg("-monitor")
            .arg(format!("unix:{},server=on,wait=off", monitor.display()))
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            // Piped and copied, not inherited: QEMU changes its standard streams' flags, and
            // a person's terminal shares them between programs.
            .stderr(Stdio::piped());
        let mut child = cmd
            .spawn()
            .expect("qemu-system-x86_64 is needed: apt-get install qemu-system-x86");
        let stdin = child.stdin.take().unwrap();
        let stdout = child.stdout.take().unwrap();
        let stderr = child.stderr.take().unwrap();
        thread::spawn(move || {
            use std::io::BufRead;
            for line in std::io::BufReader::new(stderr)
                .lines()
                .map_while(Result::ok)
            {
                eprintln!("qemu: {line}");
            }
        });
        Guest {
            child,
            stdin,
            console: Console::read_from(stdout),
            monitor,
        }
    }

    /// Types keys on the serial line.
    pub fn send(&mut self, keys: &str) {
        self.stdin.write_all(keys.as_bytes()).unwrap();
        self.stdin.flush().unwrap();
    }

    /// Runs one QEMU monitor command (e.g. `device_del stick1`) and returns what it printed.
    pub fn monitor(&self, cmd: &str) -> String {
        use std::os::unix::net::UnixStream;
        let t0 = Instant::now();
        let mut sock = loop {
            match UnixStream::connect(&self.monitor) {
                Ok(s) => break s,
                Err(e) if t0.elapsed() > Duration::from_secs(10) => {
                    panic!("QEMU monitor {}: {e}", self.monitor.display())
                }
                Err(_) => thread::sleep(Duration::from_millis(50)),
            }
        };
        sock.set_read_timeout(Some(Duration::from_secs(30)))
            .unwrap();
        let read_prompt = |sock: &mut UnixStream| {
            let mut got = Vec::new();
            let mut buf = [0u8; 1024];
            while !got.ends_with(b"(qemu) ") {
                let n = sock.read(&mut buf).expect("QEMU monitor answers");
                assert!(n > 0, "QEMU monitor closed");
                got.extend_from_slice(&buf[..n]);
            }
            String::from_utf8_lossy(&got).into_owned()
        };
        read_prompt(&mut sock);
        writeln!(sock, "{cmd}").unwrap();
        let out = read_prompt(&mut sock);
        // The monitor echoes the command with line-editing escapes; keep what follows it.
        let plain = strip_escapes(&out).replace('\r', "");
        plain
            .rsplit_once(cmd)
            .map(|(_, rest)| rest)
            .unwrap_or(&plain)
            .trim_end_matches("(qemu) ")
            .trim()
            .to_owned()
    }

    /// Plugs a raw disk image in as a USB stick on the xHCI controller `xhci`.
    pub fn plug_stick(&self, id: &str, file: &str) {
        let out = self.monitor(&format!(
            "drive_add 0 if=none,id={id},format=raw,file={file}"
        ));
        assert!(out.contains("OK"), "drive_add {id}: {out}");
        let out = self.monitor(&format!(
            "device_add usb-storage,bus=xhci.0,drive={id},id=dev-{id},removable=on"
        ));
        assert!(out.is_empty(), "device_add {id}: {out}");
    }

    /// Pulls the USB stick plugged as `id` (by [`Guest::plug_stick`] or the demo's arguments).
    pub fn pull_stick(&self, id: &str) {
        let out = self.monitor(&format!("device_del dev-{id}"));
        assert!(out.is_empty(), "device_del {id}: {out}");
    }

    /// From a screen that Enter leaves, back to the first screen, then P: the guest must power
    /// off cleanly.
    pub fn back_and_power_off(&mut self) {
        self.send("\r");
        self.wait_for_screen(FIRST_SCREEN, Duration::from_secs(10));
        self.send("p");
        self.wait_for_output("reboot: Power down", Duration::from_secs(60));
    }

    /// Waits for QEMU to exit (the guest powered off) within `timeout`; kills it otherwise.
    pub fn wait_exit(&mut self, timeout: Duration) -> ExitStatus {
        wait_child(&mut self.child, timeout, "QEMU", &self.console)
    }
}

/// Waits for `child` to exit within `timeout`; kills it and panics with `console`'s screen
/// otherwise.
pub(crate) fn wait_child(
    child: &mut Child,
    timeout: Duration,
    what: &str,
    console: &Console,
) -> ExitStatus {
    let t0 = Instant::now();
    loop {
        if let Some(st) = child.try_wait().unwrap() {
            return st;
        }
        if t0.elapsed() > timeout {
            let _ = child.kill();
            panic!(
                "{what} did not exit within {timeout:?}; screen:\n{}",
                console.screen()
            );
        }
        thread::sleep(Duration::from_millis(50));
    }
}

impl Drop for Guest {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_file(&self.monitor);
    }
}

/// A software TPM 2.0 (swtpm) serving one QEMU guest over a Unix socket. Killed on drop.
pub struct Swtpm {
    child: Child,
    dir: PathBuf,
    /// The state folder is the caller's ([`Swtpm::start_in`]): kept on drop.
    keep: bool,
}

impl Swtpm {
    /// A new TPM, its state in a fresh folder removed on drop.
    pub fn start() -> Swtpm {
        let dir = std::env::temp_dir().join(format!(
            "sherd-swtpm-{}-{}",
            std::process::id(),
            UNIQUE.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
        ));
        let _ = std::fs::remove_dir_all(&dir);
        Self::spawn(dir, false)
    }

    /// The TPM whose state is in `state` (made if absent), kept there when this one is
    /// dropped: a later `start_in` of the same folder is the same TPM (same seeds, so the same
    /// endorsement and attestation keys), as one laptop's TPM is across two boots. One at a
    /// time per folder.
    pub fn start_in(state: &Path) -> Swtpm {
        Self::spawn(state.to_owned(), true)
    }

    fn spawn(dir: PathBuf, keep: bool) -> Swtpm {
        std::fs::create_dir_all(&dir).unwrap();
        let sock = dir.join("swtpm.sock");
        // A socket left by a previous run would pass for this one's.
        let _ = std::fs::remove_file(&sock);
        let child = Command::new("swtpm")
            .args(["socket", "--tpm2", "--tpmstate"])
            .arg(format!("dir={}", dir.display()))
            .arg("--ctrl")
            .arg(format!("type=unixio,path={}", sock.display()))
            .args(["--log", "level=0"])
            .stdin(Stdio::null())
            .spawn()
            .expect("swtpm is needed: apt-get install swtpm swtpm-tools");
        let t0 = Instant::now();
        while !sock.exists() {
            assert!(
                t0.elapsed() < Duration::from_secs(10),
                "swtpm did not create its socket"
            );
            thread::sleep(Duration::from_millis(20));
        }
        Swtpm { child, dir, keep }
    }

    /// QEMU arguments attaching this TPM as a TIS device (what Heads' QEMU boards use).
    pub fn qemu_args(&self) -> Vec<String> {
        vec![
            "-chardev".into(),
            format!(
                "socket,id=chrtpm,path={}",
                self.dir.join("swtpm.sock").display()
            ),
            "-tpmdev".into(),
            "emulator,id=tpm0,chardev=chrtpm".into(),
            "-device".into(),
            "tpm-tis,tpmdev=tpm0".into(),
        ]
    }
}

impl Drop for Swtpm {
    fn drop(&mut self) {
        if self.keep {
            // SIGTERM: swtpm saves its volatile state and exits; its permanent state (the
            // seeds) is on disk already. Killed if it does not within a few seconds.
            let pid = nix::unistd::Pid::from_raw(self.child.id() as i32);
            let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM);
            let t0 = Instant::now();
            while t0.elapsed() < Duration::from_secs(5) {
                if !matches!(self.child.try_wait(), Ok(None)) {
                    break;
                }
                thread::sleep(Duration::from_millis(20));
            }
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
        if self.keep {
            let _ = std::fs::remove_file(self.dir.join("swtpm.sock"));
        } else {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }
}

/// Builds a host tool of this workspace (debug) and returns its path.
pub fn workspace_bin(package: &str, bin: &str) -> PathBuf {
    let st = Command::new("cargo")
        .current_dir(workspace())
        .args(["build", "--locked", "-q", "-p", package, "--bin", bin])
        .status()
        .expect("cargo");
    assert!(st.success(), "cannot build {bin}");
    workspace().join("target/debug").join(bin)
}

/// Runs sherd's `sherd-verify` (built by [`workspace_bin`]) and the independent Python verifier
/// (`verifiers/python/sherd_verify.py`) on `folder` and requires the same verdict, as
/// [`pyverify::same_verdict`] says; returns sherd-verify's.
pub fn verify_both(folder: &Path) -> pyverify::Verdict {
    let bin = workspace_bin("ceremony", "sherd-verify");
    pyverify::same_verdict(&workspace(), &bin, folder)
}

/// The VSCard bridge serving virtual OpenPGP cards to one QEMU usb-ccid reader; cards are
/// inserted and removed by writing commands to it, as a person would move cards.
pub struct CardBridge {
    child: Child,
    ctl: Arc<Mutex<BridgeControl>>,
    dir: PathBuf,
}

/// The bridge's script input and its answers.
struct BridgeControl {
    stdin: ChildStdin,
    replies: std::sync::mpsc::Receiver<String>,
}

impl BridgeControl {
    /// Sends `cmd`; the bridge's answer without its leading `ok `, or why there is none.
    fn try_command(&mut self, cmd: &str) -> Result<String, String> {
        writeln!(self.stdin, "{cmd}")
            .and_then(|()| self.stdin.flush())
            .map_err(|e| format!("the card bridge is gone ({cmd:?}): {e}"))?;
        let answer = self
            .replies
            .recv_timeout(Duration::from_secs(30))
            .map_err(|e| format!("no answer from the card bridge to {cmd:?}: {e}"))?;
        match answer.strip_prefix("ok ") {
            Some(rest) => Ok(rest.to_owned()),
            None => Err(format!("the card bridge refused {cmd:?}: {answer}")),
        }
    }

    fn command(&mut self, cmd: &str) -> String {
        self.try_command(cmd).unwrap_or_else(|e| panic!("{e}"))
    }
}

impl CardBridge {
    /// `cards` virtual cards, none inserted yet; the bridge's log goes to this process's
    /// standard error.
    pub fn start(cards: usize) -> CardBridge {
        Self::start_with(cards, Stdio::inherit())
    }

    /// As [`CardBridge::start`], with the bridge's log sent to `log` (the demo keeps it off
    /// the screen the guest draws on).
    pub fn start_with(cards: usize, log: Stdio) -> CardBridge {
        Self::start_personal(cards, log, &[])
    }

    /// As [`CardBridge::start_with`], with some cards made witnesses' personal cards before
    /// QEMU connects: `(card, secret key file, user PIN if not the default)`, the key's signing
    /// key imported onto that card (the bridge's `--personal` and `--personal-pin`).
    pub fn start_personal(
        cards: usize,
        log: Stdio,
        personal: &[(usize, &Path, Option<&str>)],
    ) -> CardBridge {
        let bin = workspace_bin("vscard-bridge", "vscard-bridge");
        let dir = std::env::temp_dir().join(format!(
            "sherd-vscard-{}-{}",
            std::process::id(),
            UNIQUE.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
        ));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let sock = dir.join("ccid.sock");
        let mut child = Command::new(bin)
            .arg("--listen")
            .arg(&sock)
            .args(["--cards", &cards.to_string(), "--insert", "none"])
            // The same cards for a second boot (a recovery after a generation).
            .arg("--again")
            .args(personal.iter().flat_map(|(n, key, pin)| {
                let mut a = vec!["--personal".to_owned(), format!("{n}={}", key.display())];
                if let Some(pin) = pin {
                    a.extend(["--personal-pin".to_owned(), format!("{n}={pin}")]);
                }
                a
            }))
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(log)
            .spawn()
            .expect("vscard-bridge");
        let stdin = child.stdin.take().unwrap();
        let stdout = child.stdout.take().unwrap();
        let (tx, replies) = std::sync::mpsc::channel();
        thread::spawn(move || {
            use std::io::BufRead;
            for line in std::io::BufReader::new(stdout).lines() {
                let Ok(line) = line else { return };
                // Answers to commands start with `ok` or `error`; the rest is progress.
                if (line.starts_with("ok") || line.starts_with("error")) && tx.send(line).is_err() {
                    return;
                }
            }
        });
        let t0 = Instant::now();
        while !sock.exists() {
            // (Personal cards are made first: each key import takes a moment.)
            assert!(
                t0.elapsed() < Duration::from_secs(10 + 5 * personal.len() as u64),
                "bridge socket missing"
            );
            thread::sleep(Duration::from_millis(20));
        }
        CardBridge {
            child,
            ctl: Arc::new(Mutex::new(BridgeControl { stdin, replies })),
            dir,
        }
    }

    /// QEMU arguments: an xHCI controller with a CCID reader whose card lives in the bridge.
    pub fn qemu_args(&self) -> Vec<String> {
        vec![
            "-device".into(),
            "qemu-xhci,id=xhci".into(),
            "-device".into(),
            "usb-ccid,bus=xhci.0,id=ccid".into(),
            "-chardev".into(),
            format!(
                "socket,id=vscard,path={},server=off",
                self.dir.join("ccid.sock").display()
            ),
            "-device".into(),
            "ccid-card-passthru,chardev=vscard".into(),
        ]
    }

    /// `insert N`, `remove`, `remove-after N`, `remove-at-ins XX`, `apdu N HEX`: waits for the
    /// bridge's answer and returns it (without the leading `ok `); panics on an error answer.
    pub fn command(&mut self, cmd: &str) -> String {
        self.ctl.lock().unwrap().command(cmd)
    }

    /// As [`CardBridge::command`], returning a refusal instead of panicking (the demo, where
    /// a person may ask for a card that is already in).
    pub fn try_command(&mut self, cmd: &str) -> Result<String, String> {
        self.ctl.lock().unwrap().try_command(cmd)
    }

    /// Card `n` as an APDU channel straight to the bridge (not through QEMU), to check on the
    /// host what a card holds after a ceremony.
    pub fn direct(&self, n: usize) -> BridgeChannel {
        BridgeChannel {
            ctl: Arc::clone(&self.ctl),
            card: n,
            apdus: 0,
        }
    }
}

/// Numbers the sockets of bridges and monitors, unique within this test process.
static UNIQUE: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);

/// One of the bridge's cards as a `cards::ApduChannel` (short APDUs).
pub struct BridgeChannel {
    ctl: Arc<Mutex<BridgeControl>>,
    card: usize,
    apdus: u64,
}

impl cards::ApduChannel for BridgeChannel {
    fn transmit(&mut self, apdu: &[u8]) -> cards::Result<Vec<u8>> {
        self.apdus += 1;
        let hex: String = apdu.iter().map(|b| format!("{b:02x}")).collect();
        let r = self
            .ctl
            .lock()
            .unwrap()
            .command(&format!("apdu {} {hex}", self.card));
        Ok((0..r.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&r[i..i + 2], 16).expect("hex from the bridge"))
            .collect())
    }
    fn extended_apdus(&self) -> bool {
        false
    }
    fn apdu_count(&self) -> u64 {
        self.apdus
    }
}

impl Drop for CardBridge {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// The tokens of a screen line, without the box drawn around it.
fn tokens(line: &str) -> Vec<&str> {
    line.split(|c: char| c.is_whitespace() || c == '│')
        .filter(|t| !t.is_empty())
        .collect()
}

fn is_hex(t: &str) -> bool {
    !t.is_empty() && t.chars().all(|c| c.is_ascii_hexdigit())
}

/// A value shown under `label` as rows to read aloud (`n  hex  word word word word`, one per
/// 4-byte group, as the ceremony's pages show hashes): its hex and its words, each joined.
pub fn read_aloud_after(screen: &str, label: &str) -> Option<(String, String)> {
    let mut lines = screen.lines();
    lines.find(|l| l.contains(label))?;
    let (mut hex, mut words) = (String::new(), Vec::new());
    for (n, line) in lines.enumerate() {
        let t = tokens(line);
        let row = t.len() >= 3 && t[0] == (n + 1).to_string() && is_hex(t[1]) && t[1].len() <= 8;
        if !row {
            break;
        }
        hex.push_str(t[1]);
        words.extend_from_slice(&t[2..]);
    }
    (!hex.is_empty()).then(|| (hex, words.join(" ")))
}

/// Reads a 64-hex-digit hash shown after `label`: in groups of 8 on the next line (the first
/// screen), or as rows to read aloud (the ceremony's pages, see [`read_aloud_after`]).
pub fn hash_after(screen: &str, label: &str) -> Option<String> {
    let mut lines = screen.lines();
    lines.find(|l| l.contains(label))?;
    let next = tokens(lines.next()?);
    let grouped: String = next
        .iter()
        .filter(|w| w.len() == 8 && is_hex(w))
        .copied()
        .collect();
    let hex = if grouped.len() == 64 {
        grouped
    } else {
        read_aloud_after(screen, label)?.0
    };
    (hex.len() == 64).then_some(hex)
}

#[cfg(test)]
mod tests {
    use super::{hash_after, read_aloud_after};

    #[test]
    fn reads_grouped_hash_from_a_boxed_screen() {
        let screen = "│Root filesystem tree (SHA-256): compare\n\
                      │  3f2a9b1c 0a1b2c3d 3f2a9b1c 0a1b2c3d 3f2a9b1c 0a1b2c3d 3f2a9b1c 0a1b2c3d │\n";
        assert_eq!(
            hash_after(screen, "Root filesystem tree").as_deref(),
            Some("3f2a9b1c0a1b2c3d3f2a9b1c0a1b2c3d3f2a9b1c0a1b2c3d3f2a9b1c0a1b2c3d")
        );
        assert_eq!(
            hash_after("Root filesystem tree\n  abc\n", "Root filesystem tree"),
            None
        );
        assert_eq!(hash_after("nothing", "Root filesystem tree"), None);
    }

    #[test]
    fn reads_a_hash_shown_as_rows_to_read_aloud() {
        let h: Vec<u8> = (0u8..32).map(|i| i.wrapping_mul(9) + 1).collect();
        let hex: String = h.iter().map(|b| format!("{b:02x}")).collect();
        let mut screen =
            "│Transcript final hash: every witness writes these words down  │\n".to_owned();
        for row in ceremony_tui::aloud::rows(&h) {
            screen.push_str(&format!("│  {row:<76}│\n"));
        }
        screen.push_str(
            "│                                                                              │\n",
        );
        screen.push_str(
            "│An auditor later checks the transcript.                                       │\n",
        );
        assert_eq!(
            hash_after(&screen, "Transcript final hash").as_deref(),
            Some(hex.as_str())
        );
        let (shown, words) = read_aloud_after(&screen, "Transcript final hash").unwrap();
        assert_eq!(shown, hex);
        assert_eq!(words, ceremony::words::to_phrase(&h));
        // A 20-byte fingerprint is no 64-digit hash, but reads aloud.
        let fpr = &h[..20];
        let mut screen = "Root certificate fingerprint\n".to_owned();
        for row in ceremony_tui::aloud::rows(fpr) {
            screen.push_str(&format!("  {row}\n"));
        }
        assert_eq!(hash_after(&screen, "Root certificate fingerprint"), None);
        assert_eq!(
            read_aloud_after(&screen, "Root certificate fingerprint")
                .unwrap()
                .1,
            ceremony::words::to_phrase(fpr)
        );
    }
}
