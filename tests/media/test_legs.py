"""The forwarder's rewriting, keyframe rate limit and REMB policy, without sockets."""

from __future__ import annotations

import asyncio
import itertools
from typing import Any

from aiortc import RTCRtpCodecParameters
from aiortc.rtcrtpparameters import RTCRtpHeaderExtensionParameters, RTCRtpParameters
from aiortc.rtp import HeaderExtensionsMap, RtpPacket, wrap_rtx

from relayroom.media import MediaSettings, TrackInfo
from relayroom.media.forwarding import (
    URI_ABS_SEND_TIME,
    URI_MID,
    BandwidthAggregator,
    KeyframeRequester,
    Leg,
    LegState,
    TrackHub,
)
from relayroom.media.tasks import TaskOwner
from tests.media.legs import CONT, DELTA, KEY, FakeTap

VP8 = RTCRtpCodecParameters(mimeType="video/VP8", clockRate=90000, payloadType=97)


def packet(seq: int, ts: int, payload: bytes, ssrc: int = 0xAAAA, marker: int = 0) -> RtpPacket:
    return RtpPacket(
        payload_type=97,
        sequence_number=seq & 0xFFFF,
        timestamp=ts,
        ssrc=ssrc,
        payload=payload,
        marker=marker,
    )


def parse(data: bytes) -> RtpPacket:
    ext = HeaderExtensionsMap()
    ext.configure(
        RTCRtpParameters(
            headerExtensions=[
                RTCRtpHeaderExtensionParameters(id=1, uri=URI_MID),
                RTCRtpHeaderExtensionParameters(id=3, uri=URI_ABS_SEND_TIME),
            ]
        )
    )
    return RtpPacket.parse(data, ext)


async def make_leg(**settings: Any) -> tuple[TrackHub, Leg, FakeTap]:
    info = TrackInfo(id="v", kind="video", muted=False, codec="VP8")
    hub = TrackHub("alice", info, VP8, None, MediaSettings(**settings))
    leg = Leg("bob", hub, initial_seq=1000, initial_ts=5000)
    tap = FakeTap()
    leg.bind(tap)  # type: ignore[arg-type]
    hub.add_leg(leg)
    await leg.on_sender_ready()
    return hub, leg, tap


async def test_leg_starts_at_keyframe_and_rewrites_every_field() -> None:
    hub, leg, tap = await make_leg()
    hub.on_packet(packet(10, 900, DELTA))
    assert tap.sent == [] and leg.state is LegState.WAITING_KEYFRAME
    hub.on_packet(packet(11, 3900, KEY))
    hub.on_packet(packet(12, 3900, CONT, marker=1))
    hub.on_packet(packet(13, 6900, DELTA))
    out = [parse(d) for d in tap.sent]
    assert [p.sequence_number for p in out] == [1000, 1001, 1002]
    assert [p.timestamp for p in out] == [5000, 5000, 8000]
    assert {p.ssrc for p in out} == {0x5151} and {p.payload_type for p in out} == {120}
    assert [p.marker for p in out] == [0, 1, 0]
    assert out[0].payload == KEY
    assert all(p.extensions.mid == "7" and p.extensions.abs_send_time is not None for p in out)
    # the sender's history holds what aiortc needs to retransmit
    sent = tap.history[1001 % 128]
    assert sent.sequence_number == 1001 and sent.serialize() == tap.sent[1]
    assert sent.extensions.mid == "7"
    assert (sent.timestamp, sent.marker, sent.payload_type, sent.ssrc) == (5000, 1, 120, 0x5151)
    assert sent.payload == CONT and sent.csrc == [] and sent.padding_size == 0
    rtx = parse(wrap_rtx(sent, payload_type=121, sequence_number=7, ssrc=0x7777).serialize())
    assert rtx.payload == (1001).to_bytes(2, "big") + CONT and rtx.timestamp == 5000
    await hub.close()


async def test_sequence_numbers_stay_continuous_across_wraparound() -> None:
    hub, _, tap = await make_leg()
    seqs = [65533, 65534, 65535, 0, 1, 2]
    hub.on_packet(packet(seqs[0], 0, KEY))
    for s in seqs[1:]:
        hub.on_packet(packet(s, 0, CONT))
    assert [parse(d).sequence_number for d in tap.sent] == list(range(1000, 1006))
    await hub.close()


async def test_packets_older_than_the_start_are_dropped() -> None:
    hub, leg, tap = await make_leg()
    hub.on_packet(packet(100, 0, KEY))
    hub.on_packet(packet(99, 0, CONT))  # late, from before the keyframe
    hub.on_packet(packet(102, 0, CONT))
    hub.on_packet(packet(101, 0, CONT))  # reordered but after the start: kept
    assert [parse(d).sequence_number for d in tap.sent] == [1000, 1002, 1001]
    assert leg.stats.dropped_stale == 1
    await hub.close()


