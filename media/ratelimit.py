"""`TokenBucket`: the one token bucket of signaling and media.

turn/ keeps its own (turn/ratelimit.py): it imports nothing else of relayroom, and its
per-packet bucket takes the time from the caller.
"""

from __future__ import annotations

import time
from collections.abc import Callable


class TokenBucket:
    """Classic token bucket: `rate` tokens per second, at most `burst` saved up."""

    __slots__ = ("_clock", "_stamp", "_tokens", "burst", "rate")

    def __init__(
        self, rate: float, burst: float, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.rate = rate
        self.burst = burst
        self._clock = clock
        self._tokens = float(burst)
        self._stamp = clock()

    def take(self, cost: float = 1.0) -> bool:
        """Take `cost` tokens if there are that many; False (nothing taken) otherwise."""
        now = self._clock()
        self._tokens = min(self.burst, self._tokens + (now - self._stamp) * self.rate)
        self._stamp = now
        if self._tokens >= cost:
            self._tokens -= cost
            return True
        return False
