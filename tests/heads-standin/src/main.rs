//! The Heads stand-in: PID 1 of a first-stage Debian kernel in QEMU that hands over to sherd the
//! way Heads' USB boot does (`usb-init`, `media-scan`, `kexec-iso-init`, `kexec-select-boot`):
//! it loads the USB and file system modules, mounts the stick's one partition read-only on
//! `/media`, finds the one `*.iso` and its `.asc`, loop-mounts the ISO on `/boot`, parses its
//! grub.cfg with Heads' rules, extends PCR4 with SHA-256("usb") and SHA-256("generic") through
//! `/dev/tpm0`, and kexecs the entry's kernel and initrd with Heads' ISO command-line words.
//!
//! What it does not do: check the `.asc` signature (Heads runs gpgv against its ROM keyring;
//! the test's stick carries whatever signature the release has), show menus, or measure the
//! modules into PCR5. Everything it observes is printed on the console as `standin: ...`
//! lines for the test to read.

use heads_config::{grub, hex, pcr, stick};
use std::ffi::CString;
use std::fs;
use std::io::{Read, Write};
use std::os::fd::AsRawFd;
use std::time::{Duration, Instant};

/// Modules to load, in dependency order, one file name a line (written by the test).
const MODULE_ORDER: &str = "/lib/modules/order";
/// What a Heads QEMU board adds would be `console=ttyS0 console=tty`; the serial console is
/// kept last here because the test reads sherd's screens on the serial line.
const BOARD_ADDITIONS: &str = "console=ttyS0";

fn say(msg: &str) {
    println!("standin: {msg}");
    let _ = std::io::stdout().flush();
}

fn main() {
    if let Err(e) = run() {
        say(&format!("FAILED: {e}"));
    }
    // Only reached on failure: power off so the test sees QEMU exit instead of a hang.
    // SAFETY: plain system calls without pointers.
    unsafe {
        libc::sync();
        libc::reboot(libc::LINUX_REBOOT_CMD_POWER_OFF);
    }
}

fn c(s: &str) -> CString {
    CString::new(s).expect("no NUL in paths")
}

fn mount(
    src: &str,
    target: &str,
    fstype: &str,
    flags: libc::c_ulong,
    data: &str,
) -> Result<(), String> {
    let _ = fs::create_dir_all(target);
    let (s, t, f, d) = (c(src), c(target), c(fstype), c(data));
    // SAFETY: all pointers are valid NUL-terminated strings for the duration of the call.
    let r = unsafe { libc::mount(s.as_ptr(), t.as_ptr(), f.as_ptr(), flags, d.as_ptr().cast()) };
    if r != 0 {
        return Err(format!(
            "mount {src} on {target} ({fstype}): {}",
            std::io::Error::last_os_error()
        ));
    }
    Ok(())
}

fn console() {
    // The kernel found no /dev/console in the initramfs; take the one devtmpfs provides.
    if let Ok(f) = fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/console")
    {
        for fd in 0..3 {
            // SAFETY: dup2 onto the standard descriptors; f stays open until they are set.
            unsafe { libc::dup2(f.as_raw_fd(), fd) };
        }
    }
}

