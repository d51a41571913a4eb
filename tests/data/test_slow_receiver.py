"""A frozen receiver beside healthy ones: the room keeps its latency; the slow one is resynced."""

from __future__ import annotations

import asyncio
import time

import pytest

from tests.data.peer import DataClient, join_data
from tests.support.polling import eventually

pytestmark = pytest.mark.slow  # a real call or a benchmark run: seconds each

RATE = 200  # messages/s
PHASE_S = 2.5


def p99(values: list[float]) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))]


async def _phase(sender: DataClient, receivers: list[DataClient], tag: str) -> list[float]:
    count = int(RATE * PHASE_S)
    pad = "x" * 400
    start = time.monotonic()
    for n in range(count):
        due = start + n / RATE
        delay = due - time.monotonic()
        if delay > 0:
            await asyncio.sleep(delay)
        sender.send("tick", {"tag": tag, "n": n, "t": time.monotonic(), "pad": pad})
    await eventually(
        lambda: all(
            sum(1 for r in x.received if r.message.get("payload", {}).get("tag") == tag) >= count
            for x in receivers
        ),
        5,
    )
    latencies = []
    for x in receivers:
        got = [r for r in x.received if r.message.get("topic") == "tick"]
        got = [r for r in got if r.message["payload"]["tag"] == tag]
        assert len(got) == count, (tag, len(got))
        latencies += [(r.at - r.message["payload"]["t"]) * 1000 for r in got]
    return latencies


async def test_paused_receiver_does_not_slow_the_others(start_server, connect):
    server, ts = await start_server(
        allow_loopback_candidates=True,
        data_msgs_per_s=1000,
        data_msgs_burst=1000,
        data_bytes_per_s=10_000_000,
        data_bytes_burst=10_000_000,
        data_reliable_buffer_bytes=64 * 1024,
    )
    sender = await join_data(connect, ts, "slow", "sender")
    healthy = [await join_data(connect, ts, "slow", f"h{i}") for i in range(3)]
    frozen = await join_data(connect, ts, "slow", "frozen")
    try:
        baseline = await _phase(sender, [*healthy, frozen], "before")
        frozen.pause()
        during = await _phase(sender, healthy, "during")
        base_p99, during_p99 = p99(baseline), p99(during)
        print(f"healthy p99: {base_p99:.1f} ms before, {during_p99:.1f} ms with a frozen peer")
        assert during_p99 - base_p99 < 50, (base_p99, during_p99)

        room = server.media.rooms["slow"]
        peer = room.data.peer(frozen.id) if room.data else None
        assert peer is not None
        outlet = peer.outlets["reliable"]
        # Its backlog stayed bounded: it was resynced and live messages are dropped for it.
        assert outlet.resyncs >= 1 and outlet.dropped > 0
        assert outlet.backlog_bytes <= 64 * 1024
        for h in healthy:
            p = room.participant(h.id)
            assert p is not None and p.data_stats()["messages_dropped_slow"] == 0
    finally:
        for c in [sender, *healthy, frozen]:
            await c.close()
