#!/usr/bin/env python3
"""Describe a capture with tshark, and build/verify test/captures/MANIFEST.json.

  analyze.py describe PCAP           -> JSON: ipVersion, frames, properties, connections
  analyze.py environment OUT DEV=ETHTOOL_K_FILE...
                                     -> tools, kernel, offload state; exits 1 if an
                                        offload that re-segments is still on
  analyze.py manifest OUT META...    -> verifies each capture against its meta file
                                        (written by record.sh) and writes the manifest;
                                        exits 1, naming what is missing, if a capture
                                        lacks what its scenario is for.

One definition of every property lives here; record.sh and captures.test.ts both use it.
"""

import hashlib
import json
import os
import platform
import subprocess
import sys
from datetime import datetime, timezone

# Preferences used for every tshark run: verify checksums (the recorder turns checksum
# offload off, so every checksum on the wire is real) and skip TCP reassembly, which the
# per-segment fields below do not need.
TSHARK_PREFS = [
    "-n",
    "-o", "tcp.desegment_tcp_streams:FALSE",
    "-o", "tcp.check_checksum:TRUE",
    "-o", "ip.check_checksum:TRUE",
]

# Frame-level properties: the capture has the property if at least one frame matches.
# io,stat separates filters by commas, so no filter may contain one.
FILTER_PROPERTIES = {
    "hasRetransmissions": "tcp.analysis.retransmission || tcp.analysis.fast_retransmission || tcp.analysis.spurious_retransmission",
    "hasFastRetransmissions": "tcp.analysis.fast_retransmission",
    "hasDupAcks": "tcp.analysis.duplicate_ack",
    "hasSack": "tcp.options.sack_le",
    "hasSackPermitted": "tcp.options.sack_perm",
    "hasEcnSyn": "tcp.flags.syn==1 && tcp.flags.ack==0 && tcp.flags.ece==1 && tcp.flags.cwr==1",
    "hasEcnSynAck": "tcp.flags.syn==1 && tcp.flags.ack==1 && tcp.flags.ece==1 && tcp.flags.cwr==0",
    "hasEctData": "tcp.len>0 && (ip.dsfield.ecn==2 || ipv6.tclass.ecn==2)",
    "hasCeMarks": "ip.dsfield.ecn==3 || ipv6.tclass.ecn==3",
    "hasTimestamps": "tcp.options.timestamp.tsval",
    "hasWindowScale": "tcp.options.wscale.shift",
    "hasKeepaliveAcks": "tcp.analysis.keep_alive_ack",
    "hasZeroWindow": "tcp.analysis.zero_window",
    "hasWindowUpdate": "tcp.analysis.window_update",
    "hasWindowFull": "tcp.analysis.window_full",
    "hasOutOfOrder": "tcp.analysis.out_of_order",
    "hasTsharkZeroWindowProbe": "tcp.analysis.zero_window_probe",
    "hasRst": "tcp.flags.reset==1",
    "hasCaptureGaps": "tcp.analysis.lost_segment || tcp.analysis.ack_lost_segment",
    "hasBadChecksums": "tcp.checksum.status==2 || ip.checksum.status==2",
}

# Properties that need the frame sequence, computed in describe().
COMPOSITE_PROPERTIES = {
    "hasKeepaliveProbes": "tcp.analysis.keep_alive frames sent while the peer's last advertised window was non-zero",
    "hasZeroWindowProbes": "tcp.analysis.zero_window_probe frames, or tcp.analysis.keep_alive frames sent while the peer's "
                           "last advertised window was zero (Linux probes a zero window with a zero-length segment at "
                           "snd_una-1, which tshark labels Keep-Alive)",
}

# Must be false for every capture: the data is complete and the checksums are real.
FORBIDDEN_EVERYWHERE = ["hasCaptureGaps", "hasBadChecksums"]

STREAM_FIELDS = [
    "frame.number", "tcp.stream", "ip.src", "ipv6.src", "ip.dst", "ipv6.dst",
    "tcp.srcport", "tcp.dstport", "tcp.flags", "tcp.seq_raw", "tcp.window_size_value",
    "tcp.analysis.keep_alive", "tcp.analysis.zero_window_probe", "tcp.payload",
]