fn run() -> Result<(), String> {
    let t0 = Instant::now();
    mount("devtmpfs", "/dev", "devtmpfs", 0, "")?;
    console();
    mount("proc", "/proc", "proc", 0, "")?;
    mount("sysfs", "/sys", "sysfs", 0, "")?;
    mount("securityfs", "/sys/kernel/security", "securityfs", 0, "")?;
    say("started");

    let order = fs::read_to_string(MODULE_ORDER).map_err(|e| format!("{MODULE_ORDER}: {e}"))?;
    for name in order.lines().filter(|l| !l.is_empty()) {
        let path = format!("/lib/modules/{name}");
        let f = fs::File::open(&path).map_err(|e| format!("{path}: {e}"))?;
        let params = c("");
        // SAFETY: a valid fd and an empty parameter string.
        let r = unsafe { libc::syscall(libc::SYS_finit_module, f.as_raw_fd(), params.as_ptr(), 0) };
        if r != 0 {
            let e = std::io::Error::last_os_error();
            if e.raw_os_error() != Some(libc::EEXIST) {
                return Err(format!("loading {name}: {e}"));
            }
        }
    }
    say(&format!(
        "modules loaded ({:.1} s)",
        t0.elapsed().as_secs_f64()
    ));

    // usb-init: wait for the stick; Heads picks a stick with one partition automatically.
    let part = "sda1";
    let deadline = Instant::now() + Duration::from_secs(90);
    while !std::path::Path::new(&format!("/dev/{part}")).exists() {
        if Instant::now() > deadline {
            return Err(format!(
                "no /dev/{part} after 90 s: the USB stick was not found"
            ));
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let dev = format!("/dev/{part}");
    let mut boot_sector = [0u8; 512];
    fs::File::open(&dev)
        .and_then(|mut f| f.read_exact(&mut boot_sector))
        .map_err(|e| format!("{dev}: {e}"))?;
    let uuid = stick::fat_uuid(u32::from_le_bytes([
        boot_sector[0x43],
        boot_sector[0x44],
        boot_sector[0x45],
        boot_sector[0x46],
    ]));
    mount(&dev, "/media", "vfat", libc::MS_RDONLY, "")?;
    say(&format!(
        "stick {dev} (UUID {uuid}) mounted on /media ({:.1} s)",
        t0.elapsed().as_secs_f64()
    ));

    // media-scan: the ISO menu wins when any *.iso is at the top of the stick.
    let isos: Vec<String> = fs::read_dir("/media")
        .map_err(|e| format!("/media: {e}"))?
        .filter_map(|e| e.ok()?.file_name().into_string().ok())
        .filter(|n| n.ends_with(".iso"))
        .collect();
    let [iso] = isos.as_slice() else {
        return Err(format!(
            "want exactly one *.iso on the stick, found {isos:?}"
        ));
    };
    let asc = format!("/media/{iso}.asc");
    if !std::path::Path::new(&asc).exists()
        && !std::path::Path::new(&format!("/media/{iso}.sig")).exists()
    {
        say("UNSIGNED ISO WARNING (no .asc or .sig beside the ISO)");
    } else {
        say(&format!(
            "signature {asc} present (not verified by the stand-in)"
        ));
    }

    // kexec-iso-init: loop-mount the ISO on /boot.
    let iso_file = fs::File::open(format!("/media/{iso}")).map_err(|e| format!("{iso}: {e}"))?;
    let ctl = fs::File::open("/dev/loop-control").map_err(|e| format!("/dev/loop-control: {e}"))?;
    // SAFETY: LOOP_CTL_GET_FREE takes no argument and returns a device number.
    let n = unsafe { libc::ioctl(ctl.as_raw_fd(), 0x4C82) };
    if n < 0 {
        return Err(format!(
            "LOOP_CTL_GET_FREE: {}",
            std::io::Error::last_os_error()
        ));
    }
    let loopdev = format!("/dev/loop{n}");
    let lo = fs::File::open(&loopdev).map_err(|e| format!("{loopdev}: {e}"))?;
    // SAFETY: LOOP_SET_FD with an open, read-only file: the loop device becomes read-only.
    if unsafe { libc::ioctl(lo.as_raw_fd(), 0x4C00, iso_file.as_raw_fd()) } != 0 {
        return Err(format!("LOOP_SET_FD: {}", std::io::Error::last_os_error()));
    }
    mount(&loopdev, "/boot", "iso9660", libc::MS_RDONLY, "")?;

    // kexec-parse-boot: the ISO's grub.cfg, read as Heads reads it.
    let cfg_path = "/boot/boot/grub/grub.cfg";
    let cfg = fs::read_to_string(cfg_path).map_err(|e| format!("{cfg_path}: {e}"))?;
    let entries = grub::parse(&cfg, "/boot/grub");
    let [entry] = entries.as_slice() else {
        return Err(format!(
            "want one boot entry in {cfg_path}, Heads finds {}",
            entries.len()
        ));
    };
    let initrd = entry.initrd.clone().ok_or("the entry has no initrd")?;
    let cmdline = grub::heads_cmdline(&format!("/{iso}"), &uuid, &entry.append, BOARD_ADDITIONS);
    say(&format!(
        "entry {:?}: kernel {} initrd {initrd}",
        entry.name, entry.kernel
    ));
    say(&format!("cmdline {cmdline}"));

    // What the firmware left, for the test to recompute the expectation.
    match fs::read("/sys/kernel/security/tpm0/binary_bios_measurements") {
        Ok(log) => say(&format!("eventlog {}", hex::encode(&log))),
        Err(e) => say(&format!("no firmware event log: {e}")),
    }
    say(&format!("pcr4-before {}", read_pcr(4)?));

    // usb-init extends `usb`, kexec-select-boot extends `generic` just before kexec.
    let mut tpm = fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/tpm0")
        .map_err(|e| format!("/dev/tpm0: {e}"))?;
    for s in pcr::HEADS_USB_BOOT_PCR4_EXTENDS {
        extend_pcr(&mut tpm, 4, &pcr::Bank::Sha256.hash(s.as_bytes()))?;
    }
    drop(tpm);
    let after: Vec<String> = (0..8).map(read_pcr).collect::<Result<_, _>>()?;
    say(&format!("pcrs-after {}", after.join(" ")));

    // kexec-boot: load the kernel and initrd from the mounted ISO and jump.
    let kernel = fs::File::open(format!("/boot{}", entry.kernel))
        .map_err(|e| format!("{}: {e}", entry.kernel))?;
    let initrd_f =
        fs::File::open(format!("/boot{initrd}")).map_err(|e| format!("{initrd}: {e}"))?;
    let cl = c(&cmdline);
    // SAFETY: valid fds and a NUL-terminated command line whose length includes the NUL.
    let r = unsafe {
        libc::syscall(
            libc::SYS_kexec_file_load,
            kernel.as_raw_fd(),
            initrd_f.as_raw_fd(),
            cl.as_bytes_with_nul().len(),
            cl.as_ptr(),
            0,
        )
    };
    if r != 0 {
        return Err(format!(
            "kexec_file_load: {}",
            std::io::Error::last_os_error()
        ));
    }
    say(&format!(
        "kexec loaded ({:.1} s); rebooting into it",
        t0.elapsed().as_secs_f64()
    ));
    // SAFETY: plain system calls without pointers.
    unsafe {
        libc::sync();
        libc::reboot(libc::LINUX_REBOOT_CMD_KEXEC);
    }
    Err(format!(
        "reboot(KEXEC) returned: {}",
        std::io::Error::last_os_error()
    ))
}

fn read_pcr(i: u32) -> Result<String, String> {
    let p = format!("/sys/class/tpm/tpm0/pcr-sha256/{i}");
    fs::read_to_string(&p)
        .map(|s| s.trim().to_ascii_lowercase())
        .map_err(|e| format!("{p}: {e}"))
}

/// TPM2_PCR_Extend of one SHA-256 digest, authorised by the empty password (PCR 4 needs no
/// other), as `tpm2 pcrextend 4:sha256=<digest>` sends it.
fn extend_pcr(tpm: &mut fs::File, index: u32, digest: &[u8]) -> Result<(), String> {
    let mut body = Vec::new();
    body.extend(index.to_be_bytes());
    // Authorisation area: TPM_RS_PW, empty nonce, no attributes, empty password.
    body.extend(9u32.to_be_bytes());
    body.extend(0x4000_0009u32.to_be_bytes());
    body.extend([0, 0, 0, 0, 0]);
    // TPML_DIGEST_VALUES with one TPM_ALG_SHA256 digest.
    body.extend(1u32.to_be_bytes());
    body.extend(0x000bu16.to_be_bytes());
    body.extend(digest);
    let mut cmd = Vec::new();
    cmd.extend(0x8002u16.to_be_bytes()); // TPM_ST_SESSIONS
    cmd.extend(((10 + body.len()) as u32).to_be_bytes());
    cmd.extend(0x0000_0182u32.to_be_bytes()); // TPM_CC_PCR_Extend
    cmd.extend(body);
    tpm.write_all(&cmd)
        .map_err(|e| format!("/dev/tpm0 write: {e}"))?;
    let mut resp = [0u8; 4096];
    let n = tpm
        .read(&mut resp)
        .map_err(|e| format!("/dev/tpm0 read: {e}"))?;
    if n < 10 {
        return Err(format!("TPM2_PCR_Extend: short response of {n} bytes"));
    }
    let rc = u32::from_be_bytes([resp[6], resp[7], resp[8], resp[9]]);
    if rc != 0 {
        return Err(format!(
            "TPM2_PCR_Extend of PCR {index}: response code {rc:#x}"
        ));
    }
    Ok(())
}
