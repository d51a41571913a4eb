"""Headless Chromium: two relay-only RTCPeerConnections talk through the embedded TURN server."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from aiohttp import web
from playwright.async_api import async_playwright

from relayroom.turn.credentials import rest_credentials
from relayroom.turn.server import TurnServer
from tests.turn.conftest import SECRET

ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--allow-loopback-in-peer-connection",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-quic",
]

PAGE = (Path(__file__).parent / "relay_call.html").read_text()


@pytest.fixture
async def page_url(server: TurnServer) -> AsyncIterator[str]:
    assert server.udp_address is not None and server.tcp_address is not None
    username, password = rest_credentials(SECRET, "chromium", 300)
    udp_host, udp_port = server.udp_address
    tcp_host, tcp_port = server.tcp_address
    ice = [
        {
            "urls": [f"turn:{udp_host}:{udp_port}", f"turn:{tcp_host}:{tcp_port}?transport=tcp"],
            "username": username,
            "credential": password,
        }
    ]

    async def index(_: web.Request) -> web.Response:
        html = PAGE.replace("ICE_JSON", json.dumps(ice))
        return web.Response(text=html, content_type="text/html")

    app = web.Application()
    app.router.add_get("/", index)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    yield f"http://127.0.0.1:{port}/"
    await runner.cleanup()


@pytest.mark.browser
@pytest.mark.slow
async def test_chromium_relay_only_call_through_embedded_turn(
    server: TurnServer, page_url: str
) -> None:
    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(
            executable_path="/usr/bin/chromium", args=CHROMIUM_ARGS
        )
        try:
            page = await browser.new_page()
            await page.goto(page_url)
            await page.wait_for_function("window.result && window.result.done", timeout=30000)
            result = await page.evaluate("window.result")
            text = await page.inner_text("#log")
            ARTIFACTS.mkdir(exist_ok=True)
            await page.screenshot(path=str(ARTIFACTS / "turn-chromium-relay-call.png"))
        finally:
            await browser.close()
    assert "b got: ping over TURN" in text
    assert "a got: pong over TURN" in text
    assert result["local"] == "relay"
    assert result["remote"] == "relay"
    assert set(result["types"]["a"]) == {"relay"}
    assert server.stats.packets_relayed > 0
