#!/usr/bin/env bash
# Re-record the committed pcaps in test/captures/ from real Linux TCP, then verify each one
# against what its scenario is for and write MANIFEST.json.
#
#   sudo bash test/captures/record.sh
#
# Topology: two network namespaces joined by one veth pair, every offload that re-segments
# or fills checksums turned off on both ends:
#
#   cgcap-client  veth-c 10.77.0.1 fd77::1  <---->  veth-s 10.77.0.2 fd77::2  cgcap-server
#                  (loss rule, ecn scenario)          (tcpdump, all scenarios)
#
# tcpdump runs on the server-side veth, so for the loss scenario (server -> client data) the
# capture point is upstream of the drop: the capture holds each dropped original AND its
# retransmission. Loss is applied by nft numgen at the client's ingress because a drop on the
# server's own egress hook would happen before the tcpdump tap and hide the originals.
#
# Idempotent: fixed names, stale namespaces from a killed run are removed first, a lock
# stops two runs at once, and outputs are staged and replaced only after verification.
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
NS_C=cgcap-client NS_S=cgcap-server
DEV_C=veth-c DEV_S=veth-s
C4=10.77.0.1 S4=10.77.0.2 C6=fd77::1 S6=fd77::2
HTTP_PORT=8080 REDIS_PORT=6379 PY_PORT=9000
CAPTURES=(http-v4 http-v6 ecn-sack-loss redis keepalive zero-window many-short)

die() { echo "record.sh: $*" >&2; exit 1; }
log() { echo "== $*" >&2; }

[[ $EUID -eq 0 ]] || die "needs root (network namespaces, tcpdump, nft)"
for tool in ip ethtool nft tcpdump tshark curl python3 redis-server redis-cli ss flock cmp; do
  command -v "$tool" >/dev/null || die "missing tool: $tool"
done

exec 9>/tmp/ciphergate-record-captures.lock
flock -n 9 || die "another record.sh is running"

WORK=$(mktemp -d /tmp/cgcap.XXXXXX)
PIDS=()

