"""WHIP publish to first frame at a browser subscriber, on loopback.

A real server process (`relayroom serve --dev`), a Chromium call page watching the room, and
`@eyevinn/whip-web-client` in another Chromium page (its fake camera) publishing over WHIP. One
try: the time from the encoder page's `ingest()` call to the first video frame the call page
decodes (its `getStats()` framesDecoded > 0). Each try uses a fresh room. Prints JSON, then a
one-line summary.

    python bench/whip.py [--tries N] [--quick]

Needs Chromium (`RELAYROOM_CHROMIUM`, default /usr/bin/chromium), Playwright for Python and
`npm ci` in tests/browsers (the pinned client and esbuild); scripts/test installs them.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.chromium import CHROMIUM, chromium_args  # noqa: E402
from bench.loopback import free_port, wait_port  # noqa: E402
from relayroom.signaling.tokens import Grants, mint_token  # noqa: E402
from tests.support.eyevinn import eyevinn_site  # noqa: E402

SECRET = "bench-whip-secret-0123456789abcdef-012345"
FLOOR_P50_S = 1.0  # issue 15

WATCH = """([room, token]) => {
  document.getElementById('name').value = 'Watcher';
  document.getElementById('room').value = room;
  document.getElementById('token').value = token;
  document.querySelector('input[name=mode][value=watch]').checked = true;
  document.getElementById('join').click();
}"""
RECORD_PCS = """(() => {
  const Orig = window.RTCPeerConnection;
  window.__pcs = [];
  window.RTCPeerConnection = function (config) {
    const pc = new Orig(config); window.__pcs.push(pc); return pc; };
  window.RTCPeerConnection.prototype = Orig.prototype;
})();"""
# In the call page: poll getStats every 5 ms; note the wall time of the first decoded frame.
WATCH_FIRST_FRAME = """() => {
  window.__firstFrame = null;
  const poll = async () => {
    let n = 0;
    for (const pc of window.__pcs) {
      const stats = await pc.getStats();
      stats.forEach((r) => { if (r.type === 'inbound-rtp' && r.kind === 'video')
        n += r.framesDecoded || 0; });
    }
    if (n > 0) window.__firstFrame = Date.now();
    else setTimeout(poll, 5);
  };
  poll();
}"""
# In the encoder page: the camera is already open; returns the wall time ingest() started.
INGEST = """async ([endpoint, token]) => {
  const stream = window.__stream;
  const client = new window.WHIPClient({ endpoint, opts: { authkey: token, iceServers: [] } });
  window.__whip = client;
  const started = Date.now();
  await client.ingest(stream);
  return started;
}"""


def token(room: str, identity: str, **grants: bool) -> str:
    return mint_token(SECRET, room=room, identity=identity, ttl_s=600, grants=Grants(**grants))


async def one_try(browser: Any, base: str, origin: str, room: str) -> float:
    watcher = await browser.new_context()
    await watcher.add_init_script(RECORD_PCS)
    call = await watcher.new_page()
    await call.goto(base + "call")
    await call.evaluate(WATCH, [room, token(room, "watcher", can_publish=False)])
    await call.wait_for_function("() => !document.getElementById('call').hidden", timeout=20000)
    encoder = await (await browser.new_context()).new_page()
    await encoder.goto(origin)
    # The camera is opened before the clock starts: the measure is the WHIP and relay path.
    await encoder.evaluate(
        "async () => { window.__stream = await navigator.mediaDevices.getUserMedia("
        "{ video: true, audio: true }); }"
    )
    await call.evaluate(WATCH_FIRST_FRAME)
    # Both pages read the same wall clock (one machine): ingest() start -> first frame.
    started_ms = await encoder.evaluate(INGEST, [base + f"whip/{room}", token(room, "encoder")])
    await call.wait_for_function("() => window.__firstFrame !== null", timeout=20000)
    elapsed = (await call.evaluate("() => window.__firstFrame") - started_ms) / 1000
    await encoder.evaluate("() => window.__whip.destroy()")
    await encoder.context.close()
    await watcher.close()
    return elapsed


async def bench(tries: int) -> dict[str, Any]:
    from playwright.async_api import async_playwright

    port = free_port()
    with tempfile.TemporaryDirectory() as tmp:
        env = {
            **{k: v for k, v in os.environ.items() if not k.startswith("RELAYROOM_")},
            "RELAYROOM_API_SECRET": SECRET,
            "RELAYROOM_DATA_DIR": tmp,
        }
        cmd = [sys.executable, "-m", "relayroom.signaling.cli", "serve", "--dev", "--no-turn"]
        cmd += ["--port", str(port), "--ice-host", "127.0.0.1", "--log-level", "warning"]
        server = subprocess.Popen(cmd, env=env, cwd=ROOT, stdout=subprocess.DEVNULL)
        try:
            wait_port(port, 30)
            base = f"http://127.0.0.1:{port}/"
            async with eyevinn_site(Path(tmp)) as origin, async_playwright() as pw:
                browser = await pw.chromium.launch(
                    executable_path=CHROMIUM, headless=True, args=chromium_args(fake_fps=30)
                )
                try:
                    times = [
                        await one_try(browser, base, origin, f"bench-{i}") for i in range(tries)
                    ]
                finally:
                    await browser.close()
        finally:
            server.terminate()
            server.wait(15)
    ordered = sorted(times)
    p50 = statistics.median(ordered)
    return {
        "benchmark": "whip_publish_to_first_frame",
        "tries": tries,
        "seconds": [round(t, 3) for t in times],
        "p50_s": round(p50, 3),
        "max_s": round(ordered[-1], 3),
        "floor_p50_s": FLOOR_P50_S,
        "meets_floor": p50 <= FLOOR_P50_S,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tries", type=int, default=7)
    parser.add_argument("--quick", action="store_true", help="2 tries (smoke run)")
    args = parser.parse_args()
    report = asyncio.run(bench(2 if args.quick else max(args.tries, 1)))
    print(json.dumps(report, indent=2))
    print(
        f"whip: publish to first browser frame p50 {report['p50_s'] * 1000:.0f} ms "
        f"over {report['tries']} tries (floor {FLOOR_P50_S * 1000:.0f} ms)"
    )


if __name__ == "__main__":
    main()
