"""The load generator: one aiortc publisher and N aiortc subscribers, each in its own process.

The parent drives them through a pipe (`Child.call`); they know nothing about which server is on
the other side: the parent does the signaling and hands them SDP. Subscribers run aiortc's whole
receive path and decode every frame, so they send receiver reports, NACKs and PLIs as a browser
does. Every figure they report is for a wall-clock window [t0, t1] the parent chooses.
"""

from __future__ import annotations

import asyncio
import contextlib
import fractions
import multiprocessing as mp
import os
import threading
import time
from multiprocessing.connection import Connection
from typing import Any

from bench.sfu import procstat, stamp

VIDEO_CLOCK = 90000


def _pin(cpus: list[int], nice: int = 0) -> None:
    """Run on ``cpus``, in a session of one's own, at CPU weight ``nice``.

    With autogroup scheduling every session is one scheduling group: nine busy clients in the
    benchmark's session would share one group's CPU against every other session on a shared
    machine, and the publisher would fall behind its frame rate.
    """
    os.setsid()
    if cpus:
        os.sched_setaffinity(0, cpus)
    procstat.lower_priority(os.getpid(), nice)


def _client_pc() -> Any:
    from aiortc import RTCConfiguration, RTCPeerConnection
    from aiortc.rtcconfiguration import RTCBundlePolicy

    return RTCPeerConnection(
        RTCConfiguration(iceServers=[], bundlePolicy=RTCBundlePolicy.MAX_BUNDLE)
    )


def _in_window(times: list[float], t0: float, t1: float) -> int:
    return sum(1 for t in times if t0 <= t < t1)


async def _serve(conn: Connection, handle: Any) -> None:
    """Answer the parent's requests until 'stop'; an exception is reported, not fatal."""
    loop = asyncio.get_running_loop()
    while True:
        msg = await loop.run_in_executor(None, conn.recv)
        if msg[0] == "stop":
            conn.send(("ok", None))
            return
        if msg[0] == "ping":
            conn.send(("ok", None))
            continue
        try:
            conn.send(("ok", await handle(*msg)))
        except Exception as exc:
            conn.send(("error", repr(exc)))


# ---------------------------------------------------------------------------------- publisher


def publisher_main(
    conn: Connection, cpus: list[int], host: str, size: tuple[int, int], fps: int, kbps: int
) -> None:
    _pin(cpus)
    asyncio.run(_publisher(conn, host, size, fps, kbps))


