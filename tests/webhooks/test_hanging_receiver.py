"""A receiver that accepts webhook requests and never answers does not delay joins.

Two real `relayroom serve` processes side by side, one without webhooks and one whose only
webhook URL hangs (each attempt waits out `webhook_timeout_s`, 5 s); joins alternate between
them (A B A B ...) and the join times (`join` sent -> `joined` received) are compared. A join
that waited on a delivery would take 5 s.
"""

from __future__ import annotations

import statistics
import time

import aiohttp
import pytest
from prometheus_client.parser import text_string_to_metric_families

from relayroom.api import WebhookReceiver
from tests.conftest import TEST_SECRET, WsClient, token_for
from tests.sdk.serve import ServeProcess
from tests.support.webhooks import WebhookSink

JOINS = 12


async def timed_join(http: aiohttp.ClientSession, url: str, n: int) -> tuple[WsClient, float]:
    client = WsClient(await http.ws_connect(url + "ws"))
    token = token_for("hang", f"user-{n}")
    started = time.perf_counter()
    await client.send({"type": "join", "room": "hang", "token": token})
    await client.expect("joined", 10)
    return client, time.perf_counter() - started


def samples(text: str, name: str) -> dict[str, float]:
    return {
        s.labels.get("reason", ""): s.value
        for f in text_string_to_metric_families(text)
        for s in f.samples
        if s.name == name
    }


@pytest.mark.slow
async def test_joins_take_as_long_with_a_hanging_receiver_as_without(tmp_path):
    sink = WebhookSink(WebhookReceiver.from_api_secret(TEST_SECRET))
    sink.hang = True
    async with sink:
        env = {"RELAYROOM_WEBHOOK_TIMEOUT_S": "5", "RELAYROOM_WEBHOOK_QUEUE_MAX": "5"}
        plain = ServeProcess(tmp_path / "plain")
        hooked = ServeProcess(tmp_path / "hooked", "--webhook-url", sink.url, env=env)
        async with plain, hooked, aiohttp.ClientSession() as http:
            times: dict[str, list[float]] = {"plain": [], "hooked": []}
            clients: list[WsClient] = []
            for n in range(JOINS):  # interleaved, so machine load hits both alike
                for name, server in (("plain", plain), ("hooked", hooked)):
                    client, took = await timed_join(http, server.url, n)
                    clients.append(client)
                    times[name].append(took)
            async with http.get(hooked.url + "metrics") as response:
                text = await response.text()
            for client in clients:
                await client.close()

        assert sink.requests >= 1  # the first event's attempt, hanging (or its retry)
        dropped = samples(text, "relayroom_webhook_dropped_total")
        queued = samples(text, "relayroom_webhook_queued")
        # room_started + 12 joins: 1 in flight, 5 queued, the oldest 7 dropped and counted.
        assert queued == {"": 6.0} and dropped["queue_full"] == 7, (queued, dropped)

    plain_median = statistics.median(times["plain"])
    hooked_median = statistics.median(times["hooked"])
    summary = (
        f"join median: {plain_median * 1000:.1f} ms plain, {hooked_median * 1000:.1f} ms hooked"
    )
    print(summary)
    assert hooked_median <= 2 * plain_median + 0.05, (summary, times)
    assert max(times["hooked"]) < 1.0, (summary, times)
