use std::fs;
use std::os::unix::fs::symlink;
use std::sync::Arc;

use ceremony::storage::{OutputFile, WriteError, write_all};

use crate::discovery::probe_bytes;
use crate::testing::{Bus, Call, FakeDisk, FakeMachine, FakeMounter, fs_image, fs_image_with};
use crate::*;

const GB: u64 = 1_000_000_000;
/// SHA-256("abc"), FIPS 180-2 appendix B.1.
const ABC_SHA256: &str = "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad";

fn usb<'a>(name: &'a str, partitions: &'a [(&'a str, u64)]) -> FakeDisk<'a> {
    FakeDisk {
        name,
        bus: Bus::Usb,
        removable: true,
        size_bytes: 16 * GB,
        vendor: "SanDisk",
        model: "Cruzer Blade",
        partitions,
    }
}

fn nvme() -> FakeDisk<'static> {
    FakeDisk {
        name: "nvme0n1",
        bus: Bus::Nvme,
        removable: false,
        size_bytes: 512 * GB,
        vendor: "",
        model: "Samsung SSD 980",
        partitions: &[("nvme0n1p1", GB), ("nvme0n1p2", 500 * GB)],
    }
}

struct Setup {
    _tmp: tempfile::TempDir,
    machine: FakeMachine,
    mounter: Arc<FakeMounter>,
    media: Media,
}

fn setup() -> Setup {
    let tmp = tempfile::tempdir().unwrap();
    let machine = FakeMachine::new(tmp.path()).unwrap();
    let mounter = FakeMounter::new();
    let media = machine.media(mounter.clone());
    Setup {
        _tmp: tmp,
        machine,
        mounter,
        media,
    }
}

fn mounts(calls: &[Call]) -> Vec<(String, FsType, bool)> {
    calls
        .iter()
        .filter_map(|c| match c {
            Call::Mount {
                device,
                fs,
                writable,
                ..
            } => Some((
                device.file_name().unwrap().to_str().unwrap().to_string(),
                *fs,
                *writable,
            )),
            _ => None,
        })
        .collect()
}

// ---- discovery ----

#[test]
fn sysfs_usb_disk_with_partitions() {
    let s = setup();
    s.machine
        .add_disk(&usb("sdb", &[("sdb1", GB), ("sdb2", 15 * GB)]))
        .unwrap();
    let disks = s.media.disks().unwrap();
    assert_eq!(disks.len(), 1);
    let d = &disks[0];
    assert_eq!(d.name, "sdb");
    assert_eq!(d.dev_path, s.machine.dev.join("sdb"));
    assert!(d.removable && d.usb && d.is_removable_media());
    assert_eq!(d.size_bytes, 16 * GB);
    assert_eq!(
        (d.vendor.as_str(), d.model.as_str()),
        ("SanDisk", "Cruzer Blade")
    );
    assert_eq!(
        d.partitions,
        vec![
            Partition {
                name: "sdb1".into(),
                dev_path: s.machine.dev.join("sdb1"),
                size_bytes: GB
            },
            Partition {
                name: "sdb2".into(),
                dev_path: s.machine.dev.join("sdb2"),
                size_bytes: 15 * GB
            },
        ]
    );
    let names: Vec<_> = d.fs_devices().into_iter().map(|f| f.name).collect();
    assert_eq!(names, ["sdb1", "sdb2"]);
    assert_eq!(
        d.fs_devices()[0].describe(),
        "sdb1 (SanDisk Cruzer Blade, 1.0 GB)"
    );
}

#[test]
fn sysfs_superfloppy_is_its_own_file_system() {
    let s = setup();
    s.machine.add_disk(&usb("sdc", &[])).unwrap();
    let d = &s.media.disks().unwrap()[0];
    assert!(d.partitions.is_empty());
    let fsd = d.fs_devices();
    assert_eq!(fsd.len(), 1);
    assert_eq!(fsd[0].name, "sdc");
    assert_eq!(fsd[0].disk, "sdc");
    assert_eq!(fsd[0].dev_path, s.machine.dev.join("sdc"));
}

#[test]
fn sysfs_internal_virtual_and_empty_disks() {
    let s = setup();
    s.machine.add_disk(&nvme()).unwrap();
    s.machine
        .add_disk(&FakeDisk {
            name: "loop0",
            bus: Bus::Virtual,
            removable: false,
            size_bytes: GB,
            vendor: "",
            model: "",
            partitions: &[],
        })
        .unwrap();
    // A USB card reader with no card in it.
    s.machine
        .add_disk(&FakeDisk {
            size_bytes: 0,
            ..usb("sdd", &[])
        })
        .unwrap();
    // A USB disk that does not call itself removable is still a stick to us.
    s.machine
        .add_disk(&FakeDisk {
            removable: false,
            ..usb("sde", &[("sde1", GB)])
        })
        .unwrap();
    let disks = s.media.disks().unwrap();
    let names: Vec<_> = disks.iter().map(|d| d.name.as_str()).collect();
    assert_eq!(names, ["nvme0n1", "sdd", "sde"], "loop0 is virtual");
    assert!(!disks[0].usb && !disks[0].is_removable_media());
    assert_eq!(disks[0].model, "Samsung SSD 980");
    assert_eq!(disks[0].partitions.len(), 2);
    assert!(!disks[1].is_removable_media(), "no medium");
    assert!(disks[2].usb && disks[2].is_removable_media());
    let devs: Vec<_> = s
        .media
        .removable_fs_devices()
        .unwrap()
        .into_iter()
        .map(|d| d.name)
        .collect();
    assert_eq!(devs, ["sde1"]);
}

#[test]
fn sysfs_poll_follows_unplugging() {
    let s = setup();
    s.machine.add_disk(&usb("sdb", &[("sdb1", GB)])).unwrap();
    assert_eq!(s.media.disks().unwrap().len(), 1);
    s.machine.remove_disk("sdb").unwrap();
    assert!(s.media.disks().unwrap().is_empty());
}

#[test]
fn hostile_vendor_strings_are_cleaned() {
    let s = setup();
    s.machine
        .add_disk(&FakeDisk {
            vendor: "Evil\x1b[2J\x07",
            model: "caf\u{e9}  stick\n\n x",
            ..usb("sdb", &[])
        })
        .unwrap();
    let d = &s.media.disks().unwrap()[0];
    assert_eq!(d.vendor, "Evil [2J");
    assert_eq!(d.model, "caf stick x");
    assert_eq!(crate::discovery::clean_label(&[b'a'; 100]).len(), 40);
}

#[test]
fn probe_magic_numbers() {
    for fs in FsType::ALL {
        assert_eq!(probe_bytes(&fs_image(fs)), Some(fs), "{fs}");
    }
    let mut mbr = vec![0u8; 4096];
    mbr[510] = 0x55;
    mbr[511] = 0xaa;
    assert_eq!(probe_bytes(&mbr), None, "a partition table is not FAT");
    assert_eq!(probe_bytes(&[]), None);
    assert_eq!(probe_bytes(&fs_image(FsType::Iso9660)[..4096]), None);
}

// ---- mounting ----

