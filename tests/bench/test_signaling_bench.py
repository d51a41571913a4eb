"""Smoke run of bench/signaling.py so the benchmark does not rot."""

from __future__ import annotations

import pytest

from tests.support.bench import run_bench

pytestmark = pytest.mark.slow  # a real call or a benchmark run: seconds each


def test_signaling_bench_quick_prints_json_and_summary():
    run = run_bench("signaling.py", "--quick", timeout=120)
    summary, report = run.summary, run.report
    (row,) = report["results"]
    assert row["connections"] == 60
    assert row["fanout_delivered"] == row["fanout_messages"] > 0
    assert row["idle_bytes_per_connection"] > 0
    assert summary.startswith("signaling: N=60")
    assert report["meets_floors"], report
