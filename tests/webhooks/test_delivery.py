"""The webhook dispatcher against real aiohttp receivers on loopback: order, retries with
backoff, the retry budget, the queue bound, shutdown. Events enter as in the server: through
the stats event log's listener hook."""

from __future__ import annotations

import asyncio
import random
import time
from typing import Any

from relayroom.api import WebhookReceiver
from relayroom.media.stats import EventLog
from relayroom.signaling.webhooks import WebhookDispatcher, WebhookSettings
from tests.support.polling import eventually
from tests.support.webhooks import WebhookSink, free_port

KEY = "webhook-key-0123456789-0123456789-abcdef"


def settings(*urls: str, **overrides) -> WebhookSettings:
    values: dict[str, Any] = {
        "timeout_s": 1.0,
        "retry_budget_s": 10.0,
        "backoff_max_s": 0.2,
        "queue_max": 100,
    }
    values.update(overrides)
    return WebhookSettings(urls=urls, key=KEY, **values)


async def started(config: WebhookSettings) -> tuple[WebhookDispatcher, EventLog]:
    log = EventLog(1000)
    dispatcher = WebhookDispatcher(config, rng=random.Random(7))
    dispatcher.attach(log)
    await dispatcher.start()
    return dispatcher, log


def join(log: EventLog, room: str, n: int) -> None:
    log.add("participant_joined", room=room, participant_id=f"PA_{n}", identity=f"u{n}", name=None)


async def test_events_arrive_signed_and_in_order_at_every_url():
    async with (
        WebhookSink(WebhookReceiver(KEY)) as first,
        WebhookSink(WebhookReceiver(KEY)) as second,
    ):
        dispatcher, log = await started(settings(first.url, second.url))
        try:
            log.add("room_started", room="a", mode="sfu")
            for n in range(20):
                join(log, "a" if n % 2 else "b", n)
                log.add("threshold_crossed", room="a", participant_id="PA_1")  # no webhook
            assert await eventually(lambda: len(first.events) == len(second.events) == 21)
        finally:
            await dispatcher.close()
        for sink in (first, second):
            assert sink.rejected == []
            assert sink.kinds() == ["room_started"] + ["participant_joined"] * 20
            ids = [e.participant.id for e in sink.events if e.participant is not None]
            assert ids == [f"PA_{n}" for n in range(20)]
            times = [e.created_at for e in sink.events]
            assert times == sorted(times) and len(set(times)) == len(times)
        assert [e.id for e in first.events] == [e.id for e in second.events]
        assert len({e.id for e in first.events}) == 21
        assert dispatcher.counters.delivered == 42


async def test_a_failing_receiver_gets_the_event_again_with_the_same_id_and_order_holds():
    async with WebhookSink(WebhookReceiver(KEY)) as sink:
        sink.fail_next = 3
        dispatcher, log = await started(settings(sink.url))
        try:
            started_at = time.monotonic()
            for n in range(5):
                join(log, "r", n)
            assert await eventually(lambda: len(sink.events) == 5)
            waited = time.monotonic() - started_at
        finally:
            await dispatcher.close()
        assert [e.participant.id for e in sink.events if e.participant] == [
            f"PA_{n}" for n in range(5)
        ]
        assert sink.requests == 8  # 3 refused attempts at the first event, then 5 delivered
        assert dispatcher.counters.failed_attempts["status"] == 3
        assert dispatcher.counters.delivered == 5
        # Backoff: ~0.25 s (half of 0.5 s, plus up to as much jitter) then capped at 0.2 s.
        assert waited >= 0.3, waited


async def test_a_dead_receiver_costs_nothing_beyond_the_retry_budget():
    port = free_port()  # nothing listens there
    dispatcher, log = await started(settings(f"http://127.0.0.1:{port}/hook", retry_budget_s=1))
    try:
        for n in range(3):
            join(log, "r", n)
        assert await eventually(lambda: dispatcher.counters.dropped["retry_budget"] == 3, 5)
        assert dispatcher.queued() == 0
        assert dispatcher.counters.failed_attempts["connection"] >= 3
        assert dispatcher.counters.delivered == 0
        # The receiver comes back: new events go through at once.
        async with WebhookSink(WebhookReceiver(KEY), port) as sink:
            join(log, "r", 9)
            assert await eventually(lambda: len(sink.events) == 1, 5)
            assert sink.events[0].participant is not None
            assert sink.events[0].participant.id == "PA_9"
    finally:
        await dispatcher.close()


