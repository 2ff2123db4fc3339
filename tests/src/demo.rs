//! A ceremony kit for QEMU: throwaway holders with personal keys, a plan stick, an empty data
//! stick and a boot stick holding the ISO, as disk images. The end-to-end test and the README's
//! first command (`scripts/run`) use it. Throwaway keys only: a real ceremony's holders bring
//! their own certificates and never give their secret keys to anyone.

use ceremony::openpgp::Cert;
use ceremony::openpgp::serialize::SerializeInto;
use sherd_rehearsal::kit::{WITNESSES, armored_secret, personal_key, plan_text};
use std::path::{Path, PathBuf};

pub struct Kit {
    pub dir: PathBuf,
    pub plan_text: String,
    pub plan_stick: PathBuf,
    pub data_stick: PathBuf,
    pub boot_stick: PathBuf,
    pub names: Vec<String>,
    /// The holders' personal keys, secret parts included (the demo plays every holder).
    pub personal: Vec<Cert>,
}

/// Writes the kit into `dir`: `plan-stick.img`, `data-stick.img`, `boot-stick.img` (with
/// `iso`), the plan as `sherd-plan.toml`, and each holder's secret key in `holders/`.
pub fn make(dir: &Path, id: &str, m: usize, names: &[&str], iso: &[u8]) -> Kit {
    make_with_plan(dir, id, m, names, iso, |plan| plan)
}

/// As [`make`], with the kit's plan text changed by `edit` before it is written (a test's
/// variant of the demo plan: witnesses with certificates, say).
pub fn make_with_plan(
    dir: &Path,
    id: &str,
    m: usize,
    names: &[&str],
    iso: &[u8],
    edit: impl FnOnce(String) -> String,
) -> Kit {
    std::fs::create_dir_all(dir.join("holders")).expect("kit folder");
    let names: Vec<String> = names.iter().map(|s| s.to_string()).collect();
    let personal: Vec<Cert> = names.iter().map(|n| personal_key(n)).collect();
    let plan = edit(plan_text(id, m, &names, &personal));
    std::fs::write(dir.join("sherd-plan.toml"), &plan).expect("plan");
    for (n, k) in names.iter().zip(&personal) {
        let tsk = armored_secret(k);
        std::fs::write(
            dir.join("holders")
                .join(format!("{}.key.asc", n.to_lowercase())),
            tsk,
        )
        .expect("holder key");
    }
    let stick = |name: &str, label: &str, files: &[(&str, &[u8])]| {
        let p = dir.join(name);
        heads_config::stick::write_disk_image(&p, label, files, 0).expect("stick image");
        p
    };
    let plan_stick = stick(
        "plan-stick.img",
        "PLAN",
        &[("sherd-plan.toml", plan.as_bytes())],
    );
    let data_stick = stick("data-stick.img", "DATA", &[]);
    let boot_stick = stick("boot-stick.img", "SHERD", &[("sherd.iso", iso)]);
    Kit {
        dir: dir.to_owned(),
        plan_text: plan,
        plan_stick,
        data_stick,
        boot_stick,
        names,
        personal,
    }
}

/// The kit's plan text with a personal certificate for each of its witnesses
/// ([`WITNESSES`], in order: `certs[i]` is the i-th's, public part only), and, with `required`,
/// `require_witness_signatures = true`: every witness must sign the transcript with their card.
pub fn with_witness_certs(plan: &str, certs: &[Cert], required: bool) -> String {
    assert_eq!(certs.len(), WITNESSES.len(), "one certificate per witness");
    let mut plan = plan.to_owned();
    for (name, cert) in WITNESSES.iter().zip(certs) {
        let public = cert
            .clone()
            .strip_secret_key_material()
            .armored()
            .to_vec()
            .expect("armoring");
        let public = String::from_utf8(public).expect("armor is ASCII");
        let entry = format!("[[witness]]\nname = \"{name}\"\n");
        assert!(plan.contains(&entry), "no witness {name} in the plan");
        plan = plan.replacen(&entry, &format!("{entry}certs = ['''\n{public}''']\n"), 1);
    }
    if required {
        // A top-level key: before the first table.
        let at = plan.find("[[holder]]").expect("the plan has holders");
        plan.insert_str(at, "require_witness_signatures = true\n\n");
    }
    plan
}

