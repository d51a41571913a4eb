"""Room registry (control plane): who is in which room, capacity, identities, room events.

It decides; the node bus delivers. It never touches sockets, RTP or aiortc objects.
"""

from __future__ import annotations

import logging
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from . import protocol
from .bus import NodeBus, Recipient
from .logs import about
from .protocol import CloseReason, ErrorCode, ProtocolError
from .tokens import AccessToken, Grants

log = logging.getLogger(__name__)


def new_participant_id() -> str:
    return "PA_" + secrets.token_urlsafe(9)


@dataclass
class Member:
    id: str
    identity: str
    name: str
    grants: Grants
    joined_at: float = field(default_factory=time.time)
    client_stats: dict[str, Any] | None = None

    def public(self) -> dict[str, Any]:
        return {"id": self.id, "identity": self.identity, "name": self.name}


@dataclass
class RoomState:
    name: str
    mode: str
    created_at: float = field(default_factory=time.time)
    members: dict[str, Member] = field(default_factory=dict)
    by_identity: dict[str, str] = field(default_factory=dict)


class RoomRegistry:
    """Owns the rooms of this node and their membership."""

    def __init__(self, bus: NodeBus, *, max_participants: int, default_mode: str) -> None:
        self._bus = bus
        self._max_participants = max_participants
        self._default_mode = default_mode
        self._rooms: dict[str, RoomState] = {}
        # Observers of membership changes (the stats event log): (room, member, reason or None).
        self.listeners: list[Callable[[str, Member, CloseReason | None], None]] = []

    @property
    def rooms(self) -> dict[str, RoomState]:
        return self._rooms

    def get(self, room: str) -> RoomState | None:
        return self._rooms.get(room)

    async def join(
        self,
        access: AccessToken,
        name: str | None,
        make_recipient: Callable[[RoomState, Member], Recipient],
    ) -> tuple[RoomState, Member, Recipient]:
        """Admit a participant, replacing an older session of the same identity.

        `make_recipient` builds where the new member's messages go once it is admitted.
        """
        existing = self._rooms.get(access.room)
        previous = existing.by_identity.get(access.identity) if existing else None
        if previous is not None:
            self._bus.end(access.room, previous, CloseReason.DUPLICATE_IDENTITY.value)
            await self.leave(access.room, previous, CloseReason.DUPLICATE_IDENTITY)
        state = self._rooms.get(access.room)
        if state is None:
            if not await self._bus.claim_room(access.room):
                raise ProtocolError(ErrorCode.UNAVAILABLE, "the room is owned by another node")
            state = self._rooms.setdefault(
                access.room, RoomState(access.room, access.mode or self._default_mode)
            )
        if len(state.members) >= self._max_participants:
            raise ProtocolError(
                ErrorCode.ROOM_FULL, f"room is full ({self._max_participants} participants)"
            )
        member = Member(
            id=new_participant_id(),
            identity=access.identity,
            name=(name or access.name or access.identity)[: protocol.MAX_NAME_LENGTH],
            grants=access.grants,
        )
        state.members[member.id] = member
        state.by_identity[member.identity] = member.id
        recipient = make_recipient(state, member)
        self._bus.attach(state.name, member.id, recipient)
        self._bus.broadcast(
            state.name,
            protocol.encode({"type": "participant_joined", "participant": member.public()}),
            exclude=member.id,
        )
        self._notify(state.name, member, None)
        log.info(
            "room=%s participant=%s joined (%d in room)",
            state.name,
            member.id,
            len(state.members),
            extra=about(state.name, member.id),
        )
        return state, member, recipient

    async def leave(self, room: str, participant_id: str, reason: CloseReason) -> Member | None:
        """Remove a participant and tell the others; idempotent."""
        state = self._rooms.get(room)
        member = state.members.pop(participant_id, None) if state else None
        if state is None or member is None:
            return None
        if state.by_identity.get(member.identity) == participant_id:
            del state.by_identity[member.identity]
        self._bus.detach(room, participant_id)
        self._bus.broadcast(
            room,
            protocol.encode(
                {
                    "type": "participant_left",
                    "participant_id": participant_id,
                    "reason": reason.value,
                }
            ),
        )
        self._notify(room, member, reason)
        log.info(
            "room=%s participant=%s left: %s",
            room,
            participant_id,
            reason.value,
            extra=about(room, participant_id),
        )
        if not state.members:
            del self._rooms[room]
            await self._bus.release_room(room)
            log.info("room=%s closed (empty)", room, extra=about(room))
        return member

    def _notify(self, room: str, member: Member, reason: CloseReason | None) -> None:
        for listener in self.listeners:
            try:
                listener(room, member, reason)
            except Exception:  # an observer's bug never breaks membership
                log.exception("room listener failed")

    def relay_signal(self, room: str, sender: str, target: str, payload: Any) -> bool:
        state = self._rooms.get(room)
        if state is None or target not in state.members or target == sender:
            return False
        data = protocol.encode({"type": "signal", "from": sender, "payload": payload})
        return self._bus.send_to(room, target, data)

    def broadcast(self, room: str, message: dict[str, Any], exclude: str | None = None) -> int:
        return self._bus.broadcast(room, protocol.encode(message), exclude)

    def send_to(self, room: str, participant_id: str, message: dict[str, Any]) -> bool:
        return self._bus.send_to(room, participant_id, protocol.encode(message))

    def end(self, room: str, participant_id: str, reason: CloseReason) -> None:
        """Ask a participant's session to close; it leaves the room as it goes."""
        self._bus.end(room, participant_id, reason.value)
