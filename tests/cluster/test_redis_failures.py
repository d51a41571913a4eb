"""Redis restarts and outages: nodes recover by themselves and local rooms never notice."""

from __future__ import annotations

import asyncio
import json
import time

import redis.asyncio as aioredis

from relayroom.signaling.redis_bus import RedisBus


async def _node_keys(url: str) -> set[str]:
    client = aioredis.from_url(url, decode_responses=True)
    try:
        return {str(key) for key in await client.keys("rr:node:*")}
    finally:
        await client.aclose()


async def test_redis_restart_nodes_reregister_and_no_session_drops(
    start_server, connect, redis_server
):
    (node_a, ts_a) = await start_server(redis_url=redis_server.url)
    (node_b, ts_b) = await start_server(redis_url=redis_server.url)
    alice, bob = await connect(ts_a), await connect(ts_b)
    a = await alice.join("x", "alice", mode="p2p")
    await bob.join("x", "bob")

    redis_server.stop()
    await asyncio.sleep(1.0)
    redis_server.start()
    restarted = time.monotonic()

    expected = {f"rr:node:{node_a.bus.node_id}", f"rr:node:{node_b.bus.node_id}"}
    while await _node_keys(redis_server.url) != expected:
        assert time.monotonic() - restarted < 10, "nodes did not re-register within 10 s"
        await asyncio.sleep(0.2)

    # Cross-node traffic flows again (the subscriptions came back) and nobody was dropped.
    deadline = time.monotonic() + 10
    while True:
        await bob.send({"type": "signal", "to": a["participant"]["id"], "payload": "again"})
        try:
            got = await alice.expect("signal", timeout=1)
            break
        except TimeoutError:
            assert time.monotonic() < deadline, "cross-node messages did not resume"
    assert got["payload"] == "again"
    assert time.monotonic() - restarted < 10
    assert not alice.closed.is_set() and not bob.closed.is_set()
    assert not [m for m in alice.skipped if m["type"] == "participant_left"]


async def test_redis_down_fails_fast_with_unavailable_and_local_rooms_work(
    start_server, connect, redis_server
):
    (_, ts) = await start_server(redis_url=redis_server.url)
    alice, carol = await connect(ts), await connect(ts)
    a = await alice.join("local", "alice", mode="p2p")
    await carol.join("local", "carol")
    redis_server.stop()

    newcomer = await connect(ts)
    from tests.conftest import token_for

    started = time.monotonic()
    await newcomer.send(
        {"type": "join", "id": 1, "room": "elsewhere", "token": token_for("elsewhere", "dave")}
    )
    reply = await newcomer.expect("error", timeout=5)
    assert reply["code"] == "unavailable"
    assert time.monotonic() - started <= 2.5

    await carol.send({"type": "signal", "to": a["participant"]["id"], "payload": "local"})
    assert (await alice.expect("signal", timeout=2))["payload"] == "local"

    redis_server.start()
    deadline = time.monotonic() + 15
    while True:
        retry = await connect(ts)
        await retry.send(
            {"type": "join", "room": "elsewhere", "token": token_for("elsewhere", "dave")}
        )
        reply = await retry.recv(timeout=5)
        if reply["type"] == "joined":
            break
        assert reply["code"] == "unavailable"
        assert time.monotonic() < deadline, "did not recover after Redis came back"
        await asyncio.sleep(0.5)


async def test_closing_a_node_bus_never_hangs_whatever_its_loops_are_doing(redis_server):
    """Python 3.11's wait_for drops a cancellation that lands as the Redis call it waits on
    finishes; a loop that survives errors then runs on and close() waited for it forever (a
    node that never finished shutting down). With an almost continuous heartbeat, some of
    these closes land in that moment."""
    for attempt in range(40):
        bus = RedisBus(redis_server.url, heartbeat_s=0.0001)
        await bus.start()
        await asyncio.sleep(0.05)
        closing = asyncio.ensure_future(bus.close())
        done, _ = await asyncio.wait([closing], timeout=5)
        if not done:
            closing.cancel()
        assert done, f"close() still waiting after 5 s (attempt {attempt + 1})"


async def test_closing_a_node_bus_sends_what_is_queued_and_returns_once_sent(redis_server):
    client = aioredis.from_url(redis_server.url, decode_responses=True)
    pubsub = client.pubsub(ignore_subscribe_messages=True)
    await pubsub.subscribe("rr:chan:N_peer")
    bus = RedisBus(redis_server.url, op_timeout_s=2.0)
    try:
        await bus.start()
        for i in range(20):
            bus.publish("N_peer", {"op": "x", "i": i})
        started = time.monotonic()
        await bus.close()
        took = time.monotonic() - started
        got: list[int] = []
        deadline = time.monotonic() + 5
        while len(got) < 20 and time.monotonic() < deadline:
            message = await pubsub.get_message(timeout=0.5)
            if message is not None:
                got.append(json.loads(message["data"])["i"])
        assert got == list(range(20))
        # Not the whole op timeout: close() waits only until the outbox is sent.
        assert took < 1.0, f"close took {took:.2f} s"
    finally:
        await pubsub.aclose()
        await client.aclose()


async def test_a_node_shuts_down_promptly_while_redis_is_down(start_server, connect, redis_server):
    (_, ts) = await start_server(redis_url=redis_server.url)
    clients = [await connect(ts) for _ in range(5)]
    for i, client in enumerate(clients):  # rooms this node owns: claims it cannot release now
        await client.join(f"owned-{i}", "alice")
    redis_server.stop()
    started = time.monotonic()
    for client in clients:
        await client.close()
    await ts.close()
    took = time.monotonic() - started
    assert took < 6, f"shutdown took {took:.1f} s"
