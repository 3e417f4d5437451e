#!/usr/bin/env bash
# A Debian root for the tests that run another distribution's daemons (chroot, inside the
# tests' network namespaces, with the vipsec built here: glibc is backward compatible).
# Usage: tests/debian-root.sh NAME SUITE PACKAGE...   (builds or reuses the root NAME)
#        tests/debian-root.sh NAME --unmount          (takes its mounts down again: do that
#                                                      before removing the cache, or rm
#                                                      would follow them)
# Built once from the Debian registry (debootstrap --variant=minbase, then apt-get inside
# it: some packages cannot go in debootstrap's --include, they depend on virtual ones)
# and cached outside the clone, so a second run reuses it: VIPSEC_ROOT_CACHE (default
# /var/lib/vipsec-tests; not /var/cache, which the lab's guest covers with a tmpfs). A
# changed package list installs again. Then made usable: /proc, /sys, /dev, /tmp and this
# checkout are bind-mounted at their own paths, so a path means the same inside and out.
# Prints the root's path on stdout. Idempotent. tests/debian13-root.sh and
# tests/strongswan-root.sh name the roots the suite uses.
set -euo pipefail
cd -P "$(dirname "$0")/.."
# The physical path: cargo names the binaries it builds by it (getcwd resolves symlinks).
REPO=$(pwd -P)
NAME=$1; shift
CACHE=${VIPSEC_ROOT_CACHE:-/var/lib/vipsec-tests}
ROOT=$CACHE/$NAME
MIRROR=${VIPSEC_DEBIAN_MIRROR:-http://deb.debian.org/debian}
if [ "${1:-}" = --unmount ]; then
  for d in "$REPO" /tmp /dev /sys /proc; do
    mountpoint -q "$ROOT$d" && umount -R "$ROOT$d"
  done
  exit 0
fi
SUITE=$1; shift
PKGS=("$@")
STAMP=$ROOT/.vipsec-packages
say() { echo "debian-root ($NAME): $*" >&2; }

if [ "$(cat "$STAMP" 2>/dev/null)" != "${PKGS[*]}" ]; then
  command -v debootstrap >/dev/null || {
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q debootstrap >&2; }
  t0=$(date +%s)
  if [ ! -x "$ROOT/usr/bin/apt-get" ]; then
    say "building a Debian $SUITE root in $ROOT (once; cached for later runs)"
    mkdir -p "$CACHE"
    # A new directory each time, never removed: a root may have mounts under it.
    new=$(mktemp -d "$CACHE/$NAME.XXXXXX")
    debootstrap --variant=minbase "$SUITE" "$new" "$MIRROR" >&2
    mv -T "$new" "$ROOT"
  fi
  mountpoint -q "$ROOT/proc" || mount -t proc proc "$ROOT/proc"
  # Daemons must not start inside the root while packages install.
  printf '#!/bin/sh\nexit 101\n' > "$ROOT/usr/sbin/policy-rc.d"; chmod 0755 "$ROOT/usr/sbin/policy-rc.d"
  chroot "$ROOT" env DEBIAN_FRONTEND=noninteractive apt-get update -q >&2
  chroot "$ROOT" env DEBIAN_FRONTEND=noninteractive \
    apt-get install -y -q --no-install-recommends "${PKGS[@]}" >&2
  chroot "$ROOT" apt-get clean
  echo "${PKGS[*]}" > "$STAMP"
  say "root ready in $(( $(date +%s) - t0 )) s"
fi

bind() {  # bind SRC at the same path inside the root
  mkdir -p "$ROOT$1"
  mountpoint -q "$ROOT$1" || mount --rbind "$1" "$ROOT$1"
  mount --make-rslave "$ROOT$1"
}
# mktemp made the root 0700 (also in roots cached by earlier runs): Pacemaker's daemons
# and ocf-tester run in it as other users too.
chmod 0755 "$ROOT"
mountpoint -q "$ROOT/proc" || mount -t proc proc "$ROOT/proc"
for d in /sys /dev /tmp "$REPO"; do bind "$d"; done
# Same name resolution as the host (tests use literal addresses and 127.0.0.1).
cp /etc/hosts "$ROOT/etc/hosts"
echo "$ROOT"
