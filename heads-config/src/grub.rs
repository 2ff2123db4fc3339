//! sherd's `boot/grub/grub.cfg`, and the rules it must follow because Heads reads it with its
//! own shell parser (`initrd/bin/kexec-parse-boot.sh`), not with GRUB.
//!
//! How that parser reads a GRUB config (our reading of the script; facts in heads.md):
//! - each line is read by the shell's `read`: leading and trailing blanks dropped;
//! - outside an entry, a line starting `menuentry` opens one, named by its first quoted string
//!   (single quotes are turned into double ones first); a line starting `label` opens a
//!   syslinux entry instead; every other line is ignored;
//! - inside an entry, a line that is exactly `}` closes it; otherwise blanks are squeezed,
//!   the first word is the command: `linux*` gives the kernel (2nd word) and the command line
//!   (the rest); `initrd*` gives everything after the command as the initrd (so two files
//!   on one line become one bogus path); `multiboot*`/`module*` make a Xen entry; a nested
//!   `menuentry` is ignored;
//! - relative paths are taken relative to the config's directory;
//! - an entry without a kernel is dropped, and so is one never closed by `}`;
//! - the entry is finally `eval`ed inside double quotes and echoed unquoted: `$`, backticks,
//!   quotes and backslashes are interpreted, `|` is the field separator, and `*`, `?`, `[`
//!   are globbed.

use std::fmt;

/// The kernel command line. The last `console=` is the one PID 1 draws the screens on: the
/// display; the serial line gets the kernel's messages. No `$`, quotes or backticks: Heads
/// `eval`s entries.
pub const KERNEL_CMDLINE: &str = "console=ttyS0,115200 console=tty0 loglevel=3";

/// Heads warns past this many bytes of command line (its own words included).
pub const HEADS_CMDLINE_LIMIT: usize = 2047;

/// Room kept for the words Heads adds around ours: its ISO words for an ISO path of up to
/// `ISO_PATH_BUDGET` bytes and a 36-character (ext4-style) UUID, and board additions.
const ISO_PATH_BUDGET: usize = 64;
const BOARD_ADDITIONS_BUDGET: usize = 256;

/// Characters that Heads' `eval`/`echo` would interpret or that break its `|`-separated record.
const SHELL_SPECIAL: &[char] = &['$', '`', '\'', '"', '\\', '|', '*', '?', '['];

/// The one-entry grub.cfg of sherd `version`, read by GRUB and by Heads.
pub fn grub_cfg(version: &str) -> String {
    format!(
        "# sherd {version}: one entry, read by GRUB and by Heads' kexec-parse-boot.sh.\n\
         menuentry 'sherd-{version}' {{\n\
         linux /boot/vmlinuz {KERNEL_CMDLINE}\n\
         initrd /boot/initrd.img\n\
         }}\n"
    )
}

/// One boot entry as Heads sees it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Entry {
    pub name: String,
    /// "elf" for a Linux kernel, "xen" for a multiboot entry (Heads' own names).
    pub kind: &'static str,
    pub kernel: String,
    /// Everything on the `initrd` line after the command, as Heads keeps it.
    pub initrd: Option<String>,
    pub append: String,
}

/// The boot entries Heads would offer from `cfg`, a config in directory `config_dir` relative
/// to the mounted ISO's root (`/boot/grub` for ours).
pub fn parse(cfg: &str, config_dir: &str) -> Vec<Entry> {
    let fix_path = |p: &str| {
        if p.starts_with('/') {
            p.to_owned()
        } else {
            format!("{}/{p}", config_dir.trim_end_matches('/'))
        }
    };
    let mut entries = Vec::new();
    let mut current: Option<Entry> = None;
    for line in cfg.lines().map(|l| l.trim_matches([' ', '\t'])) {
        match current.as_mut() {
            None => {
                if line.starts_with("menuentry") || line.starts_with("MENUENTRY") {
                    let quoted = line.replace('\'', "\"");
                    let name = quoted.split('"').nth(1).unwrap_or(&quoted).to_owned();
                    current = Some(Entry {
                        name,
                        kind: "elf",
                        kernel: String::new(),
                        initrd: None,
                        append: String::new(),
                    });
                }
            }
            Some(e) => {
                if line == "}" {
                    let mut e = current.take().expect("inside an entry");
                    if !e.kernel.is_empty() {
                        e.kernel = fix_path(&e.kernel);
                        e.initrd = e.initrd.map(|i| fix_path(&i));
                        entries.push(e);
                    }
                    continue;
                }
                let words: Vec<&str> = line.split_whitespace().collect();
                let Some(cmd) = words.first() else { continue };
                if cmd.starts_with("multiboot") {
                    e.kind = "xen";
                    e.kernel = words[1..].join(" ");
                } else if cmd.starts_with("linux") {
                    e.kernel = words.get(1).copied().unwrap_or("").to_owned();
                    e.append = words.get(2..).unwrap_or(&[]).join(" ");
                } else if cmd.starts_with("initrd") {
                    e.initrd = Some(words[1..].join(" "));
                }
            }
        }
    }
    entries
}

