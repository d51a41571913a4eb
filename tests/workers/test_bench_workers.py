"""Smoke run of bench/workers.py: both servers start, a tiny level runs against each."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_workers_bench_quick_runs_both_sides() -> None:
    result = subprocess.run(
        [sys.executable, "bench/workers.py", "--quick"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    body, _, summary = result.stdout.rstrip("\n").rpartition("\n")
    report = json.loads(body)
    assert summary.startswith("workers: capacity 1 worker")
    (level,) = report["levels"]
    for side in ("workers_1", "workers_2"):
        run = level[side]
        assert run["failed"] == 0, run
        assert run["streams"]["received"] == run["streams"]["expected"] == 4, run
        assert run["video_fps_p50"] > 0 and run["latency_p99_ms"] is not None, run
