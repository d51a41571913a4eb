"""Smoke run of bench/recording.py so that it does not rot."""

from __future__ import annotations

import pytest

from tests.support.bench import run_bench


@pytest.mark.slow
def test_recording_benchmark_quick_run_reports_every_figure() -> None:
    run = run_bench("recording.py", "--quick")
    assert run.summary.startswith("recording: ")
    report = run.report
    assert report["server_cpu_forwarding"] > 0 and report["server_cpu_forwarding_and_recording"] > 0
    assert report["recorded_files"] == [2] and report["recorded_bytes"][0] > 50_000
    assert report["recorded_bitrate_bps_median"] > 300_000
    assert report["subscriber_frames"] > 30
    writer = report["container_writer"]
    assert (
        writer["frames"] > 20 and writer["own_us_per_frame"] > 0 and writer["pyav_us_per_frame"] > 0
    )
