#!/usr/bin/env python3
"""Load harness: direct-to-mock vs nginx (a bare proxy hop) vs llmgate, in one
run, interleaved, on loopback. Standard library only; started by ./run.

Every figure for a proxy is taken against the direct baseline measured in the
same round, so machine noise cancels out as far as it can.
"""

import argparse
import json
import os
import re
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import relay_floor

ROOT = Path(__file__).resolve().parents[2]
BIN = ROOT / "target" / "release"
HERE = Path(__file__).resolve().parent
KEY = "sk-bench"

# Pinning: the proxy under test gets core 0; load generator and mock share
# core 1. Both proxies run one worker (nginx worker_processes 1; llmgate,
# given one core, runs a current-thread runtime), so they compete on equal terms.
PROXY_CPU, LOAD_CPU = "0", "1"
# The mock's gap between stream chunks (ms).
CHUNK_DELAY_MS = 20
# Streams of one round start this far apart: requests and chunks (20 ms
# apart) of the three targets never arrive together, yet share the moment.
STREAM_STAGGER_MS = 6


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_port(port: int, timeout: float = 30.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"nothing listens on {port}")


def rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


class Procs:
    def __init__(self):
        self.procs = []

    def start(self, args, cpu, **kw):
        p = subprocess.Popen(["taskset", "-c", cpu, *args], **kw)
        self.procs.append(p)
        return p

    def stop(self):
        for p in self.procs:
            p.terminate()
        for p in self.procs:
            try:
                p.wait(timeout=10)
            except subprocess.TimeoutExpired:
                p.kill()


def start_mock(procs, *args) -> int:
    p = procs.start([str(BIN / "mock-upstream"), "--listen", "127.0.0.1:0", *args], LOAD_CPU,
                    stdout=subprocess.PIPE, text=True)
    line = p.stdout.readline()
    return int(re.search(r":(\d+)\s*$", line).group(1))


NGINX_CONF = """
worker_processes 1;
daemon off;
pid {tmp}/nginx.pid;
error_log {tmp}/nginx-error.log warn;
events {{ worker_connections 4096; }}
http {{
    access_log off;
    client_body_temp_path {tmp}/body;
    proxy_temp_path {tmp}/proxy;
    fastcgi_temp_path {tmp}/fastcgi;
    uwsgi_temp_path {tmp}/uwsgi;
    scgi_temp_path {tmp}/scgi;
    client_max_body_size 64m;
    client_body_buffer_size 1m;
    upstream fast {{ server 127.0.0.1:{fast}; keepalive 128; }}
    upstream slow {{ server 127.0.0.1:{stream}; keepalive 128; }}
    server {{
        listen 127.0.0.1:{port_fast};
        location / {{ proxy_pass http://fast; proxy_http_version 1.1; proxy_set_header Connection ""; proxy_buffering off; }}
    }}
    server {{
        listen 127.0.0.1:{port_stream};
        location / {{ proxy_pass http://slow; proxy_http_version 1.1; proxy_set_header Connection ""; proxy_buffering off; }}
    }}
}}
"""

LLMGATE_CONF = """
[server]
listen = "127.0.0.1:{port}"
api_keys = ["{key}"]

[[providers]]
name = "fast"
adapter = "openai"
base_url = "http://127.0.0.1:{fast}/v1"

[[providers]]
name = "stream"
adapter = "openai"
base_url = "http://127.0.0.1:{stream}/v1"

[[models]]
name = "bench"
routes = [{{ provider = "fast", model = "mock-small" }}]

[[models]]
name = "bench-stream"
routes = [{{ provider = "stream", model = "mock-small" }}]
"""

WRK_LUA = """
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Authorization"] = "Bearer {key}"
local f = io.open("{body}", "rb")
wrk.body = f:read("*a")
f:close()
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format('RESULT {{"requests":%d,"duration_us":%d,"errors":%d,"status_errors":%d,"p50":%d,"p99":%d}}\\n',
    summary.requests, summary.duration, e.connect + e.read + e.write + e.timeout, e.status,
    latency:percentile(50), latency:percentile(99)))
end
"""


