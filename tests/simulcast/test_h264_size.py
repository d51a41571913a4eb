"""An H264 simulcast layer's size, read from the SPS at the start of its keyframes (aiortc's
own encoder makes the packets: SPS and PPS in a STAP-A, as browsers send them)."""

from __future__ import annotations

import fractions

import av
import numpy as np
from aiortc.codecs.h264 import H264Encoder

from relayroom.media.simulcast_hub import h264_keyframe_size


def first_packets(width: int, height: int) -> list[bytes]:
    frame = av.VideoFrame.from_ndarray(
        np.zeros((height * 3 // 2, width), dtype=np.uint8), format="yuv420p"
    )
    frame.pts = 0
    frame.time_base = fractions.Fraction(1, 90000)
    payloads, _ = H264Encoder().encode(frame)
    return payloads


def test_the_size_comes_from_the_sps_of_a_keyframe() -> None:
    payloads = first_packets(640, 360)  # 360: the SPS crops the last macroblock row
    assert payloads[0][0] & 0x1F in (7, 24)
    assert h264_keyframe_size(payloads[0]) == (640, 360)
    assert all(h264_keyframe_size(p) is None for p in payloads[1:])  # no SPS there


def test_a_broken_sps_or_stap_a_gives_no_size() -> None:
    assert h264_keyframe_size(b"") is None
    assert h264_keyframe_size(bytes([0x67, 0x42])) is None  # an SPS cut short
    assert h264_keyframe_size(bytes([0x78, 0x00, 0x40, 0x67])) is None  # STAP-A size too big
