"""Sans-IO STUN/TURN codec (RFC 8489, RFC 8656).

`parse_message` and `parse_channel_data` raise only `StunError`, whatever the input: every length
is checked before it is read, so no `struct.error`, `IndexError` or `UnicodeDecodeError` escapes.
Known attributes are decoded into typed values at parse time; a malformed known attribute makes
the whole message invalid.
"""

from __future__ import annotations

import binascii
import enum
import hashlib
import hmac
import ipaddress
import struct
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import TypeGuard

MAGIC_COOKIE = 0x2112A442
_COOKIE_BYTES = struct.pack("!I", MAGIC_COOKIE)
HEADER_LENGTH = 20
FINGERPRINT_XOR = 0x5354554E
TRANSPORT_UDP = 17
CHANNEL_MIN = 0x4000
# RFC 8656 narrowed channels to 0x4000-0x4FFF; RFC 5766 clients (coturn's own turnutils) still
# use up to 0x7FFF, so accept the old range, as coturn does.
CHANNEL_MAX = 0x7FFF
MAX_MESSAGE_LENGTH = 65535 + HEADER_LENGTH

Address = tuple[str, int]


class StunError(ValueError):
    """Raised for any input that is not a well-formed STUN message or ChannelData frame."""


class Method(enum.IntEnum):
    BINDING = 0x001
    ALLOCATE = 0x003
    REFRESH = 0x004
    SEND = 0x006
    DATA = 0x007
    CREATE_PERMISSION = 0x008
    CHANNEL_BIND = 0x009


class MessageClass(enum.IntEnum):
    REQUEST = 0
    INDICATION = 1
    SUCCESS = 2
    ERROR = 3


class Attr(enum.IntEnum):
    MAPPED_ADDRESS = 0x0001
    USERNAME = 0x0006
    MESSAGE_INTEGRITY = 0x0008
    ERROR_CODE = 0x0009
    UNKNOWN_ATTRIBUTES = 0x000A
    CHANNEL_NUMBER = 0x000C
    LIFETIME = 0x000D
    XOR_PEER_ADDRESS = 0x0012
    DATA = 0x0013
    REALM = 0x0014
    NONCE = 0x0015
    XOR_RELAYED_ADDRESS = 0x0016
    REQUESTED_ADDRESS_FAMILY = 0x0017
    EVEN_PORT = 0x0018
    REQUESTED_TRANSPORT = 0x0019
    DONT_FRAGMENT = 0x001A
    MESSAGE_INTEGRITY_SHA256 = 0x001C
    PASSWORD_ALGORITHM = 0x001D
    USERHASH = 0x001E
    XOR_MAPPED_ADDRESS = 0x0020
    RESERVATION_TOKEN = 0x0022
    PRIORITY = 0x0024
    USE_CANDIDATE = 0x0025
    ADDITIONAL_ADDRESS_FAMILY = 0x8000
    ADDRESS_ERROR_CODE = 0x8001
    PASSWORD_ALGORITHMS = 0x8002
    ALTERNATE_DOMAIN = 0x8003
    ICMP = 0x8004
    SOFTWARE = 0x8022
    ALTERNATE_SERVER = 0x8023
    TRANSACTION_TRANSMIT_COUNTER = 0x8025
    CACHE_TIMEOUT = 0x8027
    FINGERPRINT = 0x8028
    ICE_CONTROLLED = 0x8029
    ICE_CONTROLLING = 0x802A
    RESPONSE_ORIGIN = 0x802B
    OTHER_ADDRESS = 0x802C


ERROR_REASONS: dict[int, str] = {
    300: "Try Alternate",
    400: "Bad Request",
    401: "Unauthenticated",
    403: "Forbidden",
    420: "Unknown Attribute",
    437: "Allocation Mismatch",
    438: "Stale Nonce",
    440: "Address Family not Supported",
    441: "Wrong Credentials",
    442: "Unsupported Transport Protocol",
    443: "Peer Address Family Mismatch",
    486: "Allocation Quota Reached",
    500: "Server Error",
    508: "Insufficient Capacity",
}


