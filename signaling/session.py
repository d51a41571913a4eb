"""One WebSocket connection: bounded send queue, writer task, heartbeat, close.

Everything that sends to a client goes through `send()`, which never blocks: a client that
stops reading overflows its queue and is cut off, so it never delays anyone else.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import deque
from collections.abc import Callable

from aiohttp import web

log = logging.getLogger(__name__)

# Close codes beyond aiohttp's enum.
CLOSE_NORMAL = 1000
CLOSE_GOING_AWAY = 1001
CLOSE_POLICY = 1008
CLOSE_TOO_BIG = 1009
CLOSE_SERVICE_RESTART = 1012


class Session:
    """Owns one WebSocket's outgoing side. `close()` is idempotent."""

    def __init__(
        self,
        ws: web.WebSocketResponse,
        transport: asyncio.Transport | None,
        *,
        peer: str,
        queue_max: int,
        heartbeat_interval_s: float,
        heartbeat_timeout_s: float,
        close_timeout_s: float,
        on_write_failure: Callable[[], None] | None = None,
    ) -> None:
        self.ws = ws
        self.peer = peer
        self._transport = transport
        self._queue: deque[str] = deque()
        self._queue_max = queue_max
        self._wakeup = asyncio.Event()
        self._heartbeat_interval = heartbeat_interval_s
        self._heartbeat_timeout = heartbeat_timeout_s
        self._close_timeout = close_timeout_s
        self._pong = asyncio.Event()
        self._closing: tuple[int, str] | None = None
        self._closed = asyncio.Event()
        self.close_reason: str | None = None
        self.sent = 0
        self.write_failures = 0
        self._on_write_failure = on_write_failure
        self.label = f"peer={peer}"
        self.log_extra: dict[str, object] = {}  # logs.about(room, participant) once joined
        self._writer = asyncio.create_task(self._write_loop(), name=f"ws-writer {peer}")
        self._heartbeat = asyncio.create_task(self._heartbeat_loop(), name=f"ws-ping {peer}")

    @property
    def queued(self) -> int:
        return len(self._queue)

    @property
    def closing(self) -> bool:
        return self._closing is not None

    def send(self, data: str) -> None:
        """Queue a message. Overflow means the client is not reading: cut it off."""
        if self._closing is not None:
            return
        if len(self._queue) >= self._queue_max:
            log.warning(
                "%s send queue overflow (%d queued): disconnecting slow client",
                self.label,
                len(self._queue),
                extra=self.log_extra,
            )
            self.abort("slow_client")
            return
        self._queue.append(data)
        self._wakeup.set()

    def close(self, code: int, reason: str) -> None:
        """Flush what is queued, then send a close frame. Never blocks."""
        if self._closing is None:
            self._closing = (code, reason)
            self.close_reason = reason
            self._wakeup.set()

    def abort(self, reason: str) -> None:
        """Drop the connection now, without flushing (slow or dead clients)."""
        if self.close_reason is None:
            self.close_reason = reason
        self._closing = self._closing or (CLOSE_POLICY, reason)
        self._queue.clear()
        if self._transport is not None:
            self._transport.abort()
        self._writer.cancel()
        self._closed.set()

    def pong_received(self) -> None:
        self._pong.set()

    async def wait_closed(self) -> None:
        await self._closed.wait()

    async def shutdown(self) -> None:
        """Stop the tasks once the connection has ended (called by the handler)."""
        self._heartbeat.cancel()
        if not self._writer.done():
            if self._closing is None:
                self._closing = (CLOSE_NORMAL, "")
            self._wakeup.set()
            try:
                await asyncio.wait_for(asyncio.shield(self._writer), self._close_timeout)
            except (TimeoutError, asyncio.CancelledError):
                self.abort(self.close_reason or "close_timeout")
        for task in (self._writer, self._heartbeat):
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._closed.set()

    async def _write_loop(self) -> None:
        ws = self.ws
        try:
            while True:
                while self._queue:
                    data = self._queue.popleft()
                    try:
                        await ws.send_str(data)
                    except (ConnectionError, RuntimeError, TimeoutError):
                        raise
                    except Exception as exc:  # one bad message never ends the writer
                        self._write_failed(exc)
                        continue
                    self.sent += 1
                if self._closing is not None:
                    break
                self._wakeup.clear()
                await self._wakeup.wait()
            code, reason = self._closing
            await asyncio.wait_for(
                ws.close(code=code, message=reason.encode()[:120]), self._close_timeout
            )
        except (ConnectionError, RuntimeError, TimeoutError):
            # The peer vanished or never completed the close handshake: drop it.
            if self._transport is not None:
                self._transport.abort()
        finally:
            self._closed.set()

    def _write_failed(self, exc: Exception) -> None:
        """A message this client cannot be sent is dropped, counted, and logged once."""
        self.write_failures += 1
        if self.write_failures == 1:
            log.warning("%s a message could not be sent and was dropped: %r", self.label, exc)
        if self._on_write_failure is not None:
            self._on_write_failure()

    async def _heartbeat_loop(self) -> None:
        while True:
            await asyncio.sleep(self._heartbeat_interval)
            if self._closing is not None:
                return
            self._pong.clear()
            started = time.monotonic()
            try:
                await asyncio.wait_for(self.ws.ping(), self._heartbeat_timeout)
                remaining = self._heartbeat_timeout - (time.monotonic() - started)
                await asyncio.wait_for(self._pong.wait(), max(remaining, 0.0))
            except (TimeoutError, ConnectionError, RuntimeError):
                log.info(
                    "%s no pong within %.1fs: closing",
                    self.label,
                    self._heartbeat_timeout,
                    extra=self.log_extra,
                )
                self.abort("heartbeat_timeout")
                return
