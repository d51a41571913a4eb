"""`relayroom serve --workers 2`: real supervisor and worker processes, real aiortc peers."""

from __future__ import annotations

import asyncio
import os
import signal
import time
from functools import partial

import aiohttp

from bench.loopback import free_port
from tests.conftest import WsClient, token_for
from tests.support.polling import eventually
from tests.support.sfu import WsSubscriber, publish
from tests.support.whip import WhepViewer, WhipPublisher
from tests.workers.host import Host, Member, alive


async def _fps(subscriber: WsSubscriber, seconds: float = 4.0) -> float:
    """Decoded video frames per second over the next `seconds` (the video track's)."""
    assert await eventually(lambda: any(len(c) >= 10 for c in subscriber.counters.values()), 20)
    track = max(subscriber.counters, key=lambda t: len(subscriber.counters[t]))
    before = len(subscriber.counters[track])
    await asyncio.sleep(seconds)
    return (len(subscriber.counters[track]) - before) / seconds


async def _join(session: aiohttp.ClientSession, url: str, room: str, identity: str, **kw):
    client = WsClient(await session.ws_connect(url))
    joined = await client.join(room, identity, **kw)
    return client, joined


async def test_two_rooms_land_on_different_workers_and_both_get_25_fps(host) -> None:
    turn_port = free_port()
    h = host("--turn-port", str(turn_port))
    # Every WebSocket goes to worker 0 (its private port serves the same app): without
    # placement by load both rooms would live there.
    entry = (await h.workers())[0]["url"] + "ws"
    async with aiohttp.ClientSession() as session:
        pcs, subs = [], []
        try:
            for room in ("room-a", "room-b"):
                pub, joined = await _join(session, entry, room, "pub")
                # One TURN port for the host: every worker hands out the supervisor's.
                urls = [u for s in joined["ice_servers"] for u in s["urls"]]
                assert f"turn:127.0.0.1:{turn_port}?transport=udp" in urls, urls
                sub, _ = await _join(session, entry, room, "sub", can_publish=False)
                subscriber = WsSubscriber(sub)
                pc, _ = await publish(pub)
                await subscriber.answer_next_offer()
                pcs.append(pc)
                subs.append(subscriber)
            nodes = {await h.room_node("room-a"), await h.room_node("room-b")}
            workers = {w["node"] for w in await h.workers()}
            assert nodes == workers, (nodes, workers)  # one room on each worker
            rates = await asyncio.gather(*(_fps(s) for s in subs))
            assert min(rates) >= 25, rates
        finally:
            for s in subs:
                await s.close()
            for pc in pcs:
                await pc.close()


async def test_a_participant_on_the_other_worker_sees_and_is_seen(host) -> None:
    h = host("--no-turn")
    async with aiohttp.ClientSession() as session:
        alice, _ = await _join(session, h.ws_url, "meet", "alice")
        owner = await h.room_node("meet")
        other = next(w for w in await h.workers() if w["node"] != owner)
        # The room is placed: bob's WebSocket goes to the other worker (its private port
        # serves the same app), which proxies his signaling to the room's worker.
        bob, _ = await _join(session, other["url"] + "ws", "meet", "bob")
        assert await h.room_node("meet") == owner
        alice_pc, _ = await publish(alice)
        bob_sees = WsSubscriber(bob)
        bob_pc, _ = await publish(bob)
        alice_sees = WsSubscriber(alice)
        try:
            await bob_sees.answer_next_offer()
            await alice_sees.answer_next_offer()
            both = (alice_sees, bob_sees)
            assert await eventually(
                lambda: all(any(len(c) >= 30 for c in s.counters.values()) for s in both), 20
            ), [s.counters.keys() for s in both]
            load = {w["node"]: w["load"] for w in await h.workers()}
            assert load[owner]["participants"] == 2 and load[other["node"]]["participants"] == 0
        finally:
            for closing in (alice_sees, bob_sees, alice_pc, bob_pc):
                await closing.close()


async def test_kill_9_of_a_worker_clients_resume_within_10s_and_it_is_replaced(host) -> None:
    h = host("--no-turn")
    async with aiohttp.ClientSession() as session:
        members = [Member(f"c{i}", "fo", session) for i in range(4)]
        for member in members:
            assert await member.join(h.ws_url)
        owner = await h.room_node("fo")
        victim = next(w for w in await h.workers() if w["node"] == owner)
        loops = [asyncio.create_task(m.reconnect_loop(h.ws_url)) for m in members]
        killed = time.monotonic()
        os.kill(victim["pid"], signal.SIGKILL)
        await asyncio.wait_for(asyncio.gather(*loops), 30)
        times = sorted((m.rejoined_at or 0.0) - killed for m in members)
        assert times[-1] <= 10, times
        # Everyone is back together in the room, now on a live worker.
        _, joined = await _join(session, h.ws_url, "fo", "probe")
        assert {p["identity"] for p in joined["participants"]} == {"c0", "c1", "c2", "c3"}
        assert await h.room_node("fo") != owner
        # Media flows in the room's new worker: c0 publishes, c1 decodes it.
        assert members[0].client is not None and members[1].client is not None
        viewer = WsSubscriber(members[1].client)
        pc, _ = await publish(members[0].client)
        try:
            await viewer.answer_next_offer()
            assert await eventually(lambda: any(len(c) >= 30 for c in viewer.counters.values()), 15)
        finally:
            await viewer.close()
            await pc.close()

        async def replaced() -> bool:
            slot = next(w for w in await h.workers() if w["index"] == victim["index"])
            return slot["pid"] != victim["pid"] and slot["state"] == "running" and bool(slot["url"])

        deadline = time.monotonic() + 15
        while not await replaced():
            assert time.monotonic() < deadline, await h.workers()
            await asyncio.sleep(0.2)
        slot = next(w for w in await h.workers() if w["index"] == victim["index"])
        assert slot["restarts"] == 1
        assert f"worker {victim['index']} (pid {victim['pid']}" in h.log()
        assert len(h.children()) == 2


