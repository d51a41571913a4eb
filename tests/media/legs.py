"""Shared pieces of the leg tests: VP8 payloads and a tap that records what a leg sends."""

from __future__ import annotations

from relayroom.media.forwarding import URI_ABS_SEND_TIME, URI_MID
from relayroom.media.rtp_history import RtpHistory

# VP8 payload descriptors + the first bytes of a frame: a keyframe's start, a delta frame's
# start, and a continuation packet.
KEY = bytes([0x10, 0x00, 0x9D, 0x01, 0x2A]) + b"k" * 20
DELTA = bytes([0x10, 0x01]) + b"d" * 20
CONT = bytes([0x00, 0x00]) + b"c" * 20


class FakeTap:
    def __init__(self) -> None:
        self.ssrc = 0x5151
        self.payload_type = 120
        self.history = RtpHistory()
        self.sent: list[bytes] = []
        self.mid = "7"
        self.extension_ids = {URI_MID: 1, URI_ABS_SEND_TIME: 3}
        self.keyframe_requests = 0
        self.nacks = 0
        self.emit_rtp = None

    def send_rtp(self, data: bytes) -> None:
        self.sent.append(data)

    def detach(self) -> None:
        pass
