"""Smoke run of bench/stats.py so the benchmark does not rot."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow  # a real call or a benchmark run: seconds each

ROOT = Path(__file__).resolve().parents[2]


def test_stats_bench_quick_prints_json_and_summary():
    result = subprocess.run(
        [sys.executable, "bench/stats.py", "--quick"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    body, _, summary = result.stdout.rpartition("\n}\n")
    report = json.loads(body[body.index("{") :] + "\n}")
    (row,) = report["results"]
    assert row["connections"] == 4 and row["tracks_sampled"] == 8
    assert row["round_cpu_ms_median"] > 0 and row["within_floor"] is True
    assert summary.startswith("stats: 4 connections")
