"""Admin HTTP API (`/api/...`), the live stats feed, Prometheus `/metrics` and the OpenAPI doc.

Every `/api/` route but the OpenAPI document and the dev token needs
`Authorization: Bearer <JWT with the admin grant>`. A token for room `*` administers every room;
a token for one room with the admin grant administers that room only. The feed, a WebSocket, also
takes the token in `Sec-WebSocket-Protocol` (browsers cannot set other headers on a WebSocket); a
token in the URL is refused, since URLs end up in access logs and browser history.

`setup_admin(app, node, ...)` adds the routes and starts the stats collector with the application.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator, Callable, Mapping
from dataclasses import replace
from typing import Any, Protocol

from aiohttp import WSMsgType, web

from relayroom.media.errors import Closed, UnknownTrack
from relayroom.media.events import MediaEvent, TrackInfo, TrackPublished, TrackUnpublished
from relayroom.media.recording import Recording, RecordingError, Selection
from relayroom.media.stats import StatsCollector, StatsSettings, Tick, settings_json

from . import protocol
from .config import Config
from .counts import NodeCounts
from .gateway import MediaGateway, track_json
from .logs import about
from .metrics import Metrics, NodeState, metrics_handler
from .openapi import openapi_document
from .protocol import CloseReason
from .rooms import Member, RoomRegistry, RoomState
from .tokens import AccessToken, Grants, TokenError, mint_token, verify_token
from .webhooks import WebhookSettings, setup_webhooks
from .writer import BoundedWriter

log = logging.getLogger(__name__)

STATS_KEY = web.AppKey("stats", StatsCollector)
METRICS_KEY = web.AppKey("metrics", Metrics)
ALL_ROOMS = "*"
FEED_QUEUE_MAX = 32
DEV_ADMIN_TTL_S = 3600


def stats_settings(config: Config) -> StatsSettings:
    """The collector's settings from the Config's `stats_*` fields."""
    return StatsSettings(
        interval_s=config.stats_interval_s,
        history_s=config.stats_history_s,
        loss_threshold=config.stats_loss_threshold,
        rtt_threshold_ms=config.stats_rtt_threshold_ms,
        fps_threshold=config.stats_fps_threshold,
    )


# ------------------------------------------------------------------ errors and auth


def api_error(status: int, code: str, message: str) -> web.Response:
    headers = {"WWW-Authenticate": 'Bearer realm="relayroom"'} if status == 401 else None
    return web.json_response(
        {"error": {"code": code, "message": message}}, status=status, headers=headers
    )


class ApiError(Exception):
    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.response = api_error(status, code, message)


FEED_PROTOCOL = "relayroom.feed"
"""The feed's WebSocket subprotocol; a browser offers it beside the token protocol."""
TOKEN_PROTOCOL_PREFIX = "relayroom.token."
"""`Sec-WebSocket-Protocol: relayroom.feed, relayroom.token.<JWT>` carries a browser's token."""


def _bearer(request: web.Request) -> str | None:
    header = request.headers.get("Authorization", "")
    scheme, _, value = header.partition(" ")
    if scheme.lower() == "bearer" and value.strip():
        return value.strip()
    return None


def feed_token(request: web.Request) -> str | None:
    """The feed's token: `Authorization: Bearer`, else the `relayroom.token.` subprotocol.

    Raises ApiError (400) for a token in the URL, or a token protocol offered without
    `relayroom.feed` (the handshake could not select a protocol, and aiohttp would log the
    offered list, token included).
    """
    if "token" in request.query:
        raise ApiError(
            400,
            "invalid_request",
            "the token is not accepted in the URL (it would leak into logs and history): send "
            f"'Authorization: Bearer <token>' or 'Sec-WebSocket-Protocol: {FEED_PROTOCOL}, "
            f"{TOKEN_PROTOCOL_PREFIX}<token>'",
        )
    header = request.headers.get("Sec-WebSocket-Protocol", "")
    offered = [p.strip() for p in header.split(",") if p.strip()]
    carried = [
        p[len(TOKEN_PROTOCOL_PREFIX) :] for p in offered if p.startswith(TOKEN_PROTOCOL_PREFIX)
    ]
    if carried and FEED_PROTOCOL not in offered:
        raise ApiError(
            400,
            "invalid_request",
            f"offer the {FEED_PROTOCOL!r} subprotocol beside the token protocol",
        )
    return _bearer(request) or (carried[0] if carried and carried[0] else None)


