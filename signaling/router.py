"""Where a joining client's session goes: a new participant, or a resumed one.

`LocalRouter` keeps every room in this process. A multi-node router sends joins for rooms owned
by another node there, and keeps this interface.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from . import protocol
from .bus import Endpoint
from .participant import ParticipantSession
from .protocol import CloseReason, Join
from .rooms import Member, RoomState
from .tokens import AccessToken

if TYPE_CHECKING:
    from .server import Server


class LocalRouter:
    """Joins and resumes for rooms held in this process."""

    def __init__(self, server: Server) -> None:
        self._server = server
        self._sessions: dict[str, ParticipantSession] = {}
        self._by_resume_token: dict[str, ParticipantSession] = {}

    @property
    def sessions(self) -> dict[str, ParticipantSession]:
        return self._sessions

    async def join(self, access: AccessToken, message: Join, edge: Endpoint) -> ParticipantSession:
        """Admit the client; replies `joined` (or raises ProtocolError)."""
        if message.resume:
            resumed = self._resume(access, message, edge)
            if resumed is not None:
                return resumed
        server = self._server

        def make_session(room: RoomState, member: Member) -> ParticipantSession:
            return ParticipantSession(server, room, member, edge, self._forget)

        room, member, endpoint = await server.registry.join(access, message.name, make_session)
        assert isinstance(endpoint, ParticipantSession)
        self._sessions[member.id] = endpoint
        self._by_resume_token[endpoint.resume_token] = endpoint
        edge.send(protocol.encode(protocol.with_ref(endpoint.joined_message(False), message.id)))
        await server.media.on_joined(room, member)
        return endpoint

    def _resume(
        self, access: AccessToken, message: Join, edge: Endpoint
    ) -> ParticipantSession | None:
        """Reattach a dropped session: same participant id, PeerConnections untouched."""
        assert message.resume is not None
        session = self._by_resume_token.pop(message.resume, None)
        if session is None:
            return None
        if session.member.identity != access.identity or session.room.name != access.room:
            return None
        if session.resume(edge) is not None:
            return None
        self._by_resume_token[session.resume_token] = session
        edge.send(protocol.encode(protocol.with_ref(session.joined_message(True), message.id)))
        session.flush()
        return session

    async def _forget(self, session: ParticipantSession) -> None:
        self._sessions.pop(session.member.id, None)
        self._by_resume_token.pop(session.resume_token, None)

    async def close(self) -> None:
        for session in list(self._sessions.values()):
            await session.leave(CloseReason.SHUTDOWN)
