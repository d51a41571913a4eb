"""Headless Chromium: three call pages in one room each show two remote videos that play."""

from __future__ import annotations

import asyncio

import pytest

from tests.conftest import artifact_path
from tests.support.pages import REMOTE_VIDEO_STATE, join_call_page, wait_for_remote_videos

pytestmark = pytest.mark.browser


async def test_three_call_pages_each_play_two_remote_videos(start_server, browser):
    _, ts = await start_server(dev=True)
    url = str(ts.make_url("/call"))
    names = ["Ada", "Brian", "Chen"]
    pages = [await join_call_page(browser, url, name) for name in names]
    for page in pages:
        await wait_for_remote_videos(page, 2)
    first = [await page.evaluate(REMOTE_VIDEO_STATE) for page in pages]
    await asyncio.sleep(2)
    second = [await page.evaluate(REMOTE_VIDEO_STATE) for page in pages]
    for name, before, after, page in zip(names, first, second, pages, strict=True):
        assert len(after) == 2, (name, after)
        shown = sorted(v["name"] for v in after)
        assert shown == sorted(n for n in names if n != name), (name, shown)
        for b, a in zip(before, after, strict=True):
            assert a["width"] > 0
            assert a["time"] > b["time"], (name, b, a)
            assert a["frames"] > b["frames"], (name, b, a)
        await page.screenshot(path=str(artifact_path(f"call-{name}.png")))

    # Muting the camera shows on the others' tiles; leaving removes the tile.
    await pages[0].click("#toggle-cam")
    await pages[1].wait_for_selector(".tile.remote .badge:has-text('camera off')", timeout=5000)
    await pages[0].click("#leave")
    for page in pages[1:]:
        await page.wait_for_function(
            "() => document.querySelectorAll('.tile.remote').length === 1", timeout=10000
        )
