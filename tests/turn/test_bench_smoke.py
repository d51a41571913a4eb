"""bench/turn.py --quick runs end to end and prints its JSON report and summary line."""

from __future__ import annotations

import pytest

from tests.support.bench import run_bench


@pytest.mark.slow
def test_turn_benchmark_quick_run_prints_json_and_summary() -> None:
    run = run_bench("turn.py", "--quick", timeout=120)
    summary, report = run.summary, run.report
    assert report["benchmark"] == "turn-channeldata-relay"
    for name in ("relayroom", "coturn"):
        assert report[name]["relayed_pkts_per_s"] > 0
        assert report[name]["loss"] < 0.05
    assert summary.startswith("turn relay: relayroom ")
    assert "ratio" in summary
    # A smoke run under the suite's load measures nothing worth a floor: the report only has
    # to judge its own figures (a full run measures the ratio: "Performance" in docs/turn.md).
    ratio, floor = report["ratio"], report["floors"]["ratio_ge"]
    assert report["meets_floors"] is (ratio is not None and ratio >= floor), report
