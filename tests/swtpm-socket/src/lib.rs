#![forbid(unsafe_code)]
//! A test harness, never in the image: a fresh software TPM (swtpm) in its own state folder,
//! started with TPM2_Startup(CLEAR) done, serving raw TPM 2.0 command buffers on a unix socket.
//! Tests that use it fail, never skip, when swtpm is missing (`./scripts/setup` installs it).

use std::os::unix::net::UnixStream;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A running swtpm; killed when dropped.
pub struct Swtpm {
    child: Child,
    /// The command socket.
    pub socket: PathBuf,
    _dir: tempfile::TempDir,
}

impl Drop for Swtpm {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Swtpm {
    /// Starts a fresh swtpm (a new state folder: its own endorsement seed) and waits for its
    /// socket.
    pub fn start() -> Swtpm {
        let dir = tempfile::tempdir().expect("a temporary folder");
        let socket = dir.path().join("server.sock");
        let ctrl = dir.path().join("ctrl.sock");
        let child = Command::new("swtpm")
            .arg("socket")
            .arg("--tpm2")
            .arg("--server")
            .arg(format!("type=unixio,path={}", socket.display()))
            .arg("--ctrl")
            .arg(format!("type=unixio,path={}", ctrl.display()))
            .arg("--flags")
            .arg("startup-clear")
            .arg("--tpmstate")
            .arg(format!("dir={}", dir.path().display()))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| {
                panic!(
                    "cannot run swtpm ({e}): this test needs a software TPM; ./scripts/setup \
                     installs it (Debian: apt-get install swtpm swtpm-tools)"
                )
            });
        let mut s = Swtpm {
            child,
            socket,
            _dir: dir,
        };
        let deadline = Instant::now() + Duration::from_secs(10);
        while !s.socket.exists() {
            if let Some(status) = s.child.try_wait().expect("swtpm's status") {
                panic!("swtpm exited early with {status}");
            }
            assert!(
                Instant::now() < deadline,
                "swtpm did not create its socket in 10 s"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        s
    }

    /// A connection to the command socket. swtpm serves one connection at a time: drop one
    /// before connecting again. A wedged swtpm fails the read after `timeout` instead of
    /// hanging the test.
    ///
    /// A refused connection is tried again for up to 5 s: swtpm creates the socket file before
    /// it listens, and takes a moment to accept again after the previous connection closed (a
    /// suite run on a loaded machine met both).
    pub fn connect(&self, timeout: Duration) -> UnixStream {
        let deadline = Instant::now() + Duration::from_secs(5);
        let stream = loop {
            match UnixStream::connect(&self.socket) {
                Ok(s) => break s,
                Err(e)
                    if e.kind() == std::io::ErrorKind::ConnectionRefused
                        && Instant::now() < deadline =>
                {
                    std::thread::sleep(Duration::from_millis(20));
                }
                Err(e) => panic!("swtpm's socket: {e}"),
            }
        };
        stream
            .set_read_timeout(Some(timeout))
            .expect("a read timeout");
        stream
    }
}
