"""The supervisor's side of the workers' bus: the cluster state, held in Python.

`HostState` has the semantics of redis_bus's keys and Lua scripts, without I/O (a clock is
given): room claims with fencing tokens, resume tokens with a TTL, the node registry. Rooms
that have no owner yet are placed by load (`place`): on the live worker with the fewest
participants, then the fewest forwarded packets per second, as reported by its heartbeats.

`IpcHub` serves one socket per worker (`ipc_bus.IpcBus` at the other end): it answers the
worker's requests from the HostState and forwards the operations workers publish to each other.
A worker whose socket closes is dead: its rooms and its resume tokens go at once.
"""

from __future__ import annotations

import asyncio
import logging
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from relayroom.media.tasks import TaskOwner

from .ipc_bus import open_stream, read_frame, write_frame

log = logging.getLogger(__name__)

# A room placed on a worker is claimed by that worker when the forwarded join arrives there
# (cluster.ClusterRouter._host_join); a placement nobody confirms in this time (the join was
# abandoned) is forgotten.
PLACEMENT_TTL_S = 10.0
RESUME_MAX = 100_000
LINK_BUFFER_MAX_BYTES = 64 * 1024 * 1024  # operations queued for one worker that is not reading


@dataclass
class NodeEntry:
    """One live worker as the supervisor sees it."""

    node_id: str
    info: dict[str, Any]
    last_seen: float
    load: dict[str, Any] = field(default_factory=dict)
    placed: int = 0  # rooms placed here since its last heartbeat (not in its load yet)

    @property
    def draining(self) -> bool:
        return bool(self.load.get("draining"))

    def placement_key(self) -> tuple[float, float]:
        participants = float(self.load.get("participants", 0)) + self.placed
        return participants, float(self.load.get("forwarded_pps", 0.0))


@dataclass
class Claim:
    node: str
    fence: int
    confirmed: bool
    at: float


class HostState:
    """Rooms, fences, resume tokens and live nodes of one host's workers (no I/O)."""

    def __init__(self, clock: Callable[[], float] = time.monotonic, ttl_s: float = 3.0) -> None:
        self._clock = clock
        self._ttl_s = ttl_s
        self.nodes: dict[str, NodeEntry] = {}
        self._rooms: dict[str, Claim] = {}
        self._fences: dict[str, int] = {}
        self._resume: dict[str, tuple[str, float]] = {}

    # --- registry -----------------------------------------------------------------------------

    def register(self, node_id: str, info: dict[str, Any]) -> None:
        self.nodes[node_id] = NodeEntry(node_id, dict(info), self._clock())

    def heartbeat(self, node_id: str, info: dict[str, Any], load: dict[str, Any]) -> None:
        entry = self.nodes.get(node_id)
        if entry is None:
            return
        entry.info, entry.load, entry.last_seen, entry.placed = (
            dict(info),
            dict(load),
            self._clock(),
            0,
        )

    def remove(self, node_id: str) -> list[str]:
        """The node is gone: its rooms are free (their fences stay, so a new owner gets a
        higher one); returns the rooms freed."""
        self.nodes.pop(node_id, None)
        freed = [room for room, claim in self._rooms.items() if claim.node == node_id]
        for room in freed:
            del self._rooms[room]
        return freed

    def alive(self, node_id: str) -> bool:
        """Connected. A silent worker stays alive (and keeps its rooms) until the supervisor
        has killed it: declaring it dead earlier would let a second worker take its rooms
        while it may still serve them."""
        return node_id in self.nodes

    def stale(self) -> list[str]:
        """Nodes connected but silent for longer than the TTL (hung: the supervisor kills them)."""
        now = self._clock()
        return [n for n, entry in self.nodes.items() if now - entry.last_seen > self._ttl_s]

    def live_nodes(self) -> dict[str, dict[str, Any]]:
        """Each node's info, with its last load report (shard placement reads it)."""
        return {node: {**entry.info, "load": entry.load} for node, entry in self.nodes.items()}

    # --- rooms --------------------------------------------------------------------------------

    def _owner_claim(self, room: str) -> Claim | None:
        claim = self._rooms.get(room)
        if claim is None:
            return None
        expired = not claim.confirmed and self._clock() - claim.at > PLACEMENT_TTL_S
        if expired or not self.alive(claim.node):
            del self._rooms[room]
            return None
        return claim

    def _take(self, room: str, node: str, confirmed: bool) -> Claim:
        fence = self._fences.get(room, 0) + 1
        self._fences[room] = fence
        claim = Claim(node, fence, confirmed, self._clock())
        self._rooms[room] = claim
        return claim

    def claim(self, room: str, node: str) -> Claim:
        """Like redis_bus._CLAIM: the current live owner's claim, else a new one for `node`.
        The owner claiming a room placed on it confirms the placement."""
        claim = self._owner_claim(room)
        if claim is None:
            return self._take(room, node, confirmed=True)
        if claim.node == node:
            claim.confirmed = True
        return claim

    def place(self, room: str, asking: str) -> Claim:
        """The room's owner; a room without one goes to the least-loaded live worker. The
        owner asking confirms the placement (it hosts the room from now on)."""
        claim = self._owner_claim(room)
        if claim is not None:
            if claim.node == asking:
                claim.confirmed = True
            return claim
        stale = set(self.stale())
        candidates = [
            entry for node, entry in self.nodes.items() if node not in stale and not entry.draining
        ]
        if not candidates:
            return self._take(room, asking, confirmed=True)
        # Ties go to the asking worker: no proxying when the load is equal.
        best = min(candidates, key=lambda e: (e.placement_key(), e.node_id != asking))
        best.placed += 1
        return self._take(room, best.node_id, confirmed=best.node_id == asking)

    def owner(self, room: str) -> str | None:
        claim = self._owner_claim(room)
        return claim.node if claim is not None else None

    def release(self, room: str, node: str, fence: int) -> bool:
        """Like redis_bus._RELEASE: deletes only the caller's own claim."""
        claim = self._rooms.get(room)
        if claim is not None and claim.node == node and claim.fence == fence:
            del self._rooms[room]
            return True
        return False

    def rooms_of(self, node: str) -> list[str]:
        return [room for room, claim in self._rooms.items() if claim.node == node]

    # --- resume tokens ------------------------------------------------------------------------

    def set_resume(self, token: str, node: str, ttl_s: float) -> None:
        now = self._clock()
        if len(self._resume) >= RESUME_MAX:
            self._resume = {t: v for t, v in self._resume.items() if v[1] > now}
            if len(self._resume) >= RESUME_MAX:  # still full of live tokens: drop the oldest
                del self._resume[next(iter(self._resume))]
        self._resume[token] = (node, now + ttl_s)

    def resume_owner(self, token: str) -> str | None:
        entry = self._resume.get(token)
        if entry is None:
            return None
        if entry[1] <= self._clock():
            del self._resume[token]
            return None
        return entry[0]

    def drop_resume(self, token: str) -> None:
        self._resume.pop(token, None)


