//! Finding CCID readers without udevd or netlink (the image's kernel has no network stack):
//! read `/sys/bus/usb/devices` and diff successive scans.

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};

use crate::ccid::{INTERFACE_CLASS, VENDOR_INTERFACE_CLASS, is_class_descriptor};
use crate::error::{Error, Result};

/// Where the kernel lists USB devices and interfaces.
pub const SYSFS_USB_DEVICES: &str = "/sys/bus/usb/devices";

/// One CCID interface of one USB device, as sysfs describes it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ReaderInfo {
    /// Stable while plugged in: sysfs device name and interface, e.g. `1-2:1.0`.
    pub id: String,
    pub busnum: u8,
    pub devnum: u8,
    pub vendor_id: u16,
    pub product_id: u16,
    pub manufacturer: Option<String>,
    pub product: Option<String>,
    pub serial: Option<String>,
    pub interface: u8,
    pub sysfs_path: PathBuf,
}

impl ReaderInfo {
    /// A one-line human name.
    pub fn name(&self) -> String {
        format!(
            "{} {} [{:04x}:{:04x}] bus {} device {} interface {}",
            self.manufacturer.as_deref().unwrap_or("?"),
            self.product.as_deref().unwrap_or("?"),
            self.vendor_id,
            self.product_id,
            self.busnum,
            self.devnum,
            self.interface
        )
    }
}

fn read_attr(dir: &Path, name: &str) -> Option<String> {
    fs::read_to_string(dir.join(name))
        .ok()
        .map(|s| s.trim_end_matches('\n').to_owned())
}

fn hex_attr<T: TryFrom<u32>>(dir: &Path, name: &str) -> Option<T> {
    u32::from_str_radix(read_attr(dir, name)?.trim(), 16)
        .ok()
        .and_then(|v| T::try_from(v).ok())
}

fn dec_attr<T: std::str::FromStr>(dir: &Path, name: &str) -> Option<T> {
    read_attr(dir, name)?.trim().parse().ok()
}

/// The CCID class descriptor of interface `number` (alternate setting 0) in `raw`, a USB
/// device's descriptors as sysfs gives them (`descriptors`: the device descriptor, then each
/// configuration's): a 54-byte descriptor of type 0x21 or 0xFF after that interface's
/// descriptor and before the next interface or configuration.
pub fn class_descriptor_in(raw: &[u8], number: u8) -> Option<&[u8]> {
    let mut current = None;
    let mut rest = raw;
    while rest.len() >= 2 {
        let len = usize::from(rest[0]);
        if len < 2 || len > rest.len() {
            return None;
        }
        let (d, tail) = rest.split_at(len);
        match d[1] {
            // A configuration, or an interface (number, alternate setting).
            2 => current = None,
            4 if len >= 9 => current = Some((d[2], d[3])),
            _ if current == Some((number, 0)) && is_class_descriptor(d) => return Some(d),
            _ => {}
        }
        rest = tail;
    }
    None
}

/// List CCID interfaces under a sysfs `devices` directory (a fake tree in tests).
/// Entries that vanish or are half-written while we read them are skipped: the next scan
/// sees the settled state.
pub fn scan(root: &Path) -> Result<Vec<ReaderInfo>> {
    let entries = fs::read_dir(root).map_err(|source| Error::Sysfs {
        path: root.display().to_string(),
        source,
    })?;
    let mut found = Vec::new();
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        // Interfaces are named <device>:<config>.<interface>.
        let Some((device, _)) = name.split_once(':') else {
            continue;
        };
        let intf = entry.path();
        let dev = root.join(device);
        match hex_attr::<u8>(&intf, "bInterfaceClass") {
            Some(INTERFACE_CLASS) => {}
            // A reader from before CCID was final, if its interface has the class descriptor.
            Some(VENDOR_INTERFACE_CLASS) => {
                let raw = fs::read(dev.join("descriptors")).unwrap_or_default();
                let Some(number) = hex_attr::<u8>(&intf, "bInterfaceNumber") else {
                    continue;
                };
                if class_descriptor_in(&raw, number).is_none() {
                    continue;
                }
            }
            _ => continue,
        }
        let (Some(busnum), Some(devnum), Some(vendor_id), Some(product_id), Some(interface)) = (
            dec_attr(&dev, "busnum"),
            dec_attr(&dev, "devnum"),
            hex_attr(&dev, "idVendor"),
            hex_attr(&dev, "idProduct"),
            hex_attr(&intf, "bInterfaceNumber"),
        ) else {
            continue;
        };
        found.push(ReaderInfo {
            id: name,
            busnum,
            devnum,
            vendor_id,
            product_id,
            manufacturer: read_attr(&dev, "manufacturer"),
            product: read_attr(&dev, "product"),
            serial: read_attr(&dev, "serial"),
            interface,
            sysfs_path: dev,
        });
    }
    found.sort_by(|a, b| a.id.cmp(&b.id));
    Ok(found)
}