def authorize(
    request: web.Request,
    secret: str,
    room: str = ALL_ROOMS,
    token: str | None = None,
) -> AccessToken:
    """The admin token of a request for `room` (`*`: every room), or an ApiError (401/403).

    `token` is the one the caller found (the feed's); otherwise `Authorization: Bearer`.
    """
    token = token or _bearer(request)
    if token is None:
        raise ApiError(401, "unauthorized", "an admin bearer token is required")
    try:
        access = verify_token(secret, token, room=room)
    except TokenError as exc:
        raise ApiError(401 if exc.code == "unauthorized" else 403, exc.code, exc.message) from None
    if not access.grants.admin:
        raise ApiError(403, "forbidden", "the token lacks the admin grant")
    return access


@web.middleware
async def _api_errors(request: web.Request, handler: Any) -> web.StreamResponse:
    try:
        response: web.StreamResponse = await handler(request)
        return response
    except ApiError as exc:
        return exc.response


# ------------------------------------------------------------------ views


def _worst(healths: list[str]) -> str:
    for level in ("bad", "warn"):
        if level in healths:
            return level
    return "ok"


class AdminApi:
    """The handlers; state comes from the registry, the media gateway and the stats collector."""

    def __init__(
        self, registry: RoomRegistry, media: MediaGateway, secret: str, stats: StatsCollector
    ) -> None:
        self.registry = registry
        self.media = media
        self.secret = secret  # verifies admin tokens (and signs the dev admin token)
        self.stats = stats

    # ---- helpers

    def _room(self, request: web.Request) -> tuple[RoomState, AccessToken]:
        name = request.match_info["room"]
        access = authorize(request, self.secret, name)
        room = self.registry.get(name)
        if room is None:
            raise ApiError(404, "not_found", f"no room {name[:64]!r}")
        return room, access

    def _member(self, request: web.Request) -> tuple[RoomState, Member, AccessToken]:
        room, access = self._room(request)
        pid = request.match_info["participant_id"]
        member = room.members.get(pid)
        if member is None:
            raise ApiError(404, "not_found", f"no participant {pid[:64]!r} in this room")
        return room, member, access

    def room_summary(self, room: RoomState) -> dict[str, Any]:
        bitrate_in = bitrate_out = 0.0
        healths = []
        for pid in room.members:
            latest = self.stats.latest(room.name, pid)
            if latest is not None:
                bitrate_in += latest["summary"]["bitrate_in_bps"]
                bitrate_out += latest["summary"]["bitrate_out_bps"]
                healths.append(latest["health"])
        return {
            "name": room.name,
            "mode": room.mode,
            "created_at": round(room.created_at, 3),
            "participants": len(room.members),
            "tracks": self.media.track_count(room.name),
            "recording": self.media.active_recording(room.name),
            "health": _worst(healths),
            "bitrate_in_bps": round(bitrate_in, 1),
            "bitrate_out_bps": round(bitrate_out, 1),
        }

    def participant_view(self, room: RoomState, member: Member) -> dict[str, Any]:
        media = self.media.participant_media(room.name, member.id)
        latest = self.stats.latest(room.name, member.id)
        return {
            "id": member.id,
            "identity": member.identity,
            "name": member.name,
            "joined_at": round(member.joined_at, 3),
            "grants": {
                "can_publish": member.grants.can_publish,
                "can_subscribe": member.grants.can_subscribe,
                "can_publish_data": member.grants.can_publish_data,
                "admin": member.grants.admin,
            },
            "tracks": [track_json(t) for t in media.tracks] if media else [],
            "subscriptions": [
                {"publisher_id": pub, "track_id": tid} for pub, tid in media.subscriptions
            ]
            if media
            else [],
            "health": latest["health"] if latest else "ok",
            "stats": latest,
        }

    # ---- handlers

    async def list_rooms(self, request: web.Request) -> web.Response:
        authorize(request, self.secret)
        rooms = [self.room_summary(r) for r in list(self.registry.rooms.values())]
        return web.json_response({"rooms": rooms})

    async def get_room(self, request: web.Request) -> web.Response:
        room, _ = self._room(request)
        body = self.room_summary(room)
        body["participants"] = [self.participant_view(room, m) for m in room.members.values()]
        body["tracks"] = self.media.tracks(room)
        return web.json_response(body)

    async def close_room(self, request: web.Request) -> web.Response:
        room, access = self._room(request)
        ids = list(room.members)
        for pid in ids:
            self.registry.end(room.name, pid, CloseReason.ROOM_CLOSED)
        self.stats.record_event(
            "room_closed", room=room.name, participants=len(ids), by=access.identity
        )
        log.info(
            "room=%s closed by admin %s (%d sessions)",
            room.name,
            access.identity,
            len(ids),
            extra=about(room.name),
        )
        return web.json_response({"room": room.name, "ended": len(ids)}, status=202)

    async def remove_participant(self, request: web.Request) -> web.Response:
        room, member, access = self._member(request)
        self.registry.end(room.name, member.id, CloseReason.REMOVED)
        self.stats.record_event(
            "participant_removed", room=room.name, participant_id=member.id, by=access.identity
        )
        log.info(
            "room=%s participant=%s removed by admin %s",
            room.name,
            member.id,
            access.identity,
            extra=about(room.name, member.id),
        )
        return web.json_response({"room": room.name, "participant_id": member.id}, status=202)

    async def mute_track(self, request: web.Request) -> web.Response:
        room, member, access = self._member(request)
        try:
            body = await request.json()
        except ValueError:
            raise ApiError(400, "invalid_request", "body must be JSON") from None
        muted = body.get("muted") if isinstance(body, dict) else None
        if not isinstance(muted, bool):
            raise ApiError(400, "invalid_request", 'body must be {"muted": true|false}')
        track_id = request.match_info["track_id"]
        try:
            info = await self.media.set_muted(room.name, member.id, track_id, muted)
        except UnknownTrack:
            raise ApiError(404, "not_found", f"no published track {track_id[:64]!r}") from None
        except Closed as exc:
            raise ApiError(409, "closed", str(exc)) from None
        if info is None:
            raise ApiError(409, "no_media", "this participant has no media session")
        self.stats.record_event(
            "track_muted", room=room.name, participant_id=member.id, track_id=track_id, muted=muted
        )
        log.info(
            "room=%s participant=%s track %s %s by admin %s",
            room.name,
            member.id,
            track_id,
            "muted" if muted else "unmuted",
            access.identity,
            extra=about(room.name, member.id),
        )
        return web.json_response({"participant_id": member.id, "track": track_json(info)})

    # ---- recordings

    def _recording(self, request: web.Request) -> tuple[RoomState | None, Recording]:
        """The recording named in the URL, checked against the room in it."""
        name = request.match_info["room"]
        authorize(request, self.secret, name)
        recording = self.media.recording(request.match_info["recording_id"])
        if recording is None or recording.room != name:
            raise ApiError(404, "not_found", "no such recording in this room")
        return self.registry.get(name), recording

    async def start_recording(self, request: web.Request) -> web.Response:
        room, access = self._room(request)
        body: Any = {}
        if request.can_read_body:
            try:
                body = await request.json()
            except ValueError:
                raise ApiError(400, "invalid_request", "body must be JSON") from None
        selection = _selection(body)
        try:
            recording = self.media.start_recording(room.name, selection)
        except RecordingError as exc:
            status = {"conflict": 409, "nothing_to_record": 409, "limit": 429}.get(exc.code, 500)
            raise ApiError(status, exc.code, str(exc)) from None
        log.info(
            "room=%s recording %s started by admin %s",
            room.name,
            recording.id,
            access.identity,
            extra=about(room.name),
        )
        return web.json_response(recording.to_json(), status=201)

    async def list_recordings(self, request: web.Request) -> web.Response:
        name = request.match_info["room"]
        authorize(request, self.secret, name)
        return web.json_response({"recordings": [r.to_json() for r in self.media.recordings(name)]})

    async def get_recording(self, request: web.Request) -> web.Response:
        _, recording = self._recording(request)
        return web.json_response(recording.to_json())

    async def stop_recording(self, request: web.Request) -> web.Response:
        _, recording = self._recording(request)
        self.media.stop_recording(recording.id)
        return web.json_response(recording.to_json())

    async def participant_stats(self, request: web.Request) -> web.Response:
        room, member, _ = self._member(request)
        since_text = request.query.get("since")
        since: float | None = None
        if since_text is not None:
            try:
                since = float(since_text)
            except ValueError:
                raise ApiError(400, "invalid_request", "'since' must be a unix time") from None
        samples = self.stats.history(room.name, member.id, since)
        head = protocol.encode(
            {
                "room": room.name,
                "participant_id": member.id,
                "interval_s": self.stats.settings.interval_s,
                "thresholds": self.stats.settings.thresholds(),
            }
        )
        # Samples are kept JSON-encoded: splice them in without decoding.
        text = head[:-1] + ',"samples":[' + ",".join(samples) + "]}"
        return web.Response(text=text, content_type="application/json")

    async def list_events(self, request: web.Request) -> web.Response:
        authorize(request, self.secret)
        since: float | None = None
        if "since" in request.query:
            try:
                since = float(request.query["since"])
            except ValueError:
                raise ApiError(400, "invalid_request", "'since' must be a unix time") from None
        return web.json_response({"events": self.stats.events.since(since)})

    async def stats_info(self, request: web.Request) -> web.Response:
        authorize(request, self.secret)
        return web.json_response(
            {"settings": settings_json(self.stats.settings), "cost": self.stats.cost()}
        )

    async def dev_admin_token(self, request: web.Request) -> web.Response:
        """Dev mode only: an admin token for the bundled dashboard."""
        token = mint_token(
            self.secret,
            room=ALL_ROOMS,
            identity="dashboard-dev",
            ttl_s=DEV_ADMIN_TTL_S,
            grants=Grants(
                can_publish=False, can_subscribe=False, can_publish_data=False, admin=True
            ),
        )
        return web.json_response({"token": token, "expires_in": DEV_ADMIN_TTL_S})


