"""Signaling protocol v1: typed client messages parsed at the edge, server message builders.

docs/protocol.md is the human-readable spec of what is defined here.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from enum import StrEnum
from typing import Any, ClassVar, Literal

from relayroom.media import strictjson

PROTOCOL_VERSION = 1
MAX_ID_LENGTH = 64
MAX_NAME_LENGTH = 64
MAX_ROOM_LENGTH = 128
MAX_TOKEN_LENGTH = 8192
MAX_SDP_LENGTH = 60000
DEFAULT_MAX_DEPTH = 32
# Fields shown to people and written to logs: no control characters.
_PRINTABLE_FIELDS = frozenset({"room", "name", "to", "track_id"})


class ErrorCode(StrEnum):
    INVALID_MESSAGE = "invalid_message"
    UNKNOWN_TYPE = "unknown_type"
    UNAUTHORIZED = "unauthorized"
    FORBIDDEN = "forbidden"
    NOT_JOINED = "not_joined"
    ROOM_FULL = "room_full"
    RATE_LIMITED = "rate_limited"
    TOO_LARGE = "too_large"
    SDP_REJECTED = "sdp_rejected"
    UNAVAILABLE = "unavailable"
    INTERNAL = "internal"


class CloseReason(StrEnum):
    """Why the server ended a session; sent in `participant_left.reason` and close frames."""

    LEFT = "left"
    DUPLICATE_IDENTITY = "duplicate_identity"
    JOIN_TIMEOUT = "join_timeout"
    HEARTBEAT_TIMEOUT = "heartbeat_timeout"
    SLOW_CLIENT = "slow_client"
    ABUSE = "abuse"
    SHUTDOWN = "server_shutdown"
    REMOVED = "removed"
    ROOM_CLOSED = "room_closed"
    DISCONNECTED = "disconnected"
    MEDIA_FAILED = "media_failed"
    NODE_FAILED = "node_failed"
    ROOM_MOVED = "room_moved"


# Reasons after which the client should connect again (to any node) rather than give up.
RECONNECT_REASONS = frozenset(
    {CloseReason.SHUTDOWN, CloseReason.NODE_FAILED, CloseReason.ROOM_MOVED}
)


class ProtocolError(Exception):
    def __init__(self, code: ErrorCode, message: str, ref: str | int | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.ref = ref


# Field checks: (python type(s), required). Strings also get a maximum length.
_Spec = tuple[type | tuple[type, ...], bool, int | None]


@dataclass(frozen=True)
class ClientMessage:
    type: ClassVar[str]
    spec: ClassVar[dict[str, _Spec]] = {}
    id: str | int | None


@dataclass(frozen=True)
class Join(ClientMessage):
    type: ClassVar[str] = "join"
    spec: ClassVar[dict[str, _Spec]] = {
        "room": (str, True, MAX_ROOM_LENGTH),
        "token": (str, True, MAX_TOKEN_LENGTH),
        "name": (str, False, MAX_NAME_LENGTH),
        "resume": (str, False, 256),
    }
    room: str
    token: str
    name: str | None = None
    resume: str | None = None


@dataclass(frozen=True)
class PublishOffer(ClientMessage):
    type: ClassVar[str] = "publish_offer"
    spec: ClassVar[dict[str, _Spec]] = {"sdp": (str, True, MAX_SDP_LENGTH)}
    sdp: str


@dataclass(frozen=True)
class SubscribeAnswer(ClientMessage):
    type: ClassVar[str] = "subscribe_answer"
    spec: ClassVar[dict[str, _Spec]] = {"sdp": (str, True, MAX_SDP_LENGTH)}
    sdp: str


@dataclass(frozen=True)
class Candidate(ClientMessage):
    type: ClassVar[str] = "candidate"
    spec: ClassVar[dict[str, _Spec]] = {"pc": (str, True, 16), "candidate": (dict, True, None)}
    pc: Literal["publisher", "subscriber"]
    candidate: dict[str, Any]


@dataclass(frozen=True)
class Mute(ClientMessage):
    type: ClassVar[str] = "mute"
    spec: ClassVar[dict[str, _Spec]] = {"track_id": (str, True, 128), "muted": (bool, True, None)}
    track_id: str
    muted: bool


MAX_VIDEO_DIMENSION = 16384
QUALITIES = ("low", "medium", "high")


@dataclass(frozen=True)
class Subscription(ClientMessage):
    """What a subscriber wants of one video track it receives: a size or a quality, or none
    (paused). Picks the simulcast layer; without simulcast only ``paused`` matters."""

    type: ClassVar[str] = "subscription"
    spec: ClassVar[dict[str, _Spec]] = {
        "track_id": (str, True, 128),
        "max_width": (int, False, None),
        "max_height": (int, False, None),
        "quality": (str, False, 16),
        "paused": (bool, False, None),
    }
    track_id: str
    max_width: int | None = None
    max_height: int | None = None
    quality: str | None = None
    paused: bool | None = None


@dataclass(frozen=True)
class Stats(ClientMessage):
    type: ClassVar[str] = "stats"
    spec: ClassVar[dict[str, _Spec]] = {"report": (dict, True, None)}
    report: dict[str, Any]


@dataclass(frozen=True)
class Signal(ClientMessage):
    type: ClassVar[str] = "signal"
    spec: ClassVar[dict[str, _Spec]] = {
        "to": (str, True, 128),
        "payload": ((dict, list, str, int, float, bool), True, None),
    }
    to: str
    payload: Any


@dataclass(frozen=True)
class Ping(ClientMessage):
    type: ClassVar[str] = "ping"
    spec: ClassVar[dict[str, _Spec]] = {"ts": ((int, float), False, None)}
    ts: int | float | None = None


@dataclass(frozen=True)
class Leave(ClientMessage):
    type: ClassVar[str] = "leave"


MESSAGE_TYPES: dict[str, type[ClientMessage]] = {
    cls.type: cls
    for cls in (
        Join,
        PublishOffer,
        SubscribeAnswer,
        Candidate,
        Mute,
        Subscription,
        Stats,
        Signal,
        Ping,
        Leave,
    )
}


def parse_client_message(text: str, max_depth: int = DEFAULT_MAX_DEPTH) -> ClientMessage:
    """Parse one text frame into a typed message, or raise ProtocolError.

    Strict JSON only (docs/protocol.md, "Input rules"): no NaN/Infinity, no number a browser
    cannot hold (non-finite floats, integers beyond 2^53-1), no lone surrogate in any string,
    nesting at most `max_depth` deep. Anything else is `invalid_message`, never relayed.
    """
    try:
        data = strictjson.parse(text)
    except strictjson.JsonRejected:
        raise ProtocolError(ErrorCode.INVALID_MESSAGE, "message is not valid JSON") from None
    reason = strictjson.problem(data, max_depth)
    if reason is not None:
        ref = data.get("id") if isinstance(data, dict) else None
        ref = ref if _valid_id(ref) and strictjson.problem(ref, 0) is None else None
        raise ProtocolError(ErrorCode.INVALID_MESSAGE, f"message rejected: {reason}", ref)
    if not isinstance(data, dict):
        raise ProtocolError(ErrorCode.INVALID_MESSAGE, "message must be a JSON object")
    ref = data.get("id")
    if ref is not None and not _valid_id(ref):
        raise ProtocolError(
            ErrorCode.INVALID_MESSAGE,
            f"'id' must be a string of at most {MAX_ID_LENGTH} characters or an integer",
        )
    kind = data.get("type")
    if not isinstance(kind, str):
        raise ProtocolError(ErrorCode.INVALID_MESSAGE, "message needs a string 'type'", ref)
    cls = MESSAGE_TYPES.get(kind)
    if cls is None:
        raise ProtocolError(ErrorCode.UNKNOWN_TYPE, f"unknown message type {kind[:40]!r}", ref)
    values: dict[str, Any] = {"id": ref}
    for name, (types_, required, max_len) in cls.spec.items():
        value = data.get(name)
        if value is None:
            if required:
                raise ProtocolError(ErrorCode.INVALID_MESSAGE, f"{kind}: '{name}' is required", ref)
            continue
        # bool is an int in Python: reject true/false where only numbers are meant.
        bool_misfit = isinstance(value, bool) and bool not in _as_tuple(types_)
        if bool_misfit or not isinstance(value, types_):
            raise ProtocolError(
                ErrorCode.INVALID_MESSAGE, f"{kind}: '{name}' has the wrong type", ref
            )
        if max_len is not None and isinstance(value, str) and len(value) > max_len:
            raise ProtocolError(
                ErrorCode.INVALID_MESSAGE, f"{kind}: '{name}' is longer than {max_len}", ref
            )
        if name in _PRINTABLE_FIELDS and isinstance(value, str) and has_control(value):
            raise ProtocolError(
                ErrorCode.INVALID_MESSAGE, f"{kind}: '{name}' holds control characters", ref
            )
        values[name] = value
    message = cls(**values)
    _check_semantics(message)
    return message


def has_control(text: str) -> bool:
    """True when `text` holds a C0/C1 control character (tabs and newlines included)."""
    return any(c < " " or "\x7f" <= c < "\xa0" for c in text)


def _as_tuple(types_: type | tuple[type, ...]) -> tuple[type, ...]:
    return types_ if isinstance(types_, tuple) else (types_,)


def _valid_id(ref: object) -> bool:
    if isinstance(ref, bool):
        return False
    if isinstance(ref, int):
        return abs(ref) < 2**53
    return isinstance(ref, str) and len(ref) <= MAX_ID_LENGTH


def _check_semantics(message: ClientMessage) -> None:
    ref = message.id
    if isinstance(message, Join) and not message.room.strip():
        raise ProtocolError(ErrorCode.INVALID_MESSAGE, "join: 'room' must not be empty", ref)
    if isinstance(message, Subscription):
        _check_subscription(message)
    if isinstance(message, Candidate):
        if message.pc not in ("publisher", "subscriber"):
            raise ProtocolError(
                ErrorCode.INVALID_MESSAGE, "candidate: 'pc' must be publisher or subscriber", ref
            )
        cand = message.candidate.get("candidate")
        if not isinstance(cand, str) or len(cand) > 1024:
            raise ProtocolError(
                ErrorCode.INVALID_MESSAGE, "candidate: 'candidate.candidate' must be a string", ref
            )


def _check_subscription(message: Subscription) -> None:
    ref = message.id
    for name in ("max_width", "max_height"):
        value = getattr(message, name)
        if value is not None and not 1 <= value <= MAX_VIDEO_DIMENSION:
            raise ProtocolError(
                ErrorCode.INVALID_MESSAGE,
                f"subscription: '{name}' must be 1 to {MAX_VIDEO_DIMENSION} (pixels)",
                ref,
            )
    if message.quality is not None:
        if message.quality not in QUALITIES:
            raise ProtocolError(
                ErrorCode.INVALID_MESSAGE,
                f"subscription: 'quality' must be one of {', '.join(QUALITIES)}",
                ref,
            )
        if message.max_width is not None or message.max_height is not None:
            raise ProtocolError(
                ErrorCode.INVALID_MESSAGE,
                "subscription: give 'max_width'/'max_height' or 'quality', not both",
                ref,
            )


def layers(track_id: str, active: tuple[str, ...]) -> dict[str, Any]:
    """Dynacast, to a publisher: keep sending these simulcast encodings of a track, pause the
    others (``RTCRtpSender.setParameters``, ``encodings[i].active``)."""
    return {"type": "layers", "track_id": track_id, "active": list(active)}


# --- server -> client ---------------------------------------------------------------------


def encode(message: dict[str, Any]) -> str:
    """Serialise a server message once; the same string goes to every recipient.

    Always valid for a browser's JSON.parse and always encodable as UTF-8 (strictjson.dumps),
    so no value that slipped past validation can kill a writer.
    """
    return strictjson.dumps(message)


def error(code: ErrorCode, message: str, ref: str | int | None = None) -> dict[str, Any]:
    out: dict[str, Any] = {"type": "error", "code": code.value, "message": message}
    if ref is not None:
        out["ref"] = ref
    return out


class ConnectionState(StrEnum):
    """`participant_connection.state`: whether a participant's WebSocket is up."""

    RECONNECTING = "reconnecting"
    CONNECTED = "connected"


def participant_connection(participant_id: str, state: ConnectionState) -> dict[str, Any]:
    """Sent to the others when a participant's WebSocket drops (resumable) or is resumed."""
    return {
        "type": "participant_connection",
        "participant_id": participant_id,
        "state": state.value,
    }


def with_ref(message: dict[str, Any], ref: str | int | None) -> dict[str, Any]:
    if ref is not None:
        message["ref"] = ref
    return message


def to_wire(message: ClientMessage) -> str:
    """Serialise a parsed client message again (to forward it to the room's node)."""
    data: dict[str, Any] = {"type": message.type}
    for f in fields(message):
        value = getattr(message, f.name)
        if value is not None:
            data[f.name] = value
    return strictjson.dumps(data)
