"""The bundled call page in Chromium: join it, and read its remote videos."""

from __future__ import annotations

from typing import Any

REMOTE_VIDEO_STATE = """() => [...document.querySelectorAll('.tile.remote video')].map(v => ({
    width: v.videoWidth, time: v.currentTime,
    frames: v.getVideoPlaybackQuality().totalVideoFrames,
    name: v.parentElement.querySelector('figcaption').textContent}))"""


async def join_call_page(browser: Any, url: str, name: str) -> Any:
    """A new page on the call page at `url`, joined to room browser-call as `name`."""
    context = await browser.new_context(permissions=["camera", "microphone"])
    page = await context.new_page()
    page.on("console", lambda m: m.type == "error" and print(name, "console:", m.text))
    await page.goto(url)
    await page.fill("#name", name)
    await page.fill("#room", "browser-call")
    await page.click("#join")
    await page.wait_for_selector("#status:has-text('In browser-call')", timeout=20000)
    return page
