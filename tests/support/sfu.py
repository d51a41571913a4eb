"""An aiortc publisher and subscriber driven through the signaling WebSocket."""

from __future__ import annotations

import asyncio

import av
from aiortc import RTCPeerConnection, RTCSessionDescription
from aiortc.mediastreams import AudioStreamTrack, MediaStreamError, MediaStreamTrack

from relayroom.media.aiortc_hooks import configure_ice
from tests.conftest import WsClient
from tests.media.client import LOOPBACK, StampedVideoTrack, client_pc, luma, read_stamp


class WsSubscriber:
    """Answers every `subscribe_offer` arriving on the WebSocket; decodes stamped frames."""

    def __init__(self, ws: WsClient) -> None:
        self.ws = ws
        self.pc = client_pc()
        self.counters: dict[str, list[int]] = {}
        self.ended: set[str] = set()
        self.stream_ids: dict[str, str] = {}
        self.answers = 0
        self._tasks: list[asyncio.Task[None]] = []

        @self.pc.on("track")
        def on_track(track: MediaStreamTrack) -> None:
            self.counters[track.id] = []
            self._tasks.append(asyncio.create_task(self._read(track)))

    async def answer_next_offer(self, timeout: float = 10) -> None:
        offer = await self.ws.expect("subscribe_offer", timeout)
        await self.pc.setRemoteDescription(RTCSessionDescription(offer["sdp"], "offer"))
        configure_ice(self.pc, LOOPBACK)
        await self.pc.setLocalDescription(await self.pc.createAnswer())
        await self.ws.send({"type": "subscribe_answer", "sdp": self.pc.localDescription.sdp})
        self.answers += 1

    async def _read(self, track: MediaStreamTrack) -> None:
        try:
            while True:
                frame = await track.recv()
                if isinstance(frame, av.VideoFrame):
                    counter = read_stamp(luma(frame))
                    if counter is not None:
                        self.counters[track.id].append(counter)
        except MediaStreamError:
            self.ended.add(track.id)

    async def close(self) -> None:
        for task in self._tasks:
            task.cancel()
        await self.pc.close()


async def publish(ws: WsClient) -> tuple[RTCPeerConnection, StampedVideoTrack]:
    pc = client_pc()
    video = StampedVideoTrack()
    pc.addTransceiver(video, direction="sendonly")
    pc.addTransceiver(AudioStreamTrack(), direction="sendonly")
    configure_ice(pc, LOOPBACK)
    await pc.setLocalDescription(await pc.createOffer())
    await ws.send({"type": "publish_offer", "id": "pub", "sdp": pc.localDescription.sdp})
    answer = await ws.expect("publish_answer", 10)
    assert answer["ref"] == "pub"
    await pc.setRemoteDescription(RTCSessionDescription(answer["sdp"], "answer"))
    return pc, video
