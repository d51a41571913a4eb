"""In-process forwarding micro-benchmark: relayroom's RTP-level relay against aiortc's MediaRelay.

This is a micro-benchmark of the forwarding path, not the headline comparison: it drives a
`Room` inside a helper process (no `relayroom serve`, no signaling), measures 1 subscriber and
then N one after the other (not interleaved), and its subscribers stop running aiortc's receive
path once their stamps are calibrated (so they send no NACK/PLI and fewer receiver reports). Its
"marginal" packet rate leaves out the cost of receiving the publisher. Use it to compare two
versions of the forwarding code on the same machine; for figures to quote, use
`bench/sfu_compare.py` (the real server against Janus, total cost first).

One publisher (stamped VP8 video + Opus) and N subscribers, each in its own process, all on
loopback. For each relay, the relay process's CPU is measured (all threads, from
/proc/<pid>/task/*/schedstat) with 1 subscriber and with N subscribers; the difference divided
by N-1 is the CPU per added subscriber. Also reported:

- forwarded RTP packets per second per core: packets the relay sent to subscribers in the
  window, per second of relay CPU (total, and marginal between 1 and N subscribers);
- added forwarding latency p50/p99: for each video frame, from the publisher sending its last
  (marker) packet to a subscriber receiving that packet, in the N-subscriber window (frames
  matched by the counter stamped in their pixels; all processes share CLOCK_MONOTONIC). For
  MediaRelay this includes its decode and re-encode;
- join-to-first-frame: from a subscriber asking to join to its first decoded frame.

A relay is ``saturated`` when it delivers less than 85% of N full streams or uses >= 95% of a
core; then no ratio is printed (a saturated MediaRelay's CPU says nothing about its cost per
subscriber). ``added_subscribers_delivered`` tells how many subscribers' worth it delivered.

Prints one JSON object, then a one-line summary. Run inside a loopback-only namespace:

    unshare -rn sh -c 'ip link set lo up && exec .venv/bin/python bench/forwarding.py'
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import fractions
import glob
import json
import multiprocessing as mp
import os
import statistics
import sys
import time
from multiprocessing.connection import Connection
from typing import Any

from relayroom.loadtest.probe import percentile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)

VIDEO_CLOCK = 90000
BLOCK = 16
LOOPBACK = ("127.0.0.1",)

FLOOR_RATIO = 20.0
FLOOR_PPS_PER_CORE = 20_000.0
FLOOR_LATENCY_P50_MS = 5.0


# ------------------------------------------------------------------------- helpers (children)


def _stamp(y: Any, counter: int) -> None:
    value = (counter & 0xFFFF) | ((~counter & 0xFFFF) << 16)
    for i in range(32):
        row, col = divmod(i, 16)
        y[row * BLOCK : (row + 1) * BLOCK, col * BLOCK : (col + 1) * BLOCK] = (
            235 if (value >> i) & 1 else 16
        )


def _read_stamp(y: Any) -> int | None:
    value = 0
    for i in range(32):
        row, col = divmod(i, 16)
        cy, cx = row * BLOCK + BLOCK // 2, col * BLOCK + BLOCK // 2
        if y[cy - 3 : cy + 3, cx - 3 : cx + 3].mean() > 128:
            value |= 1 << i
    counter = value & 0xFFFF
    return counter if (value >> 16) == (~counter & 0xFFFF) else None


def _client_pc() -> Any:
    from aiortc import RTCConfiguration, RTCPeerConnection
    from aiortc.rtcconfiguration import RTCBundlePolicy

    return RTCPeerConnection(
        RTCConfiguration(iceServers=[], bundlePolicy=RTCBundlePolicy.MAX_BUNDLE)
    )


async def _serve(conn: Connection, handle: Any) -> None:
    """Answer requests from the parent until 'stop'."""
    loop = asyncio.get_running_loop()
    while True:
        msg = await loop.run_in_executor(None, conn.recv)
        if msg[0] == "stop":
            conn.send(("ok", None))
            return
        try:
            reply = await handle(*msg)
            conn.send(("ok", reply))
        except Exception as exc:  # report to the parent, keep serving
            conn.send(("error", repr(exc)))


# ------------------------------------------------------------------------- publisher process


def publisher_main(conn: Connection, width: int, height: int, fps: int) -> None:
    asyncio.run(_publisher(conn, width, height, fps))


async def _publisher(conn: Connection, width: int, height: int, fps: int) -> None:
    import av
    import numpy as np
    from aiortc import RTCSessionDescription
    from aiortc.mediastreams import AudioStreamTrack, MediaStreamTrack

    from relayroom.media.aiortc_hooks import configure_ice

    class Stamped(MediaStreamTrack):  # type: ignore[misc]
        kind = "video"

        def __init__(self) -> None:
            super().__init__()
            self.counter = 0
            self.start: float | None = None
            self.rng = np.random.default_rng(1)
            self.base = np.full((height * 3 // 2, width), 128, np.uint8)

        async def recv(self) -> Any:
            now = time.monotonic()
            if self.start is None:
                self.start = now
            due = self.start + self.counter / fps
            if due > now:
                await asyncio.sleep(due - now)
            arr = self.base.copy()
            y = arr[:height]
            x = (self.counter * 6) % width
            y[40:, max(0, x - 12) : x + 12] = 220
            rows = slice(height - height // 3, height)
            y[rows] = self.rng.integers(70, 180, y[rows].shape, dtype=np.uint8)
            _stamp(y, self.counter)
            frame = av.VideoFrame.from_ndarray(arr, format="yuv420p")
            frame.pts = self.counter * (VIDEO_CLOCK // fps)
            frame.time_base = fractions.Fraction(1, VIDEO_CLOCK)
            self.counter += 1
            return frame

    pc = _client_pc()
    video = pc.addTransceiver(Stamped(), direction="sendonly")
    pc.addTransceiver(AudioStreamTrack(), direction="sendonly")
    sent_at: dict[int, float] = {}  # counter -> send time of the frame's last packet
    first_ts: list[int] = []

    def hook_transport() -> None:
        dtls: Any = video.sender.transport
        original = dtls._send_rtp
        video_ssrc = video.sender._ssrc

        async def send_rtp(data: bytes) -> None:
            await original(data)
            if (
                len(data) >= 12
                and data[1] & 0x80
                and int.from_bytes(data[8:12], "big") == video_ssrc
            ):
                ts = int.from_bytes(data[4:8], "big")
                if not first_ts:
                    first_ts.append(ts)
                counter = round(((ts - first_ts[0]) & 0xFFFFFFFF) / (VIDEO_CLOCK / fps))
                sent_at[counter & 0xFFFF] = time.monotonic()

        dtls._send_rtp = send_rtp

    hook_transport()

    async def handle(op: str, *args: Any) -> Any:
        if op == "offer":
            configure_ice(pc, LOOPBACK)
            await pc.setLocalDescription(await pc.createOffer())
            return pc.localDescription.sdp
        if op == "answer":
            await pc.setRemoteDescription(RTCSessionDescription(args[0], "answer"))
            return None
        if op == "results":
            return {"sent_at": dict(sent_at)}
        raise ValueError(op)

    try:
        await _serve(conn, handle)
    finally:
        await pc.close()


# ------------------------------------------------------------------------- subscriber process


def subscriber_main(conn: Connection, fps: int) -> None:
    asyncio.run(_subscriber(conn, fps))


async def _subscriber(conn: Connection, fps: int) -> None:
    import numpy as np
    from aiortc import RTCSessionDescription
    from aiortc.mediastreams import MediaStreamError

    from relayroom.media.aiortc_hooks import configure_ice

    pc = _client_pc()
    frames: list[tuple[int, float]] = []  # (counter, arrival of the frame's marker packet)
    state: dict[str, Any] = {"joined_at": None, "first_frame_at": None, "decoded": 0}
    # Decoding every frame would make subscribers the busiest processes on the machine and
    # their event loops late; frames are decoded only until the stamps have shown the constant
    # offset between RTP timestamps and frame counters, then marker packets alone are timed.
    period = VIDEO_CLOCK / fps
    offsets: list[int] = []
    calibrated: dict[str, int] = {}
    tasks: list[asyncio.Task[Any]] = []

    marker_at: dict[int, float] = {}  # RTP timestamp -> arrival of its marker packet
    raw_of: dict[int, int] = {}  # decoder pts -> RTP timestamp

    def trim(d: dict[int, Any]) -> None:
        if len(d) > 4000:
            for key in list(d)[:2000]:
                del d[key]

    class MapperTap:
        """Wraps the receiver's timestamp mapper: remembers which RTP timestamp a pts came from."""

        def __init__(self, inner: Any) -> None:
            self.inner = inner

        def map(self, timestamp: int) -> int:
            mapped: int = self.inner.map(timestamp)
            raw_of[mapped] = timestamp
            trim(raw_of)
            return mapped

    def tap_receiver(receiver: Any) -> None:
        receiver._RTCRtpReceiver__timestamp_mapper = MapperTap(
            receiver._RTCRtpReceiver__timestamp_mapper
        )
        original = receiver._handle_rtp_packet

        async def handle(packet: Any, arrival_time_ms: int) -> None:
            offset = calibrated.get("offset")
            if offset is not None:
                if packet.marker:
                    delta = (packet.timestamp - offset) & 0xFFFFFFFF
                    frames.append((round(delta / period) & 0xFFFF, time.monotonic()))
                return  # no jitter buffer, no decoding any more
            if packet.marker:
                marker_at[packet.timestamp] = time.monotonic()
                trim(marker_at)
            await original(packet, arrival_time_ms)

        receiver._handle_rtp_packet = handle

    async def read(track: Any) -> None:
        try:
            while True:
                frame = await track.recv()
                if track.kind != "video":
                    continue
                plane = frame.planes[0]
                y = np.frombuffer(bytes(plane), np.uint8).reshape(frame.height, plane.line_size)
                counter = _read_stamp(y)
                state["decoded"] += 1
                if counter is None:
                    continue
                if state["first_frame_at"] is None:
                    state["first_frame_at"] = time.monotonic()
                raw = raw_of.get(frame.pts)
                at = marker_at.get(raw) if raw is not None else None
                if at is not None and raw is not None:
                    frames.append((counter, at))
                    offsets.append((raw - round(counter * period)) & 0xFFFFFFFF)
                    recent = offsets[-5:]
                    if len(recent) == 5 and max(recent) - min(recent) <= 4:
                        calibrated["offset"] = sorted(recent)[2]
                        return
        except MediaStreamError:
            pass

    @pc.on("track")
    def on_track(track: Any) -> None:
        for t in pc.getTransceivers():
            if t.receiver.track is track and track.kind == "video":
                tap_receiver(t.receiver)
        tasks.append(asyncio.ensure_future(read(track)))

    async def handle(op: str, *args: Any) -> Any:
        if op == "offer":
            sdp, joined_at = args
            if state["joined_at"] is None:
                state["joined_at"] = joined_at
            await pc.setRemoteDescription(RTCSessionDescription(sdp, "offer"))
            configure_ice(pc, LOOPBACK)
            await pc.setLocalDescription(await pc.createAnswer())
            return pc.localDescription.sdp
        if op == "status":
            return {"decoded": state["decoded"], "first_frame_at": state["first_frame_at"]}
        if op == "ping":
            return None
        if op == "results":
            return {
                "frames": list(frames),
                "joined_at": state["joined_at"],
                "first_frame_at": state["first_frame_at"],
                "decoded": state["decoded"],
            }
        raise ValueError(op)

    try:
        await _serve(conn, handle)
    finally:
        for task in tasks:
            task.cancel()
        await pc.close()


