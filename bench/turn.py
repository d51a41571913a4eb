"""Relayed ChannelData packets per CPU-second: the embedded TURN server against coturn.

Both servers get the same load in the same run: N UDP clients allocate, bind a channel to one
loopback sink and send ChannelData at a fixed offered rate. The servers run as their own
processes; their CPU time (utime + stime of all threads, from /proc/PID/stat) over the load
phase gives packets relayed per CPU-second, that is per core. Prints JSON, then one summary line.

    python bench/turn.py            # 3 runs per server, medians
    python bench/turn.py --quick    # smoke run (seconds)

Loopback only. Needs coturn's `turnserver` on PATH.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
# relayroom relays at least this share of coturn's packets per CPU-second (0.55 measured).
FLOOR_RATIO = 0.25
# Run as a script, this file's folder comes first on sys.path and `import turn` would find this
# very file: put the repository root first instead.
if sys.path and Path(sys.path[0] or ".").resolve() == ROOT / "bench":
    sys.path[0] = str(ROOT)
elif str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench.loopback import free_port  # noqa: E402
from relayroom.turn.codec import (  # noqa: E402
    Attr,
    ErrorCode,
    Message,
    MessageClass,
    Method,
    encode_channel_data,
    encode_message,
    long_term_key,
    parse_message,
)
from relayroom.turn.credentials import rest_credentials  # noqa: E402

SECRET = "bench-secret"
REALM = "bench.relayroom"
CHANNEL = 0x4000
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


@dataclass
class Sample:
    relayed: int
    sent: int
    cpu_s: float
    wall_s: float

    duration_s: float

    @property
    def per_cpu_s(self) -> float | None:
        # Below a few clock ticks the CPU figure is noise (smoke runs).
        return self.relayed / self.cpu_s if self.cpu_s >= 3 / CLOCK_TICKS else None


def cpu_seconds(pid: int) -> float:
    """utime + stime of a process (all its threads), from /proc/PID/stat."""
    text = Path(f"/proc/{pid}/stat").read_text()
    fields = text[text.rindex(")") + 2 :].split()
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS


# -- a blocking TURN client, just enough to allocate and bind a channel -------------------------


def _transact(sock: socket.socket, data: bytes) -> Message:
    tid = data[8:20]
    for _ in range(5):
        sock.send(data)
        deadline = time.monotonic() + 1.0
        while time.monotonic() < deadline:
            sock.settimeout(max(0.01, deadline - time.monotonic()))
            try:
                reply = sock.recv(4096)
            except TimeoutError:
                break
            if reply[:1] < b"\x40":
                msg = parse_message(reply)
                if msg.transaction_id == tid:
                    return msg
    raise TimeoutError("no reply from TURN server")


def _request(
    sock: socket.socket, method: Method, attrs: list[tuple[int, object]], auth: dict[str, str]
) -> Message:
    for _ in range(2):
        full = list(attrs)
        key = None
        if "nonce" in auth:
            full += [
                (Attr.USERNAME, auth["username"]),
                (Attr.REALM, auth["realm"]),
                (Attr.NONCE, auth["nonce"]),
            ]
            key = long_term_key(auth["username"], auth["realm"], auth["password"])
        data = encode_message(method, MessageClass.REQUEST, os.urandom(12), full, key=key)  # type: ignore[arg-type]
        msg = _transact(sock, data)
        if msg.cls is MessageClass.SUCCESS:
            return msg
        error = msg.get(Attr.ERROR_CODE)
        code = error.code if isinstance(error, ErrorCode) else 0
        if code in (401, 438) and msg.get_str(Attr.NONCE):
            auth["realm"] = msg.get_str(Attr.REALM) or ""
            auth["nonce"] = msg.get_str(Attr.NONCE) or ""
            continue
        raise RuntimeError(f"TURN {method.name} failed with {code}")
    raise RuntimeError(f"TURN {method.name} failed")


def open_channel(server: tuple[str, int], user: str, peer: tuple[str, int]) -> socket.socket:
    username, password = rest_credentials(SECRET, user, 3600)
    auth = {"username": username, "password": password}
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 1 << 20)
    sock.connect(server)
    _request(sock, Method.ALLOCATE, [(Attr.REQUESTED_TRANSPORT, 17)], auth)
    _request(
        sock,
        Method.CHANNEL_BIND,
        [(Attr.CHANNEL_NUMBER, CHANNEL), (Attr.XOR_PEER_ADDRESS, peer)],
        auth,
    )
    sock.setblocking(False)
    return sock


def _drain(sink: socket.socket) -> int:
    count = 0
    while True:
        try:
            sink.recv(65535)
        except BlockingIOError:
            return count
        count += 1


def run_load(
    server: tuple[str, int], pid: int, clients: int, rate: int, duration: float, payload: int
) -> Sample:
    sink = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sink.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 8 << 20)
    sink.bind(("127.0.0.1", 0))
    sink.setblocking(False)
    socks = [open_channel(server, f"bench{i}", sink.getsockname()) for i in range(clients)]
    frame = encode_channel_data(CHANNEL, bytes(payload))
    batch = 20
    interval = batch / rate
    sent = received = 0
    cpu_start = cpu_seconds(pid)
    start = time.monotonic()
    next_batch = start
    i = 0
    while (now := time.monotonic()) - start < duration:
        if now < next_batch:
            received += _drain(sink)
            time.sleep(min(0.001, next_batch - now))
            continue
        sock = socks[i % clients]
        i += 1
        for _ in range(batch):
            with contextlib.suppress(BlockingIOError):
                sock.send(frame)
                sent += 1
        next_batch += interval
    settle = time.monotonic() + 0.5
    while time.monotonic() < settle:
        received += _drain(sink)
        time.sleep(0.005)
    cpu = cpu_seconds(pid) - cpu_start
    wall = time.monotonic() - start
    for sock in socks:
        sock.close()
    sink.close()
    return Sample(received, sent, cpu, wall, duration)


# -- the two servers ------------------------------------------------------------------------


def serve_embedded(port: int) -> None:
    """Child mode: run the embedded server until stdin closes."""
    from relayroom.turn.config import TurnConfig
    from relayroom.turn.server import TurnServer

    async def main() -> None:
        config = TurnConfig(
            realm=REALM,
            listen_host="127.0.0.1",
            udp_port=port,
            tcp_port=None,
            relay_host="127.0.0.1",
            relay_port_min=0,
            relay_port_max=0,
            secret=SECRET,
            allowed_peers=("127.0.0.1/32",),
            bandwidth_bytes_per_s=0,
            max_allocations_per_user=1000,
        )
        server = TurnServer(config)
        await server.start()
        print("ready", flush=True)
        loop = asyncio.get_running_loop()
        await loop.run_in_executor(None, sys.stdin.read)
        await server.close()

    asyncio.run(main())


class ServerProcess:
    def __init__(self, name: str, argv: list[str], port: int) -> None:
        self.name = name
        self.port = port
        self.proc = subprocess.Popen(
            argv,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
        )

    def wait_ready(self) -> None:
        deadline = time.monotonic() + 15
        probe = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        probe.connect(("127.0.0.1", self.port))
        binding = encode_message(Method.BINDING, MessageClass.REQUEST, os.urandom(12))
        try:
            while time.monotonic() < deadline:
                try:
                    _transact(probe, binding)
                    return
                except (TimeoutError, ConnectionRefusedError):
                    time.sleep(0.1)
        finally:
            probe.close()
        raise RuntimeError(f"{self.name} did not start")

    def stop(self) -> None:
        if self.proc.stdin is not None:
            with contextlib.suppress(BrokenPipeError):
                self.proc.stdin.close()
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


def start_server(name: str) -> ServerProcess:
    port = free_port(socket.SOCK_DGRAM)
    if name == "relayroom":
        argv = [sys.executable, str(Path(__file__).resolve()), "--serve", str(port)]
    else:
        relay = free_port(socket.SOCK_DGRAM)
        argv = [
            "turnserver",
            "--use-auth-secret",
            f"--static-auth-secret={SECRET}",
            f"--realm={REALM}",
            "--listening-ip=127.0.0.1",
            "--relay-ip=127.0.0.1",
            f"--listening-port={port}",
            f"--min-port={min(relay, 60000)}",
            f"--max-port={min(relay, 60000) + 500}",
            "--allow-loopback-peers",
            "--no-cli",
            "--no-tls",
            "--no-dtls",
            "--no-tcp",
            "--no-tcp-relay",
            "--log-file=/dev/null",
            "--no-stdout-log",
            "--user-quota=0",
            "--total-quota=0",
        ]
    server = ServerProcess(name, argv, port)
    server.wait_ready()
    return server


def measure(name: str, args: argparse.Namespace) -> Sample:
    server = start_server(name)
    try:
        return run_load(
            ("127.0.0.1", server.port),
            server.proc.pid,
            args.clients,
            args.rate,
            args.duration,
            args.payload,
        )
    finally:
        server.stop()


def _median(values: list[float | None]) -> float | None:
    known = [v for v in values if v is not None]
    return statistics.median(known) if known else None


def summarize(samples: list[Sample]) -> dict[str, object]:
    per_cpu = _median([s.per_cpu_s for s in samples])
    return {
        "pkts_per_cpu_s": round(per_cpu) if per_cpu is not None else None,
        "relayed_pkts_per_s": round(statistics.median(s.relayed / s.duration_s for s in samples)),
        "loss": round(
            1 - sum(s.relayed for s in samples) / max(1, sum(s.sent for s in samples)), 4
        ),
        "runs": [
            asdict(s) | {"pkts_per_cpu_s": round(v) if (v := s.per_cpu_s) is not None else None}
            for s in samples
        ],
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--quick", action="store_true", help="smoke run: tiny load, one run")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--rate", type=int, default=20000, help="offered ChannelData pkts/s")
    parser.add_argument("--duration", type=float, default=4.0, help="seconds of load per run")
    parser.add_argument("--clients", type=int, default=4)
    parser.add_argument("--payload", type=int, default=160, help="bytes per packet")
    parser.add_argument("--serve", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.serve is not None:
        serve_embedded(args.serve)
        return 0
    if args.quick:
        args.runs, args.rate, args.duration, args.clients = 1, 5000, 1.0, 2
    if shutil.which("turnserver") is None:
        print("coturn's turnserver is not installed", file=sys.stderr)
        return 2
    samples: dict[str, list[Sample]] = {"relayroom": [], "coturn": []}
    for run in range(args.runs):
        # Alternate the order so that neither server always runs on a warmer machine.
        order = ["relayroom", "coturn"] if run % 2 == 0 else ["coturn", "relayroom"]
        for name in order:
            samples[name].append(measure(name, args))
    ours = summarize(samples["relayroom"])
    theirs = summarize(samples["coturn"])
    ours_rate = ours["pkts_per_cpu_s"]
    theirs_rate = theirs["pkts_per_cpu_s"]
    ratio = (
        ours_rate / theirs_rate
        if isinstance(ours_rate, int) and isinstance(theirs_rate, int) and theirs_rate
        else None
    )
    report = {
        "benchmark": "turn-channeldata-relay",
        "offered_pkts_per_s": args.rate,
        "duration_s": args.duration,
        "clients": args.clients,
        "payload_bytes": args.payload,
        "runs": args.runs,
        "relayroom": ours,
        "coturn": theirs,
        "ratio": round(ratio, 3) if ratio is not None else None,
        "floors": {"ratio_ge": FLOOR_RATIO},
        "meets_floors": ratio is not None and ratio >= FLOOR_RATIO,
    }
    print(json.dumps(report, indent=2))

    def show(rate: object) -> str:
        return f"{rate:,}" if isinstance(rate, int) else "n/a (too little CPU to measure)"

    shown_ratio = "n/a" if ratio is None else f"{ratio:.2f}"
    print(
        f"turn relay: relayroom {show(ours_rate)} pkts/s per core, coturn {show(theirs_rate)} "
        f"pkts/s per core, ratio {shown_ratio} (median of {args.runs}, {args.rate} pkts/s offered)"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
