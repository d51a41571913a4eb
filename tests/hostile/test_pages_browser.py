"""Headless Chromium: every page works under its Content-Security-Policy, and the dashboard
keeps its admin token out of URLs.

Each page records `securitypolicyviolation` events (from an init script, which CSP does not
govern), console errors and uncaught exceptions, while it does its job: the lobby joins, two
call pages play each other's video, a stroke drawn on one whiteboard appears on another, the
dashboard connects to its feed and renders a tick. Then an inline script is injected on each
page: it must be blocked and reported, which shows the policy is enforced and the listener
works.
"""

from __future__ import annotations

from typing import Any

import pytest

from relayroom.signaling.server import PAGES
from tests.conftest import artifact_path
from tests.stats.conftest import admin_token

pytestmark = pytest.mark.browser

WATCH = """
window.__csp = [];
document.addEventListener("securitypolicyviolation", (e) => {
  const where = `${e.sourceFile}:${e.lineNumber}`;
  window.__csp.push(`${e.effectiveDirective} blocked ${e.blockedURI} (${where})`);
});
"""
INLINE_CANARY = """() => new Promise((resolve) => {
  const before = window.__csp.length;
  const script = document.createElement("script");
  script.textContent = "window.__inlineRan = true";
  document.head.append(script);
  setTimeout(() => resolve({ran: window.__inlineRan === true,
                            reported: window.__csp.slice(before)}), 200);
})"""


class Watched:
    """A page in its own context, with everything the browser complained about."""

    def __init__(self, page: Any, name: str) -> None:
        self.page = page
        self.name = name
        self.errors: list[str] = []
        page.on("console", lambda m: self.errors.append(m.text) if m.type == "error" else None)
        page.on("pageerror", lambda exc: self.errors.append(f"uncaught: {exc}"))

    async def violations(self) -> list[str]:
        return list(await self.page.evaluate("() => window.__csp"))

    async def assert_clean(self) -> None:
        """No violation and no error so far; then CSP blocks and reports an inline script."""
        assert await self.violations() == [], (self.name, await self.violations())
        assert self.errors == [], (self.name, self.errors)
        canary = await self.page.evaluate(INLINE_CANARY)
        assert not canary["ran"], f"{self.name}: an inline script ran (no CSP in force)"
        assert any(v.startswith("script-src") for v in canary["reported"]), (self.name, canary)
        await self.page.screenshot(path=str(artifact_path(f"csp-{self.name}.png")))


async def _open(browser: Any, url: str, name: str, **context: Any) -> Watched:
    ctx = await browser.new_context(**context)
    await ctx.add_init_script(WATCH)
    page = await ctx.new_page()
    watched = Watched(page, name)
    await page.goto(url)
    return watched


async def _join(watched: Watched, room: str, status: str) -> None:
    page = watched.page
    await page.fill("#name", watched.name)
    await page.fill("#room", room)
    await page.click("#join")
    try:
        await page.wait_for_selector(f"#status:has-text('{status}')", timeout=20000)
    except Exception as exc:  # say why, when the policy is what broke the page
        raise AssertionError((watched.name, await watched.violations(), watched.errors)) from exc


async def _draw(page: Any) -> None:
    box = await page.locator("#canvas").bounding_box()
    y = box["y"] + box["height"] * 0.5
    await page.mouse.move(box["x"] + box["width"] * 0.2, y)
    await page.mouse.down()
    for i in range(1, 11):
        await page.mouse.move(box["x"] + box["width"] * (0.2 + 0.06 * i), y + i)
    await page.mouse.up()


def test_the_pages_checked_here_are_every_page_served() -> None:
    assert set(PAGES) == {"/", "/call", "/whiteboard", "/dashboard", "/watch"}, (
        "check the new page here"
    )


