//! The verifier reads every transcript format: format 1 folders as the released core wrote
//! them (kept in tests/data), and format 3 folders as the core writes them now (format 2 is
//! format 3 without the `dual.*` records: tests/verify_semantics.rs).

mod common;

use ceremony::record::Entry;
use ceremony::transcript::{Format, Transcript};
use std::path::Path;

fn format_1_folder() -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/format-1/sherd-format1-example")
}

#[test]
fn a_format_1_folder_still_verifies() {
    let dir = format_1_folder();
    let report = ceremony::verify::verify_dir(&dir).expect("format 1 verifies");
    assert_eq!((report.threshold, report.count, report.cards), (2, 3, 3));
    assert_eq!(report.ceremony_id, "format1-example");
    let t = Transcript::parse(&std::fs::read(dir.join("transcript.txt")).unwrap()).unwrap();
    assert_eq!(t.format(), Format::V1);
    // Its callers' records are kept as they were written, ambiguous or not, and not read as
    // the core's: "name=the witnesses present" was never a well-formed field list.
    assert!(
        t.records()
            .iter()
            .any(|r| r.value == "name=the witnesses present step=attestation")
    );
    let core: Vec<&str> = t
        .core_records()
        .unwrap()
        .iter()
        .map(|(r, _)| r.kind.as_str())
        .collect();
    assert!(!core.contains(&"witness.confirm"));
    assert!(core.contains(&"card.provisioned"));
    // Written before the second implementations' records: said so, not failed.
    assert_eq!(
        report.dual,
        ceremony::verify::DualCheck::NotRecorded("sherd-transcript/1")
    );
}

#[test]
fn a_format_3_folder_verifies_and_every_record_is_typed() {
    let f = common::fixture("format3", 3, 2);
    let done = common::run(&f, 9);
    let out = tempfile::tempdir().unwrap();
    for file in &done.files {
        let p = out.path().join(&file.path);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, &file.bytes).unwrap();
    }
    let report = ceremony::verify::verify_dir(out.path()).expect("format 3 verifies");
    assert_eq!(
        report.transcript_final_words,
        done.view.transcript_final_words
    );
    let bytes = common::file(&done.files, "transcript.txt");
    assert!(bytes.starts_with(b"sherd-transcript/3\n"));
    let t = Transcript::parse(bytes).unwrap();
    assert_eq!(t.format(), Format::V3);
    assert!(matches!(
        report.dual,
        ceremony::verify::DualCheck::Checked { .. }
    ));
    for r in t.records() {
        let e = Entry::parse(&r.kind, &r.value).unwrap();
        assert_eq!(e.encode(), r.value, "one spelling");
    }
}