#[test]
fn mount_tries_the_probed_type_first_then_the_others_in_order() {
    let s = setup();
    s.machine.add_disk(&usb("sdb", &[("sdb1", GB)])).unwrap();
    s.machine.format(&s.mounter, "sdb1", FsType::Ext4).unwrap();
    let m: Arc<dyn Mounter> = s.mounter.clone();
    let target = s.machine.run.join("t");
    let dev = s.machine.dev.join("sdb1");
    let mounted = mount_readonly(&m, &dev, &target).unwrap();
    assert_eq!(mounted.fs(), FsType::Ext4);
    drop(mounted);
    assert_eq!(
        s.mounter.calls(),
        vec![
            Call::Mount {
                device: dev.clone(),
                target: target.clone(),
                fs: FsType::Ext4,
                writable: false
            },
            Call::Unmount(target.clone()),
        ]
    );

    // Magic numbers gone (unknown to the probe): every type is tried, in order.
    fs::write(&dev, b"").unwrap();
    let mounted = mount_readonly(&m, &dev, &target).unwrap();
    assert_eq!(mounted.fs(), FsType::Ext4);
    mounted.unmount().unwrap();
    let tried: Vec<_> = mounts(&s.mounter.calls()[2..])
        .into_iter()
        .map(|(_, fs, _)| fs)
        .collect();
    assert_eq!(tried, [FsType::Vfat, FsType::Exfat, FsType::Ext4]);
}

#[test]
fn mount_failure_says_what_was_tried() {
    let s = setup();
    s.machine.add_disk(&usb("sdb", &[])).unwrap();
    let m: Arc<dyn Mounter> = s.mounter.clone();
    let err = mount_readonly(&m, &s.machine.dev.join("sdb"), &s.machine.run.join("t")).unwrap_err();
    let msg = err.to_string();
    assert!(matches!(err, MediaError::Mount { .. }));
    for fs in ["vfat", "exfat", "ext4", "iso9660"] {
        assert!(msg.contains(fs), "{msg}");
    }
    assert!(
        msg.contains("read-only") && msg.contains("use another stick"),
        "{msg}"
    );
}

#[test]
fn writable_mounts_refuse_iso9660_and_sync_before_unmount() {
    let s = setup();
    s.machine
        .add_disk(&usb("sdb", &[("sdb1", GB), ("sdb2", GB)]))
        .unwrap();
    s.machine
        .format(&s.mounter, "sdb1", FsType::Iso9660)
        .unwrap();
    s.machine.format(&s.mounter, "sdb2", FsType::Vfat).unwrap();
    let m: Arc<dyn Mounter> = s.mounter.clone();
    let target = s.machine.run.join("w");
    let err = mount_writable(&m, &s.machine.dev.join("sdb1"), &target).unwrap_err();
    assert!(matches!(
        err,
        MediaError::NotWritable {
            fs: FsType::Iso9660,
            ..
        }
    ));
    assert!(s.mounter.calls().is_empty());

    // Dropped without unmount(): still synced, then unmounted.
    drop(mount_writable(&m, &s.machine.dev.join("sdb2"), &target).unwrap());
    assert_eq!(
        s.mounter.calls()[1..],
        [Call::Sync(target.clone()), Call::Unmount(target.clone())]
    );
}

// ---- findiso ----

#[test]
fn findiso_values() {
    for ok in ["/sherd.iso", "/boot/sherd-0.1.0.iso", "/a b/c.iso"] {
        check_findiso(ok).unwrap();
    }
    let long = format!("/{}", "a".repeat(256));
    let very_long = "/a".repeat(600);
    for bad in [
        "",
        "sherd.iso",
        "boot/sherd.iso",
        "/",
        "/../sherd.iso",
        "/boot/../../x.iso",
        "/./sherd.iso",
        "/boot/..",
        "//sherd.iso",
        "/boot//sherd.iso",
        "/boot/",
        "/sherd\0.iso",
        "/sherd\n.iso",
        "/sherd\x1b[2J.iso",
        long.as_str(),
        very_long.as_str(),
    ] {
        assert!(
            matches!(check_findiso(bad), Err(MediaError::BadFindiso { .. })),
            "{bad:?}"
        );
    }
}

#[test]
fn findiso_behind_a_device_path_names_the_path_inside() {
    assert_eq!(
        findiso_path("/dev/disk/by-uuid/1234-ABCD/boot/sherd.iso"),
        "/boot/sherd.iso"
    );
    assert_eq!(findiso_path("/sherd.iso"), "/sherd.iso");
    // A uuid with nothing after it is left as it is (and then not found).
    assert_eq!(
        findiso_path("/dev/disk/by-uuid/1234-ABCD"),
        "/dev/disk/by-uuid/1234-ABCD"
    );
    let s = boot_setup();
    let iso = s
        .media
        .find_boot_iso("/dev/disk/by-uuid/1234-ABCD/boot/sherd.iso", &mut |_, _| {})
        .unwrap();
    assert_eq!(iso.sha256_hex(), ABC_SHA256);
    assert!(matches!(
        s.media
            .find_boot_iso("/dev/disk/by-uuid/1234-ABCD/../x.iso", &mut |_, _| {}),
        Err(MediaError::BadFindiso { .. })
    ));
}

/// sdb: USB boot stick (vfat) with /boot/sherd.iso = "abc"; nvme: internal, also has it.
fn boot_setup() -> Setup {
    let s = setup();
    s.machine.add_disk(&usb("sdb", &[("sdb1", GB)])).unwrap();
    let boot = s.machine.format(&s.mounter, "sdb1", FsType::Vfat).unwrap();
    fs::create_dir(boot.join("boot")).unwrap();
    fs::write(boot.join("boot/sherd.iso"), b"abc").unwrap();
    s.machine.add_disk(&nvme()).unwrap();
    let internal = s
        .machine
        .format(&s.mounter, "nvme0n1p2", FsType::Ext4)
        .unwrap();
    fs::create_dir(internal.join("boot")).unwrap();
    fs::write(internal.join("boot/sherd.iso"), b"other").unwrap();
    s
}

#[test]
fn boot_iso_found_and_hashed_read_only() {
    let s = boot_setup();
    let mut seen = Vec::new();
    let iso = s
        .media
        .find_boot_iso("/boot/sherd.iso", &mut |d, t| seen.push((d, t)))
        .unwrap();
    assert_eq!(iso.sha256_hex(), ABC_SHA256);
    assert_eq!(iso.size_bytes, 3);
    assert_eq!(seen.first(), Some(&(0, 3)));
    assert_eq!(seen.last(), Some(&(3, 3)));
    assert_eq!(iso.location.device.disk, "sdb");
    assert_eq!(iso.location.fs, FsType::Vfat);
    assert_eq!(
        iso.location.to_string(),
        "/boot/sherd.iso on sdb1 (SanDisk Cruzer Blade, 1.0 GB)"
    );
    let calls = s.mounter.calls();
    // Only the stick, only read-only, every mount undone.
    assert!(mounts(&calls).iter().all(|(d, _, w)| d == "sdb1" && !w));
    let n_mount = calls
        .iter()
        .filter(|c| matches!(c, Call::Mount { .. }))
        .count();
    let n_unmount = calls
        .iter()
        .filter(|c| matches!(c, Call::Unmount(_)))
        .count();
    assert_eq!(n_mount, n_unmount);
}