SYN, RST, FIN, ACK = 0x02, 0x04, 0x01, 0x10


def tshark(args):
    proc = subprocess.run(["tshark", *TSHARK_PREFS, *args], capture_output=True, text=True)
    if proc.returncode != 0:
        raise RuntimeError(f"tshark {' '.join(args)} failed: {proc.stderr.strip()}")
    return proc.stdout


def read_check(pcap):
    """tshark must read the whole file without error or truncation."""
    proc = subprocess.run(["tshark", "-r", pcap, "-q"], capture_output=True, text=True)
    problems = [line for line in proc.stderr.splitlines() if "dangerous" not in line]
    if proc.returncode != 0 or any("cut short" in line for line in problems):
        raise RuntimeError(f"{pcap}: tshark cannot read it cleanly: {' '.join(problems)}")


def filter_counts(pcap):
    names = list(FILTER_PROPERTIES)
    for name in names:
        assert "," not in FILTER_PROPERTIES[name], name
    spec = "io,stat,0," + ",".join(FILTER_PROPERTIES[n] for n in names)
    out = tshark(["-r", pcap, "-q", "-z", spec])
    rows = [line for line in out.splitlines() if "<>" in line]
    if len(rows) != 1:
        raise RuntimeError(f"{pcap}: unexpected io,stat output:\n{out}")
    cells = [c.strip() for c in rows[0].strip().strip("|").split("|")]
    # cells: interval, then (frames, bytes) per filter
    frames = [int(cells[1 + 2 * i]) for i in range(len(names))]
    return dict(zip(names, frames))


def endpoint(addr, port):
    return f"[{addr}]:{port}" if ":" in addr else f"{addr}:{port}"


class Direction:
    """One direction of a connection, reassembled by stream offset from the ISN."""

    def __init__(self):
        self.isn = None
        self.data = bytearray()
        self.have = bytearray()  # 1 per byte received
        self.fin = False
        self.conflict = None

    def add(self, seq, payload):
        start = (seq - self.isn - 1) % 2**32
        end = start + len(payload)
        if end > len(self.data):
            grow = end - len(self.data)
            self.data += bytes(grow)
            self.have += bytes(grow)
        if any(self.have[start:end]):  # retransmitted bytes must be the same bytes
            for i, b in enumerate(payload):
                if self.have[start + i] and self.data[start + i] != b and self.conflict is None:
                    self.conflict = start + i
        self.data[start:end] = payload
        self.have[start:end] = b"\x01" * len(payload)

    def summary(self):
        return {"bytes": len(self.data), "sha256": hashlib.sha256(bytes(self.data)).hexdigest()}

    def complete(self):
        return self.isn is not None and self.conflict is None and all(self.have)


def describe(pcap):
    read_check(pcap)
    counts = filter_counts(pcap)
    out = tshark(["-r", pcap, "-T", "fields", "-E", "separator=\t", "-E", "occurrence=f",
                  *[x for f in STREAM_FIELDS for x in ("-e", f)]])
    conns = {}
    last_window = {}  # (stream, sender endpoint) -> last raw window it advertised
    keepalive = zero_window_probe = 0
    versions = set()
    frames = 0
    for line in out.splitlines():
        if not line.strip():
            continue
        frames += 1
        f = dict(zip(STREAM_FIELDS, line.split("\t")))
        if not f["tcp.stream"]:
            continue
        versions.add(6 if f["ipv6.src"] else 4)
        src = endpoint(f["ip.src"] or f["ipv6.src"], f["tcp.srcport"])
        dst = endpoint(f["ip.dst"] or f["ipv6.dst"], f["tcp.dstport"])
        stream = int(f["tcp.stream"])
        flags = int(f["tcp.flags"], 16)
        seq = int(f["tcp.seq_raw"])
        conn = conns.setdefault(stream, {"client": None, "server": None, "dirs": {}})
        if flags & SYN and not flags & ACK:
            conn["client"], conn["server"] = src, dst
        direction = conn["dirs"].setdefault(src, Direction())
        if flags & SYN:
            direction.isn = seq
        payload = bytes.fromhex(f["tcp.payload"].replace(":", ""))
        if payload and direction.isn is not None:
            direction.add(seq, payload)
        if flags & FIN:
            direction.fin = True
        if f["tcp.analysis.zero_window_probe"] or f["tcp.analysis.keep_alive"]:
            if f["tcp.analysis.zero_window_probe"] or last_window.get((stream, dst)) == 0:
                zero_window_probe += 1
            else:
                keepalive += 1
        last_window[(stream, src)] = int(f["tcp.window_size_value"])
    counts["hasKeepaliveProbes"] = keepalive
    counts["hasZeroWindowProbes"] = zero_window_probe

    connections = []
    for stream in sorted(conns):
        c = conns[stream]
        c2s = c["dirs"].get(c["client"], Direction())
        s2c = c["dirs"].get(c["server"], Direction())
        connections.append({
            "client": c["client"], "server": c["server"],
            "c2s": c2s.summary(), "s2c": s2c.summary(),
            "complete": c2s.complete() and s2c.complete(),
            "closed": c2s.fin and s2c.fin,
            "_s2c": bytes(s2c.data), "_c2s": bytes(c2s.data),
        })
    return {
        "ipVersion": versions.pop() if len(versions) == 1 else sorted(versions),
        "frames": frames,
        "properties": {k: v > 0 for k, v in counts.items()},
        "propertyFrames": counts,
        "connections": connections,
    }


