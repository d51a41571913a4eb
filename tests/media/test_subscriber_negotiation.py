"""Subscriber renegotiation under pressure, with real aiortc peers.

One offer in flight per subscriber, changes made meanwhile batched into the next offer, an
unanswered offer sent again and then failed, a late duplicate answer ignored, and a publisher
answered before anyone else is renegotiated.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator

import pytest
from aiortc import RTCSessionDescription

from relayroom.media import (
    Participant,
    ParticipantFailed,
    SubscribeOffer,
)
from relayroom.media.aiortc_hooks import configure_ice
from relayroom.media.forwarding import LegState
from tests.media.client import LOOPBACK, StampedVideoTrack, Subscriber
from tests.media.conftest import Harness, loopback_settings
from tests.support.polling import eventually

pytestmark = pytest.mark.slow


class _GatedAnswers:
    """Stands between a test client and its participant: answers wait until the gate opens."""

    def __init__(self, participant: Participant) -> None:
        self.participant = participant
        self.gate = asyncio.Event()
        self.waiting = 0

    async def subscribe_answer(self, sdp: str) -> None:
        self.waiting += 1
        await self.gate.wait()
        await self.participant.subscribe_answer(sdp)


async def slow_subscriber(harness: Harness, pid: str) -> tuple[Subscriber, _GatedAnswers]:
    sub = await harness.subscriber(pid)
    gated = _GatedAnswers(sub.participant)
    sub.participant = gated  # type: ignore[assignment]
    return sub, gated


def offers_to(harness: Harness, pid: str) -> list[str]:
    return [e.sdp for e in harness.events_of(SubscribeOffer) if e.participant_id == pid]


async def test_tracks_added_and_removed_while_an_offer_awaits_its_answer(
    harness: Harness,
) -> None:
    """A screen share added, removed and added again while the subscriber's answer is late:
    the changes go into one next offer and the last share plays. (A transceiver made for the
    first share and stopped before it was ever offered used to take the next answer's m-line,
    leaving the new share's leg negotiating forever, with nothing logged.)"""
    sub, gated = await slow_subscriber(harness, "bob")
    pub = await harness.publisher("alice")
    assert await eventually(lambda: gated.waiting == 1, 5)  # offer 1 answered, answer held back
    first = pub.add_video(StampedVideoTrack())
    await pub.offer()
    first.direction = "inactive"
    await pub.offer()
    screen = StampedVideoTrack()
    pub.add_video(screen)
    await pub.offer()
    bob = harness.room.participant("bob")
    assert bob is not None
    assert bob.offers_sent == 1  # nothing offered while the first offer is unanswered

    since = time.monotonic()
    gated.gate.set()
    assert await eventually(
        lambda: bool(sub.tracks.get(screen.id)) and len(sub.tracks[screen.id].frames) > 10, 10
    ), (sub.tracks.keys(), bob.stats()["subscribed"])
    leg = bob.leg("alice", screen.id)
    assert leg is not None and leg.state is LegState.FORWARDING
    assert bob.offers_sent == 2  # the three changes went out as one offer
    assert first.sender.track.id not in sub.tracks
    assert time.monotonic() - since < 10


@pytest.fixture
async def impatient() -> AsyncIterator[Harness]:
    """A room whose subscriber offers time out after 0.4 s and are resent twice."""
    h = Harness(loopback_settings(subscriber_answer_timeout_s=0.4, subscriber_offer_retries=2))
    try:
        yield h
    finally:
        await h.close()


async def test_an_unanswered_offer_is_sent_again_then_the_subscriber_fails(
    impatient: Harness, caplog: pytest.LogCaptureFixture
) -> None:
    harness = impatient
    caplog.set_level(logging.WARNING, "relayroom.media.participant")
    bob = await harness.room.add_participant("bob", can_publish=False, can_subscribe=True)
    await harness.publisher("alice")
    # No client answers bob: the offer goes out 1 + 2 times, identical, then bob fails.
    assert await eventually(lambda: bool(harness.events_of(ParticipantFailed)), 5)
    offers = offers_to(harness, "bob")
    assert len(offers) == 3 and len(set(offers)) == 1
    failed = harness.events_of(ParticipantFailed)
    assert [e.participant_id for e in failed] == ["bob"]
    assert "subscriber negotiation stuck" in failed[0].reason
    assert bob.negotiation_timeouts == 3
    assert harness.room.negotiation_timeouts == 3  # counted after bob left the room too
    messages = [r.getMessage() for r in caplog.records]
    assert sum("sending it again" in m for m in messages) == 2
    assert any("unanswered after 3 tries" in m for m in messages)


async def test_a_late_answer_to_a_resent_offer_is_ignored(impatient: Harness) -> None:
    harness = impatient
    sub, gated = await slow_subscriber(harness, "bob")
    pub = await harness.publisher("alice")
    bob = harness.room.participant("bob")
    assert bob is not None
    assert await eventually(lambda: bob.negotiation_timeouts == 1, 5)  # resent once
    gated.gate.set()  # the client now answers the offer and its copy
    assert pub.video is not None
    video_id = pub.video.id
    assert await eventually(lambda: bob.stale_answers == 1, 5)
    assert await eventually(
        lambda: bool(sub.tracks.get(video_id)) and len(sub.tracks[video_id].frames) > 10, 10
    )
    assert not sub.negotiation_errors
    assert not harness.events_of(ParticipantFailed)


async def test_publisher_answer_does_not_wait_for_subscribers() -> None:
    """Subscribers that never answer: the publisher's answer comes before any of them is
    offered the new tracks, and takes about as long with 8 of them as with 1."""

    async def answer_time(count: int) -> tuple[float, int]:
        h = Harness(loopback_settings())
        try:
            for i in range(count):
                await h.room.add_participant(f"mute{i}", can_publish=False, can_subscribe=True)
            pub = await h.publisher("alice", publish=False)
            configure_ice(pub.pc, LOOPBACK)
            await pub.pc.setLocalDescription(await pub.pc.createOffer())
            start = time.monotonic()
            answer = await pub.participant.publish_offer(pub.pc.localDescription.sdp)
            took = time.monotonic() - start
            offered_before_answer = len(h.events_of(SubscribeOffer))
            await pub.pc.setRemoteDescription(RTCSessionDescription(answer, "answer"))
            assert await eventually(lambda: len(h.events_of(SubscribeOffer)) == count, 10)
            # Every subscriber now has an offer in flight that will never be answered: the
            # publisher's next change is still answered, and offers nobody anything yet.
            pub.add_video(StampedVideoTrack())
            await pub.offer()
            assert len(h.events_of(SubscribeOffer)) == count
            return took, offered_before_answer
        finally:
            await h.close()

    one: list[float] = []
    eight: list[float] = []
    for _ in range(3):  # interleaved, the machine is shared
        took, before = await answer_time(1)
        assert before == 0
        one.append(took)
        took, before = await answer_time(8)
        assert before == 0
        eight.append(took)
    one.sort()
    eight.sort()
    assert eight[1] < 2 * one[1] + 0.05, (one, eight)
