"""WHIP/WHEP clients no one here wrote, for the browsers: `@eyevinn/whip-web-client` and
`@eyevinn/webrtc-player` (pinned in tests/browsers/package.json), bundled with the pinned
esbuild into one script and served with a test page from a second loopback origin, so the
relay's CORS is exercised as a real encoder page on another site would."""

from __future__ import annotations

import subprocess
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

from aiohttp import web
from aiohttp.test_utils import TestServer

BROWSERS = Path(__file__).resolve().parent.parent / "browsers"
ENTRY = """import { WHIPClient } from "@eyevinn/whip-web-client";
import { WebRTCPlayer } from "@eyevinn/webrtc-player";
window.WHIPClient = WHIPClient;
window.WebRTCPlayer = WebRTCPlayer;
"""
PAGE = """<!doctype html><html><head><meta charset="utf-8"><title>eyevinn</title>
<link rel="icon" href="data:,">
<script src="/eyevinn.js"></script></head>
<body><video id="player" autoplay playsinline muted width="640" height="360"></video></body></html>
"""


def build_bundle(out: Path) -> Path:
    """esbuild the two packages into one IIFE script exposing `window.WHIPClient` and
    `window.WebRTCPlayer`."""
    target = out / "eyevinn.js"
    subprocess.run(
        [
            str(BROWSERS / "node_modules" / ".bin" / "esbuild"),
            "--bundle",
            "--format=iife",
            "--platform=browser",
            "--log-level=warning",
            f"--outfile={target}",
        ],
        input=ENTRY.encode(),
        cwd=BROWSERS,
        check=True,
        timeout=120,
    )
    return target


@asynccontextmanager
async def eyevinn_site(out: Path) -> AsyncIterator[str]:
    """Serve `/` (a page with a <video id=player>) and `/eyevinn.js`; yields the origin URL."""
    bundle = build_bundle(out)

    async def page(request: web.Request) -> web.Response:
        return web.Response(text=PAGE, content_type="text/html")

    async def script(request: web.Request) -> web.FileResponse:
        return web.FileResponse(bundle)

    app = web.Application()
    app.router.add_get("/", page)
    app.router.add_get("/eyevinn.js", script)
    server = TestServer(app, host="127.0.0.1")
    await server.start_server()
    try:
        yield str(server.make_url("/"))
    finally:
        await server.close()
