"""VP8 payloads as a simulcast encoder sends them: 15-bit PictureID, TL0PICIDX, TID."""

from __future__ import annotations

from aiortc.rtp import RtpPacket


def vp8(
    pic: int,
    tl0: int,
    *,
    key: bool = False,
    start: bool = True,
    size: tuple[int, int] = (320, 180),
    tid: int = 0,
    sync: bool = False,
) -> bytes:
    """One packet's payload: descriptor (X, I with M, L, T) then the frame's first bytes."""
    b0 = 0x80 | (0x10 if start else 0)
    tk = (tid << 6) | (0x20 if sync else 0)  # TID, Y (a sync point)
    desc = bytes([b0, 0xE0, 0x80 | (pic >> 8) & 0x7F, pic & 0xFF, tl0 & 0xFF, tk])
    if not start:
        return desc + b"c" * 20
    if key:
        w, h = size
        header = bytes([0x10, 0x02, 0x00, 0x9D, 0x01, 0x2A, w & 0xFF, w >> 8, h & 0xFF, h >> 8])
        return desc + header + b"k" * 20
    return desc + bytes([0x11, 0x02, 0x00]) + b"d" * 20


def rtp(ssrc: int, seq: int, ts: int, payload: bytes, marker: int = 1, pt: int = 97) -> RtpPacket:
    return RtpPacket(
        payload_type=pt,
        sequence_number=seq & 0xFFFF,
        timestamp=ts & 0xFFFFFFFF,
        ssrc=ssrc,
        payload=payload,
        marker=marker,
    )
