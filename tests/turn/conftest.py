"""Fixtures: embedded TURN servers on ephemeral loopback ports, and TURN test clients."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest

from tests.turn.helpers import TurnClient, UdpSink
from turn.config import TurnConfig
from turn.credentials import rest_credentials
from turn.server import TurnServer

SECRET = "test-shared-secret"

ServerFactory = Callable[..., Awaitable[TurnServer]]
ClientFactory = Callable[..., Awaitable[TurnClient]]


def turn_test_config(**overrides: Any) -> TurnConfig:
    """Loopback, ephemeral ports, 127.0.0.1 allowed as a peer unless overridden."""
    settings: dict[str, Any] = {
        "realm": "relayroom.test",
        "listen_host": "127.0.0.1",
        "udp_port": 0,
        "tcp_port": 0,
        "relay_host": "127.0.0.1",
        "relay_port_min": 0,
        "relay_port_max": 0,
        "secret": SECRET,
        "allowed_peers": ("127.0.0.1/32",),
    }
    settings.update(overrides)
    return TurnConfig(**settings)


@pytest.fixture
async def make_server() -> AsyncIterator[ServerFactory]:
    servers: list[TurnServer] = []

    async def factory(**overrides: Any) -> TurnServer:
        server = TurnServer(turn_test_config(**overrides))
        await server.start()
        servers.append(server)
        return server

    yield factory
    for server in servers:
        await server.close()


@pytest.fixture
async def server(make_server: ServerFactory) -> TurnServer:
    return await make_server()


@pytest.fixture
async def make_client() -> AsyncIterator[ClientFactory]:
    clients: list[TurnClient] = []

    async def factory(
        server: TurnServer,
        transport: str = "udp",
        user: str = "alice",
        credentials: tuple[str, str] | None = None,
    ) -> TurnClient:
        address = server.udp_address if transport == "udp" else server.tcp_address
        assert address is not None
        username, password = credentials or rest_credentials(SECRET, user, 300)
        client = await TurnClient(address, transport, username, password).open()
        clients.append(client)
        return client

    yield factory
    for client in clients:
        client.close()


@pytest.fixture
async def sink() -> AsyncIterator[UdpSink]:
    s = await UdpSink().open()
    yield s
    s.close()
