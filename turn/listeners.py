"""asyncio protocols for the client-facing UDP, TCP and TLS listeners.

They demultiplex ChannelData (fast path, straight to the allocation) from STUN messages (handed
to the server through the narrow `on_stun` callback); they never import the server.
"""

from __future__ import annotations

import asyncio
import logging
import socket
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, cast

from relayroom.turn.codec import Address, StreamFramer, StunError
from relayroom.turn.links import ClientLink, StreamLink, UdpLink
from relayroom.turn.stats import TurnStats
from relayroom.turn.udp import UdpEndpoint

if TYPE_CHECKING:
    from relayroom.turn.allocation import Allocation

logger = logging.getLogger(__name__)

StunHandler = Callable[[bytes, ClientLink], None]


def _address(raw: object) -> Address:
    sockaddr = cast(tuple[str, int], raw)
    return (str(sockaddr[0]), int(sockaddr[1]))


class UdpListener:
    """The client-facing UDP socket: ChannelData straight to the allocation, STUN to the server."""

    def __init__(
        self,
        sock: socket.socket,
        on_stun: StunHandler,
        stats: TurnStats,
        loop: asyncio.AbstractEventLoop,
    ) -> None:
        self.allocations: dict[Address, Allocation] = {}
        self._on_stun = on_stun
        self._stats = stats
        self._endpoint = UdpEndpoint(sock, self._on_datagram, loop)
        self.local_address = self._endpoint.local_address

    def _on_datagram(self, data: bytes, client: Address) -> None:
        if not data:
            return
        first = data[0]
        if 0x40 <= first <= 0x7F:
            allocation = self.allocations.get(client)
            if allocation is None:
                self._stats.dropped += 1
            else:
                allocation.from_client_channel_data(data)
        elif first < 0x40:
            self._on_stun(data, UdpLink(self._endpoint, client, self.allocations))
        else:
            self._stats.malformed += 1

    def close(self) -> None:
        self._endpoint.close()


class StreamConnection(asyncio.Protocol):
    """One TCP or TLS client connection: a framer, a link and at most one allocation."""

    def __init__(
        self,
        transport_name: str,
        on_stun: StunHandler,
        on_open: Callable[[StreamConnection], bool],
        on_lost: Callable[[StreamConnection], None],
        stats: TurnStats,
        write_limit: int,
    ) -> None:
        self._transport_name = transport_name
        self._on_stun = on_stun
        self._on_open = on_open
        self._on_lost = on_lost
        self._stats = stats
        self._write_limit = write_limit
        self._framer = StreamFramer()
        self._transport: asyncio.Transport | None = None
        self.link: StreamLink | None = None
        self._idle_since = time.monotonic()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = cast(asyncio.Transport, transport)
        peer = transport.get_extra_info("peername")
        sock = transport.get_extra_info("sockname")
        if peer is None or sock is None or not self._on_open(self):
            self._transport.abort()
            return
        self.link = StreamLink(
            self._transport, self._transport_name, _address(peer), _address(sock), self._write_limit
        )

    def data_received(self, data: bytes) -> None:
        link = self.link
        if link is None:
            return
        try:
            frames = self._framer.feed(data)
        except StunError:
            # The stream lost framing: nothing after this point can be trusted.
            self._stats.malformed += 1
            self.close()
            return
        for frame in frames:
            if frame[0] >= 0x40:
                allocation = link.get_allocation()
                if allocation is None:
                    self._stats.dropped += 1
                else:
                    allocation.from_client_channel_data(frame)
            else:
                self._on_stun(frame, link)

    def connection_lost(self, exc: Exception | None) -> None:
        link = self.link
        self.link = None
        if link is not None:
            allocation = link.get_allocation()
            if allocation is not None:
                # RFC 8656 section 3.1: a TCP allocation dies with its connection.
                allocation.close()
            self._on_lost(self)

    def idle_expired(self, now: float, timeout: float) -> bool:
        if self.link is not None and self.link.get_allocation() is not None:
            self._idle_since = now
            return False
        return now - self._idle_since > timeout

    def close(self) -> None:
        if self._transport is not None and not self._transport.is_closing():
            self._transport.abort()
