"""The hooks on aiortc/aioice privates: they must fail loudly when an upgrade breaks them."""

from __future__ import annotations

from typing import Any

import aiortc
import pytest

from relayroom.media.aiortc_hooks import (
    TESTED_AIORTC,
    HookError,
    check_compatibility,
)
from tests.media.conftest import Harness
from tests.support.polling import eventually


def test_installed_aiortc_is_the_one_the_hooks_were_written_for() -> None:
    assert aiortc.__version__.startswith(TESTED_AIORTC)
    check_compatibility()


def test_compatibility_check_names_what_disappeared(monkeypatch: pytest.MonkeyPatch) -> None:
    from aiortc import RTCRtpSender

    monkeypatch.delattr(RTCRtpSender, "_retransmit")
    with pytest.raises(HookError, match=r"RTCRtpSender\._retransmit"):
        check_compatibility()


def test_compatibility_check_covers_the_stats_readers(monkeypatch: pytest.MonkeyPatch) -> None:
    """An aiortc whose DTLS transport lost `_get_stats` fails the check, not the stats."""
    from aiortc.rtcdtlstransport import RTCDtlsTransport

    monkeypatch.delattr(RTCDtlsTransport, "_get_stats")
    with pytest.raises(HookError, match=r"RTCDtlsTransport\._get_stats"):
        check_compatibility()


def test_compatibility_check_names_a_missing_private_attribute(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """An aioice whose Connection no longer keeps `_nominated` (the selected pair) is caught."""
    import aioice.ice

    class FakeConnection:  # what an aioice that renamed the attribute would look like
        def __init__(self) -> None:
            self._local_candidates: list[Any] = []
            self._local_candidates_start = self._local_candidates_end = False
            self._protocols: list[Any] = []
            self._components: set[int] = set()
            self._selected: dict[int, Any] = {}

    monkeypatch.setattr(aioice.ice.Connection, "__init__", FakeConnection.__init__)
    with pytest.raises(HookError, match=r"Connection\._nominated") as caught:
        check_compatibility()
    assert "_local_candidates" not in str(caught.value)


@pytest.mark.slow
async def test_hooks_work_on_live_connections(harness: Harness) -> None:
    """Each hook, observed on a real call: no decoding, history, SR rewrite, PLI, REMB."""
    pub = await harness.publisher("alice", audio=False)
    sub = await harness.subscriber("bob")
    assert await eventually(
        lambda: bool(sub.video_tracks()) and len(sub.video_tracks()[0].frames) > 40, 10
    )
    alice = harness.room.participant("alice")
    bob = harness.room.participant("bob")
    assert alice is not None and bob is not None and pub.video is not None
    hub = alice.published_hubs()[0]

    # receive side: frames are assembled and dropped, never decoded or queued
    receiver: Any = alice.publisher_pc.getReceivers()[0] if alice.publisher_pc else None
    assert receiver is not None
    assert receiver.track._queue.qsize() <= 1
    assert hub.stats()["frames_dropped_undecoded"] > 30
    # the publisher learned a media SSRC and RTCP goes back to it (PLI on subscribe)
    assert hub.keyframe_requests_sent >= 1

    # send side: the leg records into aiortc's RTP history and counts for sender reports
    leg = bob.leg("alice", pub.video.id)
    assert leg is not None and leg.tap is not None
    history = leg.tap.history
    sender: Any = leg.tap.sender
    assert history is sender._RTCRtpSender__rtp_history and len(history) == 128
    assert all(history.get(k).sequence_number % 128 == k for k in history)
    assert sender._RTCRtpSender__started
    # sender reports carry the forwarder's counters (one is sent every 0.5-1.5 s)
    assert await eventually(lambda: sender._RTCRtpSender__packet_count > 0, 3)
    assert sender._RTCRtpSender__packet_count <= leg.stats.packets
    # the subscriber's receiver sees our SSRC and sender reports (remote-outbound stats)
    stats = await sub.pc.getStats()
    kinds = {s.type for s in stats.values()}
    assert "inbound-rtp" in kinds
    assert await eventually(lambda: leg.stats.packets > 60, 3)


@pytest.mark.slow
async def test_rtx_ssrcs_of_two_video_mlines_route_to_their_receivers(harness: Harness) -> None:
    """Two video m-lines share the RTX payload type: RTX must be routed by its SDP SSRC."""
    from tests.media.client import StampedVideoTrack

    pub = await harness.publisher("alice", audio=False)
    pub.add_video(StampedVideoTrack())
    await pub.offer()
    await harness.subscriber("bob")
    alice = harness.room.participant("alice")
    assert alice is not None
    assert await eventually(lambda: len(alice.published_hubs()) == 2, 5)
    assert await eventually(lambda: all(h.packets_in > 10 for h in alice.published_hubs()), 10)
    senders = {t.mid: t.sender for t in pub.pc.getTransceivers()}
    for transceiver in alice.publisher_pc.getTransceivers():
        receiver: Any = transceiver.receiver
        router = receiver.transport._rtp_router
        rtx_ssrc = senders[transceiver.mid]._rtx_ssrc
        assert router.ssrc_table.get(rtx_ssrc) is receiver


def test_compatibility_check_covers_the_renegotiation_hooks(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from aiortc import RTCPeerConnection

    monkeypatch.delattr(RTCPeerConnection, "_RTCPeerConnection__connect")
    with pytest.raises(HookError, match=r"RTCPeerConnection\._RTCPeerConnection__connect"):
        check_compatibility()


async def test_a_remote_candidate_of_another_component_does_not_break_incoming_checks() -> None:
    """aioice asserts on a binding request from an address that a remote candidate of another
    component also has; the hook drops that candidate and the check goes on (learning the
    sender as a peer-reflexive candidate of component 1)."""
    import asyncio
    import functools
    from types import SimpleNamespace

    import aioice
    from aioice import stun

    from relayroom.media.aiortc_hooks import _check_incoming_any_component

    conn = aioice.Connection(ice_controlling=True, components=1)
    conn.remote_username, conn.remote_password = "remote", "remote-password-0123456789"
    local = aioice.Candidate("f", 1, "udp", 100, "127.0.0.1", 40000, "host")
    stray = aioice.Candidate("g", 2, "udp", 50, "127.0.0.1", 40001, "host")
    await conn.add_remote_candidate(stray)

    async def request(*args: Any, **kwargs: Any) -> Any:
        raise stun.TransactionFailed(stun.Message(stun.Method.BINDING, stun.Class.ERROR))

    protocol = SimpleNamespace(local_candidate=local, request=request)
    message = stun.Message(stun.Method.BINDING, stun.Class.REQUEST)
    message.attributes["PRIORITY"] = 1000
    with pytest.raises(AssertionError):  # aioice alone
        conn.check_incoming(message, ("127.0.0.1", 40001), protocol)  # type: ignore[arg-type]
    checked = functools.partial(_check_incoming_any_component, conn, conn.check_incoming)
    checked(message, ("127.0.0.1", 40001), protocol)
    remote = [(c.component, c.type) for c in conn._remote_candidates]
    assert remote == [(1, "prflx")], remote
    await asyncio.sleep(0)
    await conn.close()
