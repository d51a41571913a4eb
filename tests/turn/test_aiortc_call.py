"""Two aiortc peers connect with relay-only ICE through the embedded TURN server."""

from __future__ import annotations

import asyncio

import pytest
from aiortc import (
    RTCConfiguration,
    RTCIceServer,
    RTCIceTransportPolicy,
    RTCPeerConnection,
)

from relayroom.turn.credentials import rest_credentials
from relayroom.turn.server import TurnServer
from tests.turn.conftest import SECRET


async def _relay_only_call(server: TurnServer, url: str) -> tuple[list[str], list[str]]:
    """Connect two peers, exchange DataChannel messages; return the candidate types used."""
    username, password = rest_credentials(SECRET, "aiortc", 300)
    config = RTCConfiguration(
        iceServers=[RTCIceServer(urls=url, username=username, credential=password)],
        iceTransportPolicy=RTCIceTransportPolicy.RELAY,
    )
    caller = RTCPeerConnection(config)
    callee = RTCPeerConnection(config)
    try:
        got_ping: asyncio.Future[str] = asyncio.get_running_loop().create_future()
        got_pong: asyncio.Future[str] = asyncio.get_running_loop().create_future()
        channel = caller.createDataChannel("chat")

        @callee.on("datachannel")
        def on_datachannel(remote: object) -> None:
            @remote.on("message")  # type: ignore[attr-defined]
            def on_message(message: str) -> None:
                if not got_ping.done():
                    got_ping.set_result(message)
                remote.send("pong")  # type: ignore[attr-defined]

        @channel.on("message")
        def on_reply(message: str) -> None:
            if not got_pong.done():
                got_pong.set_result(message)

        @channel.on("open")
        def on_open() -> None:
            channel.send("ping")

        await caller.setLocalDescription(await caller.createOffer())
        await callee.setRemoteDescription(caller.localDescription)
        await callee.setLocalDescription(await callee.createAnswer())
        await caller.setRemoteDescription(callee.localDescription)
        async with asyncio.timeout(20):
            assert await got_ping == "ping"
            assert await got_pong == "pong"
        offered = [
            line for line in caller.localDescription.sdp.splitlines() if "candidate:" in line
        ]
        answered = [
            line for line in callee.localDescription.sdp.splitlines() if "candidate:" in line
        ]
        return offered, answered
    finally:
        await caller.close()
        await callee.close()


@pytest.mark.slow
async def test_aiortc_relay_only_call_over_turn_udp(server: TurnServer) -> None:
    assert server.udp_address is not None
    host, port = server.udp_address
    offered, answered = await _relay_only_call(server, f"turn:{host}:{port}")
    assert offered and all("typ relay" in c for c in offered + answered)
    assert server.stats.packets_relayed > 0


@pytest.mark.slow
async def test_aiortc_relay_only_call_over_turn_tcp(server: TurnServer) -> None:
    assert server.tcp_address is not None
    host, port = server.tcp_address
    offered, answered = await _relay_only_call(server, f"turn:{host}:{port}?transport=tcp")
    assert offered and all("typ relay" in c for c in offered + answered)
    assert server.stats.packets_relayed > 0
    assert server.stats.tcp_connections_accepted >= 1
