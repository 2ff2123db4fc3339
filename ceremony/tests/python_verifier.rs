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

mod recovery_folders {
    //! Both verifiers on recovery folders (`--recovery <folder> --generation <folder>`): a
    //! sign, a prove-quorum and a certify recovery through one host-made generation ceremony,
    //! and a recovery under a signing policy, which both pass with the same output; tampered
    //! copies, which both refuse naming the same failure.

    use std::collections::HashMap;
    use std::path::{Path, PathBuf};

    use ceremony::keys::RootKey;
    use ceremony::record::Fields;
    use ceremony::recovery::ApprovalFile;
    use ceremony::recovery_flow::paths;
    use ceremony::transcript::Transcript;

    use super::common::recovery::*;
    use super::common::*;
    use super::{pyverify, root};

    const RELEASE: &[u8] = b"release 1.2: the bytes the root key signs\n";
    const NOTES: &[u8] = b"second file\n";
    /// The recovery requests' time (`REQUEST_TIME`, 2026-11-25T10:00:00Z): every signature of a
    /// recovery is dated so, the re-signed transcripts here too.
    const REQUEST_UNIX: u32 = PLAN_TIME + 25 * 3600;

    fn both(recovery: &Path, generation: &Path, files: Option<&Path>) -> pyverify::Verdict {
        pyverify::same_recovery_verdict(
            &root(),
            Path::new(env!("CARGO_BIN_EXE_sherd-verify")),
            recovery,
            generation,
            files,
        )
    }

    fn copy_dir(from: &Path, to: &Path) {
        std::fs::create_dir_all(to).unwrap();
        for entry in std::fs::read_dir(from).unwrap() {
            let entry = entry.unwrap();
            let target = to.join(entry.file_name());
            if entry.file_type().unwrap().is_dir() {
                copy_dir(&entry.path(), &target);
            } else {
                std::fs::copy(entry.path(), target).unwrap();
            }
        }
    }

    type Records = Vec<(String, String)>;

    /// Rewrites the transcript of `dir` with `edit` applied to its records (kind, value),
    /// chained anew, and signed at the request time by `root` (the real root key; `None`: the
    /// old signature stays).
    fn rewrite(dir: &Path, root: Option<&RootKey>, edit: impl FnOnce(&mut Records)) {
        let text = std::fs::read_to_string(dir.join(paths::TRANSCRIPT)).unwrap();
        let mut lines = text.lines();
        let header = lines.next().unwrap().to_string();
        let mut records: Records = lines
            .map(|l| {
                let mut parts = l.splitn(4, ' ').skip(2);
                let kind = parts.next().unwrap().to_string();
                (kind, parts.next().unwrap().to_string())
            })
            .collect();
        edit(&mut records);
        let mut text = format!("{header}\n");
        let mut prev = sha256_hex(header.as_bytes());
        for (i, (kind, value)) in records.iter().enumerate() {
            let line = format!("{} {prev} {kind} {value}", i + 1);
            prev = sha256_hex(line.as_bytes());
            text.push_str(&line);
            text.push('\n');
        }
        std::fs::write(dir.join(paths::TRANSCRIPT), &text).unwrap();
        if let Some(root) = root {
            let t = Transcript::parse(text.as_bytes()).expect("a well-formed transcript");
            let sig = t.sign(root, REQUEST_UNIX).unwrap();
            std::fs::write(dir.join(paths::TRANSCRIPT_SIG), sig).unwrap();
        }
    }

    /// Sets field `key` of the `nth` (0-based) record of `kind`.
    fn set(records: &mut Records, kind: &str, nth: usize, key: &str, new: &str) {
        let (k, v) = records
            .iter_mut()
            .filter(|(k, _)| k == kind)
            .nth(nth)
            .unwrap_or_else(|| panic!("no {kind} number {nth}"));
        let fields = Fields::parse(k, v).unwrap();
        assert!(fields.get(key).is_some(), "{kind} has no {key}");
        let mut out = Fields::new();
        for (fk, fv) in fields.pairs() {
            out = out.with(fk, if fk == key { new } else { fv.as_str() });
        }
        *v = out.encode();
    }

    fn position(records: &Records, kind: &str) -> usize {
        records.iter().position(|(k, _)| k == kind).unwrap()
    }

