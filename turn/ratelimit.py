"""Token buckets: one per allocation for bandwidth, and a fixed-size table per source IP.

The per-source table never grows: sources hash into a fixed number of slots, so an attacker
spraying source addresses cannot make the server allocate state before authentication (two
sources sharing a slot just share a budget).
"""

from __future__ import annotations

import os
import time
from array import array


class TokenBucket:
    """`rate` tokens per second up to `burst`; `consume` takes tokens or reports a drop."""

    __slots__ = ("_last", "_tokens", "burst", "rate")

    def __init__(self, rate: float, burst: float) -> None:
        self.rate = rate
        self.burst = burst
        self._tokens = burst
        self._last = time.monotonic()

    def consume(self, amount: float, now: float) -> bool:
        tokens = self._tokens + (now - self._last) * self.rate
        if tokens > self.burst:
            tokens = self.burst
        self._last = now
        if tokens < amount:
            self._tokens = tokens
            return False
        self._tokens = tokens - amount
        return True


class SourceLimiter:
    """Rate limit keyed by source host, in a fixed table of `slots` buckets."""

    def __init__(self, rate: float, burst: float, slots: int = 4096) -> None:
        self._rate = rate
        self._burst = burst
        self._slots = slots
        self._tokens = array("d", [burst]) * slots
        self._last = array("d", [0.0]) * slots
        # Keyed hash: an outsider cannot aim many sources at one victim's slot.
        self._salt = os.urandom(8)

    def allow(self, host: str, now: float | None = None) -> bool:
        if now is None:
            now = time.monotonic()
        i = hash((self._salt, host)) % self._slots
        tokens = min(self._burst, self._tokens[i] + (now - self._last[i]) * self._rate)
        self._last[i] = now
        if tokens < 1.0:
            self._tokens[i] = tokens
            return False
        self._tokens[i] = tokens - 1.0
        return True
