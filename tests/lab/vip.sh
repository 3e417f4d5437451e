# Scenarios 1-3 and the VIP half of 6: nodes A (.1) and B (.2) can hold the VIP, C (.3) is
# a road-warrior client of the VIP. vipsec generates the tunnel's conn on the node holding
# the VIP (auth=psk, one group key for the VIP's clients); C runs a plain libreswan conn.

VIP=192.0.2.100
PSK_FILE=$LAB/vip.psk

# vip_agent NODE ACTION [args]: the agent by hand on NODE, as Pacemaker would run it.
vip_agent() {
  local h=$1 action=$2; shift 2
  local depth=()  # by hand the monitor depth is a flag (Pacemaker sets OCF_CHECK_LEVEL)
  local run=(ond "$h" "$VIPSEC")
  local daemon=(--confdir "$LAB/$h/ipsec.d" --ctlsocket "$LAB/$h/run/pluto.ctl" --fallbacktunnel fallback)
  # On charon the fallback would be a conn of swanctl's: none here.
  if is_charon "$h"; then
    run=(charon_agent "$h"); daemon=(--ike strongswan --vicisocket "$(vici_socket "$h")")
  fi
  [ "$action" = monitor ] && depth=(--check-level "${DEPTH:-0}")
  HA_RSCTMP=$LAB/$h/state HA_LOGFILE=$LAB/agent-$h.log \
    "${run[@]}" "$action" "${depth[@]}" \
    --instance "vip-tunnel-$h" --tunnel rw --vip $VIP "${daemon[@]}" \
    --auth psk --psk_file "$PSK_FILE" ${CLIENTS:+--clients "$CLIENTS"} "$@"
}

# ike_listens HOST: the host's IKE daemon receives IKE for the VIP (pluto binds the VIP
# itself; charon its wildcard sockets).
ike_listens() {
  local want="$VIP:500"
  is_charon "$1" && want="0.0.0.0:500"
  ip netns exec "lab-$1" ss -uln | qgrep -F "$want"
}

# vip_move FROM TO: what IPaddr2 does: the address leaves FROM, appears on TO, and TO
# announces it with gratuitous ARP, in the background (IPaddr2's arp_bg default).
vip_move() {
  on "$1" ip addr del $VIP/24 dev eth0
  on "$2" ip addr add $VIP/24 dev eth0
  on "$2" arping -q -U -c 2 -w 1 -I eth0 -s $VIP $VIP >/dev/null 2>&1 &
  BG_PIDS+=($!)
}

psk_hex() { od -An -tx1 "$PSK_FILE" | tr -d ' \n'; }

vip_setup() {
  # Text (base64), not raw bytes: the agent drops a key file's trailing newline (CR or
  # LF), and C's secret is the whole file, so a raw key ending in either byte (1 in 128)
  # made the two ends disagree (seen: charon's "MAC mismatched", no tunnel at all).
  (umask 077; head -c 32 /dev/urandom | base64 -w0 > "$PSK_FILE")
  # C: fail-closed client conn to the VIP (route: traffic to the VIP waits for IKE and
  # never leaves in clear), restarting on dead peer detection.
  cat > "$LAB/c/ipsec.d/tovip.conf" <<CONF
conn tovip
	left=192.0.2.3
	right=$VIP
	authby=secret
	ikev2=insist
	type=transport
	ike=aes_gcm256-sha2_256-dh19
	esp=aes_gcm256
	dpddelay=${CLIENT_DPDDELAY:-5}
	retransmit-timeout=${CLIENT_RETRANSMIT_TIMEOUT:-15}s
	dpdaction=restart
	keyingtries=%forever
	negotiationshunt=hold
	failureshunt=drop
	auto=${CLIENT_AUTO:-start}
CONF
  (umask 077; echo "192.0.2.3 $VIP : PSK 0x$(psk_hex)" > "$LAB/c/ipsec.d/tovip.secrets")
  # A's and B's fallback tunnel: the node's own address to the VIP wherever it is.
  local h n
  for h in a b; do
    n=1; [ $h = b ] && n=2
    cat > "$LAB/$h/ipsec.d/fallback.conf" <<CONF
conn fallback
	left=192.0.2.$n
	right=$VIP
	authby=secret
	ikev2=insist
	type=transport
	ike=aes_gcm256-sha2_256-dh19
	esp=aes_gcm256
	keyingtries=%forever
	auto=ignore
CONF
    (umask 077; echo "192.0.2.$n $VIP : PSK 0x$(psk_hex)" > "$LAB/$h/ipsec.d/fallback.secrets")
  done
  whack c --rereadsecrets >/dev/null
  addconn c "$LAB/c/ipsec.d/tovip.conf" tovip
  whack c --name tovip --route >/dev/null 2>&1 || true
  # auto=start: brought up now and kept up (pluto revives it when the SA goes).
  [ "${CLIENT_AUTO:-start}" = start ] && { whack c --name tovip --initiate --asynchronous >/dev/null 2>&1 || true; }
}

