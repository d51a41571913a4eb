"""Multi-node routing over a ClusterBus (LiveKit's model: one owner node per room).

The nodes are the processes sharing a Redis (`redis_bus.RedisBus`), or the workers of one host
(`ipc_bus.IpcBus`, `relayroom serve --workers N`). Any node accepts a WebSocket. The bus decides
where a new room lives (`place_room`: with Redis the node that receives the first join claims
it; a host's supervisor picks its least-loaded worker). If the room lives here, the session
joins locally. Otherwise the edge forwards the session's messages to the owner node over the
bus and the owner sends the participant's messages back; media always terminates on the owner.

Operations between nodes (JSON on the target node's channel):
  edge -> owner: join {req, node, conn, text}, msg {node, conn, text}, detach/leave {node, conn}
  owner -> edge: join_result {req, ok, participant_id | code, message}, deliver {conn, data},
                 end {conn, reason}
"""

from __future__ import annotations

import asyncio
import logging
import secrets
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any

from relayroom.media.tasks import TaskOwner, cancel_and_wait

from . import protocol
from .bus import BusUnavailable, ClusterBus, Recipient
from .cluster_shard import OPS as SHARD_OPS
from .cluster_shard import Shards
from .logs import about
from .protocol import ClientMessage, CloseReason, ErrorCode, Join, ProtocolError
from .room_side import RoomSideParticipant
from .router import LocalRouter, RoomSide
from .tokens import AccessToken, TokenError, verify_token

log = logging.getLogger(__name__)

JOIN_TIMEOUT_S = 5.0
RESUME_KEY_TTL_S = 24 * 3600


class RemoteEdge:
    """Owner side: the Recipient of a participant whose WebSocket is on another node.

    What the participant is sent during its join (`joined` first) waits here until the join's
    reply is published: the edge node registers the participant's RemoteRoomSide on that reply, and
    a client told `joined` before then would be missing from the sessions the edge moves away
    when this node dies (it would never get `reconnect`).
    """

    def __init__(self, bus: ClusterBus, node: str, conn: str) -> None:
        self.node, self.conn = node, conn
        self._bus = bus
        self._held: list[dict[str, Any]] | None = []

    def send(self, data: str) -> None:
        self._post({"op": "deliver", "conn": self.conn, "data": data})

    def end(self, reason: str) -> None:
        self._post({"op": "end", "conn": self.conn, "reason": reason})

    def release(self) -> None:
        """The join's reply is on its way: send what waited for it, then send directly."""
        held, self._held = self._held or [], None
        for op in held:
            self._bus.publish(self.node, op)

    def _post(self, op: dict[str, Any]) -> None:
        if self._held is None:
            self._bus.publish(self.node, op)
        else:
            self._held.append(op)


class RemoteRoomSide:
    """Edge side: the RoomSide of a participant whose room is on another node."""

    def __init__(
        self, router: ClusterRouter, owner: str, conn: str, room: str, participant_id: str
    ) -> None:
        self.owner, self.conn = owner, conn
        self._router = router
        self._room = room
        self._participant_id = participant_id
        self.left = False
        self._log("joined here; its room is on node %s", owner)

    def _log(self, what: str, *args: object) -> None:
        # The edge node's own lines about the participant (the room's node logs the rest).
        log.info(
            "room=%s participant=%s " + what,
            self._room,
            self._participant_id,
            *args,
            extra=about(self._room, self._participant_id),
        )

    @property
    def participant_id(self) -> str:
        return self._participant_id

    async def handle(self, message: ClientMessage) -> None:
        self._router.send_op(self, "msg", text=protocol.to_wire(message))

    def attached_to(self, edge: object) -> bool:
        return True  # one RemoteRoomSide per edge; a resume elsewhere marks it `left` (op "end")

    def detach(self) -> None:
        self._log("disconnected from this node")
        self._router.send_op(self, "detach")
        self._router.forget_remote(self)

    async def leave(self, reason: CloseReason) -> None:
        if not self.left:
            self._log("left: %s", reason.value)
            self.left = True
            self._router.send_op(self, "leave", reason=reason.value)
            self._router.forget_remote(self)

    def ended(self, reason: str) -> None:
        """The room's node ended the participant's session, or died."""
        self._log("ended: %s", reason)
        self.left = True
        self._router.forget_remote(self)


