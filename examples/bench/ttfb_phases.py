#!/usr/bin/env python3
"""Where a streamed answer's first byte goes, phase by phase, in nginx and
in llmgate: the kernel's own syscall events (tracefs) for the probe's
`connect`, the proxy's `accept4`, its first read of the request, its write
upstream, its first read from upstream, its write to the client, and the
probe's first read. Needs root (it writes /sys/kernel/tracing). Run after
`examples/bench/run` has built the release binaries:

    sudo python3 examples/bench/ttfb_phases.py [--requests 30]

The stack is the harness's (harness.py): the same mock, nginx and llmgate
configs, pinning and stagger. Tracing slows every phase a little, for
both proxies alike; compare the two columns, not with the harness's table.
"""

import argparse
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import harness as h

TRACING = Path("/sys/kernel/tracing")
SYSCALLS = ("connect", "accept4", "read", "recvfrom", "write", "writev", "sendto")
PHASES = [
    "connect -> accept",
    "accept -> first read of the request",
    "request read -> request written upstream",
    "upstream at work (the mock, on the other core)",
    "first upstream bytes read -> first bytes written to the client",
    "written -> read by the client",
]
# "  comm-tid  [cpu] flags  seconds: event"; comm may hold dashes.
LINE = re.compile(r"^\s*(.+)-(\d+)\s+\[\d+\]\s+\S+\s+([\d.]+): (.*)$")


def tracefs(name: str, value: str):
    (TRACING / name).write_text(value)


def start_tracing():
    if not (TRACING / "trace").exists():
        subprocess.run(["mount", "-t", "tracefs", "nodev", str(TRACING)], check=True)
    tracefs("tracing_on", "0")
    tracefs("trace", "")
    tracefs("buffer_size_kb", "65536")
    events = [f"syscalls:sys_{side}_{call}" for call in SYSCALLS for side in ("enter", "exit")]
    tracefs("set_event", "\n".join(events) + "\n")
    tracefs("tracing_on", "1")


def stop_tracing() -> str:
    tracefs("tracing_on", "0")
    text = (TRACING / "trace").read_text()
    tracefs("set_event", "")
    tracefs("trace", "")
    return text


def parse(text: str) -> list:
    events = []
    for line in text.splitlines():
        m = LINE.match(line)
        if m:
            events.append((m.group(1), int(m.group(2)), float(m.group(3)) * 1e6, m.group(4)))
    return events


def returned(event: str, call: str) -> bool:
    """A successful return (not -errno) from `call`."""
    prefix = f"sys_{call} -> "
    return event.startswith(prefix) and not event[len(prefix):].startswith("0xf")


def is_read(event: str) -> bool:
    return returned(event, "recvfrom") or returned(event, "read")


def is_write(event: str) -> bool:
    return event.startswith(("sys_writev(", "sys_write(", "sys_sendto("))


def phases(events: list) -> dict:
    """Per proxy ("nginx", "llmgate"), one list of phase durations (us) per stream."""
    def first(start, pred, within=20000):
        for j in range(start, min(len(events), start + within)):
            if pred(events[j]):
                return j
        return None

    out = {"nginx": [], "llmgate": []}
    for c, (comm, probe_tid, _, event) in enumerate(events):
        if comm != "stream-probe" or not event.startswith("sys_connect("):
            continue
        a = first(c, lambda e: e[0] != "stream-probe" and returned(e[3], "accept4"))
        if a is None or events[a][0] not in out:
            continue  # the direct stream, or an accept the trace missed
        tid = events[a][1]
        steps = [c, a]
        for pred in (lambda e: e[1] == tid and is_read(e[3]),       # the request
                     lambda e: e[1] == tid and is_write(e[3]),      # upstream
                     lambda e: e[1] == tid and is_read(e[3]),       # upstream's head
                     lambda e: e[1] == tid and is_write(e[3]),      # to the client
                     lambda e: e[1] == probe_tid and returned(e[3], "recvfrom")):
            nxt = first(steps[-1] + 1, pred)
            if nxt is None:
                break
            steps.append(nxt)
        if len(steps) == len(PHASES) + 1:
            t = [events[k][2] for k in steps]
            out[events[a][0]].append([t[k + 1] - t[k] for k in range(len(PHASES))])
    return out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--requests", type=int, default=30, help="streams per target")
    args = ap.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="llmgate-phases-"))
    procs = h.Procs()
    try:
        _, ports, _ = h.start_stack(procs, tmp)
        targets = [(port, "/v1/chat/completions",
                    h.chat_body("bench-stream" if t == "llmgate" else "mock-small", 1024, stream=True))
                   for t, port in ports.items()]
        h.probe(tmp, targets, 2, h.STREAM_STAGGER_MS)  # pools and plugin instances warm
        time.sleep(0.5)
        start_tracing()
        try:
            h.probe(tmp, targets, args.requests, h.STREAM_STAGGER_MS)
        finally:
            text = stop_tracing()
    finally:
        procs.stop()
    per_proxy = phases(parse(text))
    print(f"{args.requests} streams per target; medians (p90) in us, from tracefs syscall events\n")
    print("| phase | nginx | llmgate |\n|---|---:|---:|")
    for i, name in enumerate(PHASES):
        cells = []
        for proxy in ("nginx", "llmgate"):
            values = [row[i] for row in per_proxy[proxy]]
            cells.append(f"{statistics.median(values):.0f} ({h.pct(values, 90):.0f})" if values else "n/a")
        print(f"| {name} | {cells[0]} | {cells[1]} |")
    totals = {p: [sum(row) for row in rows] for p, rows in per_proxy.items()}
    print("| first byte, in all | " + " | ".join(
        f"{statistics.median(totals[p]):.0f} ({h.pct(totals[p], 90):.0f})" if totals[p] else "n/a"
        for p in ("nginx", "llmgate")) + " |")
    print(f"\nstreams traced: nginx {len(per_proxy['nginx'])}, llmgate {len(per_proxy['llmgate'])}")
    if not per_proxy["nginx"] or not per_proxy["llmgate"]:
        sys.exit("a proxy's phases were not found in the trace")


if __name__ == "__main__":
    main()
