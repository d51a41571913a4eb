"""DataChannel relay benchmark: relayed messages/s per core and relay latency, with p2p beside it.

Cases: 100 B and 1 KiB messages, fan-out 1->1 and 1->4, through relayroom (the relay runs in
this process; every client is its own process and speaks the real signaling protocol), and the
same sender/receiver code connected directly peer-to-peer (no relay) as the reference.

Each case has two phases on the ``reliable`` channel:
- latency: the sender paces ``--latency-rate`` messages/s; each message carries its send time
  (CLOCK_MONOTONIC is shared by every process), receivers record p50/p99 of arrival - send;
- throughput: the sender paces ``--rate`` messages/s (default 3000) for ``--seconds``;
  messages/s is what receivers got, and per core divides it by the relay process's CPU over the
  phase (all threads, ``time.process_time``): relayed messages per second of relay CPU.
  ``--rate 0`` sends as fast as the sender's channel drains instead; aiortc's SCTP ignores the
  receiver's window, so a sender faster than the relay overflows the relay's UDP receive buffer
  (212 KB by default) and stalls on 1 s retransmission timeouts: a saturated run measures that
  collapse, not the relay's cost (``udp_rcvbuf_errors`` in the report counts those drops).

The sender never batches: every message is its own DataChannel message. The relay batches on
its own when a receiver's channel is backed up (see docs/datachannels.md).

Prints one JSON object, then a one-line summary. Run in a loopback-only namespace:

    unshare -rn sh -c 'ip link set lo up && exec .venv/bin/python bench/datachannel.py'
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import multiprocessing as mp
import os
import sys
import tempfile
import time
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

from relayroom.loadtest.probe import percentile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)

LOOPBACK = ("127.0.0.1",)
SECRET = "bench-secret-0123456789abcdef-0123456789"
FLOOR_MSGS_PER_CORE = 5000.0
HIGH_WATER = 256 * 1024


# ------------------------------------------------------------------------- client processes


def _client_process(conn: Connection, role: str, mode: str, args: dict[str, Any]) -> None:
    asyncio.run(_client(conn, role, mode, args))


async def _client(conn: Connection, role: str, mode: str, args: dict[str, Any]) -> None:
    import aiohttp
    from aiortc import RTCConfiguration, RTCPeerConnection, RTCSessionDescription
    from aiortc.rtcconfiguration import RTCBundlePolicy

    from relayroom.media.aiortc_hooks import configure_ice

    loop = asyncio.get_running_loop()
    inbox: asyncio.Queue[Any] = asyncio.Queue()
    loop.add_reader(conn.fileno(), lambda: inbox.put_nowait(conn.recv()))

    def new_pc() -> RTCPeerConnection:
        return RTCPeerConnection(
            RTCConfiguration(iceServers=[], bundlePolicy=RTCBundlePolicy.MAX_BUNDLE)
        )

    lat: dict[str, list[float]] = {"latency": [], "throughput": []}
    counts = {"latency": 0, "throughput": 0}
    first_last: dict[str, list[float]] = {"throughput": []}
    done = asyncio.Event()

    def on_message(text: str | bytes) -> None:
        now = time.monotonic()
        value = json.loads(text)
        for m in value if isinstance(value, list) else [value]:
            if m.get("topic") != "b":
                continue
            p = m["payload"]
            phase = p["p"]
            if phase == "end":
                done.set()
                continue
            counts[phase] += 1
            if phase == "throughput":
                if not first_last["throughput"]:
                    first_last["throughput"].append(now)
                if counts[phase] % 10 == 0:
                    lat[phase].append((now - p["t"]) * 1000)
            else:
                lat[phase].append((now - p["t"]) * 1000)

    pc_pub = new_pc()
    channel = pc_pub.createDataChannel("reliable") if role == "sender" else None
    session: aiohttp.ClientSession | None = None
    ws: aiohttp.ClientWebSocketResponse | None = None

    if mode == "relay":
        session = aiohttp.ClientSession()
        ws = await session.ws_connect(args["url"])
        await ws.send_json({"type": "join", "id": "j", "room": "bench", "token": args["token"]})
        joined = await ws.receive_json()
        assert joined["type"] == "joined", joined
        if channel is None:
            channel = pc_pub.createDataChannel("reliable")
        pc_sub = new_pc()

        @pc_sub.on("datachannel")
        def on_dc(ch: Any) -> None:
            ch.on("message", on_message)

        configure_ice(pc_pub, LOOPBACK)
        await pc_pub.setLocalDescription(await pc_pub.createOffer())
        await ws.send_json({"type": "publish_offer", "id": "p", "sdp": pc_pub.localDescription.sdp})

        async def signaling() -> None:
            assert ws is not None
            async for msg in ws:
                m = json.loads(msg.data)
                if m["type"] == "publish_answer":
                    await pc_pub.setRemoteDescription(RTCSessionDescription(m["sdp"], "answer"))
                elif m["type"] == "subscribe_offer":
                    await pc_sub.setRemoteDescription(RTCSessionDescription(m["sdp"], "offer"))
                    configure_ice(pc_sub, LOOPBACK)
                    await pc_sub.setLocalDescription(await pc_sub.createAnswer())
                    await ws.send_json(
                        {"type": "subscribe_answer", "sdp": pc_sub.localDescription.sdp}
                    )

        sig_task = loop.create_task(signaling())
        opened = [False]

        @pc_sub.on("datachannel")
        def on_open(ch: Any) -> None:
            opened[0] = True

        while not (opened[0] and channel.readyState == "open"):
            await asyncio.sleep(0.02)
    else:
        # Peer to peer: the parent relays one offer and one answer between the two processes.
        sig_task = None
        pc = pc_pub
        if role == "sender":
            configure_ice(pc, LOOPBACK)
            await pc.setLocalDescription(await pc.createOffer())
            conn.send({"sdp": pc.localDescription.sdp})
            answer = await inbox.get()
            await pc.setRemoteDescription(RTCSessionDescription(answer["sdp"], "answer"))
            assert channel is not None
            while channel.readyState != "open":
                await asyncio.sleep(0.02)
        else:
            got = asyncio.Event()

            @pc.on("datachannel")
            def on_dc(ch: Any) -> None:
                ch.on("message", on_message)
                got.set()

            offer = await inbox.get()
            await pc.setRemoteDescription(RTCSessionDescription(offer["sdp"], "offer"))
            configure_ice(pc, LOOPBACK)
            await pc.setLocalDescription(await pc.createAnswer())
            conn.send({"sdp": pc.localDescription.sdp})
            await got.wait()

    conn.send({"ready": True})
    if role == "sender":
        assert channel is not None
        drained = asyncio.Event()
        channel.bufferedAmountLowThreshold = HIGH_WATER // 4
        channel.on("bufferedamountlow", drained.set)
        size = int(args["size"])
        pad = "x" * max(0, size - 60)
        while True:
            cmd = await inbox.get()
            if cmd["phase"] == "stop":
                break
            phase, sent = cmd["phase"], 0
            start = time.monotonic()
            end = start + cmd["seconds"]
            rate = cmd.get("rate")
            while True:
                now = time.monotonic()
                if now >= end:
                    break
                if rate:
                    due = start + sent / rate
                    if due > now:
                        await asyncio.sleep(due - now)
                elif channel.bufferedAmount > HIGH_WATER:
                    drained.clear()
                    await drained.wait()
                body = {"topic": "b", "payload": {"p": phase, "t": time.monotonic(), "x": pad}}
                channel.send(json.dumps(body, separators=(",", ":")))
                sent += 1
                if not rate and sent % 64 == 0:
                    await asyncio.sleep(0)
            if phase == "throughput":
                channel.send(json.dumps({"topic": "b", "payload": {"p": "end", "t": 0}}))
            while channel.bufferedAmount > 0:
                await asyncio.sleep(0.01)
            conn.send({"phase": phase, "sent": sent, "seconds": time.monotonic() - start})
    else:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(done.wait(), args["timeout"])
        last = time.monotonic()
        span = last - first_last["throughput"][0] if first_last["throughput"] else 0.0
        conn.send(
            {
                "received": counts,
                "throughput_span_s": span,
                "latency_ms": lat["latency"],
                "throughput_latency_ms": lat["throughput"],
            }
        )
    if sig_task is not None:
        sig_task.cancel()
    if ws is not None:
        await ws.close()
    if session is not None:
        await session.close()
    await pc_pub.close()


# ------------------------------------------------------------------------- the relay (parent)


def _udp_rcvbuf_errors() -> int:
    """UDP datagrams dropped for a full receive buffer (this network namespace)."""
    try:
        lines = [line.split() for line in Path("/proc/net/snmp").read_text().splitlines()]
    except OSError:
        return 0
    udp = [line for line in lines if line and line[0] == "Udp:"]
    if len(udp) < 2:
        return 0
    return int(dict(zip(udp[0][1:], udp[1][1:], strict=False)).get("RcvbufErrors", 0))


async def _run_case(
    mode: str, size: int, receivers: int, opts: argparse.Namespace, url: str | None
) -> dict[str, Any]:
    from relayroom.signaling.tokens import Grants, mint_token

    ctx = mp.get_context("spawn")
    procs: list[Any] = []
    conns: list[Connection] = []

    def spawn(role: str, identity: str) -> Connection:
        parent, child = ctx.Pipe()
        token = mint_token(
            SECRET, room="bench", identity=identity, ttl_s=600, name=None, grants=Grants()
        )
        args = {"url": url, "token": token, "size": size, "timeout": opts.seconds + 30}
        p = ctx.Process(target=_client_process, args=(child, role, mode, args), daemon=True)
        p.start()
        procs.append(p)
        conns.append(parent)
        return parent

    loop = asyncio.get_running_loop()

    async def recv(c: Connection, timeout: float = 60) -> Any:
        deadline = time.monotonic() + timeout
        while not c.poll():
            if time.monotonic() > deadline:
                raise TimeoutError("a client process did not answer")
            await asyncio.sleep(0.005)
        return c.recv()

    recv_conns = [spawn("receiver", f"r{i}") for i in range(receivers)]
    if mode == "relay":
        for c in recv_conns:
            assert (await recv(c))["ready"]
        sender = spawn("sender", "s")
        assert (await recv(sender))["ready"]
    else:
        sender = spawn("sender", "s")
        offer = await recv(sender)
        recv_conns[0].send(offer)
        sender.send(await recv(recv_conns[0]))
        assert (await recv(sender))["ready"]
        assert (await recv(recv_conns[0]))["ready"]
    await asyncio.sleep(0.5)

    sender.send({"phase": "latency", "seconds": opts.latency_seconds, "rate": opts.latency_rate})
    await recv(sender)
    await asyncio.sleep(0.3)
    cpu0, wall0 = time.process_time(), time.monotonic()
    udp0 = _udp_rcvbuf_errors()
    sender.send({"phase": "throughput", "seconds": opts.seconds, "rate": opts.rate})
    sent = await recv(sender, opts.seconds + 60)
    results = [await recv(c, 60) for c in recv_conns]
    cpu, wall = time.process_time() - cpu0, time.monotonic() - wall0
    udp_errors = _udp_rcvbuf_errors() - udp0
    sender.send({"phase": "stop"})
    for p in procs:
        await loop.run_in_executor(None, p.join, 10)
        if p.is_alive():
            p.kill()

    got = [r["received"]["throughput"] for r in results]
    span = max(r["throughput_span_s"] for r in results) or 1e-9
    delivered_per_s = sum(got) / span
    in_per_s = min(got) / span
    latencies = [v for r in results for v in r["latency_ms"]]
    out: dict[str, Any] = {
        "mode": mode,
        "size_bytes": size,
        "receivers": receivers,
        "sent": sent["sent"],
        "received_min": min(got),
        "messages_in_per_s": round(in_per_s),
        "messages_delivered_per_s": round(delivered_per_s),
        "latency_ms_p50": percentile(latencies, 50),
        "latency_ms_p99": percentile(latencies, 99),
        "latency_samples": len(latencies),
        "latency_lost": opts.latency_rate * opts.latency_seconds * receivers - len(latencies),
        "offered_rate": opts.rate,
        "udp_rcvbuf_errors": udp_errors,
        "loaded_latency_ms_p50": percentile(
            [v for r in results for v in r["throughput_latency_ms"]], 50
        ),
    }
    if mode == "relay":
        core = cpu / wall if wall else 0.0
        out["relay_cpu_cores"] = round(core, 3)
        out["relayed_in_per_core"] = round(in_per_s / core) if core else None
        out["delivered_per_core"] = round(delivered_per_s / core) if core else None
    return out


async def _bench(opts: argparse.Namespace) -> dict[str, Any]:
    from aiohttp.test_utils import TestServer

    from relayroom.signaling.config import load_config
    from relayroom.signaling.server import Server, create_app

    sizes = [100] if opts.quick else [100, 1024]
    fanouts = [1, 2] if opts.quick else [1, 4]
    with tempfile.TemporaryDirectory() as tmp:
        config = load_config(
            env={},
            overrides={
                "api_secret": SECRET,
                "data_dir": Path(tmp),
                "port": 0,
                "ice_hosts": LOOPBACK,
                "allow_loopback_candidates": True,
                "turn_enabled": False,
                "log_level": "warning",
                "data_msgs_per_s": 1e6,
                "data_msgs_burst": 1_000_000,
                "data_bytes_per_s": 1e9,
                "data_bytes_burst": 1_000_000_000,
                "data_reliable_buffer_bytes": 64 * 1024 * 1024,
                "rate_limit_msgs_per_s": 1000.0,
            },
        )
        server = Server.build(config, SECRET)
        ts = TestServer(create_app(server), host="127.0.0.1")
        await ts.start_server()
        url = str(ts.make_url("/ws"))
        cases = []
        try:
            for size in sizes:
                cases.append(await _run_case("p2p", size, 1, opts, None))
                for n in fanouts:
                    cases.append(await _run_case("relay", size, n, opts, url))
        finally:
            await ts.close()
    base = next(c for c in cases if c["mode"] == "relay" and c["size_bytes"] == 100)
    return {
        "benchmark": "datachannel",
        "quick": opts.quick,
        "cpus": os.cpu_count(),
        "seconds": opts.seconds,
        "latency_rate": opts.latency_rate,
        "cases": cases,
        "floors": {
            "relayed_per_core_100B_1to1_ge_5000": (base["relayed_in_per_core"] or 0)
            >= FLOOR_MSGS_PER_CORE
        },
    }


def _summary(report: dict[str, Any]) -> str:
    parts = []
    for c in report["cases"]:
        name = f"{c['mode']} {c['size_bytes']}B 1->{c['receivers']}"
        per_core = f" {c['relayed_in_per_core']}/core" if c["mode"] == "relay" else ""
        parts.append(
            f"{name}: {c['messages_in_per_s']} msg/s{per_core} "
            f"p50/p99 {c['latency_ms_p50']}/{c['latency_ms_p99']} ms"
        )
    return "datachannel: " + "; ".join(parts)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--quick", action="store_true", help="smoke run: tiny sizes")
    parser.add_argument("--seconds", type=float, default=None, help="throughput phase length")
    parser.add_argument("--latency-seconds", type=float, default=None)
    parser.add_argument("--latency-rate", type=int, default=500, help="latency phase messages/s")
    parser.add_argument(
        "--rate",
        type=int,
        default=3000,
        help="throughput phase messages/s (0: as fast as possible)",
    )
    opts = parser.parse_args()
    if opts.seconds is None:
        opts.seconds = 1.0 if opts.quick else 4.0
    if opts.latency_seconds is None:
        opts.latency_seconds = 0.5 if opts.quick else 2.0
    if opts.quick:
        opts.latency_rate = min(opts.latency_rate, 200)
    report = asyncio.run(_bench(opts))
    print(json.dumps(report, indent=2))
    print(_summary(report))


if __name__ == "__main__":
    main()
