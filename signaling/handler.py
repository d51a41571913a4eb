"""Per-connection signaling: join state, rate limit, and dispatch by message type."""

from __future__ import annotations

import asyncio
import logging
import time
from typing import TYPE_CHECKING, Any

from aiohttp import WSMsgType, web

from . import protocol
from .protocol import (
    Candidate,
    ClientMessage,
    CloseReason,
    ErrorCode,
    Join,
    Leave,
    Mute,
    Ping,
    ProtocolError,
    PublishOffer,
    Signal,
    Stats,
    SubscribeAnswer,
)
from .ratelimit import TokenBucket, WindowCounter
from .rooms import Member, RoomState
from .session import CLOSE_NORMAL, CLOSE_POLICY, CLOSE_TOO_BIG, Session
from .tokens import TokenError, verify_token

if TYPE_CHECKING:
    from .server import Server

log = logging.getLogger(__name__)

ABUSE_WINDOW_S = 10.0
RATE_NOTICE_INTERVAL_S = 1.0


class Connection:
    """Drives one WebSocket: reads frames, parses them, and calls the room logic."""

    def __init__(self, server: Server, session: Session) -> None:
        self.server = server
        self.session = session
        cfg = server.config
        self._bucket = TokenBucket(cfg.rate_limit_msgs_per_s, cfg.rate_limit_burst)
        self._rejections = WindowCounter(ABUSE_WINDOW_S)
        self._last_rate_notice = 0.0
        self.room: RoomState | None = None
        self.member: Member | None = None
        self._leave_reason = CloseReason.DISCONNECTED
        self.finished = asyncio.Event()

    # --- Endpoint (what the bus calls) -----------------------------------------------------

    def send(self, data: str) -> None:
        self.session.send(data)

    def end(self, reason: str) -> None:
        self._leave_reason = CloseReason(reason)
        self.session.close(CLOSE_NORMAL, reason)

    # --- receive loop ------------------------------------------------------------------------

    async def run(self) -> None:
        ws = self.session.ws
        join_timer = asyncio.get_running_loop().call_later(
            self.server.config.join_timeout_s, self._join_timed_out
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
                    self.session.pong_received()
                elif frame.type is WSMsgType.ERROR:
                    self._on_ws_error(ws.exception())
                    break
                if self.session.closing:
                    break
        finally:
            join_timer.cancel()
            try:
                await self._leave_room()
            finally:
                self.finished.set()

    def _on_ws_error(self, exc: BaseException | None) -> None:
        # aiohttp has already sent close 1009 for an oversized frame; record why.
        if ws_close_code(self.session.ws) == CLOSE_TOO_BIG:
            self._leave_reason = CloseReason.ABUSE
            log.info(
                "%s frame over %d bytes: closed 1009",
                self.session.label,
                self.server.config.ws_max_frame_bytes,
            )
        else:
            log.info("%s websocket error: %s", self.session.label, exc)

    async def _on_text(self, text: str) -> None:
        if not self._bucket.take():
            self._on_rate_limited()
            return
        try:
            message = protocol.parse_client_message(text)
            await self.dispatch(message)
        except ProtocolError as exc:
            self._reply_error(exc.code, exc.message, exc.ref)

    def _on_rate_limited(self) -> None:
        rejected = self._rejections.add()
        self.server.metrics_error(ErrorCode.RATE_LIMITED)
        if rejected >= self.server.config.rate_limit_close_after:
            log.warning("%s sustained message flood: closing 1008", self.session.label)
            self._leave_reason = CloseReason.ABUSE
            self.session.close(CLOSE_POLICY, "rate limit exceeded")
            return
        now = time.monotonic()
        if now - self._last_rate_notice >= RATE_NOTICE_INTERVAL_S:
            self._last_rate_notice = now
            self._reply_error(ErrorCode.RATE_LIMITED, "too many messages: slow down")

    def _join_timed_out(self) -> None:
        if self.member is None and not self.session.closing:
            self._reply_error(ErrorCode.NOT_JOINED, "no join within the time limit")
            self._leave_reason = CloseReason.JOIN_TIMEOUT
            self.session.close(CLOSE_POLICY, CloseReason.JOIN_TIMEOUT.value)

    def _reply(self, message: dict[str, Any], ref: str | int | None = None) -> None:
        self.session.send(protocol.encode(protocol.with_ref(message, ref)))

    def _reply_error(self, code: ErrorCode, message: str, ref: str | int | None = None) -> None:
        self.server.metrics_error(code)
        self._reply(protocol.error(code, message), ref)

    # --- dispatch ---------------------------------------------------------------------------

    async def dispatch(self, message: ClientMessage) -> None:
        if isinstance(message, Ping):
            self._reply({"type": "pong", "ts": message.ts}, message.id)
            return
        if isinstance(message, Join):
            await self._join(message)
            return
        if self.member is None or self.room is None:
            raise ProtocolError(ErrorCode.NOT_JOINED, "send 'join' first", message.id)
        if isinstance(message, Leave):
            self._leave_reason = CloseReason.LEFT
            await self._leave_room()
            self.session.close(CLOSE_NORMAL, CloseReason.LEFT.value)
        elif isinstance(message, Signal):
            self._signal(message)
        elif isinstance(message, Stats):
            self.member.client_stats = message.report
        elif isinstance(message, PublishOffer | SubscribeAnswer | Candidate | Mute):
            await self.server.media.handle(self.room, self.member, message, self._reply)
        else:  # pragma: no cover - every parsed type is handled above
            raise ProtocolError(ErrorCode.UNKNOWN_TYPE, "unhandled message type", message.id)

    async def _join(self, message: Join) -> None:
        if self.member is not None:
            raise ProtocolError(ErrorCode.INVALID_MESSAGE, "already joined", message.id)
        server = self.server
        if server.draining:
            raise ProtocolError(ErrorCode.UNAVAILABLE, "server is shutting down", message.id)
        try:
            access = verify_token(server.secret, message.token, room=message.room)
        except TokenError as exc:
            raise ProtocolError(ErrorCode(exc.code), exc.message, message.id) from None
        try:
            room, member = await server.registry.join(access, message.name, self)
        except ProtocolError as exc:
            exc.ref = message.id
            raise
        self.room, self.member = room, member
        self.session.label = f"room={room.name} participant={member.id}"
        others = [m.public() for m in room.members.values() if m.id != member.id]
        reply: dict[str, Any] = {
            "type": "joined",
            "protocol": protocol.PROTOCOL_VERSION,
            "participant": member.public(),
            "room": {"name": room.name, "mode": room.mode},
            "participants": others,
            "tracks": server.media.tracks(room),
            "ice_servers": server.ice_servers(member.identity),
            "heartbeat_s": server.config.heartbeat_interval_s,
            "limits": server.client_limits(),
        }
        self._reply(reply, message.id)
        await server.media.on_joined(room, member)

    def _signal(self, message: Signal) -> None:
        assert self.room is not None and self.member is not None
        if self.room.mode != "p2p":
            raise ProtocolError(
                ErrorCode.FORBIDDEN, "'signal' is only for rooms of mode p2p", message.id
            )
        grants = self.member.grants
        if not (grants.can_publish or grants.can_subscribe):
            raise ProtocolError(ErrorCode.FORBIDDEN, "token grants no media", message.id)
        if not self.server.registry.relay_signal(
            self.room.name, self.member.id, message.to, message.payload
        ):
            raise ProtocolError(
                ErrorCode.INVALID_MESSAGE, f"no participant {message.to[:40]!r} here", message.id
            )

    async def _leave_room(self) -> None:
        room, member = self.room, self.member
        self.room = self.member = None
        if room is not None and member is not None:
            await self.server.media.on_left(room, member)
            await self.server.registry.leave(room.name, member.id, self._leave_reason)


def ws_close_code(ws: web.WebSocketResponse) -> int | None:
    return ws.close_code
