"""Track pipes between two real processes: a publisher's track fanned out by another process.

The origin is ``tests/workers/pipe_origin.py`` (a real aiortc publisher in its own room); this
test process is the far end: its room receives the piped tracks and real aiortc subscribers
decode them.
"""

from __future__ import annotations

import asyncio
import collections
import itertools
import json
import os
import signal
import socket
import sys
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from relayroom.media import Room
from relayroom.media.pipe import PipedTrack, PipeEndpoint, PipeSettings
from relayroom.media.pipe_wire import TAG_BYTES, Kind, pipe_key, seal
from tests.media.client import ReceivedTrack, Subscriber
from tests.media.conftest import Harness, loopback_settings
from tests.support.polling import eventually

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[2]
SECRET = "pipe-test-secret"
FAST = PipeSettings(keepalive_s=0.2, timeout_s=1.0)


class Origin:
    """The origin process, driven over its stdin/stdout."""

    def __init__(self, proc: asyncio.subprocess.Process, hello: dict[str, Any]) -> None:
        self.proc = proc
        self.address = (str(hello["address"][0]), int(hello["address"][1]))
        self.tracks = [PipedTrack.from_wire(t) for t in hello["tracks"]]

    @classmethod
    async def start(cls) -> Origin:
        proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "tests.workers.pipe_origin",
            SECRET,
            cwd=ROOT,
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
        )
        assert proc.stdout is not None
        line = await asyncio.wait_for(proc.stdout.readline(), 30)
        assert line, "the origin process exited before publishing"
        return cls(proc, json.loads(line))

    async def ask(self, request: dict[str, Any]) -> dict[str, Any]:
        assert self.proc.stdin is not None and self.proc.stdout is not None
        self.proc.stdin.write((json.dumps(request) + "\n").encode())
        await self.proc.stdin.drain()
        reply: dict[str, Any] = json.loads(await asyncio.wait_for(self.proc.stdout.readline(), 10))
        return reply

    async def pipe_to(self, room: Room, endpoint: PipeEndpoint) -> None:
        """Pipe every published track into ``room``."""
        for track in self.tracks:
            pipe_id = endpoint.new_pipe_id()
            room.receive_piped_track(track, pipe_id, self.address)
            await self.ask(
                {
                    "pipe": {
                        "publisher": track.publisher_id,
                        "track": track.info.id,
                        "pipe_id": pipe_id,
                        "far": list(endpoint.address),
                    }
                }
            )

    def kill(self) -> None:
        if self.proc.returncode is None:
            os.kill(self.proc.pid, signal.SIGKILL)

    async def close(self) -> None:
        if self.proc.returncode is None:
            assert self.proc.stdin is not None
            self.proc.stdin.close()
            try:
                await asyncio.wait_for(self.proc.wait(), 10)
            except TimeoutError:
                self.kill()
        await self.proc.wait()


class RecordingEndpoint(PipeEndpoint):
    """A pipe endpoint that keeps its last datagrams, to replay and mutate them."""

    def __init__(self, key: bytes, pipe_settings: PipeSettings) -> None:
        super().__init__(key, pipe_settings)
        self.seen: collections.deque[bytes] = collections.deque(maxlen=64)

    def datagram_received(self, data: bytes, addr: Any) -> None:
        self.seen.append(data)
        super().datagram_received(data, addr)


@dataclass
class FarEnd:
    harness: Harness
    endpoint: RecordingEndpoint

    @property
    def room(self) -> Room:
        return self.harness.room


@pytest.fixture
async def far() -> AsyncIterator[FarEnd]:
    endpoint = RecordingEndpoint(pipe_key(SECRET), FAST)
    await endpoint.start()
    harness = Harness(loopback_settings())
    harness.room = Room("far", harness.settings, harness._on_event, pipes=endpoint)
    try:
        yield FarEnd(harness, endpoint)
    finally:
        await harness.close()
        await endpoint.close()


@pytest.fixture
async def origin() -> AsyncIterator[Origin]:
    o = await Origin.start()
    try:
        yield o
    finally:
        await o.close()


def video(sub: Subscriber) -> ReceivedTrack | None:
    live = [t for t in sub.video_tracks() if t.ended_at is None]
    return live[-1] if live else None


def frames(sub: Subscriber) -> int:
    track = video(sub)
    return len(track.counters()) if track else 0


def total_drops(endpoint: PipeEndpoint) -> int:
    return sum(endpoint.counters.dropped.values())


async def test_piped_track_reaches_far_subscribers_at_25_fps_and_feedback_flows_back(
    far: FarEnd, origin: Origin
) -> None:
    subs = [await far.harness.subscriber(f"sub{i}") for i in range(2)]
    await origin.pipe_to(far.room, far.endpoint)
    assert await eventually(lambda: all(frames(s) >= 60 for s in subs), 20), [
        frames(s) for s in subs
    ]
    await asyncio.sleep(2)
    for sub in subs:
        track = video(sub)
        assert track is not None
        counters = track.counters()
        assert all(b > a for a, b in itertools.pairwise(counters)), counters
        assert track.fps(window=2) >= 25, track.fps(window=2)
        assert sub.audio_tracks() and len(sub.audio_tracks()[0].frames) > 50
    # A late joiner on the far end gets the piped tracks like local ones.
    late = await far.harness.subscriber("late")
    assert await eventually(lambda: frames(late) >= 30, 15), frames(late)
    stats = await origin.ask({"stats": True})
    by_track = {p["track"]: p for p in stats["pipes"]}
    video_pipe = by_track[next(t.info.id for t in origin.tracks if t.info.kind == "video")]
    # The far hub's keyframe requests (each new leg asks) and its subscribers' estimates came
    # back up the pipe; the origin counts the pipe as one subscriber of each hub.
    assert video_pipe["keyframe_requests"] >= 1, video_pipe
    assert video_pipe["estimates"] >= 1, video_pipe
    for hub in stats["hubs"].values():
        assert len(hub["legs"]) == 1
    assert total_drops(far.endpoint) == 0, far.endpoint.counters


