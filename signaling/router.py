"""Where a joining client's session goes: a new participant, or a resumed one.

`LocalRouter` keeps every room in this process. A multi-node router sends joins for rooms owned
by another node there, and keeps this interface.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol

from . import protocol
from .bus import Endpoint
from .participant import ParticipantSession, RoomSideParts
from .protocol import ClientMessage, CloseReason, Join
from .rooms import Member, RoomState
from .tokens import AccessToken


class Link(Protocol):
    """What a WebSocket edge holds for its joined participant: the room side, here or remote."""

    left: bool

    @property
    def participant_id(self) -> str: ...

    async def handle(self, message: ClientMessage) -> None: ...

    def detach(self) -> None: ...

    def attached_to(self, edge: Endpoint) -> bool:
        """False once a resume moved the participant to another edge."""
        ...

    async def leave(self, reason: CloseReason) -> None: ...


class Router(Protocol):
    """What an edge asks to join: `LocalRouter`, or `cluster.ClusterRouter` (multi-node)."""

    async def join(self, access: AccessToken, message: Join, edge: Endpoint) -> Link:
        """Admit the client; replies `joined` (or raises ProtocolError)."""
        ...

    async def close(self) -> None: ...


class LocalRouter:
    """Joins and resumes for rooms held in this process."""

    def __init__(self, parts: RoomSideParts) -> None:
        self._parts = parts
        self._sessions: dict[str, ParticipantSession] = {}
        self._by_resume_token: dict[str, ParticipantSession] = {}
        # Told about every resume token issued and retired (the cluster records owners).
        self.token_issued: Callable[[str], None] | None = None
        self.token_retired: Callable[[str], None] | None = None

    @property
    def sessions(self) -> dict[str, ParticipantSession]:
        return self._sessions

    async def join(self, access: AccessToken, message: Join, edge: Endpoint) -> ParticipantSession:
        """Admit the client; replies `joined` (or raises ProtocolError)."""
        if message.resume:
            resumed = self._resume(access, message, edge)
            if resumed is not None:
                return resumed
        parts = self._parts

        def make_session(room: RoomState, member: Member) -> ParticipantSession:
            return ParticipantSession(parts, room, member, edge, self._forget)

        room, member, endpoint = await parts.registry.join(access, message.name, make_session)
        assert isinstance(endpoint, ParticipantSession)
        self._sessions[member.id] = endpoint
        self._remember_token(endpoint)
        edge.send(protocol.encode(protocol.with_ref(endpoint.joined_message(False), message.id)))
        await parts.media.on_joined(room, member)
        return endpoint

    def _resume(
        self, access: AccessToken, message: Join, edge: Endpoint
    ) -> ParticipantSession | None:
        """Reattach a dropped session: same participant id, PeerConnections untouched."""
        assert message.resume is not None
        session = self._by_resume_token.get(message.resume)
        if session is None:
            return None
        if session.member.identity != access.identity or session.room.name != access.room:
            return None
        self._forget_token(message.resume)
        if session.resume(edge) is not None:
            return None
        self._remember_token(session)
        edge.send(protocol.encode(protocol.with_ref(session.joined_message(True), message.id)))
        session.flush()
        return session

    def _remember_token(self, session: ParticipantSession) -> None:
        self._by_resume_token[session.resume_token] = session
        if self.token_issued is not None:
            self.token_issued(session.resume_token)

    def _forget_token(self, token: str) -> None:
        if self._by_resume_token.pop(token, None) is not None and self.token_retired is not None:
            self.token_retired(token)

    async def _forget(self, session: ParticipantSession) -> None:
        self._sessions.pop(session.member.id, None)
        self._forget_token(session.resume_token)

    async def close(self) -> None:
        for session in list(self._sessions.values()):
            await session.leave(CloseReason.SHUTDOWN)