# The client's own restart of its conn (what its operator, or its DPD, would do).
client_reconnect() {
  whack c --name tovip --terminate >/dev/null 2>&1 || true
  whack c --name tovip --initiate --asynchronous >/dev/null 2>&1 || true
}

established_child() { whack "$1" --showstates | grep "${2:-}" | qgrep "ESTABLISHED_CHILD_SA"; }

scenario_vip_on_a() {
  scenario "1 VIP on A: C<->VIP is ESP"
  on a ip addr add $VIP/24 dev eth0
  expect_code 7 "monitor on A before start" vip_agent a monitor
  expect_code 0 "start on A" vip_agent a start
  expect_code 0 "monitor on A" vip_agent a monitor
  expect_code 7 "monitor on B (no VIP there)" vip_agent b monitor
  cap_start vip1 c; cap_start vip1a a
  # The first packet to the VIP triggers C's IKE (auto=route): no manual initiation.
  on c ping -c 1 -W 10 $VIP >/dev/null 2>&1 || true
  expect "C's child SA with the VIP is up" wait_for 30 established_child c
  local before; before=$(xfrm_packets c 192.0.2.3 $VIP)
  expect "C pings the VIP (20 packets)" on c ping -q -c 20 -i 0.05 -W 2 $VIP
  # 200 kB of TCP through the tunnel, compared byte for byte
  head -c 200000 /dev/urandom > "$LAB/tx"
  on a timeout 30 nc -l $VIP 5001 > "$LAB/rx" & local l=$!
  sleep 0.5
  on c timeout 30 nc -N $VIP 5001 < "$LAB/tx" || true
  wait $l || true
  expect "200 kB TCP C->VIP arrive intact" cmp -s "$LAB/tx" "$LAB/rx"
  cap_stop vip1; cap_stop vip1a
  local after; after=$(xfrm_packets c 192.0.2.3 $VIP)
  ESP=$(( $(cap_count vip1 "esp and host $VIP") + $(cap_count vip1a "esp and host 192.0.2.3") ))
  PLAIN=$(( $(cap_count vip1 "host $VIP and (icmp or tcp port 5001)") + $(cap_count vip1a "host 192.0.2.3 and (icmp or tcp port 5001)") ))
  log "ESP out of C and A: $ESP; clear: $PLAIN; C's SA counter $before -> $after"
  expect "ESP on the wire" test "$ESP" -gt 20
  expect "no clear text of C<->VIP on the wire" test "$PLAIN" -eq 0
  expect "C's outbound SA counted the packets" test $((after - before)) -ge 20
  DEPTH=10 expect_code 0 "monitor depth 10 on A" vip_agent a monitor
  # What pluto says of the conn with a client's SAs up, kept with the results (5.x's
  # per-conn report, which the depth-10 monitor reads).
  local suffix=${SCEN_SUFFIX:-}
  whack a --name rw --connectionstatus > "$OUT/connectionstatus-a${suffix// /_}.txt" 2>&1 || true
  whack a --trafficstatus > "$OUT/trafficstatus-a${suffix// /_}.txt" 2>&1 || true
  whack a --showstates > "$OUT/showstates-a${suffix// /_}.txt" 2>&1 || true


  done_scenario
}


