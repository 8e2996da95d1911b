#!/usr/bin/env bash
# Runs the whole test suite: installs what is missing, checks formatting and lints, and
# runs every test. Tests start their own throwaway PostgreSQL and NATS on random ports.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
cargo fmt --all -- --check
cargo clippy --locked --workspace --all-targets -- -D warnings
cargo test --locked --workspace
# The parsers that read untrusted bytes first (ClientHello/SNI, PROXY v2), fuzzed briefly.
scripts/fuzz.sh "${FUZZ_SECONDS:-20}"