    /// A tampered copy of a recovery folder: its name, the folder it is a copy of, the change,
    /// and what the common FAIL line must contain.
    type Case<'a> = (&'a str, &'a PathBuf, Box<dyn Fn(&Path) + 'a>, &'a str);

    /// A case's change: the transcript's records edited by `edit` (given a hash to put where
    /// one is wanted), chained anew and re-signed by `root`.
    fn resigned(root: &RootKey, edit: fn(&mut Records, &str)) -> Box<dyn Fn(&Path) + '_> {
        Box::new(move |d: &Path| rewrite(d, Some(root), |r| edit(r, &"ab".repeat(32))))
    }

    /// Runs each case on a copy of its folder: both verifiers must refuse it alike.
    fn refuse(tmp: &Path, generation: &Path, cases: Vec<Case<'_>>) {
        for (name, base, change, names) in cases {
            let dir = tmp.join(name);
            copy_dir(base, &dir);
            change(&dir);
            let v = both(&dir, generation, None);
            let line = v.fail_line().unwrap_or_else(|| {
                panic!("{name}: both verifiers pass a tampered copy:\n{}", v.stdout)
            });
            assert!(line.contains(names), "{name}: {line}");
            eprintln!("{name}: {line}");
        }
    }

    #[test]
    fn both_verifiers_check_recovery_folders_alike() {
        let mut g = generation("pyrecover", 41);
        let tmp = tempfile::tempdir().unwrap();
        let t = tmp.path();
        let gen_dir = g.write(t, "generation");
        let stick: HashMap<String, Vec<u8>> = [
            ("release-1.2.tar.gz".to_string(), RELEASE.to_vec()),
            ("release notes.txt".to_string(), NOTES.to_vec()),
        ]
        .into_iter()
        .collect();
        let stick_dir = t.join("stick");
        std::fs::create_dir(&stick_dir).unwrap();
        for (name, bytes) in &stick {
            std::fs::write(stick_dir.join(name), bytes).unwrap();
        }
        let sign_request = g.request_text(&format!(
            "[sign]\n[[sign.file]]\nname = \"release-1.2.tar.gz\"\nsha256 = \"{}\"\n\
             [[sign.file]]\nname = \"release notes.txt\"\nsha256 = \"{}\"\n",
            sha256_hex(RELEASE),
            sha256_hex(NOTES)
        ));
        let quorum_request = g.request_text(
            "[prove-quorum]\nchallenge = \"Bitcoin block 880000: 0000abc \\\"quoted\\\" – ü\"\n",
        );
        let uids = [
            "Builder One <b1@example.org>",
            "Builder One <release@example.org>",
        ];
        let builder = {
            let first = personal(uids[0]);
            // A second user ID, self-signed: the request certifies both.
            let mut signer = first
                .primary_key()
                .key()
                .clone()
                .parts_into_secret()
                .unwrap()
                .into_keypair()
                .unwrap();
            let uid = ceremony::openpgp::packet::UserID::from(uids[1]);
            let sig = uid
                .bind(
                    &mut signer,
                    &first,
                    ceremony::openpgp::packet::signature::SignatureBuilder::new(
                        ceremony::openpgp::types::SignatureType::PositiveCertification,
                    )
                    .set_signature_creation_time(
                        std::time::UNIX_EPOCH + std::time::Duration::from_secs(PLAN_TIME.into()),
                    )
                    .unwrap(),
                )
                .unwrap();
            first
                .insert_packets(vec![
                    ceremony::openpgp::Packet::from(uid),
                    ceremony::openpgp::Packet::from(sig),
                ])
                .unwrap()
                .0
        };
        let certify_request = g.request_text(&format!(
            "[certify]\ncert = '''\n{}'''\nuser_ids = [\"{}\", \"{}\"]\n\
             expiry = 2028-03-01T00:00:00Z\n",
            armored_public(&builder),
            uids[1],
            uids[0]
        ));
        let sign = write_recovery(
            &recover(&mut g, &sign_request, &[], &[3, 1], &stick),
            t,
            "sign",
        );
        let quorum = write_recovery(
            &recover(&mut g, &quorum_request, &[], &[2, 3], &stick),
            t,
            "quorum",
        );
        let certify = write_recovery(
            &recover(&mut g, &certify_request, &[], &[1, 3], &stick),
            t,
            "certify",
        );

        // As made: both pass, with the same output (the signatures over the files too, with
        // --files).
        for (dir, files) in [
            (&sign, None),
            (&sign, Some(stick_dir.as_path())),
            (&quorum, None),
            (&certify, None),
        ] {
            let v = both(dir, &gen_dir, files);
            assert_eq!(v.status, 0, "{}", v.stdout);
            eprintln!("{}", v.stdout);
        }

        // The request stick's files are not the ones signed, or one is missing.
        let other_stick = t.join("other-stick");
        copy_dir(&stick_dir, &other_stick);
        std::fs::write(other_stick.join("release notes.txt"), b"other bytes\n").unwrap();
        let v = both(&sign, &gen_dir, Some(&other_stick));
        assert!(
            v.fail_line()
                .is_some_and(|l| l.contains("release notes.txt (the file given): SHA-256")),
            "{}",
            v.stdout
        );
        std::fs::remove_file(other_stick.join("release notes.txt")).unwrap();
        let v = both(&sign, &gen_dir, Some(&other_stick));
        assert!(
            v.fail_line().is_some_and(
                |l| l.contains("release notes.txt: cannot read the file the request names: ")
            ),
            "{}",
            v.stdout
        );

        // The folders given the wrong way round, a generation folder as the recovery folder, a
        // recovery folder alone, a generation folder that does not verify.
        let v = both(&gen_dir, &sign, None);
        assert!(
            v.fail_line()
                .is_some_and(|l| l
                    .contains("the generation folder's transcript.txt is a recovery transcript")),
            "{}",
            v.stdout
        );
        let v = both(&gen_dir, &gen_dir, None);
        assert!(
            v.fail_line().is_some_and(
                |l| l.contains(", not recovery.generation: this is not a recovery transcript")
            ),
            "{}",
            v.stdout
        );
        let v = pyverify::same_verdict(
            &root(),
            Path::new(env!("CARGO_BIN_EXE_sherd-verify")),
            &sign,
        );
        assert!(
            v.fail_line()
                .is_some_and(|l| l.contains("a recovery folder")),
            "{}",
            v.stdout
        );
        let broken = t.join("broken-generation");
        copy_dir(&gen_dir, &broken);
        std::fs::remove_file(broken.join("shards.toml")).unwrap();
        let v = both(&sign, &broken, None);
        assert!(
            v.fail_line()
                .is_some_and(|l| l.contains("the generation folder does not verify: ")),
            "{}",
            v.stdout
        );

        // Tampered without the root key.
        let gen_sig = std::fs::read(gen_dir.join("transcript.txt.sig")).unwrap();
        let mallory = armored_public(&personal("Mallory"));
        let sig_path = "signatures/release-1.2.tar.gz.sig";
        let cases: Vec<Case<'_>> = vec![
            (
                "edited-transcript",
                &quorum,
                Box::new(|d: &Path| {
                    let p = d.join(paths::TRANSCRIPT);
                    let text = std::fs::read_to_string(&p).unwrap();
                    std::fs::write(&p, text.replacen("holder=3", "holder=1", 1)).unwrap();
                }),
                "transcript.txt: line ",
            ),
            (
                "rechained-without-the-key",
                &quorum,
                Box::new(|d: &Path| {
                    rewrite(d, None, |r| {
                        set(r, "recovery.recombined", 0, "holders", "3,2")
                    })
                }),
                "transcript.txt.sig: not a good signature over transcript.txt by the generation's root key",
            ),
            (
                "the-generation-signature",
                &quorum,
                Box::new(|d: &Path| {
                    std::fs::write(d.join(paths::TRANSCRIPT_SIG), &gen_sig).unwrap()
                }),
                "transcript.txt.sig: not a good signature over transcript.txt by the generation's root key",
            ),
            (
                "root-cert-replaced",
                &quorum,
                Box::new(|d: &Path| std::fs::write(d.join(paths::ROOT_CERT), &mallory).unwrap()),
                "root-cert.asc: the certificate of ",
            ),
            (
                "request-comment",
                &quorum,
                Box::new(|d: &Path| {
                    let p = d.join(paths::REQUEST);
                    let mut text = std::fs::read_to_string(&p).unwrap();
                    text.push_str("# a comment\n");
                    std::fs::write(&p, text).unwrap();
                }),
                "(recovery.request): its file-sha256 is ",
            ),
            (
                "request-not-a-request",
                &quorum,
                Box::new(|d: &Path| {
                    std::fs::write(d.join(paths::REQUEST), "format = \"sherd-request/9\"\n")
                        .unwrap()
                }),
                "request.toml: ",
            ),
            (
                "extra-file",
                &sign,
                Box::new(|d: &Path| std::fs::write(d.join("signatures/extra.sig"), b"x").unwrap()),
                "signatures/extra.sig: in the folder, but no output.file record of transcript.txt lists it",
            ),
            (
                "output-altered",
                &sign,
                Box::new(move |d: &Path| {
                    let p = d.join(sig_path);
                    let mut bytes = std::fs::read(&p).unwrap();
                    bytes.push(b'\n');
                    std::fs::write(&p, bytes).unwrap();
                }),
                "signatures/release-1.2.tar.gz.sig: ",
            ),
            (
                "output-missing",
                &sign,
                Box::new(|d: &Path| {
                    std::fs::remove_file(d.join("signatures/by-position/002.sig")).unwrap()
                }),
                "signatures/by-position/002.sig: missing: ",
            ),
            (
                "challenge-altered",
                &quorum,
                Box::new(|d: &Path| {
                    std::fs::write(d.join(paths::CHALLENGE), b"another challenge").unwrap()
                }),
                "quorum/challenge.txt: 17 bytes, the record says ",
            ),
            (
                "a-link-in-the-folder",
                &sign,
                Box::new(|d: &Path| {
                    std::os::unix::fs::symlink(d.join(paths::REQUEST), d.join("link.toml")).unwrap()
                }),
                "the recovery folder: cannot list its files: link.toml: ",
            ),
        ];
        refuse(t, &gen_dir, cases);

        // Tampered behind the root key's signature: re-signed by the real root key, as its
        // holders could. Unchanged, it passes.
        let root = g.root_key();
        let unchanged = t.join("re-signed-unchanged");
        copy_dir(&sign, &unchanged);
        rewrite(&unchanged, Some(&root), |_| {});
        assert_eq!(both(&unchanged, &gen_dir, None).status, 0);
        let plain = armored_public(&builder);
        let cases: Vec<Case<'_>> = vec![
            (
                "link-transcript",
                &sign,
                resigned(&root, |r, h| {
                    set(r, "recovery.generation", 0, "transcript", h)
                }),
                "(recovery.generation): its transcript is ",
            ),
            (
                "link-ceremony",
                &sign,
                resigned(&root, |r, _| {
                    set(r, "recovery.generation", 0, "ceremony", "another")
                }),
                "(recovery.generation): its ceremony is another",
            ),
            (
                "request-hash",
                &sign,
                resigned(&root, |r, h| set(r, "recovery.request", 0, "hash", h)),
                "(recovery.request): its hash is ",
            ),
            (
                "request-time",
                &sign,
                resigned(&root, |r, _| {
                    set(r, "recovery.request", 0, "time", "1795600001")
                }),
                "(recovery.request): its time is 1795600001",
            ),
            (
                "policy-approvals",
                &sign,
                resigned(&root, |r, _| set(r, "recovery.policy", 0, "approvals", "1")),
                "(recovery.policy): policy=none needed=0 approvals=1",
            ),
            (
                "share-twice",
                &sign,
                resigned(&root, |r, _| {
                    let at = position(r, "recovery.share");
                    let first = r[at].clone();
                    r.insert(at + 1, first);
                }),
                "(recovery.share, holder 3): this holder's share is already recorded",
            ),
            (
                "share-envelope",
                &sign,
                resigned(&root, |r, h| set(r, "recovery.share", 1, "envelope", h)),
                "(recovery.share, holder 1): envelope ",
            ),
            (
                "share-pins",
                &sign,
                resigned(&root, |r, h| set(r, "recovery.share", 0, "pins", h)),
                "pins/holder-003.asc is ",
            ),
            (
                "share-personal",
                &sign,
                resigned(&root, |r, _| {
                    set(r, "recovery.share", 0, "personal", &"CD".repeat(20))
                }),
                "not a key of the holder (Holder 003)'s certificates",
            ),
            (
                "share-read-by-the-backup",
                &sign,
                resigned(&root, |r, _| {
                    set(r, "recovery.share", 0, "reader", "backup");
                    set(r, "recovery.share", 0, "reader-name", "Holder 001");
                }),
                "not a key of the backup (Holder 001)'s certificates",
            ),
            (
                "one-share",
                &sign,
                resigned(&root, |r, _| {
                    let at = position(r, "recovery.share");
                    r.remove(at);
                    set(r, "recovery.recombined", 0, "holders", "1");
                }),
                "transcript.txt: 1 recovery.share record(s), the generation plan's threshold is 2",
            ),
            (
                "recombined-holders",
                &sign,
                resigned(&root, |r, _| {
                    set(r, "recovery.recombined", 0, "holders", "1,3")
                }),
                "(recovery.recombined): holders=1,3",
            ),
            (
                "recombined-root",
                &sign,
                resigned(&root, |r, _| {
                    set(r, "recovery.recombined", 0, "root", &"EF".repeat(20))
                }),
                "(recovery.recombined): root=",
            ),
            (
                "end-count",
                &sign,
                resigned(&root, |r, _| set(r, "ceremony.end", 0, "files", "5")),
                "(ceremony.end): files=5, but there are 4 output.file records",
            ),
            (
                "path-leaving-the-folder",
                &sign,
                resigned(&root, |r, _| {
                    set(r, "output.file", 3, "path", "../generation/plan.toml")
                }),
                "../generation/plan.toml: the path would leave the folder",
            ),
            (
                "output-not-listed",
                &sign,
                resigned(&root, |r, _| {
                    let at = position(r, "output.file") + 3;
                    r.remove(at);
                    set(r, "ceremony.end", 0, "files", "3");
                }),
                "signatures/by-position/002.sig: a sign recovery writes it, but no output.file record lists it",
            ),
            (
                "signed-sha256",
                &sign,
                resigned(&root, |r, h| set(r, "recovery.signed", 0, "sha256", h)),
                "(recovery.signed): sha256 ",
            ),
            (
                "signed-path",
                &sign,
                resigned(&root, |r, _| {
                    set(r, "recovery.signed", 1, "signature", "signatures/notes.sig")
                }),
                "but the signature of the request's file 2 is signatures/by-position/002.sig",
            ),
            (
                "another-operations-record",
                &sign,
                resigned(&root, |r, h| {
                    let at = position(r, "output.file");
                    r.insert(
                        at,
                        (
                            "recovery.quorum".into(),
                            format!("challenge-sha256={h} signature=quorum/challenge.txt.sig"),
                        ),
                    );
                }),
                "(recovery.quorum): the request's operation is sign",
            ),
            (
                "late-screen-record",
                &sign,
                resigned(&root, |r, _| {
                    let at = position(r, "recovery.signed");
                    r.insert(
                        at,
                        ("witness.confirm".into(), "name=Wendy step=late".into()),
                    );
                }),
                "until the holders are done",
            ),
            (
                "a-generation-kind",
                &sign,
                resigned(&root, |r, h| {
                    r.insert(2, ("plan.hash".into(), h.to_string()))
                }),
                "a recovery transcript has no \"plan.hash\" records",
            ),
            (
                "out-of-order",
                &sign,
                resigned(&root, |r, _| {
                    let at = position(r, "recovery.recombined");
                    r.swap(at, at - 1);
                }),
                "out of the recovery's order",
            ),
            (
                "no-end",
                &sign,
                resigned(&root, |r, _| {
                    r.pop();
                }),
                "the last record is not ceremony.end",
            ),
            (
                "certify-user-id",
                &certify,
                resigned(&root, |r, _| {
                    set(r, "recovery.certified", 1, "user-id", "Someone else")
                }),
                "(recovery.certified): user-id \"Someone else\"",
            ),
            (
                "uncertified",
                &certify,
                Box::new(|d: &Path| {
                    std::fs::write(d.join(paths::CERTIFIED), &plain).unwrap();
                    let (sha, size) = (sha256_hex(plain.as_bytes()), plain.len().to_string());
                    rewrite(d, Some(&root), |r| {
                        set(r, "output.file", 2, "sha256", &sha);
                        set(r, "output.file", 2, "size", &size);
                    });
                }),
                "certified/cert.asc: ",
            ),
            (
                "challenge-relisted",
                &quorum,
                Box::new(|d: &Path| {
                    std::fs::write(d.join(paths::CHALLENGE), b"another challenge").unwrap();
                    let sha = sha256_hex(b"another challenge");
                    rewrite(d, Some(&root), |r| {
                        set(r, "output.file", 2, "sha256", &sha);
                        set(r, "output.file", 2, "size", "17");
                    });
                }),
                "quorum/challenge.txt: not the request's challenge, byte for byte",
            ),
        ];
        refuse(t, &gen_dir, cases);
    }

    #[test]
    fn both_verifiers_check_a_recovery_under_a_policy_alike() {
        use ceremony::card::PersonalCard;

        let ann = personal("Ann Approver");
        let bob = personal("Bob Approver");
        let mut fixture = fixture_with("pyrecover-policy", 3, 2, &[1, 1, 1]);
        fixture.plan_text.push_str(&format!(
            "\n[policy]\n[[policy.approver]]\nname = \"Ann\"\ncerts = ['''\n{}''']\n\
             [[policy.approver]]\nname = \"Bob\"\ncerts = ['''\n{}''']\n\
             [policy.sign]\nk = 2\n[policy.certify]\nk = 2\n[policy.prove-quorum]\nk = 2\n\
             [policy.reshare]\nk = 2\n[policy.replace-card]\nk = 2\n",
            armored_public(&ann),
            armored_public(&bob)
        ));
        let mut g = generation_of(fixture, 42);
        let text = g.request_text("[prove-quorum]\nchallenge = \"headline\"\n");
        let time = std::time::UNIX_EPOCH + std::time::Duration::from_secs(1_795_600_000);
        let approve = |name: &str, cert: &ceremony::openpgp::Cert| ApprovalFile {
            name: name.into(),
            bytes: ceremony::card::SoftwarePersonalCard::new("0006:00000099", cert)
                .unwrap()
                .sign_detached(&default_pin(), cert, time, text.as_bytes())
                .unwrap(),
        };
        let approvals = [approve("ann.sig", &ann), approve("bob.sig", &bob)];
        let tmp = tempfile::tempdir().unwrap();
        let t = tmp.path();
        let gen_dir = g.write(t, "generation");
        let finished = recover(&mut g, &text, &approvals, &[1, 2], &HashMap::new());
        let rec = write_recovery(&finished, t, "recovery");
        let v = both(&rec, &gen_dir, None);
        assert_eq!(v.status, 0, "{}", v.stdout);
        assert!(
            v.stdout.contains(
                "policy:            held: prove-quorum needs 2 approver(s); 2 approved (Ann, Bob)"
            ),
            "{}",
            v.stdout
        );

        let root = g.root_key();
        let rec = &rec;
        let cases: Vec<Case<'_>> = vec![
            (
                "ann-twice",
                rec,
                resigned(&root, |r, _| {
                    set(r, "recovery.approval", 1, "approver", "Ann")
                }),
                "(recovery.approval): approver \"Ann\" is counted twice",
            ),
            (
                "one-approval",
                rec,
                resigned(&root, |r, _| {
                    let at = position(r, "recovery.approval");
                    r.remove(at);
                    set(r, "recovery.policy", 0, "approvals", "1");
                }),
                "(recovery.policy): approvals=1: fewer than the 2 needed",
            ),
            (
                "other-cert",
                rec,
                resigned(&root, |r, _| {
                    set(r, "recovery.approval", 0, "cert", &"AB".repeat(20))
                }),
                "is not one the plan lists for approver \"Ann\"",
            ),
            (
                "other-key",
                rec,
                resigned(&root, |r, _| {
                    set(r, "recovery.approval", 0, "key", &"AB".repeat(20))
                }),
                "is not a key of approver \"Ann\"'s certificate",
            ),
            (
                "needed",
                rec,
                resigned(&root, |r, _| set(r, "recovery.policy", 0, "needed", "1")),
                "(recovery.policy): needed=1, but the generation plan's policy needs 2",
            ),
            (
                "policy-none",
                rec,
                resigned(&root, |r, _| set(r, "recovery.policy", 0, "policy", "none")),
                "(recovery.policy): policy=none, but the generation plan has a [policy]",
            ),
        ];
        refuse(t, &gen_dir, cases);
    }
}