async def test_every_page_works_under_its_content_security_policy(start_server, browser):
    _, ts = await start_server(dev=True, allow_loopback_candidates=True, stats_interval_s=0.5)
    url = lambda path: str(ts.make_url(path))  # noqa: E731
    media = {"permissions": ["camera", "microphone"]}

    lobby = await _open(browser, url("/"), "lobby")
    await _join(lobby, "csp-lobby", "Connected as")

    boards = [await _open(browser, url("/whiteboard"), f"board-{n}") for n in ("ada", "ben")]
    for board in boards:
        await _join(board, "csp-board", "In csp-board")
    await _draw(boards[0].page)
    for board in boards:
        await board.page.wait_for_function("() => window.board.strokes.length === 1", timeout=15000)

    calls = [await _open(browser, url("/call"), f"call-{n}", **media) for n in ("ada", "ben")]
    for call in calls:
        await _join(call, "csp-call", "In csp-call")
    for call in calls:
        await call.page.wait_for_function(
            "() => [...document.querySelectorAll('.tile.remote video')]"
            ".some(v => v.videoWidth > 0 && v.currentTime > 0)",
            timeout=30000,
        )

    watch = await _open(browser, url("/watch"), "watch")
    await watch.page.fill("#name", "viewer")
    await watch.page.fill("#room", "csp-call")
    await watch.page.click("#watch")
    await watch.page.wait_for_function(
        "() => { const v = document.getElementById('player');"
        " return v.videoWidth > 0 && v.currentTime > 0; }",
        timeout=30000,
    )

    dashboard = await _open(browser, url("/dashboard"), "dashboard")
    await dashboard.page.wait_for_selector("#feed-status[data-state='live']", timeout=10000)
    # Participants are drawn from ticks (the hello message has none).
    await dashboard.page.wait_for_function(
        "() => document.querySelectorAll('[data-participant]').length >= 5", timeout=10000
    )
    for watched in (lobby, *boards, *calls, watch, dashboard):
        await watched.assert_clean()


async def test_pages_cannot_be_framed(start_server, browser):
    _, ts = await start_server(dev=True)
    # Another origin (localhost, not 127.0.0.1) frames the pages; both are loopback, so the
    # browser's private-network rules do not get in the way.
    watched = await _open(browser, f"http://localhost:{ts.port}/healthz", "framer")
    page = watched.page
    for path in PAGES:
        await page.set_content(f'<iframe src="{ts.make_url(path)}"></iframe>')
        frame = await (await page.query_selector("iframe")).content_frame()
        await frame.wait_for_load_state()
        await page.wait_for_timeout(200)
        # Refused, the frame holds the browser's error page instead of ours.
        ours = await frame.query_selector("script[src^='/js/']")
        assert ours is None, f"{path} rendered inside a frame ({frame.url})"


async def test_dashboard_takes_its_token_from_the_fragment_and_keeps_it_out_of_urls(
    start_server, browser
):
    _, ts = await start_server(stats_interval_s=0.5)  # not dev: no token from the server
    token = admin_token()
    ctx = await browser.new_context()
    await ctx.add_init_script(WATCH)
    urls: list[str] = []
    ctx.on("request", lambda request: urls.append(request.url))
    page = await ctx.new_page()
    page.on("websocket", lambda ws: urls.append(ws.url))
    await page.goto(str(ts.make_url("/dashboard")) + f"#token={token}")
    await page.wait_for_selector("#feed-status[data-state='live']", timeout=10000)
    await page.wait_for_function(
        "() => document.querySelector('#feed-status').dataset.state === 'live'"
    )
    address = await page.evaluate("() => window.location.href")
    assert token not in address and "#" not in address, address
    assert urls and not [u for u in urls if token in u], urls  # no request carried it
    assert await page.evaluate("() => window.__csp") == []
    # The page keeps the token for the tab only: a reload reconnects without it in the URL.
    await page.reload()
    await page.wait_for_selector("#feed-status[data-state='live']", timeout=10000)
    assert not [u for u in urls if token in u], urls

    # A token in the query is not used (it has leaked already): the form asks for one.
    fresh = await (await browser.new_context()).new_page()
    await fresh.goto(str(ts.make_url("/dashboard")) + f"?token={token}")
    await fresh.wait_for_selector("#token-form:not([hidden])", timeout=10000)
    assert token not in await fresh.evaluate("() => window.location.href")