async def test_sigterm_drains_every_worker_and_exits_0(host) -> None:
    h = host("--no-turn")
    workers = h.children()
    assert len(workers) == 2
    async with aiohttp.ClientSession() as session:
        clients = [(await _join(session, h.ws_url, f"r{i}", "x"))[0] for i in range(4)]
        h.signal(signal.SIGTERM)
        for client in clients:
            notice = await client.expect("reconnect", 10)
            assert notice["reason"] == "server_shutdown"
        assert await asyncio.to_thread(h.proc.wait, 20) == 0
    assert not any(alive(pid) for pid in workers)
    assert "draining every worker" in h.log()


async def test_a_dead_supervisor_takes_its_workers_with_it(host) -> None:
    h = host("--no-turn")
    workers = h.children()
    assert len(workers) == 2 and all(alive(pid) for pid in workers)
    h.signal(signal.SIGKILL)
    assert await eventually(lambda: not any(alive(pid) for pid in workers), 10), workers
    assert "the supervisor is gone" in h.log()
    assert "without draining" not in h.log()  # they drained (once), not exited abruptly


async def test_workers_that_keep_dying_stop_the_supervisor_with_exit_1(host) -> None:
    h = host("--no-turn", worker_restart_limit="2", worker_restart_backoff_max_s="0.2")
    for kill in range(3):
        workers = set(h.children())
        assert len(workers) == 2, kill
        os.kill(min(workers), signal.SIGKILL)
        if kill < 2:  # the first two deaths are restarts: wait for the replacement
            assert await eventually(partial(_replaced, h, workers), 15)
    assert await asyncio.to_thread(h.proc.wait, 30) == 1
    assert "giving up" in h.log()


def _replaced(h: Host, before: set[int]) -> bool:
    return len(set(h.children()) - before) == 1


async def test_workers_are_nodes_of_a_redis_cluster(host, redis_server) -> None:
    h = host("--redis", redis_server.url, "--no-turn")
    async with aiohttp.ClientSession() as session:
        alice, a = await _join(session, h.ws_url, "rx", "alice", mode="p2p")
        owner = await h.room_node("rx")
        workers = await h.workers()
        assert {w["node"] for w in workers} >= {owner}
        other = next(w for w in workers if w["node"] != owner)
        bob, b = await _join(session, other["url"] + "ws", "rx", "bob")
        assert [p["identity"] for p in b["participants"]] == ["alice"]
        await bob.send({"type": "signal", "to": a["participant"]["id"], "payload": {"hi": 1}})
        got = await alice.expect("signal")
        assert got["payload"] == {"hi": 1}
    import redis

    client = redis.Redis.from_url(redis_server.url, decode_responses=True)
    try:
        nodes = {key.split(":", 2)[2] for key in client.scan_iter("rr:node:*")}
    finally:
        client.close()
    assert nodes == {w["node"] for w in workers}


async def test_a_hung_worker_is_killed_and_replaced(host) -> None:
    h = host("--no-turn", worker_heartbeat_s="0.5")
    (first, _) = await h.workers()
    os.kill(first["pid"], signal.SIGSTOP)  # alive, but it reports nothing any more
    assert await eventually(lambda: not alive(first["pid"]), 10), h.log()
    assert "stopped reporting: killing it" in h.log()
    deadline = time.monotonic() + 15
    while (slot := (await h.workers())[0])["pid"] == first["pid"] or not slot["url"]:
        assert time.monotonic() < deadline, slot
        await asyncio.sleep(0.2)
    assert slot["restarts"] == 1 and slot["state"] == "running"


async def test_a_scrape_on_the_shared_port_covers_every_worker(host) -> None:
    h = host("--no-turn")
    async with aiohttp.ClientSession() as session:
        _, _ = await _join(session, h.ws_url, "m1", "a")
        _, _ = await _join(session, h.ws_url, "m2", "b")  # placed on the other worker
        for _ in range(3):  # whichever worker accepts the scrape answers for both
            async with session.get(h.url + "/metrics") as response:
                assert response.status == 200
                text = await response.text()
            rooms = {
                line.split("worker=")[1][1]: float(line.rsplit(" ", 1)[1])
                for line in text.splitlines()
                if line.startswith("relayroom_rooms{")
            }
            assert rooms == {"0": 1.0, "1": 1.0}, text[:2000]
        worker = (await h.workers())[0]
        async with session.get(worker["url"] + "metrics?scope=local") as response:
            local = await response.text()
        assert "relayroom_rooms 1.0" in local and 'worker="' not in local


async def test_whip_and_whep_reach_the_rooms_worker_through_any_worker(host) -> None:
    h = host("--no-turn")
    first, second = await h.workers()
    async with aiohttp.ClientSession() as http:
        # The room lives on the first worker; every WHIP/WHEP request goes to the second.
        await _join(http, first["url"] + "ws", "live", "host")
        assert await h.room_node("live") == first["node"]
        publisher = WhipPublisher(http, second["url"])
        viewer = WhepViewer(http, second["url"])
        try:
            assert (await publisher.publish("live", token_for("live", "cam"))).status == 201
            created = await viewer.play("live", token_for("live", "tv", can_publish=False))
            assert created.status == 201, created.body
            assert await eventually(lambda: viewer.video_frames() >= 30, 15), viewer.tracks
            assert await h.room_node("live") == first["node"]
            assert await viewer.delete() == 200
            assert await publisher.delete() == 200
        finally:
            await viewer.close()
            await publisher.close()