/// The words Heads adds for an ISO at `iso_path` (relative to the stick's root) on the
/// partition with UUID `uuid`, before the entry's own: current Heads' `kexec-iso-init.sh`
/// fallback set, used when the ISO has no `loopback.cfg` (sherd's has none). `img_loop` is the
/// one word whose path has no leading `/`. Older Heads releases sent other sets (for example
/// `fromiso=/dev/disk/by-uuid/U/P`, or `findiso=` with the device path in front).
pub fn heads_iso_words(iso_path: &str, uuid: &str) -> String {
    let p = iso_path.trim_start_matches('/');
    format!(
        "iso-scan/filename=/{p} findiso=/{p} img_dev=/dev/disk/by-uuid/{uuid} img_loop={p} \
         iso={uuid}/{p} live-media=/dev/disk/by-uuid/{uuid}"
    )
}

/// The command line Heads hands the kernel: its ISO words, the entry's, then the board's.
pub fn heads_cmdline(iso_path: &str, uuid: &str, append: &str, board_additions: &str) -> String {
    [
        heads_iso_words(iso_path, uuid).as_str(),
        append,
        board_additions,
    ]
    .iter()
    .filter(|w| !w.is_empty())
    .copied()
    .collect::<Vec<_>>()
    .join(" ")
}

/// A way a grub.cfg breaks what sherd needs from Heads' parser.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RuleError {
    MenuEntries(usize),
    NoEntry,
    BadOpening(String),
    Outside {
        line: usize,
        text: String,
    },
    Unexpected {
        line: usize,
        text: String,
    },
    Count {
        cmd: &'static str,
        n: usize,
    },
    TwoInitrds(String),
    NotAbsolute {
        what: &'static str,
        path: String,
    },
    Special {
        what: &'static str,
        value: String,
        c: char,
    },
    TooLong {
        append: usize,
        room: usize,
    },
}

impl fmt::Display for RuleError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RuleError::MenuEntries(n) => write!(
                f,
                "needs exactly one menuentry, has {n} (Heads offers each as a choice)"
            ),
            RuleError::NoEntry => f.write_str(
                "Heads finds no boot entry: the menuentry needs a linux line and must end with \
                 a line that is exactly `}`",
            ),
            RuleError::BadOpening(l) => write!(
                f,
                "the menuentry line {l:?} must end with ` {{` and name the entry in quotes"
            ),
            RuleError::Outside { line, text } => write!(
                f,
                "line {line}: {text:?} is outside the menuentry; only comments may be (GRUB \
                 would run it, Heads ignores it); the entry must end with a line that is \
                 exactly `}}`"
            ),
            RuleError::Unexpected { line, text } => write!(
                f,
                "line {line}: {text:?} inside the menuentry; only `linux` and `initrd` lines \
                 are allowed (Heads ignores the rest, GRUB would run it)"
            ),
            RuleError::Count { cmd, n } => write!(
                f,
                "needs exactly one {cmd} line in the entry, has {n} (Heads keeps only the last)"
            ),
            RuleError::TwoInitrds(v) => write!(
                f,
                "the initrd line names several files ({v:?}): Heads reads them as one path, and \
                 kexec takes one initrd only"
            ),
            RuleError::NotAbsolute { what, path } => {
                write!(f, "the {what} path {path:?} must be absolute under /boot/")
            }
            RuleError::Special { what, value, c } => write!(
                f,
                "the {what} {value:?} contains {c:?}: no $, quotes, backticks, backslashes, | \
                 or glob characters (Heads evals each entry in a shell)"
            ),
            RuleError::TooLong { append, room } => write!(
                f,
                "the command line is {append} bytes; at most {room} fit beside the words Heads \
                 adds within its {HEADS_CMDLINE_LIMIT}-byte limit"
            ),
        }
    }
}

