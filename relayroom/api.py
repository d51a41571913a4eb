"""relayroom's Python server SDK: mint access tokens and call the admin API from an application.

    from relayroom.api import AccessToken, Grants, RoomService, WebhookReceiver

`AccessToken` makes the same JWT as `relayroom token` (both go through
`relayroom.signaling.tokens`). `RoomService` is a typed async client of the admin API
(docs/operations.md); it owns one aiohttp ClientSession, closed by `async with` or `close()`.
`WebhookReceiver` checks and parses the server's webhook requests (docs/webhooks.md), with the
same signing code as the server (`relayroom.signaling.webhook_signing`).
No module state: every object carries its own secret, URL and session.
"""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator, Callable, Mapping
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any, Self
from urllib.parse import quote

import aiohttp
from yarl import URL

from relayroom.signaling.config import Config
from relayroom.signaling.tokens import (
    ALL_ROOMS,
    MIN_SECRET_LENGTH,
    Grants,
    TokenRequestError,
    check_request,
    mint_token,
)
from relayroom.signaling.webhook_signing import (
    DEFAULT_TOLERANCE_S,
    WebhookVerificationError,
    check_key,
    derive_key,
    verify_request,
)

__all__ = [
    "AccessToken",
    "Event",
    "Grants",
    "ParticipantInfo",
    "PublishedTrack",
    "Recording",
    "RecordingFile",
    "RoomDetail",
    "RoomInfo",
    "RoomService",
    "RoomServiceError",
    "StatsHistory",
    "Subscription",
    "TokenRequestError",
    "TrackInfo",
    "WebhookEvent",
    "WebhookParticipant",
    "WebhookReceiver",
    "WebhookRecording",
    "WebhookRoom",
    "WebhookVerificationError",
]

DEFAULT_TTL_S: int = Config.token_default_ttl_s
ADMIN_GRANTS = Grants(can_publish=False, can_subscribe=False, can_publish_data=False, admin=True)
# RoomService mints a fresh short-lived admin token per request from the API secret.
SERVICE_IDENTITY = "relayroom-api"
SERVICE_TOKEN_TTL_S = 60


# ------------------------------------------------------------------ tokens


@dataclass(frozen=True, kw_only=True)
class AccessToken:
    """What a token says; `to_jwt()` signs it. Invalid fields raise TokenRequestError at once.

    `room="*"` with `grants.admin` administers every room (for RoomService or the dashboard).
    """

    api_secret: str = field(repr=False)
    identity: str
    room: str
    name: str | None = None
    grants: Grants = field(default_factory=Grants)
    ttl_s: int = DEFAULT_TTL_S
    mode: str | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.api_secret, str) or len(self.api_secret) < MIN_SECRET_LENGTH:
            raise TokenRequestError(
                "api_secret", f"must be the server's secret (at least {MIN_SECRET_LENGTH} chars)"
            )
        check_request(
            room=self.room,
            identity=self.identity,
            ttl_s=self.ttl_s,
            name=self.name,
            grants=self.grants,
            mode=self.mode,
        )

    @classmethod
    def admin(
        cls, api_secret: str, *, identity: str = "admin", room: str = ALL_ROOMS, ttl_s: int = 3600
    ) -> AccessToken:
        """An admin token (no media grants) for `room`, or for every room."""
        return cls(
            api_secret=api_secret, identity=identity, room=room, grants=ADMIN_GRANTS, ttl_s=ttl_s
        )

    def to_jwt(self, *, now: float | None = None) -> str:
        """The signed HS256 JWT, valid from `now` (default: the current time) for `ttl_s`."""
        return mint_token(
            self.api_secret,
            room=self.room,
            identity=self.identity,
            ttl_s=self.ttl_s,
            name=self.name,
            grants=self.grants,
            mode=self.mode,
            now=now,
        )


# ------------------------------------------------------------------ results


class RoomServiceError(Exception):
    """A failed admin call. `status` is the HTTP status (None: no response came back) and
    `code` the API's error code (`not_found`, `forbidden`, `unauthorized`, `invalid_request`,
    `no_media`, `closed`...; `unreachable` and `bad_response` come from the client itself)."""

    def __init__(self, status: int | None, code: str, message: str) -> None:
        super().__init__(f"{code} ({status}): {message}" if status else f"{code}: {message}")
        self.status = status
        self.code = code
        self.message = message


