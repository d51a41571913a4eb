"""A subscriber sender's RTP history, as the forwarder fills it: the bytes sent, nothing more.

aiortc retransmits a NACKed packet from its sender's history (a dict of ``RtpPacket`` keyed by
sequence number modulo its size). Building an object per forwarded packet cost more than the
rest of the history entry, and a leg that edits payloads would keep a second copy of each
alive; so :class:`RtpHistory` stores the sent bytes and hands out a :class:`SentPacket` view
only when read (on a NACK, rarely). No aiortc import here: a pipe's legs use it too.
"""

from __future__ import annotations

from typing import Any


class SentPacket:
    """One sent RTP packet, read from its bytes: what aiortc's ``_retransmit`` asks of the
    entry (it re-sends ``serialize()``, or wraps the fields into RTX)."""

    __slots__ = ("data", "extensions")

    padding_size = 0  # RTX carries the payload without the original's padding
    version = 2

    def __init__(self, data: bytes, extensions: Any) -> None:
        self.data = data
        self.extensions = extensions

    @property
    def sequence_number(self) -> int:
        return (self.data[2] << 8) | self.data[3]

    @property
    def timestamp(self) -> int:
        return int.from_bytes(self.data[4:8], "big")

    @property
    def ssrc(self) -> int:
        return int.from_bytes(self.data[8:12], "big")

    @property
    def marker(self) -> int:
        return self.data[1] >> 7

    @property
    def payload_type(self) -> int:
        return self.data[1] & 0x7F

    @property
    def csrc(self) -> list[int]:
        data = self.data
        return [int.from_bytes(data[12 + 4 * i : 16 + 4 * i], "big") for i in range(data[0] & 0x0F)]

    @property
    def payload(self) -> bytes:
        """The payload, without the header, its extensions and the padding."""
        data = self.data
        start = 12 + 4 * (data[0] & 0x0F)
        if data[0] & 0x10:  # header extension: 4 bytes + its length in words
            start += 4 + 4 * ((data[start + 2] << 8) | data[start + 3])
        end = len(data) - (data[-1] if data[0] & 0x20 else 0)
        return data[start:end]

    def serialize(self, extensions_map: object = None) -> bytes:
        return self.data


class RtpHistory(dict[int, bytes]):
    """Sent packets' bytes by sequence number modulo the history size; reading an entry
    (``get``, ``[]``) gives a :class:`SentPacket` carrying :attr:`extensions` (the leg's
    header extension values, which an RTX repair repeats)."""

    def __init__(self) -> None:
        super().__init__()
        self.extensions: Any = None

    def get(self, key: int, default: Any = None) -> Any:  # type: ignore[override]
        data = dict.get(self, key)
        return default if data is None else SentPacket(data, self.extensions)

    def __getitem__(self, key: int) -> Any:
        return SentPacket(dict.__getitem__(self, key), self.extensions)
