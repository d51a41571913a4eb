"""bench/sfu_compare.py: a smoke run against both real servers, and its saturation rule."""

from __future__ import annotations

import math
import os
from typing import Any

import pytest

from bench import sfu_compare
from bench.sfu import report
from tests.support.bench import run_bench


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_quick_run_measures_both_servers_side_by_side() -> None:
    run = run_bench("sfu_compare.py", "--quick", timeout=280)
    out = run.report
    assert [line.split(":")[0] for line in run.lines] == [
        "sfu_compare N=1",
        "sfu_compare N=2",
    ]
    assert out["errors"] == []
    cpus = len(os.sched_getaffinity(0))
    if cpus >= 2:
        assert out["config"]["pinning"].startswith("server on CPU"), out["config"]
    if 2 <= cpus < 4:  # the subscribers also use what the server leaves of its core
        assert out["config"]["pinning"].endswith("at nice 19 (taskset, autogroup)"), out
    assert "1.1" in out["config"]["janus"]
    assert [row["subscribers"] for row in out["results"]] == [1, 2]
    for row in out["results"]:
        for server in report.SERVERS:
            got = row[server]
            assert got["fps_median"] >= 10, (server, got)
            p50, p99 = got["latency_ms_p50"], got["latency_ms_p99"]
            assert p50 is not None and p99 is not None, (server, got)
            assert 0 < p50 <= p99 < 10_000 and math.isfinite(p99), (server, got)
            assert got["audio_delivered_pct"] >= 50, (server, got)
            assert got["server_cpu"] > 0 and got["cpu_per_packet_us"] > 0, (server, got)
            assert got["forwarded_pps"] > 50 * row["subscribers"], (server, got)
            assert 1 < got["rss_idle_mb"] < got["rss_mb"], (server, got)
        ratios = row["ratio_relayroom_to_janus"]
        if row["saturated"]:
            assert set(ratios.values()) == {None}
        else:
            for figure in ("server_cpu", "cpu_per_packet_us", "rss_mb", "latency_ms_p50"):
                assert ratios[figure] is not None and ratios[figure] > 0, (figure, ratios)
    for runs in out["runs"].values():
        for run in runs:
            for window in run["windows"].values():
                assert min(window["frames_decoded"]) > 0, window


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_quick_starved_run_limits_both_servers_the_same_way() -> None:
    starved = run_bench("sfu_compare.py", "--quick", "--starve", timeout=280)
    out = starved.report
    assert starved.lines[0].startswith("sfu_compare starved N=2 (server limited to ~3% of its core")
    assert out["mode"] == "starve"
    assert out["config"]["starve"]["nominal_server_share_of_core"] == pytest.approx(29 / 1053)
    if len(os.sched_getaffinity(0)) >= 2:  # the subscribers stay off the starved core
        assert out["config"]["pinning"].endswith("at nice 0 (taskset, autogroup)"), out
    assert out["errors"] == []
    (row,) = out["results"]
    for server in report.SERVERS:
        got = row[server]
        assert got["latency_ms_p99"] is not None and got["audio_delivered_pct"] is not None
        assert got["fps_median"] is not None and got["rtp_loss_pct"] is not None
        (run,) = out["runs"][server]
        assert run["starved_by"] in ("autogroup nice 16", "nice 16 on every thread"), run


def _window(cpu: float, pps: float, saturated: list[str]) -> dict[str, Any]:
    return {
        "server_cpu": cpu,
        "forwarded_pps": pps,
        "cpu_per_packet_us": cpu / pps * 1e6,
        "rss_mb": 50.0,
        "saturated": saturated,
    }


def _session(windows: dict[int, dict[str, Any]]) -> dict[str, Any]:
    session = {"rss_idle_mb": 40.0, "rss_publisher_mb": 45.0, "windows": windows}
    report.derive(session)
    return session


def test_a_saturated_repetition_is_left_out_and_all_saturated_gives_no_ratio() -> None:
    ours = [
        _session({1: _window(0.10, 200, []), 4: _window(0.96, 500, ["server_cpu"])}),
        _session({1: _window(0.12, 200, []), 4: _window(0.97, 500, ["server_cpu"])}),
    ]
    janus = [
        _session({1: _window(0.05, 200, []), 4: _window(0.10, 800, [])}),
        _session({1: _window(0.06, 200, []), 4: _window(0.11, 800, [])}),
    ]
    one, four = report.aggregate({"relayroom": ours, "janus": janus}, [1, 4])
    assert not one["saturated"] and one["repetitions_used"] == 2
    assert one["ratio_relayroom_to_janus"]["server_cpu"] == pytest.approx(0.11 / 0.055)
    assert four["saturated"] and set(four["ratio_relayroom_to_janus"].values()) == {None}
    assert "SATURATED, no ratio" in report.summary_line(four)
    # Marginal cost per packet: the CPU added between N values over the packets added.
    assert four["janus"]["marginal_cpu_per_packet_us"] == pytest.approx(0.05 / 600 * 1e6)


def test_only_the_clean_repetitions_count_when_one_saturated() -> None:
    ours = [
        _session({2: _window(0.2, 400, [])}),
        _session({2: _window(0.9, 300, ["fps_collapsed"])}),
    ]
    janus = [_session({2: _window(0.1, 400, [])}), _session({2: _window(0.1, 400, [])})]
    (row,) = report.aggregate({"relayroom": ours, "janus": janus}, [2])
    assert row["repetitions_used"] == 1 and not row["saturated"]
    assert row["saturated_repetitions"] == [{"repetition": 1, "why": ["relayroom: fps_collapsed"]}]
    assert row["ratio_relayroom_to_janus"]["server_cpu"] == pytest.approx(2.0)


@pytest.mark.parametrize(
    "argv",
    [
        ["--subscribers", "0"],
        ["--subscribers", "four"],
        ["--repetitions", "0"],
        ["--width", "200"],
        ["--servers", "relayroom"],
    ],
)
def test_bad_arguments_are_refused_with_a_message(argv: list[str], capsys) -> None:
    with pytest.raises(SystemExit) as exc:
        sfu_compare._parse(argv)
    assert exc.value.code == 2
    assert "error:" in capsys.readouterr().err
