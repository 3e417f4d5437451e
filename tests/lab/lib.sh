# Helpers of the real-kernel lab, sourced by guest.sh inside the guest. Hosts are network
# namespaces lab-NAME on one bridge (in lab-sw); host N has 192.0.2.N and 2001:db8::N.
# Every host runs its own pluto as a child of this shell (PID 1 here does not reap).

LAB=${LAB:-/tmp/vipsec-lab}
PLUTO_PIDS=()
BG_PIDS=()

log() { printf '[lab %6.1fs] %s\n' "$(elapsed)" "$*"; }
now() { date +%s.%N; }
elapsed() { echo "$(now) - $T_START" | bc; }
# on HOST CMD...: run CMD in HOST's namespace
on() { local h=$1; shift; ip netns exec "lab-$h" "$@"; }
# grep -q that reads all of its input: the lab runs with pipefail, and a grep -q that
# quits at the first match can kill the writer (SIGPIPE) and so fail the pipeline
# (the likely cause of a lab run that read "not online" of a node crm_mon showed online).
qgrep() { grep "$@" >/dev/null; }
# The IKE daemon's distribution: empty for the guest's own (the host's libreswan), or
# (chroot ROOT) once use_distro_root has switched to another root's (Debian 13's 5.2).
IN=()
# ond HOST CMD...: run the daemon side (ipsec, pluto, vipsec) in HOST's namespace.
ond() { local h=$1; shift; ip netns exec "lab-$h" "${IN[@]}" "$@"; }

bridge_up() {
  ip netns add lab-sw
  ip -n lab-sw link set lo up
  ip -n lab-sw link add br0 type bridge
  ip -n lab-sw link set br0 up
}

# host_add NAME N: a namespace with eth0 on the bridge, 192.0.2.N/24 and 2001:db8::N/64.
host_add() {
  local h=$1 n=$2
  ip netns add "lab-$h"
  ip -n "lab-$h" link set lo up
  ip link add eth0 netns "lab-$h" type veth peer name "p-$h" netns lab-sw
  ip -n lab-sw link set "p-$h" master br0
  ip -n lab-sw link set "p-$h" up
  ip -n "lab-$h" link set eth0 up
  ip -n "lab-$h" addr add "192.0.2.$n/24" dev eth0
  ip -n "lab-$h" addr add "2001:db8::$n/64" dev eth0 nodad
}

# link_up HOST: the host's link back up with its addresses (a link that went down lost
# its IPv6 address: the kernel flushes them unless keep_addr_on_down is set).
link_up() {
  local n
  n=$(ip -n "lab-$1" -4 -o addr show dev eth0 | awk '{print $4}' | grep -m1 -Eo '192\.0\.2\.[0-9]+' | cut -d. -f4)
  ip -n "lab-$1" link set eth0 up
  [ -n "$n" ] && ip -n "lab-$1" addr add "2001:db8::$n/64" dev eth0 nodad 2>/dev/null
  return 0
}

# pluto_start HOST: its own rundir, NSS db, ipsec.d; the secrets file includes ipsec.d/*.secrets
# like the stock /etc/ipsec.secrets does.
pluto_start() {
  local h=$1 d=$LAB/$1
  mkdir -p "$d/run" "$d/nss" "$d/ipsec.d" "$d/state" "$d/vipsec"
  [ -f "$d/nss/cert9.db" ] || "${IN[@]}" ipsec initnss --nssdir "$d/nss" >/dev/null
  (umask 077; echo "include $d/ipsec.d/*.secrets" > "$d/ipsec.secrets")
  printf 'config setup\n\tlogfile=%s/pluto.log\n\tplutodebug=none\n' "$d" > "$d/ipsec.conf"
  rm -f "$d/run/pluto.ctl" "$d/run/pluto.pid"
  ond "$h" ipsec pluto --nofork --config "$d/ipsec.conf" --rundir "$d/run" --nssdir "$d/nss" \
    --ipsecdir "$d/ipsec.d" --secretsfile "$d/ipsec.secrets" --logfile "$d/pluto.log" \
    --no-dnssec </dev/null >>"$d/pluto.out" 2>&1 &
  eval "PLUTO_$h=$!"
  PLUTO_PIDS+=($!)
  wait_socket "$d/run/pluto.ctl" 10 || { log "pluto on $h did not create its control socket"; return 1; }
}

