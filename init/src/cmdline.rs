//! The kernel command line, as PID 1 needs it.
//!
//! Heads and other bootloaders add words we do not know (`findiso=`, `iso-scan/filename=`,
//! `img_dev=`, `live-media=`, `quiet`, ...): those are tolerated and ignored. Only the words that
//! change what sherd does are read, and those are parsed strictly.

use std::fmt;

/// Where the operator sees the screens.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Console {
    /// A serial line, e.g. `/dev/ttyS0`.
    Serial { device: String },
    /// A virtual terminal on the display, e.g. `/dev/tty1`.
    Vt { device: String },
}

impl Console {
    pub fn device(&self) -> &str {
        match self {
            Console::Serial { device } | Console::Vt { device } => device,
        }
    }
}

/// What PID 1 takes from the kernel command line.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BootParams {
    /// The console for the screens: `sherd.console=` if given, else the last `console=` word
    /// (the one the kernel makes `/dev/console`), else the first VT.
    pub console: Console,
    /// `findiso=/path/in/stick.iso`: set by Heads when it booted sherd from a signed ISO.
    pub findiso: Option<String>,
    /// `sherd.selftest=card`: instead of the ceremony, a hardware self-test that provisions a
    /// throwaway key onto a blank card. Never in the release boot entry.
    pub selftest: Option<SelfTest>,
}

/// Hardware self-tests a boot entry can ask for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SelfTest {
    Card,
}

/// A `sherd.*` word we do not understand: refused, because a typo there would silently change
/// the ceremony's behaviour.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CmdlineError {
    pub word: String,
    pub why: String,
}

impl fmt::Display for CmdlineError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "kernel command line word {:?}: {}; fix the boot entry and boot again",
            self.word, self.why
        )
    }
}

impl std::error::Error for CmdlineError {}

/// The words sherd reads, for messages. (Heads' ISO compatibility check also looks for the
/// string `findiso` in the initramfs: it is here because PID 1 really reads it.)
pub const KNOWN_WORDS: &str = "console=, findiso=, sherd.console=, sherd.selftest=card";

/// Splits the command line the way the kernel does: on spaces, with double quotes grouping
/// (the quotes themselves are dropped).
pub fn words(cmdline: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut quoted = false;
    let mut any = false;
    for c in cmdline.chars() {
        match c {
            '"' => {
                quoted = !quoted;
                any = true;
            }
            c if c.is_ascii_whitespace() && !quoted => {
                if any {
                    out.push(std::mem::take(&mut cur));
                    any = false;
                }
            }
            c => {
                cur.push(c);
                any = true;
            }
        }
    }
    if any {
        out.push(cur);
    }
    out
}

/// Maps a kernel `console=` value (`ttyS0,115200n8`, `tty0`, `tty`, `tty2`) to a device.
/// Returns `None` for consoles that cannot carry a screen (`null`, `lp0`, `hvc`-less names...).
pub fn console_device(value: &str) -> Option<Console> {
    let name = value.split(',').next().unwrap_or("");
    if let Some(n) = name.strip_prefix("ttyS") {
        if !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()) {
            return Some(Console::Serial {
                device: format!("/dev/{name}"),
            });
        }
        return None;
    }
    if let Some(n) = name.strip_prefix("tty") {
        // `tty` and `tty0` mean "the foreground VT"; PID 1 uses the first one.
        if n.is_empty() || n == "0" {
            return Some(Console::Vt {
                device: "/dev/tty1".into(),
            });
        }
        if n.bytes().all(|b| b.is_ascii_digit()) {
            return Some(Console::Vt {
                device: format!("/dev/{name}"),
            });
        }
    }
    None
}

