"""The client side of a 5-tuple: how to reach the TURN client and where its allocation lives.

A UDP link is a (listener, client address) pair; a stream link is one TCP or TLS connection.
Writes are bounded: when the kernel or asyncio buffer is full, data is dropped, never queued.
"""

from __future__ import annotations

import abc
import asyncio
import struct
from typing import TYPE_CHECKING

from relayroom.turn.codec import Address, padding
from relayroom.turn.udp import UdpEndpoint

if TYPE_CHECKING:
    from relayroom.turn.allocation import Allocation

_HEADER = struct.Struct("!HH")


class ClientLink(abc.ABC):
    transport_name: str
    client_address: Address
    local_address: Address

    @abc.abstractmethod
    def send(self, data: bytes) -> bool:
        """Send one STUN message; False when dropped."""

    @abc.abstractmethod
    def send_channel_data(self, channel: int, payload: bytes) -> bool:
        """Send one ChannelData frame (padded on streams); False when dropped."""

    @abc.abstractmethod
    def get_allocation(self) -> Allocation | None: ...

    @abc.abstractmethod
    def set_allocation(self, allocation: Allocation | None) -> None: ...


class UdpLink(ClientLink):
    transport_name = "udp"

    __slots__ = ("_endpoint", "_table", "client_address", "local_address")

    def __init__(
        self,
        endpoint: UdpEndpoint,
        client_address: Address,
        table: dict[Address, Allocation],
    ) -> None:
        self._endpoint = endpoint
        self.client_address = client_address
        self.local_address = endpoint.local_address
        self._table = table

    def send(self, data: bytes) -> bool:
        return self._endpoint.sendto(data, self.client_address)

    def send_channel_data(self, channel: int, payload: bytes) -> bool:
        return self._endpoint.sendto(
            _HEADER.pack(channel, len(payload)) + payload, self.client_address
        )

    def get_allocation(self) -> Allocation | None:
        return self._table.get(self.client_address)

    def set_allocation(self, allocation: Allocation | None) -> None:
        if allocation is None:
            self._table.pop(self.client_address, None)
        else:
            self._table[self.client_address] = allocation


class StreamLink(ClientLink):
    def __init__(
        self,
        transport: asyncio.Transport,
        transport_name: str,
        client_address: Address,
        local_address: Address,
        write_limit: int,
    ) -> None:
        self._transport = transport
        self.transport_name = transport_name
        self.client_address = client_address
        self.local_address = local_address
        self._write_limit = write_limit
        self._allocation: Allocation | None = None

    def send(self, data: bytes) -> bool:
        if self._transport.is_closing():
            return False
        if self._transport.get_write_buffer_size() > self._write_limit:
            return False
        self._transport.write(data)
        return True

    def send_channel_data(self, channel: int, payload: bytes) -> bool:
        frame = struct.pack("!HH", channel, len(payload)) + payload + bytes(padding(len(payload)))
        return self.send(frame)

    def get_allocation(self) -> Allocation | None:
        return self._allocation

    def set_allocation(self, allocation: Allocation | None) -> None:
        self._allocation = allocation
