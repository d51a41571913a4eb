"""WHEP playback with a real aiortc player: decodes the room's publisher and follows it."""

from __future__ import annotations

import asyncio
import time

import aiohttp

from relayroom.media.aiortc_hooks import remote_candidate_hosts
from tests.conftest import token_for
from tests.support.polling import eventually
from tests.support.whip import SDP, WhepViewer, WhipPublisher


def counters(viewer: WhepViewer) -> list[int]:
    video = viewer.tracks.get("video")
    return video.counters() if video else []


async def test_whep_player_decodes_the_publisher_at_full_rate(start_server, connect):
    _, ts = await start_server(allow_loopback_candidates=True)
    base = str(ts.make_url("/"))
    watcher = await connect(ts)
    await watcher.join("live", "watcher", can_publish=False)
    async with aiohttp.ClientSession() as http:
        publisher = WhipPublisher(http, base)
        viewer = WhepViewer(http, base)
        try:
            assert (await publisher.publish("live", token_for("live", "cam"))).status == 201
            created = await viewer.play("live", token_for("live", "tv", can_publish=False))
            assert created.status == 201, created.body
            assert created.headers["Content-Type"] == SDP
            assert created.location is not None and created.location.startswith("/whep/live/")
            assert created.body.count("a=sendonly") == 2
            # The viewer is in the room's participant list too.
            assert await eventually(lambda: viewer.video_frames() >= 30, 15), viewer.tracks
            assert "audio" in viewer.tracks
            # The floor, 25 fps; the aiortc encoder runs in this process next to the
            # relay, so what it sends is measured too (a loaded machine encodes fewer frames).
            assert publisher.video is not None
            seen, sent, started = len(counters(viewer)), publisher.video.counter, time.monotonic()
            await asyncio.sleep(3.0)
            elapsed = time.monotonic() - started
            fps = (len(counters(viewer)) - seen) / elapsed
            source = (publisher.video.counter - sent) / elapsed
            assert fps >= min(25.0, 0.9 * source), (fps, source)
            assert counters(viewer) == sorted(counters(viewer))
            assert await viewer.delete() == 200
            assert await viewer.delete() == 404
        finally:
            await viewer.close()
            await publisher.close()


async def test_whep_follows_a_publisher_that_leaves_and_comes_back(start_server, connect):
    server, ts = await start_server(allow_loopback_candidates=True)
    base = str(ts.make_url("/"))
    watcher = await connect(ts)
    await watcher.join("live", "watcher", can_publish=False)
    async with aiohttp.ClientSession() as http:
        first = WhipPublisher(http, base)
        viewer = WhepViewer(http, base)
        second: WhipPublisher | None = None
        try:
            # The player comes first: an empty room still answers, and waits.
            token = token_for("live", "tv", can_publish=False)
            assert (await viewer.play("live", token, "?participant=cam")).status == 201
            assert (await first.publish("live", token_for("live", "cam"))).status == 201
            assert await eventually(lambda: len(counters(viewer)) >= 20, 15), viewer.tracks
            assert await first.delete() == 200
            await first.close()
            before = len(counters(viewer))
            # Same identity, new participant: the same m-lines play the new stream, which
            # starts its frame counter again at 0.
            second = WhipPublisher(http, base)
            assert (await second.publish("live", token_for("live", "cam"))).status == 201
            assert await eventually(lambda: len(counters(viewer)) >= before + 30, 15)
            after = counters(viewer)[before:]
            assert min(after) < 30, after[:10]
            room = server.media.rooms["live"]
            assert len(room.viewers) == 1
            assert next(iter(room.viewers.values())).stats()["video"]["switches"] == 1
        finally:
            await viewer.close()
            await first.close()
            if second is not None:
                await second.close()


async def test_whep_selection_picks_the_named_publisher(start_server, connect):
    server, ts = await start_server(allow_loopback_candidates=True)
    base = str(ts.make_url("/"))
    watcher = await connect(ts)
    await watcher.join("live", "watcher", can_publish=False)
    async with aiohttp.ClientSession() as http:
        a, b = WhipPublisher(http, base), WhipPublisher(http, base)
        viewer = WhepViewer(http, base)
        try:
            assert (await a.publish("live", token_for("live", "a"))).status == 201
            assert (await b.publish("live", token_for("live", "b"))).status == 201
            token = token_for("live", "tv", can_publish=False)
            assert (await viewer.play("live", token, "?participant=b")).status == 201
            ids = {}
            for _ in range(3):
                joined = (await watcher.expect("participant_joined", 5))["participant"]
                ids[joined["identity"]] = joined["id"]
            assert await eventually(lambda: len(counters(viewer)) >= 10, 15)
            feed = server.media.viewer_feed("live", ids["tv"])
            assert feed is not None
            assert {kind: f[0] for kind, f in feed.items() if f} == {
                "audio": ids["b"],
                "video": ids["b"],
            }
        finally:
            await viewer.close()
            await a.close()
            await b.close()


async def test_a_whep_viewer_whose_connection_ends_leaves_the_room(start_server, connect):
    _, ts = await start_server(allow_loopback_candidates=True)
    base = str(ts.make_url("/"))
    watcher = await connect(ts)
    await watcher.join("live", "watcher", can_publish=False)
    async with aiohttp.ClientSession() as http:
        viewer = WhepViewer(http, base)
        try:
            token = token_for("live", "tv", can_publish=False)
            assert (await viewer.play("live", token)).status == 201
            joined = await watcher.expect("participant_joined", 5)
            assert joined["participant"]["identity"] == "tv"
            assert await eventually(lambda: viewer.pc.connectionState == "connected", 10)
            # The player goes away without a DELETE: the relay sees its DTLS/ICE end.
            await viewer.pc.close()
            left = await watcher.expect("participant_left", 10)
            assert left["participant_id"] == joined["participant"]["id"]
            assert left["reason"] == "media_failed"
            assert await viewer.delete() == 404
        finally:
            await viewer.close()


async def test_whep_trickled_candidates_reach_the_viewer(start_server, connect):
    server, ts = await start_server(allow_loopback_candidates=True)
    base = str(ts.make_url("/"))
    watcher = await connect(ts)
    await watcher.join("live", "watcher", can_publish=False)
    async with aiohttp.ClientSession() as http:
        publisher = WhipPublisher(http, base)
        viewer = WhepViewer(http, base)
        try:
            assert (await publisher.publish("live", token_for("live", "cam"))).status == 201
            # A candidate only the PATCH can bring (aiortc connects on peer-reflexive ones).
            marker = "candidate:9 1 udp 2122260223 127.0.0.2 9 typ host"
            token = token_for("live", "tv", can_publish=False)
            assert (await viewer.play("live", token, trickle=(marker,))).status == 201
            ids = {}
            for _ in range(2):
                joined = (await watcher.expect("participant_joined", 5))["participant"]
                ids[joined["identity"]] = joined["id"]
            media_viewer = server.media.rooms["live"].viewer(ids["tv"])
            assert media_viewer is not None
            assert "127.0.0.2" in remote_candidate_hosts(media_viewer.pc)
            assert await eventually(lambda: viewer.video_frames() >= 10, 15)
        finally:
            await viewer.close()
            await publisher.close()
