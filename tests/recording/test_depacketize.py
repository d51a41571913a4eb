"""The frame assembler on real encoder output: order, reordering, loss, keyframe gaps (sans-IO)."""

from __future__ import annotations

import fractions
import random
import subprocess
from pathlib import Path

import av
import numpy as np
import pytest
from aiortc.codecs.h264 import H264Encoder
from aiortc.codecs.vpx import Vp8Encoder

from relayroom.media.depacketize import (
    Frame,
    FrameAssembler,
    h264_dimensions,
    h264_parameter_sets,
    vp8_dimensions,
)
from relayroom.media.matroska import MatroskaWriter, avc_config
from tests.recording.conftest import decode_errors, decoded_frames, probe

Packet = tuple[int, int, bool, bytes]  # sequence number, timestamp, marker, payload


def encoded_packets(
    codec: str, frames: int, *, width: int = 320, height: int = 240, keyframe_every: int = 0
) -> tuple[list[Packet], int]:
    """RTP packets of `frames` frames from aiortc's own encoder: (packets, keyframes made)."""
    encoder = Vp8Encoder() if codec == "vp8" else H264Encoder()
    rng = np.random.default_rng(5)
    packets: list[Packet] = []
    seq = 65500  # wraps around during the run
    keyframes = 0
    for i in range(frames):
        image = rng.integers(0, 255, (height * 3 // 2, width), dtype=np.uint8)
        frame = av.VideoFrame.from_ndarray(image, format="yuv420p")
        frame.pts = i * 3000
        frame.time_base = fractions.Fraction(1, 90000)
        force = keyframe_every > 0 and i > 0 and i % keyframe_every == 0
        payloads, timestamp = encoder.encode(frame, force_keyframe=force)
        keyframes += force
        for n, payload in enumerate(payloads):
            packets.append((seq & 0xFFFF, timestamp, n == len(payloads) - 1, payload))
            seq += 1
    return packets, keyframes + 1


def packet_times(path: Path) -> list[int]:
    """Packet times (ms) as ffprobe reads them from a file."""
    out = subprocess.run(
        ["ffprobe", "-v", "error", "-select_streams", "0", "-show_entries", "packet=pts",
         "-of", "csv=p=0", str(path)],
        capture_output=True, text=True, timeout=60, check=True,
    )  # fmt: skip
    return [int(line) for line in out.stdout.split()]


def frame_index(timestamp: int) -> int:
    """Which frame of `encoded_packets` an RTP timestamp belongs to (3000 ticks each, rounded)."""
    return round(timestamp / 3000)


def assemble(
    codec: str, packets: list[Packet], **kwargs: float
) -> tuple[FrameAssembler, list[Frame]]:
    assembler = FrameAssembler(codec, **kwargs)  # type: ignore[arg-type]
    frames: list[Frame] = []
    for i, (seq, ts, marker, payload) in enumerate(packets):
        frames += assembler.push(seq, ts, marker, payload, now=i * 0.001)
    frames += assembler.flush()
    return assembler, frames


def write(tmp_path: Path, codec: str, frames: list[Frame], width: int, height: int) -> Path:
    private = b""
    if codec == "h264":
        sps, pps = h264_parameter_sets(frames[0].data)
        assert sps is not None and pps is not None
        private = avc_config(sps, pps)
    path = tmp_path / f"out.{'mkv' if codec == 'h264' else 'webm'}"
    with path.open("wb") as file:
        writer = MatroskaWriter(
            file,
            codec=codec,
            webm=codec == "vp8",
            width=width,
            height=height,
            codec_private=private,
        )
        first = frames[0].timestamp
        for frame in frames:
            writer.add(frame.data, (frame.timestamp - first) // 90, frame.keyframe)
        writer.close()
    return path


@pytest.mark.parametrize("codec", ["vp8", "h264"])
def test_in_order_packets_give_every_frame_and_a_clean_file(tmp_path, codec):
    packets, _ = encoded_packets(codec, 60)
    assembler, frames = assemble(codec, packets)
    assert len(frames) == 60 and frames[0].keyframe
    assert assembler.stats.lost == assembler.stats.broken_frames == 0
    path = write(tmp_path, codec, frames, 320, 240)
    assert decode_errors(path) == ""
    assert decoded_frames(path) == 60
    (stream,) = probe(path)["streams"]
    assert (stream["codec_name"], stream["width"], stream["height"]) == (codec, 320, 240)


def test_reordered_and_duplicated_packets_give_the_same_frames():
    packets, _ = encoded_packets("vp8", 40)
    _, expected = assemble("vp8", packets)
    rng = random.Random(1)
    shuffled = list(packets)
    # Reorder inside windows of 6 packets (the first packet seen starts the sequence).
    for start in range(1, len(shuffled), 6):
        window = shuffled[start : start + 6]
        rng.shuffle(window)
        shuffled[start : start + 6] = window
    shuffled += [shuffled[10], shuffled[3]]  # late duplicates
    assembler, frames = assemble("vp8", shuffled)
    assert frames == expected
    assert assembler.stats.duplicates + assembler.stats.late == 2


def test_a_lost_packet_drops_frames_until_the_next_keyframe(tmp_path):
    packets, _ = encoded_packets("vp8", 90, keyframe_every=30)
    lost_at = next(i for i, p in enumerate(packets) if frame_index(p[1]) == 10)
    with_loss = packets[:lost_at] + packets[lost_at + 1 :]
    assembler = FrameAssembler("vp8", reorder_s=0.05)
    frames: list[Frame] = []
    asked = []
    for i, (seq, ts, marker, payload) in enumerate(with_loss):
        frames += assembler.push(seq, ts, marker, payload, now=i * 0.01)
        if assembler.need_keyframe:
            assembler.need_keyframe = False
            asked.append(ts)
    # frames 0-9 before the loss, then nothing until the keyframe at frame 30
    times = [frame_index(f.timestamp) for f in frames]
    assert times == list(range(10)) + list(range(30, 90)), times
    assert frames[10].keyframe
    assert assembler.stats.lost == 1 and assembler.stats.broken_frames == 1
    assert assembler.stats.skipped_frames == 19
    assert len(asked) >= 1  # a keyframe was requested after the loss (and at the start)
    path = write(tmp_path, "vp8", frames, 320, 240)
    assert decode_errors(path) == ""


def test_a_stream_that_starts_mid_gop_waits_for_a_keyframe():
    packets, _ = encoded_packets("vp8", 40, keyframe_every=20)
    start = next(i for i, p in enumerate(packets) if frame_index(p[1]) == 5)
    assembler, frames = assemble("vp8", packets[start:])
    assert frames[0].keyframe and len(frames) == 20
    assert assembler.stats.skipped_frames == 15


def test_a_packet_waits_for_its_retransmission_within_the_reorder_time():
    packets, _ = encoded_packets("vp8", 20)
    assembler = FrameAssembler("vp8", reorder_s=0.2)
    held = packets[5]
    frames: list[Frame] = []
    for i, (seq, ts, marker, payload) in enumerate(packets):
        if i != 5:
            frames += assembler.push(seq, ts, marker, payload, now=i * 0.0001)
    frames += assembler.push(*held, now=0.15)  # the retransmission, 150 ms later
    frames += assembler.flush()
    assert len(frames) == 20 and assembler.stats.lost == 0


def test_vp8_and_h264_picture_sizes_are_read_from_the_bitstream():
    packets, _ = encoded_packets("h264", 1, width=320, height=180)  # 180: cropped macroblocks
    _, frames = assemble("h264", packets)
    sps, _ = h264_parameter_sets(frames[0].data)
    assert sps is not None and h264_dimensions(sps) == (320, 180)
    packets, _ = encoded_packets("vp8", 1, width=640, height=360)
    _, frames = assemble("vp8", packets)
    assert vp8_dimensions(frames[0].data) == (640, 360)


def test_unknown_codecs_are_refused():
    with pytest.raises(ValueError, match="cannot record"):
        FrameAssembler("AV1")


def test_frames_stamped_within_one_millisecond_still_get_increasing_times(tmp_path):
    packets, _ = encoded_packets("vp8", 30)
    _, frames = assemble("vp8", packets)
    path = tmp_path / "same.webm"
    with path.open("wb") as file:
        writer = MatroskaWriter(file, codec="vp8", webm=True, width=320, height=240)
        for i, frame in enumerate(frames):
            writer.add(frame.data, (i // 3) * 100, frame.keyframe)  # three frames per time
        writer.close()
    assert packet_times(path) == [(i // 3) * 100 + i % 3 for i in range(30)]
