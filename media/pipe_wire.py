"""The datagram format of track pipes (sans-IO): framing, authentication, replay protection.

A pipe carries one published track from the process that receives it (the origin) to another
worker or node (the far end), as plain RTP over UDP, and carries feedback (keyframe requests,
bandwidth estimates) and keepalives back. Every datagram is::

    magic (1) | kind (1) | pipe id (4) | counter (8) | body | tag (16)

``tag`` is HMAC-SHA256 over everything before it, truncated to 16 bytes, with a key derived
from the cluster secret: only processes that know the secret can make a datagram that is
accepted. ``counter`` counts the sender's datagrams on that pipe and direction (from 1); the
receiver keeps a sliding window (:class:`ReplayWindow`) so a datagram is accepted at most once
even when UDP reorders them. The kind's top bit is the direction (set: far end -> origin), so a
datagram cannot be reflected back to the process that sent it.
"""

from __future__ import annotations

import enum
import hmac
import struct
from dataclasses import dataclass

MAGIC = 0xA7
TAG_BYTES = 16
_HEADER = struct.Struct("!BBLQ")
HEADER_BYTES = _HEADER.size  # 14
OVERHEAD = HEADER_BYTES + TAG_BYTES
UPSTREAM = 0x80
_U32 = struct.Struct("!L")
_SR = struct.Struct("!LQL")  # ssrc, NTP, RTP timestamp


class Kind(enum.IntEnum):
    """What a datagram carries. Downstream kinds go origin -> far end; upstream the reverse."""

    RTP = 1  # body: one RTP packet, as the origin's leg rewrote it
    SENDER_REPORT = 2  # body: ssrc, NTP, RTP timestamp (lip sync on the far end)
    KEEPALIVE = 3  # no body (both directions)
    END = 4  # no body: the track ended at the origin / the far end stops listening
    KEYFRAME_REQUEST = UPSTREAM | 5  # no body
    ESTIMATE = UPSTREAM | 6  # body: bits/s the far end's subscribers can take
    KEEPALIVE_UP = UPSTREAM | KEEPALIVE
    END_UP = UPSTREAM | END


_KINDS = frozenset(int(k) for k in Kind)


def pipe_key(cluster_secret: str | bytes) -> bytes:
    """The HMAC key of every pipe of a cluster, derived from its shared secret."""
    secret = cluster_secret.encode() if isinstance(cluster_secret, str) else cluster_secret
    return hmac.digest(secret, b"relayroom track pipe v1", "sha256")


class Reject(enum.Enum):
    """Why a datagram was dropped (each has its own counter)."""

    MALFORMED = "malformed"  # too short, wrong magic or kind
    UNKNOWN_PIPE = "unknown_pipe"  # no such pipe here (ended, or never made)
    UNAUTHENTICATED = "unauthenticated"  # the tag does not match
    REPLAYED = "replayed"  # counter seen already, or older than the window
    WRONG_DIRECTION = "wrong_direction"  # a downstream kind sent to the origin, or the reverse


@dataclass(frozen=True, slots=True)
class Header:
    kind: int
    pipe_id: int
    counter: int


def seal(key: bytes, kind: Kind, pipe_id: int, counter: int, body: bytes = b"") -> bytes:
    """One datagram: header, body and tag."""
    head = _HEADER.pack(MAGIC, kind, pipe_id, counter) + body
    return head + hmac.digest(key, head, "sha256")[:TAG_BYTES]


def peek(data: bytes) -> Header | None:
    """The header of a datagram, unauthenticated (to find its pipe); None if malformed."""
    if len(data) < OVERHEAD or data[0] != MAGIC or data[1] not in _KINDS:
        return None
    _, kind, pipe_id, counter = _HEADER.unpack_from(data)
    return Header(kind, pipe_id, counter)


def authentic(key: bytes, data: bytes) -> bool:
    """Whether the tag of a datagram (at least :data:`OVERHEAD` bytes) matches."""
    tag = hmac.digest(key, data[:-TAG_BYTES], "sha256")[:TAG_BYTES]
    return hmac.compare_digest(tag, data[-TAG_BYTES:])


def body(data: bytes) -> bytes:
    return data[HEADER_BYTES:-TAG_BYTES]


def estimate_body(bitrate: int) -> bytes:
    return _U32.pack(max(0, min(bitrate, 0xFFFFFFFF)))


def parse_estimate(data: bytes) -> int | None:
    return _U32.unpack(data)[0] if len(data) == _U32.size else None


def sender_report_body(ssrc: int, ntp: int, rtp_ts: int) -> bytes:
    return _SR.pack(ssrc & 0xFFFFFFFF, ntp & 0xFFFFFFFFFFFFFFFF, rtp_ts & 0xFFFFFFFF)


def parse_sender_report(data: bytes) -> tuple[int, int, int] | None:
    if len(data) != _SR.size:
        return None
    ssrc, ntp, rtp_ts = _SR.unpack(data)
    return ssrc, ntp, rtp_ts


class ReplayWindow:
    """Accepts each counter once: the newest seen and a window of ``size`` before it (as
    SRTP's replay list, RFC 3711 3.3.2). Counters start at 1."""

    __slots__ = ("_highest", "_mask", "_size")

    def __init__(self, size: int = 128) -> None:
        self._size = size
        self._highest = 0
        self._mask = 0  # bit i: counter highest - i was seen

    def accept(self, counter: int) -> bool:
        """Record ``counter``; False if it was seen already or is too old."""
        if counter <= 0:
            return False
        highest = self._highest
        if counter > highest:
            shift = counter - highest
            if shift >= self._size:
                self._mask = 1
            else:
                self._mask = ((self._mask << shift) | 1) & ((1 << self._size) - 1)
            self._highest = counter
            return True
        offset = highest - counter
        if offset >= self._size or self._mask >> offset & 1:
            return False
        self._mask |= 1 << offset
        return True
