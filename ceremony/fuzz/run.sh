#!/bin/sh
# Build and run every fuzz target of the ceremony crate for SECONDS each, with the pinned
# toolchain (RUSTC_BOOTSTRAP=1 lets it take the sanitizer flags). Seeds from seeds/<target>/
# start each corpus. Exits non-zero on the first crash.
set -eu
secs=${1:?usage: ceremony/fuzz/run.sh SECONDS}
cd "$(dirname "$0")/.."
export RUSTC_BOOTSTRAP=1
command -v cargo-fuzz >/dev/null 2>&1 || cargo install cargo-fuzz --locked
for target in $(cargo fuzz list); do
    mkdir -p "fuzz/corpus/$target"
    if [ -d "fuzz/seeds/$target" ]; then
        cp -n fuzz/seeds/"$target"/* "fuzz/corpus/$target/" 2>/dev/null || true
    fi
    echo "== fuzzing $target for ${secs}s"
    cargo fuzz run "$target" "fuzz/corpus/$target" -- -max_total_time="$secs" -max_len=65536
done
