"""Pages in Chromium (Playwright) or Firefox ESR (tests/browsers/firefox.py) behind one
interface, with every RTCPeerConnection of a page kept for getStats()."""

from __future__ import annotations

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
