"""Threshold crossings, the bounded history and event log, browser summaries, the slow feed."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from relayroom.media.stats import StatsCollector, StatsSettings, sanitize_client_report
from relayroom.signaling.admin import FeedClient


def sample(loss=None, rtt=None, fps=None, client=None) -> dict[str, Any]:
    return {
        "summary": {"loss": loss, "rtt_ms": rtt, "fps": fps},
        "client": client,
    }


def collector(**settings: Any) -> StatsCollector:
    values = {"smoothing": 1.0, "warmup_samples": 1, **settings}
    return StatsCollector(dict, StatsSettings(**values))


def test_a_crossing_is_reported_once_and_cleared_with_hysteresis(caplog):
    stats = collector()
    caplog.set_level(logging.INFO, "relayroom.media.stats")
    events = []
    for loss in (0.01, 0.08, 0.09, 0.2, 0.045, 0.03, 0.02):
        events += stats.check_thresholds("r", "p", sample(loss=loss))
    assert [(e["type"], e["metric"], e["view"]) for e in events] == [
        ("threshold_crossed", "loss", "server"),
        ("threshold_cleared", "loss", "server"),
    ]
    assert events[0]["value"] == 0.08 and events[0]["threshold"] == 0.05
    assert events[1]["value"] == 0.03  # 0.045 is above 80% of the limit: still crossed
    crossed = [r for r in caplog.records if "crossed its threshold" in r.getMessage()]
    assert len(crossed) == 1 and crossed[0].levelno == logging.WARNING
    assert [e["type"] for e in stats.events.since()] == [e["type"] for e in events]


def test_rtt_and_low_fps_cross_in_the_browser_view_too():
    stats = collector()
    events = stats.check_thresholds("r", "p", sample(rtt=350.0, client={"fps": 9, "rtt_ms": 20}))
    kinds = {(e["metric"], e["view"]) for e in events}
    assert kinds == {("rtt_ms", "server"), ("fps", "browser")}


def test_warmup_and_smoothing_ignore_a_single_spike():
    stats = collector(smoothing=0.3, warmup_samples=3)
    events = []
    for rtt in (20, 20, 20, 900, 20, 20):
        events += stats.check_thresholds("r", "p", sample(rtt=rtt))
    assert events == []  # 0.3 * 900 + 0.7 * 20 = 284 ms: below 300


def test_history_and_event_log_are_bounded():
    settings = StatsSettings(interval_s=1.0, history_s=300.0, event_log_size=5)
    assert settings.history_samples == 300
    stats = StatsCollector(dict, settings)
    for i in range(12):
        stats.record_event("participant_joined", room="r", participant_id=f"p{i}")
    kept = stats.events.since()
    assert [e["participant_id"] for e in kept] == [f"p{i}" for i in range(7, 12)]
    assert stats.events.since(kept[-2]["t"] - 1, limit=2) == kept[-2:]


def test_browser_summary_is_typed_and_bounded():
    report = {
        "fps": 29.5,
        "width": 640,
        "rtt_ms": float("nan"),
        "loss": True,
        "candidate_type": "host" * 50,
        "unknown": "x" * 10_000,
        "tracks": [{"track_id": "t", "kind": "video", "fps": 30, "extra": 1}] * 40,
    }
    clean = sanitize_client_report(report)
    assert clean["fps"] == 29.5 and clean["width"] == 640
    assert "rtt_ms" not in clean and "loss" not in clean and "unknown" not in clean
    assert len(clean["candidate_type"]) == 32
    assert len(clean["tracks"]) == 16
    assert clean["tracks"][0] == {"track_id": "t", "kind": "video", "fps": 30}


async def test_a_feed_client_that_falls_behind_is_dropped():
    class StuckSocket:
        async def send_str(self, text: str) -> None:
            await asyncio.Event().wait()  # never completes: the reader is not reading

    client = FeedClient(StuckSocket(), queue_max=4)  # type: ignore[arg-type]
    writer = asyncio.create_task(client.write_loop())
    pushed = [client.push(f"m{i}") for i in range(10)]
    await asyncio.sleep(0)
    assert pushed.count(True) >= 4 and pushed[-1] is False and client.dropped
    writer.cancel()
