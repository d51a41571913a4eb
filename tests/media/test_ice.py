"""ICE settings on live connections: host addresses, port range, candidate filter, bad STUN."""

from __future__ import annotations

import asyncio
import logging
import socket
import struct

import pytest

from relayroom.media.aiortc_hooks import local_udp_ports, remote_candidate_hosts
from tests.media.conftest import Harness, loopback_settings
from tests.media.sdp_samples import client_offer, with_candidates
from tests.support.polling import eventually

pytestmark = pytest.mark.slow


def malformed_stun() -> bytes:
    """28 bytes: a Binding request whose LIFETIME attribute is 2 bytes long (aioice crashes)."""
    header = struct.pack("!HHI12s", 0x0001, 8, 0x2112A442, b"relayroom-tx")
    return header + struct.pack("!HH", 0x000D, 2) + b"\x00\x01\x00\x00"


async def test_server_offers_only_configured_hosts_in_port_range() -> None:
    h = Harness(loopback_settings(udp_port_min=41000, udp_port_max=41009))
    try:
        pub = await h.publisher("alice", audio=False)
        answer = pub.pc.remoteDescription.sdp
        candidates = [x for x in answer.splitlines() if x.startswith("a=candidate")]
        assert candidates and all(" 127.0.0.1 " in c for c in candidates)
        alice = h.room.participant("alice")
        assert alice is not None and alice.publisher_pc is not None
        ports = local_udp_ports(alice.publisher_pc)
        assert ports and all(host == "127.0.0.1" and 41000 <= p <= 41009 for host, p in ports)
        sub = await h.subscriber("bob")
        assert await eventually(lambda: bool(sub.video_tracks()), 10)
        bob = h.room.participant("bob")
        assert bob is not None
        assert all(41000 <= p <= 41009 for _, p in local_udp_ports(bob.subscriber_pc))
    finally:
        await h.close()


async def test_refused_remote_candidates_never_reach_ice() -> None:
    h = Harness(loopback_settings())
    try:
        alice = await h.room.add_participant("alice", can_publish=True, can_subscribe=False)
        offer = with_candidates(await client_offer(), "192.168.3.4", "10.20.30.40", "fe80::7")
        await alice.publish_offer(offer)
        for value in (
            "candidate:1 1 udp 2130706431 172.16.5.5 6000 typ host",
            "candidate:2 1 udp 2130706431 169.254.9.9 6001 typ host",
            "candidate:3 1 udp 2130706431 abcdef.local 6002 typ host",
            "candidate:4 1 tcp 2130706431 127.0.0.1 6003 typ host tcptype passive",
        ):
            await alice.add_candidate("publisher", {"candidate": value, "sdpMid": "0"})
        await alice.add_candidate(
            "publisher",
            {"candidate": "candidate:5 1 udp 2130706431 127.0.0.1 6004 typ host", "sdpMid": "0"},
        )
        assert alice.dropped_candidates == 4
        assert alice.publisher_pc is not None
        hosts = remote_candidate_hosts(alice.publisher_pc)
        assert "127.0.0.1" in hosts
        assert not {"192.168.3.4", "10.20.30.40", "fe80::7", "172.16.5.5", "169.254.9.9"} & set(
            hosts
        )
    finally:
        await h.close()


async def test_loopback_candidates_are_refused_unless_allowed() -> None:
    h = Harness(loopback_settings(allow_loopback_candidates=False))
    try:
        alice = await h.room.add_participant("alice", can_publish=True, can_subscribe=False)
        await alice.publish_offer(await client_offer())
        await alice.add_candidate(
            "publisher",
            {"candidate": "candidate:5 1 udp 2130706431 127.0.0.1 6004 typ host", "sdpMid": "0"},
        )
        assert alice.dropped_candidates == 1
        assert alice.publisher_pc is not None
        assert remote_candidate_hosts(alice.publisher_pc) == []
    finally:
        await h.close()


async def test_malformed_stun_on_a_media_port_is_counted_not_flooded(
    harness: Harness, caplog: pytest.LogCaptureFixture
) -> None:
    await harness.publisher("alice", audio=False)
    sub = await harness.subscriber("bob")
    assert await eventually(
        lambda: bool(sub.video_tracks()) and bool(sub.video_tracks()[0].frames), 10
    )
    alice = harness.room.participant("alice")
    assert alice is not None and alice.publisher_pc is not None
    host, port = local_udp_ports(alice.publisher_pc)[0]

    caplog.set_level(logging.WARNING)
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        for _ in range(300):
            sock.sendto(malformed_stun(), (host, port))
            await asyncio.sleep(0.002)
        assert await eventually(lambda: harness.room.malformed_stun_packets >= 300, 3)
    finally:
        sock.close()
    warnings = [r for r in caplog.records if "malformed STUN" in r.getMessage()]
    assert 1 <= len(warnings) <= 3, [r.getMessage() for r in warnings]
    assert not [
        r for r in caplog.records if r.exc_info or "Exception in callback" in r.getMessage()
    ]
    # media still flows
    video = sub.video_tracks()[0]
    count = len(video.frames)
    assert await eventually(lambda: len(video.frames) > count + 10, 3)