# failover FROM TO LABEL: Pacemaker's order: stop the tunnel, move the VIP, start the
# tunnel. C pings the VIP every 0.1 s meanwhile; the outage is the longest gap between
# replies. Sets FO_STOP, FO_MOVE, FO_START (how long each part took), FO_BACK (from the
# start's return to C's first reply) and OUTAGE, in seconds. Known clients: CLIENTS=addr.
fo_secs() { printf '%.2f' "$(echo "$2 - $1" | bc)"; }
failover() {
  local from=$1 to=$2 label=$3
  local plog=$LAB/ping-$label.log
  ping_start "$plog" c $VIP; local pp=$PING_PID
  sleep 1
  cap_start "fo-$label" c
  local t0 ts tm t1; t0=$(now)
  expect_code 0 "stop on ${from^^}" vip_agent "$from" stop
  ts=$(now)
  vip_move "$from" "$to"
  tm=$(now)
  expect_code 0 "start on ${to^^}" vip_agent "$to" start
  t1=$(now)
  local recovered=yes
  wait_for 45 replies_since "$plog" "$t1" 3 || recovered=no
  kill $pp 2>/dev/null; wait $pp 2>/dev/null || true
  cap_stop "fo-$label"
  OUTAGE=$(ping_gap "$plog" "$t0")
  # A libreswan 4.10 client with auto=route that received the stop's IKE Delete never
  # comes back by itself (CLIENT_AUTO=route shows it); auto=start revives at once.
  [ $recovered = no ] && OUTAGE=">45 (no reconnect)"
  expect "C reaches the VIP on ${to^^} again by itself (auto=${CLIENT_AUTO:-start}${CLIENTS:+, known client})" test $recovered = yes
  local first; first=$(awk -v from="$t1" -F'[][]' '/bytes from/ && $2+0 >= from {print $2; exit}' "$plog")
  FO_STOP=$(fo_secs "$t0" "$ts"); FO_MOVE=$(fo_secs "$ts" "$tm"); FO_START=$(fo_secs "$tm" "$t1")
  FO_BACK=$(fo_secs "$t1" "${first:-$t1}")
  [ $recovered = no ] && FO_BACK=">45"
  log "failover $label: stop ${FO_STOP} s, VIP move ${FO_MOVE} s, start ${FO_START} s, C back ${FO_BACK} s after the start returned; longest gap between replies ${OUTAGE} s"
  ESP=$(cap_count "fo-$label" "esp and host $VIP")
  PLAIN=$(cap_count "fo-$label" "host $VIP and icmp")
  expect "C sent no clear text to the VIP during the move (fail-closed)" test "$PLAIN" -eq 0
  expect "traffic after the move is ESP" test "$ESP" -gt 3
}

# stats V1 V2 ...: "median (min-max)" of numbers.
stats() {
  printf '%s\n' "$@" | sort -g | awk '{v[NR]=$1} END {m = (NR % 2) ? v[(NR+1)/2] : (v[NR/2] + v[NR/2+1]) / 2;
    printf "%.2f (%.2f-%.2f)", m, v[1], v[NR]}'
}

# failover_runs N [KNOWN]: N failovers back and forth between the VIP's holder and the
# other node, each measured in its parts; the row's outage is the median, its detail
# the median and range of every part (FO_SUMMARY; FO_BACK_MEDIAN: C back after the
# start's return, median).
failover_runs() {
  local n=$1 i from to
  local stops=() moves=() starts=() backs=() gaps=() esp=0 plain=0
  from=$(vip_holder); to=a; [ "$from" = a ] && to=b
  for i in $(seq "$n"); do
    failover "$from" "$to" "run$i-$from$to${CLIENTS:+-known}"
    stops+=("$FO_STOP"); moves+=("$FO_MOVE"); starts+=("$FO_START")
    case $FO_BACK in '>'*) backs+=(45);; *) backs+=("$FO_BACK");; esac
    case $OUTAGE in '>'*) gaps+=(45);; *) gaps+=("$OUTAGE");; esac
    esp=$((esp + ESP)); plain=$((plain + PLAIN))
    local t=$from; from=$to; to=$t
  done
  OUTAGE=$(stats "${gaps[@]}" | awk '{print $1}')
  FO_BACK_MEDIAN=$(stats "${backs[@]}" | awk '{print $1}')
  ESP=$esp; PLAIN=$plain
  FO_SUMMARY="$n runs, median (range) s: outage $(stats "${gaps[@]}"); stop $(stats "${stops[@]}"); VIP move $(stats "${moves[@]}"); start $(stats "${starts[@]}"); C back after start $(stats "${backs[@]}")"
  log "$FO_SUMMARY"
  echo "$SCEN	$FO_SUMMARY" >> "$OUT/failover-figures.tsv"
}

