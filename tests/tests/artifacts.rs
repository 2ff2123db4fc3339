//! What the build wrote: the initramfs holds exactly the listed entries and one program, the
//! manifest's hashes match the files, and the ISO carries what Heads needs.

use e2e::{manifest_field, out_dir, read_out};
use sherd_image::{cpio, elf, util};

#[test]
#[ignore = "needs the built image; the README's test command runs it"]
fn initramfs_holds_exactly_the_expected_entries() {
    let members = cpio::read(&read_out("initrd.img")).expect("initrd.img is a newc archive");
    let names: Vec<&str> = members.iter().map(|m| m.member.name.as_str()).collect();
    assert_eq!(
        names,
        [
            "dev",
            "dev/console",
            "init",
            "proc",
            "root",
            "run",
            "sys",
            "tmp"
        ]
    );
    let files: Vec<_> = members
        .iter()
        .filter(|m| m.member.mode & 0o170000 == cpio::S_IFREG)
        .collect();
    assert_eq!(files.len(), 1, "one program only");
    let init = &files[0].member;
    assert_eq!(init.name, "init");
    assert_eq!(init.data, read_out("init"));
    assert_eq!(elf::linkage(&init.data), Ok(elf::Linkage::StaticPie));
    // Fixed owners, times and sequential inodes.
    let sde: u32 = manifest_field("source-date-epoch").parse().unwrap();
    for (i, m) in members.iter().enumerate() {
        assert_eq!((m.member.uid, m.member.gid), (0, 0), "{}", m.member.name);
        assert_eq!(m.member.mtime, sde, "{}", m.member.name);
        assert_eq!(m.ino, i as u32 + 1);
    }
    // Heads' "verify ISO compatibility" looks for a live-boot keyword in the initrd.
    assert!(init.data.windows(7).any(|w| w == b"findiso"));
}

#[test]
#[ignore = "needs the built image; the README's test command runs it"]
fn manifest_hashes_match_the_files() {
    let recorded = e2e::manifest();
    for a in &recorded.artifacts {
        let data = read_out(&a.name);
        assert_eq!(a, &sherd_image::manifest::Artifact::of(&a.name, &data));
    }
    assert_eq!(recorded.artifacts.len(), 7);
    // The tree hash is the SHA-256 of the listing the build wrote beside it.
    assert_eq!(
        recorded.get("rootfs-tree"),
        Some(format!("sha256 {}", util::sha256_hex(&read_out("rootfs.tree"))).as_str())
    );
    let has = |key: &str, start: &str| {
        recorded
            .lines
            .iter()
            .any(|(k, v)| k == key && v.starts_with(start))
    };
    assert!(has("tool", "rustc rustc 1.95.0"));
    for (key, start) in [
        ("tool", "cargo "),
        ("tool", "gcc "),
        ("tool", "xorriso "),
        ("kernel-source", "linux-source-6.12 "),
    ] {
        assert!(has(key, start), "manifest lacks {key} {start}");
    }
}

#[test]
#[ignore = "needs the built image; the README's test command runs it"]
fn iso_contains_kernel_initrd_and_a_heads_grub_cfg() {
    let iso = out_dir().join("sherd.iso");
    let list = std::process::Command::new("xorriso")
        .args(["-indev"])
        .arg(&iso)
        .args(["-find", "/", "-type", "f", "-exec", "lsdl", "--"])
        .output()
        .expect("xorriso");
    let text = String::from_utf8_lossy(&list.stdout);
    for f in ["/boot/vmlinuz", "/boot/initrd.img", "/boot/grub/grub.cfg"] {
        assert!(text.contains(f), "{f} missing from the ISO:\n{text}");
    }
    assert_eq!(
        text.lines().filter(|l| l.starts_with('-')).count(),
        3,
        "{text}"
    );
    let tmp = std::env::temp_dir().join(format!("sherd-grub-{}.cfg", std::process::id()));
    let st = std::process::Command::new("xorriso")
        .arg("-osirrox")
        .arg("on")
        .arg("-indev")
        .arg(&iso)
        .args(["-extract", "/boot/grub/grub.cfg"])
        .arg(&tmp)
        .output()
        .unwrap();
    assert!(st.status.success());
    let cfg = std::fs::read_to_string(&tmp).unwrap();
    std::fs::remove_file(&tmp).unwrap();
    sherd_image::iso::check_heads_rules(&cfg).unwrap();
    // The kernel and initrd inside the ISO are the released ones.
    for (inside, outside) in [
        ("/boot/vmlinuz", "vmlinuz"),
        ("/boot/initrd.img", "initrd.img"),
    ] {
        let tmp = std::env::temp_dir().join(format!("sherd-x-{}", std::process::id()));
        let st = std::process::Command::new("xorriso")
            .args(["-osirrox", "on", "-indev"])
            .arg(&iso)
            .args(["-extract", inside])
            .arg(&tmp)
            .output()
            .unwrap();
        assert!(st.status.success());
        assert_eq!(std::fs::read(&tmp).unwrap(), read_out(outside), "{inside}");
        std::fs::remove_file(&tmp).unwrap();
    }
}

