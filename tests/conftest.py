"""Shared fixtures: a real relayroom server on loopback and WebSocket clients for it."""

from __future__ import annotations

import asyncio
import json
import os
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from bench.chromium import CHROMIUM, chromium_args
from bench.loopback import RedisProcess
from relayroom.signaling.config import Config, load_config
from relayroom.signaling.server import Server, create_app
from relayroom.signaling.tokens import Grants, mint_token

TEST_SECRET = "test-secret-0123456789abcdef-0123456789"
ARTIFACTS = Path(os.environ.get("RELAYROOM_TEST_ARTIFACTS", "test-artifacts"))


# The slow tier (`-m slow`): browsers, and the cluster and workers tests, which start Redis and
# server processes.
SLOW_FOLDERS = ("cluster", "workers")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        folder = item.path.parent.name
        if item.get_closest_marker("browser") is not None or folder in SLOW_FOLDERS:
            item.add_marker(pytest.mark.slow)


def make_config(tmp_path: Path, **overrides: Any) -> Config:
    values: dict[str, Any] = {
        "api_secret": TEST_SECRET,
        "data_dir": tmp_path / "data",
        "port": 0,
        "ice_hosts": ("127.0.0.1",),
        "turn_enabled": False,
    }
    values.update(overrides)
    return load_config(env={}, overrides=values)


def token_for(
    room: str,
    identity: str,
    *,
    secret: str = TEST_SECRET,
    ttl_s: int = 6 * 3600,  # parametrized tokens are minted at collection, hours before use
    name: str | None = None,
    mode: str | None = None,
    **grants: bool,
) -> str:
    return mint_token(
        secret,
        room=room,
        identity=identity,
        ttl_s=ttl_s,
        name=name,
        grants=Grants(**grants),
        mode=mode,
    )


class WsClient:
    """A protocol-speaking test client with an inbox and typed waits."""

    def __init__(self, ws: aiohttp.ClientWebSocketResponse) -> None:
        self.ws = ws
        self.inbox: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        self.closed = asyncio.Event()
        self._reader = asyncio.create_task(self._read())
        self.joined: dict[str, Any] | None = None
        self.close_reason: str | None = None
        self.skipped: list[dict[str, Any]] = []

    async def _read(self) -> None:
        while True:
            msg = await self.ws.receive()
            if msg.type is aiohttp.WSMsgType.TEXT:
                await self.inbox.put(json.loads(msg.data))
            elif msg.type is aiohttp.WSMsgType.CLOSE:
                self.close_reason = msg.extra or ""
            elif msg.type in (aiohttp.WSMsgType.CLOSED, aiohttp.WSMsgType.ERROR):
                break
        self.closed.set()

    async def send(self, message: dict[str, Any]) -> None:
        await self.ws.send_str(json.dumps(message))

    async def recv(self, timeout: float = 5.0) -> dict[str, Any]:
        return await asyncio.wait_for(self.inbox.get(), timeout)

    async def expect(self, type_: str, timeout: float = 5.0) -> dict[str, Any]:
        """The first message of `type_`; other messages stay queued for later expects."""
        for i, message in enumerate(self.skipped):
            if message["type"] == type_:
                del self.skipped[i]
                return message
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            message = await self.recv(max(deadline - loop.time(), 0.01))
            if message["type"] == type_:
                return message
            self.skipped.append(message)

    async def join(self, room: str, identity: str, **kwargs: Any) -> dict[str, Any]:
        name = kwargs.pop("name", None)
        await self.send(
            {
                "type": "join",
                "id": "j",
                "room": room,
                "token": token_for(room, identity, **kwargs),
                **({"name": name} if name else {}),
            }
        )
        reply = await self.recv()
        assert reply["type"] == "joined", reply
        self.joined = reply
        return reply

    async def wait_closed(self, timeout: float = 5.0) -> int | None:
        await asyncio.wait_for(self.closed.wait(), timeout)
        return self.ws.close_code

    async def close(self) -> None:
        await self.ws.close()
        self._reader.cancel()


@pytest.fixture
def config_factory(tmp_path: Path) -> Callable[..., Config]:
    return lambda **overrides: make_config(tmp_path, **overrides)


@pytest.fixture
async def start_server(
    tmp_path: Path,
) -> AsyncIterator[Callable[..., Awaitable[tuple[Server, TestServer]]]]:
    """Start real relayroom apps on 127.0.0.1; each is torn down after the test."""
    started: list[TestServer] = []

    async def start(**overrides: Any) -> tuple[Server, TestServer]:
        config = make_config(tmp_path, **overrides)
        server = Server.build(config, TEST_SECRET)
        app: web.Application = create_app(server)
        test_server = TestServer(app, host="127.0.0.1")
        await test_server.start_server()
        server.advertise(str(test_server.make_url("/")))
        started.append(test_server)
        return server, test_server

    yield start
    for test_server in started:
        await test_server.close()


@pytest.fixture
async def connect() -> AsyncIterator[Callable[..., Awaitable[WsClient]]]:
    """Open WebSocket clients to a TestServer; all closed after the test."""
    session = aiohttp.ClientSession()
    clients: list[WsClient] = []

    async def open_client(test_server: TestServer, **kwargs: Any) -> WsClient:
        ws = await session.ws_connect(test_server.make_url("/ws"), **kwargs)
        client = WsClient(ws)
        clients.append(client)
        return client

    yield open_client
    for client in clients:
        await client.close()
    await session.close()


CHROMIUM_ARGS = chromium_args()


@pytest.fixture
async def browser() -> AsyncIterator[Any]:
    """Headless Debian Chromium driven by Playwright (never a downloaded browser)."""
    from playwright.async_api import async_playwright

    async with async_playwright() as pw:
        instance = await pw.chromium.launch(
            executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS
        )
        try:
            yield instance
        finally:
            await instance.close()


def artifact_path(name: str) -> Path:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    return ARTIFACTS / name


@pytest.fixture
def redis_server(tmp_path: Path) -> Any:
    server = RedisProcess(tmp_path)
    server.start()
    yield server
    server.stop()
