"""RTP-level forwarding: one hub per published track, one leg per subscriber of that track.

The hub receives every media packet of its track from the publisher's receiver (RTX already
unwrapped) and hands it to each leg. A leg rewrites the packet for its subscriber's sender (SSRC,
sequence number and timestamp offsets, payload type, header extensions), records it in the
sender's RTP history (so aiortc answers NACKs, with RTX when negotiated) and sends it through
the subscriber's SRTP transport. Nothing is decoded.

Offsets are fixed when a leg syncs on a keyframe (any packet for audio); after a gap in the source
(mute, a new publisher SSRC) the leg syncs again on the next keyframe and continues its own
sequence and timestamp where they stopped, so subscribers see one continuous stream.
"""

from __future__ import annotations

import asyncio
import enum
import logging
import time
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from typing import Any

from aiortc import RTCRtpCodecParameters
from aiortc.rtp import RTP_HISTORY_SIZE, HeaderExtensions, RtpPacket

from .aiortc_hooks import ReceiverTap, SenderTap
from .events import TrackInfo
from .keyframes import detector_for
from .layers import LayerRequest
from .rtp_build import build_rtp
from .rtp_history import RtpHistory
from .settings import MediaSettings
from .staleness import StalenessGate
from .tasks import TaskOwner

logger = logging.getLogger(__name__)

URI_MID = "urn:ietf:params:rtp-hdrext:sdes:mid"
URI_ABS_SEND_TIME = "http://www.webrtc.org/experiments/rtp-hdrext/abs-send-time"
URI_AUDIO_LEVEL = "urn:ietf:params:rtp-hdrext:ssrc-audio-level"

_NTP_EPOCH_OFFSET = 2208988800  # seconds from 1900 to 1970
_PADS = (b"", b"\x00\x00\x00", b"\x00\x00", b"\x00")


PayloadEdit = Callable[[bytes], bytes | None]
"""A leg's payload rewrite (:attr:`Leg.edit`); None drops the packet."""


def ntp_now() -> int:
    """The current time as a 64-bit NTP timestamp."""
    return int((time.time() + _NTP_EPOCH_OFFSET) * 4294967296.0)


class KeyframeRequester:
    """Sends at most one keyframe request upstream per interval; later requests are coalesced.

    A request inside the interval is not lost: one request goes out when the interval ends.
    """

    def __init__(
        self, interval_s: float, send: Callable[[], Coroutine[Any, Any, bool]], tasks: TaskOwner
    ) -> None:
        self._interval = interval_s
        self._send = send
        self._tasks = tasks
        self._last = -1e9
        self._pending: asyncio.TimerHandle | None = None
        self.requested = 0
        self.sent = 0

    def request(self) -> None:
        self.requested += 1
        if self._pending is not None:
            return
        loop = asyncio.get_running_loop()
        wait = self._last + self._interval - loop.time()
        if wait <= 0:
            self._fire()
        else:
            self._pending = loop.call_later(wait, self._fire)

    def _fire(self) -> None:
        self._pending = None
        self._last = asyncio.get_running_loop().time()
        self.sent += 1
        self._tasks.spawn(self._send(), "keyframe-request")

    def close(self) -> None:
        if self._pending is not None:
            self._pending.cancel()
            self._pending = None


class BandwidthAggregator:
    """Upstream REMB = min(relay's own estimate of the publisher link, subscribers' estimates).

    Each subscriber's estimate (its REMB divided by the streams it covers) counts for
    ``remb_subscriber_ttl_s``. The result never drops below ``remb_min_bps``. It is sent at most
    every ``remb_interval_s``, or at once when it falls by 10% or more.
    """

    def __init__(
        self,
        settings: MediaSettings,
        send: Callable[[int], Coroutine[Any, Any, bool]],
        tasks: TaskOwner,
    ) -> None:
        self._settings = settings
        self._send = send
        self._tasks = tasks
        self._estimates: dict[str, tuple[int, float]] = {}
        self._last_sent_at = -1e9
        self.last_sent: int | None = None
        self.sent = 0

    def update(self, key: str, bitrate: int) -> None:
        now = time.monotonic()
        self._estimates[key] = (bitrate, now)
        target = self.target(now)
        if target is None:
            return
        due = now - self._last_sent_at >= self._settings.remb_interval_s
        falling = self.last_sent is not None and target <= 0.9 * self.last_sent
        if due or falling:
            self._last_sent_at = now
            self.last_sent = target
            self.sent += 1
            self._tasks.spawn(self._send(target), "remb")

    def remove(self, key: str) -> None:
        self._estimates.pop(key, None)

    def target(self, now: float | None = None) -> int | None:
        now = time.monotonic() if now is None else now
        ttl = self._settings.remb_subscriber_ttl_s
        fresh = [b for b, t in self._estimates.values() if now - t <= ttl]
        if not fresh:
            return None
        return max(min(fresh), self._settings.remb_min_bps)


