"""The aiohttp application: WebSocket endpoint, health, dev tokens, static pages, drain."""

from __future__ import annotations

import asyncio
import logging
import secrets
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from aiohttp import web

from relayroom import __version__
from relayroom.media.persistence import open_store
from relayroom.media.recording import Recordings
from relayroom.web import STATIC_DIR

from . import protocol
from .admin import setup_admin, stats_settings
from .bus import ClusterBus, LocalBus, NodeBus
from .client_socket import ClientSocket
from .cluster import ClusterRouter
from .cluster_admin import setup_cluster_admin
from .cluster_shard import build_shards, pipe_endpoint
from .config import Config, ConfigError
from .counts import NodeCounts
from .edge import ClientEdge, EdgeParts, EdgeSettings
from .gateway import MediaGateway, data_settings, media_settings, recording_settings
from .metrics import NodeState
from .protocol import CloseReason, ErrorCode
from .ratelimit import IpAdmission
from .redis_bus import RedisBus
from .room_side import RoomSideParts, RoomSideSettings
from .rooms import RoomRegistry
from .router import LocalRouter
from .serving import GUARD_KEY, ConnectionGuard, guard_middleware
from .tokens import MIN_SECRET_LENGTH, Grants, mint_token
from .turn_service import TurnService
from .webhooks import webhook_settings
from .whip import WhipParts, WhipSettings, setup_whip

log = logging.getLogger(__name__)

DEV_SECRET_FILE = "dev-api-secret"
PAGES = {
    "/": "index.html",
    "/call": "call.html",
    "/whiteboard": "whiteboard.html",
    "/dashboard": "dashboard.html",
    "/watch": "watch.html",
}


def resolve_secret(config: Config) -> str:
    """The API secret: configured, or in dev mode generated once and kept in the data dir."""
    if config.api_secret:
        if len(config.api_secret) < MIN_SECRET_LENGTH:
            raise ConfigError("api_secret", "must be at least 32 characters (HS256 key)")
        return config.api_secret
    if not config.dev:
        raise ConfigError(
            "api_secret", "required outside dev mode (--api-secret or RELAYROOM_API_SECRET)"
        )
    path = config.data_dir / DEV_SECRET_FILE
    try:
        if path.exists():
            stored = path.read_text(encoding="utf-8").strip()
            if stored:
                return stored
        config.data_dir.mkdir(parents=True, exist_ok=True)
        secret = secrets.token_urlsafe(32)
        path.touch(mode=0o600)
        path.write_text(secret + "\n", encoding="utf-8")
        log.info("dev mode: generated an API secret in %s", path)
        return secret
    except OSError as exc:
        raise ConfigError("data_dir", f"cannot store the dev secret in {path}: {exc}") from None


def client_limits(config: Config) -> Mapping[str, Any]:
    """The limits a client is told in `joined`."""
    return {
        "max_frame_bytes": config.ws_max_frame_bytes,
        "msgs_per_s": config.rate_limit_msgs_per_s,
        "burst": config.rate_limit_burst,
        "room_max_participants": config.room_max_participants,
        "join_timeout_s": config.join_timeout_s,
        "data_max_message_bytes": config.data_max_message_bytes,
        "data_msgs_per_s": config.data_msgs_per_s,
    }


def edge_settings(config: Config) -> EdgeSettings:
    """A WebSocket edge's settings from the Config."""
    return EdgeSettings(
        msgs_per_s=config.rate_limit_msgs_per_s,
        burst=config.rate_limit_burst,
        close_after=config.rate_limit_close_after,
        join_timeout_s=config.join_timeout_s,
        resume_ttl_s=config.resume_ttl_s,
        max_frame_bytes=config.ws_max_frame_bytes,
        input_max_depth=config.input_max_depth,
    )


def room_side_settings(config: Config) -> RoomSideSettings:
    """A participant's room-side settings from the Config."""
    return RoomSideSettings(
        buffer_max=config.send_queue_max,
        resume_ttl_s=config.resume_ttl_s,
        heartbeat_s=config.heartbeat_interval_s,
        client_limits=client_limits(config),
    )


