"""Tests for the bench's Python tools that do not need the stack running:
the TTFB phase parser and the relay floor. Run by scripts/test."""

import os

import pytest

import relay_floor
import ttfb_phases

# One traced stream through llmgate, one through nginx and one direct, as
# tracefs prints them: comms with dashes, a failed accept (EAGAIN), other
# threads' reads in between, and the direct stream (accepted by the mock),
# which has no proxy phases.
TRACE = """\
# tracer: nop
    stream-probe-100   [001] .....  10.000000: sys_connect(fd: 3, uservaddr: 0x1, addrlen: 0x10)
         llmgate-200   [000] .....  10.000100: sys_accept4 -> 0x11
         llmgate-200   [000] .....  10.000110: sys_accept4 -> 0xfffffffffffffff5
 tokio-rt-worker-300   [001] .....  10.000120: sys_recvfrom -> 0x40
         llmgate-200   [000] .....  10.000130: sys_recvfrom -> 0xfffffffffffffff5
         llmgate-200   [000] .....  10.000150: sys_recvfrom -> 0x122
         llmgate-200   [000] .....  10.000350: sys_writev(fd: 0x12, vec: 0x1, vlen: 2)
         llmgate-200   [000] .....  10.000750: sys_recvfrom -> 0x1a0
         llmgate-200   [000] .....  10.000850: sys_writev(fd: 0x11, vec: 0x1, vlen: 4)
    stream-probe-100   [001] .....  10.000900: sys_recvfrom -> 0x1d3
    stream-probe-101   [001] .....  10.006000: sys_connect(fd: 3, uservaddr: 0x1, addrlen: 0x10)
           nginx-400   [000] .....  10.006100: sys_accept4 -> 0x7
           nginx-400   [000] .....  10.006120: sys_recvfrom -> 0x122
           nginx-400   [000] .....  10.006160: sys_writev(fd: 0x8, vec: 0x1, vlen: 3)
           nginx-400   [000] .....  10.006500: sys_read -> 0x1a0
           nginx-400   [000] .....  10.006520: sys_writev(fd: 0x7, vec: 0x1, vlen: 2)
    stream-probe-101   [001] .....  10.006560: sys_recvfrom -> 0x1d3
    stream-probe-102   [001] .....  10.012000: sys_connect(fd: 3, uservaddr: 0x1, addrlen: 0x10)
 tokio-rt-worker-300   [001] .....  10.012100: sys_accept4 -> 0x9
    stream-probe-102   [001] .....  10.012400: sys_recvfrom -> 0x1d3
"""


def test_each_proxys_stream_splits_into_its_phases():
    phases = ttfb_phases.phases(ttfb_phases.parse(TRACE))
    rounded = {proxy: [[round(x) for x in row] for row in rows] for proxy, rows in phases.items()}
    assert rounded == {
        "llmgate": [[100, 50, 200, 400, 100, 50]],
        "nginx": [[100, 20, 40, 340, 20, 40]],
    }


def test_a_stream_cut_off_by_the_trace_is_left_out():
    cut = TRACE.split("    stream-probe-100   [001] .....  10.000900")[0]
    assert ttfb_phases.phases(ttfb_phases.parse(cut))["llmgate"] == []


@pytest.mark.skipif(len(os.sched_getaffinity(0)) < 2, reason="needs two cores")
def test_the_relay_floor_gives_one_gap_per_group():
    cpus = sorted(os.sched_getaffinity(0))[:2]
    gaps = relay_floor.added_gaps(cpus[0], cpus[1], groups=2, per_group=4, delay_ms=1)
    assert len(gaps) == 2
    # Transit can shrink from one message to the next, but a gap of a
    # second would mean the relay stalled or the stamps were misread.
    assert all(-1_000_000 < g < 1_000_000 for g in gaps)
