"""One measurement window: the server's CPU and memory, and what the clients saw."""

from __future__ import annotations

import asyncio
import statistics
import time
from typing import Any

from bench.sfu import netns, procstat
from bench.sfu.clients import Child
from relayroom.loadtest.probe import percentile

SATURATED_CPU = 0.95  # of the one core the server is pinned to
COLLAPSED_FPS = 0.8  # subscribers' median fps below this share of the publisher's
SLOW_PUBLISHER = 0.9  # the publisher below this share of its target fps: the load generator
# itself is starved, and the window says nothing about the server


async def window(
    server_pid: int, publisher: Child, subscribers: list[Child], seconds: float, target_fps: int
) -> dict[str, Any]:
    """Measure for ``seconds``; figures are per second of wall time unless named otherwise."""
    clients = [publisher, *subscribers]
    t0, cpu0 = time.time(), procstat.cpu_seconds(server_pid)
    client0 = sum(procstat.cpu_seconds(c.pid) for c in clients)
    drops0 = netns.udp_drops()
    await asyncio.sleep(seconds)
    drops = netns.drops_between(drops0, netns.udp_drops())
    t1, cpu1 = time.time(), procstat.cpu_seconds(server_pid)
    client1 = sum(procstat.cpu_seconds(c.pid) for c in clients)
    elapsed = t1 - t0
    rss = procstat.rss_bytes(server_pid)
    load = procstat.load_average()
    sent = await publisher.acall("summary", t0, t1)
    subs = await asyncio.gather(*(s.acall("summary", t0, t1) for s in subscribers))

    cpu_s = cpu1 - cpu0
    packets = sum(s["rtp_packets"] for s in subs)
    fps = [s["frames"] / elapsed for s in subs]
    sent_fps = sent["video_frames"] / elapsed
    latencies = [v for s in subs for v in s["latencies_ms"]]
    expected = sum(s["rtp_expected"] for s in subs)
    audio_sent = sent["audio_frames"] * len(subs)
    out: dict[str, Any] = {
        "subscribers": len(subs),
        "seconds": round(elapsed, 3),
        "server_cpu": cpu_s / elapsed,
        "server_cpu_seconds": cpu_s,
        "forwarded_packets": packets,
        "forwarded_pps": packets / elapsed,
        "cpu_per_packet_us": cpu_s / packets * 1e6 if packets else None,
        "rss_mb": rss / 2**20,
        "sent_fps": sent_fps,
        "fps_median": statistics.median(fps) if fps else 0.0,
        "fps_min": min(fps) if fps else 0.0,
        "latency_ms_p50": percentile(latencies, 50),
        "latency_ms_p99": percentile(latencies, 99),
        "latency_samples": len(latencies),
        "audio_delivered_pct": (
            100 * sum(s["audio_frames"] for s in subs) / audio_sent if audio_sent else None
        ),
        "rtp_loss_pct": 100 * sum(s["rtp_lost"] for s in subs) / expected if expected else None,
        "frames_decoded": [s["decoded_total"] for s in subs],
        # Where datagrams were lost: a full receive buffer at the server or at a client.
        "udp_drops_server": drops["server"],
        "udp_drops_clients": drops["client"],
        "client_cpu": (client1 - client0) / elapsed,
        "load_1min": load,
    }
    reasons = []
    if out["server_cpu"] >= SATURATED_CPU:
        reasons.append("server_cpu")
    if out["fps_median"] < COLLAPSED_FPS * sent_fps or sent_fps == 0:
        reasons.append("fps_collapsed")
    if sent_fps < SLOW_PUBLISHER * target_fps:
        reasons.append("publisher_slow")
    out["saturated"] = reasons
    return out
