"""Smoke run of bench/signaling.py so the benchmark does not rot."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow  # a real call or a benchmark run: seconds each

ROOT = Path(__file__).resolve().parents[2]


def test_signaling_bench_quick_prints_json_and_summary():
    result = subprocess.run(
        [sys.executable, "bench/signaling.py", "--quick"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    body, _, summary = result.stdout.rpartition("\n}\n")
    report = json.loads(body + "\n}")
    (row,) = report["results"]
    assert row["connections"] == 60
    assert row["fanout_delivered"] == row["fanout_messages"] > 0
    assert row["idle_bytes_per_connection"] > 0
    assert summary.startswith("signaling: N=60")
    assert report["meets_floors"], report
