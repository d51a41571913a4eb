"""VP8 payload descriptor (RFC 7741) reading and rewriting, sans-IO.

A subscriber that is switched from one simulcast layer to another must see one continuous
stream: each layer numbers its pictures (PictureID) and its base-layer pictures (TL0PICIDX) on
its own, so :class:`Vp8Rewriter` shifts both by an offset fixed at each switch (on the new
layer's keyframe), and the decoder never sees a jump. Only the descriptor bytes are copied.
"""

from __future__ import annotations

from typing import NamedTuple


class Vp8Descriptor(NamedTuple):
    """Where the fields sit in one packet's payload descriptor (-1: absent)."""

    picture_id_pos: int
    picture_id_bits: int  # 7 or 15 (0 when absent)
    tl0_pos: int
    header_len: int  # descriptor length: the VP8 payload starts here


_NONE = Vp8Descriptor(-1, 0, -1, 1)


def parse_descriptor(payload: bytes) -> Vp8Descriptor | None:
    """The descriptor of ``payload``; None when it is too short to hold what it announces."""
    n = len(payload)
    if n < 1:
        return None
    b0 = payload[0]
    if not b0 & 0x80:  # X: no extension byte
        return _NONE
    if n < 2:
        return None
    b1 = payload[1]
    pos = 2
    pic_pos = -1
    pic_bits = 0
    tl0_pos = -1
    if b1 & 0x80:  # I
        if pos >= n:
            return None
        pic_pos = pos
        if payload[pos] & 0x80:
            pic_bits = 15
            pos += 2
        else:
            pic_bits = 7
            pos += 1
    if b1 & 0x40:  # L
        tl0_pos = pos
        pos += 1
    if b1 & 0x30:  # T or K
        pos += 1
    if pos > n:
        return None
    return Vp8Descriptor(pic_pos, pic_bits, tl0_pos, pos)


def picture_id(payload: bytes, d: Vp8Descriptor) -> int | None:
    if d.picture_id_bits == 15:
        return ((payload[d.picture_id_pos] & 0x7F) << 8) | payload[d.picture_id_pos + 1]
    if d.picture_id_bits == 7:
        return payload[d.picture_id_pos] & 0x7F
    return None


def tl0picidx(payload: bytes, d: Vp8Descriptor) -> int | None:
    return payload[d.tl0_pos] if d.tl0_pos >= 0 else None


def keyframe_size(payload: bytes) -> tuple[int, int] | None:
    """(width, height) from the first packet of a VP8 keyframe (RFC 6386 9.1), else None."""
    d = parse_descriptor(payload)
    if d is None:
        return None
    pos = d.header_len
    if len(payload) < pos + 10 or payload[pos] & 0x01:  # P=1: interframe
        return None
    if payload[pos + 3 : pos + 6] != b"\x9d\x01\x2a":  # start code
        return None
    width = (payload[pos + 6] | (payload[pos + 7] << 8)) & 0x3FFF
    height = (payload[pos + 8] | (payload[pos + 9] << 8)) & 0x3FFF
    return width, height


ALL_TEMPORAL = 3
"""The highest VP8 TID (2 bits): forwarding up to it forwards every temporal layer."""


def temporal_id(payload: bytes) -> int:
    """The TID of a packet (0 when the descriptor carries none: a stream without layers)."""
    if len(payload) < 3 or not payload[0] & 0x80:
        return 0
    b1 = payload[1]
    if not b1 & 0x20:
        return 0
    pos = 2
    if b1 & 0x80:
        pos += 2 if payload[2] & 0x80 else 1
    if b1 & 0x40:
        pos += 1
    return payload[pos] >> 6 if pos < len(payload) else 0


