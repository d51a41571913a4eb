"""VP8 descriptor reading and the PictureID / TL0PICIDX rewrite across layer switches."""

from __future__ import annotations

import random

from relayroom.media.vp8 import (
    Vp8Rewriter,
    keyframe_size,
    parse_descriptor,
    picture_id,
    shift_descriptor,
    temporal_id,
    tl0picidx,
)
from tests.simulcast.vp8data import vp8


class Out:
    """A leg's output: what the rewriter returns, the last payload sent remembered."""

    def __init__(self) -> None:
        self.rewriter = Vp8Rewriter()
        self.last: bytes | None = None

    def sync(self, payload: bytes) -> None:
        self.rewriter.sync(payload, self.last)

    def send(self, payload: bytes) -> tuple[int | None, int | None] | None:
        out = self.rewriter.rewrite(payload) if self.rewriter.active else payload
        if out is None:
            return None
        self.last = out
        return fields(out)


def fields(payload: bytes) -> tuple[int | None, int | None]:
    d = parse_descriptor(payload)
    assert d is not None
    return picture_id(payload, d), tl0picidx(payload, d)


def test_keyframe_size_is_read_from_the_first_packet() -> None:
    assert keyframe_size(vp8(5, 1, key=True, size=(1280, 720))) == (1280, 720)
    assert keyframe_size(vp8(6, 1)) is None  # a delta frame
    assert keyframe_size(vp8(5, 1, key=True, start=False)) is None
    assert keyframe_size(b"\x90") is None  # truncated: no crash


def test_descriptor_without_extension_is_left_alone() -> None:
    rewriter = Vp8Rewriter()
    payload = bytes([0x10, 0x00, 0x9D]) + b"x" * 10
    rewriter.sync(payload, vp8(5, 1))
    assert rewriter.rewrite(payload) is payload


def test_the_first_layer_keeps_its_own_numbering() -> None:
    out = Out()
    out.sync(vp8(50, 1, key=True))
    assert not out.rewriter.active  # no edit on the packet path at all
    assert out.send(vp8(50, 1, key=True)) == (50, 1)


def test_picture_ids_continue_across_a_switch() -> None:
    out = Out()
    # layer q: pictures 100..102, TL0 7..9
    first = vp8(100, 7, key=True)
    out.sync(first)
    got = [out.send(first)]
    for pic, tl0 in ((101, 8), (102, 9)):
        got.append(out.send(vp8(pic, tl0)))
    # switch to layer f, numbered elsewhere: 30000, TL0 200
    key = vp8(30000, 200, key=True, size=(1280, 720))
    out.sync(key)
    assert out.rewriter.active
    got.append(out.send(key))
    got.append(out.send(vp8(30000, 200, start=False)))  # same picture
    got.append(out.send(vp8(30001, 201)))
    assert got == [(100, 7), (101, 8), (102, 9), (103, 10), (103, 10), (104, 11)]


def test_picture_ids_wrap_at_15_bits_and_tl0_at_8() -> None:
    out = Out()
    a = vp8(0x7FFE, 0xFE, key=True)
    out.sync(a)
    out.send(a)
    out.send(vp8(0x7FFF, 0xFF))
    b = vp8(10, 3, key=True)
    out.sync(b)
    assert out.send(b) == (0, 0)
    assert out.send(vp8(11, 4)) == (1, 1)


def test_payload_after_the_descriptor_is_unchanged() -> None:
    out = Out()
    k = vp8(50, 1, key=True, size=(640, 360))
    out.sync(vp8(9, 9, key=True))
    out.send(vp8(9, 9, key=True))
    out.sync(k)
    sent = out.rewriter.rewrite(k)
    assert sent is not None and sent[6:] == k[6:] and keyframe_size(sent) == (640, 360)


def test_temporal_id_is_read_from_the_descriptor() -> None:
    assert temporal_id(vp8(1, 1, tid=2)) == 2
    assert temporal_id(vp8(1, 1, tid=0)) == 0
    assert temporal_id(bytes([0x10, 0x00, 0x9D])) == 0  # no extension: no layers
    assert temporal_id(b"\x80\x20") == 0  # truncated: no crash


# L1T3 as libvpx sends it: TIDs 0 2 1 2 0 2 1 2 ..., TL0PICIDX counting the TID 0 pictures.
PATTERN = (0, 2, 1, 2)


def l1t3(pic: int, *, key: bool = False, sync: bool = False) -> bytes:
    n = pic - 100
    return vp8(pic, 5 + n // 4, key=key, tid=PATTERN[n % 4], sync=sync)


def test_dropped_temporal_layers_leave_no_gap_in_picture_ids() -> None:
    out = Out()
    out.sync(l1t3(100, key=True))
    out.rewriter.set_temporal(0)
    assert out.rewriter.active
    got = [out.send(l1t3(pic, key=pic == 100)) for pic in range(100, 112)]
    sent = [x for x in got if x is not None]
    # Only the TID 0 pictures (100, 104, 108), numbered 100, 101, 102; TL0PICIDX as sent.
    assert sent == [(100, 5), (101, 6), (102, 7)]
    assert out.rewriter.dropped == 9


def test_a_temporal_layer_comes_back_only_at_a_sync_point() -> None:
    out = Out()
    out.sync(l1t3(100, key=True))
    out.rewriter.set_temporal(0)
    for pic in range(100, 104):
        out.send(l1t3(pic, key=pic == 100))
    out.rewriter.set_temporal(1)
    assert out.send(l1t3(104)) is not None  # TID 0
    assert out.send(l1t3(106)) is None  # TID 1, no Y bit: may reference what was dropped
    assert out.send(l1t3(107)) is None  # TID 2: not asked for
    assert out.send(l1t3(108)) is not None
    assert out.send(l1t3(110, sync=True)) is not None  # TID 1 with Y: from here on
    assert out.rewriter.max_tid == 1
    assert out.send(l1t3(111)) is None
    assert out.send(l1t3(114)) is not None  # TID 1


def test_lowering_the_temporal_layer_waits_for_the_next_picture() -> None:
    out = Out()
    out.sync(l1t3(100, key=True))
    out.send(l1t3(100, key=True))
    first = vp8(101, 5, tid=2)
    assert out.send(first) is not None
    out.rewriter.set_temporal(0)
    # The rest of picture 101 still goes (a truncated picture is worse than a late drop).
    assert out.send(vp8(101, 5, tid=2, start=False)) is not None
    assert out.send(l1t3(102)) is None
    assert out.send(l1t3(103)) is None
    assert out.send(l1t3(104)) == (102, 6)


def test_any_bytes_from_a_publisher_are_handled_without_an_exception() -> None:
    rng = random.Random(7)
    out = Out()
    out.sync(vp8(100, 5, key=True))
    out.send(vp8(100, 5, key=True))
    out.sync(vp8(9000, 77, key=True))  # switched: every packet goes through the edit
    for max_tid in (3, 1, 0):
        out.rewriter.set_temporal(max_tid)
        for _ in range(3000):
            payload = bytes(rng.randrange(256) for _ in range(rng.randrange(12)))
            temporal_id(payload)
            shift = out.rewriter.shift
            for edit in (out.rewriter.rewrite, lambda p, s=shift: shift_descriptor(p, s or 0)):
                edited = edit(payload)
                assert edited is None or len(edited) == len(payload)
