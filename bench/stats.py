"""Stats collection benchmark: CPU of one collection round over N live PeerConnections.

The server (relayroom app with the admin API and its stats collector) runs in this process; the
clients, real aiortc peers in rooms of two (one of three if odd) that publish audio and a small
video and subscribe to each other over the WebSocket, run in a child process. Each participant
has two PeerConnections on the server (publisher and subscriber): P participants, 2P connections.

Once every connection is up, the bench drives the collector itself, once a second, and measures
each round's thread CPU time (a round never yields to the event loop, so this is its whole cost),
and the server process's CPU over the same time for the ratio. Prints one JSON document and a
one-line summary. Loopback only.

    python bench/stats.py            # 25 participants = 50 connections, 15 rounds
    python bench/stats.py --quick    # smoke run: 2 participants = 4 connections, 3 rounds
"""

from __future__ import annotations

import argparse
import asyncio
import fractions
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

SECRET = "bench-secret-0123456789abcdef-0123456789"
FLOOR_PERCENT_OF_CORE = 5.0
LOOPBACK = ("127.0.0.1",)


# --- client process -----------------------------------------------------------------------


def _small_video_track() -> Any:
    import av
    import numpy as np
    from aiortc.mediastreams import MediaStreamError, MediaStreamTrack

    class SmallVideo(MediaStreamTrack):  # type: ignore[misc]
        """160x120 at 20 fps with a moving bar: cheap to encode, still real VP8."""

        kind = "video"

        def __init__(self) -> None:
            super().__init__()
            self._n = 0
            self._start: float | None = None
            self._base = np.full((180, 160), 128, np.uint8)

        async def recv(self) -> av.VideoFrame:
            if self.readyState != "live":
                raise MediaStreamError
            now = time.monotonic()
            self._start = self._start or now
            due = self._start + self._n / 20
            if due > now:
                await asyncio.sleep(due - now)
            arr = self._base.copy()
            x = (self._n * 4) % 160
            arr[:120, x : x + 8] = 230
            frame = av.VideoFrame.from_ndarray(arr, format="yuv420p")
            frame.pts = self._n * 4500
            frame.time_base = fractions.Fraction(1, 90000)
            self._n += 1
            return frame

    return SmallVideo()


async def participant(url: str, room: str, identity: str, ready: asyncio.Event) -> None:
    import aiohttp
    from aiortc import RTCConfiguration, RTCPeerConnection, RTCSessionDescription
    from aiortc.mediastreams import AudioStreamTrack, MediaStreamError

    from relayroom.media.aiortc_hooks import configure_ice
    from relayroom.signaling.tokens import Grants, mint_token

    token = mint_token(SECRET, room=room, identity=identity, ttl_s=3600, grants=Grants())
    pub = RTCPeerConnection(RTCConfiguration(iceServers=[]))
    sub = RTCPeerConnection(RTCConfiguration(iceServers=[]))
    consumers: list[asyncio.Task[None]] = []

    async def consume(track: Any) -> None:
        try:
            while True:
                await track.recv()
        except MediaStreamError:
            return

    sub.on("track", lambda track: consumers.append(asyncio.create_task(consume(track))))
    pub.addTransceiver(_small_video_track(), direction="sendonly")
    pub.addTransceiver(AudioStreamTrack(), direction="sendonly")
    async with aiohttp.ClientSession() as session, session.ws_connect(url) as ws:
        await ws.send_json({"type": "join", "id": "j", "room": room, "token": token})
        configure_ice(pub, LOOPBACK)
        await pub.setLocalDescription(await pub.createOffer())
        sent_offer = False
        async for frame in ws:
            if frame.type is not aiohttp.WSMsgType.TEXT:
                break
            message = json.loads(frame.data)
            kind = message.get("type")
            if kind == "joined" and not sent_offer:
                sent_offer = True
                offer = {"type": "publish_offer", "id": "p", "sdp": pub.localDescription.sdp}
                await ws.send_json(offer)
            elif kind == "publish_answer":
                await pub.setRemoteDescription(RTCSessionDescription(message["sdp"], "answer"))
                ready.set()
            elif kind == "subscribe_offer":
                await sub.setRemoteDescription(RTCSessionDescription(message["sdp"], "offer"))
                configure_ice(sub, LOOPBACK)
                await sub.setLocalDescription(await sub.createAnswer())
                await ws.send_json({"type": "subscribe_answer", "sdp": sub.localDescription.sdp})
            elif kind == "error":
                print("client error:", message, file=sys.stderr)
    for task in consumers:
        task.cancel()
    await pub.close()
    await sub.close()


async def client_main(url: str, participants: int) -> None:
    readies = [asyncio.Event() for _ in range(participants)]
    tasks = []
    for i in range(participants):
        room = f"bench-{min(i // 2, max(0, participants // 2 - 1))}"  # pairs (one trio if odd)
        tasks.append(asyncio.create_task(participant(url, room, f"p{i}", readies[i])))
        await asyncio.sleep(0.05)
    await asyncio.gather(*(r.wait() for r in readies))
    print("ready", flush=True)
    # Run until the parent closes our stdin.
    await asyncio.get_running_loop().run_in_executor(None, sys.stdin.read)
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)


# --- server side --------------------------------------------------------------------------


