#![forbid(unsafe_code)]
//! `sherd-heads`: the host-side commands for booting sherd through Heads.

use heads_config::{grub, hex, pcr, stick};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

const USAGE: &str = "usage:
  sherd-heads stick --iso out/sherd.iso --asc out/sherd.iso.asc --out stick.img [--add FILE]... [--size BYTES]
      writes a USB stick image: MBR, one FAT32 partition with the ISO and its signature
      (and any --add files, none of them another *.iso), ready for `dd` to a stick
  sherd-heads pcr4
      prints the PCR4 value a clean Heads USB boot leaves, in the SHA-256 and SHA-1 banks
  sherd-heads check-grub FILE
      checks a grub.cfg against the rules Heads' parser imposes and prints the entry";

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let result = match args.first().map(String::as_str) {
        Some("stick") => stick_cmd(&args[1..]),
        Some("pcr4") if args.len() == 1 => {
            print!("{}", pcr4_text());
            Ok(())
        }
        Some("check-grub") if args.len() == 2 => check_grub(Path::new(&args[1])),
        _ => Err(USAGE.to_string()),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("sherd-heads: {e}");
            ExitCode::FAILURE
        }
    }
}

fn pcr4_text() -> String {
    let mut s =
        String::from("PCR4 after a clean Heads USB boot: E(E(0, H(\"usb\")), H(\"generic\"))\n");
    for bank in pcr::Bank::ALL {
        let v = pcr::heads_usb_boot_pcr4(bank, &pcr::zero(bank));
        s += &format!("  {:<7} {}\n", bank.name(), hex::encode(&v));
    }
    s
}

fn check_grub(path: &Path) -> Result<(), String> {
    let cfg = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let e = grub::check_heads_rules(&cfg).map_err(|e| format!("{}: {e}", path.display()))?;
    println!(
        "{}: follows Heads' rules\n  entry   {}\n  kernel  {}\n  initrd  {}\n  append  {}",
        path.display(),
        e.name,
        e.kernel,
        e.initrd.unwrap_or_default(),
        e.append
    );
    Ok(())
}

fn stick_cmd(args: &[String]) -> Result<(), String> {
    let (mut iso, mut asc, mut out, mut size) = (None, None, None, 0u64);
    let mut add: Vec<PathBuf> = Vec::new();
    let mut it = args.iter();
    while let Some(flag) = it.next() {
        let mut value = || {
            it.next()
                .cloned()
                .ok_or_else(|| format!("{flag} needs a value\n{USAGE}"))
        };
        match flag.as_str() {
            "--iso" => iso = Some(PathBuf::from(value()?)),
            "--asc" => asc = Some(PathBuf::from(value()?)),
            "--out" => out = Some(PathBuf::from(value()?)),
            "--add" => add.push(PathBuf::from(value()?)),
            "--size" => {
                let v = value()?;
                size = v
                    .parse()
                    .map_err(|_| format!("--size {v:?}: give a number of bytes"))?;
            }
            other => return Err(format!("unknown argument {other:?}\n{USAGE}")),
        }
    }
    let need = |o: Option<PathBuf>, f: &str| o.ok_or_else(|| format!("{f} is required\n{USAGE}"));
    let (iso, asc, out) = (
        need(iso, "--iso")?,
        need(asc, "--asc")?,
        need(out, "--out")?,
    );
    let read = |p: &Path| std::fs::read(p).map_err(|e| format!("{}: {e}", p.display()));
    let name = |p: &Path| {
        p.file_name()
            .and_then(|n| n.to_str())
            .map(str::to_owned)
            .ok_or_else(|| format!("{}: no usable file name", p.display()))
    };
    let (iso_bytes, asc_bytes) = (read(&iso)?, read(&asc)?);
    let (iso_name, asc_name) = (name(&iso)?, name(&asc)?);
    let extra: Vec<(String, Vec<u8>)> = add
        .iter()
        .map(|p| Ok((name(p)?, read(p)?)))
        .collect::<Result<_, String>>()?;
    let extra_refs: Vec<(&str, &[u8])> = extra
        .iter()
        .map(|(n, d)| (n.as_str(), d.as_slice()))
        .collect();
    let files = stick::boot_stick_files(&iso_name, &iso_bytes, &asc_name, &asc_bytes, &extra_refs)
        .map_err(|e| e.to_string())?;
    stick::write_disk_image(&out, "SHERD", &files, size).map_err(|e| e.to_string())?;
    let id = stick::volume_id("SHERD", &files);
    println!(
        "{}: MBR + FAT32 partition (UUID {}) with {}",
        out.display(),
        stick::fat_uuid(id),
        files.iter().map(|(n, _)| *n).collect::<Vec<_>>().join(", ")
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    #[test]
    fn pcr4_text_has_both_banks() {
        let t = super::pcr4_text();
        assert!(
            t.contains("sha256  bd6d4e413f2b44119bd0b4bc7060fe415c5c23c51a96f370c240f78a6dca21c3")
        );
        assert!(t.contains("sha1    80b0b64ebe62878af530af531fb061d006a417ec"));
    }
}
