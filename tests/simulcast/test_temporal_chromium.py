"""Temporal layers with a real Chromium publisher: an aiortc subscriber whose estimate is
below even the lowest simulcast layer's bitrate gets fewer frames a second (Chromium sends
each VP8 simulcast layer as L1T3), every one of them decoded, and the frames the relay drops
do not look like loss to it."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from typing import Any

import av
import pytest
from aiortc.mediastreams import MediaStreamError, MediaStreamTrack

from tests.conftest import token_for
from tests.simulcast.pages import JOIN, PUBLISH
from tests.simulcast.remb import send_capped_remb
from tests.support.browsers import chromium_page
from tests.support.sfu import WsSubscriber

pytestmark = pytest.mark.browser


class FrameClock(WsSubscriber):
    """Notes when each video frame comes out of the aiortc receiver's decoder."""

    def __init__(self, ws: Any) -> None:
        self.frame_times: list[float] = []
        super().__init__(ws)

    async def _read(self, track: MediaStreamTrack) -> None:
        try:
            while True:
                frame = await track.recv()
                if isinstance(frame, av.VideoFrame):
                    self.frame_times.append(time.monotonic())
        except MediaStreamError:
            self.ended.add(track.id)

    async def fps(self, seconds: float) -> float:
        start = len(self.frame_times)
        await asyncio.sleep(seconds)
        return (len(self.frame_times) - start) / seconds

    async def packets_lost(self) -> int:
        lost = 0
        for receiver in self.pc.getReceivers():
            if receiver.track.kind == "video":
                for stat in (await receiver.getStats()).values():
                    lost += getattr(stat, "packetsLost", 0) or 0
        return lost


def video_hub(server: Any, room: str) -> Any:
    for participant in server.media.rooms[room].participants.values():
        for hub in participant.published_hubs():
            if hub.is_video:
                return hub
    return None


async def poll(check: Any, timeout: float, what: str) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        await asyncio.sleep(0.25)
    raise AssertionError(f"{what}: not within {timeout} s")


async def test_a_subscriber_below_the_lowest_layer_gets_fewer_frames_all_decoded(
    start_server: Any, browser: Any, connect: Any, caplog: Any
) -> None:
    caplog.set_level(logging.WARNING, logger="aiortc.rtcrtpreceiver")
    server, ts = await start_server(dev=True)
    url = str(ts.make_url("/call"))
    room = "temporal"
    pub = await chromium_page(browser, url)
    ws = await connect(ts)
    joined = await ws.join(room, "weak", can_publish=False, mode="sfu")
    weak_id = joined["participant"]["id"]
    weak = FrameClock(ws)
    token = token_for(room, "pub", can_publish=True, can_subscribe=True, mode="sfu")
    await pub.evaluate(JOIN, [token, room, None])
    await pub.evaluate(PUBLISH, [1280, 720])
    await weak.answer_next_offer(20)
    hub = await poll(lambda: video_hub(server, room), 20, "video track published")
    await ws.send({"type": "subscription", "track_id": hub.info.id, "quality": "low"})

    def on_lowest() -> Any:
        layers = hub.layers()  # ranked by size once every layer's keyframe told it
        leg = hub.leg(weak_id)
        if all(x.pixels for x in layers) and leg is not None and leg.layer is layers[0]:
            return layers[0]
        return None

    lowest = await poll(on_lowest, 40, "the subscriber on the lowest layer")
    await poll(lambda: len(weak.frame_times) > 60, 30, "frames of the lowest layer")
    leg = hub.leg(weak_id)
    # Chromium encodes each simulcast layer with temporal layers (the T bit and TID).
    rates = await poll(lambda: lowest.temporal_bps, 10, "temporal layers in the lowest layer")
    assert len(rates) == 3, rates
    full_fps = await weak.fps(4)
    lost_before = await weak.packets_lost()

    # Capped at half what the lowest layer needs: fewer temporal layers, not fewer packets
    # with holes in them.
    cap = rates[-1] // 2
    capper = asyncio.create_task(send_capped_remb(weak, cap))
    try:
        await poll(lambda: leg.max_temporal is not None and leg.max_temporal < 2, 15, "dropped")
        await asyncio.sleep(1)
        low_fps = await weak.fps(4)
        print(f"temporal: {full_fps} fps -> {low_fps} fps (rates {rates}, cap {cap})")
        assert 0 < low_fps <= 0.75 * full_fps, (low_fps, full_fps, rates, cap)
        assert leg.layer is lowest and leg.temporal_dropped > 0
        assert await weak.packets_lost() - lost_before <= 2  # dropped is not lost
        stats = hub.stats()["legs"][weak_id]
        assert stats["max_temporal"] < 2, stats
    finally:
        capper.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await capper
    failures = [r for r in caplog.records if "failed to decode" in r.getMessage()]
    assert failures == []
    await weak.close()
