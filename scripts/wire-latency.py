#!/usr/bin/env python3
"""wire-latency.py PCAP PORT REPORT.json [OUT.json]: the server's answer times on the wire.

Reads a capture of loopback traffic to PORT (tcpdump -i lo -w PCAP 'tcp
port PORT', IPv4, Ethernet or Linux "cooked" framing) and, for each step of
loadgen's JSON report that carries its start time, prints the time from a
request's first payload packet to the first payload packet of its answer,
by status (503: the server's refusals) — quantiles and the share
answered in under 1 ms — for the requests whose answers were
sent in the step's settled part (from its start + settled.after to its end).
That is the answer time a client on another machine sees, less the
network: it leaves out the generator's own delays (its scheduler, its
collector) that its client-side figures include. HTTP/1.1 without
pipelining (one request in flight per connection), as loadgen sends; a
request whose connection closes unanswered is dropped. Answers are
counted by when they were sent, not by when the request was due.

With OUT.json it also writes the same figures as JSON, for `loadgen
overload-runs`: {"steps": [{"step", "status", "answers", "p50_ns",
"p90_ns", "p95_ns", "p99_ns", "max_ns", "under_1ms"}]}, under_1ms a share
from 0 to 1.
"""
import json
import struct
import sys
from collections import defaultdict


def packets(path):
    """Yields (time, src port, dst port, TCP flags, payload) of TCP/IPv4
    packets that carry a payload or open or close a connection."""
    with open(path, "rb") as f:
        head = f.read(24)
        magic = struct.unpack("<I", head[:4])[0]
        if magic in (0xA1B2C3D4, 0xA1B23C4D):
            end = "<"
        elif magic in (0xD4C3B2A1, 0x4D3CB2A1):
            end = ">"
        else:
            sys.exit("wire-latency: %s is not a pcap file" % path)
        nano = magic in (0xA1B23C4D, 0x4D3CB2A1)
        link = struct.unpack(end + "I", head[20:24])[0]
        skip = {1: 14, 113: 16}.get(link)  # Ethernet, Linux cooked
        if skip is None:
            sys.exit("wire-latency: link type %d not supported" % link)
        while True:
            rec = f.read(16)
            if len(rec) < 16:
                return
            sec, frac, incl, _ = struct.unpack(end + "IIII", rec)
            data = f.read(incl)
            ip = data[skip:]
            if len(ip) < 20 or ip[0] >> 4 != 4 or ip[9] != 6:
                continue
            ihl = (ip[0] & 15) * 4
            total = struct.unpack(">H", ip[2:4])[0]
            tcp = ip[ihl:]
            if len(tcp) < 20:
                continue
            sport, dport = struct.unpack(">HH", tcp[:4])
            off = (tcp[12] >> 4) * 4
            size = total - ihl - off  # the payload's length, even if cut
            flags = tcp[13]
            if size <= 0 and not flags & 7:  # a bare ACK
                continue
            payload = tcp[off:] if size > 0 else b""
            yield sec + frac / (1e9 if nano else 1e6), sport, dport, flags, payload


def quantile(v, q):
    return v[min(len(v) - 1, int(q * len(v)))]


def main():
    if len(sys.argv) not in (4, 5):
        sys.exit(__doc__)
    path, port, report = sys.argv[1], int(sys.argv[2]), sys.argv[3]
    out = sys.argv[4] if len(sys.argv) == 5 else None
    steps = []
    for s in json.load(open(report))["steps"]:
        if not s.get("start_unix_ns"):
            continue
        t = s["start_unix_ns"] / 1e9
        after = s.get("settled", {}).get("after_ns", 0) / 1e9
        steps.append((s["step"], t + after, t + s["duration_ns"] / 1e9, defaultdict(list)))
    if not steps:
        sys.exit("wire-latency: the report's steps carry no start time")
    sent = {}  # client port -> time of the request's first packet
    for t, sport, dport, flags, payload in packets(path):
        client = dport if sport == port else sport
        if flags & 7:  # FIN, SYN or RST: a request left unanswered ends here
            sent.pop(client, None)
        if not payload:
            continue
        if dport == port:
            sent.setdefault(sport, t)
        elif sport == port and dport in sent:
            t0 = sent.pop(dport)
            status = payload[9:12].decode("ascii", "replace") if payload.startswith(b"HTTP/1.1 ") else "?"
            for _, lo, hi, by in steps:
                if lo <= t < hi:
                    by[status].append(t - t0)
    rows = []
    for name, _, _, by in steps:
        for status in sorted(by):
            v = sorted(by[status])
            row = {"step": name, "status": status, "answers": len(v), "max_ns": round(v[-1] * 1e9),
                   "under_1ms": sum(1 for d in v if d < 1e-3) / len(v)}
            for q in (50, 90, 95, 99):
                row["p%d_ns" % q] = round(quantile(v, q / 100) * 1e9)
            rows.append(row)
    print("| step | status | answers | p50 | p90 | p95 | p99 | max | under 1 ms |")
    print("|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        print("| %s | %s | %d | %.3f ms | %.3f ms | %.3f ms | %.3f ms | %.3f ms | %.2f %% |" % (
            r["step"], r["status"], r["answers"], *(r[k] / 1e6 for k in ("p50_ns", "p90_ns", "p95_ns", "p99_ns", "max_ns")),
            100 * r["under_1ms"]))
    if out:
        with open(out, "w") as f:
            json.dump({"steps": rows}, f, indent=1)


if __name__ == "__main__":
    main()
