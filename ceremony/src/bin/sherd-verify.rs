#![forbid(unsafe_code)]
//! `sherd-verify <folder>`: checks a sherd ceremony's output folder offline and prints PASS with
//! the values to compare against the witnesses' notes, or FAIL with the first problem.
//!
//! `sherd-verify --recovery <folder> --generation <folder> [--files <folder>]`: checks a
//! recovery ceremony's output folder against the generation ceremony's folder it used (which
//! must pass itself); `--files`: the folder with the files a `sign` request names, to check
//! each signature over its file; `--replaced <folder>` (repeated, in the order they were made):
//! the replace-card and reshare recovery folders the recovery's root was pinned with (each
//! checked against the generation folder and the folders before it).
//!
//! `sherd-verify --request-hash <request.toml>`: checks a request file as the recovery ceremony
//! will (its format only: the root and the policy are checked against the generation folder in
//! the ceremony) and prints its canonical hash as hex and PGP words, for the requester to give
//! the witnesses before the ceremony.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use ceremony::verify::{EntropyBasis, QuoteCheck};
use ceremony::verify_recovery;

const USAGE: &str = "usage: sherd-verify <ceremony-output-folder>\n       \
                     sherd-verify --recovery <recovery-folder> --generation <generation-folder> \
                     [--replaced <replace-card or reshare folder>]... [--files <folder with the signed files>]\n       \
                     (--replaced: every replace-card and reshare folder made since generation, in the order made)\n       \
                     sherd-verify --request-hash <request.toml>";

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if let [dir] = args.as_slice()
        && !dir.starts_with("--")
    {
        return generation(dir);
    }
    if let [flag, file] = args.as_slice()
        && flag == "--request-hash"
    {
        return request_hash(file);
    }
    let mut recovery = None;
    let mut generation = None;
    let mut files = None;
    let mut replaced: Vec<String> = Vec::new();
    let mut it = args.iter();
    while let Some(flag) = it.next() {
        if flag == "--replaced" {
            match it.next() {
                Some(value) => replaced.push(value.clone()),
                None => {
                    eprintln!("{USAGE}");
                    return ExitCode::from(2);
                }
            }
            continue;
        }
        let slot = match flag.as_str() {
            "--recovery" => &mut recovery,
            "--generation" => &mut generation,
            "--files" => &mut files,
            _ => {
                eprintln!("{USAGE}");
                return ExitCode::from(2);
            }
        };
        match it.next() {
            Some(value) if slot.is_none() => *slot = Some(value.clone()),
            _ => {
                eprintln!("{USAGE}");
                return ExitCode::from(2);
            }
        }
    }
    let (Some(recovery), Some(generation)) = (recovery, generation) else {
        eprintln!("{USAGE}");
        return ExitCode::from(2);
    };
    recovery_mode(&recovery, &generation, &replaced, files.as_deref())
}

fn recovery_mode(
    dir: &str,
    generation: &str,
    replaced: &[String],
    files: Option<&str>,
) -> ExitCode {
    let replaced_paths: Vec<&Path> = replaced.iter().map(Path::new).collect();
    let r = match verify_recovery::verify_recovery_dirs(
        Path::new(generation),
        &replaced_paths,
        Path::new(dir),
        files.map(Path::new),
    ) {
        Ok(r) => r,
        Err(e) => {
            println!("FAIL {dir}: {e}");
            return ExitCode::FAILURE;
        }
    };
    println!("PASS {dir}");
    println!("generation folder: {generation} (passes sherd-verify)");
    for (i, (folder, kind)) in replaced.iter().zip(&r.applied).enumerate() {
        println!(
            "replaced ({}):      {folder} (a {kind} recovery, passes against the folders before it)",
            i + 1
        );
    }
    println!("ceremony:          {}", r.ceremony_id);
    println!("root fingerprint:  {}", r.root_fingerprint);
    println!("generation hash:   {}", r.generation_final_hash);
    println!("generation words:  {}", r.generation_final_words);
    println!("operation:         {}", r.operation);
    println!("request hash:      {}", r.request_hash);
    println!("request words:     {}", r.request_words);
    println!("request time:      {}", r.request_time);
    println!("policy:            {}", r.policy);
    let holders: Vec<String> = r
        .holders
        .iter()
        .map(|(i, name)| format!("{i} ({name})"))
        .collect();
    println!(
        "holders used:      {} of threshold {}: {}",
        r.holders.len(),
        r.threshold,
        holders.join(", ")
    );
    for (i, line) in r.operation_lines.iter().enumerate() {
        let label = match (i, r.operation) {
            (0, ceremony::request::OperationKind::ReplaceCard) => "replaced:",
            (0, ceremony::request::OperationKind::Reshare) => "reshared:",
            (0, _) => "signatures:",
            _ => "",
        };
        println!("{label:<19}{line}");
    }
    println!(
        "outputs:           {} files checked: {}",
        r.outputs.len(),
        r.outputs.join(", ")
    );
    println!(
        "transcript:        {} records, signed by the root key",
        r.records
    );
    println!("final hash:        {}", r.final_hash);
    println!("final hash words:  {}", r.final_words);
    println!(
        "Compare the final hash words with those the witnesses wrote down at the recovery, and \
         the generation words with those of the generation ceremony."
    );
    ExitCode::SUCCESS
}

