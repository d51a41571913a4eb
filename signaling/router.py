"""Where a joining client's edge goes: the room side of a new participant, or of a resumed one.

`LocalRouter` keeps every room in this process. A multi-node router sends joins for rooms owned
by another node there, and keeps this interface.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol

from . import protocol
from .bus import Recipient
from .protocol import ClientMessage, CloseReason, Join
from .room_side import RoomSideParticipant, RoomSideParts
from .rooms import Member, RoomState
from .tokens import AccessToken


class RoomSide(Protocol):
    """What a WebSocket edge holds for its joined participant: the room side, here
    (`room_side.RoomSideParticipant`) or on another node (`cluster.RemoteRoomSide`)."""

    left: bool

    @property
    def participant_id(self) -> str: ...

    async def handle(self, message: ClientMessage) -> None: ...

    def detach(self) -> None: ...

    def attached_to(self, edge: Recipient) -> bool:
        """False once a resume moved the participant to another edge."""
        ...

    async def leave(self, reason: CloseReason) -> None: ...


class Router(Protocol):
    """What an edge asks to join: `LocalRouter`, or `cluster.ClusterRouter` (multi-node)."""

    async def join(self, access: AccessToken, message: Join, edge: Recipient) -> RoomSide:
        """Admit the client; replies `joined` (or raises ProtocolError)."""
        ...

    async def close(self) -> None: ...


class LocalRouter:
    """Joins and resumes for rooms held in this process."""

    def __init__(self, parts: RoomSideParts) -> None:
        self._parts = parts
        self._participants: dict[str, RoomSideParticipant] = {}
        self._by_resume_token: dict[str, RoomSideParticipant] = {}
        # Told about every resume token issued and retired (the cluster records owners).
        self.token_issued: Callable[[str], None] | None = None
        self.token_retired: Callable[[str], None] | None = None

    @property
    def participants(self) -> dict[str, RoomSideParticipant]:
        return self._participants

    async def join(
        self, access: AccessToken, message: Join, edge: Recipient
    ) -> RoomSideParticipant:
        """Admit the client; replies `joined` (or raises ProtocolError)."""
        if message.resume:
            resumed = self._resume(access, message, edge)
            if resumed is not None:
                return resumed
        parts = self._parts

        def make_participant(room: RoomState, member: Member) -> RoomSideParticipant:
            return RoomSideParticipant(parts, room, member, edge, self._forget)

        room, member, participant = await parts.registry.join(
            access, message.name, make_participant
        )
        assert isinstance(participant, RoomSideParticipant)
        self._participants[member.id] = participant
        self._remember_token(participant)
        edge.send(protocol.encode(protocol.with_ref(participant.joined_message(False), message.id)))
        await parts.media.on_joined(room, member)
        return participant

    def _resume(
        self, access: AccessToken, message: Join, edge: Recipient
    ) -> RoomSideParticipant | None:
        """Reattach a dropped session: same participant id, PeerConnections untouched."""
        assert message.resume is not None
        participant = self._by_resume_token.get(message.resume)
        if participant is None:
            return None
        if participant.member.identity != access.identity or participant.room.name != access.room:
            return None
        self._forget_token(message.resume)
        if participant.resume(edge) is not None:
            return None
        self._remember_token(participant)
        edge.send(protocol.encode(protocol.with_ref(participant.joined_message(True), message.id)))
        participant.flush()
        return participant

    def _remember_token(self, participant: RoomSideParticipant) -> None:
        self._by_resume_token[participant.resume_token] = participant
        if self.token_issued is not None:
            self.token_issued(participant.resume_token)

    def _forget_token(self, token: str) -> None:
        if self._by_resume_token.pop(token, None) is not None and self.token_retired is not None:
            self.token_retired(token)

    async def _forget(self, participant: RoomSideParticipant) -> None:
        self._participants.pop(participant.member.id, None)
        self._forget_token(participant.resume_token)

    async def close(self) -> None:
        for participant in list(self._participants.values()):
            await participant.leave(CloseReason.SHUTDOWN)
