#!/usr/bin/env bash
# Runs inside the guest (see run.sh): every scenario of the real-kernel lab, in one boot.
# Usage: guest.sh OUTDIR VIPSEC_BINARY. Writes OUTDIR/results.tsv, one row per scenario.
set -uo pipefail
OUT=$1
VIPSEC=$2
HERE=$(cd -P "$(dirname "$0")" && pwd -P)
REPO=$(cd -P "$HERE/../.." && pwd -P)
# shellcheck disable=SC1091
[ -f "$OUT/lab.env" ] && set -a && . "$OUT/lab.env" && set +a
T_START=$(date +%s.%N)
# shellcheck source=lib.sh
. "$HERE/lib.sh"
. "$HERE/vip.sh"
. "$HERE/mesh.sh"
. "$HERE/dnssec.sh"
. "$HERE/pacemaker.sh"
: > "$OUT/results.tsv"
# Every command the lab runs, with timestamps, for a failure's post-mortem.
if [ "${LAB_TRACE:-0}" = 1 ]; then
  exec {TRACE_FD}>"$OUT/trace.log"; BASH_XTRACEFD=$TRACE_FD; PS4='+ ${EPOCHREALTIME} '; set -x
fi
collect_logs() {
  cleanup_all
  local f
  for f in "$LAB"/*/pluto.log; do cp "$f" "$OUT/pluto-$(basename "$(dirname "$f")").log"; done
  for f in "$LAB"/*/charon/charon.log; do [ -f "$f" ] && cp "$f" "$OUT/charon-$(basename "$(dirname "$(dirname "$f")")").log"; done
  cp "$LAB"/*.log "$OUT/" 2>/dev/null || true
}
trap collect_logs EXIT

modprobe -a unix_diag esp4 esp6 xfrm_user xfrm4_tunnel xfrm6_tunnel authenc echainiv seqiv gcm aesni_intel veth bridge 2>/dev/null
grep -q '^esp4 ' /proc/modules || { echo "the guest kernel has no esp4 module" >&2; exit 1; }
rm -rf "$LAB"; mkdir -p "$LAB"
log "guest kernel $(uname -r), libreswan $(ipsec --version 2>/dev/null | head -1)"

bridge_up
host_add a 1; host_add b 2; host_add c 3; host_add d 4; host_add o 5
for h in a b c d o; do pluto_start "$h"; done
log "five hosts, five plutos"

ONLY=${LAB_ONLY:-all}
want() { [ "$ONLY" = all ] || want_named "$1"; }
want_named() { [[ " $ONLY " == *" $1 "* ]]; }

if want vip || want_named dpd || want_named fallback; then
  vip_setup
  scenario_vip_on_a
  scenario_failover
  [ "${LAB_STOP_AFTER:-}" = failover ] && exit 0
  scenario_fallback
  scenario_vip_monitor_truth
  scenario_failover_known
  scenario_node_loss_known
  # An unknown client after a node loss: back by its own dead peer detection alone.
  scenario_crash_failover
  vip_teardown
fi
if want mesh; then
  mesh_setup
  scenario_mesh_rollout
  scenario_mesh_require
  scenario_mesh_rekey
  scenario_mesh_monitor_truth
  mesh_teardown
fi
if want dnssec; then
  [ -s "$LAB/mesh.secret" ] || (umask 077; head -c 48 /dev/urandom > "$LAB/mesh.secret")
  scenario_dnssec
  scenario_vip_cert_names
  scenario_mesh_cert_names
  kill "$NAMED_PID" 2>/dev/null; wait "$NAMED_PID" 2>/dev/null || true
fi
# A real two-node Pacemaker cluster (A and B) moving the VIP and running the mesh clone
# (about 9 minutes under emulation, most of it pcs: a Python program, slow to start there).
if want pacemaker; then
  vip_setup
  if pcmk_setup; then
    scenario_pcmk_move
    scenario_pcmk_mesh
    scenario_pcmk_node_loss
  else
    printf '7 Pacemaker two-node cluster\tFAIL\t-\t-\t-\t0\tthe cluster did not form (see corosync-*.log, pacemaker-*.log)\n' >> "$OUT/results.tsv"
  fi
  pcmk_teardown
  vip_teardown
fi
# strongSwan's charon (from the root LAB_SSROOT), in this same boot: the VIP's tunnel on
# charon at A and B with C a libreswan client (known, clients=), a mixed mesh (B on
# charon, A and D on pluto) and a mesh all on charon, carrying ESP between every pair.
if [ -n "${LAB_SSROOT:-}" ] && [ -x "$LAB_SSROOT/usr/lib/ipsec/charon" ] && { want vip || want mesh || want_named strongswan; }; then
  if want vip || want_named strongswan; then
    if use_charon a && use_charon b; then
      SCEN_SUFFIX=" [strongSwan A, B]"
      vip_setup
      scenario_vip_on_a
      LAB_FAILOVER_RUNS=${LAB_FAILOVER_RUNS_SS:-3} scenario_failover_known
      vip_teardown
    else
      printf 'VIP on charon\tFAIL\t-\t-\t-\t0\tcharon did not start on A or B (see charon.out)\n' >> "$OUT/results.tsv"
    fi
    use_pluto a; use_pluto b
  fi
  if want mesh || want_named strongswan; then
    if use_charon b; then
      SCEN_SUFFIX=" [mixed: B strongSwan]"
      mesh_setup
      scenario_mesh_require
      mesh_teardown
    else
      printf 'mixed mesh\tFAIL\t-\t-\t-\t0\tcharon did not start on B (see charon.out)\n' >> "$OUT/results.tsv"
    fi
    # The whole mesh on charon.
    if use_charon a && use_charon d; then
      SCEN_SUFFIX=" [strongSwan A, B, D]"
      mesh_setup
      scenario_mesh_require
      mesh_teardown
    else
      printf 'mesh on charon\tFAIL\t-\t-\t-\t0\tcharon did not start on A or D (see charon.out)\n' >> "$OUT/results.tsv"
    fi
    use_pluto a; use_pluto b; use_pluto d
  fi
  SCEN_SUFFIX=""
fi
# The same VIP and mesh scenarios on another distribution's libreswan (Debian 13's 5.2),
# in this same boot: every pluto restarted from that root.
if [ -n "${LAB_ROOT5:-}" ] && [ -x "$LAB_ROOT5/usr/sbin/ipsec" ] && { want vip || want mesh || want_named libreswan5; }; then
  if use_distro_root "$LAB_ROOT5" "libreswan 5.2"; then
    # Three moves per failover scenario here (five on 4.10), and no node loss (2c): it
    # takes 2k's paths on this pluto, and the test command's time is bounded
    # (LAB_FULL5=1 runs it here too).
    LAB_FAILOVER_RUNS=${LAB_FAILOVER_RUNS_5:-3}
    if want vip || want_named libreswan5; then
      vip_setup
      scenario_vip_on_a
      scenario_failover
      scenario_fallback
      scenario_vip_monitor_truth
      scenario_failover_known
      [ "${LAB_FULL5:-0}" = 1 ] && scenario_node_loss_known
      vip_teardown
    fi
    if want mesh || want_named libreswan5; then
      mesh_setup
      scenario_mesh_rollout
      scenario_mesh_require
      scenario_mesh_rekey
      scenario_mesh_monitor_truth
      mesh_teardown
    fi
  else
    printf 'switch to %s\tFAIL\t-\t-\t-\t0\tplutos did not start from that root\n' "$LAB_ROOT5" >> "$OUT/results.tsv"
  fi
fi
log "done"

[ -s "$OUT/results.tsv" ] || { echo "no scenario ran" >&2; exit 1; }