async def _publisher(
    conn: Connection, host: str, size: tuple[int, int], fps: int, kbps: int
) -> None:
    import av
    import numpy as np
    from aiortc import RTCSessionDescription
    from aiortc.codecs import vpx
    from aiortc.mediastreams import AudioStreamTrack, MediaStreamTrack

    from relayroom.media.aiortc_hooks import configure_ice

    # Both servers must get the same stream: the encoder ignores REMB and keeps this bitrate.
    bitrate = kbps * 1000
    encoder_class: Any = vpx.Vp8Encoder
    encoder_class.target_bitrate = property(lambda self: bitrate, lambda self, value: None)

    width, height = size
    video_times: list[float] = []
    audio_times: list[float] = []

    class StampedVideo(MediaStreamTrack):  # type: ignore[misc]
        """Moving bar + changing noise (so the encoder spends its bitrate) + the stamp."""

        kind = "video"

        def __init__(self) -> None:
            super().__init__()
            self.counter = 0
            self.start: float | None = None
            rng = np.random.default_rng(1)
            self.base = np.full((height * 3 // 2, width), 128, np.uint8)
            self.noise = [
                rng.integers(60, 190, (height // 3, width), dtype=np.uint8) for _ in range(16)
            ]

        async def recv(self) -> Any:
            now = time.monotonic()
            if self.start is None:
                self.start = now
            due = self.start + self.counter / fps
            if due > now:
                await asyncio.sleep(due - now)
            arr = self.base.copy()
            y = arr[:height]
            x = (self.counter * 6) % width
            y[stamp.HEIGHT :, max(0, x - 12) : x + 12] = 220
            y[height - height // 3 :] = self.noise[self.counter % len(self.noise)]
            wall = time.time()
            stamp.draw(y, self.counter, int(wall * 1000))
            frame = av.VideoFrame.from_ndarray(arr, format="yuv420p")
            frame.pts = self.counter * (VIDEO_CLOCK // fps)
            frame.time_base = fractions.Fraction(1, VIDEO_CLOCK)
            self.counter += 1
            video_times.append(wall)
            return frame

    class CountedAudio(AudioStreamTrack):  # type: ignore[misc]
        async def recv(self) -> Any:
            frame = await super().recv()
            audio_times.append(time.time())
            return frame

    pc: Any = None

    async def close() -> None:
        nonlocal pc
        if pc is not None:
            await pc.close()
            pc = None
        video_times.clear()
        audio_times.clear()

    async def handle(op: str, *args: Any) -> Any:
        nonlocal pc
        if op == "offer":
            await close()
            pc = _client_pc()
            pc.addTransceiver(StampedVideo(), direction="sendonly")
            pc.addTransceiver(CountedAudio(), direction="sendonly")
            configure_ice(pc, (host,))
            await pc.setLocalDescription(await pc.createOffer())
            return pc.localDescription.sdp
        if op == "answer":
            await pc.setRemoteDescription(RTCSessionDescription(args[0], "answer"))
            return None
        if op == "summary":
            t0, t1 = args
            return {
                "video_frames": _in_window(video_times, t0, t1),
                "audio_frames": _in_window(audio_times, t0, t1),
            }
        if op == "reset":
            await close()
            return None
        raise ValueError(op)

    try:
        await _serve(conn, handle)
    finally:
        await close()


# ---------------------------------------------------------------------------------- subscriber


def subscriber_main(conn: Connection, cpus: list[int], host: str, nice: int = 0) -> None:
    _pin(cpus, nice)
    asyncio.run(_subscriber(conn, host))


class _Record:
    """What one subscriber saw, time-stamped (wall clock) so any window can be summarised."""

    def __init__(self) -> None:
        self.frames: list[tuple[float, int, float]] = []  # (decoded at, counter, latency ms)
        self.audio: list[float] = []
        self.packets: list[tuple[float, int, int]] = []  # (arrival, ssrc, sequence number)
        self.decoded = 0

    def summary(self, t0: float, t1: float) -> dict[str, Any]:
        frames = [f for f in self.frames if t0 <= f[0] < t1]
        packets = [p for p in self.packets if t0 <= p[0] < t1]
        expected = received = 0
        by_ssrc: dict[int, list[int]] = {}
        for _, ssrc, seq in packets:
            by_ssrc.setdefault(ssrc, []).append(seq)
        for seqs in by_ssrc.values():
            # Unwrap 16-bit sequence numbers in arrival order; loss is before any retransmission.
            ext, last, seen = 0, seqs[0], {seqs[0]}
            low = high = 0
            for seq in seqs[1:]:
                delta = ((seq - last + 0x8000) & 0xFFFF) - 0x8000
                ext += delta
                last = seq
                low, high = min(low, ext), max(high, ext)
                seen.add(ext)
            expected += high - low + 1
            received += len(seen)
        return {
            "frames": len({f[1] for f in frames}),
            "latencies_ms": [f[2] for f in frames],
            "audio_frames": _in_window(self.audio, t0, t1),
            "rtp_packets": len(packets),
            "rtp_expected": expected,
            "rtp_lost": max(0, expected - received),
            "decoded_total": self.decoded,
        }


async def _subscriber(conn: Connection, host: str) -> None:
    import av
    import numpy as np
    from aiortc import RTCSessionDescription
    from aiortc.mediastreams import MediaStreamError

    from relayroom.media.aiortc_hooks import configure_ice

    pc: Any = None
    record = _Record()
    tasks: list[asyncio.Task[None]] = []

    def count_packets(transport: Any) -> None:
        """Time-stamp every RTP packet the transport hands to aiortc (after SRTP)."""
        if getattr(transport, "_bench_counted", False):
            return
        original = transport._handle_rtp_data

        async def counted(data: bytes, arrival_time_ms: int) -> None:
            if len(data) >= 12:
                record.packets.append(
                    (time.time(), int.from_bytes(data[8:12], "big"), (data[2] << 8) | data[3])
                )
            await original(data, arrival_time_ms)

        transport._handle_rtp_data = counted
        transport._bench_counted = True

    async def read(track: Any) -> None:
        with contextlib.suppress(MediaStreamError):
            while True:
                frame = await track.recv()
                now = time.time()
                if not isinstance(frame, av.VideoFrame):
                    record.audio.append(now)
                    continue
                record.decoded += 1
                plane = frame.planes[0]
                y = np.frombuffer(memoryview(plane), np.uint8).reshape(-1, plane.line_size)
                got = stamp.read(y)
                if got is not None:
                    counter, ms = got
                    latency = (int(now * 1000) - ms) & 0xFFFFFFFF
                    record.frames.append((now, counter, float(latency)))

    async def close() -> None:
        nonlocal pc, record
        for task in tasks:
            task.cancel()
        tasks.clear()
        if pc is not None:
            await pc.close()
            pc = None
        record = _Record()

    async def handle(op: str, *args: Any) -> Any:
        nonlocal pc
        if op == "answer_offer":
            if pc is None:
                pc = _client_pc()

                @pc.on("track")
                def on_track(track: Any) -> None:
                    tasks.append(asyncio.ensure_future(read(track)))

            await pc.setRemoteDescription(RTCSessionDescription(args[0], "offer"))
            for transceiver in pc.getTransceivers():
                count_packets(transceiver.receiver.transport)
            configure_ice(pc, (host,))
            await pc.setLocalDescription(await pc.createAnswer())
            return pc.localDescription.sdp
        if op == "status":
            return {"decoded": record.decoded, "stamped": len(record.frames)}
        if op == "summary":
            return record.summary(*args)
        if op == "reset":
            await close()
            return None
        raise ValueError(op)

    try:
        await _serve(conn, handle)
    finally:
        await close()


# ---------------------------------------------------------------------------------- parent side


class Child:
    """A client process and a lock-protected request/reply pipe to it."""

    def __init__(self, target: Any, *args: Any) -> None:
        ctx = mp.get_context("spawn")
        self.conn, child_conn = ctx.Pipe()
        self.proc = ctx.Process(target=target, args=(child_conn, *args), daemon=True)
        self.proc.start()
        self._lock = threading.Lock()

    @property
    def pid(self) -> int:
        assert self.proc.pid is not None
        return self.proc.pid

    def call(self, *msg: Any, timeout: float = 30.0) -> Any:
        with self._lock:
            self.conn.send(msg)
            if not self.conn.poll(timeout):
                raise TimeoutError(f"client request {msg[0]!r} timed out after {timeout} s")
            status, value = self.conn.recv()
        if status != "ok":
            raise RuntimeError(f"client request {msg[0]!r} failed: {value}")
        return value

    async def acall(self, *msg: Any, timeout: float = 30.0) -> Any:
        return await asyncio.to_thread(self.call, *msg, timeout=timeout)

    def stop(self) -> None:
        with contextlib.suppress(Exception):
            self.call("stop", timeout=10)
        self.proc.join(5)
        if self.proc.is_alive():
            self.proc.kill()
            self.proc.join(5)
