//! A stick's first sectors come from outside (under UEFI the image reads the boot stick's GPT to
//! find its EFI system partition and where the image ends): any bytes, with any claimed disk
//! size, must parse or be refused, never panic; what parses stays inside the disk. The same input
//! also goes to the UEFI PCR 4 reading of an event log.
#![no_main]

use heads_config::{eventlog, uefi};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((len, rest)) = data.split_first_chunk::<8>() else {
        return;
    };
    let disk_len = u64::from_le_bytes(*len);
    if let Ok(g) = sherd_media::gpt::parse(rest, disk_len) {
        assert!(g.image_len() <= disk_len);
        for p in &g.partitions {
            assert!(p.first_lba <= p.last_lba && p.last_lba < g.alternate_lba);
        }
    }
    if let Ok(log) = eventlog::parse(rest) {
        let p = uefi::pcr4(&log.events, &[0; 32]);
        assert!(p.applications.len() <= log.events.len());
    }
});
