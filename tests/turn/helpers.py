"""A small TURN test client (UDP or TCP) built on turn.codec, and a loopback UDP sink."""

from __future__ import annotations

import asyncio
import os
import ssl
import struct
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import cast

from relayroom.turn.codec import (
    Address,
    Attr,
    ErrorCode,
    Message,
    MessageClass,
    Method,
    StreamFramer,
    Value,
    encode_channel_data,
    encode_message,
    long_term_key,
    parse_channel_data,
    parse_message,
)

TIMEOUT = 3.0


def error_code(response: Message) -> int:
    error = response.get(Attr.ERROR_CODE)
    return error.code if isinstance(error, ErrorCode) else 0


class TurnRequestError(Exception):
    def __init__(self, response: Message) -> None:
        error = response.get(Attr.ERROR_CODE)
        self.code = error.code if isinstance(error, ErrorCode) else 0
        self.response = response
        super().__init__(f"TURN error {self.code}")


@dataclass
class Received:
    peer: Address | None
    channel: int | None
    data: bytes


class _Udp(asyncio.DatagramProtocol):
    def __init__(self, client: TurnClient) -> None:
        self._client = client

    def datagram_received(self, data: bytes, addr: tuple[str | int, ...]) -> None:
        self._client.on_packet(data)


class _Tcp(asyncio.Protocol):
    def __init__(self, client: TurnClient) -> None:
        self._client = client
        self._framer = StreamFramer()

    def data_received(self, data: bytes) -> None:
        for frame in self._framer.feed(data):
            self._client.on_packet(frame)

    def connection_lost(self, exc: Exception | None) -> None:
        self._client.closed.set()


class TurnClient:
    """Speaks just enough TURN to drive the server in tests."""

    def __init__(self, server: Address, transport: str, username: str, password: str) -> None:
        self.server = server
        self.transport_name = transport
        self.username = username
        self.password = password
        self.realm: str | None = None
        self.nonce: str | None = None
        self.key: bytes | None = None
        self.relayed: Address | None = None
        self.received: asyncio.Queue[Received] = asyncio.Queue()
        self.closed = asyncio.Event()
        self.unmatched: list[Message] = []
        self._waiters: dict[bytes, asyncio.Future[Message]] = {}
        self._transport: asyncio.BaseTransport | None = None

    async def open(self) -> TurnClient:
        loop = asyncio.get_running_loop()
        if self.transport_name == "udp":
            self._transport, _ = await loop.create_datagram_endpoint(
                lambda: _Udp(self), remote_addr=self.server
            )
        else:
            context = None
            if self.transport_name == "tls":
                # Test-only: a self-signed loopback certificate.
                context = ssl.create_default_context()
                context.check_hostname = False
                context.verify_mode = ssl.CERT_NONE
            self._transport, _ = await loop.create_connection(
                lambda: _Tcp(self), *self.server, ssl=context
            )
        return self

    @property
    def local_address(self) -> Address:
        assert self._transport is not None
        name = self._transport.get_extra_info("sockname")
        return (name[0], name[1])

    def close(self) -> None:
        if self._transport is not None:
            self._transport.close()

    def send_raw(self, data: bytes) -> None:
        assert self._transport is not None
        if self.transport_name == "udp":
            cast(asyncio.DatagramTransport, self._transport).sendto(data)
        else:
            cast(asyncio.WriteTransport, self._transport).write(data)

    def on_packet(self, data: bytes) -> None:
        if 0x40 <= data[0] <= 0x7F:
            frame = parse_channel_data(data)
            self.received.put_nowait(Received(None, frame.channel, frame.data))
            return
        msg = parse_message(data)
        if msg.cls is MessageClass.INDICATION and msg.method == Method.DATA:
            payload = msg.get_bytes(Attr.DATA) or b""
            self.received.put_nowait(
                Received(msg.get_address(Attr.XOR_PEER_ADDRESS), None, payload)
            )
            return
        waiter = self._waiters.pop(msg.transaction_id, None)
        if waiter is not None and not waiter.done():
            waiter.set_result(msg)
        else:
            self.unmatched.append(msg)

    async def transact(self, data: bytes, transaction_id: bytes) -> Message:
        waiter: asyncio.Future[Message] = asyncio.get_running_loop().create_future()
        self._waiters[transaction_id] = waiter
        self.send_raw(data)
        try:
            return await asyncio.wait_for(waiter, TIMEOUT)
        finally:
            self._waiters.pop(transaction_id, None)

    async def request(
        self,
        method: Method,
        attrs: Sequence[tuple[int, Value]] = (),
        *,
        authenticate: bool = True,
        transaction_id: bytes | None = None,
    ) -> Message:
        """Send a request (with long-term auth, retrying once on 401/438); raise on error."""
        for _ in range(3):
            tid = transaction_id or os.urandom(12)
            all_attrs = list(attrs)
            key = None
            if authenticate and self.nonce is not None and self.realm is not None:
                key = long_term_key(self.username, self.realm, self.password)
                all_attrs += [
                    (Attr.USERNAME, self.username),
                    (Attr.REALM, self.realm),
                    (Attr.NONCE, self.nonce),
                ]
            data = encode_message(
                method, MessageClass.REQUEST, tid, all_attrs, key=key, fingerprint=True
            )
            response = await self.transact(data, tid)
            if response.cls is MessageClass.SUCCESS:
                return response
            error = response.get(Attr.ERROR_CODE)
            code = error.code if isinstance(error, ErrorCode) else 0
            if authenticate and code in (401, 438) and response.has(Attr.NONCE):
                fresh = self.nonce is None or code == 438
                self.realm = response.get_str(Attr.REALM)
                self.nonce = response.get_str(Attr.NONCE)
                if fresh:
                    continue
            raise TurnRequestError(response)
        raise TurnRequestError(response)

    async def request_once(
        self, method: Method, attrs: Sequence[tuple[int, Value]] = (), *, sign: bool = True
    ) -> Message:
        """One request with whatever realm and nonce the client holds; returns any response."""
        tid = os.urandom(12)
        all_attrs = list(attrs)
        key = None
        if sign and self.nonce is not None and self.realm is not None:
            key = long_term_key(self.username, self.realm, self.password)
            all_attrs += [
                (Attr.USERNAME, self.username),
                (Attr.REALM, self.realm),
                (Attr.NONCE, self.nonce),
            ]
        data = encode_message(method, MessageClass.REQUEST, tid, all_attrs, key=key)
        return await self.transact(data, tid)

    async def allocate(self, lifetime: int | None = None) -> Address:
        attrs: list[tuple[int, Value]] = [(Attr.REQUESTED_TRANSPORT, 17)]
        if lifetime is not None:
            attrs.append((Attr.LIFETIME, lifetime))
        response = await self.request(Method.ALLOCATE, attrs)
        relayed = response.get_address(Attr.XOR_RELAYED_ADDRESS)
        assert relayed is not None
        self.relayed = relayed
        return relayed

    async def refresh(self, lifetime: int) -> int:
        response = await self.request(Method.REFRESH, [(Attr.LIFETIME, lifetime)])
        return response.get_int(Attr.LIFETIME) or 0

    async def create_permission(self, *peers: Address) -> None:
        await self.request(Method.CREATE_PERMISSION, [(Attr.XOR_PEER_ADDRESS, p) for p in peers])

    async def channel_bind(self, channel: int, peer: Address) -> None:
        await self.request(
            Method.CHANNEL_BIND, [(Attr.CHANNEL_NUMBER, channel), (Attr.XOR_PEER_ADDRESS, peer)]
        )

    def send_indication(self, peer: Address, data: bytes) -> None:
        self.send_raw(
            encode_message(
                Method.SEND,
                MessageClass.INDICATION,
                os.urandom(12),
                [(Attr.XOR_PEER_ADDRESS, peer), (Attr.DATA, data)],
            )
        )

    def send_channel_data(self, channel: int, data: bytes) -> None:
        self.send_raw(encode_channel_data(channel, data, pad=self.transport_name != "udp"))

    async def next_received(self, wait_s: float = TIMEOUT) -> Received:
        return await asyncio.wait_for(self.received.get(), wait_s)


