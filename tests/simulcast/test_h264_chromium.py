"""H264 simulcast from Chromium (OpenH264, headless): the relay reads each layer's size from
its SPS, so a small tile gets a small layer and a large one the full layer, as with VP8."""

from __future__ import annotations

from typing import Any

import pytest

from tests.conftest import token_for
from tests.simulcast.pages import JOIN, PUBLISH, wait_for
from tests.support.browsers import chromium_page

pytestmark = pytest.mark.browser

ROOM = "h264"
SMALL = {"maxWidth": 320, "maxHeight": 180}
LARGE = {"maxWidth": 1280, "maxHeight": 720}

# The codec each encoding of the publisher's video uses, by rid.
ENCODERS = """async () => {
  const out = {};
  const codecs = {};
  const stats = await window.client.publisher.getStats();
  stats.forEach((r) => { if (r.type === 'codec') codecs[r.id] = r.mimeType; });
  stats.forEach((r) => {
    if (r.type === 'outbound-rtp' && r.kind === 'video') out[r.rid] = codecs[r.codecId];
  });
  return out;
}"""


def token(identity: str) -> str:
    return token_for(ROOM, identity, can_publish=True, can_subscribe=True, mode="sfu")


async def test_h264_simulcast_small_and_large_tiles_get_their_widths(
    start_server: Any, browser: Any
) -> None:
    server, ts = await start_server(dev=True, codecs=("opus", "H264"))
    url = str(ts.make_url("/call"))
    pub = await chromium_page(browser, url)
    small = await chromium_page(browser, url)
    large = await chromium_page(browser, url)
    await small.evaluate(JOIN, [token("small"), ROOM, SMALL])
    await large.evaluate(JOIN, [token("large"), ROOM, LARGE])
    await pub.evaluate(JOIN, [token("pub"), ROOM, None])
    await pub.evaluate(PUBLISH, [1280, 720])

    await wait_for(large, lambda r: r["width"] >= 960 and r["frames"] > 30, 60, "large tile")
    await wait_for(small, lambda r: 0 < r["width"] <= 400 and r["frames"] > 30, 20, "small")
    assert set((await pub.evaluate(ENCODERS)).values()) == {"video/H264"}
    hub = next(
        h
        for p in server.media.rooms[ROOM].participants.values()
        for h in p.published_hubs()
        if h.is_video
    )
    sizes = {x.rid: (x.width, x.height) for x in hub.layers()}
    assert sizes["f"] == (1280, 720) and sizes["q"] == (320, 180), sizes
