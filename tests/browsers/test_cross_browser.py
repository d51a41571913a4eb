"""Firefox ESR and Chromium together: a call with video both ways, the whiteboard with its
"join the call too" renegotiation, and Firefox publishing with ``bundlePolicy: "max-bundle"``.

Assertions are what a person would see: a remote ``<video>`` with a size whose ``currentTime``
advances, and frames decoded (``getStats()`` framesDecoded) growing; screenshots go to
test-artifacts/.
"""

from __future__ import annotations

import pytest

from tests.browsers.firefox import FirefoxPage
from tests.support.browsers import (
    HOLD_STREAM,
    SEEN,
    Viewer,
    assert_sees_video,
    chromium_page,
    firefox_page,
)

pytestmark = pytest.mark.browser

JOIN = """([name, room, withMedia]) => {
  document.getElementById('name').value = name;
  document.getElementById('room').value = room;
  const media = document.getElementById('with-media');
  if (media) media.checked = withMedia;
  document.getElementById('join').click();
}"""


async def test_firefox_and_chromium_call_with_video_both_ways(start_server, browser, firefox):
    _, ts = await start_server(dev=True)
    url = str(ts.make_url("/call"))
    chromium = Viewer("chromium", await chromium_page(browser, url))
    fox = Viewer("firefox", await firefox_page(firefox, url))
    await chromium.evaluate(JOIN, ["Chromium", "xb-call", False])
    await fox.evaluate(JOIN, ["Firefox", "xb-call", False])
    for viewer in (chromium, fox):
        await viewer.wait_for("() => !document.getElementById('call').hidden", None, 20)
    for viewer in (chromium, fox):
        await assert_sees_video(viewer, ".tile.remote video")
        names = await viewer.evaluate(
            "() => [...document.querySelectorAll('.tile.remote figcaption')]"
            ".map((f) => f.textContent)"
        )
        assert names == ["Firefox" if viewer is chromium else "Chromium"], names
        await viewer.screenshot(f"xb-call-{viewer.name}.png")


async def test_firefox_with_max_bundle_publishes_video(start_server, browser, firefox):
    """Firefox's max-bundle offer has port 0 + a=bundle-only m-lines: they must be published."""
    server, ts = await start_server(dev=True)
    url = str(ts.make_url("/call"))
    fox = Viewer("firefox", await firefox_page(firefox, url, max_bundle=True))
    chromium = Viewer("chromium", await chromium_page(browser, url))
    await fox.evaluate(JOIN, ["Firefox", "xb-bundle", False])
    await fox.wait_for("() => !document.getElementById('call').hidden", None, 20)
    offer = await fox.evaluate(
        "() => window.__pcs.map((pc) => pc.localDescription && pc.localDescription.sdp)"
    )
    assert any(sdp and "a=bundle-only" in sdp for sdp in offer), offer
    await chromium.evaluate(JOIN, ["Chromium", "xb-bundle", False])
    await assert_sees_video(chromium, ".tile.remote video")
    await assert_sees_video(fox, ".tile.remote video")
    bundle = (await fox.evaluate(SEEN, ".tile.remote video"))["bundle"]
    assert bundle and set(bundle) == {"max-bundle"}, bundle
    media = server.media.rooms["xb-bundle"]
    kinds = sorted(track.kind for _, track in media.tracks())
    assert kinds == ["audio", "audio", "video", "video"], kinds
    await fox.screenshot("xb-max-bundle-firefox.png")
    await chromium.screenshot("xb-max-bundle-chromium.png")


STROKES = """(count) => window.board && window.board.strokes.length === count"""
AUTHORS = """() => window.board.strokes.map((s) => [s.author, s.color])"""


async def _draw(viewer: Viewer, color: str, y: float) -> None:
    await viewer.evaluate(
        "(c) => { document.getElementById('color').value = c; }",
        color,
    )
    box = await viewer.evaluate(
        "() => { const r = document.getElementById('canvas').getBoundingClientRect();"
        " return [r.x, r.y, r.width, r.height]; }"
    )
    x0, y0, width, height = box
    steps: list[tuple[str, float, float]] = [
        ("move", x0 + width * 0.2, y0 + height * y),
        ("down", 0, 0),
    ]
    for i in range(1, 21):
        steps.append(("move", x0 + width * (0.2 + 0.6 * i / 20), y0 + height * y + (i % 5) * 3))
    steps.append(("up", 0, 0))
    if isinstance(viewer.page, FirefoxPage):
        await viewer.page.mouse(steps)
        return
    mouse = viewer.page.mouse
    for action, x, yy in steps:
        if action == "move":
            await mouse.move(x, yy)
        elif action == "down":
            await mouse.down()
        else:
            await mouse.up()


@pytest.mark.parametrize("with_media", [False, True], ids=["board", "board-and-call"])
async def test_whiteboard_across_firefox_and_chromium(start_server, browser, firefox, with_media):
    """Strokes drawn in one browser appear in the other; with "join the call too", each page
    offers its DataChannels first and its camera in a renegotiation, and each sees the other."""
    _, ts = await start_server(dev=True)
    url = str(ts.make_url("/whiteboard"))
    chromium = Viewer("chromium", await chromium_page(browser, url))
    fox = Viewer("firefox", await firefox_page(firefox, url))
    await fox.evaluate(HOLD_STREAM)
    for viewer, name in ((chromium, "Chromium"), (fox, "Firefox")):
        await viewer.evaluate(JOIN, [name, "xb-board", with_media])
        await viewer.wait_for("() => !document.getElementById('board-ui').hidden", None, 20)
    await _draw(chromium, "#ff0000", 0.3)
    await _draw(fox, "#0000ff", 0.7)
    ids = {v.name: await v.evaluate("() => window.board.self") for v in (chromium, fox)}
    for viewer in (chromium, fox):
        await viewer.wait_for(STROKES, 2, 15)
        authors = sorted(map(tuple, await viewer.evaluate(AUTHORS)))
        assert authors == sorted([(ids["chromium"], "#ff0000"), (ids["firefox"], "#0000ff")])
    if with_media:
        for viewer in (chromium, fox):
            await assert_sees_video(viewer, "#videos video")
    for viewer in (chromium, fox):
        suffix = "-call" if with_media else ""
        await viewer.screenshot(f"xb-whiteboard{suffix}-{viewer.name}.png")
