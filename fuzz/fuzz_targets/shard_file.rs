#![no_main]
// The shard file parser (TOML, armor, certificates, messages) must refuse, never panic.
use ceremony::shardfile::ShardFile;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data)
        && let Ok(file) = ShardFile::parse(text)
    {
        // What was accepted serializes and parses again to the same shares.
        let again = ShardFile::parse(&file.to_toml()).expect("re-parse of own output");
        assert_eq!(again.shares.len(), file.shares.len());
    }
});
