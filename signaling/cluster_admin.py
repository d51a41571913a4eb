"""The admin API and the dashboard feed across nodes: any node answers for the whole cluster.

- `GET /api/rooms` merges this node's rooms with every other live node's (`?scope=local`
  asks one node for its own only).
- `GET /api/events` merges every live node's event log, oldest first, each event tagged with
  its `node` (`?scope=local` asks one node for its own only).
- Requests about one room (`/api/rooms/{room}/...`) are proxied to the node that owns the
  room, with the caller's Authorization header; that node authorizes them as usual.
Nodes find each other through their `url` in the node registry (`node_url` setting; a
host's workers advertise their private loopback port).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from typing import Any
from urllib.parse import urlencode

import aiohttp
from aiohttp import web
from aiohttp.typedefs import Handler

from relayroom.media.tasks import cancel_and_wait

from .admin import FEED_KEY, authorize
from .bus import BusUnavailable, ClusterBus
from .cluster import ClusterRouter
from .ipc_bus import IpcBus
from .rooms import RoomRegistry

log = logging.getLogger(__name__)

FORWARDED = "X-Relayroom-Forwarded"
PROXY_TIMEOUT_S = 5.0
ROOM_PREFIX = "/api/rooms/"


FEED_PART_MAX_AGE_S = 3.0
FEED_PENDING_MAX = 5000
NODE_LIST_REFRESH_S = 2.0


class ClusterFeedRelay:
    """The dashboard feed across nodes: each node sends its part of every stats tick to the
    others, and a node's dashboard clients get every node's rooms, samples and events."""

    def __init__(self, bus: ClusterBus) -> None:
        self._bus = bus
        self._nodes: list[str] = []
        self._remote: dict[str, tuple[float, dict[str, Any]]] = {}
        self._samples: list[Any] = []
        self._events: list[Any] = []
        self._refresher: asyncio.Task[None] | None = None

    def share(self, part: dict[str, Any]) -> None:
        for node in self._nodes:
            self._bus.publish(node, {"op": "feed", "node": self._bus.node_id, "part": part})

    def merge(self, part: dict[str, Any]) -> dict[str, Any]:
        now = time.monotonic()
        for node, (received, _) in list(self._remote.items()):
            if now - received > FEED_PART_MAX_AGE_S:
                del self._remote[node]
        merged = {
            "rooms": [{**r, "node": self._bus.node_id} for r in part["rooms"]],
            "participants": list(part["participants"]),
            "samples": list(part["samples"]) + self._samples,
            "events": list(part["events"]) + self._events,
        }
        for node, (_, remote) in self._remote.items():
            merged["rooms"] += [{**r, "node": node} for r in remote.get("rooms", [])]
            merged["participants"] += remote.get("participants", [])
        self._samples, self._events = [], []
        return merged

    async def on_remote(self, op: dict[str, Any]) -> None:
        part = op.get("part")
        if not isinstance(part, dict):
            return
        node = str(op.get("node"))
        self._remote[node] = (time.monotonic(), part)
        if node not in self._nodes:
            # A node started after our last refresh of the node list: share with it from now
            # on, or its dashboards miss this node's events until the next refresh.
            self._nodes.append(node)
        if len(self._samples) < FEED_PENDING_MAX:
            self._samples += part.get("samples", [])
        if len(self._events) < FEED_PENDING_MAX:
            self._events += part.get("events", [])

    def start(self) -> None:
        self._refresher = asyncio.create_task(self._refresh_nodes())

    async def close(self) -> None:
        if self._refresher is not None:
            await cancel_and_wait([self._refresher])

    async def _refresh_nodes(self) -> None:
        while True:
            with contextlib.suppress(BusUnavailable):
                nodes = await self._bus.live_nodes()
                self._nodes = [n for n in nodes if n != self._bus.node_id]
            await asyncio.sleep(NODE_LIST_REFRESH_S)


def setup_cluster_admin(
    app: web.Application, registry: RoomRegistry, bus: ClusterBus, router: ClusterRouter
) -> None:
    """Add the cross-node middleware in front of the admin API and relay the dashboard feed
    between nodes (multi-node mode only)."""
    client: dict[str, aiohttp.ClientSession] = {}
    relay = ClusterFeedRelay(bus)
    app[FEED_KEY].relay = relay
    router.on_op("feed", relay.on_remote)

    async def http() -> aiohttp.ClientSession:
        if "session" not in client:
            client["session"] = aiohttp.ClientSession(
                timeout=aiohttp.ClientTimeout(total=PROXY_TIMEOUT_S)
            )
        return client["session"]

    @web.middleware
    async def cluster_admin(request: web.Request, handler: Handler) -> web.StreamResponse:
        if FORWARDED in request.headers:
            return await handler(request)
        if request.path == "/api/events" and request.method == "GET":
            return await _merged_events(request, handler, bus, await http())
        if not request.path.startswith("/api/rooms"):
            return await handler(request)
        if request.path == "/api/rooms" and request.method == "GET":
            return await _merged_room_list(request, handler, bus, await http())
        if request.path.startswith(ROOM_PREFIX):
            room = request.match_info.get("room") or request.path[len(ROOM_PREFIX) :].split("/")[0]
            if registry.get(room) is None:
                url = await _owner_url(bus, room)
                if url is not None:
                    return await _proxy(request, url, await http())
        return await handler(request)

    async def lifecycle(app: web.Application) -> Any:
        relay.start()
        yield
        await relay.close()
        if "session" in client:
            await client["session"].close()

    app.middlewares.append(cluster_admin)
    app.cleanup_ctx.append(lifecycle)


async def _owner_url(bus: ClusterBus, room: str) -> str | None:
    try:
        owner = await bus.owner_of(room)
        if owner is None or owner == bus.node_id:
            return None
        return (await bus.node_info(owner) or {}).get("url")
    except BusUnavailable:
        return None


async def _proxy(request: web.Request, base: str, http: aiohttp.ClientSession) -> web.Response:
    headers = {FORWARDED: "1"}
    if "Authorization" in request.headers:
        headers["Authorization"] = request.headers["Authorization"]
    body = await request.read()
    try:
        async with http.request(
            request.method, base.rstrip("/") + request.path_qs, headers=headers, data=body or None
        ) as response:
            return web.Response(
                body=await response.read(),
                status=response.status,
                content_type=response.content_type,
            )
    except (aiohttp.ClientError, TimeoutError) as exc:
        log.warning("admin proxy to %s failed: %s", base, exc)
        return web.json_response(
            {"error": {"code": "unavailable", "message": "the room's node did not answer"}},
            status=503,
        )


async def _local_json(
    request: web.Request, handler: Handler
) -> tuple[web.StreamResponse, dict[str, Any] | None]:
    """This node's own answer, and its JSON body when it is a 200 that other nodes can join."""
    local = await handler(request)
    if (
        request.query.get("scope") == "local"
        or not isinstance(local, web.Response)
        or local.status != 200
        or local.body is None
    ):
        return local, None
    return local, json.loads(local.text or "{}")


