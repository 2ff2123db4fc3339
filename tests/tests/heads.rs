//! Heads' hand-off, emulated: a first-stage "Heads stand-in" (Debian's kernel with a tiny Rust
//! PID 1, `tests/heads-standin`) boots in QEMU with swtpm and a USB stick (MBR, FAT32, sherd's
//! ISO and its .asc), does what Heads' USB boot does (PCR4 += SHA-256("usb"), SHA-256
//! ("generic")), and kexecs sherd's kernel and initrd out of the ISO with Heads' ISO words
//! (`findiso=/sherd.iso` ...). See "Emulating Heads' hand-off in QEMU" in heads.md.
//!
//! Debian's kernel is `apt-get download`ed (never installed) into `$SHERD_CACHE/standin`
//! (default `~/.cache/sherd/standin`) on first use.

use e2e::{Boot, Guest, Swtpm, out_dir, workspace};
use heads_config::{attest, eventlog, hex, pcr, stick};
use sherd_image::cpio;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

/// Generous: two kernels booting under TCG on a shared 2-core machine, USB enumeration included.
const BOUND: Duration = Duration::from_secs(300);
/// The modules Debian's kernel needs to see the stick and mount it and the ISO; their
/// dependencies are added from each module's `depends=`.
const MODULES: &[&str] = &[
    "xhci_pci",
    "usb_storage",
    "sd_mod",
    "vfat",
    "nls_cp437",
    "nls_ascii",
    "loop",
    "isofs",
];

fn cache_dir() -> PathBuf {
    // The same base as sherd-image's kernel cache.
    let base = std::env::var_os("SHERD_CACHE")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            std::env::var_os("XDG_CACHE_HOME")
                .map(PathBuf::from)
                .unwrap_or_else(|| {
                    Path::new(&std::env::var_os("HOME").expect("HOME")).join(".cache")
                })
                .join("sherd")
        });
    base.join("standin")
}

fn run(cmd: &mut Command) -> String {
    let out = cmd.output().unwrap_or_else(|e| panic!("{cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Debian's current `linux-image-<abi>-amd64`, unpacked: its root directory.
fn debian_kernel() -> PathBuf {
    let cache = cache_dir();
    std::fs::create_dir_all(&cache).unwrap();
    let deps = Command::new("apt-cache")
        .args(["depends", "linux-image-amd64"])
        .output()
        .ok()
        .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
        .unwrap_or_default();
    let pkg = deps
        .lines()
        .find_map(|l| l.trim().strip_prefix("Depends: "))
        .map(str::to_owned);
    let pkg = match pkg {
        Some(p) => p,
        // Offline: any kernel unpacked before will do.
        None => std::fs::read_dir(&cache)
            .unwrap()
            .filter_map(|e| e.ok()?.file_name().into_string().ok())
            .find(|n| n.starts_with("linux-image-"))
            .expect("apt-cache knows no linux-image-amd64 (run apt-get update) and none is cached"),
    };
    let root = cache.join(&pkg).join("root");
    if !root.join("boot").is_dir() {
        let dir = cache.join(&pkg);
        std::fs::create_dir_all(&dir).unwrap();
        run(Command::new("apt-get")
            .args(["download", "-q", &pkg])
            .current_dir(&dir));
        let deb = std::fs::read_dir(&dir)
            .unwrap()
            .filter_map(|e| Some(e.ok()?.path()))
            .find(|p| p.extension().is_some_and(|x| x == "deb"))
            .expect("apt-get download left a .deb");
        let tmp = dir.join("root.partial");
        let _ = std::fs::remove_dir_all(&tmp);
        run(Command::new("dpkg-deb").arg("-x").arg(&deb).arg(&tmp));
        std::fs::rename(&tmp, &root).unwrap();
        std::fs::remove_file(&deb).unwrap();
    }
    root
}

fn only_file(dir: &Path, prefix: &str) -> PathBuf {
    std::fs::read_dir(dir)
        .unwrap()
        .filter_map(|e| Some(e.ok()?.path()))
        .find(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with(prefix))
        })
        .unwrap_or_else(|| panic!("no {prefix}* in {}", dir.display()))
}

/// Module files for `MODULES` and their dependencies, dependencies first.
fn module_files(root: &Path) -> Vec<(String, Vec<u8>)> {
    let norm = |s: &str| s.replace('-', "_");
    let mut index = BTreeMap::new();
    let mut stack = vec![only_file(&root.join("lib/modules"), "")];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                stack.push(p);
            } else if let Some(stem) = p
                .file_name()
                .and_then(|n| n.to_str())
                .and_then(|n| n.strip_suffix(".ko"))
            {
                index.insert(norm(stem), p.clone());
            }
        }
    }
    fn visit(
        name: &str,
        index: &BTreeMap<String, PathBuf>,
        out: &mut Vec<(String, Vec<u8>)>,
        norm: &dyn Fn(&str) -> String,
    ) {
        if out
            .iter()
            .any(|(n, _)| norm(n.trim_end_matches(".ko")) == name)
        {
            return;
        }
        let path = index
            .get(name)
            .unwrap_or_else(|| panic!("Debian's kernel has no module {name}"));
        let data = std::fs::read(path).unwrap();
        // The .modinfo section's `depends=a,b` string.
        let key = b"\0depends=";
        if let Some(at) = data.windows(key.len()).position(|w| w == key) {
            let rest = &data[at + key.len()..];
            let end = rest.iter().position(|&b| b == 0).unwrap_or(0);
            let deps = String::from_utf8_lossy(&rest[..end]).into_owned();
            for d in deps.split(',').filter(|d| !d.is_empty()) {
                visit(&norm(d), index, out, norm);
            }
        }
        let file = path.file_name().unwrap().to_string_lossy().into_owned();
        out.push((file, data));
    }
    let mut out = Vec::new();
    for m in MODULES {
        visit(m, &index, &mut out, &norm);
    }
    out
}