@dataclass(frozen=True, slots=True)
class ErrorCode:
    code: int
    reason: str


# The attribute value types the codec produces and accepts.
Value = int | bytes | str | Address | ErrorCode | tuple[int, ...] | None

_PLAIN_ADDRESS = frozenset(
    {Attr.MAPPED_ADDRESS, Attr.ALTERNATE_SERVER, Attr.RESPONSE_ORIGIN, Attr.OTHER_ADDRESS}
)
_XOR_ADDRESS = frozenset({Attr.XOR_MAPPED_ADDRESS, Attr.XOR_PEER_ADDRESS, Attr.XOR_RELAYED_ADDRESS})
# RFC 8489 section 14: the maximum encoded length of these text attributes.
_TEXT_LIMITS: dict[int, int] = {
    Attr.USERNAME: 512,
    Attr.REALM: 763,
    Attr.NONCE: 763,
    Attr.SOFTWARE: 763,
    Attr.ALTERNATE_DOMAIN: 763,
}
_UINT32 = frozenset({Attr.LIFETIME, Attr.PRIORITY, Attr.FINGERPRINT, Attr.CACHE_TIMEOUT})
_FIXED_BYTES: dict[int, int] = {
    Attr.RESERVATION_TOKEN: 8,
    Attr.ICE_CONTROLLED: 8,
    Attr.ICE_CONTROLLING: 8,
    Attr.MESSAGE_INTEGRITY: 20,
    Attr.USERHASH: 32,
}
_EMPTY = frozenset({Attr.DONT_FRAGMENT, Attr.USE_CANDIDATE})
# First byte of a 4-byte value (the rest is RFFU).
_FIRST_BYTE_OF_4 = frozenset(
    {Attr.REQUESTED_TRANSPORT, Attr.REQUESTED_ADDRESS_FAMILY, Attr.ADDITIONAL_ADDRESS_FAMILY}
)
KNOWN_ATTRIBUTES = frozenset(int(a) for a in Attr)


@dataclass(frozen=True, slots=True)
class Message:
    """A STUN message. `attributes` keeps wire order; `raw` and the integrity offsets are set
    on parsed messages so that MESSAGE-INTEGRITY can be checked against the original bytes."""

    method: int
    cls: MessageClass
    transaction_id: bytes
    attributes: tuple[tuple[int, Value], ...] = ()
    raw: bytes = field(default=b"", repr=False, compare=False)
    integrity_offset: int | None = field(default=None, repr=False, compare=False)
    integrity_sha256_offset: int | None = field(default=None, repr=False, compare=False)

    def get(self, attr: int) -> Value:
        """The first value of `attr` (RFC 8489: later duplicates are ignored), or None."""
        for key, value in self.attributes:
            if key == attr:
                return value
        return None

    def get_all(self, attr: int) -> list[Value]:
        return [value for key, value in self.attributes if key == attr]

    def has(self, attr: int) -> bool:
        return any(key == attr for key, _ in self.attributes)

    def get_str(self, attr: int) -> str | None:
        value = self.get(attr)
        return value if isinstance(value, str) else None

    def get_int(self, attr: int) -> int | None:
        value = self.get(attr)
        return value if isinstance(value, int) and not isinstance(value, bool) else None

    def get_bytes(self, attr: int) -> bytes | None:
        value = self.get(attr)
        return value if isinstance(value, bytes) else None

    def get_address(self, attr: int) -> Address | None:
        value = self.get(attr)
        return value if is_address(value) else None

    def unknown_required(self) -> tuple[int, ...]:
        """Comprehension-required attribute types (below 0x8000) that the codec does not know."""
        return tuple(k for k, _ in self.attributes if k < 0x8000 and k not in KNOWN_ATTRIBUTES)


def is_address(value: Value) -> TypeGuard[Address]:
    return (
        isinstance(value, tuple)
        and len(value) == 2
        and isinstance(value[0], str)
        and isinstance(value[1], int)
    )


