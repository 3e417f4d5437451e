#!/usr/bin/env bash
# Installs what the tests need on a fresh Debian 12 machine (run as root); `deps.sh demo`
# only what the demo needs (libreswan and the tools it shows traffic with).
# Idempotent and quick when everything is already there.
set -euo pipefail
PROFILE=${1:-tests}
PKGS=(libreswan resource-agents libxml2-utils pacemaker pacemaker-cli-utils corosync pcs
      iproute2 util-linux hyperfine procps python3 rpm man-db gzip
      bind9 bind9-utils bind9-dnsutils dns-root-data
      # the real-kernel lab (tests/lab): a kernel to boot, the emulator, traffic tools
      linux-image-amd64 qemu-system-x86 busybox-static iputils-ping iputils-arping
      netcat-openbsd tcpdump bc)
[ "$PROFILE" = demo ] && PKGS=(libreswan iproute2 tcpdump iputils-ping bc)
missing=()
for p in "${PKGS[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "installing: ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -q
  apt-get install -y -q --no-install-recommends "${missing[@]}"
fi
command -v cargo >/dev/null || { echo "cargo is required (rustup)" >&2; exit 1; }
[ "$PROFILE" = demo ] && exit 0
# The package builders, from crates.io (a few minutes the first time).
for tool in cargo-deb cargo-generate-rpm; do
  command -v "$tool" >/dev/null || cargo install --locked --quiet "$tool"
done
# virtme-ng boots the kernel over this machine's root filesystem (tests/lab/run.sh).
command -v vng >/dev/null || python3 -m pip install --quiet virtme-ng==1.42