/// QEMU arguments for USB sticks on the xHCI controller `xhci` (which the card reader also
/// uses): each image as a usb-storage device.
pub fn usb_stick_args(sticks: &[(&str, &Path)]) -> Vec<String> {
    let mut a = Vec::new();
    for (id, path) in sticks {
        a.push("-drive".into());
        a.push(format!(
            "if=none,id={id},format=raw,file={}",
            path.display()
        ));
        a.push("-device".into());
        a.push(format!(
            "usb-storage,bus=xhci.0,drive={id},id=dev-{id},removable=on"
        ));
    }
    a
}

/// Copies the files of the data stick image `stick` into `dir` (folders kept); returns how many
/// there were. What an auditor gets by copying the stick's files off it.
pub fn copy_out(stick: &Path, dir: &Path) -> Result<usize, String> {
    let files = heads_config::stick::read_files(stick).map_err(|e| e.to_string())?;
    for (name, bytes) in &files {
        let p = dir.join(name);
        let parent = p.parent().unwrap_or(dir);
        std::fs::create_dir_all(parent).map_err(|e| format!("{}: {e}", parent.display()))?;
        std::fs::write(&p, bytes).map_err(|e| format!("{}: {e}", p.display()))?;
    }
    Ok(files.len())
}

/// The key that starts a demo command (Ctrl-]); the next key says which.
pub const COMMAND_PREFIX: u8 = 0x1d;

/// A card move typed in the demo, for the card bridge.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CardMove {
    /// Insert blank card `n` (0-based) into the reader.
    Insert(usize),
    /// Take the card in the reader out.
    Remove,
}

impl CardMove {
    /// The card bridge's command for this move.
    pub fn command(self) -> String {
        match self {
            CardMove::Insert(n) => format!("insert {n}"),
            CardMove::Remove => "remove".into(),
        }
    }
}

/// What one byte typed in the demo's terminal does.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Key {
    /// Goes to the guest's serial console.
    Guest(u8),
    Card(CardMove),
    /// Stop QEMU.
    Quit,
    /// The prefix, or an unknown command after it: nothing happens.
    Nothing,
}

/// Turns typed bytes into [`Key`]s: everything goes to the guest except Ctrl-] and the key
/// after it (1 to `cards` insert that card, 0 takes it out, q quits, Ctrl-] again sends a
/// Ctrl-] to the guest).
#[derive(Clone, Copy, Debug)]
pub struct KeyReader {
    cards: usize,
    prefix: bool,
}

impl KeyReader {
    pub fn new(cards: usize) -> Self {
        KeyReader {
            cards: cards.min(9),
            prefix: false,
        }
    }

    pub fn key(&mut self, b: u8) -> Key {
        if !self.prefix {
            if b == COMMAND_PREFIX {
                self.prefix = true;
                return Key::Nothing;
            }
            return Key::Guest(b);
        }
        self.prefix = false;
        match b {
            b'0' => Key::Card(CardMove::Remove),
            b'1'..=b'9' if usize::from(b - b'0') <= self.cards => {
                Key::Card(CardMove::Insert(usize::from(b - b'1')))
            }
            b'q' | b'Q' => Key::Quit,
            COMMAND_PREFIX => Key::Guest(COMMAND_PREFIX),
            _ => Key::Nothing,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keys(typed: &[u8]) -> Vec<Key> {
        let mut r = KeyReader::new(6);
        typed.iter().map(|b| r.key(*b)).collect()
    }

    #[test]
    fn keys_go_to_the_guest_except_the_commands() {
        assert_eq!(
            keys(b"g\t\x1d1y\x1d0\x1d6\x1dq"),
            [
                Key::Guest(b'g'),
                Key::Guest(b'\t'),
                Key::Nothing,
                Key::Card(CardMove::Insert(0)),
                Key::Guest(b'y'),
                Key::Nothing,
                Key::Card(CardMove::Remove),
                Key::Nothing,
                Key::Card(CardMove::Insert(5)),
                Key::Nothing,
                Key::Quit,
            ]
        );
    }

    #[test]
    fn unknown_commands_do_nothing_and_the_prefix_twice_is_typed() {
        assert_eq!(
            keys(b"\x1d7\x1dx\x1d\x1d\x1d"),
            [
                Key::Nothing,
                Key::Nothing,
                Key::Nothing,
                Key::Nothing,
                Key::Nothing,
                Key::Guest(COMMAND_PREFIX),
                Key::Nothing,
            ]
        );
        assert_eq!(CardMove::Insert(2).command(), "insert 2");
        assert_eq!(CardMove::Remove.command(), "remove");
    }
}
