//! A USB serial TRNG (TrueRNG-style CDC ACM device that streams random bytes once opened).
//!
//! The tty is put in raw mode first: the default line discipline would translate CR to NL,
//! swallow control characters and echo, all of which bias or drop bytes.

use std::fs::{File, OpenOptions};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use nix::fcntl::OFlag;
use nix::sys::termios::{self, FlushArg, SetArg, SpecialCharacterIndices};

use crate::source::{Conditioning, DeviceKey, Source, SourceError, SourceInfo, SourceKind};

/// USB vendor:product ids of TrueRNG devices (TrueRNG v1-v3, TrueRNGpro).
pub const KNOWN_TRNG_IDS: &[(&str, &str, &str)] =
    &[("04d8", "f5fe", "TrueRNG"), ("16d0", "0aa0", "TrueRNGpro")];

/// How to read and judge a serial TRNG.
#[derive(Clone, Debug, PartialEq)]
pub struct SerialTrngConfig {
    pub path: PathBuf,
    /// Bits per sample for the health tests (8, or 1 for a raw bit stream).
    pub sample_bits: u32,
    /// Claimed min-entropy per sample.
    pub claimed_h: f64,
    pub conditioning: Conditioning,
}

impl SerialTrngConfig {
    /// A whitened byte stream (TrueRNG: whitened, 8 bits per byte claimed).
    pub fn whitened(path: impl Into<PathBuf>) -> Self {
        SerialTrngConfig {
            path: path.into(),
            sample_bits: 8,
            claimed_h: super::WHITENED_CLAIM,
            conditioning: Conditioning::Whitened,
        }
    }
}

pub struct SerialTrngSource {
    file: File,
    stall: std::time::Duration,
    info: SourceInfo,
}

impl SerialTrngSource {
    /// Opens the tty, sets raw mode and drops whatever was buffered before we opened it.
    /// `sysfs` is normally `/sys` (used only to name the USB device).
    pub fn open(config: &SerialTrngConfig, sysfs: &Path) -> Result<Self, SourceError> {
        let path = &config.path;
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .custom_flags(OFlag::O_NOCTTY.bits())
            .open(path)
            .map_err(|e| SourceError::Open {
                path: path.clone(),
                source: e,
            })?;
        let tty_err = |what: &str, e: nix::Error| {
            SourceError::Other(format!(
                "{}: {what} failed ({e}); is this a serial device?",
                path.display()
            ))
        };
        let mut t = termios::tcgetattr(&file).map_err(|e| tty_err("tcgetattr", e))?;
        termios::cfmakeraw(&mut t);
        // read(2) returns what has arrived, or 0 after 0.5 s without data, so a silent device
        // fails after STALL_LIMIT instead of hanging the ceremony.
        t.control_chars[SpecialCharacterIndices::VMIN as usize] = 0;
        t.control_chars[SpecialCharacterIndices::VTIME as usize] = 5;
        termios::tcsetattr(&file, SetArg::TCSANOW, &t).map_err(|e| tty_err("tcsetattr", e))?;
        // Bytes queued before raw mode may have been mangled by the line discipline.
        termios::tcflush(&file, FlushArg::TCIFLUSH).map_err(|e| tty_err("tcflush", e))?;
        let usb = usb_identity(path, sysfs);
        let (identity, device) = match &usb {
            // Without a serial number two identical TRNGs would share a key and count once;
            // the tty path tells them apart for as long as they stay plugged in.
            Some(u) if u.serial.is_empty() => (
                format!("{} (USB {})", path.display(), u.describe()),
                DeviceKey(format!("usb:{}:{}@{}", u.vid, u.pid, path.display())),
            ),
            Some(u) => (
                format!("{} (USB {})", path.display(), u.describe()),
                DeviceKey(format!("usb:{}:{}:{}", u.vid, u.pid, u.serial)),
            ),
            None => (
                path.display().to_string(),
                DeviceKey(format!("serial:{}", path.display())),
            ),
        };
        Ok(SerialTrngSource {
            file,
            stall: super::STALL_LIMIT,
            info: SourceInfo {
                kind: SourceKind::UsbSerialTrng,
                identity,
                device,
                conditioning: config.conditioning,
                sample_bits: config.sample_bits,
                claimed_h: config.claimed_h,
                claim_basis: match config.conditioning {
                    Conditioning::Whitened => "the device whitens its noise before sending it",
                    Conditioning::Raw => "configured claim for the device's raw noise",
                },
                virtual_device: None,
            },
        })
    }
}

