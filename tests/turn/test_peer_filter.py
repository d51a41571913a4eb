"""Peer filtering: special-purpose ranges and every IPv4-embedding IPv6 form are denied."""

from __future__ import annotations

import asyncio

import pytest

from relayroom.turn.codec import Attr, Method
from relayroom.turn.peerfilter import PeerFilter, Verdict
from tests.turn.conftest import ClientFactory, ServerFactory
from tests.turn.helpers import UdpSink, error_code

# Every entry is denied by the built-in list; many point at the loopback sink's port so that a
# filter bug would show up as a packet at the sink (the namespace has nothing else to reach).
DENIED_HOSTS = [
    "0.0.0.0",
    "0.1.2.3",
    "10.0.0.1",
    "10.255.255.254",
    "100.64.0.1",
    "100.127.255.254",
    "127.0.0.1",
    "127.0.0.2",
    "127.255.255.254",
    "169.254.169.254",
    "169.254.0.1",
    "172.16.0.1",
    "172.31.255.254",
    "192.0.0.8",
    "192.0.0.170",
    "192.0.2.1",
    "192.88.99.1",
    "192.168.0.1",
    "192.168.255.254",
    "198.18.0.1",
    "198.19.255.254",
    "198.51.100.1",
    "203.0.113.1",
    "224.0.0.1",
    "239.255.255.250",
    "240.0.0.1",
    "255.255.255.255",
    "::",
    "::1",
    "::ffff:127.0.0.1",
    "::ffff:10.0.0.1",
    "::ffff:169.254.169.254",
    "::ffff:0.0.0.0",
    "::ffff:192.168.1.1",
    "::127.0.0.1",
    "::ffff:0:127.0.0.1",
    "2002:7f00:1::",
    "2002:c0a8:101::1",
    "2002:a00:1::",
    "64:ff9b::7f00:1",
    "64:ff9b::a00:1",
    "64:ff9b::a9fe:a9fe",
    "64:ff9b:1::1",
    "fc00::1",
    "fd12:3456:789a::1",
    "fe80::1",
    "fec0::1",
    "ff02::1",
    "ff05::1:3",
    "2001:db8::1",
    "100::1",
    "2001::1",
    "2001:2::1",
]


def test_table_has_at_least_forty_denied_addresses() -> None:
    assert len(set(DENIED_HOSTS)) >= 40


@pytest.mark.parametrize("transport", ["udp", "tcp"])
async def test_denied_peers_get_403_and_nothing_reaches_the_sink(
    make_server: ServerFactory, make_client: ClientFactory, sink: UdpSink, transport: str
) -> None:
    server = await make_server(allowed_peers=())
    client = await make_client(server, transport)
    await client.allocate()
    port = sink.address[1]
    for number, host in enumerate(DENIED_HOSTS):
        peer = (host, port)
        permission = await client.request_once(
            Method.CREATE_PERMISSION, [(Attr.XOR_PEER_ADDRESS, peer)]
        )
        assert error_code(permission) == 403, host
        bind = await client.request_once(
            Method.CHANNEL_BIND,
            [(Attr.CHANNEL_NUMBER, 0x4000 + number), (Attr.XOR_PEER_ADDRESS, peer)],
        )
        assert error_code(bind) == 403, host
        client.send_indication(peer, b"must not arrive")
        client.send_channel_data(0x4000 + number, b"must not arrive")
    await asyncio.sleep(0.3)
    assert sink.packets == []
    assert server.stats.packets_relayed == 0
    assert server.stats.denied_peers == 3 * len(DENIED_HOSTS)


async def test_loopback_peer_is_relayed_when_allow_listed(
    make_server: ServerFactory, make_client: ClientFactory, sink: UdpSink
) -> None:
    server = await make_server(allowed_peers=("127.0.0.1/32",))
    client = await make_client(server)
    await client.allocate()
    await client.create_permission(sink.address)
    client.send_indication(sink.address, b"allowed")
    await sink.wait()
    assert sink.packets[0][0] == b"allowed"


@pytest.mark.parametrize("listener", ["udp", "tcp"])
async def test_server_listener_addresses_are_denied_even_when_allow_listed(
    make_server: ServerFactory, make_client: ClientFactory, listener: str
) -> None:
    server = await make_server(allowed_peers=("127.0.0.0/8",))
    client = await make_client(server)
    await client.allocate()
    own = server.udp_address if listener == "udp" else server.tcp_address
    assert own is not None
    response = await client.request_once(Method.CREATE_PERMISSION, [(Attr.XOR_PEER_ADDRESS, own)])
    assert error_code(response) == 403


async def test_send_to_other_port_of_permitted_ip_that_is_own_listener_is_dropped(
    make_server: ServerFactory, make_client: ClientFactory, sink: UdpSink
) -> None:
    server = await make_server(allowed_peers=("127.0.0.1/32",))
    client = await make_client(server)
    await client.allocate()
    await client.create_permission(sink.address)  # permissions are per IP (RFC 8656)
    assert server.udp_address is not None
    client.send_indication(server.udp_address, b"loop")
    await asyncio.sleep(0.2)
    assert server.stats.denied_peers == 1
    assert server.stats.packets_relayed == 0


def test_own_relay_host_allows_only_live_relay_ports() -> None:
    peer_filter = PeerFilter(own_hosts=["8.8.4.4"], is_live_relay=lambda addr: addr[1] == 50000)
    assert peer_filter.verdict(("8.8.4.4", 50000)) is Verdict.ALLOWED
    assert peer_filter.verdict(("8.8.4.4", 22)) is Verdict.OWN_ADDRESS


def test_public_addresses_and_their_mapped_forms_are_allowed() -> None:
    peer_filter = PeerFilter()
    for host in ["8.8.8.8", "1.1.1.1", "::ffff:8.8.8.8", "2606:4700:4700::1111"]:
        assert peer_filter.allows((host, 3478)), host


def test_port_zero_is_invalid() -> None:
    assert PeerFilter().verdict(("8.8.8.8", 0)) is Verdict.INVALID
