"""Each signaling message type over a real WebSocket to a real server on loopback."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest

from relayroom.signaling.protocol import (
    MESSAGE_TYPES,
    ErrorCode,
    ProtocolError,
    parse_client_message,
)
from tests.conftest import token_for


async def test_join_replies_joined_with_room_and_limits(start_server, connect):
    server, ts = await start_server()
    alice = await connect(ts)
    joined = await alice.join("r1", "alice", name="Alice")
    assert joined["ref"] == "j"
    assert joined["participant"]["name"] == "Alice"
    assert joined["participant"]["id"].startswith("PA_")
    assert joined["room"] == {"name": "r1", "mode": "sfu"}
    assert joined["participants"] == []
    assert joined["heartbeat_s"] == server.config.heartbeat_interval_s
    assert joined["limits"]["max_frame_bytes"] == 65536
    assert isinstance(joined["ice_servers"], list)


async def test_second_participant_sees_first_and_first_gets_event(start_server, connect):
    _, ts = await start_server()
    alice, bob = await connect(ts), await connect(ts)
    a = await alice.join("r1", "alice")
    b = await bob.join("r1", "bob")
    assert [p["id"] for p in b["participants"]] == [a["participant"]["id"]]
    event = await alice.expect("participant_joined")
    assert event["participant"]["id"] == b["participant"]["id"]


async def test_leave_closes_1000_and_others_get_participant_left(start_server, connect):
    _, ts = await start_server()
    alice, bob = await connect(ts), await connect(ts)
    await alice.join("r1", "alice")
    b = await bob.join("r1", "bob")
    await bob.send({"type": "leave"})
    assert await bob.wait_closed() == 1000
    left = await alice.expect("participant_left")
    assert left == {
        "type": "participant_left",
        "participant_id": b["participant"]["id"],
        "reason": "left",
    }


async def test_disconnect_is_announced_when_resume_window_ends(start_server, connect):
    _, ts = await start_server(resume_ttl_s=0.3)
    alice, bob = await connect(ts), await connect(ts)
    await alice.join("r1", "alice")
    b = await bob.join("r1", "bob")
    await bob.close()
    left = await alice.expect("participant_left")
    assert left["participant_id"] == b["participant"]["id"]
    assert left["reason"] == "disconnected"


async def test_ping_gets_pong_with_ts_and_ref_before_and_after_join(start_server, connect):
    _, ts = await start_server()
    client = await connect(ts)
    await client.send({"type": "ping", "id": 7, "ts": 123.5})
    assert await client.recv() == {"type": "pong", "ts": 123.5, "ref": 7}
    await client.join("r1", "alice")
    await client.send({"type": "ping"})
    assert (await client.recv())["type"] == "pong"


async def test_signal_is_relayed_in_p2p_room_with_from(start_server, connect):
    _, ts = await start_server()
    alice, bob = await connect(ts), await connect(ts)
    a = await alice.join("mesh", "alice", mode="p2p")
    b = await bob.join("mesh", "bob")
    assert b["room"]["mode"] == "p2p"
    payload = {"sdp": "v=0...", "kind": "offer"}
    await bob.send({"type": "signal", "to": a["participant"]["id"], "payload": payload})
    got = await alice.expect("signal")
    assert got == {"type": "signal", "from": b["participant"]["id"], "payload": payload}


async def test_signal_to_unknown_participant_is_an_error(start_server, connect):
    _, ts = await start_server()
    alice = await connect(ts)
    await alice.join("mesh", "alice", mode="p2p")
    await alice.send({"type": "signal", "id": "s", "to": "PA_nobody", "payload": {}})
    reply = await alice.recv()
    assert reply["type"] == "error" and reply["code"] == "invalid_message" and reply["ref"] == "s"


async def test_signal_is_forbidden_in_sfu_room(start_server, connect):
    _, ts = await start_server()
    alice, bob = await connect(ts), await connect(ts)
    await alice.join("r1", "alice")
    b = await bob.join("r1", "bob")
    await alice.send({"type": "signal", "to": b["participant"]["id"], "payload": {}})
    assert (await alice.expect("error"))["code"] == "forbidden"


async def test_media_messages_in_p2p_room_are_forbidden(start_server, connect):
    _, ts = await start_server()
    alice = await connect(ts)
    await alice.join("mesh", "alice", mode="p2p")
    await alice.send({"type": "publish_offer", "id": 1, "sdp": "v=0"})
    reply = await alice.recv()
    assert reply["code"] == "forbidden" and reply["ref"] == 1


async def test_stats_report_is_kept_for_the_member(start_server, connect):
    server, ts = await start_server()
    alice = await connect(ts)
    joined = await alice.join("r1", "alice")
    await alice.send({"type": "stats", "report": {"fps": 30}})
    await alice.send({"type": "ping", "id": "p"})
    await alice.expect("pong")
    member = server.registry.get("r1").members[joined["participant"]["id"]]
    assert member.client_stats == {"fps": 30}


@pytest.mark.parametrize(
    "type_", ["publish_offer", "subscribe_answer", "mute", "signal", "stats", "candidate", "leave"]
)
async def test_messages_before_join_get_not_joined(start_server, connect, type_):
    _, ts = await start_server()
    client = await connect(ts)
    fields: Any = {
        "publish_offer": {"sdp": "x"},
        "subscribe_answer": {"sdp": "x"},
        "mute": {"track_id": "t", "muted": True},
        "signal": {"to": "x", "payload": 1},
        "stats": {"report": {}},
        "candidate": {"pc": "publisher", "candidate": {"candidate": ""}},
        "leave": {},
    }[type_]
    await client.send({"type": type_, "id": "x", **fields})
    reply = await client.recv()
    assert reply["code"] == "not_joined" and reply["ref"] == "x"


async def test_second_join_on_same_connection_is_rejected(start_server, connect):
    _, ts = await start_server()
    client = await connect(ts)
    await client.join("r1", "alice")
    await client.send({"type": "join", "id": 2, "room": "r2", "token": token_for("r2", "alice")})
    reply = await client.recv()
    assert reply["code"] == "invalid_message" and reply["ref"] == 2


async def test_room_full(start_server, connect):
    _, ts = await start_server(room_max_participants=2)
    clients = [await connect(ts) for _ in range(3)]
    await clients[0].join("small", "a")
    await clients[1].join("small", "b")
    await clients[2].send(
        {"type": "join", "id": 1, "room": "small", "token": token_for("small", "c")}
    )
    reply = await clients[2].recv()
    assert reply["code"] == "room_full"


async def test_duplicate_identity_closes_older_session_with_reason(start_server, connect):
    _, ts = await start_server()
    watcher, old, new = await connect(ts), await connect(ts), await connect(ts)
    await watcher.join("r1", "watcher")
    first = await old.join("r1", "alice")
    second = await new.join("r1", "alice")
    assert await old.wait_closed() == 1000
    assert old.close_reason == "duplicate_identity"
    left = await watcher.expect("participant_left")
    assert left["participant_id"] == first["participant"]["id"]
    assert left["reason"] == "duplicate_identity"
    assert second["participants"] == [watcher.joined["participant"]]


async def test_unknown_type_and_bad_json_keep_connection_usable(start_server, connect):
    _, ts = await start_server()
    client = await connect(ts)
    await client.ws.send_str("{not json")
    assert (await client.recv())["code"] == "invalid_message"
    await client.send({"type": "dance", "id": "d"})
    reply = await client.recv()
    assert reply["code"] == "unknown_type" and reply["ref"] == "d"
    await client.ws.send_bytes(b"\x00\x01")
    assert (await client.recv())["code"] == "invalid_message"
    await client.send({"type": "ping", "id": "still"})
    assert (await client.recv())["type"] == "pong"


def test_every_message_type_has_a_parser_case():
    samples: dict[str, dict[str, Any]] = {
        "join": {"room": "r", "token": "t"},
        "publish_offer": {"sdp": "s"},
        "subscribe_answer": {"sdp": "s"},
        "candidate": {"pc": "subscriber", "candidate": {"candidate": "candidate:1 1 udp"}},
        "mute": {"track_id": "t", "muted": False},
        "subscription": {"track_id": "t", "max_width": 320, "max_height": 180},
        "stats": {"report": {}},
        "signal": {"to": "p", "payload": {}},
        "ping": {},
        "leave": {},
    }
    assert set(samples) == set(MESSAGE_TYPES)
    import json

    for type_, fields in samples.items():
        message = parse_client_message(json.dumps({"type": type_, **fields}))
        assert message.type == type_


@pytest.mark.parametrize(
    "raw, code",
    [
        ('{"type": "mute", "track_id": "t", "muted": "yes"}', ErrorCode.INVALID_MESSAGE),
        ('{"type": "ping", "ts": true}', ErrorCode.INVALID_MESSAGE),
        (
            '{"type": "candidate", "pc": "both", "candidate": {"candidate": ""}}',
            ErrorCode.INVALID_MESSAGE,
        ),
        ('{"type": "join", "room": "   ", "token": "t"}', ErrorCode.INVALID_MESSAGE),
        ('{"type": "join", "room": "r"}', ErrorCode.INVALID_MESSAGE),
        ('{"type": 5}', ErrorCode.INVALID_MESSAGE),
        ("[1, 2]", ErrorCode.INVALID_MESSAGE),
        ('{"type": "ping", "id": {"x": 1}}', ErrorCode.INVALID_MESSAGE),
        ('{"type": "nope"}', ErrorCode.UNKNOWN_TYPE),
    ],
)
def test_parser_rejects_with_stable_codes(raw, code):
    with pytest.raises(ProtocolError) as info:
        parse_client_message(raw)
    assert info.value.code is code


async def test_join_timeout_closes_1008(start_server, connect):
    _, ts = await start_server(join_timeout_s=0.3)
    client = await connect(ts)
    started = time.monotonic()
    assert (await client.recv())["code"] == "not_joined"
    assert await client.wait_closed() == 1008
    assert time.monotonic() - started < 2


async def test_heartbeat_closes_client_that_does_not_answer_pings(start_server, connect):
    _, ts = await start_server(heartbeat_interval_s=0.2, heartbeat_timeout_s=0.2)
    silent = await connect(ts, autoping=False)
    healthy = await connect(ts)
    await healthy.join("r1", "h")
    await silent.join("r1", "s")
    await asyncio.wait_for(silent.closed.wait(), 3)
    await asyncio.sleep(0.6)
    await healthy.send({"type": "ping", "id": 1})
    assert (await healthy.expect("pong"))["ref"] == 1
