"""The bundled call page in Chromium: join it, and read its remote videos."""

from __future__ import annotations

from typing import Any

REMOTE_VIDEO_STATE = """() => [...document.querySelectorAll('.tile.remote video')].map(v => ({
    width: v.videoWidth, time: v.currentTime,
    frames: v.getVideoPlaybackQuality().totalVideoFrames,
    name: v.parentElement.querySelector('figcaption').textContent}))"""


async def join_page(
    browser: Any, url: str, name: str, room: str = "browser-call", **context_options: Any
) -> Any:
    """A new page (in a new browser context made with `context_options`) on the call or
    whiteboard page at `url`, joined to `room` as `name`."""
    context = await browser.new_context(**context_options)
    page = await context.new_page()
    page.on("console", lambda m: m.type == "error" and print(name, "console:", m.text))
    await page.goto(url)
    await page.fill("#name", name)
    await page.fill("#room", room)
    await page.click("#join")
    await page.wait_for_selector(f"#status:has-text('In {room}')", timeout=20000)
    return page


async def join_call_page(browser: Any, url: str, name: str) -> Any:
    """A new call page at `url`, joined to room browser-call as `name` with camera and mic."""
    return await join_page(browser, url, name, permissions=["camera", "microphone"])


async def wait_for_remote_videos(page: Any, count: int = 1, timeout_ms: int = 30000) -> None:
    """Until the call page shows `count` remote videos with a picture (a size)."""
    await page.wait_for_function(
        "(count) => [...document.querySelectorAll('.tile.remote video')]"
        ".filter(v => v.videoWidth > 0).length >= count",
        arg=count,
        timeout=timeout_ms,
    )