/// The UEFI half of the ISO: the GPT's EFI system partition and the El Torito EFI entry are the
/// released `efiboot.img`, which holds the released `BOOTX64.EFI`, whose Authenticode hash is
/// the manifest's; pesign (an implementation other than ours) computes the same hash.
#[test]
#[ignore = "needs the built image: cargo test -p e2e --test artifacts -- --ignored"]
fn the_efi_partition_holds_the_released_kernel_and_its_hash_is_in_the_manifest() {
    let iso = read_out("sherd.iso");
    let esp = read_out("efiboot.img");
    let efi = read_out("BOOTX64.EFI");
    // GPT header at LBA 1; partition entries from the LBA it names, 128 bytes each.
    assert_eq!(&iso[512..520], b"EFI PART");
    let u64_at = |b: &[u8], at: usize| u64::from_le_bytes(b[at..at + 8].try_into().unwrap());
    let alternate = u64_at(&iso, 512 + 32);
    assert_eq!(
        (alternate + 1) * 512,
        iso.len() as u64,
        "backup GPT ends the image"
    );
    let entries = u64_at(&iso, 512 + 72) as usize * 512;
    // EFI system partition type GUID C12A7328-F81F-11D2-BA4B-00A0C93EC93B, stored mixed-endian.
    let esp_type = [
        0x28, 0x73, 0x2a, 0xc1, 0x1f, 0xf8, 0xd2, 0x11, 0xba, 0x4b, 0x00, 0xa0, 0xc9, 0x3e, 0xc9,
        0x3b,
    ];
    let found: Vec<(u64, u64)> = (0..128)
        .map(|i| &iso[entries + i * 128..entries + (i + 1) * 128])
        .filter(|e| e[..16] == esp_type)
        .map(|e| (u64_at(e, 32), u64_at(e, 40)))
        .collect();
    assert_eq!(found.len(), 1, "one EFI system partition");
    let (first, last) = found[0];
    let part = &iso[first as usize * 512..(last as usize + 1) * 512];
    assert_eq!(&part[..esp.len()], esp.as_slice());
    // The El Torito EFI entry: xorriso reports the same partition.
    let report = std::process::Command::new("xorriso")
        .args(["-indev"])
        .arg(e2e::out_dir().join("sherd.iso"))
        .args(["-report_el_torito", "plain"])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&report.stdout).into_owned()
        + &String::from_utf8_lossy(&report.stderr);
    let line = text
        .lines()
        .find(|l| l.starts_with("El Torito boot img :"))
        .unwrap_or_else(|| panic!("no El Torito boot image:\n{text}"));
    let words: Vec<&str> = line.split_whitespace().collect();
    assert!(words.contains(&"UEFI"), "{line}");
    let lba: u64 = words.last().unwrap().parse().unwrap();
    assert_eq!(
        lba * 2048,
        first * 512,
        "El Torito points at the partition: {line}"
    );
    // BOOTX64.EFI in the FAT image, read by mtools.
    let dir = tempfile::tempdir().unwrap();
    let img = dir.path().join("efiboot.img");
    std::fs::write(&img, &esp).unwrap();
    let got = std::process::Command::new("mtype")
        .arg("-i")
        .arg(&img)
        .arg("::/EFI/BOOT/BOOTX64.EFI")
        .output()
        .expect("mtools is needed: apt-get install mtools");
    assert!(
        got.stdout == efi,
        "EFI/BOOT/BOOTX64.EFI is not the released BOOTX64.EFI"
    );
    let ours = hexstr::encode(&authenticode::authenticode_sha256(&efi).unwrap());
    assert_eq!(
        e2e::manifest_field("efi-authenticode"),
        format!("sha256 {ours}")
    );
    let pe = dir.path().join("BOOTX64.EFI");
    std::fs::write(&pe, &efi).unwrap();
    let out = std::process::Command::new("pesign")
        .args(["-h", "-i"])
        .arg(&pe)
        .output()
        .expect("pesign is needed: apt-get install pesign");
    assert!(
        String::from_utf8_lossy(&out.stdout).contains(&ours),
        "pesign: {}",
        String::from_utf8_lossy(&out.stdout)
    );
}
