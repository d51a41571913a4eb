"""Track pipes: what a piped track costs the receiving worker, against the same track published
there, and the latency the pipe adds.

Processes, all on loopback: a publisher (stamped VP8 video + Opus, aiortc), N subscribers (one
process each, aiortc, behaving like browsers: receiver reports, NACK, PLI), the receiving
worker (a media ``Room`` with a pipe endpoint) and, in the piped case, the origin worker (the
publisher's ``Room``, which pipes both tracks to the receiving worker over authenticated UDP,
``media/pipe.py``). The same N subscribers join the receiving worker in both cases:

- ``local``: the publisher publishes into the receiving worker (its SRTP receive path, RTCP);
- ``piped``: the publisher publishes into the origin worker; the receiving worker gets the
  tracks through pipes.

For each case the receiving worker's CPU (every thread, /proc schedstat) is measured over a
window, and the video latency from the publisher sending a frame's last packet to a subscriber
receiving it (frames matched by their stamped counter; one CLOCK_MONOTONIC). The cases run
interleaved (local, piped, local, piped, ...) and the medians are reported. The headline is the
ratio of the receiving worker's total CPU (piped / local: at most 1.0, the floor) and the added
latency p50 (piped - local: at most 2 ms). A case that delivers less than 85% of the frames is
``saturated`` and gives no ratio.

Prints one JSON object, then a one-line summary. Run inside a loopback-only namespace:

    unshare -rn sh -c 'ip link set lo up && exec .venv/bin/python bench/pipes.py'
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing as mp
import secrets
import statistics
import sys
import time
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.forwarding import (
    LOOPBACK,
    Child,
    _serve,
    cpu_seconds,
    publisher_main,
    subscriber_main,
    wait_until,
)
from relayroom.loadtest.probe import percentile

FLOOR_CPU_RATIO = 1.0
FLOOR_ADDED_P50_MS = 2.0


def worker_main(conn: Connection, secret: str) -> None:
    asyncio.run(_worker(conn, secret))


async def _worker(conn: Connection, secret: str) -> None:
    """A worker's media plane: one room, a pipe endpoint; driven by the parent."""
    from relayroom.media import MediaSettings, Room, SubscribeOffer
    from relayroom.media.pipe import PipedTrack, PipeEndpoint, PipeSettings
    from relayroom.media.pipe_wire import pipe_key

    offers: dict[str, asyncio.Queue[str]] = {}

    def on_event(event: Any) -> None:
        if isinstance(event, SubscribeOffer):
            offers.setdefault(event.participant_id, asyncio.Queue()).put_nowait(event.sdp)

    endpoint = PipeEndpoint(pipe_key(secret), PipeSettings())
    address = await endpoint.start()
    room = Room(
        "bench",
        MediaSettings(ice_hosts=LOOPBACK, allow_loopback_candidates=True),
        on_event,
        pipes=endpoint,
    )

    async def handle(op: str, *args: Any) -> Any:
        if op == "publish":
            p = await room.add_participant("publisher", can_publish=True, can_subscribe=False)
            return await p.publish_offer(args[0])
        if op == "tracks":
            p = room.participant("publisher")
            hubs = p.published_hubs() if p is not None else []
            return {"address": address, "tracks": [PipedTrack.of(h).to_wire() for h in hubs]}
        if op == "pipe_out":  # (publisher, track id, pipe id, far address)
            await room.pipe_track(args[0], args[1], args[2], tuple(args[3]))
            return None
        if op == "pipe_in":  # (track, pipe id, origin address) -> this worker's address
            room.receive_piped_track(PipedTrack.from_wire(args[0]), args[1], tuple(args[2]))
            return address
        if op == "subscribe":
            pid = args[0]
            offers.setdefault(pid, asyncio.Queue())
            await room.add_participant(pid, can_publish=False, can_subscribe=True)
            return await asyncio.wait_for(offers[pid].get(), 10)
        if op == "answer":
            p = room.participant(args[0])
            assert p is not None
            await p.subscribe_answer(args[1])
            return None
        if op == "stats":
            return {
                "forwarded": sum(leg.stats.packets for hub in room.hubs() for leg in hub.legs),
                "pipe_drops": sum(endpoint.counters.dropped.values()),
            }
        raise ValueError(op)

    try:
        await _serve(conn, handle)
    finally:
        await room.close()
        await endpoint.close()


