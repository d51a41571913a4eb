"""Smoke run of bench/whip.py (a real server process, Chromium, the eyevinn WHIP client)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.browser
def test_whip_bench_quick_reports_first_frame_times() -> None:
    result = subprocess.run(
        [sys.executable, "bench/whip.py", "--quick"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    body, _, summary = result.stdout.rstrip("\n").rpartition("\n")
    report = json.loads(body)
    assert summary.startswith("whip: publish to first browser frame p50")
    assert report["tries"] == 2 and len(report["seconds"]) == 2
    # Every try saw a frame; 5 s is far above the floor, only a broken path takes that long.
    assert all(0 < t < 5 for t in report["seconds"]), report
