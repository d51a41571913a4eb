"""WHIP ingest (RFC 9725) and WHEP playback (IETF WHEP draft) over HTTP.

A WHIP publisher and a WHEP viewer are room members like any other: they join through the
router with an `HttpEdge` (signaling/http_participant.py) instead of a WebSocket, so they
appear in the participant list, admin remove and media failure end them, and a WHIP
publisher's offer goes through the same `publish_offer` path as a browser's. A WHEP viewer's
media is a `media.viewer.Viewer` (the client offers; the server answers).

Routes (docs/whip-whep.md):
  POST/OPTIONS /whip/{room}, PATCH/DELETE/OPTIONS /whip/{room}/{session}
  POST/OPTIONS /whep/{room}, PATCH/DELETE/OPTIONS /whep/{room}/{session}
"""

from __future__ import annotations

import dataclasses
import logging
import secrets
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Literal
from urllib.parse import quote

from aiohttp import web

from relayroom.media.errors import MediaError
from relayroom.media.events import TrackInfo
from relayroom.media.tasks import TaskOwner

from .gateway import MediaGateway
from .http_participant import HttpEdge
from .protocol import Candidate, CloseReason, ErrorCode, Join, ProtocolError, PublishOffer
from .room_side import RoomSideParticipant
from .router import Router
from .sdpfrag import FragError, parse_sdpfrag
from .tokens import AccessToken, TokenError, verify_token

log = logging.getLogger(__name__)

Kind = Literal["whip", "whep"]
SDP = "application/sdp"
SDPFRAG = "application/trickle-ice-sdpfrag"
EXPOSED = "Location, ETag, Link, Accept-Patch, Accept-Post, Access-Control-Allow-Methods"
# One list for the endpoint and the session URL. Clients (the eyevinn WHIP client) read the
# endpoint's Access-Control-Allow-Methods to decide whether they may trickle with PATCH, so it
# is exposed too: a cross-origin page cannot read it otherwise, and without trickle that client
# waits 2 s for ICE gathering before it even sends its offer.
METHODS = "POST, PATCH, DELETE, OPTIONS"

# Protocol error codes as HTTP statuses.
STATUS = {
    ErrorCode.INVALID_MESSAGE: 400,
    ErrorCode.SDP_REJECTED: 400,
    ErrorCode.UNAUTHORIZED: 401,
    ErrorCode.FORBIDDEN: 403,
    ErrorCode.ROOM_FULL: 503,
    ErrorCode.RATE_LIMITED: 429,
    ErrorCode.TOO_LARGE: 413,
    ErrorCode.UNAVAILABLE: 503,
}


