#!/usr/bin/env bash
# Whole-process wall time of the hot paths, measured with hyperfine on the release build.
# Prints a table of medians; README quotes it.
set -euo pipefail
cd -P "$(dirname "$0")/.."
B=$PWD/target/release/vipsec
cargo build --release --locked --quiet
W=$(mktemp -d); trap 'rm -rf "$W"' EXIT
mkdir -p "$W/state" "$W/ipsec.d"
printf 'conn rw\n\tleft=127.0.0.1\n\tright=%%any\n' > "$W/ipsec.d/rw.conf"
export HA_RSCTMP=$W/state
RUNS=${BENCH_RUNS:-300}
hyperfine -N -i --warmup 20 --runs "$RUNS" --export-json "$W/foundation.json" \
  -n "/bin/true (process start-up floor)" "/bin/true" \
  -n "vipsec meta-data" "$B meta-data" \
  -n "vipsec vip (VIP-only check)" "$B vip --vip 127.0.0.1" \
  -n "vipsec monitor (stopped resource)" "$B monitor --tunnel rw --vip 127.0.0.1 --confdir $W/ipsec.d" \
  >/dev/null
echo "| command | median | mean ± σ |"
echo "|---|---|---|"
python3 - "$W/foundation.json" <<'PY'
import json, sys
for r in json.load(open(sys.argv[1]))["results"]:
    print(f"| `{r['command']}` | {r['median']*1e3:.2f} ms | {r['mean']*1e3:.2f} ± {r['stddev']*1e3:.2f} ms |")
PY

echo
echo "monitor against resource-agents' heartbeat/ipsec, same pluto, same conn (libreswan 4.10, Debian 12):"
./tests/bench-monitor.sh
echo
echo "the same on Debian 13 (libreswan 5.2 and its resource-agents, from the Debian 13 root):"
BENCH_ROOT=$(./tests/debian13-root.sh) ./tests/bench-monitor.sh
echo
echo "vipsec monitor with ike=strongswan (charon from the strongSwan roots), beside the above:"
for suite in bookworm trixie; do
  BENCH_ROOT=$(./tests/strongswan-root.sh "$suite") ./tests/bench-charon.sh
done


echo
echo "ocf:vipsec:mesh start and monitor by number of peers:"
./tests/bench-mesh.sh
