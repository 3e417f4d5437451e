#!/usr/bin/env bash
# A Debian root with strongSwan's charon, for the tests that drive charon over VICI:
# strongSwan cannot be installed beside libreswan (Debian's libreswan Conflicts:
# strongswan-libcharon), so charon runs from a root of its own (chroot) inside the tests'
# network namespaces. Built, cached and mounted by tests/debian-root.sh.
# Usage: tests/strongswan-root.sh [bookworm|trixie] [--unmount]  (default bookworm:
# Debian 12's strongSwan 5.9; trixie: Debian 13's 6.0). Prints the root's path.
set -euo pipefail
cd -P "$(dirname "$0")"
SUITE=${1:-bookworm}
case $SUITE in bookworm|trixie) ;; *) echo "strongswan-root: unknown suite $SUITE" >&2; exit 2 ;; esac
[ "${2:-}" = --unmount ] && exec ./debian-root.sh "$SUITE-strongswan" --unmount
# charon itself, swanctl (to compare with), the default plugin set (kernel-netlink,
# vici, pubkey, x509 ...), and what the tests run beside it: ocf-tester (resource-agents),
# xmllint, hyperfine, and Pacemaker with pcs for the cluster test.
exec ./debian-root.sh "$SUITE-strongswan" "$SUITE" strongswan-charon strongswan-swanctl \
  libstrongswan-standard-plugins iproute2 procps resource-agents libxml2-utils \
  hyperfine pacemaker pacemaker-cli-utils corosync pcs
