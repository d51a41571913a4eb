"""DataChannel relay through the server, driven by real aiortc clients over the WebSocket."""

from __future__ import annotations

import asyncio
import json

from tests.data.peer import DataClient, join_data
from tests.support.polling import eventually

MEDIA = {"allow_loopback_candidates": True}


async def test_fan_out_reaches_every_other_participant_with_from(start_server, connect):
    _, ts = await start_server(**MEDIA)
    clients = [await join_data(connect, ts, "fan", f"u{i}") for i in range(4)]
    sender, receivers = clients[0], clients[1:]
    try:
        for n in range(30):
            sender.send("chat", {"n": n})
        for r in receivers:
            assert await eventually(
                lambda r=r: len(r.messages("chat")) == 30,  # type: ignore[misc]
                10,
            ), len(r.received)
            got = r.messages("chat")
            assert [m["payload"]["n"] for m in got] == list(range(30))
            assert {m["from"] for m in got} == {sender.id}
        await asyncio.sleep(0.2)
        assert sender.messages("chat") == []  # never echoed to the sender
    finally:
        for c in clients:
            await c.close()


async def test_reliable_keeps_order_under_a_burst(start_server, connect):
    _, ts = await start_server(**MEDIA, data_msgs_per_s=10000, data_msgs_burst=10000)
    a = await join_data(connect, ts, "order", "a")
    b = await join_data(connect, ts, "order", "b")
    try:
        for n in range(1000):
            a.send("seq", n)
        assert await eventually(lambda: len(b.messages("seq")) == 1000, 20), len(b.received)
        assert [m["payload"] for m in b.messages("seq")] == list(range(1000))
        assert all(r.label == "reliable" for r in b.received if r.message["topic"] == "seq")
    finally:
        await a.close()
        await b.close()


async def test_lossy_messages_arrive_on_the_lossy_channel(start_server, connect):
    _, ts = await start_server(**MEDIA)
    a = await join_data(connect, ts, "lossy", "a")
    b = await join_data(connect, ts, "lossy", "b")
    try:
        for n in range(20):
            a.send("cursor", {"x": n}, lossy=True)
        assert await eventually(lambda: len(b.messages("cursor")) >= 18, 5)
        assert {r.label for r in b.received if r.message["topic"] == "cursor"} == {"lossy"}
    finally:
        await a.close()
        await b.close()


async def test_targeted_message_reaches_only_its_targets(start_server, connect):
    _, ts = await start_server(**MEDIA)
    a, b, c = [await join_data(connect, ts, "dm", n) for n in ("a", "b", "c")]
    try:
        a.send("dm", "for b", to=[b.id])
        a.send("dm", "for nobody", to=["PA_unknown"])
        a.send("all", "everyone")
        assert await eventually(
            lambda: len(c.messages("all")) == 1 and len(b.messages("all")) == 1, 5
        )
        assert [m["payload"] for m in b.messages("dm")] == ["for b"]
        assert b.messages("dm")[0]["to"] == [b.id]
        assert c.messages("dm") == []
    finally:
        for x in (a, b, c):
            await x.close()


async def test_messages_never_cross_rooms(start_server, connect):
    _, ts = await start_server(**MEDIA)
    a = await join_data(connect, ts, "room-1", "a")
    b = await join_data(connect, ts, "room-1", "b")
    other = await join_data(connect, ts, "room-2", "c")
    try:
        a.send("chat", "hi")
        a.send("chat", "hi c", to=[other.id])
        assert await eventually(lambda: len(b.messages("chat")) == 1, 5)
        await asyncio.sleep(0.3)
        assert other.messages("chat") == []
    finally:
        for x in (a, b, other):
            await x.close()


