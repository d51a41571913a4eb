"""Per-client-IP admission limits and a windowed event counter (buckets: media/ratelimit.py)."""

from __future__ import annotations

import time
from collections.abc import Callable

from relayroom.media.ratelimit import TokenBucket


class WindowCounter:
    """Counts events in a sliding-ish window (two fixed buckets), cheap and bounded."""

    __slots__ = ("_clock", "_count", "_previous", "_start", "window_s")

    def __init__(self, window_s: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.window_s = window_s
        self._clock = clock
        self._start = clock()
        self._count = 0
        self._previous = 0

    def add(self) -> int:
        """Record one event; return the estimated count within the last window."""
        now = self._clock()
        elapsed = now - self._start
        if elapsed >= self.window_s:
            periods = int(elapsed // self.window_s)
            self._previous = self._count if periods == 1 else 0
            self._count = 0
            self._start += periods * self.window_s
            elapsed = now - self._start
        self._count += 1
        weight = 1.0 - elapsed / self.window_s
        return self._count + int(self._previous * weight)


class IpAdmission:
    """Per-IP concurrent-connection and handshake-rate caps, applied before the upgrade."""

    def __init__(
        self,
        max_connections: int,
        handshakes_per_s: float,
        handshake_burst: int,
        max_tracked_ips: int = 100_000,
    ) -> None:
        self._max_connections = max_connections
        self._rate = handshakes_per_s
        self._burst = handshake_burst
        self._max_tracked = max_tracked_ips
        self._open: dict[str, int] = {}
        self._buckets: dict[str, TokenBucket] = {}

    def admit(self, ip: str) -> str | None:
        """Reserve a connection slot for `ip`; return a refusal reason or None."""
        if self._open.get(ip, 0) >= self._max_connections:
            return "too many connections from this address"
        bucket = self._buckets.get(ip)
        if bucket is None:
            if len(self._buckets) >= self._max_tracked:
                self._forget_idle()
            bucket = self._buckets[ip] = TokenBucket(self._rate, self._burst)
        if not bucket.take():
            return "too many connection attempts from this address"
        self._open[ip] = self._open.get(ip, 0) + 1
        return None

    def release(self, ip: str) -> None:
        count = self._open.get(ip, 0) - 1
        if count > 0:
            self._open[ip] = count
        else:
            self._open.pop(ip, None)

    def _forget_idle(self) -> None:
        # Buckets of addresses with no open connection refill in burst/rate seconds anyway.
        for ip in [ip for ip in self._buckets if ip not in self._open]:
            del self._buckets[ip]
