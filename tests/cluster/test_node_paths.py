"""Documented cluster paths: resuming through another node, and `node_failed` for clients
whose WebSocket is on a surviving node when the room's node dies."""

from __future__ import annotations

import asyncio
import signal

import aiohttp
import pytest

from bench.cluster import Client, Node
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


@pytest.mark.slow
async def test_clients_on_a_surviving_node_get_node_failed_and_close_1012(tmp_path, redis_server):
    a, b = Node(redis_server.url, tmp_path, "a"), Node(redis_server.url, tmp_path, "b")
    try:
        async with aiohttp.ClientSession() as session:
            owner = Client("owner", "nf", [], session)
            assert await owner.join(a.ws_url)  # the room lives on node A
            guest = Client("guest", "nf", [], session)
            assert await guest.join(b.ws_url)  # guest's WebSocket is on node B
            a.kill(signal.SIGKILL)
            notice = None
            while notice is None:
                message = await asyncio.wait_for(guest.inbox.get(), 15)
                if message["type"] == "reconnect":
                    notice = message
            assert notice["reason"] == "node_failed"
            assert guest._reader is not None
            await asyncio.wait_for(guest._reader, 10)
            assert guest.ws.close_code == 1012
    finally:
        a.stop()
        b.stop()
