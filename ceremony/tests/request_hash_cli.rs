//! `sherd-verify --request-hash`: the hash a requester gives the witnesses is the one in the
//! request vectors (verifiers/python/testdata/requests/hashes.txt, which the Python verifier
//! recomputes on its own and another test keeps equal to `Request::hash_hex`), and a refused
//! request says FAIL with the reason.

use std::path::Path;
use std::process::Command;

fn run(file: &Path) -> (i32, String) {
    let o = Command::new(env!("CARGO_BIN_EXE_sherd-verify"))
        .arg("--request-hash")
        .arg(file)
        .output()
        .unwrap();
    (
        o.status.code().unwrap_or(-1),
        String::from_utf8(o.stdout).unwrap(),
    )
}

#[test]
fn the_request_hash_printed_is_the_vectors() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../verifiers/python/testdata/requests");
    let vectors = std::fs::read_to_string(dir.join("hashes.txt")).unwrap();
    let mut n = 0;
    for line in vectors.lines() {
        let (hash, name) = line.split_once("  ").unwrap();
        let (status, out) = run(&dir.join(name));
        assert_eq!(status, 0, "{name}: {out}");
        assert!(
            out.contains(&format!("request hash:      {hash}\n")),
            "{name}: {out}"
        );
        n += 1;
    }
    assert!(n >= 10, "only {n} vectors");
    let refused = std::fs::read_dir(dir.join("refused"))
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .path();
    let (status, out) = run(&refused);
    assert_eq!(status, 1, "{out}");
    assert!(out.starts_with("FAIL "), "{out}");
}
