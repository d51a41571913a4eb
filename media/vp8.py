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


class Vp8Rewriter:
    """Keeps PictureID and TL0PICIDX continuous on one subscriber leg across layer switches.

    Call :meth:`sync` with the first packet of the keyframe the leg starts (or switches) on.
    While no switch happened the offsets are zero (:attr:`shifting` is False) and the caller
    only notes each frame's first payload (:meth:`note`); after one, :meth:`rewrite` shifts
    each packet's descriptor. Both are on the packet path: they touch at most 6 bytes.
    """

    __slots__ = ("_last", "_last_seq", "_pic_off", "_tl0_off", "shifting")

    def __init__(self) -> None:
        self._pic_off = 0
        self._tl0_off = 0
        self._last: bytes | None = None  # the source payload of the last frame start sent
        self._last_seq = 0
        self.shifting = False

    def note(self, payload: bytes, seq: int) -> None:
        """A payload sent (``seq``: its source sequence number): remember it if it starts a
        newer frame (a late packet, reordered, must not move the continuation point back)."""
        if payload and payload[0] & 0x10 and (seq - self._last_seq) & 0xFFFF < 0x8000:
            self._last = payload
            self._last_seq = seq

    def _last_sent(self) -> tuple[int | None, int | None, int]:
        """(PictureID, TL0PICIDX, PictureID bits) of the last frame start sent, as sent."""
        last = self._last
        d = parse_descriptor(last) if last is not None else None
        if last is None or d is None:
            return None, None, 0
        pic = picture_id(last, d)
        tl0 = tl0picidx(last, d)
        bits = d.picture_id_bits
        if pic is not None:
            pic = (pic + self._pic_off) % (1 << bits)
        if tl0 is not None:
            tl0 = (tl0 + self._tl0_off) & 0xFF
        return pic, tl0, bits

    def sync(self, payload: bytes, seq: int) -> None:
        """Fix the offsets so that this keyframe (source sequence number ``seq``) follows the
        last picture sent."""
        d = parse_descriptor(payload)
        if d is None:
            return
        last_pic, last_tl0, last_bits = self._last_sent()
        pic = picture_id(payload, d)
        if pic is not None:
            modulo = 1 << d.picture_id_bits
            if last_pic is not None and last_bits != d.picture_id_bits:
                last_pic %= modulo
            out = pic if last_pic is None else (last_pic + 1) % modulo
            self._pic_off = (out - pic) % modulo
        tl0 = tl0picidx(payload, d)
        if tl0 is not None:
            out = tl0 if last_tl0 is None else (last_tl0 + 1) & 0xFF
            self._tl0_off = (out - tl0) & 0xFF
        self.shifting = bool(self._pic_off or self._tl0_off)
        self._last = None  # a new source: its sequence numbers start elsewhere
        self._last_seq = (seq - 1) & 0xFFFF

    def rewrite(self, payload: bytes, seq: int) -> bytes:
        """``payload`` (source sequence number ``seq``) with PictureID and TL0PICIDX shifted
        (the same object when there is nothing to shift)."""
        if len(payload) < 6:
            return payload
        b0 = payload[0]
        b1 = payload[1]
        if not b0 & 0x80 or not b1 & 0xC0:
            return payload
        if b0 & 0x10 and (seq - self._last_seq) & 0xFFFF < 0x8000:
            self._last = payload
            self._last_seq = seq
        if b1 & 0x80 and payload[2] & 0x80:  # 15-bit PictureID (what browsers send)
            pic = ((((payload[2] & 0x7F) << 8) | payload[3]) + self._pic_off) & 0x7FFF
            if b1 & 0x40:
                tl0 = (payload[4] + self._tl0_off) & 0xFF
                return bytes((b0, b1, 0x80 | (pic >> 8), pic & 0xFF, tl0)) + payload[5:]
            return bytes((b0, b1, 0x80 | (pic >> 8), pic & 0xFF)) + payload[4:]
        head = bytearray(payload[:6])
        pos = 2
        if b1 & 0x80:  # 7-bit PictureID
            head[2] = (head[2] + self._pic_off) & 0x7F
            pos = 3
        if b1 & 0x40:
            head[pos] = (head[pos] + self._tl0_off) & 0xFF
        return bytes(head) + payload[6:]
