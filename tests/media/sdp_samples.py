"""Real client offers for SDP tests, made by an aiortc peer."""

from __future__ import annotations

from pathlib import Path

from aiortc import RTCRtpSender
from aiortc.mediastreams import AudioStreamTrack

from relayroom.media.aiortc_hooks import configure_ice
from tests.media.client import LOOPBACK, StampedVideoTrack, client_pc


async def client_offer(*, video: int = 1, audio: int = 1, codec: str | None = None) -> str:
    """An offer with ``video`` sendonly video and ``audio`` sendonly audio m-lines."""
    pc = client_pc()
    try:
        for _ in range(video):
            t = pc.addTransceiver(StampedVideoTrack(), direction="sendonly")
            if codec is not None:
                t.setCodecPreferences(
                    [
                        c
                        for c in RTCRtpSender.getCapabilities("video").codecs
                        if c.mimeType.lower() in (f"video/{codec.lower()}", "video/rtx")
                    ]
                )
        for _ in range(audio):
            pc.addTransceiver(AudioStreamTrack(), direction="sendonly")
        configure_ice(pc, LOOPBACK)
        await pc.setLocalDescription(await pc.createOffer())
        sdp: str = pc.localDescription.sdp
        return sdp
    finally:
        await pc.close()


def without_lines(sdp: str, prefix: str) -> str:
    return "".join(line for line in sdp.splitlines(keepends=True) if not line.startswith(prefix))


def with_candidates(sdp: str, *addresses: str) -> str:
    """Add host candidates for ``addresses`` after the first m-line's candidates."""
    lines = sdp.splitlines(keepends=True)
    out: list[str] = []
    added = False
    for line in lines:
        if not added and line.startswith("a=end-of-candidates"):
            for i, address in enumerate(addresses):
                out.append(f"a=candidate:9{i} 1 udp 2130706431 {address} {40000 + i} typ host\r\n")
            added = True
        out.append(line)
    return "".join(out)


SAMPLES = Path(__file__).resolve().parent / "samples"


def firefox_max_bundle_offer() -> str:
    """A real offer of Firefox 153 ESR with ``bundlePolicy: "max-bundle"``: a DataChannel, audio
    and video, the video and application m-lines with port 0 and ``a=bundle-only``."""
    text = (SAMPLES / "firefox-153esr-max-bundle-offer.sdp").read_text()
    return text.replace("\n", "\r\n")