#[test]
fn boot_iso_missing_bad_or_ambiguous() {
    let s = boot_setup();
    let err = s
        .media
        .find_boot_iso("/sherd.iso", &mut |_, _| {})
        .unwrap_err();
    assert!(matches!(err, MediaError::IsoNotFound { .. }));
    assert!(err.to_string().contains("sdb1 (vfat)"), "{err}");

    let before = s.mounter.calls().len();
    let err = s
        .media
        .find_boot_iso("/boot/../x.iso", &mut |_, _| {})
        .unwrap_err();
    assert!(matches!(err, MediaError::BadFindiso { .. }));
    assert_eq!(s.mounter.calls().len(), before, "nothing mounted");

    s.machine.add_disk(&usb("sdc", &[])).unwrap();
    let other = s.machine.format(&s.mounter, "sdc", FsType::Exfat).unwrap();
    fs::create_dir(other.join("boot")).unwrap();
    fs::write(other.join("boot/sherd.iso"), b"abd").unwrap();
    let err = s
        .media
        .find_boot_iso("/boot/sherd.iso", &mut |_, _| {})
        .unwrap_err();
    let MediaError::SeveralIsos { found, .. } = &err else {
        panic!("{err}")
    };
    assert_eq!(found.len(), 2);
    assert!(err.to_string().contains("Remove all but the boot stick"));
}

#[test]
fn boot_iso_must_be_a_real_file() {
    let s = setup();
    s.machine.add_disk(&usb("sdb", &[])).unwrap();
    let c = s.machine.format(&s.mounter, "sdb", FsType::Ext4).unwrap();
    // A stick pointing us at another disk, or up out of itself.
    symlink(s.machine.dev.join("nvme0n1"), c.join("sherd.iso")).unwrap();
    symlink("/", c.join("boot")).unwrap();
    let err = s
        .media
        .find_boot_iso("/sherd.iso", &mut |_, _| {})
        .unwrap_err();
    assert!(matches!(err, MediaError::NotAFile { .. }), "{err}");
    let err = s
        .media
        .find_boot_iso("/boot/x.iso", &mut |_, _| {})
        .unwrap_err();
    assert!(matches!(err, MediaError::NotAFile { .. }), "{err}");
}

#[test]
fn without_findiso_every_iso_is_listed_with_its_hash() {
    let s = boot_setup();
    let c = s.machine.content_dir("sdb1");
    fs::write(c.join("OLD.ISO"), b"abc").unwrap();
    fs::write(c.join("notes.txt"), b"x").unwrap();
    fs::write(c.join(".iso"), b"x").unwrap();
    symlink("boot/sherd.iso", c.join("link.iso")).unwrap();
    let mut progress = Vec::new();
    let scan = s
        .media
        .scan_isos(&mut |l, d, t| progress.push((l.path.clone(), d, t)))
        .unwrap();
    let found: Vec<_> = scan
        .found
        .iter()
        .map(|f| (f.location.path.as_str(), f.sha256_hex()))
        .collect();
    assert_eq!(
        found,
        [
            ("/OLD.ISO", ABC_SHA256.to_string()),
            ("/boot/sherd.iso", ABC_SHA256.to_string())
        ]
    );
    assert_eq!(
        scan.looked, "sdb1 (vfat)",
        "the internal disk is never mounted"
    );
    assert!(progress.contains(&("/boot/sherd.iso".to_string(), 3, 3)));
}

// ---- plan ----

#[test]
fn plan_stick_found() {
    let s = boot_setup();
    s.machine.add_disk(&usb("sdc", &[("sdc1", GB)])).unwrap();
    let c = s.machine.format(&s.mounter, "sdc1", FsType::Exfat).unwrap();
    fs::write(c.join(PLAN_FILE), "id = \"x\"\n").unwrap();
    let plan = s.media.find_plan().unwrap();
    assert_eq!(plan.text, "id = \"x\"\n");
    assert_eq!(plan.location.device.name, "sdc1");
    assert_eq!(plan.location.path, "/sherd-plan.toml");
    assert!(mounts(&s.mounter.calls()).iter().all(|(_, _, w)| !w));
}

#[test]
fn plan_stick_errors() {
    let s = boot_setup();
    let err = s.media.find_plan().unwrap_err();
    assert!(matches!(err, MediaError::PlanNotFound { .. }), "{err}");
    assert!(err.to_string().contains("sdb1 (vfat)"), "{err}");

    s.machine.add_disk(&usb("sdc", &[("sdc1", GB)])).unwrap();
    let c = s.machine.format(&s.mounter, "sdc1", FsType::Vfat).unwrap();
    fs::write(c.join(PLAN_FILE), vec![b'#'; PLAN_MAX_BYTES as usize + 1]).unwrap();
    assert!(matches!(
        s.media.find_plan().unwrap_err(),
        MediaError::PlanTooLarge { .. }
    ));
    fs::write(c.join(PLAN_FILE), vec![b'#'; PLAN_MAX_BYTES as usize]).unwrap();
    s.media.find_plan().unwrap();
    fs::write(c.join(PLAN_FILE), b"\xff\xfe").unwrap();
    assert!(matches!(
        s.media.find_plan().unwrap_err(),
        MediaError::PlanNotText { .. }
    ));
    fs::remove_file(c.join(PLAN_FILE)).unwrap();
    fs::create_dir(c.join(PLAN_FILE)).unwrap();
    assert!(matches!(
        s.media.find_plan().unwrap_err(),
        MediaError::NotAFile { .. }
    ));
    fs::remove_dir(c.join(PLAN_FILE)).unwrap();
    // Only at the root counts.
    fs::create_dir(c.join("plans")).unwrap();
    fs::write(c.join("plans").join(PLAN_FILE), "x").unwrap();
    assert!(matches!(
        s.media.find_plan().unwrap_err(),
        MediaError::PlanNotFound { .. }
    ));

    fs::write(c.join(PLAN_FILE), "a").unwrap();
    s.machine.add_disk(&usb("sdd", &[])).unwrap();
    let d = s.machine.format(&s.mounter, "sdd", FsType::Ext4).unwrap();
    fs::write(d.join(PLAN_FILE), "b").unwrap();
    let err = s.media.find_plan().unwrap_err();
    let MediaError::SeveralPlans { found } = &err else {
        panic!("{err}")
    };
    let devs: Vec<_> = found.iter().map(|l| l.device.name.as_str()).collect();
    assert_eq!(devs, ["sdc1", "sdd"]);
    let msg = err.to_string();
    assert!(msg.contains("sdc1") && msg.contains("sdd") && msg.contains("Remove all but"));
}

// ---- data sticks ----

