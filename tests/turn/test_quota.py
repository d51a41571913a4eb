"""Allocation quotas (486) and that quota is given back exactly once."""

from __future__ import annotations

import asyncio

import pytest

from relayroom.turn.server import TurnServer
from tests.support.polling import eventually
from tests.turn.conftest import ClientFactory, ServerFactory
from tests.turn.helpers import TurnRequestError, UdpSink


async def test_thirteenth_allocation_of_one_user_gets_486(
    server: TurnServer, make_client: ClientFactory
) -> None:
    for _ in range(12):
        await (await make_client(server, user="alice")).allocate()
    with pytest.raises(TurnRequestError) as info:
        await (await make_client(server, user="alice")).allocate()
    assert info.value.code == 486
    await (await make_client(server, user="bob")).allocate()
    assert server.allocations_active == 13


async def test_total_allocation_limit_gets_486(
    make_server: ServerFactory, make_client: ClientFactory
) -> None:
    server = await make_server(max_allocations_total=2)
    await (await make_client(server, user="a")).allocate()
    await (await make_client(server, user="b")).allocate()
    with pytest.raises(TurnRequestError) as info:
        await (await make_client(server, user="c")).allocate()
    assert info.value.code == 486


async def test_deleting_twice_frees_quota_once(
    make_server: ServerFactory, make_client: ClientFactory
) -> None:
    server = await make_server(max_allocations_per_user=2)
    first = await make_client(server)
    await first.allocate()
    await (await make_client(server)).allocate()
    await first.refresh(0)
    with pytest.raises(TurnRequestError) as info:
        await first.refresh(0)
    assert info.value.code == 437
    await (await make_client(server)).allocate()
    with pytest.raises(TurnRequestError) as again:
        await (await make_client(server)).allocate()
    assert again.value.code == 486


async def test_tcp_reconnects_do_not_leak_quota(
    make_server: ServerFactory, make_client: ClientFactory
) -> None:
    server = await make_server(max_allocations_per_user=1)
    for _ in range(5):
        client = await make_client(server, "tcp")
        await client.allocate()
        client.close()
        assert await eventually(lambda: server.allocations_active == 0)
    assert server.stats.allocations_created == 5


async def test_abandoned_udp_allocation_counts_until_it_expires(
    make_server: ServerFactory, make_client: ClientFactory
) -> None:
    server = await make_server(
        max_allocations_per_user=1,
        default_allocation_lifetime_s=1,
        max_allocation_lifetime_s=1,
        sweep_interval_s=0.1,
    )
    await (await make_client(server)).allocate()
    with pytest.raises(TurnRequestError):
        await (await make_client(server)).allocate()
    assert await eventually(lambda: server.allocations_active == 0)
    await (await make_client(server)).allocate()


async def test_bandwidth_cap_drops_excess(
    make_server: ServerFactory, make_client: ClientFactory, sink: UdpSink
) -> None:
    server = await make_server(bandwidth_bytes_per_s=10_000)
    client = await make_client(server)
    await client.allocate()
    await client.channel_bind(0x4000, sink.address)
    payload = bytes(1000)
    for _ in range(10):  # 100 kB in about 0.1 s against a 64 kB burst and 10 kB/s
        for _ in range(10):
            client.send_channel_data(0x4000, payload)
        await asyncio.sleep(0.01)
    assert await eventually(lambda: server.stats.packets_relayed + server.stats.dropped == 100)
    assert 60 <= server.stats.packets_relayed <= 75
    assert len(sink.packets) == server.stats.packets_relayed
