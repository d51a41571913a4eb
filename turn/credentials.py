"""Long-term credentials: TURN REST ephemeral credentials (coturn `use-auth-secret`) and static
users, and the per-user quota identity."""

from __future__ import annotations

import base64
import hashlib
import hmac
import time
from collections.abc import Callable, Mapping


def rest_password(secret: str, username: str) -> str:
    """base64(HMAC-SHA1(secret, username)), the coturn `use-auth-secret` password."""
    mac = hmac.new(secret.encode(), username.encode(), hashlib.sha1).digest()
    return base64.b64encode(mac).decode("ascii")


def rest_credentials(
    secret: str, user: str, ttl_s: int, now: float | None = None
) -> tuple[str, str]:
    """Mint TURN REST credentials: (`"<expiry>:<user>"`, password) valid for `ttl_s` seconds.

    `expiry` is a Unix timestamp; coturn with `use-auth-secret` and the same secret accepts them.
    """
    if ttl_s <= 0:
        raise ValueError("ttl_s must be positive")
    if ":" in user:
        raise ValueError("user must not contain ':'")
    expiry = int((time.time() if now is None else now) + ttl_s)
    username = f"{expiry}:{user}" if user else str(expiry)
    return username, rest_password(secret, username)


class CredentialStore:
    """Looks up the password of a username: a static user, or a REST username not yet expired."""

    def __init__(
        self,
        secret: str | None,
        static_users: Mapping[str, str],
        wall_clock: Callable[[], float] = time.time,
    ) -> None:
        self._secret = secret
        self._static = dict(static_users)
        self._wall_clock = wall_clock

    def password(
        self, username: str, now: float | None = None, *, allow_expired: bool = False
    ) -> str | None:
        static = self._static.get(username)
        if static is not None:
            return static
        if self._secret is None:
            return None
        expiry = rest_expiry(username)
        if expiry is None:
            return None
        if not allow_expired and expiry < (self._wall_clock() if now is None else now):
            return None
        return rest_password(self._secret, username)

    def quota_user(self, username: str) -> str:
        """The identity quotas count against: the user part of a REST username."""
        if username in self._static:
            return username
        _, _, user = username.partition(":")
        return user or username


def rest_expiry(username: str) -> int | None:
    head = username.split(":", 1)[0]
    if not head.isascii() or not head.isdigit() or len(head) > 12:
        return None
    return int(head)