/// sdb boot (vfat), sdc plan (vfat), sdd data (exfat, and an ISO 9660 partition), sde
/// unformatted, nvme internal (ext4).
fn data_setup() -> Setup {
    let s = boot_setup();
    s.machine.add_disk(&usb("sdc", &[("sdc1", GB)])).unwrap();
    let c = s.machine.format(&s.mounter, "sdc1", FsType::Vfat).unwrap();
    fs::write(c.join(PLAN_FILE), "plan").unwrap();
    s.machine
        .add_disk(&usb("sdd", &[("sdd1", GB), ("sdd2", GB)]))
        .unwrap();
    s.machine
        .format(&s.mounter, "sdd1", FsType::Iso9660)
        .unwrap();
    s.machine.format(&s.mounter, "sdd2", FsType::Exfat).unwrap();
    s.machine.add_disk(&usb("sde", &[])).unwrap();
    s
}

fn identity(s: &Setup, dev: &str) -> FsIdentity {
    identify(&s.machine.dev.join(dev)).unwrap().unwrap()
}

#[test]
fn identities_from_first_bytes() {
    for fs in FsType::ALL {
        let a = crate::discovery::identify_bytes(&fs_image_with(fs, 1)).unwrap();
        let b = crate::discovery::identify_bytes(&fs_image_with(fs, 2)).unwrap();
        assert_eq!(a.fs, fs);
        assert_ne!(a, b, "{fs}: another serial is another file system");
    }
    let fat = crate::discovery::identify_bytes(&fs_image_with(FsType::Vfat, 0x1234_abcd)).unwrap();
    assert_eq!(fat.serial, [0xcd, 0xab, 0x34, 0x12]);
    assert_eq!(fat.to_string(), "vfat serial cdab3412 label \"SHERD\"");
    // FAT12/16 keep serial and label earlier in the boot sector.
    let mut fat16 = vec![0u8; 4096];
    fat16[0x36..0x3b].copy_from_slice(b"FAT16");
    fat16[510..512].copy_from_slice(&[0x55, 0xaa]);
    fat16[0x27..0x2b].copy_from_slice(&[1, 2, 3, 4]);
    fat16[0x2b..0x36].copy_from_slice(b"PLAN       ");
    let id = crate::discovery::identify_bytes(&fat16).unwrap();
    assert_eq!(
        (id.serial.as_slice(), id.label.as_slice()),
        (&[1u8, 2, 3, 4][..], &b"PLAN       "[..])
    );
    assert_eq!(crate::discovery::identify_bytes(&[0u8; 4096]), None);
}

#[test]
fn data_candidates_follow_the_rules() {
    let s = data_setup();
    let names = |rules: DataStickRules| -> Vec<(String, FsType)> {
        s.media
            .data_candidates(&rules)
            .unwrap()
            .into_iter()
            .map(|c| (c.device.name.clone(), c.fs()))
            .collect()
    };
    let (boot, plan) = (identity(&s, "sdb1"), identity(&s, "sdc1"));
    let rules = DataStickRules {
        boot: Some(&boot),
        plan: Some(&plan),
        boot_iso_path: Some("/boot/sherd.iso"),
    };
    assert_eq!(names(rules), [("sdd2".into(), FsType::Exfat)]);
    // Boot and plan sticks unknown: listed like any other (opening them still refuses them).
    assert_eq!(names(DataStickRules::default()).len(), 3);
    assert!(s.mounter.calls().is_empty(), "listing mounts nothing");
}

/// A stick the image booted from by UEFI: its EFI system partition is FAT16 and writable, and
/// must never take outputs, whether or not the boot stick's identity is known.
#[test]
fn sherds_efi_system_partition_is_never_a_data_stick() {
    let s = data_setup();
    s.machine
        .add_disk(&usb("sdh", &[("sdh1", GB), ("sdh2", GB)]))
        .unwrap();
    let mut esp = vec![0u8; 64 * 1024];
    esp[0x36..0x3b].copy_from_slice(b"FAT16");
    esp[510..512].copy_from_slice(&[0x55, 0xaa]);
    esp[0x27..0x2b].copy_from_slice(&[9, 9, 9, 9]);
    esp[0x2b..0x36].copy_from_slice(crate::ESP_LABEL);
    fs::write(s.machine.dev.join("sdh2"), &esp).unwrap();
    let id = identity(&s, "sdh2");
    let listed: Vec<String> = s
        .media
        .data_candidates(&DataStickRules::default())
        .unwrap()
        .into_iter()
        .map(|c| c.device.name)
        .collect();
    assert!(!listed.contains(&"sdh2".to_string()), "{listed:?}");
    // Another label on the same bytes is an ordinary FAT stick.
    esp[0x2b..0x36].copy_from_slice(b"DATA       ");
    fs::write(s.machine.dev.join("sdh2"), &esp).unwrap();
    assert_ne!(identity(&s, "sdh2"), id);
    let listed: Vec<String> = s
        .media
        .data_candidates(&DataStickRules::default())
        .unwrap()
        .into_iter()
        .map(|c| c.device.name)
        .collect();
    assert!(listed.contains(&"sdh2".to_string()), "{listed:?}");
}

/// The identities the ceremony learns: where the ISO and the plan were found.
fn found_identities(s: &Setup) -> (FsIdentity, FsIdentity, String) {
    let iso = s
        .media
        .find_boot_iso("/boot/sherd.iso", &mut |_, _| {})
        .unwrap();
    let plan = s.media.find_plan().unwrap();
    (
        iso.location.identity.unwrap(),
        plan.location.identity.unwrap(),
        iso.location.path,
    )
}

#[test]
fn boot_and_plan_sticks_plugged_in_again_are_never_offered() {
    let s = data_setup();
    let (boot, plan, iso_path) = found_identities(&s);
    assert_eq!(boot, identity(&s, "sdb1"));
    assert_eq!(plan, identity(&s, "sdc1"));
    let serial = |id: &FsIdentity| u32::from_le_bytes(id.serial[..4].try_into().unwrap());
    // Both pulled; plugged in again they get new names, and a blank stick gets the boot
    // stick's old one (as the kernel does).
    s.machine.remove_disk("sdb").unwrap();
    s.machine.remove_disk("sdc").unwrap();
    s.machine.add_disk(&usb("sdf", &[("sdf1", GB)])).unwrap();
    let f = s
        .machine
        .format_as(&s.mounter, "sdf1", FsType::Vfat, serial(&boot))
        .unwrap();
    fs::create_dir(f.join("boot")).unwrap();
    fs::write(f.join("boot/sherd.iso"), b"abc").unwrap();
    s.machine.add_disk(&usb("sdg", &[("sdg1", GB)])).unwrap();
    let g = s
        .machine
        .format_as(&s.mounter, "sdg1", FsType::Vfat, serial(&plan))
        .unwrap();
    fs::write(g.join(PLAN_FILE), "plan").unwrap();
    s.machine.add_disk(&usb("sdb", &[("sdb1", GB)])).unwrap();
    s.machine
        .format_as(&s.mounter, "sdb1", FsType::Ext4, 77)
        .unwrap();

    let rules = DataStickRules {
        boot: Some(&boot),
        plan: Some(&plan),
        boot_iso_path: Some(&iso_path),
    };
    let cands = s.media.data_candidates(&rules).unwrap();
    let names: Vec<&str> = cands.iter().map(|c| c.device.name.as_str()).collect();
    assert_eq!(
        names,
        ["sdb1", "sdd2"],
        "the new stick named sdb is offered"
    );
    // Even handed to open directly, they are refused before any mount.
    for (dev, what) in [("sdf1", "boot"), ("sdg1", "plan")] {
        let c = DataCandidate {
            device: s
                .media
                .removable_fs_devices()
                .unwrap()
                .into_iter()
                .find(|d| d.name == dev)
                .unwrap(),
            identity: identity(&s, dev),
        };
        let before = s.mounter.calls().len();
        match s.media.open_data_stick(&c, &rules) {
            Err(MediaError::Protected { what: w, .. }) => assert_eq!(w, what),
            Err(e) => panic!("{dev}: {e}"),
            Ok(_) => panic!("{dev} was opened"),
        }
        assert_eq!(s.mounter.calls().len(), before, "{dev}: nothing mounted");
    }
}