/// A change between two scans.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Event {
    Added(ReaderInfo),
    Removed(ReaderInfo),
}

/// Polls sysfs and reports readers appearing and leaving.
pub struct Watcher {
    root: PathBuf,
    known: BTreeMap<(String, u8), ReaderInfo>,
}

impl Watcher {
    pub fn new(root: impl Into<PathBuf>) -> Self {
        Self {
            root: root.into(),
            known: BTreeMap::new(),
        }
    }

    /// The system's sysfs.
    pub fn system() -> Self {
        Self::new(SYSFS_USB_DEVICES)
    }

    /// Scan once; the first call reports every present reader as added. A replugged reader
    /// gets a new device number, so it shows as removed and added even on the same port.
    pub fn poll(&mut self) -> Result<Vec<Event>> {
        let now: BTreeMap<(String, u8), ReaderInfo> = scan(&self.root)?
            .into_iter()
            .map(|r| ((r.id.clone(), r.devnum), r))
            .collect();
        let mut events = Vec::new();
        for (k, r) in &self.known {
            if !now.contains_key(k) {
                events.push(Event::Removed(r.clone()));
            }
        }
        for (k, r) in &now {
            if !self.known.contains_key(k) {
                events.push(Event::Added(r.clone()));
            }
        }
        self.known = now;
        Ok(events)
    }