fn generation(dir: &str) -> ExitCode {
    let path = PathBuf::from(dir);
    if std::fs::read(path.join(ceremony::ceremony::paths::TRANSCRIPT))
        .is_ok_and(|t| verify_recovery::is_recovery_transcript(&t))
    {
        println!(
            "FAIL {dir}: a recovery folder (its transcript's record 1 is recovery.generation): \
             verify it against the generation folder it used, with sherd-verify --recovery {dir} \
             --generation <generation-folder>"
        );
        return ExitCode::FAILURE;
    }
    match ceremony::verify::verify_dir(&path) {
        Ok(r) => {
            println!("PASS {dir}");
            println!("ceremony:          {}", r.ceremony_id);
            println!("root fingerprint:  {}", r.root_fingerprint);
            println!("threshold:         {} of {}", r.threshold, r.count);
            println!("cards:             {}", r.cards);
            println!("plan hash:         {}", r.plan_hash);
            println!(
                "transcript:        {} records, signed by the root key",
                r.records
            );
            println!("files checked:     {}", r.files_checked);
            match &r.quote {
                QuoteCheck::Verified {
                    ak_name,
                    firmware,
                    ek_cert,
                } => {
                    println!(
                        "TPM quote:         verified: PCR 0-7 as recorded and the plan hash, \
                         signed by attestation key {ak_name}"
                    );
                    println!(
                        "                   (TPM firmware {firmware}; EK certificate {}; the \
                         key was made in the TPM during the ceremony: compare its name with the \
                         one recorded for this laptop, if any)",
                        if *ek_cert {
                            "recorded, not checked"
                        } else {
                            "none"
                        }
                    );
                }
                QuoteCheck::NotMade(why) => println!("TPM quote:         none ({why})"),
                QuoteCheck::Failed { ak_name, why } => println!(
                    "TPM quote:         FAILED ({why}); key {ak_name}; the witnesses recorded a \
                     deviation (below)"
                ),
                QuoteCheck::NotRecorded => println!("TPM quote:         not recorded"),
            }
            let e = &r.entropy;
            match e.basis {
                EntropyBasis::NotChecked => {
                    println!("entropy:           not checked (format 1 records are free text)")
                }
                basis => {
                    println!(
                        "entropy:           {} source(s) counted as independent hardware: {}",
                        e.counted.len(),
                        e.counted.join("; ")
                    );
                    if basis == EntropyBasis::CountsOnly {
                        println!(
                            "                   (no entropy.policy record: credit and virtual \
                             devices were not recorded, only counts checked)"
                        );
                    }
                    if e.virtual_allowed {
                        println!(
                            "                   VIRTUAL hardware allowed by the plan; counted \
                             virtual: {}",
                            if e.counted_virtual.is_empty() {
                                "none".to_string()
                            } else {
                                e.counted_virtual.join("; ")
                            }
                        );
                    }
                }
            }
            for (i, line) in r.boot.lines().iter().enumerate() {
                let label = if i == 0 { "boot:" } else { "" };
                println!("{label:<19}{line}");
            }
            println!("dual:              {}", r.dual.line());
            println!("{}", r.witnesses.line());
            println!("final hash:        {}", r.transcript_final_hash);
            println!("final hash words:  {}", r.transcript_final_words);
            println!("Compare the final hash words with those the witnesses wrote down.");
            ExitCode::SUCCESS
        }
        Err(e) => {
            println!("FAIL {dir}: {e}");
            ExitCode::FAILURE
        }
    }
}

/// Prints a request's canonical hash (docs/formats/request.md), or why the file is refused.
fn request_hash(file: &str) -> ExitCode {
    let text = match std::fs::read(file) {
        Ok(b) => match String::from_utf8(b) {
            Ok(t) => t,
            Err(_) => {
                println!("FAIL {file}: not UTF-8 text");
                return ExitCode::FAILURE;
            }
        },
        Err(e) => {
            println!("FAIL {file}: {e}");
            return ExitCode::FAILURE;
        }
    };
    match ceremony::request::Request::parse(&text) {
        Ok(r) => {
            println!("REQUEST {file}");
            println!("ceremony:          {}", r.ceremony_id);
            println!("root fingerprint:  {}", r.root_fingerprint.to_hex());
            println!("operation:         {}", r.operation.name());
            println!("request hash:      {}", r.hash_hex());
            println!("request hash words: {}", r.hash_words());
            println!(
                "Give the hash to every witness; the ceremony shows it for them to compare. Approvals sign the file's exact bytes, not this hash."
            );
            ExitCode::SUCCESS
        }
        Err(e) => {
            println!("FAIL {file}: {e}");
            ExitCode::FAILURE
        }
    }
}
