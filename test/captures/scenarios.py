#!/usr/bin/env python3
"""Traffic programs for test/captures/record.sh.

Every payload is derived from SHA-256 in counter mode over a name, so it is the same on
every machine and every run (the replay tests can regenerate it), and it is high-entropy,
so a plaintext search on an encrypted wire cannot match by accident.

Each client/server prints one JSON line with what it sent and received, which record.sh
checks against the streams reassembled from the capture.
"""

import hashlib
import json
import socket
import sys
import time


def payload(name: str, size: int) -> bytes:
    out = bytearray()
    counter = 0
    while len(out) < size:
        out += hashlib.sha256(f"ciphergate-capture/{name}/".encode() + counter.to_bytes(8, "big")).digest()
        counter += 1
    return bytes(out[:size])


def report(role: str, sent: bytes, received: bytes) -> None:
    print(json.dumps({
        "role": role,
        "sentBytes": len(sent), "sentSha256": hashlib.sha256(sent).hexdigest(),
        "receivedBytes": len(received), "receivedSha256": hashlib.sha256(received).hexdigest(),
    }), flush=True)


def family(addr: str) -> int:
    return socket.AF_INET6 if ":" in addr else socket.AF_INET


def listen(addr: str, port: int, rcvbuf: int = 0) -> socket.socket:
    s = socket.socket(family(addr), socket.SOCK_STREAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    if rcvbuf:
        # Set before listen() so the accepted socket inherits it and the window scale
        # and initial window are computed from the small buffer.
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
    s.bind((addr, port))
    s.listen(1)
    return s


def connect(saddr: str, sport: int, caddr: str, cport: int, keepalive: bool = False) -> socket.socket:
    s = socket.socket(family(saddr), socket.SOCK_STREAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    if keepalive:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)
        s.setsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPIDLE, 1)
        s.setsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPINTVL, 1)
        s.setsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPCNT, 20)
    s.bind((caddr, cport))  # fixed client port: stable 4-tuples in the manifest
    s.connect((saddr, sport))
    return s


def recv_exact(s: socket.socket, n: int) -> bytes:
    buf = bytearray()
    while len(buf) < n:
        chunk = s.recv(n - len(buf))
        if not chunk:
            raise EOFError(f"peer closed after {len(buf)} of {n} bytes")
        buf += chunk
    return bytes(buf)


def recv_all(s: socket.socket) -> bytes:
    buf = bytearray()
    while True:
        chunk = s.recv(65536)
        if not chunk:
            return bytes(buf)
        buf += chunk


# keepalive: the client sends, idles long enough for several keepalive probes, sends again.
# The server echoes every byte, so both directions are known.
KEEPALIVE_PARTS = (1000, 3000)
KEEPALIVE_IDLE_S = 4.3


def keepalive_server(addr: str, port: int) -> None:
    with listen(addr, port) as ls:
        print("ready", flush=True)
        conn, _ = ls.accept()
        with conn:
            received = bytearray()
            while True:
                chunk = conn.recv(65536)
                if not chunk:
                    break
                received += chunk
                conn.sendall(chunk)
    report("server", bytes(received), bytes(received))


def keepalive_client(saddr: str, sport: int, caddr: str, cport: int) -> None:
    data = payload("keepalive-c2s", sum(KEEPALIVE_PARTS))
    first = data[:KEEPALIVE_PARTS[0]]
    second = data[KEEPALIVE_PARTS[0]:]
    with connect(saddr, sport, caddr, cport, keepalive=True) as s:
        s.sendall(first)
        echo = recv_exact(s, len(first))
        time.sleep(KEEPALIVE_IDLE_S)  # all data acked and idle: probes every second
        s.sendall(second)
        echo += recv_exact(s, len(second))
        s.shutdown(socket.SHUT_WR)
        echo += recv_all(s)
    report("client", data, echo)


# zero-window: the server's tiny receive buffer fills while it does not read, so it
# advertises a zero window and the client's kernel probes it; then it drains and replies
# with the SHA-256 of what it got.
ZEROWIN_BYTES = 128 * 1024
ZEROWIN_RCVBUF = 4096
ZEROWIN_STALL_S = 3.2


def zerowin_server(addr: str, port: int) -> None:
    with listen(addr, port, rcvbuf=ZEROWIN_RCVBUF) as ls:
        print("ready", flush=True)
        conn, _ = ls.accept()
        with conn:
            time.sleep(ZEROWIN_STALL_S)
            received = recv_all(conn)
            reply = hashlib.sha256(received).digest()
            conn.sendall(reply)
    report("server", reply, received)


def zerowin_client(saddr: str, sport: int, caddr: str, cport: int) -> None:
    data = payload("zero-window-c2s", ZEROWIN_BYTES)
    with connect(saddr, sport, caddr, cport) as s:
        s.sendall(data)
        s.shutdown(socket.SHUT_WR)
        reply = recv_all(s)
    report("client", data, reply)