class IpcHub:
    """Serves the workers' sockets from one HostState; forwards operations between workers."""

    def __init__(self, state: HostState) -> None:
        self.state = state
        self._writers: dict[str, asyncio.StreamWriter] = {}
        self._tasks = TaskOwner()
        self.workers_view: Callable[[], list[dict[str, Any]]] = lambda: []
        self.on_worker_lost: Callable[[str], None] | None = None
        self.dropped = 0

    def serve(self, sock: socket.socket) -> None:
        """Start serving one worker's socket (the supervisor's end of its pair)."""
        self._tasks.spawn(self._serve(sock), "ipc-hub-link")

    async def close(self) -> None:
        for writer in list(self._writers.values()):
            writer.close()
        await self._tasks.close()

    def connected(self) -> list[str]:
        return list(self._writers)

    async def _serve(self, sock: socket.socket) -> None:
        reader, writer = await open_stream(sock)
        hello = await read_frame(reader)
        if hello is None or hello.get("t") != "hello" or not isinstance(hello.get("node"), str):
            writer.close()
            return
        node = str(hello["node"])
        self._writers[node] = writer
        self.state.register(node, dict(hello.get("info") or {}))
        log.info("worker %s connected", node)
        try:
            while True:
                frame = await read_frame(reader)
                if frame is None or frame.get("t") == "bye":
                    break
                self._handle(node, writer, frame)
        finally:
            self._writers.pop(node, None)
            freed = self.state.remove(node)
            writer.close()
            log.info("worker %s disconnected; %d rooms freed", node, len(freed))
            if self.on_worker_lost is not None:
                self.on_worker_lost(node)

    def _handle(self, node: str, writer: asyncio.StreamWriter, frame: dict[str, Any]) -> None:
        kind = frame.get("t")
        if kind == "hb":
            self.state.heartbeat(node, dict(frame.get("info") or {}), dict(frame.get("load") or {}))
        elif kind == "pub":
            target = self._writers.get(str(frame.get("to")))
            if target is None or not isinstance(frame.get("op"), dict):
                return
            if target.transport.get_write_buffer_size() > LINK_BUFFER_MAX_BYTES:
                # The worker stopped reading (hung: it is killed after 5 silent heartbeats).
                self.dropped += 1
                if self.dropped in (1, 100) or self.dropped % 10_000 == 0:
                    log.warning(
                        "worker %s is not reading: dropped %d operations", frame["to"], self.dropped
                    )
                return
            write_frame(target, {"t": "op", "op": frame["op"]})
        elif kind == "req":
            try:
                value = self._answer(node, frame)
                reply: dict[str, Any] = {"t": "rep", "id": frame.get("id"), "v": value}
            except (KeyError, TypeError, ValueError) as exc:
                reply = {"t": "rep", "id": frame.get("id"), "error": f"bad request: {exc}"}
            write_frame(writer, reply)

    def _answer(self, node: str, req: dict[str, Any]) -> dict[str, Any]:
        state, op = self.state, req["op"]
        if op in ("claim", "place"):
            room = str(req["room"])
            claim = state.claim(room, node) if op == "claim" else state.place(room, node)
            if claim.node != node and op == "place":
                log.info("room=%s placed on worker %s (asked by %s)", room, claim.node, node)
            return {"owner": claim.node, "fence": claim.fence}
        if op == "owner":
            return {"owner": state.owner(str(req["room"]))}
        if op == "release":
            return {"released": state.release(str(req["room"]), node, int(req["fence"]))}
        if op == "alive":
            return {"alive": state.alive(str(req["node"]))}
        if op == "resume_set":
            state.set_resume(str(req["token"]), node, float(req["ttl_s"]))
            return {}
        if op == "resume_get":
            return {"owner": state.resume_owner(str(req["token"]))}
        if op == "resume_drop":
            state.drop_resume(str(req["token"]))
            return {}
        if op == "info":
            entry = state.nodes.get(str(req["node"]))
            return {"info": entry.info if entry is not None else None}
        if op == "nodes":
            return {"nodes": state.live_nodes()}
        if op == "workers":
            return {"workers": self.workers_view()}
        raise ValueError(f"unknown op {op!r}")
