#!/usr/bin/env bash
# Fuzzes what the platform reads from clients first: the L4 parsers (crates/l4/fuzz:
# ClientHello/SNI, PROXY v2), the edge's express lane (crates/edge/fuzz: request heads
# must reach the instance framed as the client's were) and the DNS server's query path
# (crates/dns/fuzz: every query gets a well-formed answer). Every target runs for SECONDS
# (default 20). Exits non-zero when any target finds a crash; the input that caused it
# is kept in crates/<crate>/fuzz/artifacts/<target>/. New corpus entries go to
# crates/<crate>/fuzz/corpus/ (not committed); the committed seeds in
# crates/<crate>/fuzz/seeds/ are read too.
#
# Every crate's targets build into one target directory (target/fuzz), so their common
# dependencies are built once.
#
# cargo fuzz needs nightly features; RUSTC_BOOTSTRAP=1 unlocks them on stable. The
# sanitizer is off: the fuzzed code forbids unsafe, so AddressSanitizer would only slow
# the runs down; panics and failed invariants are what the targets catch.
set -euo pipefail
seconds="${1:-20}"
root="$(cd "$(dirname "$0")/.." && pwd)"
export RUSTC_BOOTSTRAP=1
if ! cargo fuzz --version >/dev/null 2>&1; then
    cargo install cargo-fuzz --locked
fi
failed=()
unbuilt=()
all=()
for crate in l4 edge dns; do
    cd "$root/crates/$crate"
    for target in $(cargo fuzz list); do
        all+=("$crate/$target")
        mkdir -p "fuzz/corpus/$target"
        if ! cargo fuzz build --sanitizer none --target-dir "$root/target/fuzz" "$target"; then
            unbuilt+=("$crate/$target")
            continue
        fi
        echo "fuzzing $crate/$target for ${seconds}s"
        if ! cargo fuzz run --sanitizer none --target-dir "$root/target/fuzz" "$target" "$PWD/fuzz/corpus/$target" \
            "$PWD/fuzz/seeds/$target" -- -max_total_time="$seconds"; then
            failed+=("$crate/$target")
        fi
    done
done
if ((${#unbuilt[@]})); then
    echo "fuzz targets that did not build: ${unbuilt[*]}" >&2
fi
if ((${#failed[@]})); then
    echo "fuzzing found crashes in: ${failed[*]} (inputs in crates/<crate>/fuzz/artifacts/)" >&2
fi
if ((${#failed[@]} + ${#unbuilt[@]})); then
    exit 1
fi
echo "fuzzing found no crash in: ${all[*]}"
