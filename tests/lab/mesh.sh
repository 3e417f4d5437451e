# Scenario 4 and the mesh half of 6: A (.1), B (.2) and D (.4) run ocf:vipsec:mesh with
# policy=require over IPv4 and IPv6; O (.5) is a host on the same network outside the mesh.

MESH_NODES="a b d"
MESH_PEERS="192.0.2.1 192.0.2.2 192.0.2.4 2001:db8::1 2001:db8::2 2001:db8::4"

mesh_agent() {
  local h=$1 action=$2; shift 2
  local depth=() run=(ond "$h" "$VIPSEC")
  local daemon=(--ctlsocket "$LAB/$h/run/pluto.ctl" --confdir "$LAB/$h/ipsec.d")
  if is_charon "$h"; then
    run=(charon_agent "$h"); daemon=(--ike strongswan --vicisocket "$(vici_socket "$h")")
  fi
  [ "$action" = monitor ] && depth=(--check-level "${DEPTH:-0}")
  HA_RSCTMP=$LAB/$h/state HA_LOGFILE=$LAB/agent-$h.log \
    "${run[@]}" mesh "$action" "${depth[@]}" --instance "mesh-$h" --peers "$MESH_PEERS" \
    --secret_file "$LAB/mesh.secret" "${daemon[@]}" \
    --policy "${MESH_POLICY:-require}" --dnssec off "$@"
}
addr_of() { case $1 in a) echo 1;; b) echo 2;; c) echo 3;; d) echo 4;; o) echo 5;; esac; }

mesh_all_up() {  # every node's monitor says 0 (every peer has its SAs both ways)
  local h
  for h in $MESH_NODES; do mesh_agent "$h" monitor >/dev/null 2>&1 || return 1; done
}

# A TCP connection to every pair over both families brings the on-demand SAs up. A new
# port each time: libreswan 4.10 keeps the %hold bare shunt of a flow that was waiting
# when its conn was deleted, and an acquire for the same flow after a restart then
# "conflicts" with it and starts nothing (seen here); a cluster's traffic has new flows.
mesh_poke() {
  local h p port=$((20000 + RANDOM % 20000))
  for h in $MESH_NODES; do for p in $MESH_NODES; do
    [ "$h" = "$p" ] && continue
    on "$h" nc -z -w 1 "192.0.2.$(addr_of "$p")" $port >/dev/null 2>&1 || true
    on "$h" nc -z -w 1 "2001:db8::$(addr_of "$p")" $port >/dev/null 2>&1 || true
  done; done
}
mesh_poke_all_up() { mesh_poke; mesh_all_up; }

# tcp_transfer FROM TO-ADDRESS PORT: 50 kB, compared byte for byte.
tcp_transfer() {
  local from=$1 to=$2 port=$3 dst=$4
  head -c 50000 /dev/urandom > "$LAB/mtx"
  on "$to" timeout 20 nc -l "$dst" "$port" > "$LAB/mrx" 2>/dev/null & local l=$!
  sleep 0.3
  on "$from" timeout 20 nc -N "$dst" "$port" < "$LAB/mtx" 2>/dev/null || true
  wait $l 2>/dev/null || true
  cmp -s "$LAB/mtx" "$LAB/mrx"
}

# Fresh plutos for the mesh: the VIP scenarios killed one and bounced a link.
mesh_setup() {
  local h
  for h in $MESH_NODES; do daemon_restart "$h"; done
}

# The rollout the README recommends: use on every node, then require, node by node (a
# restart each), while A pings B every 0.1 s and B receives a TCP stream from A.
scenario_mesh_rollout() {
  scenario "4b mesh rollout use -> require: ping never dropped"
  (umask 077; head -c 48 /dev/urandom > "$LAB/mesh.secret")
  local h
  MESH_POLICY=use
  for h in $MESH_NODES; do expect_code 0 "mesh start on ${h^^} (use)" mesh_agent "$h" start; done
  expect "every pair's SAs up under use" wait_for 90 mesh_poke_all_up
  MESH_POLICY=require
  local plog=$LAB/ping-rollout.log
  ping_start "$plog" a 192.0.2.2; local pp=$PING_PID
  sleep 1
  for h in $MESH_NODES; do
    mesh_agent "$h" stop >/dev/null 2>&1
    expect_code 0 "mesh start on ${h^^} (require)" mesh_agent "$h" start
  done
  expect "every pair's SAs up under require" wait_for 90 mesh_poke_all_up
  sleep 1
  kill $pp 2>/dev/null; wait $pp 2>/dev/null || true
  local lost got
  got=$(ping_replies_after "$plog" 0); lost=$(ping_lost "$plog")
  OUTAGE=$(ping_gap "$plog" 0)
  log "rollout: $got pings answered, $lost lost; longest gap ${OUTAGE} s"
  expect "pings answered throughout" test "$got" -gt 50
  expect "no ping lost during the rollout (ICMP is excluded by default)" test "$lost" -eq 0
  mesh_teardown
  done_scenario
}

