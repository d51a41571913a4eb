"""Headless Chromium: whiteboard pages draw together; late joiners and restarts keep the board."""

from __future__ import annotations

import pytest

from tests.conftest import artifact_path
from tests.support.pages import join_page

pytestmark = pytest.mark.browser

BOARD = """() => window.board.strokes.map(s => ({author: s.author, color: s.color,
    points: s.points.length}))"""

# The colour of the canvas pixel under a stroke's middle point.
PIXEL = """(index) => {
  const s = window.board.strokes[index];
  const [x, y] = s.points[Math.floor(s.points.length / 2)];
  const c = document.getElementById('canvas');
  const px = [Math.round(x * c.width), Math.round(y * c.height)];
  const d = c.getContext('2d').getImageData(px[0], px[1], 1, 1).data;
  return [d[0], d[1], d[2], d[3]];
}"""


async def _open(browser, url: str, name: str):
    return await join_page(browser, url, name, "wb", viewport={"width": 1280, "height": 1100})


async def _draw(page, color: str, y: float) -> None:
    await page.evaluate(
        f"() => {{ const i = document.getElementById('color'); i.value = '{color}'; }}"
    )
    box = await page.locator("#canvas").bounding_box()
    x0, x1 = box["x"] + box["width"] * 0.2, box["x"] + box["width"] * 0.8
    yy = box["y"] + box["height"] * y
    await page.mouse.move(x0, yy)
    await page.mouse.down()
    for i in range(1, 21):
        await page.mouse.move(x0 + (x1 - x0) * i / 20, yy + (i % 5) * 3)
    await page.mouse.up()


async def _strokes(page, count: int) -> list[dict]:
    await page.wait_for_function(f"() => window.board.strokes.length === {count}", timeout=15000)
    return await page.evaluate(BOARD)


async def test_whiteboard_pages_share_strokes_late_joiners_and_restarts(start_server, browser):
    _, ts = await start_server(dev=True)
    url = str(ts.make_url("/whiteboard"))
    ada = await _open(browser, url, "Ada")
    ben = await _open(browser, url, "Ben")
    ada_id = await ada.evaluate("() => window.board.self")
    ben_id = await ben.evaluate("() => window.board.self")

    await _draw(ada, "#ff0000", 0.3)
    await _draw(ben, "#0000ff", 0.7)
    for page in (ada, ben):
        strokes = await _strokes(page, 2)
        assert {(s["author"], s["color"]) for s in strokes} == {
            (ada_id, "#ff0000"),
            (ben_id, "#0000ff"),
        }
        assert all(s["points"] >= 10 for s in strokes)
    # Rendered: the pixel under each remote stroke has the stroke's colour.
    await ben.wait_for_timeout(300)
    red = await ben.evaluate(PIXEL, 0 if (await _strokes(ben, 2))[0]["author"] == ada_id else 1)
    assert red[0] > 200 and red[1] < 60 and red[2] < 60 and red[3] > 200, red
    blue_index = 0 if (await _strokes(ada, 2))[0]["author"] == ben_id else 1
    blue = await ada.evaluate(PIXEL, blue_index)
    assert blue[2] > 200 and blue[0] < 60 and blue[3] > 200, blue
    await ada.screenshot(path=str(artifact_path("whiteboard-ada.png")))
    await ben.screenshot(path=str(artifact_path("whiteboard-ben.png")))

    # A third page joining later sees both strokes (replayed before anything live).
    cleo = await _open(browser, url, "Cleo")
    strokes = await _strokes(cleo, 2)
    assert {s["color"] for s in strokes} == {"#ff0000", "#0000ff"}
    syncs = await cleo.evaluate("() => window.board.syncs")
    assert syncs == [{"op": "sync", "reason": "join", "count": 2}]

    # Undo removes one's own stroke everywhere.
    await ben.click("#undo")
    for page in (ada, cleo):
        assert [s["color"] for s in await _strokes(page, 1)] == ["#ff0000"]
    await _draw(ben, "#00aa00", 0.5)
    await _strokes(cleo, 2)
    await cleo.screenshot(path=str(artifact_path("whiteboard-cleo-late.png")))

    # Restart the server: a new page on the new server still sees the board.
    for page in (ada, ben, cleo):
        await page.context.close()
    await ts.close()
    _, ts2 = await start_server(dev=True)
    dan = await _open(browser, str(ts2.make_url("/whiteboard")), "Dan")
    strokes = await _strokes(dan, 2)
    assert [s["color"] for s in strokes] == ["#ff0000", "#00aa00"]
    await dan.wait_for_timeout(300)
    assert (await dan.evaluate(PIXEL, 0))[0] > 200
    await dan.screenshot(path=str(artifact_path("whiteboard-after-restart.png")))

    # Clear empties the board for everyone, and for later joiners.
    await dan.click("#clear")
    await _strokes(dan, 0)
    eve = await _open(browser, str(ts2.make_url("/whiteboard")), "Eve")
    await eve.wait_for_function("() => window.board.syncs.length === 1", timeout=15000)
    assert await eve.evaluate("() => window.board.strokes.length") == 0
