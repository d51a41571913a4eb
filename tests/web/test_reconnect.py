"""Headless Chromium: the server drops a call page's WebSocket; video keeps running via resume."""

from __future__ import annotations

import asyncio

import pytest

from tests.conftest import artifact_path
from tests.support.pages import REMOTE_VIDEO_STATE, join_call_page, wait_for_remote_videos

pytestmark = pytest.mark.browser


async def test_call_survives_a_dropped_websocket_through_resume(start_server, browser):
    server, ts = await start_server(dev=True, resume_ttl_s=30)
    url = str(ts.make_url("/call"))
    ada = await join_call_page(browser, url, "Ada")
    bob = await join_call_page(browser, url, "Bob")
    for page in (ada, bob):
        await wait_for_remote_videos(page)
    ada_id = await ada.evaluate("() => document.querySelector('#status').textContent")
    media = server.media.rooms["browser-call"]

    def negotiations() -> list[tuple[int, int]]:
        """Offers in both directions so far, per participant, counted by the relay."""
        members = sorted(media.participants.values(), key=lambda p: p.id)
        return [(p.offers_sent, p.offers_answered) for p in members]

    before_drop = negotiations()
    assert all(sent >= 1 and answered >= 1 for sent, answered in before_drop), before_drop
    # The server drops Ada's WebSocket without a close handshake (a network blip).
    conn = next(c for c in server.edges if c.room_side and c.room_side.member.name == "Ada")
    participant_id = conn.room_side.member.id
    conn.socket.abort("disconnected")
    await ada.wait_for_selector("#status[data-state='reconnecting']", timeout=5000)
    await ada.wait_for_selector("#status[data-state='connected']", timeout=10000)
    assert "rejoined" not in await ada.text_content("#status"), ada_id
    # Same participant on the server, media never renegotiated, frames still advancing.
    again = next(c for c in server.edges if c.room_side and c.room_side.member.name == "Ada")
    assert again.room_side.member.id == participant_id
    before = await ada.evaluate(REMOTE_VIDEO_STATE)
    await asyncio.sleep(1.5)
    after = await ada.evaluate(REMOTE_VIDEO_STATE)
    assert after[0]["frames"] > before[0]["frames"] and after[0]["time"] > before[0]["time"]
    assert negotiations() == before_drop  # resumed: not one offer either way
    bob_view = await bob.evaluate(REMOTE_VIDEO_STATE)
    assert len(bob_view) == 1 and bob_view[0]["name"] == "Ada"
    await ada.screenshot(path=str(artifact_path("reconnect-ada.png")))
