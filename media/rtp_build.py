"""The packet path's compiled steps, when built, and the Python builder of a leg's packet.

``media/_fastpath.c`` (built at install when a C compiler is there) does a leg's last step in
one call: build the packet, keep it in the sender's history, SRTP-protect it and send it
(:class:`FastSender`); and the receive path's first: unprotect (:class:`Unprotector`) and
parse (``compiled_parse_rtp``, used by ``RtpReader``). :func:`build_rtp` is the Python path's
builder, and the definition of the bytes both paths produce. No aiortc import here.
"""

from __future__ import annotations

import struct
from collections.abc import Sequence

from .vp8 import shift_descriptor

_HEADER = struct.Struct("!BBHLL")

__all__ = ["FastSender", "Unprotector", "build_rtp", "compiled_build_rtp", "compiled_parse_rtp"]

try:
    from ._fastpath import FastSender, Unprotector
    from ._fastpath import build_rtp as compiled_build_rtp
    from ._fastpath import parse_rtp as compiled_parse_rtp
except ImportError:  # not built (no C compiler at install): forward in Python
    FastSender = None  # type: ignore[assignment,misc]
    Unprotector = None  # type: ignore[assignment,misc]
    compiled_build_rtp = None  # type: ignore[assignment]
    compiled_parse_rtp = None  # type: ignore[assignment]


def build_rtp(
    b0: int,
    b1: int,
    seq: int,
    ts: int,
    ssrc: int,
    csrc: Sequence[int],
    head: bytes,
    middle: bytes,
    tail: bytes,
    payload: bytes,
    padding: int,
    vp8_shift: int | None = None,
) -> bytes:
    """The RTP packet: first two bytes ``b0``, ``b1`` as given (version, flags, CSRC count;
    marker, payload type), then sequence number, timestamp, SSRC and CSRCs, the header
    extension block in three parts (``head + middle + tail``, empty without one), the
    payload (its VP8 descriptor moved by ``vp8_shift``, see :func:`shift_descriptor`, unless
    None), and ``padding`` bytes of RFC 3550 padding (the last one holds their count)."""
    if vp8_shift is not None:
        payload = shift_descriptor(payload, vp8_shift)
    header = _HEADER.pack(b0, b1, seq, ts, ssrc)
    if csrc:
        header += b"".join(c.to_bytes(4, "big") for c in csrc)
    if padding:
        return b"".join(
            (header, head, middle, tail, payload, bytes(padding - 1), bytes((padding,)))
        )
    return b"".join((header, head, middle, tail, payload))
