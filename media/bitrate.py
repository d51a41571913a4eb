"""The publisher's receive bandwidth estimate (REMB), at a fraction of aiortc's per-packet cost.

aiortc's ``RemoteBitrateEstimator`` (abs-send-time inter-arrival filter, overuse detector,
AIMD rate control) runs for every received video packet and was about a fifth of the relay's
receive path: its incoming-rate counter keeps 1 ms buckets and walks them one by one twice per
packet, and the inter-arrival grouping is half a dozen method calls. :class:`BitrateEstimator`
computes the same estimates: the per-packet parts (rate window, timestamp grouping, the
"time to send feedback" test) are inlined here, and aiortc's own overuse estimator, detector and
rate control run once per timestamp group and per feedback interval (the filter's minimum of
the last frame periods in one call instead of sixty).
``tests/media/test_bitrate.py`` feeds both the same packets and compares every estimate.

For arrival times that go backwards (a wall-clock step) the rate window drops what it holds
instead of placing the packet in a wrapped bucket, as aiortc would.
"""

from __future__ import annotations

from collections import deque

from aiortc.rate import (
    INTER_ARRIVAL_SHIFT,
    MIN_FRAME_PERIOD_HISTORY_LENGTH,
    TIMESTAMP_GROUP_LENGTH_MS,
    TIMESTAMP_TO_MS,
    AimdRateControl,
    BandwidthUsage,
    OveruseDetector,
    OveruseEstimator,
)

_WINDOW_MS = 1000  # the incoming-rate window (aiortc: RateCounter(1000, 8000))
_BURST_DELTA_MS = 5  # aiortc's BURST_DELTA_THRESHOLD_MS
_GROUP_LENGTH = (TIMESTAMP_GROUP_LENGTH_MS << INTER_ARRIVAL_SHIFT) // 1000
_MASK = 0xFFFFFFFF
_HALF = 0x80000000
_OVERUSING = BandwidthUsage.OVERUSING


class _OveruseEstimator(OveruseEstimator):  # type: ignore[misc]
    """aiortc's Kalman filter; the minimum of the last 60 frame periods taken with one ``min``
    instead of 60 calls (once per timestamp group: as much as the rest of the filter)."""

    def update_min_frame_period(self, ts_delta: float) -> float:
        history: list[float] = self.ts_delta_hist
        if len(history) >= MIN_FRAME_PERIOD_HISTORY_LENGTH:
            history.pop(0)
        period = min(ts_delta, min(history)) if history else ts_delta
        history.append(ts_delta)
        return period


class BitrateEstimator:
    """``aiortc.rate.RemoteBitrateEstimator`` with the same ``add()`` and the same results."""

    def __init__(self) -> None:
        # incoming rate over the last second: (arrival ms, bytes), oldest first
        self._window: deque[tuple[int, int]] = deque()
        self._bytes = 0
        self._origin_ms: int | None = None
        self._rate_initialized = True
        # timestamp groups (aiortc's InterArrival): first/last send timestamp, bytes, arrival
        self._group = False
        self._first_ts = 0
        self._last_ts = 0
        self._size = 0
        self._arrival = 0
        self._prev_group = False
        self._prev_last_ts = 0
        self._prev_size = 0
        self._prev_arrival = 0
        self.estimator = _OveruseEstimator()
        self.detector = OveruseDetector()
        self.rate_control = AimdRateControl()
        self._feedback_ms = self.rate_control.feedback_interval()
        self.last_update_ms: int | None = None
        self.ssrcs: dict[int, int] = {}

    def _rate(self, now_ms: int) -> int | None:
        """aiortc's ``RateCounter.rate``: bits/s over the window (None when empty)."""
        origin = self._origin_ms
        if origin is None:
            return None
        start = now_ms - _WINDOW_MS + 1
        if origin < start:
            window = self._window
            while window and window[0][0] < start:
                self._bytes -= window.popleft()[1]
            origin = self._origin_ms = start
        active = now_ms - origin + 1
        if self._window and active > 1:
            return round(8000 * self._bytes / active)
        return None

    def add(
        self, arrival_time_ms: int, abs_send_time: int, payload_size: int, ssrc: int
    ) -> tuple[int, list[int]] | None:
        now = arrival_time_ms
        self.ssrcs[ssrc] = now

        # incoming bitrate (RateCounter: reset when its rate is None, e.g. after a silence)
        window = self._window
        origin = self._origin_ms
        if origin is not None:
            start = now - _WINDOW_MS + 1
            if origin < start:
                while window and window[0][0] < start:
                    self._bytes -= window.popleft()[1]
                origin = self._origin_ms = start
        if origin is not None and window and now > origin:  # i.e. _rate(now) is not None
            self._rate_initialized = True
        elif self._rate_initialized:
            window.clear()
            self._bytes = 0
            origin = self._origin_ms = None
            self._rate_initialized = False
        if origin is None:
            self._origin_ms = now
        elif now < origin:  # the clock went back: start the window over
            window.clear()
            self._bytes = 0
            self._origin_ms = now
        window.append((now, payload_size))
        self._bytes += payload_size

        # inter-arrival deltas between timestamp groups (InterArrival.compute_deltas)
        timestamp = abs_send_time << 8
        detector = self.detector
        if not self._group:
            self._group = True
            self._first_ts = self._last_ts = timestamp
            self._size = 0
        elif (timestamp - self._first_ts) & _MASK >= _HALF:
            timestamp = -1  # out of order: not counted (aiortc returns before adding its size)
        else:
            ts_delta_ms = round(TIMESTAMP_TO_MS * ((timestamp - self._last_ts) & _MASK))
            arrival_delta = now - self._arrival
            in_burst = ts_delta_ms == 0 or (
                arrival_delta - ts_delta_ms < 0 and arrival_delta <= _BURST_DELTA_MS
            )
            if not in_burst and (timestamp - self._first_ts) & _MASK > _GROUP_LENGTH:
                if self._prev_group:
                    self._deltas(
                        (self._last_ts - self._prev_last_ts) & _MASK,
                        self._arrival - self._prev_arrival,
                        self._size - self._prev_size,
                        now,
                    )
                self._prev_group = True
                self._prev_last_ts = self._last_ts
                self._prev_size = self._size
                self._prev_arrival = self._arrival
                self._first_ts = self._last_ts = timestamp
                self._size = 0
            elif _uint32_gt(timestamp, self._last_ts):
                self._last_ts = timestamp
        if timestamp >= 0:
            self._size += payload_size
            self._arrival = now

        # time to send feedback?
        last = self.last_update_ms
        if last is None or now - last > self._feedback_ms or detector.hypothesis is _OVERUSING:
            target = self.rate_control.update(detector.hypothesis, self._rate(now), now)
            if target is not None:
                self.last_update_ms = now
                return target, list(self.ssrcs)
        return None

    def _deltas(self, ts_delta: int, arrival_delta: int, size_delta: int, now: int) -> None:
        timestamp_delta_ms = ts_delta * TIMESTAMP_TO_MS
        estimator, detector = self.estimator, self.detector
        estimator.update(arrival_delta, timestamp_delta_ms, size_delta, detector.hypothesis, now)
        detector.detect(estimator.offset(), timestamp_delta_ms, estimator.num_of_deltas(), now)


def _uint32_gt(a: int, b: int) -> bool:
    return (a < b and b - a > _HALF) or (a > b and a - b < _HALF)