class Vp8Rewriter:
    """One subscriber leg's view of a VP8 stream: continuous PictureID and TL0PICIDX across
    layer switches, and temporal layers above :attr:`max_tid` dropped.

    :meth:`sync` is called with the first packet of the keyframe the leg starts (or switches)
    on, and the last payload the leg sent; it fixes the offsets so the new layer's pictures
    follow the old one's. While no temporal layer is dropped the leg's packet builder moves
    the descriptor's fields by :attr:`shift` (no payload edit); while one is,
    :meth:`rewrite` is the leg's payload edit on the packet path: it returns the payload with
    the descriptor shifted (only the descriptor bytes are rebuilt), or None for a packet of a
    temporal layer the leg does not get. A dropped picture moves the PictureID offset back by
    one, so the subscriber sees consecutive picture ids (a decoder takes a gap for a lost
    frame); TL0PICIDX needs nothing (base-layer pictures are never dropped). The leg raises its
    temporal layer only at a picture of the next layer up marked as a sync point (Y bit), or at
    a keyframe: a higher layer's picture before it may reference pictures the leg dropped.
    """

    __slots__ = (
        "_dropped_pic",
        "_pic_off",
        "_tl0_off",
        "dropped",
        "max_tid",
        "wanted_tid",
    )

    def __init__(self) -> None:
        self._pic_off = 0
        self._tl0_off = 0
        self._dropped_pic = -1  # the source PictureID of the last picture dropped
        self.max_tid = ALL_TEMPORAL  # the highest TID forwarded now
        self.wanted_tid = ALL_TEMPORAL  # the highest TID to forward (reached at a sync point)
        self.dropped = 0  # packets of temporal layers not forwarded

    @property
    def active(self) -> bool:
        """Whether packets need :meth:`rewrite` (else the source's payloads go as they are)."""
        return bool(
            self._pic_off
            or self._tl0_off
            or self.max_tid < ALL_TEMPORAL
            or self.wanted_tid < ALL_TEMPORAL
        )

    def set_temporal(self, max_tid: int) -> None:
        """Forward TIDs up to ``max_tid`` (lower: from the next picture; higher: from a sync
        point of the next layer up, or a keyframe)."""
        self.wanted_tid = max(0, min(max_tid, ALL_TEMPORAL))

    def sync(self, payload: bytes, last_sent: bytes | None) -> None:
        """Fix the offsets so that this keyframe follows ``last_sent`` (the payload of the last
        packet the leg sent, as sent; None: nothing yet)."""
        self.max_tid = self.wanted_tid
        self._dropped_pic = -1
        d = parse_descriptor(payload)
        if d is None:
            return
        last = parse_descriptor(last_sent) if last_sent is not None else None
        last_pic = picture_id(last_sent, last) if last_sent is not None and last else None
        last_tl0 = tl0picidx(last_sent, last) if last_sent is not None and last else None
        pic = picture_id(payload, d)
        if pic is not None:
            modulo = 1 << d.picture_id_bits
            out = pic if last_pic is None else (last_pic + 1) % modulo
            self._pic_off = (out - pic) % modulo
        tl0 = tl0picidx(payload, d)
        if tl0 is not None:
            out = tl0 if last_tl0 is None else (last_tl0 + 1) & 0xFF
            self._tl0_off = (out - tl0) & 0xFF

    @property
    def dropping(self) -> bool:
        """Whether temporal layers are dropped (or about to change): :meth:`rewrite` must see
        every packet."""
        return self.max_tid < ALL_TEMPORAL or self.wanted_tid < ALL_TEMPORAL

    @property
    def shift(self) -> int | None:
        """The offsets while nothing is dropped, as the packet builder takes them
        (``PictureID offset << 8 | TL0PICIDX offset``, see :func:`shift_descriptor`); None
        when there is nothing to shift or :meth:`rewrite` runs."""
        if self.dropping or not (self._pic_off or self._tl0_off):
            return None
        return (self._pic_off << 8) | self._tl0_off

    def rewrite(self, payload: bytes) -> bytes | None:
        """``payload`` as this leg sends it; None: a temporal layer it does not get."""
        if len(payload) < 6:
            return payload
        b0 = payload[0]
        b1 = payload[1]
        if not b0 & 0x80 or not b1 & 0xE0:
            return payload
        long_pic = b1 & 0x80 and payload[2] & 0x80
        pos = 2 + (2 if long_pic else 1 if b1 & 0x80 else 0) + (1 if b1 & 0x40 else 0)
        if b1 & 0x20 and pos < len(payload):
            tid = payload[pos] >> 6
            start = b0 & 0x17 == 0x10  # S set, partition 0: a picture's first packet
            if start and self.wanted_tid != self.max_tid:
                if self.wanted_tid < self.max_tid:
                    self.max_tid = self.wanted_tid  # lower: from this picture on
                elif pos + 1 < len(payload) and not payload[pos + 1] & 0x01:
                    self.max_tid = self.wanted_tid  # a keyframe (P bit clear): all at once
            if tid > self.max_tid:
                if start and tid == self.max_tid + 1 <= self.wanted_tid and payload[pos] & 0x20:
                    self.max_tid = tid  # a sync point of the next layer up
                else:
                    self.dropped += 1
                    if b1 & 0x80:
                        pic = ((payload[2] & 0x7F) << 8) | payload[3] if long_pic else payload[2]
                        if pic != self._dropped_pic:  # one picture less for the subscriber
                            self._dropped_pic = pic
                            self._pic_off = (self._pic_off - 1) & 0x7FFF
                    return None
        if not self._pic_off and not self._tl0_off:
            return payload
        return shift_descriptor(payload, (self._pic_off << 8) | self._tl0_off)


def shift_descriptor(payload: bytes, shift: int) -> bytes:
    """``payload`` with its descriptor's PictureID and TL0PICIDX moved by the offsets in
    ``shift`` (``PictureID offset << 8 | TL0PICIDX offset``); only the descriptor's bytes are
    rebuilt. The compiled packet builder does the same in place (media/_fastpath.c)."""
    if len(payload) < 6:
        return payload
    b0 = payload[0]
    b1 = payload[1]
    if not b0 & 0x80 or not b1 & 0xE0:
        return payload
    pic_off = shift >> 8
    tl0_off = shift & 0xFF
    if b1 & 0x80 and payload[2] & 0x80:  # 15-bit PictureID (what browsers send)
        pic = ((((payload[2] & 0x7F) << 8) | payload[3]) + pic_off) & 0x7FFF
        if b1 & 0x40:
            tl0 = (payload[4] + tl0_off) & 0xFF
            return bytes((b0, b1, 0x80 | (pic >> 8), pic & 0xFF, tl0)) + payload[5:]
        return bytes((b0, b1, 0x80 | (pic >> 8), pic & 0xFF)) + payload[4:]
    head = bytearray(payload[:4])
    at = 2
    if b1 & 0x80:  # 7-bit PictureID
        head[2] = (head[2] + pic_off) & 0x7F
        at = 3
    if b1 & 0x40:
        head[at] = (head[at] + tl0_off) & 0xFF
    return bytes(head) + payload[4:]
