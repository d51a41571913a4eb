"""aiortc WHIP and WHEP clients: plain HTTP (aiohttp) plus an aiortc PeerConnection."""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field
from typing import Any

import aiohttp
import av
from aiortc import RTCSessionDescription
from aiortc.mediastreams import AudioStreamTrack, MediaStreamError, MediaStreamTrack

from relayroom.media.aiortc_hooks import configure_ice
from tests.media.client import (
    LOOPBACK,
    ReceivedTrack,
    StampedVideoTrack,
    client_pc,
    luma,
    read_stamp,
)

SDP = "application/sdp"
SDPFRAG = "application/trickle-ice-sdpfrag"


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def without_candidates(sdp: str) -> tuple[str, list[str]]:
    """The SDP without its `a=candidate` lines, and those lines (to trickle them)."""
    kept, candidates = [], []
    for line in sdp.splitlines(keepends=True):
        if line.startswith("a=candidate:"):
            candidates.append(line.strip()[2:])
        elif not line.startswith("a=end-of-candidates"):
            kept.append(line)
    return "".join(kept), candidates


def sdpfrag(sdp: str, candidates: list[str], *, end: bool = True) -> str:
    """A trickle-ice-sdpfrag carrying `candidates` for the first m-line of `sdp`."""
    ufrag = next(line[12:] for line in sdp.splitlines() if line.startswith("a=ice-ufrag:"))
    pwd = next(line[10:] for line in sdp.splitlines() if line.startswith("a=ice-pwd:"))
    mline = next(line for line in sdp.splitlines() if line.startswith("m="))
    mid = next(line[6:] for line in sdp.splitlines() if line.startswith("a=mid:"))
    lines = [f"a=ice-ufrag:{ufrag}", f"a=ice-pwd:{pwd}", mline, f"a=mid:{mid}"]
    lines += [f"a={c}" for c in candidates]
    if end:
        lines.append("a=end-of-candidates")
    return "\r\n".join(lines) + "\r\n"


@dataclass
class Created:
    status: int
    headers: Any
    body: str
    location: str | None = None


class WhipPublisher:
    """Publishes stamped video (VP8) and audio to `POST /whip/{room}`."""

    def __init__(self, http: aiohttp.ClientSession, base: str, *, video: bool = True) -> None:
        self.http = http
        self.base = base.rstrip("/")
        self.pc = client_pc()
        self.video = StampedVideoTrack() if video else None
        if self.video is not None:
            self.pc.addTransceiver(self.video, direction="sendonly")
        self.pc.addTransceiver(AudioStreamTrack(), direction="sendonly")
        self.location: str | None = None
        self.etag: str | None = None
        self.link: list[str] = []

    async def offer(self) -> str:
        configure_ice(self.pc, LOOPBACK)
        await self.pc.setLocalDescription(await self.pc.createOffer())
        return str(self.pc.localDescription.sdp)

    async def publish(
        self, room: str, token: str, *, trickle: bool = False, extra: tuple[str, ...] = ()
    ) -> Created:
        """POST the offer (its candidates PATCHed afterwards when `trickle`)."""
        sdp = await self.offer()
        body, candidates = without_candidates(sdp) if trickle else (sdp, [])
        headers = {"Content-Type": SDP, **bearer(token)}
        async with self.http.post(f"{self.base}/whip/{room}", data=body, headers=headers) as r:
            created = Created(r.status, r.headers, await r.text())
        if created.status != 201:
            return created
        self.location = created.headers["Location"]
        created.location = self.location
        self.etag = created.headers.get("ETag")
        self.link = created.headers.getall("Link", [])
        await self.pc.setRemoteDescription(RTCSessionDescription(created.body, "answer"))
        if trickle:
            status = await self.patch(sdpfrag(sdp, candidates + list(extra)))
            assert status == 204, status
        return created

    async def patch(self, frag: str, *, if_match: str | None = None) -> int:
        assert self.location is not None
        headers = {"Content-Type": SDPFRAG, "If-Match": if_match or self.etag or "*"}
        async with self.http.patch(self.base + self.location, data=frag, headers=headers) as r:
            return r.status

    async def delete(self) -> int:
        assert self.location is not None
        async with self.http.delete(self.base + self.location) as r:
            return r.status

    async def close(self) -> None:
        await self.pc.close()


