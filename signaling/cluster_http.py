"""WHIP and WHEP requests forwarded to the room's worker (`relayroom serve --workers N`).

A WHIP/WHEP session is an HTTP participant whose room must live on the process that answers
its requests (whip.py refuses a room that lives elsewhere with 503). A host's workers share one
port, so any worker may receive the `POST /whip/{room}`: this middleware asks the cluster where
the room lives (placing a new room by load, as a WebSocket join does) and, when that is another
worker, forwards the request as it is (method, body, Authorization, If-Match, Origin) to that
worker's private URL and returns its answer with its headers. The session's URL (`Location`)
is relative, so the client's PATCH and DELETE reach any worker and are forwarded the same way.
Media goes to the room's worker directly (its ICE candidates are in the answer).
"""

from __future__ import annotations

import logging
from typing import Any
from urllib.parse import unquote

import aiohttp
from aiohttp import web
from aiohttp.typedefs import Handler
from multidict import CIMultiDict

from .bus import BusUnavailable, ClusterBus
from .cluster_admin import FORWARDED, PROXY_TIMEOUT_S
from .rooms import RoomRegistry

log = logging.getLogger(__name__)

PREFIXES = ("/whip/", "/whep/")
REQUEST_HEADERS = ("Authorization", "Content-Type", "If-Match", "Origin")
# Not copied back: aiohttp sets its own framing and these describe the forwarding hop.
HOP_HEADERS = {"content-length", "transfer-encoding", "connection", "date", "server"}


def setup_http_forwarding(app: web.Application, registry: RoomRegistry, bus: ClusterBus) -> None:
    """Forward WHIP/WHEP requests for rooms that live on another node (see the module doc)."""
    client: dict[str, aiohttp.ClientSession] = {}

    @web.middleware
    async def forward(request: web.Request, handler: Handler) -> web.StreamResponse:
        if (
            FORWARDED in request.headers
            or request.method == "OPTIONS"  # CORS preflight: answered alike by every worker
            or not request.path.startswith(PREFIXES)
        ):
            return await handler(request)
        segments = request.raw_path.split("?", 1)[0].split("/")  # "", kind, room[, session]
        if len(segments) < 3 or not segments[2]:
            return await handler(request)
        room = unquote(segments[2])
        if registry.get(room) is not None:
            return await handler(request)
        url = await _owner_url(bus, room, new=request.method == "POST" and len(segments) == 3)
        if url is None:
            return await handler(request)
        if "session" not in client:
            client["session"] = aiohttp.ClientSession(
                timeout=aiohttp.ClientTimeout(total=PROXY_TIMEOUT_S)
            )
        return await _forward(request, url, client["session"])

    async def lifecycle(app: web.Application) -> Any:
        yield
        if "session" in client:
            await client["session"].close()

    app.middlewares.append(forward)
    app.cleanup_ctx.append(lifecycle)


async def _owner_url(bus: ClusterBus, room: str, *, new: bool) -> str | None:
    """The URL of the node hosting `room` when that is another node (a new session's room is
    placed first); None to answer here."""
    try:
        owner = await (bus.place_room(room) if new else bus.owner_of(room))
        if owner is None or owner == bus.node_id:
            return None
        url = (await bus.node_info(owner) or {}).get("url")
    except BusUnavailable:
        return None
    return str(url) if url else None


async def _forward(request: web.Request, base: str, http: aiohttp.ClientSession) -> web.Response:
    headers = {FORWARDED: "1"}
    headers.update({h: request.headers[h] for h in REQUEST_HEADERS if h in request.headers})
    body = await request.read()
    try:
        async with http.request(
            request.method, base.rstrip("/") + request.path_qs, headers=headers, data=body or None
        ) as response:
            kept = CIMultiDict(
                (name, value)
                for name, value in response.headers.items()
                if name.lower() not in HOP_HEADERS
            )
            return web.Response(body=await response.read(), status=response.status, headers=kept)
    except (aiohttp.ClientError, TimeoutError) as exc:
        log.warning("forwarding %s %s to %s failed: %s", request.method, request.path, base, exc)
        return web.Response(status=503, text="the room's worker did not answer\n")
