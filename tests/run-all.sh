#!/usr/bin/env bash
# The whole test suite, on a fresh Debian 12 machine, as root: installs its own packages,
# builds, runs every test (unit, namespaces + pluto, Pacemaker tools), then the benchmark.
set -euo pipefail
cd -P "$(dirname "$0")/.."
[ "$(id -u)" = 0 ] || { echo "run as root: the tests create network namespaces" >&2; exit 1; }
./tests/deps.sh
# The roots other distributions' daemons run from (Debian 13's libreswan 5.2, charon 5.9
# and 6.0) are built the first time while cargo compiles: mostly downloads and unpacking,
# they would otherwise add about 4 minutes to a fresh machine's run.
mkdir -p target
( ./tests/debian13-root.sh && ./tests/strongswan-root.sh bookworm && ./tests/strongswan-root.sh trixie ) \
  > /dev/null 2> target/roots.log &
roots=$!
cargo build --release --locked
./packaging/build.sh
cargo test --locked --no-run
wait "$roots" || { tail -30 target/roots.log >&2; echo "run-all: building the test roots failed (target/roots.log)" >&2; exit 1; }
VIPSEC_REQUIRE_PACKAGES=1 cargo test --locked --no-fail-fast 2>&1 | tee target/test-output.txt
# The tests that drive pluto (and Pacemaker), again against Debian 13's libreswan 5.2 and
# Pacemaker 3.0, run from a Debian 13 root (built once, cached outside the clone).
ROOT=$(./tests/debian13-root.sh)
VIPSEC_TEST_ROOT=$ROOT VIPSEC_REQUIRE_PACKAGES=1 cargo test --locked --no-fail-fast \
  --test vip_lifecycle --test mesh --test ocf_tools --test pacemaker 2>&1 \
  | sed -u 's/^test result:/test result (libreswan 5.2):/' | tee target/test-output-debian13.txt
# strongSwan's charon over VICI, and both agents with ike=strongswan (one mesh node on
# the host's pluto), from roots of their own (charon cannot be installed beside
# libreswan): Debian 12's 5.9 and Debian 13's 6.0 (built once, cached outside the clone).
for suite in bookworm trixie; do
  SSROOT=$(./tests/strongswan-root.sh "$suite")
  VIPSEC_STRONGSWAN_ROOT=$SSROOT cargo test --locked --no-fail-fast --test vici --test strongswan_agents 2>&1 \
    | sed -u "s/^test result:/test result (strongSwan, $suite):/" | tee "target/test-output-strongswan-$suite.txt"
  grep -q '^test result (strongSwan, [a-z]*): ok\.' "target/test-output-strongswan-$suite.txt"
done
./tests/bench.sh
# Real ESP: the lab boots Debian's kernel under emulation (this kernel has no ESP).
./tests/lab/run.sh | tee target/lab-output.txt
# One closing line for the whole run.
passed=$(grep -Eo '^test result: ok\. [0-9]+ passed' target/test-output.txt | awk '{s+=$4} END {print s+0}')
passed5=$(grep -Eo '^test result \(libreswan 5.2\): ok\. [0-9]+ passed' target/test-output-debian13.txt | awk '{s+=$6} END {print s+0}')
passed_ss=$(cat target/test-output-strongswan-*.txt | grep -Eo '^test result \(strongSwan, [a-z]+\): ok\. [0-9]+ passed' | awk '{s+=$6} END {print s+0}')
lab=$(grep -Eo '^lab: [0-9]+/[0-9]+ scenarios passed' target/lab-output.txt | awk '{print $2}')
echo "$passed passed on libreswan $(ipsec --version | awk '{print $2}') (host), $passed5 on libreswan 5.2 (Debian 13 root), $passed_ss against strongSwan 5.9 and 6.0 (VICI), 0 failed; real-kernel lab: $lab scenarios passed"
