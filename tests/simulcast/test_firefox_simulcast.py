"""Firefox ESR publishes simulcast (fake 1280x720 camera, the JS client's q/h/f layers); Chromium
viewers get the layer their tile asks for, at a frame rate a person sees as smooth."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from tests.conftest import token_for
from tests.simulcast.pages import JOIN, PUBLISH, RECEIVED, SENDING, wait_for
from tests.support.browsers import FPS_FLOOR, chromium_page, firefox_page

pytestmark = pytest.mark.browser

SMALL = {"maxWidth": 320, "maxHeight": 180}
LARGE = {"maxWidth": 1280, "maxHeight": 720}


def token(identity: str) -> str:
    return token_for("fxsim", identity, can_publish=True, can_subscribe=True, mode="sfu")


async def decoded_fps(page: Any) -> float:
    before = await page.evaluate(RECEIVED)
    await asyncio.sleep(2)
    after = await page.evaluate(RECEIVED)
    return float(after["frames"] - before["frames"]) / 2


async def test_firefox_publishes_layers_each_viewer_gets_its_own(
    start_server: Any, browser: Any, firefox: Any
) -> None:
    _, ts = await start_server(dev=True)
    url = str(ts.make_url("/call"))
    pub = await firefox_page(firefox, url)
    small = await chromium_page(browser, url)
    large = await chromium_page(browser, url)
    await small.evaluate(JOIN, [token("small"), "fxsim", SMALL])
    await large.evaluate(JOIN, [token("large"), "fxsim", LARGE])
    await pub.evaluate(JOIN, [token("pub"), "fxsim", None])
    await pub.evaluate(PUBLISH, [1280, 720])

    got = await wait_for(small, lambda r: 0 < r["width"] <= 400 and r["frames"] > 30, 30, "small")
    print("small tile gets", got, "sending", await pub.evaluate(SENDING))
    await wait_for(large, lambda r: r["width"] >= 960 and r["frames"] > 30, 60, "large tile")
    sending = await pub.evaluate(SENDING)
    print("firefox sends", sending)
    assert len([rid for rid in sending if rid != "-"]) >= 2, sending
    fps = await decoded_fps(small)
    assert fps >= FPS_FLOOR, (fps, await pub.evaluate(SENDING))
