"""One server session: start it, sign in the publisher, add subscribers step by step, measure."""

from __future__ import annotations

import asyncio
import contextlib
import subprocess
import sys
from typing import Any

from bench.sfu import measure, procstat
from bench.sfu.clients import Child
from bench.sfu.servers import Server


async def _decoding(subscriber: Child, timeout: float) -> bool:
    """Whether the subscriber decodes a stamped frame within ``timeout`` seconds."""
    deadline = asyncio.get_running_loop().time() + timeout
    while asyncio.get_running_loop().time() < deadline:
        if (await subscriber.acall("status"))["stamped"] > 0:
            return True
        await asyncio.sleep(0.2)
    return False


async def _join(server: Server, subscriber: Child, name: int, timeout: float) -> None:
    async def answer(sdp: str) -> str:
        return str(await subscriber.acall("answer_offer", sdp))

    await server.subscribe(name, answer)
    if not await _decoding(subscriber, timeout):
        raise RuntimeError(f"subscriber {name} decoded no stamped frame in {timeout} s")


def start_hogs(count: int, cpu: int | None) -> list[subprocess.Popen[bytes]]:
    """Busy processes pinned to the server's core: CPU starvation that both servers share.

    Each is in a session of its own, as the server is, so autogroup scheduling weighs the
    server against each of them: it gets about 1/(count+1) of its core when all want it.
    """
    argv = [sys.executable, "-c", "while True: pass"]
    if cpu is not None:
        argv = ["taskset", "-c", str(cpu), *argv]
    return [subprocess.Popen(argv, start_new_session=True) for _ in range(count)]


# The kernel's CFS weight per nice value 0..19 (kernel/sched/core.c, sched_prio_to_weight).
_WEIGHTS = (
    1024,
    820,
    655,
    526,
    423,
    335,
    272,
    215,
    172,
    137,
    110,
    87,
    70,
    56,
    45,
    36,
    29,
    23,
    18,
    15,
)


def nominal_share(hogs: int, nice: int) -> float:
    """The share of its core the server gets while ``hogs`` busy processes (nice 0) want it."""
    return _WEIGHTS[nice] / (_WEIGHTS[nice] + 1024 * hogs)


def stop_hogs(hogs: list[subprocess.Popen[bytes]]) -> None:
    for hog in hogs:
        hog.kill()
        hog.wait(5)


async def session(
    server: Server,
    publisher: Child,
    subscribers: list[Child],
    steps: list[int],
    *,
    warmup: float,
    seconds: float,
    idle_seconds: float,
    target_fps: int,
    hogs: int = 0,
    hog_cpu: int | None = None,
    starve_nice: int = 0,
) -> dict[str, Any]:
    """Measure ``server`` with each number of subscribers in ``steps`` (ascending)."""
    result: dict[str, Any] = {"windows": {}}
    running: list[subprocess.Popen[bytes]] = []
    try:
        await server.start()
        await asyncio.sleep(idle_seconds / 2)
        result["rss_idle_mb"] = procstat.rss_bytes(server.pid) / 2**20
        cpu0 = procstat.cpu_seconds(server.pid)
        await asyncio.sleep(idle_seconds)
        result["idle_cpu"] = (procstat.cpu_seconds(server.pid) - cpu0) / idle_seconds

        offer = await publisher.acall("offer")
        await publisher.acall("answer", await server.publish(offer))
        await asyncio.sleep(1.0)
        result["rss_publisher_mb"] = procstat.rss_bytes(server.pid) / 2**20

        joined, result["rejoins"] = 0, 0
        for n in steps:
            while joined < n:
                sub = subscribers[joined]
                try:
                    await _join(server, sub, joined, 15)
                except (RuntimeError, TimeoutError):
                    # ICE can fail on a loaded machine (seen with both servers): a browser would
                    # try again, and so does the benchmark, once, with a new session. The failed
                    # session stays on the server, without media; the JSON counts rejoins.
                    await sub.acall("reset", timeout=15)
                    result["rejoins"] += 1
                    await _join(server, sub, 1000 + joined, 15)
                joined += 1
            if hogs and not running:
                running = start_hogs(hogs, hog_cpu)
                result["starved_by"] = procstat.lower_priority(server.pid, starve_nice)
            await asyncio.sleep(warmup)
            result["windows"][n] = await measure.window(
                server.pid, publisher, subscribers[:n], seconds, target_fps
            )
        return result
    finally:
        stop_hogs(running)
        for client in [publisher, *subscribers]:
            with contextlib.suppress(Exception):
                await client.acall("reset", timeout=15)
        await server.stop()