@dataclass
class WhepViewer:
    """Plays `POST /whep/{room}` with aiortc: recvonly audio + video, decodes stamps."""

    http: aiohttp.ClientSession
    base: str
    tracks: dict[str, ReceivedTrack] = field(default_factory=dict)
    location: str | None = None

    def __post_init__(self) -> None:
        self.pc = client_pc()
        self.pc.addTransceiver("audio", direction="recvonly")
        self.pc.addTransceiver("video", direction="recvonly")
        self._tasks: set[asyncio.Task[None]] = set()

        @self.pc.on("track")
        def on_track(track: MediaStreamTrack) -> None:
            received = ReceivedTrack(track.kind, track.id, None, time.monotonic())
            self.tracks[track.kind] = received
            task = asyncio.get_running_loop().create_task(self._read(track, received))
            self._tasks.add(task)

    async def play(
        self, room: str, token: str, query: str = "", *, trickle: tuple[str, ...] | None = None
    ) -> Created:
        """POST the offer; with `trickle`, its candidates (and those extra ones) follow in a
        PATCH instead."""
        configure_ice(self.pc, LOOPBACK)
        await self.pc.setLocalDescription(await self.pc.createOffer())
        sdp = str(self.pc.localDescription.sdp)
        body, candidates = without_candidates(sdp) if trickle is not None else (sdp, [])
        headers = {"Content-Type": SDP, **bearer(token)}
        url = f"{self.base.rstrip('/')}/whep/{room}{query}"
        async with self.http.post(url, data=body, headers=headers) as r:
            created = Created(r.status, r.headers, await r.text())
        if created.status == 201:
            self.location = created.location = created.headers["Location"]
            await self.pc.setRemoteDescription(RTCSessionDescription(created.body, "answer"))
            if trickle is not None:
                frag = sdpfrag(sdp, candidates + list(trickle))
                patch_headers = {"Content-Type": SDPFRAG, "If-Match": created.headers["ETag"]}
                async with self.http.patch(
                    self.base.rstrip("/") + self.location, data=frag, headers=patch_headers
                ) as r:
                    assert r.status == 204, r.status
        return created

    async def _read(self, track: MediaStreamTrack, received: ReceivedTrack) -> None:
        try:
            while True:
                frame = await track.recv()
                counter = None
                if isinstance(frame, av.VideoFrame):
                    counter = read_stamp(luma(frame))
                received.frames.append((counter, time.monotonic()))
        except MediaStreamError:
            received.ended_at = time.monotonic()

    def video_frames(self) -> int:
        video = self.tracks.get("video")
        return len(video.frames) if video else 0

    async def delete(self) -> int:
        assert self.location is not None
        async with self.http.delete(self.base.rstrip("/") + self.location) as r:
            return r.status

    async def close(self) -> None:
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        await self.pc.close()


class CountingSubscriber:
    """An aiortc subscriber on the signaling WebSocket that counts every decoded video frame
    (a browser's camera carries no frame stamps)."""

    def __init__(self, ws: Any) -> None:
        self.ws = ws
        self.pc = client_pc()
        self.frames: list[float] = []
        self._tasks: list[asyncio.Task[None]] = []

        @self.pc.on("track")
        def on_track(track: MediaStreamTrack) -> None:
            if track.kind == "video":
                self._tasks.append(asyncio.create_task(self._read(track)))

    async def answer_next_offer(self, timeout: float = 10) -> None:
        offer = await self.ws.expect("subscribe_offer", timeout)
        await self.pc.setRemoteDescription(RTCSessionDescription(offer["sdp"], "offer"))
        configure_ice(self.pc, LOOPBACK)
        await self.pc.setLocalDescription(await self.pc.createAnswer())
        await self.ws.send({"type": "subscribe_answer", "sdp": self.pc.localDescription.sdp})

    async def _read(self, track: MediaStreamTrack) -> None:
        try:
            while True:
                await track.recv()
                self.frames.append(time.monotonic())
        except MediaStreamError:
            pass

    def fps(self, window: float) -> float:
        now = time.monotonic()
        return len([t for t in self.frames if t >= now - window]) / window

    async def close(self) -> None:
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        await self.pc.close()
