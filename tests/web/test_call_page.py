"""Headless Chromium: the call page where users are. No camera, plain http on a LAN name, a
production server without dev tokens, another camera picked mid-call, a screen share."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

import pytest

from bench.chromium import CHROMIUM
from tests.conftest import CHROMIUM_ARGS, artifact_path, token_for
from tests.support.pages import REMOTE_VIDEO_STATE, join_call_page

pytestmark = pytest.mark.browser

FAKE_DEVICE = "--use-fake-device-for-media-stream"
REMOTE_PLAYING = (
    "() => [...document.querySelectorAll('.tile.remote video')].some(v => v.videoWidth > 0)"
)


@asynccontextmanager
async def chromium(*extra: str, fake_devices: str | None = None) -> AsyncIterator[Any]:
    """A Chromium with other launch flags than the shared fixture's (device count, DNS map)."""
    from playwright.async_api import async_playwright

    args = [a for a in CHROMIUM_ARGS if not (fake_devices and a == FAKE_DEVICE)]
    if fake_devices:
        # Chromium's fake capture: `device-count=N` fake cameras (0: none; microphones stay).
        args.append(f"{FAKE_DEVICE}={fake_devices}")
    async with async_playwright() as pw:
        browser = await pw.chromium.launch(
            executable_path=CHROMIUM, headless=True, args=[*args, *extra]
        )
        try:
            yield browser
        finally:
            await browser.close()


async def _open(browser: Any, url: str) -> Any:
    context = await browser.new_context(permissions=["camera", "microphone"])
    page = await context.new_page()
    page.on("console", lambda m: m.type == "error" and print("console:", m.text))
    await page.goto(url)
    return page


async def _join_as(page: Any, name: str, mode: str | None = None) -> None:
    await page.fill("#name", name)
    await page.fill("#room", "browser-call")
    if mode:
        await page.check(f"input[name=mode][value={mode}]")
    await page.click("#join")


async def _wait_tracks(server: Any, predicate: Callable[[list[dict[str, Any]]], bool]) -> Any:
    room = server.registry.get("browser-call")
    for _ in range(100):
        tracks = server.media.tracks(room) if room else []
        if predicate(tracks):
            return tracks
        await asyncio.sleep(0.1)
        room = server.registry.get("browser-call")
    raise AssertionError(f"tracks never matched: {tracks}")


async def test_without_a_camera_the_page_offers_audio_only_and_watch_only(start_server, browser):
    server, ts = await start_server(dev=True)
    url = str(ts.make_url("/call"))
    ada = await join_call_page(browser, url, "Ada")  # has a camera
    async with chromium(fake_devices="device-count=0") as no_camera:
        bob = await _open(no_camera, url)
        await bob.wait_for_selector("#device-note:not([hidden])")
        assert "No camera found" in await bob.text_content("#device-note")
        assert await bob.is_disabled("input[name=mode][value=video]")
        assert await bob.is_checked("input[name=mode][value=audio]")
        await bob.screenshot(path=str(artifact_path("call-no-camera.png")))
        await _join_as(bob, "Bob")
        await bob.wait_for_selector("#status:has-text('In browser-call as Bob (microphone only)')")
        # Bob's microphone reaches the server; Ada's video reaches Bob.
        tracks = await _wait_tracks(server, lambda ts_: len(ts_) == 3)
        kinds = sorted(t["track"]["kind"] for t in tracks)
        assert kinds == ["audio", "audio", "video"], tracks
        await bob.wait_for_function(
            REMOTE_PLAYING,
            timeout=20000,
        )

        carol = await _open(no_camera, url)
        await _join_as(carol, "Carol", "watch")
        await carol.wait_for_selector("#status:has-text('(watching)')", timeout=20000)
        await carol.wait_for_function(
            REMOTE_PLAYING,
            timeout=20000,
        )
        assert "Requested device not found" not in await carol.text_content("body")
    await ada.close()


async def test_plain_http_on_a_lan_name_explains_https_and_can_watch(start_server, browser):
    _, ts = await start_server(dev=True)
    ada = await join_call_page(browser, str(ts.make_url("/call")), "Ada")
    # A name that is not localhost, over http: the page is not a secure context.
    async with chromium("--host-resolver-rules=MAP lan.test 127.0.0.1") as lan:
        page = await _open(lan, f"http://lan.test:{ts.port}/call")
        assert await page.evaluate("() => window.isSecureContext") is False
        note = await page.text_content("#device-note")
        assert "need https or localhost" in note and "lan.test" in note, note
        assert await page.is_checked("input[name=mode][value=watch]")
        await page.screenshot(path=str(artifact_path("call-plain-http.png")))
        await _join_as(page, "Bob")
        await page.wait_for_selector("#status:has-text('(watching)')", timeout=20000)
        await page.wait_for_function(
            REMOTE_PLAYING,
            timeout=20000,
        )
        assert "Cannot read properties" not in await page.text_content("body")
    await ada.close()