class LegState(enum.Enum):
    NEGOTIATING = "negotiating"
    WAITING_KEYFRAME = "waiting_keyframe"
    FORWARDING = "forwarding"
    PAUSED = "paused"  # the subscriber asked for nothing (a hidden tile)
    CLOSED = "closed"


@dataclass
class LegStats:
    packets: int = 0
    octets: int = 0
    dropped_stale: int = 0
    send_errors: int = 0
    syncs: int = 0
    keyframe_requests: int = 0
    nacks: int = 0
    keyframes: int = 0
    frames: int = 0  # video frames sent whole (their last packet, marker bit set, went out)
    first_packet_at: float | None = None


class Leg:
    """One subscriber's copy of one published track."""

    def __init__(self, subscriber_id: str, hub: TrackHub, initial_seq: int, initial_ts: int):
        self.subscriber_id = subscriber_id
        self.hub = hub
        self.state = LegState.NEGOTIATING
        self.stats = LegStats()
        self.created_at = time.monotonic()
        self.edit: PayloadEdit | None = None
        """A subclass's payload edit (simulcast: temporal layers dropped), set only on legs
        that need one: :meth:`forward` applies it."""
        self.payload_shift: int | None = None
        """VP8 PictureID/TL0PICIDX offsets the packet builder applies (simulcast: a leg that
        switched layer; see ``media/vp8.py``'s ``shift_descriptor``)."""
        self.tap: SenderTap | None = None
        self._clock_rate = hub.clock_rate
        self._counts_frames = hub.is_video
        self._initial_seq = initial_seq
        self._initial_ts = initial_ts
        self._paused = False
        # rewriting state
        self._source_ssrc = -1
        self._seq_off = 0
        self._ts_off = 0
        self._ext_start = 0
        self._ext_max = 0
        self._last_seq: int | None = None
        self._last_ts = 0
        self._last_time = 0.0
        # fixed per negotiation
        self._ssrc = 0
        self._pt = 0
        self._history = RtpHistory()
        self._send: Callable[[bytes], None] | None = None
        self._emit: Callable[..., bool] | None = None  # the compiled last step, when built
        self._mid_elem = b""
        self._abs_byte: bytes | None = None
        self._level_id = 0
        self._has_ext = False
        self._ext_fixed: tuple[bytes, bytes] | None = None  # (start, padding) if no level
        self._ext_obj = HeaderExtensions()

    def bind(self, tap: SenderTap) -> None:
        self.tap = tap

    def _set_state(self, state: LegState) -> None:
        if state is not self.state:
            logger.debug(
                "leg %s <- %s/%s: %s -> %s",
                self.subscriber_id,
                self.hub.publisher_id,
                self.hub.info.id,
                self.state.value,
                state.value,
            )
            self.state = state

    async def on_sender_ready(self) -> None:
        """The subscriber's sender is negotiated and connected: take its parameters and start."""
        tap = self.tap
        if tap is None or tap.send_rtp is None or self.state is LegState.CLOSED:
            return
        self._ssrc = tap.ssrc
        self._pt = tap.payload_type or 0
        self._history = tap.history
        self._send = tap.send_rtp
        self._emit = tap.emit_rtp
        ids = tap.extension_ids
        mid_id = ids.get(URI_MID)
        mid = (tap.mid or "").encode()
        if mid_id and 0 < len(mid) <= 16:
            self._mid_elem = bytes(((mid_id << 4) | (len(mid) - 1),)) + mid
        abs_id = ids.get(URI_ABS_SEND_TIME)
        self._abs_byte = bytes(((abs_id << 4) | 2,)) if abs_id else None
        self._level_id = ids.get(URI_AUDIO_LEVEL) or 0
        self._has_ext = bool(self._mid_elem or self._abs_byte or self._level_id)
        self._ext_fixed = None
        if self._has_ext and not self._level_id:
            # Same elements in every packet: only abs-send-time's 3 bytes change.
            size = len(self._mid_elem) + (4 if self._abs_byte is not None else 0)
            pad = _PADS[size & 3]
            words = ((size + len(pad)) >> 2).to_bytes(2, "big")
            self._ext_fixed = (b"\xbe\xde" + words + self._mid_elem + (self._abs_byte or b""), pad)
        self._ext_obj = HeaderExtensions()
        self._ext_obj.mid = tap.mid
        self._history.extensions = self._ext_obj  # what an RTX repair carries
        if self._paused:
            self._set_state(LegState.PAUSED)
            return
        self._set_state(LegState.WAITING_KEYFRAME)
        await self.hub.leg_ready(self)

    def set_paused(self, paused: bool) -> bool:
        """Stop or resume sending; resuming starts at a keyframe. Returns whether it changed."""
        if paused == self._paused or self.state is LegState.CLOSED:
            return False
        self._paused = paused
        if paused:
            if self.state is not LegState.NEGOTIATING:
                self._set_state(LegState.PAUSED)
        elif self.state is LegState.PAUSED:
            self._set_state(LegState.WAITING_KEYFRAME)
        return True

    @property
    def uses_abs_send_time(self) -> bool:
        return self._abs_byte is not None

    def keyframe_wanted(self) -> None:
        """The subscriber asked for a keyframe (PLI/FIR): ask the publisher (throttled)."""
        self.hub.request_keyframe()

    def resync(self) -> None:
        """Start again at the next keyframe, continuing our own sequence and timestamps."""
        if self.state is LegState.FORWARDING:
            self._set_state(LegState.WAITING_KEYFRAME)

    def _sync(self, pkt: RtpPacket, now: float) -> None:
        """Fix the offsets on ``pkt`` (a keyframe; a subclass may change :attr:`edit` here,
        for this very packet on)."""
        if self._last_seq is None:
            out_seq = self._initial_seq
            out_ts = self._initial_ts
        else:
            out_seq = (self._last_seq + 1) & 0xFFFF
            gap = max(1, int((now - self._last_time) * self._clock_rate))
            out_ts = (self._last_ts + gap) & 0xFFFFFFFF
        self._seq_off = (out_seq - pkt.sequence_number) & 0xFFFF
        self._ts_off = (out_ts - pkt.timestamp) & 0xFFFFFFFF
        self._source_ssrc = pkt.ssrc
        self._ext_start = self._ext_max = pkt.sequence_number + 0x10000
        self._set_state(LegState.FORWARDING)
        self.stats.syncs += 1

    def forward(self, pkt: RtpPacket, keyframe: bool, abs3: bytes, now: float) -> None:
        """Rewrite one packet for this leg and send it (the hot path)."""
        if self.state is not LegState.FORWARDING:
            if self.state is LegState.WAITING_KEYFRAME and keyframe:
                self._sync(pkt, now)
            else:
                return
        elif pkt.ssrc != self._source_ssrc:
            # The publisher restarted its stream: wait for its next keyframe.
            self._set_state(LegState.WAITING_KEYFRAME)
            self.hub.request_keyframe()
            if not keyframe:
                return
            self._sync(pkt, now)

        seq_in = pkt.sequence_number
        ext_max = self._ext_max
        ext = ext_max + (((seq_in - ext_max + 0x8000) & 0xFFFF) - 0x8000)
        if ext < self._ext_start:
            self.stats.dropped_stale += 1
            return
        if ext > ext_max:
            self._ext_max = ext
        payload = pkt.payload
        edit = self.edit
        if edit is not None:
            edited = edit(payload)
            if edited is None:  # not for this leg: its sequence numbers close over the gap
                if ext > ext_max:  # the newest (older ones would now collide: stale)
                    self._seq_off = (self._seq_off - 1) & 0xFFFF
                    self._ext_start = ext + 1
                return
            payload = edited
        seq = (seq_in + self._seq_off) & 0xFFFF
        ts = (pkt.timestamp + self._ts_off) & 0xFFFFFFFF
        csrc = pkt.csrc
        b0 = 0x80 | len(csrc)
        padding = pkt.padding_size
        if padding:
            b0 |= 0x20
        head = middle = tail = b""  # the header extension block, in three parts
        fixed = self._ext_fixed
        if fixed is not None:
            b0 |= 0x10
            head, tail = fixed
            if self._abs_byte is not None:
                middle = abs3
        elif self._has_ext:
            b0 |= 0x10
            body = self._mid_elem
            if self._abs_byte is not None:
                body += self._abs_byte + abs3
            if self._level_id:
                level = pkt.extensions.audio_level
                if level is not None:
                    body += bytes(
                        ((self._level_id << 4), (0x80 if level[0] else 0) | (level[1] & 0x7F))
                    )
            pad = _PADS[len(body) & 3]
            words = (len(body) + len(pad)) >> 2
            head = b"\xbe\xde" + words.to_bytes(2, "big") + body + pad
        b1 = (pkt.marker << 7) | self._pt
        emit = self._emit
        try:
            if emit is not None:  # compiled: build, keep in the history, protect and send
                emit(
                    self._history,
                    seq % RTP_HISTORY_SIZE,
                    b0,
                    b1,
                    seq,
                    ts,
                    self._ssrc,
                    csrc,
                    head,
                    middle,
                    tail,
                    payload,
                    padding,
                    self.payload_shift,
                )
            else:
                data = build_rtp(
                    b0,
                    b1,
                    seq,
                    ts,
                    self._ssrc,
                    csrc,
                    head,
                    middle,
                    tail,
                    payload,
                    padding,
                    self.payload_shift,
                )
                self._history[seq % RTP_HISTORY_SIZE] = data
                send = self._send
                if send is None:
                    return
                send(data)
        except Exception:  # ConnectionError once the transport closed; never stop the others
            self.stats.send_errors += 1
            return
        stats = self.stats
        if stats.first_packet_at is None:
            stats.first_packet_at = now
        stats.packets += 1
        stats.octets += len(payload)
        if keyframe:
            stats.keyframes += 1
        if pkt.marker and self._counts_frames:
            stats.frames += 1
        self._last_seq = seq
        self._last_ts = ts
        self._last_time = now

    def sender_report_values(self) -> tuple[int, int, int, int] | None:
        """(NTP, RTP timestamp, packets, octets) for this leg's next sender report.

        The RTP timestamp is the last one sent; its NTP time comes from the publisher's own
        sender report when we have one (keeps lip sync between a publisher's tracks), else from
        the time we sent it.
        """
        if self._last_seq is None:
            return None
        source_ts = (self._last_ts - self._ts_off) & 0xFFFFFFFF
        ntp = self.hub.ntp_for(source_ts)
        if ntp is None:
            ntp = ntp_now() - int((time.monotonic() - self._last_time) * 4294967296.0)
        return ntp, self._last_ts, self.stats.packets, self.stats.octets

    def close(self) -> None:
        self._set_state(LegState.CLOSED)
        self._send = None
        self._emit = None
        if self.tap is not None:
            self.stats.keyframe_requests = self.tap.keyframe_requests
            self.stats.nacks = self.tap.nacks
            self.tap.detach()


