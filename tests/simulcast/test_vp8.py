"""VP8 descriptor reading and the PictureID / TL0PICIDX rewrite across layer switches."""

from __future__ import annotations

from relayroom.media.vp8 import (
    Vp8Rewriter,
    keyframe_size,
    parse_descriptor,
    picture_id,
    tl0picidx,
)
from tests.simulcast.vp8data import vp8


class Seq:
    """Source sequence numbers: each layer numbers its packets on its own."""

    def __init__(self, start: int) -> None:
        self.n = start

    def __call__(self) -> int:
        self.n = (self.n + 1) & 0xFFFF
        return self.n


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
    rewriter.sync(payload, 1)
    assert rewriter.rewrite(payload, 1) is payload


def test_picture_ids_continue_across_a_switch() -> None:
    rewriter = Vp8Rewriter()
    q, f = Seq(65530), Seq(100)
    # layer q: pictures 100..102, TL0 7..9
    out = []
    first = vp8(100, 7, key=True)
    rewriter.sync(first, q.n + 1)
    out.append(fields(rewriter.rewrite(first, q())))
    for pic, tl0 in ((101, 8), (102, 9)):
        out.append(fields(rewriter.rewrite(vp8(pic, tl0), q())))
    # switch to layer f, numbered elsewhere: 30000, TL0 200
    key = vp8(30000, 200, key=True, size=(1280, 720))
    rewriter.sync(key, f.n + 1)
    out.append(fields(rewriter.rewrite(key, f())))
    out.append(fields(rewriter.rewrite(vp8(30000, 200, start=False), f())))  # same picture
    out.append(fields(rewriter.rewrite(vp8(30001, 201), f())))
    assert out == [(100, 7), (101, 8), (102, 9), (103, 10), (103, 10), (104, 11)]


def test_picture_ids_wrap_at_15_bits_and_tl0_at_8() -> None:
    rewriter = Vp8Rewriter()
    a = vp8(0x7FFE, 0xFE, key=True)
    rewriter.sync(a, 1)
    rewriter.rewrite(a, 1)
    rewriter.rewrite(vp8(0x7FFF, 0xFF), 2)
    b = vp8(10, 3, key=True)
    rewriter.sync(b, 500)
    assert fields(rewriter.rewrite(b, 500)) == (0, 0)
    assert fields(rewriter.rewrite(vp8(11, 4), 501)) == (1, 1)


def test_a_late_packet_does_not_move_the_continuation_point_back() -> None:
    rewriter = Vp8Rewriter()
    k = vp8(50, 1, key=True)
    rewriter.sync(k, 10)
    rewriter.rewrite(k, 10)
    rewriter.rewrite(vp8(52, 3), 12)
    rewriter.rewrite(vp8(51, 2), 11)  # reordered
    nxt = vp8(900, 40, key=True)
    rewriter.sync(nxt, 7000)
    assert fields(rewriter.rewrite(nxt, 7000)) == (53, 4)


def test_an_unchanged_leg_notes_where_it_is() -> None:
    rewriter = Vp8Rewriter()
    k = vp8(50, 1, key=True)
    rewriter.sync(k, 10)
    assert not rewriter.shifting  # the first layer keeps its own numbering
    rewriter.note(k, 10)
    rewriter.note(vp8(51, 2), 11)
    rewriter.note(vp8(50, 1, start=False), 9)  # late, and not a frame start
    nxt = vp8(900, 40, key=True)
    rewriter.sync(nxt, 300)
    assert rewriter.shifting
    assert fields(rewriter.rewrite(nxt, 300)) == (52, 3)


def test_payload_after_the_descriptor_is_unchanged() -> None:
    rewriter = Vp8Rewriter()
    k = vp8(50, 1, key=True, size=(640, 360))
    rewriter.sync(vp8(9, 9, key=True), 1)
    rewriter.rewrite(vp8(9, 9, key=True), 1)
    rewriter.sync(k, 77)
    out = rewriter.rewrite(k, 77)
    assert out[6:] == k[6:] and keyframe_size(out) == (640, 360)
