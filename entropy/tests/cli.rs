//! The `entropy` host command.

use std::process::Command;

fn entropy() -> Command {
    Command::new(env!("CARGO_BIN_EXE_entropy"))
}

#[test]
fn dump_writes_exactly_the_requested_raw_samples() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("os.bin");
    let out = entropy()
        .args(["dump", "os", file.to_str().unwrap(), "10000"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let data = std::fs::read(&file).unwrap();
    assert_eq!(data.len(), 10000);
    // Not a constant or padded file: many distinct byte values.
    let mut seen = [false; 256];
    for b in &data {
        seen[*b as usize] = true;
    }
    assert!(seen.iter().filter(|x| **x).count() > 200);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("ea_non_iid -v"), "{err}");
}

#[test]
fn dump_of_an_unknown_source_fails_with_the_choices() {
    let out = entropy()
        .args(["dump", "dice", "/tmp/never-written", "10"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("unknown source \"dice\""), "{err}");
    assert!(
        err.contains("rdseed, rdrand, hwrng, tpm, trng or os"),
        "{err}"
    );
    assert!(!std::path::Path::new("/tmp/never-written").exists());
}

#[test]
fn bad_arguments_print_usage() {
    let out = entropy().args(["dump", "os"]).output().unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("usage:"));
    let out = entropy().output().unwrap();
    assert!(!out.status.success());
}

#[test]
fn probe_lists_the_kernel_csprng_and_health_tests_it() {
    let out = entropy()
        .args(["probe", "--bytes", "4096"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let s = String::from_utf8_lossy(&out.stdout);
    assert!(s.contains("os-csprng getrandom(2)"), "{s}");
    assert!(s.contains("RCT C=5, APT C=16 of W=512"), "{s}");
    assert!(s.contains("verdict:"), "{s}");
}
