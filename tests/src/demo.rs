//! A ceremony kit for QEMU: throwaway holders with personal keys, a plan stick, an empty data
//! stick and a boot stick holding the ISO, as disk images. The end-to-end test and the README's
//! first command (`scripts/run`) use it. Throwaway keys only: a real ceremony's holders bring
//! their own certificates and never give their secret keys to anyone.

use ceremony::openpgp::Cert;
use sherd_rehearsal::kit::{armored_secret, personal_key, plan_text};
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
    std::fs::create_dir_all(dir.join("holders")).expect("kit folder");
    let names: Vec<String> = names.iter().map(|s| s.to_string()).collect();
    let personal: Vec<Cert> = names.iter().map(|n| personal_key(n)).collect();
    let plan = plan_text(id, m, &names, &personal);
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
