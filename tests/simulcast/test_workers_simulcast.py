"""Simulcast on `relayroom serve --workers 2`: the room lives on one worker, the Chromium
publisher's and the viewers' WebSockets land on the other one, which proxies their signaling.
Layers are still chosen per viewer (`subscription` forwarded to the room's worker) and
dynacast's `layers` reaches the publisher (forwarded back)."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from tests.conftest import WsClient, token_for
from tests.simulcast.pages import ASK, JOIN, PUBLISH, wait_for, wait_sending
from tests.support.browsers import chromium_page
from tests.workers.host import Host

pytestmark = pytest.mark.browser

ROOM = "sim-workers"
SMALL = {"maxWidth": 320, "maxHeight": 180}
LARGE = {"maxWidth": 1280, "maxHeight": 720}


def token(identity: str) -> str:
    return token_for(ROOM, identity, can_publish=True, can_subscribe=True, mode="sfu")


@pytest.fixture
def host(tmp_path: Path) -> Iterator[Host]:
    started = Host(tmp_path, "--no-turn")
    yield started
    started.stop()


@pytest.mark.slow
@pytest.mark.timeout(240)
async def test_simulcast_layers_work_for_clients_on_the_other_worker(
    host: Host, browser: Any
) -> None:
    workers = await host.workers()
    async with aiohttp.ClientSession() as session:
        # A first participant on worker 0 places the room there (ties go to the worker that
        # accepted the WebSocket); it receives nothing.
        anchor = WsClient(await session.ws_connect(workers[0]["url"] + "ws"))
        await anchor.join(ROOM, "anchor", can_publish=False, can_subscribe=False)
        owner = await host.room_node(ROOM)
        other = next(w for w in workers if w["node"] != owner)
        # Every browser page (and so its WebSocket) is served by the other worker.
        page_url = other["url"] + "call"
        pub = await chromium_page(browser, page_url)
        small = await chromium_page(browser, page_url)
        large = await chromium_page(browser, page_url)
        await small.evaluate(JOIN, [token("small"), ROOM, SMALL])
        await large.evaluate(JOIN, [token("large"), ROOM, LARGE])
        await pub.evaluate(JOIN, [token("pub"), ROOM, None])
        settings = await pub.evaluate(PUBLISH, [1280, 720])
        assert settings["height"] == 720
        assert await host.room_node(ROOM) == owner
        for _ in range(40):  # the load comes with each worker's heartbeat (1 s)
            load = {w["node"]: w["load"]["participants"] for w in await host.workers()}
            if load[owner] == 4:
                break
            await asyncio.sleep(0.25)
        assert load == {owner: 4, other["node"]: 0}, load

        await wait_for(large, lambda r: r["width"] >= 960 and r["frames"] > 30, 90, "large")
        await wait_for(small, lambda r: 0 < r["width"] <= 400 and r["frames"] > 30, 20, "small")
        # Dynacast through the proxy: nobody wants h, and the publisher stops sending it.
        await wait_sending(pub, lambda s: s["h"]["active"] is False, 6, "h paused")
        # A tile that grows: its `subscription` goes through the proxy too.
        await small.evaluate(ASK, LARGE)
        await wait_for(small, lambda r: r["width"] >= 960, 8, "small tile grown")
        await anchor.close()