@dataclass(frozen=True)
class TrackInfo:
    id: str
    kind: str
    muted: bool
    codec: str | None = None


@dataclass(frozen=True)
class Subscription:
    publisher_id: str
    track_id: str


@dataclass(frozen=True)
class ParticipantInfo:
    id: str
    identity: str
    name: str | None
    joined_at: float
    grants: Grants
    tracks: tuple[TrackInfo, ...]
    subscriptions: tuple[Subscription, ...]
    health: str
    # The latest stats sample (docs/operations.md, "What is measured"), None before the first.
    stats: Mapping[str, Any] | None


@dataclass(frozen=True)
class RoomInfo:
    name: str
    mode: str
    created_at: float
    participants: int
    tracks: int
    health: str
    bitrate_in_bps: float
    bitrate_out_bps: float
    node: str | None = None  # with several nodes: the node that owns the room


@dataclass(frozen=True)
class PublishedTrack:
    participant_id: str
    track: TrackInfo


@dataclass(frozen=True)
class RoomDetail:
    name: str
    mode: str
    created_at: float
    health: str
    bitrate_in_bps: float
    bitrate_out_bps: float
    participants: tuple[ParticipantInfo, ...]
    tracks: tuple[PublishedTrack, ...]


@dataclass(frozen=True)
class Event:
    seq: int
    t: float
    type: str
    data: Mapping[str, Any]  # the type's own fields (room, participant_id, reason...)


@dataclass(frozen=True)
class RecordingFile:
    """One track's file in a recording (docs/recording.md, "The manifest")."""

    participant_id: str
    identity: str | None
    track_id: str
    kind: str
    codec: str
    file: str  # name inside the recording's directory
    started_at: float  # unix time of its first frame
    start_rtp_timestamp: int
    start_ntp: float | None  # the publisher's NTP time of that frame (unix), from an SR
    duration_s: float
    bytes: int


@dataclass(frozen=True)
class Recording:
    id: str
    room: str
    state: str  # active, finished, failed
    reason: str | None  # api, room_ended, time_limit, size_limit, write_error, server_shutdown
    error: str | None
    started_at: float
    ended_at: float | None
    directory: str  # on the server's disk
    bytes: int
    files: tuple[RecordingFile, ...]


@dataclass(frozen=True)
class StatsHistory:
    room: str
    participant_id: str
    interval_s: float
    thresholds: Mapping[str, float]
    samples: tuple[Mapping[str, Any], ...]  # oldest first


class _Body:
    """Typed reads of one JSON object of a response; a wrong shape is a `bad_response`."""

    def __init__(self, value: Any, what: str) -> None:
        if not isinstance(value, dict):
            raise RoomServiceError(None, "bad_response", f"{what}: expected an object")
        self._value: dict[str, Any] = value
        self._what = what

    def _get(self, key: str, kinds: tuple[type, ...], optional: bool = False) -> Any:
        value = self._value.get(key)
        if value is None and optional:
            return None
        if not isinstance(value, kinds) or (isinstance(value, bool) and bool not in kinds):
            raise RoomServiceError(None, "bad_response", f"{self._what}: bad {key!r}")
        return value

    def text(self, key: str) -> str:
        return str(self._get(key, (str,)))

    def opt_text(self, key: str) -> str | None:
        value = self._get(key, (str,), optional=True)
        return None if value is None else str(value)

    def number(self, key: str) -> float:
        return float(self._get(key, (int, float)))

    def integer(self, key: str) -> int:
        return int(self._get(key, (int,)))

    def flag(self, key: str) -> bool:
        return bool(self._get(key, (bool,)))

    def items(self, key: str) -> list[Any]:
        return list(self._get(key, (list,)))

    def child(self, key: str) -> _Body:
        return _Body(self._get(key, (dict,)), f"{self._what}.{key}")

    def opt_dict(self, key: str) -> dict[str, Any] | None:
        value = self._get(key, (dict,), optional=True)
        return None if value is None else dict(value)

    def raw(self) -> dict[str, Any]:
        return self._value


def _track(value: Any) -> TrackInfo:
    body = _Body(value, "track")
    return TrackInfo(
        id=body.text("id"),
        kind=body.text("kind"),
        muted=body.flag("muted"),
        codec=body.opt_text("codec"),
    )


