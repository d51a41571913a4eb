"""Smoke run of bench/datachannel.py so that it does not rot."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.slow
def test_datachannel_benchmark_quick_run_reports_every_figure() -> None:
    proc = subprocess.run(
        [sys.executable, str(ROOT / "bench" / "datachannel.py"), "--quick", "--rate", "1000"],
        capture_output=True,
        text=True,
        timeout=240,
        cwd=ROOT,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = proc.stdout.strip().splitlines()
    assert out[-1].startswith("datachannel: p2p 100B 1->1")
    report = json.loads("\n".join(out[:-1]))
    modes = [(c["mode"], c["receivers"]) for c in report["cases"]]
    assert modes == [("p2p", 1), ("relay", 1), ("relay", 2)]
    for case in report["cases"]:
        assert case["received_min"] > 0.9 * case["sent"], case
        assert case["latency_ms_p50"] is not None and case["latency_ms_p99"] is not None
        if case["mode"] == "relay":
            assert case["relayed_in_per_core"] > 0
    assert "relayed_per_core_100B_1to1_ge_5000" in report["floors"]
