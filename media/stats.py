"""Per-connection stats: sample every PeerConnection of every room once a second.

The collector reads aiortc's ``getStats()`` where it has something (remote-inbound-rtp: the
subscriber's receiver reports, RTT) and the relay's own counters everywhere else (hubs and legs:
packets, bytes, keyframes, PLI/NACK; the receiver's per-SSRC statistics: loss and jitter; the
ICE connection's nominated pair: the selected candidate pair). Browsers' own summaries (sent over
signaling) are read through a callback and kept beside the server's view.

Each participant has a bounded history (a ring buffer of JSON-encoded samples), thresholds turn
into crossing events (logged once per crossing, kept in a bounded event log), and listeners get
every tick (the Prometheus exporter, the admin feed). Collection is synchronous CPU work between
two awaits that never suspend, so its cost is measured exactly (``StatsCollector.cost``).

This module knows rooms and participants of the media plane only; it never imports signaling.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import math
import time
from collections import Counter, deque
from collections.abc import Callable, Iterable, Mapping
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # the hooks are imported where a call is read: see relayroom/lazy_stack.py
    from aioice.candidate import Candidate
    from aiortc import RTCDtlsTransport, RTCPeerConnection, RTCRtpReceiver

    from .forwarding import Leg, TrackHub
    from .participant import Participant
    from .room import Room

logger = logging.getLogger(__name__)

Json = dict[str, Any]
RoomsSource = Callable[[], Mapping[str, "Room"]]
ClientReportSource = Callable[[str, str], Mapping[str, Any] | None]


@dataclass(frozen=True)
class StatsSettings:
    """How often and how long stats are kept, and when a connection is unhealthy."""

    interval_s: float = 1.0
    """Sampling period of every connection."""
    history_s: float = 300.0
    """History kept per participant (ring buffer of ``history_s / interval_s`` samples)."""
    loss_threshold: float = 0.05
    """Packet loss fraction above which a connection is unhealthy (0.05 = 5%)."""
    rtt_threshold_ms: float = 300.0
    """Round-trip time above which a connection is unhealthy."""
    fps_threshold: float = 15.0
    """Video frame rate below which a track is unhealthy."""
    event_log_size: int = 1000
    """Threshold crossings and room events kept for the API and the dashboard."""
    smoothing: float = 0.3
    """Weight of the newest value in the moving average that thresholds are checked on."""
    warmup_samples: int = 5
    """Samples of a metric before its threshold is checked (a starting track ramps up its fps)."""
    client_report_max_age_s: float = 10.0
    """A browser summary older than this is not shown or checked."""

    def __post_init__(self) -> None:
        if not 0.05 <= self.interval_s <= 60:
            raise ValueError("interval_s must be between 0.05 and 60")
        if self.history_s < self.interval_s:
            raise ValueError("history_s must be at least interval_s")
        if not 0 < self.smoothing <= 1:
            raise ValueError("smoothing must be in (0, 1]")
        if self.event_log_size < 1:
            raise ValueError("event_log_size must be >= 1")

    @property
    def history_samples(self) -> int:
        return max(1, math.ceil(self.history_s / self.interval_s))

    def thresholds(self) -> Json:
        return {
            "loss": self.loss_threshold,
            "rtt_ms": self.rtt_threshold_ms,
            "fps": self.fps_threshold,
        }


# ------------------------------------------------------------------ browser summaries

_CLIENT_NUMBERS = (
    "ts",
    "rtt_ms",
    "publisher_rtt_ms",
    "subscriber_rtt_ms",
    "fps",
    "width",
    "height",
    "frames_decoded",
    "frames_dropped",
    "jitter_ms",
    "jitter_buffer_delay_ms",
    "loss",
    "packets_lost",
    "packets_received",
    "bitrate_in_bps",
    "bitrate_out_bps",
    "fps_sent",
    "width_sent",
    "height_sent",
)
_CLIENT_STRINGS = (
    "candidate_type",
    "publisher_candidate_type",
    "subscriber_candidate_type",
    "quality_limitation",
)
_TRACK_NUMBERS = (
    "fps",
    "width",
    "height",
    "frames_decoded",
    "frames_dropped",
    "jitter_ms",
    "jitter_buffer_delay_ms",
    "packets_lost",
    "packets_received",
    "bitrate_bps",
    "loss",
)
MAX_CLIENT_TRACKS = 16


CLIENT_NUMBER_LIMIT = 1e15
"""Largest magnitude kept of any number in a browser summary (a ms timestamp is ~1.7e12)."""
_CLIENT_RANGES: dict[str, tuple[float, float]] = {
    "loss": (0.0, 1.0),
    "fps": (0.0, 1000.0),
    "fps_sent": (0.0, 1000.0),
}


def _number(value: object, key: str = "") -> float | int | None:
    """A client number, range-checked before any arithmetic; None when absent or out of range.

    (A 401-digit integer once made ``float()`` raise inside the collector.)
    """
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    if isinstance(value, int) and not -CLIENT_NUMBER_LIMIT <= value <= CLIENT_NUMBER_LIMIT:
        return None  # compared as int: float(value) itself may overflow
    if isinstance(value, float) and not math.isfinite(value):
        return None
    low, high = _CLIENT_RANGES.get(key, (-CLIENT_NUMBER_LIMIT, CLIENT_NUMBER_LIMIT))
    if not low <= value <= high:
        return None
    return value


def _short(value: object, limit: int = 32) -> str | None:
    return value[:limit] if isinstance(value, str) else None


def sanitize_client_report(report: Mapping[str, Any]) -> Json:
    """Keep the known fields of a browser's summary, typed and bounded (it is untrusted)."""
    out: Json = {}
    for key in _CLIENT_NUMBERS:
        number = _number(report.get(key), key)
        if number is not None:
            out[key] = number
    for key in _CLIENT_STRINGS:
        text = _short(report.get(key))
        if text is not None:
            out[key] = text
    tracks = report.get("tracks")
    if isinstance(tracks, list):
        clean: list[Json] = []
        for item in tracks[:MAX_CLIENT_TRACKS]:
            if not isinstance(item, dict):
                continue
            track: Json = {}
            for key in ("track_id", "kind", "direction"):
                text = _short(item.get(key), 64)
                if text is not None:
                    track[key] = text
            for key in _TRACK_NUMBERS:
                number = _number(item.get(key), key)
                if number is not None:
                    track[key] = number
            clean.append(track)
        out["tracks"] = clean
    return out


