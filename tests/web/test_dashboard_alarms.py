"""Headless Chromium: the dashboard raises no false alarms and reads well on a phone.

A receiver is not blamed when someone else turns the camera off, a participant left alone is not
red, events name people and show readable values, and at 390 px the page does not scroll sideways.
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from relayroom.signaling.admin import STATS_KEY
from tests.conftest import artifact_path
from tests.support.pages import join_call_page, wait_for_remote_videos

pytestmark = pytest.mark.browser

HEALTH = """(id) => document.querySelector(`[data-participant="${id}"] .health`)?.dataset.health"""
# Text pixels (the label colour) in the last columns of the bottom strip of a chart: a label
# drawn past the right edge is cut there.
LABEL_AT_EDGE = """(name) => {
  const canvas = document.querySelector(`canvas[data-chart="${name}"]`);
  const ctx = canvas.getContext('2d');
  const ratio = window.devicePixelRatio || 1;
  const strip = Math.round(14 * ratio);
  const data = ctx.getImageData(0, canvas.height - strip, canvas.width, strip).data;
  const columns = new Set();
  for (let i = 0; i < data.length; i += 4) {
    if (data[i + 3] > 60 && Math.abs(data[i] - 139) < 50 && Math.abs(data[i + 2] - 165) < 50) {
      columns.add((i / 4) % canvas.width);
    }
  }
  const right = Math.max(...columns);
  return {width: canvas.width, right, edge: columns.has(canvas.width - 1)};
}"""


def _member_ids(server: Any) -> dict[str, str]:
    room = server.registry.get("browser-call")
    return {m.name: m.id for m in room.members.values()} if room else {}


def _fps_alarms(stats: Any, participant_id: str) -> list[dict[str, Any]]:
    return [
        e
        for e in stats.events.since(None)
        if e["type"] == "threshold_crossed"
        and e["metric"] == "fps"
        and e["participant_id"] == participant_id
    ]


# The camera's real frame rate on a loaded 2-core machine can dip under the default 15 fps; the
# false alarms these tests look for are fps 0, so a low threshold keeps them about the bug.
LOW_FPS_THRESHOLD = 5.0


async def test_muting_and_leaving_do_not_turn_the_receiver_red(start_server, browser):
    server, ts = await start_server(dev=True, stats_fps_threshold=LOW_FPS_THRESHOLD)
    stats = ts.app[STATS_KEY]
    url = str(ts.make_url("/call"))
    ada = await join_call_page(browser, url, "Ada")
    bob = await join_call_page(browser, url, "Bob")
    for page in (ada, bob):
        await wait_for_remote_videos(page)
    ids = _member_ids(server)
    dashboard = await browser.new_page(viewport={"width": 1200, "height": 900})
    await dashboard.goto(str(ts.make_url("/dashboard")))
    await dashboard.wait_for_selector("#feed-status[data-state='live']", timeout=10000)

    # Bob turns his camera off: Ada receives no frames from him, by his choice.
    await bob.click("#toggle-cam")
    await ada.wait_for_selector(".tile.remote .badge:has-text('camera off')", timeout=5000)
    await asyncio.sleep(9)  # > warm-up and smoothing at the 1 s stats interval
    assert _fps_alarms(stats, ids["Ada"]) == []
    assert stats.latest("browser-call", ids["Ada"])["health"] == "ok"
    assert await dashboard.evaluate(HEALTH, ids["Ada"]) == "ok"

    # Bob leaves: Ada is alone in the room, with nothing to receive.
    await bob.click("#leave")
    await asyncio.sleep(9)
    assert _fps_alarms(stats, ids["Ada"]) == []
    assert stats.latest("browser-call", ids["Ada"])["health"] == "ok"
    await dashboard.wait_for_function(
        "() => document.querySelectorAll('[data-participant]').length === 1", timeout=5000
    )
    assert await dashboard.evaluate(HEALTH, ids["Ada"]) == "ok"
    await dashboard.screenshot(path=str(artifact_path("dashboard-alone.png")))


async def test_events_name_people_with_readable_values_and_fit_390px(start_server, browser):
    server, ts = await start_server(dev=True, stats_fps_threshold=LOW_FPS_THRESHOLD)
    stats = ts.app[STATS_KEY]
    url = str(ts.make_url("/call"))
    await join_call_page(browser, url, "Ada")
    await join_call_page(browser, url, "Bob")
    ids = _member_ids(server)
    phone = await browser.new_page(viewport={"width": 390, "height": 844})
    await phone.goto(str(ts.make_url("/dashboard")))
    await phone.wait_for_selector("#feed-status[data-state='live']", timeout=10000)
    # A threshold event as the collector records it: an id and a 4-decimal value.
    stats.record_event(
        "threshold_crossed",
        room="browser-call",
        participant_id=ids["Bob"],
        metric="fps",
        view="browser",
        value=12.3456,
        threshold=15.0,
    )
    line = phone.locator("#event-log li[data-kind='threshold_crossed']", has_text="browser view")
    await line.wait_for(timeout=5000)
    text = await line.text_content()
    assert "browser-call/Bob frame rate 12.3 fps crossed 15.0 fps (browser view)" in text, text
    assert ids["Bob"] not in text and "12.3456" not in text

    # Tables and charts with data in them, then: nothing wider than the phone.
    await phone.wait_for_selector("#tracks table", timeout=15000)
    await phone.wait_for_function(
        "() => document.querySelector('canvas[data-chart=fps]').dataset.points !== undefined"
    )
    await asyncio.sleep(1.5)
    width = await phone.evaluate("() => document.documentElement.scrollWidth")
    wide = await phone.evaluate(
        "() => [...document.querySelectorAll('body > *')]"
        ".filter(e => e.getBoundingClientRect().right > 391)"
        ".map(e => `${e.tagName}#${e.id} ${e.getBoundingClientRect().right}`)"
    )
    assert width <= 390, f"the page is {width}px wide at a 390px viewport: {wide}"
    scrolls = await phone.evaluate(
        "() => { const t = document.querySelector('#tracks');"
        " return t.scrollWidth > t.clientWidth && getComputedStyle(t).overflowX === 'auto'; }"
    )
    assert scrolls, "the tracks table should scroll inside its card"
    label = await phone.evaluate(LABEL_AT_EDGE, "fps")
    assert not label["edge"] and label["right"] > label["width"] - 40, label
    await phone.screenshot(path=str(artifact_path("dashboard-390px.png")), full_page=True)