#[test]
fn a_stick_holding_the_plan_or_the_boot_iso_is_refused_untouched() {
    let s = data_setup();
    // Identities unknown (as when the plan's stick could not be read again): content decides.
    s.machine.add_disk(&usb("sdf", &[("sdf1", GB)])).unwrap();
    let f = s.machine.format(&s.mounter, "sdf1", FsType::Ext4).unwrap();
    fs::create_dir(f.join("boot")).unwrap();
    fs::write(f.join("boot/sherd.iso"), b"abc").unwrap();
    let rules = DataStickRules {
        boot_iso_path: Some("/boot/sherd.iso"),
        ..DataStickRules::default()
    };
    let cands = s.media.data_candidates(&rules).unwrap();
    let by_name = |n: &str| cands.iter().find(|c| c.device.name == n).unwrap();
    for (dev, path, what) in [
        ("sdb1", "/boot/sherd.iso", "boot"),
        ("sdc1", "/sherd-plan.toml", "plan"),
        ("sdf1", "/boot/sherd.iso", "boot"),
    ] {
        let e = s.media.open_data_stick(by_name(dev), &rules).err().unwrap();
        match &e {
            MediaError::HoldsProtected {
                path: p, what: w, ..
            } => {
                assert_eq!((p.as_str(), *w), (path, what), "{dev}")
            }
            e => panic!("{dev}: {e}"),
        }
        assert!(e.to_string().contains("nothing was written to it"), "{e}");
    }
    assert!(
        mounts(&s.mounter.calls()).iter().all(|(_, _, w)| !w),
        "only read-only looks"
    );
    assert!(s.media.open_data_stick(by_name("sdd2"), &rules).is_ok());
}

#[test]
fn a_stick_changed_since_listing_is_refused_untouched() {
    let s = data_setup();
    let cands = s.media.data_candidates(&DataStickRules::default()).unwrap();
    let sdd2 = cands.iter().find(|c| c.device.name == "sdd2").unwrap();
    // Another stick now under the same name.
    fs::write(s.machine.dev.join("sdd2"), fs_image_with(FsType::Exfat, 5)).unwrap();
    let e = s
        .media
        .open_data_stick(sdd2, &DataStickRules::default())
        .err()
        .unwrap();
    assert!(matches!(e, MediaError::Changed { .. }), "{e}");
    assert!(e.to_string().contains("nothing was written"), "{e}");
    assert!(s.mounter.calls().is_empty());
}

#[test]
fn data_stick_written_synced_and_unmounted() {
    let s = data_setup();
    s.machine.add_disk(&usb("sdf", &[("sdf1", GB)])).unwrap();
    s.machine.format(&s.mounter, "sdf1", FsType::Vfat).unwrap();
    let (boot, plan) = (identity(&s, "sdb1"), identity(&s, "sdc1"));
    let rules = DataStickRules {
        boot: Some(&boot),
        plan: Some(&plan),
        boot_iso_path: Some("/boot/sherd.iso"),
    };
    let cands = s.media.data_candidates(&rules).unwrap();
    let mut a = s.media.open_data_stick(&cands[0], &rules).unwrap();
    let mut b = s.media.open_data_stick(&cands[1], &rules).unwrap();
    assert_eq!(a.path(), s.machine.run.join("data-1"));
    assert_eq!(b.path(), s.machine.run.join("data-2"));
    assert_eq!(a.name(), "data stick sdd2 (SanDisk Cruzer Blade, 1.0 GB)");
    let files = [OutputFile {
        path: "root.asc".into(),
        bytes: b"cert".to_vec(),
    }];
    write_all(&mut [&mut a, &mut b], "ceremony-1", &files).unwrap();
    a.finish().unwrap();
    b.finish().unwrap();
    assert_eq!(
        fs::read(s.machine.content_dir("sdd2").join("ceremony-1/root.asc")).unwrap(),
        b"cert"
    );
    assert_eq!(
        fs::read(s.machine.content_dir("sdf1").join("ceremony-1/root.asc")).unwrap(),
        b"cert"
    );
    let calls = s.mounter.calls();
    // Each stick is looked at read-only, then mounted writable on its own data-<n>.
    assert_eq!(
        mounts(&calls),
        [
            ("sdd2".into(), FsType::Exfat, false),
            ("sdd2".into(), FsType::Exfat, true),
            ("sdf1".into(), FsType::Vfat, false),
            ("sdf1".into(), FsType::Vfat, true),
        ]
    );
    let t1 = s.machine.run.join("data-1");
    let sync = calls
        .iter()
        .position(|c| *c == Call::Sync(t1.clone()))
        .unwrap();
    let unmount = calls
        .iter()
        .position(|c| *c == Call::Unmount(t1.clone()))
        .unwrap();
    assert!(sync < unmount);
    // Each file is read back from the stick itself: the cache is dropped before each read.
    let dropped: Vec<usize> = calls
        .iter()
        .enumerate()
        .filter(|(_, c)| **c == Call::DropCached(t1.clone()))
        .map(|(i, _)| i)
        .collect();
    assert_eq!(dropped.len(), files.len());
    assert!(dropped.iter().all(|&i| i < sync));
}

#[test]
fn data_stick_pulled_or_stuck_gives_errors_naming_it() {
    let s = data_setup();
    let cands = s.media.data_candidates(&DataStickRules::default()).unwrap();
    let sdd2 = cands.iter().find(|c| c.device.name == "sdd2").unwrap();
    let files = [OutputFile {
        path: "shard.asc".into(),
        bytes: b"x".to_vec(),
    }];

    // Pulled while writing: the files are gone from under the mount point.
    let mut v = s
        .media
        .open_data_stick(sdd2, &DataStickRules::default())
        .unwrap();
    fs::remove_dir_all(s.machine.content_dir("sdd2")).unwrap();
    let err = write_all(&mut [&mut v], "out", &files).unwrap_err();
    assert!(matches!(err, WriteError::Io { .. }));
    let msg = err.to_string();
    assert!(
        msg.contains("data stick sdd2 (SanDisk Cruzer Blade") && msg.contains("out/"),
        "{msg}"
    );
    s.mounter.fail_sync(true);
    let err = v.finish().unwrap_err();
    assert!(matches!(err, MediaError::Sync { .. }));
    assert!(err.to_string().starts_with("data stick sdd2"), "{err}");
    s.mounter.fail_sync(false);

    // Will not unmount: reported, then detached.
    fs::create_dir_all(s.machine.content_dir("sdd2")).unwrap();
    let v = s
        .media
        .open_data_stick(sdd2, &DataStickRules::default())
        .unwrap();
    s.mounter.fail_unmount(true);
    let err = v.finish().unwrap_err();
    assert!(matches!(err, MediaError::Unmount { .. }), "{err}");
    assert!(err.to_string().contains("data stick sdd2"), "{err}");
    assert_eq!(
        s.mounter.calls().last(),
        Some(&Call::Detach(s.machine.run.join("data-2")))
    );
}

