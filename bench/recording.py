"""Recording benchmark: the CPU a recording adds to a real `relayroom serve` process.

One publisher (VP8 video, about 1.5 Mbit/s, + Opus) and one subscriber, each in its own
process, on loopback, in a real server process. The server's CPU (all threads, from
/proc/<pid>/task/*/schedstat) is measured in windows alternating without and with a recording of
the publisher (A B A B ..., the order flipped every round); the recording is started and stopped
through the admin API between windows. Reported: the server's total CPU while forwarding (A), and
the marginal cost of recording (median of B minus median of A), in % of one core.

It also compares the two ways to write the container, on the frames just recorded: this
project's own Matroska writer (media/matroska.py) against PyAV's muxer fed `av.Packet`s (no
decoding either way), in microseconds per frame, interleaved.

Prints one JSON object, then a one-line summary. Run inside a loopback-only namespace:

    unshare -rn sh -c 'ip link set lo up && exec .venv/bin/python bench/recording.py'
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import fractions
import io
import json
import multiprocessing as mp
import os
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)

from bench.forwarding import Child, cpu_seconds  # noqa: E402
from bench.loopback import free_port, wait_port  # noqa: E402

SECRET = "bench-recording-secret-0123456789abcdef"
ROOM = "bench"
FLOOR_MARGINAL = 0.02  # issue 15: recording costs at most 2% of a core beyond forwarding


# ------------------------------------------------------------------------- peers (children)


def _token(identity: str, publish: bool) -> str:
    from relayroom.api import AccessToken, Grants

    grants = Grants(can_publish=publish)
    return AccessToken(api_secret=SECRET, room=ROOM, identity=identity, grants=grants).to_jwt()


def peer_main(
    conn: Connection, url: str, role: str, width: int, height: int, bps: int, noise: float
) -> None:
    asyncio.run(_peer(conn, url, role, width, height, bps, noise))


async def _peer(
    conn: Connection, url: str, role: str, width: int, height: int, bps: int, noise: float
) -> None:
    import aiohttp
    import av
    import numpy as np
    from aiortc import RTCConfiguration, RTCPeerConnection, RTCSessionDescription
    from aiortc.mediastreams import AudioStreamTrack, VideoStreamTrack
    from aiortc.rtcconfiguration import RTCBundlePolicy

    from relayroom.media.aiortc_hooks import configure_ice, watch_renegotiation

    class NoiseTrack(VideoStreamTrack):
        """Moving noise: an encoder needs real bits to keep the target bitrate."""

        def __init__(self) -> None:
            super().__init__()
            self._rng = np.random.default_rng(1)

        async def recv(self) -> av.VideoFrame:
            pts, time_base = await self.next_timestamp()
            image = self._rng.integers(0, 255, (height * 3 // 2, width), dtype=np.uint8)
            image[int(height * noise) :] = 128  # noise in the top rows only: sets the bitrate
            frame = av.VideoFrame.from_ndarray(image, format="yuv420p")
            frame.pts, frame.time_base = pts, time_base
            return frame

    pc = RTCPeerConnection(RTCConfiguration(iceServers=[], bundlePolicy=RTCBundlePolicy.MAX_BUNDLE))
    watch_renegotiation(pc)
    received = {"frames": 0}
    drains: set[asyncio.Task[None]] = set()
    session = aiohttp.ClientSession()
    ws = await session.ws_connect(url.rstrip("/") + "/ws")
    await ws.send_json(
        {"type": "join", "id": "j", "room": ROOM, "token": _token(role, role == "pub")}
    )

    async def next_of(kind: str) -> dict[str, Any]:
        while True:
            msg = json.loads((await ws.receive()).data)
            if msg["type"] == kind:
                return msg

    await next_of("joined")
    if role == "pub":
        video = pc.addTransceiver(NoiseTrack(), direction="sendonly")
        pc.addTransceiver(AudioStreamTrack(), direction="sendonly")
        configure_ice(pc, ("127.0.0.1",))
        await pc.setLocalDescription(await pc.createOffer())
        await ws.send_json({"type": "publish_offer", "id": "p", "sdp": pc.localDescription.sdp})
        answer = await next_of("publish_answer")
        await pc.setRemoteDescription(RTCSessionDescription(answer["sdp"], "answer"))

        async def hold_bitrate() -> None:
            # aiortc's encoder follows REMB between 250 kbit/s and 1.5 Mbit/s; pin it.
            while True:
                encoder = getattr(video.sender, "_RTCRtpSender__encoder", None)
                if encoder is not None and hasattr(encoder, "target_bitrate"):
                    encoder.target_bitrate = bps
                await asyncio.sleep(0.2)

        holder = asyncio.create_task(hold_bitrate())
    else:

        @pc.on("track")
        def on_track(track: Any) -> None:
            async def drain() -> None:
                with contextlib.suppress(Exception):
                    while True:
                        await track.recv()
                        received["frames"] += 1

            drains.add(asyncio.ensure_future(drain()))

        async def answer_offers() -> None:
            while True:
                offer = await next_of("subscribe_offer")
                await pc.setRemoteDescription(RTCSessionDescription(offer["sdp"], "offer"))
                configure_ice(pc, ("127.0.0.1",))
                await pc.setLocalDescription(await pc.createAnswer())
                await ws.send_json({"type": "subscribe_answer", "sdp": pc.localDescription.sdp})

        holder = asyncio.create_task(answer_offers())
    loop = asyncio.get_running_loop()
    try:
        while True:
            msg = await loop.run_in_executor(None, conn.recv)
            if msg[0] == "stop":
                conn.send(("ok", None))
                break
            conn.send(("ok", dict(received)))
    finally:
        holder.cancel()
        await pc.close()
        await ws.close()
        await session.close()


# ------------------------------------------------------------------------- the server


class Server:
    def __init__(self, workdir: Path) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}/"
        self.recordings = workdir / "recordings"
        env = {k: v for k, v in os.environ.items() if not k.startswith("RELAYROOM_")}
        env.update(
            {
                "RELAYROOM_API_SECRET": SECRET,
                "RELAYROOM_ALLOW_LOOPBACK_CANDIDATES": "true",
                "RELAYROOM_RECORDING_DIR": str(self.recordings),
                "RELAYROOM_LOG_LEVEL": "warning",
            }
        )
        args = ["--workers=1", "--port", str(self.port), "--no-turn", "--ice-host", "127.0.0.1"]
        self.log = (workdir / "serve.log").open("w")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "relayroom", "serve", *args, "--data-dir", str(workdir)],
            env=env,
            stdout=self.log,
            stderr=subprocess.STDOUT,
            cwd=ROOT,
        )
        wait_port(self.port)

    def api(self, method: str, path: str, body: Any = None) -> Any:
        from relayroom.api import AccessToken

        token = AccessToken.admin(SECRET, identity="bench").to_jwt()
        data = json.dumps(body).encode() if body is not None else None
        request = urllib.request.Request(
            self.url.rstrip("/") + path,
            data=data,
            method=method,
            headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"},
        )
        try:
            with urllib.request.urlopen(request, timeout=10) as response:
                return json.loads(response.read())
        except urllib.error.HTTPError as exc:  # say why (the server's error body)
            raise RuntimeError(f"{method} {path}: {exc.code} {exc.read()[:300]!r}") from None

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(15)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self.log.close()


def window(server: Server, seconds: float) -> tuple[float, float]:
    """(server CPU in cores, publisher bitrate in bit/s) over one window."""
    pid = server.proc.pid
    before = server.api("GET", f"/api/rooms/{ROOM}")
    cpu0, t0 = cpu_seconds(pid), time.monotonic()
    time.sleep(seconds)
    cpu1, t1 = cpu_seconds(pid), time.monotonic()
    after = server.api("GET", f"/api/rooms/{ROOM}")
    bitrate = (before["bitrate_in_bps"] + after["bitrate_in_bps"]) / 2
    return (cpu1 - cpu0) / (t1 - t0), bitrate


# ------------------------------------------------------------------------- container writers


def writer_costs(video_file: Path, rounds: int) -> dict[str, float | int | None]:
    """µs per frame: our MatroskaWriter against PyAV's muxer, on the recorded VP8 frames."""
    import av

    from relayroom.media.depacketize import vp8_dimensions
    from relayroom.media.matroska import MatroskaWriter

    with av.open(str(video_file)) as container:
        frames = [
            (bytes(p), int(p.pts), bool(p.is_keyframe))
            for p in container.demux(container.streams[0])
            if p.size and p.pts is not None
        ]
    if not frames:
        return {"frames": 0, "own_us_per_frame": None, "pyav_us_per_frame": None}
    size = next((vp8_dimensions(f[0]) for f in frames if f[2]), None) or (640, 480)

    def own() -> None:
        writer = MatroskaWriter(io.BytesIO(), codec="vp8", webm=True, width=size[0], height=size[1])
        for data, ms, key in frames:
            writer.add(data, ms, key)
        writer.close()

    def pyav() -> None:
        out = av.open(io.BytesIO(), "w", format="webm")
        stream = out.add_mux_stream("vp8", width=size[0], height=size[1])
        stream.time_base = fractions.Fraction(1, 1000)
        for data, ms, key in frames:
            packet = av.Packet(data)
            packet.stream = stream
            packet.pts = packet.dts = ms
            packet.time_base = stream.time_base
            packet.is_keyframe = key
            out.mux(packet)
        out.close()

    own_times: list[float] = []
    pyav_times: list[float] = []
    for i in range(rounds):
        for name, run, into in (("own", own, own_times), ("pyav", pyav, pyav_times))[
            :: 1 if i % 2 == 0 else -1
        ]:
            start = time.process_time()
            run()
            into.append((time.process_time() - start) / len(frames) * 1e6)
            del name
    # The other half of the recorder: RTP packets back into frames. The same frames, cut into
    # RTP payloads by aiortc's own VP8 packetizer, through the FrameAssembler.
    from aiortc.codecs.vpx import Vp8Encoder

    from relayroom.media.depacketize import FrameAssembler

    packer = Vp8Encoder()
    packets: list[tuple[int, int, bool, bytes]] = []
    for data, ms, _ in frames:
        packet = av.Packet(data)
        packet.pts, packet.time_base = ms, fractions.Fraction(1, 1000)
        payloads, timestamp = packer.pack(packet)
        for n, payload in enumerate(payloads):
            packets.append((len(packets) & 0xFFFF, timestamp, n == len(payloads) - 1, payload))
    assemble_times = []
    for _ in range(rounds):
        assembler = FrameAssembler("vp8")
        start = time.process_time()
        for seq, ts, marker, payload in packets:
            assembler.push(seq, ts, marker, payload, 0.0)
        assemble_times.append((time.process_time() - start) / len(packets) * 1e6)
    return {
        "frames": len(frames),
        "packets": len(packets),
        "own_us_per_frame": round(statistics.median(own_times), 2),
        "pyav_us_per_frame": round(statistics.median(pyav_times), 2),
        "assembler_us_per_packet": round(statistics.median(assemble_times), 2),
    }


