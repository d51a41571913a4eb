"""DataChannel relay: routing, limits, per-receiver buffers and persistent topics of one room.

Each client opens two channels on its publisher PeerConnection, ``reliable`` (ordered) and
``lossy`` (unordered, no retransmits). When the first of them arrives the relay adds the same two
channels to the client's subscriber PeerConnection (and renegotiates it); every message a client
sends is relayed to the other participants' channel of the same label with ``"from"`` added.

- Messages are JSON text: an object ``{"topic", "payload", "to"?}``, or an array of such objects
  (a batch; each element counts as one message). The relay sends arrays too when several
  messages wait for the same receiver: batching is what makes aiortc's SCTP fast enough.
- Limits per sender: message size, a token bucket for messages/s and one for bytes/s, the
  ``can_publish_data`` grant. A refused message is dropped and counted; the sender gets a
  :class:`~media.events.DataNotice` (at most one per code per second; ``forbidden`` once).
- Per receiver and channel an :class:`Outlet` keeps a bounded backlog. A slow ``lossy`` receiver
  loses its oldest messages; a slow ``reliable`` receiver is *resynced*: its backlog is dropped,
  and once its channel drains it gets a ``sync`` control message and the room's persistent state.
- Persistent topics (``whiteboard``): reliable, untargeted messages are kept in a per-room
  :class:`TopicLog` (bounded) and written behind to a :class:`~media.persistence.TopicStore`.
  A receiver's reliable channel starts with ``sync`` and the log, before any live message. A
  message whose payload is ``{"op": "clear"}`` empties its topic's history (and is relayed).

Nothing here knows about WebSockets: notices go up as events, the gateway frames them.
"""

from __future__ import annotations

import asyncio
import enum
import json
import logging
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

from . import strictjson
from .events import DataNotice
from .persistence import StoredMessage, TopicStore
from .ratelimit import TokenBucket
from .tasks import TaskOwner
from .topics import WhiteboardLimits, schema_for

if TYPE_CHECKING:
    from aiortc import RTCDataChannel

    from .participant import Participant

logger = logging.getLogger(__name__)

Label = Literal["reliable", "lossy"]
LABELS: tuple[Label, ...] = ("reliable", "lossy")
CONTROL_TOPIC = "relay"
"""Reserved: the relay's own control messages (``sync``); clients may not send on it."""
MAX_TOPIC_LENGTH = 64
MAX_TARGETS = 64
BATCH_MAX_BYTES = 1150
"""A relayed batch grows up to one SCTP chunk (aiortc sends one chunk per packet)."""
HIGH_WATER = 64 * 1024
"""An outlet hands messages to aiortc while its channel's bufferedAmount is below this."""
LOW_WATER = 16 * 1024
NOTICE_INTERVAL_S = 1.0
COALESCE_S = 0.001
"""An outlet that sent less than this long ago holds new messages until then and sends them
as one batch: at most ~1000 packets/s per receiver channel whatever the message rate (each packet
costs aiortc a DTLS record, a datagram and a SACK back), for at most 1 ms of added latency."""


@dataclass(frozen=True)
class DataSettings:
    """The DataChannel relay's settings (see docs/datachannels.md)."""

    max_message_bytes: int = 16 * 1024
    msgs_per_s: float = 100.0
    msgs_burst: int = 200
    bytes_per_s: float = 256 * 1024
    bytes_burst: int = 512 * 1024
    max_batch: int = 64
    """Most messages in one client batch (a JSON array)."""
    lossy_buffer_bytes: int = 64 * 1024
    """Backlog per receiver on ``lossy`` before its oldest messages are dropped."""
    reliable_buffer_bytes: int = 1024 * 1024
    """Backlog per receiver on ``reliable`` before it is resynced."""
    persistent_topics: tuple[str, ...] = ("whiteboard",)
    room_max_bytes: int = 2 * 1024 * 1024
    room_max_messages: int = 20_000
    max_depth: int = 32
    """Deepest nesting of objects and arrays in one message (a batch counts one level)."""
    whiteboard: WhiteboardLimits = field(default_factory=WhiteboardLimits)