    pub fn readers(&self) -> impl Iterator<Item = &ReaderInfo> {
        self.known.values()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn add_reader(root: &Path, dev: &str, devnum: u8, class: &str) {
        let d = root.join(dev);
        fs::create_dir_all(&d).unwrap();
        for (k, v) in [
            ("busnum", "1\n".to_string()),
            ("devnum", format!("{devnum}\n")),
            ("idVendor", "08e6\n".into()),
            ("idProduct", "4433\n".into()),
            ("manufacturer", "QEMU\n".into()),
            ("product", "QEMU USB CCID\n".into()),
        ] {
            fs::write(d.join(k), v).unwrap();
        }
        let i = root.join(format!("{dev}:1.0"));
        fs::create_dir_all(&i).unwrap();
        fs::write(i.join("bInterfaceClass"), class).unwrap();
        fs::write(i.join("bInterfaceNumber"), "00\n").unwrap();
    }

    #[test]
    fn scans_and_diffs_a_fake_sysfs() {
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path();
        add_reader(root, "1-1", 2, "0b\n");
        add_reader(root, "1-2", 3, "08\n"); // a mass-storage stick, not a reader
        fs::create_dir_all(root.join("usb1")).unwrap();
        let mut w = Watcher::new(root);
        let ev = w.poll().unwrap();
        assert_eq!(ev.len(), 1);
        let Event::Added(r) = &ev[0] else {
            panic!("expected an added reader, got {ev:?}")
        };
        assert_eq!(r.id, "1-1:1.0");
        assert_eq!(
            (r.busnum, r.devnum, r.vendor_id, r.interface),
            (1, 2, 0x08e6, 0)
        );
        assert_eq!(r.product.as_deref(), Some("QEMU USB CCID"));
        assert!(w.poll().unwrap().is_empty());

        // Unplugged and plugged in again with a new device number.
        fs::remove_dir_all(root.join("1-1:1.0")).unwrap();
        let ev = w.poll().unwrap();
        assert!(matches!(&ev[..], [Event::Removed(r)] if r.id == "1-1:1.0"));
        add_reader(root, "1-1", 4, "0b\n");
        let ev = w.poll().unwrap();
        assert!(matches!(&ev[..], [Event::Added(r)] if r.devnum == 4));
    }

    /// A device's `descriptors`: device, configuration, interface 0 (class `class`, CCID
    /// descriptor of type `ty` after the endpoints when `late`), and interface 1 (HID).
    fn raw_descriptors(class: u8, ty: u8, late: bool) -> Vec<u8> {
        let mut raw = vec![18, 1];
        raw.extend_from_slice(&[0; 16]);
        raw.extend_from_slice(&[9, 2, 0, 0, 2, 1, 0, 0x80, 50]);
        raw.extend_from_slice(&[9, 4, 0, 0, 3, class, 0, 0, 0]);
        let mut ccid = vec![54, ty];
        ccid.extend_from_slice(&[0; 52]);
        let endpoints: Vec<u8> = [0x81u8, 0x02, 0x83]
            .iter()
            .flat_map(|&a| [7, 5, a, 2, 64, 0, 0])
            .collect();
        if late {
            raw.extend_from_slice(&endpoints);
            raw.extend_from_slice(&ccid);
        } else {
            raw.extend_from_slice(&ccid);
            raw.extend_from_slice(&endpoints);
        }
        raw.extend_from_slice(&[
            9, 4, 1, 0, 1, 3, 0, 0, 0, 9, 0x21, 0x11, 0x01, 0, 1, 0x22, 50, 0,
        ]);
        raw
    }

    #[test]
    fn finds_class_descriptors_in_raw_descriptors() {
        for (ty, late) in [(0x21, false), (0xFF, false), (0x21, true)] {
            let raw = raw_descriptors(0xFF, ty, late);
            let d = class_descriptor_in(&raw, 0).unwrap();
            assert_eq!((d.len(), d[1]), (54, ty));
            // Interface 1's 9-byte HID descriptor (also type 0x21) is not one.
            assert!(class_descriptor_in(&raw, 1).is_none());
        }
        let raw = raw_descriptors(0xFF, 0x21, false);
        assert!(class_descriptor_in(&raw[..40], 0).is_none());
        let mut broken = raw.clone();
        broken[18] = 0;
        assert!(class_descriptor_in(&broken, 0).is_none());
    }

    // A vendor-class (0xFF) interface is a reader if it has the class descriptor.
    #[test]
    fn vendor_class_readers() {
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path();
        add_reader(root, "1-3", 5, "ff\n");
        fs::write(
            root.join("1-3/descriptors"),
            raw_descriptors(0xFF, 0x21, false),
        )
        .unwrap();
        add_reader(root, "1-4", 6, "ff\n");
        add_reader(root, "1-5", 7, "ff\n");
        let mut other = raw_descriptors(0xFF, 0x21, false);
        other[36 + 1] = 0x24; // the 54 bytes after interface 0 are not a class descriptor
        fs::write(root.join("1-5/descriptors"), other).unwrap();
        let found: Vec<String> = scan(root).unwrap().into_iter().map(|r| r.id).collect();
        assert_eq!(found, ["1-3:1.0"]);
    }

    #[test]
    fn half_written_entries_are_skipped() {
        let tmp = tempfile::tempdir().unwrap();
        let i = tmp.path().join("2-1:1.0");
        fs::create_dir_all(&i).unwrap();
        fs::write(i.join("bInterfaceClass"), "0b\n").unwrap();
        assert!(scan(tmp.path()).unwrap().is_empty());
        assert!(scan(&tmp.path().join("missing")).is_err());
    }
}