pub fn parse(cmdline: &str) -> Result<BootParams, CmdlineError> {
    let mut console = None;
    let mut forced = None;
    let mut findiso = None;
    let mut selftest = None;
    for w in words(cmdline) {
        let (key, value) = match w.split_once('=') {
            Some((k, v)) => (k, Some(v)),
            None => (w.as_str(), None),
        };
        match (key, value) {
            ("console", Some(v)) => {
                if let Some(c) = console_device(v) {
                    console = Some(c);
                }
            }
            ("findiso", Some(v)) if !v.is_empty() => findiso = Some(v.to_owned()),
            ("sherd.console", Some(v)) => {
                forced = Some(console_device(v).ok_or_else(|| CmdlineError {
                    word: w.clone(),
                    why: "expected ttyS<N> or tty<N>".into(),
                })?);
            }
            ("sherd.selftest", Some("card")) => selftest = Some(SelfTest::Card),
            (k, _) if k.starts_with("sherd.") => {
                return Err(CmdlineError {
                    word: w.clone(),
                    why: format!("unknown sherd parameter; sherd reads {KNOWN_WORDS}"),
                });
            }
            _ => {}
        }
    }
    Ok(BootParams {
        console: forced.or(console).unwrap_or(Console::Vt {
            device: "/dev/tty1".into(),
        }),
        findiso,
        selftest,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn serial(n: &str) -> Console {
        Console::Serial {
            device: format!("/dev/{n}"),
        }
    }
    fn vt(n: &str) -> Console {
        Console::Vt {
            device: format!("/dev/{n}"),
        }
    }

    #[test]
    fn splits_like_the_kernel() {
        assert_eq!(
            words("  a b=\"c d\" \"e f\"=g  h "),
            vec!["a", "b=c d", "e f=g", "h"]
        );
        assert!(words("").is_empty());
    }

    #[test]
    fn last_console_wins_like_dev_console() {
        let p = parse("console=tty0 console=ttyS0,115200n8").unwrap();
        assert_eq!(p.console, serial("ttyS0"));
        // Heads' QEMU boards append `console=ttyS0 console=tty`.
        let p = parse("console=ttyS0 console=tty").unwrap();
        assert_eq!(p.console, vt("tty1"));
        assert_eq!(parse("quiet").unwrap().console, vt("tty1"));
        assert_eq!(parse("console=tty3").unwrap().console, vt("tty3"));
        // Consoles without a screen are skipped, the previous one stays.
        assert_eq!(
            parse("console=ttyS1 console=null").unwrap().console,
            serial("ttyS1")
        );
    }

    #[test]
    fn tolerates_what_heads_injects() {
        let line = "iso-scan/filename=/sherd.iso findiso=/sherd.iso img_dev=/dev/disk/by-uuid/AB-CD \
                    img_loop=/sherd.iso iso=AB-CD/sherd.iso live-media=/dev/disk/by-uuid/AB-CD \
                    console=ttyS0 console=tty intel_iommu=on splash";
        let p = parse(line).unwrap();
        assert_eq!(p.findiso.as_deref(), Some("/sherd.iso"));
        assert_eq!(p.console, vt("tty1"));
    }

    #[test]
    fn sherd_words_are_strict() {
        assert_eq!(
            parse("console=tty0 sherd.console=ttyS0").unwrap().console,
            serial("ttyS0")
        );
        let e = parse("sherd.consol=ttyS0").unwrap_err();
        assert!(e.to_string().contains("unknown sherd parameter"), "{e}");
        assert!(parse("sherd.console=lp0").is_err());
        assert_eq!(
            parse("sherd.selftest=card").unwrap().selftest,
            Some(SelfTest::Card)
        );
        assert_eq!(parse("quiet").unwrap().selftest, None);
        assert!(parse("sherd.selftest=cards").is_err());
    }

    #[test]
    fn console_names() {
        assert_eq!(console_device("ttyS12,9600"), Some(serial("ttyS12")));
        assert_eq!(console_device("ttyS"), None);
        assert_eq!(console_device("ttyUSB0"), None);
        assert_eq!(console_device("hvc0"), None);
    }
}
