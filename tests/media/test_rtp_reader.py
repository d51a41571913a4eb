"""RtpReader parses exactly as aiortc's RtpPacket.parse does, faster."""

from __future__ import annotations

import struct

import pytest
from aiortc.rtcrtpparameters import RTCRtpHeaderExtensionParameters, RTCRtpParameters
from aiortc.rtp import HeaderExtensionsMap, RtpPacket
from hypothesis import given, settings
from hypothesis import strategies as st

from relayroom.media.aiortc_hooks import RtpReader
from relayroom.media.rtp_build import compiled_parse_rtp

URIS = [
    "urn:ietf:params:rtp-hdrext:sdes:mid",
    "http://www.webrtc.org/experiments/rtp-hdrext/abs-send-time",
    "urn:ietf:params:rtp-hdrext:ssrc-audio-level",
    "urn:ietf:params:rtp-hdrext:sdes:rtp-stream-id",
    "urn:ietf:params:rtp-hdrext:sdes:repaired-rtp-stream-id",
    "urn:ietf:params:rtp-hdrext:toffset",
    "http://www.ietf.org/id/draft-holmer-rmcat-transport-wide-cc-extensions-01",
]


def extensions_map(ids: list[int]) -> HeaderExtensionsMap:
    ext = HeaderExtensionsMap()
    ext.configure(
        RTCRtpParameters(
            headerExtensions=[
                RTCRtpHeaderExtensionParameters(id=i, uri=u)
                for i, u in zip(ids, URIS, strict=False)
            ]
        )
    )
    return ext


def fields(packet: RtpPacket) -> tuple[object, ...]:
    return (
        packet.version,
        packet.marker,
        packet.payload_type,
        packet.sequence_number,
        packet.timestamp,
        packet.ssrc,
        packet.csrc,
        packet.extensions,
        packet.payload,
        packet.padding_size,
    )


def aiortc_parse(
    data: bytes, ext: HeaderExtensionsMap, *, exact: bool = True
) -> tuple[object, ...] | str:
    try:
        return fields(RtpPacket.parse(data, ext))
    except (ValueError, struct.error, UnicodeDecodeError) as exc:
        return type(exc).__name__ if exact else "refused"


def reader_parse(reader: RtpReader, data: bytes, *, exact: bool = True) -> tuple[object, ...] | str:
    try:
        return fields(reader.parse(data))
    except (ValueError, struct.error, UnicodeDecodeError) as exc:
        return type(exc).__name__ if exact else "refused"


@st.composite
def rtp_packets(draw: st.DrawFn) -> bytes:
    """Valid-looking RTP, with random CSRCs, one-byte extensions, padding and corruption."""
    ids = draw(st.lists(st.integers(1, 14), min_size=0, max_size=4))
    elements = b""
    for x_id in ids:
        value = draw(st.binary(min_size=1, max_size=4))
        elements += bytes([(x_id << 4) | (len(value) - 1)]) + value
        elements += b"\x00" * draw(st.integers(0, 1))
    elements += b"\x00" * (-len(elements) % 4)
    cc = draw(st.integers(0, 2))
    padding = draw(st.integers(0, 3))
    b0 = 0x80 | cc | (0x10 if ids else 0) | (0x20 if padding else 0)
    header = struct.pack(
        "!BBHLL", b0, draw(st.integers(0, 255)), draw(st.integers(0, 0xFFFF)), 7, 9
    )
    header += b"".join(struct.pack("!L", draw(st.integers(0, 2**32 - 1))) for _ in range(cc))
    if ids:
        header += struct.pack("!HH", draw(st.sampled_from([0xBEDE, 0x1000])), len(elements) // 4)
        header += elements
    data = header + draw(st.binary(max_size=20))
    if padding:
        data += b"\x00" * (padding - 1) + bytes([padding])
    cut = draw(st.integers(0, len(data)))
    return data if draw(st.booleans()) else data[:cut]


@settings(max_examples=400, deadline=None)
@given(data=rtp_packets(), ids=st.permutations(list(range(1, 8))))
def test_reader_matches_aiortc(data: bytes, ids: list[int]) -> None:
    ext = extensions_map(ids)
    assert reader_parse(RtpReader(ext, compiled=False), data) == aiortc_parse(data, ext)


@settings(max_examples=400, deadline=None)
@given(data=rtp_packets(), ids=st.permutations(list(range(1, 8))))
def test_compiled_reader_matches_aiortc(data: bytes, ids: list[int]) -> None:
    # The same packets; what aiortc refuses with struct.error (an extension of the wrong
    # size) the compiled parser refuses with ValueError: the receive path drops both.
    assert compiled_parse_rtp is not None, "the compiled step is not built"
    ext = extensions_map(ids)
    assert reader_parse(RtpReader(ext), data, exact=False) == aiortc_parse(data, ext, exact=False)


@pytest.mark.parametrize("compiled", [True, False])
def test_reader_follows_a_renegotiated_extension_map(compiled: bool) -> None:
    ext = extensions_map([1, 2])
    reader = RtpReader(ext, compiled=compiled)
    packet = RtpPacket(payload_type=96, sequence_number=1, timestamp=2, ssrc=3, payload=b"p")
    packet.extensions.mid = "a"
    assert reader.parse(packet.serialize(ext)).extensions.mid == "a"
    ext.configure(
        RTCRtpParameters(headerExtensions=[RTCRtpHeaderExtensionParameters(id=5, uri=URIS[0])])
    )
    assert reader.parse(packet.serialize(ext)).extensions.mid == "a"  # id 5 now


@pytest.mark.parametrize("compiled", [True, False])
@pytest.mark.parametrize("data", [b"", b"\x80" * 11, b"\x40" + b"\x00" * 20])
def test_reader_refuses_what_is_not_rtp(data: bytes, compiled: bool) -> None:
    with pytest.raises(ValueError):
        RtpReader(extensions_map([1]), compiled=compiled).parse(data)
