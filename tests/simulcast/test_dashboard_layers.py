"""The dashboard shows a simulcast track's layers (bitrate each, sending or paused) and the
layer each subscriber receives, from the live stats feed of a real Chromium call."""

from __future__ import annotations

from typing import Any

import pytest

from tests.conftest import artifact_path, token_for
from tests.simulcast.pages import JOIN, PUBLISH, wait_for
from tests.stats.conftest import admin_server
from tests.support.browsers import chromium_page

__all__ = ["admin_server"]

pytestmark = pytest.mark.browser

TRACKS = "() => document.querySelector('#tracks').textContent"
# Whether the tracks table shows every text in `parts`.
SHOWS = (
    """(parts) => parts.every((p) => document.querySelector('#tracks').textContent.includes(p))"""
)


async def test_dashboard_shows_layers_and_the_layer_a_viewer_gets(
    admin_server: Any, browser: Any
) -> None:
    _, ts, _ = await admin_server(dev=True)
    url = str(ts.make_url("/call"))
    room = "dash-sim"
    pub = await chromium_page(browser, url)
    viewer = await chromium_page(browser, url)
    token = token_for(room, "viewer", can_publish=True, can_subscribe=True, mode="sfu")
    await viewer.evaluate(JOIN, [token, room, {"maxWidth": 320, "maxHeight": 180}])
    token = token_for(room, "pub", can_publish=True, can_subscribe=True, mode="sfu")
    await pub.evaluate(JOIN, [token, room, None])
    await pub.evaluate(PUBLISH, [1280, 720])
    await wait_for(viewer, lambda r: 0 < r["width"] <= 400 and r["frames"] > 10, 30, "thumbnail")
    pub_id = await pub.evaluate("() => window.client.self.id")
    viewer_id = await viewer.evaluate("() => window.client.self.id")

    dashboard = await browser.new_page(viewport={"width": 1400, "height": 1000})
    await dashboard.goto(str(ts.make_url("/dashboard")))
    await dashboard.wait_for_selector("#feed-status[data-state='live']", timeout=10000)
    await dashboard.click(f"[data-participant='{pub_id}']")
    await dashboard.wait_for_function(
        # (f may be paused before its first keyframe told its size: only a thumbnail is watched)
        SHOWS,
        arg=["layer q", "layer h", "layer f", "320x180"],
        timeout=15000,
    )
    text = await dashboard.evaluate(TRACKS)
    assert "sending" in text and "receiving" in text, text
    await dashboard.screenshot(path=str(artifact_path("simulcast-dashboard-publisher.png")))
    await dashboard.click(f"[data-participant='{viewer_id}']")
    await dashboard.wait_for_function(SHOWS, arg=["layer q \u00b7 PLI"], timeout=15000)
    await dashboard.screenshot(path=str(artifact_path("simulcast-dashboard-viewer.png")))
