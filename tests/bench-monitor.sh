#!/usr/bin/env bash
# vipsec monitor against resource-agents' heartbeat/ipsec monitor, side by side in one
# run, against the same pluto and the same conn. heartbeat/ipsec only knows pluto's
# default control socket, so the run gets a private /run/pluto (mount namespace) and a
# private network namespace. hyperfine runs inside both, so no `ip netns exec` is timed.
set -euo pipefail
cd "$(dirname "$0")/.."
B=$PWD/target/release/vipsec
cargo build --release --locked --quiet
if [ "${1:-}" != inner ]; then
  exec unshare -m --propagation private "$0" inner
fi
mount -t tmpfs -o mode=0755 tmpfs /run/pluto 2>/dev/null || { mkdir -p /run/pluto; mount -t tmpfs -o mode=0755 tmpfs /run/pluto; }
NS=vbench$$; W=$(mktemp -d); VIP=192.0.2.10
cleanup() {
  ip netns exec $NS ipsec whack --shutdown >/dev/null 2>&1 || true
  [ -n "${PLUTO:-}" ] && { kill "$PLUTO" 2>/dev/null || true; wait "$PLUTO" 2>/dev/null || true; }
  ip netns del $NS 2>/dev/null || true; rm -rf "$W"
}
trap cleanup EXIT
ip netns add $NS; ip -n $NS link set lo up
ip -n $NS link add v0 type veth peer name v1; ip -n $NS link set v0 up; ip -n $NS link set v1 up
ip -n $NS addr add $VIP/24 dev v0
mkdir -p "$W/nss" "$W/ipsec.d" "$W/state"
ipsec initnss --nssdir "$W/nss" >/dev/null
printf 'conn rw\n\tleft=%s\n\tright=%%any\n\tauthby=secret\n\tikev2=yes\n\tauto=ignore\n' $VIP > "$W/ipsec.d/rw.conf"
printf 'config setup\n\tlogfile=%s/pluto.log\n' "$W" > "$W/ipsec.conf"; : > "$W/ipsec.secrets"
ip netns exec $NS ipsec pluto --nofork --config "$W/ipsec.conf" --rundir /run/pluto --nssdir "$W/nss" \
  --ipsecdir "$W/ipsec.d" --secretsfile "$W/ipsec.secrets" --logfile "$W/pluto.log" </dev/null >/dev/null 2>&1 &
PLUTO=$!
for _ in $(seq 100); do [ -S /run/pluto/pluto.ctl ] && break; sleep 0.05; done
export OCF_ROOT=/usr/lib/ocf OCF_RESOURCE_INSTANCE=bench OCF_RESKEY_tunnel=rw OCF_RESKEY_vip=$VIP \
  OCF_RESKEY_confdir=$W/ipsec.d OCF_RESKEY_CRM_meta_interval=10000 OCF_RESKEY_CRM_meta_timeout=20000 \
  HA_RSCTMP=$W/state VIPSEC_RUN_DIR=$W/run
AGENT=$W/ocf/ipsec; mkdir -p "$W/ocf"; ln -s "$B" "$AGENT"
ip netns exec $NS "$AGENT" start
HB=/usr/lib/ocf/resource.d/heartbeat/ipsec
for n in $(ip netns exec $NS "$HB" monitor; echo $?) $(ip netns exec $NS "$AGENT" monitor; echo $?); do
  [ "$n" = 0 ] || { echo "a monitor does not report running before the benchmark" >&2; exit 1; }
done
RUNS=${BENCH_RUNS:-200}
run() {  # run LABEL: one hyperfine run inside the namespace
  ip netns exec $NS hyperfine -N --warmup 10 --runs "$RUNS" --export-json "$W/$1.json" \
    -n "heartbeat/ipsec monitor" "$HB monitor" \
    -n "vipsec monitor (depth 0)" "$AGENT monitor" \
    -n "vipsec monitor (depth 10)" "env OCF_CHECK_LEVEL=10 $AGENT monitor" >/dev/null
}
run one
# A pluto holding 100 other conns as well (ipsec status grows with them; the kernel's
# view does not).
for i in $(seq 1 100); do
  printf 'conn other%d\n\tleft=%s\n\tright=198.51.100.%d\n\tauthby=secret\n\tikev2=yes\n\tauto=add\n' $i $VIP $i
done > "$W/others.conf"
ip netns exec $NS ipsec addconn --config "$W/others.conf" --autoall >/dev/null 2>&1 || \
  for i in $(seq 1 100); do ip netns exec $NS ipsec auto --config "$W/others.conf" --add other$i >/dev/null; done
loaded=$(ip netns exec $NS ipsec whack --status | grep -c '"other[0-9]*": ' || true)
[ "$loaded" -ge 100 ] || { echo "only $loaded of the 100 extra conns loaded" >&2; exit 1; }
run hundred
python3 - "$W/one.json" "$W/hundred.json" <<'PY'
import json, sys
rows = []
for label, path in (("1 conn", sys.argv[1]), ("101 conns", sys.argv[2])):
    r = {x["command"]: x["median"] for x in json.load(open(path))["results"]}
    hb = r["heartbeat/ipsec monitor"]
    for name in ("vipsec monitor (depth 0)", "vipsec monitor (depth 10)"):
        rows.append((label, name, r[name], hb))
print("| pluto holds | command | median | heartbeat/ipsec median | speed-up |")
print("|---|---|---|---|---|")
for label, name, v, hb in rows:
    print(f"| {label} | `{name}` | {v*1e3:.2f} ms | {hb*1e3:.2f} ms | {hb/v:.1f}× |")
PY
