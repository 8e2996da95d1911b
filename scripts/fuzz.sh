#!/usr/bin/env bash
# Fuzzes the L4 parsers (crates/l4/fuzz): every target runs for SECONDS (default 20).
# Exits non-zero when any target finds a crash; the input that caused it is kept in
# crates/l4/fuzz/artifacts/<target>/. New corpus entries go to crates/l4/fuzz/corpus/
# (not committed); the committed seeds in crates/l4/fuzz/seeds/ are read too.
#
# cargo fuzz needs nightly features; RUSTC_BOOTSTRAP=1 unlocks them on stable. The
# sanitizer is off: the fuzzed code forbids unsafe, so AddressSanitizer would only slow
# the runs down; panics and failed invariants are what the targets catch.
set -euo pipefail
seconds="${1:-20}"
cd "$(dirname "$0")/../crates/l4"
export RUSTC_BOOTSTRAP=1
if ! cargo fuzz --version >/dev/null 2>&1; then
    cargo install cargo-fuzz --locked
fi
targets=$(cargo fuzz list)
failed=()
for target in $targets; do
    mkdir -p "fuzz/corpus/$target"
    echo "fuzzing $target for ${seconds}s"
    if ! cargo fuzz run --sanitizer none "$target" "$PWD/fuzz/corpus/$target" \
        "$PWD/fuzz/seeds/$target" -- -max_total_time="$seconds"; then
        failed+=("$target")
    fi
done
if ((${#failed[@]})); then
    echo "fuzzing found crashes in: ${failed[*]} (inputs in crates/l4/fuzz/artifacts/)" >&2
    exit 1
fi
echo "fuzzing found no crash in:" $targets