# ------------------------------------------------------------------------- relay processes


def relay_main(conn: Connection, kind: str) -> None:
    asyncio.run(_relayroom(conn) if kind == "relayroom" else _mediarelay(conn))


async def _relayroom(conn: Connection) -> None:
    from relayroom.media import MediaSettings, Room, SubscribeOffer

    offers: dict[str, asyncio.Queue[str]] = {}

    def on_event(event: Any) -> None:
        if isinstance(event, SubscribeOffer):
            offers.setdefault(event.participant_id, asyncio.Queue()).put_nowait(event.sdp)

    room = Room(
        "bench",
        MediaSettings(ice_hosts=LOOPBACK, allow_loopback_candidates=True),
        on_event,
    )

    async def handle(op: str, *args: Any) -> Any:
        if op == "publish":
            p = await room.add_participant("publisher", can_publish=True, can_subscribe=False)
            return await p.publish_offer(args[0])
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
            p = room.participant("publisher")
            forwarded = 0
            if p is not None:
                forwarded = sum(leg.stats.packets for hub in p.published_hubs() for leg in hub.legs)
            return {"forwarded": forwarded}
        raise ValueError(op)

    try:
        await _serve(conn, handle)
    finally:
        await room.close()


async def _mediarelay(conn: Connection) -> None:
    from aiortc import RTCSessionDescription
    from aiortc.contrib.media import MediaRelay

    from relayroom.media.aiortc_hooks import configure_ice

    relay = MediaRelay()
    publisher = _client_pc()
    tracks: dict[str, Any] = {}
    subscribers: dict[str, Any] = {}

    @publisher.on("track")
    def on_track(track: Any) -> None:
        tracks[track.kind] = track

    async def handle(op: str, *args: Any) -> Any:
        if op == "publish":
            await publisher.setRemoteDescription(RTCSessionDescription(args[0], "offer"))
            configure_ice(publisher, LOOPBACK)
            await publisher.setLocalDescription(await publisher.createAnswer())
            return publisher.localDescription.sdp
        if op == "subscribe":
            pc = _client_pc()
            subscribers[args[0]] = pc
            for kind in ("video", "audio"):
                pc.addTransceiver(relay.subscribe(tracks[kind], buffered=False), "sendonly")
            configure_ice(pc, LOOPBACK)
            await pc.setLocalDescription(await pc.createOffer())
            return pc.localDescription.sdp
        if op == "answer":
            await subscribers[args[0]].setRemoteDescription(
                RTCSessionDescription(args[1], "answer")
            )
            return None
        if op == "stats":
            forwarded = 0
            for pc in subscribers.values():
                for sender in pc.getSenders():
                    forwarded += sender._RTCRtpSender__packet_count
            return {"forwarded": forwarded}
        raise ValueError(op)

    try:
        await _serve(conn, handle)
    finally:
        for pc in subscribers.values():
            await pc.close()
        await publisher.close()


