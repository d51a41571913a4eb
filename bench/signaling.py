"""Signaling benchmark: idle memory per joined WebSocket, joins/s, broadcast fan-out per core.

The server runs in this process (so its RSS and CPU time are this process's); the clients run
in a child process. Prints one JSON document and a one-line summary. Loopback only. Memory per
connection is the RSS growth over the second half of the joins: the first half carries the
one-time costs (the lazily imported modules, the allocator's first arenas).

    python bench/signaling.py            # N = 1000 and 5000
    python bench/signaling.py --quick    # smoke run (N = 60)
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

ROOM_SIZE = 50
SECRET = "bench-secret-0123456789abcdef-0123456789"
FLOOR_IDLE_KIB = 32
FLOOR_FANOUT_PER_CORE = 50_000


def raise_fd_limit() -> None:
    _soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


def rss_bytes() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


# --- client process -----------------------------------------------------------------------


async def client_main(url: str, n: int, concurrency: int) -> None:
    import aiohttp

    from relayroom.signaling.tokens import mint_token

    raise_fd_limit()
    received = 0
    connector = aiohttp.TCPConnector(limit=0)
    session = aiohttp.ClientSession(connector=connector)
    sockets: list[aiohttp.ClientWebSocketResponse] = []
    semaphore = asyncio.Semaphore(concurrency)

    async def join(i: int) -> None:
        room = f"bench-{i // ROOM_SIZE}"
        token = mint_token(SECRET, room=room, identity=f"u{i}", ttl_s=3600)
        async with semaphore:
            ws = await session.ws_connect(url, max_msg_size=0)
            await ws.send_str(json.dumps({"type": "join", "room": room, "token": token}))
            reply = json.loads((await ws.receive()).data)
            assert reply["type"] == "joined", reply
        sockets.append(ws)

    loop = asyncio.get_running_loop()
    stdin = asyncio.StreamReader()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(stdin), sys.stdin)
    # Two halves, so the server can measure the second alone: what one more connection costs,
    # without the one-time costs of its first joins.
    half = n // 2
    join_s = 0.0
    for first, last in ((0, half), (half, n)):
        if first:
            await stdin.readline()  # "more"
        started = time.perf_counter()
        await asyncio.gather(*(join(i) for i in range(first, last)))
        join_s += time.perf_counter() - started
        print(json.dumps({"joined": last, "join_s": join_s}), flush=True)

    async def reader(ws: aiohttp.ClientWebSocketResponse) -> None:
        nonlocal received
        async for msg in ws:
            if msg.type is aiohttp.WSMsgType.TEXT and '"bench"' in msg.data:
                received += 1

    readers = [asyncio.create_task(reader(ws)) for ws in sockets]
    while line := (await stdin.readline()).decode().strip():
        if line == "count":
            print(json.dumps({"received": received}), flush=True)
        elif line == "quit":
            break
    for task in readers:
        task.cancel()
    await session.close()


# --- server side ----------------------------------------------------------------------------


async def run_size(n: int, rounds: int, per_round: int) -> dict[str, Any]:
    from aiohttp import web

    from relayroom.signaling.config import load_config
    from relayroom.signaling.server import Server, create_app

    with tempfile.TemporaryDirectory() as tmp:
        config = load_config(
            env={},
            overrides={
                "api_secret": SECRET,
                "data_dir": Path(tmp),
                "port": 0,
                "ip_max_connections": n + 10,
                "ip_handshakes_per_s": 1e6,
                "ip_handshake_burst": 10**6,
                "room_max_participants": ROOM_SIZE,
                "send_queue_max": max(256, per_round * 2),
                "log_level": "warning",
            },
        )
        server = Server.build(config, SECRET)
        runner = web.AppRunner(create_app(server), access_log=None)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        port = runner.addresses[0][1]

        cpu_before = time.process_time()
        child = await asyncio.create_subprocess_exec(
            sys.executable,
            __file__,
            "--client",
            f"http://127.0.0.1:{port}/ws",
            str(n),
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
        )
        assert child.stdout is not None and child.stdin is not None
        first_half = json.loads(await child.stdout.readline())["joined"]
        join_cpu = time.process_time() - cpu_before
        await asyncio.sleep(0.5)
        gc.collect()
        rss_half = rss_bytes()
        cpu_before = time.process_time()
        child.stdin.write(b"more\n")
        await child.stdin.drain()
        joined = json.loads(await child.stdout.readline())
        join_cpu += time.process_time() - cpu_before
        await asyncio.sleep(0.5)
        gc.collect()
        rss_after = rss_bytes()

        rooms = list(server.registry.rooms)
        message = {"type": "signal", "from": "bench", "payload": {"n": 0}}
        cpu_before = time.process_time()
        wall_before = time.perf_counter()
        for _ in range(rounds):
            for _ in range(per_round):
                for room in rooms:
                    server.registry.broadcast(room, message)
            while any(c.socket.queued for c in server.edges):
                await asyncio.sleep(0.001)
        fanout_cpu = time.process_time() - cpu_before
        fanout_wall = time.perf_counter() - wall_before
        expected = n * rounds * per_round
        received = 0
        for _ in range(100):
            child.stdin.write(b"count\n")
            await child.stdin.drain()
            received = json.loads(await child.stdout.readline())["received"]
            if received >= expected:
                break
            await asyncio.sleep(0.05)
        child.stdin.write(b"quit\n")
        await child.stdin.drain()
        await child.wait()
        await runner.cleanup()

    return {
        "connections": n,
        "idle_bytes_per_connection": (rss_after - rss_half) / (n - first_half),
        "joins_per_s_wall": n / joined["join_s"],
        "joins_per_cpu_s": n / join_cpu if join_cpu else None,
        "fanout_messages": expected,
        "fanout_delivered": received,
        "fanout_per_cpu_s": expected / fanout_cpu if fanout_cpu else None,
        "fanout_per_s_wall": expected / fanout_wall,
    }


async def bench(sizes: list[int], rounds: int, per_round: int) -> dict[str, Any]:
    raise_fd_limit()
    results = [await run_size(n, rounds, per_round) for n in sizes]
    return {
        "benchmark": "signaling",
        "results": results,
        "floors": {
            "idle_kib_per_connection": FLOOR_IDLE_KIB,
            "fanout_per_core": FLOOR_FANOUT_PER_CORE,
        },
        "meets_floors": all(
            r["idle_bytes_per_connection"] <= FLOOR_IDLE_KIB * 1024
            and (r["fanout_per_cpu_s"] or 0) >= FLOOR_FANOUT_PER_CORE
            for r in results
        ),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="smoke run with tiny sizes")
    parser.add_argument("--sizes", type=int, nargs="*", default=[1000, 5000])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--per-round", type=int, default=100)
    parser.add_argument("--client", nargs=2, metavar=("URL", "N"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.client:
        asyncio.run(client_main(args.client[0], int(args.client[1]), 100))
        return
    if args.quick:
        args.sizes, args.rounds, args.per_round = [60], 2, 20
    report = asyncio.run(bench(args.sizes, args.rounds, args.per_round))
    print(json.dumps(report, indent=2))
    summary = ", ".join(
        f"N={r['connections']}: {r['idle_bytes_per_connection'] / 1024:.1f} KiB/conn, "
        f"{r['joins_per_s_wall']:.0f} joins/s, {r['fanout_per_cpu_s'] or 0:,.0f} fan-out msg/s/core"
        for r in report["results"]
    )
    print(f"signaling: {summary}; floors met: {report['meets_floors']}")


if __name__ == "__main__":
    main()
