"""Fixtures for the stats, admin API and metrics tests: a server with the admin routes."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from relayroom.signaling.server import Server, create_app
from tests.conftest import TEST_SECRET, make_config, token_for

Started = tuple[Server, TestServer, web.Application]


def admin_token(room: str = "*", **grants: bool) -> str:
    grants.setdefault("admin", True)
    return token_for(room, "ops", **grants)  # type: ignore[arg-type]  # grants are bools


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


@pytest.fixture
async def admin_server(tmp_path: Path) -> AsyncIterator[Callable[..., Awaitable[Started]]]:
    """Start relayroom apps (create_app wires the admin API) on 127.0.0.1; also returns the app."""
    started: list[TestServer] = []

    async def start(**overrides: Any) -> Started:
        server = Server.build(make_config(tmp_path, **overrides), TEST_SECRET)
        app = create_app(server)
        test_server = TestServer(app, host="127.0.0.1")
        await test_server.start_server()
        started.append(test_server)
        return server, test_server, app

    yield start
    for test_server in started:
        await test_server.close()


async def api(
    test_server: TestServer,
    method: str,
    path: Any,
    headers: dict[str, str] | None = None,
    json: Any = None,
) -> tuple[int, Any]:
    """One HTTP request to a test server: (status, decoded JSON body)."""
    url = path if not isinstance(path, str) else test_server.make_url(path)
    async with (
        aiohttp.ClientSession() as http,
        http.request(method, url, headers=headers, json=json) as response,
    ):
        return response.status, await response.json()
