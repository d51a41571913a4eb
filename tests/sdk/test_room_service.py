"""RoomService against a live server on loopback: typed results, each error, quoting, the feed."""

from __future__ import annotations

import asyncio
import socket
import time

import pytest

from relayroom.api import (
    AccessToken,
    Grants,
    RoomService,
    RoomServiceError,
)
from tests.conftest import TEST_SECRET


def service_for(ts, **kwargs) -> RoomService:
    kwargs.setdefault("api_secret", TEST_SECRET)
    return RoomService(str(ts.make_url("/")), **kwargs)


async def test_rooms_and_participants_are_typed(start_server, connect):
    _, ts = await start_server()
    alice, bob = await connect(ts), await connect(ts)
    a = await alice.join("r1", "alice", name="Alice")
    await bob.join("r1", "bob", can_publish=False)
    await (await connect(ts)).join("r2", "carol", mode="p2p")
    async with service_for(ts) as service:
        rooms = {r.name: r for r in await service.list_rooms()}
        assert set(rooms) == {"r1", "r2"}
        assert rooms["r1"].participants == 2 and rooms["r1"].mode == "sfu"
        assert rooms["r2"].mode == "p2p" and rooms["r1"].node is None
        assert rooms["r1"].health == "ok" and rooms["r1"].created_at <= time.time()
        detail = await service.get_room("r1")
        by_identity = {p.identity: p for p in detail.participants}
        assert by_identity["alice"].id == a["participant"]["id"]
        assert by_identity["alice"].name == "Alice"
        assert by_identity["bob"].grants == Grants(can_publish=False)
        assert by_identity["alice"].tracks == () and detail.tracks == ()
        participant = await service.get_participant("r1", a["participant"]["id"])
        assert participant == by_identity["alice"]
        with pytest.raises(RoomServiceError) as info:
            await service.get_participant("r1", "PA_nobody")
        assert (info.value.status, info.value.code) == (404, "not_found")


async def test_room_names_are_quoted_whole(start_server, connect):
    _, ts = await start_server()
    name = "a b/c?d#e%f é"
    client = await connect(ts)
    await client.join(name, "alice")
    async with service_for(ts) as service:
        assert [r.name for r in await service.list_rooms()] == [name]
        assert (await service.get_room(name)).name == name
        assert await service.close_room(name) == 1
    assert await client.wait_closed() is not None
    assert client.close_reason == "room_closed"


async def test_remove_participant_ends_its_session(start_server, connect):
    _, ts = await start_server()
    alice, bob = await connect(ts), await connect(ts)
    await alice.join("r", "alice")
    b = await bob.join("r", "bob")
    async with service_for(ts) as service:
        await service.remove_participant("r", b["participant"]["id"])
        assert await bob.wait_closed() is not None
        assert bob.close_reason == "removed"
        left = await alice.expect("participant_left")
        assert left["participant_id"] == b["participant"]["id"]
        assert [p.identity for p in await service.list_participants("r")] == ["alice"]
        with pytest.raises(RoomServiceError) as info:
            await service.remove_participant("r", b["participant"]["id"])
        assert (info.value.status, info.value.code) == (404, "not_found")


async def test_mute_errors_are_typed(start_server, connect):
    _, ts = await start_server()
    alice = await connect(ts)
    a = await alice.join("r", "alice")
    async with service_for(ts) as service:
        with pytest.raises(RoomServiceError) as info:
            await service.mute_track("r", a["participant"]["id"], "no-such-track")
        assert (info.value.status, info.value.code) == (409, "no_media")
        with pytest.raises(RoomServiceError) as info:
            await service.mute_track("nowhere", "PA_x", "t")
        assert (info.value.status, info.value.code) == (404, "not_found")


