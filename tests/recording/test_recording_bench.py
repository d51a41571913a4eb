"""Smoke run of bench/recording.py so that it does not rot."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.slow
def test_recording_benchmark_quick_run_reports_every_figure() -> None:
    proc = subprocess.run(
        [sys.executable, str(ROOT / "bench" / "recording.py"), "--quick"],
        capture_output=True,
        text=True,
        timeout=180,
        cwd=ROOT,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = proc.stdout.strip().splitlines()
    assert out[-1].startswith("recording: ")
    report = json.loads("\n".join(out[:-1]))
    assert report["server_cpu_forwarding"] > 0 and report["server_cpu_forwarding_and_recording"] > 0
    assert report["recorded_files"] == [2] and report["recorded_bytes"][0] > 50_000
    assert report["recorded_bitrate_bps_median"] > 300_000
    assert report["subscriber_frames"] > 30
    writer = report["container_writer"]
    assert (
        writer["frames"] > 20 and writer["own_us_per_frame"] > 0 and writer["pyav_us_per_frame"] > 0
    )
