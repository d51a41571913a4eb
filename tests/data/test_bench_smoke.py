"""Smoke run of bench/datachannel.py so that it does not rot."""

from __future__ import annotations

import pytest

from tests.support.bench import run_bench


@pytest.mark.slow
def test_datachannel_benchmark_quick_run_reports_every_figure() -> None:
    run = run_bench("datachannel.py", "--quick", "--rate", "1000", timeout=240)
    assert run.summary.startswith("datachannel: p2p 100B 1->1")
    report = run.report
    modes = [(c["mode"], c["receivers"]) for c in report["cases"]]
    assert modes == [("p2p", 1), ("relay", 1), ("relay", 2)]
    for case in report["cases"]:
        assert case["received_min"] > 0.9 * case["sent"], case
        assert case["latency_ms_p50"] is not None and case["latency_ms_p99"] is not None
        if case["mode"] == "relay":
            assert case["relayed_in_per_core"] > 0
    assert "relayed_per_core_100B_1to1_ge_5000" in report["floors"]
