"""Forwarding between real aiortc peers on loopback: frames in order, keyframes, loss, leave."""

from __future__ import annotations

import asyncio
import itertools
import random
import time
from dataclasses import replace
from typing import Any

import pytest
from aiortc.rtp import RTCP_PSFB_APP, RTCP_PSFB_PLI, RtcpPsfbPacket, pack_remb_fci

from relayroom.media import SubscribeOffer, TrackPublished, TrackUnpublished
from relayroom.media.events import TrackMuted
from relayroom.media.keyframes import vp8_keyframe_start
from relayroom.media.sdp_rewrite import rejected_mids
from tests.media.client import ReceivedTrack, Subscriber
from tests.media.conftest import Harness, loopback_settings
from tests.support.polling import eventually

pytestmark = pytest.mark.slow


def assert_in_order(track: ReceivedTrack) -> None:
    counters = track.counters()
    assert counters, "no readable frame"
    assert all(b > a for a, b in itertools.pairwise(counters)), counters


@pytest.mark.parametrize("codec", ["VP8", "H264"])
async def test_four_subscribers_decode_frames_in_order_at_25_fps(
    harness: Harness, codec: str
) -> None:
    pub = await harness.publisher("alice", codec=codec)
    subs = [await harness.subscriber(f"sub{i}") for i in range(4)]

    def enough() -> bool:
        return all(
            len(s.video_tracks()) == 1 and len(s.video_tracks()[0].frames) >= 75 for s in subs
        )

    assert await eventually(enough, 15), [len(s.tracks) for s in subs]
    video_id = pub.video.id if pub.video else ""
    assert all(t.codec == codec for _, t in harness.room.tracks() if t.kind == "video")
    alice = harness.room.participant("alice")
    assert alice is not None
    (hub,) = [h for h in alice.published_hubs() if h.is_video]
    # The relay's own counters over 2 s: every frame that came in went out to each subscriber.
    # (What the test process manages to encode and decode depends on the machine's load.)
    before = (hub.frames_in, [leg.stats.frames for leg in hub.legs])
    await asyncio.sleep(2)
    frames_in = hub.frames_in - before[0]
    sent = [leg.stats.frames - was for leg, was in zip(hub.legs, before[1], strict=True)]
    assert len(sent) == 4 and frames_in >= 20, (frames_in, sent)
    assert all(n >= frames_in - 2 for n in sent), (frames_in, sent)
    for sub in subs:
        assert {t.kind for t in sub.tracks.values()} == {"audio", "video"}
        video = sub.video_tracks()[0]
        assert video.track_id == video_id
        assert sub.stream_id(video) == "alice"
        assert_in_order(video)
        assert len(sub.audio_tracks()[0].frames) > 50
        assert not sub.negotiation_errors
    # One decoding check, with a floor a loaded machine still meets.
    assert subs[0].video_tracks()[0].fps(window=2.0) >= 15


async def test_late_joiner_gets_first_frame_within_one_second(harness: Harness) -> None:
    await harness.publisher("alice", audio=False)
    early = await harness.subscriber("early")
    assert await eventually(
        lambda: bool(early.video_tracks()) and len(early.video_tracks()[0].frames) > 10, 10
    )
    # Long after the stream's first keyframe; aiortc's encoder makes none by itself for 100 s.
    await asyncio.sleep(1.5)
    started = time.monotonic()
    late = await harness.subscriber("late")
    assert await eventually(
        lambda: bool(late.video_tracks()) and bool(late.video_tracks()[0].counters()), 5
    )
    first = late.video_tracks()[0].frames[0][1]
    assert first - started < 1.0, first - started
    assert_in_order(late.video_tracks()[0])


