"""A receiver that is down for 30 s, then comes up, gets every event of the outage, in order.

The server is a real `relayroom serve` process with a retry budget of 90 s (the default is
300 s) and backoff capped at 2 s, so the test ends a few seconds after the receiver is back.
"""

from __future__ import annotations

import asyncio
import time

import aiohttp
import pytest
from prometheus_client.parser import text_string_to_metric_families

from relayroom.api import WebhookReceiver
from tests.conftest import TEST_SECRET, WsClient
from tests.sdk.serve import ServeProcess
from tests.support.polling import eventually
from tests.support.webhooks import WebhookSink, free_port

OUTAGE_S = 30.0


async def a_visit(http: aiohttp.ClientSession, url: str, room: str, identity: str) -> WsClient:
    client = WsClient(await http.ws_connect(url + "ws"))
    await client.join(room, identity)
    return client


async def leave(client: WsClient) -> None:
    await client.send({"type": "leave"})
    await client.wait_closed()
    await client.close()


@pytest.mark.slow
async def test_a_receiver_down_for_30_s_gets_every_event_afterwards_in_order(tmp_path):
    port = free_port()
    sink = WebhookSink(WebhookReceiver.from_api_secret(TEST_SECRET), port)
    env = {
        "RELAYROOM_WEBHOOK_URLS": sink.url,
        "RELAYROOM_WEBHOOK_RETRY_BUDGET_S": "90",
        "RELAYROOM_WEBHOOK_BACKOFF_MAX_S": "2",
        "RELAYROOM_WEBHOOK_TIMEOUT_S": "1",
    }
    async with ServeProcess(tmp_path, env=env) as server, aiohttp.ClientSession() as http:
        down_at = time.monotonic()
        # Events all through the outage, in two rooms: at its start, middle and end.
        alice = await a_visit(http, server.url, "one", "alice")
        bob = await a_visit(http, server.url, "two", "bob")
        await asyncio.sleep(OUTAGE_S / 2)
        carol = await a_visit(http, server.url, "one", "carol")
        await leave(bob)
        await asyncio.sleep(OUTAGE_S / 2 - 2)
        await leave(alice)
        await leave(carol)
        await asyncio.sleep(max(0.0, down_at + OUTAGE_S - time.monotonic()))
        assert sink.requests == 0
        async with http.get(server.url + "metrics") as response:
            text = await response.text()
        failed = {
            s.labels["reason"]: s.value
            for f in text_string_to_metric_families(text)
            for s in f.samples
            if s.name == "relayroom_webhook_failed_attempts_total"
        }
        queued = [
            s.value
            for f in text_string_to_metric_families(text)
            for s in f.samples
            if s.name == "relayroom_webhook_queued"
        ]
        assert failed["connection"] >= 10, failed  # retried all along, with backoff
        assert queued == [10.0]

        up_at = time.time()
        async with sink:
            assert await eventually(lambda: len(sink.events) == 10, 15), sink.kinds()
            await asyncio.sleep(1)  # nothing more comes (each event once)

    assert sink.rejected == []
    assert [
        (e.event, e.room.name, e.participant and e.participant.identity) for e in sink.events
    ] == [
        ("room_started", "one", None),
        ("participant_joined", "one", "alice"),
        ("room_started", "two", None),
        ("participant_joined", "two", "bob"),
        ("participant_joined", "one", "carol"),
        ("participant_left", "two", "bob"),
        ("room_finished", "two", None),
        ("participant_left", "one", "alice"),
        ("participant_left", "one", "carol"),
        ("room_finished", "one", None),
    ]
    # Each attempt is signed afresh: the events of the outage carry a timestamp from after it.
    assert min(sink.timestamps) >= int(up_at) - 1
    assert sink.events[0].created_at < up_at - OUTAGE_S + 5
