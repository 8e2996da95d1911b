#!/usr/bin/env bash
# Runs the whole test suite: installs what is missing, checks formatting and lints, and
# runs every test. Tests start their own throwaway PostgreSQL and NATS on random ports.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh python3-pip chromium
# A STAND-IN for S3 (no real S3 is reachable here): moto's S3-API server, from PyPI.
if ! command -v moto_server >/dev/null; then
  echo "test: installing moto (S3 stand-in for the registry's s3 storage test)"
  python3 -m pip install --quiet 'moto[server]' 2>/dev/null \
    || python3 -m pip install --quiet --break-system-packages 'moto[server]'
fi
# The dashboard: its build (embedded in the operator the tests run) and its unit tests.
scripts/build-web.sh test
# The schema-driven API fuzzer (crates/e2e/tests/api_fuzz.rs), from PyPI.
if ! command -v schemathesis >/dev/null; then
  echo "test: installing schemathesis (API fuzzer)"
  python3 -m pip install --quiet 'schemathesis==4.32.5' 2>/dev/null \
    || python3 -m pip install --quiet --break-system-packages 'schemathesis==4.32.5'
fi
cargo fmt --all -- --check
cargo clippy --locked --workspace --all-targets -- -D warnings
cargo test --locked --workspace
echo "test: $(df -h --output=avail . | tail -1 | tr -d ' ') of disk left after the tests"
# The parsers that read untrusted bytes first (ClientHello/SNI, PROXY v2), fuzzed briefly.
scripts/fuzz.sh "${FUZZ_SECONDS:-20}"
