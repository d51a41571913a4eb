"""Synthetic media for load-test publishers, encoded once and looped (no encoding per frame).

A load generator that encoded live would need as much CPU as the server it measures. Video is a
moving pattern encoded once with libvpx into a loop of frames that starts with a keyframe; audio is
a tone encoded once with libopus. The tracks hand aiortc the packets (`av.Packet`), which it only
packetizes.
"""

from __future__ import annotations

import asyncio
import fractions
import functools
import time

import av
import numpy as np
from aiortc.mediastreams import MediaStreamError, MediaStreamTrack

VIDEO_CLOCK = 90000
AUDIO_CLOCK = 48000
AUDIO_PTIME_S = 0.02
AUDIO_LOOP_S = 1.0


@functools.lru_cache(maxsize=8)
def encoded_video(width: int, height: int, fps: int, bitrate: int, gop: int) -> tuple[bytes, ...]:
    """`gop` VP8 frames of a moving pattern, the first a keyframe, the rest delta frames."""
    codec = av.CodecContext.create("libvpx", "w")
    codec.width, codec.height = width, height
    codec.pix_fmt = "yuv420p"
    codec.framerate = fractions.Fraction(fps, 1)
    codec.time_base = fractions.Fraction(1, fps)
    codec.bit_rate = bitrate
    codec.options = {
        "deadline": "realtime",
        "cpu-used": "8",
        "lag-in-frames": "0",
        "qmin": "4",
        "qmax": "56",
    }
    codec.gop_size = gop + 1  # only the first frame of the loop is a keyframe
    luma_rows = np.arange(height, dtype=np.uint16)[:, None]
    luma_cols = np.arange(width, dtype=np.uint16)[None, :]
    rng = np.random.default_rng(7)
    out: list[bytes] = []
    for i in range(gop):
        # A moving gradient plus a little noise: delta frames cost something, like a camera.
        y = ((luma_rows + luma_cols + 4 * i) % 256).astype(np.uint8)
        y = np.clip(y.astype(np.int16) + rng.integers(-12, 13, y.shape), 0, 255).astype(np.uint8)
        chroma = np.full((height // 2, width), 128, dtype=np.uint8)
        frame = av.VideoFrame.from_ndarray(np.vstack([y, chroma]), format="yuv420p")
        frame.pts = i
        packets = list(codec.encode(frame))
        out.extend(bytes(p) for p in packets)
    out.extend(bytes(p) for p in codec.encode(None))
    return tuple(out[:gop])


@functools.lru_cache(maxsize=2)
def encoded_audio(frequency: float = 440.0) -> tuple[bytes, ...]:
    """One second of a tone as 20 ms Opus packets."""
    codec = av.CodecContext.create("libopus", "w")
    codec.sample_rate = AUDIO_CLOCK
    codec.layout = "stereo"
    codec.format = "s16"
    codec.bit_rate = 32000
    samples = int(AUDIO_CLOCK * AUDIO_PTIME_S)
    t = np.arange(int(AUDIO_CLOCK * AUDIO_LOOP_S)) / AUDIO_CLOCK
    wave = (np.sin(2 * np.pi * frequency * t) * 6000).astype(np.int16)
    stereo = np.repeat(wave, 2)
    out: list[bytes] = []
    for start in range(0, len(wave), samples):
        chunk = stereo[start * 2 : (start + samples) * 2]
        frame = av.AudioFrame.from_ndarray(chunk.reshape(1, -1), format="s16", layout="stereo")
        frame.sample_rate = AUDIO_CLOCK
        frame.pts = start
        out.extend(bytes(p) for p in codec.encode(frame))
    return tuple(out)


class LoopedTrack(MediaStreamTrack):  # type: ignore[misc]
    """Plays pre-encoded packets in a loop, in real time."""

    def __init__(
        self, kind: str, packets: tuple[bytes, ...], interval_s: float, clock: int
    ) -> None:
        super().__init__()
        if not packets:
            raise ValueError("nothing to play")
        self.kind = kind
        self._packets = packets
        self._interval = interval_s
        self._clock = clock
        self._time_base = fractions.Fraction(1, clock)
        self._index = 0
        self._start: float | None = None

    async def recv(self) -> av.Packet:  # type: ignore[type-arg]
        if self.readyState != "live":
            raise MediaStreamError
        now = time.monotonic()
        if self._start is None:
            self._start = now
        else:
            due = self._start + self._index * self._interval
            if due > now:
                await asyncio.sleep(due - now)
        packet = av.Packet(self._packets[self._index % len(self._packets)])
        packet.pts = round(self._index * self._interval * self._clock)
        packet.time_base = self._time_base
        self._index += 1
        return packet


def video_track(width: int, height: int, fps: int, bitrate: int, keyframe_s: float) -> LoopedTrack:
    gop = max(1, round(fps * keyframe_s))
    return LoopedTrack(
        "video", encoded_video(width, height, fps, bitrate, gop), 1 / fps, VIDEO_CLOCK
    )


def audio_track() -> LoopedTrack:
    return LoopedTrack("audio", encoded_audio(), AUDIO_PTIME_S, AUDIO_CLOCK)