# ------------------------------------------------------------------------- main


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=4, help="A/B pairs")
    parser.add_argument("--window", type=float, default=8.0, help="seconds per CPU window")
    parser.add_argument("--warmup", type=float, default=4.0)
    parser.add_argument("--width", type=int, default=640)
    parser.add_argument("--height", type=int, default=480)
    parser.add_argument("--bitrate", type=int, default=1_500_000, help="publisher target, bit/s")
    parser.add_argument(
        "--noise", type=float, default=0.09, help="share of the picture's rows that are noise"
    )
    parser.add_argument("--quick", action="store_true", help="smoke run: short windows")
    parser.add_argument("--strict", action="store_true", help="exit 1 if the floor is missed")
    args = parser.parse_args(argv)
    if args.quick:
        args.rounds, args.window, args.warmup = 1, 2.0, 2.0
        args.width, args.height = 320, 240

    ctx = mp.get_context("spawn")
    started = time.monotonic()
    workdir = Path(tempfile.mkdtemp(prefix="relayroom-bench-recording-"))
    server = Server(workdir)
    peers: list[Child] = []
    samples: dict[str, list[float]] = {"off": [], "on": []}
    bitrates: list[float] = []
    recordings: list[dict[str, Any]] = []
    try:
        size = (args.width, args.height, args.bitrate, args.noise)
        peers.append(Child(ctx, peer_main, server.url, "pub", *size))
        peers.append(Child(ctx, peer_main, server.url, "sub", *size))
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and peers[1].call("stats")["frames"] < 30:
            time.sleep(0.2)
        time.sleep(args.warmup)
        for i in range(args.rounds):
            for mode in ("off", "on") if i % 2 == 0 else ("on", "off"):
                recording = None
                if mode == "on":
                    recording = server.api("POST", f"/api/rooms/{ROOM}/recordings", {})
                    time.sleep(0.5)  # the first keyframe; the file is open
                cpu, bitrate = window(server, args.window)
                samples[mode].append(cpu)
                bitrates.append(bitrate)
                if recording is not None:
                    path = f"/api/rooms/{ROOM}/recordings/{recording['recording_id']}"
                    recordings.append(server.api("DELETE", path))
        subscriber_frames = peers[1].call("stats")["frames"]
    finally:
        for peer in peers:
            peer.stop()
        server.stop()
    last = recordings[-1] if recordings else None
    video = next((f for f in last["files"] if f["kind"] == "video"), None) if last else None
    writers = (
        writer_costs(Path(last["directory"]) / video["file"], 3 if args.quick else 9)
        if last and video
        else {}
    )
    off, on = statistics.median(samples["off"]), statistics.median(samples["on"])
    # What the publisher really sent, from the recorded files (bytes over the longest file).
    rates = [
        sum(f["bytes"] for f in r["files"]) * 8 / max(f["duration_s"] for f in r["files"])
        for r in recordings
        if r["files"] and max(f["duration_s"] for f in r["files"]) > 0
    ]
    marginal = on - off
    # A noise-free cross-check of the A/B figure: the recorder's own work per second at the
    # measured rates (video packets and frames; Opus adds 50 packets and frames per second).
    estimate = None
    if writers.get("frames") and rates:
        per_s = (video["frames"] / video["duration_s"]) if video and video["duration_s"] else 30.0
        pkts = per_s * writers["packets"] / writers["frames"]
        work_us = (pkts + 50) * writers["assembler_us_per_packet"]
        work_us += (per_s + 50) * writers["own_us_per_frame"]
        estimate = round(work_us / 1e6, 5)
    report: dict[str, Any] = {
        "benchmark": "recording",
        "config": {
            "video": f"VP8 {args.width}x{args.height} 30 fps + Opus, one subscriber",
            "target_bitrate_bps": args.bitrate,
            "window_s": args.window,
            "rounds": args.rounds,
            "quick": args.quick,
            "cpus": os.cpu_count(),
        },
        "recorded_bitrate_bps_median": round(statistics.median(rates)) if rates else None,
        "room_bitrate_in_bps_median": round(statistics.median(bitrates)),
        "server_cpu_forwarding": round(off, 4),
        "server_cpu_forwarding_and_recording": round(on, 4),
        "recording_marginal_cpu": round(marginal, 4),
        "recorder_work_estimate_cpu": estimate,
        "samples": {k: [round(v, 4) for v in vs] for k, vs in samples.items()},
        "subscriber_frames": subscriber_frames,
        "recorded_bytes": [r["bytes"] for r in recordings],
        "recorded_files": [len(r["files"]) for r in recordings],
        "container_writer": writers,
        "floors": {"recording_marginal_le_2pct_core": marginal <= FLOOR_MARGINAL},
        "elapsed_s": round(time.monotonic() - started, 1),
    }
    print(json.dumps(report, indent=2))
    rate = (report["recorded_bitrate_bps_median"] or 0) / 1e6
    print(
        f"recording: {rate:.2f} Mbit/s VP8+Opus; server "
        f"{100 * off:.1f}% of a core forwarding, +{100 * marginal:.2f}% recording (median of "
        f"{args.rounds}); writer {writers.get('own_us_per_frame')} us/frame own vs "
        f"{writers.get('pyav_us_per_frame')} PyAV"
    )
    if args.strict and not report["floors"]["recording_marginal_le_2pct_core"]:
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
