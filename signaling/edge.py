"""Edge side of one client's WebSocket: read, rate-limit, parse, join, and hand messages to
the room side of its participant."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from aiohttp import WSMsgType

from relayroom.media.ratelimit import TokenBucket

from . import protocol
from .client_socket import (
    CLOSE_GOING_AWAY,
    CLOSE_NORMAL,
    CLOSE_POLICY,
    CLOSE_SERVICE_RESTART,
    CLOSE_TOO_BIG,
    ClientSocket,
)
from .counts import NodeCounts
from .logs import about, bind
from .protocol import (
    RECONNECT_REASONS,
    ClientMessage,
    CloseReason,
    ErrorCode,
    Join,
    Ping,
    ProtocolError,
)
from .ratelimit import WindowCounter
from .router import RoomSide, Router
from .tokens import TokenError, verify_token

log = logging.getLogger(__name__)

ABUSE_WINDOW_S = 10.0
RETRY_AFTER_MS = 1000
RATE_NOTICE_INTERVAL_S = 1.0
# A WebSocket that ended for one of these reasons may come back with its resume token.
RESUMABLE = frozenset(
    {CloseReason.DISCONNECTED, CloseReason.HEARTBEAT_TIMEOUT, CloseReason.SLOW_CLIENT}
)


@dataclass(frozen=True)
class EdgeSettings:
    msgs_per_s: float
    burst: int
    close_after: int
    """Rejected messages within `ABUSE_WINDOW_S` that close the connection."""
    join_timeout_s: float
    resume_ttl_s: float
    """0: a dropped WebSocket leaves the room at once."""
    max_frame_bytes: int
    input_max_depth: int


@dataclass(frozen=True)
class EdgeParts:
    """What every WebSocket edge of this node uses (wired in server.py)."""

    settings: EdgeSettings
    secret: str  # verifies join tokens
    router: Router
    counts: NodeCounts
    draining: Callable[[], bool]  # joins are refused while the node drains


class ClientEdge:
    """Drives one WebSocket. Implements `Recipient` for the room side of its participant."""

    def __init__(self, parts: EdgeParts, socket: ClientSocket) -> None:
        self._parts = parts
        self._settings = settings = parts.settings
        self.socket = socket
        self._bucket = TokenBucket(settings.msgs_per_s, settings.burst)
        self._rejections = WindowCounter(ABUSE_WINDOW_S)
        self._last_rate_notice = 0.0
        self.room_side: RoomSide | None = None
        self._close_reason = CloseReason.DISCONNECTED
        self.finished = asyncio.Event()

    # --- Recipient ---------------------------------------------------------------------------

    def send(self, data: str) -> None:
        self.socket.send(data)

    def end(self, reason: str) -> None:
        """Close the WebSocket; for shutdown and failover, first ask the client to reconnect."""
        self._close_reason = CloseReason(reason)
        if self._close_reason in RECONNECT_REASONS:
            self.socket.send(
                protocol.encode(
                    {"type": "reconnect", "reason": reason, "retry_after_ms": RETRY_AFTER_MS}
                )
            )
            code = (
                CLOSE_GOING_AWAY
                if self._close_reason is CloseReason.SHUTDOWN
                else CLOSE_SERVICE_RESTART
            )
            self.socket.close(code, reason)
        else:
            self.socket.close(CLOSE_NORMAL, reason)

    # --- receive loop ------------------------------------------------------------------------

    async def run(self) -> None:
        ws = self.socket.ws
        join_timer = asyncio.get_running_loop().call_later(
            self._settings.join_timeout_s, self._join_timed_out
        )
        try:
            async for frame in ws:
                if frame.type is WSMsgType.TEXT:
                    await self._on_text(frame.data)
                elif frame.type is WSMsgType.BINARY:
                    self._reply_error(ErrorCode.INVALID_MESSAGE, "binary frames are not accepted")
                elif frame.type is WSMsgType.PING:
                    await ws.pong(frame.data)
                elif frame.type is WSMsgType.PONG:
                    self.socket.pong_received()
                elif frame.type is WSMsgType.ERROR:
                    self._on_ws_error(ws.exception())
                    break
                if self.socket.closing:
                    break
        finally:
            join_timer.cancel()
            try:
                await self._release_room_side()
            finally:
                self.finished.set()

    async def _release_room_side(self) -> None:
        room_side, self.room_side = self.room_side, None
        if room_side is None or room_side.left:
            return
        if not room_side.attached_to(self):
            # A resume moved the participant to a newer socket: this one just goes away.
            return
        reason = self._close_reason
        aborted = self.socket.close_reason
        if aborted in (CloseReason.SLOW_CLIENT, CloseReason.HEARTBEAT_TIMEOUT):
            reason = CloseReason(aborted)
        if reason in RESUMABLE and self._settings.resume_ttl_s > 0:
            room_side.detach()
        else:
            await room_side.leave(reason)

    def _on_ws_error(self, exc: BaseException | None) -> None:
        # aiohttp has already sent close 1009 for an oversized frame; record why.
        if self.socket.ws.close_code == CLOSE_TOO_BIG:
            self._close_reason = CloseReason.ABUSE
            log.info(
                "%s frame over %d bytes: closed 1009",
                self.socket.label,
                self._settings.max_frame_bytes,
            )
        else:
            log.info("%s websocket error: %s", self.socket.label, exc)

    async def _on_text(self, text: str) -> None:
        if not self._bucket.take():
            self._on_rate_limited()
            return
        try:
            message = protocol.parse_client_message(text, self._settings.input_max_depth)
            await self.dispatch(message)
        except ProtocolError as exc:
            self._reply_error(exc.code, exc.message, exc.ref)

    def _on_rate_limited(self) -> None:
        rejected = self._rejections.add()
        self._parts.counts.error(ErrorCode.RATE_LIMITED)
        if rejected >= self._settings.close_after:
            log.warning("%s sustained message flood: closing 1008", self.socket.label)
            self._close_reason = CloseReason.ABUSE
            self.socket.close(CLOSE_POLICY, "rate limit exceeded")
            return
        now = time.monotonic()
        if now - self._last_rate_notice >= RATE_NOTICE_INTERVAL_S:
            self._last_rate_notice = now
            self._reply_error(ErrorCode.RATE_LIMITED, "too many messages: slow down")

    def _join_timed_out(self) -> None:
        if self.room_side is None and not self.socket.closing:
            self._reply_error(ErrorCode.NOT_JOINED, "no join within the time limit")
            self._close_reason = CloseReason.JOIN_TIMEOUT
            self.socket.close(CLOSE_POLICY, CloseReason.JOIN_TIMEOUT.value)

    def _reply(self, message: dict[str, Any], ref: str | int | None = None) -> None:
        self.socket.send(protocol.encode(protocol.with_ref(message, ref)))

    def _reply_error(self, code: ErrorCode, message: str, ref: str | int | None = None) -> None:
        self._parts.counts.error(code)
        self._reply(protocol.error(code, message), ref)

    # --- dispatch ---------------------------------------------------------------------------

    async def dispatch(self, message: ClientMessage) -> None:
        if isinstance(message, Ping):
            self._reply({"type": "pong", "ts": message.ts}, message.id)
        elif isinstance(message, Join):
            await self._join(message)
        elif self.room_side is None or self.room_side.left:
            raise ProtocolError(ErrorCode.NOT_JOINED, "send 'join' first", message.id)
        else:
            await self.room_side.handle(message)

    async def _join(self, message: Join) -> None:
        if self.room_side is not None:
            raise ProtocolError(ErrorCode.INVALID_MESSAGE, "already joined", message.id)
        parts = self._parts
        if parts.draining():
            raise ProtocolError(ErrorCode.UNAVAILABLE, "server is shutting down", message.id)
        try:
            access = verify_token(parts.secret, message.token, room=message.room)
        except TokenError as exc:
            raise ProtocolError(ErrorCode(exc.code), exc.message, message.id) from None
        try:
            self.room_side = await parts.router.join(access, message, self)
        except ProtocolError as exc:
            exc.ref = message.id
            raise
        self.socket.label = f"room={message.room} participant={self.room_side.participant_id}"
        self.socket.log_extra = about(message.room, self.room_side.participant_id)
        bind(message.room, self.room_side.participant_id)  # the rest of this connection's task