impl std::error::Error for RuleError {}

/// Checks a grub.cfg against the rules sherd keeps so that Heads and GRUB boot it the same:
/// exactly one menuentry with `{` on its line and a closing line that is exactly `}`, nothing
/// but comments outside it, one `linux` and one `initrd` line with absolute paths under
/// `/boot/`, no shell-special characters, and a command line that leaves room for Heads' own
/// words under its 2047-byte limit. Returns the entry as Heads parses it.
pub fn check_heads_rules(cfg: &str) -> Result<Entry, RuleError> {
    let menuentries = cfg
        .lines()
        .map(str::trim)
        .filter(|l| l.starts_with("menuentry") || l.starts_with("MENUENTRY"))
        .count();
    if menuentries != 1 {
        return Err(RuleError::MenuEntries(menuentries));
    }
    let mut inside = false;
    let mut closed = false;
    let (mut linux, mut initrd) = (0, 0);
    for (i, raw) in cfg.lines().enumerate() {
        let l = raw.trim_matches([' ', '\t']);
        let text = l.to_owned();
        let line = i + 1;
        if l.is_empty() || l.starts_with('#') {
            continue;
        }
        if l.starts_with("menuentry") {
            if !l.ends_with(" {") || !(l.contains('\'') || l.contains('"')) {
                return Err(RuleError::BadOpening(text));
            }
            inside = true;
        } else if !inside || closed {
            return Err(RuleError::Outside { line, text });
        } else if l == "}" {
            closed = true;
        } else {
            match l.split_whitespace().next() {
                Some("linux") => linux += 1,
                Some("initrd") => initrd += 1,
                _ => return Err(RuleError::Unexpected { line, text }),
            }
        }
    }
    if !closed {
        return Err(RuleError::NoEntry);
    }
    for (cmd, n) in [("linux", linux), ("initrd", initrd)] {
        if n != 1 {
            return Err(RuleError::Count { cmd, n });
        }
    }
    let mut entries = parse(cfg, "/boot/grub");
    let e = entries.pop().ok_or(RuleError::NoEntry)?;
    let initrd = e.initrd.clone().unwrap_or_default();
    if initrd.contains(' ') {
        return Err(RuleError::TwoInitrds(initrd));
    }
    // The paths as written: Heads would quietly make a relative one relative to /boot/grub.
    for (what, cmd) in [("kernel", "linux"), ("initrd", "initrd")] {
        let written = cfg
            .lines()
            .map(str::trim)
            .find(|l| l.split_whitespace().next() == Some(cmd))
            .and_then(|l| l.split_whitespace().nth(1))
            .unwrap_or("");
        if !written.starts_with("/boot/") {
            return Err(RuleError::NotAbsolute {
                what,
                path: written.to_owned(),
            });
        }
    }
    for (what, value) in [
        ("name", &e.name),
        ("kernel", &e.kernel),
        ("initrd", &initrd),
        ("command line", &e.append),
    ] {
        if let Some(c) = value.chars().find(|c| SHELL_SPECIAL.contains(c)) {
            return Err(RuleError::Special {
                what,
                value: value.clone(),
                c,
            });
        }
    }
    let worst_path = "x".repeat(ISO_PATH_BUDGET);
    let worst_uuid = "0".repeat(36);
    let room = HEADS_CMDLINE_LIMIT
        - heads_iso_words(&worst_path, &worst_uuid).len()
        - BOARD_ADDITIONS_BUDGET
        - 2;
    if e.append.len() > room {
        return Err(RuleError::TooLong {
            append: e.append.len(),
            room,
        });
    }
    Ok(e)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn our_grub_cfg_follows_heads_rules() {
        let cfg = grub_cfg("0.1.0");
        let e = check_heads_rules(&cfg).unwrap();
        assert_eq!(
            e,
            Entry {
                name: "sherd-0.1.0".into(),
                kind: "elf",
                kernel: "/boot/vmlinuz".into(),
                initrd: Some("/boot/initrd.img".into()),
                append: KERNEL_CMDLINE.into(),
            }
        );
        assert_eq!(parse(&cfg, "/boot/grub"), [e]);
    }

    #[test]
    fn parses_like_heads() {
        // Relative paths, a syslinux-looking label outside, GRUB settings, an unclosed entry.
        let cfg = "set timeout=5\n\tmenuentry \"A\" --class x {\n  linux16  vmlinuz  a=1\tb\n \
                   initrd i1 i2\n  }\nmenuentry 'B' {\nmultiboot /xen.gz\n}\nmenuentry 'C' {\n\
                   linux /k\n";
        let e = parse(cfg, "/boot/grub/");
        assert_eq!(e.len(), 2, "{e:?}");
        assert_eq!(e[0].name, "A");
        assert_eq!(e[0].kernel, "/boot/grub/vmlinuz");
        assert_eq!(e[0].append, "a=1 b");
        assert_eq!(e[0].initrd.as_deref(), Some("/boot/grub/i1 i2"));
        assert_eq!((e[1].name.as_str(), e[1].kind), ("B", "xen"));
    }

    #[test]
    fn heads_command_line() {
        assert_eq!(
            heads_cmdline("/sherd.iso", "AB12-CD34", "loglevel=3", "console=ttyS0"),
            "iso-scan/filename=/sherd.iso findiso=/sherd.iso img_dev=/dev/disk/by-uuid/AB12-CD34 \
             img_loop=sherd.iso iso=AB12-CD34/sherd.iso live-media=/dev/disk/by-uuid/AB12-CD34 \
             loglevel=3 console=ttyS0"
        );
    }

    #[test]
    fn each_rule_violation_is_caught() {
        let good = grub_cfg("1");
        let long = format!("loglevel=3 {}", "x".repeat(1700));
        let cases: Vec<(String, &str)> = vec![
            (
                good.replace("loglevel=3", "root=$x"),
                "command line \"console=ttyS0,115200 console=tty0 root=$x\" contains '$'",
            ),
            (good.replace("loglevel=3", "a=\"b\""), "contains '\"'"),
            (good.replace("loglevel=3", "`x`"), "contains '`'"),
            (good.replace("loglevel=3", "a\\b"), "contains '\\\\'"),
            (good.replace("loglevel=3", "a=*"), "contains '*'"),
            (
                good.replace("/boot/vmlinuz", "/boot/vm|linuz"),
                "kernel \"/boot/vm|linuz\" contains '|'",
            ),
            (
                good.replace("'sherd-1'", "'sherd $1'"),
                "name \"sherd $1\" contains '$'",
            ),
            (good.clone() + &good, "needs exactly one menuentry, has 2"),
            (
                good.replace("menuentry 'sherd-1' {", "menuentry sherd {"),
                "must end with ` {` and name the entry in quotes",
            ),
            (good.replace(" {\n", "\n{\n"), "must end with ` {`"),
            (
                good.replace("initrd /boot/initrd.img", "initrd /boot/a /boot/b"),
                "the initrd line names several files (\"/boot/a /boot/b\")",
            ),
            (
                good.replace(
                    "initrd /boot/initrd.img\n",
                    "initrd /boot/a\ninitrd /boot/b\n",
                ),
                "needs exactly one initrd line in the entry, has 2",
            ),
            (
                good.replace("initrd /boot/initrd.img\n", ""),
                "needs exactly one initrd line in the entry, has 0",
            ),
            (
                good.replace(
                    "linux /boot/vmlinuz",
                    "linux /boot/vmlinuz\nlinux /boot/vmlinuz",
                ),
                "one linux line in the entry, has 2",
            ),
            (
                good.replace("linux /boot/", "linux boot/"),
                "the kernel path \"boot/vmlinuz\" must be absolute",
            ),
            (
                good.replace("initrd /boot/", "initrd /x/"),
                "the initrd path \"/x/initrd.img\" must be absolute",
            ),
            (
                good.replace("}\n", "} x\n"),
                "line 5: \"} x\" inside the menuentry",
            ),
            (good.replace("}\n", ""), "Heads finds no boot entry"),
            (
                good.replace("}\n", "}\n}\n"),
                "line 6: \"}\" is outside the menuentry",
            ),
            (
                format!("set timeout=1\n{good}"),
                "line 1: \"set timeout=1\" is outside",
            ),
            (
                good.replace("initrd", "echo hi\ninitrd"),
                "line 4: \"echo hi\" inside the menuentry",
            ),
            (
                good.replace("loglevel=3", &long),
                "the command line is 1745 bytes; at most 1323 fit",
            ),
        ];
        for (cfg, want) in cases {
            let e = match check_heads_rules(&cfg) {
                Ok(e) => panic!("accepted {cfg:?} as {e:?}; wanted {want}"),
                Err(e) => e.to_string(),
            };
            assert!(e.contains(want), "{cfg}\n=> {e}\nwanted {want}");
        }
    }
}