scenario_mesh_require() {
  scenario "4 mesh require: pairs ESP, outsider dropped"
  (umask 077; head -c 48 /dev/urandom > "$LAB/mesh.secret")
  local h p
  for h in $MESH_NODES; do expect_code 0 "mesh start on ${h^^} (require)" mesh_agent "$h" start; done
  expect "every pair's SAs up (monitor 0 on A, B, D)" wait_for 90 mesh_poke_all_up
  local esp=0 plain=0 port=6000
  for h in $MESH_NODES; do
    cap_start "m-$h" "$h"
  done
  for h in $MESH_NODES; do for p in $MESH_NODES; do
    [ "$h" = "$p" ] && continue
    port=$((port + 1))
    expect "TCP ${h^^}->${p^^} over IPv4" tcp_transfer "$h" "$p" $port "192.0.2.$(addr_of "$p")"
    port=$((port + 1))
    expect "TCP ${h^^}->${p^^} over IPv6" tcp_transfer "$h" "$p" $port "2001:db8::$(addr_of "$p")"
  done; done
  for h in $MESH_NODES; do
    cap_stop "m-$h"
    esp=$((esp + $(cap_count "m-$h" "esp")))
    plain=$((plain + $(cap_count "m-$h" "tcp portrange 6001-6100")))
  done
  ESP=$esp; PLAIN=$plain
  log "mesh pairs: ESP $esp, clear TCP $plain"
  expect "every pair's TCP was ESP on the wire" test "$esp" -gt 60
  expect "no clear text between mesh nodes" test "$plain" -eq 0
  # O is outside the mesh: its clear text to a require node is dropped...
  on a timeout 8 nc -l 192.0.2.1 7001 > "$LAB/orx" 2>/dev/null & local l=$!
  sleep 0.3
  echo "clear text from outside" | on o timeout 4 nc -N -w 3 192.0.2.1 7001 >/dev/null 2>&1 || true
  wait $l 2>/dev/null || true
  expect "O's TCP to A is dropped" test ! -s "$LAB/orx"
  # ...but SSH and ICMP stay open (exclude_ssh, exclude_icmp default to true).
  on a timeout 8 nc -l 192.0.2.1 22 > "$LAB/osh" 2>/dev/null & l=$!
  sleep 0.3
  echo "ssh from outside" | on o timeout 4 nc -N -w 3 192.0.2.1 22 >/dev/null 2>&1 || true
  wait $l 2>/dev/null || true
  expect "O reaches A's SSH port (excluded)" test -s "$LAB/osh"
  expect "O pings A (ICMP excluded)" on o ping -c 2 -i 0.2 -W 2 192.0.2.1
  expect "O pings A over IPv6 (ICMPv6 excluded)" on o ping -c 2 -i 0.2 -W 2 2001:db8::1
  # ...and nothing else, not even from the source ports of SSH's or DNS's replies (22, 53):
  # not a service outside the ephemeral range (7023, 7054), not one inside it (TCP 45022,
  # 45053, UDP 45122, 45153;
  # started after the mesh, so carved out of the replies' ports at the next monitor).
  # Each round on ports of its own: a listener of the last one may still be there.
  local sp lo hi u
  for sp in 22 53; do
    lo=$((7001 + sp)); hi=$((45000 + sp)); u=$((45100 + sp))
    on a timeout 20 nc -l 192.0.2.1 "$lo" > "$LAB/orx-$sp" 2>/dev/null &
    on a timeout 20 nc -l 192.0.2.1 "$hi" > "$LAB/orxh-$sp" 2>/dev/null &
    on a timeout 20 nc -u -l 192.0.2.1 "$u" > "$LAB/orxu-$sp" 2>/dev/null &
    # All three listening before the monitor reads the sockets (under emulation a
    # listener has not always started half a second later).
    expect "A listens on $lo, $hi and UDP $u" wait_for 15 mesh_listening a "$lo" "$hi" "$u"
    mesh_agent a monitor >/dev/null 2>&1 || true
    for p in "$lo" "$hi"; do
      echo "from port $sp" | on o timeout 4 nc -N -w 3 -p "$sp" 192.0.2.1 "$p" >/dev/null 2>&1 || true
    done
    echo "from port $sp" | on o timeout 3 nc -u -w 1 -p "$sp" 192.0.2.1 "$u" >/dev/null 2>&1 || true
    sleep 1
    expect "O's TCP from port $sp to A:$lo is dropped" test ! -s "$LAB/orx-$sp"
    expect "O's TCP from port $sp to A:$hi (ephemeral range) is dropped" test ! -s "$LAB/orxh-$sp"
    expect "O's UDP from port $sp to A:$u (ephemeral range) is dropped" test ! -s "$LAB/orxu-$sp"
  done
  # A's own SSH works: to O (in clear), and to B, another node, whatever IKE does.
  for p in o:192.0.2.5 b:192.0.2.2; do
    on "${p%%:*}" timeout 8 nc -l "${p#*:}" 22 > "$LAB/assh" 2>/dev/null & l=$!
    sleep 0.3
    echo "ssh from A" | on a timeout 4 nc -N -w 3 "${p#*:}" 22 >/dev/null 2>&1 || true
    wait $l 2>/dev/null || true
    expect "A's SSH to ${p%%:*} works" test -s "$LAB/assh"
  done
  # A node whose policy is use (not require) is open to O.
  done_scenario
}

