# Scenario 5: the mesh with peers given by name, checked with DNSSEC against a zone signed
# here and served by a real named on O (192.0.2.5:53). a/b.lab.test are A's and B's
# addresses; d.lab.test's record was rewritten after signing (D's .4 became .99, as a
# forged answer would): its signature no longer validates. c.lab.test is client C's
# name; x.lab.test securely resolves to 192.0.2.99 (a valid certificate for it, presented
# from C's address, is someone else's identity).

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
c IN A 192.0.2.3
x IN A 192.0.2.99
vip IN A 192.0.2.100
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
  HA_RSCTMP=$LAB/$h/state-dns HA_LOGFILE=$LAB/agent-$h.log \
    on "$h" "$VIPSEC" mesh "$action" --instance "dnsmesh-$h" --peers "a.lab.test b.lab.test d.lab.test" \
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
  dns_poke_up() {
    local port=$((20000 + RANDOM % 20000))
    on a nc -z -w 1 192.0.2.2 $port >/dev/null 2>&1 || true
    on a nc -z -w 1 2001:db8::2 $port >/dev/null 2>&1 || true
    ip -n lab-a xfrm state list dst 192.0.2.2 | qgrep spi && ip -n lab-a xfrm state list dst 2001:db8::2 | qgrep spi
  }
  expect "A's SAs with B come up (both families)" wait_for 60 dns_poke_up
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
  done_scenario
}

# Certificates for scenario 5b: a CA of the lab's own, the VIP's and C's certificates.
lab_ca() {
  local d=$LAB/ca; mkdir -p "$d"
  openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout "$d/ca.key" \
    -out "$d/ca.crt" -subj "/O=vipsec lab/CN=vipsec lab CA" -days 30 \
    -addext basicConstraints=critical,CA:TRUE -addext keyUsage=critical,keyCertSign,cRLSign >/dev/null 2>&1
}
# lab_cert HOST NICKNAME CN: issue a certificate for CN and import it into HOST's pluto.
lab_cert() {
  local h=$1 nick=$2 cn=$3 d=$LAB/ca
  openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout "$d/$cn.key" \
    -out "$d/$cn.csr" -subj "/O=vipsec lab/CN=$cn" >/dev/null 2>&1
  printf 'subjectAltName=DNS:%s\nkeyUsage=critical,digitalSignature\nextendedKeyUsage=serverAuth,clientAuth\n' "$cn" > "$d/$cn.ext"
  openssl x509 -req -in "$d/$cn.csr" -CA "$d/ca.crt" -CAkey "$d/ca.key" -CAcreateserial \
    -out "$d/$cn.crt" -days 30 -extfile "$d/$cn.ext" >/dev/null 2>&1
  openssl pkcs12 -export -in "$d/$cn.crt" -inkey "$d/$cn.key" -name "$nick" -out "$d/$cn.p12" -passout pass: >/dev/null 2>&1
  certutil -A -d "sql:$LAB/$h/nss" -n "vipsec lab CA" -t CT,, -i "$d/ca.crt" 2>/dev/null || true
  pk12util -i "$d/$cn.p12" -d "sql:$LAB/$h/nss" -W '' >/dev/null
}

cert_agent() {  # the VIP tunnel on HOST with a generated certificate conn, DNSSEC required
  local h=$1 action=$2; shift 2
  local depth=()
  [ "$action" = monitor ] && depth=(--check-level "${DEPTH:-0}")
  HA_RSCTMP=$LAB/$h/state-cert HA_LOGFILE=$LAB/agent-$h.log \
    on "$h" "$VIPSEC" "$action" "${depth[@]}" --instance "vip-cert-$h" --tunnel rwc --vip $VIP \
    --confdir "$LAB/$h/ipsec.d" --ctlsocket "$LAB/$h/run/pluto.ctl" --auth cert --cert vip \
    --resolver 192.0.2.5 --dnssec_anchor "$DNS_DIR/anchor.key" "$@"
}

# client_cert_conn NICK: C's conn to the VIP, authenticating with its certificate NICK.
client_cert_conn() {
  cat > "$LAB/c/ipsec.d/tovipc.conf" <<CONF
conn tovipc
	left=192.0.2.3
	leftcert=$1
	leftid=%fromcert
	leftauth=ecdsa
	right=$VIP
	rightid=%fromcert
	rightauth=ecdsa
	ikev2=insist
	type=transport
	ike=aes_gcm256-sha2_256-dh19
	esp=aes_gcm256
	auto=ignore
CONF
  whack c --name tovipc --delete >/dev/null 2>&1 || true
  addconn c "$LAB/c/ipsec.d/tovipc.conf" tovipc
  whack c --name tovipc --initiate --asynchronous >/dev/null 2>&1 || true
}

