"""The embedded TURN server inside `relayroom serve`: ICE servers in `joined`, a relayed call."""

from __future__ import annotations

import json
import time

from aiortc import (
    RTCConfiguration,
    RTCIceServer,
    RTCIceTransportPolicy,
    RTCPeerConnection,
    RTCSessionDescription,
)

from relayroom.turn.credentials import rest_password
from relayroom.turn.server import TurnServer
from tests.conftest import TEST_SECRET
from tests.media.client import StampedVideoTrack
from tests.support.cli import run_cli
from tests.support.polling import eventually
from tests.support.sfu import WsSubscriber
from tests.turn.conftest import turn_test_config
from tests.turn.helpers import TurnClient

TURN = {
    "turn_enabled": True,
    "turn_port": 0,
    "turn_relay_port_min": 0,
    "turn_relay_port_max": 0,
    "turn_allowed_peers": ("127.0.0.1/32",),
    "allow_loopback_candidates": True,
}


async def test_joined_carries_turn_urls_with_ephemeral_credentials(start_server, connect):
    server, ts = await start_server(**TURN)
    client = await connect(ts)
    joined = await client.join("r", "alice")
    stun, turn = joined["ice_servers"]
    assert stun["urls"][0].startswith("stun:127.0.0.1:")
    assert any(u.endswith("?transport=udp") for u in turn["urls"])
    assert any(u.endswith("?transport=tcp") for u in turn["urls"])
    expiry, _, user = turn["username"].partition(":")
    assert user == "alice" and int(expiry) > 0
    secret = server.turn._secret
    assert secret != TEST_SECRET
    assert turn["credential"] == rest_password(secret, turn["username"])


async def test_relay_only_publisher_reaches_subscriber_through_embedded_turn(start_server, connect):
    server, ts = await start_server(**TURN)
    pub_ws, sub_ws = await connect(ts), await connect(ts)
    joined = await pub_ws.join("call", "pub")
    await sub_ws.join("call", "sub", can_publish=False)
    subscriber = WsSubscriber(sub_ws)
    turn = joined["ice_servers"][1]
    pc = RTCPeerConnection(
        RTCConfiguration(
            iceServers=[
                RTCIceServer(
                    urls=turn["urls"][0], username=turn["username"], credential=turn["credential"]
                )
            ],
            iceTransportPolicy=RTCIceTransportPolicy.RELAY,
        )
    )
    try:
        pc.addTransceiver(StampedVideoTrack(), direction="sendonly")
        await pc.setLocalDescription(await pc.createOffer())
        offer = pc.localDescription.sdp
        assert "typ relay" in offer and "typ host" not in offer
        await pub_ws.send({"type": "publish_offer", "sdp": offer})
        answer = await pub_ws.expect("publish_answer", 10)
        await pc.setRemoteDescription(RTCSessionDescription(answer["sdp"], "answer"))
        await subscriber.answer_next_offer()
        assert await eventually(
            lambda: any(len(c) >= 20 for c in subscriber.counters.values()), 20
        ), subscriber.counters
        assert server.turn.server is not None and server.turn.server.allocations_active >= 1
    finally:
        await subscriber.close()
        await pc.close()


async def test_turn_credentials_command_prints_credentials_a_turn_server_accepts(tmp_path):
    secret = "turn-shared-secret-0123456789"
    result = run_cli(
        "turn-credentials",
        "--user",
        "bob",
        "--ttl",
        "120",
        env={
            "RELAYROOM_API_SECRET": TEST_SECRET,
            "RELAYROOM_TURN_SECRET": secret,
            "RELAYROOM_TURN_URLS": "turn:turn.example.org:3478?transport=udp",
        },
    )
    assert result.returncode == 0, result.stderr
    creds = json.loads(result.stdout)
    assert creds["urls"] == ["turn:turn.example.org:3478?transport=udp"]
    expiry, _, user = creds["username"].partition(":")
    assert user == "bob" and abs(int(expiry) - (time.time() + 120)) < 5
    # A TURN server configured with the same shared secret grants an allocation with them.
    turn = TurnServer(turn_test_config(secret=secret))
    await turn.start()
    assert turn.udp_address is not None
    client = await TurnClient(
        turn.udp_address, "udp", creds["username"], creds["credential"]
    ).open()
    try:
        await client.allocate()
        assert turn.allocations_active == 1
    finally:
        client.close()
        await turn.close()


def test_turn_is_on_by_default_and_off_with_flag():
    from relayroom.signaling.cli import build_parser, config_from_args

    args = build_parser().parse_args(["serve", "--no-turn", "--api-secret", TEST_SECRET])
    assert config_from_args(args).turn_enabled is False
    args = build_parser().parse_args(["serve", "--api-secret", TEST_SECRET])
    assert config_from_args(args).turn_enabled is True