def _participant(value: Any) -> ParticipantInfo:
    body = _Body(value, "participant")
    grants = body.child("grants")
    return ParticipantInfo(
        id=body.text("id"),
        identity=body.text("identity"),
        name=body.opt_text("name"),
        joined_at=body.number("joined_at"),
        grants=Grants(
            can_publish=grants.flag("can_publish"),
            can_subscribe=grants.flag("can_subscribe"),
            can_publish_data=grants.flag("can_publish_data"),
            admin=grants.flag("admin"),
        ),
        tracks=tuple(_track(t) for t in body.items("tracks")),
        subscriptions=tuple(
            Subscription(publisher_id=s.text("publisher_id"), track_id=s.text("track_id"))
            for s in (_Body(item, "subscription") for item in body.items("subscriptions"))
        ),
        health=body.text("health"),
        stats=body.opt_dict("stats"),
    )


def _room_summary(body: _Body) -> dict[str, Any]:
    """The fields a room's summary and its detail share."""
    return {
        "name": body.text("name"),
        "mode": body.text("mode"),
        "created_at": body.number("created_at"),
        "health": body.text("health"),
        "bitrate_in_bps": body.number("bitrate_in_bps"),
        "bitrate_out_bps": body.number("bitrate_out_bps"),
    }


def _room_info(value: Any) -> RoomInfo:
    body = _Body(value, "room")
    return RoomInfo(
        **_room_summary(body),
        participants=body.integer("participants"),
        tracks=body.integer("tracks"),
        node=body.opt_text("node"),
    )


def _room_detail(value: Any) -> RoomDetail:
    body = _Body(value, "room")
    return RoomDetail(
        **_room_summary(body),
        participants=tuple(_participant(p) for p in body.items("participants")),
        tracks=tuple(
            PublishedTrack(participant_id=t.text("participant_id"), track=_track(t.raw()["track"]))
            for t in (_Body(item, "tracks[]") for item in body.items("tracks"))
        ),
    )


def _event(value: Any) -> Event:
    body = _Body(value, "event")
    data = {k: v for k, v in body.raw().items() if k not in ("seq", "t", "type")}
    return Event(seq=body.integer("seq"), t=body.number("t"), type=body.text("type"), data=data)


# ------------------------------------------------------------------ the admin client


def _recording(value: Any) -> Recording:
    body = _Body(value, "recording")
    files = []
    for item in body.items("files"):
        f = _Body(item, "recording file")
        ntp = f.raw().get("start_ntp")
        files.append(
            RecordingFile(
                participant_id=f.text("participant_id"),
                identity=f.opt_text("identity"),
                track_id=f.text("track_id"),
                kind=f.text("kind"),
                codec=f.text("codec"),
                file=f.text("file"),
                started_at=f.number("started_at"),
                start_rtp_timestamp=f.integer("start_rtp_timestamp"),
                start_ntp=float(ntp) if isinstance(ntp, int | float) else None,
                duration_s=f.number("duration_s"),
                bytes=f.integer("bytes"),
            )
        )
    ended = body.raw().get("ended_at")
    return Recording(
        id=body.text("recording_id"),
        room=body.text("room"),
        state=body.text("state"),
        reason=body.opt_text("reason"),
        error=body.opt_text("error"),
        started_at=body.number("started_at"),
        ended_at=float(ended) if isinstance(ended, int | float) else None,
        directory=body.text("directory"),
        bytes=body.integer("bytes"),
        files=tuple(files),
    )


