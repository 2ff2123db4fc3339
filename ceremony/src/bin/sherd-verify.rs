#![forbid(unsafe_code)]
//! `sherd-verify <folder>`: checks a sherd ceremony's output folder offline and prints PASS with
//! the values to compare against the witnesses' notes, or FAIL with the first problem.

use std::path::PathBuf;
use std::process::ExitCode;

use ceremony::verify::{EntropyBasis, QuoteCheck};

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [dir] = args.as_slice() else {
        eprintln!("usage: sherd-verify <ceremony-output-folder>");
        return ExitCode::from(2);
    };
    match ceremony::verify::verify_dir(&PathBuf::from(dir)) {
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