scenario_vip_cert_names() {
  scenario "5b VIP tunnel: certificate names checked with DNSSEC"
  lab_ca
  lab_cert a vip vip.lab.test
  lab_cert c good c.lab.test
  lab_cert c other x.lab.test
  lab_cert c noname client
  on a ip addr add $VIP/24 dev eth0
  expect_code 0 "start on A (auth=cert, no peer_id)" cert_agent a start
  client_cert_conn good
  expect "C's certificate SA with the VIP is up" wait_for 60 established_child a 192.0.2.3
  whack a --status > "$OUT/status-cert-a.txt" 2>&1
  whack a --showstates > "$OUT/showstates-cert-a.txt" 2>&1
  whack a --trafficstatus > "$OUT/trafficstatus-cert-a.txt" 2>&1
  DEPTH=10 expect_code 0 "monitor on A: c.lab.test resolves to C's address" cert_agent a monitor
  expect "C pings the VIP over its certificate SA" on c ping -c 3 -i 0.2 -W 2 $VIP
  # The same client, now presenting a valid certificate whose name is someone else's.
  client_cert_conn other
  expect "C's SA with the other certificate is up" wait_for 60 bash -c \
    "ip netns exec lab-a ipsec whack --ctlsocket $LAB/a/run/pluto.ctl --trafficstatus | grep -q 'CN=x.lab.test'"
  expect_code 1 "monitor on A refuses x.lab.test from C's address" cert_agent a monitor
  expect "the reason names x.lab.test" grep -q "x.lab.test" "$LAB/last.out"
  # That IKE SA is gone (C's pluto keeps its conn up and comes back with a new one,
  # which the next monitor disconnects again).
  local serial; serial=$(grep -o 'its IKE SA #[0-9]*' "$LAB/last.out" | head -1 | grep -o '[0-9]*$')
  expect "A deleted that IKE SA (#${serial:-?})" bash -c "[ -n '$serial' ] && ! ip netns exec lab-a ipsec whack --ctlsocket $LAB/a/run/pluto.ctl --showstates | grep -q '^[0-9]* #$serial: '"
  # A valid certificate whose name is no host (CN=client): nothing DNSSEC could confirm,
  # so under require it is refused, not waved through.
  client_cert_conn noname
  expect "C's SA with the nameless certificate is up" wait_for 60 bash -c \
    "ip netns exec lab-a ipsec whack --ctlsocket $LAB/a/run/pluto.ctl --trafficstatus | grep -q 'CN=client'"
  expect_code 1 "monitor on A refuses an identity that names no host" cert_agent a monitor
  expect "the reason says it names no host" grep -q "names no host" "$LAB/last.out"
  whack c --name tovipc --delete >/dev/null 2>&1 || true

  expect_code 0 "stop on A" cert_agent a stop
  on a ip addr del $VIP/24 dev eth0
  done_scenario
}

cert_mesh_agent() {  # cert_mesh_agent HOST NICKNAME ACTION...: the mesh of A and B, by certificate
  local h=$1 nick=$2 action=$3; shift 3
  HA_RSCTMP=$LAB/$h/state-cmesh HA_LOGFILE=$LAB/agent-$h.log \
    on "$h" "$VIPSEC" mesh "$action" --instance "cmesh-$h" --peers "192.0.2.1 192.0.2.2" \
    --auth cert --cert "$nick" --ctlsocket "$LAB/$h/run/pluto.ctl" --confdir "$LAB/$h/ipsec.d" \
    --policy use --resolver 192.0.2.5 --dnssec_anchor "$DNS_DIR/anchor.key" "$@"
}

scenario_mesh_cert_names() {
  scenario "5c mesh by certificate: names checked with DNSSEC"
  lab_cert a node a.lab.test
  lab_cert b node b.lab.test
  lab_cert b impostor x.lab.test
  cmesh_up() {
    on a nc -z -w 1 192.0.2.2 $((20000 + RANDOM % 20000)) >/dev/null 2>&1 || true
    ip -n lab-a xfrm state list dst 192.0.2.2 | qgrep spi
  }
  expect_code 0 "mesh start on A (auth=cert)" cert_mesh_agent a node start
  expect_code 0 "mesh start on B (auth=cert, b.lab.test)" cert_mesh_agent b node start
  expect "A's certificate SA with B comes up" wait_for 60 cmesh_up
  expect_code 0 "monitor on A: b.lab.test resolves to B" cert_mesh_agent a node monitor
  # B now presents a valid certificate for a name that resolves elsewhere. Both restart:
  # a conn with rightid=%fromcert keeps the first certificate's identity it saw (pluto
  # itself then refuses another), so what a fresh start accepts is the case to check.
  expect_code 0 "mesh stop on A" cert_mesh_agent a node stop
  expect_code 0 "mesh stop on B" cert_mesh_agent b node stop
  expect_code 0 "mesh start on B with x.lab.test's certificate" cert_mesh_agent b impostor start
  expect_code 0 "mesh start on A" cert_mesh_agent a node start
  impostor_up() {
    on a nc -z -w 1 192.0.2.2 $((20000 + RANDOM % 20000)) >/dev/null 2>&1 || true
    whack a --trafficstatus | qgrep 'CN=x.lab.test'
  }
  expect "B's SA with the impostor certificate comes up" wait_for 60 impostor_up
  expect_code 190 "monitor on A: degraded, B refused" cert_mesh_agent a node monitor
  expect "the reason names B and x.lab.test" grep -q "192.0.2.2 (refused by DNSSEC: peer 192.0.2.2 presented x.lab.test" "$LAB/last.out"
  for h in a b; do cert_mesh_agent "$h" node stop >/dev/null 2>&1 || true; done
  done_scenario
}
