"""`BoundedWriter`: the one bounded outgoing queue of a WebSocket (signaling and the stats feed).

`push()` never blocks and never grows the queue past its bound: a full queue means the client
stopped reading, and the owner cuts it off (a signaling session aborts, the feed drops the
dashboard). One writer coroutine sends in order; a message that cannot be sent for a reason other
than a dead connection is dropped, counted and logged once, and the next is tried.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import Callable

from aiohttp import web

log = logging.getLogger(__name__)

# A connection that is gone: the writer stops and its owner ends the client.
CONNECTION_ERRORS: tuple[type[BaseException], ...] = (ConnectionError, RuntimeError, TimeoutError)


class BoundedWriter:
    """At most `queue_max` text frames waiting for one WebSocket, sent in order by `run()`."""

    def __init__(
        self,
        ws: web.WebSocketResponse,
        queue_max: int,
        *,
        label: str,
        on_failure: Callable[[], None] | None = None,
    ) -> None:
        self.ws = ws
        self.label = label
        self._queue: deque[str] = deque()
        self._queue_max = queue_max
        self._wakeup = asyncio.Event()
        self._on_failure = on_failure
        self.failures = 0

    @property
    def queued(self) -> int:
        return len(self._queue)

    def push(self, text: str) -> bool:
        """Queue a frame; False (nothing queued) when the queue is full."""
        if len(self._queue) >= self._queue_max:
            return False
        self._queue.append(text)
        self._wakeup.set()
        return True

    def clear(self) -> None:
        """Forget what is queued (the client is being cut off)."""
        self._queue.clear()

    def wake(self) -> None:
        """Make `run()` look at its stop condition now."""
        self._wakeup.set()

    async def run(self, stop: Callable[[], bool]) -> None:
        """Send queued frames until `stop()` holds with nothing queued.

        Raises one of CONNECTION_ERRORS when the connection is gone.
        """
        while True:
            while self._queue:
                text = self._queue.popleft()
                try:
                    await self.ws.send_str(text)
                except CONNECTION_ERRORS:
                    raise
                except Exception as exc:  # one message that cannot be sent never ends the writer
                    self._failed(exc)
            if stop():
                return
            self._wakeup.clear()
            await self._wakeup.wait()

    def _failed(self, exc: Exception) -> None:
        self.failures += 1
        if self.failures == 1:
            log.warning("%s a message could not be sent and was dropped: %r", self.label, exc)
        if self._on_failure is not None:
            self._on_failure()