async def test_new_publisher_ssrc_resyncs_on_keyframe_and_continues() -> None:
    hub, leg, tap = await make_leg()
    hub.on_packet(packet(100, 90000, KEY))
    hub.on_packet(packet(101, 93000, DELTA))
    await asyncio.sleep(0.1)
    hub.on_packet(packet(7, 1, DELTA, ssrc=0xBBBB))  # new stream, not a keyframe
    hub.on_packet(packet(8, 1, KEY, ssrc=0xBBBB))
    hub.on_packet(packet(9, 3001, DELTA, ssrc=0xBBBB))
    out = [parse(d) for d in tap.sent]
    assert [p.sequence_number for p in out] == [1000, 1001, 1002, 1003]
    gap = out[2].timestamp - out[1].timestamp
    assert 0.08 * 90000 < gap < 0.5 * 90000  # wall-clock time elapsed between the streams
    assert out[3].timestamp - out[2].timestamp == 3000
    assert leg.stats.syncs == 2
    await hub.close()


async def test_mute_pauses_and_unmute_continues_sequence() -> None:
    hub, _, tap = await make_leg()
    hub.on_packet(packet(1, 0, KEY))
    hub.set_muted(True)
    hub.on_packet(packet(2, 3000, DELTA))
    assert len(tap.sent) == 1
    hub.set_muted(False)
    hub.on_packet(packet(3, 6000, DELTA))  # waits for a keyframe after unmute
    hub.on_packet(packet(50, 9000, KEY))
    assert [parse(d).sequence_number for d in tap.sent] == [1000, 1001]
    await hub.close()


async def test_late_leg_gets_the_cached_keyframe_run() -> None:
    info = TrackInfo(id="v", kind="video", muted=False, codec="VP8")
    hub = TrackHub("alice", info, VP8, None, MediaSettings())
    hub.on_packet(packet(1, 0, DELTA))
    hub.on_packet(packet(2, 3000, KEY))
    hub.on_packet(packet(3, 6000, DELTA))
    leg = Leg("bob", hub, initial_seq=10, initial_ts=0)
    tap = FakeTap()
    leg.bind(tap)  # type: ignore[arg-type]
    hub.add_leg(leg)
    await leg.on_sender_ready()
    assert [parse(d).sequence_number for d in tap.sent] == [10, 11]
    assert leg.state is LegState.FORWARDING
    await hub.close()


async def test_padding_and_csrc_are_serialized() -> None:
    hub, _, tap = await make_leg()
    p = packet(1, 0, KEY)
    p.padding_size = 4
    p.csrc = [1, 2]
    hub.on_packet(p)
    out = parse(tap.sent[0])
    assert out.padding_size == 4 and out.csrc == [1, 2] and out.payload == KEY
    sent = tap.history[out.sequence_number % 128]  # what a retransmission would wrap
    assert sent.payload == KEY and sent.csrc == [1, 2] and sent.serialize() == tap.sent[0]
    await hub.close()


async def test_sender_report_uses_publisher_clock_when_known() -> None:
    hub, leg, _ = await make_leg()
    assert leg.sender_report_values() is None
    hub.on_packet(packet(1, 90000, KEY))
    hub._sender_report(0xAAAA, 1 << 40, 0)  # publisher: rtp 0 at ntp 2^40
    ntp, rtp_ts, count, octets = leg.sender_report_values() or (0, 0, 0, 0)
    assert rtp_ts == 5000 and count == 1 and octets == len(KEY)
    assert ntp == (1 << 40) + (1 << 32)  # 90000 ticks = one second later
    await hub.close()


async def test_keyframe_requests_are_rate_limited_and_coalesced() -> None:
    sent: list[float] = []
    loop = asyncio.get_running_loop()

    async def send() -> bool:
        sent.append(loop.time())
        return True

    tasks = TaskOwner()
    requester = KeyframeRequester(0.2, send, tasks)
    for _ in range(50):
        requester.request()
        await asyncio.sleep(0.01)
    await asyncio.sleep(0.25)
    assert 2 <= len(sent) <= 4
    assert all(b - a >= 0.19 for a, b in itertools.pairwise(sent))
    assert requester.requested == 50
    requester.close()
    await tasks.close()


async def test_upstream_remb_is_the_minimum_with_a_floor() -> None:
    sent: list[int] = []

    async def send(bitrate: int) -> bool:
        sent.append(bitrate)
        return True

    tasks = TaskOwner()
    settings = MediaSettings(remb_interval_s=0.0, remb_min_bps=100_000)
    bw = BandwidthAggregator(settings, send, tasks)
    bw.update("", 2_000_000)
    bw.update("a", 800_000)
    bw.update("b", 500_000)
    assert bw.target() == 500_000
    bw.update("c", 20_000)
    assert bw.target() == 100_000
    bw.remove("c")
    assert bw.target() == 500_000
    await asyncio.sleep(0)
    assert sent[:3] == [2_000_000, 800_000, 500_000]
    await tasks.close()
