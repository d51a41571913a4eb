"""Renegotiation matrix with real aiortc peers: each step, then subscribers decode at >= 25 fps.

Steps: DataChannels first then media (publisher and subscriber side, renegotiating while DTLS is
still connecting), audio then video, a third track (screen share) added to a live call, with and
without ``a=ssrc`` lines, a track removed then added again, a publisher and a subscriber leaving
and coming back. After each step, a subscriber must show the first decoded frame of each new
track within ``FIRST_FRAME_S`` and a full second at >= ``FPS_FLOOR`` soon after.
"""

from __future__ import annotations

import os
import time
from typing import Any

import pytest
from aiortc.mediastreams import AudioStreamTrack

from relayroom.media import Participant, TrackPublished, TrackUnpublished
from tests.media.client import ReceivedTrack, StampedVideoTrack, Subscriber, strip_ssrc_lines
from tests.media.conftest import Harness
from tests.support.polling import eventually

pytestmark = pytest.mark.slow

FPS_FLOOR = float(os.environ.get("RELAYROOM_TEST_FPS_FLOOR", "25"))
FIRST_FRAME_S = 2.0
WINDOW_S = 1.0


def _video_frames_since(track: ReceivedTrack | None, since: float) -> list[float]:
    """Arrival times of decoded frames whose stamp could be read, after ``since``."""
    if track is None:
        return []
    return [at for counter, at in track.frames if at >= since and counter is not None]


async def assert_decodes(sub: Subscriber, track_id: str, since: float) -> None:
    """``track_id`` reaches ``sub`` within FIRST_FRAME_S of ``since``, then plays >= FPS_FLOOR."""
    assert await eventually(
        lambda: bool(_video_frames_since(sub.tracks.get(track_id), since)),
        since + FIRST_FRAME_S - time.monotonic(),
    ), f"no decoded frame of {track_id} within {FIRST_FRAME_S} s: {describe(sub)}"

    def full_window() -> bool:
        times = _video_frames_since(sub.tracks.get(track_id), since)
        if not times or times[-1] - times[0] < WINDOW_S:
            return False
        recent = [t for t in times if t >= times[-1] - WINDOW_S]
        return (len(recent) - 1) / WINDOW_S >= FPS_FLOOR

    assert await eventually(full_window, FIRST_FRAME_S + 2 * WINDOW_S), (
        f"{track_id} below {FPS_FLOOR} fps: {describe(sub)}"
    )


async def assert_audio_flows(sub: Subscriber, track_id: str, since: float) -> None:
    """Audio frames (20 ms each) keep coming after ``since``."""

    def flowing() -> bool:
        track = sub.tracks.get(track_id)
        return track is not None and sum(1 for _, at in track.frames if at >= since) >= 25

    assert await eventually(flowing, FIRST_FRAME_S + WINDOW_S), describe(sub)


def describe(sub: Subscriber) -> dict[str, Any]:
    return {
        tid: {"frames": len(t.frames), "fps": round(t.fps(window=1.0), 1), "ended": t.ended_at}
        for tid, t in sub.tracks.items()
    } | {"errors": [repr(e) for e in sub.negotiation_errors]}


def participant(harness: Harness, pid: str) -> Participant:
    found = harness.room.participant(pid)
    assert found is not None
    return found


async def test_publisher_offers_data_first_then_media_at_once(harness: Harness) -> None:
    """The whiteboard's "join the call too": DataChannels, then audio/video while connecting."""
    sub = await harness.subscriber("bob")
    pub = await harness.publisher("alice", video=False, audio=False, publish=False)
    pub.pc.createDataChannel("reliable")
    await pub.offer()
    alice = participant(harness, "alice")
    assert alice.publisher_pc.connectionState != "connected"  # the race this test is about
    video = StampedVideoTrack()
    audio = AudioStreamTrack()
    pub.add_video(video)
    pub.add_audio(audio)
    since = time.monotonic()
    await pub.offer()
    await assert_decodes(sub, video.id, since)
    await assert_audio_flows(sub, audio.id, since)
    assert not sub.negotiation_errors


async def test_subscriber_with_data_first_gets_media_negotiated_while_connecting(
    harness: Harness,
) -> None:
    """The relay's own side: a subscriber PC negotiated for DataChannels, then tracks at once."""
    bob = await harness.room.add_participant("bob", can_publish=False, can_subscribe=True)
    sub = Subscriber(bob)
    harness.subscribers["bob"] = sub
    bob.subscriber_pc.createDataChannel("reliable")
    await bob.renegotiate()
    pub = await harness.publisher("alice", publish=False)
    since = time.monotonic()
    await pub.offer()
    assert pub.video is not None
    await assert_decodes(sub, pub.video.id, since)
    assert bob.offers_sent == 2


