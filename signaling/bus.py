"""The node bus: how messages reach the sessions of a room.

A session's WebSocket may live on another node than the room it joined (multi-node mode), so
the room logic never writes to a socket: it hands encoded messages to the bus, which delivers
them to each participant's recipient. `LocalBus` delivers in-process. A `ClusterBus` adds
what several nodes need (room ownership with fencing, resume tokens, operations sent to another
node, the node registry); it has two implementations: `redis_bus.RedisBus` (nodes on many
hosts) and `ipc_bus.IpcBus` (the workers of one host, talking to their supervisor).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Awaitable, Callable
from typing import Any, Protocol


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


class BusUnavailable(Exception):
    """The cluster state (Redis, or the workers' supervisor) did not answer in time."""


BusHandler = Callable[[dict[str, Any]], Awaitable[None]]


class ClusterBus(NodeBus):
    """A node bus shared by several nodes: what `cluster.ClusterRouter` and the cluster admin
    API use. Delivery to endpoints attached on this node stays in-process (a LocalBus)."""

    handler: BusHandler | None
    """Called with every operation another node publishes to this one."""
    on_room_lost: Callable[[str], Awaitable[None]] | None
    """Called when another node took over a room this node owned (fencing)."""

    def __init__(self, node_id: str) -> None:
        self.node_id = node_id
        self._local = LocalBus(node_id)
        self.handler = None
        self.on_room_lost = None

    @property
    @abstractmethod
    def healthy(self) -> bool:
        """The shared state answers."""

    @property
    @abstractmethod
    def settling(self) -> bool:
        """Liveness cannot be trusted now (just recovered): declare nobody dead."""

    @abstractmethod
    async def owner_of(self, room: str) -> str | None:
        """The live node owning `room`, if any."""

    async def place_room(self, room: str) -> str | None:
        """The node that will host `room`: its live owner, else this node (claimed now).
        None when the owner died between the two questions and the room is moving."""
        if await self.claim_room(room):
            return self.node_id
        owner = await self.owner_of(room)
        if owner is None and await self.claim_room(room):
            return self.node_id
        return owner

    @abstractmethod
    def fence(self, room: str) -> int | None:
        """This node's fencing token for an owned room (None when not owned)."""

    @abstractmethod
    async def node_alive(self, node_id: str) -> bool: ...

    @abstractmethod
    async def set_resume(self, token: str, ttl_s: int) -> None:
        """Record this node as the owner of a resumable session."""

    @abstractmethod
    async def resume_owner(self, token: str) -> str | None: ...

    @abstractmethod
    async def drop_resume(self, token: str) -> None: ...

    @abstractmethod
    def publish(self, node_id: str, op: dict[str, Any]) -> bool:
        """Queue an operation for another node; ordered per node. False when it was dropped."""

    @abstractmethod
    def advertise(self, url: str) -> None:
        """The base URL other nodes use for this node's HTTP API."""

    @abstractmethod
    async def node_info(self, node_id: str) -> dict[str, Any] | None: ...

    @abstractmethod
    async def live_nodes(self) -> dict[str, dict[str, Any]]:
        """Every live node and its info (id, url, started)."""

    # Local delivery: endpoints attached here (WebSocket edges or remote-edge proxies).
    def attach(self, room: str, participant_id: str, recipient: Recipient) -> None:
        self._local.attach(room, participant_id, recipient)

    def detach(self, room: str, participant_id: str) -> None:
        self._local.detach(room, participant_id)

    def send_to(self, room: str, participant_id: str, data: str) -> bool:
        return self._local.send_to(room, participant_id, data)

    def broadcast(self, room: str, data: str, exclude: str | None = None) -> int:
        return self._local.broadcast(room, data, exclude)

    def end(self, room: str, participant_id: str, reason: str) -> None:
        self._local.end(room, participant_id, reason)
