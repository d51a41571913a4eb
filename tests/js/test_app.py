"""A third-party app installs the packed client (`npm pack`, offline) and joins a call from
another origin: headless Chromium against a real `relayroom serve` process."""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import subprocess
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import pytest
from aiohttp import web

from relayroom.api import AccessToken
from tests.conftest import TEST_SECRET, artifact_path
from tests.js.support import CLIENT, HERE, npm, tsc
from tests.sdk.serve import ServeProcess

pytestmark = pytest.mark.browser

APP = HERE / "app"
SHIPPED = {"index.js", "room.js", "signaling.js", "backoff.js", "emitter.js", "messages.js"}

VIDEO_STATE = """() => [...document.querySelectorAll('#videos video')].map(v => ({
    width: v.videoWidth, time: v.currentTime, participant: v.dataset.participant}))"""


def _npm(*args: str, cwd: Path, cache: Path) -> str:
    env = {**os.environ, "npm_config_cache": str(cache), "npm_config_update_notifier": "false"}
    result = subprocess.run(
        [npm(), *args, "--offline", "--no-audit", "--no-fund", "--loglevel=error"],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    return result.stdout


@pytest.fixture
def installed_app(tmp_path: Path) -> Path:
    """The test app in a temp dir, with the packed client installed from its tarball."""
    cache = tmp_path / "npm-cache"
    out = _npm("pack", "--json", "--pack-destination", str(tmp_path), cwd=CLIENT, cache=cache)
    packed = json.loads(out)
    files = {entry["path"] for entry in packed[0]["files"]}
    assert files >= SHIPPED, files
    assert "types/index.d.ts" in files and "types/room.d.ts" in files, files
    assert not files & {"call.js", "dashboard.js", "lobby.js", "whiteboard.js", "page.js"}, files
    app = tmp_path / "app"
    shutil.copytree(APP, app)
    tarball = tmp_path / packed[0]["filename"]
    manifest = {"name": "relayroom-test-app", "private": True, "type": "module"}
    (app / "package.json").write_text(json.dumps(manifest))
    _npm("install", str(tarball), cwd=app, cache=cache)
    installed = json.loads((app / "package.json").read_text())["dependencies"]
    assert list(installed) == ["@relayroom/client"]
    assert not (app / "node_modules" / "@relayroom" / "client" / "call.js").exists()
    return app


@pytest.fixture
async def app_origin(installed_app: Path) -> AsyncIterator[str]:
    """The app served as static files on its own loopback port (no CSP of relayroom's)."""

    async def index(request: web.Request) -> web.FileResponse:
        return web.FileResponse(installed_app / "index.html")

    application = web.Application()
    application.router.add_get("/", index)
    application.router.add_static("/", installed_app, follow_symlinks=True)
    runner = web.AppRunner(application)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    yield f"http://127.0.0.1:{port}"
    await runner.cleanup()


def _token(identity: str) -> str:
    # The application's backend mints tokens with the Python SDK.
    return AccessToken(api_secret=TEST_SECRET, identity=identity, room="sdk-app").to_jwt()


async def _open(browser: Any, url: str, name: str) -> Any:
    context = await browser.new_context(permissions=["camera", "microphone"])
    page = await context.new_page()
    page.on("console", lambda m: m.type == "error" and print(name, "console:", m.text))
    page.on("pageerror", lambda e: print(name, "page error:", e))
    await page.goto(url)
    await page.wait_for_function("() => window.app && (window.app.joined || window.app.error)")
    return page


async def test_installed_package_types_compile_for_a_typescript_app(installed_app: Path) -> None:
    result = tsc("-p", str(installed_app / "tsconfig.json"), cwd=installed_app)
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]


async def test_app_on_another_origin_joins_and_plays_remote_video(
    tmp_path: Path, app_origin: str, browser: Any
) -> None:
    origins = f"{app_origin},http://127.0.0.1:1"
    async with ServeProcess(tmp_path / "serve", env={"RELAYROOM_ALLOWED_ORIGINS": origins}) as srv:
        ws_url = srv.url.replace("http://", "ws://").rstrip("/") + "/ws"

        def app_url(identity: str, origin: str = app_origin, **extra: str) -> str:
            query = {"server": ws_url, "room": "sdk-app", "token": _token(identity), **extra}
            return f"{origin}/#{urlencode(query)}"

        camera = await _open(browser, app_url("camera", publish="1"), "camera")
        viewer = await _open(browser, app_url("viewer"), "viewer")
        for page in (camera, viewer):
            assert await page.evaluate("window.app.error") is None
        camera_id = await camera.evaluate("window.app.client.self.id")
        await viewer.wait_for_function(
            "() => [...document.querySelectorAll('#videos video')].some(v => v.videoWidth > 0)",
            timeout=30000,
        )
        first = await viewer.evaluate(VIDEO_STATE)
        await asyncio.sleep(1.5)
        second = await viewer.evaluate(VIDEO_STATE)
        assert len(second) == 1 and second[0]["participant"] == camera_id, second
        assert second[0]["width"] > 0
        assert second[0]["time"] > first[0]["time"], (first, second)
        await viewer.screenshot(path=str(artifact_path("client-sdk-app.png")))

        # Data both ways through the installed package, batched in one task.
        await camera.evaluate("for (let i = 0; i < 5; i++) window.app.client.sendData('chat', {i})")
        await viewer.wait_for_function("() => window.app.received.length >= 5", timeout=10000)
        received = await viewer.evaluate("window.app.received")
        assert [m["payload"]["i"] for m in received] == [0, 1, 2, 3, 4]
        assert {m["from"] for m in received} == {camera_id}

        # The reconnect probe reaches /healthz across origins (an opaque answer counts).
        assert await viewer.evaluate("window.app.client.signaling._reachable()") is True

        # An origin the server does not list is refused at the WebSocket upgrade.
        other = app_origin.replace("127.0.0.1", "localhost")
        stranger = await _open(browser, app_url("stranger", origin=other), "stranger")
        error = await stranger.evaluate("window.app.error")
        assert error is not None and "WebSocket connection failed" in error, error
