"""Headless Chromium: the dashboard shows a room that records, and the recording's events."""

from __future__ import annotations

import pytest

from tests.conftest import artifact_path
from tests.recording.conftest import admin_headers
from tests.stats.conftest import api
from tests.support.polling import eventually
from tests.support.publishing import publish_codec

pytestmark = pytest.mark.browser

ROOM = "rec"


async def test_the_dashboard_shows_recording_state_and_events(
    admin_server, connect, browser, tmp_path
):
    server, ts, _ = await admin_server(
        dev=True, allow_loopback_candidates=True, recording_dir=tmp_path / "rec"
    )
    ws = await connect(ts)
    await ws.join(ROOM, "alice", can_publish=True)
    pc, _ = await publish_codec(ws, width=320, height=240)
    assert await eventually(lambda: server.media.track_count(ROOM) == 2, 10)
    dashboard = await browser.new_page(viewport={"width": 1200, "height": 900})
    await dashboard.goto(str(ts.make_url("/dashboard")))
    await dashboard.wait_for_selector("#feed-status[data-state='live']", timeout=10000)
    status, body = await api(ts, "POST", f"/api/rooms/{ROOM}/recordings", admin_headers(ROOM))
    assert status == 201, body
    badge = await dashboard.wait_for_selector("#room-list .room-name .rec", timeout=10000)
    assert await badge.get_attribute("title") == f"recording {body['recording_id']}"
    await dashboard.wait_for_function(
        "(id) => [...document.querySelectorAll('#event-log li')]"
        ".some(li => li.textContent.includes(`recording ${id} of rec started (2 tracks)`))",
        arg=body["recording_id"],
        timeout=10000,
    )
    await dashboard.screenshot(path=str(artifact_path("dashboard-recording.png")))
    path = f"/api/rooms/{ROOM}/recordings/{body['recording_id']}"
    status, _ = await api(ts, "DELETE", path, admin_headers(ROOM))
    assert status == 200
    await dashboard.wait_for_function(
        "(id) => [...document.querySelectorAll('#event-log li')]"
        ".some(li => li.textContent.includes(`recording ${id} of rec finished (api), 2 files`))",
        arg=body["recording_id"],
        timeout=10000,
    )
    await dashboard.wait_for_function(
        "() => !document.querySelector('#room-list .room-name .rec')", timeout=10000
    )
    await pc.close()