impl SerialTrngSource {
    /// Changes how long the device may deliver nothing before `fill` fails.
    pub fn set_stall_limit(&mut self, limit: std::time::Duration) {
        self.stall = limit;
    }
}

impl Source for SerialTrngSource {
    fn info(&self) -> &SourceInfo {
        &self.info
    }

    fn fill(&mut self, buf: &mut [u8]) -> Result<(), SourceError> {
        super::read_full(
            &mut self.file,
            buf,
            &self.info.identity,
            super::ZeroRead::Idle,
            self.stall,
        )
    }
}

/// What sysfs says about the USB device behind a tty.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UsbIdentity {
    pub vid: String,
    pub pid: String,
    pub manufacturer: String,
    pub product: String,
    pub serial: String,
}

impl UsbIdentity {
    fn describe(&self) -> String {
        let mut s = format!("{}:{}", self.vid, self.pid);
        for part in [&self.manufacturer, &self.product] {
            if !part.is_empty() {
                s.push(' ');
                s.push_str(part);
            }
        }
        if !self.serial.is_empty() {
            s.push_str(&format!(" serial {}", self.serial));
        }
        s
    }
}

/// `/sys/class/tty/<name>/device` is the USB interface; its parent holds the device ids.
pub fn usb_identity(tty: &Path, sysfs: &Path) -> Option<UsbIdentity> {
    let name = tty.file_name()?;
    let iface = std::fs::canonicalize(sysfs.join("class/tty").join(name).join("device")).ok()?;
    let dev = iface.parent()?;
    let read = |f: &str| {
        std::fs::read_to_string(dev.join(f))
            .map(|s| s.trim().to_string())
            .unwrap_or_default()
    };
    let vid = read("idVendor");
    if vid.is_empty() {
        return None;
    }
    Some(UsbIdentity {
        vid,
        pid: read("idProduct"),
        manufacturer: read("manufacturer"),
        product: read("product"),
        serial: read("serial"),
    })
}

