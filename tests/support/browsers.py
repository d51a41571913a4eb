"""Pages in Chromium (Playwright) or Firefox ESR (tests/browsers/firefox.py) behind one
interface, with every RTCPeerConnection of a page kept for getStats()."""

from __future__ import annotations

import asyncio
import os
from typing import Any

from tests.browsers.firefox import Firefox, FirefoxPage
from tests.conftest import artifact_path

# Decoded frames per second a viewer must see. The fake cameras send 30 fps; on a loaded
# 2-core machine the browsers decode fewer, so the floor can be lowered (frames must still grow).
FPS_FLOOR = float(os.environ.get("RELAYROOM_BROWSER_FPS_FLOOR", "15"))


def record_pcs(max_bundle: bool = False) -> str:
    """Init script: keep every RTCPeerConnection in window.__pcs (for getStats), and optionally
    make it max-bundle, as an application passing that policy would."""
    force = "true" if max_bundle else "false"
    return f"""(() => {{
  const Orig = window.RTCPeerConnection;
  const pcs = [];
  window.__pcs = pcs;
  window.RTCPeerConnection = function (config) {{
    const pc = new Orig({force} ? {{ ...(config || {{}}), bundlePolicy: "max-bundle" }} : config);
    pcs.push(pc);
    return pc;
  }};
  window.RTCPeerConnection.prototype = Orig.prototype;
}})();"""


class Viewer:
    """A page in either browser, with the two calls the checks need."""

    def __init__(self, name: str, page: Any) -> None:
        self.name = name
        self.page = page

    async def evaluate(self, fn: str, arg: Any = None) -> Any:
        if isinstance(self.page, FirefoxPage):
            return await self.page.evaluate(fn, arg)
        return await self.page.evaluate(fn, arg)

    async def wait_for(self, fn: str, arg: Any, timeout: float) -> None:
        if isinstance(self.page, FirefoxPage):
            await self.page.wait_for_function(fn, arg, timeout=timeout)
        else:
            await self.page.wait_for_function(fn, arg=arg, timeout=timeout * 1000)

    async def screenshot(self, name: str) -> None:
        await self.page.screenshot(path=str(artifact_path(name)))


async def chromium_page(browser: Any, url: str, *, max_bundle: bool = False) -> Any:
    context = await browser.new_context(permissions=["camera", "microphone"])
    await context.add_init_script(record_pcs(max_bundle))
    page = await context.new_page()
    page.on("console", lambda m: m.type == "error" and print("chromium console:", m.text))
    await page.goto(url)
    return page


async def firefox_page(firefox: Firefox, url: str, *, max_bundle: bool = False) -> FirefoxPage:
    page = await firefox.new_page(init_script=record_pcs(max_bundle))
    await page.goto(url)
    return page


HOLD_STREAM = """async () => {
  // Firefox gathers loopback candidates only for a page that holds a media stream (a quirk of
  // the loopback-only test network, not of the product).
  window.__held = await navigator.mediaDevices.getUserMedia({ audio: true });
}"""


# Remote videos on the page, and video frames decoded by all its PeerConnections.
SEEN = """async (selector) => {
  const videos = [...document.querySelectorAll(selector)].map((v) => ({
    width: v.videoWidth, height: v.videoHeight, time: v.currentTime }));
  let decoded = 0;
  let bundle = [];
  for (const pc of window.__pcs || []) {
    if (pc.connectionState === 'closed') continue;
    bundle.push(pc.getConfiguration().bundlePolicy);
    const stats = await pc.getStats();
    stats.forEach((r) => {
      if (r.type === 'inbound-rtp' && r.kind === 'video') decoded += r.framesDecoded || 0;
    });
  }
  return { videos, decoded, bundle };
}"""

WARMUP_S = 10.0
WARMUP_FRAMES = 10

PLAYING = """(selector) => [...document.querySelectorAll(selector)]
  .some((v) => v.videoWidth > 0 && v.currentTime > 0)"""


async def assert_sees_video(viewer: Viewer, selector: str, *, timeout: float = 30) -> None:
    """A remote video shows a picture, its time advances, and decoded frames grow fast enough."""
    await viewer.wait_for(PLAYING, selector, timeout)
    # Decoding must get going within a few seconds (headless browsers on a loaded machine start
    # at different speeds); the frame-rate floor below is what the test asserts.
    deadline = asyncio.get_running_loop().time() + WARMUP_S
    before = await viewer.evaluate(SEEN, selector)
    while before["decoded"] < WARMUP_FRAMES and asyncio.get_running_loop().time() < deadline:
        await asyncio.sleep(0.5)
        before = await viewer.evaluate(SEEN, selector)
    assert before["decoded"] >= WARMUP_FRAMES, (viewer.name, before)
    await asyncio.sleep(2)
    after = await viewer.evaluate(SEEN, selector)
    playing = [v for v in after["videos"] if v["width"] > 0]
    assert playing, (viewer.name, after)
    assert max(v["time"] for v in after["videos"]) > max(v["time"] for v in before["videos"]), (
        viewer.name,
        before,
        after,
    )
    fps = (after["decoded"] - before["decoded"]) / 2
    assert fps >= FPS_FLOOR, (viewer.name, fps, before, after)
    print(f"{viewer.name}: {fps:.1f} decoded fps, {playing[0]['width']}x{playing[0]['height']}")
