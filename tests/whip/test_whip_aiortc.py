"""WHIP ingest with a real aiortc publisher over HTTP: it is a participant like any other."""

from __future__ import annotations

import asyncio
import time
from urllib.parse import quote

import aiohttp

from relayroom.media.aiortc_hooks import remote_candidate_hosts
from tests.conftest import token_for
from tests.support.polling import eventually
from tests.support.sfu import WsSubscriber
from tests.support.whip import SDP, WhipPublisher, bearer


async def test_whip_publisher_is_a_participant_and_its_video_decodes(start_server, connect):
    _, ts = await start_server(allow_loopback_candidates=True)
    base = str(ts.make_url("/"))
    watcher = await connect(ts)
    await watcher.join("live", "watcher", can_publish=False)
    subscriber = WsSubscriber(watcher)
    async with aiohttp.ClientSession() as http:
        publisher = WhipPublisher(http, base)
        try:
            created = await publisher.publish("live", token_for("live", "obs", name="OBS"))
            assert created.status == 201, created.body
            assert created.headers["Content-Type"] == SDP
            assert created.location is not None and created.location.startswith("/whip/live/")
            assert created.headers["ETag"].startswith('"')
            assert "m=video" in created.body and "a=fingerprint" in created.body

            joined = await watcher.expect("participant_joined", 5)
            assert joined["participant"]["identity"] == "obs"
            assert joined["participant"]["name"] == "OBS"
            published = await watcher.expect("track_published", 10)
            assert published["participant_id"] == joined["participant"]["id"]
            await subscriber.answer_next_offer(10)
            # Decoded by an aiortc subscriber at the floor (>= 25 fps over 2 s).
            assert await eventually(
                lambda: any(len(c) >= 60 for c in subscriber.counters.values()), 20
            ), subscriber.counters
            frames = max(subscriber.counters.values(), key=len)
            assert frames == sorted(frames)
            # The floor, 25 fps, against what the in-process aiortc encoder sends.
            assert publisher.video is not None
            first, sent, started = len(frames), publisher.video.counter, time.monotonic()
            await asyncio.sleep(3.0)
            elapsed = time.monotonic() - started
            fps = (len(max(subscriber.counters.values(), key=len)) - first) / elapsed
            source = (publisher.video.counter - sent) / elapsed
            assert fps >= min(25.0, 0.9 * source), (fps, source)

            assert await publisher.delete() == 200
            left = await watcher.expect("participant_left", 5)
            assert left["participant_id"] == joined["participant"]["id"]
            assert left["reason"] == "left"
            assert await publisher.delete() == 404
        finally:
            await publisher.close()
            await subscriber.close()


async def test_whip_with_trickled_candidates_connects(start_server, connect):
    server, ts = await start_server(allow_loopback_candidates=True)
    watcher = await connect(ts)
    await watcher.join("live", "watcher", can_publish=False)
    async with aiohttp.ClientSession() as http:
        publisher = WhipPublisher(http, str(ts.make_url("/")))
        try:
            # The offer goes without candidates; they follow in a PATCH, with one more that
            # only the PATCH can have brought (aiortc would connect on peer-reflexive ones).
            marker = "candidate:9 1 udp 2122260223 127.0.0.2 9 typ host"
            token = token_for("live", "enc")
            created = await publisher.publish("live", token, trickle=True, extra=(marker,))
            assert created.status == 201, created.body
            assert await eventually(lambda: publisher.pc.connectionState == "connected", 10)
            joined = await watcher.expect("participant_joined", 5)
            participant = server.media.rooms["live"].participant(joined["participant"]["id"])
            assert participant is not None
            assert "127.0.0.2" in remote_candidate_hosts(participant.publisher_pc)
            published = await watcher.expect("track_published", 10)
            assert published["track"]["kind"] in ("audio", "video")
        finally:
            await publisher.close()


async def test_admin_api_and_stats_see_a_whip_publisher_and_remove_it(start_server, connect):
    _, ts = await start_server(allow_loopback_candidates=True, stats_interval_s=0.2)
    watcher = await connect(ts)
    await watcher.join("live", "watcher", can_publish=False)
    async with aiohttp.ClientSession() as http:
        publisher = WhipPublisher(http, str(ts.make_url("/")))
        try:
            assert (await publisher.publish("live", token_for("live", "enc"))).status == 201
            joined = await watcher.expect("participant_joined", 5)
            pid = joined["participant"]["id"]
            admin = bearer(token_for("live", "ops", admin=True))
            seen: dict = {}

            async def sampled() -> bool:
                async with http.get(ts.make_url("/api/rooms/live"), headers=admin) as r:
                    body = await r.json()
                view = next(p for p in body["participants"] if p["id"] == pid)
                seen.update(view)
                stats = view["stats"] or {}
                return bool((stats.get("summary") or {}).get("bitrate_in_bps"))

            for _ in range(50):
                if await sampled():
                    break
                await asyncio.sleep(0.1)
            assert seen["identity"] == "enc", seen
            assert sorted(t["kind"] for t in seen["tracks"]) == ["audio", "video"], seen
            assert seen["grants"]["can_subscribe"] is False  # a WHIP publisher only sends
            # The stats collector samples it like any publisher (the dashboard shows these).
            assert seen["stats"]["summary"]["bitrate_in_bps"] > 0, seen["stats"]
            assert {t["kind"] for t in seen["stats"]["tracks"]["in"]} == {"audio", "video"}
            url = ts.make_url(f"/api/rooms/live/participants/{pid}")
            async with http.delete(url, headers=admin) as r:
                assert r.status == 202, await r.text()
            left = await watcher.expect("participant_left", 5)
            assert left["participant_id"] == pid and left["reason"] == "removed"
            assert await publisher.delete() == 404
        finally:
            await publisher.close()


async def test_whip_publisher_whose_ice_fails_leaves(start_server, connect):
    _, ts = await start_server(allow_loopback_candidates=True)
    watcher = await connect(ts)
    await watcher.join("live", "watcher", can_publish=False)
    async with aiohttp.ClientSession() as http:
        publisher = WhipPublisher(http, str(ts.make_url("/")))
        try:
            created = await publisher.publish("live", token_for("live", "enc"))
            assert created.status == 201
            assert await eventually(lambda: publisher.pc.connectionState == "connected", 10)
            # The encoder goes away without a DELETE: its DTLS/ICE ends, the relay notices.
            await publisher.pc.close()
            left = await watcher.expect("participant_left", 10)
            assert left["reason"] == "media_failed"
        finally:
            await publisher.close()


async def test_a_room_name_that_needs_quoting_gets_a_usable_location(start_server):
    _, ts = await start_server(allow_loopback_candidates=True)
    room = "studio 1/ä?"
    async with aiohttp.ClientSession() as http:
        publisher = WhipPublisher(http, str(ts.make_url("/")))
        try:
            path = quote(room, safe="")
            created = await publisher.publish(path, token_for(room, "enc"))
            assert created.status == 201, created.body
            assert created.location is not None
            assert created.location.startswith(f"/whip/{path}/"), created.location
            assert await publisher.delete() == 200
        finally:
            await publisher.close()