cleanup() {
  local status=$?
  set +e
  for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null; done
  for pid in "${PIDS[@]}"; do wait "$pid" 2>/dev/null; done
  ip netns del "$NS_C" 2>/dev/null
  ip netns del "$NS_S" 2>/dev/null
  rm -rf "$WORK"
  ((status == 0)) || echo "record.sh: FAILED (status $status); namespaces removed, committed captures untouched" >&2
  exit "$status"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

in_c() { ip netns exec "$NS_C" "$@"; }
in_s() { ip netns exec "$NS_S" "$@"; }

# Start a background process and remember it for cleanup. Call `ip netns exec` directly
# (not through in_s, which would fork a subshell): it execs the command, so $! is the
# command itself.
bg() {
  local out=$1; shift
  "$@" >"$out" 2>&1 &
  PIDS+=($!)
  LAST_PID=$!
}

stop() {  # stop PID: stop one background process we started
  kill "$1" 2>/dev/null || true
  wait "$1" 2>/dev/null || true
}

wait_listen() {  # wait_listen NS PORT
  for _ in $(seq 100); do
    [[ -n $(ip netns exec "$1" ss -Hltn "sport = :$2") ]] && return 0
    sleep 0.1
  done
  die "nothing listens on port $2 in $1"
}

setup() {
  ip netns del "$NS_C" 2>/dev/null || true
  ip netns del "$NS_S" 2>/dev/null || true
  ip netns add "$NS_C"
  ip netns add "$NS_S"
  ip link add "$DEV_C" netns "$NS_C" type veth peer name "$DEV_S" netns "$NS_S"
  local ns dev
  for pair in "$NS_C:$DEV_C" "$NS_S:$DEV_S"; do
    ns=${pair%%:*} dev=${pair#*:}
    ip -n "$ns" link set lo up
    # rx/tx checksum and sg off too: with tx checksum offload the tap would see partial
    # checksums, and without sg the kernel cannot build TSO/GSO super-packets at all.
    ip netns exec "$ns" ethtool -K "$dev" rx off tx off sg off tso off gso off gro off lro off \
      rx-gro-list off rx-udp-gro-forwarding off tx-gso-list off >/dev/null
    ip netns exec "$ns" ethtool -k "$dev" >"$WORK/ethtool-$dev.txt"
    ip -n "$ns" link set "$dev" up
  done
  ip -n "$NS_C" addr add "$C4/24" dev "$DEV_C"
  ip -n "$NS_S" addr add "$S4/24" dev "$DEV_S"
  ip -n "$NS_C" addr add "$C6/64" dev "$DEV_C" nodad
  ip -n "$NS_S" addr add "$S6/64" dev "$DEV_S" nodad
  python3 "$HERE/analyze.py" environment "$WORK/meta-00-environment.json" \
    "$DEV_C=$WORK/ethtool-$DEV_C.txt" "$DEV_S=$WORK/ethtool-$DEV_S.txt"
}

start_capture() {  # start_capture NAME: tcpdump on the server veth, returns once capturing
  local name=$1
  bg "$WORK/$name.tcpdump.log" ip netns exec "$NS_S" tcpdump -Z root -i "$DEV_S" -n -s 0 -U --immediate-mode \
    -w "$WORK/$name.pcap" tcp
  CAPTURE_PID=$LAST_PID
  for _ in $(seq 100); do
    grep -q "listening on" "$WORK/$name.tcpdump.log" && return 0
    kill -0 "$CAPTURE_PID" 2>/dev/null || break
    sleep 0.1
  done
  cat "$WORK/$name.tcpdump.log" >&2
  die "tcpdump for $name did not start"
}

stop_capture() {  # stop_capture NAME [SETTLE_S]: let the last segments land, then stop
  local name=$1
  sleep "${2:-1}"
  kill -INT "$CAPTURE_PID"
  wait "$CAPTURE_PID" || true
  local tlog="$WORK/$name.tcpdump.log" captured received dropped
  captured=$(sed -n 's/^\([0-9]*\) packets\{0,1\} captured$/\1/p' "$tlog")
  received=$(sed -n 's/^\([0-9]*\) packets\{0,1\} received by filter$/\1/p' "$tlog")
  dropped=$(sed -n 's/^\([0-9]*\) packets\{0,1\} dropped by kernel$/\1/p' "$tlog")
  [[ -n $captured && $captured == "$received" && $dropped == 0 ]] ||
    die "$name: tcpdump lost packets ($(tr '\n' ' ' <"$tlog"))"
  log "$name: $captured packets"
}

meta() {  # meta NAME SCENARIO DESCRIPTION IPVER SERVER CLIENTS_JSON REQUIRE FORBID KNOWN_JSON
  python3 - "$WORK" "$@" <<'EOF'
import json, sys
work, name, scenario, description, ipver, server, clients, require, forbid, known = sys.argv[1:]
clients = json.loads(clients)
json.dump({
    "file": f"{name}.pcap", "path": f"{work}/{name}.pcap", "scenario": scenario,
    "description": description, "ipVersion": int(ipver), "server": server,
    "clients": clients, "connections": len(clients),
    "require": [p for p in require.split(",") if p], "forbid": [p for p in forbid.split(",") if p],
    "known": json.loads(known),
}, open(f"{work}/meta-{name}.json", "w"), indent=2)
EOF
}

endpoints() {  # endpoints ADDR FIRST_PORT COUNT -> JSON list of "addr:port"
  python3 -c 'import json,sys; a,p,n=sys.argv[1],int(sys.argv[2]),int(sys.argv[3]); h=f"[{a}]" if ":" in a else a; print(json.dumps([f"{h}:{p+i}" for i in range(n)]))' "$@"
}

expect() { python3 "$HERE/scenarios.py" expect "$@"; }

BASIC=hasSackPermitted,hasTimestamps,hasWindowScale

record_http() {
  mkdir -p "$WORK/www"
  python3 "$HERE/scenarios.py" gen http-body 204800 "$WORK/www/http-body.bin" >/dev/null
  python3 "$HERE/scenarios.py" gen ecn-body 1048576 "$WORK/www/ecn-body.bin" >/dev/null
  python3 "$HERE/scenarios.py" gen small-body 2000 "$WORK/www/small-body.bin" >/dev/null
  # python's http.server binds :: dual-stack and answers HTTP/1.0: one request per connection.
  bg "$WORK/http-server.log" ip netns exec "$NS_S" python3 -m http.server "$HTTP_PORT" --bind :: --directory "$WORK/www"
  local server_pid=$LAST_PID
  wait_listen "$NS_S" "$HTTP_PORT"
  local curl=(curl -sS --fail -g --max-time 60 -A ciphergate-capture/1)

  log "http-v4"
  start_capture http-v4
  in_c "${curl[@]}" --local-port 40080 -o "$WORK/dl-v4" "http://$S4:$HTTP_PORT/http-body.bin"
  stop_capture http-v4
  cmp "$WORK/dl-v4" "$WORK/www/http-body.bin"
  meta http-v4 "curl GET of a 200 KiB file from python3 -m http.server over IPv4" \
    "Clean IPv4 transfer on an offload-free veth; one connection." \
    4 "$S4:$HTTP_PORT" "$(endpoints $C4 40080 1)" "$BASIC" hasEcnSyn "$(expect http http-body 204800 1)"

  log "http-v6"
  start_capture http-v6
  in_c "${curl[@]}" --local-port 40080 -o "$WORK/dl-v6" "http://[$S6]:$HTTP_PORT/http-body.bin"
  stop_capture http-v6
  cmp "$WORK/dl-v6" "$WORK/www/http-body.bin"
  meta http-v6 "curl GET of a 200 KiB file from python3 -m http.server over IPv6" \
    "The http-v4 scenario over IPv6 (fd77::/64, nodad); one connection." \
    6 "[$S6]:$HTTP_PORT" "$(endpoints $C6 40080 1)" "$BASIC" hasEcnSyn "$(expect http http-body 204800 1)"

  log "ecn-sack-loss"
  in_c sysctl -q -w net.ipv4.tcp_ecn=1 net.ipv4.tcp_sack=1
  in_s sysctl -q -w net.ipv4.tcp_ecn=1 net.ipv4.tcp_sack=1
  # 5% random loss of server -> client packets of this one flow, after the capture point.
  in_c nft -f - <<EOF
table netdev cgcap_loss {
  chain ingress {
    type filter hook ingress device "$DEV_C" priority 0; policy accept;
    ip saddr $S4 tcp sport $HTTP_PORT tcp dport 40081 numgen random mod 100 < 5 counter drop
  }
}
EOF
  start_capture ecn-sack-loss
  in_c "${curl[@]}" --local-port 40081 -o "$WORK/dl-ecn" "http://$S4:$HTTP_PORT/ecn-body.bin"
  stop_capture ecn-sack-loss 2
  cmp "$WORK/dl-ecn" "$WORK/www/ecn-body.bin"
  log "ecn-sack-loss: nft dropped $(in_c nft list table netdev cgcap_loss | grep -o 'packets [0-9]*')"
  in_c nft delete table netdev cgcap_loss
  in_c sysctl -q -w net.ipv4.tcp_ecn=2
  in_s sysctl -q -w net.ipv4.tcp_ecn=2
  meta ecn-sack-loss "curl GET of a 1 MiB file with ECN requested (tcp_ecn=1 both ends), SACK on, 5% random loss server->client" \
    "Loss by nft numgen at the client's ingress, downstream of the capture point, so each lost original and its retransmission are both in the capture; SACK blocks and duplicate ACKs from the client; ECN SYN (ECE|CWR), ECN SYN-ACK (ECE) and ECT(0) data. No CE marks: nothing on the path marks." \
    4 "$S4:$HTTP_PORT" "$(endpoints $C4 40081 1)" \
    "$BASIC,hasRetransmissions,hasFastRetransmissions,hasSack,hasDupAcks,hasEcnSyn,hasEcnSynAck,hasEctData" "" \
    "$(expect http ecn-body 1048576 1)"

  log "many-short"
  start_capture many-short
  for i in $(seq 0 19); do
    in_c "${curl[@]}" --local-port $((41000 + i)) -o "$WORK/dl-small" "http://$S4:$HTTP_PORT/small-body.bin"
    cmp "$WORK/dl-small" "$WORK/www/small-body.bin"
  done
  stop_capture many-short
  meta many-short "20 sequential curl GETs of a 2000-byte file, one connection each" \
    "For flow-table tests: 20 complete short connections from fixed client ports 41000-41019." \
    4 "$S4:$HTTP_PORT" "$(endpoints $C4 41000 20)" "$BASIC" hasEcnSyn "$(expect http small-body 2000 20)"

  stop "$server_pid"
}

record_redis() {
  log "redis"
  mkdir -p "$WORK/redis"
  bg "$WORK/redis.log" ip netns exec "$NS_S" redis-server --bind "$S4" --port "$REDIS_PORT" --save '' --appendonly no \
    --protected-mode no --dir "$WORK/redis"
  local server_pid=$LAST_PID
  wait_listen "$NS_S" "$REDIS_PORT"
  start_capture redis
  in_c python3 "$HERE/scenarios.py" redis-run "$S4" "$REDIS_PORT" 40371 >&2
  stop_capture redis
  in_c sysctl -q -w net.ipv4.ip_local_port_range="32768 60999"
  stop "$server_pid"
  meta redis "redis-cli against redis-server: SET, GET, SET of a 50 KiB value, STRLEN, GET of it, RPUSH, LRANGE, DEL" \
    "One redis-cli run per command (8 short connections, client ports 40371-40378); a fresh server without persistence, so both directions of every connection are known in advance." \
    4 "$S4:$REDIS_PORT" "$(endpoints $C4 40371 8)" "$BASIC" hasEcnSyn "$(expect redis)"
}

record_python() {  # record_python NAME SERVER_CMD CLIENT_CMD CLIENT_PORT
  local name=$1
  bg "$WORK/$name-server.log" ip netns exec "$NS_S" python3 "$HERE/scenarios.py" "$2" "$S4" "$PY_PORT"
  local server_pid=$LAST_PID
  wait_listen "$NS_S" "$PY_PORT"
  start_capture "$name"
  in_c python3 "$HERE/scenarios.py" "$3" "$S4" "$PY_PORT" "$C4" "$4" >&2
  wait "$server_pid" || die "$name server failed: $(cat "$WORK/$name-server.log")"
  stop_capture "$name"
}

record_keepalive() {
  log "keepalive"
  record_python keepalive keepalive-server keepalive-client 40900
  meta keepalive "python3 client with SO_KEEPALIVE, TCP_KEEPIDLE=1, TCP_KEEPINTVL=1: send, idle 4.3 s, send, close; the server echoes" \
    "Keepalive probes (zero-length, seq = snd_una - 1) and their ACKs in the idle gap." \
    4 "$S4:$PY_PORT" "$(endpoints $C4 40900 1)" "$BASIC,hasKeepaliveProbes,hasKeepaliveAcks" \
    hasEcnSyn,hasZeroWindowProbes "$(expect keepalive)"
}

record_zero_window() {
  log "zero-window"
  record_python zero-window zerowin-server zerowin-client 40901
  meta zero-window "python3 server with SO_RCVBUF=4096 stops reading for 3.2 s while the client sends 128 KiB, then drains and replies with the SHA-256 of what it got" \
    "Zero windows from the server, the client's zero-window probes (Linux sends them as zero-length segments at snd_una - 1, which tshark labels Keep-Alive; see hasZeroWindowProbes), then window updates." \
    4 "$S4:$PY_PORT" "$(endpoints $C4 40901 1)" "$BASIC,hasZeroWindow,hasZeroWindowProbes,hasWindowUpdate" \
    hasEcnSyn,hasKeepaliveProbes "$(expect zero-window)"
}

setup
record_http
record_redis
record_keepalive
record_zero_window

log "verifying and writing the manifest"
python3 "$HERE/analyze.py" manifest "$WORK/MANIFEST.json" "$WORK"/meta-*.json

total=0
for name in "${CAPTURES[@]}"; do total=$((total + $(stat -c %s "$WORK/$name.pcap"))); done
((total < 6 * 1024 * 1024)) || die "captures total $total bytes, over the 6 MiB budget"

for name in "${CAPTURES[@]}"; do
  cp "$WORK/$name.pcap" "$HERE/$name.pcap"
  chmod 644 "$HERE/$name.pcap"
done
cp "$WORK/MANIFEST.json" "$HERE/MANIFEST.json"
log "done: ${#CAPTURES[@]} captures, $total bytes, manifest at $HERE/MANIFEST.json"
