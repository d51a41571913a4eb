"""Room side of one participant: its member record, where its messages go, and resume.

It lives where the room lives. The WebSocket (the edge) may drop and come back: while it is
gone, messages for the participant are buffered (bounded) for `resume_ttl_s`, its
PeerConnections stay up, and a `join` with the resume token reattaches a new edge without any
renegotiation. When the time runs out the participant leaves the room.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
from collections import deque
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any

from . import protocol
from .bus import Recipient
from .gateway import MediaGateway
from .logs import about
from .protocol import (
    Candidate,
    ClientMessage,
    CloseReason,
    ErrorCode,
    Leave,
    Mute,
    ProtocolError,
    PublishOffer,
    Signal,
    Stats,
    SubscribeAnswer,
    Subscription,
)
from .rooms import Member, RoomRegistry, RoomState

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class RoomSideSettings:
    buffer_max: int
    """Messages kept for a participant while its WebSocket is gone (`send_queue_max`)."""
    resume_ttl_s: float
    heartbeat_s: float
    """Told to the client in `joined`, with `client_limits`."""
    client_limits: Mapping[str, Any]


@dataclass(frozen=True)
class RoomSideParts:
    """What the room side of every participant of this node uses (wired in server.py)."""

    registry: RoomRegistry
    media: MediaGateway
    ice_servers: Callable[[str], list[dict[str, Any]]]  # identity -> the `joined` ICE servers
    settings: RoomSideSettings


class RoomSideParticipant:
    """Implements `Recipient` for the bus: forwards to the current edge or buffers."""

    def __init__(
        self,
        parts: RoomSideParts,
        room: RoomState,
        member: Member,
        edge: Recipient,
        on_gone: Callable[[RoomSideParticipant], Awaitable[None]],
    ) -> None:
        self._registry = parts.registry
        self._media = parts.media
        self._ice_servers = parts.ice_servers
        self._settings = parts.settings
        self.room = room
        self.member = member
        self.resume_token = secrets.token_urlsafe(24)
        self._edge: Recipient | None = edge
        self._buffer: deque[str] = deque()
        self._buffer_overflowed = False
        self._expiry: asyncio.TimerHandle | None = None
        self._on_gone = on_gone
        self._leaving: asyncio.Task[None] | None = None
        self.left = False

    @property
    def participant_id(self) -> str:
        return self.member.id

    # --- Recipient -------------------------------------------------------------------------

    def send(self, data: str) -> None:
        if self._edge is not None:
            self._edge.send(data)
        elif len(self._buffer) < self._settings.buffer_max:
            self._buffer.append(data)
        else:
            self._buffer_overflowed = True

    def end(self, reason: str) -> None:
        """Close the participant's session for good (duplicate identity, removed, failed)."""
        if self._edge is not None:
            self._edge.end(reason)
        else:
            self._schedule_leave(CloseReason(reason))

    # --- edge attachment ------------------------------------------------------------------

    def attached_to(self, edge: Recipient) -> bool:
        return self._edge is edge

    def detach(self) -> None:
        """The WebSocket dropped: keep the participant for resume_ttl_s."""
        if self.left or self._edge is None:
            return
        self._edge = None
        ttl = self._settings.resume_ttl_s
        log.info(
            "room=%s participant=%s disconnected: resumable for %.0fs",
            self.room.name,
            self.member.id,
            ttl,
            extra=about(self.room.name, self.member.id),
        )
        self._expiry = asyncio.get_running_loop().call_later(
            ttl, self._schedule_leave, CloseReason.DISCONNECTED
        )
        self._announce_connection(protocol.ConnectionState.RECONNECTING)

    def resume(self, edge: Recipient) -> str | None:
        """Attach a new edge; returns why it cannot resume, or None on success."""
        if self.left:
            return "the session has ended"
        if self._buffer_overflowed:
            return "too much was missed while disconnected"
        if self._expiry is not None:
            self._expiry.cancel()
            self._expiry = None
        old, self._edge = self._edge, edge
        if old is not None:
            # The old socket is still open (a half-dead connection): the new one wins. The old
            # edge is detached first, so its cleanup neither leaves the room nor detaches us.
            old.end(CloseReason.DUPLICATE_IDENTITY.value)
        was_detached = old is None
        self.resume_token = secrets.token_urlsafe(24)
        if was_detached:
            self._announce_connection(protocol.ConnectionState.CONNECTED)
        return None

    def _announce_connection(self, state: protocol.ConnectionState) -> None:
        """Tell the others that this participant's WebSocket dropped or came back."""
        self._registry.broadcast(
            self.room.name, protocol.participant_connection(self.member.id, state), self.member.id
        )

    def flush(self) -> None:
        """Deliver what was buffered while detached (after the new `joined`)."""
        edge = self._edge
        while edge is not None and self._buffer:
            edge.send(self._buffer.popleft())

    def _schedule_leave(self, reason: CloseReason) -> None:
        if not self.left and self._leaving is None:
            # Keep a reference: the loop holds tasks only weakly.
            self._leaving = asyncio.get_running_loop().create_task(self.leave(reason))

    async def leave(self, reason: CloseReason) -> None:
        """Leave the room: membership first (the others hear at once), then media; idempotent."""
        if self.left:
            return
        self.left = True
        if self._expiry is not None:
            self._expiry.cancel()
        self._buffer.clear()
        await self._registry.leave(self.room.name, self.member.id, reason)
        await self._on_gone(self)
        await self._media.on_left(self.room, self.member)

    # --- messages from the client ---------------------------------------------------------

    def joined_message(self, resumed: bool) -> dict[str, Any]:
        room, member, settings = self.room, self.member, self._settings
        return {
            "type": "joined",
            "protocol": protocol.PROTOCOL_VERSION,
            "participant": member.public(),
            "room": {"name": room.name, "mode": room.mode},
            "participants": [m.public() for m in room.members.values() if m.id != member.id],
            "tracks": self._media.tracks(room),
            "ice_servers": self._ice_servers(member.identity),
            "resume_token": self.resume_token,
            "resumed": resumed,
            "heartbeat_s": settings.heartbeat_s,
            "limits": dict(settings.client_limits),
        }

    async def handle(self, message: ClientMessage) -> None:
        """A message of a joined client (anything but join and ping)."""
        if isinstance(message, Leave):
            await self.leave(CloseReason.LEFT)
            if self._edge is not None:
                self._edge.end(CloseReason.LEFT.value)
        elif isinstance(message, Signal):
            self._signal(message)
        elif isinstance(message, Stats):
            self.member.client_stats = message.report
        elif isinstance(message, PublishOffer | SubscribeAnswer | Candidate | Mute | Subscription):
            await self._media.handle(self.room, self.member, message, self._reply)
        else:
            raise ProtocolError(ErrorCode.UNKNOWN_TYPE, "unhandled message type", message.id)

    def _reply(self, message: dict[str, Any], ref: str | int | None) -> None:
        self.send(protocol.encode(protocol.with_ref(message, ref)))

    def _signal(self, message: Signal) -> None:
        if self.room.mode != "p2p":
            raise ProtocolError(
                ErrorCode.FORBIDDEN, "'signal' is only for rooms of mode p2p", message.id
            )
        grants = self.member.grants
        if not (grants.can_publish or grants.can_subscribe):
            raise ProtocolError(ErrorCode.FORBIDDEN, "token grants no media", message.id)
        if not self._registry.relay_signal(
            self.room.name, self.member.id, message.to, message.payload
        ):
            raise ProtocolError(
                ErrorCode.INVALID_MESSAGE, f"no participant {message.to[:40]!r} here", message.id
            )
