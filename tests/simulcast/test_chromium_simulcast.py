"""Chromium publishes 3 simulcast layers (fake 1280x720 camera) through a real server; each
viewer page gets the layer its tile asks for, switches within 2 s without a freeze, and the
layers nobody wants stop being encoded (dynacast)."""

from __future__ import annotations

import itertools
from typing import Any

import pytest

from tests.conftest import artifact_path, token_for
from tests.simulcast.pages import ASK, JOIN, PUBLISH, RECORD, SENDING, wait_for, wait_sending
from tests.support.browsers import chromium_page

pytestmark = pytest.mark.browser

SMALL = {"maxWidth": 320, "maxHeight": 180}
LARGE = {"maxWidth": 1280, "maxHeight": 720}


def token(identity: str) -> str:
    return token_for("simulcast", identity, can_publish=True, can_subscribe=True, mode="sfu")


async def test_viewers_get_the_layer_their_tile_needs_and_switch_fast(
    start_server: Any, browser: Any
) -> None:
    _, ts = await start_server(dev=True)
    url = str(ts.make_url("/call"))
    pub = await chromium_page(browser, url)
    small = await chromium_page(browser, url)
    large = await chromium_page(browser, url)
    await small.evaluate(JOIN, [token("small"), "simulcast", SMALL])
    await large.evaluate(JOIN, [token("large"), "simulcast", LARGE])
    await pub.evaluate(JOIN, [token("pub"), "simulcast", None])
    settings = await pub.evaluate(PUBLISH, [1280, 720])
    assert settings["height"] == 720

    # Three encodings reach the server, and each viewer gets its own.
    # The publisher's bandwidth estimate rises about 8% a second (REMB only: no TWCC, no
    # probing), so the full layer starts some 20-30 s after the call does.
    await wait_for(large, lambda r: r["width"] >= 960 and r["frames"] > 30, 60, "large tile")
    got = await wait_for(small, lambda r: 0 < r["width"] <= 400 and r["frames"] > 30, 20, "small")
    assert got["width"] <= 400
    sending = await pub.evaluate(SENDING)
    assert set(sending) == {"q", "h", "f"}, sending

    # Dynacast: nobody wants h (the small tile gets q, the large one f): h stops.
    await wait_sending(pub, lambda s: s["h"]["active"] is False, 4, "h paused")

    # The small tile grows: the high layer within 2 s, no frame gap over 500 ms.
    await small.evaluate(ASK, LARGE)
    samples = await small.evaluate(RECORD, 3000)
    first_large = next((t for t, w, _ in samples if w >= 960), None)
    assert first_large is not None and first_large <= 2000, samples[-1]
    changes = [t for (t, _, f), (_, _, f0) in zip(samples[1:], samples, strict=False) if f > f0]
    gaps = [b - a for a, b in itertools.pairwise(changes)]
    assert changes and max(gaps, default=0) <= 500, gaps

    # Only thumbnails: f is paused at the publisher within 2 s.
    await small.evaluate(ASK, SMALL)
    await large.evaluate(ASK, SMALL)
    took = await wait_sending(pub, lambda s: s["f"]["active"] is False, 4, "f paused")
    assert took <= 2.5, took  # 2 s plus one stats poll
    await wait_for(large, lambda r: 0 < r["width"] <= 400, 10, "large tile shrunk")

    # And back: f resumes and reaches the viewer that wants it.
    await large.evaluate(ASK, LARGE)
    await wait_sending(pub, lambda s: s["f"]["active"] is True, 1.5, "f resumed")
    await wait_for(large, lambda r: r["width"] >= 960, 5, "large again")
    await large.screenshot(path=str(artifact_path("simulcast-large.png")))
    await small.screenshot(path=str(artifact_path("simulcast-small.png")))
