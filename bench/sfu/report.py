"""Medians of the repetitions, ratios relayroom/Janus side by side, and one line per N."""

from __future__ import annotations

import statistics
from typing import Any

SERVERS = ("relayroom", "janus")
# Figures given per server and N (medians of the repetitions), and which of them get a ratio.
FIGURES = (
    "server_cpu",
    "cpu_per_packet_us",
    "marginal_cpu_per_packet_us",
    "forwarded_pps",
    "rss_mb",
    "rss_per_subscriber_mb",
    "fps_median",
    "latency_ms_p50",
    "latency_ms_p99",
    "audio_delivered_pct",
    "rtp_loss_pct",
    "udp_drops_server",
    "udp_drops_clients",
    "client_cpu",
    "load_1min",
)
RATIOS = (
    "server_cpu",
    "cpu_per_packet_us",
    "marginal_cpu_per_packet_us",
    "rss_mb",
    "rss_per_subscriber_mb",
    "latency_ms_p50",
    "latency_ms_p99",
)


def _median(values: list[float | None]) -> float | None:
    present = [v for v in values if v is not None]
    return statistics.median(present) if present else None


def derive(session: dict[str, Any]) -> None:
    """Add the figures that compare windows of one session (marginal cost, RSS per subscriber)."""
    previous: dict[str, Any] | None = None
    for n in sorted(session["windows"]):
        w = session["windows"][n]
        w["rss_per_subscriber_mb"] = (w["rss_mb"] - session["rss_publisher_mb"]) / n
        w["marginal_cpu_per_packet_us"] = None
        if previous is not None:
            dp = w["forwarded_pps"] - previous["forwarded_pps"]
            dc = w["server_cpu"] - previous["server_cpu"]
            if dp > 0:
                w["marginal_cpu_per_packet_us"] = dc / dp * 1e6
        previous = w


def aggregate(
    runs: dict[str, list[dict[str, Any]]], steps: list[int], *, drop_saturated: bool = True
) -> list[dict[str, Any]]:
    """One row per N. A repetition in which either server saturated (or failed) is left out of
    the medians when another repetition did not; if none is clean, the row is saturated and
    has no ratio. With ``drop_saturated=False`` (the starved runs) every repetition counts."""
    reps = min(len(runs[s]) for s in SERVERS)
    rows = []
    for n in steps:
        clean: list[tuple[int, list[str]]] = []
        saturated: list[tuple[int, list[str]]] = []
        for i in range(reps):
            windows = {s: runs[s][i].get("windows", {}).get(n) for s in SERVERS}
            reasons = [
                f"{s}: {','.join(w['saturated']) if w else 'failed'}"
                for s, w in windows.items()
                if w is None or w["saturated"]
            ]
            (saturated if reasons else clean).append((i, reasons))
        used = [i for i, _ in clean] or [i for i, _ in saturated]
        if not drop_saturated:
            used = list(range(reps))
        row: dict[str, Any] = {
            "subscribers": n,
            "repetitions": reps,
            "repetitions_used": len(clean),
            "saturated": not clean,
            "saturated_repetitions": [{"repetition": i, "why": r} for i, r in saturated],
        }
        for s in SERVERS:
            wins = [runs[s][i]["windows"][n] for i in used if n in runs[s][i].get("windows", {})]
            row[s] = {f: _median([w.get(f) for w in wins]) for f in FIGURES}
            row[s]["rss_idle_mb"] = _median([runs[s][i].get("rss_idle_mb") for i in used])
            row[s]["idle_cpu"] = _median([runs[s][i].get("idle_cpu") for i in used])
        ratios: dict[str, float | None] = {}
        for f in (*RATIOS, "rss_idle_mb"):
            a, b = row["relayroom"].get(f), row["janus"].get(f)
            ratios[f] = a / b if clean and a is not None and b else None
        row["ratio_relayroom_to_janus"] = ratios
        rows.append(row)
    return rows


def _f(value: float | None, fmt: str) -> str:
    return "n/a" if value is None else format(value, fmt)


def summary_line(row: dict[str, Any]) -> str:
    r, j, q = row["relayroom"], row["janus"], row["ratio_relayroom_to_janus"]
    line = (
        f"sfu_compare N={row['subscribers']}: server CPU relayroom {_f(r['server_cpu'], '.1%')}"
        f" / janus {_f(j['server_cpu'], '.1%')} of a core"
    )
    line += (
        f" ({_f(q['server_cpu'], '.2f')}x)" if not row["saturated"] else " (SATURATED, no ratio)"
    )
    line += (
        f"; per packet {_f(r['cpu_per_packet_us'], '.0f')} / {_f(j['cpu_per_packet_us'], '.0f')} us"
        f" (marginal {_f(r['marginal_cpu_per_packet_us'], '.0f')}"
        f" / {_f(j['marginal_cpu_per_packet_us'], '.0f')})"
        f"; RSS idle {_f(r['rss_idle_mb'], '.0f')} / {_f(j['rss_idle_mb'], '.0f')} MB,"
        f" per sub {_f(r['rss_per_subscriber_mb'], '.2f')}"
        f" / {_f(j['rss_per_subscriber_mb'], '.2f')}"
        f"; fps {_f(r['fps_median'], '.1f')} / {_f(j['fps_median'], '.1f')}"
        f"; latency p50 {_f(r['latency_ms_p50'], '.0f')} / {_f(j['latency_ms_p50'], '.0f')} ms,"
        f" p99 {_f(r['latency_ms_p99'], '.0f')} / {_f(j['latency_ms_p99'], '.0f')}"
        f"; audio {_f(r['audio_delivered_pct'], '.1f')} / {_f(j['audio_delivered_pct'], '.1f')}%"
        f"; clients {_f(r['client_cpu'], '.0%')} / {_f(j['client_cpu'], '.0%')} of a core"
        f"; load {_f(r['load_1min'], '.1f')}"
        f"; {row['repetitions_used']}/{row['repetitions']} clean reps"
    )
    return line


def starve_line(row: dict[str, Any], share: float) -> str:
    parts = []
    for s in SERVERS:
        v = row[s]
        parts.append(
            f"{s} CPU {_f(v['server_cpu'], '.0%')} p50 {_f(v['latency_ms_p50'], '.0f')} ms"
            f" p99 {_f(v['latency_ms_p99'], '.0f')} ms,"
            f" audio {_f(v['audio_delivered_pct'], '.1f')}%,"
            f" fps {_f(v['fps_median'], '.1f')}, loss {_f(v['rtp_loss_pct'], '.1f')}%"
        )
    return (
        f"sfu_compare starved N={row['subscribers']} (server limited to ~{share:.0%} of its core"
        f" by a busy process, {row['repetitions']} reps): " + " | ".join(parts)
    )
