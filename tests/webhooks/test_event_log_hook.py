"""Whatever logs a room event on the server's stats collector reaches the webhooks unwired:
the recorder's events, logged as the recording code logs them, arrive typed at a receiver."""

from __future__ import annotations

from relayroom.api import WebhookReceiver
from relayroom.signaling.admin import STATS_KEY
from tests.conftest import TEST_SECRET
from tests.support.polling import eventually
from tests.support.webhooks import WebhookSink


async def test_recording_events_logged_on_the_collector_become_webhooks(start_server):
    async with WebhookSink(WebhookReceiver.from_api_secret(TEST_SECRET)) as sink:
        _, test_server = await start_server(webhook_urls=(sink.url,))
        stats = test_server.app[STATS_KEY]
        stats.record_event(
            "recording_started", room="demo", recording_id="RE_1", tracks=["TR_a", "TR_v"]
        )
        stats.record_event("threshold_crossed", room="demo", participant_id="PA_1")
        files = [{"path": "RE_1/alice-video.webm", "track_id": "TR_v", "bytes": 1234}]
        stats.record_event(
            "recording_finished", room="demo", recording_id="RE_1", files=files, reason="stopped"
        )
        assert await eventually(lambda: len(sink.events) == 2, 10), sink.kinds()
    started, finished = sink.events
    assert sink.rejected == []
    assert (started.event, started.room.name) == ("recording_started", "demo")
    assert started.recording is not None and started.recording.id == "RE_1"
    assert started.recording.data["tracks"] == ["TR_a", "TR_v"]
    assert finished.event == "recording_finished" and finished.reason == "stopped"
    assert finished.recording is not None and finished.recording.files == tuple(files)
    assert finished.created_at > started.created_at
