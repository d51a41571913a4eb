"""Documented cluster paths: resuming through another node, and `node_failed` for clients
whose WebSocket is on a surviving node when the room's node dies."""

from __future__ import annotations

import asyncio
import json
import signal
import time
from typing import Any

import aiohttp
import pytest
import redis.asyncio as aioredis

from bench.cluster import Client, Node
from relayroom.signaling.redis_bus import PREFIX
from tests.conftest import token_for
from tests.support.ws import drop


async def test_resume_through_another_node_keeps_the_participant(
    start_server, connect, redis_server
):
    _, ts_a = await start_server(redis_url=redis_server.url, resume_ttl_s=10)
    _, ts_b = await start_server(redis_url=redis_server.url, resume_ttl_s=10)
    alice, bob = await connect(ts_a), await connect(ts_a)
    await alice.join("r", "alice", mode="p2p")  # the room lives on node A
    b = await bob.join("r", "bob")
    await alice.expect("participant_joined")
    await drop(bob)
    carol = await connect(ts_a)
    await carol.join("r", "carol")  # bob misses this while away
    assert (await alice.expect("participant_joined"))["participant"]["identity"] == "carol"

    again = await connect(ts_b)  # back through the other node
    await again.send(
        {"type": "join", "room": "r", "token": token_for("r", "bob"), "resume": b["resume_token"]}
    )
    joined = await again.expect("joined", timeout=5)
    assert joined["resumed"] is True
    assert joined["participant"]["id"] == b["participant"]["id"]
    missed = await again.expect("participant_joined")
    assert missed["participant"]["identity"] == "carol"
    # The resumed session works across nodes both ways, and alice never saw bob leave.
    await again.send({"type": "signal", "to": alice.joined["participant"]["id"], "payload": "hi"})
    assert (await alice.expect("signal"))["payload"] == "hi"
    await alice.send({"type": "signal", "to": b["participant"]["id"], "payload": "back"})
    assert (await again.expect("signal"))["payload"] == "back"
    with pytest.raises(TimeoutError):
        await alice.expect("participant_left", timeout=0.5)


async def _wait_registered(url: str, count: int) -> None:
    client = aioredis.from_url(url, decode_responses=True)
    try:
        deadline = time.monotonic() + 10
        while len(await client.keys(PREFIX + "node:*")) < count:
            assert time.monotonic() < deadline, "the nodes did not register again"
            await asyncio.sleep(0.1)
    finally:
        await client.aclose()


@pytest.mark.slow
@pytest.mark.parametrize("redis_restarted_before", [False, True], ids=["steady", "after-flap"])
async def test_clients_on_a_surviving_node_get_node_failed_and_close_1012(
    tmp_path, redis_server, redis_restarted_before
):
    a, b = Node(redis_server.url, tmp_path, "a"), Node(redis_server.url, tmp_path, "b")
    try:
        async with aiohttp.ClientSession() as session:
            owner = Client("owner", "nf", [], session)
            assert await owner.join(a.ws_url)  # the room lives on node A
            guest = Client("guest", "nf", [], session)
            assert await guest.join(b.ws_url)  # guest's WebSocket is on node B
            assert guest.joined is not None
            # In A's room (B proxies), not in one B claimed for itself.
            assert [p["identity"] for p in guest.joined["participants"]] == ["owner"]
            if redis_restarted_before:
                # A node that once saw Redis go away must still notice dead nodes afterwards.
                redis_server.stop()
                await asyncio.sleep(1.0)
                redis_server.start()
                await _wait_registered(redis_server.url, 2)
                await asyncio.sleep(4.5)  # nobody is declared dead for 2 heartbeats after
            # Killed the moment the guest is told `joined`: B must already be watching A.
            a.kill(signal.SIGKILL)
            killed = time.monotonic()
            seen: list[dict[str, object]] = []
            while not seen or seen[-1]["type"] != "reconnect":
                left = 15 - (time.monotonic() - killed)
                assert left > 0, f"no reconnect within 15 s; the guest got {seen}"
                seen.append(await asyncio.wait_for(guest.inbox.get(), left))
            told = time.monotonic() - killed
            assert seen[-1]["reason"] == "node_failed"
            # docs/deployment.md: "within about a second" (a 1 s watch; slack for a busy host).
            assert told < 5, f"told to reconnect {told:.1f} s after the kill"
            assert guest._reader is not None
            await asyncio.wait_for(guest._reader, 10)
            assert guest.ws.close_code == 1012
    finally:
        a.stop()
        b.stop()


async def test_a_proxied_join_is_answered_before_its_client_hears_joined(
    start_server, redis_server
):
    """The edge node registers a proxied participant when the owner's `join_result` arrives; a
    client told `joined` before that would be unknown to the edge, which then could not ask it
    to reconnect when the owner dies. Here the test plays the edge node on the real bus."""
    owner, _ = await start_server(redis_url=redis_server.url)
    client = aioredis.from_url(redis_server.url, decode_responses=True)
    pubsub = client.pubsub(ignore_subscribe_messages=True)
    try:
        await pubsub.subscribe(PREFIX + "chan:N_edge")
        owner_channel = PREFIX + "chan:" + owner.bus.node_id
        deadline = time.monotonic() + 5
        while (await client.pubsub_numsub(owner_channel))[0][1] == 0:
            assert time.monotonic() < deadline, "the owner node never subscribed"
            await asyncio.sleep(0.05)
        join = {"type": "join", "room": "order", "token": token_for("order", "guest")}
        op = {"op": "join", "req": "r1", "node": "N_edge", "conn": "c1", "text": json.dumps(join)}
        await client.publish(owner_channel, json.dumps(op))
        ops: list[Any] = []
        deadline = time.monotonic() + 5
        while len(ops) < 2:
            assert time.monotonic() < deadline, f"the owner node sent only {ops}"
            message = await pubsub.get_message(timeout=1)
            if message is not None:
                ops.append(json.loads(message["data"]))
        assert [o["op"] for o in ops] == ["join_result", "deliver"], ops
        assert ops[0]["ok"] is True
        assert json.loads(ops[1]["data"])["type"] == "joined"
    finally:
        await pubsub.aclose()
        await client.aclose()
