"""Grants, limits on the participant API, failures and clean teardown with real connections."""

from __future__ import annotations

import asyncio
import gc
import os
import threading
from typing import Any

import aioice.ice
import pytest

from relayroom.media import (
    Forbidden,
    ParticipantFailed,
    SdpRejected,
    SubscribeOffer,
    TrackUnpublished,
    UnknownTrack,
)
from tests.media.client import Publisher, Subscriber
from tests.media.conftest import Harness, loopback_settings
from tests.media.sdp_samples import client_offer, without_lines
from tests.support.polling import eventually

pytestmark = pytest.mark.slow


async def test_publishing_without_grant_is_forbidden(harness: Harness) -> None:
    p = await harness.room.add_participant("viewer", can_publish=False, can_subscribe=True)
    with pytest.raises(Forbidden):
        await p.publish_offer(await client_offer())
    assert harness.room.tracks() == []


async def test_participant_without_subscribe_grant_receives_nothing(harness: Harness) -> None:
    await harness.publisher("alice")
    silent = await harness.room.add_participant("silent", can_publish=True, can_subscribe=False)
    assert silent.subscriptions() == []
    assert not [e for e in harness.events_of(SubscribeOffer) if e.participant_id == "silent"]
    # its own tracks still reach others
    client = Publisher(silent, audio=False)
    await client.offer()
    watcher = await harness.subscriber("watcher")
    assert await eventually(lambda: len(watcher.tracks) == 3, 10)
    assert silent.subscriptions() == []
    await client.close()


async def test_rejected_offers_leave_the_participant_usable(harness: Harness) -> None:
    settings = loopback_settings(max_tracks_per_participant=2, codecs=("opus", "VP8"))
    h = Harness(settings)
    try:
        alice = await h.room.add_participant("alice", can_publish=True, can_subscribe=True)
        cases = [
            (await client_offer(video=2, audio=1), "too many tracks"),
            (await client_offer(video=1, audio=0, codec="H264"), "no allowed codec"),
            (without_lines(await client_offer(), "a=fingerprint"), "fingerprint"),
            ("x" * 40000, "too large"),
            ("v=0\r\n" + "m=audio 9 UDP/TLS/RTP/SAVPF 0\r\n" * 17, "too many m-lines"),
        ]
        for sdp, reason in cases:
            with pytest.raises(SdpRejected, match=reason):
                await alice.publish_offer(sdp)
        with pytest.raises(SdpRejected, match="no subscribe offer"):
            await alice.subscribe_answer(await client_offer())
        with pytest.raises(UnknownTrack):
            await alice.set_muted("nope", True)
        client = Publisher(alice)
        await client.offer()
        assert len(h.room.tracks()) == 2
        await client.close()
    finally:
        await h.close()


async def test_remote_close_reports_failure_and_cleans_up(harness: Harness) -> None:
    pub = await harness.publisher("alice")
    sub = await harness.subscriber("bob")
    assert await eventually(
        lambda: len(sub.tracks) == 2 and all(t.frames for t in sub.tracks.values()), 10
    )
    await pub.pc.close()  # DTLS close_notify, no leave message
    assert await eventually(lambda: harness.room.participant("alice") is None, 5)
    failed = harness.events_of(ParticipantFailed)
    assert [e.participant_id for e in failed] == ["alice"]
    assert len(harness.events_of(TrackUnpublished)) == 2
    assert await eventually(lambda: all(t.ended_at for t in sub.tracks.values()), 5)
    bob = harness.room.participant("bob")
    assert bob is not None and bob.subscriptions() == []


