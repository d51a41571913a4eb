"""Track pipes: a published track forwarded to another worker or node, over authenticated UDP.

- The origin (the process whose PeerConnection receives the track) treats a pipe like one
  subscriber: a :class:`PipeSender` owns a normal leg of the track's hub (keyframe gating,
  rewriting, a simulcast hub's layer choice), whose packets go into pipe datagrams instead of
  SRTP.
- The far end rebuilds the track as a normal :class:`~media.forwarding.TrackHub` whose tap is a
  :class:`PipeReceiver`: its own subscribers' legs take packets from it exactly as from a local
  publisher's track. The hub's keyframe requests and bandwidth estimates (already throttled and
  merged by the hub, as for a publisher) go back up the pipe; the origin hands them to its leg
  and hub, so one pipe counts as one subscriber there.
- Both ends send a keepalive every ``keepalive_s``; an end that hears nothing from the other
  for ``timeout_s`` closes its half (the far end's subscribers see the track end). Either end
  closing says so (``END``), so the other closes at once instead of after the timeout.

One :class:`PipeEndpoint` (one UDP socket) per process carries every pipe, told apart by a
random 32-bit pipe id; :mod:`media.pipe_wire` authenticates each datagram. Nothing here knows
rooms or the cluster: :class:`media.room.Room` asks for pipes, signaling tells it which.
"""

from __future__ import annotations

import abc
import asyncio
import enum
import logging
import random
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, cast

from . import pipe_wire as wire
from .events import TrackInfo
from .rtp_history import RtpHistory
from .settings import MediaSettings
from .tasks import TaskOwner

if TYPE_CHECKING:  # these import aiortc, loaded with the first room (relayroom/lazy_stack.py)
    from aiortc import RTCRtpCodecParameters

    from .aiortc_hooks import ReceiverTap, SenderTap
    from .forwarding import Leg, TrackHub

logger = logging.getLogger(__name__)

Address = tuple[str, int]
_LEVEL_ID = 1  # the one header extension a pipe carries: audio level (active speakers)


@dataclass(frozen=True)
class PipeSettings:
    """Where a process listens for pipes, and how fast a silent pipe is declared dead."""

    host: str = "127.0.0.1"
    """Address the pipe socket binds to (and, unless ``advertised_host``, that others use)."""
    advertised_host: str = ""
    """The address other nodes send to (empty: ``host``)."""
    port_min: int = 0
    """Lowest UDP port for the pipe socket (0 and 0: any port)."""
    port_max: int = 0
    keepalive_s: float = 0.5
    """Each end of a pipe sends a keepalive this often."""
    timeout_s: float = 2.5
    """A pipe end that hears nothing from the other end this long closes."""


@dataclass(frozen=True)
class PipedTrack:
    """What a far end needs to rebuild a track: crosses the cluster bus as JSON."""

    publisher_id: str
    info: TrackInfo
    mime_type: str
    clock_rate: int
    payload_type: int
    channels: int | None = None
    parameters: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def of(cls, hub: TrackHub) -> PipedTrack:
        codec = hub.codec
        return cls(
            hub.publisher_id,
            hub.info,
            codec.mimeType,
            codec.clockRate,
            int(codec.payloadType or 0),
            codec.channels,
            dict(codec.parameters),
        )

    def codec(self) -> RTCRtpCodecParameters:
        from aiortc import RTCRtpCodecParameters

        return RTCRtpCodecParameters(
            mimeType=self.mime_type,
            clockRate=self.clock_rate,
            channels=self.channels,
            payloadType=self.payload_type,
            parameters=dict(self.parameters),
        )

    def to_wire(self) -> dict[str, Any]:
        info = self.info
        return {
            "publisher": self.publisher_id,
            "track": {"id": info.id, "kind": info.kind, "muted": info.muted, "codec": info.codec},
            "mime_type": self.mime_type,
            "clock_rate": self.clock_rate,
            "payload_type": self.payload_type,
            "channels": self.channels,
            "parameters": self.parameters,
        }

    @classmethod
    def from_wire(cls, data: dict[str, Any]) -> PipedTrack:
        """Raises ``ValueError`` (or ``KeyError``/``TypeError``) on anything malformed."""
        t = data["track"]
        kind = t["kind"]
        if kind not in ("audio", "video"):
            raise ValueError(f"track kind {kind!r}")
        channels = data.get("channels")
        return cls(
            str(data["publisher"]),
            TrackInfo(str(t["id"]), kind, bool(t["muted"]), str(t["codec"])),
            str(data["mime_type"]),
            int(data["clock_rate"]),
            int(data["payload_type"]),
            None if channels is None else int(channels),
            {str(k): v for k, v in dict(data.get("parameters") or {}).items()},
        )


