#!/usr/bin/env bash
# Builds the binaries that run inside microVMs, static: the guest init (`zeitwork-init`)
# and the bundled example app (`hello`). They go to target/<host triple>/release/, which a
# plain `cargo build` never writes, so building the workspace again cannot replace them
# with dynamically linked ones (the agent refuses a dynamic init at start).
set -euo pipefail
cd "$(dirname "$0")/.."
triple=$(rustc -vV | sed -n 's/^host: //p')
for target in "zeitwork-init zeitwork-init" "zeitwork-example-hello hello"; do
  read -r package bin <<<"$target"
  cargo rustc --release --locked -q -p "$package" --bin "$bin" --target "$triple" \
    -- -C target-feature=+crt-static
done
echo "static guest binaries in target/$triple/release/"
