"""Smoke run of bench/whip.py (a real server process, Chromium, the eyevinn WHIP client)."""

from __future__ import annotations

import pytest

from tests.support.bench import run_bench


@pytest.mark.browser
def test_whip_bench_quick_reports_first_frame_times() -> None:
    run = run_bench("whip.py", "--quick")
    summary, report = run.summary, run.report
    assert summary.startswith("whip: publish to first browser frame p50")
    assert report["tries"] == 2 and len(report["seconds"]) == 2
    # Every try saw a frame; 5 s is far above the floor, only a broken path takes that long.
    assert all(0 < t < 5 for t in report["seconds"]), report
