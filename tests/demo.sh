#!/usr/bin/env bash
# The main job, on a fresh Debian 12 machine, as root: two cluster "nodes" (A, B) and a
# client (C) as network namespaces on one bridge, each with its own pluto. The VIP lives
# on A, vipsec starts the road-warrior tunnel there; then the VIP moves to B the way
# Pacemaker moves it (stop on A, address moved, start on B), and B brings C back itself
# (C is a known client: clients=). Prints what vipsec reports. On a kernel with ESP, C
# pings the VIP across the move and the demo counts ESP and clear-text packets on the
# wire; on one without (this machine's), it says so and shows the control plane
# (tests/lab shows traffic on a real kernel under emulation).
set -euo pipefail
cd -P "$(dirname "$0")/.."
[ "$(id -u)" = 0 ] || { echo "run as root: the demo creates network namespaces" >&2; exit 1; }
./tests/deps.sh demo
cargo build --release --locked 2>&1 | tail -1
B=$PWD/target/release/vipsec
VIP=192.0.2.100
W=$(mktemp -d /tmp/vipsec-demo.XXXXXX)
PIDS=()
cleanup() {
  for n in a b c; do
    ip netns exec vdemo-$n ipsec whack --ctlsocket "$W/$n/run/pluto.ctl" --shutdown >/dev/null 2>&1 || true
  done
  for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; wait "$p" 2>/dev/null || true; done
  for n in a b c sw; do ip netns del vdemo-$n 2>/dev/null || true; done
  [ -n "${PING_PID:-}" ] && { kill "$PING_PID" 2>/dev/null || true; }
  [ -n "${CAP_PID:-}" ] && { kill "$CAP_PID" 2>/dev/null || true; }
  rm -rf "$W"
}
trap cleanup EXIT
step() { printf '\n\033[1m== %s\033[0m\n' "$*"; }
show() { printf '$ %s\n' "$*"; "$@" || printf '(exit code %s)\n' "$?"; }

step "three hosts on one bridge: A=192.0.2.1 B=192.0.2.2 C=192.0.2.3"
ip netns add vdemo-sw; ip -n vdemo-sw link add br0 type bridge; ip -n vdemo-sw link set br0 up
i=1
for n in a b c; do
  ip netns add vdemo-$n; ip -n vdemo-$n link set lo up
  ip link add eth0 netns vdemo-$n type veth peer name p$n netns vdemo-sw
  ip -n vdemo-sw link set p$n master br0; ip -n vdemo-sw link set p$n up
  ip -n vdemo-$n link set eth0 up; ip -n vdemo-$n addr add 192.0.2.$i/24 dev eth0
  i=$((i+1))
done

# Can this kernel carry ESP? One throw-away SA in C's namespace tells.
ESP_OK=no
modprobe -q -a esp4 xfrm_user 2>/dev/null || true
if ip -n vdemo-c xfrm state add src 192.0.2.3 dst 192.0.2.1 proto esp spi 0x1000 \
     aead 'rfc4106(gcm(aes))' 0x0102030405060708090a0b0c0d0e0f1011121314 128 mode transport 2>/dev/null; then
  ESP_OK=yes; ip -n vdemo-c xfrm state flush
  echo "this kernel carries ESP: the demo shows C's pings crossing the move, encrypted"
else
  echo "this kernel has no ESP (ip xfrm state add ... proto esp fails): the demo shows the"
  echo "control plane (IKE); tests/lab/run.sh boots a kernel that carries the traffic"
fi

step "one pluto per host, each with its own rundir, NSS db, ipsec.d and secrets"
for n in a b c; do
  d=$W/$n; mkdir -p "$d/run" "$d/nss" "$d/ipsec.d"
  ipsec initnss --nssdir "$d/nss" >/dev/null
  # Like the stock /etc/ipsec.secrets: pick up every *.secrets file of ipsec.d.
  (umask 077; echo "include $d/ipsec.d/*.secrets" > "$d/ipsec.secrets")
  printf 'config setup\n\tlogfile=%s/pluto.log\n' "$d" > "$d/ipsec.conf"
  ip netns exec vdemo-$n ipsec pluto --nofork --config "$d/ipsec.conf" --rundir "$d/run" \
    --nssdir "$d/nss" --ipsecdir "$d/ipsec.d" --secretsfile "$d/ipsec.secrets" \
    --logfile "$d/pluto.log" </dev/null >/dev/null 2>&1 &
  PIDS+=($!)