/// The stand-in's PID 1, static, for musl; its own target dir so that its flags do not
/// invalidate the image build's artifacts.
fn standin_binary() -> Vec<u8> {
    let ws = workspace();
    let target = ws.join("target/standin");
    run(Command::new("cargo")
        .current_dir(&ws)
        .env("CARGO_ENCODED_RUSTFLAGS", "-Ctarget-feature=+crt-static")
        .args([
            "build",
            "--locked",
            "-q",
            "-p",
            "heads-standin",
            "--target",
            "x86_64-unknown-linux-musl",
            "--target-dir",
        ])
        .arg(&target));
    std::fs::read(target.join("x86_64-unknown-linux-musl/debug/heads-standin")).unwrap()
}

fn standin_initramfs(modules: Vec<(String, Vec<u8>)>, init: Vec<u8>) -> Vec<u8> {
    let order: String = modules.iter().map(|(n, _)| format!("{n}\n")).collect();
    let mut files: BTreeMap<String, (u32, Vec<u8>)> = BTreeMap::new();
    for d in ["boot", "dev", "lib", "lib/modules", "media", "proc", "sys"] {
        files.insert(d.into(), (cpio::S_IFDIR | 0o755, Vec::new()));
    }
    files.insert("init".into(), (cpio::S_IFREG | 0o755, init));
    files.insert(
        "lib/modules/order".into(),
        (cpio::S_IFREG | 0o644, order.into_bytes()),
    );
    for (n, data) in modules {
        files.insert(format!("lib/modules/{n}"), (cpio::S_IFREG | 0o644, data));
    }
    let members: Vec<cpio::Member> = files
        .into_iter()
        .map(|(name, (mode, data))| cpio::Member {
            name,
            mode,
            uid: 0,
            gid: 0,
            mtime: 0,
            rdev_major: 0,
            rdev_minor: 0,
            data,
        })
        .collect();
    cpio::write(&members).expect("stand-in initramfs")
}

/// The value after `standin: <key> ` on a complete line of the guest's output.
fn standin_line(raw: &str, key: &str) -> Option<String> {
    let needle = format!("standin: {key} ");
    let complete = &raw[..raw.rfind('\n').map_or(0, |i| i + 1)];
    complete.lines().find_map(|l| {
        l.trim_end_matches('\r')
            .split_once(&needle)
            .map(|(_, v)| v.to_owned())
    })
}