def public(description):
    """Drop the raw stream bytes kept for verification."""
    d = dict(description)
    d["connections"] = [{k: v for k, v in c.items() if not k.startswith("_")} for c in d["connections"]]
    return d


def sha256_file(path):
    with open(path, "rb") as f:
        return hashlib.sha256(f.read()).hexdigest()


def verify(meta, d):
    """Everything the manifest will claim about a capture, checked against the capture."""
    problems = []
    for name in meta["require"]:
        if not d["properties"][name]:
            problems.append(f"required property {name} did not materialise")
    for name in meta.get("forbid", []) + FORBIDDEN_EVERYWHERE:
        if d["properties"][name]:
            problems.append(f"property {name} must be absent but {d['propertyFrames'][name]} frames have it")
    if d["ipVersion"] != meta["ipVersion"]:
        problems.append(f"ipVersion {d['ipVersion']} != {meta['ipVersion']}")
    conns = d["connections"]
    if len(meta.get("known", [])) not in (0, meta["connections"]):
        problems.append("meta: known payloads do not match the connection count")
    if len(conns) != meta["connections"]:
        problems.append(f"{len(conns)} connections, expected {meta['connections']}")
    for i, c in enumerate(conns):
        label = f"connection {i} ({c['client']} -> {c['server']})"
        if c["server"] != meta["server"]:
            problems.append(f"{label}: server is not {meta['server']}")
        if not c["complete"]:
            problems.append(f"{label}: a direction has a hole or inconsistent retransmission")
        if not c["closed"]:
            problems.append(f"{label}: FIN not seen both ways")
        known = meta["known"][i] if i < len(meta.get("known", [])) else {}
        if "s2cBodySha256" in known:
            body = c["_s2c"][-known["s2cBodyBytes"]:]
            if hashlib.sha256(body).hexdigest() != known["s2cBodySha256"]:
                problems.append(f"{label}: server stream does not end with the known body")
        for way in ("c2s", "s2c"):
            if f"{way}Sha256" in known and (c[way]["sha256"], c[way]["bytes"]) != (known[f"{way}Sha256"], known[f"{way}Bytes"]):
                problems.append(f"{label}: {way} stream differs from the known payload")
    if meta.get("clients") and [c["client"] for c in conns] != meta["clients"]:
        problems.append(f"clients {[c['client'] for c in conns]} != {meta['clients']}")
    return problems


