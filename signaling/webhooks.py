"""Webhooks: every room event, signed, POSTed to each configured URL (docs/webhooks.md).

Events come from the one place room events are logged, the stats event log
(`media.stats.EventLog`): a synchronous listener turns each kind it knows into a JSON body and
appends it to every URL's bounded queue, and returns. Nothing in a room ever waits on a
receiver: each URL has its own sender task that posts its queue one event at a time, in the
order the events happened (so in order per room), retrying a failed attempt with exponential
backoff and jitter until the event is `retry_budget_s` old, then dropping it. A full queue
drops its oldest event. Every drop and failed attempt is counted (`WebhookCounters`, exported
as Prometheus metrics).

Delivery is at least once: an attempt that timed out may still have reached the receiver, so
receivers dedupe on the event id (the same on every retry; the timestamp and signature are
fresh per attempt).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import random
import secrets
import time
from collections import Counter, deque
from collections.abc import AsyncIterator, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

import aiohttp
from aiohttp import web

from relayroom import __version__
from relayroom.media.stats import EventLog
from relayroom.media.tasks import cancel_and_wait

from .config import Config
from .webhook_signing import derive_key, signed_headers

log = logging.getLogger(__name__)

Json = dict[str, Any]

EVENTS = (
    "room_started",
    "room_finished",
    "participant_joined",
    "participant_left",
    "track_published",
    "track_unpublished",
    "recording_started",
    "recording_finished",
)
"""The event log's kinds that become webhooks (the others, such as threshold crossings, stay
in the log)."""
FAILURE_REASONS = ("timeout", "connection", "status")
DROP_REASONS = ("queue_full", "retry_budget", "shutdown", "error")
BACKOFF_FIRST_S = 0.5
"""The first retry waits about this long; each next one twice as long, up to backoff_max_s."""


@dataclass(frozen=True)
class WebhookSettings:
    urls: tuple[str, ...]
    key: str = field(repr=False)
    timeout_s: float = 5.0
    retry_budget_s: float = 300.0
    backoff_max_s: float = 10.0
    queue_max: int = 1000

    def __post_init__(self) -> None:
        if self.queue_max < 1:
            raise ValueError("queue_max must be >= 1")
        if self.timeout_s <= 0 or self.backoff_max_s <= 0 or self.retry_budget_s < 0:
            raise ValueError("timeouts and backoff must be positive")


def webhook_settings(config: Config, api_secret: str) -> WebhookSettings:
    """The webhooks' settings from the Config's `webhook_*` fields."""
    return WebhookSettings(
        urls=config.webhook_urls,
        key=config.webhook_key or derive_key(api_secret),
        timeout_s=config.webhook_timeout_s,
        retry_budget_s=config.webhook_retry_budget_s,
        backoff_max_s=config.webhook_backoff_max_s,
        queue_max=config.webhook_queue_max,
    )


@dataclass
class WebhookCounters:
    """What the senders did (summed over every URL): read by `/metrics` at scrape time."""

    delivered: int = 0
    failed_attempts: Counter[str] = field(default_factory=Counter)  # by FAILURE_REASONS
    dropped: Counter[str] = field(default_factory=Counter)  # by DROP_REASONS
    queued: Callable[[], int] = lambda: 0


# ------------------------------------------------------------------ event log -> JSON body


def new_event_id() -> str:
    return "EV_" + secrets.token_urlsafe(12)


def _participant(event: Mapping[str, Any]) -> Json:
    return {
        "id": event.get("participant_id"),
        "identity": event.get("identity"),
        "name": event.get("name"),
    }


def webhook_body(event: Mapping[str, Any], event_id: str | None = None) -> Json | None:
    """The webhook body of an event log entry, or None for a kind that is no webhook.

    ``{id, event, created_at, room: {name, ...}, participant?, track?, recording?, reason?}``:
    the fields each event carries are listed in docs/webhooks.md.
    """
    kind = event.get("type")
    room = event.get("room")
    if kind not in EVENTS or not isinstance(room, str):
        return None
    body: Json = {
        "id": event_id or new_event_id(),
        "event": kind,
        "created_at": event.get("t", round(time.time(), 3)),
        "room": {"name": room},
    }
    if kind in ("room_started", "room_finished"):
        if event.get("mode") is not None:
            body["room"]["mode"] = event["mode"]
    elif kind.startswith("participant_") or kind.startswith("track_"):
        body["participant"] = _participant(event)
        if kind.startswith("track_") and isinstance(event.get("track"), dict):
            body["track"] = dict(event["track"])
    else:  # recording_*: whatever the recorder logged, its id as `id`
        recording: Json = {"id": event.get("recording_id")}
        skip = {"seq", "t", "type", "room", "recording_id", "reason"}
        recording.update({k: v for k, v in event.items() if k not in skip})
        body["recording"] = recording
    if event.get("reason") is not None:
        body["reason"] = event["reason"]
    return body


# ------------------------------------------------------------------ delivery


@dataclass
class _Pending:
    id: str
    body: bytes
    room: str
    deadline: float  # loop time after which it is no longer tried


def _display(url: str) -> str:
    """The URL for logs: scheme, host and port only (paths and userinfo may hold secrets)."""
    parts = urlsplit(url)
    port = f":{parts.port}" if parts.port else ""
    return f"{parts.scheme}://{parts.hostname}{port}"


class _UrlSender:
    """One URL's bounded queue and the task that posts it, one event at a time, in order."""

    def __init__(
        self,
        url: str,
        settings: WebhookSettings,
        http: Callable[[], aiohttp.ClientSession],
        counters: WebhookCounters,
        rng: random.Random,
    ) -> None:
        self.url = url
        self._settings = settings
        self._http = http
        self._counters = counters
        self._rng = rng
        self._queue: deque[_Pending] = deque()
        self._wake = asyncio.Event()
        self._idle = asyncio.Event()  # nothing queued or in flight
        self._idle.set()
        self._current: _Pending | None = None  # in flight
        self._failing = False
        self._drops = 0
        self._task: asyncio.Task[None] | None = None

    def __len__(self) -> int:
        return len(self._queue) + (1 if self._current is not None else 0)

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(
            self._run(), name=f"webhooks {_display(self.url)}"
        )

    def offer(self, item: _Pending) -> None:
        """Queue an event (never waits); a full queue drops its oldest event."""
        if len(self._queue) >= self._settings.queue_max:
            dropped = self._queue.popleft()
            self._count_drop("queue_full", dropped)
        self._queue.append(item)
        self._idle.clear()
        self._wake.set()

    async def flush(self) -> None:
        """Return once everything queued so far has been delivered or dropped."""
        await self._idle.wait()

    async def close(self) -> int:
        """Stop the sender; the count of events left undelivered (counted as dropped)."""
        if self._task is not None:
            await cancel_and_wait([self._task])
            self._task = None
        left = len(self)
        self._counters.dropped["shutdown"] += left
        self._queue.clear()
        self._current = None
        return left

    async def _run(self) -> None:
        while True:
            while not self._queue:
                self._idle.set()
                self._wake.clear()
                await self._wake.wait()
            self._current = item = self._queue.popleft()
            try:
                await self._deliver(item)
            except Exception:  # a bug: the sender lives on, the next events still go
                log.exception("webhook %s to %s: sender failed", item.id, _display(self.url))
                self._count_drop("error", item)
            self._current = None  # not on cancellation: close() counts it as undelivered

    async def _deliver(self, item: _Pending) -> None:
        loop = asyncio.get_running_loop()
        retries = 0
        while True:
            if loop.time() > item.deadline:
                self._count_drop("retry_budget", item)
                return
            failure = await self._attempt(item)
            if failure is None:
                self._counters.delivered += 1
                if self._failing:
                    self._failing = False
                    log.info("webhooks to %s delivered again", _display(self.url))
                return
            self._counters.failed_attempts[failure] += 1
            if not self._failing:
                self._failing = True
                log.warning(
                    "webhook to %s failed (%s); retrying for up to %g s per event",
                    _display(self.url),
                    failure,
                    self._settings.retry_budget_s,
                    extra={"room": item.room, "participant": None},
                )
            remaining = item.deadline - loop.time()
            if remaining <= 0:
                self._count_drop("retry_budget", item)
                return
            await asyncio.sleep(min(self._backoff(retries), remaining))
            retries += 1

    def _backoff(self, retries: int) -> float:
        """Exponential, with half of it random (equal jitter): never a burst, never a storm
        of receivers' retries in step after an outage."""
        ceiling = min(self._settings.backoff_max_s, BACKOFF_FIRST_S * 2.0 ** min(retries, 30))
        return ceiling / 2 + self._rng.uniform(0, ceiling / 2)

    async def _attempt(self, item: _Pending) -> str | None:
        """One signed POST; None when the receiver answered 2xx, else why it failed."""
        headers = signed_headers(self._settings.key, item.id, int(time.time()), item.body)
        headers["Content-Type"] = "application/json"
        headers["User-Agent"] = f"relayroom/{__version__}"
        timeout = aiohttp.ClientTimeout(total=self._settings.timeout_s)
        try:
            async with self._http().post(
                self.url, data=item.body, headers=headers, timeout=timeout, allow_redirects=False
            ) as response:
                if 200 <= response.status < 300:
                    return None
                log.debug("webhook %s to %s: HTTP %d", item.id, _display(self.url), response.status)
                return "status"
        except TimeoutError:
            return "timeout"
        except (aiohttp.ClientError, OSError) as exc:
            log.debug("webhook %s to %s: %r", item.id, _display(self.url), exc)
            return "connection"

    def _count_drop(self, reason: str, item: _Pending) -> None:
        self._counters.dropped[reason] += 1
        self._drops += 1
        if self._drops == 1 or self._drops % 100 == 0:  # a dead receiver must not flood the log
            log.warning(
                "webhook %s to %s dropped (%s); %d dropped so far",
                item.id,
                _display(self.url),
                reason,
                self._drops,
                extra={"room": item.room, "participant": None},
            )