# ------------------------------------------------------------------------- parent


class Child:
    def __init__(self, ctx: Any, target: Any, *args: Any) -> None:
        self.conn, child_conn = ctx.Pipe()
        self.proc = ctx.Process(target=target, args=(child_conn, *args), daemon=True)
        self.proc.start()

    def call(self, *msg: Any, timeout: float = 30.0) -> Any:
        self.conn.send(msg)
        if not self.conn.poll(timeout):
            raise TimeoutError(f"{msg[0]} timed out")
        status, value = self.conn.recv()
        if status != "ok":
            raise RuntimeError(f"{msg[0]} failed: {value}")
        return value

    def stop(self) -> None:
        with contextlib.suppress(Exception):
            self.call("stop", timeout=10)
        self.proc.join(5)
        if self.proc.is_alive():
            self.proc.kill()
            self.proc.join(5)


def cpu_seconds(pid: int) -> float:
    """CPU time of every thread of a process, from schedstat (ns), else from stat (ticks)."""
    total = 0
    paths = glob.glob(f"/proc/{pid}/task/*/schedstat")
    if paths:
        for path in paths:
            try:
                with open(path) as f:
                    total += int(f.read().split()[0])
            except (OSError, ValueError, IndexError):
                continue
        return total / 1e9
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def wait_until(predicate: Any, timeout: float, step: float = 0.05) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(step)
    return False


