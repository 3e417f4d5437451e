#!/usr/bin/env bash
# The Debian 13 (trixie) root for the tests that drive libreswan 5.2 as Debian 13 ships
# it: pluto, ocf-tester and Pacemaker 3 run from it (see tests/debian-root.sh, which
# builds, caches and mounts it). Prints the root's path on stdout.
# `tests/debian13-root.sh --unmount` takes its mounts down again.
set -euo pipefail
cd -P "$(dirname "$0")"
[ "${1:-}" = --unmount ] && exec ./debian-root.sh trixie --unmount
# What the tests run from the root.
exec ./debian-root.sh trixie trixie libreswan iproute2 procps resource-agents \
  libxml2-utils hyperfine pacemaker pacemaker-cli-utils corosync pcs
