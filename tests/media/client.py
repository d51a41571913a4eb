"""Test clients: real aiortc peers that publish stamped media and check what they receive.

Video frames carry a frame counter drawn as 32 black/white blocks (16 bits and their complement)
in the top-left corner, so a subscriber reads back, after decoding, which frame it got.
"""

from __future__ import annotations

import asyncio
import fractions
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import av
import numpy as np
from aiortc import (
    RTCConfiguration,
    RTCPeerConnection,
    RTCRtpSender,
    RTCRtpTransceiver,
    RTCSessionDescription,
)
from aiortc.mediastreams import AudioStreamTrack, MediaStreamError, MediaStreamTrack
from aiortc.rtcconfiguration import RTCBundlePolicy

from relayroom.media import Participant
from relayroom.media.aiortc_hooks import configure_ice, watch_renegotiation

LOOPBACK = ("127.0.0.1",)
BLOCK = 16
VIDEO_CLOCK = 90000


def client_pc() -> RTCPeerConnection:
    """A client PeerConnection for loopback: no STUN, bundled.

    aiortc clients have the relay's renegotiation gap too (media negotiated while DTLS is still
    connecting never starts); browsers do not, so the test clients get the same fix.
    """
    pc = RTCPeerConnection(RTCConfiguration(iceServers=[], bundlePolicy=RTCBundlePolicy.MAX_BUNDLE))
    watch_renegotiation(pc)
    return pc


def strip_ssrc_lines(sdp: str) -> str:
    """An SDP without ``a=ssrc``/``a=ssrc-group`` lines (some clients send none)."""
    return "".join(
        line
        for line in sdp.splitlines(keepends=True)
        if not line.startswith(("a=ssrc:", "a=ssrc-group:"))
    )


def stamp(y: np.ndarray, counter: int) -> None:
    """Draw ``counter`` (16 bits + complement) as 2 rows of 16 blocks in a luma plane."""
    value = (counter & 0xFFFF) | ((~counter & 0xFFFF) << 16)
    for i in range(32):
        row, col = divmod(i, 16)
        level = 235 if (value >> i) & 1 else 16
        y[row * BLOCK : (row + 1) * BLOCK, col * BLOCK : (col + 1) * BLOCK] = level


def read_stamp(y: np.ndarray) -> int | None:
    """Read a counter drawn by :func:`stamp`; None if the check bits disagree."""
    value = 0
    for i in range(32):
        row, col = divmod(i, 16)
        cy, cx = row * BLOCK + BLOCK // 2, col * BLOCK + BLOCK // 2
        if y[cy - 3 : cy + 3, cx - 3 : cx + 3].mean() > 128:
            value |= 1 << i
    counter = value & 0xFFFF
    if (value >> 16) != (~counter & 0xFFFF):
        return None
    return counter


def luma(frame: av.VideoFrame) -> np.ndarray:
    plane = frame.planes[0]
    data = np.frombuffer(bytes(plane), np.uint8)
    return data.reshape(frame.height, plane.line_size)[:, : frame.width]