def measure(relay: Child, seconds: float) -> dict[str, float]:
    pid = relay.proc.pid
    assert pid is not None
    cpu0, fwd0, t0 = cpu_seconds(pid), relay.call("stats")["forwarded"], time.monotonic()
    time.sleep(seconds)
    cpu1, fwd1, t1 = cpu_seconds(pid), relay.call("stats")["forwarded"], time.monotonic()
    elapsed = t1 - t0
    return {
        "cpu": (cpu1 - cpu0) / elapsed,
        "forwarded_pps": (fwd1 - fwd0) / elapsed,
    }


def run_relay(ctx: Any, kind: str, args: argparse.Namespace) -> dict[str, Any]:
    relay = Child(ctx, relay_main, kind)
    publisher = Child(ctx, publisher_main, args.width, args.height, args.fps)
    subscribers: list[Child] = []
    try:
        offer = publisher.call("offer")
        publisher.call("answer", relay.call("publish", offer))

        def join(i: int) -> Child:
            sub = Child(ctx, subscriber_main, args.fps)
            sub.call("ping")  # started and imported: the join starts now
            joined_at = time.monotonic()
            sdp = relay.call("subscribe", f"sub{i}")
            relay.call("answer", f"sub{i}", sub.call("offer", sdp, joined_at))
            subscribers.append(sub)
            return sub

        def all_decoding() -> bool:
            return all(s.call("status")["first_frame_at"] is not None for s in subscribers)

        join(0)
        if not wait_until(all_decoding, 15):
            raise RuntimeError(f"{kind}: first subscriber got no frame")
        time.sleep(args.warmup)
        one = measure(relay, args.window)
        for i in range(1, args.subscribers):
            join(i)
        if not wait_until(all_decoding, 20):
            raise RuntimeError(f"{kind}: a subscriber got no frame")
        time.sleep(args.warmup)
        window_start = time.monotonic()
        many = measure(relay, args.window)

        sent_at: dict[int, float] = publisher.call("results")["sent_at"]
        latencies: list[float] = []
        joins: list[float] = []
        decoded: list[int] = []
        for sub in subscribers:
            res = sub.call("results")
            decoded.append(res["decoded"])
            if res["first_frame_at"] is not None and res["joined_at"] is not None:
                joins.append(res["first_frame_at"] - res["joined_at"])
            for counter, at in res["frames"]:
                sent = sent_at.get(counter)
                if sent is not None and at >= window_start and 0 <= at - sent < 5:
                    latencies.append((at - sent) * 1000)
        added = max(1, args.subscribers - 1)
        per_sub = (many["cpu"] - one["cpu"]) / added
        marginal_pps = many["forwarded_pps"] - one["forwarded_pps"]
        # A saturated relay (MediaRelay on a busy machine) delivers less than N full streams:
        # its figures are reported, but no ratio is made from them.
        delivered = marginal_pps / one["forwarded_pps"] if one["forwarded_pps"] else 0.0
        return {
            "cpu_1_sub": one["cpu"],
            "cpu_n_subs": many["cpu"],
            "cpu_per_added_subscriber": per_sub,
            "added_subscribers_delivered": delivered,
            "saturated": delivered < 0.85 * added or many["cpu"] >= 0.95,
            "forwarded_pps_n_subs": many["forwarded_pps"],
            "forwarded_pps_per_core": many["forwarded_pps"] / many["cpu"] if many["cpu"] else None,
            "marginal_forwarded_pps_per_core": (
                marginal_pps / (many["cpu"] - one["cpu"]) if many["cpu"] > one["cpu"] else None
            ),
            "latency_ms_p50": percentile(latencies, 50),
            "latency_ms_p99": percentile(latencies, 99),
            "latency_samples": len(latencies),
            "join_to_first_frame_s_median": statistics.median(joins) if joins else None,
            "join_to_first_frame_s_max": max(joins) if joins else None,
            "frames_decoded": decoded,
        }
    finally:
        for sub in subscribers:
            sub.stop()
        publisher.stop()
        relay.stop()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--subscribers", type=int, default=4)
    parser.add_argument("--window", type=float, default=6.0, help="seconds per CPU window")
    parser.add_argument("--warmup", type=float, default=2.0)
    parser.add_argument("--width", type=int, default=640)
    parser.add_argument("--height", type=int, default=480)
    parser.add_argument("--fps", type=int, default=30)
    parser.add_argument("--relays", default="relayroom,mediarelay")
    parser.add_argument("--quick", action="store_true", help="smoke run: 2 subscribers, short")
    parser.add_argument("--strict", action="store_true", help="exit 1 if a floor is missed")
    args = parser.parse_args(argv)
    if args.quick:
        args.subscribers, args.window, args.warmup = 2, 2.0, 1.0
        args.width, args.height = 320, 240
    if args.subscribers < 2:
        parser.error("--subscribers must be at least 2")

    ctx = mp.get_context("spawn")
    started = time.monotonic()
    results: dict[str, Any] = {}
    for kind in args.relays.split(","):
        results[kind] = run_relay(ctx, kind, args)

    report: dict[str, Any] = {
        "benchmark": "forwarding",
        "config": {
            "subscribers": args.subscribers,
            "video": f"VP8 {args.width}x{args.height} {args.fps} fps + Opus",
            "window_s": args.window,
            "quick": args.quick,
            "cpus": os.cpu_count(),
        },
        "relays": results,
        "elapsed_s": round(time.monotonic() - started, 1),
    }
    ours = results.get("relayroom")
    base = results.get("mediarelay")
    floors: dict[str, bool] = {}
    if ours and base:
        # No ratio from a saturated run: the saturated side's CPU is capped, not its cost.
        report["cpu_per_subscriber_ratio"] = None
        if not ours["saturated"] and not base["saturated"]:
            ours_per = max(ours["cpu_per_added_subscriber"], 1e-4)
            report["cpu_per_subscriber_ratio"] = base["cpu_per_added_subscriber"] / ours_per
            floors["cpu_ratio_ge_20x"] = report["cpu_per_subscriber_ratio"] >= FLOOR_RATIO
    if ours:
        pps = ours["marginal_forwarded_pps_per_core"] or ours["forwarded_pps_per_core"] or 0
        floors["pps_per_core_ge_20000"] = pps >= FLOOR_PPS_PER_CORE
        p50 = ours["latency_ms_p50"]
        floors["latency_p50_le_5ms"] = p50 is not None and p50 <= FLOOR_LATENCY_P50_MS
    report["floors"] = floors
    print(json.dumps(report, indent=2))

    def pct(v: float | None) -> str:
        return "n/a" if v is None else f"{100 * v:.2f}%"

    def num(v: float | None, fmt: str) -> str:
        return "n/a" if v is None else format(v, fmt)

    if ours:
        per_sub = pct(ours["cpu_per_added_subscriber"])
        line = f"forwarding (in-process): {args.subscribers} subs; relayroom {per_sub} of a core"
        line += " per added subscriber"
        if base:
            ratio = report["cpu_per_subscriber_ratio"]
            saturated = [
                k for k, v in (("relayroom", ours), ("MediaRelay", base)) if v["saturated"]
            ]
            line += f" vs MediaRelay {pct(base['cpu_per_added_subscriber'])}"
            line += f" ({ratio:.0f}x)" if ratio is not None else f" ({', '.join(saturated)}"
            line += "" if ratio is not None else " saturated: no ratio)"
        line += (
            f"; {num(ours['forwarded_pps_per_core'], ',.0f')} pkt/s per core total"
            f" (marginal, without receiving the publisher,"
            f" {num(ours['marginal_forwarded_pps_per_core'], ',.0f')})"
            f"; added latency p50 {num(ours['latency_ms_p50'], '.2f')} ms"
            f" p99 {num(ours['latency_ms_p99'], '.2f')} ms"
            f"; join-to-first-frame {num(ours['join_to_first_frame_s_median'], '.2f')} s"
            f"; floors {'OK' if floors and all(floors.values()) else 'MISSED ' + str(floors)}"
        )
        print(line)
    return 1 if args.strict and not all(floors.values()) else 0


if __name__ == "__main__":
    sys.exit(main())
