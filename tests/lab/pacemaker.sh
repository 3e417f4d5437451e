# Scenarios 7: a real two-node Pacemaker cluster on the lab's real kernel. Nodes A (.1)
# and B (.2) each run corosync (knet over the lab bridge, crypto with a shared authkey),
# pacemakerd and their own pluto, started here without systemd; C (.3) is the VIP's
# client. The lab's simplifications: two_node: 1 and stonith-enabled=false (no fencing
# device), and a longer totem token (10 s) because IKE under emulation is slow.
#
# Each node's daemons and commands run in its network namespace with its own view of
# the files a node keeps to itself (pn below): /run (corosync's lock file is there),
# /var/lib/pacemaker, /etc/corosync, /etc/ipsec.d, /run/pluto, /run/vipsec,
# /run/resource-agents, /var/log/pacemaker are bind-mounted from $LAB/NODE/. So the agents run exactly as installed, with their
# defaults (ctlsocket, confdir, HA_RSCTMP, the cluster key), and pluto sees what they write.

PCMK_NODES="a b"
# Pacemaker's tools are slow to start under emulation: polling them every 0.2 s would
# take the CPU Pacemaker itself needs.
PCMK_POLL=1

# pn NODE CMD...: CMD in NODE's namespace, with NODE's files (within PN_TIMEOUT seconds
# if set: daemons have none, commands do).
pn() {
  local h=$1; shift
  ${PN_TIMEOUT:+timeout -k 5 "$PN_TIMEOUT"} ip netns exec "lab-$h" sh -c '
    d=$0
    mount --bind "$d/pcmk/run" /run &&
    mount --bind "$d/pcmk/lib" /var/lib/pacemaker &&
    mount --bind "$d/pcmk/corosync" /etc/corosync &&
    mount --bind "$d/pcmk/log" /var/log/pacemaker &&
    mount --bind "$d/ipsec.d" /etc/ipsec.d &&
    mount --bind "$d/run" /run/pluto &&
    mount --bind "$d/vipsec" /run/vipsec &&
    mount --bind "$d/state" /run/resource-agents &&
    exec "$@"' "$LAB/$h" "$@"
}

