"""The machine's floor for a streamed delta's added gap: a relay that does
nothing, on the proxy's core, between a sender and a receiver on the load
core, which is the path of a proxied stream with no proxy work in it.

The sender sends a datagram every `delay_ms`, stamped with the monotonic
clock; the relay forwards it; the receiver reads the clock on arrival.
Per group of `per_group` datagrams (one stream's deltas), the largest
growth of transit time from one datagram to the next: the same figure the
stream probe reports for a proxy, so a proxy's figure can be read against
what the machine itself adds when a message crosses to another core and
back. On a quiet machine it is tens of µs; on a VM whose vCPUs are slow
to wake, it shows the milliseconds no proxy on another core can avoid.
"""

import os
import socket
import time


def _now_us() -> int:
    return time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000


def added_gaps(proxy_cpu: int, load_cpu: int, groups: int, per_group: int, delay_ms: int) -> list:
    """One figure per group: its largest transit growth (µs)."""
    receiver = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    receiver.bind(("127.0.0.1", 0))
    receiver.settimeout(30)  # a lost datagram fails the run rather than hanging it
    relay = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    relay.bind(("127.0.0.1", 0))
    count = groups * per_group
    children = []
    relay_pid = os.fork()
    if relay_pid == 0:  # the relay, on the proxy's core
        try:
            os.sched_setaffinity(0, {proxy_cpu})
            out = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            for _ in range(count):
                out.sendto(relay.recv(64), receiver.getsockname())
        finally:
            os._exit(0)
    children.append(relay_pid)
    sender_pid = os.fork()
    if sender_pid == 0:  # the sender, on the load core, like the mock
        try:
            os.sched_setaffinity(0, {load_cpu})
            out = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            for _ in range(count):
                time.sleep(delay_ms / 1000)
                out.sendto(str(_now_us()).encode(), relay.getsockname())
        finally:
            os._exit(0)
    children.append(sender_pid)
    before = os.sched_getaffinity(0)
    os.sched_setaffinity(0, {load_cpu})  # the receiver, like the probe
    try:
        transits = [_now_us() - int(receiver.recv(64)) for _ in range(count)]
    finally:
        os.sched_setaffinity(0, before)
        for pid in children:
            os.waitpid(pid, 0)
        receiver.close()
        relay.close()
    return [max(b - a for a, b in zip(group, group[1:]))
            for group in (transits[i:i + per_group] for i in range(0, count, per_group))]


if __name__ == "__main__":
    gaps = sorted(added_gaps(0, 1, 10, 64, 20))
    print(f"largest added gap per 64 datagrams through a relay on core 0: "
          f"p50 {gaps[len(gaps) // 2]} us, p90 {gaps[int(len(gaps) * 0.9)]} us")
