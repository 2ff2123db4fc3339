//! sherd-verify and the independent Python verifier (`verifiers/python/sherd_verify.py`) on
//! the same folders: a host-generated ceremony, which both pass with the same output, and
//! tampered copies of it, which both must refuse naming the same failure (the same `FAIL`
//! line, up to the differences in wording `verifiers/python/README.md` lists). The comparison
//! is the one the QEMU tests make on the data stick, `tests/src/pyverify.rs`.
//!
//! Needs python3 (3.11 or later) with python3-cryptography, as `scripts/setup` installs.

mod common;
#[path = "../../tests/src/pyverify.rs"]
mod pyverify;

use std::path::{Path, PathBuf};

use ceremony::ceremony::paths;
use ceremony::keys::RootKey;
use ceremony::secret::RootSecret;
use ceremony::storage::OutputFile;
use ceremony::transcript::{self, Transcript};
use common::*;
use sha2::{Digest, Sha256};

/// The workspace root, where `verifiers/python` is.
fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("ceremony/ has a parent")
        .to_owned()
}

/// Writes `files` into `dir/name` and runs both verifiers on it; their common verdict.
fn both(dir: &Path, name: &str, files: &[OutputFile]) -> pyverify::Verdict {
    let folder = dir.join(name);
    for f in files {
        let path = folder.join(&f.path);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, &f.bytes).unwrap();
    }
    pyverify::same_verdict(
        &root(),
        Path::new(env!("CARGO_BIN_EXE_sherd-verify")),
        &folder,
    )
}

fn replace(files: &[OutputFile], path: &str, bytes: Vec<u8>) -> Vec<OutputFile> {
    let mut out = files.to_vec();
    out.iter_mut().find(|f| f.path == path).unwrap().bytes = bytes;
    out
}

/// The transcript's lines after the header.
fn lines(files: &[OutputFile]) -> Vec<String> {
    let text = std::str::from_utf8(file(files, paths::TRANSCRIPT)).unwrap();
    let mut lines = text.lines().map(str::to_owned);
    assert_eq!(lines.next().as_deref(), Some(transcript::HEADER));
    lines.collect()
}

/// The transcript with these lines after the header, as they are (no new chain).
fn with_lines(files: &[OutputFile], lines: &[String]) -> Vec<OutputFile> {
    let text = format!("{}\n{}\n", transcript::HEADER, lines.join("\n"));
    replace(files, paths::TRANSCRIPT, text.into_bytes())
}

/// The folder with the transcript's records (kind and value) edited, then chained afresh and
/// signed by the root key, as a forger holding the key would.
fn resign(
    files: &[OutputFile],
    root: &RootKey,
    edit: impl FnOnce(&mut Vec<(String, String)>),
) -> Vec<OutputFile> {
    let mut recs: Vec<(String, String)> = lines(files)
        .iter()
        .map(|l| {
            let mut parts = l.splitn(4, ' ').skip(2);
            let kind = parts.next().unwrap().to_owned();
            (kind, parts.next().unwrap().to_owned())
        })
        .collect();
    edit(&mut recs);
    let mut prev: [u8; 32] = Sha256::digest(transcript::HEADER.as_bytes()).into();
    let mut text = format!("{}\n", transcript::HEADER);
    for (i, (kind, value)) in recs.iter().enumerate() {
        let line = format!("{} {} {kind} {value}", i + 1, ceremony::hex::encode(&prev));
        prev = Sha256::digest(line.as_bytes()).into();
        text.push_str(&line);
        text.push('\n');
    }
    let t = Transcript::parse(text.as_bytes()).expect("a chained transcript");
    let sig = t.sign(root, PLAN_TIME).unwrap();
    let out = replace(files, paths::TRANSCRIPT, text.into_bytes());
    replace(&out, paths::TRANSCRIPT_SIG, sig)
}

/// The position of the first record of `kind` (and the record's line) at or after `from`.
fn find(lines: &[String], kind: &str, from: usize) -> usize {
    (from..lines.len())
        .find(|&i| lines[i].split(' ').nth(2) == Some(kind))
        .unwrap_or_else(|| panic!("no {kind} record"))
}

/// `a` with the two strings exchanged wherever they occur.
fn exchange(text: &str, a: &str, b: &str) -> String {
    text.replace(a, "\0").replace(b, a).replace('\0', b)
}

