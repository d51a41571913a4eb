"""The compiled forwarding step (media/_fastpath.c) against the Python one it replaces."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path
from typing import Any

import pylibsrtp
import pytest
from aiortc.rtcdtlstransport import State as DtlsState
from hypothesis import given, settings
from hypothesis import strategies as st
from pylibsrtp import Policy, Session

from relayroom.media.aiortc_hooks import DirectRtpSender, fast_sender, srtp_function
from relayroom.media.rtp_build import FastSender, build_rtp, compiled_build_rtp
from tests.media.conftest import Harness, loopback_settings
from tests.support.polling import eventually

KEY = bytes(range(30))
ROOT = Path(__file__).resolve().parents[2]


def test_the_compiled_step_is_built() -> None:
    # CI installs with a C compiler: a missing module would silently test only Python here.
    assert compiled_build_rtp is not None and FastSender is not None


def _vp8_payloads() -> st.SearchStrategy[bytes]:
    """Payloads that start with a VP8 descriptor: X, I (7 or 15 bits), L, T/K in any mix."""
    return st.tuples(
        st.sampled_from([0x80, 0x90, 0x10, 0x00]),
        st.integers(0, 255),
        st.binary(min_size=0, max_size=60),
    ).map(lambda t: bytes((t[0], t[1])) + t[2])


_parts = st.tuples(
    st.integers(0, 255),  # b0
    st.integers(0, 255),  # b1
    st.integers(0, 0xFFFF),
    st.integers(0, 0xFFFFFFFF),
    st.integers(0, 0xFFFFFFFF),
    st.lists(st.integers(0, 0xFFFFFFFF), max_size=15),
    st.binary(max_size=40),
    st.binary(max_size=8),
    st.binary(max_size=4),
    st.one_of(st.binary(max_size=1400), _vp8_payloads()),
    st.integers(0, 255),
    st.one_of(st.none(), st.integers(0, 0x7FFFFF)),  # the VP8 descriptor shift
)


@settings(max_examples=300, deadline=None)
@given(_parts)
def test_both_builders_make_the_same_bytes(parts: tuple) -> None:
    assert compiled_build_rtp is not None
    assert compiled_build_rtp(*parts) == build_rtp(*parts)


def test_out_of_range_parts_are_refused_not_truncated() -> None:
    build: Any = compiled_build_rtp
    ok: list[Any] = [0x80, 96, 1, 2, 3, [], b"", b"", b"", b"x", 0, None]
    for at, bad in [(0, 256), (2, 0x10000), (3, 1 << 32), (4, -1), (10, 256), (11, 1 << 23)]:
        with pytest.raises((ValueError, OverflowError)):
            build(*ok[:at], bad, *ok[at + 1 :])
    with pytest.raises(ValueError):
        build(*ok[:5], list(range(16)), *ok[6:])  # CSRCs
    with pytest.raises(ValueError):
        build(*ok[:5], [1 << 32], *ok[6:])
    with pytest.raises(TypeError):
        build(*ok[:9], "text", *ok[10:])  # payload


class _Dtls:
    """What FastSender reads of an RTCDtlsTransport: its state."""

    def __init__(self) -> None:
        self._state = DtlsState.CONNECTED


def _sender_and_sink(dtls: _Dtls) -> tuple[FastSender, socket.socket, Session, Session]:
    sink = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sink.bind(("127.0.0.1", 0))
    sink.settimeout(2)
    out = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    out.bind(("127.0.0.1", 0))
    tx = Session(Policy(key=KEY, ssrc_type=Policy.SSRC_ANY_OUTBOUND))
    rx = Session(Policy(key=KEY, ssrc_type=Policy.SSRC_ANY_INBOUND))
    sender = fast_sender(tx, out.fileno(), sink.getsockname(), dtls)
    out.close()  # the sender holds its own duplicate of the socket
    return sender, sink, tx, rx


def test_emit_keeps_the_packet_and_sends_it_protected() -> None:
    dtls = _Dtls()
    sender, sink, _tx, rx = _sender_and_sink(dtls)
    history: dict[int, bytes] = {}
    sent = []
    for seq in range(1000, 1005):
        parts = (0x90, 0xE0, seq, 90000 + seq, 0xCAFE, [7], b"\xbe\xde\x00\x01", b"\x10a", b"\0\0")
        assert sender.emit(history, seq % 128, *parts, os.urandom(900), 3, None)
        sent.append(history[seq % 128])
        wire = sink.recv(2048)
        assert wire != sent[-1]  # protected on the wire
        assert rx.unprotect(wire) == sent[-1]
    assert sent[0][:4] == b"\x90\xe0\x03\xe8" and sent[0][-1] == 3
    assert (sender.packets, sender.dropped) == (5, 0)
    assert sender.octets == 5 * (len(sent[0]) + 10)  # the 10-byte HMAC-SHA1-80 tag


def test_the_compiled_unprotect_reads_what_was_protected_and_refuses_forgeries() -> None:
    sender, sink, _tx, rx = _sender_and_sink(_Dtls())
    unprotect = srtp_function(rx, protect=False, compiled=True)
    assert type(unprotect).__name__ == "Unprotector"
    history: dict[int, bytes] = {}
    for seq in range(7, 10):
        sender.emit(history, seq, 0x80, 96, seq, 1, 2, [], b"", b"", b"", b"media", 0, None)
        wire = sink.recv(2048)
        assert unprotect(wire) == history[seq]
    with pytest.raises(pylibsrtp.Error):
        unprotect(wire)  # a replay
    forged = bytearray(wire)
    forged[3] ^= 1
    forged[-1] ^= 0xFF
    with pytest.raises(pylibsrtp.Error):
        unprotect(bytes(forged))
    with pytest.raises(ValueError):
        unprotect(bytes(5000))


def test_a_closed_transport_or_a_huge_packet_raises_and_sends_nothing() -> None:
    dtls = _Dtls()
    sender, sink, _tx, _rx = _sender_and_sink(dtls)
    with pytest.raises(ValueError, match="too long"):
        sender.send(b"\x80\x60" + bytes(2000))
    dtls._state = DtlsState.CLOSED
    with pytest.raises(ConnectionError):
        sender.send(b"\x80\x60\x00\x01" + bytes(100))
    dtls._state = DtlsState.CONNECTED
    sender.close()
    assert sender.fd == -1
    with pytest.raises(ConnectionError):
        sender.send(b"\x80\x60\x00\x01" + bytes(100))
    sink.settimeout(0.2)
    with pytest.raises(TimeoutError):
        sink.recv(2048)
    assert sender.packets == 0


def test_what_the_kernel_refuses_waits_in_asyncio_in_order_and_beyond_the_bound_is_dropped() -> (
    None
):
    # A veth whose queue drains slowly fills the socket's send buffer: the kernel refuses
    # (EAGAIN). Run in a namespace of its own, where that veth is made.
    probe = subprocess.run(
        ["unshare", "-rn", sys.executable, "-m", "tests.media.overflow_probe"],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=ROOT,
    )
    assert probe.returncode == 0, probe.stderr
    result = json.loads(probe.stdout)
    burst = result["after_burst"]
    assert burst["direct"] >= 1  # until the send buffer was full
    assert burst["queued"] >= 1 and burst["queueing"]  # then behind asyncio's queue ...
    assert burst["dropped"] >= 1  # ... up to its 20 KB bound
    assert burst["direct"] + burst["queued"] + burst["dropped"] == result["burst"]
    assert burst["asyncio_buffer"] > 0
    # Drained: the next packet still goes through asyncio (it cannot know sooner), the one
    # after straight to the socket.
    assert result["queueing_after_drain"] is False
    assert result["direct_after_drain"] == 1


def _direct_senders(harness: Harness) -> list[DirectRtpSender]:
    senders = []
    for participant in harness.room.participants.values():
        for hub in participant.published_hubs():
            for leg in hub.legs:
                assert leg.tap is not None
                senders.append(leg.tap.sender.transport._relayroom_direct)
    return senders


@pytest.mark.slow
@pytest.mark.parametrize("fast_path", [True, False])
async def test_a_call_forwards_on_either_path(fast_path: bool) -> None:
    harness = Harness(loopback_settings(fast_path=fast_path))
    try:
        await harness.publisher("alice")
        viewer = await harness.subscriber("bob")
        assert await eventually(
            lambda: bool(viewer.video_tracks()) and len(viewer.video_tracks()[0].frames) >= 30,
            15,
        )
        counters = viewer.video_tracks()[0].counters()
        assert counters == sorted(counters) and len(set(counters)) == len(counters)
        assert len(viewer.audio_tracks()[0].frames) > 20
        (direct,) = set(_direct_senders(harness))  # bob's transport, for audio and video
        assert (direct._fast is not None) == fast_path
        assert direct.packets > 100
    finally:
        await harness.close()
