"""Smoke run of bench/workers.py: both servers start, a tiny level runs against each."""

from __future__ import annotations

from tests.support.bench import run_bench


def test_workers_bench_quick_runs_both_sides() -> None:
    run = run_bench("workers.py", "--quick", timeout=300)
    assert run.summary.startswith("workers: capacity 1 worker")
    (level,) = run.report["levels"]
    for side in ("workers_1", "workers_2"):
        result = level[side]
        assert result["failed"] == 0, result
        assert result["streams"]["received"] == result["streams"]["expected"] == 4, result
        assert result["video_fps_p50"] > 0 and result["latency_p99_ms"] is not None, result
        # The CPU each side spends per packet a subscriber received (S and G in docs/workers.md).
        assert result["subscriber_packets"] > 0, result
        assert result["server_us_per_packet"] > 0 and result["generator_us_per_packet"] > 0