# ------------------------------------------------------------------ aiortc readers
# The pieces getStats() lacks come from aiortc_hooks (with the other reads of aiortc privates).


def _dtls_transport(pc: RTCPeerConnection) -> RTCDtlsTransport | None:
    for transceiver in pc.getTransceivers():
        transport = transceiver.sender.transport or transceiver.receiver.transport
        if transport is not None:
            return transport
    sctp = pc.sctp
    return sctp.transport if sctp is not None else None


def _candidate_json(candidate: Candidate) -> Json:
    return {
        "type": candidate.type,
        "protocol": candidate.transport,
        "address": candidate.host,
        "port": candidate.port,
    }


def selected_pair(dtls: RTCDtlsTransport) -> Json | None:
    """The nominated ICE candidate pair of a DTLS transport's ICE connection (aioice)."""
    from .aiortc_hooks import nominated_candidates

    candidates = nominated_candidates(dtls)
    if candidates is None:
        return None
    local = _candidate_json(candidates[0])
    remote = _candidate_json(candidates[1])
    # A relayed pair is named after its relayed end; otherwise after the most indirect one.
    rank = {"host": 0, "prflx": 1, "srflx": 2, "relay": 3}
    kinds = [k for k in (local["type"], remote["type"]) if isinstance(k, str)]
    kind = max(kinds, key=lambda k: rank.get(k, 0)) if kinds else None
    return {"type": kind, "local": local, "remote": remote}


# ------------------------------------------------------------------ per-tick bookkeeping