// ---- recovery: the request stick and the generation folder ----

const REQUEST: &str = "format = \"sherd-request/1\"\n";

/// What a sign request names, as the caller would parse it: here one name a line after `#`.
fn names_in(bytes: &[u8]) -> Vec<String> {
    std::str::from_utf8(bytes)
        .unwrap()
        .lines()
        .filter_map(|l| l.strip_prefix('#'))
        .map(str::to_string)
        .collect()
}

/// A stick `dev` with one partition `part` (vfat) plugged in; its files' directory.
fn stick(s: &Setup, dev: &str, part: &str) -> std::path::PathBuf {
    s.machine.add_disk(&usb(dev, &[(part, GB)])).unwrap();
    s.machine.format(&s.mounter, part, FsType::Vfat).unwrap()
}

/// Every mount was read-only and unmounted again, one at a time.
fn all_read_only_and_unmounted(s: &Setup) {
    let calls = s.mounter.calls();
    assert!(mounts(&calls).iter().all(|(_, _, w)| !w), "{calls:?}");
    let mut mounted = false;
    for c in &calls {
        match c {
            Call::Mount { .. } => {
                assert!(!mounted, "{calls:?}");
                mounted = true;
            }
            Call::Unmount(_) => {
                assert!(mounted, "{calls:?}");
                mounted = false;
            }
            c => panic!("unexpected {c:?}"),
        }
    }
    assert!(!mounted, "{calls:?}");
}

#[test]
fn request_found_with_approvals_and_named_files() {
    let s = boot_setup();
    let c = stick(&s, "sdc", "sdc1");
    let text = format!("{REQUEST}#release.tar.gz\n#notes.txt\n#not-there.txt\n#notes.txt\n");
    fs::write(c.join(REQUEST_FILE), &text).unwrap();
    fs::create_dir(c.join("approvals")).unwrap();
    fs::write(c.join("approvals/bob.asc"), "bob").unwrap();
    fs::write(c.join("approvals/ann.sig"), "ann").unwrap();
    fs::write(c.join("release.tar.gz"), b"\x1f\x8b").unwrap();
    fs::write(c.join("notes.txt"), "notes").unwrap();
    fs::write(c.join("unnamed.txt"), "never read").unwrap();
    let seen = std::cell::RefCell::new(Vec::new());
    let found = s
        .media
        .find_request(&|b| {
            seen.borrow_mut().push(b.to_vec());
            names_in(b)
        })
        .unwrap();
    assert_eq!(*seen.borrow(), [text.as_bytes().to_vec()], "asked once");
    assert_eq!(found.bytes, text.as_bytes());
    assert_eq!(found.location.device.name, "sdc1");
    assert_eq!(found.location.path, "/request.toml");
    assert_eq!(
        found.location.identity,
        Some(identity(&s, "sdc1")),
        "the stick's identity, for the screens"
    );
    let approvals: Vec<(&str, &[u8])> = found
        .approvals
        .iter()
        .map(|a| (a.name.as_str(), a.bytes.as_slice()))
        .collect();
    assert_eq!(
        approvals,
        [("ann.sig", &b"ann"[..]), ("bob.asc", &b"bob"[..])],
        "in name order"
    );
    let files: Vec<(&str, &[u8])> = found
        .files
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_slice()))
        .collect();
    assert_eq!(
        files,
        [
            ("notes.txt", &b"notes"[..]),
            ("release.tar.gz", &b"\x1f\x8b"[..])
        ],
        "a missing name is left out, an unnamed file unread"
    );
    let dbg = format!("{found:?}");
    assert!(dbg.contains("(\"notes.txt\", 5)"), "{dbg}");
    // Each stick mounted once, read-only; the internal disk never.
    assert_eq!(
        mounts(&s.mounter.calls()),
        [
            ("sdb1".into(), FsType::Vfat, false),
            ("sdc1".into(), FsType::Vfat, false)
        ]
    );
    all_read_only_and_unmounted(&s);
}

#[test]
fn request_not_found() {
    let s = boot_setup();
    let c = stick(&s, "sdc", "sdc1");
    // Only the top counts.
    fs::create_dir(c.join("req")).unwrap();
    fs::write(c.join("req").join(REQUEST_FILE), REQUEST).unwrap();
    let err = s.media.find_request(&names_in).unwrap_err();
    let MediaError::RequestNotFound { looked } = &err else {
        panic!("{err}")
    };
    assert_eq!(looked, "sdb1 (vfat), sdc1 (vfat)");
    assert!(
        err.to_string()
            .contains("Put request.toml at the top of the request stick"),
        "{err}"
    );
    all_read_only_and_unmounted(&s);
}

#[test]
fn request_on_two_sticks_is_refused() {
    let s = boot_setup();
    let c = stick(&s, "sdc", "sdc1");
    let d = stick(&s, "sdd", "sdd1");
    fs::write(c.join(REQUEST_FILE), format!("{REQUEST}#a\n")).unwrap();
    fs::write(c.join("a"), "a").unwrap();
    fs::write(d.join(REQUEST_FILE), format!("{REQUEST}#b\n")).unwrap();
    let asked = std::cell::Cell::new(0);
    let err = s
        .media
        .find_request(&|b| {
            asked.set(asked.get() + 1);
            names_in(b)
        })
        .unwrap_err();
    let MediaError::SeveralRequests { found } = &err else {
        panic!("{err}")
    };
    let devs: Vec<_> = found.iter().map(|l| l.device.name.as_str()).collect();
    assert_eq!(devs, ["sdc1", "sdd1"]);
    assert_eq!(asked.get(), 1, "only the first one is read");
    let msg = err.to_string();
    assert!(
        msg.contains("sdc1") && msg.contains("sdd1") && msg.contains("Pull every stick but"),
        "{msg}"
    );
    all_read_only_and_unmounted(&s);
}

#[test]
fn request_too_large_is_refused() {
    let s = setup();
    let c = stick(&s, "sdc", "sdc1");
    let max = usize::try_from(REQUEST_MAX_BYTES).unwrap();
    fs::write(c.join(REQUEST_FILE), vec![b'#'; max + 1]).unwrap();
    let err = s.media.find_request(&|_| vec![]).unwrap_err();
    let MediaError::RequestTooLarge { location, limit } = &err else {
        panic!("{err}")
    };
    assert_eq!((location.path.as_str(), *limit), ("/request.toml", 1 << 20));
    assert!(err.to_string().contains("1048576 bytes"), "{err}");
    fs::write(c.join(REQUEST_FILE), vec![b'#'; max]).unwrap();
    assert_eq!(s.media.find_request(&|_| vec![]).unwrap().bytes.len(), max);
    // Not a file: refused, as the plan is.
    fs::remove_file(c.join(REQUEST_FILE)).unwrap();
    fs::create_dir(c.join(REQUEST_FILE)).unwrap();
    let err = s.media.find_request(&|_| vec![]).unwrap_err();
    assert!(matches!(err, MediaError::NotAFile { .. }), "{err}");
}