#[test]
fn both_verifiers_pass_a_ceremony_alike_and_refuse_its_tampered_copies_alike() {
    let id = "pycross";
    let seed = 23;
    let done = run(&fixture(id, 3, 2), seed);
    let files = done.files;
    // The root key, for the forged copies: the root secret is the seeded DRBG's first draw.
    let root = RootKey::derive(&RootSecret::generate(&mut seeded(seed)), id, PLAN_TIME).unwrap();
    // Another ceremony of the same plan shape, for a foreign signature.
    let other = run(&fixture("pycross-other", 3, 2), seed + 1).files;
    let tmp = tempfile::tempdir().unwrap();

    let good = both(tmp.path(), "good", &files);
    assert_eq!(good.status, 0, "{}", good.stdout);

    let recs = lines(&files);
    let armor_truncated = |bytes: &[u8]| {
        // An armored signature cut inside its base64 body, armor kept whole.
        let text = std::str::from_utf8(bytes).unwrap();
        let body_end = text
            .find("\n=")
            .or_else(|| text.find("\n-----END"))
            .unwrap();
        let cut = body_end - 12;
        format!("{}{}", &text[..cut], &text[body_end..]).into_bytes()
    };
    let shards = std::str::from_utf8(file(&files, paths::SHARDS)).unwrap();
    let raw: toml::Table = shards.parse().unwrap();
    let share =
        |i: usize, key: &str| -> String { raw["share"][i][key].as_str().unwrap().to_owned() };
    // Shares 1 and 2 exchanged in shards.toml, messages and their hashes.
    let mut swapped = shards.to_owned();
    for key in ["message", "message_sha256"] {
        swapped = exchange(&swapped, &share(0, key), &share(1, key));
    }
    let pin = file(&files, &paths::pin_file(2));

    let cases: Vec<(&str, Vec<OutputFile>, &str)> = vec![
        (
            "changed-record",
            with_lines(&files, &{
                let mut l = recs.clone();
                let i = find(&l, "card.provisioned", 0);
                l[i] = l[i].replace("serial=000F:0001", "serial=000F:0009");
                l
            }),
            "transcript.txt: line ",
        ),
        (
            "reordered-records",
            with_lines(&files, &{
                let mut l = recs.clone();
                l.swap(5, 6);
                l
            }),
            "transcript.txt: line 7: record number 7, expected 6",
        ),
        (
            "reordered-records-resigned",
            resign(&files, &root, |r| {
                let card = r.iter().position(|(k, _)| k == "card.provisioned").unwrap();
                let share = r.iter().position(|(k, _)| k == "share.sealed").unwrap();
                let moved = r.remove(share);
                r.insert(card, moved);
            }),
            "(share.sealed): out of the ceremony's order",
        ),
        (
            "swapped-share",
            replace(&files, paths::SHARDS, swapped.into_bytes()),
            "SHA-256 of shards.toml",
        ),
        (
            "swapped-share-records-resigned",
            resign(&files, &root, |r| {
                let first = r.iter().position(|(k, _)| k == "share.sealed").unwrap();
                let second = first
                    + 1
                    + r[first + 1..]
                        .iter()
                        .position(|(k, _)| k == "share.sealed")
                        .unwrap();
                r.swap(first, second);
            }),
            "share.sealed",
        ),
        (
            "foreign-signature",
            replace(
                &files,
                paths::TRANSCRIPT_SIG,
                file(&other, paths::TRANSCRIPT_SIG).to_vec(),
            ),
            "transcript.txt.sig: the transcript signature does not verify",
        ),
        (
            "truncated-transcript",
            {
                let t = file(&files, paths::TRANSCRIPT);
                replace(&files, paths::TRANSCRIPT, t[..t.len() - 40].to_vec())
            },
            "transcript.txt: the transcript must end with a newline",
        ),
        (
            "truncated-signature",
            replace(
                &files,
                paths::TRANSCRIPT_SIG,
                armor_truncated(file(&files, paths::TRANSCRIPT_SIG)),
            ),
            "transcript.txt.sig: ",
        ),
        (
            "truncated-pin-file",
            replace(&files, &paths::pin_file(2), pin[..pin.len() / 2].to_vec()),
            "SHA-256 of pins/holder-002.asc",
        ),
        (
            "truncated-root-certificate",
            {
                let c = file(&files, paths::ROOT_CERT);
                replace(&files, paths::ROOT_CERT, c[..c.len() / 2].to_vec())
            },
            "root-cert.asc: ",
        ),
    ];
    for (name, copy, names) in cases {
        let v = both(tmp.path(), name, &copy);
        let line = v.fail_line().unwrap_or_else(|| {
            panic!("{name}: both verifiers pass a tampered copy:\n{}", v.stdout)
        });
        assert!(line.contains(names), "{name}: {line}");
        eprintln!("{name}: {line}");
    }
}

/// The request vectors of the Python verifier's tests (`verifiers/python/testdata/requests/`):
/// each request's canonical hash, as sherd's `Request::parse(..).hash_hex()` computes it, is the
/// one `hashes.txt` gives for it (the Python tests compare their own with the same file), and
/// sherd refuses every request of `refused/` (which the Python tests refuse too).
/// `SHERD_WRITE_REQUEST_HASHES=1` writes `hashes.txt` instead of comparing.
#[test]
fn the_python_tests_request_hashes_are_sherds() {
    use ceremony::request::Request;

    let dir = root().join("verifiers/python/testdata/requests");
    let tomls = |dir: &Path| -> Vec<(String, String)> {
        let mut out: Vec<(String, String)> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .filter(|n| n.ends_with(".toml"))
            .map(|n| (n.clone(), std::fs::read_to_string(dir.join(&n)).unwrap()))
            .collect();
        out.sort();
        out
    };
    let computed: String = tomls(&dir)
        .iter()
        .map(|(name, text)| {
            let r = Request::parse(text).unwrap_or_else(|e| panic!("{name}: {e}"));
            format!("{}  {name}\n", r.hash_hex())
        })
        .collect();
    let path = dir.join("hashes.txt");
    if std::env::var_os("SHERD_WRITE_REQUEST_HASHES").is_some() {
        std::fs::write(&path, &computed).unwrap();
    }
    assert_eq!(
        std::fs::read_to_string(&path).unwrap(),
        computed,
        "{} is not what sherd computes (SHERD_WRITE_REQUEST_HASHES=1 rewrites it)",
        path.display()
    );
    let refused = tomls(&dir.join("refused"));
    assert!(refused.len() > 20);
    for (name, text) in refused {
        match Request::parse(&text) {
            Ok(_) => panic!("refused/{name}: sherd accepts it"),
            Err(e) => eprintln!("refused/{name}: {e}"),
        }
    }
}