@pytest.mark.parametrize("path", ["/", "/call"])
async def test_production_pages_explain_where_tokens_come_from(start_server, browser, path):
    _, ts = await start_server(dev=False)
    page = await _open(browser, str(ts.make_url(path)))
    await page.fill("#name", "Ada")
    if path == "/call":
        await page.check("input[name=mode][value=watch]")
    await page.click("#join")
    await page.wait_for_selector("#status:has-text('Could not join')")
    status = await page.text_content("#status")
    assert "tokens come from your application" in status and "404" not in status, status
    await page.screenshot(path=str(artifact_path(f"production-token{path.replace('/', '-')}.png")))
    # With a token from the application, the same page joins.
    await page.fill("#token", token_for("lobby" if path == "/" else "demo", "ada"))
    await page.click("#join")
    await page.wait_for_selector("#status:has-text('as Ada')", timeout=20000)


async def test_picking_another_camera_keeps_the_call_going(start_server, browser):
    server, ts = await start_server(dev=True)
    url = str(ts.make_url("/call"))
    bob = await join_call_page(browser, url, "Bob")
    async with chromium(fake_devices="device-count=2") as two_cameras:
        ada = await join_call_page(two_cameras, url, "Ada")
        options = await ada.eval_on_selector_all(
            "#camera-select option", "os => os.map(o => ({value: o.value, selected: o.selected}))"
        )
        assert len(options) == 2 and sum(o["selected"] for o in options) == 1, options
        first = next(o["value"] for o in options if o["selected"])
        other = next(o["value"] for o in options if not o["selected"])
        # Chromium's second fake camera feeds no frames into a sender it replaces into (its
        # media-source stats stay at 0 fps, the preview plays): switch to it, then back.
        for device in (other, first):
            await ada.select_option("#camera-select", device)
            await ada.wait_for_function(
                "id => document.querySelector('#local-video').srcObject"
                ".getVideoTracks()[0].getSettings().deviceId === id",
                arg=device,
            )
        # Same sender, new source: no renegotiation, Bob keeps receiving frames.
        room = server.registry.get("browser-call")
        assert len(server.media.tracks(room)) == 4
        await bob.wait_for_function(
            REMOTE_PLAYING,
            timeout=20000,
        )
        before = await bob.evaluate(REMOTE_VIDEO_STATE)
        await asyncio.sleep(1.5)
        after = await bob.evaluate(REMOTE_VIDEO_STATE)
        assert len(after) == 1 and after[0]["frames"] > before[0]["frames"], (before, after)
        await ada.screenshot(path=str(artifact_path("call-device-picker.png")))


async def test_screen_share_publishes_a_third_track_by_renegotiation(start_server):
    server, ts = await start_server(dev=True)
    url = str(ts.make_url("/call"))
    async with chromium("--auto-accept-this-tab-capture") as shared:
        ada = await join_call_page(shared, url, "Ada")
        bob = await join_call_page(shared, url, "Bob")
        await _wait_tracks(server, lambda t: len(t) == 4)
        await ada.click("#share-screen")
        await ada.wait_for_selector("#share-screen[data-sharing='true']", timeout=10000)
        tracks = await _wait_tracks(server, lambda t: len(t) == 5)
        # Bob is offered the new track and shows it in a tile of its own. (Its frames depend on
        # the server forwarding tracks added by renegotiation, tested with the media relay.)
        await bob.wait_for_selector(".tile.remote.screen figcaption:has-text('Ada (screen)')")
        room = server.registry.get("browser-call")
        ada_member = next(m for m in room.members.values() if m.name == "Ada")
        ada_tracks = [t["track"]["kind"] for t in tracks if t["participant_id"] == ada_member.id]
        assert sorted(ada_tracks) == ["audio", "video", "video"], tracks
        await ada.screenshot(path=str(artifact_path("call-screen-share.png")))
        # Stopping the share removes the track again.
        await ada.click("#share-screen")
        await ada.wait_for_selector("#share-screen[data-sharing='false']", timeout=10000)
        await _wait_tracks(server, lambda t: len(t) == 4)
        await bob.wait_for_selector(".tile.remote.screen", state="detached", timeout=10000)
        status = await ada.text_content("#status")
        assert status == "In browser-call as Ada.", status
        # Sharing again reuses the idle transceiver: the server gets the track offer again.
        await ada.click("#share-screen")
        await ada.wait_for_selector("#share-screen[data-sharing='true']", timeout=10000)
        await _wait_tracks(server, lambda t: len(t) == 5)