done
for n in a b c; do
  for _ in $(seq 100); do [ -S "$W/$n/run/pluto.ctl" ] && break; sleep 0.05; done
done
echo "pluto running in vdemo-a, vdemo-b, vdemo-c"
# The cluster nodes need no conn file: vipsec generates the road-warrior conn from its
# parameters (auth=psk). The key lives in a 0600 file; vipsec hands it to pluto.
(umask 077; printf 'demo-only-key-not-a-secret-0123456789abcdef' > "$W/psk")
HEX=$(od -An -tx1 "$W/psk" | tr -d ' \n')
# The client C: an ordinary libreswan conn toward the VIP, same key.
# Fail-closed (nothing to the VIP leaves in clear while no SA carries it).
printf 'conn tovip\n\tleft=192.0.2.3\n\tleftid=@client.demo\n\tright=%s\n\trightid=%s\n\tauthby=secret\n\tikev2=insist\n\ttype=transport\n\tike=aes_gcm256-sha2_256-dh19\n\tesp=aes_gcm256\n\tfailureshunt=drop\n\tnegotiationshunt=hold\n\tauto=ignore\n' "$VIP" "$VIP" > "$W/c/ipsec.d/tovip.conf"
(umask 077; echo "@client.demo $VIP : PSK 0x$HEX" > "$W/c/ipsec.d/tovip.secrets")
ip netns exec vdemo-c ipsec whack --ctlsocket "$W/c/run/pluto.ctl" --rereadsecrets >/dev/null
ip netns exec vdemo-c ipsec auto --ctlsocket "$W/c/run/pluto.ctl" --config "$W/c/ipsec.d/tovip.conf" --add tovip >/dev/null
client_up() {  # C negotiates with whoever holds the VIP; prints the IKE SA it got
  # Forget the VIP's old MAC, as IPaddr2's gratuitous ARP makes real clients do.
  ip -n vdemo-c neigh flush all
  ip netns exec vdemo-c ipsec whack --ctlsocket "$W/c/run/pluto.ctl" --name tovip --terminate >/dev/null 2>&1 || true
  ip netns exec vdemo-c ipsec whack --ctlsocket "$W/c/run/pluto.ctl" --name tovip --initiate --asynchronous >/dev/null
  for _ in $(seq 100); do
    ip netns exec vdemo-$1 ipsec whack --ctlsocket "$W/$1/run/pluto.ctl" --showstates | grep ESTABLISHED_IKE_SA >/dev/null && break
    sleep 0.2
  done
  echo "IKE SA on node ${1^^}, seen by its pluto:"
  ip netns exec vdemo-$1 ipsec whack --ctlsocket "$W/$1/run/pluto.ctl" --showstates | grep ESTABLISHED_IKE_SA || echo "(none)"
  echo "(this kernel has no ESP: the Child SA cannot be installed here; tests/lab shows traffic)"
}

node() {  # node a|b ACTION...: the agent, by hand, on that node
  local n=$1; shift
  HA_RSCTMP=$W/$n/state ip netns exec vdemo-$n "$B" "$@" \
    --instance "vip-tunnel-$n" --tunnel rw --vip $VIP --confdir "$W/$n/ipsec.d" --ctlsocket "$W/$n/run/pluto.ctl" \
    --auth psk --psk_file "$W/psk" --peer_id @client.demo --clients 192.0.2.3 \
    --dnssec off  # no signed zone in the demo
}

