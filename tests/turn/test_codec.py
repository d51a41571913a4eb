"""The STUN/TURN codec against RFC 5769 test vectors and hand-made edge cases."""

from __future__ import annotations

import os
import struct
from typing import Any

import pytest

from relayroom.turn.codec import (
    Attr,
    ErrorCode,
    MessageClass,
    Method,
    StreamFramer,
    StunError,
    check_integrity,
    encode_channel_data,
    encode_message,
    long_term_key,
    parse_channel_data,
    parse_message,
)
from tests.turn.samples import (
    SAMPLE_IPV4_RESPONSE,
    SAMPLE_IPV6_RESPONSE,
    SAMPLE_LONG_TERM_REQUEST,
    SAMPLE_REQUEST,
)

SHORT_TERM_PASSWORD = b"VOkJxbRl1RmTxUk/WvJxBt"


def test_rfc5769_sample_request_parses_with_valid_integrity() -> None:
    msg = parse_message(SAMPLE_REQUEST)
    assert (msg.method, msg.cls) == (Method.BINDING, MessageClass.REQUEST)
    assert msg.get_str(Attr.SOFTWARE) == "STUN test client"
    assert msg.get_str(Attr.USERNAME) == "evtj:h6vY"
    assert msg.get_int(Attr.PRIORITY) == 0x6E0001FF
    assert check_integrity(msg, SHORT_TERM_PASSWORD)
    assert not check_integrity(msg, b"wrong")


def test_rfc5769_ipv4_response_gives_mapped_address() -> None:
    msg = parse_message(SAMPLE_IPV4_RESPONSE)
    assert msg.cls == MessageClass.SUCCESS
    assert msg.get_address(Attr.XOR_MAPPED_ADDRESS) == ("192.0.2.1", 32853)
    assert check_integrity(msg, SHORT_TERM_PASSWORD)


def test_rfc5769_ipv6_response_gives_mapped_address() -> None:
    msg = parse_message(SAMPLE_IPV6_RESPONSE)
    assert msg.get_address(Attr.XOR_MAPPED_ADDRESS) == (
        "2001:db8:1234:5678:11:2233:4455:6677",
        32853,
    )
    assert check_integrity(msg, SHORT_TERM_PASSWORD)


def test_rfc5769_ipv4_response_is_reencoded_byte_for_byte() -> None:
    msg = parse_message(SAMPLE_IPV4_RESPONSE)
    attrs: list[tuple[int, Any]] = [
        (Attr.SOFTWARE, "test vector"),
        (Attr.XOR_MAPPED_ADDRESS, ("192.0.2.1", 32853)),
    ]
    encoded = encode_message(
        msg.method,
        msg.cls,
        msg.transaction_id,
        attrs,
        key=SHORT_TERM_PASSWORD,
        fingerprint=True,
    )
    # The RFC pads SOFTWARE with spaces; we pad with zeros, so compare the decoded forms.
    assert parse_message(encoded).attributes[:2] == msg.attributes[:2]
    assert check_integrity(parse_message(encoded), SHORT_TERM_PASSWORD)


def test_rfc5769_long_term_vector_verifies_and_reencodes_exactly() -> None:
    msg = parse_message(SAMPLE_LONG_TERM_REQUEST)
    username = "\u30de\u30c8\u30ea\u30c3\u30af\u30b9"
    assert msg.get_str(Attr.USERNAME) == username
    assert msg.get_str(Attr.NONCE) == "f//499k954d6OL34oL9FSTvy64sA"
    assert msg.get_str(Attr.REALM) == "example.org"
    key = long_term_key(username, "example.org", "TheMatrIX")
    assert check_integrity(msg, key)
    again = encode_message(
        Method.BINDING,
        MessageClass.REQUEST,
        msg.transaction_id,
        [
            (Attr.USERNAME, username),
            (Attr.NONCE, "f//499k954d6OL34oL9FSTvy64sA"),
            (Attr.REALM, "example.org"),
        ],
        key=key,
    )
    assert again == SAMPLE_LONG_TERM_REQUEST