async def test_a_full_queue_drops_its_oldest_event_and_counts_it():
    async with WebhookSink(WebhookReceiver(KEY)) as sink:
        sink.hang = True
        dispatcher, log = await started(settings(sink.url, queue_max=3, timeout_s=30))
        try:
            join(log, "r", 0)  # taken by the sender, which hangs on it
            assert await eventually(lambda: sink.requests == 1)
            for n in range(1, 7):
                join(log, "r", n)
            assert dispatcher.counters.dropped["queue_full"] == 3  # PA_1..PA_3
            assert dispatcher.queued() == 4  # 3 waiting + 1 in flight
            sink.hang = False
            sink._release.set()  # the hung request ends (503), the sender retries
            assert await eventually(lambda: len(sink.events) == 4, 5)
        finally:
            await dispatcher.close()
        assert [e.participant.id for e in sink.events if e.participant] == [
            "PA_0",
            "PA_4",
            "PA_5",
            "PA_6",
        ]


async def test_a_hung_attempt_times_out_and_is_retried():
    async with WebhookSink(WebhookReceiver(KEY)) as sink:
        sink.hang = True
        dispatcher, log = await started(settings(sink.url, timeout_s=0.3))
        try:
            join(log, "r", 0)
            assert await eventually(lambda: dispatcher.counters.failed_attempts["timeout"] >= 2, 5)
            sink.hang = False
            assert await eventually(lambda: len(sink.events) == 1, 5)
        finally:
            await dispatcher.close()


async def test_shutdown_flushes_waiting_events_then_counts_the_rest():
    async with WebhookSink(WebhookReceiver(KEY)) as sink:
        dispatcher, log = await started(settings(sink.url))
        for n in range(10):
            join(log, "r", n)
        await dispatcher.close()  # within the grace: all out
        assert len(sink.events) == 10
        assert dispatcher.counters.dropped["shutdown"] == 0

        sink.hang = True
        dispatcher, log = await started(settings(sink.url, timeout_s=30))
        for n in range(4):
            join(log, "r", n)
        started_at = time.monotonic()
        await dispatcher.close(grace_s=0.5)
        assert time.monotonic() - started_at < 3
        assert dispatcher.counters.dropped["shutdown"] == 4
        await dispatcher.close()  # idempotent


async def test_a_listener_that_raises_never_breaks_the_event_log():
    log = EventLog(10)

    def broken(event: dict) -> None:
        raise RuntimeError("observer bug")

    seen: list[str] = []
    log.add_listener(broken)
    log.add_listener(lambda event: seen.append(event["type"]))
    event = log.add("participant_joined", room="r")
    assert event["type"] == "participant_joined" and seen == ["participant_joined"]
    assert log.listener_failures == 1 and log.since() == [event]


async def test_without_urls_nothing_is_attached_or_started():
    log = EventLog(10)
    dispatcher = WebhookDispatcher(settings())
    dispatcher.attach(log)
    await dispatcher.start()
    log.add("participant_joined", room="r")
    assert dispatcher.queued() == 0
    await dispatcher.close()
    await asyncio.sleep(0)


async def test_a_sender_that_hits_a_bug_drops_that_event_and_goes_on(caplog):
    async with WebhookSink(WebhookReceiver(KEY)) as sink:
        dispatcher, log = await started(settings(sink.url))
        sender = dispatcher._senders[0]
        real_attempt = sender._attempt
        calls = 0

        async def attempt(item):
            nonlocal calls
            calls += 1
            if calls == 1:
                raise RuntimeError("a bug")
            return await real_attempt(item)

        sender._attempt = attempt  # type: ignore[method-assign]
        try:
            for n in range(3):
                join(log, "r", n)
            assert await eventually(lambda: len(sink.events) == 2)
        finally:
            await dispatcher.close()
        assert [e.participant.id for e in sink.events if e.participant] == ["PA_1", "PA_2"]
        assert dispatcher.counters.dropped["error"] == 1
        assert "sender failed" in caplog.text


async def test_a_hanging_url_never_holds_back_another_url():
    async with (
        WebhookSink(WebhookReceiver(KEY)) as stuck,
        WebhookSink(WebhookReceiver(KEY)) as healthy,
    ):
        stuck.hang = True
        dispatcher, log = await started(settings(stuck.url, healthy.url, timeout_s=30))
        try:
            for n in range(5):
                join(log, "r", n)
            assert await eventually(lambda: len(healthy.events) == 5, 3)
            assert stuck.requests == 1 and stuck.events == []
            assert dispatcher.queued() == 5  # all five still owed to the stuck URL
        finally:
            await dispatcher.close(grace_s=0)
