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


def _newer(a: int, b: int, modulo: int) -> bool:
    """Whether ``a`` comes after ``b`` on a counter that wraps at ``modulo``."""
    diff = (a - b) % modulo
    return 0 < diff < modulo // 2


class Vp8Rewriter:
    """Keeps PictureID and TL0PICIDX continuous on one subscriber leg across layer switches.

    Call :meth:`sync` with the first packet of the keyframe the leg starts (or switches) on,
    then :meth:`rewrite` for each packet the leg sends, that keyframe included.
    """

    __slots__ = ("_last_pic", "_last_tl0", "_pic_off", "_tl0_off")

    def __init__(self) -> None:
        self._pic_off = 0
        self._tl0_off = 0
        self._last_pic: int | None = None  # last PictureID sent (15-bit space)
        self._last_tl0: int | None = None

    def sync(self, payload: bytes) -> None:
        """Fix the offsets so that this keyframe follows the last picture sent."""
        d = parse_descriptor(payload)
        if d is None:
            return
        pic = picture_id(payload, d)
        if pic is not None:
            modulo = 1 << d.picture_id_bits
            out = pic if self._last_pic is None else (self._last_pic + 1) % modulo
            self._pic_off = (out - pic) % modulo
        tl0 = tl0picidx(payload, d)
        if tl0 is not None:
            out = tl0 if self._last_tl0 is None else (self._last_tl0 + 1) & 0xFF
            self._tl0_off = (out - tl0) & 0xFF

    def rewrite(self, payload: bytes) -> bytes:
        """``payload`` with PictureID and TL0PICIDX shifted (the same object when unchanged)."""
        d = parse_descriptor(payload)
        if d is None or (d.picture_id_bits == 0 and d.tl0_pos < 0):
            return payload
        head = bytearray(payload[: d.header_len])
        if d.picture_id_bits == 15:
            pos = d.picture_id_pos
            pic = (((head[pos] & 0x7F) << 8) | head[pos + 1]) + self._pic_off
            pic &= 0x7FFF
            head[pos] = 0x80 | (pic >> 8)
            head[pos + 1] = pic & 0xFF
            self._note_pic(pic, 0x8000)
        elif d.picture_id_bits == 7:
            pos = d.picture_id_pos
            pic = ((head[pos] & 0x7F) + self._pic_off) & 0x7F
            head[pos] = pic
            self._note_pic(pic, 0x80)
        if d.tl0_pos >= 0:
            tl0 = (head[d.tl0_pos] + self._tl0_off) & 0xFF
            head[d.tl0_pos] = tl0
            if self._last_tl0 is None or _newer(tl0, self._last_tl0, 0x100):
                self._last_tl0 = tl0
        return bytes(head) + payload[d.header_len :]

    def _note_pic(self, pic: int, modulo: int) -> None:
        if self._last_pic is None or _newer(pic, self._last_pic % modulo, modulo):
            self._last_pic = pic