# wait_socket PATH SECONDS: until a daemon has created its socket.
wait_socket() {
  local i
  for i in $(seq $(( $2 * 20 ))); do
    [ -S "$1" ] && return 0
    sleep 0.05
  done
  return 1
}

pluto_pid() { eval "echo \${PLUTO_$1:-}"; }

pluto_stop() {
  local h=$1 pid
  pid=$(pluto_pid "$h")
  whack "$h" --shutdown >/dev/null 2>&1 || true
  [ -n "$pid" ] && { wait "$pid" 2>/dev/null || true; }
}

# pluto_kill HOST: SIGKILL to pluto itself (the `ipsec` wrapper is only its parent).
pluto_kill() {
  kill -9 "$(cat "$LAB/$1/run/pluto.pid")"
  wait "$(pluto_pid "$1")" 2>/dev/null || true
  rm -f "$LAB/$1/run/pluto.pid"
}

whack() { local h=$1; shift; ond "$h" ipsec whack --ctlsocket "$LAB/$h/run/pluto.ctl" "$@"; }
# What `ipsec auto --add` runs (libreswan 5 deprecates `ipsec auto`).
addconn() { ond "$1" ipsec addconn --ctlsocket "$LAB/$1/run/pluto.ctl" --config "$2" "$3" >/dev/null; }

# use_distro_root ROOT LABEL: every pluto is stopped and started again from ROOT (a
# distribution root such as tests/debian13-root.sh makes), with fresh NSS databases;
# later scenarios' names end in " [LABEL]". The guest sees ROOT's files but not the
# host's mounts under it: /proc, /sys, /dev, /tmp and the checkout are bound here.
use_distro_root() {
  local root=$1 h d
  for h in $(ip netns list | awk '/^lab-/{print substr($1,5)}'); do
    [ -S "$LAB/$h/run/pluto.ctl" ] && pluto_stop "$h"
  done
  # Mounted over whatever the guest sees there (the host's own mounts may show through).
  mount -t proc proc "$root/proc"
  for d in /sys /dev /tmp "$REPO"; do mount --rbind "$d" "$root$d" || return 1; done

  IN=(chroot "$root")
  SCEN_SUFFIX=" [$2]"
  for h in a b c d o; do
    rm -rf "$LAB/$h/nss" "$LAB/$h/ipsec.d" "$LAB/$h/state" "$LAB/$h/vipsec"
    pluto_start "$h" || return 1
  done
  log "plutos restarted from $root: $("${IN[@]}" ipsec --version | head -1)"
}

# Captures: cap_start NAME HOST [tcpdump args...] (outbound only by default, so a
# receiver's decrypted copies are never counted); cap_count NAME FILTER.
cap_start() {
  local name=$1 h=$2; shift 2
  on "$h" tcpdump -U -n -i eth0 -Q out -w "$LAB/$name.pcap" "$@" >/dev/null 2>&1 &
  eval "CAP_${name//-/_}=$!"
  # tcpdump needs a moment to attach under emulation: its file header comes first, the
  # capture a little later (a transfer right after the header was seen once went
  # uncounted).
  local i
  for i in $(seq 50); do [ -s "$LAB/$name.pcap" ] && break; sleep 0.1; done
  sleep 0.5
}
cap_stop() {
  local pid; eval "pid=\$CAP_${1//-/_}"
  sleep 0.3
  kill -TERM "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true
}
cap_count() { tcpdump -n -r "$LAB/$1.pcap" "$2" 2>/dev/null | wc -l; }

# udp_stream_start HOST DST PORT: a datagram every 50 ms from HOST, in the background,
# until udp_stream_stop. Started with ip netns exec itself (it execs the loop), not
# through `on`: a backgrounded function is a subshell, and killing it left the loop
# running (it kept triggering new SAs A->B in scenario 6b).
udp_stream_start() {
  ip netns exec "lab-$1" bash -c "while :; do echo x > /dev/udp/$2/$3; sleep 0.05; done" >/dev/null 2>&1 &

  UDP_STREAM_PID=$!
  BG_PIDS+=($UDP_STREAM_PID)
}
udp_stream_stop() { kill "$UDP_STREAM_PID" 2>/dev/null; wait "$UDP_STREAM_PID" 2>/dev/null || true; }