# redis: one redis-cli run per command (redis-cli's interactive/stdin mode first fetches
# COMMAND DOCS, 100+ KB that depend on the redis version). Each run gets its own fixed
# client port by narrowing the client namespace's ephemeral range to that one port, so
# the 4-tuples are stable. A fresh server with no persistence makes every reply known.
REDIS_BIG = payload("redis-big", 25 * 1024).hex().encode()  # 50 KiB printable value
REDIS_SESSION = [
    ([b"SET", b"greeting", b"hello-ciphergate"], b"+OK\r\n"),
    ([b"GET", b"greeting"], b"$16\r\nhello-ciphergate\r\n"),
    ([b"SET", b"big", REDIS_BIG], b"+OK\r\n"),
    ([b"STRLEN", b"big"], b":%d\r\n" % len(REDIS_BIG)),
    ([b"GET", b"big"], b"$%d\r\n%s\r\n" % (len(REDIS_BIG), REDIS_BIG)),
    ([b"RPUSH", b"fruits", b"apple", b"banana", b"cherry", b"durian", b"elderberry"], b":5\r\n"),
    ([b"LRANGE", b"fruits", b"0", b"-1"],
     b"*5\r\n" + b"".join(b"$%d\r\n%s\r\n" % (len(w), w) for w in
                           [b"apple", b"banana", b"cherry", b"durian", b"elderberry"])),
    ([b"DEL", b"big", b"greeting", b"fruits"], b":3\r\n"),
]


def resp_command(args: list) -> bytes:
    return b"*%d\r\n" % len(args) + b"".join(b"$%d\r\n%s\r\n" % (len(a), a) for a in args)


def redis_run(host: str, port: int, first_client_port: int) -> None:
    import subprocess
    for i, (args, reply) in enumerate(REDIS_SESSION):
        cport = first_client_port + i
        subprocess.run(["sysctl", "-q", "-w", f"net.ipv4.ip_local_port_range={cport} {cport}"], check=True)
        cmd = ["redis-cli", "-h", host, "-p", str(port), *[a.decode() for a in args]]
        out = subprocess.run(cmd, stdin=subprocess.DEVNULL, capture_output=True, check=True)
        print(f"redis {args[0].decode()} -> {len(out.stdout)} bytes of output", flush=True)


def known(c2s: bytes = None, s2c: bytes = None) -> dict:
    d = {}
    for way, data in (("c2s", c2s), ("s2c", s2c)):
        if data is not None:
            d[f"{way}Bytes"] = len(data)
            d[f"{way}Sha256"] = hashlib.sha256(data).hexdigest()
    return d


def expect(scenario: str, args: list) -> list:
    """The application payload of each connection, known before recording."""
    if scenario == "http":  # http BODYNAME SIZE COUNT: the response ends with the body
        body = payload(args[0], int(args[1]))
        entry = {"s2cBodyBytes": len(body), "s2cBodySha256": hashlib.sha256(body).hexdigest(),
                 "s2cBodyGenerator": f"scenarios.payload({args[0]!r}, {len(body)})"}
        return [entry] * int(args[2])
    if scenario == "redis":
        return [known(resp_command(a), r) for a, r in REDIS_SESSION]
    if scenario == "keepalive":
        data = payload("keepalive-c2s", sum(KEEPALIVE_PARTS))
        return [known(data, data)]
    if scenario == "zero-window":
        data = payload("zero-window-c2s", ZEROWIN_BYTES)
        return [known(data, hashlib.sha256(data).digest())]
    raise ValueError(f"no expectation for scenario {scenario}")


def main(argv: list) -> int:
    if len(argv) < 2:
        print(__doc__, file=sys.stderr)
        return 2
    cmd, args = argv[1], argv[2:]
    if cmd == "gen":  # gen NAME SIZE OUTFILE -> prints sha256
        data = payload(args[0], int(args[1]))
        with open(args[2], "wb") as f:
            f.write(data)
        print(hashlib.sha256(data).hexdigest())
    elif cmd == "redis-run":  # redis-run HOST PORT FIRST_CLIENT_PORT (inside the client netns)
        redis_run(args[0], int(args[1]), int(args[2]))
    elif cmd == "expect":  # expect SCENARIO [ARGS] -> JSON list, one entry per connection
        print(json.dumps(expect(args[0], args[1:])))
    elif cmd == "keepalive-server":
        keepalive_server(args[0], int(args[1]))
    elif cmd == "keepalive-client":
        keepalive_client(args[0], int(args[1]), args[2], int(args[3]))
    elif cmd == "zerowin-server":
        zerowin_server(args[0], int(args[1]))
    elif cmd == "zerowin-client":
        zerowin_client(args[0], int(args[1]), args[2], int(args[3]))
    else:
        print(f"unknown command {cmd}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