class PipeState(enum.Enum):
    OPEN = "open"
    CLOSED = "closed"


class _PipeEnd(abc.ABC):
    """What both ends share: the id, the counter, liveness and the keepalive task.
    :class:`PipeSender` and :class:`PipeReceiver` say what a datagram, a keepalive and
    closing mean at their end."""

    upstream: bool  # whether this end receives upstream kinds (it is the origin)

    def __init__(self, endpoint: PipeEndpoint, pipe_id: int, peer: Address) -> None:
        self.pipe_id = pipe_id
        self.peer = peer
        self.state = PipeState.OPEN
        self.close_reason = ""
        self.window = wire.ReplayWindow()
        self.datagrams_in = 0
        self.datagrams_out = 0
        self._endpoint = endpoint
        self._counter = 0
        self._heard = time.monotonic()
        self._tasks = TaskOwner()
        self._tasks.spawn(self._keepalive(), f"pipe-{pipe_id:08x}-keepalive")

    def _send(self, kind: wire.Kind, body: bytes = b"") -> None:
        self._counter += 1
        self.datagrams_out += 1
        self._endpoint.send(
            wire.seal(self._endpoint.key, kind, self.pipe_id, self._counter, body), self.peer
        )

    def heard(self, kind: int, body: bytes) -> None:
        self.datagrams_in += 1
        self._heard = time.monotonic()
        self.on_datagram(kind, body)

    @abc.abstractmethod
    def on_datagram(self, kind: int, body: bytes) -> None: ...

    @abc.abstractmethod
    def keepalive(self) -> None: ...

    async def _keepalive(self) -> None:
        settings = self._endpoint.settings
        while self.state is PipeState.OPEN:
            self.keepalive()
            await asyncio.sleep(settings.keepalive_s)
            if time.monotonic() - self._heard > settings.timeout_s:
                logger.info(
                    "pipe %08x: nothing from %s:%d for %.1f s",
                    self.pipe_id,
                    *self.peer,
                    settings.timeout_s,
                )
                self._endpoint.closing(self, "silent")
                return

    def _set_closed(self, reason: str) -> bool:
        if self.state is PipeState.CLOSED:
            return False
        logger.info("pipe %08x: open -> closed (%s)", self.pipe_id, reason)
        self.state = PipeState.CLOSED
        self.close_reason = reason
        self._endpoint.forget(self.pipe_id, self)
        return True

    @abc.abstractmethod
    async def close(self, reason: str = "closed") -> None: ...


class _PipeSenderTap:
    """What a leg needs of a subscriber's sender, with the pipe as the transport."""

    def __init__(
        self, send_rtp: Callable[[bytes], None], codec: RTCRtpCodecParameters, audio: bool
    ) -> None:
        from .forwarding import URI_AUDIO_LEVEL  # a hub exists: the WebRTC stack is loaded

        self.send_rtp: Callable[[bytes], None] | None = send_rtp
        self.emit_rtp: Callable[..., bool] | None = None  # pipes send in Python
        self.ssrc = random.randrange(1, 1 << 32)
        self.payload_type = codec.payloadType
        self.history = RtpHistory()  # the leg's NACK history: nobody NACKs over a pipe
        self.extension_ids = {URI_AUDIO_LEVEL: _LEVEL_ID} if audio else {}
        self.mid: str | None = None
        self.keyframe_requests = 0
        self.nacks = 0

    def detach(self) -> None:
        self.send_rtp = None


