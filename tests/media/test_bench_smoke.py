"""Smoke run of bench/forwarding.py so that it does not rot."""

from __future__ import annotations

import pytest

from tests.support.bench import run_bench


@pytest.mark.slow
def test_forwarding_benchmark_quick_run_reports_every_figure() -> None:
    run = run_bench("forwarding.py", "--quick")
    summary, report = run.summary, run.report
    assert summary.startswith("forwarding (in-process): 2 subs; relayroom")
    ours, base = report["relays"]["relayroom"], report["relays"]["mediarelay"]
    for relay in (ours, base):
        for key in (
            "cpu_per_added_subscriber",
            "forwarded_pps_per_core",
            "latency_ms_p50",
            "latency_ms_p99",
            "join_to_first_frame_s_median",
        ):
            assert relay[key] is not None, key
        assert relay["forwarded_pps_n_subs"] > 100
    assert ours["join_to_first_frame_s_median"] < 2
    assert set(report["floors"]) - {"cpu_ratio_ge_20x"} == {
        "pps_per_core_ge_20000",
        "latency_p50_le_5ms",
    }
    if ours["saturated"] or base["saturated"]:
        # A saturated run gives no ratio, in the JSON or the summary.
        assert report["cpu_per_subscriber_ratio"] is None
        assert "cpu_ratio_ge_20x" not in report["floors"]
        assert "saturated: no ratio" in summary
    else:
        # relayroom forwards without re-encoding: far cheaper per subscriber, even on a smoke run
        assert report["cpu_per_subscriber_ratio"] > 3
        assert "cpu_ratio_ge_20x" in report["floors"]
