#!/usr/bin/env bash
# MicroVM benchmarks: launch-to-healthy vs bare QEMU, memory per idle instance, rootfs
# build time. Needs root (taps, nftables, cgroups). Prints a Markdown table.
set -euo pipefail
cd "$(dirname "$0")/.."
echo "machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs), $(uname -r)"
cargo bench -q -p zeitwork-e2e --bench vm
