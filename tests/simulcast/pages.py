"""Pages that drive the JS client (web/js/room.js) by hand for the simulcast tests."""

from __future__ import annotations

import asyncio
import time
from typing import Any

# Join; each remote video goes into a <video>, and asks for `window.wanted` when set.
JOIN = """async ([token, room, wanted]) => {
  const { RoomClient } = await import('/js/room.js');
  if (!window.__held) {  // Firefox gathers loopback candidates only while holding a stream
    window.__held = await navigator.mediaDevices.getUserMedia({ audio: true });
  }
  const client = new RoomClient(location.origin.replace('http', 'ws') + '/ws');
  window.client = client;
  window.wanted = wanted;
  client.addEventListener('track', (e) => {
    if (e.detail.track.kind !== 'video') return;
    window.remoteTrack = e.detail.track;
    const v = document.createElement('video');
    v.autoplay = true; v.muted = true;
    v.srcObject = new MediaStream([e.detail.track]);
    document.body.append(v);
    if (window.wanted) client.setSubscription(e.detail.track.id, window.wanted);
  });
  await client.join(room, token, 'P');
}"""

PUBLISH = """async ([width, height]) => {
  const s = await navigator.mediaDevices.getUserMedia({ video: { width, height } });
  window.published = s;
  await window.client.publish(s);
  return s.getVideoTracks()[0].getSettings();
}"""

ASK = """(wanted) => {
  window.wanted = wanted;
  window.client.setSubscription(window.remoteTrack.id, wanted);
}"""

# The width and frames of the received video (subscriber PC's inbound-rtp).
RECEIVED = """async () => {
  const pc = window.client && window.client.subscriber;
  let out = { width: 0, frames: 0 };
  if (!pc) return out;
  (await pc.getStats()).forEach((r) => {
    if (r.type === 'inbound-rtp' && r.kind === 'video') {
      out = { width: r.frameWidth || 0, frames: r.framesDecoded || 0 };
    }
  });
  return out;
}"""

# Each rid the publisher sends: active, width, frames encoded.
SENDING = """async () => {
  const out = {};
  const pc = window.client && window.client.publisher;
  if (!pc) return out;
  (await pc.getStats()).forEach((r) => {
    if (r.type === 'outbound-rtp' && r.kind === 'video') {
      out[r.rid || '-'] = { active: r.active, width: r.frameWidth || 0,
        frames: r.framesEncoded || 0, bytes: r.bytesSent || 0,
        limit: r.qualityLimitationReason, target: r.targetBitrate };
    }
  });
  return out;
}"""

# Sample (ms since start, width, frames decoded) every 50 ms for `ms` milliseconds.
RECORD = """async (ms) => {
  const out = [];
  const start = performance.now();
  while (performance.now() - start < ms) {
    let w = 0, f = 0;
    (await window.client.subscriber.getStats()).forEach((r) => {
      if (r.type === 'inbound-rtp' && r.kind === 'video') {
        w = r.frameWidth || 0;
        f = r.framesDecoded || 0;
      }
    });
    out.push([performance.now() - start, w, f]);
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
  return out;
}"""


async def wait_for(page: Any, check: Any, timeout: float, what: str) -> Any:
    """Poll ``RECEIVED`` until ``check(result)``; returns the result or fails with the last."""
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        last = await page.evaluate(RECEIVED)
        if check(last):
            return last
        await asyncio.sleep(0.25)
    raise AssertionError(f"{what}: last {last}")


async def wait_sending(page: Any, check: Any, timeout: float, what: str) -> float:
    """Poll the publisher's ``SENDING`` until ``check(result)``; returns the seconds it took."""
    start = time.monotonic()
    last: Any = None
    while time.monotonic() - start < timeout:
        last = await page.evaluate(SENDING)
        if check(last):
            return time.monotonic() - start
        await asyncio.sleep(0.1)
    raise AssertionError(f"{what}: last {last}")
