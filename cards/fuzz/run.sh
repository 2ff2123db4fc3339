#!/bin/sh
# Build and run every fuzz target of the cards crate for SECONDS each (pinned toolchain,
# RUSTC_BOOTSTRAP for the sanitizer flags). Exits non-zero on the first crash.
set -eu
secs=${1:?usage: cards/fuzz/run.sh SECONDS}
cd "$(dirname "$0")/.."
export RUSTC_BOOTSTRAP=1
command -v cargo-fuzz >/dev/null 2>&1 || cargo install cargo-fuzz --locked
for target in $(cargo fuzz list); do
    echo "== fuzzing $target for ${secs}s"
    cargo fuzz run "$target" -- -max_total_time="$secs" -max_len=4096
done
