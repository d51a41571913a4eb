"""Headless Chromium: the server goes away for 45 s under two call pages, then comes back.

Each page must keep at most one WebSocket open or pending at a time, space its attempts as the
backoff says (1 s doubling to 30 s, each delay in the upper half of its step), and be back in
the call with remote video playing within 5 s of the server's return.
"""

from __future__ import annotations

import asyncio
import itertools
import time
from typing import Any

import pytest
from aiohttp.test_utils import TestServer

from relayroom.signaling.server import Server, create_app
from tests.conftest import TEST_SECRET, artifact_path, make_config
from tests.support.pages import REMOTE_VIDEO_STATE, wait_for_remote_videos

pytestmark = pytest.mark.browser

OUTAGE_S = 45.0
BACK_WITHIN_S = 5.0
SLACK_S = 0.35  # timer and event-loop lateness on a loaded machine


class SocketLog:
    """Every WebSocket a page opens: when it was created and when it ended."""

    def __init__(self, page: Any) -> None:
        self.sockets: list[dict[str, float | None]] = []
        page.on("websocket", self._created)

    def _created(self, ws: Any) -> None:
        if not ws.url.endswith("/ws"):
            return
        entry: dict[str, float | None] = {"start": time.monotonic(), "end": None}
        self.sockets.append(entry)

        def ended(*_: Any) -> None:
            if entry["end"] is None:
                entry["end"] = time.monotonic()

        ws.on("close", ended)
        ws.on("socketerror", ended)

    def between(self, t0: float, t1: float) -> list[dict[str, float | None]]:
        return [s for s in self.sockets if s["start"] is not None and t0 <= s["start"] < t1]


async def _start(tmp_path: Any, port: int = 0) -> tuple[Server, TestServer]:
    config = make_config(tmp_path, dev=True, resume_ttl_s=30)
    server = Server.build(config, TEST_SECRET)
    test_server = TestServer(create_app(server), host="127.0.0.1", port=port)
    await test_server.start_server()
    server.advertise(str(test_server.make_url("/")))
    return server, test_server


async def join_call_page(browser: Any, url: str, name: str) -> tuple[Any, SocketLog]:
    context = await browser.new_context(permissions=["camera", "microphone"])
    page = await context.new_page()
    log = SocketLog(page)
    await page.goto(url)
    await page.fill("#name", name)
    await page.fill("#room", "outage")
    await page.click("#join")
    await page.wait_for_selector("#status:has-text('In outage')", timeout=20000)
    return page, log


async def _video_advancing(page: Any) -> bool:
    before = await page.evaluate(REMOTE_VIDEO_STATE)
    await asyncio.sleep(0.4)
    after = await page.evaluate(REMOTE_VIDEO_STATE)
    return (
        len(after) == 1
        and len(before) == 1
        and after[0]["width"] > 0
        and after[0]["frames"] > before[0]["frames"]
    )


async def test_two_call_pages_ride_out_a_45s_outage_without_a_reconnect_storm(tmp_path, browser):
    server, ts = await _start(tmp_path)
    port = ts.port
    assert port is not None
    url = str(ts.make_url("/call"))
    (ada, ada_log), (bob, bob_log) = [await join_call_page(browser, url, n) for n in ("Ada", "Bob")]
    for page in (ada, bob):
        await wait_for_remote_videos(page)

    # The outage, as a crash looks to clients: the port closes, every connection drops without
    # a close handshake; then the app shuts down completely and a new one starts on that port.
    assert ts.runner is not None
    for site in list(ts.runner.sites):
        await site.stop()
    for conn in list(server.edges):
        conn.socket.abort("disconnected")
    down_at = time.monotonic()
    await ts.close()
    await asyncio.sleep(OUTAGE_S - (time.monotonic() - down_at))
    _, ts2 = await _start(tmp_path, port)
    back_at = time.monotonic()

    try:
        deadline = back_at + BACK_WITHIN_S
        pending = {"Ada": ada, "Bob": bob}
        while pending and time.monotonic() < deadline + 10:
            for name, page in list(pending.items()):
                if await _video_advancing(page):
                    pending.pop(name)
                    print(f"{name} back with video {time.monotonic() - back_at:.2f}s after return")
        recovered_in = time.monotonic() - back_at
        for page, name in ((ada, "Ada"), (bob, "Bob")):
            await page.screenshot(path=str(artifact_path(f"outage-{name}.png")))
        assert not pending, f"{sorted(pending)} not back with video {recovered_in:.1f}s after"
        assert recovered_in <= BACK_WITHIN_S + 0.5, f"back after {recovered_in:.1f}s"
        for page in (ada, bob):
            assert await page.get_attribute("#status", "data-state") == "connected"

        for name, log in (("Ada", ada_log), ("Bob", bob_log)):
            _check_attempts(name, log, down_at, back_at)
    finally:
        await ts2.close()


def _check_attempts(name: str, log: SocketLog, down_at: float, back_at: float) -> None:
    attempts = log.between(down_at, back_at + BACK_WITHIN_S)
    spans = [
        (round(s["start"] - down_at, 2), s["end"] and round(s["end"] - down_at, 2))  # type: ignore[operator]
        for s in attempts
    ]
    print(name, "attempts (start, end) after the drop:", spans)
    # 45 s of 1, 2, 4, 8, 16, 30 s steps (each at least half its ceiling): 5 to 7 attempts,
    # not the dozens a retry storm opens.
    assert 4 <= len(attempts) <= 7, (name, spans)
    # At most one open or pending at a time: each attempt ended before the next began.
    for earlier, later in itertools.pairwise(attempts):
        assert earlier["end"] is not None and earlier["end"] <= later["start"] + 0.05, (  # type: ignore[operator]
            name,
            spans,
        )
    # Spacing: the wait before attempt k+1 is within [c/2, c] of step k (c = 1 s doubling to 30 s);
    # the attempt that found the server back may come early (the reachability probe).
    for k, (earlier, later) in enumerate(itertools.pairwise(attempts)):
        assert earlier["end"] is not None and later["start"] is not None
        wait = later["start"] - earlier["end"]
        ceiling = min(30.0, 2.0 ** (k + 1))
        assert wait <= ceiling + SLACK_S + 0.5, (name, k, wait, spans)
        if later["start"] < back_at:
            assert wait >= ceiling / 2 - SLACK_S, (name, k, wait, spans)
    first = attempts[0]["start"]
    assert first is not None and 0.5 - SLACK_S <= first - down_at <= 1.0 + SLACK_S + 0.5, spans
