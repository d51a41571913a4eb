"""`--log-format json`: a real server's every log line is a JSON object, and the lines about a
room or participant carry their ids; text stays the default."""

from __future__ import annotations

import asyncio
import contextlib
import io
import json
import logging
import re

import aiohttp
import pytest

from relayroom.api import RoomService
from relayroom.signaling import logs
from tests.conftest import TEST_SECRET, WsClient
from tests.sdk.serve import ServeProcess
from tests.support.polling import eventually
from tests.support.sfu import WsSubscriber, publish

PARTICIPANT_ID = re.compile(r"PA_[A-Za-z0-9_-]+")


async def run_call(server: ServeProcess) -> dict[str, str]:
    """alice publishes to bob in room demo; an admin mutes alice's video and removes bob;
    alice leaves. Returns the participant ids by identity."""
    async with aiohttp.ClientSession() as http:
        alice = WsClient(await http.ws_connect(server.url + "ws"))
        bob = WsClient(await http.ws_connect(server.url + "ws"))
        ids = {
            "alice": (await alice.join("demo", "alice"))["participant"]["id"],
            "bob": (await bob.join("demo", "bob", can_publish=False))["participant"]["id"],
        }
        subscriber = WsSubscriber(bob)
        pc, video = await publish(alice)
        try:
            await bob.expect("track_published", 10)
            await subscriber.answer_next_offer()
            assert await eventually(
                lambda: any(len(c) >= 10 for c in subscriber.counters.values()), 20
            )
            async with RoomService(server.url, api_secret=TEST_SECRET) as service:
                await service.mute_track("demo", ids["alice"], video.id)
                await service.remove_participant("demo", ids["bob"])
            await bob.wait_closed()
            await alice.send({"type": "leave"})
            await alice.wait_closed()
        finally:
            await subscriber.close()
            await pc.close()  # type: ignore[attr-defined]
            await alice.close()
            await bob.close()
    await asyncio.sleep(0.5)  # media teardown logs
    return ids


@pytest.mark.slow
async def test_json_lines_carry_room_participant_and_node(tmp_path):
    server = ServeProcess(tmp_path, "--log-format", "json")
    async with server:
        ids = await run_call(server)
    assert await server.stop() == 0
    text = server.log_text()
    assert TEST_SECRET not in text and "eyJ" not in text  # neither the secret nor a JWT
    lines = [json.loads(line) for line in text.splitlines()]
    assert len(lines) > 20
    about: dict[str, list[dict[str, str]]] = {"alice": [], "bob": []}
    by_id = {pid: who for who, pid in ids.items()}
    for line in lines:
        assert {"time", "level", "logger", "message", "node"} <= set(line), line
        assert line["node"] == "local" and re.match(r"\d{4}-\d\d-\d\dT", line["time"])
        named = set(PARTICIPANT_ID.findall(line["message"]))
        if len(named) == 1:  # a line about one participant names it in its fields
            (pid,) = named
            assert line.get("participant") == pid and line.get("room") == "demo", line
            about[by_id[pid]].append(line)
        if re.search(r"room[ =]demo\b", line["message"]):
            assert line.get("room") == "demo", line
        if "participant" in line:
            assert line["participant"] in by_id and line["room"] == "demo", line

    def said(who: str, logger: str, text: str) -> bool:
        return any(x["logger"] == logger and text in x["message"] for x in about[who])

    assert said("alice", "relayroom.signaling.rooms", "joined")
    assert said("alice", "relayroom.media.participant", "publishes video")
    assert said("alice", "relayroom.signaling.admin", "muted by admin")
    assert said("alice", "relayroom.signaling.rooms", "left: left")
    assert said("bob", "relayroom.media.room", "added")
    assert said("bob", "relayroom.signaling.admin", "removed by admin")
    assert said("bob", "relayroom.media.participant", "closing: left")
    # Lines that do not name anyone inherit the ids from their task: aioice's ICE checks.
    ice = [x for x in lines if x["logger"].startswith("aioice") and "participant" in x]
    assert ice and {x["participant"] for x in ice} <= set(by_id), ice[:3]


async def test_text_stays_the_default(tmp_path):
    server = ServeProcess(tmp_path)
    async with server, aiohttp.ClientSession() as http:
        client = WsClient(await http.ws_connect(server.url + "ws"))
        pid = (await client.join("demo", "alice"))["participant"]["id"]
        await client.close()
    assert await server.stop() == 0
    text = server.log_text()
    assert re.search(
        rf"^\d{{4}}-\d\d-\d\d [\d:,]+ INFO relayroom.signaling.rooms: room=demo participant={pid}"
        " joined",
        text,
        re.M,
    ), text
    assert not any(line.startswith("{") for line in text.splitlines())


async def test_explicit_ids_win_over_the_task_context():
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.addFilter(logs.ContextFilter(node="n1"))
    handler.setFormatter(logs.JsonFormatter())
    log = logging.getLogger("relayroom.test.logs")
    log.addHandler(handler)
    log.setLevel(logging.INFO)
    log.propagate = False
    try:

        async def connection() -> None:
            logs.bind("r", "PA_a")
            log.info("in the connection")
            log.info("about the room only", extra=logs.about("r"))
            log.info("about b", extra=logs.about("r", "PA_b"))
            await asyncio.create_task(started())
            await asyncio.create_task(started(), context=logs.context_about("r", "PA_c"))

        async def started() -> None:
            log.info("in a task")

        await asyncio.create_task(connection())
        log.info("outside")
        with contextlib.suppress(ZeroDivisionError):
            try:
                1 / 0  # noqa: B018
            except ZeroDivisionError:
                log.exception("failed", extra=logs.about("r"))
                raise
    finally:
        log.removeHandler(handler)
    lines = [json.loads(line) for line in stream.getvalue().splitlines()]
    got = [(x["message"], x.get("room"), x.get("participant"), x["node"]) for x in lines]
    assert got == [
        ("in the connection", "r", "PA_a", "n1"),
        ("about the room only", "r", None, "n1"),
        ("about b", "r", "PA_b", "n1"),
        ("in a task", "r", "PA_a", "n1"),
        ("in a task", "r", "PA_c", "n1"),
        ("outside", None, None, "n1"),
        ("failed", "r", None, "n1"),
    ]
    assert "ZeroDivisionError" in lines[-1]["exception"]
