"""Joins and leaves reach the event log at once, with the reason a participant left."""

from __future__ import annotations

import asyncio

import aiohttp

from relayroom.media.stats import EventLog
from tests.stats.conftest import admin_token, bearer


async def test_join_and_leave_events_carry_the_reason(start_server, connect):
    _, ts = await start_server()
    alice = await connect(ts)
    joined = await alice.join("ev", "alice")
    pid = joined["participant"]["id"]
    headers = bearer(admin_token())
    async with aiohttp.ClientSession(headers=headers) as http:
        async with http.delete(ts.make_url(f"/api/rooms/ev/participants/{pid}")) as resp:
            assert resp.status == 202
        await alice.wait_closed()
        for _ in range(50):
            async with http.get(ts.make_url("/api/events")) as resp:
                events = (await resp.json())["events"]
            mine = [(e["type"], e.get("reason")) for e in events if e.get("participant_id") == pid]
            if ("participant_left", "removed") in mine:
                break
            await asyncio.sleep(0.1)
    assert ("participant_joined", None) in mine
    assert ("participant_left", "removed") in mine


def test_events_logged_in_one_millisecond_stay_apart_for_since():
    """`since=<t of the last event seen>` must not skip one logged in the same millisecond."""
    log = EventLog(100)
    events = [log.add("participant_joined"), log.add("participant_left")]
    assert events[1]["t"] > events[0]["t"]
    assert [e["type"] for e in log.since(events[0]["t"])] == ["participant_left"]
