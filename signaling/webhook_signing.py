"""How a webhook request is signed and checked (sans-IO: bytes and headers in, verdict out).

The sender (`webhooks.py`) and the receiver in the SDK (`relayroom.api.WebhookReceiver`) share
this module, so the two sides cannot drift. A request carries three headers:

- ``Relayroom-Webhook-Id``: the event's id (the same on every retry: receivers dedupe on it);
- ``Relayroom-Webhook-Timestamp``: unix seconds when this attempt was signed;
- ``Relayroom-Webhook-Signature``: ``v1=<hex HMAC-SHA256 of "<timestamp>.<body>">``, keyed
  with the webhook key. Several comma-separated ``v1=`` entries may come (a key rotation);
  one match is enough.

Signing the timestamp with the body means a captured request cannot be replayed later: a
receiver refuses a timestamp further than its tolerance from its own clock.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Mapping

ID_HEADER = "Relayroom-Webhook-Id"
TIMESTAMP_HEADER = "Relayroom-Webhook-Timestamp"
SIGNATURE_HEADER = "Relayroom-Webhook-Signature"
SCHEME = "v1"
DEFAULT_TOLERANCE_S = 300.0
"""How far a receiver accepts a timestamp from its own clock, by default (5 minutes)."""
MIN_KEY_LENGTH = 32
KEY_LABEL = b"relayroom webhook key v1"
_MAX_TIMESTAMP_DIGITS = 12
_MAX_SIGNATURE_HEADER = 1024


class WebhookVerificationError(ValueError):
    """A webhook request that does not verify. `code` says why:

    ``missing_header`` (a signature or timestamp header is absent), ``bad_timestamp`` (not a
    unix time), ``stale_timestamp`` (outside the tolerance: a replay, or a clock far off),
    ``bad_signature`` (no signature matches: wrong key, or a body changed on the way),
    ``bad_body`` (signed, but not an event this SDK understands).
    """

    def __init__(self, code: str, message: str) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message


def derive_key(api_secret: str) -> str:
    """The default webhook key: HMAC-SHA256 of a fixed label under the API secret (hex).

    A receiver can hold this key without being able to mint access tokens.
    """
    return hmac.new(api_secret.encode(), KEY_LABEL, hashlib.sha256).hexdigest()


def check_key(key: str) -> None:
    if not isinstance(key, str) or len(key) < MIN_KEY_LENGTH:
        raise ValueError(f"a webhook key must be a string of at least {MIN_KEY_LENGTH} characters")


def signature(key: str, timestamp: int, body: bytes) -> str:
    """The hex HMAC-SHA256 of ``"<timestamp>.<body>"``."""
    message = str(timestamp).encode() + b"." + body
    return hmac.new(key.encode(), message, hashlib.sha256).hexdigest()


def signed_headers(key: str, event_id: str, timestamp: int, body: bytes) -> dict[str, str]:
    """The three webhook headers of one delivery attempt."""
    return {
        ID_HEADER: event_id,
        TIMESTAMP_HEADER: str(timestamp),
        SIGNATURE_HEADER: f"{SCHEME}={signature(key, timestamp, body)}",
    }


def verify_request(
    key: str,
    body: bytes,
    headers: Mapping[str, str],
    *,
    now: float,
    tolerance_s: float = DEFAULT_TOLERANCE_S,
) -> int:
    """Check a request's signature, then its timestamp; the timestamp, or raise
    `WebhookVerificationError`. Header names are matched case-insensitively."""
    lower = {name.lower(): value for name, value in headers.items()}
    raw_signature = lower.get(SIGNATURE_HEADER.lower())
    raw_timestamp = lower.get(TIMESTAMP_HEADER.lower())
    if raw_signature is None or raw_timestamp is None:
        missing = SIGNATURE_HEADER if raw_signature is None else TIMESTAMP_HEADER
        raise WebhookVerificationError("missing_header", f"no {missing} header")
    text = raw_timestamp.strip()
    if not text.isascii() or not text.isdigit() or len(text) > _MAX_TIMESTAMP_DIGITS:
        raise WebhookVerificationError(
            "bad_timestamp", f"{TIMESTAMP_HEADER} must be unix seconds, got {text[:20]!r}"
        )
    timestamp = int(text)
    if len(raw_signature) > _MAX_SIGNATURE_HEADER:
        raise WebhookVerificationError("bad_signature", f"{SIGNATURE_HEADER} is too long")
    expected = signature(key, timestamp, body)
    offered = [
        value.strip()
        for scheme, _, value in (part.strip().partition("=") for part in raw_signature.split(","))
        if scheme == SCHEME
    ]
    if not any(hmac.compare_digest(expected, value) for value in offered):
        raise WebhookVerificationError(
            "bad_signature",
            "the signature does not match the body (wrong webhook key, or the body was changed)",
        )
    age = now - timestamp
    if abs(age) > tolerance_s:
        raise WebhookVerificationError(
            "stale_timestamp",
            f"signed {age:.0f} s from now, outside the tolerance of {tolerance_s:g} s "
            "(a replayed request, or a clock that is off)",
        )
    return timestamp