async def test_oversized_message_is_dropped_and_sender_told(start_server, connect):
    server, ts = await start_server(**MEDIA, data_max_message_bytes=1024, data_bytes_burst=4096)
    a = await join_data(connect, ts, "big", "a")
    b = await join_data(connect, ts, "big", "b")
    try:
        a.send("blob", "x" * 2000)
        a.send("blob", "small")
        assert await eventually(lambda: len(b.messages("blob")) == 1, 5)
        assert b.messages("blob")[0]["payload"] == "small"
        assert await eventually(lambda: any(e["code"] == "too_large" for e in a.errors), 5)
        p = server.media.rooms["big"].participant(a.id)
        assert p is not None and p.data_stats()["messages_dropped"] == 1
        assert p.data_stats()["messages_relayed"] == 1
    finally:
        await a.close()
        await b.close()


async def test_rate_limit_drops_and_notifies(start_server, connect):
    _, ts = await start_server(**MEDIA, data_msgs_per_s=5, data_msgs_burst=10)
    a = await join_data(connect, ts, "rate", "a")
    b = await join_data(connect, ts, "rate", "b")
    try:
        for n in range(40):
            a.send("spam", n)
        assert await eventually(lambda: any(e["code"] == "rate_limited" for e in a.errors), 5)
        await asyncio.sleep(0.5)
        got = [m["payload"] for m in b.messages("spam")]
        assert 10 <= len(got) <= 14, got
        assert got == sorted(got)
        # One notice for the whole burst (at most one a second).
        assert sum(e["code"] == "rate_limited" for e in a.errors) == 1
    finally:
        await a.close()
        await b.close()


async def test_without_can_publish_data_messages_are_refused_once(start_server, connect):
    _, ts = await start_server(**MEDIA)
    viewer = await join_data(connect, ts, "grant", "viewer", can_publish_data=False)
    b = await join_data(connect, ts, "grant", "b")
    try:
        for _ in range(3):
            viewer.send("chat", "nope")
        b.send("chat", "yes")
        assert await eventually(lambda: len(viewer.messages("chat")) == 1, 5)  # still receives
        assert await eventually(lambda: any(e["code"] == "forbidden" for e in viewer.errors), 5)
        await asyncio.sleep(0.3)
        assert b.messages("chat") == []
        assert [e["code"] for e in viewer.errors] == ["forbidden"]
    finally:
        await viewer.close()
        await b.close()


async def test_malformed_messages_are_dropped_and_counted(start_server, connect):
    server, ts = await start_server(**MEDIA)
    a = await join_data(connect, ts, "bad", "a")
    b = await join_data(connect, ts, "bad", "b")
    try:
        a.send_raw("not json")
        a.send_raw(json.dumps({"payload": 1}))  # no topic
        a.send_raw(json.dumps({"topic": "relay", "payload": {"op": "sync"}}))  # reserved
        a.send_raw(json.dumps([{"topic": "ok", "payload": 1}, {"topic": 5}]))  # half a batch
        assert await eventually(lambda: len(b.messages("ok")) == 1, 5)
        p = server.media.rooms["bad"].participant(a.id)
        assert p is not None
        assert await eventually(lambda: p.data_stats()["messages_dropped"] == 4, 5)
        assert any(e["code"] == "invalid_message" for e in a.errors)
        assert [m for m in b.received if m.message.get("topic") not in ("ok", "relay")] == []
    finally:
        await a.close()
        await b.close()


async def test_data_only_participant_needs_no_media_grant(start_server, connect):
    _, ts = await start_server(**MEDIA)
    a = await join_data(connect, ts, "dataonly", "a", can_publish=False, can_subscribe=False)
    b = await join_data(connect, ts, "dataonly", "b", can_publish=False, can_subscribe=False)
    try:
        a.send("chat", "hello")
        assert await eventually(lambda: len(b.messages("chat")) == 1, 5)
    finally:
        await a.close()
        await b.close()


async def test_sync_marker_opens_every_reliable_channel(start_server, connect):
    _, ts = await start_server(**MEDIA)
    a: DataClient = await join_data(connect, ts, "sync", "a")
    try:
        assert await eventually(lambda: len(a.messages("relay")) == 1, 5)
        first = a.received[0]
        assert first.label == "reliable"
        assert first.message["payload"] == {"op": "sync", "reason": "join", "count": 0}
    finally:
        await a.close()