async def _from_other_nodes(
    request: web.Request, bus: ClusterBus, http: aiohttp.ClientSession, path_qs: str, key: str
) -> list[tuple[str, list[dict[str, Any]]]]:
    """`key` of every other live node's answer to `path_qs` (nodes that fail are left out)."""
    try:
        nodes = await bus.live_nodes()
    except BusUnavailable:
        nodes = {}
    headers = {FORWARDED: "1", "Authorization": request.headers.get("Authorization", "")}

    async def fetch(node: str, url: str) -> tuple[str, list[dict[str, Any]]]:
        try:
            async with http.get(url.rstrip("/") + path_qs, headers=headers) as response:
                if response.status != 200:
                    return node, []
                items = (await response.json())[key]
                return node, [i for i in items if isinstance(i, dict)]
        except (aiohttp.ClientError, TimeoutError, ValueError, KeyError, TypeError):
            return node, []

    others = [
        (node, info["url"])
        for node, info in nodes.items()
        if node != bus.node_id and info.get("url")
    ]
    return list(await asyncio.gather(*(fetch(node, url) for node, url in others)))


async def _merged_events(
    request: web.Request, handler: Handler, bus: ClusterBus, http: aiohttp.ClientSession
) -> web.StreamResponse:
    local, body = await _local_json(request, handler)
    if body is None:
        return local
    events = [{**e, "node": bus.node_id} for e in body.get("events", [])]
    query = {k: v for k, v in request.query.items() if k != "scope"}
    path_qs = "/api/events?" + urlencode({**query, "scope": "local"})
    for node, found in await _from_other_nodes(request, bus, http, path_qs, "events"):
        events.extend({**e, "node": node} for e in found)
    events.sort(key=lambda e: (float(e.get("t") or 0), str(e["node"]), int(e.get("seq") or 0)))
    return web.json_response({"events": events})


async def _merged_room_list(
    request: web.Request, handler: Handler, bus: ClusterBus, http: aiohttp.ClientSession
) -> web.StreamResponse:
    local, body = await _local_json(request, handler)
    if body is None:
        return local
    rooms = [{**room, "node": bus.node_id} for room in body.get("rooms", [])]
    for node, found in await _from_other_nodes(
        request, bus, http, "/api/rooms?scope=local", "rooms"
    ):
        rooms.extend({**room, "node": node} for room in found)
    return web.json_response({"rooms": rooms})


def setup_workers_api(app: web.Application, link: IpcBus, secret: str) -> None:
    """`GET /api/workers` (admin token): the host's workers as their supervisor sees them
    (`relayroom serve --workers N`): pid, node id, state, restarts, private URL, load."""

    async def list_workers(request: web.Request) -> web.Response:
        authorize(request, secret)
        try:
            workers = await link.workers()
        except BusUnavailable:
            return web.json_response(
                {"error": {"code": "unavailable", "message": "the supervisor did not answer"}},
                status=503,
            )
        return web.json_response({"node": link.node_id, "workers": workers})

    app.router.add_get("/api/workers", list_workers)