# The agents where Pacemaker looks for them (the guest's /usr is the host's, read-only
# over 9p, where overlayfs refuses to mount): a tmpfs over resource.d holding the
# original providers (bind-mounted back) and vipsec's, a shim per type as the packages
# install them.
pcmk_install_agents() {
  mkdir -p "$LAB/ocf-orig"
  mount --bind /usr/lib/ocf/resource.d "$LAB/ocf-orig" || return 1
  mount -t tmpfs -o mode=0755 ocf /usr/lib/ocf/resource.d || return 1
  local p t
  for p in "$LAB"/ocf-orig/*/; do
    p=${p%/}
    [ "$(basename "$p")" = vipsec ] && continue   # a copy the host tests installed
    mkdir "/usr/lib/ocf/resource.d/$(basename "$p")"
    mount --bind "$p" "/usr/lib/ocf/resource.d/$(basename "$p")"
  done
  mkdir /usr/lib/ocf/resource.d/vipsec
  for t in ipsec mesh; do
    printf '#!/bin/sh\nexec %s ocf %s "$@"\n' "$VIPSEC" "$t" > "/usr/lib/ocf/resource.d/vipsec/$t"
    chmod 0755 "/usr/lib/ocf/resource.d/vipsec/$t"
  done
  mkdir -p /run/pluto /run/vipsec /run/resource-agents /var/log/pacemaker
}

# pluto inside the node's view (its /etc/ipsec.d, /run/pluto, /run/vipsec), replacing the
# one the other scenarios started with the lab's own paths.
pcmk_pluto_start() {
  local h=$1 d=$LAB/$1
  pluto_stop "$h"
  rm -f "$d/run/pluto.ctl" "$d/run/pluto.pid"
  (umask 077; echo "include /etc/ipsec.d/*.secrets" > "$d/ipsec.secrets")
  pn "$h" ipsec pluto --nofork --config "$d/ipsec.conf" --rundir /run/pluto --nssdir "$d/nss" \
    --ipsecdir /etc/ipsec.d --secretsfile "$d/ipsec.secrets" --logfile "$d/pluto.log" \
    --no-dnssec </dev/null >>"$d/pluto.out" 2>&1 &
  eval "PLUTO_$h=$!"
  PLUTO_PIDS+=($!)
  wait_for 20 test -S "$d/run/pluto.ctl"
}

pcmk_node_up() {
  local h=$1 d=$LAB/$1/pcmk
  cat > "$d/corosync/corosync.conf" <<CONF
totem {
    version: 2
    cluster_name: vipseclab
    transport: knet
    crypto_cipher: aes256
    crypto_hash: sha256
    token: 10000
}
nodelist {
    node {
        name: a
        nodeid: 1
        ring0_addr: 192.0.2.1
    }
    node {
        name: b
        nodeid: 2
        ring0_addr: 192.0.2.2
    }
}
quorum {
    provider: corosync_votequorum
    two_node: 1
}
logging {
    to_stderr: yes
    to_logfile: no
    to_syslog: no
    timestamp: on
}
CONF
  cp "$LAB/authkey" "$d/corosync/authkey"; chmod 0400 "$d/corosync/authkey"
  # A fresh CIB: no fencing (the lab's simplification), a short DC election, and no
  # throttling for CPU load: under emulation the load average is always "high", and a
  # throttled DC runs one action at a time, so a clone's stops run one node after the
  # other (seen here: B stopped its require mesh, A still required ESP from B, and the
  # DC's request to stop A never reached A). On hardware they run side by side.
  cat > "$d/lib/cib/cib.xml" <<CIB
<cib crm_feature_set="3.16.1" validate-with="pacemaker-3.9" epoch="1" num_updates="0" admin_epoch="0">
  <configuration>
    <crm_config>
      <cluster_property_set id="cib-bootstrap-options">
        <nvpair id="opt-stonith" name="stonith-enabled" value="false"/>
        <nvpair id="opt-dcdead" name="dc-deadtime" value="5s"/>
        <nvpair id="opt-load" name="load-threshold" value="1000%"/>
      </cluster_property_set>
    </crm_config>
    <nodes/><resources/><constraints/>
  </configuration>
  <status/>
</cib>
CIB
  chown -R hacluster:haclient "$d/lib" "$d/log"; chmod 600 "$d/lib/cib/cib.xml"
  pn "$h" setsid corosync -f -c /etc/corosync/corosync.conf </dev/null > "$d/corosync.log" 2>&1 &
  BG_PIDS+=($!)
}

# Once both corosyncs are up (two_node waits for all before it is quorate).
pcmk_pacemaker_up() {
  local h=$1 d=$LAB/$1/pcmk
  PN_TIMEOUT=20 wait_for 60 pn "$h" corosync-quorumtool -s || { log "corosync on $h has no quorum"; return 1; }
  pn "$h" env PCMK_logfile=/var/log/pacemaker/pacemaker.log PCMK_logfacility=none \
    setsid pacemakerd </dev/null > "$d/pacemakerd.out" 2>&1 &
  BG_PIDS+=($!)
}

# Cluster commands have a deadline: a hung pcs fails its step, not the whole lab.
crm() { PN_TIMEOUT=${CRM_TIMEOUT:-180} pn "${CRM_NODE:-a}" "$@"; }
both_online() { crm crm_mon -1 2>/dev/null | qgrep -E 'Online: \[ a b \]'; }
no_failed_actions() { local out; out=$(crm crm_mon -1) && ! grep -q 'Failed Resource Actions' <<<"$out"; }
# pcmk_op_secs NODE RSC OP: how long the last OP of RSC took on NODE, as Pacemaker's
# executor logged it (the parts of a Pacemaker-driven outage).
pcmk_op_secs() {
  grep -h "log_finished.*: $2 $3 (call" "$LAB/$1/pcmk/log/pacemaker.log" 2>/dev/null | tail -1 |
    sed -nE 's/.*execution time ([0-9.]+)s.*/\1/p' | grep . || echo '?'
}
tunnel_running() { crm crm_resource --locate --resource vip-tunnel 2>/dev/null | qgrep 'is running on'; }
started_on() {  # started_on RSC NODE
  crm crm_resource --locate --resource "$1" 2>/dev/null | qgrep "is running on: $2\$"
}

# Kill a node the hard way: its pacemaker daemons, its corosync, its pluto (found among
# the processes of its network namespace); its link goes down (the node is gone, its
# addresses with it).
pcmk_kill_daemons() {
  local pid
  for pid in $(ip netns pids "lab-$1"); do
    case $(cat "/proc/$pid/comm" 2>/dev/null) in
      corosync|pacemakerd|pacemaker-*|pluto) kill -9 "$pid" 2>/dev/null ;;
    esac
  done
}
pcmk_node_kill() {
  pcmk_kill_daemons "$1"
  ip -n "lab-$1" link set eth0 down
}

