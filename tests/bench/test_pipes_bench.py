"""Smoke run of bench/pipes.py: a piped track against the same track published locally."""

from __future__ import annotations

import pytest

from tests.support.bench import run_bench


@pytest.mark.slow
def test_pipes_bench_quick_reports_cpu_ratio_and_added_latency() -> None:
    run = run_bench("pipes.py", "--quick", timeout=180)
    report = run.report
    assert run.summary.startswith("pipes: receiving worker CPU piped/local")
    for case in ("local", "piped"):
        (only,) = report["runs"][case]
        assert only["latency_samples"] > 0 and only["worker_cpu"] > 0, only
        assert only["pipe_drops"] == 0, only
    assert report["added_latency_ms_p50"] is not None