def run_case(ctx: Any, piped: bool, args: argparse.Namespace) -> dict[str, Any]:
    secret = secrets.token_hex(16)
    worker = Child(ctx, worker_main, secret)
    origin = Child(ctx, worker_main, secret) if piped else None
    publisher = Child(ctx, publisher_main, args.width, args.height, args.fps)
    subscribers: list[Child] = []
    try:
        home = origin if origin is not None else worker
        publisher.call("answer", home.call("publish", publisher.call("offer")))
        if origin is not None:
            assert wait_until(lambda: len(origin.call("tracks")["tracks"]) == 2, 15)
            hello = origin.call("tracks")
            for track in hello["tracks"]:
                pipe_id = secrets.randbits(32) | 1
                far = worker.call("pipe_in", track, pipe_id, hello["address"])
                origin.call("pipe_out", track["publisher"], track["track"]["id"], pipe_id, far)
        for i in range(args.subscribers):
            sub = Child(ctx, subscriber_main, args.fps)
            sub.call("ping")
            sdp = worker.call("subscribe", f"sub{i}")
            worker.call("answer", f"sub{i}", sub.call("offer", sdp, time.monotonic()))
            subscribers.append(sub)
        if not wait_until(
            lambda: all(s.call("status")["first_frame_at"] is not None for s in subscribers), 30
        ):
            raise RuntimeError("a subscriber got no frame")
        time.sleep(args.warmup)
        pid = worker.proc.pid
        assert pid is not None
        cpu0, fwd0, t0 = cpu_seconds(pid), worker.call("stats")["forwarded"], time.monotonic()
        time.sleep(args.window)
        cpu1, stats, t1 = cpu_seconds(pid), worker.call("stats"), time.monotonic()
        elapsed = t1 - t0
        sent_at: dict[int, float] = publisher.call("results")["sent_at"]
        latencies: list[float] = []
        frames = 0
        for sub in subscribers:
            for counter, at in sub.call("results")["frames"]:
                if t0 <= at <= t1:
                    frames += 1
                    sent = sent_at.get(counter)
                    if sent is not None and 0 <= at - sent < 5:
                        latencies.append((at - sent) * 1000)
        expected = args.fps * elapsed * args.subscribers
        return {
            "worker_cpu": (cpu1 - cpu0) / elapsed,
            "forwarded_pps": (stats["forwarded"] - fwd0) / elapsed,
            "latency_ms_p50": percentile(latencies, 50),
            "latency_ms_p99": percentile(latencies, 99),
            "latency_samples": len(latencies),
            "frames_delivered": frames / expected if expected else 0.0,
            "saturated": frames < 0.85 * expected,
            "pipe_drops": stats["pipe_drops"],
        }
    finally:
        for sub in subscribers:
            sub.stop()
        publisher.stop()
        if origin is not None:
            origin.stop()
        worker.stop()


def _median(runs: list[dict[str, Any]], key: str) -> float | None:
    values = [r[key] for r in runs if r[key] is not None]
    return statistics.median(values) if values else None


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--subscribers", type=int, default=4)
    parser.add_argument("--window", type=float, default=8.0, help="seconds per CPU window")
    parser.add_argument("--warmup", type=float, default=2.0)
    parser.add_argument("--repeats", type=int, default=3, help="local/piped pairs, interleaved")
    parser.add_argument("--width", type=int, default=640)
    parser.add_argument("--height", type=int, default=360)
    parser.add_argument("--fps", type=int, default=30)
    parser.add_argument("--quick", action="store_true", help="smoke run: 1 pair, short")
    parser.add_argument("--strict", action="store_true", help="exit 1 if a floor is missed")
    args = parser.parse_args(argv)
    if args.quick:
        args.subscribers, args.window, args.warmup, args.repeats = 2, 3.0, 1.0, 1
        args.width, args.height = 320, 240
    ctx = mp.get_context("spawn")
    started = time.monotonic()
    runs: dict[str, list[dict[str, Any]]] = {"local": [], "piped": []}
    for _ in range(args.repeats):
        for case in ("local", "piped"):
            runs[case].append(run_case(ctx, case == "piped", args))
    summary = {
        case: {
            "worker_cpu": _median(r, "worker_cpu"),
            "latency_ms_p50": _median(r, "latency_ms_p50"),
            "latency_ms_p99": _median(r, "latency_ms_p99"),
            "frames_delivered": _median(r, "frames_delivered"),
            "saturated": any(x["saturated"] for x in r),
        }
        for case, r in runs.items()
    }
    local, piped = summary["local"], summary["piped"]
    comparable = not local["saturated"] and not piped["saturated"]
    ratio = (
        piped["worker_cpu"] / local["worker_cpu"]
        if comparable and local["worker_cpu"] and piped["worker_cpu"] is not None
        else None
    )
    added = (
        piped["latency_ms_p50"] - local["latency_ms_p50"]
        if local["latency_ms_p50"] is not None and piped["latency_ms_p50"] is not None
        else None
    )
    meets = (
        ratio is not None
        and ratio <= FLOOR_CPU_RATIO
        and added is not None
        and added <= FLOOR_ADDED_P50_MS
    )
    report = {
        "benchmark": "pipes",
        "config": {
            "subscribers": args.subscribers,
            "window_s": args.window,
            "repeats": args.repeats,
            "video": f"{args.width}x{args.height}@{args.fps} VP8 + Opus",
        },
        "summary": summary,
        "cpu_ratio_piped_over_local": ratio,
        "added_latency_ms_p50": added,
        "floors": {"cpu_ratio": FLOOR_CPU_RATIO, "added_latency_ms_p50": FLOOR_ADDED_P50_MS},
        "meets_floors": meets,
        "runs": runs,
        "elapsed_s": time.monotonic() - started,
    }
    print(json.dumps(report, indent=2))
    ratio_text = f"{ratio:.2f}" if ratio is not None else "n/a (saturated)"
    added_text = f"{added:+.1f} ms" if added is not None else "n/a"
    print(
        f"pipes: receiving worker CPU piped/local {ratio_text} "
        f"({piped['worker_cpu'] or 0:.1%} / {local['worker_cpu'] or 0:.1%} of a core, "
        f"{args.subscribers} subscribers), added latency p50 {added_text}"
    )
    return 1 if args.strict and not meets else 0


if __name__ == "__main__":
    sys.exit(main())
