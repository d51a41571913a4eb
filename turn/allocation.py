"""One TURN allocation: a relay UDP socket, its permissions and channel bindings, its lifetime
and its bandwidth budget. Created and closed only by the server; it reports its own closing
through the `on_close` callback, exactly once, so quota is freed exactly once."""

from __future__ import annotations

import asyncio
import enum
import logging
import os
import socket
import struct
from collections.abc import Callable
from dataclasses import dataclass

from relayroom.turn.codec import (
    Address,
    Attr,
    MessageClass,
    Method,
    encode_message,
)
from relayroom.turn.links import ClientLink
from relayroom.turn.peerfilter import PeerFilter
from relayroom.turn.ratelimit import TokenBucket
from relayroom.turn.stats import TurnStats
from relayroom.turn.udp import UdpEndpoint

logger = logging.getLogger(__name__)

_CHANNEL_HEADER = struct.Struct("!HH")


class AllocationState(enum.Enum):
    PENDING = "pending"  # quota reserved, relay socket being opened
    OPEN = "open"
    CLOSED = "closed"


@dataclass(slots=True)
class ChannelBinding:
    peer: Address
    expires_at: float


class Allocation:
    def __init__(
        self,
        *,
        link: ClientLink,
        username: str,
        quota_user: str,
        key: bytes,
        sha256: bool,
        lifetime_s: float,
        allocate_txid: bytes,
        peer_filter: PeerFilter,
        stats: TurnStats,
        bandwidth_bytes_per_s: int,
        max_permissions: int,
        on_close: Callable[[Allocation], None],
        clock: Callable[[], float],
    ) -> None:
        self.link = link
        self._clock = clock
        self.username = username
        self.quota_user = quota_user
        self.key = key
        self.sha256 = sha256
        self.allocate_txid = allocate_txid
        self.allocate_response: bytes | None = None
        self.relay_address: Address | None = None
        self.expires_at = self._clock() + lifetime_s
        self._filter = peer_filter
        self._stats = stats
        self._max_permissions = max_permissions
        self._on_close = on_close
        self._state = AllocationState.PENDING
        self._relay: UdpEndpoint | None = None
        self._permissions: dict[str, float] = {}
        self._channels: dict[int, ChannelBinding] = {}
        self._peer_channels: dict[Address, int] = {}
        self._bucket = (
            TokenBucket(bandwidth_bytes_per_s, max(bandwidth_bytes_per_s, 65536))
            if bandwidth_bytes_per_s > 0
            else None
        )

    @property
    def state(self) -> AllocationState:
        return self._state

    def _set_state(self, state: AllocationState) -> None:
        logger.debug(
            "allocation %s %s: %s -> %s",
            self.relay_address,
            self.username,
            self._state.value,
            state.value,
        )
        self._state = state

    # -- lifecycle -----------------------------------------------------------------------------

    def attach_relay(
        self, sock: socket.socket, address: Address, loop: asyncio.AbstractEventLoop
    ) -> None:
        """Take ownership of the bound relay socket and start reading peers' datagrams."""
        if self._state is not AllocationState.PENDING:
            sock.close()
            return
        self._relay = UdpEndpoint(sock, self.from_peer, loop)
        self.relay_address = address
        self._set_state(AllocationState.OPEN)

    def refresh(self, lifetime_s: float) -> None:
        self.expires_at = self._clock() + lifetime_s

    def close(self) -> None:
        """Idempotent: closes the relay socket and reports to the owner once."""
        if self._state is AllocationState.CLOSED:
            return
        self._set_state(AllocationState.CLOSED)
        if self._relay is not None:
            self._relay.close()
            self._relay = None
        self._permissions.clear()
        self._channels.clear()
        self._peer_channels.clear()
        self._on_close(self)

    def expire(self, now: float) -> None:
        """Drop expired permissions and channels; close when the allocation itself expired."""
        if now >= self.expires_at:
            self.close()
            return
        for ip in [ip for ip, exp in self._permissions.items() if exp <= now]:
            del self._permissions[ip]
        for number in [n for n, b in self._channels.items() if b.expires_at <= now]:
            binding = self._channels.pop(number)
            self._peer_channels.pop(binding.peer, None)

    # -- permissions and channels --------------------------------------------------------------

    def can_add_permissions(self, ips: set[str]) -> bool:
        return len(self._permissions.keys() | ips) <= self._max_permissions

    def add_permission(self, ip: str, lifetime_s: float) -> None:
        self._permissions[ip] = self._clock() + lifetime_s

    def has_permission(self, ip: str) -> bool:
        exp = self._permissions.get(ip)
        return exp is not None and exp > self._clock()

    def channel_conflict(self, number: int, peer: Address) -> bool:
        """RFC 8656 12.2: a number is bound to one peer and a peer to one number."""
        binding = self._channels.get(number)
        if binding is not None and binding.peer != peer:
            return True
        existing = self._peer_channels.get(peer)
        return existing is not None and existing != number

    def bind_channel(self, number: int, peer: Address, lifetime_s: float) -> None:
        self._channels[number] = ChannelBinding(peer, self._clock() + lifetime_s)
        self._peer_channels[peer] = number

    def channel_count(self) -> int:
        return len(self._channels)

    # -- data path -----------------------------------------------------------------------------

    def _budget(self, size: int, now: float) -> bool:
        bucket = self._bucket
        if bucket is None or bucket.consume(size, now):
            return True
        self._stats.dropped += 1
        return False

    def from_client_channel_data(self, frame: bytes) -> None:
        """A ChannelData frame from the client (datagram or stream frame, maybe padded)."""
        stats = self._stats
        if len(frame) < 4:
            stats.dropped += 1
            return
        number, length = _CHANNEL_HEADER.unpack_from(frame, 0)
        binding = self._channels.get(number)
        relay = self._relay
        if binding is None or relay is None or 4 + length > len(frame):
            stats.dropped += 1
            return
        now = self._clock()
        peer = binding.peer
        exp = self._permissions.get(peer[0])
        if exp is None or exp <= now or binding.expires_at <= now:
            stats.dropped += 1
            return
        if not self._budget(length, now):
            return
        if relay.sendto(frame[4 : 4 + length], peer):
            stats.packets_relayed += 1
            stats.bytes_relayed += length
        else:
            stats.dropped += 1

    def from_client_send(self, peer: Address, data: bytes) -> None:
        """A Send indication's payload: relayed if permitted, silently dropped otherwise."""
        relay = self._relay
        if relay is None or not self._filter.allows(peer):
            self._stats.dropped += 1
            return
        now = self._clock()
        exp = self._permissions.get(peer[0])
        if exp is None or exp <= now:
            self._stats.dropped += 1
            return
        if not self._budget(len(data), now):
            return
        if relay.sendto(data, peer):
            self._stats.packets_relayed += 1
            self._stats.bytes_relayed += len(data)
        else:
            self._stats.dropped += 1

    def from_peer(self, data: bytes, peer: Address) -> None:
        """A datagram arriving on the relay socket: to the client if the peer has permission."""
        stats = self._stats
        now = self._clock()
        exp = self._permissions.get(peer[0])
        if exp is None or exp <= now:
            stats.dropped += 1
            return
        if not self._budget(len(data), now):
            return
        number = self._peer_channels.get(peer)
        if number is not None:
            sent = self.link.send_channel_data(number, data)
        else:
            try:
                message = encode_message(
                    Method.DATA,
                    MessageClass.INDICATION,
                    os.urandom(12),
                    [(Attr.XOR_PEER_ADDRESS, peer), (Attr.DATA, data)],
                )
            except ValueError:
                stats.dropped += 1
                return
            sent = self.link.send(message)
        if sent:
            stats.packets_relayed += 1
            stats.bytes_relayed += len(data)
        else:
            stats.dropped += 1