async def test_subscribers_lose_the_track_when_the_origin_dies_and_get_it_back_when_repiped(
    far: FarEnd, origin: Origin
) -> None:
    sub = await far.harness.subscriber("sub")
    await origin.pipe_to(far.room, far.endpoint)
    assert await eventually(lambda: frames(sub) >= 30, 20), frames(sub)
    first = video(sub)
    origin.kill()
    # No datagram for timeout_s: the far end closes the pipes, the subscriber's track ends.
    assert await eventually(lambda: not far.room.piped_in(), 5)
    assert await eventually(lambda: first is not None and first.ended_at is not None, 10)
    again = await Origin.start()
    try:
        await again.pipe_to(far.room, far.endpoint)
        assert await eventually(lambda: frames(sub) >= 30, 20), frames(sub)
        assert video(sub) is not first
    finally:
        await again.close()


async def test_origin_closes_its_end_when_the_far_end_leaves(far: FarEnd, origin: Origin) -> None:
    sub = await far.harness.subscriber("sub")
    await origin.pipe_to(far.room, far.endpoint)
    assert await eventually(lambda: frames(sub) >= 10, 20), frames(sub)
    for receiver in far.room.piped_in():
        await receiver.close("leaving")
    assert not far.room.piped_in()
    stats = await origin.ask({"stats": True})
    for _ in range(50):
        if not stats["pipes"]:
            break
        await asyncio.sleep(0.1)
        stats = await origin.ask({"stats": True})
    assert stats["pipes"] == []
    assert all(hub["legs"] == {} for hub in stats["hubs"].values())


# ------------------------------------------------------------------ hostile datagrams

MUTATIONS = ("replay", "truncate", "flip", "forge", "rewind", "random")


@st.composite
def hostile(draw: st.DrawFn, genuine: list[bytes]) -> bytes:
    """A datagram made from a genuine one (replayed, cut, altered, re-signed with the wrong
    key, given another counter) or random bytes."""
    data = draw(st.sampled_from(genuine))
    kind = draw(st.sampled_from(MUTATIONS))
    if kind == "replay":
        return data
    if kind == "truncate":
        return data[: draw(st.integers(0, len(data) - 1))]
    if kind == "flip":
        at = draw(st.integers(0, len(data) - 1))
        bit = draw(st.integers(1, 255))
        return data[:at] + bytes((data[at] ^ bit,)) + data[at + 1 :]
    if kind == "forge":
        pipe_id = int.from_bytes(data[2:6], "big")
        counter = int.from_bytes(data[6:14], "big") + draw(st.integers(1, 1000))
        wrong = pipe_key(draw(st.text(min_size=1, max_size=20).filter(lambda s: s != SECRET)))
        return seal(wrong, Kind.RTP, pipe_id, counter, data[14:-TAG_BYTES])
    if kind == "rewind":
        counter = int.from_bytes(data[6:14], "big") + draw(st.integers(1, 1 << 20))
        return data[:6] + counter.to_bytes(8, "big") + data[14:]
    return draw(st.binary(max_size=1500))


async def test_forged_replayed_and_truncated_datagrams_are_dropped_and_counted_media_continues(
    far: FarEnd, origin: Origin
) -> None:
    sub = await far.harness.subscriber("sub")
    await origin.pipe_to(far.room, far.endpoint)
    assert await eventually(lambda: frames(sub) >= 30, 20), frames(sub)
    genuine = list(far.endpoint.seen)
    endpoint = far.endpoint

    # Through the endpoint's datagram handler, as the socket calls it, many cases at once.
    @settings(max_examples=150, deadline=None, suppress_health_check=list(HealthCheck))
    @given(st.data())
    def attack(data: st.DataObject) -> None:
        datagram = data.draw(hostile(genuine))
        accepted, drops = endpoint.counters.datagrams, total_drops(endpoint)
        endpoint.datagram_received(datagram, ("127.0.0.1", 9))
        assert endpoint.counters.datagrams == accepted, datagram.hex()
        assert total_drops(endpoint) == drops + 1, datagram.hex()

    attack()
    counters = dict(endpoint.counters.dropped)
    assert counters["replayed"] and counters["unauthenticated"] and counters["malformed"]

    # And over a real socket while media flows: counted, and the video keeps going.
    before_drops, before_frames = total_drops(endpoint), frames(sub)
    before = dict(endpoint.counters.dropped)
    attacker = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        sent = 0
        for data in genuine[-20:]:
            for bad in (data, data[:-1], data[:10], data[:-TAG_BYTES] + bytes(TAG_BYTES)):
                attacker.sendto(bad, endpoint.address)
                sent += 1
            await asyncio.sleep(0.01)
    finally:
        attacker.close()

    # (UDP: the kernel may drop a few when the loop is late; none may be accepted.)
    def counted() -> bool:
        grew = {k: endpoint.counters.dropped[k] - before[k] for k in before}
        return total_drops(endpoint) - before_drops >= 0.9 * sent and all(
            grew[k] > 0 for k in ("replayed", "unauthenticated", "malformed")
        )

    assert await eventually(counted, 5), (before, endpoint.counters)
    assert await eventually(lambda: frames(sub) >= before_frames + 30, 10)
    assert len(far.room.piped_in()) == 2
