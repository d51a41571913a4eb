"""Hardening limits: frame size, rate limit, per-IP caps, origins, slow clients."""

from __future__ import annotations

import asyncio
import json
import statistics
import time

import aiohttp
import pytest

from relayroom.signaling.protocol import CloseReason


async def test_oversized_frame_closes_1009(start_server, connect):
    _, ts = await start_server(ws_max_frame_bytes=4096)
    client = await connect(ts)
    await client.join("r1", "alice")
    await client.ws.send_str(json.dumps({"type": "stats", "report": {"x": "y" * 5000}}))
    assert await client.wait_closed() == 1009


async def test_frame_just_under_limit_is_accepted(start_server, connect):
    _, ts = await start_server(ws_max_frame_bytes=4096)
    client = await connect(ts)
    await client.join("r1", "alice")
    await client.send({"type": "stats", "report": {"x": "y" * 3900}})
    await client.send({"type": "ping", "id": 1})
    assert (await client.expect("pong"))["ref"] == 1


async def test_compression_is_not_negotiated(start_server):
    _, ts = await start_server()
    async with aiohttp.ClientSession() as session:
        ws = await session.ws_connect(ts.make_url("/ws"), compress=15)
        assert ws.compress == 0
        await ws.close()


async def test_rate_limit_sends_rate_limited_then_recovers(start_server, connect):
    _, ts = await start_server(rate_limit_msgs_per_s=20, rate_limit_burst=10)
    client = await connect(ts)
    for i in range(30):
        await client.send({"type": "ping", "id": i})
    got = [await client.recv() for _ in range(11)]
    assert sum(m["type"] == "pong" for m in got) == 10
    assert any(m.get("code") == "rate_limited" for m in got)
    await asyncio.sleep(0.3)
    await client.send({"type": "ping", "id": "later"})
    assert (await client.expect("pong"))["ref"] == "later"


async def test_sustained_flood_closes_1008(start_server, connect):
    _, ts = await start_server(
        rate_limit_msgs_per_s=10, rate_limit_burst=5, rate_limit_close_after=50
    )
    client = await connect(ts)
    for i in range(200):
        if client.closed.is_set():
            break
        await client.send({"type": "ping", "id": i})
    assert await client.wait_closed() == 1008


async def test_per_ip_concurrent_connection_cap_answers_429(start_server, connect):
    _, ts = await start_server(ip_max_connections=3)
    for _ in range(3):
        await connect(ts)
    async with aiohttp.ClientSession() as session:
        with pytest.raises(aiohttp.WSServerHandshakeError) as info:
            await session.ws_connect(ts.make_url("/ws"))
        assert info.value.status == 429


async def test_per_ip_handshake_rate_answers_429(start_server, connect):
    _, ts = await start_server(ip_handshakes_per_s=0.5, ip_handshake_burst=2)
    first = await connect(ts)
    await first.close()
    second = await connect(ts)
    await second.close()
    async with aiohttp.ClientSession() as session:
        with pytest.raises(aiohttp.WSServerHandshakeError) as info:
            await session.ws_connect(ts.make_url("/ws"))
        assert info.value.status == 429


async def test_origin_allowlist(start_server, connect):
    _, ts = await start_server(allowed_origins=("https://good.example",))
    ok = await connect(ts, origin="https://good.example")
    await ok.send({"type": "ping", "id": 1})
    assert (await ok.recv())["type"] == "pong"
    async with aiohttp.ClientSession() as session:
        with pytest.raises(aiohttp.WSServerHandshakeError) as info:
            await session.ws_connect(ts.make_url("/ws"), origin="https://evil.example")
        assert info.value.status == 403


async def test_plain_http_get_on_ws_is_400(start_server):
    _, ts = await start_server()
    async with aiohttp.ClientSession() as session, session.get(ts.make_url("/ws")) as resp:
        assert resp.status == 400


async def _broadcast_latencies(server, clients, count: int, pad: int) -> list[float]:
    """Broadcast `count` stamped messages from the room logic; per-message max latency."""
    padding = "x" * pad
    arrivals: dict[int, list[float]] = {i: [] for i in range(count)}

    async def reader(client):
        got = 0
        while got < count:
            message = await client.expect("signal", timeout=20)
            payload = message["payload"]
            arrivals[payload["seq"]].append(time.perf_counter() - payload["t"])
            got += 1

    readers = [asyncio.create_task(reader(c)) for c in clients]
    for seq in range(count):
        server.registry.broadcast(
            "room",
            {
                "type": "signal",
                "from": "bench",
                "payload": {"seq": seq, "t": time.perf_counter(), "pad": padding},
            },
        )
        await asyncio.sleep(0.005)
    await asyncio.gather(*readers)
    return [max(v) for v in arrivals.values()]


@pytest.mark.slow
async def test_non_reading_client_is_cut_off_and_healthy_latency_unaffected(start_server, connect):
    server, ts = await start_server(send_queue_max=64, resume_ttl_s=0)
    healthy = [await connect(ts) for _ in range(20)]
    for i, client in enumerate(healthy):
        await client.join("room", f"healthy-{i}", mode="p2p")
    baseline = await _broadcast_latencies(server, healthy, 150, 16000)

    # The slow client joins and then never reads: aiohttp pauses the socket once its own
    # buffer is full, so the server's kernel buffers and then its send queue fill up.
    session = aiohttp.ClientSession()
    slow = await session.ws_connect(ts.make_url("/ws"))
    from tests.conftest import token_for

    await slow.send_str(
        json.dumps({"type": "join", "room": "room", "token": token_for("room", "slow")})
    )
    for client in healthy:
        await client.expect("participant_joined")
    slow_conn = next(
        c for c in server.edges if c.room_side and c.room_side.member.identity == "slow"
    )
    with_slow = await _broadcast_latencies(server, healthy, 600, 16000)
    assert slow_conn.socket.close_reason == CloseReason.SLOW_CLIENT.value
    room = server.registry.get("room")
    assert sorted(m.identity for m in room.members.values()) == sorted(
        f"healthy-{i}" for i in range(20)
    )
    p99 = lambda xs: statistics.quantiles(xs, n=100)[98]  # noqa: E731
    assert p99(with_slow) < p99(baseline) * 2 + 0.05, (p99(baseline), p99(with_slow))
    await session.close()
