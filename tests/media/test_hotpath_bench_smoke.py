"""Smoke run of bench/hotpath.py (real `relayroom serve`, aiortc peers) so that it does not rot."""

from __future__ import annotations

import pytest

from tests.support.bench import run_bench


@pytest.mark.slow
def test_hotpath_benchmark_quick_run_reports_cost_latency_and_memory() -> None:
    run = run_bench("hotpath.py", "--quick")
    assert run.summary.startswith("hotpath: 2 subs; this ")
    median = run.report["trees"]["this"]["median"]
    # two subscribers of ~190 video + 50 audio packets/s each
    assert median["forwarded_pps"] > 300
    assert median["cpu_us_per_forwarded_packet"] > 0
    assert median["audio_delivered"] > 0.9
    assert median["video_delivered"] > 0.9
    assert median["video_p99_ms"] is not None and median["audio_p99_ms"] is not None
    # issue 12's floor: an idle worker stays under 60 MB (the WebRTC stack loads at the first
    # call, relayroom/lazy_stack.py); the first publisher brings it in
    assert 10 < median["rss_mb_idle"] < 60
    assert median["rss_mb_publisher"] > median["rss_mb_idle"]