@dataclass
class Server:
    """The node: its parts, built from the Config in one place (`build`), and its lifecycle.

    Stored under SERVER_KEY for this module's handlers. The other parts get only the
    collaborators they use (`EdgeParts`, `RoomSideParts`, `NodeState`), never the Server.
    """

    config: Config
    secret: str
    bus: NodeBus
    registry: RoomRegistry
    admission: IpAdmission
    media: MediaGateway
    turn: TurnService
    router: LocalRouter | ClusterRouter
    counts: NodeCounts = field(default_factory=NodeCounts)
    edges: set[ClientEdge] = field(default_factory=set)
    """One per open signaling WebSocket."""
    draining: bool = False
    started_at: float = field(default_factory=time.time)
    edge_parts: EdgeParts = field(init=False)
    """What each WebSocket's edge uses."""

    @classmethod
    def build(cls, config: Config, secret: str, bus: NodeBus | None = None) -> Server:
        """Wire the parts from the Config."""
        if bus is None:
            bus = RedisBus(config.redis_url) if config.redis_url else LocalBus()
        registry = RoomRegistry(
            bus,
            max_participants=config.room_max_participants,
            default_mode=config.default_room_mode,
        )
        # Cluster mode: a pipe socket, so a room's media can span nodes (cluster_shard.py).
        pipes = pipe_endpoint(config, secret) if isinstance(bus, ClusterBus) else None
        media = MediaGateway(
            media_settings(config),
            registry,
            data=data_settings(config),
            store=open_store(
                data_dir=config.data_dir,
                redis_url=config.redis_url,
                ttl_s=config.data_room_ttl_s,
                fence=bus.fence if isinstance(bus, ClusterBus) else None,
            ),
            recordings=Recordings(recording_settings(config)),
            pipes=pipes,
        )
        turn = TurnService(config, secret)
        local = LocalRouter(
            RoomSideParts(
                registry=registry,
                media=media,
                ice_servers=turn.ice_servers,
                settings=room_side_settings(config),
            )
        )
        return cls(
            config=config,
            secret=secret,
            bus=bus,
            registry=registry,
            admission=IpAdmission(
                config.ip_max_connections, config.ip_handshakes_per_s, config.ip_handshake_burst
            ),
            media=media,
            turn=turn,
            router=(
                ClusterRouter(local, bus, secret, build_shards(config, bus, media, pipes))
                if isinstance(bus, ClusterBus) and pipes is not None
                else local
            ),
        )

    def __post_init__(self) -> None:
        if isinstance(self.bus, RedisBus):
            self.bus.load = self._load_report  # read by the other nodes' shard placement
        self.edge_parts = EdgeParts(
            settings=edge_settings(self.config),
            secret=self.secret,
            router=self.router,
            counts=self.counts,
            draining=lambda: self.draining,
        )

    def _load_report(self) -> dict[str, Any]:
        """Members of this node's rooms plus those it hosts for other nodes' rooms."""
        members = sum(len(room.members) for room in self.registry.rooms.values())
        shards = self.router.shards if isinstance(self.router, ClusterRouter) else None
        if shards is not None:
            members += shards.hosted_count()
        return {"participants": members, "draining": self.draining}

    def whip_parts(self) -> WhipParts:
        """What the WHIP/WHEP service uses."""
        config = self.config
        return WhipParts(
            settings=WhipSettings(
                allowed_origins=config.allowed_origins,
                max_body_bytes=config.whip_max_body_bytes,
                max_sessions=config.whip_max_sessions,
                answer_timeout_s=config.join_timeout_s,
            ),
            secret=self.secret,
            router=self.router,
            media=self.media,
            ice_servers=self.turn.ice_servers,
            draining=lambda: self.draining,
        )

    def node_state(self) -> NodeState:
        """What the metrics and the admin API read."""
        return NodeState(
            registry=self.registry,
            media=self.media,
            counts=self.counts,
            connections=lambda: len(self.edges),
            started_at=self.started_at,
            turn_allocations=self.turn.allocations_active,
        )

    def advertise(self, url: str) -> None:
        """Tell the other nodes where this node's HTTP API is (multi-node mode)."""
        if isinstance(self.bus, ClusterBus):
            self.bus.advertise(self.config.node_url or url)

    async def drain(self) -> None:
        """Stop taking clients, ask everyone to reconnect elsewhere, wait for them to go."""
        if self.draining:
            return
        self.draining = True
        cfg = self.config
        log.info("draining %d connections", len(self.edges))
        for edge in list(self.edges):
            edge.end(CloseReason.SHUTDOWN.value)
        waits = [asyncio.ensure_future(edge.finished.wait()) for edge in self.edges]
        if waits:
            _, pending = await asyncio.wait(waits, timeout=cfg.drain_timeout_s)
            for task in pending:
                task.cancel()
        for edge in list(self.edges):
            edge.socket.abort(CloseReason.SHUTDOWN.value)
        await self.router.close()
        await self.media.close()

    async def close(self) -> None:
        await self.drain()
        await self.turn.close()
        await self.bus.close()


SERVER_KEY = web.AppKey("server", Server)


async def websocket_handler(request: web.Request) -> web.StreamResponse:
    server = request.app[SERVER_KEY]
    cfg = server.config
    if server.draining:
        raise web.HTTPServiceUnavailable(text="server is shutting down\n")
    origin = request.headers.get("Origin")
    if cfg.allowed_origins and origin not in cfg.allowed_origins:
        raise web.HTTPForbidden(text="origin not allowed\n")
    probe = web.WebSocketResponse()
    if not probe.can_prepare(request).ok:
        raise web.HTTPBadRequest(text="expected a WebSocket upgrade\n")
    ip = request.remote or "unknown"
    refusal = server.admission.admit(ip)
    if refusal is not None:
        server.counts.error(ErrorCode.RATE_LIMITED)
        raise web.HTTPTooManyRequests(text=refusal + "\n", headers={"Retry-After": "1"})
    try:
        ws = web.WebSocketResponse(
            max_msg_size=cfg.ws_max_frame_bytes,
            compress=False,
            autoping=False,
            timeout=cfg.close_timeout_s,
        )
        await ws.prepare(request)
        request.app[GUARD_KEY].upgraded(request.transport)
        socket = ClientSocket(
            ws,
            request.transport,
            peer=ip,
            queue_max=cfg.send_queue_max,
            heartbeat_interval_s=cfg.heartbeat_interval_s,
            heartbeat_timeout_s=cfg.heartbeat_timeout_s,
            close_timeout_s=cfg.close_timeout_s,
            on_write_failure=lambda: server.counts.failure("ws_write"),
        )
        edge = ClientEdge(server.edge_parts, socket)
        server.edges.add(edge)
        try:
            await edge.run()
        finally:
            server.edges.discard(edge)
            await socket.shutdown()
        return ws
    finally:
        server.admission.release(ip)