def chat_body(model: str, prompt_bytes: int, stream: bool = False) -> bytes:
    # A realistic chat request: system + user message, sampling settings.
    filler = ("The quick brown fox jumps over the lazy dog. " * (prompt_bytes // 45 + 1))[:prompt_bytes]
    return json.dumps({
        "model": model,
        "messages": [
            {"role": "system", "content": "You are a helpful assistant."},
            {"role": "user", "content": filler},
        ],
        "temperature": 0.2,
        "max_tokens": 256,
        "stream": stream,
    }).encode()


def anthropic_body(model: str, prompt_bytes: int) -> bytes:
    # The same conversation as chat_body, as an Anthropic client sends it.
    filler = ("The quick brown fox jumps over the lazy dog. " * (prompt_bytes // 45 + 1))[:prompt_bytes]
    return json.dumps({
        "model": model,
        "system": "You are a helpful assistant.",
        "messages": [{"role": "user", "content": filler}],
        "temperature": 0.2,
        "max_tokens": 256,
    }).encode()


def wrk(tmp: Path, url: str, body: bytes, connections: int, seconds: int) -> dict:
    body_file = tmp / f"body-{abs(hash(body))}.json"
    body_file.write_bytes(body)
    script = tmp / f"wrk-{abs(hash(body))}.lua"
    script.write_text(WRK_LUA.format(key=KEY, body=body_file))
    threads = 1 if connections == 1 else 2
    out = subprocess.run(
        ["taskset", "-c", LOAD_CPU, "wrk", "-t", str(threads), "-c", str(connections), "-d", f"{seconds}s",
         "-s", str(script), url],
        capture_output=True, text=True, check=True,
    ).stdout
    result = json.loads(out.split("RESULT ", 1)[1].splitlines()[0])
    result["rps"] = result["requests"] / (result["duration_us"] / 1e6)
    return result


def probe(tmp: Path, targets: list, requests: int, stagger_ms: int) -> list:
    """Streams from every target at once, `requests` times; one result per target."""
    specs = []
    for i, (port, path, body) in enumerate(targets):
        body_file = tmp / f"stream-body-{i}.json"
        body_file.write_bytes(body)
        specs.append(f"127.0.0.1:{port},{path},{body_file},{KEY}")
    out = subprocess.run(
        ["taskset", "-c", LOAD_CPU, str(BIN / "stream-probe"), str(requests), str(stagger_ms), *specs],
        capture_output=True, text=True, check=True,
    ).stdout
    return json.loads(out)


def steal_ticks() -> dict:
    """Per core, the clock ticks (SC_CLK_TCK a second) the hypervisor ran something else
    while this core had work: /proc/stat's `steal` column."""
    ticks = {}
    for line in Path("/proc/stat").read_text().splitlines():
        fields = line.split()
        if fields[0] in (f"cpu{PROXY_CPU}", f"cpu{LOAD_CPU}"):
            ticks[fields[0][3:]] = int(fields[8])
    return ticks


def pct(values, p):
    values = sorted(values)
    return values[min(len(values) - 1, int(round(p / 100 * (len(values) - 1))))]


def start_stack(procs: Procs, tmp: Path):
    """The mocks, nginx and llmgate, pinned and listening. Returns the ports
    of the whole-answer and the streaming targets by name, and llmgate's process."""
    fast = start_mock(procs, "--chunks", "8")
    # --stamp: each delta carries its send time, for the added gap (stream_probe.rs).
    stream = start_mock(procs, "--chunks", "64", "--delay-ms", str(CHUNK_DELAY_MS), "--stamp")
    ports = {"direct": fast, "nginx": free_port(), "llmgate": free_port()}
    stream_ports = {"direct": stream, "nginx": free_port(), "llmgate": ports["llmgate"]}
    for d in ("body", "proxy", "fastcgi", "uwsgi", "scgi"):
        (tmp / d).mkdir()
    (tmp / "nginx.conf").write_text(NGINX_CONF.format(
        tmp=tmp, fast=fast, stream=stream, port_fast=ports["nginx"], port_stream=stream_ports["nginx"]))
    nginx_bin = shutil.which("nginx") or "/usr/sbin/nginx"
    procs.start([nginx_bin, "-c", str(tmp / "nginx.conf"), "-e", str(tmp / "nginx-error.log")], PROXY_CPU)
    (tmp / "llmgate.toml").write_text(LLMGATE_CONF.format(port=ports["llmgate"], key=KEY, fast=fast, stream=stream))
    gate_log = open(tmp / "llmgate.log", "w")
    gate = procs.start([str(BIN / "llmgate"), "serve", "--config", str(tmp / "llmgate.toml")], PROXY_CPU,
                       stdout=gate_log, stderr=gate_log, env=dict(os.environ, RUST_LOG="info"))
    for port in (ports["nginx"], stream_ports["nginx"], ports["llmgate"]):
        wait_port(port)
    return ports, stream_ports, gate


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--seconds", type=int, default=3, help="duration of each wrk measurement")
    ap.add_argument("--rounds", type=int, default=6, help="interleaved rounds per case")
    ap.add_argument("--stream-requests", type=int, default=20, help="streamed requests per target per round")
    ap.add_argument("--out", default=str(HERE / "results"))
    args = ap.parse_args()
    for tool in ("wrk", "nginx", "taskset"):
        if not shutil.which(tool) and not Path("/usr/sbin/" + tool).exists():
            sys.exit(f"{tool} is missing (./run installs it)")

    tmp = Path(tempfile.mkdtemp(prefix="llmgate-bench-"))
    procs = Procs()
    try:
        ports, stream_ports, gate = start_stack(procs, tmp)
        time.sleep(1.0)
        rss_idle = rss_kib(gate.pid)

        model_for = {"direct": "mock-small", "nginx": "mock-small", "llmgate": "bench"}
        # (name, connections, prompt bytes, llmgate's client dialect). In the
        # cross-dialect case llmgate gets an Anthropic request and translates
        # it for the OpenAI mock; direct and nginx get the OpenAI equivalent.
        cases = [
            ("c1", 1, 1024, "openai"),
            ("c64", 64, 1024, "openai"),
            ("c1-64k", 1, 64 * 1024, "openai"),
            ("c1-xdialect", 1, 1024, "anthropic"),
        ]
        raw = {case: {t: [] for t in ports} for case, _, _, _ in cases}
        streams = {t: {"ttfb": [], "gap": [], "added_gap": []} for t in ports}
        # Time the hypervisor took from each core while the streams ran.
        steal, stream_seconds = {PROXY_CPU: 0, LOAD_CPU: 0}, 0.0
        floor_gaps = []
        for r in range(args.rounds):
            for case, conns, size, dialect in cases:
                for target, port in ports.items():
                    if target == "llmgate" and dialect == "anthropic":
                        path, body = "/v1/messages", anthropic_body(model_for[target], size)
                    else:
                        path, body = "/v1/chat/completions", chat_body(model_for[target], size)
                    res = wrk(tmp, f"http://127.0.0.1:{port}{path}", body, conns, args.seconds)
                    raw[case][target].append(res)
                    print(f"round {r + 1} {case:7} {target:8} {res['rps']:9.0f} req/s  p50 {res['p50']:6} us  "
                          f"p99 {res['p99']:6} us  errors {res['errors'] + res['status_errors']}", file=sys.stderr)
            # All three stream at once, staggered (see stream_probe.rs), so each
            # proxy request is compared with a direct one of the same moment.
            targets = [(port, "/v1/chat/completions",
                        chat_body("bench-stream" if t == "llmgate" else "mock-small", 1024, stream=True))
                       for t, port in stream_ports.items()]
            steal_before, started = steal_ticks(), time.monotonic()
            results = probe(tmp, targets, args.stream_requests, STREAM_STAGGER_MS)
            steal_after = steal_ticks()
            stream_seconds += time.monotonic() - started
            for cpu in steal:
                steal[cpu] += steal_after[cpu] - steal_before[cpu]
            direct_stamps = results[0]["stamps"]
            for target, res in zip(stream_ports, results):
                # A proxy that dropped or mangled stamps would have no gap to judge.
                if res["stamps"] != direct_stamps or min(direct_stamps) < 2:
                    sys.exit(f"{target}: stamped deltas per request {res['stamps']}, direct {direct_stamps}")
                streams[target]["ttfb"] += res["ttfb_us"]
                streams[target]["gap"] += res["max_gap_us"]
                streams[target]["added_gap"] += res["max_added_gap_us"]
                print(f"round {r + 1} stream  {target:8} ttfb p50 {pct(res['ttfb_us'], 50)} us  "
                      f"max gap {max(res['max_gap_us'])} us  max added gap {max(res['max_added_gap_us'])} us  "
                      f"events {res['events'][0]}", file=sys.stderr)
            # The machine's floor for the same figure: a do-nothing relay on
            # the proxy's core (relay_floor.py), three streams' worth a round.
            floor_gaps += relay_floor.added_gaps(int(PROXY_CPU), int(LOAD_CPU), 3, 64, CHUNK_DELAY_MS)
        rss_after = rss_kib(gate.pid)
    finally:
        procs.stop()

    # Per round, a proxy's added latency is its figure minus direct's in that round.
    def added(case, target, key):
        return statistics.median(
            t[key] - d[key] for t, d in zip(raw[case][target], raw[case]["direct"]))

    def rps(case, target):
        return statistics.median(x["rps"] for x in raw[case][target])

    def paired(target, key):
        return [t - d for t, d in zip(streams[target][key], streams["direct"][key])]

    def errors(case, target):
        return sum(x["errors"] + x["status_errors"] for x in raw[case][target])

    summary = {"machine": machine(), "rounds": args.rounds, "seconds": args.seconds}
    for target in ("nginx", "llmgate"):
        summary[target] = {
            "added_p50_us_c1": added("c1", target, "p50"),
            "added_p99_us_c1": added("c1", target, "p99"),
            "added_p50_us_c1_64k": added("c1-64k", target, "p50"),
            "added_p99_us_c1_64k": added("c1-64k", target, "p99"),
            "added_p50_us_c1_xdialect": added("c1-xdialect", target, "p50"),
            "added_p99_us_c1_xdialect": added("c1-xdialect", target, "p99"),
            "rps_c64": rps("c64", target),
            "p99_us_c64": statistics.median(x["p99"] for x in raw["c64"][target]),
            "errors": sum(errors(c, target) for c, _, _, _ in cases),
            # Per stream, its figure minus the direct stream's of the same
            # moment (started 6-12 ms apart); percentiles over those.
            "stream_added_ttfb_p50_us": pct(paired(target, "ttfb"), 50),
            "stream_added_ttfb_p99_us": pct(paired(target, "ttfb"), 99),
            # Per request, the largest gap the path added between two
            # deltas, from the mock's send-time stamps (stream_probe.rs):
            # not minus direct's, so it includes the kernel's and the
            # probe's share. Compared at the median and p90 over requests,
            # since a single scheduler hiccup on a shared VM can hit any
            # target's one worst request.
            "stream_added_max_gap_p50_us": pct(streams[target]["added_gap"], 50),
            "stream_added_max_gap_p90_us": pct(streams[target]["added_gap"], 90),
        }
    # The machine's own stalls, with no proxy in the path: how far the
    # direct stream's largest gap between reads runs past the mock's 20 ms
    # (tokio's timer rounds each sleep up to its next millisecond tick, so
    # up to 1 ms of it is the mock's). This is why the added gap is taken
    # from stamps: a gap between reads carries the mock's stalls too.
    stalls = [g - CHUNK_DELAY_MS * 1000 for g in streams["direct"]["gap"]]
    summary["direct"] = {"rps_c64": rps("c64", "direct"), "p50_us_c1": statistics.median(
        x["p50"] for x in raw["c1"]["direct"]), "errors": sum(errors(c, "direct") for c, _, _, _ in cases),
        "stream_max_gap_excess_p50_us": pct(stalls, 50), "stream_max_gap_excess_p90_us": pct(stalls, 90),
        "stream_added_max_gap_p50_us": pct(streams["direct"]["added_gap"], 50),
        "stream_added_max_gap_p90_us": pct(streams["direct"]["added_gap"], 90)}
    summary["relay_floor_added_max_gap_p50_us"] = pct(floor_gaps, 50)
    summary["relay_floor_added_max_gap_p90_us"] = pct(floor_gaps, 90)
    # Stolen share of each core's time during the streams.
    tick = 1 / os.sysconf("SC_CLK_TCK")
    summary["steal_during_streams_pct"] = {
        cpu: round(100 * ticks * tick / stream_seconds, 1) if stream_seconds else 0.0
        for cpu, ticks in steal.items()}
    summary["llmgate"]["rss_idle_kib"] = rss_idle
    summary["llmgate"]["rss_after_kib"] = rss_after
    summary["raw"] = raw
    summary["budget"] = budget(summary)

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    stamp = time.strftime("%Y%m%d-%H%M%S")
    (out / f"bench-{stamp}.json").write_text(json.dumps(summary, indent=2))
    table = render(summary)
    (out / f"bench-{stamp}.md").write_text(table)
    print(table)
    shutil.rmtree(tmp, ignore_errors=True)
    sys.exit(0 if all(ok for _, ok, _ in summary["budget"]) else 1)


def budget(s):
    n, g = s["nginx"], s["llmgate"]

    def ratio(a, b):
        return a / b if b > 0 else float("inf") if a > 0 else 1.0

    lines = []
    # A floor: on loopback nginx can add less than wrk's 1 µs resolution in
    # noise; ratios against ~0 mean nothing, so both are floored at 10 µs.
    for key in ("added_p50_us_c1", "added_p99_us_c1"):
        r = ratio(max(g[key], 10), max(n[key], 10))
        lines.append((f"{key}: llmgate/nginx = {r:.2f} (<= 1.5)", r <= 1.5, r))
    r = g["rps_c64"] / n["rps_c64"]
    lines.append((f"rps at c64: llmgate/nginx = {r:.2f} (>= 0.7), errors {g['errors']}", r >= 0.7 and g["errors"] == 0, r))
    lines.append((f"stream added TTFB p99 = {g['stream_added_ttfb_p99_us']} us (< 1000; nginx {n['stream_added_ttfb_p99_us']})",
                  g["stream_added_ttfb_p99_us"] < 1000, g["stream_added_ttfb_p99_us"]))
    lines.append((f"stream largest added gap between deltas, p90 over requests = {g['stream_added_max_gap_p90_us']} us (< 1000; "
                  f"nginx {n['stream_added_max_gap_p90_us']}, a do-nothing relay {s['relay_floor_added_max_gap_p90_us']})",
                  g["stream_added_max_gap_p90_us"] < 1000, g["stream_added_max_gap_p90_us"]))
    lines.append((f"RSS idle = {g['rss_idle_kib'] / 1024:.1f} MiB (< 40)", g["rss_idle_kib"] < 40 * 1024,
                  g["rss_idle_kib"]))
    r = g["rss_after_kib"] / g["rss_idle_kib"]
    lines.append((f"RSS after load / idle = {r:.2f} (<= 2)", r <= 2.0, r))
    return lines


def render(s) -> str:
    n, g, d = s["nginx"], s["llmgate"], s["direct"]
    rows = [
        ("added latency p50, c=1, 1 KB (us)", "0", n["added_p50_us_c1"], g["added_p50_us_c1"]),
        ("added latency p99, c=1, 1 KB (us)", "0", n["added_p99_us_c1"], g["added_p99_us_c1"]),
        ("added latency p50, c=1, 64 KB (us)", "0", n["added_p50_us_c1_64k"], g["added_p50_us_c1_64k"]),
        ("added latency p99, c=1, 64 KB (us)", "0", n["added_p99_us_c1_64k"], g["added_p99_us_c1_64k"]),
        ("added latency p50, c=1, Anthropic client -> OpenAI mock (us)", "0", "n/a", g["added_p50_us_c1_xdialect"]),
        ("added latency p99, c=1, Anthropic client -> OpenAI mock (us)", "0", "n/a", g["added_p99_us_c1_xdialect"]),
        ("requests/s, c=64", f"{d['rps_c64']:.0f}", f"{n['rps_c64']:.0f}", f"{g['rps_c64']:.0f}"),
        ("p99 at c=64 (us)", "", n["p99_us_c64"], g["p99_us_c64"]),
        ("stream added TTFB p50 (us)", "0", n["stream_added_ttfb_p50_us"], g["stream_added_ttfb_p50_us"]),
        ("stream added TTFB p99 (us)", "0", n["stream_added_ttfb_p99_us"], g["stream_added_ttfb_p99_us"]),
        ("stream largest added gap between deltas (stamped), p50 over requests (us)",
         d["stream_added_max_gap_p50_us"], n["stream_added_max_gap_p50_us"], g["stream_added_max_gap_p50_us"]),
        ("stream largest added gap between deltas (stamped), p90 over requests (us)",
         d["stream_added_max_gap_p90_us"], n["stream_added_max_gap_p90_us"], g["stream_added_max_gap_p90_us"]),
        ("the same through a do-nothing relay on the proxy's core (relay_floor.py), p50 / p90 (us): the machine's floor",
         f"{s['relay_floor_added_max_gap_p50_us']} / {s['relay_floor_added_max_gap_p90_us']}", "", ""),
        ("direct's largest gap between reads beyond the mock's 20 ms, p50 / p90 (us): the machine's stalls",
         f"{d['stream_max_gap_excess_p50_us']} / {d['stream_max_gap_excess_p90_us']}", "", ""),
        ("time stolen by the hypervisor during the streams, proxy's core / load's core (%)",
         f"{s['steal_during_streams_pct'][PROXY_CPU]} / {s['steal_during_streams_pct'][LOAD_CPU]}", "", ""),
        ("errors", d["errors"], n["errors"], g["errors"]),
        ("RSS idle / after load (MiB)", "", "", f"{g['rss_idle_kib'] / 1024:.1f} / {g['rss_after_kib'] / 1024:.1f}"),
    ]
    out = [f"machine: {s['machine']}; {s['rounds']} interleaved rounds of {s['seconds']} s per case", "",
           "| figure | direct | nginx | llmgate |", "|---|---:|---:|---:|"]
    out += [f"| {a} | {b} | {c} | {e} |" for a, b, c, e in rows]
    out += ["", "budget:"]
    out += [f"- [{'x' if ok else ' '}] {text}" for text, ok, _ in s["budget"]]
    return "\n".join(out) + "\n"


def machine() -> str:
    cpu = next((l.split(":", 1)[1].strip() for l in Path("/proc/cpuinfo").read_text().splitlines()
                if l.startswith("model name")), "unknown cpu")
    return f"{os.cpu_count()} cores ({cpu}), Linux {os.uname().release}"


if __name__ == "__main__":
    main()
