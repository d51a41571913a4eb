"""Headless Chromium: the dashboard draws live charts of a two-browser call, from both ends."""

from __future__ import annotations

import asyncio

import pytest

from tests.conftest import artifact_path
from tests.support.pages import join_call_page, wait_for_remote_videos

pytestmark = pytest.mark.browser

# Pixels of the series colours on a chart: [server view (blue, or green for "out"), browser purple].
SERIES_PIXELS = """(name) => {
  const canvas = document.querySelector(`canvas[data-chart="${name}"]`);
  const data = canvas.getContext('2d').getImageData(0, 0, canvas.width, canvas.height).data;
  const near = (i, r, g, b) => Math.abs(data[i] - r) < 40 && Math.abs(data[i + 1] - g) < 40
    && Math.abs(data[i + 2] - b) < 40 && data[i + 3] > 100;
  let server = 0, browser = 0;
  for (let i = 0; i < data.length; i += 4) {
    if (near(i, 63, 167, 255) || near(i, 62, 207, 110)) server++;
    else if (near(i, 199, 146, 234)) browser++;
  }
  return [server, browser];
}"""

POINTS = """(name) => document.querySelector(`canvas[data-chart="${name}"]`)
  .dataset.points.split(',').map(Number)"""
NONE = "\u2013"  # what the dashboard shows for a missing number
METRICS = """() => Object.fromEntries([...document.querySelectorAll('[data-metric]')]
  .map((node) => [node.dataset.metric, node.textContent]))"""


async def test_dashboard_charts_a_live_browser_call(admin_server, browser):
    _, ts, _ = await admin_server(dev=True)
    call_url = str(ts.make_url("/call"))
    pages = [await join_call_page(browser, call_url, name) for name in ("Ada", "Brian")]
    for page in pages:
        await wait_for_remote_videos(page)
    dashboard = await browser.new_page(viewport={"width": 1400, "height": 1000})
    dashboard.on("console", lambda m: m.type == "error" and print("dashboard:", m.text))
    await dashboard.goto(str(ts.make_url("/dashboard")))
    await dashboard.wait_for_selector("#feed-status[data-state='live']", timeout=10000)
    await dashboard.wait_for_function(
        "() => document.querySelectorAll('[data-participant]').length === 2", timeout=10000
    )
    assert await dashboard.text_content("#room-list .room-name") == "browser-call"
    # The browser's own view (sent by the call pages' stats reporter) reaches the dashboard.
    await dashboard.wait_for_function(
        "() => document.querySelector('[data-metric=resolution]').textContent.includes('\\u00d7')",
        timeout=15000,
    )
    await dashboard.wait_for_function(
        "() => document.querySelector('[data-metric=candidate]').textContent === 'host'",
        timeout=5000,
    )
    first = await dashboard.evaluate(METRICS)
    bitrate_first = await dashboard.evaluate(SERIES_PIXELS, "bitrate")
    await asyncio.sleep(3)
    second = await dashboard.evaluate(METRICS)
    bitrate_second = await dashboard.evaluate(SERIES_PIXELS, "bitrate")
    assert first["bitrate_in"] != NONE and second["bitrate_in"] != NONE
    changed = [k for k in ("bitrate_in", "bitrate_out", "jitter") if first[k] != second[k]]
    assert changed, (first, second)
    assert bitrate_second != bitrate_first  # the lines moved
    # Points drawn per series: bitrate [server in, server out, browser in, browser out],
    # fps [server, browser, browser sent]; and the pixels are really there.
    bitrate = await dashboard.evaluate(POINTS, "bitrate")
    fps = await dashboard.evaluate(POINTS, "fps")
    assert bitrate[0] >= 3 and bitrate[1] >= 3 and bitrate[2] >= 1 and bitrate[3] >= 1, bitrate
    assert fps[0] >= 3 and fps[1] >= 1, fps
    # The browser's series grow every 2 s (the page's stats reports): with a point or two
    # their lines are a few pixels long; wait until they are lines.
    await dashboard.wait_for_function(
        """() => [['bitrate', 2], ['fps', 1]].every(([name, browser]) => document.querySelector(
          `canvas[data-chart="${name}"]`).dataset.points.split(',').map(Number)[browser] >= 3)""",
        timeout=15000,
    )
    for name in ("bitrate", "fps"):
        server, client = await dashboard.evaluate(SERIES_PIXELS, name)
        # both series are really drawn (how many pixels a line covers depends on its shape)
        assert server > 10 and client > 10, (name, server, client)
    assert await dashboard.evaluate(SERIES_PIXELS, "resolution") != [0, 0]
    await dashboard.wait_for_function(
        "() => document.querySelectorAll("
        "'#event-log li[data-kind=participant_joined]').length >= 2",
        timeout=5000,
    )
    await dashboard.screenshot(path=str(artifact_path("dashboard.png")), full_page=True)

    # Leaving shows in the event log and the participant list, without a reload.
    await pages[1].click("#leave")
    await dashboard.wait_for_function(
        "() => document.querySelectorAll('[data-participant]').length === 1", timeout=10000
    )
    await dashboard.wait_for_selector("#event-log li[data-kind=participant_left]", timeout=5000)