vip_holder() { if on a ip -o addr show dev eth0 | qgrep " $VIP/"; then echo a; else echo b; fi; }

scenario_failover() {
  scenario "2 failover A->B (pacemaker order)"
  # Five moves A->B->A->B->A->B of a road-warrior client vipsec does not know: it
  # comes back by its own retransmissions.
  failover_runs "${LAB_FAILOVER_RUNS:-5}"
  NOTE=$FO_SUMMARY
  UNKNOWN_BACK_MEDIAN=$FO_BACK_MEDIAN
  expect "B listens for IKE on the VIP" ike_listens b
  expect_code 0 "monitor on B" vip_agent b monitor
  expect_code 7 "monitor on A" vip_agent a monitor
  done_scenario
}

# The same moves with C listed in clients=: the node taking the VIP initiates toward it
# at start. Goal: C back within 1 s of the start's return.
scenario_failover_known() {
  scenario "2k failover, known client (clients=)"
  local runs=${LAB_FAILOVER_RUNS:-5} ic0 ic1
  ic0=$(grep -c 'N(INITIAL_CONTACT)' "$LAB/c/pluto.log" 2>/dev/null || true)
  CLIENTS=192.0.2.3 failover_runs "$runs"
  ic1=$(grep -c 'N(INITIAL_CONTACT)' "$LAB/c/pluto.log" 2>/dev/null || true)
  # What is asserted: C took IKE_AUTHs from the new holders carrying INITIAL_CONTACT (C's
  # log, as responder), i.e. the new node brings it back. The timings are reported, not
  # asserted: the issue's
  # goal (1.0 s) was met in every whole run once the VIP's conns stopped running the
  # updown script, but under emulation the client's own Child SA install (its updown)
  # takes 0.5-1.3 s, and how the unknown client's retransmission falls decides whether
  # it is slower; a machine busy with something else moves both.
  # Each move races the new holder's initiation against C's own retransmission (the old
  # node's Delete made C re-initiate toward the VIP at once): when a retransmission lands
  # during the start, C is back by itself, as fast, and takes no INITIAL_CONTACT. Seen:
  # 5 of 5 in one run, 2 of 5 in another whose starts were a second slower. So the
  # mechanism is asserted to have worked, and its share reported.
  local ic=$((${ic1:-0} - ${ic0:-0}))
  expect "the new holder's INITIAL_CONTACT brought C back ($ic of $runs moves; the others, C's own retransmission)" \
    test "$ic" -ge 1
  local goal=${LAB_GOAL_BACK:-1.0} met=met
  [ "$(echo "$FO_BACK_MEDIAN > $goal" | bc)" = 1 ] && met="not met"
  NOTE="$FO_SUMMARY; goal <= $goal s after the start: $met; INITIAL_CONTACT in $ic of $runs moves; unknown client (scenario 2): ${UNKNOWN_BACK_MEDIAN:-?} s"
  local h; h=$(vip_holder)
  # (charon does not log it; C's count above is the proof either way.)
  is_charon "$h" || expect "the holder sent INITIAL_CONTACT to C" qgrep 'sending INITIAL_CONTACT' "$LAB/$h/pluto.log"
  CLIENTS=192.0.2.3 expect_code 0 "monitor on ${h^^}" vip_agent "$h" monitor
  done_scenario
}

