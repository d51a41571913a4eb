"""`/metrics` parses with prometheus-client's parser, and its counters grow during a call."""

from __future__ import annotations

import asyncio

import aiohttp
import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.stats.conftest import admin_token, api, bearer
from tests.support.calls import start_call


async def scrape(ts) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    async with aiohttp.ClientSession() as http, http.get(ts.make_url("/metrics")) as response:
        assert response.status == 200
        assert response.headers["Content-Type"].startswith("text/plain")
        text = await response.text()
    values: dict[tuple[str, tuple[tuple[str, str], ...]], float] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            values[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return values


def value(values, name: str, **labels: str) -> float:
    return values[(name, tuple(sorted(labels.items())))]


async def test_metrics_parse_and_have_no_per_participant_labels(admin_server, connect):
    _, ts, _ = await admin_server()
    client = await connect(ts)
    await client.join("room-a", "alice")
    await client.send({"type": "nonsense"})
    await client.expect("error")
    values = await scrape(ts)
    assert value(values, "relayroom_rooms") == 1
    assert value(values, "relayroom_participants") == 1
    assert value(values, "relayroom_websocket_sessions") == 1
    assert value(values, "relayroom_errors_total", code="unknown_type") == 1
    assert value(values, "relayroom_turn_allocations") == 0
    assert value(values, "relayroom_forwarded_packets_total", kind="video") == 0
    label_names = {name for _, labels in values for name, _ in labels}
    assert value(values, "relayroom_webhook_dropped_total", reason="queue_full") == 0
    fixed = {"kind", "state", "type", "health", "code", "metric", "le", "reason"}
    assert label_names <= fixed, label_names


@pytest.mark.slow
async def test_metrics_counters_grow_during_a_call(admin_server, connect):
    _, ts, _, pub_pc, _, subscriber, _ = await start_call(admin_server, connect)
    try:
        await asyncio.sleep(1.5)
        first = await scrape(ts)
        await asyncio.sleep(2.5)
        second = await scrape(ts)
        for name in ("relayroom_forwarded_packets_total", "relayroom_forwarded_bytes_total"):
            for kind in ("audio", "video"):
                assert value(second, name, kind=kind) > value(first, name, kind=kind) > 0
        for name in ("relayroom_received_packets_total", "relayroom_received_bytes_total"):
            assert value(second, name, kind="video") > value(first, name, kind="video")
        assert value(second, "relayroom_keyframes_forwarded_total") >= 1
        assert value(second, "relayroom_keyframe_requests_sent_total") >= 1
        assert value(second, "relayroom_peer_connections", state="connected") == 2
        assert value(second, "relayroom_selected_candidate_pairs", type="host") == 2
        assert value(second, "relayroom_participant_health", health="ok") == 2
        loss_count = "relayroom_packet_loss_ratio_count"
        assert value(second, loss_count) > value(first, loss_count)
        assert value(second, "relayroom_stats_collection_duration_seconds_count") >= 3
        # The same call seen through the API.
        _, body = await api(ts, "GET", "/api/rooms", bearer(admin_token()))
        (room,) = body["rooms"]
        assert room["name"] == "call" and room["participants"] == 2 and room["tracks"] == 2
        assert room["bitrate_in_bps"] > 0
    finally:
        await subscriber.close()
        await pub_pc.close()