def build_manifest(out_path, meta_paths):
    captures, failures = [], []
    env = {}
    for path in meta_paths:
        with open(path) as f:
            meta = json.load(f)
        if meta.get("environment"):
            env = meta
            continue
        pcap = meta["path"]
        d = describe(pcap)
        problems = verify(meta, d)
        failures += [f"{meta['file']}: {p}" for p in problems]
        pub = public(d)
        captures.append({
            "file": meta["file"],
            "scenario": meta["scenario"],
            "description": meta["description"],
            "ipVersion": pub["ipVersion"],
            "client": pub["connections"][0]["client"] if pub["connections"] else None,
            "server": meta["server"],
            "required": meta["require"],
            "properties": pub["properties"],
            "propertyFrames": pub["propertyFrames"],
            "connections": [{**c, "known": k} for c, k in zip(pub["connections"], meta.get("known", []))]
            + pub["connections"][len(meta.get("known", [])):],
            "frames": pub["frames"],
            "sizeBytes": os.path.getsize(pcap),
            "sha256": sha256_file(pcap),
        })
    if failures:
        print("capture verification FAILED:\n  " + "\n  ".join(failures), file=sys.stderr)
        return 1
    manifest = {
        "format": 1,
        "note": "Committed data recorded from real Linux TCP in network namespaces by test/captures/record.sh; "
                "every property below was verified by test/captures/analyze.py at recording time.",
        "recordedAt": datetime.now(timezone.utc).replace(microsecond=0).isoformat().replace("+00:00", "Z"),
        "kernel": platform.release(),
        "tools": env.get("tools", {}),
        "capturePoint": env.get("capturePoint"),
        "offloads": env.get("offloads", {}),
        "propertyDefinitions": {**{k: {"filter": v} for k, v in FILTER_PROPERTIES.items()},
                                **{k: {"computed": v} for k, v in COMPOSITE_PROPERTIES.items()}},
        "tsharkPreferences": TSHARK_PREFS,
        "captures": captures,
    }
    with open(out_path, "w") as f:
        json.dump(manifest, f, indent=2)
        f.write("\n")
    return 0


# Features that re-segment or rewrite checksums; all must be off on the capture link so
# that each captured frame is a real wire segment with a real checksum.
OFFLOADS_OFF = [
    "rx-checksumming", "tx-checksumming", "scatter-gather", "tcp-segmentation-offload",
    "generic-segmentation-offload", "generic-receive-offload", "large-receive-offload",
    "rx-gro-hw", "rx-gro-list", "rx-udp-gro-forwarding",
]


def parse_ethtool(text):
    feats = {}
    for line in text.splitlines():
        if ":" not in line or line.startswith("Features for"):
            continue
        name, _, rest = line.strip().partition(":")
        feats[name] = rest.strip()  # e.g. "off", "off [fixed]", "on"
    return feats


def environment(out_path, ethtool_files):
    """Record the tools, kernel and offload state; fail if a required offload is on."""
    def first_line(cmd):
        p = subprocess.run(cmd, capture_output=True, text=True)
        return ((p.stdout or p.stderr).strip().splitlines() or ["?"])[0]

    offloads, failures = {}, []
    for spec in ethtool_files:
        dev, _, path = spec.partition("=")
        with open(path) as f:
            feats = parse_ethtool(f.read())
        for name in OFFLOADS_OFF:
            if name in feats and not feats[name].startswith("off"):
                failures.append(f"{dev}: {name} is {feats[name]}")
        offloads[dev] = {
            "requiredOff": {n: feats[n] for n in OFFLOADS_OFF if n in feats},
            "fixed": sorted(n for n, v in feats.items() if "[fixed]" in v),
            "stillOn": sorted(n for n, v in feats.items() if v.startswith("on")),
        }
    if failures:
        print("offloads still on: " + "; ".join(failures), file=sys.stderr)
        return 1
    env = {
        "environment": True,
        "tools": {
            "tcpdump": first_line(["tcpdump", "--version"]),
            "tshark": first_line(["tshark", "--version"]),
            "curl": first_line(["curl", "--version"]),
            "python3": first_line(["python3", "--version"]),
            "redis-server": first_line(["redis-server", "--version"]),
            "nft": first_line(["nft", "--version"]),
        },
        "capturePoint": "tcpdump -s 0 -U --immediate-mode on the server-side veth, inside the server namespace",
        "offloads": offloads,
    }
    with open(out_path, "w") as f:
        json.dump(env, f, indent=2)
    return 0


def main(argv):
    if len(argv) >= 3 and argv[1] == "environment":
        return environment(argv[2], argv[3:])
    if len(argv) >= 3 and argv[1] == "describe":
        print(json.dumps(public(describe(argv[2])), indent=2))
        return 0
    if len(argv) >= 4 and argv[1] == "manifest":
        return build_manifest(argv[2], argv[3:])
    print(__doc__, file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv))
