"""Simulcast benchmark: forwarding cost per subscriber with and without simulcast, and how fast
a viewer gets the first frame of a new layer.

1. ``forwarding`` (in-process micro-benchmark of the packet path, not a headline figure): the
   same VP8 stream forwarded by a plain ``TrackHub`` (one SSRC, 5 packets a frame) and by a
   ``SimulcastHub`` (q/h/f: 1, 2 and 5 packets a frame, every leg on f), to 1 and to N legs
   whose sender SRTP-protects each packet and writes it to a UDP socket nobody reads (through
   the compiled step when it is built; ``--python``: in Python, ``--no-send``: dropped). The
   CPU per forwarded leg packet between 1 and N legs is the marginal cost of a subscriber;
   simulcast adds the cost of receiving q and h once per track, reported as the total per
   incoming packet beside it. Runs are interleaved (plain, simulcast, plain, ...);
   medians are reported.
2. ``switch`` (real ``relayroom serve`` process, real Chromium): a publisher page sends 3 layers
   of a fake 1280x720 camera; once the full layer flows, a viewer page asks alternately for a
   thumbnail and for full size; the time from asking to the first decoded frame of the new
   size is measured in the page (``getStats()`` every 20 ms).

Prints one JSON object, then a one-line summary. Run inside a loopback-only namespace:

    unshare -rn sh -c 'ip link set lo up && exec .venv/bin/python bench/simulcast.py'
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import random
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))


from aiortc import RTCRtpCodecParameters  # noqa: E402
from aiortc.rtp import RTP_HISTORY_SIZE, RtpPacket  # noqa: E402
from pylibsrtp import Policy, Session  # noqa: E402

from bench.chromium import CHROMIUM, chromium_args  # noqa: E402
from bench.sfu.servers import free_port, terminate, wait_port  # noqa: E402
from relayroom.media import MediaSettings, TrackInfo  # noqa: E402
from relayroom.media.aiortc_hooks import fast_sender  # noqa: E402
from relayroom.media.forwarding import Leg, TrackHub  # noqa: E402
from relayroom.media.layers import LayerRequest  # noqa: E402
from relayroom.media.rtp_build import FastSender  # noqa: E402
from relayroom.media.rtp_history import RtpHistory  # noqa: E402
from relayroom.media.simulcast_hub import SimulcastHub  # noqa: E402

VP8 = RTCRtpCodecParameters(mimeType="video/VP8", clockRate=90000, payloadType=97)
LAYERS = {"q": (1, 300, (320, 180)), "h": (2, 900, (640, 360)), "f": (5, 1100, (1280, 720))}


# ------------------------------------------------------------------------ 1. forwarding


class _Connected:
    """What a compiled sender reads of a DTLS transport: its state, connected."""

    _state = "connected"


class _NullTap:
    """A subscriber sender: each packet is SRTP-protected and sent to a UDP socket nobody
    reads (the kernel drops it), as a leg's ``DirectRtpSender`` does, without ICE or DTLS:
    through the compiled step when it is built (unless ``python``), else in Python."""

    def __init__(self, sink: tuple[socket.socket, tuple[str, int]] | None, python: bool) -> None:
        self._sink = sink
        session = Session(Policy(key=bytes(30), ssrc_type=Policy.SSRC_ANY_OUTBOUND))
        self._protect = session.protect
        self.ssrc = random.randrange(1 << 32)
        self.payload_type = 97
        self.history = RtpHistory()
        self.mid = "1"
        self.extension_ids: dict[str, int] = {}
        self.keyframe_requests = 0
        self.nacks = 0
        self._sent = 0  # in Python
        self._fast: Any = None
        self.emit_rtp: Callable[..., bool] | None = None
        if sink is not None and not python and FastSender is not None:
            self._fast = fast_sender(
                session, sink[0].fileno(), sink[1], _Connected(), connected="connected"
            )
            self.emit_rtp = self._fast.emit

    @property
    def sent(self) -> int:
        """Packets sent (or dropped at the full socket) since :meth:`reset`."""
        fast = self._fast
        return self._sent + (fast.packets + fast.dropped if fast is not None else 0)

    def reset(self) -> None:
        fast = self._fast
        self._sent = -(fast.packets + fast.dropped) if fast is not None else 0

    def send_rtp(self, data: bytes) -> None:
        self._sent += 1
        if self._sink is not None:
            sock, addr = self._sink
            with contextlib.suppress(BlockingIOError):
                sock.sendto(self._protect(data), addr)

    def detach(self) -> None:
        pass


def _payload(pic: int, size: int, key: bool, start: bool, dims: tuple[int, int]) -> bytes:
    desc = bytes([0x90 if start else 0x80, 0xE0, 0x80 | (pic >> 8) & 0x7F, pic & 0xFF, 0, 0])
    if key and start:
        w, h = dims
        head = bytes([0x10, 0x02, 0x00, 0x9D, 0x01, 0x2A, w & 0xFF, w >> 8, h & 0xFF, h >> 8])
        return desc + head + bytes(size - len(head))
    return desc + bytes(size)


def _frames(rids: list[str], count: int) -> list[RtpPacket]:
    """``count`` frames of each layer in ``rids``, interleaved as an encoder sends them."""
    out: list[RtpPacket] = []
    seq = {rid: 1000 * i for i, rid in enumerate(rids)}
    for n in range(count):
        for i, rid in enumerate(rids):
            packets, size, dims = LAYERS[rid]
            for p in range(packets):
                out.append(
                    RtpPacket(
                        payload_type=97,
                        sequence_number=seq[rid] & 0xFFFF,
                        timestamp=(i * 7_000_000 + 3000 * n) & 0xFFFFFFFF,
                        ssrc=100 + i,
                        marker=int(p == packets - 1),
                        payload=_payload(n, size, n == 0, p == 0, dims),
                    )
                )
                seq[rid] += 1
    return out


async def _run_once(
    simulcast: bool, legs: int, frames: int, switched: bool, send: bool, python: bool
) -> tuple[float, int, int]:
    """CPU seconds to forward ``frames`` frames to ``legs`` legs, packets in, leg packets.

    ``switched``: every leg started on q and moved to f (its picture ids are rewritten)."""
    info = TrackInfo(id="cam", kind="video", muted=False, codec="VP8")
    settings = MediaSettings(dynacast=False)
    rids = ["q", "h", "f"] if simulcast else ["f"]
    hub: TrackHub
    if simulcast:
        sim = SimulcastHub("pub", info, VP8, None, settings, ("q", "h", "f"))
        for i, rid in enumerate(rids):
            sim.add_stream(100 + i, rid)
        hub = sim
    else:
        hub = TrackHub("pub", info, VP8, None, settings)
    taps = []
    sink = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sink.bind(("127.0.0.1", 0))
    out = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    out.setblocking(False)
    target = (out, sink.getsockname()) if send else None
    for i in range(legs):
        leg: Leg = hub.new_leg(f"s{i}", random.randrange(0x8000), random.randrange(1 << 32))
        tap = _NullTap(target, python)
        leg.bind(tap)  # type: ignore[arg-type]
        hub.add_leg(leg)
        await leg.on_sender_ready()
        if switched and isinstance(hub, SimulcastHub):
            hub.set_request(f"s{i}", LayerRequest(quality="low"))
        taps.append(tap)
    warm = _frames(rids, 5)
    for pkt in warm:  # the first keyframes: every leg syncs (on f, or on q to switch later)
        hub.on_packet(pkt)
    if switched and isinstance(hub, SimulcastHub):
        for i in range(legs):
            hub.set_request(f"s{i}", LayerRequest(quality="high"))
        for pkt in _frames(rids, 1):  # keyframes again (n == 0): the legs move to f
            hub.on_packet(pkt)
    packets = _frames(rids, frames + 5)[len(warm) :]
    # Sequence numbers and picture ids continue from the warm-up (n restarts at 0 above).
    for pkt in packets:
        pkt.sequence_number = (pkt.sequence_number + 50) & 0xFFFF
    for tap in taps:
        tap.reset()
    start = time.process_time()
    for pkt in packets:
        hub.on_packet(pkt)
    cpu = time.process_time() - start
    sent = sum(t.sent for t in taps)
    await hub.close()
    sink.close()
    out.close()
    if sent < legs * frames * LAYERS["f"][0] * 0.99:
        raise RuntimeError(f"legs forwarded {sent} packets of {legs * frames * 5}")
    assert RTP_HISTORY_SIZE  # the legs wrote their history as in production
    return cpu, len(packets), sent


KINDS = ("plain", "simulcast", "simulcast_switched")


async def forwarding(
    legs: int, frames: int, reps: int, send: bool, python: bool = False
) -> dict[str, Any]:
    runs: dict[str, list[dict[str, float]]] = {kind: [] for kind in KINDS}
    for _ in range(reps):
        for kind in KINDS:  # interleaved
            sim, switched = kind != "plain", kind == "simulcast_switched"
            cpu1, in1, out1 = await _run_once(sim, 1, frames, switched, send, python)
            cpun, _, outn = await _run_once(sim, legs, frames, switched, send, python)
            runs[kind].append(
                {
                    "marginal_us_per_leg_packet": (cpun - cpu1) / (outn - out1) * 1e6,
                    "total_us_per_packet_in_1_leg": cpu1 / in1 * 1e6,
                    "total_us_per_leg_packet_n_legs": cpun / outn * 1e6,
                }
            )
    out: dict[str, Any] = {
        "legs": legs,
        "frames": frames,
        "reps": reps,
        "srtp_and_send": send,
        "path": "compiled" if send and not python and FastSender is not None else "python",
        "runs": runs,
    }
    for kind, rows in runs.items():
        out[kind] = {k: round(statistics.median(r[k] for r in rows), 3) for k in rows[0]}
    for kind in KINDS[1:]:
        out[f"ratio_{kind}_to_plain"] = {
            k: round(out[kind][k] / out["plain"][k], 3) for k in out["plain"]
        }
    return out


# ------------------------------------------------------------------------ 2. switch time

JOIN = """async ([room, publish, wanted]) => {
  const { RoomClient } = await import('/js/room.js');
  const reply = await fetch('/api/dev/token', { method: 'POST',
    headers: { 'content-type': 'application/json' }, body: JSON.stringify({ room }) });
  const { token } = await reply.json();
  const client = new RoomClient(location.origin.replace('http', 'ws') + '/ws');
  window.client = client;
  client.addEventListener('track', (e) => {
    if (e.detail.track.kind !== 'video') return;
    window.remoteTrack = e.detail.track;
    const v = document.createElement('video');
    v.autoplay = true; v.muted = true;
    v.srcObject = new MediaStream([e.detail.track]);
    document.body.append(v);
    if (wanted) client.setSubscription(e.detail.track.id, wanted);
  });
  await client.join(room, token, 'P');
  if (publish) {
    const s = await navigator.mediaDevices.getUserMedia({ video: { width: 1280, height: 720 } });
    await client.publish(s);
  }
}"""

WIDTH = """async () => {
  let w = 0;
  const pc = window.client.subscriber;
  if (!pc) return 0;
  (await pc.getStats()).forEach((r) => {
    if (r.type === 'inbound-rtp' && r.kind === 'video') w = r.frameWidth || 0;
  });
  return w;
}"""

# Ask for `wanted`, then until `until` ms: the ms to the first frame whose width fits `fits`.
SWITCH = """async ([wanted, minWidth, maxWidth, until]) => {
  const start = performance.now();
  window.client.setSubscription(window.remoteTrack.id, wanted);
  const pc = window.client.subscriber;
  while (performance.now() - start < until) {
    let w = 0;
    (await pc.getStats()).forEach((r) => {
      if (r.type === 'inbound-rtp' && r.kind === 'video') w = r.frameWidth || 0;
    });
    if (w >= minWidth && w <= maxWidth) return performance.now() - start;
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
  return null;
}"""

SMALL = {"maxWidth": 320, "maxHeight": 180}
LARGE = {"maxWidth": 1280, "maxHeight": 720}


async def _wait_width(page: Any, check: Any, timeout: float) -> int:
    deadline = time.monotonic() + timeout
    width = 0
    while time.monotonic() < deadline:
        width = int(await page.evaluate(WIDTH))
        if check(width):
            return width
        await asyncio.sleep(0.25)
    raise RuntimeError(f"no suitable layer in {timeout} s (width {width})")


async def switch_times(switches: int, warmup_s: float) -> dict[str, Any]:
    from playwright.async_api import async_playwright

    port = free_port()
    workdir = Path(tempfile.mkdtemp(prefix="simulcast-bench-"))
    env = {k: v for k, v in os.environ.items() if not k.startswith("RELAYROOM_")}
    env["RELAYROOM_LOG_LEVEL"] = "warning"
    argv = [sys.executable, "-m", "relayroom", "serve", "--dev", "--port", str(port)]
    argv += ["--no-turn", "--ice-host", "127.0.0.1", "--data-dir", str(workdir)]
    log = workdir / "server.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            argv, stdout=out, stderr=subprocess.STDOUT, env=env, cwd=ROOT, start_new_session=True
        )
    try:
        await wait_port(port, proc, log, 30)
        url = f"http://127.0.0.1:{port}/call"
        async with async_playwright() as pw:
            browser = await pw.chromium.launch(
                executable_path=CHROMIUM, headless=True, args=chromium_args(gpu=True)
            )
            try:
                pages = []
                for _ in range(2):
                    context = await browser.new_context(permissions=["camera", "microphone"])
                    page = await context.new_page()
                    await page.goto(url)
                    pages.append(page)
                viewer, publisher = pages
                await viewer.evaluate(JOIN, ["bench", False, LARGE])
                await publisher.evaluate(JOIN, ["bench", True, None])
                started = time.monotonic()
                await _wait_width(viewer, lambda w: w >= 960, warmup_s)
                full_after = time.monotonic() - started
                down: list[float] = []
                up: list[float] = []
                for _ in range(switches):
                    ms = await viewer.evaluate(SWITCH, [SMALL, 1, 400, 5000])
                    if ms is not None:
                        down.append(ms)
                    await asyncio.sleep(1.0)
                    ms = await viewer.evaluate(SWITCH, [LARGE, 960, 100000, 5000])
                    if ms is not None:
                        up.append(ms)
                    await asyncio.sleep(1.0)
            finally:
                await browser.close()
    finally:
        await terminate(proc)
    both = down + up

    def p50(values: list[float]) -> float | None:
        return round(statistics.median(values), 1) if values else None

    return {
        "switches": switches,
        "full_layer_after_s": round(full_after, 1),
        "down_ms": [round(x) for x in down],
        "up_ms": [round(x) for x in up],
        "missed": 2 * switches - len(both),
        "p50_ms": p50(both),
        "p50_down_ms": p50(down),
        "p50_up_ms": p50(up),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="tiny sizes (the suite's smoke run)")
    parser.add_argument("--legs", type=int, default=8)
    parser.add_argument("--frames", type=int, default=600)
    parser.add_argument("--reps", type=int, default=5)
    parser.add_argument("--switches", type=int, default=6)
    parser.add_argument("--no-browser", action="store_true", help="forwarding part only")
    parser.add_argument(
        "--no-send", action="store_true", help="legs drop packets (no SRTP, no socket)"
    )
    parser.add_argument(
        "--python",
        action="store_true",
        help="legs send in Python even if the compiled step is built",
    )
    args = parser.parse_args(argv)
    if args.quick:
        args.legs, args.frames, args.reps, args.switches = 4, 150, 2, 2
    out: dict[str, Any] = {
        "forwarding": asyncio.run(
            forwarding(args.legs, args.frames, args.reps, not args.no_send, args.python)
        )
    }
    if not args.no_browser:
        out["switch"] = asyncio.run(switch_times(args.switches, 90.0))
    print(json.dumps(out, indent=2))
    fwd = out["forwarding"]
    key = "marginal_us_per_leg_packet"
    line = (
        f"simulcast forwarding: {fwd['simulcast'][key]} us per leg packet "
        f"({fwd['simulcast_switched'][key]} after a switch) vs {fwd['plain'][key]} without "
        f"(ratios {fwd['ratio_simulcast_to_plain'][key]}, "
        f"{fwd['ratio_simulcast_switched_to_plain'][key]})"
    )
    if "switch" in out:
        sw = out["switch"]
        line += f"; layer switch to first frame p50 {sw['p50_ms']} ms ({sw['missed']} missed)"
    print(line)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
