"""A one-track Matroska/WebM writer for encoded frames (no decoding, no encoding).

Written for recordings that must survive a crash: the Segment has an unknown size, each Cluster is
built in memory and written whole with one ``write`` call once it is closed (at most
``cluster_ms`` of media, or at a video keyframe), and nothing needs a seek-back to be readable.
A file cut anywhere (kill -9, disk full) plays up to its last complete cluster. The only
seek-back is optional: ``close()`` fills in the Duration of the Info element.

EBML element ids and layout: RFC 9559 (Matroska) and the WebM subset.
"""

from __future__ import annotations

import contextlib
import struct
from typing import BinaryIO

TIMESTAMP_SCALE_NS = 1_000_000  # block times in milliseconds
_UNKNOWN_SIZE = b"\x01\xff\xff\xff\xff\xff\xff\xff"

CODEC_IDS = {"vp8": "V_VP8", "h264": "V_MPEG4/ISO/AVC", "opus": "A_OPUS"}


def _vint(value: int) -> bytes:
    """An EBML variable-size integer (element data sizes)."""
    for length in range(1, 9):
        if value < (1 << (7 * length)) - 1:
            return (value | (1 << (7 * length))).to_bytes(length, "big")
    raise ValueError("element too large")


def _element(element_id: int, payload: bytes) -> bytes:
    return (
        element_id.to_bytes((element_id.bit_length() + 7) // 8, "big")
        + _vint(len(payload))
        + payload
    )


def _uint(element_id: int, value: int) -> bytes:
    return _element(element_id, value.to_bytes(max(1, (value.bit_length() + 7) // 8), "big"))


def _float(element_id: int, value: float) -> bytes:
    return _element(element_id, struct.pack(">d", value))


def _text(element_id: int, value: str) -> bytes:
    return _element(element_id, value.encode())


def opus_head(channels: int = 2, sample_rate: int = 48000) -> bytes:
    """The Opus identification header Matroska stores as CodecPrivate (RFC 7845 5.1)."""
    return b"OpusHead" + struct.pack("<BBHIhB", 1, channels, 0, sample_rate, 0, 0)


def avc_config(sps: bytes, pps: bytes) -> bytes:
    """An AVCDecoderConfigurationRecord (ISO/IEC 14496-15) from one SPS and one PPS."""
    if len(sps) < 4:
        raise ValueError("SPS too short")
    return (
        bytes((1, sps[1], sps[2], sps[3], 0xFF, 0xE1))
        + len(sps).to_bytes(2, "big")
        + sps
        + b"\x01"
        + len(pps).to_bytes(2, "big")
        + pps
    )


def annexb_to_avc(frame: bytes) -> bytes:
    """4-byte start codes to 4-byte lengths (how Matroska stores H264 NAL units)."""
    units = [u for u in frame.split(b"\x00\x00\x00\x01") if u]
    return b"".join(len(u).to_bytes(4, "big") + u for u in units)


class MatroskaWriter:
    """Writes one audio or video track into ``file`` (a binary file open for writing, seekable
    only if the Duration should be filled in at close)."""

    def __init__(
        self,
        file: BinaryIO,
        *,
        codec: str,
        webm: bool,
        width: int = 0,
        height: int = 0,
        codec_private: bytes = b"",
        cluster_ms: int = 1000,
        title: str = "",
    ) -> None:
        codec = codec.lower()
        if codec not in CODEC_IDS:
            raise ValueError(f"no Matroska mapping for codec {codec!r}")
        self._file = file
        self._codec = codec
        self._video = codec != "opus"
        self._cluster_ms = max(100, min(cluster_ms, 30000))  # block offsets are 16-bit ms
        self._cluster: list[bytes] = []
        self._cluster_start = 0
        self._last_ms = 0
        self._first_ms: int | None = None
        self.bytes_written = 0
        self.frames = 0
        header = _element(
            0x1A45DFA3,
            _uint(0x4286, 1)
            + _uint(0x42F7, 1)
            + _uint(0x42F2, 4)
            + _uint(0x42F3, 8)
            + _text(0x4282, "webm" if webm else "matroska")
            + _uint(0x4287, 4)
            + _uint(0x4285, 2),
        )
        segment = b"\x18\x53\x80\x67" + _UNKNOWN_SIZE
        info_body = (
            _uint(0x2AD7B1, TIMESTAMP_SCALE_NS)
            + _text(0x4D80, "relayroom")
            + _text(0x5741, "relayroom")
            + (_text(0x7BA9, title) if title else b"")
        )
        duration = _float(0x4489, 0.0)
        info = _element(0x1549A966, info_body + duration)
        # Where the Duration's 8 value bytes sit, to fill in at close.
        self._duration_at = len(header) + len(segment) + len(info) - 8
        track = _uint(0xD7, 1) + _uint(0x73C5, 1) + _uint(0x9C, 0)
        track += _uint(0x83, 1 if self._video else 2) + _text(0x86, CODEC_IDS[codec])
        if codec_private:
            track += _element(0x63A2, codec_private)
        if self._video:
            track += _element(0xE0, _uint(0xB0, width) + _uint(0xBA, height))
        else:
            track += _uint(0x56BB, 80_000_000)  # SeekPreRoll: Opus needs 80 ms to converge
            track += _element(0xE1, _float(0xB5, 48000.0) + _uint(0x9F, 2))
        tracks = _element(0x1654AE6B, _element(0xAE, track))
        self._write(header + segment + info + tracks)

    def _write(self, data: bytes) -> None:
        try:
            written = self._file.write(data)
            if written is not None and written != len(data):
                raise OSError(f"short write ({written} of {len(data)} bytes): disk full?")
        except OSError:
            # Cut what part of the cluster went out, so the file ends on a whole cluster.
            with contextlib.suppress(OSError):
                self._file.truncate(self.bytes_written)
            raise
        self.bytes_written += len(data)

    def add(self, data: bytes, ms: int, keyframe: bool) -> None:
        """One frame at ``ms`` milliseconds. Times must increase: a frame at or before the one
        written last (sources can stamp two frames within a millisecond) goes 1 ms after it."""
        if self._first_ms is None:
            self._first_ms = ms
        elif ms <= self._last_ms:
            ms = self._last_ms + 1
        if self._cluster and (
            ms - self._cluster_start >= self._cluster_ms or (keyframe and self._video)
        ):
            self.flush()
        if not self._cluster:
            self._cluster_start = ms
            self._cluster.append(_uint(0xE7, ms))
        if self._codec == "h264":
            data = annexb_to_avc(data)
        block = b"\x81" + struct.pack(">hB", ms - self._cluster_start, 0x80 if keyframe else 0)
        self._cluster.append(b"\xa3" + _vint(len(block) + len(data)) + block + data)
        self._last_ms = ms
        self.frames += 1

    @property
    def pending_bytes(self) -> int:
        """Bytes of the open cluster, not yet written."""
        return sum(len(part) for part in self._cluster)

    def flush(self) -> None:
        """Write the open cluster (one ``write`` call)."""
        if self._cluster:
            body = b"".join(self._cluster)
            self._cluster = []
            self._write(b"\x1f\x43\xb6\x75" + _vint(len(body)) + body)

    @property
    def duration_ms(self) -> int:
        return 0 if self._first_ms is None else self._last_ms - self._first_ms

    def close(self) -> None:
        """Write the open cluster and, on a seekable file, the Duration; does not close ``file``."""
        self.flush()
        if self._first_ms is None:
            return
        # The duration runs to the end of the last frame: one more frame interval (20 ms of
        # Opus, or the video's average frame interval).
        frames = max(1, self.frames - 1)
        tail = 20 if not self._video else self.duration_ms / frames
        end = self._last_ms + tail
        try:
            if not self._file.seekable():
                return
            self._file.seek(self._duration_at)
            self._file.write(struct.pack(">d", float(end)))
            self._file.seek(0, 2)
        except OSError:
            return  # the file is still valid, only without a Duration