class PipeSender(_PipeEnd):
    """The origin's end of a pipe: a leg of the track's hub whose packets go to the far end."""

    upstream = True

    def __init__(
        self,
        endpoint: PipeEndpoint,
        hub: TrackHub,
        pipe_id: int,
        far: Address,
        on_closed: Callable[[PipeSender], None],
    ) -> None:
        super().__init__(endpoint, pipe_id, far)
        self.hub = hub
        self._on_closed = on_closed
        self.leg: Leg = hub.new_leg(
            f"pipe:{pipe_id:08x}", random.randrange(0x8000), random.randrange(1 << 32)
        )
        self._tap = _PipeSenderTap(self._send_rtp, hub.codec, not hub.is_video)
        # The leg reads only these attributes of its tap (checked by tests/workers/test_pipes).
        self.leg.bind(cast("SenderTap", self._tap))
        hub.add_leg(self.leg)
        self.keyframe_requests = 0
        self.estimates = 0

    async def start(self) -> None:
        """Start forwarding (at the next keyframe, or the hub's cached one)."""
        await self.leg.on_sender_ready()

    def _send_rtp(self, data: bytes) -> None:
        self._send(wire.Kind.RTP, data)

    def keepalive(self) -> None:
        self._send(wire.Kind.KEEPALIVE)
        values = self.leg.sender_report_values()
        if values is not None:
            ntp, rtp_ts, _, _ = values
            self._send(
                wire.Kind.SENDER_REPORT, wire.sender_report_body(self._tap.ssrc, ntp, rtp_ts)
            )

    def on_datagram(self, kind: int, body: bytes) -> None:
        if kind == wire.Kind.KEYFRAME_REQUEST:
            self.keyframe_requests += 1
            self.leg.keyframe_wanted()
        elif kind == wire.Kind.ESTIMATE:
            bitrate = wire.parse_estimate(body)
            if bitrate is not None:
                self.estimates += 1
                self.hub.subscriber_remb(self.leg.subscriber_id, bitrate)
        elif kind == wire.Kind.END_UP:
            self._endpoint.closing(self, "far end closed")

    async def close(self, reason: str = "closed") -> None:
        if not self._set_closed(reason):
            return
        if reason != "far end closed":
            self._send(wire.Kind.END)
        self.hub.remove_leg(self.leg.subscriber_id)
        self.leg.close()
        try:
            self._on_closed(self)
        except Exception:
            logger.exception("pipe %08x: close listener failed", self.pipe_id)
        await self._tasks.close()