# ---------------------------------------------------------------------------------------------
# Message type bits (RFC 8489 section 5): M11..M7 C1 M6..M4 C0 M3..M0


def message_type(method: int, cls: MessageClass) -> int:
    return (
        ((method & 0xF80) << 2)
        | ((method & 0x070) << 1)
        | (method & 0x00F)
        | ((cls & 0x2) << 7)
        | ((cls & 0x1) << 4)
    )


def split_message_type(msg_type: int) -> tuple[int, MessageClass]:
    method = ((msg_type & 0x3E00) >> 2) | ((msg_type & 0x00E0) >> 1) | (msg_type & 0x000F)
    cls = MessageClass(((msg_type & 0x0100) >> 7) | ((msg_type & 0x0010) >> 4))
    return method, cls


def padding(length: int) -> int:
    return (4 - length % 4) % 4


# ---------------------------------------------------------------------------------------------
# Parsing


def is_stun(data: bytes) -> bool:
    """Cheap demultiplexing check: top bits 00, 20-byte header, magic cookie."""
    return len(data) >= HEADER_LENGTH and data[0] < 0x40 and data[4:8] == _COOKIE_BYTES


def is_channel_data(data: bytes) -> bool:
    return len(data) >= 4 and 0x40 <= data[0] <= 0x7F


def parse_message(data: bytes) -> Message:
    """Parse one whole STUN message (a datagram, or a frame cut by `StreamFramer`)."""
    if len(data) < HEADER_LENGTH:
        raise StunError("shorter than a STUN header")
    msg_type, length = struct.unpack_from("!HH", data, 0)
    if msg_type & 0xC000:
        raise StunError("first two bits are not zero")
    if data[4:8] != _COOKIE_BYTES:
        raise StunError("bad magic cookie")
    if length % 4:
        raise StunError("length is not a multiple of 4")
    if HEADER_LENGTH + length != len(data):
        raise StunError("length field does not match the datagram")
    method, cls = split_message_type(msg_type)
    transaction_id = bytes(data[8:20])

    attributes: list[tuple[int, Value]] = []
    integrity_offset: int | None = None
    integrity_sha256_offset: int | None = None
    offset = HEADER_LENGTH
    end = len(data)
    seen_fingerprint = False
    while offset < end:
        if end - offset < 4:
            raise StunError("truncated attribute header")
        attr_type, attr_len = struct.unpack_from("!HH", data, offset)
        value_start = offset + 4
        value_end = value_start + attr_len
        if value_end > end:
            raise StunError("attribute overruns the message")
        next_offset = value_end + padding(attr_len)
        if next_offset > end:
            raise StunError("attribute padding overruns the message")
        raw_value = bytes(data[value_start:value_end])
        if seen_fingerprint:
            raise StunError("attribute after FINGERPRINT")
        if attr_type == Attr.FINGERPRINT:
            seen_fingerprint = True
            if next_offset != end:
                raise StunError("FINGERPRINT is not the last attribute")
            fp = decode_value(attr_type, raw_value, transaction_id)
            if fp != _crc(data[:offset]):
                raise StunError("bad FINGERPRINT")
            attributes.append((attr_type, fp))
        elif integrity_sha256_offset is not None:
            pass  # RFC 8489 14.6: only FINGERPRINT may follow; others are ignored
        elif attr_type == Attr.MESSAGE_INTEGRITY_SHA256:
            integrity_sha256_offset = offset
            attributes.append((attr_type, decode_value(attr_type, raw_value, transaction_id)))
        elif integrity_offset is not None:
            pass  # RFC 8489 14.5: attributes after MESSAGE-INTEGRITY are ignored
        else:
            if attr_type == Attr.MESSAGE_INTEGRITY:
                integrity_offset = offset
            attributes.append((attr_type, decode_value(attr_type, raw_value, transaction_id)))
        offset = next_offset
    return Message(
        method,
        cls,
        transaction_id,
        tuple(attributes),
        bytes(data),
        integrity_offset,
        integrity_sha256_offset,
    )