async def test_consent_loss_reports_failure(
    harness: Harness, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(aioice.ice, "CONSENT_INTERVAL", 0.2)
    monkeypatch.setattr(aioice.ice, "CONSENT_FAILURES", 3)
    pub = await harness.publisher("alice", audio=False)
    sub = await harness.subscriber("bob")
    assert await eventually(
        lambda: bool(sub.video_tracks()) and bool(sub.video_tracks()[0].frames), 10
    )
    # The subscriber vanishes without a word: its sockets go silent.
    for transceiver in sub.pc.getTransceivers():
        conn: Any = transceiver.receiver.transport.transport._connection
        for protocol in conn._protocols:
            protocol.datagram_received = lambda data, addr: None
    assert await eventually(lambda: harness.room.participant("bob") is None, 8)
    failed = harness.events_of(ParticipantFailed)
    assert [e.participant_id for e in failed] == ["bob"]
    assert "consent" in failed[0].reason or "failed" in failed[0].reason
    alice = harness.room.participant("alice")
    assert alice is not None and all(not hub.legs for hub in alice.published_hubs())
    await pub.close()


async def test_connection_that_never_comes_up_times_out() -> None:
    h = Harness(loopback_settings(connect_timeout_s=0.5))
    try:
        alice = await h.room.add_participant("alice", can_publish=True, can_subscribe=False)
        await alice.publish_offer(await client_offer())  # the client never connects
        assert await eventually(lambda: h.room.participant("alice") is None, 3)
        failed = h.events_of(ParticipantFailed)
        assert failed and "not established in time" in failed[0].reason
    finally:
        await h.close()


async def test_close_is_idempotent_and_concurrent(harness: Harness) -> None:
    await harness.publisher("alice")
    alice = harness.room.participant("alice")
    assert alice is not None
    await asyncio.gather(
        alice.close("a"), alice.close("b"), harness.room.remove_participant("alice", "c")
    )
    await alice.close("again")
    assert harness.room.participant("alice") is None
    await harness.room.close()
    await harness.room.close()


def open_fds() -> int:
    return len(os.listdir("/proc/self/fd"))


def own_threads() -> int:
    """Threads other than executor workers (bounded, reused; asyncio's default executor names
    them asyncio_N): decoder threads."""
    shared = ("ThreadPoolExecutor", "asyncio_")
    return sum(1 for t in threading.enumerate() if not t.name.startswith(shared))


async def settle() -> None:
    for _ in range(5):
        await asyncio.sleep(0.05)
    gc.collect()


async def test_join_leave_cycles_leave_no_tasks_fds_or_threads() -> None:
    h = Harness(loopback_settings())
    try:
        # one cycle first, so that lazily created process-wide resources exist in the baseline
        async def cycle(i: int) -> None:
            pub = Publisher(
                await h.room.add_participant(f"p{i}", can_publish=True, can_subscribe=False)
            )
            await pub.offer()
            sub_participant = await h.room.add_participant(
                f"s{i}", can_publish=False, can_subscribe=True
            )
            sub = Subscriber(sub_participant)
            h.subscribers[f"s{i}"] = sub
            for event in reversed(h.events):
                if isinstance(event, SubscribeOffer) and event.participant_id == f"s{i}":
                    sub.offers.put_nowait(event.sdp)
                    break
            assert await eventually(
                lambda: bool(sub.video_tracks()) and bool(sub.video_tracks()[0].frames), 10
            )
            await h.room.remove_participant(f"s{i}", "left")
            await h.room.remove_participant(f"p{i}", "left")
            del h.subscribers[f"s{i}"]
            await sub.close()
            await pub.close()

        await cycle(-1)
        await settle()
        tasks, fds, threads = len(asyncio.all_tasks()), open_fds(), own_threads()
        for i in range(20):
            await cycle(i)
        await settle()
        assert h.room.participants == {}
        assert len(asyncio.all_tasks()) <= tasks, [t.get_coro() for t in asyncio.all_tasks()]
        assert open_fds() <= fds
        assert await eventually(lambda: own_threads() <= threads, 3), [
            t.name for t in threading.enumerate()
        ]
    finally:
        await h.close()


async def test_participant_ids_must_fit_in_an_msid(harness: Harness) -> None:
    with pytest.raises(ValueError, match="msid"):
        await harness.room.add_participant("has space", can_publish=True, can_subscribe=True)
    assert harness.room.participants == {}


async def test_data_only_subscriber_pc_negotiates_a_datachannel(harness: Harness) -> None:
    """Issue 4 will put DataChannels on these PCs: a track-less subscriber PC must negotiate."""
    p = await harness.room.add_participant("dc", can_publish=False, can_subscribe=True)
    client = Subscriber(p)
    harness.subscribers["dc"] = client
    opened: list[str] = []
    received: list[str] = []

    @client.pc.on("datachannel")
    def on_datachannel(channel: Any) -> None:
        opened.append(channel.label)
        channel.on("message", received.append)

    channel = p.subscriber_pc.createDataChannel("reliable")
    await p.renegotiate()
    assert await eventually(lambda: channel.readyState == "open" and opened == ["reliable"], 10)
    channel.send("hello")
    assert await eventually(lambda: received == ["hello"], 5)


async def test_room_close_does_not_renegotiate_anyone(harness: Harness) -> None:
    await harness.publisher("alice")
    sub = await harness.subscriber("bob")
    assert await eventually(lambda: len(sub.tracks) == 2, 10)
    offers = len(harness.events_of(SubscribeOffer))
    await harness.room.close()
    assert len(harness.events_of(SubscribeOffer)) == offers
    assert harness.room.participants == {}
    assert len(harness.events_of(TrackUnpublished)) == 2