class RoomService:
    """Typed async client of the admin API of one server (or of any node of a cluster).

    Authenticate with the server's `api_secret` (a short-lived admin token for every room is
    minted per request) or with a ready admin `token` (which may be scoped to one room)::

        async with RoomService("http://127.0.0.1:8080", api_secret=secret) as rooms:
            for room in await rooms.list_rooms():
                print(room.name, room.participants)

    Every failure raises RoomServiceError.
    """

    def __init__(
        self,
        url: str,
        *,
        api_secret: str | None = None,
        token: str | None = None,
        timeout_s: float = 10.0,
    ) -> None:
        if (api_secret is None) == (token is None):
            raise ValueError("give exactly one of api_secret and token")
        base = URL(url)
        if base.scheme not in ("http", "https") or not base.host:
            raise ValueError(f"url must be http(s)://host[:port]/, not {url!r}")
        if timeout_s <= 0:
            raise ValueError("timeout_s must be positive")
        self._base = base.with_path(base.path.rstrip("/") + "/")
        self._admin = (
            AccessToken.admin(api_secret, identity=SERVICE_IDENTITY, ttl_s=SERVICE_TOKEN_TTL_S)
            if api_secret is not None
            else None
        )
        self._token = token
        self._timeout = aiohttp.ClientTimeout(total=timeout_s)
        self._session: aiohttp.ClientSession | None = None
        self._closed = False

    async def __aenter__(self) -> Self:
        self._open()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    async def close(self) -> None:
        """Close the HTTP session; idempotent."""
        self._closed = True
        session, self._session = self._session, None
        if session is not None:
            await session.close()

    # ---- rooms

    async def list_rooms(self) -> list[RoomInfo]:
        """Every room (with several nodes: of the whole cluster, each tagged with its node)."""
        body = _Body(await self._call("GET", ("api", "rooms")), "rooms")
        return [_room_info(r) for r in body.items("rooms")]

    async def get_room(self, room: str) -> RoomDetail:
        """One room with its participants and tracks; `not_found` (404) if it is not open."""
        return _room_detail(await self._call("GET", ("api", "rooms", room)))

    async def close_room(self, room: str) -> int:
        """End every session of the room (reason `room_closed`); returns how many."""
        body = _Body(await self._call("DELETE", ("api", "rooms", room)), "ended")
        return body.integer("ended")

    # ---- participants

    async def list_participants(self, room: str) -> list[ParticipantInfo]:
        return list((await self.get_room(room)).participants)

    async def get_participant(self, room: str, participant_id: str) -> ParticipantInfo:
        for participant in await self.list_participants(room):
            if participant.id == participant_id:
                return participant
        raise RoomServiceError(404, "not_found", f"no participant {participant_id!r} in {room!r}")

    async def remove_participant(self, room: str, participant_id: str) -> None:
        """End the participant's session with reason `removed` (it cannot resume)."""
        await self._call("DELETE", ("api", "rooms", room, "participants", participant_id))

    async def mute_track(
        self, room: str, participant_id: str, track_id: str, muted: bool = True
    ) -> TrackInfo:
        """Mute (or unmute) a published track: forwarding pauses and the room is told."""
        path = ("api", "rooms", room, "participants", participant_id, "tracks", track_id, "mute")
        body = _Body(await self._call("POST", path, payload={"muted": muted}), "mute")
        return _track(body.raw().get("track"))

    async def participant_stats(
        self, room: str, participant_id: str, since: float | None = None
    ) -> StatsHistory:
        """The participant's stats samples, oldest first; only newer than `since` (unix time)."""
        path = ("api", "rooms", room, "participants", participant_id, "stats")
        query = {"since": repr(since)} if since is not None else None
        body = _Body(await self._call("GET", path, query=query), "stats")
        thresholds = body.child("thresholds")
        return StatsHistory(
            room=body.text("room"),
            participant_id=body.text("participant_id"),
            interval_s=body.number("interval_s"),
            thresholds={k: thresholds.number(k) for k in thresholds.raw()},
            samples=tuple(_Body(s, "sample").raw() for s in body.items("samples")),
        )

    # ---- recordings

    async def start_recording(
        self,
        room: str,
        *,
        participants: list[str] | None = None,
        tracks: list[str] | None = None,
    ) -> Recording:
        """Record the room's published tracks, or those of `participants` (ids or identities)
        / with these `tracks` ids; tracks published later are recorded too. Errors: `conflict`
        (already recording), `nothing_to_record`, `limit`, `not_found` (no such room)."""
        payload: dict[str, list[str]] = {}
        if participants is not None:
            payload["participants"] = participants
        if tracks is not None:
            payload["tracks"] = tracks
        path = ("api", "rooms", room, "recordings")
        return _recording(await self._call("POST", path, payload=payload))

    async def list_recordings(self, room: str) -> list[Recording]:
        """The room's active and recently finished recordings, oldest first."""
        body = _Body(await self._call("GET", ("api", "rooms", room, "recordings")), "recordings")
        return [_recording(r) for r in body.items("recordings")]

    async def get_recording(self, room: str, recording_id: str) -> Recording:
        path = ("api", "rooms", room, "recordings", recording_id)
        return _recording(await self._call("GET", path))

    async def stop_recording(self, room: str, recording_id: str) -> Recording:
        """Stop it (reason `api`); the files are complete when this returns."""
        path = ("api", "rooms", room, "recordings", recording_id)
        return _recording(await self._call("DELETE", path))

    # ---- events, stats, feed

    async def list_events(self, since: float | None = None) -> list[Event]:
        """The event log (joins, leaves, removals, mutes, errors, thresholds), oldest first."""
        query = {"since": repr(since)} if since is not None else None
        body = _Body(await self._call("GET", ("api", "events"), query=query), "events")
        return [_event(e) for e in body.items("events")]

    async def stats_info(self) -> dict[str, Any]:
        """The stats settings and the collector's measured cost."""
        return _Body(await self._call("GET", ("api", "stats")), "stats").raw()

    async def feed(self) -> AsyncIterator[dict[str, Any]]:
        """The live feed: a `hello` message, then one `tick` per stats interval, until closed.

        The token goes in the `Authorization` header of the upgrade request, never in the URL
        (the server refuses `?token=`: URLs end up in access logs).
        """
        session = self._open()
        url = self._url(("api", "feed"))
        try:
            ws = await session.ws_connect(url, headers=self._auth(), timeout=self._ws_timeout())
        except aiohttp.WSServerHandshakeError as exc:
            raise RoomServiceError(exc.status, "feed_refused", exc.message) from None
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise RoomServiceError(None, "unreachable", f"{url}: {exc!r}") from None
        async with ws:
            async for frame in ws:
                if frame.type is not aiohttp.WSMsgType.TEXT:
                    break
                yield _Body(json.loads(frame.data), "feed").raw()

    # ---- plumbing

    def _open(self) -> aiohttp.ClientSession:
        if self._closed:
            raise RuntimeError("this RoomService is closed")
        if self._session is None:
            self._session = aiohttp.ClientSession(timeout=self._timeout)
        return self._session

    def _ws_timeout(self) -> aiohttp.ClientWSTimeout:
        return aiohttp.ClientWSTimeout(ws_receive=None, ws_close=self._timeout.total)

    def _auth(self) -> dict[str, str]:
        token = self._admin.to_jwt() if self._admin is not None else self._token
        return {"Authorization": f"Bearer {token}"}

    def _url(self, segments: tuple[str, ...]) -> URL:
        # Each segment is quoted whole: a room name may hold '/', '?', '#', spaces.
        path = "/".join(quote(s, safe="") for s in segments)
        return URL(str(self._base) + path, encoded=True)

    async def _call(
        self,
        method: str,
        segments: tuple[str, ...],
        *,
        payload: Any = None,
        query: Mapping[str, str] | None = None,
    ) -> Any:
        session = self._open()
        url = self._url(segments)
        if query:
            url = url.with_query(query)
        started = time.monotonic()
        try:
            async with session.request(method, url, json=payload, headers=self._auth()) as response:
                text = await response.text()
                status = response.status
        except TimeoutError:
            waited = time.monotonic() - started
            raise RoomServiceError(
                None, "unreachable", f"{method} {url}: no answer in {waited:.1f}s"
            ) from None
        except aiohttp.ClientError as exc:
            raise RoomServiceError(None, "unreachable", f"{method} {url}: {exc}") from None
        try:
            body = json.loads(text)
        except ValueError:
            raise RoomServiceError(
                status, "bad_response", f"{method} {url}: not JSON: {text[:200]!r}"
            ) from None
        if status >= 400:
            error = body.get("error") if isinstance(body, dict) else None
            if isinstance(error, dict) and isinstance(error.get("code"), str):
                raise RoomServiceError(status, error["code"], str(error.get("message", "")))
            raise RoomServiceError(status, f"http_{status}", text[:200])
        return body


