"""What a load-test subscriber measures on one received stream, from RTP alone (no decoding).

- loss: packets missing from the sequence range seen (duplicates and retransmissions counted once);
- frames: a video frame is complete when every packet from the one after the previous frame's
  marker up to its own marker arrived; an audio packet is a frame;
- latency: arrival time minus the publisher's send time of the frame, which the relay's sender
  reports give (they map the forwarded RTP timestamps to the publisher's own NTP clock). That is
  the network-to-network path through the relay: capture, encode and decode are not in it.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

NTP_EPOCH_OFFSET = 2208988800  # seconds from 1900 (NTP) to 1970 (Unix)
DEDUP_WINDOW = 2048
MAX_PENDING_FRAMES = 128
FRAME_TIMEOUT_S = 1.0  # a NACKed packet comes back well within this
# A latency beyond this says the sender report's mapping is wrong (a report with a zero or
# foreign NTP time), not that the frame took so long: the sample is dropped and counted.
IMPLAUSIBLE_LATENCY_S = 60.0


def ntp_to_unix(ntp: int) -> float:
    """A 64-bit NTP timestamp as Unix seconds."""
    return (ntp >> 32) - NTP_EPOCH_OFFSET + (ntp & 0xFFFFFFFF) / 2**32


def percentile(values: list[float], q: float) -> float | None:
    """The q-th percentile (0-100, nearest rank) of values; None when there are none."""
    if not values:
        return None
    ordered = sorted(values)
    rank = max(1, math.ceil(q / 100 * len(ordered)))
    return ordered[rank - 1]


# A pending video frame: [first arrival, extended seq of its start (or None), extended seq of
# its marker packet (or None), packets seen, lowest extended seq seen]. A list, not an object:
# one per frame, on the hot path.
_ARRIVED, _START, _MARKER, _COUNT, _LOWEST = range(5)


class StreamProbe:
    """Checks one received RTP stream (media packets, RTX already unwrapped).

    Called for every packet a load-test subscriber receives, so it costs a few dictionary and
    list operations per packet: duplicates are found in a ring of recent sequence numbers, a
    frame is complete when its packet count spans its start to its marker, and stale frames
    are expired once per new frame rather than per packet.
    """

    def __init__(self, kind: str, clock_rate: int) -> None:
        self.kind = kind
        self.clock_rate = clock_rate
        self.packets = 0
        self.duplicates = 0
        self.bytes = 0
        self.frames = 0
        self.incomplete_frames = 0
        self.first_at: float | None = None
        self.last_at: float | None = None
        self.latencies_ms: list[float] = []
        self.implausible_latencies = 0  # samples dropped: the sender report mapped them absurdly
        self.on_incomplete_frame: Callable[[], None] | None = None
        """Called when a frame is given up (a browser's decoder would ask for a keyframe)."""
        self._video = kind == "video"
        self._base: int | None = None
        self._max: int | None = None
        self._ring: list[int] = [-1] * DEDUP_WINDOW  # extended seqs seen, by ext % window
        self._pending: dict[int, list[Any]] = {}  # by RTP timestamp, oldest first
        self._done: dict[int, None] = {}  # timestamps of counted frames, oldest first
        self._sr: tuple[float, int] | None = None  # (publisher's unix time, rtp timestamp)

    # ------------------------------------------------------------------ input

    def on_sender_report(self, ntp: int, rtp_timestamp: int) -> None:
        self._sr = (ntp_to_unix(ntp), rtp_timestamp)

    def on_packet(
        self,
        seq: int,
        timestamp: int,
        marker: bool,
        size: int,
        now: float,
        frame_start: bool | None = None,
    ) -> None:
        """One packet arrived at `now` (Unix seconds).

        `frame_start` says whether the packet starts a frame (VP8's S bit with partition 0),
        or None when the codec is not known: the frame is then taken to start at its lowest
        sequence number seen, and a lost first packet goes unnoticed.
        """
        ext = self._extend(seq)
        slot = ext % DEDUP_WINDOW
        if self._ring[slot] == ext:
            self.duplicates += 1
            return
        self._ring[slot] = ext
        self.packets += 1
        self.bytes += size
        if self.first_at is None:
            self.first_at = now
        self.last_at = now
        if not self._video:
            self.frames += 1
            self._latency(timestamp, now)
            return
        if timestamp in self._done:
            return  # a late duplicate of a counted frame's packet
        frame = self._pending.get(timestamp)
        if frame is None:
            frame = self._pending[timestamp] = [now, None, None, 0, ext]
            self._expire(now)
        frame[_COUNT] += 1
        if marker:
            frame[_MARKER] = ext
        if frame_start:
            frame[_START] = ext
        elif frame_start is None and ext < frame[_LOWEST]:
            frame[_LOWEST] = ext  # lowest seq seen: the start when the codec is unknown
        start = frame[_START] if frame_start is not None else frame[_LOWEST]
        marker_seq = frame[_MARKER]
        if start is not None and marker_seq is not None and frame[_COUNT] == marker_seq - start + 1:
            self.frames += 1
            self._latency(timestamp, now)
            self._pending.pop(timestamp, None)
            done = self._done
            done[timestamp] = None
            if len(done) > MAX_PENDING_FRAMES:
                del done[next(iter(done))]

    # ------------------------------------------------------------------ results

    @property
    def expected(self) -> int:
        if self._base is None or self._max is None:
            return 0
        return self._max - self._base + 1

    @property
    def lost(self) -> int:
        return max(0, self.expected - self.packets)

    def loss_fraction(self) -> float:
        return self.lost / self.expected if self.expected else 0.0

    def fps(self) -> float:
        """Complete frames per second over the time packets arrived."""
        if self.first_at is None or self.last_at is None or self.last_at <= self.first_at:
            return 0.0
        return self.frames / (self.last_at - self.first_at)

    def bitrate_bps(self) -> float:
        if self.first_at is None or self.last_at is None or self.last_at <= self.first_at:
            return 0.0
        return self.bytes * 8 / (self.last_at - self.first_at)

    # ------------------------------------------------------------------ internals

    def _extend(self, seq: int) -> int:
        if self._max is None:
            self._base = self._max = seq
            return seq
        ext = self._max + (((seq - self._max + 0x8000) & 0xFFFF) - 0x8000)
        if ext > self._max:
            self._max = ext
        elif self._base is not None and ext < self._base:
            self._base = ext
        return ext

    def _expire(self, now: float) -> None:
        """Give up on frames still incomplete after FRAME_TIMEOUT_S (or too many waiting)."""
        pending = self._pending
        while pending:
            oldest = next(iter(pending))
            if (
                now - pending[oldest][_ARRIVED] < FRAME_TIMEOUT_S
                and len(pending) <= MAX_PENDING_FRAMES
            ):
                break
            del pending[oldest]
            self.incomplete_frames += 1
            if self.on_incomplete_frame is not None:
                self.on_incomplete_frame()

    def _latency(self, timestamp: int, now: float) -> None:
        if self._sr is None:
            return
        sent_unix, sr_rtp = self._sr
        delta = ((timestamp - sr_rtp + 0x80000000) & 0xFFFFFFFF) - 0x80000000
        sent = sent_unix + delta / self.clock_rate
        if abs(now - sent) > IMPLAUSIBLE_LATENCY_S:
            self.implausible_latencies += 1
            return
        self.latencies_ms.append(max(0.0, (now - sent) * 1000.0))


class DataProbe:
    """DataChannel messages a subscriber received, numbered per sender (gaps are losses)."""

    def __init__(self) -> None:
        self.received = 0
        self.latencies_ms: list[float] = []
        self._range: dict[str, tuple[int, int]] = {}  # sender -> (first n, last n) seen

    def on_message(self, sender: str, n: int, sent_at: float, now: float) -> None:
        self.received += 1
        self.latencies_ms.append(max(0.0, (now - sent_at) * 1000.0))
        first, last = self._range.get(sender, (n, n))
        self._range[sender] = (min(first, n), max(last, n))

    @property
    def expected(self) -> int:
        """Messages sent from each sender's first seen to its last seen."""
        return sum(last - first + 1 for first, last in self._range.values())