# ------------------------------------------------------------------ live feed


class FeedClient:
    """One dashboard WebSocket: a bounded queue; a client that falls behind is dropped."""

    def __init__(
        self,
        ws: web.WebSocketResponse,
        queue_max: int,
        on_failure: Callable[[], None] | None = None,
    ) -> None:
        self.ws = ws
        self._out = BoundedWriter(ws, queue_max, label="stats feed:", on_failure=on_failure)
        self.dropped = False

    def push(self, text: str) -> bool:
        if self.dropped:
            return False
        if not self._out.push(text):
            self.stop()
            return False
        return True

    def stop(self) -> None:
        """Drop this client: nothing more is sent, and `write_loop()` returns."""
        self.dropped = True
        self._out.clear()
        self._out.wake()

    async def write_loop(self) -> None:
        await self._out.run(stop=lambda: self.dropped)


class FeedRelay(Protocol):
    """Exchanges tick parts between nodes (implemented in signaling/cluster_admin.py)."""

    def share(self, part: dict[str, Any]) -> None: ...

    def merge(self, part: dict[str, Any]) -> dict[str, Any]: ...


class Feed:
    """Fans each stats tick (new samples, events, room overview) out to dashboard sockets."""

    def __init__(self, api: AdminApi, counts: NodeCounts, queue_max: int = FEED_QUEUE_MAX) -> None:
        self._api = api
        self._counts = counts
        self._clients: set[FeedClient] = set()
        self._queue_max = queue_max
        # Multi-node: shares this node's part of each tick and merges the other nodes' parts.
        self.relay: FeedRelay | None = None

    def local_part(self, tick: Tick) -> dict[str, Any]:
        rooms = self._api.registry.rooms
        return {
            "rooms": [self._api.room_summary(r) for r in list(rooms.values())],
            "participants": [
                {"room": r.name, **m.public(), "joined_at": round(m.joined_at, 3)}
                for r in list(rooms.values())
                for m in r.members.values()
            ],
            "samples": tick.samples,
            "events": tick.events,
        }

    def on_tick(self, tick: Tick) -> None:
        try:
            self._on_tick(tick)
        except Exception:
            # Counted and logged once in a while; the next tick is tried afresh.
            counts = self._counts
            counts.failure("feed")
            if counts.failures["feed"] in (1, 10, 100) or counts.failures["feed"] % 1000 == 0:
                log.exception("stats feed: a tick failed (%d so far)", counts.failures["feed"])

    def _on_tick(self, tick: Tick) -> None:
        part = self.local_part(tick) if self._clients or self.relay else None
        if self.relay is not None and part is not None:
            self.relay.share(part)
            part = self.relay.merge(part)
        if not self._clients or part is None:
            return
        message = protocol.encode({"type": "tick", "t": round(tick.t, 3), **part})
        for client in list(self._clients):
            if not client.push(message):
                self._drop(client)

    def _drop(self, client: FeedClient) -> None:
        if client in self._clients:
            self._clients.discard(client)
            log.warning("stats feed client too slow: dropped")

    async def handler(self, request: web.Request) -> web.StreamResponse:
        authorize(request, self._api.secret, token=feed_token(request))
        ws = web.WebSocketResponse(heartbeat=20.0, max_msg_size=4096, protocols=(FEED_PROTOCOL,))
        if not ws.can_prepare(request).ok:
            raise ApiError(400, "invalid_request", "expected a WebSocket upgrade")
        await ws.prepare(request)
        api = self._api
        stats = api.stats
        hello = {
            "type": "hello",
            "settings": settings_json(stats.settings),
            "thresholds": stats.settings.thresholds(),
            "rooms": [api.room_summary(r) for r in list(api.registry.rooms.values())],
            "events": stats.events.since(None, limit=100),
        }
        await ws.send_str(protocol.encode(hello))
        client = FeedClient(ws, self._queue_max, lambda: self._counts.failure("feed"))
        self._clients.add(client)
        writer = asyncio.create_task(client.write_loop(), name="stats-feed-writer")
        try:
            async for frame in ws:  # the client says nothing; this waits for its close
                if frame.type is WSMsgType.ERROR or client.dropped:
                    break
                if writer.done():
                    break
        finally:
            self._clients.discard(client)
            writer.cancel()
            with contextlib.suppress(asyncio.CancelledError, ConnectionError, RuntimeError):
                await writer
            if client.dropped:
                await ws.close(code=1008, message=b"feed consumer too slow")
        return ws

    async def close(self) -> None:
        for client in list(self._clients):
            client.stop()
            with contextlib.suppress(Exception):
                await client.ws.close(code=1001, message=b"server shutdown")
        self._clients.clear()


