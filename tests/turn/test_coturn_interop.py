"""Interop with coturn: its client against our server, our credentials against its server."""

from __future__ import annotations

import asyncio
import re
import socket
import time
from collections.abc import AsyncIterator

import pytest

from bench.loopback import free_port
from relayroom.turn.credentials import rest_credentials
from relayroom.turn.server import TurnServer
from tests.turn.conftest import SECRET
from tests.turn.helpers import TurnClient, TurnRequestError

MESSAGES = 10
CLIENTS = 2


@pytest.fixture
async def echo_peer() -> AsyncIterator[int]:
    """coturn's turnutils_peer echoing UDP on loopback."""
    port = free_port(socket.SOCK_DGRAM)
    proc = await asyncio.create_subprocess_exec(
        "turnutils_peer",
        "-L",
        "127.0.0.1",
        "-p",
        str(port),
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.DEVNULL,
    )
    await asyncio.sleep(0.2)
    yield port
    proc.terminate()
    await proc.wait()


async def run_uclient(*args: str) -> tuple[int, str]:
    proc = await asyncio.create_subprocess_exec(
        "turnutils_uclient",
        *args,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    try:
        out, _ = await asyncio.wait_for(proc.communicate(), 60)
    except TimeoutError:
        proc.kill()
        await proc.wait()
        raise
    return proc.returncode or 0, out.decode(errors="replace")


@pytest.mark.slow
@pytest.mark.parametrize(
    ("flags", "transport"),
    [(["-c"], "udp"), (["-c", "-s"], "udp"), (["-c", "-t", "-y"], "tcp")],
    ids=["udp-channels", "udp-send-indications", "tcp-client-to-client"],
)
async def test_turnutils_uclient_relays_through_our_server(
    server: TurnServer, echo_peer: int, flags: list[str], transport: str
) -> None:
    address = server.udp_address if transport == "udp" else server.tcp_address
    assert address is not None
    code, out = await run_uclient(
        *flags,
        "-p",
        str(address[1]),
        "-e",
        "127.0.0.1",
        "-r",
        str(echo_peer),
        "-u",
        "uclient",
        "-W",
        SECRET,
        "-n",
        str(MESSAGES),
        "-m",
        str(CLIENTS),
        "-l",
        "120",
        "-z",
        "5",
        "127.0.0.1",
    )
    assert code == 0, out[-2000:]
    totals = re.search(r"tot_send_msgs=(\d+), tot_recv_msgs=(\d+)\n", out)
    assert totals is not None, out[-2000:]
    assert totals.groups() == (str(MESSAGES * CLIENTS), str(MESSAGES * CLIENTS))
    assert "Total lost packets 0 " in out
    assert server.stats.packets_relayed >= 2 * MESSAGES * CLIENTS


@pytest.fixture
async def coturn() -> AsyncIterator[tuple[str, int]]:
    """A real coturn with use-auth-secret on an ephemeral loopback port."""
    port = free_port(socket.SOCK_DGRAM)
    relay = free_port(socket.SOCK_DGRAM)
    proc = await asyncio.create_subprocess_exec(
        "turnserver",
        "--use-auth-secret",
        f"--static-auth-secret={SECRET}",
        "--realm=coturn.test",
        "--listening-ip=127.0.0.1",
        "--relay-ip=127.0.0.1",
        f"--listening-port={port}",
        f"--min-port={relay}",
        f"--max-port={relay + 20}",
        "--allow-loopback-peers",
        "--no-cli",
        "--no-tls",
        "--no-dtls",
        "--no-tcp-relay",
        "--log-file=stdout",
        "--simple-log",
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:  # wait until it answers TCP on its port
        try:
            _, writer = await asyncio.open_connection("127.0.0.1", port)
            writer.close()
            break
        except OSError:
            await asyncio.sleep(0.1)
    yield ("127.0.0.1", port)
    proc.terminate()
    await proc.wait()


@pytest.mark.slow
async def test_coturn_accepts_our_rest_credentials(coturn: tuple[str, int]) -> None:
    username, password = rest_credentials(SECRET, "alice", 300)
    client = await TurnClient(coturn, "udp", username, password).open()
    try:
        relayed = await client.allocate()
    finally:
        client.close()
    assert relayed[0] == "127.0.0.1"


@pytest.mark.slow
async def test_coturn_rejects_our_expired_rest_credentials(coturn: tuple[str, int]) -> None:
    username, password = rest_credentials(SECRET, "alice", 300, now=time.time() - 600)
    client = await TurnClient(coturn, "udp", username, password).open()
    try:
        with pytest.raises(TurnRequestError) as info:
            await client.allocate()
    finally:
        client.close()
    assert info.value.code == 401
