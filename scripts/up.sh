#!/usr/bin/env bash
# Runs Zeitwork on this machine: installs what is missing, builds, and starts every role
# in one process (`zeitwork up`). Extra arguments go to `zeitwork up` (see --help).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
echo "building the dashboard …"
scripts/build-web.sh
echo "building zeitwork (release) …"
cargo build --release --locked -p zeitwork
# Binaries that run inside microVMs are static: the guest's init and the example app.
scripts/build-guest.sh
exec target/release/zeitwork up "$@"
