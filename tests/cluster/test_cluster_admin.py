"""The admin API answers for the whole cluster from any node."""

from __future__ import annotations

import aiohttp

from tests.support.admin import ADMIN
from tests.support.sfu import publish


async def test_rooms_of_every_node_are_listed_and_reachable_from_any_node(
    start_server, connect, redis_server
):
    (node_a, ts_a) = await start_server(redis_url=redis_server.url)
    (node_b, ts_b) = await start_server(redis_url=redis_server.url)
    alice, bob = await connect(ts_a), await connect(ts_b)
    await alice.join("on-a", "alice")
    b = await bob.join("on-b", "bob")
    async with aiohttp.ClientSession(headers=ADMIN) as http:
        async with http.get(ts_a.make_url("/api/rooms")) as resp:
            assert resp.status == 200
            rooms = {r["name"]: r["node"] for r in (await resp.json())["rooms"]}
        assert rooms == {"on-a": node_a.bus.node_id, "on-b": node_b.bus.node_id}

        # A room on node B, asked on node A: proxied to B.
        async with http.get(ts_a.make_url("/api/rooms/on-b")) as resp:
            assert resp.status == 200
            body = await resp.json()
            assert [p["id"] for p in body["participants"]] == [b["participant"]["id"]]

        # Removing a participant through node A ends the session on node B.
        url = ts_a.make_url(f"/api/rooms/on-b/participants/{b['participant']['id']}")
        async with http.delete(url) as resp:
            assert resp.status == 202
        assert await bob.wait_closed() == 1000
        assert bob.close_reason == "removed"

    # Without a token the proxied request is refused by the owner, as locally.
    async with (
        aiohttp.ClientSession() as anonymous,
        anonymous.get(ts_a.make_url("/api/rooms/on-b")) as resp,
    ):
        assert resp.status == 401


async def test_dashboard_feed_on_one_node_shows_rooms_and_samples_of_the_other(
    start_server, connect, redis_server
):
    overrides = {
        "redis_url": redis_server.url,
        "stats_interval_s": 0.2,
        "allow_loopback_candidates": True,
    }
    (node_a, ts_a) = await start_server(**overrides)
    (node_b, ts_b) = await start_server(**overrides)
    bob = await connect(ts_b)
    b = await bob.join("feed-b", "bob")
    pub_pc, _ = await publish(bob)  # a media connection on node B, sampled there
    async with aiohttp.ClientSession() as http:
        feed = await http.ws_connect(ts_a.make_url("/api/feed"), headers=ADMIN)
        assert (await feed.receive_json(timeout=5))["type"] == "hello"
        seen_room = seen_sample = False
        for _ in range(60):
            tick = await feed.receive_json(timeout=5)
            rooms = {r["name"]: r.get("node") for r in tick["rooms"]}
            if rooms.get("feed-b") == node_b.bus.node_id:
                seen_room = True
                assert any(p["id"] == b["participant"]["id"] for p in tick["participants"])
            if any(s["participant_id"] == b["participant"]["id"] for s in tick["samples"]):
                seen_sample = True
            if seen_room and seen_sample:
                break
        await feed.close()
    await pub_pc.close()
    assert seen_room and seen_sample
    assert node_a.registry.get("feed-b") is None
