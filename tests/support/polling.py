"""`eventually()`: the one way tests wait for a condition that has no event to wait on."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable


async def eventually(
    predicate: Callable[[], bool], timeout: float = 5.0, step: float = 0.02
) -> bool:
    """Poll `predicate` every `step` s until it holds (True) or `timeout` s passed (False).

    Use it as `assert await eventually(...)`: the result is the last evaluation.
    """
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        await asyncio.sleep(step)
    return predicate()
