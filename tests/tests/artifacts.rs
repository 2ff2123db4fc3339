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
    assert_eq!(recorded.artifacts.len(), 5);
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
