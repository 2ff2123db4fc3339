#![forbid(unsafe_code)]
//! `sherd-verify <folder>`: checks a sherd ceremony's output folder offline and prints PASS with
//! the values to compare against the witnesses' notes, or FAIL with the first problem.

use std::path::PathBuf;
use std::process::ExitCode;

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