class Refused(Exception):
    """A client message the relay does not accept; ``code`` is a protocol error code."""

    def __init__(self, code: str, reason: str) -> None:
        super().__init__(reason)
        self.code = code
        self.reason = reason


@dataclass(frozen=True)
class Incoming:
    """One parsed client message, ready to relay."""

    topic: str
    to: frozenset[str] | None
    clear: bool
    text: str
    """The relayed JSON text: the client's object with ``"from"`` added."""


Schemas = Callable[[str], Callable[[Any], "str | None"] | None]


def _no_schema(topic: str) -> None:
    return None


def _check_item(
    obj: object, max_depth: int, schemas: Schemas
) -> tuple[str, frozenset[str] | None, bool]:
    if not isinstance(obj, dict):
        raise Refused("invalid_message", "a message must be a JSON object")
    reason = strictjson.problem(obj, max_depth)
    if reason is not None:
        raise Refused("invalid_message", f"message rejected: {reason}")
    topic = obj.get("topic")
    if (
        not isinstance(topic, str)
        or not 0 < len(topic) <= MAX_TOPIC_LENGTH
        or not topic.isprintable()
    ):
        raise Refused("invalid_message", "'topic' must be a printable string of 1-64 characters")
    if topic == CONTROL_TOPIC:
        raise Refused("invalid_message", f"topic {CONTROL_TOPIC!r} is reserved")
    if "payload" not in obj:
        raise Refused("invalid_message", "'payload' is missing")
    to = obj.get("to")
    targets: frozenset[str] | None = None
    if to is not None:
        if (
            not isinstance(to, list)
            or len(to) > MAX_TARGETS
            or not all(isinstance(t, str) for t in to)
        ):
            raise Refused("invalid_message", "'to' must be a list of participant ids")
        targets = frozenset(to)
    payload = obj["payload"]
    check = schemas(topic)
    if check is not None:
        reason = check(payload)
        if reason is not None:
            raise Refused("invalid_message", f"{topic[:MAX_TOPIC_LENGTH]}: {reason}")
    clear = isinstance(payload, dict) and payload.get("op") == "clear"
    return topic, targets, clear


def parse_message(
    raw: str,
    sender: str,
    max_batch: int,
    *,
    max_depth: int = 32,
    schemas: Schemas = _no_schema,
) -> tuple[list[Incoming], int]:
    """Parse one DataChannel text message: (valid messages, count of malformed ones).

    Strict JSON only (no NaN/Infinity, no out-of-range number, no lone surrogate, bounded
    nesting) and a topic's schema: one bad item of a batch is dropped alone. Raises
    :class:`Refused` when nothing in it is usable.
    """
    try:
        value = strictjson.parse(raw)
    except strictjson.JsonRejected:
        raise Refused("invalid_message", "a DataChannel message must be JSON") from None
    sender_json = json.dumps(sender)
    if isinstance(value, dict):
        topic, to, clear = _check_item(value, max_depth, schemas)
        # Splice "from" in as the last key (JSON parsers keep the last of duplicate keys, so a
        # client cannot spoof it), without serializing the payload again.
        text = raw.rstrip()[:-1].rstrip()
        text = text + ("," if text != "{" else "") + '"from":' + sender_json + "}"
        return [Incoming(topic, to, clear, text)], 0
    if not isinstance(value, list) or not value:
        raise Refused("invalid_message", "expected a JSON object or a non-empty array of them")
    if len(value) > max_batch:
        raise Refused("too_large", f"a batch holds at most {max_batch} messages")
    out: list[Incoming] = []
    bad = 0
    for obj in value:
        try:
            topic, to, clear = _check_item(obj, max_depth - 1, schemas)
        except Refused:
            bad += 1
            continue
        obj["from"] = sender
        out.append(Incoming(topic, to, clear, strictjson.dumps(obj)))
    if not out:
        raise Refused("invalid_message", "no valid message in the batch")
    return out, bad