step "before the VIP exists: monitor on A and B (7 = cleanly stopped)"
show node a monitor
show node b monitor
step "the VIP appears on A (Pacemaker's IPaddr2 would do this)"
show ip -n vdemo-a addr add $VIP/24 dev eth0
show ip netns exec vdemo-a "$B" vip --vip $VIP
show ip netns exec vdemo-b "$B" vip --vip $VIP
step "start on B is refused: the VIP is not there"
show node b start
step "start on A, then monitor"
show node a start
show node a monitor --json
echo "pluto on A now:"
ip netns exec vdemo-a ipsec whack --ctlsocket "$W/a/run/pluto.ctl" --status | grep -E '"rw":     (un)?oriented|UDP 192.0.2.100:500'
echo "the conn vipsec generated on A (in its private run directory):"; cat /run/vipsec/vipsec-vip-tunnel-a.conf
step "client C connects to the VIP"
client_up a

step "failover: stop on A, VIP moved to B, start on B (B initiates toward C: clients=192.0.2.3)"
if [ $ESP_OK = yes ]; then
  ip netns exec vdemo-c ping -D -i 0.1 -W 1 $VIP > "$W/ping.log" 2>&1 & PING_PID=$!
  ip netns exec vdemo-c tcpdump -U -n -i eth0 -Q out -w "$W/c.pcap" host $VIP >/dev/null 2>&1 & CAP_PID=$!
  sleep 1
fi
t0=$(date +%s.%N)
show node a stop
show ip -n vdemo-a addr del $VIP/24 dev eth0
show ip -n vdemo-b addr add $VIP/24 dev eth0
show node b start
t1=$(date +%s.%N)
show node b monitor
echo "the conns B generated: the road-warrior conn and C's own (clients=):"
grep '^conn ' /run/vipsec/vipsec-vip-tunnel-b.conf
ip -n vdemo-c neigh flush all   # what IPaddr2's gratuitous ARP makes real clients do
step "client C is back: B initiated toward it (C did nothing)"
for _ in $(seq 100); do
  ip netns exec vdemo-c ipsec whack --ctlsocket "$W/c/run/pluto.ctl" --showstates | grep ESTABLISHED_IKE_SA >/dev/null && break
  sleep 0.05
done
t2=$(date +%s.%N)
echo "C's IKE SA with the VIP, now on B, $(printf %.2f "$(echo "$t2 - $t1" | bc)") s after B's start returned:"
ip netns exec vdemo-c ipsec whack --ctlsocket "$W/c/run/pluto.ctl" --showstates | grep ESTABLISHED_IKE_SA || echo "(none)"
grep -h 'sending INITIAL_CONTACT' "$W/b/pluto.log" | tail -1
if [ $ESP_OK = yes ]; then
  for _ in $(seq 50); do
    awk -v t="$t1" -F'[][]' '/bytes from/ && $2+0 >= t {n++} END {exit !(n >= 3)}' "$W/ping.log" && break
    sleep 0.2
  done
  sleep 1; kill $PING_PID $CAP_PID 2>/dev/null || true; wait $PING_PID $CAP_PID 2>/dev/null || true
  gap=$(awk -F'[][]' '/bytes from/ {t=$2+0; if (last) {g=t-last; if (g>max) max=g} last=t} END {printf "%.2f", max}' "$W/ping.log")
  esp=$(tcpdump -n -r "$W/c.pcap" esp 2>/dev/null | wc -l)
  clear=$(tcpdump -n -r "$W/c.pcap" icmp 2>/dev/null | wc -l)
  echo "C pinged the VIP every 0.1 s across the move: longest gap $gap s (stop, move and start took $(printf %.2f "$(echo "$t1 - $t0" | bc)") s);"
  echo "on C's wire: $esp ESP packets, $clear clear-text ICMP packets"
else
  echo "(no ESP in this kernel: the Child SA cannot be installed here, so no traffic is shown)"
fi

step "the VIP vanishes behind the cluster's back: monitor on B fails (1)"
show ip -n vdemo-b addr del $VIP/24 dev eth0
show node b monitor
show ip -n vdemo-b addr add $VIP/24 dev eth0
show node b monitor
show node b stop
echo; echo "demo finished"
