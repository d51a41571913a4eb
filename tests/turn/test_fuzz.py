"""Fuzzing: the codec raises nothing but StunError, and hostile datagrams never hurt the server.

The codec fuzz runs for RELAYROOM_FUZZ_SECONDS (default 60, what CI runs; lower it locally).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import random
import struct
import time

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from relayroom.turn.codec import (
    Attr,
    MessageClass,
    Method,
    StreamFramer,
    StunError,
    check_integrity,
    encode_channel_data,
    encode_message,
    parse_channel_data,
    parse_message,
)
from tests.turn.conftest import ClientFactory, ServerFactory
from tests.turn.helpers import UdpSink
from tests.turn.samples import (
    SAMPLE_IPV4_RESPONSE,
    SAMPLE_IPV6_RESPONSE,
    SAMPLE_LONG_TERM_REQUEST,
    SAMPLE_REQUEST,
)

FUZZ_SECONDS = float(os.environ.get("RELAYROOM_FUZZ_SECONDS", "60"))

SEEDS = [
    SAMPLE_REQUEST,
    SAMPLE_IPV4_RESPONSE,
    SAMPLE_IPV6_RESPONSE,
    SAMPLE_LONG_TERM_REQUEST,
    encode_message(
        Method.CHANNEL_BIND,
        MessageClass.REQUEST,
        bytes(12),
        [(Attr.CHANNEL_NUMBER, 0x4000), (Attr.XOR_PEER_ADDRESS, ("2001:db8::1", 5))],
        key=b"k",
        sha256=True,
        fingerprint=True,
    ),
    encode_channel_data(0x4001, b"payload", pad=True),
]
ATTRIBUTE_TYPES = [int(a) for a in Attr] + [0x0000, 0x7FFF, 0xFFFF]


def exercise(data: bytes) -> None:
    """Every entry point a packet can reach; only StunError may come out."""
    try:
        message = parse_message(data)
    except StunError:
        pass
    else:
        check_integrity(message, b"key")
        message.unknown_required()
    with contextlib.suppress(StunError):
        parse_channel_data(data)
    framer = StreamFramer()
    try:
        for i in range(0, len(data), 7):
            for frame in framer.feed(data[i : i + 7]):
                assert len(frame) >= 4
    except StunError:
        pass


@st.composite
def mutated_seed(draw: st.DrawFn) -> bytes:
    data = bytearray(draw(st.sampled_from(SEEDS)))
    for _ in range(draw(st.integers(1, 6))):
        op = draw(st.integers(0, 3))
        if op == 0 and data:
            i = draw(st.integers(0, len(data) - 1))
            data[i] ^= 1 << draw(st.integers(0, 7))
        elif op == 1:
            data = data[: draw(st.integers(0, len(data)))]
        elif op == 2 and len(data) >= 4:
            struct.pack_into("!H", data, 2, draw(st.integers(0, 0xFFFF)))
        else:
            data += draw(st.binary(max_size=16))
    return bytes(data)


@st.composite
def attribute_soup(draw: st.DrawFn) -> bytes:
    """A valid header (so the attribute parser runs) over random TLVs with plausible types."""
    body = b""
    for _ in range(draw(st.integers(0, 8))):
        attr_type = draw(st.sampled_from(ATTRIBUTE_TYPES))
        value = draw(st.binary(max_size=40))
        declared = draw(st.one_of(st.just(len(value)), st.integers(0, 64)))
        body += struct.pack("!HH", attr_type, declared) + value + bytes(-len(value) % 4)
    if draw(st.booleans()):
        body = body[: len(body) - len(body) % 4]
    msg_type = draw(st.integers(0, 0x3FFF))
    length = draw(st.one_of(st.just(len(body)), st.integers(0, 0xFFFF)))
    return (
        struct.pack("!HHI", msg_type, length, 0x2112A442)
        + draw(st.binary(min_size=12, max_size=12))
        + body
    )


PACKETS = st.one_of(st.binary(max_size=120), mutated_seed(), attribute_soup())


@settings(
    max_examples=1000,
    deadline=None,
    database=None,
    suppress_health_check=list(HealthCheck),
)
@given(PACKETS)
def fuzz_round(data: bytes) -> None:
    exercise(data)


@pytest.mark.slow
def test_codec_raises_only_stun_error_under_fuzzing() -> None:
    deadline = time.monotonic() + FUZZ_SECONDS
    rounds = 0
    while time.monotonic() < deadline:
        fuzz_round()
        rounds += 1
    assert rounds >= 1


def feed_all(chunks: list[bytes]) -> tuple[list[bytes], bytes] | None:
    """Frames emitted and bytes left pending after feeding every chunk; None on StunError."""
    framer = StreamFramer()
    frames: list[bytes] = []
    try:
        for chunk in chunks:
            frames += framer.feed(chunk)
    except StunError:
        return None
    return frames, framer.pending


@pytest.mark.slow
@settings(max_examples=300, deadline=None, database=None, suppress_health_check=list(HealthCheck))
@given(st.lists(PACKETS, min_size=1, max_size=20), st.data())
def test_stream_framer_keeps_every_byte_accounted(
    packets: list[bytes], data: st.DataObject
) -> None:
    """Frames plus pending bytes are exactly the stream, in order, however it is cut."""
    stream = b"".join(packets)
    cuts = sorted(data.draw(st.lists(st.integers(0, len(stream)), max_size=8)))
    chunks = [stream[a:b] for a, b in zip([0, *cuts], [*cuts, len(stream)], strict=True)]
    whole, chunked = feed_all([stream]), feed_all(chunks)
    assert (whole is None) == (chunked is None)
    if whole is None or chunked is None:
        return
    assert chunked == whole
    frames, pending = whole
    assert b"".join(frames) + pending == stream
    for frame in frames:
        length = int.from_bytes(frame[2:4], "big")
        assert len(frame) in (20 + length, 4 + length + (-length % 4))


async def test_hostile_datagrams_leave_server_working_and_quiet(
    make_server: ServerFactory,
    make_client: ClientFactory,
    sink: UdpSink,
    caplog: pytest.LogCaptureFixture,
) -> None:
    server = await make_server()
    attacker = await make_client(server)
    tcp_attacker = await make_client(server, "tcp")
    rng = random.Random(1234)
    with caplog.at_level(logging.DEBUG, logger="relayroom.turn"):
        for i in range(3000):
            seed = bytearray(SEEDS[i % len(SEEDS)])
            for _ in range(3):
                if seed:
                    seed[rng.randrange(len(seed))] ^= 1 << rng.randrange(8)
            attacker.send_raw(bytes(seed))
            if i % 100 == 0:
                await asyncio.sleep(0)
        tcp_attacker.send_raw(bytes(rng.randrange(256) for _ in range(4000)))
        await asyncio.sleep(0.3)
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert not [r for r in caplog.records if r.exc_info]
    # At most one log line per second per source: 3000 packets from one host, well under 5 lines.
    assert len([r for r in caplog.records if "malformed" in r.getMessage()]) <= 3
    client = await make_client(server)
    await client.allocate()
    await client.create_permission(sink.address)
    client.send_indication(sink.address, b"still works")
    await sink.wait()
