#!/usr/bin/env bash
# vipsec monitor with ike=strongswan, depth 0 and 10, against a charon holding 1 and
# 1,001 conns (the VIP's generated conn, plus others loaded by swanctl). Charon, swanctl,
# the agent and hyperfine run from a strongSwan root (tests/strongswan-root.sh) inside a
# private network namespace, so no `ip netns exec` is timed. tests/bench.sh runs it in
# the same run as the pluto figures (tests/bench-monitor.sh).
# Usage: BENCH_ROOT=$(tests/strongswan-root.sh bookworm) tests/bench-charon.sh
set -euo pipefail
cd "$(dirname "$0")/.."
R=${BENCH_ROOT:?BENCH_ROOT must name a strongSwan root (tests/strongswan-root.sh)}
cargo build --release --locked --quiet
NS=vcbench$$; W=$(mktemp -d /tmp/vipsec-bench.XXXXXX); VIP=192.0.2.10
chmod 0755 "$W"
X() { ip netns exec $NS chroot "$R" "$@"; }
cleanup() {
  [ -n "${CHARON:-}" ] && { kill "$CHARON" 2>/dev/null || true; wait "$CHARON" 2>/dev/null || true; }
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
ip netns exec $NS sh -c 'mount -t tmpfs run "$0/run" && exec chroot "$0" env STRONGSWAN_CONF="$1" /usr/lib/ipsec/charon' \
  "$R" "$W/strongswan.conf" </dev/null >/dev/null 2>&1 &
CHARON=$!
for _ in $(seq 200); do [ -S "$SOCK" ] && break; sleep 0.05; done
[ -S "$SOCK" ] || { echo "charon did not open $SOCK" >&2; exit 1; }
VERSION=$(X swanctl --version --uri "unix://$SOCK" 2>/dev/null | awk '/strongSwan/ {print $NF; exit}')
cp target/release/vipsec "$W/vipsec"; mkdir -p "$W/ocf" "$W/state" "$W/run"
ln -s "$W/vipsec" "$W/ocf/ipsec"; AGENT=$W/ocf/ipsec
head -c 32 /dev/urandom | base64 > "$W/psk"; chmod 0600 "$W/psk"
export OCF_ROOT=/usr/lib/ocf OCF_RESOURCE_INSTANCE=bench OCF_RESKEY_tunnel=rw OCF_RESKEY_vip=$VIP \
  OCF_RESKEY_ike=strongswan OCF_RESKEY_vicisocket=$SOCK OCF_RESKEY_auth=psk OCF_RESKEY_psk_file=$W/psk \
  OCF_RESKEY_CRM_meta_interval=10000 OCF_RESKEY_CRM_meta_timeout=20000 \
  HA_RSCTMP=$W/state VIPSEC_RUN_DIR=$W/run
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
