"""Rooms spanning workers and nodes: a room's home, its shards, and the track pipes between them.

A room has one **home**: the node that owns it in the cluster (with fencing), which keeps its
membership, its events and every member's room side (`room_side.RoomSideParticipant`), as
before. Once `room_shard_max_participants` members have their media on the home, the media of
each later member goes to another live node, the least loaded (a **shard** of the room): the
home keeps the member's room side and forwards its media messages (`publish_offer`,
`subscribe_answer`, `candidate`, `mute`, `subscription`) to the shard, whose own media gateway
runs the member's PeerConnections. What the shard's gateway says to members (subscribe offers,
answers, `track_published`, ...) goes back to the home, which delivers or broadcasts it like
its own, so every member sees and is seen by everyone.

Published tracks cross as **pipes** (`media/pipe.py`): the home knows every track of the room
(its own, and each shard's, reported by the shard) and every node with members, and asks, for
each track and each other node with members, the receiving node to expect the pipe and the
origin node to send it. A pipe that ends by itself (its origin died or went silent) is
reported to the home, which makes it again if both ends still need it.

Operations on the bus (JSON, on the target node's channel), besides cluster.py's:
  home -> shard:  shard_join {room, mode, home, member}, shard_msg {room, pid, text},
                  shard_leave {room, pid}
  shard -> home:  shard_ready {room, node, address}, shard_tracks {room, node, address, tracks},
                  shard_send {room, pid, data}, shard_broadcast {room, data, exclude},
                  shard_end {room, pid, reason}
  home -> either: pipe_in {room, pipe_id, track, origin}, pipe_out {room, pipe_id, publisher,
                  track, far}
  either -> home: pipe_ended {room, pipe_id}
  DataChannel:    data {room, node, label, text, to}: shard -> home, home -> every other node
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Callable, Coroutine
from typing import Any

from relayroom.media.errors import MediaError
from relayroom.media.events import (
    MediaEvent,
    TrackInfo,
    TrackMuted,
    TrackPublished,
    TrackUnpublished,
)
from relayroom.media.pipe import Address, PipedTrack, PipeEndpoint, PipeReceiver, PipeSettings
from relayroom.media.pipe_wire import pipe_key
from relayroom.media.tasks import TaskOwner

from . import protocol
from .bus import BusUnavailable, ClusterBus
from .config import Config
from .gateway import MediaGateway, MediaMessage, data_settings
from .logs import about
from .protocol import CloseReason, ErrorCode, ProtocolError
from .rooms import Member, RoomState
from .tokens import Grants

log = logging.getLogger(__name__)

OPS = (
    "shard_join",
    "shard_msg",
    "shard_leave",
    "shard_ready",
    "shard_tracks",
    "shard_send",
    "shard_broadcast",
    "shard_end",
    "pipe_in",
    "pipe_out",
    "pipe_ended",
    "data",
)

EndMember = Callable[[str, str, CloseReason], Coroutine[Any, Any, None]]


def member_to_wire(member: Member) -> dict[str, Any]:
    g = member.grants
    return {
        "id": member.id,
        "identity": member.identity,
        "name": member.name,
        "grants": {
            "can_publish": g.can_publish,
            "can_subscribe": g.can_subscribe,
            "can_publish_data": g.can_publish_data,
        },
    }


def member_from_wire(data: dict[str, Any]) -> Member:
    g = data["grants"]
    return Member(
        id=str(data["id"]),
        identity=str(data["identity"]),
        name=str(data["name"]),
        grants=Grants(
            can_publish=bool(g["can_publish"]),
            can_subscribe=bool(g["can_subscribe"]),
            can_publish_data=bool(g["can_publish_data"]),
        ),
    )


def _address(value: Any) -> Address:
    host, port = value
    return str(host), int(port)


class HomeMessages:
    """A shard node's `gateway.RoomMessages`: every message for a member goes to the room's
    home node, which delivers it (or broadcasts it to the whole room)."""

    def __init__(self, bus: ClusterBus) -> None:
        self._bus = bus
        self.homes: dict[str, str] = {}  # room -> its home node

    def _post(self, room: str, op: dict[str, Any]) -> bool:
        home = self.homes.get(room)
        return home is not None and self._bus.publish(home, {"room": room, **op})

    def send_to(self, room: str, participant_id: str, message: dict[str, Any]) -> bool:
        data = protocol.encode(message)
        return self._post(room, {"op": "shard_send", "pid": participant_id, "data": data})

    def broadcast(self, room: str, message: dict[str, Any], exclude: str | None = None) -> int:
        if message.get("type") == "active_speakers":
            # The home ranks every speaker it receives (shard tracks are piped to it): a
            # second ranking from here would make the room's alternate.
            return 0
        data = protocol.encode(message)
        self._post(room, {"op": "shard_broadcast", "data": data, "exclude": exclude})
        return 0

    def end(self, room: str, participant_id: str, reason: CloseReason) -> None:
        self._post(room, {"op": "shard_end", "pid": participant_id, "reason": reason.value})


class Shards:
    """This node's part in rooms that span nodes: as a home (placement, pipes) and as a shard
    (a second media gateway for the members other nodes placed here)."""

    def __init__(
        self,
        bus: ClusterBus,
        home_media: MediaGateway,
        shard_media: MediaGateway,
        shard_messages: HomeMessages,
        endpoint: PipeEndpoint,
        max_per_node: int,
    ) -> None:
        self._bus = bus
        self._home_media = home_media
        self._shard_media = shard_media
        self._shard_messages = shard_messages
        self._endpoint = endpoint
        self._max = max_per_node
        self._address: Address | None = None
        self._ready = asyncio.Event()
        self._tasks = TaskOwner()
        self.end_member: EndMember | None = None
        """How the home ends a member for good (its shard died): set by the cluster router."""
        # home role
        self._placed: dict[tuple[str, str], str] = {}  # (room, member) -> shard node
        self._placements: dict[str, int] = {}  # shard node -> members placed there by us
        self._addresses: dict[str, Address] = {}  # shard node -> its pipe address
        self._remote_tracks: dict[str, dict[str, list[PipedTrack]]] = {}  # room -> node -> tracks
        self._pipes: dict[str, dict[tuple[str, str, str], int]] = {}  # room -> key -> pipe id
        # shard role
        self._shard_rooms: dict[str, RoomState] = {}
        home_media.remote = self
        home_media.listeners.append(self._home_event)
        home_media.pipe_ended.append(self._pipe_ended_here)
        shard_media.listeners.append(self._shard_event)
        shard_media.pipe_ended.append(self._pipe_ended_here)
        home_media.data_relayed = self._home_data
        home_media.extra_rooms = lambda: shard_media.rooms
        shard_media.data_relayed = self._shard_data

    async def start(self) -> None:
        """Bind the pipe socket, then watch the nodes this one shares rooms with."""
        self._address = await self._endpoint.start()
        self._ready.set()
        while True:
            await asyncio.sleep(1.0)
            try:
                await self._check_nodes()
            except BusUnavailable:
                continue
            except Exception:  # one bad round must not end the watch
                log.exception("checking the shard nodes failed")

    async def _check_nodes(self) -> None:
        if self._bus.settling:
            return
        for node in self.shard_nodes():
            if not await self._bus.node_alive(node):
                await self.shard_gone(node)
        for room, home in list(self._shard_messages.homes.items()):
            if not await self._bus.node_alive(home):
                await self.home_gone(room)

    async def home_gone(self, room: str) -> None:
        """A room's home died: the members it placed here are gone with it (they rejoin)."""
        log.warning("room=%s: its home is gone: dropping its members here", room, extra=about(room))
        state = self._shard_rooms.pop(room, None)
        self._shard_messages.homes.pop(room, None)
        if state is None:
            return
        for member in list(state.members.values()):
            await self._shard_media.on_left(state, member)

    def local_changed(self, room: str) -> None:
        self._spawn(self._sync_pipes(room), "sync-pipes")

    async def _addr(self) -> Address:
        await self._ready.wait()
        assert self._address is not None
        return self._address

    @property
    def node_id(self) -> str:
        return self._bus.node_id

    def _spawn(self, coro: Coroutine[Any, Any, Any], name: str) -> None:
        self._tasks.spawn(coro, name)

    # ------------------------------------------------------------------ home: placement

    async def place(self, room: RoomState, member: Member) -> bool:
        grants = member.grants
        if not (grants.can_publish or grants.can_subscribe or grants.can_publish_data):
            return False
        if self._home_media.local_member_count(room.name) < self._max:
            return False
        try:
            nodes = await self._bus.live_nodes()
        except BusUnavailable:
            return False
        candidates = [n for n, info in nodes.items() if n != self.node_id and not _draining(info)]
        if not candidates:
            return False
        shard = min(candidates, key=lambda n: (_load(nodes[n]) + self._placements.get(n, 0), n))
        self._placed[(room.name, member.id)] = shard
        self._placements[shard] = self._placements.get(shard, 0) + 1
        log.info(
            "room=%s participant=%s media on shard %s (%d on the home)",
            room.name,
            member.id,
            shard,
            self._home_media.local_member_count(room.name),
            extra=about(room.name, member.id),
        )
        self._bus.publish(
            shard,
            {
                "op": "shard_join",
                "room": room.name,
                "mode": room.mode,
                "home": self.node_id,
                "member": member_to_wire(member),
            },
        )
        return True

    def hosts(self, room: str, participant_id: str) -> bool:
        return (room, participant_id) in self._placed

    def tracks(self, room: str) -> list[tuple[str, TrackInfo]]:
        return [
            (t.publisher_id, t.info)
            for node_tracks in self._remote_tracks.get(room, {}).values()
            for t in node_tracks
        ]

    def shard_of(self, room: str, participant_id: str) -> str | None:
        return self._placed.get((room, participant_id))

    async def handle(self, room: RoomState, member: Member, message: MediaMessage) -> None:
        shard = self._placed.get((room.name, member.id))
        if shard is not None:
            self._bus.publish(
                shard,
                {
                    "op": "shard_msg",
                    "room": room.name,
                    "pid": member.id,
                    "text": protocol.to_wire(message),
                },
            )

    async def left(self, room: RoomState, member: Member) -> None:
        shard = self._placed.pop((room.name, member.id), None)
        if shard is None:
            return
        self._placements[shard] = max(0, self._placements.get(shard, 1) - 1)
        self._bus.publish(shard, {"op": "shard_leave", "room": room.name, "pid": member.id})
        if shard not in self._room_shards(room.name):
            self._remote_tracks.get(room.name, {}).pop(shard, None)
            self._forget_pipes(room.name, lambda key: shard in key)
        self._spawn(self._sync_pipes(room.name), "sync-pipes")

    def _room_shards(self, room: str) -> set[str]:
        return {node for (r, _), node in self._placed.items() if r == room}

    # ------------------------------------------------------------------ home: pipes

    def _home_event(self, room: str, event: MediaEvent) -> None:
        if isinstance(event, TrackPublished | TrackUnpublished):
            self._spawn(self._sync_pipes(room), "sync-pipes")

    async def _sync_pipes(self, room: str) -> None:
        """Make the pipes the room needs: each track to each other node with members."""
        if not self._room_shards(room):
            self._pipes.pop(room, None)
            return
        here = await self._addr()
        receivers = set(self._room_shards(room))
        if self._home_media.wants_piped_tracks(room):
            receivers.add(self.node_id)
        tracks: list[tuple[str, PipedTrack]] = [
            (self.node_id, t) for t in self._home_media.local_tracks(room)
        ]
        for node, node_tracks in self._remote_tracks.get(room, {}).items():
            tracks += [(node, t) for t in node_tracks]
        pipes = self._pipes.setdefault(room, {})
        live: set[tuple[str, str, str]] = set()
        for origin, track in tracks:
            for node in receivers - {origin}:
                key = (track.publisher_id, track.info.id, node)
                live.add(key)
                if key in pipes:
                    continue
                origin_addr = here if origin == self.node_id else self._addresses.get(origin)
                far_addr = here if node == self.node_id else self._addresses.get(node)
                if origin_addr is None or far_addr is None:
                    continue  # that shard has not said where its pipes go yet
                pipe_id = random.randrange(1, 1 << 32)
                pipes[key] = pipe_id
                pipe_in = {
                    "op": "pipe_in",
                    "room": room,
                    "pipe_id": pipe_id,
                    "track": track.to_wire(),
                    "origin": list(origin_addr),
                    "home": self.node_id,
                }
                pipe_out = {
                    "op": "pipe_out",
                    "room": room,
                    "pipe_id": pipe_id,
                    "publisher": track.publisher_id,
                    "track": track.info.id,
                    "far": list(far_addr),
                }
                # The far end first: it then takes the first packets.
                await self._send_or_run(node, pipe_in)
                await self._send_or_run(origin, pipe_out)
        for key in [k for k in pipes if k not in live]:
            del pipes[key]  # the track or the node went: its ends close by themselves

    async def _send_or_run(self, node: str, op: dict[str, Any]) -> None:
        if node == self.node_id:
            await self.on_op(op)
        else:
            self._bus.publish(node, op)

    def _forget_pipes(self, room: str, which: Callable[[tuple[str, str, str]], bool]) -> None:
        pipes = self._pipes.get(room, {})
        for key in [k for k in pipes if which(k)]:
            del pipes[key]

    def _pipe_ended_here(self, room: str, receiver: PipeReceiver) -> None:
        home = self._shard_messages.homes.get(room) if room in self._shard_rooms else None
        op = {"op": "pipe_ended", "room": room, "pipe_id": receiver.pipe_id}
        if home is not None and home != self.node_id:
            self._bus.publish(home, op)
        else:
            self._spawn(self.on_op(op), "pipe-ended")

    # ------------------------------------------------------------------ DataChannel messages

    def _data_op(
        self, room: str, label: str, text: str, to: frozenset[str] | None
    ) -> dict[str, Any]:
        return {
            "op": "data",
            "room": room,
            "node": self.node_id,
            "label": label,
            "text": text,
            "to": sorted(to) if to is not None else None,
        }

    def _home_data(self, room: str, label: str, text: str, to: frozenset[str] | None) -> None:
        """A home member sent a message: every shard of the room relays it too."""
        shards = self._room_shards(room)
        if shards:
            op = self._data_op(room, label, text, to)
            for node in shards:
                self._bus.publish(node, op)

    def _shard_data(self, room: str, label: str, text: str, to: frozenset[str] | None) -> None:
        """A member placed here sent a message: its home relays it to the rest of the room."""
        home = self._shard_messages.homes.get(room)
        if home is not None:
            self._bus.publish(home, self._data_op(room, label, text, to))

    def _on_data(self, room: str, op: dict[str, Any]) -> None:
        label, text, sender = str(op["label"]), str(op["text"]), str(op["node"])
        to = frozenset(str(t) for t in op["to"]) if op.get("to") is not None else None
        if self._media_of(room) is self._shard_media:
            self._shard_media.deliver_data(room, label, text, to)
            return
        self._home_media.deliver_data(room, label, text, to)
        for node in self._room_shards(room) - {sender}:
            self._bus.publish(node, op)

    # ------------------------------------------------------------------ home: failures

    async def shard_gone(self, node: str) -> None:
        """A shard node died: its members lost their media; they leave, and rejoin anew."""
        gone = [(room, pid) for (room, pid), n in self._placed.items() if n == node]
        address = self._addresses.pop(node, None)
        self._placements.pop(node, None)
        if address is not None:  # its tracks end now, not after the pipe timeout
            await self._home_media.close_pipes_with(address)
        for room, pid in gone:
            self._placed.pop((room, pid), None)
            log.warning(
                "room=%s participant=%s: its shard %s is gone",
                room,
                pid,
                node,
                extra=about(room, pid),
            )
            if self.end_member is not None:
                await self.end_member(room, pid, CloseReason.NODE_FAILED)
        for room in {room for room, _ in gone}:
            self._remote_tracks.get(room, {}).pop(node, None)
            self._forget_pipes(room, lambda key: node in key)
            self._spawn(self._sync_pipes(room), "sync-pipes")

    def hosted_count(self) -> int:
        """Members of other nodes' rooms whose media is here (for this node's load report)."""
        return sum(len(state.members) for state in self._shard_rooms.values())

    def shard_nodes(self) -> set[str]:
        return set(self._placed.values())

    # ------------------------------------------------------------------ shard role

    def _shard_event(self, room: str, event: MediaEvent) -> None:
        if isinstance(event, TrackPublished | TrackUnpublished | TrackMuted):
            self._spawn(self._report_tracks(room), "report-tracks")

    async def _report_tracks(self, room: str) -> None:
        home = self._shard_messages.homes.get(room)
        if home is None:
            return
        self._bus.publish(
            home,
            {
                "op": "shard_tracks",
                "room": room,
                "node": self.node_id,
                "address": list(await self._addr()),
                "tracks": [t.to_wire() for t in self._shard_media.local_tracks(room)],
            },
        )

    # ------------------------------------------------------------------ operations

    async def on_op(self, op: dict[str, Any]) -> None:
        """One operation of this module (see the module docstring); malformed ones are
        logged and dropped."""
        try:
            await self._on_op(op)
        except (KeyError, TypeError, ValueError) as exc:
            log.warning("malformed %s operation: %r", op.get("op"), exc)

    async def _on_op(self, op: dict[str, Any]) -> None:
        kind, room = op["op"], str(op["room"])
        if kind == "shard_join":
            await self._shard_join(room, op)
        elif kind == "shard_msg":
            await self._shard_msg(room, str(op["pid"]), str(op["text"]))
        elif kind == "shard_leave":
            await self._shard_leave(room, str(op["pid"]))
        elif kind == "shard_ready":
            self._addresses[str(op["node"])] = _address(op["address"])
            await self._sync_pipes(room)
        elif kind == "shard_tracks":
            node = str(op["node"])
            if node in self._room_shards(room):
                self._addresses[node] = _address(op["address"])
                tracks = [PipedTrack.from_wire(t) for t in op["tracks"]]
                self._remote_tracks.setdefault(room, {})[node] = tracks
                await self._sync_pipes(room)
        elif kind == "shard_send":
            self._bus.send_to(room, str(op["pid"]), str(op["data"]))
        elif kind == "shard_broadcast":
            exclude = op.get("exclude")
            self._bus.broadcast(room, str(op["data"]), str(exclude) if exclude else None)
        elif kind == "shard_end":
            self._bus.end(room, str(op["pid"]), str(CloseReason(op["reason"]).value))
        elif kind == "pipe_in":
            media = self._media_of(room)
            if media is None:
                return  # the room left this node meanwhile
            track = PipedTrack.from_wire(op["track"])
            media.receive_piped_track(room, track, int(op["pipe_id"]), _address(op["origin"]))
        elif kind == "pipe_out":
            media = self._media_of(room)
            if media is None:
                return
            try:
                await media.pipe_track(
                    room,
                    str(op["publisher"]),
                    str(op["track"]),
                    int(op["pipe_id"]),
                    _address(op["far"]),
                )
            except MediaError as exc:
                log.info("room=%s: no pipe %s: %s", room, op["pipe_id"], exc, extra=about(room))
        elif kind == "data":
            self._on_data(room, op)
        elif kind == "pipe_ended":
            pipe_id = int(op["pipe_id"])
            self._forget_pipes(room, lambda key: self._pipes[room][key] == pipe_id)
            await self._sync_pipes(room)

    def _media_of(self, room: str) -> MediaGateway | None:
        """The gateway holding this node's part of `room`: the shard's, or the home's when
        this node owns the room; None when it has no part of it any more."""
        if self._bus.fence(room) is not None:
            return self._home_media  # (a shard part left from a dead home goes at next check)
        if room in self._shard_rooms:
            return self._shard_media
        return None

    async def _shard_join(self, room: str, op: dict[str, Any]) -> None:
        member = member_from_wire(op["member"])
        self._shard_messages.homes[room] = str(op["home"])
        state = self._shard_rooms.setdefault(room, RoomState(room, str(op["mode"])))
        state.members[member.id] = member
        await self._shard_media.on_joined(state, member)
        self._bus.publish(
            str(op["home"]),
            {
                "op": "shard_ready",
                "room": room,
                "node": self.node_id,
                "address": list(await self._addr()),
            },
        )

    async def _shard_msg(self, room: str, pid: str, text: str) -> None:
        state = self._shard_rooms.get(room)
        member = state.members.get(pid) if state is not None else None
        if state is None or member is None:
            return
        messages = self._shard_messages

        def reply(message: dict[str, Any], ref: str | int | None) -> None:
            messages.send_to(room, pid, protocol.with_ref(message, ref))

        try:
            message = protocol.parse_client_message(text)
            if not isinstance(message, MediaMessage):
                raise ProtocolError(ErrorCode.INVALID_MESSAGE, "not a media message", message.id)
            await self._shard_media.handle(state, member, message, reply)
        except ProtocolError as exc:
            messages.send_to(room, pid, protocol.error(exc.code, exc.message, exc.ref))

    async def _shard_leave(self, room: str, pid: str) -> None:
        state = self._shard_rooms.get(room)
        member = state.members.pop(pid, None) if state is not None else None
        if state is None or member is None:
            return
        await self._shard_media.on_left(state, member)
        if not state.members:
            del self._shard_rooms[room]
            self._shard_messages.homes.pop(room, None)
        else:
            await self._report_tracks(room)

    async def close(self) -> None:
        await self._tasks.close()
        await self._shard_media.close()
        await self._endpoint.close()