async def test_publisher_leaving_ends_tracks_and_renegotiates_cleanly(harness: Harness) -> None:
    pub = await harness.publisher("alice")
    other = await harness.publisher("carol", audio=False)
    sub = await harness.subscriber("bob")
    assert await eventually(
        lambda: len(sub.tracks) == 3 and all(t.frames for t in sub.tracks.values()), 10
    )
    answers_before = sub.answers
    alice_tracks = [t for t in sub.tracks.values() if sub.stream_id(t) == "alice"]
    assert len(alice_tracks) == 2

    await harness.room.remove_participant("alice", "left")
    await pub.close()
    assert await eventually(lambda: all(t.ended_at is not None for t in alice_tracks), 5)
    assert await eventually(lambda: sub.answers > answers_before, 5)
    unpublished = harness.events_of(TrackUnpublished)
    assert {e.participant_id for e in unpublished} == {"alice"} and len(unpublished) == 2
    assert [p for p, _ in harness.room.tracks()] == ["carol"]

    # carol's video keeps flowing after the renegotiation
    carol = next(t for t in sub.tracks.values() if sub.stream_id(t) == "carol")
    count = len(carol.frames)
    assert await eventually(lambda: len(carol.frames) > count + 20, 5)
    assert_in_order(carol)
    assert not sub.negotiation_errors
    # the m-lines of alice's tracks are inactive (and still bundled) in the last offer
    last_offer = [e for e in harness.events_of(SubscribeOffer) if e.participant_id == "bob"][-1]
    assert last_offer.sdp.count("a=inactive") == 2
    assert rejected_mids(last_offer.sdp) == set()
    await other.close()


async def test_participant_never_receives_its_own_tracks(harness: Harness) -> None:
    both = await harness.publisher("alice", subscribe=True)
    sub = await harness.subscriber("bob", can_publish=True)
    assert await eventually(lambda: len(sub.tracks) == 2, 10)
    alice = harness.room.participant("alice")
    assert alice is not None and alice.subscriptions() == []
    await both.close()


def drop_incoming_rtp(sub: Subscriber, ratio: float, seed: int = 7) -> dict[str, int]:
    """Drop a share of the SRTP packets (not RTCP, not DTLS/STUN) the client receives."""
    rng = random.Random(seed)
    counts = {"rtp": 0, "dropped": 0}
    for transceiver in sub.pc.getTransceivers():
        conn: Any = transceiver.receiver.transport.transport._connection
        if getattr(conn, "_lossy", False):
            continue
        original = conn.data_received

        def lossy(data: bytes, component: int, original: Any = original) -> None:
            if len(data) > 1 and 127 < data[0] < 192 and not 192 <= data[1] <= 223:
                counts["rtp"] += 1
                if rng.random() < ratio:
                    counts["dropped"] += 1
                    return
            original(data, component)

        conn.data_received = lossy
        conn._lossy = True
    return counts


async def test_three_percent_downstream_loss_still_decodes_25_fps(harness: Harness) -> None:
    await harness.publisher("alice", audio=False)
    subs = [await harness.subscriber(f"sub{i}") for i in range(2)]
    assert await eventually(lambda: all(s.video_tracks() for s in subs), 10)
    counts = [drop_incoming_rtp(s, 0.03, seed=i) for i, s in enumerate(subs)]
    start = time.monotonic()
    await asyncio.sleep(4)
    for sub, count in zip(subs, counts, strict=True):
        video = sub.video_tracks()[0]
        recent = [(c, t) for c, t in video.frames if t >= start + 1]
        fps = (len(recent) - 1) / (recent[-1][1] - recent[0][1])
        assert fps >= 25, (fps, count)
        assert count["dropped"] > 5, count
        assert_in_order(video)
    alice = harness.room.participant("alice")
    assert alice is not None
    nacks = sum(
        leg.tap.nacks for hub in alice.published_hubs() for leg in hub.legs if leg.tap is not None
    )
    assert nacks > 0


async def send_rtcp_from_subscriber(sub: Subscriber, packet: Any) -> None:
    for transceiver in sub.pc.getTransceivers():
        if transceiver.kind == "video":
            await transceiver.receiver._send_rtcp(packet)
            return


def video_media_ssrc(sub: Subscriber) -> int:
    for transceiver in sub.pc.getTransceivers():
        if transceiver.kind == "video":
            remote = sub.pc.remoteDescription.sdp
            mid = transceiver.mid
            current = None
            for line in remote.splitlines():
                if line.startswith("a=mid:"):
                    current = line[6:]
                elif line.startswith("a=ssrc:") and current == mid:
                    return int(line[7:].split()[0])
    raise AssertionError("no video ssrc")


