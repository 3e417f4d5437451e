#!/usr/bin/env bash
# The whole test suite, on a fresh Debian 12 machine, as root: installs its own packages,
# builds, runs every test (unit, namespaces + pluto, Pacemaker tools), then the benchmark.
set -euo pipefail
cd "$(dirname "$0")/.."
[ "$(id -u)" = 0 ] || { echo "run as root: the tests create network namespaces" >&2; exit 1; }
./tests/deps.sh
cargo build --release --locked
./packaging/build.sh
VIPSEC_REQUIRE_PACKAGES=1 cargo test --locked --no-fail-fast 2>&1 | tee target/test-output.txt
./tests/bench.sh
# Real ESP: the lab boots Debian's kernel under emulation (this kernel has no ESP).
./tests/lab/run.sh | tee target/lab-output.txt
# One closing line for the whole run.
passed=$(grep -Eo '^test result: ok\. [0-9]+ passed' target/test-output.txt | awk '{s+=$4} END {print s+0}')
lab=$(grep -Eo '^lab: [0-9]+/[0-9]+ scenarios passed' target/lab-output.txt | awk '{print $2}')
echo "$passed passed, 0 failed; real-kernel lab: $lab scenarios passed"
