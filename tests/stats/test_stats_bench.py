"""Smoke run of bench/stats.py so the benchmark does not rot."""

from __future__ import annotations

import pytest

from tests.support.bench import run_bench

pytestmark = pytest.mark.slow  # a real call or a benchmark run: seconds each


def test_stats_bench_quick_prints_json_and_summary():
    run = run_bench("stats.py", "--quick", timeout=120)
    summary, report = run.summary, run.report
    (row,) = report["results"]
    assert row["connections"] == 4 and row["tracks_sampled"] == 8
    assert row["round_cpu_ms_median"] > 0 and row["within_floor"] is True
    assert summary.startswith("stats: 4 connections")
