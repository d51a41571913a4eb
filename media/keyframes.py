"""Keyframe detection on RTP payloads (sans-IO), for VP8 and H264.

A forwarder starts a subscriber leg at the first packet of a keyframe; these functions tell
whether a payload is that packet. They read a few bytes and never copy the payload.
"""

from __future__ import annotations

from collections.abc import Callable


def vp8_keyframe_start(payload: bytes) -> bool:
    """First packet of a VP8 keyframe (RFC 7741: S=1, PID=0, P=0 in the payload header)."""
    n = len(payload)
    if n < 2:
        return False
    b0 = payload[0]
    if not (b0 & 0x10) or (b0 & 0x0F):
        return False
    pos = 1
    if b0 & 0x80:  # X: extension byte
        b1 = payload[1]
        pos = 2
        if b1 & 0x80:  # I: picture id, 1 or 2 bytes
            if pos >= n:
                return False
            pos += 2 if payload[pos] & 0x80 else 1
        if b1 & 0x40:  # L: TL0PICIDX
            pos += 1
        if b1 & 0x30:  # T or K: TID/Y/KEYIDX
            pos += 1
    if pos >= n:
        return False
    return not (payload[pos] & 0x01)


_H264_KEY_NALS = (5, 7)  # IDR slice, sequence parameter set


def h264_keyframe_start(payload: bytes) -> bool:
    """Packet starting an H264 keyframe: an SPS or IDR NAL unit, alone, in STAP-A, or FU-A start."""
    n = len(payload)
    if n < 1:
        return False
    nal_type = payload[0] & 0x1F
    if 1 <= nal_type <= 23:
        return nal_type in _H264_KEY_NALS
    if nal_type == 24:  # STAP-A: 2-byte sizes, each followed by a NAL unit
        pos = 1
        while pos + 2 < n:
            size = (payload[pos] << 8) | payload[pos + 1]
            pos += 2
            if size == 0 or pos + size > n:
                return False
            if payload[pos] & 0x1F in _H264_KEY_NALS:
                return True
            pos += size
        return False
    if nal_type == 28:  # FU-A
        if n < 2:
            return False
        fu = payload[1]
        return bool(fu & 0x80) and (fu & 0x1F) in _H264_KEY_NALS
    return False


def always(payload: bytes) -> bool:
    """Audio: every packet is a valid place to start."""
    return True


def detector_for(codec_name: str) -> Callable[[bytes], bool]:
    """The keyframe detector for a codec name (mimeType subtype, any case)."""
    name = codec_name.lower()
    if name == "vp8":
        return vp8_keyframe_start
    if name == "h264":
        return h264_keyframe_start
    return always
