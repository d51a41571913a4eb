"""A room spanning two Redis nodes: members past the home's share get their media on the other
node, published tracks are piped between the nodes (real Redis, real aiortc peers)."""

from __future__ import annotations

import asyncio

import pytest

from tests.data.peer import DataClient
from tests.support.polling import eventually
from tests.support.sfu import WsSubscriber, publish

pytestmark = pytest.mark.slow


async def test_a_room_spans_two_nodes_media_and_data_cross(start_server, connect, redis_server):
    settings = {
        "redis_url": redis_server.url,
        "allow_loopback_candidates": True,
        "room_shard_max_participants": 2,
    }
    (node_a, ts_a), (node_b, ts_b) = [await start_server(**settings) for _ in range(2)]
    alice_ws, carol_ws, dave_ws = await connect(ts_a), await connect(ts_a), await connect(ts_b)
    await alice_ws.join("span", "alice")
    await carol_ws.join("span", "carol", can_publish=False)
    await dave_ws.join("span", "dave")  # the home (node A) has 2: dave's media is on node B
    assert node_a.registry.get("span") is not None and node_b.registry.get("span") is None
    router_a = node_a.router
    shards = getattr(router_a, "shards", None)
    assert shards is not None
    assert shards.shard_of("span", dave_ws.joined["participant"]["id"]) == node_b.bus.node_id
    carol, dave = WsSubscriber(carol_ws), WsSubscriber(dave_ws)
    pub_pc, _ = await publish(alice_ws)
    try:
        await carol.answer_next_offer()
        await dave.answer_next_offer(timeout=15)
        # dave's subscriber PeerConnection is node B's: alice's track reached it by pipe.
        assert node_b.media.room_count() == 0  # node B's home gateway holds no room
        assert await eventually(
            lambda: all(any(len(c) >= 30 for c in s.counters.values()) for s in (carol, dave)),
            20,
        ), (carol.counters.keys(), dave.counters.keys())
    finally:
        await carol.close()
        await dave.close()
        await pub_pc.close()


async def test_data_messages_cross_two_nodes_of_a_spanning_room(
    start_server, connect, redis_server
):
    settings = {
        "redis_url": redis_server.url,
        "allow_loopback_candidates": True,
        "room_shard_max_participants": 1,
    }
    (node_a, ts_a), (node_b, ts_b) = [await start_server(**settings) for _ in range(2)]
    clients = []
    try:
        for ts, identity in ((ts_a, "alice"), (ts_b, "bob")):
            ws = await connect(ts)
            await ws.join("span-data", identity)
            clients.append(DataClient(ws))
            await clients[-1].start()
        alice, bob = clients
        shards = getattr(node_a.router, "shards", None)
        assert shards is not None and shards.shard_of("span-data", bob.id) == node_b.bus.node_id
        alice.send("chat", {"n": 1})
        bob.send("chat", {"n": 2})
        assert await eventually(lambda: len(alice.messages("chat")) == 1, 10)
        assert await eventually(lambda: len(bob.messages("chat")) == 1, 10)
        assert alice.messages("chat")[0]["from"] == bob.id
    finally:
        for c in clients:
            await c.close()


async def test_a_shard_goes_to_the_least_loaded_node(start_server, connect, redis_server):
    settings = {"redis_url": redis_server.url, "room_shard_max_participants": 1}
    nodes = [await start_server(**settings) for _ in range(3)]
    (home, ts_home), others = nodes[0], nodes[1:]
    # Without loads the tie would go to the smaller node id: make that one the busy one.
    (busy, ts_busy), (idle, _) = sorted(others, key=lambda n: n[0].bus.node_id)
    for identity in ("x", "y"):
        await (await connect(ts_busy)).join("elsewhere", identity)
    # Each node publishes its load with its heartbeat (every 2 s).
    for _ in range(50):
        info = await home.bus.node_info(busy.bus.node_id) or {}
        if info.get("load", {}).get("participants") == 2:
            break
        await asyncio.sleep(0.1)
    assert info.get("load", {}).get("participants") == 2, info
    alice, bob = await connect(ts_home), await connect(ts_home)
    await alice.join("big", "alice")
    joined = await bob.join("big", "bob")
    shards = getattr(home.router, "shards", None)
    assert shards is not None
    # (placed as the join completes, after `joined`: it asks Redis for the nodes)
    bob_id = joined["participant"]["id"]
    assert await eventually(lambda: shards.shard_of("big", bob_id) is not None, 5)
    assert shards.shard_of("big", bob_id) == idle.bus.node_id
