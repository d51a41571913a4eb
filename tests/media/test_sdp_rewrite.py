"""Rejected m-lines in what the relay sends, on an SDP aiortc made (sans-IO)."""

from __future__ import annotations

from aiortc import RTCPeerConnection

from relayroom.media.sdp_rewrite import answer_fits_offer, reject_mlines, rejected_mids


async def _offer() -> str:
    pc = RTCPeerConnection()
    pc.addTransceiver("audio", direction="sendonly")
    pc.addTransceiver("video", direction="sendonly")
    pc.addTransceiver("video", direction="sendonly")
    sdp: str = (await pc.createOffer()).sdp
    await pc.close()
    return sdp


async def test_a_rejected_mline_has_port_0_and_leaves_the_bundle_group() -> None:
    sdp = await _offer()
    assert "a=group:BUNDLE 0 1 2" in sdp and rejected_mids(sdp) == set()
    out = reject_mlines(sdp, {"1"})
    assert rejected_mids(out) == {"1"}
    assert "a=group:BUNDLE 0 2\r\n" in out
    section = out.split("a=mid:1")[0].rsplit("m=", 1)[1]
    assert section.startswith("video 0 ")
    assert answer_fits_offer(sdp, out)
    assert not answer_fits_offer(
        sdp, reject_mlines(sdp, {"0", "1", "2"}).replace("m=video", "m=audio")
    )


def test_bundle_only_port_0_is_not_rejected() -> None:
    sdp = (
        "v=0\r\no=- 1 1 IN IP4 0.0.0.0\r\ns=-\r\nt=0 0\r\na=group:BUNDLE 0 1\r\n"
        "m=audio 9 UDP/TLS/RTP/SAVPF 111\r\na=mid:0\r\n"
        "m=video 0 UDP/TLS/RTP/SAVPF 96\r\na=mid:1\r\na=bundle-only\r\n"
        "m=video 0 UDP/TLS/RTP/SAVPF 96\r\na=mid:2\r\n"
    )
    assert rejected_mids(sdp) == {"2"}