class StampedVideoTrack(MediaStreamTrack):
    """Synthetic video: a moving pattern with noise, and the frame counter stamped."""

    kind = "video"

    def __init__(self, width: int = 320, height: int = 240, fps: int = 30, noise: bool = True):
        super().__init__()
        self.width, self.height, self.fps = width, height, fps
        self.counter = 0
        self.sent_at: dict[int, float] = {}
        self._start: float | None = None
        self._noise = noise
        self._rng = np.random.default_rng(1)
        self._base = np.full((height * 3 // 2, width), 128, np.uint8)

    async def recv(self) -> av.VideoFrame:
        if self.readyState != "live":
            raise MediaStreamError
        now = time.monotonic()
        if self._start is None:
            self._start = now
        due = self._start + self.counter / self.fps
        if due > now:
            await asyncio.sleep(due - now)
        arr = self._base.copy()
        y = arr[: self.height]
        x = (self.counter * 4) % self.width
        y[40:, max(0, x - 8) : x + 8] = 200
        if self._noise:
            rows = slice(self.height // 2, self.height)
            y[rows] = self._rng.integers(60, 190, y[rows].shape, dtype=np.uint8)
        stamp(y, self.counter)
        frame = av.VideoFrame.from_ndarray(arr, format="yuv420p")
        frame.pts = self.counter * (VIDEO_CLOCK // self.fps)
        frame.time_base = fractions.Fraction(1, VIDEO_CLOCK)
        self.sent_at[self.counter] = time.monotonic()
        self.counter += 1
        return frame


@dataclass
class ReceivedTrack:
    """What a subscriber saw on one track."""

    kind: str
    track_id: str
    mid: str | None
    started_at: float
    frames: list[tuple[int | None, float]] = field(default_factory=list)
    """(counter or None for audio/unreadable, arrival time)."""
    ended_at: float | None = None

    def counters(self) -> list[int]:
        return [c for c, _ in self.frames if c is not None]

    def fps(self, window: float | None = None) -> float:
        times = [t for _, t in self.frames]
        if window is not None and times:
            times = [t for t in times if t >= times[-1] - window]
        if len(times) < 2:
            return 0.0
        return (len(times) - 1) / (times[-1] - times[0])


class Publisher:
    """A client publishing stamped video (VP8 or H264) and/or Opus audio."""

    def __init__(
        self,
        participant: Participant,
        *,
        video: bool = True,
        audio: bool = True,
        codec: str = "VP8",
        width: int = 320,
        height: int = 240,
        fps: int = 30,
        munge: Callable[[str], str] | None = None,
    ) -> None:
        self.participant = participant
        self.pc = client_pc()
        self.codec = codec
        self.munge = munge
        self.video = StampedVideoTrack(width, height, fps) if video else None
        self.audio = AudioStreamTrack() if audio else None
        self.video_sender: RTCRtpSender | None = None
        if self.video is not None:
            self.video_sender = self.add_video(self.video).sender
        if self.audio is not None:
            self.add_audio(self.audio)

    def add_video(self, track: MediaStreamTrack) -> RTCRtpTransceiver:
        """Add a sendonly video transceiver (the publisher's codec); offer to negotiate it."""
        transceiver = self.pc.addTransceiver(track, direction="sendonly")
        prefs = [
            c
            for c in RTCRtpSender.getCapabilities("video").codecs
            if c.mimeType.lower() in (f"video/{self.codec.lower()}", "video/rtx")
        ]
        transceiver.setCodecPreferences(prefs)
        return transceiver

    def add_audio(self, track: MediaStreamTrack) -> RTCRtpTransceiver:
        return self.pc.addTransceiver(track, direction="sendonly")

    async def publish(self) -> str:
        await self.offer()
        return self.pc.localDescription.sdp

    async def offer(self) -> None:
        configure_ice(self.pc, LOOPBACK)
        await self.pc.setLocalDescription(await self.pc.createOffer())
        sdp = self.pc.localDescription.sdp
        answer = await self.participant.publish_offer(self.munge(sdp) if self.munge else sdp)
        await self.pc.setRemoteDescription(RTCSessionDescription(answer, "answer"))

    async def close(self) -> None:
        await self.pc.close()


class Subscriber:
    """A client answering subscriber offers and reading every track it receives."""

    def __init__(self, participant: Participant, *, decode: bool = True) -> None:
        self.participant = participant
        self.pc = client_pc()
        self.offers: asyncio.Queue[str] = asyncio.Queue()
        self.tracks: dict[str, ReceivedTrack] = {}
        self.answers = 0
        self.negotiation_errors: list[BaseException] = []
        self._decode = decode
        self._tasks: set[asyncio.Task[Any]] = set()
        self._task = asyncio.get_running_loop().create_task(self._negotiate())
        self.created_at = time.monotonic()
        self.on_frame: Callable[[ReceivedTrack, int | None], None] | None = None

        @self.pc.on("track")
        def on_track(track: MediaStreamTrack) -> None:
            mid = None
            for t in self.pc.getTransceivers():
                if t.receiver.track is track:
                    mid = t.mid
            received = ReceivedTrack(track.kind, track.id, mid, time.monotonic())
            self.tracks[track.id] = received
            task = asyncio.get_running_loop().create_task(self._read(track, received))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    def stream_id(self, track: ReceivedTrack) -> str | None:
        """The msid stream id of the m-line a track came on."""
        mid = track.mid
        desc = self.pc.remoteDescription
        if desc is None:
            return None
        current: str | None = None
        for line in desc.sdp.splitlines():
            if line.startswith("m="):
                current = None
            elif line.startswith("a=mid:"):
                current = line[6:]
            elif line.startswith("a=msid:") and current == mid:
                return line[7:].split()[0]
        return None

    async def _negotiate(self) -> None:
        while True:
            sdp = await self.offers.get()
            try:
                await self.pc.setRemoteDescription(RTCSessionDescription(sdp, "offer"))
                configure_ice(self.pc, LOOPBACK)
                await self.pc.setLocalDescription(await self.pc.createAnswer())
                await self.participant.subscribe_answer(self.pc.localDescription.sdp)
                self.answers += 1
            except Exception as exc:
                self.negotiation_errors.append(exc)

    async def _read(self, track: MediaStreamTrack, received: ReceivedTrack) -> None:
        try:
            while True:
                frame = await track.recv()
                counter: int | None = None
                if self._decode and isinstance(frame, av.VideoFrame):
                    counter = read_stamp(luma(frame))
                received.frames.append((counter, time.monotonic()))
                if self.on_frame is not None:
                    self.on_frame(received, counter)
        except MediaStreamError:
            received.ended_at = time.monotonic()

    def video_tracks(self) -> list[ReceivedTrack]:
        return [t for t in self.tracks.values() if t.kind == "video"]

    def audio_tracks(self) -> list[ReceivedTrack]:
        return [t for t in self.tracks.values() if t.kind == "audio"]

    async def close(self) -> None:
        self._task.cancel()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(self._task, *self._tasks, return_exceptions=True)
        await self.pc.close()
        # A failed renegotiation is a failure of whatever test drove it, checked or not.
        assert not self.negotiation_errors, (
            f"subscriber negotiation failed: {self.negotiation_errors}"
        )
