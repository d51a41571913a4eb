"""bench/simulcast.py: a smoke run (tiny sizes) so that the benchmark does not rot."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

pytestmark = pytest.mark.browser


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_quick_run_measures_forwarding_and_switches() -> None:
    result = subprocess.run(
        [sys.executable, "bench/simulcast.py", "--quick"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=280,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    body, _, line = result.stdout.rpartition("\n}\n")
    out = json.loads(body + "\n}")
    assert line.startswith("simulcast forwarding:"), line
    fwd = out["forwarding"]
    for kind in ("plain", "simulcast", "simulcast_switched"):
        assert fwd[kind]["marginal_us_per_leg_packet"] > 0, fwd[kind]
    assert fwd["ratio_simulcast_to_plain"]["marginal_us_per_leg_packet"] > 0
    switch = out["switch"]
    assert switch["missed"] == 0, switch
    assert switch["p50_ms"] is not None and 0 < switch["p50_ms"] < 5000, switch