class PipeReceiver(_PipeEnd):
    """The far end of a pipe: the tap of a hub that rebuilds the piped track here.

    It offers a hub what :class:`~media.aiortc_hooks.ReceiverTap` does: ``sink`` for packets,
    ``on_sender_report``, ``send_pli``/``send_remb`` upstream.
    """

    upstream = False

    def __init__(
        self,
        endpoint: PipeEndpoint,
        track: PipedTrack,
        pipe_id: int,
        origin: Address,
        settings: MediaSettings,
        on_closed: Callable[[PipeReceiver], None],
    ) -> None:
        super().__init__(endpoint, pipe_id, origin)
        self.track = track
        self.sink: Callable[[Any], None] | None = None
        self.on_estimate: Callable[[int], None] = _ignore
        self.on_sender_report: Callable[[int, int, int], None] = _ignore_sr
        self.frames_dropped = 0
        self.errors = 0
        self._on_closed = on_closed
        # A far end exists once a room does: the WebRTC stack is loaded by then.
        from aiortc.rtcrtpparameters import RTCRtpHeaderExtensionParameters, RTCRtpParameters
        from aiortc.rtp import HeaderExtensionsMap

        from .aiortc_hooks import RtpReader
        from .forwarding import URI_AUDIO_LEVEL, TrackHub

        extensions = HeaderExtensionsMap()
        if track.info.kind == "audio":
            extensions.configure(
                RTCRtpParameters(
                    headerExtensions=[RTCRtpHeaderExtensionParameters(_LEVEL_ID, URI_AUDIO_LEVEL)]
                )
            )
        self._reader = RtpReader(extensions)
        self.hub = TrackHub(track.publisher_id, track.info, track.codec(), None, settings)
        # The hub reads only the tap's interface described above (tests/workers/test_pipes).
        self.hub.attach(cast("ReceiverTap", self))

    # ---- the tap, as the hub sees it

    def set_codec(self, media_pt: int, rtx_pt: int | None) -> None:
        return None

    def backlogged(self) -> bool:
        # Late packets (the relay is behind) are shed by the origin's hub already.
        return False

    async def send_pli(self, ssrc: int | None = None) -> bool:
        if self.state is not PipeState.OPEN:
            return False
        self._send(wire.Kind.KEYFRAME_REQUEST)
        return True

    async def send_remb(self, bitrate: int) -> bool:
        if self.state is not PipeState.OPEN:
            return False
        self._send(wire.Kind.ESTIMATE, wire.estimate_body(bitrate))
        return True

    def detach(self, sink: Any = None) -> None:
        if sink is None or self.sink == sink:
            self.sink = None

    # ---- the pipe

    def keepalive(self) -> None:
        self._send(wire.Kind.KEEPALIVE_UP)

    def on_datagram(self, kind: int, body: bytes) -> None:
        if kind == wire.Kind.RTP:
            sink = self.sink
            if sink is None:
                return
            try:
                sink(self._reader.parse(body))
            except Exception:
                self.errors += 1  # an authenticated but broken packet: a bug at the origin
                if self.errors == 1:
                    logger.exception("pipe %08x: bad packet", self.pipe_id)
        elif kind == wire.Kind.SENDER_REPORT:
            sr = wire.parse_sender_report(body)
            if sr is not None:
                self.on_sender_report(*sr)
        elif kind == wire.Kind.END:
            self._endpoint.closing(self, "origin ended")

    async def close(self, reason: str = "closed") -> None:
        if not self._set_closed(reason):
            return
        if reason != "origin ended":
            self._send(wire.Kind.END_UP)
        try:
            self._on_closed(self)
        except Exception:
            logger.exception("pipe %08x: close listener failed", self.pipe_id)
        await self.hub.close()
        await self._tasks.close()


def _ignore(value: int) -> None:
    return None


def _ignore_sr(ssrc: int, ntp: int, rtp_ts: int) -> None:
    return None


@dataclass
class PipeCounters:
    datagrams: int = 0
    dropped: dict[str, int] = field(default_factory=lambda: {r.value: 0 for r in wire.Reject})


