"""Headless Chromium: two lobby pages in one room each list the other participant."""

from __future__ import annotations

import pytest

from tests.conftest import artifact_path

pytestmark = pytest.mark.browser


async def _join(page, url: str, name: str, room: str) -> None:
    await page.goto(url)
    await page.fill("#name", name)
    await page.fill("#room", room)
    await page.click("#join")
    await page.wait_for_selector("#status:has-text('Connected as')")


async def test_two_lobby_pages_list_each_other(start_server, browser):
    _, ts = await start_server(dev=True)
    url = str(ts.make_url("/"))
    context_a, context_b = await browser.new_context(), await browser.new_context()
    page_a, page_b = await context_a.new_page(), await context_b.new_page()
    await _join(page_a, url, "Ada", "lobby-test")
    await _join(page_b, url, "Brian", "lobby-test")
    await page_a.wait_for_selector("#participants li:has-text('Brian')", timeout=5000)
    await page_b.wait_for_selector("#participants li:has-text('Ada')", timeout=5000)
    assert await page_a.locator("#participants li").count() == 2
    assert await page_b.locator("#participants li").count() == 2
    await page_a.screenshot(path=str(artifact_path("lobby-a.png")))
    await page_b.screenshot(path=str(artifact_path("lobby-b.png")))
    # Leaving is seen live by the other page.
    await page_b.click("#leave")
    await page_a.wait_for_selector(
        "#participants li:has-text('Brian')", state="detached", timeout=5000
    )
    assert await page_a.locator("#participants li").count() == 1
