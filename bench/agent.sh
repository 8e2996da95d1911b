#!/usr/bin/env bash
# Agent benchmark: commit-to-reaction latency of scale changes through the listener, NATS
# and the node agent (plus commit-to-healthy). Needs root. Prints a Markdown table.
set -euo pipefail
cd "$(dirname "$0")/.."
echo "machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs), $(uname -r)"
cargo bench -q -p zeitwork-e2e --bench agent
