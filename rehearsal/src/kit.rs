//! Throwaway holders for rehearsals and tests: personal keys and a plan naming them. Real
//! holders bring their own certificates and never give their secret keys to anyone.

use ceremony::openpgp::Cert;
use ceremony::openpgp::cert::{CertBuilder, CipherSuite};
use ceremony::openpgp::serialize::SerializeInto;
use std::time::{Duration, UNIX_EPOCH};

/// The demo ceremony's time (the plan's `time`), 2026-11-24T09:00:00Z.
pub const TIME_UNIX: u64 = 1_795_510_800;
pub const TIME_RFC3339: &str = "2026-11-24T09:00:00Z";
pub const WITNESSES: [&str; 2] = ["Wendy Witness", "Walter Witness"];

/// A throwaway personal key (Cv25519) for holder `name`, secret parts included.
pub fn personal_key(name: &str) -> Cert {
    CertBuilder::general_purpose([format!("{name} <{}@holders.invalid>", name.to_lowercase())])
        .set_cipher_suite(CipherSuite::Cv25519)
        .set_creation_time(UNIX_EPOCH + Duration::from_secs(TIME_UNIX - 30 * 86_400))
        .set_validity_period(None)
        .generate()
        .expect("generating a throwaway personal key")
        .0
}

fn armored(bytes: Vec<u8>) -> String {
    String::from_utf8(bytes).expect("armor is ASCII")
}

/// The secret key, armored (for the holder's own files in a rehearsal).
pub fn armored_secret(k: &Cert) -> String {
    armored(k.as_tsk().armored().to_vec().expect("armoring"))
}

/// A plan: holders `names` (one card each), threshold `m`, each holder's backup the next;
/// virtual entropy devices allowed (a demo or test plan, never a real one).
pub fn plan_text(id: &str, m: usize, names: &[String], personal: &[Cert]) -> String {
    let head = format!(
        "# A demo plan with throwaway holders, made by sherd's rehearsal kit.\n\
         # It runs in QEMU or on a host under a hypervisor, whose entropy devices are virtual:\n\
         # allow_virtual_hardware lets them count, and every page then says so.\n\
         format = \"sherd-plan/1\"\nceremony_id = \"{id}\"\ntime = {TIME_RFC3339}\nthreshold = {m}\n\
         allow_virtual_hardware = true\n\n"
    );
    head + &people("", names, personal)
}

/// A reshare request's `[reshare]` table (docs/formats/request.md) for holders `names` (one
/// card each, backup the next, threshold `m`, virtual entropy devices allowed) and the demo
/// witnesses: the new plan a rehearsal or test reshares to. Append it to a request's head.
pub fn reshare_table(m: usize, names: &[String], personal: &[Cert]) -> String {
    format!(
        "[reshare]\nthreshold = {m}\nallow_virtual_hardware = true\n\n{}",
        people("reshare.", names, personal)
    )
}

/// The `[[holder]]` and `[[witness]]` tables, each table name prefixed with `prefix`.
fn people(prefix: &str, names: &[String], personal: &[Cert]) -> String {
    let mut t = String::new();
    let n = names.len();
    for i in 0..n {
        let public = armored(
            personal[i]
                .clone()
                .strip_secret_key_material()
                .armored()
                .to_vec()
                .expect("armoring"),
        );
        t.push_str(&format!(
            "[[{prefix}holder]]\nname = \"{}\"\nbackup = \"{}\"\ncards = 1\ncerts = ['''\n{public}''']\n\n",
            names[i],
            names[(i + 1) % n]
        ));
    }
    for w in WITNESSES {
        t.push_str(&format!("[[{prefix}witness]]\nname = \"{w}\"\n\n"));
    }
    t
}
