"""SRTP is handled in the socket's callback once DTLS is connected, not through aioice's queue."""

from __future__ import annotations

import asyncio
import os
import struct
from typing import Any

import pylibsrtp
import pytest

from relayroom.media.aiortc_hooks import (
    HookError,
    SrtpReceivePath,
    check_compatibility,
    media_stream_statistics,
    srtp_function,
    transport_stats,
)
from tests.media.conftest import Harness
from tests.support.polling import eventually


@pytest.mark.slow
async def test_media_and_rtcp_of_a_live_call_take_the_direct_path(harness: Harness) -> None:
    await harness.publisher("alice", audio=False)
    sub = await harness.subscriber("bob")
    assert await eventually(
        lambda: bool(sub.video_tracks()) and len(sub.video_tracks()[0].frames) > 30, 10
    )
    alice = harness.room.participant("alice")
    bob = harness.room.participant("bob")
    assert alice is not None and bob is not None and bob.subscriber_pc is not None
    hub = alice.published_hubs()[0]

    receiver: Any = alice.publisher_pc.getReceivers()[0]
    dtls = receiver.transport
    path = dtls._relayroom_srtp_path
    assert isinstance(path, SrtpReceivePath)
    # Every media packet the hub got came this way (only those before "connected" did not).
    assert path.packets >= 0.9 * hub.packets_in > 0
    assert path.errors == 0
    # aiortc's own counters still see them (stats read bytes received from there).
    report = transport_stats(dtls)
    received = [e.packetsReceived for e in report.values() if e.type == "transport"]
    assert received and received[0] >= path.packets

    # The subscriber's RTCP (receiver reports) reaches its senders the same way.
    bob_dtls: Any = bob.subscriber_pc.getSenders()[0].transport
    assert await eventually(lambda: bob_dtls._relayroom_srtp_path.packets > 0, 5)


@pytest.mark.slow
async def test_a_lossy_upstream_is_nacked_counted_and_estimated(harness: Harness) -> None:
    """The relay's own receive bookkeeping (not aiortc's): NACKs, statistics, frame counts."""
    pub = await harness.publisher("alice", audio=False)
    sub = await harness.subscriber("bob")
    assert await eventually(lambda: bool(sub.video_tracks()), 10)
    alice = harness.room.participant("alice")
    assert alice is not None and pub.video_sender is not None
    hub = alice.published_hubs()[0]
    receiver: Any = alice.publisher_pc.getReceivers()[0]
    assert await eventually(lambda: hasattr(receiver.transport, "_relayroom_srtp_path"), 5)
    path = receiver.transport._relayroom_srtp_path
    # Drop every 20th RTP packet from the publisher before the relay unprotects it.
    handle, seen = path.handle, [0]

    def lossy(data: bytes) -> bool:
        if len(data) > 1 and not 192 <= data[1] <= 208:
            seen[0] += 1
            if seen[0] % 20 == 0:
                return True
        return bool(handle(data))

    path.handle = lossy
    retransmitted: list[int] = []
    sender: Any = pub.video_sender
    original = sender._retransmit

    async def retransmit(seq: int) -> None:
        retransmitted.append(seq)
        await original(seq)

    sender._retransmit = retransmit
    frames = hub.stats()["frames_dropped_undecoded"]
    await asyncio.sleep(3)
    assert seen[0] > 100
    assert len(retransmitted) >= seen[0] // 20 // 2  # NACKed (most of) what was lost
    stream = media_stream_statistics(receiver)[0]
    assert stream.packets_received > seen[0] // 2  # receiver reports' statistics
    assert hub.stats()["frames_dropped_undecoded"] > frames + 30  # frames still counted
    track = sub.video_tracks()[0]
    assert await eventually(lambda: len(track.frames) > 60, 5)


async def test_a_handler_that_waits_is_finished_by_a_task() -> None:
    path = SrtpReceivePath.__new__(SrtpReceivePath)
    path._tasks = set()
    path.errors = 0
    gate: asyncio.Future[int] = asyncio.get_running_loop().create_future()
    steps: list[str] = []

    async def handler() -> None:
        steps.append("start")
        steps.append(f"got {await gate}")

    path._run(handler())
    assert steps == ["start"] and len(path._tasks) == 1
    gate.set_result(7)
    assert await eventually(lambda: not path._tasks, 2)
    assert steps == ["start", "got 7"]


async def test_a_handler_that_fails_is_counted_not_raised() -> None:
    path = SrtpReceivePath.__new__(SrtpReceivePath)
    path._tasks = set()
    path.errors = 0

    async def handler() -> None:
        raise ValueError("bad packet")

    path._run(handler())
    path._run(handler())
    assert path.errors == 2 and not path._tasks


def test_compatibility_check_covers_the_direct_receive_path(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from aiortc.rtcdtlstransport import RTCDtlsTransport

    monkeypatch.delattr(RTCDtlsTransport, "_handle_rtcp_data")
    with pytest.raises(HookError, match=r"RTCDtlsTransport\._handle_rtcp_data"):
        check_compatibility()


def _sessions() -> tuple[pylibsrtp.Session, pylibsrtp.Session, pylibsrtp.Session]:
    key = os.urandom(30)
    out = pylibsrtp.Policy(key=key, ssrc_type=pylibsrtp.Policy.SSRC_ANY_OUTBOUND)
    inbound = pylibsrtp.Policy(key=key, ssrc_type=pylibsrtp.Policy.SSRC_ANY_INBOUND)
    return (
        pylibsrtp.Session(policy=out),
        pylibsrtp.Session(policy=out),
        pylibsrtp.Session(policy=inbound),
    )


def test_direct_srtp_functions_match_pylibsrtp() -> None:
    reference, sender, receiver = _sessions()
    protect = srtp_function(sender, protect=True)
    unprotect = srtp_function(receiver, protect=False)
    for seq in range(5):
        rtp = struct.pack("!BBHLL", 0x80, 96, seq, 3000 * seq, 0x1234) + os.urandom(1000)
        sent = protect(rtp)
        assert sent == reference.protect(rtp)  # same keys, same packet: same bytes
        assert unprotect(sent) == rtp
    # libsrtp's refusals are pylibsrtp's errors, as with its own wrapper
    replayed = protect(struct.pack("!BBHLL", 0x80, 96, 9, 0, 0x1234) + b"x" * 50)
    unprotect(replayed)
    with pytest.raises(pylibsrtp.Error):
        unprotect(replayed)
    with pytest.raises(pylibsrtp.Error):
        unprotect(replayed[:-1] + bytes([replayed[-1] ^ 1]))
    with pytest.raises(ValueError):
        protect(b"\x80" * 1500)
