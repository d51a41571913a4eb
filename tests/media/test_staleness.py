"""Shedding instead of queueing: the staleness gate, the bounded receive queue, the hub."""

from __future__ import annotations

import time

from aiortc import RTCRtpCodecParameters
from aiortc.rtp import RtpPacket

from relayroom.media import MediaSettings, TrackInfo
from relayroom.media.aiortc_hooks import DropOldestQueue
from relayroom.media.forwarding import Leg, LegState, TrackHub
from relayroom.media.staleness import StalenessGate
from tests.media.legs import CONT, DELTA, KEY, FakeTap

CLOCK = 90000


def feed(gate: StalenessGate, start: float, frames: int, delay_at: dict[int, float]) -> list[bool]:
    """30 fps frames sent on time; frame i arrives delay_at.get(i, 0) seconds late."""
    out = []
    for i in range(frames):
        sent = start + i / 30
        out.append(gate.late(1, (i * 3000) & 0xFFFFFFFF, sent + delay_at.get(i, 0.0)))
    return out


def test_packets_on_time_are_fresh_and_late_ones_stale() -> None:
    gate = StalenessGate(CLOCK, 0.2)
    late = {i: 0.5 for i in range(40, 50)}
    decided = feed(gate, 1000.0, 60, late)
    assert [i for i, stale in enumerate(decided) if stale] == list(range(40, 50))


def test_a_frame_paced_out_slowly_is_kept_whole() -> None:
    gate = StalenessGate(CLOCK, 0.2)
    feed(gate, 1000.0, 10, {})
    ts = 10 * 3000
    first = 1000.0 + 10 / 30
    # a big keyframe: 40 packets spread over 400 ms by the sender's pacer
    assert not any(gate.late(1, ts, first + k * 0.01) for k in range(40))


def test_timestamp_wraparound_and_a_new_source_are_not_stale() -> None:
    gate = StalenessGate(CLOCK, 0.2)
    start_ts = 0xFFFFFFFF - 3000 * 5
    for i in range(20):
        assert not gate.late(1, (start_ts + i * 3000) & 0xFFFFFFFF, 50.0 + i / 30)
    # a new SSRC with unrelated timestamps starts a new base
    assert not gate.late(2, 123, 51.0)
    assert not gate.late(2, 123 + 3000, 51.0 + 1 / 30)


def test_a_timestamp_jump_backwards_is_not_taken_for_a_backlog() -> None:
    gate = StalenessGate(CLOCK, 0.2, jump_s=3.0)
    feed(gate, 0.0, 30, {})
    # the sender restarts its timestamps 10 s back: every packet would look 10 s late
    assert not gate.late(1, 30 * 3000 - 10 * CLOCK, 1.0)
    assert not gate.late(1, 31 * 3000 - 10 * CLOCK, 1.0 + 1 / 30)


def test_the_base_follows_clock_drift_slowly() -> None:
    # the relay's clock runs 1000 ppm fast: after 60 s packets look 60 ms late, never stale,
    # because the base rises up to 5 ms per 10 s window
    gate = StalenessGate(CLOCK, 0.05, window_s=10.0, rise_per_window_s=0.005)
    stale = [gate.late(1, (i * 3000) & 0xFFFFFFFF, (i / 30) * 1.001) for i in range(30 * 60)]
    assert not any(stale)


def test_drop_oldest_queue_keeps_the_newest_within_its_bound() -> None:
    queue = DropOldestQueue(16)
    for i in range(100):
        queue.put_nowait((i, 1))
        assert queue.qsize() <= 16
    assert queue.dropped == 84
    assert queue.get_nowait() == (84, 1)


def state(leg: Leg) -> LegState:
    """A leg's state, read through a call (its value changes under the checker's feet)."""
    return leg.state


def packet(seq: int, ts: int, payload: bytes, marker: int = 0) -> RtpPacket:
    return RtpPacket(payload_type=97, sequence_number=seq, timestamp=ts, ssrc=7, payload=payload)


async def test_hub_drops_stale_video_and_legs_wait_for_a_keyframe() -> None:
    codec = RTCRtpCodecParameters(mimeType="video/VP8", clockRate=CLOCK, payloadType=97)
    info = TrackInfo(id="v", kind="video", muted=False, codec="VP8")
    hub = TrackHub("alice", info, codec, None, MediaSettings(keyframe_request_interval_s=0))
    leg = Leg("bob", hub, initial_seq=1000, initial_ts=5000)
    tap = FakeTap()
    leg.bind(tap)  # type: ignore[arg-type]
    hub.add_leg(leg)
    await leg.on_sender_ready()
    base = time.monotonic()
    hub.on_packet(packet(1, 0, KEY))
    hub.on_packet(packet(2, 3000, DELTA))
    assert state(leg) is LegState.FORWARDING and len(tap.sent) == 2
    requested = hub.keyframe_requests_sent
    # the relay stalls (its loop blocked): the next frame, sent 67 ms later, is read 1 s late
    time.sleep(max(0.0, base + 1.0 - time.monotonic()))
    hub.on_packet(packet(3, 6000, DELTA))
    hub.on_packet(packet(4, 6000, CONT))
    assert len(tap.sent) == 2, "stale packets must not be forwarded"
    assert hub.stats()["packets_stale"] == 2
    assert state(leg) is LegState.WAITING_KEYFRAME
    assert hub.keyframe_requests_sent == requested + 1, "a keyframe must be asked for"
    # fresh again (sent 1 s after the first): forwarding resumes at the next keyframe
    hub.on_packet(packet(5, 90000 + 3000, DELTA))
    assert len(tap.sent) == 2
    hub.on_packet(packet(6, 90000 + 6000, KEY))
    assert state(leg) is LegState.FORWARDING and len(tap.sent) == 3
    await hub.close()


async def test_hub_drops_stale_audio_without_stopping_the_leg() -> None:
    codec = RTCRtpCodecParameters(mimeType="audio/opus", clockRate=48000, payloadType=111)
    info = TrackInfo(id="a", kind="audio", muted=False, codec="opus")
    hub = TrackHub("alice", info, codec, None, MediaSettings())
    leg = Leg("bob", hub, initial_seq=1000, initial_ts=5000)
    tap = FakeTap()
    leg.bind(tap)  # type: ignore[arg-type]
    hub.add_leg(leg)
    await leg.on_sender_ready()
    base = time.monotonic()
    hub.on_packet(packet(1, 0, b"opus"))
    time.sleep(max(0.0, base + 0.5 - time.monotonic()))
    hub.on_packet(packet(2, 960, b"opus"))  # sent 20 ms after the first, read 500 ms late
    hub.on_packet(packet(3, 48000 // 2, b"opus"))  # sent just now
    assert len(tap.sent) == 2 and hub.stats()["packets_stale"] == 1
    assert leg.state is LegState.FORWARDING
    await hub.close()