def decode_value(attr_type: int, raw: bytes, transaction_id: bytes) -> Value:
    """Decode one attribute value; unknown types stay raw bytes."""
    n = len(raw)
    if attr_type in _XOR_ADDRESS:
        return _decode_address(raw, transaction_id)
    if attr_type in _PLAIN_ADDRESS:
        return _decode_address(raw, None)
    if attr_type in _TEXT_LIMITS:
        if n > _TEXT_LIMITS[attr_type]:
            raise StunError(f"attribute {attr_type:#06x} is too long")
        try:
            return raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise StunError(f"attribute {attr_type:#06x} is not UTF-8") from exc
    if attr_type in _UINT32:
        _need(attr_type, n == 4)
        return int(struct.unpack("!I", raw)[0])
    if attr_type in _FIXED_BYTES:
        _need(attr_type, n == _FIXED_BYTES[attr_type])
        return raw
    if attr_type in _EMPTY:
        _need(attr_type, n == 0)
        return None
    if attr_type in _FIRST_BYTE_OF_4:
        _need(attr_type, n == 4)
        return raw[0]
    if attr_type == Attr.CHANNEL_NUMBER:
        _need(attr_type, n == 4)
        return int(struct.unpack("!H", raw[:2])[0])
    if attr_type == Attr.EVEN_PORT:
        _need(attr_type, n == 1)
        return raw[0] >> 7
    if attr_type == Attr.MESSAGE_INTEGRITY_SHA256:
        _need(attr_type, 16 <= n <= 32 and n % 4 == 0)
        return raw
    if attr_type in (Attr.ERROR_CODE, Attr.ADDRESS_ERROR_CODE):
        return _decode_error_code(raw)
    if attr_type == Attr.UNKNOWN_ATTRIBUTES:
        _need(attr_type, n % 2 == 0)
        return tuple(struct.unpack(f"!{n // 2}H", raw))
    return raw


def _need(attr_type: int, ok: bool) -> None:
    if not ok:
        raise StunError(f"attribute {attr_type:#06x} has a bad length")


def _decode_address(raw: bytes, transaction_id: bytes | None) -> Address:
    if len(raw) < 4:
        raise StunError("address attribute is too short")
    family = raw[1]
    port = int(struct.unpack("!H", raw[2:4])[0])
    body = raw[4:]
    if family == 0x01:
        if len(body) != 4:
            raise StunError("bad IPv4 address length")
    elif family == 0x02:
        if len(body) != 16:
            raise StunError("bad IPv6 address length")
    else:
        raise StunError("unknown address family")
    if transaction_id is not None:
        port ^= MAGIC_COOKIE >> 16
        body = _xor(body, _COOKIE_BYTES + transaction_id)
    ip = ipaddress.IPv4Address(body) if family == 0x01 else ipaddress.IPv6Address(body)
    return (str(ip), port)


def _decode_error_code(raw: bytes) -> ErrorCode:
    if len(raw) < 4:
        raise StunError("ERROR-CODE is too short")
    cls, number = raw[2] & 0x07, raw[3]
    if not 3 <= cls <= 6 or number > 99:
        raise StunError("ERROR-CODE is out of range")
    try:
        reason = raw[4:].decode("utf-8")
    except UnicodeDecodeError as exc:
        raise StunError("ERROR-CODE reason is not UTF-8") from exc
    return ErrorCode(cls * 100 + number, reason)


def _xor(data: bytes, mask: bytes) -> bytes:
    return bytes(a ^ b for a, b in zip(data, mask, strict=False))


def _crc(data: bytes) -> int:
    return (binascii.crc32(data) ^ FINGERPRINT_XOR) & 0xFFFFFFFF


# ---------------------------------------------------------------------------------------------
# Encoding


