#!/usr/bin/env bash
# Runs Zeitwork on this machine: installs what is missing, builds, and starts every role
# in one process (`zeitwork up`). Extra arguments go to `zeitwork up` (see --help).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
echo "building zeitwork (release) …"
cargo build --release --locked -p zeitwork
# Binaries that run inside microVMs are static: the guest's init and the example app.
for target in "zeitwork-init zeitwork-init" "zeitwork-example-hello hello"; do
  read -r package bin <<<"$target"
  cargo rustc --release --locked -q -p "$package" --bin "$bin" -- -C target-feature=+crt-static
done
exec target/release/zeitwork up "$@"