async def test_subscriber_plis_reach_publisher_at_most_once_per_interval(
    harness: Harness,
) -> None:
    pub = await harness.publisher("alice", audio=False)
    subs = [await harness.subscriber(f"sub{i}") for i in range(3)]
    assert await eventually(
        lambda: all(s.video_tracks() and s.video_tracks()[0].frames for s in subs), 10
    )
    received: list[float] = []
    sender: Any = pub.video_sender
    original = sender._send_keyframe

    def counting() -> None:
        received.append(time.monotonic())
        original()

    sender._send_keyframe = counting
    await asyncio.sleep(1.1)  # let the join-time requests' interval pass
    received.clear()
    start = time.monotonic()
    while time.monotonic() - start < 3.0:
        for sub in subs:
            ssrc = video_media_ssrc(sub)
            await send_rtcp_from_subscriber(
                sub, RtcpPsfbPacket(fmt=RTCP_PSFB_PLI, ssrc=1, media_ssrc=ssrc)
            )
        await asyncio.sleep(0.1)
    await asyncio.sleep(0.3)
    # 90 requests in 3 s -> about 3 (one per second), never two within the interval
    assert 2 <= len(received) <= 4, received
    gaps = [b - a for a, b in itertools.pairwise(received)]
    assert all(g >= 0.9 for g in gaps), gaps
    alice = harness.room.participant("alice")
    assert alice is not None
    hub = alice.published_hubs()[0]
    assert hub.keyframe_requests > 80


async def test_lowest_subscriber_remb_reaches_publisher(harness: Harness) -> None:
    pub = await harness.publisher("alice", audio=False)
    subs = [await harness.subscriber(f"sub{i}") for i in range(2)]
    assert await eventually(
        lambda: all(s.video_tracks() and s.video_tracks()[0].frames for s in subs), 10
    )
    sender: Any = pub.video_sender
    for _ in range(10):
        for sub, bitrate in zip(subs, (900_000, 300_000), strict=True):
            fci = pack_remb_fci(bitrate, [video_media_ssrc(sub)])
            await send_rtcp_from_subscriber(
                sub, RtcpPsfbPacket(fmt=RTCP_PSFB_APP, ssrc=1, media_ssrc=0, fci=fci)
            )
        await asyncio.sleep(0.1)

    def encoder_bitrate() -> int | None:
        encoder = sender._RTCRtpSender__encoder
        return getattr(encoder, "target_bitrate", None)

    assert await eventually(lambda: encoder_bitrate() == 300_000, 3), encoder_bitrate()
    alice = harness.room.participant("alice")
    assert alice is not None
    assert alice.published_hubs()[0].upstream_remb == 300_000


async def test_mute_pauses_forwarding_and_unmute_resumes_in_order(harness: Harness) -> None:
    pub = await harness.publisher("alice", audio=False)
    sub = await harness.subscriber("bob")
    assert await eventually(
        lambda: bool(sub.video_tracks()) and len(sub.video_tracks()[0].frames) > 10, 10
    )
    track_id = pub.video.id if pub.video else ""
    alice = harness.room.participant("alice")
    assert alice is not None
    info = await alice.set_muted(track_id, True)
    assert info.muted
    await asyncio.sleep(0.3)
    video = sub.video_tracks()[0]
    count = len(video.frames)
    await asyncio.sleep(0.7)
    assert len(video.frames) <= count + 1
    await alice.set_muted(track_id, False)
    assert await eventually(lambda: len(video.frames) > count + 15, 5)
    assert_in_order(video)
    muted = [e.track.muted for e in harness.events if isinstance(e, TrackMuted)]
    assert muted == [True, False]
    assert harness.room.tracks()[0][1].muted is False


async def test_track_published_events_carry_codec_and_kind(harness: Harness) -> None:
    await harness.publisher("alice", codec="H264")
    published = harness.events_of(TrackPublished)
    assert sorted((e.track.kind, e.track.codec) for e in published) == [
        ("audio", "opus"),
        ("video", "H264"),
    ]
    assert all(e.participant_id == "alice" and not e.track.muted for e in published)