#[test]
fn request_named_file_that_is_a_link_or_folder_is_refused() {
    let s = setup();
    let c = stick(&s, "sdc", "sdc1");
    fs::write(c.join(REQUEST_FILE), format!("{REQUEST}#release.tar.gz\n")).unwrap();
    let outside = s._tmp.path().join("secret");
    fs::write(&outside, "outside the stick").unwrap();
    symlink(&outside, c.join("release.tar.gz")).unwrap();
    let err = s.media.find_request(&names_in).unwrap_err();
    let MediaError::NotAFile { location } = &err else {
        panic!("{err}")
    };
    assert_eq!(location.path, "/release.tar.gz");
    assert!(
        err.to_string().starts_with("/release.tar.gz on sdc1"),
        "{err}"
    );
    fs::remove_file(c.join("release.tar.gz")).unwrap();
    fs::create_dir(c.join("release.tar.gz")).unwrap();
    let err = s.media.find_request(&names_in).unwrap_err();
    assert!(matches!(err, MediaError::NotAFile { .. }), "{err}");
    all_read_only_and_unmounted(&s);
}

#[test]
fn request_named_file_too_large_is_refused_unread() {
    let s = setup();
    let c = stick(&s, "sdc", "sdc1");
    fs::write(c.join(REQUEST_FILE), format!("{REQUEST}#big.iso\n")).unwrap();
    // Sparse: refused by its size, nothing read.
    fs::File::create(c.join("big.iso"))
        .unwrap()
        .set_len(SIGN_FILE_MAX_BYTES + 1)
        .unwrap();
    let err = s.media.find_request(&names_in).unwrap_err();
    let MediaError::FileTooLarge { location, limit } = &err else {
        panic!("{err}")
    };
    assert_eq!((location.path.as_str(), *limit), ("/big.iso", 256 << 20));
    assert!(err.to_string().contains("268435456 bytes"), "{err}");
}

#[test]
fn request_names_that_are_not_plain_are_refused() {
    let s = setup();
    let c = stick(&s, "sdc", "sdc1");
    fs::write(c.join(REQUEST_FILE), REQUEST).unwrap();
    fs::write(s._tmp.path().join("x"), "x").unwrap();
    for bad in ["../x", "a/b", "/x", ".", "..", "", "a\0b"] {
        let err = s
            .media
            .find_request(&|_| vec![bad.to_string()])
            .unwrap_err();
        assert!(matches!(err, MediaError::BadName { .. }), "{bad:?}: {err}");
    }
    // Names the request format allows are fine, there or not.
    let found = s
        .media
        .find_request(&|_| vec!["a b.txt".into(), "...x".into()])
        .unwrap();
    assert!(found.files.is_empty());
}

#[test]
fn request_approvals_folder_missing_is_empty_and_odd_ones_are_refused() {
    let s = setup();
    let c = stick(&s, "sdc", "sdc1");
    fs::write(c.join(REQUEST_FILE), REQUEST).unwrap();
    let found = s.media.find_request(&names_in).unwrap();
    assert!(found.approvals.is_empty() && found.files.is_empty());

    // A file, or a link to a folder, where the folder should be.
    fs::write(c.join("approvals"), "x").unwrap();
    let err = s.media.find_request(&names_in).unwrap_err();
    let MediaError::ApprovalsNotAFolder { location } = &err else {
        panic!("{err}")
    };
    assert_eq!(location.path, "/approvals");
    fs::remove_file(c.join("approvals")).unwrap();
    let elsewhere = s._tmp.path().join("elsewhere");
    fs::create_dir(&elsewhere).unwrap();
    fs::write(elsewhere.join("ann.sig"), "ann").unwrap();
    symlink(&elsewhere, c.join("approvals")).unwrap();
    let err = s.media.find_request(&names_in).unwrap_err();
    assert!(
        matches!(err, MediaError::ApprovalsNotAFolder { .. }),
        "{err}"
    );

    // A link inside it: the approval folder's own rules refuse it.
    fs::remove_file(c.join("approvals")).unwrap();
    fs::create_dir(c.join("approvals")).unwrap();
    symlink(elsewhere.join("ann.sig"), c.join("approvals/ann.sig")).unwrap();
    let err = s.media.find_request(&names_in).unwrap_err();
    assert!(matches!(err, MediaError::Approvals { .. }), "{err}");
    let msg = err.to_string();
    assert!(
        msg.contains("/approvals on sdc1") && msg.contains("approvals/ann.sig"),
        "{msg}"
    );
    all_read_only_and_unmounted(&s);
}

const GEN: &str = "sherd-acme-root";

/// A generation folder as the ceremony writes it, in `dir`.
fn write_generation(dir: &std::path::Path) {
    let g = dir.join(GEN);
    fs::create_dir_all(g.join("pins")).unwrap();
    fs::create_dir_all(g.join("witness-signatures")).unwrap();
    fs::write(g.join("plan.toml"), "plan").unwrap();
    fs::write(g.join("root-cert.asc"), "cert").unwrap();
    fs::write(g.join("shards.toml"), "shards").unwrap();
    fs::write(g.join("pins/holder-001.asc"), "pin 1").unwrap();
    fs::write(g.join("pins/holder-002.asc"), "pin 2").unwrap();
    fs::write(g.join("transcript.txt"), "transcript").unwrap();
    fs::write(g.join("transcript.txt.sig"), "sig").unwrap();
    fs::write(g.join("witness-signatures/1.sig"), "w1").unwrap();
}

#[test]
fn folder_found_with_its_subfolders() {
    let s = boot_setup();
    let c = stick(&s, "sdc", "sdc1");
    write_generation(&c);
    // Folders nested as deep as allowed, and an empty one.
    fs::create_dir_all(c.join(GEN).join("a/b/c/d")).unwrap();
    fs::write(c.join(GEN).join("a/b/c/d/deep.txt"), "deep").unwrap();
    fs::create_dir(c.join(GEN).join("empty")).unwrap();
    // Beside the folder: not read.
    fs::write(c.join("other.txt"), "x").unwrap();
    let found = s.media.find_folder(GEN).unwrap();
    assert_eq!(found.location.device.name, "sdc1");
    assert_eq!(found.location.path, "/sherd-acme-root");
    let files: Vec<(&str, &[u8])> = found
        .files
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_slice()))
        .collect();
    assert_eq!(
        files,
        [
            ("a/b/c/d/deep.txt", &b"deep"[..]),
            ("pins/holder-001.asc", b"pin 1"),
            ("pins/holder-002.asc", b"pin 2"),
            ("plan.toml", b"plan"),
            ("root-cert.asc", b"cert"),
            ("shards.toml", b"shards"),
            ("transcript.txt", b"transcript"),
            ("transcript.txt.sig", b"sig"),
            ("witness-signatures/1.sig", b"w1"),
        ]
    );
    all_read_only_and_unmounted(&s);
}