class TopicLog:
    """The persistent topics of one room, in order, bounded by bytes and messages."""

    def __init__(self, max_bytes: int, max_messages: int) -> None:
        self.max_bytes = max_bytes
        self.max_messages = max_messages
        self._entries: list[StoredMessage] = []
        self._bytes = 0
        self._next_seq = 0

    def __len__(self) -> int:
        return len(self._entries)

    @property
    def bytes(self) -> int:
        return self._bytes

    def load(self, items: list[StoredMessage]) -> None:
        self._entries = list(items)
        self._bytes = sum(len(m.text) for m in items)
        self._next_seq = max((m.seq for m in items), default=-1) + 1

    def append(self, topic: str, text: str) -> int | None:
        """Append; returns the sequence number, or None when the room's cap is reached."""
        if len(self._entries) >= self.max_messages or self._bytes + len(text) > self.max_bytes:
            return None
        seq = self._next_seq
        self._next_seq += 1
        self._entries.append(StoredMessage(seq, topic, text))
        self._bytes += len(text)
        return seq

    def clear(self, topic: str) -> None:
        self._entries = [m for m in self._entries if m.topic != topic]
        self._bytes = sum(len(m.text) for m in self._entries)

    def texts(self) -> list[str]:
        return [m.text for m in self._entries]


class OutletState(enum.Enum):
    LIVE = "live"
    RESYNC = "resync"
    """Backlog overflowed on ``reliable``: live messages are dropped until the channel drains."""
    CLOSED = "closed"


def sync_message(reason: str, count: int) -> str:
    """The control message that starts a replay of ``count`` persistent messages."""
    payload = {"op": "sync", "reason": reason, "count": count}
    return json.dumps({"topic": CONTROL_TOPIC, "payload": payload}, separators=(",", ":"))


class Outlet:
    """One receiver's channel: a bounded backlog, batching, and the slow-receiver policy."""

    def __init__(
        self,
        channel: RTCDataChannel,
        *,
        lossy: bool,
        limit_bytes: int,
        snapshot: Callable[[], list[str]] | None,
    ) -> None:
        self.channel = channel
        self.lossy = lossy
        self.limit_bytes = limit_bytes
        self._snapshot = snapshot
        self._queue: deque[tuple[str, bool]] = deque()  # (text, counts toward the limit)
        self._live_bytes = 0
        self._scheduled = False
        self._last_send = -1.0
        self._state = OutletState.LIVE
        self.delivered = 0
        self.dropped = 0
        self.resyncs = 0
        channel.bufferedAmountLowThreshold = LOW_WATER
        channel.on("open", self._schedule)
        channel.on("bufferedamountlow", self._schedule)
        channel.on("close", self.close)
        if snapshot is not None:
            self._sync("join")

    @property
    def state(self) -> OutletState:
        return self._state

    @property
    def backlog_bytes(self) -> int:
        return self._live_bytes

    def _set_state(self, state: OutletState) -> None:
        if state is not self._state:
            logger.debug("outlet %s: %s -> %s", self.channel.label, self._state.value, state.value)
            self._state = state

    def deliver(self, text: str) -> None:
        """Queue a live message for this receiver (drops and counts when it is too slow)."""
        if self._state is not OutletState.LIVE:
            self.dropped += 1
            return
        channel = self.channel
        if (
            not self._queue
            and channel.readyState == "open"
            and channel.bufferedAmount == 0
            and asyncio.get_running_loop().time() - self._last_send >= COALESCE_S
        ):
            self._send(text)  # fast path: nothing waits, send now
            return
        size = len(text)
        if self._live_bytes + size > self.limit_bytes:
            if self.lossy:
                while self._queue and self._live_bytes + size > self.limit_bytes:
                    old, counted = self._queue.popleft()
                    if counted:
                        self._live_bytes -= len(old)
                    self.dropped += 1
            else:
                self._overflow()
                self.dropped += 1
                return
        self._queue.append((text, True))
        self._live_bytes += size
        self._schedule()

    def _overflow(self) -> None:
        dropped = len(self._queue)
        self._queue.clear()
        self._live_bytes = 0
        self.dropped += dropped
        self.resyncs += 1
        self._set_state(OutletState.RESYNC)
        logger.info(
            "data outlet %s: receiver too slow, %d messages dropped; resync when it drains",
            self.channel.label,
            dropped,
        )

    def _sync(self, reason: str) -> None:
        texts = self._snapshot() if self._snapshot is not None else []
        self._queue.append((sync_message(reason, len(texts)), False))
        self._queue.extend((t, False) for t in texts)
        self._set_state(OutletState.LIVE)
        self._schedule()

    def _schedule(self) -> None:
        if not self._scheduled and self._state is not OutletState.CLOSED:
            self._scheduled = True
            loop = asyncio.get_running_loop()
            loop.call_at(max(loop.time(), self._last_send + COALESCE_S), self._flush)

    def _flush(self) -> None:
        self._scheduled = False
        channel = self.channel
        if channel.readyState != "open":
            return
        if self._state is OutletState.RESYNC:
            if channel.bufferedAmount > LOW_WATER:
                return  # "bufferedamountlow" reschedules
            self._sync("resync")
        queue = self._queue
        while queue and channel.bufferedAmount < HIGH_WATER:
            text, counted = queue.popleft()
            if counted:
                self._live_bytes -= len(text)
            if not queue or len(text) >= BATCH_MAX_BYTES:
                self._send(text)
                continue
            batch = [text]
            size = len(text) + 2
            while queue and size + len(queue[0][0]) + 1 <= BATCH_MAX_BYTES:
                text, counted = queue.popleft()
                if counted:
                    self._live_bytes -= len(text)
                batch.append(text)
                size += len(text) + 1
            self._send(batch[0] if len(batch) == 1 else "[" + ",".join(batch) + "]", len(batch))

    def _send(self, text: str, count: int = 1) -> None:
        self._last_send = asyncio.get_running_loop().time()
        try:
            self.channel.send(text)
            self.delivered += count
        except Exception as exc:
            self.dropped += count
            logger.debug("data outlet %s: send failed: %r", self.channel.label, exc)

    def close(self) -> None:
        self.dropped += len(self._queue)
        self._queue.clear()
        self._live_bytes = 0
        self._set_state(OutletState.CLOSED)


