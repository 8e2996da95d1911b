#!/usr/bin/env bash
# Installs the Debian packages Zeitwork and its tests need, when missing. Safe to run again.
#
#   scripts/setup.sh [EXTRA_PACKAGE...]
#
# Debian/Ubuntu only (apt-get). Uses sudo when not run as root. Packages are installed without
# their "Recommends" (e.g. qemu's GUI); pass any you want as extra arguments.
set -euo pipefail

packages=(
  postgresql       # private database for `zeitwork up` and tests
  nats-server      # notification bus
  qemu-system-x86  # microVMs (qemu driver, KVM or TCG)
  e2fsprogs        # mkfs.ext4 for root filesystems
  nftables         # instance network isolation
  docker-registry  # local OCI registry for tests
  buildah          # builds test images without a daemon
  skopeo           # copies images into the local registry
  mmdebstrap       # makes the builder guest from Debian's packages
  pebble           # ACME test server
  busybox-static   # a shell in test images (exec tests)
  iproute2         # taps, routes
  wireguard-tools  # `wg`: configures the overlay between nodes
  wireguard-go     # userspace WireGuard, for hosts without the kernel module
  dnsutils         # dig: the tests ask the GeoDNS server (`zeitwork server dns`)
  curl
  ca-certificates
  systemd          # systemd-analyze: the tests verify the units `zeitwork install` writes
  "$@"
)

if ! command -v dpkg >/dev/null || ! command -v apt-get >/dev/null; then
  echo "setup: this script needs a Debian-based system (dpkg, apt-get); install by hand: ${packages[*]}" >&2
  exit 1
fi

sudo=()
if [ "$(id -u)" -ne 0 ]; then
  if ! command -v sudo >/dev/null; then
    echo "setup: not root and sudo is missing: run this script as root" >&2
    exit 1
  fi
  sudo=(sudo)
fi

missing=()
for package in "${packages[@]}"; do
  status=$(dpkg -s "$package" 2>/dev/null || true)
  if ! grep -qx 'Status: install ok installed' <<<"$status"; then
    missing+=("$package")
  fi
done

if [ "${#missing[@]}" -eq 0 ]; then
  echo "setup: all ${#packages[@]} packages already installed"
else
  echo "setup: installing ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  "${sudo[@]}" apt-get update -qq
  "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
    -o Dpkg::Options::=--force-confdef -o Dpkg::Options::=--force-confold "${missing[@]}" >/dev/null
fi

if ! command -v cargo >/dev/null; then
  echo "setup: cargo not found: install Rust with rustup (https://rustup.rs), then open a new shell or run 'source \"\$HOME/.cargo/env\"'" >&2
  exit 1
fi
