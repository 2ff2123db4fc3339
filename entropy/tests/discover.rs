//! `discover` over a stand-in /dev and /sys tree.

use entropy::{Config, DeviceKey, SourceKind};

#[test]
fn discover_finds_what_the_tree_offers_and_says_what_is_missing() {
    let root = tempfile::tempdir().unwrap();
    let dev = root.path().join("dev");
    let sys = root.path().join("sys");
    let hw = sys.join("class/misc/hw_random");
    std::fs::create_dir_all(&dev).unwrap();
    std::fs::create_dir_all(&hw).unwrap();
    std::fs::write(hw.join("rng_current"), "virtio_rng.0\n").unwrap();
    std::fs::write(hw.join("rng_available"), "virtio_rng.0\n").unwrap();
    std::fs::write(dev.join("hwrng"), vec![7u8; 64]).unwrap();
    let config = Config {
        dev_dir: dev.clone(),
        sysfs_dir: sys.clone(),
        cpu: false,
        ..Config::default()
    };
    let found = entropy::discover_verbose(&config);
    let kinds: Vec<_> = found.sources.iter().map(|s| s.info().kind).collect();
    // The kernel CSPRNG is always there, and last.
    assert_eq!(kinds, vec![SourceKind::Hwrng, SourceKind::OsCsprng]);
    assert_eq!(
        found.sources[0].info().device,
        DeviceKey("hwrng:virtio_rng.0".into())
    );
    assert_eq!(found.absent.len(), 1);
    assert_eq!(found.absent[0].what, "TPM 2.0");
    assert!(
        found.absent[0].reason.contains("tpmrm0"),
        "{:?}",
        found.absent
    );

    // A configured serial TRNG that is not there is reported, not silently dropped.
    let config = Config {
        serial_trngs: vec![entropy::SerialTrngConfig::whitened(dev.join("ttyACM9"))],
        hwrng: false,
        ..config
    };
    let found = entropy::discover_verbose(&config);
    assert_eq!(found.sources.len(), 1);
    assert!(found.absent.iter().any(|a| a.what.contains("ttyACM9")));
}
