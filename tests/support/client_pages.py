"""The JS client (`RoomClient`) driven in a browser page by hand: join, publish, add and remove
video, and check that the other browser decodes what is sent."""

from __future__ import annotations

import asyncio
import time

from tests.support.browsers import FPS_FLOOR, Viewer

STEP_DEADLINE_S = 8.0  # a loaded 2-core machine runs two browsers and the relay

CLIENT = """async ([token, hold]) => {
  const { RoomClient } = await import('/js/room.js');
  // Firefox gathers loopback candidates only while the page holds a media stream (test network).
  if (hold && !window.__held) {
    window.__held = await navigator.mediaDevices.getUserMedia({ audio: true });
  }
  const client = new RoomClient(location.origin.replace('http', 'ws') + '/ws', { data: true });
  window.client = client;
  window.videos = [];
  client.addEventListener('track', (e) => {
    if (e.detail.track.kind !== 'video') return;
    const v = document.createElement('video');
    v.autoplay = true; v.muted = true; v.width = 320; v.height = 240;
    v.srcObject = new MediaStream([e.detail.track]);
    document.body.append(v);
  });
  await client.join('matrix', token, 'P');
}"""

PUBLISH_AUDIO = """async () => {
  const s = await navigator.mediaDevices.getUserMedia({ audio: true });
  window.stream = s;
  await window.client.publish(s);
}"""

ADD_VIDEO = """async (name) => {
  const s = await navigator.mediaDevices.getUserMedia({ video: { width: 320, height: 240 } });
  const track = s.getVideoTracks()[0];
  window[name] = window.client.publisher.addTransceiver(track, {
    direction: 'sendonly', streams: [window.stream] });
  await window.client._offerPublisher();
}"""

REMOVE = """async (name) => {
  const t = window[name];
  t.sender.track.stop();
  window.client.publisher.removeTrack(t.sender);
  await window.client._offerPublisher();
}"""

LEAVE = """() => { window.client.leave(); }"""

DECODED = """async () => {
  const out = {};
  const pc = window.client.subscriber;
  if (!pc) return out;
  (await pc.getStats()).forEach((r) => {
    if (r.type === 'inbound-rtp' && r.kind === 'video') out[r.id] = r.framesDecoded || 0;
  });
  return out;
}"""


SENT = """async () => {
  const out = {};
  if (!window.client.publisher) return out;
  (await window.client.publisher.getStats()).forEach((r) => {
    if (r.type === 'outbound-rtp' && r.kind === 'video') out[r.id] = r.framesEncoded || 0;
  });
  return out;
}"""


async def frame_rates(viewer: Viewer, counters: str) -> list[float]:
    """Per second, over one second, of each counter the script `counters` returns by stream id:
    frames decoded per inbound video stream (DECODED), or encoded per outbound one (SENT)."""
    before = await viewer.evaluate(counters)
    await asyncio.sleep(1.0)
    after = await viewer.evaluate(counters)
    return sorted(after[k] - before.get(k, 0) for k in after)


async def assert_playing(viewer: Viewer, pub: Viewer, count: int, step: str) -> None:
    """``count`` video streams decode at the floor, or (when the publishing browser itself sends
    fewer frames, as Chromium does under CPU load) at >= 80 % of what it encodes."""
    deadline = time.monotonic() + STEP_DEADLINE_S
    rates: list[float] = []
    sent: list[float] = []
    while time.monotonic() < deadline:
        rates, sent = await asyncio.gather(frame_rates(viewer, DECODED), frame_rates(pub, SENT))
        live = [r for r in sent if r > 0]
        floor = min([FPS_FLOOR] + [0.8 * r for r in live])
        decoding = [r for r in rates if r > 0]
        if len(decoding) == count and all(r >= max(floor, 1) for r in decoding):
            print(f"{step}: {pub.name} encodes {sent}, {viewer.name} decodes {rates} fps")
            return
    raise AssertionError(f"after {step}: {pub.name} encodes {sent}, {viewer.name} decodes {rates}")