async def test_audio_first_then_video(harness: Harness) -> None:
    pub = await harness.publisher("alice", video=False)
    sub = await harness.subscriber("bob")
    assert pub.audio is not None
    await assert_audio_flows(sub, pub.audio.id, time.monotonic())
    video = StampedVideoTrack()
    pub.add_video(video)
    since = time.monotonic()
    await pub.offer()
    await assert_decodes(sub, video.id, since)
    await assert_audio_flows(sub, pub.audio.id, since)
    assert [e.track.kind for e in harness.events_of(TrackPublished)] == ["audio", "video"]


@pytest.mark.parametrize("ssrc_lines", [True, False], ids=["with-ssrc", "without-ssrc"])
async def test_screen_share_added_to_a_live_call(harness: Harness, ssrc_lines: bool) -> None:
    """A second video track on the same bundle: both videos play, old and new subscribers.

    Without ``a=ssrc`` lines both video m-lines share payload types: only the MID header
    extension tells their packets apart.
    """
    munge = None if ssrc_lines else strip_ssrc_lines
    pub = await harness.publisher("alice", munge=munge)
    sub = await harness.subscriber("bob")
    assert pub.video is not None
    await assert_decodes(sub, pub.video.id, time.monotonic())
    screen = StampedVideoTrack()
    pub.add_video(screen)
    since = time.monotonic()
    await pub.offer()
    await assert_decodes(sub, screen.id, since)
    await assert_decodes(sub, pub.video.id, since)
    joined = time.monotonic()  # the late joiner's first frames count from its join
    late = await harness.subscriber("carol")
    await assert_decodes(late, screen.id, joined)
    await assert_decodes(late, pub.video.id, joined)
    assert len(late.video_tracks()) == 2


async def test_track_removed_then_added_again(harness: Harness) -> None:
    pub = await harness.publisher("alice")
    sub = await harness.subscriber("bob")
    assert pub.video is not None and pub.audio is not None
    await assert_decodes(sub, pub.video.id, time.monotonic())
    camera = pub.pc.getTransceivers()[0]

    camera.direction = "inactive"
    assert pub.video is not None
    await pub.offer()
    assert [e.track.id for e in harness.events_of(TrackUnpublished)] == [pub.video.id]
    video_id = pub.video.id
    assert await eventually(lambda: sub.tracks[video_id].ended_at is not None, 5)

    # back on the same m-line (same track id, same SSRC)
    camera.direction = "sendonly"
    since = time.monotonic()
    await pub.offer()
    await assert_decodes(sub, pub.video.id, since)

    # off again, then a new camera track on a new m-line
    camera.direction = "inactive"
    await pub.offer()
    again = StampedVideoTrack()
    pub.add_video(again)
    since = time.monotonic()
    await pub.offer()
    await assert_decodes(sub, again.id, since)
    await assert_audio_flows(sub, pub.audio.id, since)
    assert [t.id for _, t in harness.room.tracks() if t.kind == "video"] == [again.id]


async def test_new_track_id_on_the_same_mline_keeps_forwarding(harness: Harness) -> None:
    """A client that announces another track on an m-line it keeps sending on (msid changes):
    the old track is unpublished and the new one flows, fed by the same receiver."""
    renamed: dict[str, str] = {}

    def rename(sdp: str) -> str:
        for old, new in renamed.items():
            sdp = sdp.replace(old, new)
        return sdp

    pub = await harness.publisher("alice", audio=False, munge=rename)
    sub = await harness.subscriber("bob")
    assert pub.video is not None
    await assert_decodes(sub, pub.video.id, time.monotonic())
    renamed[pub.video.id] = "screen-1"
    since = time.monotonic()
    await pub.offer()
    assert [e.track.id for e in harness.events_of(TrackUnpublished)] == [pub.video.id]
    await assert_decodes(sub, "screen-1", since)


async def test_publisher_leaves_and_rejoins(harness: Harness) -> None:
    first = await harness.publisher("alice")
    sub = await harness.subscriber("bob")
    assert first.video is not None
    await assert_decodes(sub, first.video.id, time.monotonic())
    await harness.room.remove_participant("alice", "left")
    await first.close()
    first_id = first.video.id
    assert await eventually(lambda: sub.tracks[first_id].ended_at is not None, 5)

    since = time.monotonic()
    second = await harness.publisher("alice")
    assert second.video is not None and second.audio is not None
    await assert_decodes(sub, second.video.id, since)
    await assert_audio_flows(sub, second.audio.id, since)


async def test_subscriber_leaves_and_rejoins(harness: Harness) -> None:
    pub = await harness.publisher("alice")
    first = await harness.subscriber("bob")
    assert pub.video is not None
    await assert_decodes(first, pub.video.id, time.monotonic())
    await harness.room.remove_participant("bob", "left")
    await first.close()
    del harness.subscribers["bob"]

    since = time.monotonic()
    again = await harness.subscriber("bob")
    await assert_decodes(again, pub.video.id, since)
    alice = participant(harness, "alice")
    assert list(alice.published_hubs()[0].stats()["legs"]) in (["bob"], [])
    assert len(alice.published_hubs()[0].legs) == 1
