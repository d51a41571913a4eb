"""bench/turn.py --quick runs end to end and prints its JSON report and summary line."""

from __future__ import annotations

import asyncio
import json
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[2] / "bench" / "turn.py"


@pytest.mark.slow
async def test_turn_benchmark_quick_run_prints_json_and_summary() -> None:
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        str(BENCH),
        "--quick",
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(proc.communicate(), 120)
    assert proc.returncode == 0, err.decode()[-2000:]
    text = out.decode()
    body, _, summary = text.rstrip("\n").rpartition("\n")
    report = json.loads(body)
    assert report["benchmark"] == "turn-channeldata-relay"
    for name in ("relayroom", "coturn"):
        assert report[name]["relayed_pkts_per_s"] > 0
        assert report[name]["loss"] < 0.05
    assert summary.startswith("turn relay: relayroom ")
    assert "ratio" in summary
    assert report["meets_floors"], report
