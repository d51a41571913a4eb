"""An aiortc publisher over the signaling WebSocket (any video codec), and loss on its uplink."""

from __future__ import annotations

import random
import time
from typing import Any

import av
from aiortc import RTCPeerConnection, RTCRtpSender, RTCSessionDescription
from aiortc.mediastreams import AudioStreamTrack

from relayroom.media.aiortc_hooks import configure_ice
from tests.conftest import WsClient
from tests.media.client import LOOPBACK, StampedVideoTrack, client_pc


class CameraLikeTrack(StampedVideoTrack):
    """Stamped video whose timestamps follow the wall clock, as a camera's capture times do.

    StampedVideoTrack counts frames (pts = counter / fps) and, when late, makes the missed frames
    back to back: on a machine too busy to encode 30 frames a second its media time runs slower
    than the wall clock. A camera skips the frames it is late for; so does this track.
    """

    async def recv(self) -> av.VideoFrame:
        if self._start is not None:
            due = int((time.monotonic() - self._start) * self.fps)
            if due > self.counter:
                self.counter = due  # skip the frames we are late for
        return await super().recv()


async def publish_codec(
    ws: WsClient, codec: str = "VP8", *, width: int = 640, height: int = 480, audio: bool = True
) -> tuple[RTCPeerConnection, StampedVideoTrack]:
    """Publish stamped video in `codec` (and Opus) on a joined WebSocket client."""
    pc = client_pc()
    video = CameraLikeTrack(width, height)
    transceiver = pc.addTransceiver(video, direction="sendonly")
    transceiver.setCodecPreferences(
        [
            c
            for c in RTCRtpSender.getCapabilities("video").codecs
            if c.mimeType.lower() in (f"video/{codec.lower()}", "video/rtx")
        ]
    )
    if audio:
        pc.addTransceiver(AudioStreamTrack(), direction="sendonly")
    configure_ice(pc, LOOPBACK)
    await pc.setLocalDescription(await pc.createOffer())
    await ws.send({"type": "publish_offer", "id": "pub", "sdp": pc.localDescription.sdp})
    answer = await ws.expect("publish_answer", 10)
    await pc.setRemoteDescription(RTCSessionDescription(answer["sdp"], "answer"))
    return pc, video


def drop_outgoing_rtp(pc: RTCPeerConnection, ratio: float, seed: int = 3) -> dict[str, int]:
    """Drop a share of the SRTP media packets (not RTCP, DTLS or STUN) `pc` sends: loss on the
    publisher's leg, as the relay sees it. Retransmissions (RTX) are dropped at the same rate."""
    rng = random.Random(seed)
    counts = {"rtp": 0, "dropped": 0}
    ice: Any = pc.getTransceivers()[0].sender.transport.transport
    original = ice._send  # aiortc's DTLS transport sends every packet through this

    async def lossy(data: bytes) -> None:
        if len(data) > 1 and 127 < data[0] < 192 and not 192 <= data[1] <= 223:
            counts["rtp"] += 1
            if rng.random() < ratio:
                counts["dropped"] += 1
                return
        await original(data)

    ice._send = lossy
    return counts
