"""Real node processes: SIGKILL of one node and SIGTERM drain move clients to the other."""

from __future__ import annotations

import asyncio
import signal
import time
from typing import Any

import aiohttp
from aiortc import RTCSessionDescription

from bench.cluster import Client, Node
from relayroom.media.aiortc_hooks import configure_ice
from tests.media.client import LOOPBACK, StampedVideoTrack, client_pc, luma, read_stamp


async def test_sigkill_failover_clients_are_back_within_10s_with_media(tmp_path, redis_server):
    a, b = Node(redis_server.url, tmp_path, "a"), Node(redis_server.url, tmp_path, "b")
    try:
        async with aiohttp.ClientSession() as session:
            members = [Client(f"c{i}", "fo", [], session, mode="sfu") for i in range(4)]
            for member in members:
                assert await member.join(a.ws_url)
            loops = [asyncio.create_task(m.reconnect_loop(b.ws_url)) for m in members]
            killed = time.monotonic()
            a.kill(signal.SIGKILL)
            await asyncio.wait_for(asyncio.gather(*loops), 30)
            assert all(m.rejoined_at is not None for m in members)
            times = sorted((m.rejoined_at or 0.0) - killed for m in members)
            assert times[-1] <= 10, times

            # Media flows on the surviving node: c0 publishes, c1 receives decoded frames.
            publisher, viewer = members[0], members[1]
            frames = await _media_roundtrip(publisher, viewer)
            assert len(frames) >= 10 and frames == sorted(frames)
    finally:
        a.stop()
        b.stop()


async def test_sigterm_drains_clients_to_the_other_node(tmp_path, redis_server):
    a, b = Node(redis_server.url, tmp_path, "a"), Node(redis_server.url, tmp_path, "b")
    try:
        async with aiohttp.ClientSession() as session:
            members = [Client(f"d{i}", "drain", [], session) for i in range(3)]
            for member in members:
                assert await member.join(a.ws_url)
            loops = [asyncio.create_task(m.reconnect_loop(b.ws_url)) for m in members]
            a.kill(signal.SIGTERM)
            for member in members:
                notice = await _next(member, "reconnect")
                assert notice == {
                    "type": "reconnect",
                    "reason": "server_shutdown",
                    "retry_after_ms": 1000,
                }
            await asyncio.wait_for(asyncio.gather(*loops), 20)
            assert await asyncio.to_thread(a.proc.wait, 15) == 0
            # Everyone is together again, in the room now owned by node b.
            probe = Client("probe", "drain", [], session)
            assert await probe.join(b.ws_url)
            assert probe.joined is not None
            present = {p["identity"] for p in probe.joined["participants"]}
            assert present == {"d0", "d1", "d2"}
    finally:
        a.stop()
        b.stop()


async def _media_roundtrip(publisher: Client, viewer: Client) -> list[int]:
    """Publish stamped video from one client and decode it at the other; frame counters."""
    pub_pc, sub_pc = client_pc(), client_pc()
    counters: list[int] = []
    readers: list[asyncio.Task[None]] = []

    @sub_pc.on("track")
    def on_track(track):  # type: ignore[no-untyped-def]
        async def read() -> None:
            while len(counters) < 30:
                frame = await track.recv()
                value = read_stamp(luma(frame))
                if value is not None:
                    counters.append(value)

        readers.append(asyncio.ensure_future(read()))

    try:
        pub_pc.addTransceiver(StampedVideoTrack(), direction="sendonly")
        configure_ice(pub_pc, LOOPBACK)
        await pub_pc.setLocalDescription(await pub_pc.createOffer())
        await publisher.ws.send_json({"type": "publish_offer", "sdp": pub_pc.localDescription.sdp})
        answer = await _next(publisher, "publish_answer")
        await pub_pc.setRemoteDescription(RTCSessionDescription(answer["sdp"], "answer"))
        offer = await _next(viewer, "subscribe_offer")
        await sub_pc.setRemoteDescription(RTCSessionDescription(offer["sdp"], "offer"))
        configure_ice(sub_pc, LOOPBACK)
        await sub_pc.setLocalDescription(await sub_pc.createAnswer())
        await viewer.ws.send_json({"type": "subscribe_answer", "sdp": sub_pc.localDescription.sdp})
        deadline = time.monotonic() + 15
        while len(counters) < 10 and time.monotonic() < deadline:
            await asyncio.sleep(0.1)
        return list(counters)
    finally:
        for reader in readers:
            reader.cancel()
        await pub_pc.close()
        await sub_pc.close()


async def _next(client: Client, type_: str) -> dict:
    seen: list[dict[str, Any]] = []
    while True:
        try:
            message = await asyncio.wait_for(client.inbox.get(), 10)
        except TimeoutError:
            raise AssertionError(f"no {type_}; got {seen}") from None
        if message.get("type") == type_:
            return message
        seen.append(message)