def pipe_endpoint(config: Config, secret: str) -> PipeEndpoint:
    """This node's pipe socket (bound by `Shards.start`), keyed by the cluster secret."""
    settings = PipeSettings(
        host=config.pipe_host,
        advertised_host=config.pipe_advertised_host or "",
        port_min=config.pipe_port_min,
        port_max=config.pipe_port_max,
        keepalive_s=config.pipe_keepalive_s,
        timeout_s=config.pipe_timeout_s,
    )
    return PipeEndpoint(pipe_key(secret), settings)


def build_shards(
    config: Config, bus: ClusterBus, home_media: MediaGateway, endpoint: PipeEndpoint
) -> Shards:
    """The shard side of a cluster node: a second media gateway, for the members other
    nodes' rooms place here, whose messages go to each room's home. Its DataChannel relay
    keeps no persistent topics (the home's does)."""
    messages = HomeMessages(bus)
    shard_media = MediaGateway(
        home_media.settings, messages, data=data_settings(config), pipes=endpoint
    )
    return Shards(
        bus, home_media, shard_media, messages, endpoint, config.room_shard_max_participants
    )


def _load(info: dict[str, Any]) -> float:
    load = info.get("load")
    return float(load.get("participants", 0)) if isinstance(load, dict) else 0.0


def _draining(info: dict[str, Any]) -> bool:
    load = info.get("load")
    return bool(load.get("draining")) if isinstance(load, dict) else False