async def healthz(request: web.Request) -> web.Response:
    return web.json_response({"status": "ok", "version": __version__})


async def readyz(request: web.Request) -> web.Response:
    server = request.app[SERVER_KEY]
    if server.draining:
        return web.json_response({"status": "draining"}, status=503)
    return web.json_response(
        {
            "status": "ready",
            "rooms": len(server.registry.rooms),
            "connections": len(server.edges),
        }
    )


async def dev_token(request: web.Request) -> web.Response:
    """Dev mode only: mint a token so the bundled pages can join without a token service."""
    server = request.app[SERVER_KEY]
    try:
        body = await request.json()
    except ValueError:
        raise web.HTTPBadRequest(text="body must be JSON\n") from None
    if not isinstance(body, dict):
        raise web.HTTPBadRequest(text="body must be a JSON object\n")
    room, name = body.get("room"), body.get("name")
    if not isinstance(room, str) or not room.strip() or len(room) > protocol.MAX_ROOM_LENGTH:
        raise web.HTTPBadRequest(text="'room' must be a non-empty string\n")
    if name is not None and (not isinstance(name, str) or len(name) > protocol.MAX_NAME_LENGTH):
        raise web.HTTPBadRequest(text="'name' must be a short string\n")
    mode = body.get("mode")
    if mode is not None and mode not in ("sfu", "p2p"):
        raise web.HTTPBadRequest(text="'mode' must be sfu or p2p\n")
    identity = "user-" + secrets.token_hex(4)
    token = mint_token(
        server.secret,
        room=room,
        identity=identity,
        name=name or None,
        ttl_s=server.config.token_default_ttl_s,
        grants=Grants(),
        mode=mode,
    )
    return web.json_response({"token": token, "identity": identity, "room": room})


def _page(filename: str) -> Any:
    path: Path = STATIC_DIR / filename

    async def handler(request: web.Request) -> web.FileResponse:
        return web.FileResponse(path, headers={"Cache-Control": "no-cache"})

    return handler


# Pages load their scripts, styles and sockets from this origin only, and cannot be framed.
SECURITY_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data: blob:; "
        "media-src 'self' blob:; connect-src 'self'; object-src 'none'; base-uri 'none'; "
        "form-action 'self'; frame-ancestors 'none'"
    ),
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",
    "X-Content-Type-Options": "nosniff",
}


async def _security_headers(request: web.Request, response: web.StreamResponse) -> None:
    for name, value in SECURITY_HEADERS.items():
        response.headers.setdefault(name, value)


def create_app(server: Server) -> web.Application:
    cfg = server.config
    guard = ConnectionGuard(
        cfg.http_header_timeout_s,
        cfg.ip_max_pending_connections,
        lambda why: server.counts.failure("http_refused"),
    )
    app = web.Application(client_max_size=64 * 1024, middlewares=[guard_middleware(guard)])
    app[SERVER_KEY] = server
    app[GUARD_KEY] = guard
    app.on_response_prepare.append(_security_headers)
    app.router.add_get("/ws", websocket_handler)
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/readyz", readyz)
    if server.config.dev:
        app.router.add_post("/api/dev/token", dev_token)
    for route, filename in PAGES.items():
        if (STATIC_DIR / filename).exists():
            app.router.add_get(route, _page(filename))
    app.router.add_static("/js/", STATIC_DIR / "js", append_version=False)
    app.router.add_static("/css/", STATIC_DIR / "css", append_version=False)

    async def lifecycle(app: web.Application) -> Any:
        await server.bus.start()
        if isinstance(server.router, ClusterRouter):
            server.router.start()
        await server.turn.start()
        await server.media.start()
        yield
        await server.close()

    app.cleanup_ctx.append(lifecycle)
    # After the lifecycle: cleanup runs in reverse, so stats stop before the server drains.
    setup_admin(
        app,
        server.node_state(),
        secret=server.secret,
        settings=stats_settings(cfg),
        webhooks=webhook_settings(cfg, server.secret),
        dev=cfg.dev,
    )
    setup_whip(app, server.whip_parts())
    if isinstance(server.bus, ClusterBus) and isinstance(server.router, ClusterRouter):
        setup_cluster_admin(app, server.registry, server.bus, server.router)
    return app
