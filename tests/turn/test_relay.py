"""Allocations relay data both ways over UDP and TCP, and their lifetimes close relay sockets."""

from __future__ import annotations

import asyncio
import os
import socket

import pytest

from relayroom.turn.codec import Attr, MessageClass, Method, encode_message, parse_message
from relayroom.turn.server import TurnServer
from tests.support.polling import eventually
from tests.turn.conftest import ClientFactory, ServerFactory
from tests.turn.helpers import ManualClock, UdpSink

TRANSPORTS = ["udp", "tcp"]


@pytest.mark.parametrize("transport", TRANSPORTS)
async def test_send_indication_reaches_peer_and_reply_comes_back_as_data_indication(
    server: TurnServer, make_client: ClientFactory, sink: UdpSink, transport: str
) -> None:
    client = await make_client(server, transport)
    relayed = await client.allocate()
    await client.create_permission(sink.address)
    client.send_indication(sink.address, b"hello peer")
    await sink.wait()
    data, source = sink.packets[0]
    assert data == b"hello peer"
    assert source == relayed
    sink.send(b"hello client", relayed)
    received = await client.next_received()
    assert received.peer == sink.address
    assert received.data == b"hello client"


@pytest.mark.parametrize("transport", TRANSPORTS)
async def test_channel_data_relays_both_ways(
    server: TurnServer, make_client: ClientFactory, sink: UdpSink, transport: str
) -> None:
    client = await make_client(server, transport)
    relayed = await client.allocate()
    await client.channel_bind(0x4001, sink.address)
    # Odd payload sizes exercise the TCP padding in both directions.
    client.send_channel_data(0x4001, b"abcde")
    client.send_channel_data(0x4001, b"xyz")
    await sink.wait(2)
    assert [p for p, _ in sink.packets] == [b"abcde", b"xyz"]
    sink.send(b"12345", relayed)
    sink.send(b"6", relayed)
    first = await client.next_received()
    second = await client.next_received()
    assert (first.channel, first.data) == (0x4001, b"12345")
    assert (second.channel, second.data) == (0x4001, b"6")


async def test_peer_without_permission_is_not_relayed_to_client(
    server: TurnServer, make_client: ClientFactory, sink: UdpSink
) -> None:
    client = await make_client(server)
    relayed = await client.allocate()
    sink.send(b"unsolicited", relayed)
    with pytest.raises(TimeoutError):
        await client.next_received(wait_s=0.3)


async def test_send_without_permission_is_dropped(
    server: TurnServer, make_client: ClientFactory, sink: UdpSink
) -> None:
    client = await make_client(server)
    await client.allocate()
    client.send_indication(sink.address, b"no permission")
    await asyncio.sleep(0.2)
    assert sink.packets == []


async def test_refresh_with_zero_lifetime_deletes_allocation_and_closes_relay(
    server: TurnServer, make_client: ClientFactory
) -> None:
    client = await make_client(server)
    relayed = await client.allocate()
    assert server.allocations_active == 1
    assert await client.refresh(0) == 0
    assert server.allocations_active == 0
    await asyncio.sleep(0)
    probe = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        probe.bind(relayed)  # the relay port is free again
    finally:
        probe.close()


async def test_expired_allocation_closes_relay_socket(
    make_server: ServerFactory, make_client: ClientFactory
) -> None:
    clock = ManualClock()
    server = await make_server(
        clock, default_allocation_lifetime_s=1, max_allocation_lifetime_s=1, sweep_interval_s=0.05
    )
    client = await make_client(server)
    relayed = await client.allocate()
    await asyncio.sleep(0.2)  # several sweeps: nothing expires while the clock stands still
    assert server.allocations_active == 1
    clock.advance(1)
    assert await eventually(lambda: server.allocations_active == 0)
    probe = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        probe.bind(relayed)
    finally:
        probe.close()


async def test_expired_permission_stops_relaying(
    make_server: ServerFactory, make_client: ClientFactory, sink: UdpSink
) -> None:
    clock = ManualClock()
    server = await make_server(clock, permission_lifetime_s=1, sweep_interval_s=60)
    client = await make_client(server)
    await client.allocate()
    await client.create_permission(sink.address)
    client.send_indication(sink.address, b"in time")
    assert await eventually(lambda: [data for data, _ in sink.packets] == [b"in time"])
    clock.advance(1)  # expired, and no sweep has run: the data path checks expiry itself
    client.send_indication(sink.address, b"late")
    await asyncio.sleep(0.2)
    assert [data for data, _ in sink.packets] == [b"in time"]


async def test_requested_lifetime_is_clamped_to_maximum(
    server: TurnServer, make_client: ClientFactory
) -> None:
    client = await make_client(server)
    await client.allocate()
    assert await client.refresh(100000) == 3600
    assert await client.refresh(5) == 600


async def test_tcp_disconnect_deletes_allocation(
    server: TurnServer, make_client: ClientFactory
) -> None:
    client = await make_client(server, "tcp")
    await client.allocate()
    assert server.allocations_active == 1
    client.close()
    assert await eventually(lambda: server.allocations_active == 0)


async def test_allocate_retransmission_gets_same_response(
    server: TurnServer, make_client: ClientFactory
) -> None:
    client = await make_client(server)
    tid = os.urandom(12)
    first = await client.request(
        Method.ALLOCATE, [(Attr.REQUESTED_TRANSPORT, 17)], transaction_id=tid
    )
    again = await client.request(
        Method.ALLOCATE, [(Attr.REQUESTED_TRANSPORT, 17)], transaction_id=tid
    )
    assert again.get(Attr.XOR_RELAYED_ADDRESS) == first.get(Attr.XOR_RELAYED_ADDRESS)
    assert server.allocations_active == 1


async def test_binding_request_answered_without_auth_and_small(server: TurnServer) -> None:
    assert server.udp_address is not None
    tid = os.urandom(12)
    request = encode_message(Method.BINDING, MessageClass.REQUEST, tid)
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.setblocking(False)
    sock.bind(("127.0.0.1", 0))
    loop = asyncio.get_running_loop()
    try:
        await loop.sock_sendto(sock, request, server.udp_address)
        data = await asyncio.wait_for(loop.sock_recv(sock, 2048), 2)
    finally:
        sock.close()
    response = parse_message(data)
    assert response.cls is MessageClass.SUCCESS
    assert response.get(Attr.XOR_MAPPED_ADDRESS) is not None
    assert len(data) <= 44  # no SOFTWARE, no OTHER-ADDRESS: nothing to amplify with


async def test_tls_listener_relays_channel_data(
    make_server: ServerFactory,
    make_client: ClientFactory,
    sink: UdpSink,
    tls_files: tuple[str, str],
) -> None:
    cert, key = tls_files
    server = await make_server(tls_port=0, tls_cert=cert, tls_key=key)
    assert server.tls_address is not None
    client = await make_client(server, "tls")
    relayed = await client.allocate()
    await client.channel_bind(0x4002, sink.address)
    client.send_channel_data(0x4002, b"over tls")
    await sink.wait()
    assert sink.packets[0][0] == b"over tls"
    sink.send(b"back", relayed)
    received = await client.next_received()
    assert (received.channel, received.data) == (0x4002, b"back")


async def test_close_is_idempotent_and_closes_allocations(
    make_server: ServerFactory, make_client: ClientFactory
) -> None:
    server = await make_server()
    await (await make_client(server)).allocate()
    await (await make_client(server, "tcp")).allocate()
    await asyncio.gather(server.close(), server.close())
    await server.close()
    assert server.allocations_active == 0
    assert server.udp_address is not None