def encode_value(attr_type: int, value: Value, transaction_id: bytes) -> bytes:
    """Encode one attribute value (the inverse of `decode_value`)."""
    if attr_type in _XOR_ADDRESS or attr_type in _PLAIN_ADDRESS:
        if not is_address(value):
            raise TypeError(f"attribute {attr_type:#06x} needs an (ip, port) tuple")
        ip_text, port = value
        return _encode_address(ip_text, port, transaction_id if attr_type in _XOR_ADDRESS else None)
    if isinstance(value, ErrorCode):
        reason = value.reason.encode("utf-8")
        return struct.pack("!HBB", 0, value.code // 100, value.code % 100) + reason
    if attr_type in _FIRST_BYTE_OF_4 and isinstance(value, int):
        return struct.pack("!B3x", value)
    if attr_type == Attr.CHANNEL_NUMBER and isinstance(value, int):
        return struct.pack("!H2x", value)
    if attr_type == Attr.EVEN_PORT and isinstance(value, int):
        return bytes([0x80 if value else 0])
    if attr_type == Attr.UNKNOWN_ATTRIBUTES and isinstance(value, tuple):
        return struct.pack(f"!{len(value)}H", *value)
    if value is None:
        return b""
    if isinstance(value, str):
        return value.encode("utf-8")
    if isinstance(value, bytes):
        return value
    if isinstance(value, int):
        return struct.pack("!I", value)
    raise TypeError(f"cannot encode attribute {attr_type:#06x}")


def _encode_address(ip_text: str, port: int, transaction_id: bytes | None) -> bytes:
    ip = ipaddress.ip_address(ip_text)
    family = 0x01 if ip.version == 4 else 0x02
    body = ip.packed
    if transaction_id is not None:
        port ^= MAGIC_COOKIE >> 16
        body = _xor(body, _COOKIE_BYTES + transaction_id)
    return struct.pack("!BBH", 0, family, port) + body


def _tlv(attr_type: int, value: bytes) -> bytes:
    return struct.pack("!HH", attr_type, len(value)) + value + bytes(padding(len(value)))


def encode_message(
    method: int,
    cls: MessageClass,
    transaction_id: bytes,
    attributes: Iterable[tuple[int, Value]] = (),
    *,
    key: bytes | None = None,
    sha256: bool = False,
    fingerprint: bool = False,
) -> bytes:
    """Encode a message; with `key`, append MESSAGE-INTEGRITY (or -SHA256), then FINGERPRINT."""
    if len(transaction_id) != 12:
        raise ValueError("transaction id must be 12 bytes")
    body = b"".join(_tlv(t, encode_value(t, v, transaction_id)) for t, v in attributes)
    msg_type = message_type(method, cls)
    if key is not None:
        mac_len = 32 if sha256 else 20
        header = struct.pack("!HHI", msg_type, len(body) + 4 + mac_len, MAGIC_COOKIE)
        digest = hashlib.sha256 if sha256 else hashlib.sha1
        mac = hmac.new(key, header + transaction_id + body, digest).digest()
        attr = Attr.MESSAGE_INTEGRITY_SHA256 if sha256 else Attr.MESSAGE_INTEGRITY
        body += _tlv(attr, mac)
    if fingerprint:
        header = struct.pack("!HHI", msg_type, len(body) + 8, MAGIC_COOKIE)
        body += _tlv(Attr.FINGERPRINT, struct.pack("!I", _crc(header + transaction_id + body)))
    if len(body) > 0xFFFF:
        raise ValueError("message too long")
    return struct.pack("!HHI", msg_type, len(body), MAGIC_COOKIE) + transaction_id + body


def check_integrity(message: Message, key: bytes) -> bool:
    """True if the message carries MESSAGE-INTEGRITY-SHA256 or MESSAGE-INTEGRITY valid for key.

    SHA256 is preferred when both are present (RFC 8489 section 9.2.4)."""
    raw = message.raw
    if message.integrity_sha256_offset is not None:
        off = message.integrity_sha256_offset
        mac = message.get_bytes(Attr.MESSAGE_INTEGRITY_SHA256)
        if mac is None:
            return False
        digest = hmac.new(
            key, _with_length(raw[:off], off - HEADER_LENGTH + 4 + len(mac)), hashlib.sha256
        ).digest()
        return hmac.compare_digest(digest[: len(mac)], mac)
    if message.integrity_offset is not None:
        off = message.integrity_offset
        mac = message.get_bytes(Attr.MESSAGE_INTEGRITY)
        if mac is None:
            return False
        digest = hmac.new(
            key, _with_length(raw[:off], off - HEADER_LENGTH + 24), hashlib.sha1
        ).digest()
        return hmac.compare_digest(digest, mac)
    return False


def _with_length(prefix: bytes, length: int) -> bytes:
    return prefix[:2] + struct.pack("!H", length) + prefix[4:]


def long_term_key(username: str, realm: str, password: str) -> bytes:
    """RFC 8489 section 9.2.2: MD5(username ":" realm ":" password)."""
    return hashlib.md5(f"{username}:{realm}:{password}".encode(), usedforsecurity=False).digest()


def error_attributes(code: int, reason: str | None = None) -> tuple[int, Value]:
    return (
        Attr.ERROR_CODE,
        ErrorCode(code, reason if reason is not None else ERROR_REASONS.get(code, "")),
    )


# ---------------------------------------------------------------------------------------------
# ChannelData (RFC 8656 section 12.4)


@dataclass(frozen=True, slots=True)
class ChannelData:
    channel: int
    data: bytes


def parse_channel_data(data: bytes) -> ChannelData:
    """Parse a ChannelData datagram or stream frame; trailing padding is allowed."""
    if len(data) < 4:
        raise StunError("ChannelData is shorter than its header")
    channel, length = struct.unpack_from("!HH", data, 0)
    if not CHANNEL_MIN <= channel <= CHANNEL_MAX:
        raise StunError("channel number out of range")
    if 4 + length > len(data):
        raise StunError("ChannelData is truncated")
    if len(data) - 4 - length > 3:
        raise StunError("ChannelData has trailing bytes")
    return ChannelData(channel, bytes(data[4 : 4 + length]))


def encode_channel_data(channel: int, payload: bytes, *, pad: bool = False) -> bytes:
    if not CHANNEL_MIN <= channel <= CHANNEL_MAX:
        raise ValueError("channel number out of range")
    if len(payload) > 0xFFFF:
        raise ValueError("ChannelData payload too long")
    frame = struct.pack("!HH", channel, len(payload)) + payload
    if pad:
        frame += bytes(padding(len(payload)))
    return frame


# ---------------------------------------------------------------------------------------------
# Stream framing for TCP and TLS (RFC 8656 section 12.4.1: ChannelData is padded over streams)


class StreamFramer:
    """Cuts a byte stream into whole STUN messages and ChannelData frames. Bounded: the buffer
    never exceeds one maximal frame, and garbage raises `StunError` (the caller then closes)."""

    def __init__(self) -> None:
        self._buffer = bytearray()

    @property
    def pending(self) -> bytes:
        """Bytes received that do not yet make a whole frame."""
        return bytes(self._buffer)

    def feed(self, data: bytes) -> list[bytes]:
        self._buffer += data
        frames: list[bytes] = []
        buf = self._buffer
        pos = 0
        while len(buf) - pos >= 4:
            first = buf[pos]
            length = (buf[pos + 2] << 8) | buf[pos + 3]
            if first < 0x40:
                if length % 4:
                    raise StunError("bad STUN length in stream")
                size = HEADER_LENGTH + length
                if len(buf) - pos >= 8 and buf[pos + 4 : pos + 8] != _COOKIE_BYTES:
                    raise StunError("bad magic cookie in stream")
            elif first <= 0x7F:
                size = 4 + length + padding(length)
            else:
                raise StunError("neither STUN nor ChannelData in stream")
            if len(buf) - pos < size:
                break
            frames.append(bytes(buf[pos : pos + size]))
            pos += size
        del buf[:pos]
        return frames
