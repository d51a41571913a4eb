"""Multi-node benchmark: cross-node signaling latency and SIGKILL failover time.

Starts a private redis-server and relayroom node processes on loopback. Prints JSON and a
one-line summary. Loopback only.

    python bench/cluster.py            # 2000 latency samples, 5 failover trials x 6 clients
    python bench/cluster.py --quick    # smoke run
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.loopback import RedisProcess, free_port, wait_port  # noqa: E402
from relayroom.loadtest.probe import percentile  # noqa: E402

SECRET = "cluster-bench-secret-0123456789abcdef"
FLOOR_P99_MS = 50.0
FLOOR_FAILOVER_P95_S = 10.0


class Node:
    """One `relayroom serve --redis` process."""

    def __init__(self, redis_url: str, workdir: Path, name: str) -> None:
        self.port = free_port()
        env = {k: v for k, v in os.environ.items() if not k.startswith("RELAYROOM_")}
        env.update(
            {
                "RELAYROOM_API_SECRET": SECRET,
                "RELAYROOM_ALLOW_LOOPBACK_CANDIDATES": "true",
                "RELAYROOM_DRAIN_TIMEOUT_S": "3",
                "RELAYROOM_LOG_LEVEL": "warning",
                "RELAYROOM_IP_HANDSHAKES_PER_S": "1000",
                "RELAYROOM_IP_HANDSHAKE_BURST": "1000",
                # The latency probe sends far more than a browser would.
                "RELAYROOM_RATE_LIMIT_MSGS_PER_S": "100000",
                "RELAYROOM_RATE_LIMIT_BURST": "100000",
            }
        )
        self.log = (workdir / f"{name}.log").open("w")
        self.proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "relayroom",
                "serve",
                "--workers",
                "1",
                "--port",
                str(self.port),
                "--redis",
                redis_url,
                "--no-turn",
                "--ice-host",
                "127.0.0.1",
                "--data-dir",
                str(workdir / name),
            ],
            stdout=self.log,
            stderr=subprocess.STDOUT,
            env=env,
            cwd=ROOT,
        )
        wait_port(self.port)

    @property
    def ws_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/ws"

    def kill(self, signum: int = signal.SIGKILL) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signum)

    def stop(self) -> None:
        self.kill(signal.SIGKILL)
        self.proc.wait(10)
        self.log.close()


def token(room: str, identity: str, mode: str = "p2p") -> str:
    from relayroom.signaling.tokens import mint_token

    return mint_token(SECRET, room=room, identity=identity, ttl_s=3600, mode=mode)


@dataclass
class Client:
    """A signaling client that reconnects the way the browser library does."""

    identity: str
    room: str
    urls: list[str]
    session: Any
    mode: str = "p2p"
    ws: Any = None
    participant_id: str | None = None
    inbox: asyncio.Queue[dict[str, Any]] = field(default_factory=asyncio.Queue)
    rejoined_at: float | None = None
    joined: dict[str, Any] | None = None
    _reader: asyncio.Task[None] | None = None

    async def join(self, url: str) -> bool:
        try:
            self.ws = await self.session.ws_connect(url)
        except Exception:
            return False
        await self.ws.send_json(
            {"type": "join", "room": self.room, "token": token(self.room, self.identity, self.mode)}
        )
        try:
            reply = await self.ws.receive_json(timeout=5)
        except Exception:
            return False
        if reply.get("type") != "joined":
            await self.ws.close()
            return False
        self.participant_id = reply["participant"]["id"]
        self.joined = reply
        self._reader = asyncio.create_task(self._read())
        return True

    async def _read(self) -> None:
        async for msg in self.ws:
            if msg.type.name == "TEXT":
                self.inbox.put_nowait(json.loads(msg.data))

    async def reconnect_loop(self, url: str) -> None:
        """After a drop: backoff 1 s doubling to 30 s with jitter, until joined."""
        assert self._reader is not None
        await self._reader
        attempt = 0
        while True:
            ceiling = min(30.0, 1.0 * 2**attempt)
            await asyncio.sleep(ceiling / 2 + random.random() * ceiling / 2)
            attempt += 1
            if await self.join(url):
                self.rejoined_at = time.monotonic()
                return


async def signal_latency(nodes: list[Node], samples: int, cross: bool) -> list[float]:
    import aiohttp

    async with aiohttp.ClientSession() as session:
        room = f"lat-{cross}-{random.random()}"
        a = Client("a", room, [], session)
        b = Client("b", room, [], session)
        assert await a.join(nodes[0].ws_url)
        assert await b.join(nodes[1 if cross else 0].ws_url)
        await a.inbox.get()  # participant_joined
        latencies = []
        for i in range(samples):
            sent = time.perf_counter()
            await b.ws.send_json({"type": "signal", "to": a.participant_id, "payload": i})
            while True:
                message = await asyncio.wait_for(a.inbox.get(), 5)
                if message.get("type") == "signal" and message["payload"] == i:
                    break
            latencies.append((time.perf_counter() - sent) * 1000)
        await a.ws.close()
        await b.ws.close()
        return latencies


async def failover_trial(redis_url: str, workdir: Path, clients: int) -> list[float]:
    import aiohttp

    a, b = Node(redis_url, workdir, "a"), Node(redis_url, workdir, "b")
    try:
        async with aiohttp.ClientSession() as session:
            room = f"fo-{random.random()}"
            members = [Client(f"c{i}", room, [], session) for i in range(clients)]
            for member in members:
                assert await member.join(a.ws_url)
            loops = [asyncio.create_task(m.reconnect_loop(b.ws_url)) for m in members]
            killed = time.monotonic()
            a.kill(signal.SIGKILL)
            await asyncio.wait_for(asyncio.gather(*loops), 60)
            return [m.rejoined_at - killed for m in members if m.rejoined_at]
    finally:
        a.stop()
        b.stop()


def progress(text: str) -> None:
    print(f"[cluster bench] {text}", file=sys.stderr, flush=True)


async def bench(samples: int, trials: int, clients: int) -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        redis = RedisProcess(workdir)
        redis.start()
        try:
            nodes = [Node(redis.url, workdir, "n1"), Node(redis.url, workdir, "n2")]
            try:
                progress("same-node latency")
                local = await signal_latency(nodes, samples, cross=False)
                progress("cross-node latency")
                cross = await signal_latency(nodes, samples, cross=True)
            finally:
                for node in nodes:
                    node.stop()
            failovers: list[float] = []
            for trial in range(trials):
                progress(f"failover trial {trial + 1}/{trials}")
                failovers += await failover_trial(redis.url, workdir, clients)
        finally:
            redis.stop()
    cross_p99 = percentile(cross, 99)
    failover_p95 = percentile(failovers, 95)
    return {
        "benchmark": "cluster",
        "signal_latency_ms": {
            "same_node": {"p50": statistics.median(local), "p99": percentile(local, 99)},
            "cross_node": {"p50": statistics.median(cross), "p99": cross_p99},
            "samples": samples,
        },
        "failover_s": {
            "clients": len(failovers),
            "min": min(failovers),
            "p50": statistics.median(failovers),
            "p95": failover_p95,
            "max": max(failovers),
        },
        "floors": {"cross_node_p99_ms": FLOOR_P99_MS, "failover_p95_s": FLOOR_FAILOVER_P95_S},
        "meets_floors": cross_p99 is not None
        and failover_p95 is not None
        and cross_p99 < FLOOR_P99_MS
        and failover_p95 <= FLOOR_FAILOVER_P95_S,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--samples", type=int, default=2000)
    parser.add_argument("--trials", type=int, default=5)
    parser.add_argument("--clients", type=int, default=6)
    args = parser.parse_args()
    if args.quick:
        args.samples, args.trials, args.clients = 100, 1, 3
    report = asyncio.run(bench(args.samples, args.trials, args.clients))
    print(json.dumps(report, indent=2))
    lat, fo = report["signal_latency_ms"], report["failover_s"]
    print(
        f"cluster: cross-node signal p50 {lat['cross_node']['p50']:.2f} ms p99 "
        f"{lat['cross_node']['p99']:.2f} ms (same node p99 {lat['same_node']['p99']:.2f} ms); "
        f"SIGKILL failover p50 {fo['p50']:.2f} s p95 {fo['p95']:.2f} s over {fo['clients']} "
        f"clients; floors met: {report['meets_floors']}"
    )


if __name__ == "__main__":
    main()