class _SinkProtocol(asyncio.DatagramProtocol):
    def __init__(self, sink: UdpSink) -> None:
        self._sink = sink

    def datagram_received(self, data: bytes, addr: tuple[str | int, ...]) -> None:
        self._sink.packets.append((data, (str(addr[0]), int(addr[1]))))
        self._sink.arrived.set()


class UdpSink:
    """A loopback UDP socket that records what arrives (and can answer)."""

    def __init__(self) -> None:
        self.packets: list[tuple[bytes, Address]] = []
        self.arrived = asyncio.Event()
        self._transport: asyncio.DatagramTransport | None = None
        self.address: Address = ("127.0.0.1", 0)

    async def open(self, host: str = "127.0.0.1") -> UdpSink:
        loop = asyncio.get_running_loop()
        self._transport, _ = await loop.create_datagram_endpoint(
            lambda: _SinkProtocol(self), local_addr=(host, 0)
        )
        name = self._transport.get_extra_info("sockname")
        self.address = (name[0], name[1])
        return self

    def send(self, data: bytes, addr: Address) -> None:
        assert self._transport is not None
        self._transport.sendto(data, addr)

    async def wait(self, count: int = 1, wait_s: float = TIMEOUT) -> None:
        async with asyncio.timeout(wait_s):
            while len(self.packets) < count:
                self.arrived.clear()
                await self.arrived.wait()

    def close(self) -> None:
        if self._transport is not None:
            self._transport.close()


def channel_frame(channel: int, data: bytes) -> bytes:
    return struct.pack("!HH", channel, len(data)) + data


class ManualClock:
    """A TURN server clock that moves only when a test advances it (both monotonic and wall)."""

    def __init__(self) -> None:
        self._monotonic = time.monotonic()
        self._wall = time.time()

    def monotonic(self) -> float:
        return self._monotonic

    def wall(self) -> float:
        return self._wall

    def advance(self, seconds: float) -> None:
        self._monotonic += seconds
        self._wall += seconds
