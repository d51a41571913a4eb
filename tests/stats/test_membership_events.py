"""Joins and leaves reach the event log at once, with the reason a participant left."""

from __future__ import annotations

import asyncio

import aiohttp

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
