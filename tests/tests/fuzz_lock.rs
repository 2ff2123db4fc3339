//! The fuzz crate (fuzz/) has its own lock file. Fuzzing is only worth its time if it runs the
//! dependency versions the image ships, so every package the two lock files share must be
//! locked to the same version.

use std::collections::BTreeMap;
use std::path::Path;

/// `name -> versions` of a Cargo.lock (a package can be locked at several versions).
fn locked(path: &Path) -> BTreeMap<String, Vec<String>> {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let lock: toml::Table =
        toml::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let mut out: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for p in lock["package"].as_array().expect("[[package]] entries") {
        let field = |k: &str| {
            p[k].as_str()
                .expect("name and version are strings")
                .to_owned()
        };
        out.entry(field("name")).or_default().push(field("version"));
    }
    out
}

#[test]
fn fuzz_lock_file_keeps_the_workspace_versions() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let workspace = locked(&root.join("Cargo.lock"));
    let fuzz = locked(&root.join("fuzz/Cargo.lock"));
    let mut drifted = Vec::new();
    for (name, versions) in &fuzz {
        if let Some(ours) = workspace.get(name) {
            for v in versions.iter().filter(|v| !ours.contains(v)) {
                drifted.push(format!(
                    "{name} {v} (the workspace locks {})",
                    ours.join(", ")
                ));
            }
        }
    }
    assert!(
        drifted.is_empty(),
        "fuzz/Cargo.lock differs from Cargo.lock; copy Cargo.lock over it and run \
         `cargo metadata` in fuzz/ to add the fuzzing crates:\n  {}",
        drifted.join("\n  ")
    );
    // The fuzz crate must really depend on the workspace crates it fuzzes.
    for name in [
        "ceremony",
        "cards",
        "ceremony-tui",
        "heads-config",
        "sherd-release",
    ] {
        assert!(fuzz.contains_key(name), "fuzz/Cargo.lock has no {name}");
    }
}