#[test]
fn folder_on_two_sticks_is_refused() {
    let s = boot_setup();
    write_generation(&stick(&s, "sdc", "sdc1"));
    write_generation(&stick(&s, "sdd", "sdd1"));
    let err = s.media.find_folder(GEN).unwrap_err();
    let MediaError::SeveralFolders { name, found } = &err else {
        panic!("{err}")
    };
    assert_eq!(name, GEN);
    let devs: Vec<_> = found.iter().map(|l| l.device.name.as_str()).collect();
    assert_eq!(devs, ["sdc1", "sdd1"]);
    let msg = err.to_string();
    assert!(
        msg.contains("Pull every stick but one holding a copy of sherd-acme-root"),
        "{msg}"
    );
    all_read_only_and_unmounted(&s);
}

#[test]
fn folder_absent() {
    let s = boot_setup();
    let c = stick(&s, "sdc", "sdc1");
    // Another ceremony's folder, or this one's inside another folder: not it.
    write_generation(&c.join("old"));
    fs::create_dir(c.join("sherd-other")).unwrap();
    let err = s.media.find_folder(GEN).unwrap_err();
    let MediaError::FolderNotFound { name, looked } = &err else {
        panic!("{err}")
    };
    assert_eq!(
        (name.as_str(), looked.as_str()),
        (GEN, "sdb1 (vfat), sdc1 (vfat)")
    );
    assert!(err.to_string().contains("holds sherd-acme-root/"), "{err}");
    // A file of that name is no folder.
    fs::write(c.join(GEN), "x").unwrap();
    let err = s.media.find_folder(GEN).unwrap_err();
    assert!(matches!(err, MediaError::NotAFolder { .. }), "{err}");
    for bad in ["", ".", "..", "a/b", "/sherd-acme-root", "a\0b"] {
        let err = s.media.find_folder(bad).unwrap_err();
        assert!(matches!(err, MediaError::BadName { .. }), "{bad:?}: {err}");
    }
}

#[test]
fn folder_holding_a_link_or_fifo_is_refused() {
    let s = setup();
    let c = stick(&s, "sdc", "sdc1");
    write_generation(&c);
    let outside = s._tmp.path().join("secret");
    fs::write(&outside, "outside the stick").unwrap();
    symlink(&outside, c.join(GEN).join("pins/holder-003.asc")).unwrap();
    let err = s.media.find_folder(GEN).unwrap_err();
    let MediaError::FolderEntry { location, what } = &err else {
        panic!("{err}")
    };
    assert_eq!(
        (location.path.as_str(), *what),
        ("/sherd-acme-root/pins/holder-003.asc", "a symbolic link")
    );
    assert!(
        err.to_string()
            .starts_with("/sherd-acme-root/pins/holder-003.asc on sdc1"),
        "{err}"
    );
    fs::remove_file(c.join(GEN).join("pins/holder-003.asc")).unwrap();
    // A link to a folder is no folder either.
    symlink(s._tmp.path(), c.join(GEN).join("more")).unwrap();
    let err = s.media.find_folder(GEN).unwrap_err();
    assert!(matches!(err, MediaError::FolderEntry { .. }), "{err}");
    fs::remove_file(c.join(GEN).join("more")).unwrap();
    nix::unistd::mkfifo(
        &c.join(GEN).join("fifo"),
        nix::sys::stat::Mode::from_bits_truncate(0o600),
    )
    .unwrap();
    let err = s.media.find_folder(GEN).unwrap_err();
    let MediaError::FolderEntry { location, what } = &err else {
        panic!("{err}")
    };
    assert_eq!(
        (location.path.as_str(), *what),
        ("/sherd-acme-root/fifo", "a device, FIFO or socket")
    );
    fs::remove_file(c.join(GEN).join("fifo")).unwrap();
    // The folder itself a link: refused, not followed.
    fs::rename(c.join(GEN), s._tmp.path().join("moved")).unwrap();
    symlink(s._tmp.path().join("moved"), c.join(GEN)).unwrap();
    let err = s.media.find_folder(GEN).unwrap_err();
    assert!(matches!(err, MediaError::NotAFolder { .. }), "{err}");
    all_read_only_and_unmounted(&s);
}

#[test]
fn folder_limits() {
    let s = setup();
    let c = stick(&s, "sdc", "sdc1");
    write_generation(&c);
    let g = c.join(GEN);
    // One folder level too deep.
    fs::create_dir_all(g.join("a/b/c/d/e")).unwrap();
    let err = s.media.find_folder(GEN).unwrap_err();
    let MediaError::FolderTooLarge { location, limit } = &err else {
        panic!("{err}")
    };
    assert_eq!(location.path, "/sherd-acme-root/a/b/c/d/e");
    assert!(limit.contains("more than 4 deep"), "{limit}");
    fs::remove_dir_all(g.join("a")).unwrap();
    // More bytes than read (sparse: refused by its size).
    // Read last ("zz"): the folder's other 39 bytes and these are too many together.
    fs::File::create(g.join("zz-huge"))
        .unwrap()
        .set_len(FOLDER_MAX_BYTES - 10)
        .unwrap();
    let err = s.media.find_folder(GEN).unwrap_err();
    let MediaError::FolderTooLarge { location, limit } = &err else {
        panic!("{err}")
    };
    assert_eq!(location.path, "/sherd-acme-root/zz-huge");
    assert!(limit.contains("67108864 bytes"), "{limit}");
    fs::remove_file(g.join("zz-huge")).unwrap();
    // Too many entries: 11 there already, files and folders.
    fs::create_dir(g.join("many")).unwrap();
    for i in 0..FOLDER_MAX_FILES - 11 {
        fs::write(g.join(format!("many/{i}")), "").unwrap();
    }
    assert_eq!(s.media.find_folder(GEN).unwrap().files.len(), 8 + 989);
    fs::write(g.join("many/one-more"), "").unwrap();
    let err = s.media.find_folder(GEN).unwrap_err();
    let MediaError::FolderTooLarge { limit, .. } = &err else {
        panic!("{err}")
    };
    assert!(limit.contains("more than 1000 files and folders"), "{err}");
}

#[test]
fn request_and_folder_on_the_same_stick() {
    let s = boot_setup();
    let c = stick(&s, "sdc", "sdc1");
    write_generation(&c);
    fs::write(c.join(REQUEST_FILE), format!("{REQUEST}#notes.txt\n")).unwrap();
    fs::write(c.join("notes.txt"), "notes").unwrap();
    let request = s.media.find_request(&names_in).unwrap();
    let folder = s.media.find_folder(GEN).unwrap();
    assert_eq!(request.location.device, folder.location.device);
    assert_eq!(request.location.identity, folder.location.identity);
    assert_eq!(request.files["notes.txt"], b"notes");
    assert_eq!(folder.files.len(), 8);
    assert!(
        !folder.files.contains_key("notes.txt"),
        "only the folder's files"
    );
    all_read_only_and_unmounted(&s);
}
