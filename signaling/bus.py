"""The node bus: how messages reach the sessions of a room.

A session's WebSocket may live on another node than the room it joined (multi-node mode), so
the room logic never writes to a socket: it hands encoded messages to the bus, which delivers
them to each participant's recipient. `LocalBus` delivers in-process; a Redis implementation
routes between nodes through pub/sub and keeps the same interface.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Protocol


class Recipient(Protocol):
    """Where the bus delivers one participant's messages: its room side, which passes them to
    its WebSocket edge (`edge.ClientEdge`, here, or `cluster.RemoteEdge`, on another node)."""

    def send(self, data: str) -> None:
        """Queue one encoded message; never blocks."""

    def end(self, reason: str) -> None:
        """Ask the session to close (for example: a newer session took its identity)."""


class NodeBus(ABC):
    """Delivery of room traffic to participants' endpoints, and room ownership."""

    node_id: str

    @abstractmethod
    async def start(self) -> None: ...

    @abstractmethod
    async def close(self) -> None: ...

    @abstractmethod
    async def claim_room(self, room: str) -> bool:
        """Make this node the room's owner; False when another live node owns it."""

    @abstractmethod
    async def release_room(self, room: str) -> None: ...

    @abstractmethod
    def attach(self, room: str, participant_id: str, recipient: Recipient) -> None:
        """Route the participant's messages to `recipient`."""

    @abstractmethod
    def detach(self, room: str, participant_id: str) -> None: ...

    @abstractmethod
    def send_to(self, room: str, participant_id: str, data: str) -> bool:
        """Deliver to one participant; False when it is not attached."""

    @abstractmethod
    def broadcast(self, room: str, data: str, exclude: str | None = None) -> int:
        """Deliver to every participant of the room but `exclude`; returns the count."""

    @abstractmethod
    def end(self, room: str, participant_id: str, reason: str) -> None:
        """Close the participant's session."""


class LocalBus(NodeBus):
    """Single-process bus: every room is owned here and endpoints are called directly."""

    def __init__(self, node_id: str = "local") -> None:
        self.node_id = node_id
        self._rooms: dict[str, dict[str, Recipient]] = {}
        self._owned: set[str] = set()

    async def start(self) -> None:
        return None

    async def close(self) -> None:
        self._rooms.clear()
        self._owned.clear()

    async def claim_room(self, room: str) -> bool:
        self._owned.add(room)
        return True

    async def release_room(self, room: str) -> None:
        self._owned.discard(room)

    def attach(self, room: str, participant_id: str, recipient: Recipient) -> None:
        self._rooms.setdefault(room, {})[participant_id] = recipient

    def detach(self, room: str, participant_id: str) -> None:
        members = self._rooms.get(room)
        if members is not None:
            members.pop(participant_id, None)
            if not members:
                del self._rooms[room]

    def send_to(self, room: str, participant_id: str, data: str) -> bool:
        recipient = self._rooms.get(room, {}).get(participant_id)
        if recipient is None:
            return False
        recipient.send(data)
        return True

    def broadcast(self, room: str, data: str, exclude: str | None = None) -> int:
        count = 0
        for participant_id, recipient in tuple(self._rooms.get(room, {}).items()):
            if participant_id != exclude:
                recipient.send(data)
                count += 1
        return count

    def end(self, room: str, participant_id: str, reason: str) -> None:
        recipient = self._rooms.get(room, {}).get(participant_id)
        if recipient is not None:
            recipient.end(reason)