async def test_stats_history_and_events(start_server, connect):
    _, ts = await start_server(stats_interval_s=0.2)
    alice = await connect(ts)
    a = await alice.join("r", "alice")
    pid = a["participant"]["id"]
    await asyncio.sleep(0.8)
    async with service_for(ts) as service:
        history = await service.participant_stats("r", pid)
        assert history.participant_id == pid and history.interval_s == 0.2
        assert set(history.thresholds) == {"loss", "rtt_ms", "fps"}
        assert history.samples == ()  # samples are of media connections (docs test: some)
        events = await service.list_events()
        joined = [e for e in events if e.type == "participant_joined"]
        assert joined and joined[-1].data["participant_id"] == pid and joined[-1].seq >= 0
        assert await service.list_events(since=time.time() + 60) == []
        info = await service.stats_info()
        assert info["settings"]["interval_s"] == 0.2


async def test_feed_sends_hello_then_ticks(start_server, connect):
    _, ts = await start_server(stats_interval_s=0.2)
    await (await connect(ts)).join("r", "alice")
    seen = []
    async with service_for(ts) as service:
        async for message in service.feed():
            seen.append(message)
            if len(seen) == 3:
                break
    assert [m["type"] for m in seen] == ["hello", "tick", "tick"]
    assert [r["name"] for r in seen[0]["rooms"]] == ["r"]


async def test_room_scoped_token_reaches_its_room_only(start_server, connect):
    _, ts = await start_server()
    await (await connect(ts)).join("mine", "a")
    await (await connect(ts)).join("other", "b")
    token = AccessToken.admin(TEST_SECRET, identity="mod", room="mine").to_jwt()
    async with service_for(ts, api_secret=None, token=token) as service:
        assert (await service.get_room("mine")).name == "mine"
        for call in (service.get_room("other"), service.list_rooms(), service.list_events()):
            with pytest.raises(RoomServiceError) as info:
                await call
            assert (info.value.status, info.value.code) == (403, "forbidden")
        with pytest.raises(RoomServiceError) as info:
            async for _ in service.feed():
                pass
        assert info.value.status == 403


@pytest.mark.parametrize(
    "token, code",
    [
        ("not-a-jwt", "unauthorized"),
        (AccessToken.admin("another-secret-0123456789abcdef-012345").to_jwt(), "unauthorized"),
        (AccessToken(api_secret=TEST_SECRET, identity="p", room="r").to_jwt(), "forbidden"),
    ],
)
async def test_bad_credentials_are_typed_errors(start_server, token, code):
    _, ts = await start_server()
    async with service_for(ts, api_secret=None, token=token) as service:
        with pytest.raises(RoomServiceError) as info:
            await service.list_rooms()
    assert info.value.code == code
    assert info.value.status == (401 if code == "unauthorized" else 403)


async def test_unreachable_server_and_foreign_answers():
    with socket.socket() as sock:  # a port nobody listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    async with RoomService(f"http://127.0.0.1:{port}", api_secret=TEST_SECRET) as service:
        with pytest.raises(RoomServiceError) as info:
            await service.list_rooms()
    assert (info.value.status, info.value.code) == (None, "unreachable")


async def test_an_answer_that_is_not_the_api_is_a_bad_response(start_server):
    _, ts = await start_server()
    async with service_for(ts) as service:
        service_base = RoomService(str(ts.make_url("/js/")), api_secret=TEST_SECRET)
        async with service_base:
            with pytest.raises(RoomServiceError) as info:
                await service_base.list_rooms()
        assert (info.value.status, info.value.code) == (404, "bad_response")
        assert await service.list_rooms() == []


def test_construction_is_checked():
    with pytest.raises(ValueError, match="exactly one"):
        RoomService("http://127.0.0.1:1/")
    with pytest.raises(ValueError, match="exactly one"):
        RoomService("http://127.0.0.1:1/", api_secret=TEST_SECRET, token="t")
    with pytest.raises(ValueError, match="url"):
        RoomService("ws://127.0.0.1:1/", api_secret=TEST_SECRET)
    with pytest.raises(ValueError, match="api_secret"):
        RoomService("http://127.0.0.1:1/", api_secret="short")


async def test_close_is_idempotent_and_final(start_server):
    _, ts = await start_server()
    service = service_for(ts)
    assert await service.list_rooms() == []  # without `async with`: opened on first use
    await service.close()
    await service.close()
    with pytest.raises(RuntimeError, match="closed"):
        await service.list_rooms()
