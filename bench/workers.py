"""Workers benchmark: subscribers one host serves with `--workers 1` and with `--workers 2`.

Starts two real `relayroom serve` processes on loopback (1 worker; 2 workers under a
supervisor) and ramps `relayroom load-test` against each, interleaved (A B A B ...): R rooms of
1 publisher and S subscribers, S growing. A level passes when every participant joined, every
stream arrived, every subscriber's video ran at >= 25 fps and the video latency p99 was
<= 200 ms. Capacity is the most subscribers of a passing level below the first failing one.
Prints JSON and a one-line summary; no ratio when a side never failed (saturated: its
capacity is above the largest level). The load generator runs on the same machine and needs CPU
too: the load average before and after is in the report. Loopback only.

    python bench/workers.py            # levels up to 64 subscribers per room, 12 s each
    python bench/workers.py --repeats 3  # three ramps; medians
    python bench/workers.py --quick    # smoke run: one tiny level
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.loopback import free_port, wait_port  # noqa: E402

SECRET = "workers-bench-secret-0123456789abcdef"
FPS_FLOOR = 25.0
P99_CEILING_MS = 200.0


class Server:
    """One `relayroom serve --workers N` process."""

    def __init__(self, workers: int, workdir: Path) -> None:
        self.workers = workers
        self.port = free_port()
        env = {k: v for k, v in os.environ.items() if not k.startswith("RELAYROOM_")}
        env.update(
            {
                "RELAYROOM_API_SECRET": SECRET,
                "RELAYROOM_ALLOW_LOOPBACK_CANDIDATES": "true",
                "RELAYROOM_LOG_LEVEL": "warning",
                "RELAYROOM_IP_MAX_CONNECTIONS": "100000",
                "RELAYROOM_IP_HANDSHAKES_PER_S": "100000",
                "RELAYROOM_IP_HANDSHAKE_BURST": "100000",
                "RELAYROOM_ROOM_MAX_PARTICIPANTS": "10000",
                "RELAYROOM_DRAIN_TIMEOUT_S": "2",
            }
        )
        self.log = (workdir / f"serve-{workers}.log").open("w")
        command = [sys.executable, "-m", "relayroom", "serve", "--workers", str(workers)]
        command += ["--port", str(self.port), "--no-turn", "--ice-host", "127.0.0.1"]
        command += ["--data-dir", str(workdir / f"data-{workers}")]
        self.proc = subprocess.Popen(
            command, stdout=self.log, stderr=subprocess.STDOUT, env=env, cwd=ROOT
        )
        wait_port(self.port, 60)
        time.sleep(1.0 if workers > 1 else 0.2)  # the workers say hello to the supervisor

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/"

    def cpu_seconds(self) -> dict[int, float]:
        """CPU time (user + system) of the server process and of each of its workers."""
        pids = [self.proc.pid]
        try:
            children = Path(f"/proc/{self.proc.pid}/task/{self.proc.pid}/children").read_text()
            pids += [int(p) for p in children.split()]
        except OSError:
            pass
        tick = os.sysconf("SC_CLK_TCK")
        out: dict[int, float] = {}
        for pid in pids:
            try:
                fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            out[pid] = (int(fields[11]) + int(fields[12])) / tick  # utime, stime
        return out

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        self.log.close()


def load_test(server: Server, rooms: int, subscribers: int, seconds: float, tag: str) -> Any:
    """One `relayroom load-test` run; its JSON summary plus our verdict."""
    out = Path(tempfile.mkstemp(suffix=".json")[1])
    command = [sys.executable, "-m", "relayroom", "load-test", "--url", server.url]
    command += ["--api-secret", SECRET, "--rooms", str(rooms), "--publishers", "1"]
    command += ["--subscribers", str(subscribers), "--duration", str(seconds)]
    command += ["--join-rate", "10", "--data-rate", "0", "--report-interval", "60"]
    command += ["--room-prefix", tag, "--json", str(out)]
    started, cpu_before = time.monotonic(), server.cpu_seconds()
    generator_before = _children_cpu()
    subprocess.run(
        command, cwd=ROOT, capture_output=True, text=True, timeout=seconds + 180, check=False
    )
    wall = time.monotonic() - started
    cpu_after = server.cpu_seconds()
    generator_cpu = _children_cpu() - generator_before
    # Cores each process of the server used over the run (supervisor first when there is one).
    cores = [round((cpu_after[p] - cpu_before.get(p, 0.0)) / wall, 2) for p in cpu_after]
    try:
        summary = json.loads(out.read_text())
    except (OSError, ValueError):
        return {"passed": False, "error": "no summary", "wall_s": round(wall, 1)}
    finally:
        out.unlink(missing_ok=True)
    video = summary["video"]
    # Server (S) and load generator (G) CPU per packet the subscribers received: on shared
    # cores, 2 workers can serve at most 2S/(S+G) times the subscribers of 1 worker.
    packets = video["packets"] + summary["audio"]["packets"]
    server_cpu = sum(cpu_after[p] - cpu_before.get(p, 0.0) for p in cpu_after)
    fps_min = video["fps"]["min"]
    p99 = video["latency_ms"]["p99"]
    ok = (
        summary["participants"]["failed"] == 0
        and summary["streams"]["received"] == summary["streams"]["expected"]
        and fps_min is not None
        and fps_min >= FPS_FLOOR
        and p99 is not None
        and p99 <= P99_CEILING_MS
    )
    return {
        "passed": ok,
        "subscribers": rooms * subscribers,
        "video_fps_min": fps_min,
        "video_fps_p50": video["fps"]["p50"],
        "latency_p50_ms": video["latency_ms"]["p50"],
        "latency_p99_ms": p99,
        "loss_pct": video["loss_pct"],
        "failed": summary["participants"]["failed"],
        "streams": summary["streams"],
        "wall_s": round(wall, 1),
        "server_cores_by_process": cores,
        "server_cores": round(sum(cores), 2),
        "generator_cores": round(generator_cpu / wall, 2),
        "subscriber_packets": packets,
        "server_us_per_packet": round(1e6 * server_cpu / packets, 1) if packets else None,
        "generator_us_per_packet": round(1e6 * generator_cpu / packets, 1) if packets else None,
    }


def _children_cpu() -> float:
    """CPU seconds (user + system) of this process's finished children."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def load_average() -> float:
    return os.getloadavg()[0]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="smoke run: one tiny level")
    parser.add_argument("--rooms", type=int, default=2)
    parser.add_argument("--levels", default="4,8,12,16,24,32,48,64", help="subscribers per room")
    parser.add_argument("--seconds", type=float, default=12.0, help="load per level")
    parser.add_argument("--repeats", type=int, default=1, help="ramps; capacity is the median")
    args = parser.parse_args()
    levels = [1] if args.quick else [int(v) for v in args.levels.split(",")]
    # Latency needs a sender report after the first forwarded packet (one every 0.5-1.5 s):
    # a loaded machine may start the media late in a shorter smoke run.
    seconds = 6.0 if args.quick else args.seconds
    report: dict[str, Any] = {
        "rooms": args.rooms,
        "seconds_per_level": seconds,
        "repeats": args.repeats,
        "floors": {"video_fps_min": FPS_FLOOR, "latency_p99_ms": P99_CEILING_MS},
        "load_average_before": round(load_average(), 2),
        "levels": [],
    }
    capacities: dict[str, list[int]] = {"1": [], "2": []}
    saturated: set[str] = set()
    with tempfile.TemporaryDirectory(prefix="workers-bench-") as tmp:
        servers = {"1": Server(1, Path(tmp)), "2": Server(2, Path(tmp))}
        try:
            for repeat in range(args.repeats):
                capacity = {"1": 0, "2": 0}
                failed = {"1": False, "2": False}
                for n, per_room in enumerate(levels):
                    row: dict[str, Any] = {"repeat": repeat, "subscribers_per_room": per_room}
                    # Interleaved, and the order alternates so neither side always goes first.
                    order = ("1", "2") if (n + repeat) % 2 == 0 else ("2", "1")
                    for side in order:
                        if failed[side]:
                            continue
                        tag = f"r{repeat}l{n}w{side}"
                        result = load_test(servers[side], args.rooms, per_room, seconds, tag)
                        row[f"workers_{side}"] = result
                        if result["passed"]:
                            capacity[side] = result["subscribers"]
                        else:
                            failed[side] = True
                    report["levels"].append(row)
                    if all(failed.values()):
                        break
                for side in ("1", "2"):
                    capacities[side].append(capacity[side])
                    if not failed[side]:
                        saturated.add(f"workers_{side}")
        finally:
            for server in servers.values():
                server.stop()
    # median_low: always a level that was measured (the median of two runs is one of them).
    capacity = {side: statistics.median_low(values) for side, values in capacities.items()}
    report["load_average_after"] = round(load_average(), 2)
    report["capacity_subscribers"] = {
        "workers_1": capacity["1"],
        "workers_2": capacity["2"],
        "runs": {f"workers_{side}": values for side, values in capacities.items()},
    }
    # Never failed in some repeat: the capacity is above the largest level.
    report["saturated"] = sorted(saturated)
    ratio = None
    if not saturated and capacity["1"] > 0:
        ratio = round(capacity["2"] / capacity["1"], 2)
    report["ratio_2_over_1"] = ratio
    print(json.dumps(report, indent=1))
    summary = (
        f"workers: capacity 1 worker {capacity['1']} subscribers, 2 workers {capacity['2']}"
        + (
            f", ratio {ratio}"
            if ratio is not None
            else f" (no ratio: saturated {sorted(saturated)})"
        )
        + f" (>= {FPS_FLOOR:g} fps, p99 <= {P99_CEILING_MS:g} ms)"
    )
    print(summary)
    return 0


if __name__ == "__main__":
    sys.exit(main())
