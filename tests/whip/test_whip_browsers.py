"""WHIP and WHEP with clients no one here wrote, in real browsers.

- `@eyevinn/whip-web-client` in Chromium and in Firefox publishes its fake camera into a room
  from a page on another origin (CORS); a Chromium call page in the room and an aiortc
  subscriber decode it.
- The `/watch` page (WHEP) in Chromium and in Firefox, and `@eyevinn/webrtc-player` in
  Chromium, play an aiortc WHIP publisher.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from tests.conftest import token_for
from tests.support.browsers import (
    HOLD_STREAM,
    Viewer,
    assert_sees_video,
    chromium_page,
    firefox_page,
)
from tests.support.eyevinn import eyevinn_site
from tests.support.polling import eventually
from tests.support.whip import CountingSubscriber, WhipPublisher

pytestmark = pytest.mark.browser

# The floor for an aiortc subscriber of a browser's WHIP stream.
AIORTC_FPS_FLOOR = 25.0

INGEST = """async ([endpoint, token]) => {
  // Trickle PATCHes, by status (or the error of one the browser blocked, e.g. by CORS).
  window.__patches = [];
  const fetch = window.fetch.bind(window);
  window.fetch = async (url, init) => {
    if (init?.method !== 'PATCH') return fetch(url, init);
    try {
      const response = await fetch(url, init);
      window.__patches.push(response.status);
      return response;
    } catch (error) {
      window.__patches.push(String(error));
      throw error;
    }
  };
  const stream = await navigator.mediaDevices.getUserMedia({
    video: { width: 640, height: 480, frameRate: 30 }, audio: true });
  const client = new window.WHIPClient({
    endpoint, opts: { authkey: token, iceServers: [], noTrickleIce: false } });
  window.__whip = client;
  window.__started = performance.now();
  await client.ingest(stream);
  return await client.getResourceUrl();
}"""

WATCH = """([room, participant]) => {
  document.getElementById('room').value = room;
  document.getElementById('participant').value = participant;
  document.getElementById('watch').click();
}"""

PLAYER = """async ([url, token]) => {
  const video = document.getElementById('player');
  const player = new window.WebRTCPlayer({ video, type: 'whep', iceServers: [] });
  window.__player = player;
  await player.load(new URL(url), 'Bearer ' + token);
}"""


async def _page(engine: str, url: str, chromium: Any, firefox: Any) -> Viewer:
    if engine == "chromium":
        return Viewer(engine, await chromium_page(chromium, url))
    return Viewer(engine, await firefox_page(firefox, url))


@pytest.mark.parametrize("engine", ["chromium", "firefox"])
async def test_eyevinn_whip_client_publishes_into_a_room(
    start_server, connect, chromium_30fps, firefox, engine, tmp_path: Path
):
    server, ts = await start_server(dev=True)
    room = f"whip-{engine}"
    # A browser in the room (watch only) and an aiortc subscriber.
    call = Viewer("chromium-call", await chromium_page(chromium_30fps, str(ts.make_url("/call"))))
    await call.evaluate(
        """([room]) => {
      document.getElementById('name').value = 'Watcher';
      document.getElementById('room').value = room;
      document.querySelector('input[name=mode][value=watch]').checked = true;
      document.getElementById('join').click();
    }""",
        [room],
    )
    await call.wait_for("() => !document.getElementById('call').hidden", None, 20)
    ws = await connect(ts)
    await ws.join(room, "aiortc-watcher", can_publish=False)
    subscriber = CountingSubscriber(ws)
    async with eyevinn_site(tmp_path) as origin:
        encoder = await _page(engine, origin, chromium_30fps, firefox)
        try:
            endpoint = str(ts.make_url(f"/whip/{room}"))
            resource = await encoder.evaluate(INGEST, [endpoint, token_for(room, "encoder")])
            assert f"/whip/{room}/" in resource, resource
            joined = await ws.expect("participant_joined", 10)
            assert joined["participant"]["identity"] == "encoder"
            await subscriber.answer_next_offer(15)
            await assert_sees_video(call, ".tile.remote video")
            assert await eventually(lambda: len(subscriber.frames) >= 30, 20), subscriber.frames
            # The fake camera is asked for 30 fps; what the encoder sends bounds what anyone
            # decodes, so the rate it sends is measured alongside.
            media = server.media.rooms[room]
            pid = joined["participant"]["id"]
            hub = next(h for h in media.hubs() if h.publisher_id == pid and h.is_video)
            await asyncio.sleep(1)
            sent, received = hub.frames_in, len(subscriber.frames)
            await asyncio.sleep(3)
            source = (hub.frames_in - sent) / 3
            fps = (len(subscriber.frames) - received) / 3
            print(f"{engine} WHIP client: sends {source:.1f} fps, aiortc decodes {fps:.1f} fps")
            # What the browser sends bounds what anyone decodes (a loaded machine encodes less).
            assert fps >= min(AIORTC_FPS_FLOOR, 0.9 * source), (fps, source)
            # The client trickled its candidates, cross-origin, and every PATCH was accepted
            # (it sends an `ETag` request header, which the preflight must allow).
            patches = await encoder.evaluate("() => window.__patches")
            assert patches and set(patches) == {204}, patches
            kinds = sorted(t.kind for owner, t in media.tracks() if owner == pid)
            assert kinds == ["audio", "video"], kinds
            await call.screenshot(f"whip-{engine}-call.png")
            # The client's destroy() DELETEs the session: it leaves the room.
            await encoder.evaluate("() => window.__whip.destroy()")
            left = await ws.expect("participant_left", 10)
            assert left["participant_id"] == joined["participant"]["id"]
        finally:
            await subscriber.close()


@pytest.mark.parametrize("engine", ["chromium", "firefox"])
async def test_watch_page_plays_a_whip_publisher(start_server, browser, firefox, engine):
    _, ts = await start_server(dev=True)
    room = f"watch-{engine}"
    async with aiohttp.ClientSession() as http:
        publisher = WhipPublisher(http, str(ts.make_url("/")))
        try:
            assert (await publisher.publish(room, token_for(room, "cam"))).status == 201
            viewer = await _page(engine, str(ts.make_url("/watch")), browser, firefox)
            if engine == "firefox":
                await viewer.evaluate(HOLD_STREAM)
            await viewer.evaluate(WATCH, [room, "cam"])
            await assert_sees_video(viewer, "#player")
            status = await viewer.evaluate("() => document.getElementById('status').textContent")
            assert status == f"Playing room {room}.", status
            await viewer.screenshot(f"watch-{engine}.png")
        finally:
            await publisher.close()


@pytest.mark.parametrize("engine", ["chromium", "firefox"])
async def test_eyevinn_webrtc_player_plays_over_whep(
    start_server, browser, firefox, engine, tmp_path: Path
):
    _, ts = await start_server(dev=True)
    room = f"whep-eyevinn-{engine}"
    async with aiohttp.ClientSession() as http, eyevinn_site(tmp_path) as origin:
        publisher = WhipPublisher(http, str(ts.make_url("/")))
        try:
            assert (await publisher.publish(room, token_for(room, "cam"))).status == 201
            viewer = await _page(engine, origin, browser, firefox)
            if engine == "firefox":
                await viewer.evaluate(HOLD_STREAM)
            url = str(ts.make_url(f"/whep/{room}"))
            await viewer.evaluate(PLAYER, [url, token_for(room, "tv", can_publish=False)])
            await assert_sees_video(viewer, "#player")
            await viewer.screenshot(f"whep-eyevinn-player-{engine}.png")
        finally:
            await publisher.close()
