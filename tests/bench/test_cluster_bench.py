"""Smoke run of bench/cluster.py: two real nodes and Redis, and the floors a quick run meets."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.slow
def test_cluster_bench_quick_meets_its_floors() -> None:
    result = subprocess.run(
        [sys.executable, "bench/cluster.py", "--quick"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    body, _, summary = result.stdout.rstrip("\n").rpartition("\n")
    report = json.loads(body)
    assert summary.startswith("cluster: cross-node signal p50")
    assert report["signal_latency_ms"]["cross_node"]["p99"] < report["floors"]["cross_node_p99_ms"]
    assert report["failover_s"]["clients"] >= 3
    assert report["meets_floors"], report
