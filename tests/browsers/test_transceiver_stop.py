"""A Chromium publisher stops a transceiver (``RTCRtpTransceiver.stop()``) in a live call.

Its re-offer carries the stopped m-line with port 0, outside the BUNDLE group; the relay's answer
must reject it the same way or Chromium refuses the answer. The viewer (Chromium or Firefox) gets
a subscriber offer in which that track's m-line is `inactive` (still bundled, as aiortc writes
it), and must accept it; the remaining video keeps playing. With a Chromium viewer, a new camera
track (Chromium reuses the stopped m-line's slot) plays again.
"""

from __future__ import annotations

from typing import Any

import pytest

from tests.conftest import artifact_path, token_for
from tests.support.browsers import Viewer, chromium_page, firefox_page
from tests.support.client_pages import (
    ADD_VIDEO,
    CLIENT,
    PUBLISH_AUDIO,
    assert_playing,
)

pytestmark = pytest.mark.browser

# Stop the camera's transceiver and renegotiate by hand, to see the answer Chromium applies.
STOP = """async (name) => {
  const t = window[name];
  t.sender.track.stop();
  t.stop();
  const pc = window.client.publisher;
  await pc.setLocalDescription(await pc.createOffer());
  const offer = pc.localDescription.sdp;
  const reply = await window.client.signaling.request({ type: 'publish_offer', sdp: offer });
  let error = null;
  try {
    await pc.setRemoteDescription({ type: 'answer', sdp: reply.sdp });
  } catch (e) {
    error = String(e);
  }
  return { offer, answer: reply.sdp, error, state: pc.signalingState };
}"""

SUBSCRIBER = """() => {
  const pc = window.client.subscriber;
  return { state: pc.signalingState, offer: pc.remoteDescription && pc.remoteDescription.sdp };
}"""


def _bundle(sdp: str) -> list[str]:
    line = next((x for x in sdp.splitlines() if x.startswith("a=group:BUNDLE")), "")
    return line.split()[1:]


def _ports_by_mid(sdp: str) -> dict[str, int]:
    out: dict[str, int] = {}
    port = -1
    for line in sdp.splitlines():
        if line.startswith("m="):
            port = int(line.split()[1])
        elif line.startswith("a=mid:"):
            out[line[6:].strip()] = port
    return out


@pytest.mark.parametrize("viewer_browser", ["chromium", "firefox"])
async def test_stopped_transceiver_is_answered_rejected_and_media_goes_on(
    start_server: Any, browser: Any, firefox: Any, viewer_browser: str
) -> None:
    _, ts = await start_server(dev=True)
    url = str(ts.make_url("/call"))
    pub = Viewer("chromium", await chromium_page(browser, url))
    if viewer_browser == "chromium":
        sub = Viewer("chromium-viewer", await chromium_page(browser, url))
    else:
        sub = Viewer("firefox", await firefox_page(firefox, url))

    def token(identity: str) -> str:
        return token_for("matrix", identity, can_publish=True, can_subscribe=True, mode="sfu")

    await sub.evaluate(CLIENT, [token("viewer"), viewer_browser == "firefox"])
    await pub.evaluate(CLIENT, [token("pub"), False])
    await pub.evaluate(PUBLISH_AUDIO)
    await pub.evaluate(ADD_VIDEO, "camera")
    await pub.evaluate(ADD_VIDEO, "screen")
    await assert_playing(sub, pub, 2, "camera and screen")

    result = await pub.evaluate(STOP, "camera")
    assert result["error"] is None, result["error"]
    assert result["state"] == "stable"
    offered = _ports_by_mid(result["offer"])
    stopped = [mid for mid, port in offered.items() if port == 0]
    assert len(stopped) == 1, offered  # Chromium's stopped m-line: port 0, outside BUNDLE
    assert stopped[0] not in _bundle(result["offer"])
    assert _ports_by_mid(result["answer"])[stopped[0]] == 0
    assert stopped[0] not in _bundle(result["answer"])
    await assert_playing(sub, pub, 1, "camera stopped")

    # The viewer applied a subscriber offer with the camera's m-line inactive.
    seen = await sub.evaluate(SUBSCRIBER)
    assert seen["state"] == "stable", seen
    assert "a=inactive" in seen["offer"], seen["offer"]

    await sub.screenshot(f"transceiver-stop-{viewer_browser}.png")
    assert artifact_path(f"transceiver-stop-{viewer_browser}.png").exists()


async def test_a_camera_added_after_a_stopped_one_plays(start_server: Any, browser: Any) -> None:
    """Chromium reuses the stopped m-line's slot for the new camera (a new MID at that index)."""
    _, ts = await start_server(dev=True)
    url = str(ts.make_url("/call"))
    pub = Viewer("chromium", await chromium_page(browser, url))
    sub = Viewer("chromium-viewer", await chromium_page(browser, url))

    def token(identity: str) -> str:
        return token_for("matrix", identity, can_publish=True, can_subscribe=True, mode="sfu")

    await sub.evaluate(CLIENT, [token("viewer"), False])
    await pub.evaluate(CLIENT, [token("pub"), False])
    await pub.evaluate(PUBLISH_AUDIO)
    await pub.evaluate(ADD_VIDEO, "camera")
    await pub.evaluate(ADD_VIDEO, "screen")
    await assert_playing(sub, pub, 2, "camera and screen")
    result = await pub.evaluate(STOP, "camera")
    assert result["error"] is None, result["error"]
    await assert_playing(sub, pub, 1, "camera stopped")
    await pub.evaluate(ADD_VIDEO, "camera")
    await assert_playing(sub, pub, 2, "camera added again")
    await sub.screenshot("transceiver-stop-readded.png")