# ------------------------------------------------------------------ room events


class RoomWatcher:
    """Logs room lifecycle events as they happen (rooms starting and finishing, joins and
    leaves, tracks published and unpublished), and error counts once per tick.

    The event log feeds the webhooks, so the order here is the order receivers see: a room
    starts before its first join; a leaving participant's tracks end before it leaves, and
    the room finishes after its last leave (the media plane reports the tracks of a leaver
    later, after membership: those late reports are skipped).
    """

    def __init__(
        self,
        registry: RoomRegistry,
        media: MediaGateway,
        counts: NodeCounts,
        stats: StatsCollector,
        reports: _ClientReports,
    ) -> None:
        self._counts = counts
        self._stats = stats
        self._reports = reports
        self._registry = registry
        self._errors: dict[str, int] = dict(counts.errors)
        # Tracks logged as published and not yet as unpublished, by (room, participant id).
        self._published: dict[tuple[str, str], dict[str, TrackInfo]] = {}
        registry.listeners.append(self._on_membership)
        media.listeners.append(self._on_media)

    def _who(self, member: Member) -> dict[str, Any]:
        return {"participant_id": member.id, "identity": member.identity, "name": member.name}

    def _on_membership(self, room: str, member: Member, reason: CloseReason | None) -> None:
        record = self._stats.record_event
        state = self._registry.get(room)
        if reason is None:
            if state is not None and list(state.members) == [member.id]:  # a new room
                record("room_started", room=room, mode=state.mode)
            record("participant_joined", room=room, **self._who(member))
            return
        for track in self._published.pop((room, member.id), {}).values():
            record(
                "track_unpublished",
                room=room,
                **self._who(member),
                track=track_json(track),
                reason="participant_left",
            )
        record("participant_left", room=room, **self._who(member), reason=reason.value)
        self._reports.forget(room, member.id)
        if state is not None and not state.members:  # the registry drops it right after
            record("room_finished", room=room, mode=state.mode)

    def _on_media(self, room: str, event: MediaEvent) -> None:
        if not isinstance(event, TrackPublished | TrackUnpublished):
            return
        state = self._registry.get(room)
        member = state.members.get(event.participant_id) if state is not None else None
        key = (room, event.participant_id)
        if isinstance(event, TrackPublished):
            if member is None:  # left meanwhile
                return
            self._published.setdefault(key, {})[event.track.id] = event.track
            kind = "track_published"
        else:
            tracks = self._published.get(key, {})
            if member is None or tracks.pop(event.track.id, None) is None:
                return  # logged when its publisher left
            if not tracks:
                del self._published[key]
            kind = "track_unpublished"
        track = track_json(event.track)
        self._stats.record_event(kind, room=room, **self._who(member), track=track)

    def __call__(self) -> None:
        errors = self._counts.errors
        grown = {
            code: count - self._errors.get(code, 0)
            for code, count in errors.items()
            if count > self._errors.get(code, 0)
        }
        if grown:
            self._stats.record_event("errors", counts=grown)
            self._errors = dict(errors)


