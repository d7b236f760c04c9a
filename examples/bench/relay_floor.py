"""The machine's floor for a streamed delta's added gap: a relay that does
nothing, on the proxy's core, between a sender and a receiver on the load
core, over loopback TCP: the path of a proxied stream without the proxy's
work.

The sender writes a message every `delay_ms`, stamped with the monotonic
clock; the relay reads it and writes it on; the receiver reads the clock
on arrival. Per group of `per_group` messages (one stream's deltas), the
largest growth of transit time from one message to the next: the figure
the stream probe reports for a proxy, so a proxy's can be read against
what the machine itself adds when a message crosses to another core and
back. On a quiet machine it is tens of µs; on a VM whose vCPUs are slow
to wake, it shows the milliseconds no proxy on another core avoids.
"""

import os
import socket
import time
import traceback

WIDTH = 20  # digits per message: fixed, so the reader needs no framing


def _now_us() -> int:
    return time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000


def _read_exactly(sock: socket.socket, n: int) -> bytes:
    data = b""
    while len(data) < n:
        part = sock.recv(n - len(data))
        if not part:
            raise ConnectionError("relay_floor: a peer closed early")
        data += part
    return data


def _listener() -> socket.socket:
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(1)
    sock.settimeout(30)  # a stuck peer fails the run rather than hanging it
    return sock


def _connect(addr) -> socket.socket:
    sock = socket.create_connection(addr, timeout=30)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return sock


def _child(cpu: int, work) -> int:
    pid = os.fork()
    if pid == 0:
        code = 0
        try:
            os.sched_setaffinity(0, {cpu})
            work()
        except BaseException:
            traceback.print_exc()  # the parent only sees the exit code
            code = 1
        finally:
            os._exit(code)
    return pid


def added_gaps(proxy_cpu: int, load_cpu: int, groups: int, per_group: int, delay_ms: int) -> list:
    """One figure per group: its largest transit growth (µs)."""
    count = groups * per_group
    to_receiver, to_relay = _listener(), _listener()

    def relay():
        downstream = _connect(to_receiver.getsockname())
        upstream, _ = to_relay.accept()
        for _ in range(count):
            downstream.sendall(_read_exactly(upstream, WIDTH))

    def sender():
        upstream = _connect(to_relay.getsockname())
        for _ in range(count):
            time.sleep(delay_ms / 1000)
            upstream.sendall(str(_now_us()).zfill(WIDTH).encode())

    children = [_child(proxy_cpu, relay), _child(load_cpu, sender)]
    before = os.sched_getaffinity(0)
    os.sched_setaffinity(0, {load_cpu})  # the receiver, like the probe
    try:
        conn, _ = to_receiver.accept()
        transits = [_now_us() - int(_read_exactly(conn, WIDTH)) for _ in range(count)]
        conn.close()
    finally:
        os.sched_setaffinity(0, before)
        codes = [os.waitpid(pid, 0)[1] for pid in children]
        to_receiver.close()
        to_relay.close()
    if any(codes):
        raise RuntimeError("relay_floor: the relay or the sender failed")
    return [max(b - a for a, b in zip(group, group[1:]))
            for group in (transits[i:i + per_group] for i in range(0, count, per_group))]


if __name__ == "__main__":
    gaps = sorted(added_gaps(0, 1, 10, 64, 20))
    print(f"largest added gap per 64 messages through a relay on core 0: "
          f"p50 {gaps[len(gaps) // 2]} us, p90 {gaps[int(len(gaps) * 0.9)]} us")