# ESP packet counters of the kernel's SAs from SRC to DST in HOST (sum over SAs).
xfrm_packets() {
  ip -n "lab-$1" -s xfrm state list src "$2" dst "$3" proto esp 2>/dev/null |
    awk '/lifetime current:/{getline; s+=$2} END{print s+0}'
}

# wait_for SECONDS CMD...: poll CMD until it succeeds
wait_for() {
  local t=$1; shift
  local end; end=$(echo "$(now) + $t" | bc)
  while :; do
    "$@" >/dev/null 2>&1 && return 0
    [ "$(echo "$(now) > $end" | bc)" = 1 ] && return 1
    sleep "${WAIT_POLL:-0.2}"
  done
}

# Results: one scenario at a time. check COND-CMD... / fail MSG accumulate; done_scenario
# writes a row of the summary table.
scenario() { SCEN="$1${SCEN_SUFFIX:-}"; SCEN_FAIL=(); NOTE=""; OUTAGE=-; ESP=-; PLAIN=-; SCEN_T0=$(now); log "=== $SCEN"; }

fail() { SCEN_FAIL+=("$*"); log "FAIL: $*"; }
expect() {  # expect "what" CMD...: CMD must succeed
  local what=$1; shift
  if "$@" >/dev/null 2>&1; then log "ok: $what"; else fail "$what"; fi
}
expect_code() {  # expect_code WANT "what" CMD...
  local want=$1 what=$2 got; shift 2
  "$@" >"$LAB/last.out" 2>&1 && got=0 || got=$?
  if [ "$got" = "$want" ]; then log "ok: $what (exit $got)"
  else fail "$what: exit $got, expected $want: $(grep -m1 ocf-exit-reason "$LAB/last.out" || tail -1 "$LAB/last.out")"; fi
}
done_scenario() {
  local result=pass detail=""
  [ ${#SCEN_FAIL[@]} -gt 0 ] && { result=FAIL; detail=$(IFS=';'; echo "${SCEN_FAIL[*]}"); }
  # A passing scenario's row may carry its figures (NOTE).
  [ $result = pass ] && detail=${NOTE:-}
  detail=${detail//$'\t'/ }   # one row per scenario: a tab in a note would split it
  local secs; secs=$(printf '%.0f' "$(echo "$(now) - $SCEN_T0" | bc)")
  printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$SCEN" "$result" "$OUTAGE" "$ESP" "$PLAIN" "$secs" "$detail" >> "$OUT/results.tsv"
  log "=== $SCEN: $result"
}

# ping_start LOG HOST DEST: ping every 0.1 s with timestamps, in the background; PING_PID
# is ping itself (not a subshell: a background job here ignores SIGINT, and killing a
# subshell would leave ping running).
ping_start() {
  ip netns exec "lab-$2" ping -D -i 0.1 -W 1 "$3" > "$1" 2>&1 &
  PING_PID=$!
  BG_PIDS+=($PING_PID)
}
# Requests without a reply among those up to the last one answered (icmp_seq from 1).
ping_lost() {
  awk -F'icmp_seq=' '/bytes from/ { split($2, a, " "); n = a[1] + 0; seen[n] = 1; if (n > max) max = n }
    END { lost = 0; for (i = 1; i <= max; i++) if (!(i in seen)) lost++; print lost + 0 }' "$1"
}

# Largest gap (s) between consecutive replies on a `ping -D` log, from time FROM on.
ping_gap() {
  awk -v from="$2" -F'[][]' '/bytes from/ { t=$2+0; if (t >= from) { if (last) { g=t-last; if (g>max) max=g } } last=t }
    END { printf "%.1f", max+0 }' "$1"
}
replies_since() { [ "$(ping_replies_after "$1" "$2")" -gt "$3" ]; }
ping_replies_after() { awk -v from="$2" -F'[][]' '/bytes from/ && $2+0 >= from {n++} END{print n+0}' "$1"; }

cleanup_all() {
  local p h
  for p in "${BG_PIDS[@]}"; do kill "$p" 2>/dev/null || true; wait "$p" 2>/dev/null || true; done
  for h in $(ip netns list | awk '/^lab-/{print substr($1,5)}'); do
    [ -S "$LAB/$h/run/pluto.ctl" ] && pluto_stop "$h"
  done
  for p in "${PLUTO_PIDS[@]}"; do kill "$p" 2>/dev/null || true; wait "$p" 2>/dev/null || true; done
}

# strongSwan's charon in place of a host's pluto (issue 17): run from the strongSwan root
# LAB_SSROOT (tests/strongswan-root.sh; charon cannot be installed beside libreswan),
# with its own strongswan.conf and VICI socket under $LAB/HOST/charon. The hosts in
# CHARON_HOSTS run charon, and the agents there run from that root with ike=strongswan.
CHARON_HOSTS=""
is_charon() { [[ " $CHARON_HOSTS " == *" $1 "* ]]; }
vici_socket() { echo "$LAB/$1/charon/charon.vici"; }
# The agent as a charon host runs it: from the root (the build directory may not be
# bound there; /tmp is).
charon_agent() { local h=$1; shift; ip netns exec "lab-$h" chroot "$LAB_SSROOT" "$LAB/vipsec-ss" "$@"; }

charon_root_up() {
  [ -n "${CHARON_ROOT_UP:-}" ] && return 0
  mountpoint -q "$LAB_SSROOT/proc" || mount -t proc proc "$LAB_SSROOT/proc"
  local d
  for d in /sys /dev /tmp; do mount --rbind "$d" "$LAB_SSROOT$d" || return 1; done
  cp "$VIPSEC" "$LAB/vipsec-ss"
  CHARON_ROOT_UP=1
}

charon_start() {
  local h=$1 d=$LAB/$1/charon
  mkdir -p "$d"
  cat > "$d/strongswan.conf" <<CONF
charon {
  install_routes = no
  filelog {
    log {
      path = $d/charon.log
      default = 1
      ike = 2
      flush_line = yes
    }
  }
  plugins {
    vici {
      socket = unix://$d/charon.vici
    }
  }
}
CONF
  rm -f "$d/charon.vici"
  ip netns exec "lab-$h" sh -c 'mount -t tmpfs run "$0/run" && exec chroot "$0" env STRONGSWAN_CONF="$1" /usr/lib/ipsec/charon' \
    "$LAB_SSROOT" "$d/strongswan.conf" </dev/null >>"$d/charon.out" 2>&1 &
  eval "CHARON_$h=$!"
  BG_PIDS+=($!)
  wait_socket "$d/charon.vici" 20 || { log "charon on $h did not open its VICI socket"; return 1; }
}

charon_stop() {
  local pid; eval "pid=\${CHARON_$1:-}"
  [ -n "$pid" ] && { kill "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true; }
  eval "CHARON_$1="
}

# daemon_stop HOST / daemon_start HOST: whichever IKE daemon the host runs; a stop also
# flushes the host's kernel state (a rebooted daemon finds none).
daemon_stop() {
  if is_charon "$1"; then charon_stop "$1"; else pluto_stop "$1"; fi
  ip -n "lab-$1" xfrm state flush; ip -n "lab-$1" xfrm policy flush
}
daemon_start() { if is_charon "$1"; then charon_start "$1"; else pluto_start "$1"; fi; }
daemon_restart() { daemon_stop "$1"; daemon_start "$1"; }

# use_charon HOST / use_pluto HOST: switch the host's IKE daemon.
use_charon() {
  charon_root_up || return 1
  daemon_stop "$1"
  is_charon "$1" || CHARON_HOSTS="$CHARON_HOSTS $1"
  charon_start "$1" || return 1
  log "${1^^} runs charon: $(grep -m1 -o 'strongSwan [0-9.]*' "$LAB/$1/charon/charon.log" || echo '?')"
}
use_pluto() {
  daemon_stop "$1"
  CHARON_HOSTS=$(echo " $CHARON_HOSTS " | sed "s/ $1 / /g")
  pluto_start "$1"
}
