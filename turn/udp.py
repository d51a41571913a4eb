"""A non-blocking UDP socket driven by the event loop, read in batches.

asyncio's datagram transport reads one datagram per readiness callback and queues sends
without bound when the socket is full. A relay wants the opposite: drain many datagrams per
wake-up, and drop (never queue) when the kernel buffer is full. This is that, and nothing more.
"""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Callable

from relayroom.turn.codec import Address

DatagramHandler = Callable[[bytes, Address], None]

_READ_BATCH = 64
_MAX_DATAGRAM = 65535


class UdpEndpoint:
    def __init__(
        self, sock: socket.socket, on_datagram: DatagramHandler, loop: asyncio.AbstractEventLoop
    ) -> None:
        sock.setblocking(False)
        self._sock = sock
        self._on_datagram = on_datagram
        self._loop = loop
        self._ipv6 = sock.family == socket.AF_INET6
        name = sock.getsockname()
        self.local_address: Address = (str(name[0]), int(name[1]))
        self._closed = False
        loop.add_reader(sock.fileno(), self._read)

    def _read(self) -> None:
        recvfrom = self._sock.recvfrom
        handler = self._on_datagram
        for _ in range(_READ_BATCH):
            try:
                data, addr = recvfrom(_MAX_DATAGRAM)
            except (BlockingIOError, InterruptedError):
                return
            except OSError:
                # ICMP errors surface here (port unreachable from a peer): skip them.
                continue
            if self._ipv6:
                addr = (addr[0], addr[1])
            handler(data, addr)
            if self._closed:
                return

    def sendto(self, data: bytes, addr: Address) -> bool:
        """Send now or drop: False when the kernel buffer is full or the send failed."""
        try:
            self._sock.sendto(data, addr)
        except OSError:
            return False
        return True

    @property
    def closed(self) -> bool:
        return self._closed

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        self._loop.remove_reader(self._sock.fileno())
        self._sock.close()