@dataclass
class DataPeer:
    """The relay's view of one participant's DataChannels and counters."""

    id: str
    can_publish_data: bool
    msgs: TokenBucket
    bytes: TokenBucket
    inbound: dict[str, RTCDataChannel] = field(default_factory=dict)
    outlets: dict[str, Outlet] = field(default_factory=dict)
    received: int = 0
    relayed: int = 0
    refused: int = 0
    notified: dict[str, float] = field(default_factory=dict)

    def stats(self) -> dict[str, int]:
        delivered = sum(o.delivered for o in self.outlets.values())
        slow = sum(o.dropped for o in self.outlets.values())
        return {
            "messages_received": self.received,
            "messages_relayed": self.relayed,
            "messages_delivered": delivered,
            "messages_refused": self.refused,
            "messages_dropped_slow": slow,
            "messages_dropped": self.refused + slow,
            "resyncs": sum(o.resyncs for o in self.outlets.values()),
        }


class RoomData:
    """The DataChannel relay of one room: owned by the media ``Room``."""

    def __init__(
        self,
        room: str,
        settings: DataSettings,
        store: TopicStore | None,
        emit: Callable[[DataNotice], None],
    ) -> None:
        self.room = room
        self.settings = settings
        self._store = store
        self._emit = emit
        self._peers: dict[str, DataPeer] = {}
        self._log = TopicLog(settings.room_max_bytes, settings.room_max_messages)
        self._persistent = frozenset(settings.persistent_topics)
        limits = settings.whiteboard
        self._schemas: Schemas = lambda topic: schema_for(topic, limits)
        self._loaded: asyncio.Future[None] | None = None
        self._tasks = TaskOwner()
        self._closed = False
        self.failures = 0
        """Messages whose handling raised (contained; counted in relayroom_contained_failures)."""
        self.on_relayed: Callable[[str, str, frozenset[str] | None], None] | None = None
        """Told (label, text, targets) of each message relayed from a sender here: a room that
        spans nodes forwards it to their receivers (signaling/cluster_shard.py)."""

    @property
    def log(self) -> TopicLog:
        return self._log

    def peer(self, participant_id: str) -> DataPeer | None:
        return self._peers.get(participant_id)

    async def ready(self) -> None:
        """Load the room's persisted history once (every caller waits for the first)."""
        if self._loaded is None:
            self._loaded = asyncio.get_running_loop().create_future()
            try:
                if self._store is not None and self._persistent:
                    self._log.load(self._strict(await self._store.load(self.room)))
                    if len(self._log):
                        logger.info(
                            "room %s: %d persisted messages loaded",
                            self.room,
                            len(self._log),
                            extra={"room": self.room},
                        )
            except Exception as exc:
                logger.warning(
                    "room %s: cannot load persisted topics: %r",
                    self.room,
                    exc,
                    extra={"room": self.room},
                )
            self._loaded.set_result(None)
        await asyncio.shield(self._loaded)

    def _strict(self, items: list[StoredMessage]) -> list[StoredMessage]:
        """Stored history written before the input rules may hold items a browser cannot
        parse (NaN): they are left out, so one never spoils a replayed batch."""
        kept = []
        for item in items:
            try:
                strictjson.loads(item.text, self.settings.max_depth + 1)
            except strictjson.JsonRejected:
                continue
            kept.append(item)
        if len(kept) < len(items):
            logger.warning(
                "room %s: %d stored messages are not strict JSON: skipped",
                self.room,
                len(items) - len(kept),
            )
        return kept

    # ---------------------------------------------------------------- participants

    def attach(self, participant: Participant, *, can_publish_data: bool) -> DataPeer:
        s = self.settings
        peer = DataPeer(
            participant.id,
            can_publish_data,
            TokenBucket(s.msgs_per_s, s.msgs_burst),
            TokenBucket(s.bytes_per_s, s.bytes_burst),
        )
        self._peers[participant.id] = peer

        def on_datachannel(channel: RTCDataChannel) -> None:
            self._inbound(participant, peer, channel)

        participant.publisher_pc.on("datachannel", on_datachannel)
        return peer

    def detach(self, participant_id: str) -> None:
        peer = self._peers.pop(participant_id, None)
        if peer is not None:
            for outlet in peer.outlets.values():
                outlet.close()

    def _inbound(self, participant: Participant, peer: DataPeer, channel: RTCDataChannel) -> None:
        label = channel.label
        if label not in LABELS or label in peer.inbound:
            logger.info(
                "room %s: %s opened unknown channel %r",
                self.room,
                peer.id,
                label,
                extra={"room": self.room, "participant": peer.id},
            )
            return
        peer.inbound[label] = channel
        from .aiortc_hooks import tolerate_invalid_text  # loaded with the call (lazy_stack)

        tolerate_invalid_text(channel.transport)  # before its first message is decoded

        def on_message(message: str | bytes) -> None:
            try:
                self._on_message(peer, label, message)
            except Exception:  # contained: one sender's message never stops the relay
                self._message_failed(peer)

        channel.on("message", on_message)
        if not peer.outlets:
            self._open_outlets(participant, peer)

    def _open_outlets(self, participant: Participant, peer: DataPeer) -> None:
        """The client uses data: give its subscriber PC the two channels and renegotiate."""
        pc = participant.subscriber_pc
        s = self.settings
        reliable = pc.createDataChannel("reliable", ordered=True)
        lossy = pc.createDataChannel("lossy", ordered=False, maxRetransmits=0)
        peer.outlets["reliable"] = Outlet(
            reliable, lossy=False, limit_bytes=s.reliable_buffer_bytes, snapshot=self._log.texts
        )
        peer.outlets["lossy"] = Outlet(
            lossy, lossy=True, limit_bytes=s.lossy_buffer_bytes, snapshot=None
        )
        self._tasks.spawn(participant.renegotiate(), "data-renegotiate")

    # ---------------------------------------------------------------- relay

    def _notice(self, peer: DataPeer, code: str, message: str) -> None:
        now = time.monotonic()
        last = peer.notified.get(code)
        if last is not None and (code == "forbidden" or now - last < NOTICE_INTERVAL_S):
            return
        peer.notified[code] = now
        self._emit(DataNotice(peer.id, code, message))

    def _message_failed(self, peer: DataPeer) -> None:
        peer.refused += 1
        self.failures += 1
        if self.failures == 1 or self.failures % 1000 == 0:
            logger.exception(
                "room %s: a message of %s could not be handled (%d so far)",
                self.room,
                peer.id,
                self.failures,
            )

    def _on_message(self, peer: DataPeer, label: str, raw: str | bytes) -> None:
        peer.received += 1
        s = self.settings
        if not peer.can_publish_data:
            peer.refused += 1
            self._notice(peer, "forbidden", "token does not grant can_publish_data")
            return
        if isinstance(raw, bytes):
            peer.refused += 1
            self._notice(peer, "invalid_message", "DataChannel messages must be JSON text")
            return
        size = len(raw)
        if size > s.max_message_bytes // 4:
            size = len(raw.encode("utf-8", "surrogatepass"))
        if size > s.max_message_bytes:
            peer.refused += 1
            self._notice(
                peer, "too_large", f"DataChannel message over {s.max_message_bytes} bytes dropped"
            )
            return
        try:
            items, bad = parse_message(
                raw, peer.id, s.max_batch, max_depth=s.max_depth, schemas=self._schemas
            )
        except Refused as exc:
            peer.refused += 1
            self._notice(peer, exc.code, exc.reason)
            return
        if bad:
            peer.refused += bad
            self._notice(peer, "invalid_message", f"{bad} malformed messages in a batch dropped")
        if not peer.msgs.take(len(items)) or not peer.bytes.take(size):
            peer.refused += len(items)
            self._notice(peer, "rate_limited", "DataChannel rate limit: messages dropped")
            return
        for item in items:
            persistent = label == "reliable" and item.to is None and item.topic in self._persistent
            if persistent and not self._persist(peer, item):
                continue
            self._route(peer, label, item)

    def _persist(self, peer: DataPeer, item: Incoming) -> bool:
        store = self._store
        if item.clear:
            self._log.clear(item.topic)
            if store is not None:
                store.clear(self.room, item.topic)
            return True
        seq = self._log.append(item.topic, item.text)
        if seq is None:
            peer.refused += 1
            self._notice(
                peer, "too_large", f"the room's persisted {item.topic!r} history is full: clear it"
            )
            return False
        if store is not None:
            store.append(self.room, seq, item.topic, item.text)
        return True

    def _route(self, sender: DataPeer, label: str, item: Incoming) -> None:
        sender.relayed += 1
        if self.on_relayed is not None:
            self.on_relayed(label, item.text, item.to)
        self._deliver(sender, label, item)

    def deliver_remote(self, label: str, text: str, to: frozenset[str] | None) -> None:
        """A message relayed by another node of the room: to this node's receivers."""
        if label in LABELS and not self._closed:
            self._deliver(None, label, Incoming("", to, False, text))

    def _deliver(self, sender: DataPeer | None, label: str, item: Incoming) -> None:
        if item.to is not None:
            for pid in item.to:
                target = self._peers.get(pid)
                if target is not None and target is not sender:
                    outlet = target.outlets.get(label)
                    if outlet is not None:
                        outlet.deliver(item.text)
            return
        for target in self._peers.values():
            if target is not sender:
                outlet = target.outlets.get(label)
                if outlet is not None:
                    outlet.deliver(item.text)

    # ---------------------------------------------------------------- closing

    async def close(self) -> None:
        """The room is closing on this node: stop relaying and start the expiry clock."""
        if self._closed:
            return
        self._closed = True
        for pid in list(self._peers):
            self.detach(pid)
        await self._tasks.close()
        if self._store is not None and self._loaded is not None:
            self._store.room_empty(self.room)
