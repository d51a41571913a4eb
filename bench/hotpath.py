"""Per-packet cost of the real ``relayroom serve`` process, code trees side by side.

One aiortc publisher (video at 30 fps in ~1.1 KB packets, ~190 packets/s, plus audio at 50
packets/s) and N aiortc subscribers, in two client processes, against a ``relayroom serve``
process started from each code tree given (``--tree NAME=PATH``; default: this tree), with the
repetitions interleaved (A B A B ...). The publisher sends pre-encoded synthetic frames (aiortc
only packetizes them, no encoder runs) that carry their send time (CLOCK_MONOTONIC, shared by all
processes); subscribers tap their receivers (``ReceiverTap``: aiortc's jitter buffer, NACK,
PLI and receiver reports run as for any receiver, nothing is decoded), so both sides stay cheap
and the server's cost dominates. Per run:

- server CPU (all threads, ``/proc/<pid>/task/*/schedstat``) per forwarded packet, in µs, and
  in % of a core: the headline (receiving the publisher included);
- packets forwarded per second (counted by the subscribers, retransmissions included);
- latency p50/p99 from the publisher's send time to a subscriber's arrival: video per frame
  (its last packet), audio per packet; and the fraction of frames/packets delivered;
- server RSS at idle, with the publisher only, and with N subscribers (per added subscriber).

``--cpu-limit F`` puts the server in a cgroup with a CPU quota of F cores; ``--starve`` pins
the server to core 0 next to a busy process (so it gets about half a core)
and the clients to core 1: the overload case, where latency must stay bounded.

Prints one JSON object, then a one-line summary. Medians over repetitions. Loopback only:

    python bench/hotpath.py --subscribers 8 --reps 3 --tree base=../main --tree new=.
    python bench/hotpath.py --quick
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
import struct
import subprocess
import sys
import tempfile
import time
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench.loopback import free_port, wait_port  # noqa: E402

SECRET = "hotpath-bench-secret-0123456789abcdef"
LOOPBACK = ("127.0.0.1",)
ROOM = "hotpath"
FPS = 30
VIDEO_CLOCK = 90000
AUDIO_CLOCK = 48000
KEY_EVERY = 30  # frames: a keyframe a second, so a joining subscriber starts soon
MAGIC_START = b"RRTS"
MAGIC_END = b"RRTE"
_STAMP = struct.Struct("!d")


# ------------------------------------------------------------------------------ client side


def _token(identity: str) -> str:
    from relayroom.signaling.tokens import mint_token

    return mint_token(SECRET, room=ROOM, identity=identity, ttl_s=3600, mode="sfu")


class _Ws:
    """A minimal signaling client: join, then a queue of messages."""

    def __init__(self, session: Any, url: str, identity: str) -> None:
        self.session, self.url, self.identity = session, url, identity
        self.inbox: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        self.ws: Any = None

    async def join(self) -> None:
        self.ws = await self.session.ws_connect(self.url)
        await self.ws.send_json({"type": "join", "room": ROOM, "token": _token(self.identity)})
        reply = await self.ws.receive_json(timeout=10)
        if reply.get("type") != "joined":
            raise RuntimeError(f"join failed: {reply}")
        asyncio.get_running_loop().create_task(self._read())

    async def _read(self) -> None:
        async for msg in self.ws:
            if msg.type.name == "TEXT":
                self.inbox.put_nowait(json.loads(msg.data))

    async def expect(self, kind: str, timeout: float = 20.0) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while True:
            msg = await asyncio.wait_for(self.inbox.get(), max(0.01, deadline - time.monotonic()))
            if msg.get("type") == kind:
                return msg


def _client_pc() -> Any:
    from aiortc import RTCConfiguration, RTCPeerConnection
    from aiortc.rtcconfiguration import RTCBundlePolicy

    from relayroom.media.aiortc_hooks import watch_renegotiation

    pc = RTCPeerConnection(RTCConfiguration(iceServers=[], bundlePolicy=RTCBundlePolicy.MAX_BUNDLE))
    watch_renegotiation(pc)
    return pc


def _stamped_track(kind: str, sent: list[float]) -> Any:
    """A track of pre-encoded packets, each stamped with its send time (start and end)."""
    import av
    from aiortc.mediastreams import MediaStreamError, MediaStreamTrack

    filler = os.urandom(20000)

    class Stamped(MediaStreamTrack):  # type: ignore[misc]
        def __init__(self) -> None:
            super().__init__()
            self.kind = kind
            self._n = 0
            self._start: float | None = None
            self._interval = 1 / FPS if kind == "video" else 0.02
            self._step = VIDEO_CLOCK // FPS if kind == "video" else 960
            self._base = fractions.Fraction(1, VIDEO_CLOCK if kind == "video" else AUDIO_CLOCK)

        async def recv(self) -> Any:
            if self.readyState != "live":
                raise MediaStreamError
            now = time.monotonic()
            if self._start is None:
                self._start = now
            due = self._start + self._n * self._interval
            if due > now:
                await asyncio.sleep(due - now)
            at = time.monotonic()
            stamp = _STAMP.pack(at)
            if kind == "video":
                key = self._n % KEY_EVERY == 0
                size = 18000 if key else 6000  # ~16 resp. ~6 packets
                # VP8 frame tag: bit 0 clear on a keyframe (what the relay looks for).
                tag = b"\x10\x00\x00" if key else b"\x11\x00\x00"
                body = tag + MAGIC_START + stamp + filler[:size] + MAGIC_END + stamp
            else:
                body = MAGIC_START + stamp + filler[:60]
            packet = av.Packet(body)
            packet.pts = self._n * self._step
            packet.time_base = self._base
            self._n += 1
            sent.append(at)
            return packet

    return Stamped()


async def _publisher_main(url: str, conn: Connection) -> None:
    import aiohttp
    from aiortc import RTCSessionDescription

    from relayroom.media.aiortc_hooks import configure_ice

    sent = {"video": [], "audio": []}  # type: dict[str, list[float]]
    async with aiohttp.ClientSession() as session:
        ws = _Ws(session, url, "publisher")
        await ws.join()
        pc = _client_pc()
        pc.addTransceiver(_stamped_track("video", sent["video"]), direction="sendonly")
        pc.addTransceiver(_stamped_track("audio", sent["audio"]), direction="sendonly")
        configure_ice(pc, LOOPBACK)
        await pc.setLocalDescription(await pc.createOffer())
        await ws.ws.send_json({"type": "publish_offer", "sdp": pc.localDescription.sdp})
        answer = await ws.expect("publish_answer")
        await pc.setRemoteDescription(RTCSessionDescription(answer["sdp"], "answer"))
        while not sent["video"]:
            await asyncio.sleep(0.05)
        conn.send("ready")
        loop = asyncio.get_running_loop()
        while True:
            cmd = await loop.run_in_executor(None, conn.recv)
            if cmd == "stop":
                break
            t0, t1 = cmd
            conn.send({k: [t for t in v if t0 <= t < t1] for k, v in sent.items()})
        await pc.close()


class _Subscriber:
    def __init__(self, session: Any, url: str, index: int) -> None:
        self.ws = _Ws(session, url, f"sub{index}")
        self.pc = _client_pc()
        self.packets = 0
        self.arrivals: dict[str, dict[float, float]] = {"video": {}, "audio": {}}
        self._tapped: set[int] = set()
        self._taps: list[Any] = []

    async def run(self) -> None:
        from aiortc import RTCSessionDescription

        from relayroom.media.aiortc_hooks import configure_ice

        await self.ws.join()
        while True:
            offer = await self.ws.expect("subscribe_offer", timeout=3600)
            await self.pc.setRemoteDescription(RTCSessionDescription(offer["sdp"], "offer"))
            self._tap_new()
            configure_ice(self.pc, LOOPBACK)
            await self.pc.setLocalDescription(await self.pc.createAnswer())
            await self.ws.ws.send_json(
                {"type": "subscribe_answer", "sdp": self.pc.localDescription.sdp}
            )

    def _tap_new(self) -> None:
        from relayroom.media.aiortc_hooks import ReceiverTap, negotiated_codecs

        for t in self.pc.getTransceivers():
            if id(t) in self._tapped or t.receiver is None:
                continue
            self._tapped.add(id(t))
            codecs = negotiated_codecs(t)
            if not codecs:
                continue
            rtx = next((c.payloadType for c in codecs if c.name.lower() == "rtx"), None)
            tap = ReceiverTap(t.receiver, assemble_frames=True)  # like a browser: PLI on loss
            tap.set_codec(int(codecs[0].payloadType or 0), rtx)
            tap.sink = self._sink(t.kind)
            self._taps.append(tap)

    def _sink(self, kind: str) -> Any:
        arrivals = self.arrivals[kind]

        def sink(pkt: Any) -> None:
            self.packets += 1
            payload = pkt.payload
            if kind == "video":
                if not pkt.marker or payload[-12:-8] != MAGIC_END:
                    return
                stamp = _STAMP.unpack_from(payload, len(payload) - 8)[0]
            else:
                if payload[:4] != MAGIC_START:
                    return
                stamp = _STAMP.unpack_from(payload, 4)[0]
            arrivals.setdefault(stamp, time.monotonic())

        return sink


async def _subscribers_main(url: str, count: int, conn: Connection) -> None:
    import aiohttp

    async with aiohttp.ClientSession() as session:
        subs = [_Subscriber(session, url, i) for i in range(count)]
        tasks = [asyncio.create_task(s.run()) for s in subs]
        while not all(s.arrivals["video"] and s.arrivals["audio"] for s in subs):
            for t in tasks:
                if t.done():
                    t.result()
            await asyncio.sleep(0.05)
        conn.send("ready")
        loop = asyncio.get_running_loop()
        while True:
            cmd = await loop.run_in_executor(None, conn.recv)
            if cmd == "stop":
                break
            if cmd == "count":
                conn.send(sum(s.packets for s in subs))
                continue
            t0, t1 = cmd
            conn.send(
                [
                    {
                        kind: [(st, at) for st, at in s.arrivals[kind].items() if t0 <= st < t1]
                        for kind in ("video", "audio")
                    }
                    for s in subs
                ]
            )
        for t in tasks:
            t.cancel()
        for s in subs:
            await s.pc.close()


def _child(role: str, url: str, count: int, conn: Connection, cpus: list[int] | None) -> None:
    if cpus:
        os.sched_setaffinity(0, cpus)
    if role == "publisher":
        asyncio.run(_publisher_main(url, conn))
    else:
        asyncio.run(_subscribers_main(url, count, conn))


# ------------------------------------------------------------------------------ server side


def _cpu_ns(pid: int) -> int:
    total = 0
    for path in glob.glob(f"/proc/{pid}/task/*/schedstat"):
        with contextlib.suppress(OSError), open(path) as f:
            total += int(f.read().split()[0])
    return total


def _rss_mb(pid: int) -> float:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return 0.0


class _Server:
    def __init__(self, tree: Path, workdir: Path, cpus: list[int] | None, env: dict[str, str]):
        self.port = free_port()
        full_env = {k: v for k, v in os.environ.items() if not k.startswith("RELAYROOM_")}
        full_env.update(
            {
                "RELAYROOM_API_SECRET": SECRET,
                "RELAYROOM_ALLOW_LOOPBACK_CANDIDATES": "true",
                "RELAYROOM_LOG_LEVEL": "warning",
                "RELAYROOM_IP_HANDSHAKES_PER_S": "1000",
                "RELAYROOM_IP_HANDSHAKE_BURST": "1000",
                "PYTHONPATH": str(tree),
            }
        )
        full_env.update(env)
        cmd = [sys.executable, "-m", "relayroom", "serve", "--workers", "1"]  # this process
        cmd += ["--port", str(self.port)]
        cmd += ["--no-turn", "--ice-host", "127.0.0.1", "--data-dir", str(workdir)]
        if cpus:
            cmd = ["taskset", "-c", ",".join(map(str, cpus)), *cmd]
        self.log = (workdir / "server.log").open("w")
        self.proc = subprocess.Popen(
            cmd, stdout=self.log, stderr=subprocess.STDOUT, env=full_env, cwd=tree
        )
        wait_port(self.port, timeout=30)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/ws"

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        self.log.close()


def _pct(values: list[float], q: float) -> float | None:
    if not values:
        return None
    values = sorted(values)
    return values[min(len(values) - 1, int(q * len(values)))]


def _latency(
    sent: list[float], received: list[dict[str, list[tuple[float, float]]]], kind: str
) -> dict[str, Any]:
    delays = [(at - st) * 1000 for sub in received for st, at in sub[kind]]
    expected = len(sent) * len(received)
    got = sum(len(sub[kind]) for sub in received)
    return {
        "p50_ms": _pct(delays, 0.5),
        "p99_ms": _pct(delays, 0.99),
        "delivered": got / expected if expected else None,
    }


class _CpuLimit:
    """A cgroup with a CPU quota (v1 ``cpu.cfs_quota_us`` or v2 ``cpu.max``) for one process."""

    PERIOD_US = 20000  # short, so that throttling adds little latency by itself

    def __init__(self, fraction: float) -> None:
        quota = max(1000, int(fraction * self.PERIOD_US))
        name = f"relayroom-hotpath-{os.getpid()}"
        v1 = Path("/sys/fs/cgroup/cpu")
        if (v1 / "cpu.cfs_quota_us").exists():
            self.path = v1 / name
            self.path.mkdir(exist_ok=True)
            (self.path / "cpu.cfs_period_us").write_text(str(self.PERIOD_US))
            (self.path / "cpu.cfs_quota_us").write_text(str(quota))
        else:
            self.path = Path("/sys/fs/cgroup") / name
            self.path.mkdir(exist_ok=True)
            (self.path / "cpu.max").write_text(f"{quota} {self.PERIOD_US}")

    def add(self, pid: int) -> None:
        (self.path / "cgroup.procs").write_text(str(pid))

    def remove(self) -> None:
        with contextlib.suppress(OSError):
            self.path.rmdir()


class Call:
    """A ``relayroom serve`` process with one publisher and N subscribers connected to it."""

    def __init__(
        self,
        tree: Path,
        subscribers: int,
        env: dict[str, str] | None = None,
        *,
        starve: bool = False,
        cpu_limit: float | None = None,
    ) -> None:
        self.tree, self.subscribers, self.env = tree, subscribers, env or {}
        self.starve, self.cpu_limit = starve, cpu_limit
        self._stack = contextlib.ExitStack()
        self.rss_idle = self.rss_publisher = 0.0

    def __enter__(self) -> Call:
        try:
            self._start()
        except BaseException:
            self._stack.close()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        self._stack.close()

    def _start(self) -> None:
        ctx = mp.get_context("spawn")
        stack = self._stack
        server_cpus = [0] if self.starve else None
        client_cpus = [1] if self.starve and (os.cpu_count() or 1) > 1 else None
        tmp = stack.enter_context(tempfile.TemporaryDirectory(prefix="hotpath-"))
        limit = _CpuLimit(self.cpu_limit) if self.cpu_limit is not None else None
        if limit is not None:
            stack.callback(limit.remove)  # after the server stopped (callbacks run last first)
        self.server = _Server(self.tree, Path(tmp), server_cpus, self.env)
        stack.callback(self.server.stop)
        if limit is not None:
            limit.add(self.server.proc.pid)
        if self.starve:
            busy = subprocess.Popen(["taskset", "-c", "0", sys.executable, "-c", "while 1: pass"])
            stack.callback(busy.wait)
            stack.callback(busy.kill)
        time.sleep(1.5)
        self.rss_idle = _rss_mb(self.server.proc.pid)
        self._pub, pub_child = ctx.Pipe()
        pub = ctx.Process(
            target=_child, args=("publisher", self.server.url, 0, pub_child, client_cpus)
        )
        pub.start()
        stack.callback(_join, pub)
        stack.callback(_stop, self._pub)
        if not self._pub.poll(60):
            raise RuntimeError("publisher did not start")
        self._pub.recv()
        time.sleep(1.0)
        self.rss_publisher = _rss_mb(self.server.proc.pid)
        self._sub, sub_child = ctx.Pipe()
        sub = ctx.Process(
            target=_child,
            args=("subscribers", self.server.url, self.subscribers, sub_child, client_cpus),
        )
        sub.start()
        stack.callback(_join, sub)
        stack.callback(_stop, self._sub)
        if not self._sub.poll(90):
            raise RuntimeError("subscribers did not receive media")
        self._sub.recv()

    @property
    def server_pid(self) -> int:
        return self.server.proc.pid

    def packets_received(self) -> int:
        """RTP packets all subscribers received so far (retransmissions included)."""
        self._sub.send("count")
        count: int = self._sub.recv()
        return count

    def stamps(
        self, t0: float, t1: float
    ) -> tuple[dict[str, list[float]], list[dict[str, list[tuple[float, float]]]]]:
        """Send times of the frames/packets stamped in [t0, t1), and (stamp, arrival) per sub."""
        self._pub.send((t0, t1))
        sent: dict[str, list[float]] = self._pub.recv()
        self._sub.send((t0, t1))
        received: list[dict[str, list[tuple[float, float]]]] = self._sub.recv()
        return sent, received


def _stop(conn: Connection) -> None:
    with contextlib.suppress(OSError, BrokenPipeError):
        conn.send("stop")


def _join(proc: Any) -> None:
    proc.join(15)
    if proc.is_alive():
        proc.kill()


def latency(
    sent: list[float], received: list[dict[str, list[tuple[float, float]]]], kind: str
) -> dict[str, Any]:
    """p50/p99 from send to arrival (ms) and the fraction delivered, over all subscribers."""
    return _latency(sent, received, kind)


def run_once(
    tree: Path,
    subscribers: int,
    window: float,
    warmup: float,
    starve: bool,
    env: dict[str, str],
    cpu_limit: float | None = None,
) -> dict[str, Any]:
    with Call(tree, subscribers, env, starve=starve, cpu_limit=cpu_limit) as call:
        pid = call.server_pid
        time.sleep(warmup)
        count0 = call.packets_received()
        cpu0, t0 = _cpu_ns(pid), time.monotonic()
        time.sleep(window)
        cpu1, t1 = _cpu_ns(pid), time.monotonic()
        count1 = call.packets_received()
        rss_loaded = _rss_mb(pid)
        time.sleep(1.0)  # let the last stamped packets of the window arrive
        sent, received = call.stamps(t0, t1 - 0.5)
        rss_idle, rss_publisher = call.rss_idle, call.rss_publisher
    cpu_s = (cpu1 - cpu0) / 1e9
    elapsed = t1 - t0
    forwarded = count1 - count0
    return {
        "cpu_percent": 100 * cpu_s / elapsed,
        "forwarded_pps": forwarded / elapsed,
        "cpu_us_per_forwarded_packet": 1e6 * cpu_s / forwarded if forwarded else None,
        "video": _latency(sent["video"], received, "video"),
        "audio": _latency(sent["audio"], received, "audio"),
        "rss_mb_idle": rss_idle,
        "rss_mb_publisher": rss_publisher,
        "rss_mb_loaded": rss_loaded,
        "rss_mb_per_subscriber": (rss_loaded - rss_publisher) / subscribers,
    }


def _median(runs: list[dict[str, Any]], *path: str) -> float | None:
    values = []
    for run in runs:
        v: Any = run
        for key in path:
            v = v[key]
        if v is not None:
            values.append(v)
    return statistics.median(values) if values else None


_FIGURES = (
    ("cpu_percent",),
    ("cpu_us_per_forwarded_packet",),
    ("forwarded_pps",),
    ("video", "p50_ms"),
    ("video", "p99_ms"),
    ("video", "delivered"),
    ("audio", "p50_ms"),
    ("audio", "p99_ms"),
    ("audio", "delivered"),
    ("rss_mb_idle",),
    ("rss_mb_publisher",),
    ("rss_mb_per_subscriber",),
)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tree", action="append", default=[], help="NAME=PATH (repeatable)")
    parser.add_argument("--subscribers", type=int, default=4)
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--window", type=float, default=10.0, help="measured seconds per run")
    parser.add_argument("--warmup", type=float, default=3.0)
    parser.add_argument("--starve", action="store_true", help="server on half a core")
    parser.add_argument(
        "--cpu-limit", type=float, default=None, help="server limited to this fraction of a core"
    )
    parser.add_argument("--env", action="append", default=[], help="KEY=VALUE for the server")
    parser.add_argument("--quick", action="store_true", help="smoke run: 2 subscribers, 1 rep")
    args = parser.parse_args()
    if args.quick:
        args.subscribers, args.reps, args.window, args.warmup = 2, 1, 3.0, 1.0
    trees = [t.split("=", 1) for t in args.tree] or [["this", str(ROOT)]]
    env = dict(e.split("=", 1) for e in args.env)
    runs: dict[str, list[dict[str, Any]]] = {name: [] for name, _ in trees}
    load_before = os.getloadavg()[0]
    for rep in range(args.reps):
        for name, path in trees:
            print(f"rep {rep + 1}/{args.reps}: {name}", file=sys.stderr, flush=True)
            runs[name].append(
                run_once(
                    Path(path).resolve(),
                    args.subscribers,
                    args.window,
                    args.warmup,
                    args.starve,
                    env,
                    args.cpu_limit,
                )
            )
    report: dict[str, Any] = {
        "subscribers": args.subscribers,
        "reps": args.reps,
        "window_s": args.window,
        "starved": args.starve,
        "cpu_limit": args.cpu_limit,
        "load_avg_1m": [load_before, os.getloadavg()[0]],
        "trees": {},
    }
    for name, _ in trees:
        medians = {"_".join(f): _median(runs[name], *f) for f in _FIGURES}
        report["trees"][name] = {"median": medians, "runs": runs[name]}
    names = [name for name, _ in trees]
    summary = f"hotpath: {args.subscribers} subs" + (" starved" if args.starve else "")
    if args.cpu_limit is not None:
        summary += f" limited to {args.cpu_limit:g} core"
    for name in names:
        m = report["trees"][name]["median"]
        summary += (
            f"; {name} {m['cpu_us_per_forwarded_packet']:.1f} us/pkt"
            f" {m['cpu_percent']:.1f}% cpu p99 {m['video_p99_ms'] or 0:.0f}/"
            f"{m['audio_p99_ms'] or 0:.0f} ms audio {100 * (m['audio_delivered'] or 0):.1f}%"
            f" idle {m['rss_mb_idle']:.0f} MB"
        )
    if len(names) == 2:
        a, b = (report["trees"][n]["median"]["cpu_us_per_forwarded_packet"] for n in names)
        saturated = any(
            report["trees"][n]["median"]["cpu_percent"]
            > 80 * (0.5 if args.starve else (args.cpu_limit or 1.0))
            for n in names
        )
        report["ratio_us_per_packet"] = None if saturated or not a else b / a
        summary += (
            "; saturated, no ratio" if saturated else f"; {names[1]}/{names[0]} = {b / a:.2f}"
        )
    print(json.dumps(report, indent=2))
    print(summary)


if __name__ == "__main__":
    main()
