"""Two relayroom nodes sharing a real redis-server: rooms span nodes, one owner per room."""

from __future__ import annotations

import asyncio
import time

from relayroom.signaling.redis_bus import RedisBus
from tests.support.polling import eventually
from tests.support.sfu import WsSubscriber, publish


async def _two_nodes(start_server, redis_server, **overrides):
    a = await start_server(redis_url=redis_server.url, **overrides)
    b = await start_server(redis_url=redis_server.url, **overrides)
    return a, b


async def test_participants_on_two_nodes_share_a_room(start_server, connect, redis_server):
    (node_a, ts_a), (node_b, ts_b) = await _two_nodes(start_server, redis_server)
    alice, bob = await connect(ts_a), await connect(ts_b)
    a = await alice.join("x", "alice", mode="p2p")
    b = await bob.join("x", "bob")
    assert [p["identity"] for p in b["participants"]] == ["alice"]
    assert b["room"]["mode"] == "p2p"
    joined_event = await alice.expect("participant_joined")
    assert joined_event["participant"]["id"] == b["participant"]["id"]
    # The room lives on node A only.
    assert node_a.registry.get("x") is not None and node_b.registry.get("x") is None

    started = time.perf_counter()
    await bob.send({"type": "signal", "to": a["participant"]["id"], "payload": {"hi": 1}})
    got = await alice.expect("signal")
    assert got == {"type": "signal", "from": b["participant"]["id"], "payload": {"hi": 1}}
    assert time.perf_counter() - started < 1

    await bob.send({"type": "signal", "id": "bad", "to": "PA_nobody", "payload": 1})
    error = await bob.expect("error")
    assert error["code"] == "invalid_message" and error["ref"] == "bad"

    await bob.send({"type": "leave"})
    assert await bob.wait_closed() == 1000
    left = await alice.expect("participant_left")
    assert left["participant_id"] == b["participant"]["id"] and left["reason"] == "left"


async def test_duplicate_identity_across_nodes_closes_the_older(
    start_server, connect, redis_server
):
    (_, ts_a), (_, ts_b) = await _two_nodes(start_server, redis_server)
    first, second = await connect(ts_a), await connect(ts_b)
    await first.join("x", "alice")
    await second.join("x", "alice")
    assert await first.wait_closed() == 1000
    assert first.close_reason == "duplicate_identity"


async def test_media_flows_to_a_subscriber_whose_socket_is_on_another_node(
    start_server, connect, redis_server
):
    (_, ts_a), (_, ts_b) = await _two_nodes(
        start_server, redis_server, allow_loopback_candidates=True
    )
    pub_ws, sub_ws = await connect(ts_a), await connect(ts_b)
    await pub_ws.join("call", "pub")
    await sub_ws.join("call", "sub", can_publish=False)
    subscriber = WsSubscriber(sub_ws)
    pub_pc, _ = await publish(pub_ws)
    try:
        await subscriber.answer_next_offer()
        assert await eventually(
            lambda: any(len(c) >= 30 for c in subscriber.counters.values()), 15
        ), subscriber.counters
    finally:
        await subscriber.close()
        await pub_pc.close()


async def test_concurrent_claims_of_one_room_give_one_owner(redis_server):
    buses = [RedisBus(redis_server.url) for _ in range(10)]
    for bus in buses:
        await bus.start()
    try:
        results = await asyncio.gather(
            *(buses[i % 10].claim_room("contested") for i in range(1000))
        )
        owners = {bus.node_id for bus, i in ((buses[i % 10], i) for i in range(1000)) if results[i]}
        assert len(owners) == 1
        assert sum(results) == 100  # every call from the winning node says yes
    finally:
        for bus in buses:
            await bus.close()


async def test_datachannel_messages_flow_between_clients_on_different_nodes(
    start_server, connect, redis_server
):
    from tests.data.peer import join_data

    (_, ts_a), (_, ts_b) = await _two_nodes(
        start_server, redis_server, allow_loopback_candidates=True
    )
    alice = await join_data(connect, ts_a, "data-x", "alice")
    bob = await join_data(connect, ts_b, "data-x", "bob")  # WebSocket on B, room on A
    try:
        for n in range(20):
            bob.send("chat", {"n": n})
            alice.send("chat", {"n": 100 + n})
        assert await eventually(lambda: len(alice.messages("chat")) == 20, 10)
        assert await eventually(lambda: len(bob.messages("chat")) == 20, 10)
        assert [m["payload"]["n"] for m in alice.messages("chat")] == list(range(20))
        assert {m["from"] for m in bob.messages("chat")} == {alice.id}
    finally:
        await alice.close()
        await bob.close()