class PipeEndpoint(asyncio.DatagramProtocol):
    """The process's pipe socket: sends for every pipe end, and hands each authenticated,
    fresh datagram to its end. Everything else is dropped and counted (``counters``)."""

    def __init__(self, key: bytes, settings: PipeSettings) -> None:
        self.key = key
        self.settings = settings
        self.counters = PipeCounters()
        self._ends: dict[int, _PipeEnd] = {}
        self._closing = TaskOwner()  # an end closing itself, outside its own tasks
        self._transport: asyncio.DatagramTransport | None = None
        self._address: Address | None = None

    # ---- lifecycle

    async def start(self) -> Address:
        """Bind the socket (a free port of the range); returns the address others send to."""
        loop = asyncio.get_running_loop()
        s = self.settings
        ports = (
            [0] if s.port_min == 0 and s.port_max == 0 else list(range(s.port_min, s.port_max + 1))
        )
        random.shuffle(ports)
        last: OSError | None = None
        for port in ports:
            try:
                transport, _ = await loop.create_datagram_endpoint(
                    lambda: self, local_addr=(s.host, port), family=socket.AF_INET
                )
            except OSError as exc:
                last = exc
                continue
            self._transport = transport
            bound = transport.get_extra_info("sockname")
            self._address = (s.advertised_host or s.host, int(bound[1]))
            logger.info("track pipes on udp %s:%d", s.host, bound[1])
            return self._address
        raise OSError(f"no free UDP port for track pipes in {s.port_min}-{s.port_max}: {last}")

    @property
    def address(self) -> Address:
        if self._address is None:
            raise RuntimeError("pipe endpoint not started")
        return self._address

    async def close(self) -> None:
        for end in list(self._ends.values()):
            await end.close("endpoint closed")
        await self._closing.close()
        if self._transport is not None:
            self._transport.close()
            self._transport = None

    # ---- pipes

    def new_pipe_id(self) -> int:
        while True:
            pipe_id = random.randrange(1, 1 << 32)
            if pipe_id not in self._ends:
                return pipe_id

    def send_track(
        self, hub: TrackHub, pipe_id: int, far: Address, on_closed: Callable[[PipeSender], None]
    ) -> PipeSender:
        """Pipe ``hub``'s track to ``far`` (call ``start()`` on the result)."""
        if pipe_id in self._ends:
            raise ValueError(f"pipe {pipe_id:08x} exists")
        sender = PipeSender(self, hub, pipe_id, far, on_closed)
        self._ends[pipe_id] = sender
        logger.info(
            "pipe %08x: sending %s/%s to %s:%d", pipe_id, hub.publisher_id, hub.info.id, *far
        )
        return sender

    def receive_track(
        self,
        track: PipedTrack,
        pipe_id: int,
        origin: Address,
        settings: MediaSettings,
        on_closed: Callable[[PipeReceiver], None],
    ) -> PipeReceiver:
        """Receive a track piped from ``origin``; its hub is ``.hub``."""
        if pipe_id in self._ends:
            raise ValueError(f"pipe {pipe_id:08x} exists")
        receiver = PipeReceiver(self, track, pipe_id, origin, settings, on_closed)
        self._ends[pipe_id] = receiver
        logger.info(
            "pipe %08x: receiving %s/%s from %s:%d",
            pipe_id,
            track.publisher_id,
            track.info.id,
            *origin,
        )
        return receiver

    def closing(self, end: _PipeEnd, reason: str) -> None:
        """Close ``end`` in a task of the endpoint (its own tasks are cancelled by closing)."""
        self._closing.spawn(end.close(reason), f"pipe-{end.pipe_id:08x}-close")

    def forget(self, pipe_id: int, end: _PipeEnd) -> None:
        if self._ends.get(pipe_id) is end:
            del self._ends[pipe_id]

    def pipes(self) -> list[_PipeEnd]:
        return list(self._ends.values())

    def send(self, data: bytes, peer: Address) -> None:
        transport = self._transport
        if transport is not None:
            transport.sendto(data, peer)

    # ---- datagrams

    def datagram_received(self, data: bytes, addr: Any) -> None:
        counters = self.counters
        header = wire.peek(data)
        if header is None:
            counters.dropped["malformed"] += 1
            return
        end = self._ends.get(header.pipe_id)
        if end is None:
            counters.dropped["unknown_pipe"] += 1
            return
        if bool(header.kind & wire.UPSTREAM) is not end.upstream:
            counters.dropped["wrong_direction"] += 1
            return
        if not wire.authentic(self.key, data):
            counters.dropped["unauthenticated"] += 1
            return
        if not end.window.accept(header.counter):
            counters.dropped["replayed"] += 1
            return
        counters.datagrams += 1
        end.heard(header.kind, wire.body(data))

    def error_received(self, exc: Exception) -> None:
        # ICMP port unreachable from a far end that went away: its timeout handles it.
        logger.debug("pipe socket: %s", exc)
