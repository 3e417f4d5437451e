#!/usr/bin/env bash
# vipsec monitor against resource-agents' heartbeat/ipsec monitor, side by side in one
# run, against the same pluto and the same conn, with pluto holding 1, 101 and 1,001 conns.
# heartbeat/ipsec only knows pluto's default control socket, so the run gets a private
# /run/pluto (mount namespace) and a private network namespace. hyperfine runs inside
# both, so no `ip netns exec` is timed.
# BENCH_ROOT=DIR runs pluto, both agents and hyperfine from that root (chroot), e.g. the
# Debian 13 root of tests/debian13-root.sh for libreswan 5.2 and its resource-agents.
set -euo pipefail
cd -P "$(dirname "$0")/.."
B=$PWD/target/release/vipsec
cargo build --release --locked --quiet
if [ "${1:-}" != inner ]; then
  exec unshare -m --propagation private "$0" inner
fi
R=${BENCH_ROOT:-}
IN=""; [ -n "$R" ] && IN="chroot $R"
mkdir -p "$R/run/pluto"
mount -t tmpfs -o mode=0755 tmpfs "$R/run/pluto"
NS=vbench$$; W=$(mktemp -d); VIP=192.0.2.10
X() { ip netns exec $NS $IN "$@"; }   # inside the namespace, from the root
cleanup() {
  X ipsec whack --shutdown >/dev/null 2>&1 || true
  [ -n "${PLUTO:-}" ] && { kill "$PLUTO" 2>/dev/null || true; wait "$PLUTO" 2>/dev/null || true; }
  ip netns del $NS 2>/dev/null || true; rm -rf "$W"
}
trap cleanup EXIT
ip netns add $NS; ip -n $NS link set lo up
ip -n $NS link add v0 type veth peer name v1; ip -n $NS link set v0 up; ip -n $NS link set v1 up
ip -n $NS addr add $VIP/24 dev v0
mkdir -p "$W/nss" "$W/ipsec.d" "$W/state"
$IN ipsec initnss --nssdir "$W/nss" >/dev/null
printf 'conn rw\n\tleft=%s\n\tright=%%any\n\tauthby=secret\n\tikev2=yes\n\tauto=ignore\n' $VIP > "$W/ipsec.d/rw.conf"
printf 'config setup\n\tlogfile=%s/pluto.log\n' "$W" > "$W/ipsec.conf"; : > "$W/ipsec.secrets"
X ipsec pluto --nofork --config "$W/ipsec.conf" --rundir /run/pluto --nssdir "$W/nss" \
  --ipsecdir "$W/ipsec.d" --secretsfile "$W/ipsec.secrets" --logfile "$W/pluto.log" </dev/null >/dev/null 2>&1 &
PLUTO=$!
for _ in $(seq 100); do [ -S "$R/run/pluto/pluto.ctl" ] && break; sleep 0.05; done
VERSION=$(X ipsec --version | awk '{print $2}')
export OCF_ROOT=/usr/lib/ocf OCF_RESOURCE_INSTANCE=bench OCF_RESKEY_tunnel=rw OCF_RESKEY_vip=$VIP \
  OCF_RESKEY_confdir=$W/ipsec.d OCF_RESKEY_CRM_meta_interval=10000 OCF_RESKEY_CRM_meta_timeout=20000 \
  HA_RSCTMP=$W/state
# The agent runs from a copy under /tmp (bound in a root at the same path), whatever
# the checkout's path or its target directory is.
AGENT=$W/ocf/ipsec; mkdir -p "$W/ocf"; cp "$B" "$W/vipsec"; ln -s "$W/vipsec" "$AGENT"
X "$AGENT" start
HB=/usr/lib/ocf/resource.d/heartbeat/ipsec
for n in $(X "$HB" monitor; echo $?) $(X "$AGENT" monitor; echo $?) \
         $(X env OCF_CHECK_LEVEL=10 "$AGENT" monitor; echo $?); do
  [ "$n" = 0 ] || { echo "a monitor does not report running before the benchmark" >&2; exit 1; }
done
run() {  # run LABEL RUNS: one hyperfine run inside the namespace
  X hyperfine -N --warmup 5 --runs "$2" --export-json "$W/$1.json" \
    -n "heartbeat/ipsec monitor" "$HB monitor" \
    -n "vipsec monitor (depth 0)" "$AGENT monitor" \
    -n "vipsec monitor (depth 10)" "env OCF_CHECK_LEVEL=10 $AGENT monitor" >/dev/null
}
# Other conns beside rw (ipsec status grows with them; the kernel's view does not).
others() {  # others FROM TO: load conns otherFROM..otherTO in one batch
  for i in $(seq "$1" "$2"); do
    printf 'conn other%d\n\tleft=%s\n\tright=2001:db8:%x::1\n\tauthby=secret\n\tauto=add\n' $i $VIP $i
  done > "$W/others.conf"
  X ipsec addconn --ctlsocket /run/pluto/pluto.ctl --config "$W/others.conf" --autoall >/dev/null 2>&1 || true
  local loaded
  loaded=$(X ipsec whack --status | grep -c '"other[0-9]*": ' || true)
  [ "$loaded" -ge "$2" ] || { echo "only $loaded of the $2 extra conns loaded" >&2; exit 1; }
}
RUNS=${BENCH_RUNS:-200}
run one "$RUNS"
others 1 100;    run hundred "$RUNS"
others 101 1000; run thousand $(( RUNS / 4 > 10 ? RUNS / 4 : 10 ))
python3 - "$VERSION" "$W/one.json" "$W/hundred.json" "$W/thousand.json" <<'PY'
import json, sys
version = sys.argv[1]
print(f"| libreswan | pluto holds | command | median | heartbeat/ipsec median | speed-up |")
print("|---|---|---|---|---|---|")
for label, path in (("1 conn", sys.argv[2]), ("101 conns", sys.argv[3]), ("1,001 conns", sys.argv[4])):
    r = {x["command"]: x["median"] for x in json.load(open(path))["results"]}
    hb = r["heartbeat/ipsec monitor"]
    for name in ("vipsec monitor (depth 0)", "vipsec monitor (depth 10)"):
        v = r[name]
        print(f"| {version} | {label} | `{name}` | {v*1e3:.2f} ms | {hb*1e3:.2f} ms | {hb/v:.1f}× |")
PY
