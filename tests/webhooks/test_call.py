"""A full call on a real `relayroom serve` process, watched by a real webhook receiver.

An aiortc publisher and an aiortc subscriber; the receiver (an aiohttp server on loopback)
verifies every request with the SDK's `WebhookReceiver` and must see the call's whole story,
in order, each event once.
"""

from __future__ import annotations

import aiohttp
import pytest
from prometheus_client.parser import text_string_to_metric_families

from relayroom.api import WebhookReceiver
from tests.conftest import TEST_SECRET, WsClient
from tests.sdk.serve import ServeProcess
from tests.support.polling import eventually
from tests.support.sfu import WsSubscriber, publish
from tests.support.webhooks import WebhookSink


async def scrape(http: aiohttp.ClientSession, url: str) -> dict[tuple[str, str], float]:
    async with http.get(url + "metrics") as response:
        text = await response.text()
    return {
        (sample.name, sample.labels.get("reason", "")): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
        if sample.name.startswith("relayroom_webhook")
    }


@pytest.mark.slow
async def test_a_call_reaches_the_receiver_signed_complete_and_in_order(tmp_path):
    sink = WebhookSink(WebhookReceiver.from_api_secret(TEST_SECRET))
    async with sink:
        server = ServeProcess(tmp_path, "--webhook-url", sink.url)
        async with server, aiohttp.ClientSession() as http:
            alice = WsClient(await http.ws_connect(server.url + "ws"))
            bob = WsClient(await http.ws_connect(server.url + "ws"))
            alice_id = (await alice.join("demo", "alice", name="Alice"))["participant"]["id"]
            bob_id = (await bob.join("demo", "bob", can_publish=False))["participant"]["id"]
            subscriber = WsSubscriber(bob)
            pc, video = await publish(alice)
            try:
                await bob.expect("track_published", 10)
                await subscriber.answer_next_offer()
                assert await eventually(
                    lambda: any(len(c) >= 10 for c in subscriber.counters.values()), 20
                )
                await bob.send({"type": "leave"})
                await bob.wait_closed()
                await alice.send({"type": "leave"})
                await alice.wait_closed()
            finally:
                await subscriber.close()
                await pc.close()  # type: ignore[attr-defined]
                await alice.close()
                await bob.close()
            assert await eventually(lambda: "room_finished" in sink.kinds(), 10), sink.kinds()
            metrics = await scrape(http, server.url)

    events = sink.events
    assert sink.rejected == []
    assert sink.kinds() == [
        "room_started",
        "participant_joined",
        "participant_joined",
        "track_published",
        "track_published",
        "participant_left",
        "track_unpublished",
        "track_unpublished",
        "participant_left",
        "room_finished",
    ], sink.kinds()
    assert {e.room.name for e in events} == {"demo"}
    assert events[0].room.mode == events[-1].room.mode == "sfu"
    people = [(e.event, e.participant.id, e.participant.identity) for e in events if e.participant]
    assert people == [
        ("participant_joined", alice_id, "alice"),
        ("participant_joined", bob_id, "bob"),
        ("track_published", alice_id, "alice"),
        ("track_published", alice_id, "alice"),
        ("participant_left", bob_id, "bob"),
        ("track_unpublished", alice_id, "alice"),
        ("track_unpublished", alice_id, "alice"),
        ("participant_left", alice_id, "alice"),
    ]
    assert events[1].participant is not None and events[1].participant.name == "Alice"
    published = {e.track.kind: e.track for e in events[3:5] if e.track}
    assert set(published) == {"audio", "video"} and published["video"].id == video.id
    assert {e.track.id for e in events[6:8] if e.track} == {t.id for t in published.values()}
    assert events[5].reason == events[8].reason == "left"
    assert events[6].reason == "participant_left"
    assert len({e.id for e in events}) == len(events)
    times = [e.created_at for e in events]
    assert times == sorted(times) and len(set(times)) == len(times)
    assert metrics[("relayroom_webhook_deliveries_total", "")] == len(events)
    assert sum(v for (name, _), v in metrics.items() if name.endswith("dropped_total")) == 0


@pytest.mark.slow
async def test_the_events_of_a_shutdown_drain_are_still_delivered(tmp_path):
    sink = WebhookSink(WebhookReceiver.from_api_secret(TEST_SECRET))
    async with sink:
        server = ServeProcess(tmp_path, "--webhook-url", sink.url)
        async with server, aiohttp.ClientSession() as http:
            alice = WsClient(await http.ws_connect(server.url + "ws"))
            await alice.join("demo", "alice")
            assert await eventually(lambda: len(sink.events) == 2)
            assert await server.stop() == 0  # SIGTERM: the drain ends alice's session
            await alice.close()
    assert sink.kinds() == [
        "room_started",
        "participant_joined",
        "participant_left",
        "room_finished",
    ]
    assert sink.events[2].reason == "server_shutdown"
