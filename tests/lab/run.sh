#!/usr/bin/env bash
# The real-kernel lab: boots Debian's own kernel under QEMU (software emulation, via
# virtme-ng) over this machine's root filesystem and runs tests/lab/guest.sh in it: the
# vipsec binary, real pluto processes and real ESP in network namespaces. Prints the
# summary table; exits non-zero if any scenario failed or the lab could not run.
# Usage: tests/lab/run.sh [vip|mesh|dnssec|pacemaker|strongswan|libreswan5 ...]   (default: all scenarios)
set -euo pipefail
cd -P "$(dirname "$0")/../.."
REPO=$PWD
die() { echo "lab: $*" >&2; exit 1; }
[ "$(id -u)" = 0 ] || die "run as root"
KERNEL=$(ls /boot/vmlinuz-*-amd64 2>/dev/null | sort -V | tail -1 || true)
[ -n "$KERNEL" ] || die "no kernel in /boot (apt-get install linux-image-amd64); the lab cannot run"
command -v qemu-system-x86_64 >/dev/null || die "qemu-system-x86_64 missing (apt-get install qemu-system-x86)"
command -v vng >/dev/null || die "virtme-ng missing (pip install virtme-ng==1.42)"
# The guest sees this machine's files, but virtme-ng covers these with empty tmpfs.
case "$REPO/" in
  /run/*|/var/tmp/*|/var/log/*|/var/cache/*|/var/lib/apt/*|/var/lib/private/*|/var/lib/machines/*)
    die "the guest cannot see a checkout under $REPO (virtme-ng puts an empty tmpfs there); clone it elsewhere" ;;
esac
BIN=$REPO/target/release/vipsec
[ -x "$BIN" ] || cargo build --release --locked
# Debian 13's libreswan 5.2: the VIP and mesh scenarios run again from its root, in the
# same boot (LAB_ROOT5=none: the guest's own libreswan only).
LAB_ROOT5=${LAB_ROOT5:-$("$REPO/tests/debian13-root.sh")}
[ "$LAB_ROOT5" = none ] && LAB_ROOT5=
export LAB_ROOT5
# strongSwan's charon (Debian 12's 5.9.8, from its own root): the VIP and a mixed mesh
# on it, in the same boot (LAB_SSROOT=none: skipped).
LAB_SSROOT=${LAB_SSROOT:-$("$REPO/tests/strongswan-root.sh" bookworm)}
[ "$LAB_SSROOT" = none ] && LAB_SSROOT=
export LAB_SSROOT

OUT=$(mktemp -d /tmp/vipsec-lab-out.XXXXXX)
ONLY=${*:-all}
echo "lab: booting $(basename "$KERNEL") under emulation; results in $OUT"
t0=$(date +%s)
rc=0
# /dev/kvm exists here but does not work: software emulation only.
# The guest gets the lab's knobs (LAB_*, CLIENT_*) through a file: vng passes no environment.
{ echo "LAB_ONLY='$ONLY'"; env | grep -E '^(LAB|CLIENT)_[A-Z0-9_]+=' | sed -E "s/=(.*)/='\\1'/" || true; } > "$OUT/lab.env"
timeout "${LAB_TIMEOUT:-3600}" vng --run "$KERNEL" --disable-kvm --cpus 2 --memory 2G --rwdir="$OUT" \
  --exec "bash $REPO/tests/lab/guest.sh $OUT $BIN" > "$OUT/guest.log" 2>&1 || rc=$?
secs=$(( $(date +%s) - t0 ))
[ "${LAB_VERBOSE:-0}" = 1 ] && cat "$OUT/guest.log"
if [ ! -s "$OUT/results.tsv" ]; then
  tail -40 "$OUT/guest.log" >&2
  die "the guest produced no results (exit $rc)"
fi
printf '\n%-48s %-6s %9s %6s %6s %6s\n' scenario result outage_s esp clear secs
awk -F'\t' '{printf "%-48s %-6s %9s %6s %6s %6s\n", $1, $2, $3, $4, $5, $6; if ($7 != "") printf "    %s\n", $7}' "$OUT/results.tsv"
failed=$(awk -F'\t' '$2 != "pass"' "$OUT/results.tsv" | wc -l)
total=$(wc -l < "$OUT/results.tsv")
echo "lab: $((total - failed))/$total scenarios passed in ${secs} s (boot included); guest log: $OUT/guest.log"
[ "$rc" = 0 ] || { tail -20 "$OUT/guest.log" >&2; die "the guest exited with $rc"; }
[ "$failed" = 0 ] || exit 1
