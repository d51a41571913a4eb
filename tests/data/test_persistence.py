"""Persistent topics: late-joiner replay, clear, caps, restart (SQLite), expiry, Redis store."""

from __future__ import annotations

import asyncio

import redis.asyncio as aioredis

from relayroom.media.persistence import SqliteTopicStore
from relayroom.media.persistence_redis import RedisTopicStore
from tests.data.peer import join_data
from tests.support.polling import eventually

# "notes": a persistent topic without a schema (the "whiteboard" schema is tested in tests/hostile).
MEDIA = {"allow_loopback_candidates": True, "data_persistent_topics": ("whiteboard", "notes")}


async def test_late_joiner_gets_the_state_in_order_before_live_messages(start_server, connect):
    _, ts = await start_server(**MEDIA)
    a = await join_data(connect, ts, "board", "a")
    try:
        for n in range(20):
            a.send("notes", {"op": "stroke", "n": n})
        a.send("chat", "not persisted")
        a.send("notes", {"op": "stroke", "n": 99}, to=["PA_x"])  # targeted: not persisted
        a.send("notes", {"op": "stroke", "n": 98}, lossy=True)  # lossy: not persisted
        await asyncio.sleep(0.3)
        late = await join_data(connect, ts, "board", "late")
        a.send("notes", {"op": "stroke", "n": 20})
        assert await eventually(lambda: len(late.messages("notes")) == 21, 5)
        topics = [r.message["topic"] for r in late.received]
        assert topics[0] == "relay"
        assert late.received[0].message["payload"] == {"op": "sync", "reason": "join", "count": 20}
        assert [m["payload"]["n"] for m in late.messages("notes")] == list(range(21))
        assert {m["from"] for m in late.messages("notes")} == {a.id}
        assert late.messages("chat") == []

        # A clear compacts the history: a later joiner sees only what came after it.
        a.send("notes", {"op": "clear"})
        a.send("notes", {"op": "stroke", "n": 100})
        assert await eventually(lambda: len(late.messages("notes")) == 23, 5)
        later = await join_data(connect, ts, "board", "later")
        assert await eventually(lambda: len(later.messages("notes")) == 1, 5)
        assert later.messages("notes")[0]["payload"] == {"op": "stroke", "n": 100}
        await later.close()
        await late.close()
    finally:
        await a.close()


async def test_room_history_cap_refuses_and_tells_the_sender(start_server, connect):
    _, ts = await start_server(**MEDIA, data_room_max_messages=5)
    a = await join_data(connect, ts, "cap", "a")
    b = await join_data(connect, ts, "cap", "b")
    try:
        for n in range(8):
            a.send("notes", n)
        a.send("chat", "still flows")
        assert await eventually(lambda: len(b.messages("chat")) == 1, 5)
        assert [m["payload"] for m in b.messages("notes")] == [0, 1, 2, 3, 4]
        assert await eventually(lambda: any(e["code"] == "too_large" for e in a.errors), 5)
    finally:
        await a.close()
        await b.close()


async def test_state_survives_a_server_restart(start_server, connect, tmp_path):
    server, ts = await start_server(**MEDIA)
    a = await join_data(connect, ts, "keep", "a")
    for n in range(10):
        a.send("notes", {"n": n})
    assert await eventually(lambda: len(server.media.rooms["keep"].data.log) == 10, 5)
    await a.close()
    await ts.close()  # drains: the store writes what is queued and closes
    assert (tmp_path / "data" / "rooms.sqlite3").exists()

    _, ts2 = await start_server(**MEDIA)
    b = await join_data(connect, ts2, "keep", "b")
    try:
        assert await eventually(lambda: len(b.messages("notes")) == 10, 5)
        assert [m["payload"]["n"] for m in b.messages("notes")] == list(range(10))
        assert {m["from"] for m in b.messages("notes")} == {a.id}
    finally:
        await b.close()


async def test_sqlite_history_expires_after_the_room_stays_empty(tmp_path):
    store = SqliteTopicStore(tmp_path / "t.sqlite3", ttl_s=0.3, sweep_interval_s=0.1)
    await store.open()
    try:
        await store.load("r1")
        await store.load("r2")
        store.append("r1", 0, "whiteboard", '{"a":1}')
        store.append("r2", 0, "whiteboard", '{"b":1}')
        store.room_empty("r1")
        await store.flush()
        assert [m.text for m in await store.load("r2")] == ['{"b":1}']
        await asyncio.sleep(0.6)
        assert await store.load("r1") == []  # swept
        assert [m.text for m in await store.load("r2")] == ['{"b":1}']  # never emptied
        store.clear("r2", "whiteboard")
        assert await store.load("r2") == []
    finally:
        await store.close()


async def test_redis_store_appends_clears_and_refuses_a_stale_owner(redis_server):
    fences = {"room": 1}
    store = RedisTopicStore(redis_server.url, ttl_s=0.5, fence=fences.get)
    client = aioredis.Redis.from_url(redis_server.url, decode_responses=True)
    await client.set("rr:fence:room", 1)
    await store.open()
    try:
        store.append("room", 0, "whiteboard", '{"n":0}')
        store.append("room", 1, "chatlog", '{"c":1}')
        store.append("room", 2, "whiteboard", '{"n":1}')
        loaded = await store.load("room")
        assert [(m.topic, m.text) for m in loaded] == [
            ("whiteboard", '{"n":0}'),
            ("chatlog", '{"c":1}'),
            ("whiteboard", '{"n":1}'),
        ]
        store.clear("room", "whiteboard")
        assert [m.text for m in await store.load("room")] == ['{"c":1}']

        # Another node claims the room (the fence moves on): this node's writes are refused.
        await client.incr("rr:fence:room")
        store.append("room", 3, "whiteboard", '{"stale":true}')
        await store.flush()
        assert store.stale_writes == 1
        assert [m.text for m in await store.load("room")] == ['{"c":1}']

        # Expiry: an emptied room's list goes away after ttl_s; loading stops the clock.
        fences["room"] = 2
        store.room_empty("room")
        await store.flush()
        assert 0 < await client.pttl("rr:data:room") <= 500
        await asyncio.sleep(0.7)
        assert await store.load("room") == []
    finally:
        await store.close()
        await client.aclose()


async def test_cluster_mode_keeps_topics_in_redis_across_nodes(start_server, connect, redis_server):
    server, ts = await start_server(**MEDIA, redis_url=redis_server.url)
    a = await join_data(connect, ts, "shared", "a")
    for n in range(5):
        a.send("notes", {"n": n})
    assert await eventually(lambda: len(server.media.rooms["shared"].data.log) == 5, 5)
    await a.close()
    await ts.close()
    client = aioredis.Redis.from_url(redis_server.url, decode_responses=True)
    try:
        assert await client.llen("rr:data:shared") == 5
    finally:
        await client.aclose()

    # Another node (a new process) claims the room with a new fence and replays from Redis.
    _, ts2 = await start_server(**MEDIA, redis_url=redis_server.url)
    b = await join_data(connect, ts2, "shared", "b")
    try:
        assert await eventually(lambda: len(b.messages("notes")) == 5, 10)
        assert [m["payload"]["n"] for m in b.messages("notes")] == list(range(5))
    finally:
        await b.close()