/// ttys under `/dev` whose USB ids are a known TRNG.
pub fn find_known_trngs(dev_dir: &Path, sysfs: &Path) -> Vec<PathBuf> {
    let Ok(entries) = std::fs::read_dir(sysfs.join("class/tty")) else {
        return vec![];
    };
    let mut found: Vec<PathBuf> = entries
        .flatten()
        .filter_map(|e| {
            let name = e.file_name();
            let n = name.to_str()?;
            if !n.starts_with("ttyACM") {
                return None;
            }
            let dev = dev_dir.join(n);
            let id = usb_identity(&dev, sysfs)?;
            KNOWN_TRNG_IDS
                .iter()
                .any(|(v, p, _)| *v == id.vid && *p == id.pid)
                .then_some(dev)
        })
        .collect();
    found.sort();
    found
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    #[test]
    fn a_pty_stands_in_for_the_trng_and_raw_mode_keeps_every_byte() {
        let pty = nix::pty::openpty(None, None).unwrap();
        let slave_path = nix::unistd::ttyname(&pty.slave).unwrap();
        let cfg = SerialTrngConfig::whitened(&slave_path);
        let mut s = SerialTrngSource::open(&cfg, Path::new("/nonexistent-sysfs")).unwrap();
        assert_eq!(
            s.info().device,
            DeviceKey(format!("serial:{}", slave_path.display()))
        );
        // Every byte value, including CR, ^C, ^S, ^D and DEL that a cooked tty would eat or
        // translate.
        let all: Vec<u8> = (0..=255u8).collect();
        let mut master = std::fs::File::from(pty.master);
        master.write_all(&all).unwrap();
        let mut got = vec![0u8; 256];
        s.fill(&mut got).unwrap();
        assert_eq!(got, all);
    }

    #[test]
    fn a_silent_trng_fails_after_the_stall_limit() {
        let pty = nix::pty::openpty(None, None).unwrap();
        let slave_path = nix::unistd::ttyname(&pty.slave).unwrap();
        let mut s = SerialTrngSource::open(
            &SerialTrngConfig::whitened(&slave_path),
            Path::new("/nonexistent-sysfs"),
        )
        .unwrap();
        s.set_stall_limit(std::time::Duration::from_millis(700));
        let mut master = std::fs::File::from(pty.master);
        master.write_all(&[1, 2, 3]).unwrap();
        let err = s.fill(&mut [0u8; 8]).unwrap_err();
        assert!(
            matches!(
                err,
                SourceError::Stalled {
                    got: 3,
                    wanted: 8,
                    ..
                }
            ),
            "{err}"
        );
    }

    /// A fake sysfs naming the pty as a USB TRNG, with or without a serial number.
    fn fake_usb_sysfs(tty: &Path, serial: &str) -> tempfile::TempDir {
        let root = tempfile::tempdir().unwrap();
        let usbdev = root.path().join("devices/usb1/1-1");
        let iface = usbdev.join("1-1:1.0");
        std::fs::create_dir_all(&iface).unwrap();
        std::fs::write(usbdev.join("idVendor"), "04d8\n").unwrap();
        std::fs::write(usbdev.join("idProduct"), "f5fe\n").unwrap();
        std::fs::write(usbdev.join("serial"), serial).unwrap();
        let class = root.path().join("class/tty").join(tty.file_name().unwrap());
        std::fs::create_dir_all(&class).unwrap();
        std::os::unix::fs::symlink(&iface, class.join("device")).unwrap();
        root
    }

    #[test]
    fn usb_trngs_are_keyed_by_serial_number_or_else_by_tty() {
        let pty = nix::pty::openpty(None, None).unwrap();
        let tty = nix::unistd::ttyname(&pty.slave).unwrap();
        let cfg = SerialTrngConfig::whitened(&tty);
        let sys = fake_usb_sysfs(&tty, "A1B2\n");
        let s = SerialTrngSource::open(&cfg, sys.path()).unwrap();
        assert_eq!(s.info().device, DeviceKey("usb:04d8:f5fe:A1B2".into()));
        assert!(s.info().identity.contains("USB 04d8:f5fe serial A1B2"));
        let sys = fake_usb_sysfs(&tty, "");
        let s = SerialTrngSource::open(&cfg, sys.path()).unwrap();
        assert_eq!(
            s.info().device,
            DeviceKey(format!("usb:04d8:f5fe@{}", tty.display()))
        );
    }

    #[test]
    fn a_regular_file_is_not_a_serial_device() {
        let f = tempfile::NamedTempFile::new().unwrap();
        let err = SerialTrngSource::open(
            &SerialTrngConfig::whitened(f.path()),
            Path::new("/nonexistent"),
        )
        .err()
        .unwrap();
        assert!(err.to_string().contains("serial device"), "{err}");
    }

    #[test]
    fn usb_ids_are_read_from_a_sysfs_tree() {
        let root = tempfile::tempdir().unwrap();
        let usbdev = root.path().join("devices/usb1/1-1");
        let iface = usbdev.join("1-1:1.0");
        std::fs::create_dir_all(&iface).unwrap();
        for (f, v) in [
            ("idVendor", "04d8\n"),
            ("idProduct", "f5fe\n"),
            ("manufacturer", "ubld.it\n"),
            ("product", "TrueRNG\n"),
            ("serial", "12345\n"),
        ] {
            std::fs::write(usbdev.join(f), v).unwrap();
        }
        let tty = root.path().join("class/tty/ttyACM0");
        std::fs::create_dir_all(&tty).unwrap();
        std::os::unix::fs::symlink(&iface, tty.join("device")).unwrap();
        let dev = Path::new("/dev");
        let id = usb_identity(&dev.join("ttyACM0"), root.path()).unwrap();
        assert_eq!(id.describe(), "04d8:f5fe ubld.it TrueRNG serial 12345");
        assert_eq!(
            find_known_trngs(dev, root.path()),
            vec![dev.join("ttyACM0")]
        );
    }
}
