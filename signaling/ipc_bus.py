"""The workers' node bus: a ClusterBus whose shared state is held by the supervisor.

`relayroom serve --workers N` without `--redis` runs N worker processes that are nodes of a
cluster (`cluster.ClusterRouter`), exactly as nodes sharing a Redis are. Instead of Redis they
talk to their supervisor (`ipc_hub.IpcHub`) over one Unix socket pair each, which the supervisor
made and passed down when it started the worker.

Wire format: one JSON object per line, both ways (`write_frame`, `read_frame`).
  worker -> supervisor: hello {node, info}, hb {info, load}, req {id, op, ...}, pub {to, op}, bye
  supervisor -> worker: rep {id, v | error}, op {op}
Requests (`op` of a req): claim, place, owner, release, alive, resume_set, resume_get,
resume_drop, info, nodes, workers; the hub answers each (see ipc_hub.HostState).

A worker is alive while its socket is open: a killed worker's socket is closed by the kernel,
so the supervisor frees its rooms at once (like a Redis node whose channel lost its subscriber).
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import logging
import socket
import time
from collections.abc import Callable
from typing import Any

from relayroom.media.tasks import TaskOwner

from .bus import BusUnavailable, ClusterBus
from .logs import about

log = logging.getLogger(__name__)

FRAME_MAX_BYTES = 16 * 1024 * 1024
OUTBOX_MAX = 10_000

Load = Callable[[], dict[str, Any]]


def write_frame(writer: asyncio.StreamWriter, message: dict[str, Any]) -> None:
    """Queue one message on the stream (the transport buffers; the peer is on this host)."""
    writer.write(json.dumps(message, separators=(",", ":")).encode() + b"\n")


async def read_frame(reader: asyncio.StreamReader) -> dict[str, Any] | None:
    """The next message, or None at the end of the stream. A malformed line ends it too:
    both ends are relayroom, so garbage means a broken peer."""
    try:
        line = await reader.readline()
    except (ValueError, ConnectionError):  # ValueError: a line over the limit
        return None
    if not line:
        return None
    try:
        message = json.loads(line)
    except ValueError:
        log.warning("ipc: malformed frame; closing the link")
        return None
    return message if isinstance(message, dict) else None


async def open_stream(sock: socket.socket) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    """Streams over one end of a Unix socket pair."""
    return await asyncio.open_unix_connection(sock=sock, limit=FRAME_MAX_BYTES)


class IpcBus(ClusterBus):
    """A worker's ClusterBus: requests and operations go through the supervisor."""

    def __init__(
        self,
        sock: socket.socket,
        node_id: str,
        *,
        heartbeat_s: float = 1.0,
        op_timeout_s: float = 2.0,
        load: Load | None = None,
    ) -> None:
        super().__init__(node_id)
        self._sock = sock
        self._heartbeat_s = heartbeat_s
        self._timeout = op_timeout_s
        self.load: Load = load or (lambda: {})
        self.on_supervisor_lost: Callable[[], None] | None = None
        self._writer: asyncio.StreamWriter | None = None
        self._outbox: asyncio.Queue[dict[str, Any]] = asyncio.Queue(OUTBOX_MAX)
        self._pending: dict[int, asyncio.Future[Any]] = {}
        self._ids = itertools.count(1)
        self._owned: dict[str, int] = {}  # room -> fence
        self._info: dict[str, Any] = {"id": node_id, "started": time.time()}
        self._tasks = TaskOwner()
        self._connected = False
        self._closing = False

    # --- lifecycle ----------------------------------------------------------------------------

    async def start(self) -> None:
        reader, self._writer = await open_stream(self._sock)
        write_frame(self._writer, {"t": "hello", "node": self.node_id, "info": self._info})
        self._connected = True
        self._tasks.spawn(self._read_loop(reader), "ipc-read")
        self._tasks.spawn(self._write_loop(), "ipc-write")
        self._tasks.spawn(self._heartbeat_loop(), "ipc-heartbeat")

    async def close(self) -> None:
        if self._closing:
            return
        self._closing = True
        # Let queued operations (for example "reconnect elsewhere") reach the other workers.
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._outbox.join(), self._timeout)
        await self._tasks.close()
        if self._writer is not None:
            with contextlib.suppress(ConnectionError, RuntimeError):
                write_frame(self._writer, {"t": "bye"})
                await self._writer.drain()
            self._writer.close()
            self._writer = None
        self._connected = False
        for future in self._pending.values():
            future.cancel()
        self._pending.clear()
        self._owned.clear()
        await self._local.close()

    # --- health -------------------------------------------------------------------------------

    @property
    def healthy(self) -> bool:
        return self._connected

    @property
    def settling(self) -> bool:
        return not self._connected

    # --- ownership ----------------------------------------------------------------------------

    async def claim_room(self, room: str) -> bool:
        if room in self._owned:
            return True
        reply = await self._request("claim", room=room)
        return self._took(room, reply)

    async def place_room(self, room: str) -> str | None:
        """The supervisor places a new room on the least-loaded worker (not necessarily this
        one); a room that has an owner stays there."""
        if room in self._owned:
            return self.node_id
        reply = await self._request("place", room=room)
        if self._took(room, reply):
            return self.node_id
        owner = reply.get("owner")
        return str(owner) if owner else None

    def _took(self, room: str, reply: dict[str, Any]) -> bool:
        if reply.get("owner") != self.node_id:
            return False
        self._owned[room] = int(reply["fence"])
        log.info("room=%s claimed (fence %s)", room, reply["fence"], extra=about(room))
        return True

    async def owner_of(self, room: str) -> str | None:
        reply = await self._request("owner", room=room)
        owner = reply.get("owner")
        return str(owner) if owner else None

    def fence(self, room: str) -> int | None:
        return self._owned.get(room)

    async def release_room(self, room: str) -> None:
        fence = self._owned.pop(room, None)
        if fence is not None:
            with contextlib.suppress(BusUnavailable):
                await self._request("release", room=room, fence=fence)

    async def node_alive(self, node_id: str) -> bool:
        if node_id == self.node_id:
            return True
        return bool((await self._request("alive", node=node_id)).get("alive"))

    async def set_resume(self, token: str, ttl_s: int) -> None:
        with contextlib.suppress(BusUnavailable):
            await self._request("resume_set", token=token, ttl_s=ttl_s)

    async def resume_owner(self, token: str) -> str | None:
        owner = (await self._request("resume_get", token=token)).get("owner")
        return str(owner) if owner else None

    async def drop_resume(self, token: str) -> None:
        with contextlib.suppress(BusUnavailable):
            await self._request("resume_drop", token=token)

    # --- registry -----------------------------------------------------------------------------

    def advertise(self, url: str) -> None:
        self._info["url"] = url
        self._send_nowait({"t": "hb", "info": self._info, "load": self.load()})

    async def node_info(self, node_id: str) -> dict[str, Any] | None:
        info = (await self._request("info", node=node_id)).get("info")
        return info if isinstance(info, dict) else None

    async def live_nodes(self) -> dict[str, dict[str, Any]]:
        nodes = (await self._request("nodes")).get("nodes")
        return dict(nodes) if isinstance(nodes, dict) else {}

    async def workers(self) -> list[dict[str, Any]]:
        """The supervisor's view of its workers (GET /api/workers)."""
        workers = (await self._request("workers")).get("workers")
        return list(workers) if isinstance(workers, list) else []

    # --- messaging ----------------------------------------------------------------------------

    def publish(self, node_id: str, op: dict[str, Any]) -> bool:
        return self._send_nowait({"t": "pub", "to": node_id, "op": op})

    def _send_nowait(self, frame: dict[str, Any]) -> bool:
        try:
            self._outbox.put_nowait(frame)
        except asyncio.QueueFull:
            log.warning("ipc outbox full: dropping a %s frame", frame.get("t"))
            return False
        return True

    async def _request(self, op: str, **fields: Any) -> dict[str, Any]:
        if not self._connected:
            raise BusUnavailable("the supervisor is not connected")
        request_id = next(self._ids)
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._pending[request_id] = future
        try:
            if not self._send_nowait({"t": "req", "id": request_id, "op": op, **fields}):
                raise BusUnavailable("the link to the supervisor is congested")
            reply = await asyncio.wait_for(future, self._timeout)
        except TimeoutError:
            raise BusUnavailable(f"the supervisor did not answer {op!r}") from None
        finally:
            self._pending.pop(request_id, None)
        if not isinstance(reply, dict) or "error" in reply:
            raise BusUnavailable(f"the supervisor refused {op!r}: {reply}")
        return reply

    # --- loops --------------------------------------------------------------------------------

    async def _write_loop(self) -> None:
        while True:
            frame = await self._outbox.get()
            try:
                if self._writer is not None:
                    write_frame(self._writer, frame)
                    await self._writer.drain()
            except (ConnectionError, RuntimeError):
                pass  # the reader sees the end of the stream and reports it
            finally:
                self._outbox.task_done()  # close() waits for the outbox to be written

    async def _heartbeat_loop(self) -> None:
        while True:
            await asyncio.sleep(self._heartbeat_s)
            self._send_nowait({"t": "hb", "info": self._info, "load": self.load()})

    async def _read_loop(self, reader: asyncio.StreamReader) -> None:
        while True:
            frame = await read_frame(reader)
            if frame is None:
                break
            kind = frame.get("t")
            if kind == "rep":
                future = self._pending.get(int(frame.get("id", 0)))
                if future is not None and not future.done():
                    future.set_result(frame.get("v", {"error": frame.get("error")}))
            elif kind == "op" and self.handler is not None and isinstance(frame.get("op"), dict):
                try:
                    await self.handler(frame["op"])
                except Exception:
                    log.exception("bus handler failed on %s", frame["op"].get("op"))
        self._connected = False
        if not self._closing:
            log.error("the supervisor is gone: this worker stops")
            if self.on_supervisor_lost is not None:
                self.on_supervisor_lost()
