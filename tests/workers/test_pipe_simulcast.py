"""A simulcast track through a pipe (one process, real UDP sockets on loopback): the pipe is one
subscriber of the simulcast hub, so the far end gets one layer as one continuous stream, and
the far subscribers' estimate chooses that layer at the origin."""

from __future__ import annotations

import asyncio
import itertools
import time
from collections.abc import AsyncIterator

import pytest
from aiortc import RTCRtpCodecParameters
from aiortc.rtp import RtpPacket

from relayroom.media import MediaSettings, TrackInfo
from relayroom.media.pipe import PipedTrack, PipeEndpoint, PipeSettings
from relayroom.media.pipe_wire import pipe_key
from relayroom.media.simulcast_hub import SimulcastHub
from relayroom.media.vp8 import parse_descriptor, picture_id
from tests.media.legs import FakeTap
from tests.simulcast.vp8data import rtp, vp8
from tests.support.polling import eventually

VP8 = RTCRtpCodecParameters(mimeType="video/VP8", clockRate=90000, payloadType=97)
SSRC = {"q": 1001, "h": 1002, "f": 1003}
SIZE = {"q": (320, 180), "h": (640, 360), "f": (1280, 720)}
KEY = pipe_key("simulcast-pipe")
FAST = PipeSettings(keepalive_s=0.2, timeout_s=2.0)


@pytest.fixture
async def endpoints() -> AsyncIterator[tuple[PipeEndpoint, PipeEndpoint]]:
    origin, far = PipeEndpoint(KEY, FAST), PipeEndpoint(KEY, FAST)
    await origin.start()
    await far.start()
    yield origin, far
    await origin.close()
    await far.close()


async def test_a_simulcast_track_crosses_a_pipe_as_one_continuous_layer_chosen_by_the_far_end(
    endpoints: tuple[PipeEndpoint, PipeEndpoint],
) -> None:
    origin, far = endpoints
    settings = MediaSettings(simulcast_upgrade_hold_s=0)
    info = TrackInfo(id="cam", kind="video", muted=False, codec="VP8")
    hub = SimulcastHub("alice", info, VP8, None, settings, ("q", "h", "f"))
    for rid, ssrc in SSRC.items():
        hub.add_stream(ssrc, rid)
    receiver = far.receive_track(PipedTrack.of(hub), 7, origin.address, settings, lambda _: None)
    bob = receiver.hub.new_leg("bob", 1000, 5000)
    tap = FakeTap()
    bob.bind(tap)  # type: ignore[arg-type]
    receiver.hub.add_leg(bob)
    await bob.on_sender_ready()
    sender = origin.send_track(hub, 7, far.address, lambda _: None)
    await sender.start()
    frame = itertools.count()

    async def send(frames: int, key: bool) -> None:
        for i in range(frames):
            n = next(frame)
            for rid in ("q", "h", "f"):
                payload = vp8(100 + n, 3 * n, key=key and i == 0, size=SIZE[rid], tid=n % 2)
                hub.on_packet(rtp(SSRC[rid], 100 + n, 3000 * n, payload))
            await asyncio.sleep(0.002)

    await send(5, key=True)
    assert await eventually(lambda: len(tap.sent) >= 5, 5), len(tap.sent)
    assert hub.leg_layer(sender.leg.subscriber_id)["layer"] == "f"
    # The far subscriber can take little: its estimate goes up the pipe and the origin moves
    # the pipe's leg to the low layer; the far stream stays one continuous stream.
    for layer, rate in zip(hub.layers(), (150_000, 500_000, 1_500_000), strict=True):
        layer.last_bitrate_bps = rate
    receiver.hub.subscriber_remb("bob", 1_600_000)
    assert await eventually(lambda: sender.estimates == 1, 5)
    hub.tick(time.monotonic())
    receiver.hub.subscriber_remb("bob", 300_000)  # fell far below f (sent at once: -10%)
    assert await eventually(lambda: sender.estimates == 2, 5)
    hub.tick(time.monotonic())
    await send(5, key=True)
    assert await eventually(lambda: hub.leg_layer(sender.leg.subscriber_id)["layer"] == "q", 5)
    await send(5, key=False)
    await asyncio.sleep(0.2)
    packets = [RtpPacket.parse(d) for d in tap.sent]
    assert len({p.ssrc for p in packets}) == 1
    for a, b in itertools.pairwise(packets):
        assert b.sequence_number == (a.sequence_number + 1) & 0xFFFF
        da, db = parse_descriptor(a.payload), parse_descriptor(b.payload)
        assert da is not None and db is not None
        assert picture_id(b.payload, db) == (picture_id(a.payload, da) or 0) + 1
    assert far.counters.dropped == {k: 0 for k in far.counters.dropped}
    await hub.close()
