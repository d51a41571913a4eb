"""Long-term credential authentication (RFC 8489 section 9.2) with stateless nonces.

A nonce is `<timestamp><mac>` where the MAC binds the timestamp to the client's transport
address under a key that lives only in this process. Checking one needs no table, so nothing
is stored per client before it authenticates; an expired or foreign nonce gives 438.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import time
from collections.abc import Callable
from dataclasses import dataclass

from relayroom.turn.codec import Address, Attr, Message, check_integrity, long_term_key
from relayroom.turn.credentials import CredentialStore

_NONCE_MAC_HEX = 24


@dataclass(frozen=True, slots=True)
class Authenticated:
    username: str
    key: bytes
    sha256: bool


@dataclass(frozen=True, slots=True)
class Rejected:
    code: int  # 400, 401 or 438
    nonce: str | None  # set when the reply must carry REALM and NONCE
    reason: str


class NonceIssuer:
    def __init__(self, lifetime_s: float, clock: Callable[[], float] = time.monotonic) -> None:
        self._key = os.urandom(32)
        self._lifetime = lifetime_s
        self._clock = clock

    def issue(self, client: Address, transport: str) -> str:
        stamp = f"{int(self._clock()) & 0xFFFFFFFF:08x}"
        return stamp + self._mac(stamp, client, transport)

    def is_valid(self, nonce: str, client: Address, transport: str) -> bool:
        if len(nonce) != 8 + _NONCE_MAC_HEX:
            return False
        stamp = nonce[:8]
        try:
            issued = int(stamp, 16)
        except ValueError:
            return False
        if not hmac.compare_digest(nonce[8:], self._mac(stamp, client, transport)):
            return False
        age = (int(self._clock()) & 0xFFFFFFFF) - issued
        return 0 <= age <= self._lifetime

    def _mac(self, stamp: str, client: Address, transport: str) -> str:
        text = f"{stamp}|{transport}|{client[0]}|{client[1]}".encode()
        return hmac.new(self._key, text, hashlib.sha256).hexdigest()[:_NONCE_MAC_HEX]


class Authenticator:
    def __init__(self, realm: str, store: CredentialStore, nonces: NonceIssuer) -> None:
        self._realm = realm
        self._store = store
        self._nonces = nonces

    @property
    def realm(self) -> str:
        return self._realm

    def nonce_for(self, client: Address, transport: str) -> str:
        return self._nonces.issue(client, transport)

    def check(
        self, msg: Message, client: Address, transport: str, live_user: str | None = None
    ) -> Authenticated | Rejected:
        """Verify a request's long-term credentials.

        `live_user` is the username of the client's existing allocation: its REST credential is
        accepted after expiry (the allocation itself has a bounded lifetime).
        """
        sha256 = msg.integrity_sha256_offset is not None
        if msg.integrity_offset is None and not sha256:
            return Rejected(401, self.nonce_for(client, transport), "no integrity")
        username = msg.get_str(Attr.USERNAME)
        realm = msg.get_str(Attr.REALM)
        nonce = msg.get_str(Attr.NONCE)
        if username is None or realm is None or nonce is None:
            return Rejected(400, None, "missing USERNAME, REALM or NONCE")
        if not self._nonces.is_valid(nonce, client, transport):
            return Rejected(438, self.nonce_for(client, transport), "stale nonce")
        password = (
            self._store.password(username, allow_expired=username == live_user)
            if realm == self._realm
            else None
        )
        if password is None:
            return Rejected(401, self.nonce_for(client, transport), "unknown or expired user")
        key = long_term_key(username, self._realm, password)
        if not check_integrity(msg, key):
            return Rejected(401, self.nonce_for(client, transport), "bad integrity")
        return Authenticated(username, key, sha256)
