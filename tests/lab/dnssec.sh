# Scenario 5: the mesh with peers given by name, checked with DNSSEC against a zone signed
# here and served by a real named on O (192.0.2.5:53). a/b.lab.test are A's and B's
# addresses; d.lab.test's record was rewritten after signing (D's .4 became .99, as a
# forged answer would): its signature no longer validates.

DNS_DIR=$LAB/dns
NAMED_PID=

named_start() {
  mkdir -p "$DNS_DIR"; cd "$DNS_DIR" || return 1
  dnssec-keygen -q -a ECDSAP256SHA256 -f KSK -n ZONE lab.test >/dev/null
  dnssec-keygen -q -a ECDSAP256SHA256 -n ZONE lab.test >/dev/null
  cat > zone <<ZONE
\$TTL 300
@ IN SOA ns.lab.test. admin.lab.test. 1 3600 600 86400 300
@ IN NS ns.lab.test.
ns IN A 192.0.2.5
a IN A 192.0.2.1
a IN AAAA 2001:db8::1
b IN A 192.0.2.2
b IN AAAA 2001:db8::2
d IN A 192.0.2.4
ZONE
  cat zone K*.key > tosign
  dnssec-signzone -q -K . -o lab.test -N INCREMENT -f signed tosign >/dev/null || return 1
  sed -i -E 's/([[:space:]])192\.0\.2\.4$/\1192.0.2.99/' signed
  grep -q '192.0.2.99$' signed || return 1
  grep -h DNSKEY K*.key | grep -v '^;' > anchor.key
  cat > named.conf <<CONF
options { directory "$DNS_DIR"; listen-on port 53 { 192.0.2.5; }; listen-on-v6 { none; };
  recursion no; dnssec-validation no; pid-file none; };
zone "lab.test" { type primary; file "$DNS_DIR/signed"; };
CONF
  cd - >/dev/null || true
  on o named -g -u root -n 1 -c "$DNS_DIR/named.conf" >"$DNS_DIR/named.log" 2>&1 &
  NAMED_PID=$!
  BG_PIDS+=($NAMED_PID)
}

dns_check() {  # dns_check HOST NAME ADDRESS: vipsec's own verdict
  on "$1" "$VIPSEC" check-dns --peer "$2" --address "$3" --resolver 192.0.2.5 \
    --dnssec-anchor "$DNS_DIR/anchor.key"
}

dns_mesh_agent() {
  local h=$1 action=$2; shift 2
  HA_RSCTMP=$LAB/$h/state-dns VIPSEC_RUN_DIR=$LAB/$h/vipsec HA_LOGFILE=$LAB/agent-$h.log \
    on "$h" "$VIPSEC" mesh "$action" --instance dnsmesh --peers "a.lab.test b.lab.test d.lab.test" \
    --secret_file "$LAB/mesh.secret" --ctlsocket "$LAB/$h/run/pluto.ctl" \
    --confdir "$LAB/$h/ipsec.d" --policy use --dnssec require --resolver 192.0.2.5 \
    --dnssec_anchor "$DNS_DIR/anchor.key" "$@"
}

scenario_dnssec() {
  scenario "5 DNSSEC: a forged name gets no tunnel"
  named_start || fail "cannot sign the lab zone"
  expect "named answers with a validated A for b.lab.test" wait_for 30 dns_check a b.lab.test 192.0.2.2
  expect_code 1 "check-dns refuses the forged d.lab.test" dns_check a d.lab.test 192.0.2.99
  local h
  for h in a b; do expect_code 0 "mesh start by name on ${h^^}" dns_mesh_agent "$h" start; done
  # A's conns: B (both families), never D: d.lab.test does not resolve to D.
  expect "A has an out policy toward B" bash -c "ip -n lab-a xfrm policy list dst 192.0.2.2/32 dir out | grep -q 'proto esp'"
  expect "A has no ESP policy toward D's address" bash -c "! ip -n lab-a xfrm policy list dst 192.0.2.4/32 dir out | grep -q 'proto esp'"
  expect "A has no ESP policy toward d.lab.test's address" bash -c "! ip -n lab-a xfrm policy list dst 192.0.2.99/32 dir out | grep -q 'proto esp'"
  dns_mesh_agent a monitor --json > "$LAB/dns-monitor.json" 2>&1
  expect "A's monitor names d.lab.test as refused by DNSSEC" grep -q '"d.lab.test"' "$LAB/dns-monitor.json"
  # policy=use lets the first packets pass while the SA is negotiated: bring it up first.
  on a nc -z -w 1 192.0.2.2 9 >/dev/null 2>&1 || true
  on a nc -z -w 1 2001:db8::2 9 >/dev/null 2>&1 || true
  expect "A's SAs with B come up (both families)" wait_for 60 bash -c \
    "ip -n lab-a xfrm state list dst 192.0.2.2 | grep -q spi && ip -n lab-a xfrm state list dst 2001:db8::2 | grep -q spi"
  cap_start dns a
  expect "TCP A->B (named peer) arrives" tcp_transfer a b 6301 192.0.2.2
  expect "TCP A->B over IPv6 (named peer) arrives" tcp_transfer a b 6302 2001:db8::2
  expect "TCP A->D arrives (D is no peer: clear, as under no mesh)" tcp_transfer a d 6303 192.0.2.4
  cap_stop dns
  ESP=$(cap_count dns "esp and (host 192.0.2.2 or host 2001:db8::2)")
  PLAIN=$(cap_count dns "tcp port 6301 or tcp port 6302")
  local to_d; to_d=$(cap_count dns "esp and host 192.0.2.4")
  expect "A<->B is ESP" test "$ESP" -gt 0
  expect "no clear text A<->B" test "$PLAIN" -eq 0
  expect "no ESP toward D" test "$to_d" -eq 0
  for h in a b; do expect_code 0 "mesh stop on ${h^^}" dns_mesh_agent "$h" stop; done
  kill "$NAMED_PID" 2>/dev/null; wait "$NAMED_PID" 2>/dev/null || true
  done_scenario
}
