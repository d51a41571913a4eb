"""`GET /api/events` and the dashboard's event log answer for the whole cluster from any node."""

from __future__ import annotations

import asyncio
import time

import aiohttp
import pytest

from tests.conftest import artifact_path
from tests.support.admin import ADMIN


async def test_events_of_a_room_on_another_node_are_listed(start_server, connect, redis_server):
    (node_a, ts_a) = await start_server(redis_url=redis_server.url)
    (node_b, ts_b) = await start_server(redis_url=redis_server.url)
    alice = await connect(ts_a)
    a = await alice.join("on-a", "alice", name="Alice")
    await alice.send({"type": "leave"})
    await alice.wait_closed()
    async with aiohttp.ClientSession(headers=ADMIN) as http:
        async with http.get(ts_b.make_url("/api/events")) as resp:
            assert resp.status == 200
            events = (await resp.json())["events"]
        mine = [e for e in events if e.get("participant_id") == a["participant"]["id"]]
        assert [e["type"] for e in mine] == ["participant_joined", "participant_left"], events
        assert {e["node"] for e in mine} == {node_a.bus.node_id}
        assert [e["t"] for e in events] == sorted(e["t"] for e in events)
        # `since` is passed on to every node; `scope=local` is one node's own log.
        since = mine[0]["t"]
        async with http.get(ts_b.make_url("/api/events"), params={"since": since}) as resp:
            later = [e["type"] for e in (await resp.json())["events"]]
        assert later == ["participant_left", "room_finished"], later
        async with http.get(ts_b.make_url("/api/events"), params={"scope": "local"}) as resp:
            assert (await resp.json())["events"] == []
    assert node_b.registry.get("on-a") is None
    # Without a token: refused, as on one node.
    async with (
        aiohttp.ClientSession() as anonymous,
        anonymous.get(ts_b.make_url("/api/events")) as resp,
    ):
        assert resp.status == 401


@pytest.mark.browser
async def test_dashboard_on_one_node_shows_events_of_the_other(
    start_server, connect, redis_server, browser
):
    overrides = {"redis_url": redis_server.url, "stats_interval_s": 0.5}
    (_, ts_a) = await start_server(**overrides)
    (_, ts_b) = await start_server(**overrides)
    alice = await connect(ts_a)
    await alice.join("on-a", "alice", name="Alice")
    token = ADMIN["Authorization"].split()[1]
    page = await browser.new_page()
    await page.goto(str(ts_b.make_url(f"/dashboard#token={token}")))
    # Joined before this dashboard opened: only the cluster-wide history has it.
    await page.wait_for_selector("#event-log li:has-text('on-a/Alice joined')", timeout=10000)
    # Live events of the other node arrive too, once each.
    await alice.send({"type": "leave"})
    await page.wait_for_selector("#event-log li:has-text('on-a/Alice left')", timeout=10000)
    await page.wait_for_timeout(1500)
    texts = await page.eval_on_selector_all("#event-log li", "ls => ls.map(l => l.textContent)")
    assert sum("Alice joined" in t for t in texts) == 1, texts
    assert sum("Alice left" in t for t in texts) == 1, texts
    await page.screenshot(path=str(artifact_path("dashboard-cluster-events.png")))


async def test_live_events_reach_a_dashboard_on_a_node_started_just_after(
    start_server, connect, redis_server
):
    """Node A last listed the cluster's nodes before B existed; it must still share its live
    events with B (it learns of B from B's first share), not only after its next refresh."""
    overrides = {"redis_url": redis_server.url, "stats_interval_s": 0.2}
    (_, ts_a) = await start_server(**overrides)
    await asyncio.sleep(0.2)  # A lists the nodes at start: only itself
    (_, ts_b) = await start_server(**overrides)
    async with aiohttp.ClientSession() as http:
        feed = await http.ws_connect(ts_b.make_url("/api/feed"), headers=ADMIN)
        assert (await feed.receive_json(timeout=5))["type"] == "hello"
        await asyncio.sleep(0.4)  # B's first ticks, well before A's next node-list refresh (2 s)
        alice = await connect(ts_a)
        a = await alice.join("early", "alice")
        await alice.send({"type": "leave"})
        await alice.wait_closed()
        seen: list[str] = []
        deadline = time.monotonic() + 5
        while "participant_left" not in seen:
            assert time.monotonic() < deadline, f"B's feed saw only {seen}"
            tick = await feed.receive_json(timeout=5)
            pid = a["participant"]["id"]
            seen += [e["type"] for e in tick.get("events", []) if e.get("participant_id") == pid]
        await feed.close()