class WebhookDispatcher:
    """Owns one sender per URL and the HTTP client they share; fed by the event log."""

    def __init__(self, settings: WebhookSettings, rng: random.Random | None = None) -> None:
        self.settings = settings
        self.counters = WebhookCounters()
        self.counters.queued = self.queued
        self._http: aiohttp.ClientSession | None = None
        rng = rng or random.Random()
        self._senders = [
            _UrlSender(url, settings, self._client, self.counters, rng) for url in settings.urls
        ]
        self._started = False

    def _client(self) -> aiohttp.ClientSession:
        assert self._http is not None, "the dispatcher is not started"
        return self._http

    def queued(self) -> int:
        """Events waiting or in flight, over every URL."""
        return sum(len(sender) for sender in self._senders)

    def attach(self, events: EventLog) -> None:
        """Deliver the log's events from now on (nothing when no URL is configured)."""
        if self._senders:
            events.add_listener(self.on_event)

    def on_event(self, event: Json) -> None:
        """Event log listener: synchronous, queues and returns."""
        if not self._started:
            return
        body = webhook_body(event)
        if body is None:
            return
        encoded = json.dumps(body, separators=(",", ":"), ensure_ascii=False).encode()
        deadline = asyncio.get_running_loop().time() + self.settings.retry_budget_s
        for sender in self._senders:
            sender.offer(_Pending(body["id"], encoded, body["room"]["name"], deadline))

    async def start(self) -> None:
        if self._started or not self._senders:
            return
        # No connection pool limit beyond one request per sender at a time; no cookies kept.
        self._http = aiohttp.ClientSession(cookie_jar=aiohttp.DummyCookieJar())
        for sender in self._senders:
            sender.start()
        self._started = True
        log.info("webhooks to %s", ", ".join(_display(sender.url) for sender in self._senders))

    async def close(self, grace_s: float | None = None) -> None:
        """Give queued events up to `grace_s` (default: one attempt's timeout) to go out, then
        stop; idempotent."""
        if not self._started:
            return
        self._started = False
        grace = self.settings.timeout_s if grace_s is None else grace_s
        if grace > 0 and self.queued():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(
                    asyncio.gather(*(sender.flush() for sender in self._senders)), grace
                )
        left = 0
        for sender in self._senders:
            left += await sender.close()
        if left:
            log.warning("webhooks: %d events not delivered at shutdown", left)
        if self._http is not None:
            await self._http.close()
            self._http = None


WEBHOOKS_KEY = web.AppKey("webhooks", WebhookDispatcher)


def setup_webhooks(
    app: web.Application, settings: WebhookSettings, events: EventLog
) -> WebhookDispatcher:
    """Feed `events` to the configured URLs for the application's lifetime.

    The lifecycle goes first in `cleanup_ctx`, so it stops last: the events of the drain
    (everyone leaving, rooms finishing) are still delivered.
    """
    dispatcher = WebhookDispatcher(settings)
    dispatcher.attach(events)
    app[WEBHOOKS_KEY] = dispatcher

    async def lifecycle(app: web.Application) -> AsyncIterator[None]:
        await dispatcher.start()
        yield
        await dispatcher.close()

    app.cleanup_ctx.insert(0, lifecycle)
    return dispatcher
