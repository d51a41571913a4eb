"""Access tokens: HS256 JWTs carrying identity, room and grants."""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass
from typing import Any

from relayroom.lazy_stack import without_cryptography

with without_cryptography():  # HS256 needs hmac only: cryptography loads with the first call
    import jwt

from .protocol import MAX_NAME_LENGTH, MAX_ROOM_LENGTH

ALGORITHM = "HS256"
GRANT_NAMES = ("can_publish", "can_subscribe", "can_publish_data", "admin")
ROOM_MODES = ("sfu", "p2p")
ALL_ROOMS = "*"
MAX_IDENTITY_LENGTH = 128
MIN_SECRET_LENGTH = 32  # an HS256 key; the server refuses a shorter api_secret
TIME_CLAIMS = ("exp", "nbf", "iat")
# Unix times a token may carry: integers between 2001 and 2286 (no strings, floats or 1e300).
TIME_MIN = 1_000_000_000
TIME_MAX = 9_999_999_999


class TokenError(Exception):
    """A token that does not admit its bearer; `code` is a protocol error code."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


class TokenRequestError(ValueError):
    """A token that must not be minted (the server would refuse it); `field` names the culprit."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"invalid token {field!r}: {message}")
        self.field = field
        self.message = message


@dataclass(frozen=True)
class Grants:
    can_publish: bool = True
    can_subscribe: bool = True
    can_publish_data: bool = True
    admin: bool = False


@dataclass(frozen=True)
class AccessToken:
    identity: str
    room: str
    name: str | None
    grants: Grants
    expires_at: float
    mode: str | None = None


def mint_token(
    secret: str,
    *,
    room: str,
    identity: str,
    ttl_s: int,
    name: str | None = None,
    grants: Grants | None = None,
    mode: str | None = None,
    now: float | None = None,
) -> str:
    """An HS256 JWT with these claims, unchecked (tests mint bad ones on purpose).

    Applications use `relayroom.api.AccessToken`, which runs `check_request` first.
    """
    issued = int(time.time() if now is None else now)
    claims: dict[str, Any] = {
        "sub": identity,
        "room": room,
        "iat": issued,
        "nbf": issued,
        "exp": issued + ttl_s,
        **asdict(grants or Grants()),
    }
    if name:
        claims["name"] = name
    if mode:
        claims["mode"] = mode
    return jwt.encode(claims, secret, algorithm=ALGORITHM)


def check_request(
    *,
    room: str,
    identity: str,
    ttl_s: int,
    name: str | None = None,
    grants: Grants | None = None,
    mode: str | None = None,
) -> None:
    """Refuse, before minting, what `verify_token` or the join would refuse."""
    if not isinstance(identity, str) or not identity or len(identity) > MAX_IDENTITY_LENGTH:
        raise TokenRequestError(
            "identity", f"must be a non-empty string of at most {MAX_IDENTITY_LENGTH} characters"
        )
    if not isinstance(room, str) or not room.strip() or len(room) > MAX_ROOM_LENGTH:
        raise TokenRequestError(
            "room", f"must be a non-empty string of at most {MAX_ROOM_LENGTH} characters"
        )
    if room == ALL_ROOMS and not (grants is not None and grants.admin):
        raise TokenRequestError("room", "'*' (every room) needs the admin grant")
    if isinstance(ttl_s, bool) or not isinstance(ttl_s, int) or ttl_s <= 0:
        raise TokenRequestError("ttl", "must be a positive whole number of seconds")
    if name is not None and (not isinstance(name, str) or len(name) > MAX_NAME_LENGTH):
        raise TokenRequestError("name", f"must be a string of at most {MAX_NAME_LENGTH} characters")
    if mode is not None and mode not in ROOM_MODES:
        raise TokenRequestError("mode", f"must be one of {', '.join(ROOM_MODES)}")


def verify_token(secret: str, token: str, *, room: str) -> AccessToken:
    """Decode and check a token for joining `room`. Raises TokenError."""
    try:
        header = jwt.get_unverified_header(token)
    except jwt.PyJWTError:
        raise TokenError("unauthorized", "token is not a JWT") from None
    if header.get("alg") != ALGORITHM:
        raise TokenError("unauthorized", f"token algorithm must be {ALGORITHM}")
    try:
        claims = jwt.decode(
            token,
            secret,
            algorithms=[ALGORITHM],
            options={"require": ["exp", "sub", "room"]},
            leeway=5,
        )
    except jwt.ExpiredSignatureError:
        raise TokenError("unauthorized", "token expired") from None
    except jwt.ImmatureSignatureError:
        raise TokenError("unauthorized", "token not valid yet") from None
    except jwt.MissingRequiredClaimError as exc:
        raise TokenError("unauthorized", f"token lacks the {exc.claim!r} claim") from None
    except jwt.InvalidSignatureError:
        raise TokenError("unauthorized", "token signature does not verify") from None
    except jwt.PyJWTError:
        raise TokenError("unauthorized", "token is invalid") from None
    except (ValueError, OverflowError, TypeError):  # a claim PyJWT could not compare
        raise TokenError("unauthorized", "token has a malformed time claim") from None
    return _access_from_claims(claims, room)


def _check_time_claims(claims: dict[str, Any]) -> None:
    """exp, nbf and iat must be integer unix times in range (PyJWT also takes "123" or 1e300)."""
    for name in TIME_CLAIMS:
        if name not in claims:
            continue
        value = claims[name]
        if isinstance(value, bool) or not isinstance(value, int):
            raise TokenError("unauthorized", f"token {name!r} must be an integer unix time")
        if not TIME_MIN <= value <= TIME_MAX:
            raise TokenError("unauthorized", f"token {name!r} is out of range")


def _access_from_claims(claims: dict[str, Any], room: str) -> AccessToken:
    _check_time_claims(claims)
    identity, token_room = claims["sub"], claims["room"]
    if not isinstance(identity, str) or not identity or len(identity) > MAX_IDENTITY_LENGTH:
        raise TokenError("unauthorized", "token 'sub' must be a non-empty string")
    if not _clean(identity):
        raise TokenError("unauthorized", "token 'sub' holds control characters or surrogates")
    if not isinstance(token_room, str):
        raise TokenError("unauthorized", "token 'room' must be a string")
    if token_room not in (room, ALL_ROOMS):
        raise TokenError("forbidden", "token is for another room")
    flags: dict[str, bool] = {}
    for grant in GRANT_NAMES:
        value = claims.get(grant, getattr(Grants(), grant))
        if not isinstance(value, bool):
            raise TokenError("unauthorized", f"grant {grant!r} must be a boolean")
        flags[grant] = value
    if token_room == ALL_ROOMS and not flags["admin"]:
        raise TokenError("forbidden", "a token for every room needs the admin grant")
    name = claims.get("name")
    if name is not None and (not isinstance(name, str) or not _clean(name)):
        raise TokenError("unauthorized", "token 'name' must be a string of printable text")
    mode = claims.get("mode")
    if mode is not None and mode not in ROOM_MODES:
        raise TokenError("unauthorized", f"token 'mode' must be one of {', '.join(ROOM_MODES)}")
    return AccessToken(
        identity=identity,
        room=room,
        name=name if isinstance(name, str) else None,
        grants=Grants(**flags),
        expires_at=float(claims["exp"]),
        mode=mode,
    )


def _clean(text: str) -> bool:
    """No control characters and no lone surrogates (names are shown and relayed)."""
    if any(c < " " or "\x7f" <= c < "\xa0" for c in text):
        return False
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True
