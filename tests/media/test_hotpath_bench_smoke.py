"""Smoke run of bench/hotpath.py (real `relayroom serve`, aiortc peers) so that it does not rot."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.slow
def test_hotpath_benchmark_quick_run_reports_cost_latency_and_memory() -> None:
    proc = subprocess.run(
        [sys.executable, str(ROOT / "bench" / "hotpath.py"), "--quick"],
        capture_output=True,
        text=True,
        timeout=180,
        cwd=ROOT,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = proc.stdout.strip().splitlines()
    assert out[-1].startswith("hotpath: 2 subs; this ")
    median = json.loads("\n".join(out[:-1]))["trees"]["this"]["median"]
    # two subscribers of ~190 video + 50 audio packets/s each
    assert median["forwarded_pps"] > 300
    assert median["cpu_us_per_forwarded_packet"] > 0
    assert median["audio_delivered"] > 0.9
    assert median["video_delivered"] > 0.9
    assert median["video_p99_ms"] is not None and median["audio_p99_ms"] is not None
    assert median["rss_mb_idle"] > 10
