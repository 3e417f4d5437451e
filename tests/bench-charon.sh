#!/usr/bin/env bash
# vipsec monitor with ike=strongswan, depth 0 and 10, against a charon holding 1 and
# 1,001 conns (the VIP's generated conn, plus others loaded by swanctl); then
# ocf:vipsec:mesh start and monitor with 10, 100 and 1,000 peers on a fresh charon, as
# tests/bench-mesh.sh measures them on pluto. Charon, swanctl,
# the agent and hyperfine run from a strongSwan root (tests/strongswan-root.sh) inside a
# private network namespace, so no `ip netns exec` is timed. tests/bench.sh runs it in
# the same run as the pluto figures (tests/bench-monitor.sh).
# Usage: BENCH_ROOT=$(tests/strongswan-root.sh bookworm) tests/bench-charon.sh
set -euo pipefail
cd -P "$(dirname "$0")/.."
R=${BENCH_ROOT:?BENCH_ROOT must name a strongSwan root (tests/strongswan-root.sh)}
cargo build --release --locked --quiet
NS=vcbench$$; W=$(mktemp -d /tmp/vipsec-bench.XXXXXX); VIP=192.0.2.10
chmod 0755 "$W"
X() { ip netns exec $NS chroot "$R" "$@"; }
cleanup() {
  cat "$W/prep.err" 2>/dev/null | tail -3 >&2 || true
  charon_stop
  ip netns del $NS 2>/dev/null || true; rm -rf "$W"
}
trap cleanup EXIT
ip netns add $NS; ip -n $NS link set lo up
ip -n $NS link add v0 type veth peer name v1; ip -n $NS link set v0 up; ip -n $NS link set v1 up
ip -n $NS addr add $VIP/24 dev v0
SOCK=$W/charon.vici
cat > "$W/strongswan.conf" <<EOF
charon {
  install_routes = no
  filelog { log { path = $W/charon.log
    default = 0 } }
  plugins { vici { socket = unix://$SOCK } }
}
EOF
# charon takes about a minute to shut down after the 1,000-peer mesh (its IKE SAs toward
# peers that never answer): three seconds' grace, then it is killed.
charon_stop() {
  [ -n "${CHARON:-}" ] || return 0
  kill "$CHARON" 2>/dev/null || true
  for _ in $(seq 30); do kill -0 "$CHARON" 2>/dev/null || break; sleep 0.1; done
  kill -9 "$CHARON" 2>/dev/null || true; wait "$CHARON" 2>/dev/null || true
  CHARON=
}
charon_start() {
  rm -f "$SOCK"
  ip netns exec $NS sh -c 'mount -t tmpfs run "$0/run" && exec chroot "$0" env STRONGSWAN_CONF="$1" /usr/lib/ipsec/charon' \
    "$R" "$W/strongswan.conf" </dev/null >/dev/null 2>&1 &
  CHARON=$!
  for _ in $(seq 200); do [ -S "$SOCK" ] && break; sleep 0.05; done
  [ -S "$SOCK" ] || { echo "charon did not open $SOCK" >&2; exit 1; }
}
charon_start
VERSION=$(X swanctl --version --uri "unix://$SOCK" 2>/dev/null | awk '/strongSwan/ {print $NF; exit}')
cp target/release/vipsec "$W/vipsec"; mkdir -p "$W/ocf" "$W/state" "$W/run"
ln -s "$W/vipsec" "$W/ocf/ipsec"; AGENT=$W/ocf/ipsec
head -c 32 /dev/urandom | base64 > "$W/psk"; chmod 0600 "$W/psk"
export OCF_ROOT=/usr/lib/ocf OCF_RESOURCE_INSTANCE=bench OCF_RESKEY_tunnel=rw OCF_RESKEY_vip=$VIP \
  OCF_RESKEY_ike=strongswan OCF_RESKEY_vicisocket=$SOCK OCF_RESKEY_auth=psk OCF_RESKEY_psk_file=$W/psk \
  OCF_RESKEY_CRM_meta_interval=10000 OCF_RESKEY_CRM_meta_timeout=20000 \
  HA_RSCTMP=$W/state
run() {  # run LABEL RUNS: one hyperfine run inside the namespace
  for depth in 0 10; do
    X env OCF_CHECK_LEVEL=$depth "$AGENT" monitor 2>/dev/null \
      || { echo "monitor (depth $depth) does not report running" >&2; exit 1; }
  done
  X hyperfine -N --warmup 5 --runs "$2" --export-json "$W/$1.json" \
    -n "vipsec monitor (depth 0)" "$AGENT monitor" \
    -n "vipsec monitor (depth 10)" "env OCF_CHECK_LEVEL=10 $AGENT monitor" >/dev/null 2>&1
}
RUNS=${BENCH_RUNS:-200}
X "$AGENT" start 2>/dev/null
run one "$RUNS"
# 1,000 other conns, loaded by swanctl as a user's configuration would be. (swanctl
# --load-conns unloads what its file does not name: vipsec's conn goes, so start again.)
{ echo "connections {"
  for i in $(seq 1 1000); do
    printf '  other%d { local_addrs = %s\n    remote_addrs = 198.51.100.%d\n    local { auth = psk }\n    remote { auth = psk }\n    children { other%d { mode = transport } } }\n' \
      "$i" "$VIP" $(( i % 250 + 1 )) "$i"
  done
  echo "}"; } > "$W/swanctl.conf"
X swanctl --load-conns --uri "unix://$SOCK" --file "$W/swanctl.conf" >/dev/null 2>&1
X "$AGENT" stop 2>/dev/null; X "$AGENT" start 2>/dev/null
loaded=$(X swanctl --list-conns --uri "unix://$SOCK" 2>/dev/null | grep -c '^other[0-9]*: ' || true)
[ "$loaded" -ge 1000 ] || { echo "only $loaded of the 1000 other conns loaded" >&2; exit 1; }
run thousand "$RUNS"
python3 - "$VERSION" "$W/one.json" "$W/thousand.json" <<'PY'
import json, sys
version = sys.argv[1]
print("| strongSwan | charon holds | command | median | mean ± σ |")
print("|---|---|---|---|---|")
for label, path in (("1 conn", sys.argv[2]), ("1,001 conns", sys.argv[3])):
    for r in json.load(open(path))["results"]:
        print(f"| {version} | {label} | `{r['command']}` | {r['median']*1e3:.2f} ms | {r['mean']*1e3:.2f} ± {r['stddev']*1e3:.2f} ms |")
PY

# The mesh, on a fresh charon (policy=use, the default, as tests/bench-mesh.sh: on charon
# its conns are negotiated at load, so start also sets off one IKE_SA_INIT per peer).
charon_stop
charon_start
ip -n $NS addr add 2001:db8::1/64 dev v0 nodad
(umask 077; head -c 48 /dev/urandom > "$W/master.key")
echo
echo "| strongSwan | peers | start (median of 3) | monitor (median of 20) |"
echo "|---|---|---|---|"
for n in ${BENCH_MESH_SIZES:-10 100 1000}; do
  peers="2001:db8::1"; for i in $(seq 2 $((n + 1))); do peers="$peers 2001:db8::$(printf %x $((i + 0x100)))"; done
  printf '#!/bin/sh\nexport HA_RSCTMP=%s\nexec %s mesh "$@" --instance bench --peers "%s" --secret_file %s --ike strongswan --vicisocket %s\n' \
    "$W/mstate" "$W/vipsec" "$peers" "$W/master.key" "$SOCK" > "$W/m.sh"
  chmod +x "$W/m.sh"
  X "$W/m.sh" start >/dev/null 2>"$W/err" || { cat "$W/err" >&2; exit 1; }
  X "$W/m.sh" stop >/dev/null 2>"$W/err" || { cat "$W/err" >&2; exit 1; }
  X hyperfine -N --runs 3 --prepare "sh -c '$W/m.sh stop 2>>$W/prep.err'" --export-json "$W/start.json" "$W/m.sh start" >/dev/null 2>"$W/err" || { cat "$W/err" >&2; exit 1; }
  X "$W/m.sh" start >/dev/null 2>&1
  X hyperfine -N -i --warmup 2 --runs 20 --export-json "$W/mon.json" "$W/m.sh monitor" >/dev/null 2>&1
  loaded=$(X swanctl --list-conns --uri "unix://$SOCK" 2>/dev/null | grep -c '^vm-' || true)
  [ "$loaded" -ge "$n" ] || { echo "only $loaded of $n conns loaded" >&2; exit 1; }
  X "$W/m.sh" stop >/dev/null 2>&1
  python3 - "$VERSION" "$n" "$W/start.json" "$W/mon.json" <<'PY'
import json, sys
s = json.load(open(sys.argv[3]))["results"][0]["median"]
m = json.load(open(sys.argv[4]))["results"][0]["median"]
print(f"| {sys.argv[1]} | {sys.argv[2]} | {s:.2f} s | {m*1e3:.1f} ms |")
PY
done
