"""Fixtures for the media tests: a Room on loopback and real aiortc clients around it."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pytest

from relayroom.media import MediaEvent, MediaSettings, Room, SubscribeOffer
from tests.media.client import Publisher, Subscriber


def loopback_settings(**overrides: Any) -> MediaSettings:
    values: dict[str, Any] = {
        "ice_hosts": ("127.0.0.1",),
        "allow_loopback_candidates": True,
        "connect_timeout_s": 10.0,
        # Publisher encoders, subscriber decoders and the relay share one loop here, on a
        # machine that may be busy: packets late for the test's own reasons must still be
        # counted. Shedding is tested in test_staleness.py and against a real server.
        "max_delay_video_ms": 10000,
        "max_delay_audio_ms": 10000,
    }
    values.update(overrides)
    return MediaSettings(**values)


class Harness:
    """A room whose events are recorded and whose subscribe offers reach the test clients."""

    def __init__(self, settings: MediaSettings) -> None:
        self.settings = settings
        self.events: list[MediaEvent] = []
        self.room = Room("test", settings, self._on_event)
        self.subscribers: dict[str, Subscriber] = {}
        self.publishers: dict[str, Publisher] = {}

    def _on_event(self, event: MediaEvent) -> None:
        self.events.append(event)
        if isinstance(event, SubscribeOffer):
            client = self.subscribers.get(event.participant_id)
            if client is not None:
                client.offers.put_nowait(event.sdp)

    def events_of(self, kind: type) -> list[Any]:
        return [e for e in self.events if isinstance(e, kind)]

    async def publisher(
        self, pid: str, *, subscribe: bool = False, publish: bool = True, **kwargs: Any
    ) -> Publisher:
        participant = await self.room.add_participant(
            pid, can_publish=True, can_subscribe=subscribe
        )
        client = Publisher(participant, **kwargs)
        self.publishers[pid] = client
        if publish:
            await client.offer()
        return client

    async def subscriber(self, pid: str, *, can_publish: bool = False, **kwargs: Any) -> Subscriber:
        participant = await self.room.add_participant(
            pid, can_publish=can_publish, can_subscribe=True
        )
        placeholder = Subscriber(participant, **kwargs)
        self.subscribers[pid] = placeholder
        # An offer emitted during add_participant was recorded before the client existed.
        for event in reversed(self.events):
            if isinstance(event, SubscribeOffer) and event.participant_id == pid:
                placeholder.offers.put_nowait(event.sdp)
                break
        return placeholder

    async def close(self) -> None:
        for client in list(self.subscribers.values()):
            await client.close()
        for pub in list(self.publishers.values()):
            await pub.close()
        await self.room.close()


@pytest.fixture
def settings() -> MediaSettings:
    return loopback_settings()


@pytest.fixture
async def harness(settings: MediaSettings) -> AsyncIterator[Harness]:
    h = Harness(settings)
    try:
        yield h
    finally:
        await h.close()
        await asyncio.sleep(0)


__all__ = ["Harness", "loopback_settings"]
