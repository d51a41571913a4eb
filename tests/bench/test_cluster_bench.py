"""Smoke run of bench/cluster.py: two real nodes and Redis, and the floors a quick run meets."""

from __future__ import annotations

import pytest

from tests.support.bench import run_bench


@pytest.mark.slow
def test_cluster_bench_quick_meets_its_floors() -> None:
    run = run_bench("cluster.py", "--quick", timeout=120)
    summary, report = run.summary, run.report
    assert summary.startswith("cluster: cross-node signal p50")
    assert report["signal_latency_ms"]["cross_node"]["p99"] < report["floors"]["cross_node_p99_ms"]
    assert report["failover_s"]["clients"] >= 3
    assert report["meets_floors"], report
