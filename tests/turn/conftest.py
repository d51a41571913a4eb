"""Fixtures: embedded TURN servers on ephemeral loopback ports, and TURN test clients."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest

from relayroom.turn.clock import SYSTEM_CLOCK, Clock
from relayroom.turn.config import TurnConfig
from relayroom.turn.credentials import rest_credentials
from relayroom.turn.server import TurnServer
from tests.turn.helpers import TurnClient, UdpSink

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

    async def factory(clock: Clock = SYSTEM_CLOCK, **overrides: Any) -> TurnServer:
        server = TurnServer(turn_test_config(**overrides), clock)
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
        address = {
            "udp": server.udp_address,
            "tcp": server.tcp_address,
            "tls": server.tls_address,
        }[transport]
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


@pytest.fixture(scope="session")
def tls_files(tmp_path_factory: pytest.TempPathFactory) -> tuple[str, str]:
    """A self-signed certificate and key for 127.0.0.1, written as PEM files."""
    import datetime
    import ipaddress

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "relayroom-turn-test")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        )
        .sign(key, hashes.SHA256())
    )
    directory = tmp_path_factory.mktemp("tls")
    cert_path = directory / "cert.pem"
    key_path = directory / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return str(cert_path), str(key_path)