fn wait_standin(g: &Guest, key: &str, timeout: Duration) -> String {
    let t0 = Instant::now();
    loop {
        let raw = String::from_utf8_lossy(&g.raw()).into_owned();
        if let Some(v) = standin_line(&raw, key) {
            return v;
        }
        if let Some(e) = standin_line(&raw, "FAILED:") {
            panic!("the stand-in failed: {e}\n--- output ---\n{raw}");
        }
        assert!(
            t0.elapsed() < timeout,
            "no `standin: {key}` within {timeout:?}\n--- output ---\n{}",
            &raw[raw.len().saturating_sub(4000)..]
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
#[ignore = "needs the built image; the README's test command runs it"]
fn heads_hand_off_extends_pcr4_and_boots_sherd_from_the_stick() {
    let t0 = Instant::now();
    let root = debian_kernel();
    let vmlinuz = only_file(&root.join("boot"), "vmlinuz-");
    let initramfs = standin_initramfs(module_files(&root), standin_binary());
    let out = out_dir();
    let iso = std::fs::read(out.join("sherd.iso")).unwrap();
    // The release's signature when there is one; the stand-in does not verify it (Heads would).
    let asc = std::fs::read(out.join("sherd.iso.asc")).unwrap_or_else(|_| {
        b"-----BEGIN PGP SIGNATURE-----\n\ntest placeholder: not checked by the stand-in\n\
          -----END PGP SIGNATURE-----\n"
            .to_vec()
    });
    let tmp = tempfile_dir();
    let stick_img = tmp.join("stick.img");
    let files = stick::boot_stick_files("sherd.iso", &iso, "sherd.iso.asc", &asc, &[]).unwrap();
    stick::write_disk_image(&stick_img, "SHERD", &files, 0).unwrap();
    let uuid = stick::fat_uuid(stick::volume_id("SHERD", &files));
    let initrd_path = tmp.join("standin.cpio");
    std::fs::write(&initrd_path, initramfs).unwrap();
    eprintln!("stand-in prepared in {:.1} s", t0.elapsed().as_secs_f64());

    let tpm = Swtpm::start();
    let mut b = Boot {
        kernel: vmlinuz,
        initrd: initrd_path,
        append: "console=ttyS0 loglevel=4 panic=-1".into(),
        extra: tpm.qemu_args(),
        memory_mb: 1024,
    };
    b.extra.extend([
        "-device".into(),
        "qemu-xhci,id=xhci".into(),
        "-drive".into(),
        format!(
            "if=none,id=stick,format=raw,readonly=on,file={}",
            stick_img.display()
        ),
        "-device".into(),
        "usb-storage,bus=xhci.0,drive=stick".into(),
    ]);
    let mut g = Guest::start(&b);

    // What the stand-in saw and did.
    let cmdline = wait_standin(&g, "cmdline", BOUND);
    for w in [
        "findiso=/sherd.iso".to_owned(),
        "iso-scan/filename=/sherd.iso".to_owned(),
        format!("img_dev=/dev/disk/by-uuid/{uuid}"),
        "loglevel=3".to_owned(),
    ] {
        assert!(cmdline.split(' ').any(|x| x == w), "{w} missing: {cmdline}");
    }
    let sig = wait_standin(&g, "signature", BOUND);
    assert!(sig.starts_with("/media/sherd.iso.asc present"), "{sig}");
    let log_hex = wait_standin(&g, "eventlog", BOUND);
    let log = hex::decode(&log_hex).expect("event log printed as hex");
    let before = wait_standin(&g, "pcr4-before", BOUND);
    let after_line = wait_standin(&g, "pcrs-after", BOUND);
    let after: Vec<Vec<u8>> = after_line
        .split(' ')
        .map(|h| attest::parse_sysfs_pcr(h).expect("PCR as hex"))
        .collect();
    assert_eq!(after.len(), 8, "{after_line}");

    // SeaBIOS's own log replays to the PCR4 it left, and PCR4 after the stand-in is Heads'
    // two extends on top of it.
    eprintln!("firmware event log ({} bytes): {log_hex}", log.len());
    eprintln!("PCR 0-7 after the stand-in: {after_line}");
    let bank = pcr::Bank::Sha256;
    let parsed = eventlog::parse(&log).expect("SeaBIOS's event log parses");
    let x = eventlog::replay(&parsed.events, 4, bank).expect("the log has a SHA-256 bank");
    assert_eq!(
        hex::encode(&x),
        before,
        "PCR4 before the stand-in = replay of the log"
    );
    let expected = pcr::heads_usb_boot_pcr4(bank, &x);
    assert_eq!(
        hex::encode(&after[4]),
        hex::encode(&expected),
        "PCR4 = E(E(x, H(usb)), H(generic))"
    );
    let pcrs: [Option<Vec<u8>>; 8] = std::array::from_fn(|i| Some(after[i].clone()));
    let verdicts = attest::judge(&pcrs, Some(&log));
    for v in &verdicts {
        eprintln!(
            "PCR{} {:?}: {} ({})",
            v.index, v.verdict, v.expectation, v.reason
        );
        // SeaBIOS keeps an event log and measures into PCR 0-7, so nothing is Heads' value:
        // PCR 0, 1, 3 and 4 equal their log replay (PCR4 with the stand-in's Heads extends on
        // top), which is information, never a PASS.
        assert_eq!(
            v.verdict,
            attest::Verdict::Unknown,
            "PCR{}: {}",
            v.index,
            v.reason
        );
        if [0, 1, 3, 4].contains(&v.index) {
            assert!(v.reason.contains("replay"), "PCR{}: {}", v.index, v.reason);
        }
    }

    // sherd itself, booted by kexec: its first screen, with its own kernel.
    let t = g.wait_for_screen(e2e::FIRST_SCREEN, BOUND);
    eprintln!(
        "double boot (stand-in, kexec, sherd's first screen): {:.1} s",
        t.as_secs_f64()
    );
    let screen = g.screen();
    assert!(
        screen.contains("-sherd"),
        "sherd's kernel is running: {screen}"
    );
    assert!(!screen.contains("6.1.0-"), "not Debian's kernel: {screen}");

    // sherd's own attestation: the ISO found through findiso= and read back from the stick
    // is the manifest's, and PCR 0/1/3/4 show the value the test computed, as UNKNOWN: they
    // match the firmware log's replay, which is information, not Heads' values.
    g.send("g");
    g.wait_for_screen("boot attestation 1", BOUND);
    let screen = g.screen();
    eprintln!("{screen}");
    let iso_sha = e2e::artifact_sha256("sherd.iso");
    assert_eq!(
        e2e::hash_after(&screen, "Boot image (ISO) SHA-256").as_deref(),
        Some(iso_sha.as_str()),
        "{screen}"
    );
    assert!(screen.contains("findiso=/sherd.iso)"), "{screen}");
    g.send("\t");
    g.wait_for_screen("boot attestation 2", BOUND);
    g.send("\t");
    g.wait_for_screen("TPM PCR 0 to 3", BOUND);
    let screen = g.screen();
    eprintln!("{screen}");
    for i in [0, 1, 3] {
        let line = format!("PCR{i} {} UNKNOWN", hex::encode(&after[i]));
        assert!(screen.contains(&line), "{line}\n{screen}");
    }
    g.send("\t");
    g.wait_for_screen("TPM PCR 4 to 7", BOUND);
    let screen = g.screen();
    eprintln!("{screen}");
    let line = format!("PCR4 {} UNKNOWN", hex::encode(&expected));
    assert!(screen.contains(&line), "{line}\n{screen}");
    g.send("a");
    g.wait_for_screen("Abort the ceremony?", BOUND);
    g.send("y");
    g.wait_for_screen("CEREMONY ABORTED", BOUND);
    g.send("p");
    g.wait_for_output("reboot: Power down", Duration::from_secs(60));
    let st = g.wait_exit(Duration::from_secs(30));
    assert!(st.success(), "QEMU exit status {st}");
    let _ = std::fs::remove_dir_all(&tmp);
}

fn tempfile_dir() -> PathBuf {
    let d = std::env::temp_dir().join(format!("sherd-heads-{}", std::process::id()));
    std::fs::create_dir_all(&d).unwrap();
    d
}