pcmk_setup() {
  pcmk_install_agents || { log "cannot install the agents under /usr/lib/ocf/resource.d"; return 1; }
  (umask 077; head -c 256 /dev/urandom > "$LAB/authkey")
  local h
  for h in $PCMK_NODES; do
    rm -rf "$LAB/$h/state"/* "$LAB/$h/vipsec"/* "$LAB/$h/pcmk"
    mkdir -p "$LAB/$h/pcmk/"{lib/cib,lib/pengine,lib/blackbox,lib/cores,corosync,log} \
      "$LAB/$h/pcmk/run/"{pluto,vipsec,resource-agents,crm}
    pcmk_pluto_start "$h" || return 1
  done
  for h in $PCMK_NODES; do pcmk_node_up "$h"; done
  for h in $PCMK_NODES; do pcmk_pacemaker_up "$h" || return 1; done
  WAIT_POLL=$PCMK_POLL wait_for 180 both_online || { log "the cluster did not form"; crm crm_mon -1 >&2; return 1; }
  log "two-node cluster up: $(crm crm_mon -1 | grep -E 'Current DC|Online')"
}

# The VIP and its tunnel in one group, as the README shows: a group starts its members
# in order on one node (the tunnel after the VIP, where the VIP is) and stops them in
# reverse. Two pcs commands instead of five: each costs about 35 s under emulation (pcs is
# a Python program read over 9p). C is a known client.
pcmk_create_vip() {
  crm pcs resource create vip ocf:heartbeat:IPaddr2 ip=$VIP cidr_netmask=24 nic=eth0 \
    op monitor interval=10s --group vipgroup &&
  crm pcs resource create vip-tunnel ocf:vipsec:ipsec tunnel=rw vip=$VIP auth=psk \
    psk_file="$PSK_FILE" clients=192.0.2.3 dnssec=off op monitor interval=10s --group vipgroup
}

# pcmk_move LABEL CMD...: C pings the VIP while CMD (a pcs command) moves it; waits
# until the tunnel is started on the other node and C has replies again.
pcmk_move() {
  local label=$1; shift
  local from to; from=$(vip_holder); to=a; [ "$from" = a ] && to=b
  local plog=$LAB/ping-pcmk-$label.log
  ping_start "$plog" c $VIP; local pp=$PING_PID
  sleep 1
  cap_start "pcmk-$label" c
  local t0 t1; t0=$(now)
  "$@"
  CRM_NODE=$to wait_for 120 started_on vip-tunnel "$to" || fail "$label: vip-tunnel not started on ${to^^} within 120 s"
  t1=$(now)
  local recovered=yes
  wait_for 60 replies_since "$plog" "$t1" 3 || recovered=no
  kill $pp 2>/dev/null; wait $pp 2>/dev/null || true
  cap_stop "pcmk-$label"
  OUTAGE=$(ping_gap "$plog" "$t0")
  [ $recovered = no ] && OUTAGE=">60"
  expect "$label: C reaches the VIP on ${to^^} again" test $recovered = yes
  ESP=$(cap_count "pcmk-$label" "esp and host $VIP")
  PLAIN=$(cap_count "pcmk-$label" "host $VIP and icmp")
  expect "$label: no clear text from C to the VIP" test "$PLAIN" -eq 0
  expect "$label: C's traffic is ESP" test "$ESP" -gt 3
  CRM_NODE=$to crm crm_mon -1 > "$OUT/crm_mon-$label.txt" 2>&1
  local parts; parts="on ${to^^}: vip start $(pcmk_op_secs "$to" vip start) s, vip-tunnel start $(pcmk_op_secs "$to" vip-tunnel start) s"
  [ "$label" = "kill-$from" ] || parts="on ${from^^}: vip-tunnel stop $(pcmk_op_secs "$from" vip-tunnel stop) s, vip stop $(pcmk_op_secs "$from" vip stop) s; $parts"
  NOTE="${NOTE:+$NOTE; }$label: outage ${OUTAGE} s ($parts), Pacemaker took $(fo_secs "$t0" "$t1") s to start the tunnel on ${to^^}; crm_mon: $(grep -E 'vip-tunnel' "$OUT/crm_mon-$label.txt" | tr -s ' \t' ' ' | head -1)"
  log "$NOTE"
}

scenario_pcmk_move() {
  local WAIT_POLL=$PCMK_POLL
  scenario "7a Pacemaker: pcs resource move, pcs node standby"
  pcmk_create_vip || fail "pcs resource create"
  expect "vip-tunnel started" wait_for 240 tunnel_running
  expect "vip-tunnel runs where the VIP is" started_on vip-tunnel "$(vip_holder)"
  on c ping -c 1 -W 10 $VIP >/dev/null 2>&1
  expect "C has an SA with the VIP" wait_for 60 on c ping -c 1 -W 1 $VIP
  local to; to=a; [ "$(vip_holder)" = a ] && to=b
  pcmk_move move crm pcs resource move vipgroup "$to"
  # What pcs resource clear and pcs node unstandby do, with Pacemaker's own (quicker) tools.
  crm crm_resource --clear --resource vipgroup >/dev/null 2>&1
  pcmk_move standby crm pcs node standby "$(vip_holder)"
  local h; for h in a b; do crm crm_attribute --type nodes --node "$h" --name standby --delete >/dev/null 2>&1; done
  expect "both nodes online after unstandby" wait_for 60 both_online
  expect "no failed actions" no_failed_actions
  done_scenario
}

scenario_pcmk_node_loss() {
  local WAIT_POLL=$PCMK_POLL
  scenario "7b Pacemaker: the VIP's node killed (pacemaker, corosync, pluto)"
  local from to; from=$(vip_holder); to=a; [ "$from" = a ] && to=b
  NOTE=""
  # One holder before the kill (after a split the other node would hold it already).
  expect "before the kill the tunnel runs on ${from^^} alone" \
    test "$(crm crm_resource --locate --resource vip-tunnel 2>/dev/null | grep -c 'is running on')" = 1
  expect "before the kill ${from^^} holds it" started_on vip-tunnel "$from"
  CRM_NODE=$to pcmk_move "kill-${from}" pcmk_node_kill "$from"
  CRM_NODE=$to crm crm_mon -1 > "$OUT/crm_mon-node-loss.txt" 2>&1
  expect "crm_mon on ${to^^} shows ${from^^} offline" grep -Eq "OFFLINE: \[ $from \]" "$OUT/crm_mon-node-loss.txt"
  expect "${to^^} keeps quorum (two_node)" grep -q "partition with quorum" "$OUT/crm_mon-node-loss.txt"
  done_scenario
  PCMK_DEAD=$from
}

mesh_started_on_both() {
  local out; out=$(crm crm_resource --locate --resource mesh-clone 2>/dev/null)
  grep -q 'running on: a$' <<<"$out" && grep -q 'running on: b$' <<<"$out"
}
esp_sa_ab() {  # an ESP SA each way between A and B, in A's kernel
  [ "$(ip -n lab-a xfrm state list src 192.0.2.1 dst 192.0.2.2 proto esp | grep -c '^src')" -ge 1 ] &&
  [ "$(ip -n lab-a xfrm state list src 192.0.2.2 dst 192.0.2.1 proto esp | grep -c '^src')" -ge 1 ]
}
spis_ab() { ip -n lab-a xfrm state list proto esp | awk '/spi/{print $4}' | sort | tr '\n' ' '; }
members_left() { cat "$LAB"/a/pcmk/corosync.log "$LAB"/b/pcmk/corosync.log 2>/dev/null | grep -c 'Members left: [0-9]'; }

# Every 2 s, both nodes must be members (a node lost, even briefly, is a failure);
# runs in the background while the mesh is rekeyed and restarted.
membership_watch_start() {
  : > "$LAB/membership.log"
  # Only what crm_mon positively shows counts (a node OFFLINE); a crm_mon that could not
  # answer under load is not a lost node.
  ( while :; do
      out=$(crm crm_mon -1 2>&1)
      grep -q 'OFFLINE' <<<"$out" && echo "$(now) $(grep -E 'Online|OFFLINE' <<<"$out" | tr '\n' ' ')" >> "$LAB/membership.log"
      sleep 2
    done ) &
  MEMBERSHIP_WATCH=$!; BG_PIDS+=($!)
}
membership_watch_stop() { kill "$MEMBERSHIP_WATCH" 2>/dev/null; wait "$MEMBERSHIP_WATCH" 2>/dev/null || true; }

scenario_pcmk_mesh() {
  local WAIT_POLL=$PCMK_POLL
  scenario "7c Pacemaker: mesh clone (policy=require) carries Corosync"
  local left0; left0=$(members_left)
  membership_watch_start
  crm pcs resource create mesh ocf:vipsec:mesh policy=require op monitor interval=10s clone \
    || fail "pcs resource create mesh ... clone"
  expect "the mesh clone runs on A and B" wait_for 120 mesh_started_on_both
  expect "an ESP SA each way between A and B (Corosync's packets brought them up)" wait_for 60 esp_sa_ab
  cap_start knet a udp port 5405 or esp
  sleep 5
  cap_stop knet
  ESP=$(cap_count knet "esp and host 192.0.2.2")
  PLAIN=$(cap_count knet "udp port 5405 and host 192.0.2.2")
  expect "Corosync's traffic A->B is ESP" test "$ESP" -gt 0
  expect "no Corosync packet A->B in clear" test "$PLAIN" -eq 0
  # A new master secret, the same on both nodes: reload-agent rekeys every pair.
  (umask 077; head -c 48 /dev/urandom > "$LAB/rotated.secret")
  local h; for h in a b; do install -m 0600 "$LAB/rotated.secret" "$LAB/$h/ipsec.d/mesh-master.key"; done
  local spis0; spis0=$(spis_ab)
  crm pcs resource update mesh secret_file=/etc/ipsec.d/mesh-master.key || fail "pcs resource update mesh secret_file="
  expect "the new master secret's SAs are up (new SPIs)" wait_for 120 bash -c "[ \"\$(ip -n lab-a xfrm state list proto esp | awk '/spi/{print \$4}' | sort | tr '\n' ' ')\" != '$spis0' ] && ip -n lab-a xfrm state list src 192.0.2.2 dst 192.0.2.1 proto esp | grep -q '^src'"
  grep -h 'reload-agent\|reload' "$LAB"/a/pcmk/log/pacemaker.log 2>/dev/null | grep -i 'mesh' | tail -2 > "$OUT/mesh-reload.txt"
  expect "Pacemaker reloaded the mesh (no restart)" grep -qi 'reload' "$OUT/mesh-reload.txt"
  sleep 15
  crm pcs resource restart mesh-clone >/dev/null 2>&1 || fail "pcs resource restart mesh-clone"
  expect "the mesh clone runs on A and B after the restart" wait_for 120 mesh_started_on_both
  expect "SAs up again after the restart" wait_for 60 esp_sa_ab
  sleep 15
  membership_watch_stop
  local left1; left1=$(members_left)
  expect "no node left the membership through start, rekey and restart" test "$left1" -eq "$left0"
  expect "both nodes online throughout (polled every 2 s)" test ! -s "$LAB/membership.log"
  crm crm_mon -1 > "$OUT/crm_mon-mesh.txt" 2>&1
  expect "the cluster has quorum" grep -q 'partition with quorum' "$OUT/crm_mon-mesh.txt"
  NOTE="Corosync A->B over 5 s: $ESP ESP, $PLAIN clear; membership changes during start, rekey and restart: $((left1 - left0))"
  done_scenario
}

pcmk_teardown() {
  local h
  for h in $PCMK_NODES; do
    pcmk_kill_daemons "$h"
    link_up "$h"
    ip -n "lab-$h" addr del $VIP/24 dev eth0 2>/dev/null
    ip -n "lab-$h" xfrm state flush; ip -n "lab-$h" xfrm policy flush
    rm -f "$LAB/$h/run/pluto.ctl" "$LAB/$h/run/pluto.pid"
    rm -rf "$LAB/$h/state"/* "$LAB/$h/vipsec"/* "$LAB/$h/ipsec.d"/vipsec-*
    cp "$LAB/$h/pcmk/corosync.log" "$OUT/corosync-$h.log" 2>/dev/null
    cp "$LAB/$h/pcmk/log/pacemaker.log" "$OUT/pacemaker-$h.log" 2>/dev/null
  done
  umount -R /usr/lib/ocf/resource.d 2>/dev/null; umount "$LAB/ocf-orig" 2>/dev/null
  # The lab's own plutos again, for the scenarios that follow.
  for h in $PCMK_NODES; do pluto_start "$h"; done
}
