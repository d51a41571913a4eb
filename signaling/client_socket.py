"""The sending side of one client's WebSocket (edge): bounded queue, writer task, heartbeat,
close.

Everything that sends to a client goes through `send()`, which never blocks: a client that
stops reading overflows its queue and is cut off, so it never delays anyone else.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable

from aiohttp import WSCloseCode, web

from .writer import CONNECTION_ERRORS, BoundedWriter

log = logging.getLogger(__name__)

# The WebSocket close codes a session uses (RFC 6455), by the names of this module's callers.
CLOSE_NORMAL = WSCloseCode.OK
CLOSE_GOING_AWAY = WSCloseCode.GOING_AWAY
CLOSE_POLICY = WSCloseCode.POLICY_VIOLATION
CLOSE_TOO_BIG = WSCloseCode.MESSAGE_TOO_BIG
CLOSE_SERVICE_RESTART = WSCloseCode.SERVICE_RESTART


class ClientSocket:
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
        self._out = BoundedWriter(ws, queue_max, label=f"peer={peer}", on_failure=on_write_failure)
        self._heartbeat_interval = heartbeat_interval_s
        self._heartbeat_timeout = heartbeat_timeout_s
        self._close_timeout = close_timeout_s
        self._pong = asyncio.Event()
        self._closing: tuple[int, str] | None = None
        self.close_reason: str | None = None
        self.log_extra: dict[str, object] = {}  # logs.about(room, participant) once joined
        self._writer = asyncio.create_task(self._write_loop(), name=f"ws-writer {peer}")
        self._heartbeat = asyncio.create_task(self._heartbeat_loop(), name=f"ws-ping {peer}")

    @property
    def label(self) -> str:
        """`peer=...`, then `room=... participant=...` once joined (log lines, write failures)."""
        return self._out.label

    @label.setter
    def label(self, value: str) -> None:
        self._out.label = value

    @property
    def queued(self) -> int:
        return self._out.queued

    @property
    def closing(self) -> bool:
        return self._closing is not None

    def send(self, data: str) -> None:
        """Queue a message. Overflow means the client is not reading: cut it off."""
        if self._closing is not None:
            return
        if not self._out.push(data):
            log.warning(
                "%s send queue overflow (%d queued): disconnecting slow client",
                self.label,
                self._out.queued,
                extra=self.log_extra,
            )
            self.abort("slow_client")

    def close(self, code: int, reason: str) -> None:
        """Flush what is queued, then send a close frame. Never blocks."""
        if self._closing is None:
            self._closing = (code, reason)
            self.close_reason = reason
            self._out.wake()

    def abort(self, reason: str) -> None:
        """Drop the connection now, without flushing (slow or dead clients)."""
        if self.close_reason is None:
            self.close_reason = reason
        self._closing = self._closing or (CLOSE_POLICY, reason)
        self._out.clear()
        if self._transport is not None:
            self._transport.abort()
        self._writer.cancel()

    def pong_received(self) -> None:
        self._pong.set()

    async def shutdown(self) -> None:
        """Stop the tasks once the connection has ended (called by the handler)."""
        self._heartbeat.cancel()
        if not self._writer.done():
            if self._closing is None:
                self._closing = (CLOSE_NORMAL, "")
            self._out.wake()
            try:
                await asyncio.wait_for(asyncio.shield(self._writer), self._close_timeout)
            except (TimeoutError, asyncio.CancelledError):
                self.abort(self.close_reason or "close_timeout")
        for task in (self._writer, self._heartbeat):
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def _write_loop(self) -> None:
        ws = self.ws
        try:
            await self._out.run(stop=lambda: self._closing is not None)
            assert self._closing is not None
            code, reason = self._closing
            await asyncio.wait_for(
                ws.close(code=code, message=reason.encode()[:120]), self._close_timeout
            )
        except CONNECTION_ERRORS:
            # The peer vanished or never completed the close handshake: drop it.
            if self._transport is not None:
                self._transport.abort()

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