class TrackHub:
    """One published track: receives its packets and fans them out to the legs."""

    def __init__(
        self,
        publisher_id: str,
        info: TrackInfo,
        codec: RTCRtpCodecParameters,
        rtx_payload_type: int | None,
        settings: MediaSettings,
    ) -> None:
        self.publisher_id = publisher_id
        self.info = info
        self.codec = codec
        self.rtx_payload_type = rtx_payload_type
        self.clock_rate = codec.clockRate
        self.is_video = info.kind == "video"
        self._settings = settings
        self._detect = detector_for(codec.mimeType.split("/", 1)[-1])
        self._legs: dict[str, Leg] = {}
        self._leg_list: tuple[Leg, ...] = ()
        self._tap: ReceiverTap | None = None
        self._tasks = TaskOwner()
        self._keyframes = KeyframeRequester(
            settings.keyframe_request_interval_s, self._send_pli, self._tasks
        )
        self._bandwidth = BandwidthAggregator(settings, self._send_remb, self._tasks)
        max_delay_ms = settings.max_delay_video_ms if self.is_video else settings.max_delay_audio_ms
        self._staleness = StalenessGate(self.clock_rate, max_delay_ms / 1000)
        self._shedding = False
        self.packets_stale = 0  # late packets dropped while the relay was behind
        self._gop: list[RtpPacket] | None = None
        self._gop_seqs: set[int] = set()
        self._gop_time = 0.0
        self._newest: tuple[int, int] | None = None  # (SSRC, sequence number) of newest video
        self._sr: tuple[int, int, int] | None = None  # (ssrc, ntp, rtp)
        self._muted = False
        self._closed = False
        self.packets_in = 0
        self.octets_in = 0
        self.keyframes_in = 0
        self.frames_in = 0  # video frames whose last packet (marker bit) arrived
        self.on_audio_level: Callable[[int], None] | None = None
        """Audio only: gets each packet's RFC 6464 level (0-127), for active speaker detection."""
        # A recording's tap (media/recording.py): None unless this track is being recorded.
        self.recorder: Callable[[RtpPacket], None] | None = None

    # ---- wiring

    def attach(self, tap: ReceiverTap) -> None:
        """Take the packets, estimates and sender reports of a tapped receiver."""
        self._tap = tap
        tap.set_codec(int(self.codec.payloadType or 0), self.rtx_payload_type)
        tap.on_estimate = self._upstream_estimate
        tap.on_sender_report = self._sender_report
        tap.sink = self.on_packet

    @property
    def legs(self) -> tuple[Leg, ...]:
        return self._leg_list

    def new_leg(self, subscriber_id: str, initial_seq: int, initial_ts: int) -> Leg:
        """A leg for one subscriber of this track (add it with :meth:`add_leg`)."""
        return Leg(subscriber_id, self, initial_seq, initial_ts)

    def set_request(self, subscriber_id: str, request: LayerRequest) -> bool:
        """What one subscriber asks for (``subscription``); without simulcast only ``paused``
        matters. False if that subscriber does not receive this track."""
        leg = self._legs.get(subscriber_id)
        if leg is None:
            return False
        if leg.set_paused(request.paused) and not request.paused:
            self.request_keyframe()
        return True

    def layer_stats(self) -> list[dict[str, Any]] | None:
        """Per simulcast layer: rid, size, bitrate, fps, active, subscribers (None: one
        stream)."""
        return None

    def leg_layer(self, subscriber_id: str) -> dict[str, Any]:
        """The layer a subscriber receives, for stats (empty without simulcast)."""
        return {}

    def add_leg(self, leg: Leg) -> None:
        self._legs[leg.subscriber_id] = leg
        self._leg_list = tuple(self._legs.values())
        self.request_keyframe()  # on subscribe: the leg will need one soon

    def remove_leg(self, subscriber_id: str) -> Leg | None:
        leg = self._legs.pop(subscriber_id, None)
        self._leg_list = tuple(self._legs.values())
        self._bandwidth.remove(subscriber_id)
        return leg

    # ---- packets

    def on_packet(self, pkt: RtpPacket) -> None:
        if self._muted:
            return
        self.packets_in += 1
        self.octets_in += len(pkt.payload)
        now = time.monotonic()
        if self._staleness.late(pkt.ssrc, pkt.timestamp, now) and self._behind():
            self.packets_stale += 1
            self._shed()
            return
        self._shedding = False
        # (a recording tap's one check per packet goes here: it sees what subscribers get)
        if self.is_video:
            # Only the newest packet can start a keyframe: a copy of an earlier one (publishers
            # resend recent packets over RTX as bandwidth probes, or answer our NACKs) must not
            # reset the GOP cache or sync a leg, or the packets since the original are skipped.
            keyframe = self._is_newest(pkt) and self._detect(pkt.payload)
            if pkt.marker:
                self.frames_in += 1
            if keyframe:
                self.keyframes_in += 1
                self._gop = [pkt]
                self._gop_seqs = {pkt.sequence_number}
                self._gop_time = now
            elif self._gop is not None and pkt.sequence_number not in self._gop_seqs:
                if len(self._gop) < self._settings.gop_cache_max_packets:
                    self._gop.append(pkt)
                    self._gop_seqs.add(pkt.sequence_number)
                else:
                    self._gop = None
                    self._gop_seqs = set()
        else:
            keyframe = self._detect(pkt.payload)
            on_level = self.on_audio_level
            if on_level is not None:
                level = pkt.extensions.audio_level
                if level is not None:
                    on_level(level[1] & 0x7F)
        if self.recorder is not None:
            self.recorder(pkt)
        legs = self._leg_list
        if not legs:
            return
        abs3 = (
            ((ntp_now() >> 14) & 0xFFFFFF).to_bytes(3, "big") if self.is_video else b"\x00\x00\x00"
        )
        for leg in legs:
            leg.forward(pkt, keyframe, abs3, now)

    def _behind(self) -> bool:
        """Whether the relay is behind: more datagrams wait on the publisher's socket."""
        tap = self._tap
        return tap is None or tap.backlogged()

    def _shed(self) -> None:
        """A stale packet was dropped: its video legs continue at the next keyframe."""
        if self._shedding or not self.is_video:
            return
        self._shedding = True  # once per run of stale packets
        self._gop = None
        self._gop_seqs = set()
        for leg in self._leg_list:
            leg.resync()
        if self._leg_list:
            self.request_keyframe()

    def _is_newest(self, pkt: RtpPacket) -> bool:
        """Whether ``pkt`` is newer than every packet seen on its SSRC (a new SSRC counts)."""
        newest = self._newest
        if newest is not None and newest[0] == pkt.ssrc:
            ahead = (pkt.sequence_number - newest[1]) & 0xFFFF
            if ahead == 0 or ahead >= 0x8000:
                return False
        self._newest = (pkt.ssrc, pkt.sequence_number)
        return True

    async def leg_ready(self, leg: Leg) -> None:
        """A leg can send: replay the cached run since the last keyframe, or ask for one."""
        if self._closed:
            return
        now = time.monotonic()
        gop = self._gop
        if (
            self.is_video
            and gop
            and not self._muted
            and now - self._gop_time <= self._settings.gop_cache_max_age_s
        ):
            abs3 = ((ntp_now() >> 14) & 0xFFFFFF).to_bytes(3, "big")
            first = gop[0]
            for pkt in list(gop):
                leg.forward(pkt, pkt is first, abs3, now)
        if leg.state is not LegState.FORWARDING and self.is_video:
            self.request_keyframe()

    # ---- feedback

    def request_keyframe(self) -> None:
        if self.is_video and not self._closed:
            self._keyframes.request()

    async def _send_pli(self) -> bool:
        tap = self._tap
        return tap is not None and await tap.send_pli()

    def subscriber_remb(self, subscriber_id: str, bitrate: int) -> None:
        if not self._closed:
            self._bandwidth.update(subscriber_id, bitrate)

    def _upstream_estimate(self, bitrate: int) -> None:
        if not self._closed:
            self._bandwidth.update("", bitrate)

    async def _send_remb(self, bitrate: int) -> bool:
        tap = self._tap
        return tap is not None and await tap.send_remb(bitrate)

    def _sender_report(self, ssrc: int, ntp: int, rtp_ts: int) -> None:
        self._sr = (ssrc, ntp, rtp_ts)

    def ntp_for(self, source_ts: int) -> int | None:
        """NTP time of a publisher RTP timestamp, from the publisher's last sender report."""
        sr = self._sr
        if sr is None:
            return None
        _, ntp, rtp_ts = sr
        diff = ((source_ts - rtp_ts + 0x80000000) & 0xFFFFFFFF) - 0x80000000
        return ntp + int(diff * 4294967296.0 / self.clock_rate)

    # ---- state

    def set_muted(self, muted: bool) -> None:
        self._muted = muted
        self._gop = None
        if not muted:
            for leg in self._leg_list:
                leg.resync()
            self.request_keyframe()

    @property
    def keyframe_requests_sent(self) -> int:
        return self._keyframes.sent

    @property
    def keyframe_requests(self) -> int:
        return self._keyframes.requested

    @property
    def upstream_remb(self) -> int | None:
        return self._bandwidth.last_sent

    async def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        self._keyframes.close()
        if self._tap is not None:
            self._tap.detach(self.on_packet)
        self._gop = None
        for leg in self._leg_list:
            leg._set_state(LegState.CLOSED)
        await self._tasks.close()

    def stats(self) -> dict[str, Any]:
        return {
            "packets_in": self.packets_in,
            "packets_stale": self.packets_stale,
            "keyframes_in": self.keyframes_in,
            "frames_in": self.frames_in,
            "keyframe_requests": self._keyframes.requested,
            "keyframe_requests_sent": self._keyframes.sent,
            "remb_sent": self._bandwidth.sent,
            "upstream_remb": self._bandwidth.last_sent,
            "frames_dropped_undecoded": self._tap.frames_dropped if self._tap else 0,
            "legs": {
                leg.subscriber_id: {
                    "state": leg.state.value,
                    "packets": leg.stats.packets,
                    "frames": leg.stats.frames,
                    "octets": leg.stats.octets,
                    "dropped_stale": leg.stats.dropped_stale,
                    "send_errors": leg.stats.send_errors,
                }
                for leg in self._leg_list
            },
        }