# ------------------------------------------------------------------ wiring


class _ClientReports:
    """Browser summaries from `Member.client_stats`, stamped with the time they arrived."""

    def __init__(self, registry: RoomRegistry) -> None:
        self._registry = registry
        self._seen: dict[tuple[str, str], tuple[Mapping[str, Any], float]] = {}

    def __call__(self, room: str, participant_id: str) -> Mapping[str, Any] | None:
        state = self._registry.get(room)
        member = state.members.get(participant_id) if state else None
        report = member.client_stats if member else None
        key = (room, participant_id)
        if report is None:
            self._seen.pop(key, None)
            return None
        seen = self._seen.get(key)
        if seen is None or seen[0] is not report:  # each `stats` message is a new dict
            seen = self._seen[key] = (report, time.time())
        return {**report, "received_at": seen[1]}

    def forget(self, room: str, participant_id: str) -> None:
        """Drop the report of a participant that left."""
        self._seen.pop((room, participant_id), None)


FEED_KEY = web.AppKey("feed", Feed)


def _selection(body: Any) -> Selection:
    """`{"participants": [...], "tracks": [...]}`, both optional: which tracks to record."""
    if not isinstance(body, dict) or set(body) - {"participants", "tracks"}:
        raise ApiError(
            400,
            "invalid_request",
            'body must be {} or {"participants": [ids], "tracks": [track ids]}',
        )
    picked: dict[str, frozenset[str] | None] = {}
    for key in ("participants", "tracks"):
        value = body.get(key)
        if value is not None and (
            not isinstance(value, list)
            or not value
            or len(value) > 64
            or not all(isinstance(v, str) and 0 < len(v) <= 64 for v in value)
        ):
            raise ApiError(
                400, "invalid_request", f"'{key}' must be a list of 1-64 ids (1-64 characters)"
            )
        picked[key] = frozenset(value) if value is not None else None
    return Selection(participants=picked["participants"], tracks=picked["tracks"])