# ------------------------------------------------------------------ webhooks


@dataclass(frozen=True)
class WebhookRoom:
    name: str
    mode: str | None = None  # on room_started and room_finished: sfu or p2p


@dataclass(frozen=True)
class WebhookParticipant:
    id: str
    identity: str
    name: str | None


@dataclass(frozen=True)
class WebhookRecording:
    id: str
    files: tuple[Any, ...]  # on recording_finished: the written files, as the recorder lists them
    data: Mapping[str, Any]  # every field the recorder logged (tracks, files, ...)


@dataclass(frozen=True)
class WebhookEvent:
    """One verified webhook (docs/webhooks.md lists which fields each event carries)."""

    id: str  # the same on every retry of this event: dedupe on it
    event: str  # room_started, participant_joined, track_published, recording_finished...
    created_at: float  # unix time on the server when it happened
    room: WebhookRoom
    participant: WebhookParticipant | None = None
    track: TrackInfo | None = None
    recording: WebhookRecording | None = None
    reason: str | None = None  # participant_left: its close reason; recording_finished: why
    body: Mapping[str, Any] = field(default_factory=dict)  # the whole JSON body


def _webhook_event(value: Any) -> WebhookEvent:
    body = _Body(value, "webhook")
    room = body.child("room")
    participant = body.opt_dict("participant")
    recording = body.opt_dict("recording")
    track = body.opt_dict("track")
    people = _Body(participant, "webhook.participant") if participant is not None else None
    files = recording.get("files") if recording is not None else None
    return WebhookEvent(
        id=body.text("id"),
        event=body.text("event"),
        created_at=body.number("created_at"),
        room=WebhookRoom(name=room.text("name"), mode=room.opt_text("mode")),
        participant=WebhookParticipant(
            id=people.text("id"), identity=people.text("identity"), name=people.opt_text("name")
        )
        if people is not None
        else None,
        track=_track(track) if track is not None else None,
        recording=WebhookRecording(
            id=_Body(recording, "webhook.recording").text("id"),
            files=tuple(files) if isinstance(files, list) else (),
            data=recording,
        )
        if recording is not None
        else None,
        reason=body.opt_text("reason"),
        body=body.raw(),
    )


