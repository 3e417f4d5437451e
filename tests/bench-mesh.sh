#!/usr/bin/env bash
# ocf:vipsec:mesh start and monitor with 10, 100 and 1,000 peers (IPv6 documentation
# addresses on one link; pluto running; no peer answers). Prints a table of medians.
set -euo pipefail
cd -P "$(dirname "$0")/.."
cargo build --release --locked --quiet
B=$PWD/target/release/vipsec
NS=vbmesh$$; W=$(mktemp -d)
cleanup() {
  cat "$W/prep.err" 2>/dev/null | tail -3 >&2 || true
  ip netns exec $NS ipsec whack --ctlsocket "$W/run/pluto.ctl" --shutdown >/dev/null 2>&1 || true
  [ -n "${PLUTO:-}" ] && { kill "$PLUTO" 2>/dev/null || true; wait "$PLUTO" 2>/dev/null || true; }
  ip netns del $NS 2>/dev/null || true; rm -rf "$W"
}
trap cleanup EXIT
ip netns add $NS; ip -n $NS link set lo up
ip -n $NS link add v0 type veth peer name v1; ip -n $NS link set v0 up; ip -n $NS link set v1 up
ip -n $NS addr add 2001:db8::1/64 dev v0 nodad
mkdir -p "$W/run" "$W/nss" "$W/ipsec.d" "$W/state"
ipsec initnss --nssdir "$W/nss" >/dev/null
printf 'config setup\n\tlogfile=%s/pluto.log\n' "$W" > "$W/ipsec.conf"
echo "include $W/ipsec.d/*.secrets" > "$W/ipsec.secrets"
ip netns exec $NS ipsec pluto --nofork --config "$W/ipsec.conf" --rundir "$W/run" --nssdir "$W/nss" \
  --ipsecdir "$W/ipsec.d" --secretsfile "$W/ipsec.secrets" --logfile "$W/pluto.log" </dev/null >/dev/null 2>&1 &
PLUTO=$!
for _ in $(seq 100); do [ -S "$W/run/pluto.ctl" ] && break; sleep 0.05; done
(umask 077; head -c 48 /dev/urandom > "$W/master.key")
echo "| peers | start (median of 3) | monitor (median of 20) |"
echo "|---|---|---|"
for n in ${BENCH_MESH_SIZES:-10 100 1000}; do
  peers="2001:db8::1"; for i in $(seq 2 $((n + 1))); do peers="$peers 2001:db8::$(printf %x $((i + 0x100)))"; done
  printf '#!/bin/sh\nexport HA_RSCTMP=%s\nexec %s mesh "$@" --instance bench --peers "%s" --secret_file %s --confdir %s --ctlsocket %s\n' \
    "$W/state" "$B" "$peers" "$W/master.key" "$W/ipsec.d" "$W/run/pluto.ctl" > "$W/m.sh"
  chmod +x "$W/m.sh"
  ip netns exec $NS "$W/m.sh" start >/dev/null 2>"$W/err" || { cat "$W/err" >&2; exit 1; }
  ip netns exec $NS "$W/m.sh" stop >/dev/null 2>"$W/err" || { cat "$W/err" >&2; exit 1; }
  ip netns exec $NS hyperfine -N --runs 3 --prepare "sh -c '$W/m.sh stop 2>>$W/prep.err'" --export-json "$W/start.json" "$W/m.sh start" >/dev/null 2>"$W/err" || { cat "$W/err" >&2; exit 1; }
  ip netns exec $NS "$W/m.sh" start >/dev/null 2>&1
  ip netns exec $NS hyperfine -N -i --warmup 2 --runs 20 --export-json "$W/mon.json" "$W/m.sh monitor" >/dev/null 2>&1
  loaded=$(ip netns exec $NS ipsec whack --ctlsocket "$W/run/pluto.ctl" --status | grep -c '"vm-2001-db8--[0-9a-f]*": ' || true)
  [ "$loaded" -ge "$n" ] || { echo "only $loaded of $n conns loaded" >&2; exit 1; }
  ip netns exec $NS "$W/m.sh" stop >/dev/null 2>&1
  python3 - "$n" "$W/start.json" "$W/mon.json" <<'PY'
import json, sys
s = json.load(open(sys.argv[2]))["results"][0]["median"]
m = json.load(open(sys.argv[3]))["results"][0]["median"]
print(f"| {sys.argv[1]} | {s:.2f} s | {m*1e3:.1f} ms |")
PY
done