class HttpError(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


@dataclass
class HttpSession:
    """One WHIP or WHEP session resource."""

    id: str
    kind: Kind
    room: str
    link: RoomSideParticipant  # WHIP/WHEP rooms live on this node
    edge: HttpEdge
    etag: str
    ufrag: str | None  # the client's ICE ufrag from its offer (a different one: ICE restart)

    @property
    def location(self) -> str:
        return f"/{self.kind}/{quote(self.room, safe='')}/{self.id}"


def _offer_ufrag(sdp: str) -> str | None:
    for line in sdp.splitlines():
        if line.startswith("a=ice-ufrag:"):
            return line[len("a=ice-ufrag:") :].strip()
    return None


def link_header(servers: list[dict[str, object]]) -> list[str]:
    """RFC 9725 section 4.6: one `Link: <url>; rel="ice-server"` per ICE server URL."""
    out = []
    for server in servers:
        urls = server.get("urls")
        for url in urls if isinstance(urls, list) else [urls]:
            value = f'<{url}>; rel="ice-server"'
            if "username" in server:
                value += (
                    f'; username="{server["username"]}"; credential="{server["credential"]}"'
                    '; credential-type="password"'
                )
            out.append(value)
    return out


@dataclass(frozen=True)
class WhipSettings:
    allowed_origins: tuple[str, ...]  # empty: any origin (CORS)
    max_body_bytes: int
    max_sessions: int  # WHIP and WHEP sessions on this node
    answer_timeout_s: float  # for the room side's answer to a WHIP offer


@dataclass(frozen=True)
class WhipParts:
    """What the WHIP/WHEP service uses (wired in server.py)."""

    settings: WhipSettings
    secret: str  # verifies tokens
    router: Router
    media: MediaGateway
    ice_servers: Callable[[str], list[dict[str, Any]]]
    draining: Callable[[], bool]  # new sessions are refused while the node drains


class WhipService:
    """The WHIP and WHEP session resources of this node."""

    def __init__(self, parts: WhipParts) -> None:
        self._parts = parts
        self._settings = parts.settings
        self._sessions: dict[str, HttpSession] = {}
        self._tasks = TaskOwner()

    @property
    def sessions(self) -> dict[str, HttpSession]:
        return dict(self._sessions)

    # --- common ----------------------------------------------------------------------------

    def _cors(self, request: web.Request) -> dict[str, str]:
        origin = request.headers.get("Origin")
        allowed = self._settings.allowed_origins
        headers = {
            "Access-Control-Allow-Methods": METHODS,
            # ETag: the eyevinn WHIP client sends the session's ETag as a request header on PATCH
            # (a quirk; If-Match is the RFC's); without it its cross-origin trickle fails.
            "Access-Control-Allow-Headers": "Authorization, Content-Type, If-Match, ETag",
            "Access-Control-Expose-Headers": EXPOSED,
        }
        if not allowed:
            headers["Access-Control-Allow-Origin"] = "*"
        elif origin in allowed:
            headers["Access-Control-Allow-Origin"] = origin
            headers["Vary"] = "Origin"
        return headers

    def _token(self, request: web.Request, room: str) -> tuple[AccessToken, str]:
        auth = request.headers.get("Authorization", "")
        scheme, _, token = auth.partition(" ")
        token = token.strip()
        if scheme.lower() != "bearer" or not token:
            raise HttpError(401, "an Authorization: Bearer <token> header is required")
        try:
            return verify_token(self._parts.secret, token, room=room), token
        except TokenError as exc:
            raise HttpError(403 if exc.code == "forbidden" else 401, exc.message) from None

    async def _body(self, request: web.Request, content_type: str) -> str:
        if request.content_type != content_type:
            raise HttpError(415, f"Content-Type must be {content_type}")
        limit = self._settings.max_body_bytes
        if request.content_length is not None and request.content_length > limit:
            raise HttpError(413, f"body over {limit} bytes")
        data = await request.content.read(limit + 1)
        if len(data) > limit:
            raise HttpError(413, f"body over {limit} bytes")
        try:
            return data.decode("utf-8")
        except UnicodeDecodeError:
            raise HttpError(400, "body is not UTF-8") from None

    def _session(self, request: web.Request, kind: Kind) -> HttpSession:
        session = self._sessions.get(request.match_info["session"])
        if (
            session is None
            or session.kind != kind
            or session.room != request.match_info["room"]
            or session.link.left
        ):
            raise HttpError(404, f"no such {kind.upper()} session")
        return session

    async def _join(self, kind: Kind, access: AccessToken, room: str, token: str) -> HttpSession:
        if self._parts.draining():
            raise HttpError(503, "server is shutting down")
        if len(self._sessions) >= self._settings.max_sessions:
            raise HttpError(503, f"too many {kind.upper()} sessions on this node")
        session_id = secrets.token_urlsafe(16)
        holder: list[HttpSession] = []
        edge = HttpEdge(
            f"{kind} session={session_id} room={room}",
            lambda reason: self._ended(holder[0], reason) if holder else None,
        )
        join = Join(id=None, room=room, token=token, name=None)
        try:
            link = await self._parts.router.join(access, join, edge)
        except ProtocolError as exc:
            raise HttpError(STATUS.get(exc.code, 500), exc.message) from None
        if not isinstance(link, RoomSideParticipant):
            # Multi-node: the owner would verify the token again and lose the narrowed grants
            # (a WHIP publisher must not be offered tracks it cannot answer for).
            await link.leave(CloseReason.LEFT)
            raise HttpError(503, f"the room lives on another node: send {kind.upper()} there")
        session = HttpSession(
            session_id, kind, room, link, edge, f'"{secrets.token_hex(8)}"', ufrag=None
        )
        holder.append(session)
        self._sessions[session_id] = session
        return session

    def _ended(self, session: HttpSession, reason: str) -> None:
        """The room side ended the participant: leave for it, as a closed WebSocket does."""
        self._sessions.pop(session.id, None)
        try:
            why = CloseReason(reason)
        except ValueError:
            why = CloseReason.REMOVED
        self._tasks.spawn(session.link.leave(why), f"{session.kind}-leave")

    async def _drop(self, session: HttpSession, reason: CloseReason) -> None:
        self._sessions.pop(session.id, None)
        await session.link.leave(reason)

    def _created(
        self, request: web.Request, session: HttpSession, answer: str, identity: str
    ) -> web.Response:
        headers = self._cors(request)
        headers.update(
            {
                "Location": session.location,
                "ETag": session.etag,
                "Accept-Patch": SDPFRAG,
                "Content-Type": SDP,
            }
        )
        response = web.Response(status=201, body=answer.encode(), headers=headers)
        for value in link_header(self._parts.ice_servers(identity)):
            response.headers.add("Link", value)
        return response

    # --- WHIP ------------------------------------------------------------------------------

    async def whip_post(self, request: web.Request) -> web.StreamResponse:
        room = request.match_info["room"]
        access, token = self._token(request, room)
        if not access.grants.can_publish:
            raise HttpError(403, "the token does not grant can_publish")
        offer = await self._body(request, SDP)
        if "m=" not in offer:
            raise HttpError(400, "the body is not an SDP offer (no m-line)")
        # A WHIP publisher only sends: it is never offered the others' tracks.
        grants = dataclasses.replace(access.grants, can_subscribe=False)
        session = await self._join("whip", dataclasses.replace(access, grants=grants), room, token)
        session.ufrag = _offer_ufrag(offer)
        try:
            reply = await session.edge.request(
                session.link,
                lambda ref: PublishOffer(id=ref, sdp=offer),
                self._settings.answer_timeout_s,
            )
        except ProtocolError as exc:
            await self._drop(session, CloseReason.LEFT)
            raise HttpError(STATUS.get(exc.code, 500), exc.message) from None
        except BaseException:
            await self._drop(session, CloseReason.LEFT)
            raise
        answer = str((reply or {}).get("sdp", ""))
        log.info("whip session %s publishes in room %s", session.id, room)
        return self._created(request, session, answer, access.identity)

    async def whip_patch(self, request: web.Request) -> web.StreamResponse:
        return await self._patch(request, "whip")

    async def whip_delete(self, request: web.Request) -> web.StreamResponse:
        return await self._delete(request, "whip")

    # --- WHEP ------------------------------------------------------------------------------

    async def whep_post(self, request: web.Request) -> web.StreamResponse:
        room = request.match_info["room"]
        access, token = self._token(request, room)
        if not access.grants.can_subscribe:
            raise HttpError(403, "the token does not grant can_subscribe")
        offer = await self._body(request, SDP)
        if "m=" not in offer:
            raise HttpError(400, "the body is not an SDP offer (no m-line)")
        want_participant = request.query.get("participant")
        want_track = request.query.get("track")
        # The viewer's media is its own (media.viewer): no publisher or subscriber PC.
        grants = dataclasses.replace(
            access.grants, can_publish=False, can_subscribe=False, can_publish_data=False
        )
        session = await self._join("whep", dataclasses.replace(access, grants=grants), room, token)
        session.ufrag = _offer_ufrag(offer)
        link = session.link
        try:
            state = link.room

            def selector(publisher_id: str, track: TrackInfo) -> bool:
                if want_track is not None and track.id != want_track:
                    return False
                if want_participant is None:
                    return True
                member = state.members.get(publisher_id)
                return publisher_id == want_participant or (
                    member is not None and member.identity == want_participant
                )

            answer = await self._parts.media.add_viewer(state, link.member, offer, selector)
        except (ProtocolError, MediaError) as exc:
            await self._drop(session, CloseReason.LEFT)
            code = exc.code if isinstance(exc, ProtocolError) else ErrorCode(exc.code)
            message = exc.message if isinstance(exc, ProtocolError) else exc.reason
            raise HttpError(STATUS.get(code, 500), message) from None
        except BaseException:
            await self._drop(session, CloseReason.LEFT)
            raise
        log.info("whep session %s watches room %s", session.id, room)
        return self._created(request, session, answer, access.identity)

    async def whep_patch(self, request: web.Request) -> web.StreamResponse:
        return await self._patch(request, "whep")

    async def whep_delete(self, request: web.Request) -> web.StreamResponse:
        return await self._delete(request, "whep")

    # --- session resources -------------------------------------------------------------------

    async def _patch(self, request: web.Request, kind: Kind) -> web.StreamResponse:
        session = self._session(request, kind)
        body = await self._body(request, SDPFRAG)
        if_match = request.headers.get("If-Match")
        if if_match is not None and if_match != "*" and if_match != session.etag:
            raise HttpError(412, "If-Match does not match the session's ETag")
        try:
            frag = parse_sdpfrag(body)
        except FragError as exc:
            raise HttpError(400, str(exc)) from None
        if if_match == "*" or (
            frag.ufrag is not None and session.ufrag is not None and frag.ufrag != session.ufrag
        ):
            # aiortc cannot restart ICE; RFC 9725 4.3: a session that supports trickle but
            # not restarts answers 422. The client starts a new session instead.
            raise HttpError(422, "ICE restart is not supported: start a new session")
        items: list[dict[str, object]] = [
            {"candidate": c.line, "sdpMid": c.mid, "sdpMLineIndex": 0} for c in frag.candidates
        ]
        if frag.end_of_candidates:
            items.append({"candidate": "", "sdpMid": None, "sdpMLineIndex": 0})
        link = session.link
        for item in items:
            if kind == "whip":
                try:
                    await link.handle(Candidate(id=None, pc="publisher", candidate=item))
                except (ProtocolError, MediaError):
                    continue  # a refused candidate is dropped, as on the WebSocket
            else:
                await self._parts.media.viewer_candidate(session.room, link.participant_id, item)
        return web.Response(status=204, headers=self._cors(request))

    async def _delete(self, request: web.Request, kind: Kind) -> web.StreamResponse:
        session = self._session(request, kind)
        await self._drop(session, CloseReason.LEFT)
        log.info("%s session %s deleted", kind, session.id)
        return web.Response(status=200, headers=self._cors(request))

    async def options_endpoint(self, request: web.Request) -> web.StreamResponse:
        headers = self._cors(request)
        headers["Accept-Post"] = SDP
        response = web.Response(status=204, headers=headers)
        # ICE servers carry minted TURN credentials: only for a valid token, never to a
        # CORS preflight (RFC 9725 4.6).
        if "Access-Control-Request-Method" not in request.headers and (
            "Authorization" in request.headers
        ):
            access, _ = self._token(request, request.match_info["room"])
            for value in link_header(self._parts.ice_servers(access.identity)):
                response.headers.add("Link", value)
        return response

    async def options_session(self, request: web.Request) -> web.StreamResponse:
        headers = self._cors(request)
        headers["Accept-Patch"] = SDPFRAG
        return web.Response(status=204, headers=headers)

    async def close(self) -> None:
        await self._tasks.close()


WHIP_KEY = web.AppKey("whip", WhipService)
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def _errors(service: WhipService, handler: Handler) -> Handler:
    """HttpError becomes its status with a one-line text body (and CORS headers)."""

    async def wrapped(request: web.Request) -> web.StreamResponse:
        try:
            return await handler(request)
        except HttpError as exc:
            headers = service._cors(request)
            if exc.status == 401:
                headers["WWW-Authenticate"] = "Bearer"
            return web.Response(status=exc.status, text=exc.message + "\n", headers=headers)

    return wrapped


def setup_whip(app: web.Application, parts: WhipParts) -> WhipService:
    """Register the WHIP and WHEP routes; the service closes with the app."""
    service = WhipService(parts)
    app[WHIP_KEY] = service
    r = app.router
    for kind, post, patch, delete in (
        ("whip", service.whip_post, service.whip_patch, service.whip_delete),
        ("whep", service.whep_post, service.whep_patch, service.whep_delete),
    ):
        endpoint, resource = f"/{kind}/{{room}}", f"/{kind}/{{room}}/{{session}}"
        r.add_post(endpoint, _errors(service, post))
        r.add_route("OPTIONS", endpoint, _errors(service, service.options_endpoint))
        r.add_patch(resource, _errors(service, patch))
        r.add_delete(resource, _errors(service, delete))
        r.add_route("OPTIONS", resource, _errors(service, service.options_session))

    async def close(app: web.Application) -> None:
        await service.close()

    app.on_cleanup.append(close)
    return service
