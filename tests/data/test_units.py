"""Sans-IO pieces of the DataChannel relay: parsing, buckets, the topic log, outlets."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest

from relayroom.media.datachannels import (
    Outlet,
    OutletState,
    Refused,
    TopicLog,
    parse_message,
)
from relayroom.media.ratelimit import TokenBucket


def test_from_is_added_last_so_a_client_cannot_spoof_it() -> None:
    raw = '{"topic": "chat", "payload": {"a": [1, 2]}, "from": "PA_evil"}  '
    [item], bad = parse_message(raw, "PA_me", 64)
    assert bad == 0 and item.topic == "chat" and item.to is None
    assert json.loads(item.text) == {"topic": "chat", "payload": {"a": [1, 2]}, "from": "PA_me"}


def test_batches_parse_each_element_and_count_bad_ones() -> None:
    raw = json.dumps([{"topic": "a", "payload": 1, "to": ["x"]}, {"payload": 2}, 3])
    items, bad = parse_message(raw, "me", 64)
    assert bad == 2 and [i.to for i in items] == [frozenset({"x"})]
    with pytest.raises(Refused) as exc:
        parse_message(json.dumps([{"topic": "a", "payload": 1}] * 65), "me", 64)
    assert exc.value.code == "too_large"


@pytest.mark.parametrize(
    "raw",
    [
        "nope",
        "[]",
        "5",
        '{"topic": "", "payload": 1}',
        '{"topic": "relay", "payload": 1}',
        '{"topic": "t"}',
        '{"topic": "t", "payload": 1, "to": "x"}',
        '{"topic": "a\\nb", "payload": 1}',
    ],
)
def test_malformed_messages_are_refused(raw: str) -> None:
    with pytest.raises(Refused) as exc:
        parse_message(raw, "me", 64)
    assert exc.value.code == "invalid_message"


def test_clear_is_recognised() -> None:
    [item], _ = parse_message('{"topic":"whiteboard","payload":{"op":"clear"}}', "me", 64)
    assert item.clear


def test_token_bucket_allows_the_burst_then_the_rate() -> None:
    bucket = TokenBucket(rate=1000.0, burst=5)
    assert all(bucket.take() for _ in range(5))
    assert not bucket.take()


def test_topic_log_caps_and_clears() -> None:
    log = TopicLog(max_bytes=100, max_messages=3)
    assert log.append("w", "a" * 40) == 0
    assert log.append("c", "b" * 40) == 1
    assert log.append("w", "c" * 40) is None  # bytes
    assert log.append("w", "d") == 2
    assert log.append("w", "e") is None  # messages
    log.clear("w")
    assert log.texts() == ["b" * 40] and log.bytes == 40


class FakeChannel:
    def __init__(self) -> None:
        self.label = "x"
        self.readyState = "connecting"
        self.bufferedAmount = 0
        self.bufferedAmountLowThreshold = 0
        self.sent: list[str] = []
        self.handlers: dict[str, Any] = {}

    def on(self, event: str, handler: Any) -> None:
        self.handlers[event] = handler

    def send(self, text: str) -> None:
        self.sent.append(text)


async def test_lossy_outlet_drops_the_oldest_when_full() -> None:
    ch = FakeChannel()
    outlet = Outlet(ch, lossy=True, limit_bytes=30, snapshot=None)  # type: ignore[arg-type]
    for n in range(10):
        outlet.deliver(f'"{n:08d}"')  # 10 bytes each
    assert outlet.dropped == 7 and outlet.backlog_bytes == 30
    ch.readyState = "open"
    ch.handlers["open"]()
    await asyncio.sleep(0.01)
    assert ch.sent == ['["00000007","00000008","00000009"]']


async def test_reliable_outlet_replays_then_resyncs_a_slow_receiver() -> None:
    ch = FakeChannel()
    history = ['{"h":1}']
    outlet = Outlet(ch, lossy=False, limit_bytes=50, snapshot=lambda: list(history))  # type: ignore[arg-type]
    outlet.deliver('{"live":0}')
    ch.readyState = "open"
    ch.handlers["open"]()
    await asyncio.sleep(0.01)
    batch = json.loads(ch.sent[0])
    assert batch[0]["payload"] == {"op": "sync", "reason": "join", "count": 1}
    assert batch[1:] == [{"h": 1}, {"live": 0}]

    ch.bufferedAmount = 10**6  # the receiver stopped reading
    for n in range(10):
        outlet.deliver(json.dumps({"live": n + 1}))
    assert outlet.state is OutletState.RESYNC and outlet.resyncs == 1 and outlet.dropped > 0
    history.append('{"h":2}')
    ch.bufferedAmount = 0
    ch.handlers["bufferedamountlow"]()
    await asyncio.sleep(0.01)
    batch = json.loads(ch.sent[-1])
    assert batch[0]["payload"] == {"op": "sync", "reason": "resync", "count": 2}
    assert batch[1:] == [{"h": 1}, {"h": 2}]
    state: OutletState = outlet.state  # changed by the calls above (mypy narrowed it)
    assert state is OutletState.LIVE