class WebhookReceiver:
    """Verify and parse relayroom's webhook requests, in any web framework::

        receiver = WebhookReceiver(webhook_key)  # or WebhookReceiver.from_api_secret(secret)
        event = receiver.verify(raw_body, request.headers)  # raises WebhookVerificationError

    `verify` checks the HMAC-SHA256 signature of ``"<timestamp>.<body>"`` with the key, then
    that the signed timestamp is within `tolerance_s` of this machine's clock (a captured
    request replayed later is refused), then parses the body. Pass the body exactly as
    received (bytes, before any JSON decoding). `clock` (unix seconds) is for tests.
    """

    def __init__(
        self,
        key: str,
        *,
        tolerance_s: float = DEFAULT_TOLERANCE_S,
        clock: Callable[[], float] = time.time,
    ) -> None:
        check_key(key)
        if not tolerance_s > 0:
            raise ValueError("tolerance_s must be positive")
        self._key = key
        self._tolerance_s = tolerance_s
        self._clock = clock

    def __repr__(self) -> str:
        return f"WebhookReceiver(tolerance_s={self._tolerance_s:g})"  # never the key

    @classmethod
    def from_api_secret(
        cls,
        api_secret: str,
        *,
        tolerance_s: float = DEFAULT_TOLERANCE_S,
        clock: Callable[[], float] = time.time,
    ) -> WebhookReceiver:
        """A receiver for a server without `webhook_key`: its key is derived from the secret."""
        if not isinstance(api_secret, str) or len(api_secret) < MIN_SECRET_LENGTH:
            raise ValueError(f"api_secret must be the server's secret ({MIN_SECRET_LENGTH}+ chars)")
        return cls(derive_key(api_secret), tolerance_s=tolerance_s, clock=clock)

    def verify(self, body: bytes | str, headers: Mapping[str, str]) -> WebhookEvent:
        """The event of a genuine, fresh request; `WebhookVerificationError` otherwise."""
        raw = body.encode() if isinstance(body, str) else bytes(body)
        verify_request(self._key, raw, headers, now=self._clock(), tolerance_s=self._tolerance_s)
        try:
            return _webhook_event(json.loads(raw))
        except ValueError as exc:  # not JSON (or not UTF-8)
            raise WebhookVerificationError("bad_body", f"not a JSON object: {exc}") from None
        except RoomServiceError as exc:
            raise WebhookVerificationError("bad_body", exc.message) from None
