"""bench/simulcast.py: a smoke run (tiny sizes) so that the benchmark does not rot."""

from __future__ import annotations

import pytest

from tests.support.bench import run_bench

pytestmark = pytest.mark.browser


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_quick_run_measures_forwarding_and_switches() -> None:
    run = run_bench("simulcast.py", "--quick", timeout=280)
    assert run.summary.startswith("simulcast forwarding:"), run.lines
    fwd = run.report["forwarding"]
    for kind in ("plain", "simulcast", "simulcast_switched"):
        assert fwd[kind]["marginal_us_per_leg_packet"] > 0, fwd[kind]
    assert fwd["ratio_simulcast_to_plain"]["marginal_us_per_leg_packet"] > 0
    switch = run.report["switch"]
    assert switch["missed"] == 0, switch
    assert switch["p50_ms"] is not None and 0 < switch["p50_ms"] < 5000, switch