# The VIP's holder dies (its pluto killed, its link down: no stop, no Delete): the other
# node takes the VIP and starts the tunnel with C as a known client; C, which still has
# SAs with a dead peer, takes the new node's INITIAL_CONTACT and is back at once instead
# of after its dead peer detection.
scenario_node_loss_known() {
  scenario "2c node loss, known client"
  local from to; from=$(vip_holder); to=a; [ "$from" = a ] && to=b
  local plog=$LAB/ping-loss.log
  ping_start "$plog" c $VIP; local pp=$PING_PID
  sleep 1
  cap_start loss c
  local t0 t1; t0=$(now)
  pluto_kill "$from"
  ip -n "lab-$from" link set eth0 down
  on "$to" ip addr add $VIP/24 dev eth0
  on "$to" arping -q -U -c 2 -w 1 -I eth0 -s $VIP $VIP >/dev/null 2>&1 &
  BG_PIDS+=($!)
  CLIENTS=192.0.2.3 expect_code 0 "start on ${to^^}" vip_agent "$to" start
  t1=$(now)
  local recovered=yes
  wait_for 60 replies_since "$plog" "$t1" 3 || recovered=no
  kill $pp 2>/dev/null; wait $pp 2>/dev/null || true
  cap_stop loss
  OUTAGE=$(ping_gap "$plog" "$t0")
  local first; first=$(awk -v from="$t1" -F'[][]' '/bytes from/ && $2+0 >= from {print $2; exit}' "$plog")
  expect "C reaches the VIP on ${to^^} again" test $recovered = yes
  local back; back=$(fo_secs "$t1" "${first:-$t1}")
  [ $recovered = no ] && back=">60"
  NOTE="start on ${to^^} $(fo_secs "$t0" "$t1") s after the loss; C back ${back} s after the start returned; longest gap ${OUTAGE} s"
  log "$NOTE"
  # Without clients= C would wait for its dead peer detection (dpddelay 5 s + 15 s).
  expect "C back within ${LAB_GOAL_BACK:-1.0} s of the start" test "$recovered" = yes -a "$(echo "${back} <= ${LAB_GOAL_BACK:-1.0}" | bc 2>/dev/null)" = 1
  ESP=$(cap_count loss "esp and host $VIP")
  PLAIN=$(cap_count loss "host $VIP and icmp")
  expect "no clear text to the VIP during the loss" test "$PLAIN" -eq 0
  expect "traffic after the loss is ESP" test "$ESP" -gt 3
  # The lost node comes back (a reboot: nothing of the old state in its kernel).
  ip -n "lab-$from" xfrm state flush; ip -n "lab-$from" xfrm policy flush
  on "$from" ip addr del $VIP/24 dev eth0 2>/dev/null || true
  link_up "$from"
  pluto_start "$from"
  expect_code 0 "stop on the node that came back (state from before the loss)" vip_agent "$from" stop
  done_scenario
}

scenario_fallback() {
  scenario "3 fallback tunnel A->VIP on B"
  # stop on A (in scenario 2) loaded and initiated A's fallbacktunnel toward the VIP.
  expect "A's fallback child SA is up" wait_for 60 established_child a
  cap_start fb a
  local before; before=$(xfrm_packets a 192.0.2.1 $VIP)
  expect "A pings the VIP (now on B)" on a ping -q -c 10 -i 0.1 -W 2 $VIP
  cap_stop fb
  local after; after=$(xfrm_packets a 192.0.2.1 $VIP)
  ESP=$(cap_count fb "esp and host $VIP")
  PLAIN=$(cap_count fb "host $VIP and icmp")
  # The kernel's counter counts every packet; a capture under emulation can miss the odd
  # one at its start or end (9 of 10 seen once), so it only has to show ESP.
  expect "A's traffic to the VIP is ESP" test "$ESP" -ge 5
  expect "no clear text from A to the VIP" test "$PLAIN" -eq 0
  expect "A's fallback SA counted the packets" test $((after - before)) -ge 10
  done_scenario
}