def test_sha256_integrity_round_trips() -> None:
    tid = os.urandom(12)
    data = encode_message(
        Method.ALLOCATE,
        MessageClass.REQUEST,
        tid,
        [(Attr.LIFETIME, 600)],
        key=b"k",
        sha256=True,
        fingerprint=True,
    )
    msg = parse_message(data)
    assert msg.integrity_sha256_offset is not None
    assert check_integrity(msg, b"k")
    assert not check_integrity(msg, b"other")


def test_flipped_bit_fails_fingerprint() -> None:
    data = bytearray(SAMPLE_IPV4_RESPONSE)
    data[25] ^= 1
    with pytest.raises(StunError):
        parse_message(bytes(data))


def test_short_lifetime_attribute_raises_stun_error_not_struct_error() -> None:
    # A 28-byte Refresh request whose LIFETIME value is only 2 bytes long (padded to 4).
    data = struct.pack("!HHI", 0x0004, 8, 0x2112A442) + os.urandom(12)
    data += struct.pack("!HH", Attr.LIFETIME, 2) + b"\x00\x01\x00\x00"
    assert len(data) == 28
    with pytest.raises(StunError):
        parse_message(data)


def test_error_code_round_trips() -> None:
    tid = os.urandom(12)
    data = encode_message(
        Method.ALLOCATE,
        MessageClass.ERROR,
        tid,
        [(Attr.ERROR_CODE, ErrorCode(438, "Stale Nonce")), (Attr.UNKNOWN_ATTRIBUTES, (0x22, 0x18))],
    )
    msg = parse_message(data)
    assert msg.get(Attr.ERROR_CODE) == ErrorCode(438, "Stale Nonce")
    assert msg.get(Attr.UNKNOWN_ATTRIBUTES) == (0x22, 0x18)


def test_turn_attributes_round_trip() -> None:
    tid = os.urandom(12)
    attrs: list[tuple[int, Any]] = [
        (Attr.CHANNEL_NUMBER, 0x4001),
        (Attr.XOR_PEER_ADDRESS, ("2001:db8::1", 9)),
        (Attr.XOR_RELAYED_ADDRESS, ("198.51.100.7", 50000)),
        (Attr.REQUESTED_TRANSPORT, 17),
        (Attr.DONT_FRAGMENT, None),
        (Attr.DATA, b"hello"),
    ]
    msg = parse_message(encode_message(Method.CHANNEL_BIND, MessageClass.REQUEST, tid, attrs))
    assert list(msg.attributes) == attrs


def test_attributes_after_message_integrity_are_ignored() -> None:
    tid = os.urandom(12)
    signed = encode_message(Method.REFRESH, MessageClass.REQUEST, tid, [], key=b"k")
    extra = struct.pack("!HH", Attr.LIFETIME, 4) + b"\x00\x00\x00\x00"
    data = bytearray(signed + extra)
    struct.pack_into("!H", data, 2, len(data) - 20)
    msg = parse_message(bytes(data))
    assert not msg.has(Attr.LIFETIME)
    assert check_integrity(msg, b"k")


def test_unknown_comprehension_required_attribute_is_reported() -> None:
    tid = os.urandom(12)
    data = encode_message(Method.ALLOCATE, MessageClass.REQUEST, tid, [(0x7777, b"xx")])
    assert parse_message(data).unknown_required() == (0x7777,)


def test_channel_data_padding_is_accepted_and_stripped() -> None:
    frame = encode_channel_data(0x4001, b"hello", pad=True)
    assert len(frame) == 12
    assert parse_channel_data(frame).data == b"hello"


def test_channel_number_outside_range_is_rejected() -> None:
    with pytest.raises(StunError):
        parse_channel_data(b"\x80\x00\x00\x00")


def test_stream_framer_cuts_mixed_stream() -> None:
    stun = encode_message(Method.BINDING, MessageClass.REQUEST, os.urandom(12))
    padded = encode_channel_data(0x4000, b"abcde", pad=True)
    framer = StreamFramer()
    stream = padded + stun + padded
    frames = framer.feed(stream[:7]) + framer.feed(stream[7:30]) + framer.feed(stream[30:])
    assert frames == [padded, stun, padded]


def test_stream_framer_rejects_garbage() -> None:
    with pytest.raises(StunError):
        StreamFramer().feed(b"\x80\x00\x00\x00")
