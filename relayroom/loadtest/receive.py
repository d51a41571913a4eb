"""A load-test subscriber's receive path: RTP headers read in the clear, payloads rarely decrypted.

A load generator on the same cores as the server it measures must cost much less per received
packet than the server costs per forwarded one, or it saturates first and measures itself.
aiortc's receive path (and even the relay's own direct path) unprotects, parses and routes
every packet. But SRTP encrypts only the payload: the RTP header (sequence number, timestamp,
marker, SSRC) travels in the clear, and it is all the probe needs for loss, duplicates, frame
completeness and arrival times. So once a stream's SSRC is known (its first packets take the
full path, which also binds it), each packet costs a header unpack, the probe and the
receiver's bookkeeping for receiver reports and NACKs; the payload is decrypted (and so
authenticated) only where it is needed: the first packet of each video frame, for VP8's
start bit, and one audio packet in `AUDIO_SAMPLE`, to prove the stream decrypts. RTCP
(sender reports, for latency), retransmissions (RTX) and unknown SSRCs take the full path.
"""

from __future__ import annotations

import logging
import struct
import time
from collections.abc import Callable

import pylibsrtp
from aiortc import RTCDtlsTransport
from aiortc.rtp import RtpPacket

from relayroom.loadtest.probe import StreamProbe
from relayroom.media.aiortc_hooks import ReceiverTap, SrtpReceivePath

AUDIO_SAMPLE = 50  # decrypt one audio packet in this many (one a second at 20 ms packets)
DEFAULT_TAG = 10  # SRTP authentication tag of AES_CM_128_HMAC_SHA1_80, until one is measured
_HEADER = struct.Struct("!BBHLL")

FrameStart = Callable[[bytes], bool]
logger = logging.getLogger(__name__)


class FastStream:
    """One media SSRC read header-only: where its packets go and what is known about them."""

    __slots__ = (
        "frame_start",
        "header",
        "last_timestamp",
        "n",
        "payload_type",
        "probe",
        "tag",
        "tap",
    )

    def __init__(
        self,
        tap: ReceiverTap,
        probe: StreamProbe,
        payload_type: int,
        frame_start: FrameStart | None,
    ) -> None:
        self.tap = tap
        self.probe = probe
        self.payload_type = payload_type
        self.frame_start = frame_start
        self.last_timestamp = -1
        self.tag = DEFAULT_TAG
        self.n = 0
        # One packet object per stream, refilled with each header: the bookkeeping keeps none.
        self.header = RtpPacket(payload_type=payload_type)


def _payload_offset(data: bytes) -> int:
    """Where the payload starts in an RTP packet (after CSRCs and header extensions)."""
    pos = 12 + 4 * (data[0] & 0x0F)
    if data[0] & 0x10 and len(data) >= pos + 4:
        pos += 4 + 4 * ((data[pos + 2] << 8) | data[pos + 3])
    return pos


class ProbeReceivePath(SrtpReceivePath):
    """:class:`SrtpReceivePath` with a header-only fast path for registered media SSRCs."""

    def __init__(self, dtls: RTCDtlsTransport) -> None:
        super().__init__(dtls)
        self._streams: dict[int, FastStream] = {}
        self.fast_packets = 0
        """RTP packets read header-only."""
        self.decrypted = 0
        """Of those, packets whose payload was decrypted (and authenticated)."""
        self.rejected = 0
        """Packets whose decryption failed (not authentic): dropped, like aiortc does."""

    def add_stream(self, ssrc: int, stream: FastStream) -> None:
        stream.header.ssrc = ssrc
        self._streams[ssrc] = stream

    def has_stream(self, ssrc: int) -> bool:
        return ssrc in self._streams

    def handle(self, data: bytes) -> bool:
        size = len(data)
        if size < 12 or 191 < data[1] < 209:  # RTCP: the full path
            return super().handle(data)
        b0, b1, seq, timestamp, ssrc = _HEADER.unpack_from(data)
        stream = self._streams.get(ssrc)
        if stream is None or b1 & 0x7F != stream.payload_type or b0 >> 6 != 2:
            return super().handle(data)
        now = time.time()
        start: bool | None = None
        frame_start = stream.frame_start
        if frame_start is not None:
            if timestamp != stream.last_timestamp:  # a new frame's first packet to arrive
                payload = self._decrypt(data, stream)
                if payload is None:
                    return True
                start = frame_start(payload)
            else:
                start = False
            stream.last_timestamp = timestamp
        else:
            stream.n += 1
            if stream.n % AUDIO_SAMPLE == 1 and self._decrypt(data, stream) is None:
                return True
        self.fast_packets += 1
        marker = b1 >> 7
        try:
            stream.probe.on_packet(
                seq, timestamp, bool(marker), size - _payload_offset(data) - stream.tag, now, start
            )
            # The receiver's statistics (receiver reports) and NACK generator read headers.
            packet = stream.header
            packet.marker = marker
            packet.sequence_number = seq
            packet.timestamp = timestamp
            nack = stream.tap.account(packet)
        except Exception:  # never let a check break the socket's callback
            self.errors += 1
            if self.errors == 1 or self.errors % 1000 == 0:
                logger.exception("checking a received packet failed (%d so far)", self.errors)
            return True
        if nack is not None:
            self._run(nack)
        return True

    def _decrypt(self, data: bytes, stream: FastStream) -> bytes | None:
        """The packet's payload, decrypted; None (counted) when it is not authentic."""
        try:
            plain = self._unprotect(data)
        except (pylibsrtp.Error, ValueError):
            self.rejected += 1
            return None
        self.decrypted += 1
        stream.tag = len(data) - len(plain)
        return plain[_payload_offset(plain) :]
