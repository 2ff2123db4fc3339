#!/bin/sh
# Build and run every fuzz target of PID 1's parsers (kernel command line, console keys) for
# SECONDS each with the pinned toolchain. Exits non-zero on the first crash.
set -eu
secs=${1:?usage: init/fuzz/run.sh SECONDS}
cd "$(dirname "$0")/.."
export RUSTC_BOOTSTRAP=1
command -v cargo-fuzz >/dev/null 2>&1 || cargo install cargo-fuzz --locked
for target in $(cargo fuzz list); do
    mkdir -p "fuzz/corpus/$target"
    echo "== fuzzing $target for ${secs}s"
    cargo fuzz run "$target" "fuzz/corpus/$target" -- -max_total_time="$secs" -max_len=4096
done