scenario_mesh_rekey() {
  scenario "4c mesh new master secret: every pair rekeyed"
  local before after h
  # The SAs pluto carries the mesh on (a kernel state pluto has already forgotten, left
  # by an earlier teardown, would be in both lists without carrying anything).
  mesh_spis() { local h; for h in $MESH_NODES; do whack "$h" --showstates | grep -o 'esp\.[0-9a-f]*@' ; done | sort -u; }
  before=$(mesh_spis)
  # Traffic that is not excluded keeps flowing A->B (UDP every 50 ms) while the secret
  # changes and the conns are swapped: none of it may leave A in clear (the reload holds
  # each swapped pair's traffic until its new conns are routed).
  udp_stream_start a 192.0.2.2 7000
  cap_start rkd a udp port 7000 or esp
  (umask 077; head -c 48 /dev/urandom > "$LAB/mesh.secret.new"); mv "$LAB/mesh.secret.new" "$LAB/mesh.secret"
  for h in $MESH_NODES; do expect_code 0 "reload on ${h^^}" mesh_agent "$h" reload-agent; done
  expect "every pair's SAs up again" wait_for 90 mesh_poke_all_up
  # A membership change on A (D leaves, then comes back) while A keeps sending to B.
  MESH_PEERS="192.0.2.1 192.0.2.2 2001:db8::1 2001:db8::2" \
    expect_code 0 "reload on A without D" mesh_agent a reload-agent
  expect_code 0 "reload on A with D again" mesh_agent a reload-agent
  sleep 1
  cap_stop rkd; udp_stream_stop
  local during_clear during_esp
  during_clear=$(cap_count rkd "udp port 7000"); during_esp=$(cap_count rkd esp)
  log "during the reloads: $during_esp ESP, $during_clear clear UDP packets A->B"
  expect "no clear text A->B while conns were swapped" test "$during_clear" -eq 0
  expect "the stream was captured (ESP seen)" test "$during_esp" -gt 0
  expect "every pair's SAs up again after the membership change" wait_for 90 mesh_poke_all_up

  after=$(mesh_spis)
  local common; common=$(comm -12 <(echo "$before") <(echo "$after") | wc -l)
  log "SPIs before: $(echo "$before" | wc -l), after: $(echo "$after" | wc -l), in common: $common"
  expect "no SA survived the new secret" test "$common" -eq 0
  # Under emulation tcpdump has once attached only after a short transfer was over (the
  # capture held nothing at all, not even the transfer's ESP): an empty capture proves
  # nothing either way, so the transfer is repeated on a new port.
  local try port=6201
  for try in 1 2 3; do
    cap_start rk a
    expect "TCP A->B after the rekey (try $try)" tcp_transfer a b $port 192.0.2.2
    cap_stop rk
    [ "$(cap_count rk "")" -gt 0 ] && break
    log "the capture holds nothing: again"
    port=$((port + 1))
  done
  ESP=$(cap_count rk esp); PLAIN=$(cap_count rk "tcp port $port")

  expect "still ESP, no clear text" test "$ESP" -gt 0 -a "$PLAIN" -eq 0
  done_scenario
}

scenario_mesh_monitor_truth() {
  scenario "6b mesh monitor tells the truth"
  DEPTH=10 expect_code 0 "monitor depth 10 on A" mesh_agent a monitor
  # Every outbound SA A->B goes (after the rekey and the stream of 4c both ends may
  # have negotiated one, and either carries the traffic).
  local spi
  for spi in $(ip -n lab-a xfrm state list src 192.0.2.1 dst 192.0.2.2 proto esp | awk '/spi/{print $4}'); do
    ip -n lab-a xfrm state delete src 192.0.2.1 dst 192.0.2.2 proto esp spi "$spi"
  done
  DEPTH=10 expect_code 190 "monitor on A with its SAs to B deleted" mesh_agent a monitor

  expect "monitor names B" grep -q "192.0.2.2" "$LAB/last.out"
  pluto_kill b
  expect_code 1 "monitor on B with pluto killed" mesh_agent b monitor
  # Restored: pluto back, the resource restarted on both.
  ip -n lab-b xfrm state flush; ip -n lab-b xfrm policy flush
  pluto_start b
  for h in a b; do mesh_agent "$h" stop >/dev/null 2>&1; expect_code 0 "start on ${h^^}" mesh_agent "$h" start; done
  expect "every node's monitor back to 0" wait_for 90 mesh_poke_all_up
  done_scenario
}

# mesh_listening HOST PORT...: a TCP listener or an unconnected UDP socket on every PORT.
mesh_listening() {
  local h=$1 p; shift
  for p in "$@"; do on "$h" ss -Hltun "sport = :$p" | grep -q . || return 1; done
}

mesh_teardown() {
  local h
  for h in $MESH_NODES; do mesh_agent "$h" stop >/dev/null 2>&1 || true; done
}