@dataclass
class TickTotals:
    """What happened across all connections since the previous tick (for metrics)."""

    forwarded_packets: Counter[str] = field(default_factory=Counter)  # by kind
    forwarded_bytes: Counter[str] = field(default_factory=Counter)
    received_packets: Counter[str] = field(default_factory=Counter)
    received_bytes: Counter[str] = field(default_factory=Counter)
    dropped_packets: int = 0
    keyframes_forwarded: int = 0
    keyframe_requests_received: int = 0
    keyframe_requests_sent: int = 0
    nacks_received: int = 0
    data_relayed: int = 0
    data_dropped: int = 0
    loss: list[float] = field(default_factory=list)
    rtt_s: list[float] = field(default_factory=list)
    jitter_s: list[float] = field(default_factory=list)
    connection_states: Counter[str] = field(default_factory=Counter)
    candidate_types: Counter[str] = field(default_factory=Counter)
    health: Counter[str] = field(default_factory=Counter)


@dataclass
class Tick:
    """One collection round: every participant's new sample, and the events it raised."""

    t: float
    duration_s: float
    samples: list[Json]
    events: list[Json]
    totals: TickTotals


TickListener = Callable[[Tick], None]


@dataclass
class _Alert:
    value: float | None = None
    count: int = 0
    active: bool = False


class _ParticipantStats:
    """A participant's ring buffer, previous counters and threshold state."""

    def __init__(self, size: int) -> None:
        self.history: deque[tuple[float, str]] = deque(maxlen=size)
        self.latest: Json | None = None
        self.prev: dict[str, int] = {}
        self.last_mono: float | None = None
        self.alerts: dict[tuple[str, str], _Alert] = {}

    def delta(self, key: str, value: int) -> int:
        """Counter increase since the previous sample (a new or reset counter counts whole)."""
        before = self.prev.get(key)
        self.prev[key] = value
        if before is None or value < before:
            return value
        return value - before


def _rate(delta: int, dt: float) -> float:
    return round(delta / dt, 1) if dt > 0 else 0.0


def _ms(seconds: float | None) -> float | None:
    return None if seconds is None else round(seconds * 1000.0, 2)


EventListener = Callable[[Json], None]


class EventLog:
    """A bounded log of room events and threshold crossings, newest last.

    Listeners (`add_listener`) get every event synchronously as it is added, in order: the
    webhooks are fed here, so every event kind logged anywhere reaches them without more
    wiring. A listener must be quick (queue the event, never wait on I/O) and must not change
    the event; its exception is logged and never reaches the code that logged the event.
    """

    def __init__(self, size: int) -> None:
        self._events: deque[Json] = deque(maxlen=size)
        self._seq = 0
        self._last_t = 0.0
        self._listeners: list[EventListener] = []
        self.listener_failures = 0

    def add_listener(self, listener: EventListener) -> None:
        self._listeners.append(listener)

    def remove_listener(self, listener: EventListener) -> None:
        if listener in self._listeners:
            self._listeners.remove(listener)

    def add(self, kind: str, **fields_: Any) -> Json:
        self._seq += 1
        # Strictly increasing (ms): `since=<t of the last event seen>` must not skip an event
        # logged in the same millisecond (a join and its leave, say).
        t = self._last_t = max(round(time.time(), 3), round(self._last_t + 0.001, 3))
        event: Json = {"seq": self._seq, "t": t, "type": kind, **fields_}
        self._events.append(event)
        for listener in list(self._listeners):
            try:
                listener(event)
            except Exception:  # an observer's bug never breaks the room that logged the event
                self.listener_failures += 1
                logger.exception("event listener failed on a %s event", kind)
        return event

    def since(self, t: float | None = None, limit: int | None = None) -> list[Json]:
        events = [e for e in self._events if t is None or e["t"] > t]
        return events[-limit:] if limit else events