def setup_admin(
    app: web.Application,
    node: NodeState,
    *,
    secret: str,
    settings: StatsSettings,
    webhooks: WebhookSettings,
    dev: bool,
) -> None:
    """Add the admin API, the feed, `/metrics` and the OpenAPI doc; run the stats collector
    and the webhooks."""
    media = node.media
    reports = _ClientReports(node.registry)
    stats = StatsCollector(lambda: media.rooms, settings, reports)
    dispatcher = setup_webhooks(app, webhooks, stats.events)
    metrics = Metrics(replace(node, webhooks=dispatcher.counters), stats)
    api = AdminApi(node.registry, media, secret, stats)
    feed = Feed(api, node.counts)
    stats.add_pre_tick(RoomWatcher(node.registry, media, node.counts, stats, reports))
    stats.add_listener(feed.on_tick)
    app[STATS_KEY] = stats

    def recording_event(kind: str, fields: dict[str, Any]) -> None:
        stats.record_event(kind, **fields)

    media.add_recording_listener(recording_event)
    app[FEED_KEY] = feed
    app[METRICS_KEY] = metrics
    app.middlewares.append(_api_errors)

    router = app.router
    router.add_get("/api/rooms", api.list_rooms)
    router.add_get("/api/rooms/{room}", api.get_room)
    router.add_delete("/api/rooms/{room}", api.close_room)
    router.add_get("/api/rooms/{room}/participants/{participant_id}/stats", api.participant_stats)
    router.add_delete("/api/rooms/{room}/participants/{participant_id}", api.remove_participant)
    router.add_post(
        "/api/rooms/{room}/participants/{participant_id}/tracks/{track_id}/mute", api.mute_track
    )
    router.add_post("/api/rooms/{room}/recordings", api.start_recording)
    router.add_get("/api/rooms/{room}/recordings", api.list_recordings)
    router.add_get("/api/rooms/{room}/recordings/{recording_id}", api.get_recording)
    router.add_delete("/api/rooms/{room}/recordings/{recording_id}", api.stop_recording)
    router.add_get("/api/events", api.list_events)
    router.add_get("/api/stats", api.stats_info)
    router.add_get("/api/feed", feed.handler)
    router.add_get("/metrics", metrics_handler(metrics))
    if dev:
        router.add_post("/api/dev/admin-token", api.dev_admin_token)

    async def openapi(request: web.Request) -> web.Response:
        # Built from the routes the app has by now (the router is frozen once it serves).
        served = {
            route.resource.canonical for route in request.app.router.routes() if route.resource
        }
        return web.json_response(openapi_document(served))

    router.add_get("/api/openapi.json", openapi)

    async def lifecycle(app: web.Application) -> AsyncIterator[None]:
        stats.start()
        yield
        await feed.close()
        await stats.close()

    app.cleanup_ctx.append(lifecycle)
