#!/usr/bin/env bash
# A Debian root with strongSwan's charon and swanctl, for the tests that drive charon over
# VICI: strongSwan cannot be installed beside libreswan (Debian's libreswan Conflicts:
# strongswan-libcharon), so charon runs from a root of its own (chroot) inside the tests'
# network namespaces. Usage: tests/strongswan-root.sh [bookworm|trixie]  (default
# bookworm: Debian 12's strongSwan 5.9; trixie: Debian 13's 6.0).
#
# Built once from the Debian registry and cached outside the clone (VIPSEC_ROOT_CACHE,
# default /var/lib/vipsec-tests), like tests/debian13-root.sh; /proc, /sys, /dev, /tmp and
# this checkout are bind-mounted at their own paths. Prints the root's path. Idempotent.
# `--unmount` as a second argument takes the mounts down again.
set -euo pipefail
cd "$(dirname "$0")/.."
REPO=$PWD
SUITE=${1:-bookworm}
case $SUITE in bookworm|trixie) ;; *) echo "strongswan-root: unknown suite $SUITE" >&2; exit 2 ;; esac
CACHE=${VIPSEC_ROOT_CACHE:-/var/lib/vipsec-tests}
ROOT=$CACHE/$SUITE-strongswan
MIRROR=${VIPSEC_DEBIAN_MIRROR:-http://deb.debian.org/debian}
# charon itself, swanctl (to compare with), the default plugin set (kernel-netlink,
# vici, pubkey, x509 ...), and what the tests run beside it.
PKGS=(strongswan-charon strongswan-swanctl libstrongswan-standard-plugins
      iproute2 procps)
STAMP=$ROOT/.vipsec-packages
if [ "${2:-}" = --unmount ]; then
  for d in "$REPO" /tmp /dev /sys /proc; do
    mountpoint -q "$ROOT$d" && umount -R "$ROOT$d"
  done
  exit 0
fi
say() { echo "strongswan-root: $*" >&2; }

if [ "$(cat "$STAMP" 2>/dev/null)" != "${PKGS[*]}" ]; then
  command -v debootstrap >/dev/null || {
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q debootstrap >&2; }
  t0=$(date +%s)
  if [ ! -x "$ROOT/usr/bin/apt-get" ]; then
    say "building a Debian $SUITE root with strongSwan in $ROOT (once; cached for later runs)"
    mkdir -p "$CACHE"
    new=$(mktemp -d "$CACHE/$SUITE-strongswan.XXXXXX")
    debootstrap --variant=minbase "$SUITE" "$new" "$MIRROR" >&2
    mv -T "$new" "$ROOT"
  fi
  mountpoint -q "$ROOT/proc" || mount -t proc proc "$ROOT/proc"
  printf '#!/bin/sh\nexit 101\n' > "$ROOT/usr/sbin/policy-rc.d"; chmod 0755 "$ROOT/usr/sbin/policy-rc.d"
  chroot "$ROOT" env DEBIAN_FRONTEND=noninteractive apt-get update -q >&2
  chroot "$ROOT" env DEBIAN_FRONTEND=noninteractive \
    apt-get install -y -q --no-install-recommends "${PKGS[@]}" >&2
  chroot "$ROOT" apt-get clean
  echo "${PKGS[*]}" > "$STAMP"
  say "root ready in $(( $(date +%s) - t0 )) s: strongSwan $(chroot "$ROOT" dpkg-query -W -f '${Version}' strongswan-charon)"
fi

bind() {
  mkdir -p "$ROOT$1"
  mountpoint -q "$ROOT$1" || mount --rbind "$1" "$ROOT$1"
  mount --make-rslave "$ROOT$1"
}
chmod 0755 "$ROOT"
mountpoint -q "$ROOT/proc" || mount -t proc proc "$ROOT/proc"
for d in /sys /dev /tmp "$REPO"; do bind "$d"; done
cp /etc/hosts "$ROOT/etc/hosts"
echo "$ROOT"