async def test_publisher_renegotiation_adds_and_removes_tracks(harness: Harness) -> None:
    from tests.media.client import StampedVideoTrack

    pub = await harness.publisher("alice", audio=False)
    sub = await harness.subscriber("bob")
    assert await eventually(lambda: len(sub.tracks) == 1, 10)
    second = StampedVideoTrack()
    pub.pc.addTransceiver(second, direction="sendonly")
    await pub.offer()
    assert await eventually(
        lambda: second.id in sub.tracks and len(sub.tracks[second.id].frames) > 10, 10
    )
    assert_in_order(sub.tracks[second.id])
    # stop sending the first track: it is unpublished, the second keeps flowing
    first = pub.pc.getTransceivers()[0]
    first.direction = "inactive"
    await pub.offer()
    first_id = pub.video.id if pub.video else ""
    assert [e.track.id for e in harness.events_of(TrackUnpublished)] == [first_id]
    assert await eventually(lambda: sub.tracks[first_id].ended_at is not None, 5)
    count = len(sub.tracks[second.id].frames)
    assert await eventually(lambda: len(sub.tracks[second.id].frames) > count + 15, 5)
    assert [t.id for _, t in harness.room.tracks()] == [second.id]
    # no receiver of the relay decodes, including those added by the renegotiation
    alice = harness.room.participant("alice")
    assert alice is not None
    for receiver in alice.publisher_pc.getReceivers():
        rx: Any = receiver
        thread = rx._RTCRtpReceiver__decoder_thread
        assert thread is None or not thread.is_alive()
        assert rx.track is None or rx.track._queue.qsize() <= 1


async def test_resent_keyframe_packet_keeps_a_late_joiners_replay_whole() -> None:
    """A publisher resends recent packets over RTX (libwebrtc's bandwidth probes do, at the start
    of a call; so do answers to NACKs). A copy of a keyframe's first packet that arrives after
    later packets must not restart the GOP cache: the late joiner's replay would skip the packets
    in between, a hole it NACKs forever (the relay never sent them) until it gives up and asks
    for a keyframe, seconds later (Chromium: 3 s showing one frame)."""
    # A cache old enough to be replayed however long the subscriber takes to connect.
    harness = Harness(replace(loopback_settings(), gop_cache_max_age_s=10.0))
    try:
        pub = await harness.publisher("alice", audio=False)
        alice = harness.room.participant("alice")
        assert alice is not None and pub.video_sender is not None
        assert await eventually(lambda: bool(alice.published_hubs()), 10)
        (hub,) = alice.published_hubs()
        assert await eventually(lambda: hub.keyframes_in >= 1 and hub.packets_in > 10, 10)
        # A fresh keyframe: its packets are still in the publisher's RTP history.
        keyframes = hub.keyframes_in
        hub.request_keyframe()
        assert await eventually(lambda: hub.keyframes_in > keyframes, 10)
        sender: Any = pub.video_sender
        history = sender._RTCRtpSender__rtp_history
        starts = [p for p in history.values() if p is not None and vp8_keyframe_start(p.payload)]
        first = max(starts, key=lambda p: p.timestamp).sequence_number
        received = hub.packets_in
        assert await eventually(lambda: hub.packets_in >= received + 3, 10)
        await sender._retransmit(first)  # over RTX, as a probe would
        assert await eventually(lambda: hub.packets_in >= received + 4, 10)

        late = await harness.subscriber("late")
        assert await eventually(
            lambda: bool(late.video_tracks()) and len(late.video_tracks()[0].frames) >= 30, 10
        )
        # One sync (from the cache), and the subscriber never missed a packet: loopback loses
        # none, so a NACK can only be for a packet the relay skipped.
        assert hub.legs[0].stats.syncs == 1
        await asyncio.sleep(0.5)
        participant = harness.room.participant("late")
        assert participant is not None
        (sub,) = participant.stats()["subscribed"].values()
        assert sub["nacks"] == 0, sub
        assert_in_order(late.video_tracks()[0])
    finally:
        await harness.close()
