"""Renegotiation matrix with browsers: one publishes through the JS client (``room.js``) step by
step, the other browser subscribes; after each step the subscriber decodes the expected number of
video streams at the frame-rate floor within a few seconds.

Steps: DataChannels first, then audio, then video; a screen-share video added to the live call;
the camera removed, then a new camera track; the publisher leaves and joins again.
"""

from __future__ import annotations

from typing import Any

import pytest

from tests.conftest import artifact_path, token_for
from tests.support.browsers import Viewer, chromium_page, firefox_page
from tests.support.client_pages import (
    ADD_VIDEO,
    CLIENT,
    LEAVE,
    PUBLISH_AUDIO,
    REMOVE,
    assert_playing,
)

pytestmark = pytest.mark.browser


@pytest.mark.parametrize("publisher_browser", ["chromium", "firefox"])
async def test_renegotiation_steps_reach_the_other_browser(
    start_server: Any, browser: Any, firefox: Any, publisher_browser: str
) -> None:
    _, ts = await start_server(dev=True)
    url = str(ts.make_url("/call"))
    chromium = Viewer("chromium", await chromium_page(browser, url))
    fox = Viewer("firefox", await firefox_page(firefox, url))
    pub, sub = (chromium, fox) if publisher_browser == "chromium" else (fox, chromium)

    def token(identity: str) -> str:
        return token_for("matrix", identity, can_publish=True, can_subscribe=True, mode="sfu")

    await sub.evaluate(CLIENT, [token("viewer"), sub is fox])
    await pub.evaluate(CLIENT, [token("pub"), pub is fox])  # DataChannels only, first
    await pub.evaluate(PUBLISH_AUDIO)  # then audio
    await pub.evaluate(ADD_VIDEO, "camera")  # then video
    await assert_playing(sub, pub, 1, "data, audio, then video")
    await pub.evaluate(ADD_VIDEO, "screen")  # a third track in a live call
    await assert_playing(sub, pub, 2, "screen share added")
    await sub.page.screenshot(path=str(artifact_path(f"matrix-{publisher_browser}-2.png")))
    await pub.evaluate(REMOVE, "camera")
    await assert_playing(sub, pub, 1, "camera removed")
    await pub.evaluate(ADD_VIDEO, "camera")  # a new camera track, on a new m-line
    await assert_playing(sub, pub, 2, "camera added again")
    await pub.evaluate(LEAVE)
    await assert_playing(sub, pub, 0, "publisher left")
    await pub.evaluate(CLIENT, [token("pub"), pub is fox])
    await pub.evaluate(PUBLISH_AUDIO)
    await pub.evaluate(ADD_VIDEO, "camera")
    await assert_playing(sub, pub, 1, "publisher joined again")