class StatsCollector:
    """Samples every connection of every room once per ``settings.interval_s``."""

    def __init__(
        self,
        rooms: RoomsSource,
        settings: StatsSettings | None = None,
        client_report: ClientReportSource | None = None,
    ) -> None:
        self.settings = settings or StatsSettings()
        self._rooms = rooms
        self._client_report = client_report
        self._participants: dict[tuple[str, str], _ParticipantStats] = {}
        self._listeners: list[TickListener] = []
        self._before: list[Callable[[], None]] = []
        self.events = EventLog(self.settings.event_log_size)
        self._task: asyncio.Task[None] | None = None
        # Bounded like the log itself: events wait here only until the next tick.
        self._pending_events: deque[Json] = deque(maxlen=self.settings.event_log_size)
        self._failed: set[tuple[str, str]] = set()
        self.participant_failures = 0
        """Samples that raised (one participant's bad state never stops a tick)."""
        # cost accounting
        self.ticks = 0
        self.busy_s = 0.0
        self.last_duration_s = 0.0
        self.max_duration_s = 0.0
        self.errors = 0

    # ---------------------------------------------------------------- lifecycle

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._run(), name="stats")

    async def close(self) -> None:
        """Stop sampling; idempotent."""
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        interval = self.settings.interval_s
        next_at = loop.time() + interval
        while True:
            await asyncio.sleep(max(0.0, next_at - loop.time()))
            next_at += interval
            if next_at < loop.time():  # we fell behind (a busy loop): skip, never burst
                next_at = loop.time() + interval
            try:
                await self.collect()
            except Exception:
                self.errors += 1
                if self.errors == 1 or self.errors % 100 == 0:
                    logger.exception("stats collection failed (%d so far)", self.errors)

    # ---------------------------------------------------------------- listeners and events

    def add_listener(self, listener: TickListener) -> None:
        self._listeners.append(listener)

    def add_pre_tick(self, hook: Callable[[], None]) -> None:
        """Run ``hook`` at the start of every tick (it may call :meth:`record_event`)."""
        self._before.append(hook)

    def remove_listener(self, listener: TickListener) -> None:
        if listener in self._listeners:
            self._listeners.remove(listener)

    def record_event(self, kind: str, **fields_: Any) -> Json:
        """Add a room event (join, leave, error...) to the log; listeners get it next tick."""
        event = self.events.add(kind, **fields_)
        self._pending_events.append(event)
        return event

    # ---------------------------------------------------------------- queries

    def latest(self, room: str, participant_id: str) -> Json | None:
        state = self._participants.get((room, participant_id))
        return state.latest if state else None

    def history(self, room: str, participant_id: str, since: float | None = None) -> list[str]:
        """JSON-encoded samples of a participant newer than ``since`` (unix time), oldest first."""
        state = self._participants.get((room, participant_id))
        if state is None:
            return []
        if since is None:
            return [text for _, text in state.history]
        return [text for t, text in state.history if t > since]

    def tracked(self, room: str, participant_id: str) -> bool:
        return (room, participant_id) in self._participants

    def cost(self) -> Json:
        """Collection cost so far: ticks, CPU-seconds spent, average and worst tick."""
        return {
            "ticks": self.ticks,
            "busy_s": round(self.busy_s, 6),
            "avg_tick_ms": round(1000 * self.busy_s / self.ticks, 3) if self.ticks else 0.0,
            "max_tick_ms": round(1000 * self.max_duration_s, 3),
            "last_tick_ms": round(1000 * self.last_duration_s, 3),
            "connections": self.connection_count(),
        }

    def connection_count(self) -> int:
        """PeerConnections sampled in the last tick."""
        return sum(
            sum(1 for c in (s.latest or {}).get("connections", {}).values() if c is not None)
            for s in self._participants.values()
        )

    # ---------------------------------------------------------------- collection

    async def collect(self) -> Tick:
        """Sample every participant once; notify listeners. Returns the tick."""
        started = time.perf_counter()
        for hook in list(self._before):
            try:
                hook()
            except Exception:
                logger.exception("stats pre-tick hook failed")
        now = time.time()
        mono = time.monotonic()
        totals = TickTotals()
        samples: list[Json] = []
        events: list[Json] = []
        seen: set[tuple[str, str]] = set()
        for room_name, room in list(self._rooms().items()):
            for pid, participant in room.participants.items():
                key = (room_name, pid)
                seen.add(key)
                state = self._participants.get(key)
                if state is None:
                    state = self._participants[key] = _ParticipantStats(
                        self.settings.history_samples
                    )
                try:
                    sample = await self._sample(room_name, participant, state, now, mono, totals)
                    events.extend(self._check_thresholds(room_name, pid, sample, state))
                    sample["health"] = self._health(sample, state)
                    sample["alerts"] = sorted(
                        f"{m}:{view}" for (m, view), a in state.alerts.items() if a.active
                    )
                    text = json.dumps(sample, separators=(",", ":"), allow_nan=False)
                except Exception:
                    self._sample_failed(key)
                    continue
                totals.health[sample["health"]] += 1
                state.latest = sample
                state.history.append((sample["t"], text))  # `since` compares what clients saw
                samples.append(sample)
        for key in [k for k in self._participants if k not in seen]:
            del self._participants[key]
        self._failed &= seen
        events = [*self._pending_events, *events]
        self._pending_events.clear()
        duration = time.perf_counter() - started
        self.ticks += 1
        self.busy_s += duration
        self.last_duration_s = duration
        self.max_duration_s = max(self.max_duration_s, duration)
        tick = Tick(now, duration, samples, events, totals)
        for listener in list(self._listeners):
            try:
                listener(tick)
            except Exception:
                logger.exception("stats listener failed")
        return tick

    def _sample_failed(self, key: tuple[str, str]) -> None:
        """Contain one participant's failure: counted every time, logged once per participant."""
        self.participant_failures += 1
        if key not in self._failed:
            self._failed.add(key)
            logger.exception(
                "room=%s participant=%s stats sample failed (skipped until it recovers)", *key
            )

    async def _sample(
        self,
        room: str,
        participant: Participant,
        state: _ParticipantStats,
        now: float,
        mono: float,
        totals: TickTotals,
    ) -> Json:
        dt = (mono - state.last_mono) if state.last_mono is not None else self.settings.interval_s
        state.last_mono = mono
        tracks_in = [
            self._inbound(hub, participant, state, dt, totals)
            for hub in participant.published_hubs()
        ]
        tracks_out: list[Json] = []
        for publisher_id, track_id in participant.subscriptions():
            leg = participant.leg(publisher_id, track_id)
            if leg is not None:
                tracks_out.append(await self._outbound(leg, state, dt, totals))
        connections: Json = {
            "publisher": self._connection("publisher", participant.publisher_pc, state, dt, totals),
            "subscriber": self._connection(
                "subscriber", participant.subscriber_pc, state, dt, totals
            ),
        }
        data = self._data(participant, state, totals)
        client = self._client(room, participant.id, now)
        summary = self._summary(tracks_in, tracks_out, connections)
        return {
            "t": round(now, 3),
            "room": room,
            "participant_id": participant.id,
            "summary": summary,
            "connections": connections,
            "tracks": {"in": tracks_in, "out": tracks_out},
            "data": data,
            "client": client,
        }

    def _inbound(
        self,
        hub: TrackHub,
        participant: Participant,
        state: _ParticipantStats,
        dt: float,
        totals: TickTotals,
    ) -> Json:
        info = hub.info
        key = "in/" + info.id
        d_packets = state.delta(key + "/p", hub.packets_in)
        d_bytes = state.delta(key + "/b", hub.octets_in)
        totals.received_packets[info.kind] += d_packets
        totals.received_bytes[info.kind] += d_bytes
        hub_stats = hub.stats()
        d_frames = state.delta(key + "/f", int(hub_stats.get("frames_dropped_undecoded") or 0))
        d_plis = state.delta(key + "/pli", hub.keyframe_requests_sent)
        totals.keyframe_requests_sent += d_plis
        out: Json = {
            "track_id": info.id,
            "kind": info.kind,
            "codec": info.codec,
            "muted": info.muted,
            "packets": hub.packets_in,
            "bytes": hub.octets_in,
            "packets_per_s": _rate(d_packets, dt),
            "bitrate_bps": _rate(8 * d_bytes, dt),
            "keyframes": hub.keyframes_in if hub.is_video else None,
            "fps": _rate(d_frames, dt) if hub.is_video else None,
            "pli_sent": hub.keyframe_requests_sent,
            "keyframe_requests": hub.keyframe_requests,
            "subscribers": len(hub.legs),
            "packets_lost": None,
            "loss": None,
            "jitter_ms": None,
            "layers": hub.layer_stats(),
        }
        if out["layers"]:  # simulcast: the frame counter above counts every encoding's frames
            out["fps"] = max(layer["fps"] for layer in out["layers"])
        receiver = self._receiver_for(participant, info.id)
        if receiver is not None:
            from .aiortc_hooks import media_stream_statistics

            streams = media_stream_statistics(receiver)
            if streams:
                expected = sum(s.packets_expected for s in streams if s.base_seq is not None)
                received = sum(s.packets_received for s in streams)
                lost = max(0, expected - received)
                d_expected = state.delta(key + "/exp", expected)
                d_lost = max(0, d_expected - state.delta(key + "/rcv", received))
                loss = d_lost / d_expected if d_expected > 0 else 0.0
                jitter_s = streams[-1].jitter / hub.clock_rate if hub.clock_rate else None
                out["packets_lost"] = lost
                out["loss"] = round(loss, 4)
                out["jitter_ms"] = _ms(jitter_s)
                if d_expected > 0:
                    totals.loss.append(loss)
                if jitter_s is not None:
                    totals.jitter_s.append(jitter_s)
        return out

    @staticmethod
    def _receiver_for(participant: Participant, track_id: str) -> RTCRtpReceiver | None:
        pc = participant.publisher_pc
        if pc is None:
            return None
        for transceiver in pc.getTransceivers():
            track = transceiver.receiver.track
            if (track is not None and track.id == track_id) or track_id == f"mid-{transceiver.mid}":
                return transceiver.receiver
        return None

    async def _outbound(
        self, leg: Leg, state: _ParticipantStats, dt: float, totals: TickTotals
    ) -> Json:
        hub = leg.hub
        info = hub.info
        key = f"out/{hub.publisher_id}/{info.id}"
        stats = leg.stats
        tap = leg.tap
        d_packets = state.delta(key + "/p", stats.packets)
        d_bytes = state.delta(key + "/b", stats.octets)
        dropped = stats.dropped_stale + stats.send_errors
        totals.forwarded_packets[info.kind] += d_packets
        totals.forwarded_bytes[info.kind] += d_bytes
        totals.dropped_packets += state.delta(key + "/drop", dropped)
        keyframe_requests = tap.keyframe_requests if tap is not None else stats.keyframe_requests
        nacks = tap.nacks if tap is not None else stats.nacks
        totals.keyframe_requests_received += state.delta(key + "/pli", keyframe_requests)
        totals.nacks_received += state.delta(key + "/nack", nacks)
        if hub.is_video:
            totals.keyframes_forwarded += state.delta(key + "/kf", stats.keyframes)
        out: Json = {
            "publisher_id": hub.publisher_id,
            "track_id": info.id,
            "kind": info.kind,
            "state": leg.state.value,
            "packets": stats.packets,
            "bytes": stats.octets,
            "packets_per_s": _rate(d_packets, dt),
            "bitrate_bps": _rate(8 * d_bytes, dt),
            "keyframes": stats.keyframes if hub.is_video else None,
            "dropped": dropped,
            "pli": keyframe_requests,
            "nacks": nacks,
            "packets_lost": None,
            "loss": None,
            "jitter_ms": None,
            "rtt_ms": None,
            "layer": hub.leg_layer(leg.subscriber_id).get("layer"),
        }
        sender = tap.sender if tap is not None else None
        if sender is not None:
            report = await sender.getStats()
            for entry in report.values():
                if entry.type != "remote-inbound-rtp":
                    continue
                loss = (entry.fractionLost or 0) / 256.0
                out["packets_lost"] = entry.packetsLost
                out["loss"] = round(loss, 4)
                jitter_s = entry.jitter / hub.clock_rate if hub.clock_rate else None
                out["jitter_ms"] = _ms(jitter_s)
                out["rtt_ms"] = _ms(entry.roundTripTime)
                totals.loss.append(loss)
                if entry.roundTripTime is not None:
                    totals.rtt_s.append(entry.roundTripTime)
                if jitter_s is not None:
                    totals.jitter_s.append(jitter_s)
        return out

    def _connection(
        self,
        name: str,
        pc: RTCPeerConnection | None,
        state: _ParticipantStats,
        dt: float,
        totals: TickTotals,
    ) -> Json | None:
        if pc is None:
            return None
        conn_state: str = pc.connectionState
        totals.connection_states[conn_state] += 1
        out: Json = {
            "state": conn_state,
            "ice_state": pc.iceConnectionState,
            "dtls_state": None,
            "candidate_pair": None,
            "bytes_in": None,
            "bytes_out": None,
            "bitrate_in_bps": None,
            "bitrate_out_bps": None,
        }
        dtls = _dtls_transport(pc)
        if dtls is None:
            return out
        out["dtls_state"] = dtls.state
        pair = selected_pair(dtls)
        out["candidate_pair"] = pair
        if pair is not None and pair["type"]:
            totals.candidate_types[pair["type"]] += 1
        from .aiortc_hooks import transport_stats

        for entry in transport_stats(dtls).values():
            if entry.type == "transport":
                rx, tx = int(entry.bytesReceived or 0), int(entry.bytesSent or 0)
                out["bytes_in"], out["bytes_out"] = rx, tx
                out["bitrate_in_bps"] = _rate(8 * state.delta(f"pc/{name}/rx", rx), dt)
                out["bitrate_out_bps"] = _rate(8 * state.delta(f"pc/{name}/tx", tx), dt)
                break
        return out

    @staticmethod
    def _data(participant: Participant, state: _ParticipantStats, totals: TickTotals) -> Json:
        """DataChannel counters (zeros for a participant without DataChannels)."""
        values = participant.data_stats()
        relayed = int(values.get("messages_relayed") or 0)
        dropped = int(values.get("messages_dropped") or 0)
        totals.data_relayed += state.delta("data/relayed", relayed)
        totals.data_dropped += state.delta("data/dropped", dropped)
        return {"messages_relayed": relayed, "messages_dropped": dropped}

    def _client(self, room: str, participant_id: str, now: float) -> Json | None:
        if self._client_report is None:
            return None
        report = self._client_report(room, participant_id)
        if not report:
            return None
        clean = sanitize_client_report(report)
        received_at = _number(report.get("received_at"))
        if received_at is not None:
            age = now - float(received_at)
            if age > self.settings.client_report_max_age_s:
                return None
            clean["age_s"] = round(age, 2)
        return clean

    @staticmethod
    def _summary(tracks_in: list[Json], tracks_out: list[Json], connections: Json) -> Json:
        def worst(values: Iterable[Any], pick: Callable[..., Any] = max) -> Any:
            present = [v for v in values if v is not None]
            return pick(present) if present else None

        bitrate_in = bitrate_out = 0.0
        for conn in connections.values():
            if conn is not None:
                bitrate_in += conn.get("bitrate_in_bps") or 0.0
                bitrate_out += conn.get("bitrate_out_bps") or 0.0
        videos_in = [t for t in tracks_in if t["kind"] == "video" and not t["muted"]]
        return {
            "bitrate_in_bps": round(bitrate_in, 1),
            "bitrate_out_bps": round(bitrate_out, 1),
            "packets_in_per_s": round(sum(t["packets_per_s"] for t in tracks_in), 1),
            "packets_out_per_s": round(sum(t["packets_per_s"] for t in tracks_out), 1),
            "loss": worst(t["loss"] for t in [*tracks_in, *tracks_out]),
            "rtt_ms": worst(t["rtt_ms"] for t in tracks_out),
            "jitter_ms": worst(t["jitter_ms"] for t in [*tracks_in, *tracks_out]),
            "fps": worst((t["fps"] for t in videos_in), min),
        }

    # ---------------------------------------------------------------- thresholds

    def _metric_values(self, sample: Json) -> dict[tuple[str, str], float | None]:
        summary = sample["summary"]
        client = sample.get("client") or {}
        client_fps = client.get("fps")
        return {
            ("loss", "server"): summary["loss"],
            ("rtt_ms", "server"): summary["rtt_ms"],
            ("fps", "server"): summary["fps"],
            ("loss", "browser"): client.get("loss"),
            ("rtt_ms", "browser"): client.get("rtt_ms"),
            ("fps", "browser"): client_fps if client_fps is not None else None,
        }

    def check_thresholds(self, room: str, participant_id: str, sample: Json) -> list[Json]:
        """Check one sample's loss, RTT and fps (both views) against the thresholds.

        Returns the crossing events (also in the event log). The collector calls this for every
        sample; it is public so that the threshold rules can be tested on their own.
        """
        state = self._participants.setdefault(
            (room, participant_id), _ParticipantStats(self.settings.history_samples)
        )
        return self._check_thresholds(room, participant_id, sample, state)

    def _check_thresholds(
        self, room: str, participant_id: str, sample: Json, state: _ParticipantStats
    ) -> list[Json]:
        settings = self.settings
        limits = settings.thresholds()
        events: list[Json] = []
        for (metric, view), value in self._metric_values(sample).items():
            key = (metric, view)
            alert = state.alerts.get(key)
            if value is None:
                if alert is not None:
                    del state.alerts[key]
                continue
            if alert is None:
                alert = state.alerts[key] = _Alert()
            previous = alert.value
            # Warm-up samples are not averaged in: a track's ramp-up (2 fps in its first second)
            # would otherwise drag the average under the limit just as checking starts.
            alert.value = (
                float(value)
                if previous is None or alert.count + 1 < settings.warmup_samples
                else settings.smoothing * float(value) + (1 - settings.smoothing) * previous
            )
            alert.count += 1
            if alert.count < settings.warmup_samples:
                continue
            limit = float(limits[metric])
            low_is_bad = metric == "fps"
            if low_is_bad:
                crossed, cleared = alert.value < limit, alert.value >= limit * 1.1
            else:
                crossed, cleared = alert.value > limit, alert.value <= limit * 0.8
            if not alert.active and crossed:
                alert.active = True
                events.append(self._crossing(room, participant_id, metric, view, alert, limit))
            elif alert.active and cleared:
                alert.active = False
                events.append(
                    self.events.add(
                        "threshold_cleared",
                        room=room,
                        participant_id=participant_id,
                        metric=metric,
                        view=view,
                        value=round(alert.value, 4),
                        threshold=limit,
                    )
                )
                logger.info(
                    "room=%s participant=%s %s (%s view) back to normal: %.4g",
                    room,
                    participant_id,
                    metric,
                    view,
                    alert.value,
                    extra={"room": room, "participant": participant_id},
                )
        return events

    def _crossing(
        self, room: str, participant_id: str, metric: str, view: str, alert: _Alert, limit: float
    ) -> Json:
        value = alert.value or 0.0
        logger.warning(
            "room=%s participant=%s %s (%s view) crossed its threshold: %.4g (limit %.4g)",
            room,
            participant_id,
            metric,
            view,
            value,
            limit,
            extra={"room": room, "participant": participant_id},
        )
        return self.events.add(
            "threshold_crossed",
            room=room,
            participant_id=participant_id,
            metric=metric,
            view=view,
            value=round(value, 4),
            threshold=limit,
        )

    @staticmethod
    def _health(sample: Json, state: _ParticipantStats) -> str:
        if any(a.active for a in state.alerts.values()):
            return "bad"
        states = [c["state"] for c in sample["connections"].values() if c is not None]
        if any(s in ("failed", "disconnected") for s in states):
            return "bad"
        # A PeerConnection with nothing negotiated stays "new": idle, not unhealthy.
        if "connecting" in states:
            return "warn"
        return "ok"


def settings_json(settings: StatsSettings) -> Json:
    return {**asdict(settings), "history_samples": settings.history_samples}
