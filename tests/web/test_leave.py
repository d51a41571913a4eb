"""Headless Chromium: a closed or navigated-away call page leaves at once; a dropped one is
shown as "reconnecting" to the others until it resumes."""

from __future__ import annotations

import time

import pytest

from tests.conftest import artifact_path
from tests.support.pages import join_call_page

pytestmark = pytest.mark.browser

ONE_TILE = "() => document.querySelectorAll('.tile.remote').length === {}"


async def _in_call(start_server, browser, names):
    server, ts = await start_server(dev=True, resume_ttl_s=30)
    url = str(ts.make_url("/call"))
    pages = [await join_call_page(browser, url, name) for name in names]
    for page in pages:
        await page.wait_for_function(ONE_TILE.format(len(names) - 1), timeout=20000)
    return server, ts, pages


def _members(server) -> list[str]:
    room = server.registry.get("browser-call")
    return sorted(m.name for m in room.members.values()) if room else []


@pytest.mark.parametrize("how", ["close", "navigate"])
async def test_a_page_that_goes_away_leaves_the_room_at_once(start_server, browser, how):
    server, ts, (ada, bob) = await _in_call(start_server, browser, ["Ada", "Bob"])
    started = time.monotonic()
    if how == "close":
        await bob.close()
    else:
        await bob.goto(str(ts.make_url("/")))
    # Far sooner than the 30 s resume window: Bob sent `leave` on pagehide.
    await ada.wait_for_function(ONE_TILE.format(0), timeout=5000)
    assert time.monotonic() - started < 5
    assert _members(server) == ["Ada"]


async def test_peers_see_reconnecting_while_a_websocket_is_down(start_server, browser):
    server, _, (ada, bob) = await _in_call(start_server, browser, ["Ada", "Bob"])
    conn = next(c for c in server.edges if c.room_side and c.room_side.member.name == "Bob")
    # The server drops Bob's socket without a close handshake (a network loss).
    conn.socket.abort("disconnected")
    await ada.wait_for_selector(
        ".tile.remote[data-connection='reconnecting'] .state:not([hidden])", timeout=5000
    )
    assert await ada.text_content(".tile.remote .state") == "reconnecting"
    await ada.screenshot(path=str(artifact_path("peer-reconnecting.png")))
    assert _members(server) == ["Ada", "Bob"]  # still in the room: it may resume
    # Bob resumes (its backoff retries within seconds): the mark goes away.
    await bob.wait_for_selector("#status[data-state='connected']", timeout=10000)
    await ada.wait_for_selector(".tile.remote[data-connection='connected']", timeout=5000)
    assert await ada.is_hidden(".tile.remote .state")