# The failover again, back B->A, but B dies instead of stopping: no delete notification
# reaches C, which has to notice with DPD. Measures what the delete on stop is worth.
scenario_crash_failover() {
  scenario "2b failover B->A after B died (no delete)"
  whack a --name fallback --delete >/dev/null 2>&1 || true
  local plog=$LAB/ping-crash.log
  ping_start "$plog" c $VIP; local pp=$PING_PID
  sleep 1
  cap_start crash c
  local t0; t0=$(now)
  # B drops off the network (power loss): no delete notification, nothing answers.
  ip -n lab-b link set eth0 down
  on a ip addr add $VIP/24 dev eth0
  on a arping -q -U -c 2 -w 1 -I eth0 -s $VIP $VIP >/dev/null 2>&1 || true
  expect_code 0 "start on A" vip_agent a start
  local t1; t1=$(now)
  wait_for 120 replies_since "$plog" "$t1" 3
  kill $pp 2>/dev/null; wait $pp 2>/dev/null || true
  cap_stop crash
  OUTAGE=$(ping_gap "$plog" "$t0")
  expect "C reaches the VIP on A again" test "$(ping_replies_after "$plog" "$t1")" -gt 3
  ESP=$(cap_count crash "esp and host $VIP")
  PLAIN=$(cap_count crash "host $VIP and icmp")
  expect "no clear text during the move" test "$PLAIN" -eq 0
  log "crash failover: longest gap ${OUTAGE} s (C's DPD: delay ${CLIENT_DPDDELAY:-5} s; libreswan 4 gives up on a silent peer after retransmit-timeout=${CLIENT_RETRANSMIT_TIMEOUT:-15} s)"
  done_scenario
}

scenario_vip_monitor_truth() {
  scenario "6a VIP monitor tells the truth"
  # B holds the VIP (scenario 2). Kill its pluto: monitor must fail.
  pluto_kill b
  expect_code 1 "monitor on B with pluto killed" vip_agent b monitor
  # Recovery as Pacemaker does it: stop, start (pluto restarted by its own service).
  ip -n lab-b xfrm state flush; ip -n lab-b xfrm policy flush
  pluto_start b
  expect_code 0 "stop on B" vip_agent b stop
  expect_code 0 "start on B" vip_agent b start
  client_reconnect
  expect "C's child SA with B again" wait_for 60 established_child b 192.0.2.3
  expect "C pings the VIP again" wait_for 30 on c ping -c 1 -W 1 $VIP
  DEPTH=10 expect_code 0 "monitor depth 10 on B" vip_agent b monitor
  whack b --showstates > "$OUT/showstates-b.txt" 2>&1 || true
  # One SA lost from B's kernel, pluto still believes in it: depth 10 must see it.
  local spi
  spi=$(ip -n lab-b xfrm state list src 192.0.2.3 dst $VIP proto esp | awk '/spi/{print $4; exit}')
  ip -n lab-b xfrm state delete src 192.0.2.3 dst $VIP proto esp spi "$spi"
  expect "C's traffic to the VIP fails without that SA" bash -c "! ip netns exec lab-c ping -c 2 -W 1 $VIP"
  DEPTH=10 expect_code 1 "monitor depth 10 on B with an SA missing" vip_agent b monitor
  # Restored: the tunnel restarted.
  expect_code 0 "stop on B" vip_agent b stop
  expect_code 0 "start on B" vip_agent b start
  client_reconnect
  expect "C pings the VIP after the restart" wait_for 60 on c ping -c 1 -W 1 $VIP
  DEPTH=10 expect_code 0 "monitor depth 10 on B restored" vip_agent b monitor
  done_scenario
}

vip_teardown() {
  link_up b
  # The VIP goes first, so no stop leaves a fallback waiter behind.
  on a ip addr del $VIP/24 dev eth0 2>/dev/null || true
  on b ip addr del $VIP/24 dev eth0 2>/dev/null || true
  vip_agent a stop >/dev/null 2>&1 || true
  vip_agent b stop >/dev/null 2>&1 || true
  for h in a b c; do whack "$h" --name tovip --delete >/dev/null 2>&1 || true
    whack "$h" --name fallback --delete >/dev/null 2>&1 || true; done
  on a ip addr del $VIP/24 dev eth0 2>/dev/null || true
  on b ip addr del $VIP/24 dev eth0 2>/dev/null || true
}
