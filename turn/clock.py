"""The two clocks the TURN server reads, injectable so expiry is tested without sleeping.

`monotonic` times lifetimes (allocations, permissions, channels, nonces); `wall` checks REST
credential expiry, which is a Unix timestamp in the username.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Protocol


class Clock(Protocol):
    def monotonic(self) -> float: ...

    def wall(self) -> float: ...


@dataclass(frozen=True, slots=True)
class SystemClock:
    def monotonic(self) -> float:
        return time.monotonic()

    def wall(self) -> float:
        return time.time()


SYSTEM_CLOCK = SystemClock()
