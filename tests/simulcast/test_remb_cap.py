"""A subscriber on a weak downlink (an aiortc subscriber whose REMB says 250 kbit/s) drops to a
low layer of a Chromium publisher's simulcast, while a Chromium viewer keeps the high one and
the publisher's bitrate is not pulled down for everyone."""

from __future__ import annotations

import asyncio
import contextlib
import time
from typing import Any

import pytest

from tests.conftest import token_for
from tests.simulcast.pages import JOIN, PUBLISH, wait_for
from tests.simulcast.remb import send_capped_remb
from tests.support.browsers import chromium_page
from tests.support.sfu import WsSubscriber

pytestmark = pytest.mark.browser

CAP_BPS = 250_000
LARGE = {"maxWidth": 1280, "maxHeight": 720}


def legs_of(server: Any, room: str) -> dict[str, Any]:
    media_room = server.media.rooms[room]
    for participant in media_room.participants.values():
        for hub in participant.published_hubs():
            if hub.is_video:
                return dict(hub.stats())
    return {}


async def test_a_capped_subscriber_gets_a_low_layer_others_keep_the_high_one(
    start_server: Any, browser: Any, connect: Any
) -> None:
    server, ts = await start_server(dev=True)
    url = str(ts.make_url("/call"))
    room = "remb"
    pub = await chromium_page(browser, url)
    large = await chromium_page(browser, url)
    token = token_for(room, "large", can_publish=True, can_subscribe=True, mode="sfu")
    await large.evaluate(JOIN, [token, room, LARGE])
    ws = await connect(ts)
    joined = await ws.join(room, "weak", can_publish=False, mode="sfu")
    weak_id = joined["participant"]["id"]
    weak = WsSubscriber(ws)
    token = token_for(room, "pub", can_publish=True, can_subscribe=True, mode="sfu")
    await pub.evaluate(JOIN, [token, room, None])
    await pub.evaluate(PUBLISH, [1280, 720])
    await weak.answer_next_offer(20)
    capper = asyncio.create_task(send_capped_remb(weak, CAP_BPS))
    try:
        await wait_for(large, lambda r: r["width"] >= 960 and r["frames"] > 30, 60, "large tile")
        deadline = time.monotonic() + 20
        stats: dict[str, Any] = {}
        while time.monotonic() < deadline:
            stats = legs_of(server, room)
            leg = stats.get("legs", {}).get(weak_id, {})
            if leg.get("layer") == "q" and leg.get("estimate_bps") == CAP_BPS:
                break
            await asyncio.sleep(0.5)
        leg = stats["legs"][weak_id]
        assert leg["layer"] == "q", stats
        # The capped leg gets what it can carry; the large tile still gets the full layer.
        await wait_for(large, lambda r: r["width"] >= 960, 5, "large keeps f")
        rates = {x["rid"]: x["bitrate_bps"] for x in stats["simulcast"]["layers"]}
        assert rates["q"] <= CAP_BPS, rates
        # What goes upstream is the relay's own estimate of the publisher link, not the cap.
        assert stats["upstream_remb"] is not None and stats["upstream_remb"] > 2 * CAP_BPS
        assert leg["packets"] > 100 and leg["frames"] > 30, leg
    finally:
        capper.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await capper
        await weak.close()
