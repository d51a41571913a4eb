"""Prometheus metrics (`GET /metrics`), one CollectorRegistry per application.

Two sources: gauges read at scrape time from the server state (rooms, participants, sessions,
errors by code, TURN allocations) and counters and histograms fed by every stats tick (forwarded
packets and bytes, loss, RTT, PLI/NACK, data messages). No per-room or per-participant labels:
every label has a small fixed set of values.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web
from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric

from relayroom.media.stats import StatsCollector, Tick

from .counts import NodeCounts
from .gateway import MediaGateway
from .rooms import RoomRegistry
from .webhooks import DROP_REASONS, FAILURE_REASONS, WebhookCounters

PREFIX = "relayroom"
CONNECTION_STATES = ("new", "connecting", "connected", "disconnected", "failed", "closed")
CANDIDATE_TYPES = ("host", "srflx", "prflx", "relay")
HEALTH = ("ok", "warn", "bad")
KINDS = ("audio", "video")
FAILURE_PLACES = (
    "ws_write",
    "feed",
    "stats_sample",
    "data_message",
    "http_refused",
    "subscriber_answer_timeout",
)
LOSS_BUCKETS = (0.0, 0.001, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0)
RTT_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.15, 0.2, 0.3, 0.5, 1.0, 2.0)
JITTER_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.02, 0.03, 0.05, 0.1, 0.25)
COLLECT_BUCKETS = (0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1)


@dataclass(frozen=True)
class NodeState:
    """What the scrape-time gauges (and the admin API) read, each from its owner (wired in
    `server.create_app`)."""

    registry: RoomRegistry
    media: MediaGateway
    counts: NodeCounts  # protocol errors sent to clients; failures contained
    connections: Callable[[], int]  # open signaling WebSockets
    started_at: float
    turn_allocations: Callable[[], int]  # 0 when the embedded TURN server is not running
    webhooks: WebhookCounters = field(default_factory=WebhookCounters)


class _StateCollector:
    """Gauges computed from the live node state at each scrape."""

    def __init__(self, state: NodeState, collector: StatsCollector) -> None:
        self._node = state
        self._stats = collector
        self._last: Tick | None = None

    def on_tick(self, tick: Tick) -> None:
        self._last = tick

    def collect(self) -> Iterator[Metric]:
        node = self._node
        rooms = node.registry.rooms
        yield _gauge("rooms", "Rooms open on this node.", len(rooms))
        yield _gauge(
            "participants",
            "Participants in the rooms of this node.",
            sum(len(r.members) for r in rooms.values()),
        )
        yield _gauge("media_rooms", "Rooms with a media relay (mode sfu).", node.media.room_count())
        yield _gauge("websocket_sessions", "Open signaling WebSockets.", node.connections())
        yield _gauge(
            "uptime_seconds", "Seconds since the server started.", _uptime(node.started_at)
        )
        totals = self._last.totals if self._last else None
        yield _labelled_gauge(
            "peer_connections",
            "PeerConnections by connection state (at the last stats tick).",
            "state",
            CONNECTION_STATES,
            totals.connection_states if totals else {},
        )
        yield _labelled_gauge(
            "selected_candidate_pairs",
            "Connected PeerConnections by type of their selected ICE candidate pair.",
            "type",
            CANDIDATE_TYPES,
            totals.candidate_types if totals else {},
        )
        yield _labelled_gauge(
            "participant_health",
            "Participants by health (thresholds on loss, RTT and fps).",
            "health",
            HEALTH,
            totals.health if totals else {},
        )
        errors = CounterMetricFamily(
            f"{PREFIX}_errors", "Protocol errors sent to clients, by code.", labels=["code"]
        )
        for code, count in sorted(node.counts.errors.items()):
            errors.add_metric([code], count)
        yield errors
        failures = CounterMetricFamily(
            f"{PREFIX}_contained_failures",
            "Failures contained to one participant or client (the message dropped or the "
            "participant skipped; everyone else unaffected), by type.",
            labels=["type"],
        )
        counts = {
            **node.counts.failures,
            "stats_sample": self._stats.participant_failures,
            "data_message": node.media.data_failures(),
            "subscriber_answer_timeout": node.media.negotiation_timeouts(),
        }
        for where in sorted({*FAILURE_PLACES, *counts}):
            failures.add_metric([where], counts.get(where, 0))
        yield failures
        pipes, datagrams = node.media.pipe_stats()
        yield _labelled_gauge(
            "pipes",
            "Track pipes of this node (rooms spanning nodes), by type: in or out.",
            "type",
            ("in", "out"),
            pipes,
        )
        pipe_datagrams = CounterMetricFamily(
            f"{PREFIX}_pipe_datagrams",
            "Datagrams received on the track pipe socket, by reason: accepted, or why dropped.",
            labels=["reason"],
        )
        for reason, count in sorted(datagrams.items()):
            pipe_datagrams.add_metric([reason], count)
        yield pipe_datagrams
        yield _gauge(
            "turn_allocations",
            "Active allocations on the embedded TURN server (0 when it is not running).",
            node.turn_allocations(),
        )
        yield from _webhook_metrics(node.webhooks)
        cost = self._stats.cost()
        yield CounterMetricFamily(
            f"{PREFIX}_stats_collection_seconds",
            "CPU-seconds spent collecting stats.",
            value=cost["busy_s"],
        )


def _webhook_metrics(counters: WebhookCounters) -> Iterator[Metric]:
    yield CounterMetricFamily(
        f"{PREFIX}_webhook_deliveries",
        "Webhook events delivered (a 2xx answer), over every URL.",
        value=counters.delivered,
    )
    failed = CounterMetricFamily(
        f"{PREFIX}_webhook_failed_attempts",
        "Webhook delivery attempts that failed (retried within the budget), by reason.",
        labels=["reason"],
    )
    for reason in FAILURE_REASONS:
        failed.add_metric([reason], counters.failed_attempts[reason])
    yield failed
    dropped = CounterMetricFamily(
        f"{PREFIX}_webhook_dropped",
        "Webhook events given up (queue full, retry budget spent, shutdown, error), by reason.",
        labels=["reason"],
    )
    for reason in DROP_REASONS:
        dropped.add_metric([reason], counters.dropped[reason])
    yield dropped
    yield _gauge("webhook_queued", "Webhook events waiting or in flight.", counters.queued())


def _uptime(started_at: float) -> float:
    return max(0.0, time.time() - started_at)


def _gauge(name: str, doc: str, value: float) -> GaugeMetricFamily:
    return GaugeMetricFamily(f"{PREFIX}_{name}", doc, value=value)


def _labelled_gauge(
    name: str, doc: str, label: str, keys: Iterable[str], counts: Mapping[str, float]
) -> GaugeMetricFamily:
    """One series per key (a fixed set, so cardinality stays bounded); missing keys are 0."""
    family = GaugeMetricFamily(f"{PREFIX}_{name}", doc, labels=[label])
    for key in keys:
        family.add_metric([key], counts.get(key, 0))
    return family


class Metrics:
    """The metrics of one application; fed by the stats collector's ticks."""

    def __init__(self, state: NodeState, collector: StatsCollector) -> None:
        self.registry = CollectorRegistry()
        reg = self.registry
        self._state = _StateCollector(state, collector)
        reg.register(self._state)
        self.forwarded_packets = Counter(
            f"{PREFIX}_forwarded_packets",
            "RTP packets forwarded to subscribers.",
            ["kind"],
            registry=reg,
        )
        self.forwarded_bytes = Counter(
            f"{PREFIX}_forwarded_bytes",
            "RTP payload bytes forwarded to subscribers.",
            ["kind"],
            registry=reg,
        )
        self.received_packets = Counter(
            f"{PREFIX}_received_packets",
            "RTP packets received from publishers.",
            ["kind"],
            registry=reg,
        )
        self.received_bytes = Counter(
            f"{PREFIX}_received_bytes",
            "RTP payload bytes received from publishers.",
            ["kind"],
            registry=reg,
        )
        self.dropped_packets = Counter(
            f"{PREFIX}_dropped_packets",
            "Packets not forwarded (stale after a resync, or a send error).",
            registry=reg,
        )
        self.keyframes_forwarded = Counter(
            f"{PREFIX}_keyframes_forwarded", "Video keyframes forwarded.", registry=reg
        )
        self.pli_received = Counter(
            f"{PREFIX}_keyframe_requests_received",
            "PLI and FIR received from subscribers.",
            registry=reg,
        )
        self.pli_sent = Counter(
            f"{PREFIX}_keyframe_requests_sent", "PLI sent to publishers.", registry=reg
        )
        self.nacks_received = Counter(
            f"{PREFIX}_nacks_received", "NACK packets received from subscribers.", registry=reg
        )
        self.data_relayed = Counter(
            f"{PREFIX}_data_messages_relayed", "DataChannel messages relayed.", registry=reg
        )
        self.data_dropped = Counter(
            f"{PREFIX}_data_messages_dropped",
            "DataChannel messages dropped (slow receivers).",
            registry=reg,
        )
        self.threshold_crossings = Counter(
            f"{PREFIX}_threshold_crossings",
            "Connections crossing a health threshold.",
            ["metric"],
            registry=reg,
        )
        self.loss = Histogram(
            f"{PREFIX}_packet_loss_ratio",
            "Packet loss fraction per track and stats tick (both directions).",
            buckets=LOSS_BUCKETS,
            registry=reg,
        )
        self.rtt = Histogram(
            f"{PREFIX}_rtt_seconds",
            "Round-trip time per subscribed track and stats tick (RTCP receiver reports).",
            buckets=RTT_BUCKETS,
            registry=reg,
        )
        self.jitter = Histogram(
            f"{PREFIX}_jitter_seconds",
            "Interarrival jitter per track and stats tick.",
            buckets=JITTER_BUCKETS,
            registry=reg,
        )
        self.collect_duration = Histogram(
            f"{PREFIX}_stats_collection_duration_seconds",
            "Duration of one stats collection round over every connection.",
            buckets=COLLECT_BUCKETS,
            registry=reg,
        )
        for kind in KINDS:  # export zeroes before the first packet
            for counter in (
                self.forwarded_packets,
                self.forwarded_bytes,
                self.received_packets,
                self.received_bytes,
            ):
                counter.labels(kind)
        for metric in ("loss", "rtt_ms", "fps"):
            self.threshold_crossings.labels(metric)
        collector.add_listener(self.on_tick)

    def on_tick(self, tick: Tick) -> None:
        self._state.on_tick(tick)
        t = tick.totals
        for kind in KINDS:
            self.forwarded_packets.labels(kind).inc(t.forwarded_packets[kind])
            self.forwarded_bytes.labels(kind).inc(t.forwarded_bytes[kind])
            self.received_packets.labels(kind).inc(t.received_packets[kind])
            self.received_bytes.labels(kind).inc(t.received_bytes[kind])
        self.dropped_packets.inc(t.dropped_packets)
        self.keyframes_forwarded.inc(t.keyframes_forwarded)
        self.pli_received.inc(t.keyframe_requests_received)
        self.pli_sent.inc(t.keyframe_requests_sent)
        self.nacks_received.inc(t.nacks_received)
        self.data_relayed.inc(t.data_relayed)
        self.data_dropped.inc(t.data_dropped)
        for value in t.loss:
            self.loss.observe(value)
        for value in t.rtt_s:
            self.rtt.observe(value)
        for value in t.jitter_s:
            self.jitter.observe(value)
        self.collect_duration.observe(tick.duration_s)
        for event in tick.events:
            if event.get("type") == "threshold_crossed" and event.get("metric") in (
                "loss",
                "rtt_ms",
                "fps",
            ):
                self.threshold_crossings.labels(event["metric"]).inc()

    def render(self) -> bytes:
        data: bytes = generate_latest(self.registry)
        return data


CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


def metrics_handler(metrics: Metrics) -> Any:
    async def handler(request: web.Request) -> web.Response:
        return web.Response(
            body=metrics.render(),
            headers={"Content-Type": CONTENT_TYPE, "Cache-Control": "no-store"},
        )

    return handler


__all__ = ["CONTENT_TYPE", "Metrics", "NodeState", "metrics_handler"]