class ClusterRouter:
    """A Router for multi-node mode; wraps the LocalRouter for the rooms this node owns."""

    def __init__(
        self, local: LocalRouter, bus: ClusterBus, secret: str, shards: Shards | None = None
    ) -> None:
        self._secret = secret  # verifies the joins other nodes forward here
        self._bus = bus
        self.local = local
        self.local.token_issued = self._token_issued
        self.local.token_retired = self._token_retired
        self._edges: dict[str, Recipient] = {}
        self._remotes: dict[str, RemoteRoomSide] = {}
        self._hosted: dict[tuple[str, str], RoomSideParticipant] = {}
        self._pending: dict[str, asyncio.Future[dict[str, Any]]] = {}
        self._tasks = TaskOwner()
        self._watcher: asyncio.Task[None] | None = None
        self._op_handlers: dict[str, Callable[[dict[str, Any]], Awaitable[None]]] = {}
        bus.handler = self._on_op
        bus.on_room_lost = self._room_lost
        self.shards = shards
        if shards is not None:
            shards.end_member = self._end_member
            for kind in SHARD_OPS:
                # Media messages may wait (an offer's answer): the bus reader must not.
                handler = self._spawn_shard_op if kind == "shard_msg" else shards.on_op
                self.on_op(kind, handler)

    @property
    def participants(self) -> dict[str, RoomSideParticipant]:
        return self.local.participants

    def start(self) -> None:
        self._watcher = asyncio.create_task(self._watch_owners())
        if self.shards is not None:
            self._spawn(self.shards.start())

    async def _spawn_shard_op(self, op: dict[str, Any]) -> None:
        assert self.shards is not None
        self._spawn(self.shards.on_op(op))

    async def _end_member(self, room: str, participant_id: str, reason: CloseReason) -> None:
        """End a member of a room homed here for good: it rejoins anew (no resume)."""
        participant = self.local.participants.get(participant_id)
        if participant is not None and participant.room.name == room:
            participant.end(reason.value)
            await participant.leave(reason)

    def on_op(self, kind: str, handler: Callable[[dict[str, Any]], Awaitable[None]]) -> None:
        """Route bus operations of another kind (for example the dashboard feed) to `handler`."""
        self._op_handlers[kind] = handler

    # --- joining --------------------------------------------------------------------------

    async def join(self, access: AccessToken, message: Join, edge: Recipient) -> RoomSide:
        try:
            owner = await self._resume_owner(message)
            if owner is None:
                owner = await self._bus.place_room(access.room)
                if owner is None:
                    raise ProtocolError(ErrorCode.UNAVAILABLE, "room is moving, retry", message.id)
            if owner == self._bus.node_id:
                return await self.local.join(access, message, edge)
        except BusUnavailable:
            raise ProtocolError(
                ErrorCode.UNAVAILABLE, "cluster state is unavailable", message.id
            ) from None
        return await self._remote_join(owner, message, edge)

    async def _resume_owner(self, message: Join) -> str | None:
        if not message.resume:
            return None
        owner = await self._bus.resume_owner(message.resume)
        if owner is not None and await self._bus.node_alive(owner):
            return owner
        return None

    async def _remote_join(self, owner: str, message: Join, edge: Recipient) -> RoomSide:
        conn, req = secrets.token_hex(8), secrets.token_hex(8)
        future: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self._pending[req] = future
        self._edges[conn] = edge
        self._bus.publish(
            owner,
            {
                "op": "join",
                "req": req,
                "node": self._bus.node_id,
                "conn": conn,
                "text": protocol.to_wire(message),
            },
        )
        try:
            result = await asyncio.wait_for(future, JOIN_TIMEOUT_S)
        except TimeoutError:
            result = {
                "ok": False,
                "code": ErrorCode.UNAVAILABLE.value,
                "message": "the room's node did not answer",
            }
        finally:
            self._pending.pop(req, None)
        if not result.get("ok"):
            self._edges.pop(conn, None)
            raise ProtocolError(ErrorCode(result["code"]), str(result["message"]), message.id)
        remote = RemoteRoomSide(self, owner, conn, message.room, str(result["participant_id"]))
        self._remotes[conn] = remote
        return remote

    # --- edge-side helpers ----------------------------------------------------------------

    def send_op(self, remote: RemoteRoomSide, op: str, **fields: Any) -> None:
        self._bus.publish(
            remote.owner, {"op": op, "node": self._bus.node_id, "conn": remote.conn, **fields}
        )

    def forget_remote(self, remote: RemoteRoomSide) -> None:
        self._remotes.pop(remote.conn, None)
        self._edges.pop(remote.conn, None)

    async def _watch_owners(self) -> None:
        """Edges whose room's node died are asked to reconnect (they land on a live node)."""
        while True:
            await asyncio.sleep(1.0)
            try:
                await self._check_owners()
            except Exception:  # one bad round must not end the watch for the node's lifetime
                log.exception("checking the owner nodes failed")

    async def _check_owners(self) -> None:
        for key, participant in list(self._hosted.items()):
            if participant.left:
                del self._hosted[key]
        if self._bus.settling:
            return
        owners = {remote.owner for remote in self._remotes.values()}
        for owner in owners:
            try:
                alive = await self._bus.node_alive(owner)
            except BusUnavailable:
                break
            if alive:
                continue
            log.warning("node %s is gone: moving its participants' sessions", owner)
            for remote in [r for r in self._remotes.values() if r.owner == owner]:
                edge = self._edges.get(remote.conn)
                remote.ended(CloseReason.NODE_FAILED.value)
                if edge is not None:
                    edge.end(CloseReason.NODE_FAILED.value)

    # --- operations from other nodes ------------------------------------------------------

    async def _on_op(self, op: dict[str, Any]) -> None:
        kind = op.get("op")
        if kind == "deliver":
            edge = self._edges.get(str(op.get("conn")))
            if edge is not None:
                edge.send(str(op["data"]))
        elif kind == "end":
            edge = self._edges.get(str(op.get("conn")))
            remote = self._remotes.get(str(op.get("conn")))
            if remote is not None:
                remote.ended(str(op["reason"]))
            if edge is not None:
                edge.end(str(op["reason"]))
        elif kind == "join_result":
            future = self._pending.get(str(op.get("req")))
            if future is not None and not future.done():
                future.set_result(op)
        elif kind == "join":
            self._spawn(self._host_join(op))
        elif kind in ("msg", "detach", "leave"):
            self._spawn(self._host_op(kind, op))
        elif isinstance(kind, str) and kind in self._op_handlers:
            await self._op_handlers[kind](op)

    def _spawn(self, coro: Coroutine[Any, Any, Any]) -> None:
        self._tasks.spawn(coro, "cluster-op")

    async def _host_join(self, op: dict[str, Any]) -> None:
        node, conn, req = str(op["node"]), str(op["conn"]), op.get("req")
        reply: dict[str, Any] = {"op": "join_result", "req": req}
        edge = RemoteEdge(self._bus, node, conn)
        try:
            message = protocol.parse_client_message(str(op["text"]))
            if not isinstance(message, Join):
                raise ProtocolError(ErrorCode.INVALID_MESSAGE, "expected join")
            access = verify_token(self._secret, message.token, room=message.room)
            if not message.resume and not await self._bus.claim_room(access.room):
                raise ProtocolError(ErrorCode.UNAVAILABLE, "room is moving, retry")
            participant = await self.local.join(access, message, edge)
            assert isinstance(participant, RoomSideParticipant)
            self._hosted[(node, conn)] = participant
            reply.update(ok=True, participant_id=participant.participant_id)
        except TokenError as exc:
            reply.update(ok=False, code=exc.code, message=exc.message)
        except ProtocolError as exc:
            reply.update(ok=False, code=exc.code.value, message=exc.message)
        except BusUnavailable:
            reply.update(
                ok=False, code=ErrorCode.UNAVAILABLE.value, message="cluster state unavailable"
            )
        self._bus.publish(node, reply)
        if reply["ok"]:
            edge.release()  # after the reply: the same channel keeps them in this order

    async def _host_op(self, kind: str, op: dict[str, Any]) -> None:
        key = (str(op["node"]), str(op["conn"]))
        participant = self._hosted.get(key)
        if participant is None:
            return
        if kind == "detach":
            self._hosted.pop(key, None)
            participant.detach()
            return
        if kind == "leave":
            self._hosted.pop(key, None)
            await participant.leave(CloseReason(str(op.get("reason", "disconnected"))))
            return
        try:
            await participant.handle(protocol.parse_client_message(str(op["text"])))
        except ProtocolError as exc:
            participant.send(protocol.encode(protocol.error(exc.code, exc.message, exc.ref)))

    # --- ownership and tokens -------------------------------------------------------------

    async def _room_lost(self, room: str) -> None:
        """Fencing: another node owns the room now; our participants reconnect to it."""
        for participant in list(self.local.participants.values()):
            if participant.room.name == room:
                participant.end(CloseReason.ROOM_MOVED.value)

    def _token_issued(self, token: str) -> None:
        self._spawn(self._bus.set_resume(token, RESUME_KEY_TTL_S))

    def _token_retired(self, token: str) -> None:
        self._spawn(self._bus.drop_resume(token))

    async def close(self) -> None:
        if self._watcher is not None:
            await cancel_and_wait([self._watcher])
        for (_, _), participant in list(self._hosted.items()):
            participant.end(CloseReason.SHUTDOWN.value)
        self._hosted.clear()
        await self.local.close()
        await self._tasks.close()
        if self.shards is not None:
            await self.shards.close()