async def bench(participants: int, rounds: int, connect_timeout_s: float) -> dict[str, Any]:
    from aiohttp.test_utils import TestServer

    from relayroom.signaling.admin import STATS_KEY
    from relayroom.signaling.config import load_config
    from relayroom.signaling.server import Server, create_app

    with tempfile.TemporaryDirectory() as tmp:
        config = load_config(
            env={},
            overrides={
                "api_secret": SECRET,
                "data_dir": Path(tmp),
                "port": 0,
                "ice_hosts": LOOPBACK,
                "allow_loopback_candidates": True,
                "room_max_participants": 4,
            },
        )
        server = Server.build(config, SECRET)
        app = create_app(server)
        test_server = TestServer(app, host="127.0.0.1")
        await test_server.start_server()
        stats = app[STATS_KEY]
        await stats.close()  # the bench drives the rounds itself
        url = str(test_server.make_url("/ws"))
        child_log = open(Path(tmp) / "client.log", "wb")  # noqa: SIM115 - closed below
        child = await asyncio.create_subprocess_exec(
            sys.executable,
            __file__,
            "--client",
            url,
            str(participants),
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=child_log,
            cwd=str(ROOT),
        )
        try:
            assert child.stdout is not None
            line = await asyncio.wait_for(child.stdout.readline(), connect_timeout_s)
            if line.strip() != b"ready":
                raise RuntimeError(f"the client process did not get ready:\n{_tail(child_log)}")
            expected = 2 * participants
            deadline = time.monotonic() + connect_timeout_s
            while True:
                tick = await stats.collect()
                connected = tick.totals.connection_states["connected"]
                legs = [t for s in tick.samples for t in s["tracks"]["out"]]
                forwarding = sum(1 for t in legs if t["packets_per_s"] > 0)
                if connected >= expected and forwarding == len(legs) >= 2 * participants:
                    break
                if time.monotonic() > deadline:
                    raise RuntimeError(
                        f"only {connected}/{expected} connections up, {forwarding} legs "
                        f"flowing; client log:\n{_tail(child_log)}"
                    )
                await asyncio.sleep(0.5)
            cpu_ms: list[float] = []
            wall_ms: list[float] = []
            process_start = time.process_time()
            started = time.monotonic()
            for _ in range(rounds):
                await asyncio.sleep(1.0)
                t0, w0 = time.thread_time(), time.perf_counter()
                tick = await stats.collect()
                cpu_ms.append(1000 * (time.thread_time() - t0))
                wall_ms.append(1000 * (time.perf_counter() - w0))
            elapsed = time.monotonic() - started
            process_cpu = time.process_time() - process_start
            connections = tick.totals.connection_states["connected"]
            median_cpu = statistics.median(cpu_ms)
            percent = median_cpu / 1000 / stats.settings.interval_s * 100
            server_percent = process_cpu / elapsed * 100
            return {
                "participants": participants,
                "connections": connections,
                "tracks_sampled": sum(
                    len(s["tracks"]["in"]) + len(s["tracks"]["out"]) for s in tick.samples
                ),
                "rounds": rounds,
                "interval_s": stats.settings.interval_s,
                "round_cpu_ms_median": round(median_cpu, 3),
                "round_cpu_ms_max": round(max(cpu_ms), 3),
                "round_wall_ms_median": round(statistics.median(wall_ms), 3),
                "per_connection_us": round(1000 * median_cpu / max(1, connections), 1),
                "collection_percent_of_core": round(percent, 3),
                "server_process_percent_of_core": round(server_percent, 1),
                "collection_share_of_server_cpu": round(percent / server_percent, 4)
                if server_percent
                else None,
                "floor_percent_of_core": FLOOR_PERCENT_OF_CORE,
                "within_floor": percent <= FLOOR_PERCENT_OF_CORE,
            }
        finally:
            if child.stdin is not None:
                child.stdin.close()
            try:
                await asyncio.wait_for(child.wait(), 20)
            except TimeoutError:
                child.kill()
                await child.wait()
            child_log.close()
            await test_server.close()


def _tail(log: Any) -> str:
    log.flush()
    return Path(log.name).read_bytes()[-3000:].decode(errors="replace")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="smoke run (4 connections)")
    parser.add_argument("--participants", type=int, default=None)
    parser.add_argument("--rounds", type=int, default=None)
    parser.add_argument("--client", nargs=2, metavar=("URL", "N"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.client:
        asyncio.run(client_main(args.client[0], int(args.client[1])))
        return
    participants = args.participants or (2 if args.quick else 25)
    rounds = args.rounds or (3 if args.quick else 15)
    os.environ.setdefault("PYTHONWARNINGS", "ignore")
    result = asyncio.run(bench(participants, rounds, connect_timeout_s=90))
    report = {"benchmark": "stats", "quick": args.quick, "results": [result]}
    print(json.dumps(report, indent=2))
    print(
        f"stats: {result['connections']} connections, {result['tracks_sampled']} tracks: "
        f"collection {result['collection_percent_of_core']:.2f}% of a core "
        f"(median round {result['round_cpu_ms_median']:.2f} ms, "
        f"{result['per_connection_us']:.0f} us per connection; floor "
        f"{FLOOR_PERCENT_OF_CORE:.0f}%: {'ok' if result['within_floor'] else 'OVER'}), "
        f"server process {result['server_process_percent_of_core']:.0f}% of a core"
    )
    if not result["within_floor"]:
        sys.exit(1)


if __name__ == "__main__":
    main()
