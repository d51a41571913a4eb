"""How recordings end (size limit, room end), what they select, bad requests, and the mux."""

from __future__ import annotations

import asyncio
import json
import os
from pathlib import Path
from typing import Any

import pytest

from relayroom.api import WebhookReceiver
from tests.conftest import TEST_SECRET
from tests.recording.conftest import admin_headers, decode_errors, probe
from tests.stats.conftest import api
from tests.support.cli import run_cli
from tests.support.polling import eventually
from tests.support.publishing import publish_codec
from tests.support.webhooks import WebhookSink

pytestmark = pytest.mark.slow

ROOM = "rec"
PATH = f"/api/rooms/{ROOM}/recordings"


async def publishing(admin_server: Any, connect: Any, tmp_path: Path, **config: Any) -> Any:
    """A server with alice publishing VP8 + Opus in ROOM: (server, test server, ws, pc)."""
    server, ts, _ = await admin_server(
        allow_loopback_candidates=True, recording_dir=tmp_path / "rec", **config
    )
    ws = await connect(ts)
    await ws.join(ROOM, "alice", can_publish=True)
    pc, _ = await publish_codec(ws)
    assert await eventually(lambda: server.media.track_count(ROOM) == 2, 10)
    return server, ts, ws, pc


def size_on_disk(path: str) -> int:
    return os.path.getsize(path)


async def wait_ended(ts: Any, recording_id: str, timeout: float = 30) -> dict[str, Any]:
    for _ in range(int(timeout / 0.25)):
        status, body = await api(ts, "GET", f"{PATH}/{recording_id}", admin_headers(ROOM))
        assert status == 200, body
        if body["state"] != "active":
            return body
        await asyncio.sleep(0.25)
    raise AssertionError(f"recording {recording_id} still active")


async def test_the_size_limit_ends_a_recording_with_complete_files(admin_server, connect, tmp_path):
    limit = 400_000
    _, ts, _, pc = await publishing(admin_server, connect, tmp_path, recording_max_bytes=limit)
    status, body = await api(ts, "POST", PATH, admin_headers(ROOM), {})
    assert status == 201, body
    ended = await wait_ended(ts, body["recording_id"])
    assert (ended["state"], ended["reason"]) == ("finished", "size_limit"), ended
    # The limit is checked as clusters are written: at most one cluster (1 s) beyond it.
    assert limit <= ended["bytes"] <= limit + 600_000, ended["bytes"]
    for entry in ended["files"]:
        assert decode_errors(Path(ended["directory"]) / entry["file"]) == ""
    await pc.close()


async def test_a_recording_ends_when_the_room_ends(admin_server, connect, tmp_path):
    _, ts, ws, pc = await publishing(admin_server, connect, tmp_path)
    status, body = await api(ts, "POST", PATH, admin_headers(ROOM), {})
    assert status == 201, body
    await asyncio.sleep(2)
    await ws.close()  # the only participant leaves: the room's relay closes
    ended = await wait_ended(ts, body["recording_id"])
    assert (ended["state"], ended["reason"]) == ("finished", "room_ended"), ended
    status, events = await api(ts, "GET", "/api/events", admin_headers())
    kinds = [(e["type"], e.get("reason")) for e in events["events"] if "recording" in e["type"]]
    assert kinds == [("recording_started", None), ("recording_finished", "room_ended")], kinds
    finished = next(e for e in events["events"] if e["type"] == "recording_finished")
    assert sorted(f["kind"] for f in finished["files"]) == ["audio", "video"]
    assert all(size_on_disk(f["path"]) == f["bytes"] > 0 for f in finished["files"])
    await pc.close()


async def test_a_selection_records_only_the_named_tracks_and_conflicts_are_refused(
    admin_server, connect, tmp_path
):
    server, ts, _, pc = await publishing(admin_server, connect, tmp_path)
    headers = admin_headers(ROOM)
    video_id = next(
        t["track"]["id"]
        for t in server.media.tracks(server.registry.get(ROOM))
        if t["track"]["kind"] == "video"
    )
    status, body = await api(ts, "POST", PATH, headers, {"tracks": [video_id]})
    assert status == 201 and [t["track_id"] for t in body["tracks"]] == [video_id], body
    status, again = await api(ts, "POST", PATH, headers, {})
    assert (status, again["error"]["code"]) == (409, "conflict")
    status, stopped = await api(ts, "DELETE", f"{PATH}/{body['recording_id']}", headers)
    assert status == 200 and stopped["reason"] == "api"
    status, bad = await api(ts, "POST", PATH, headers, {"tracks": "all"})
    assert (status, bad["error"]["code"]) == (400, "invalid_request")
    status, none = await api(ts, "POST", PATH, headers, {"participants": ["nobody"]})
    assert (status, none["error"]["code"]) == (409, "nothing_to_record")
    await pc.close()


async def test_mux_remuxes_a_participants_audio_and_video_into_one_file(
    admin_server, connect, tmp_path
):
    _, ts, _, pc = await publishing(admin_server, connect, tmp_path)
    headers = admin_headers(ROOM)
    status, body = await api(ts, "POST", PATH, headers, {"participants": ["alice"]})
    assert status == 201, body
    await asyncio.sleep(6)
    status, body = await api(ts, "DELETE", f"{PATH}/{body['recording_id']}", headers)
    await pc.close()
    manifest = Path(body["directory"]) / "manifest.json"
    done = await asyncio.to_thread(
        run_cli, "recording", "mux", str(manifest), "--participant", "alice"
    )
    assert done.returncode == 0, done.stderr
    output = Path(done.stdout.strip())
    assert output == manifest.parent / "alice.webm"
    info = probe(output)
    assert sorted(s["codec_name"] for s in info["streams"]) == ["opus", "vp8"]
    assert abs(float(info["format"]["duration"]) - 6) < 0.5, info["format"]
    assert decode_errors(output) == ""
    wrong = await asyncio.to_thread(
        run_cli, "recording", "mux", str(manifest), "--participant", "mallory"
    )
    assert wrong.returncode == 1 and "no files of participant 'mallory'" in wrong.stderr
    assert json.loads(manifest.read_text())["state"] == "finished"


async def test_the_time_limit_ends_a_recording(admin_server, connect, tmp_path):
    _, ts, _, pc = await publishing(admin_server, connect, tmp_path, recording_max_duration_s=2)
    status, body = await api(ts, "POST", PATH, admin_headers(ROOM), {})
    assert status == 201, body
    ended = await wait_ended(ts, body["recording_id"], timeout=10)
    assert (ended["state"], ended["reason"]) == ("finished", "time_limit"), ended
    assert all(1.0 <= f["duration_s"] <= 2.2 for f in ended["files"]), ended["files"]
    await pc.close()


async def test_a_server_shutdown_finishes_its_recordings(admin_server, connect, tmp_path):
    _, ts, _, pc = await publishing(admin_server, connect, tmp_path)
    status, body = await api(ts, "POST", PATH, admin_headers(ROOM), {})
    assert status == 201, body
    await asyncio.sleep(2)
    await pc.close()
    await ts.close()  # the app's cleanup closes the media gateway
    manifest = json.loads((Path(body["directory"]) / "manifest.json").read_text())
    assert (manifest["state"], manifest["reason"]) == ("finished", "server_shutdown")
    for entry in manifest["files"]:
        assert decode_errors(Path(body["directory"]) / entry["file"]) == ""


async def test_a_real_recording_reaches_a_webhook_receiver(admin_server, connect, tmp_path):
    async with WebhookSink(WebhookReceiver.from_api_secret(TEST_SECRET)) as sink:
        _, ts, _, pc = await publishing(admin_server, connect, tmp_path, webhook_urls=(sink.url,))
        status, body = await api(ts, "POST", PATH, admin_headers(ROOM), {})
        assert status == 201, body
        await asyncio.sleep(2)
        status, body = await api(ts, "DELETE", f"{PATH}/{body['recording_id']}", admin_headers())
        assert status == 200, body
        assert await eventually(
            lambda: "recording_finished" in [e.event for e in sink.events], 15
        ), [e.event for e in sink.events]
        await pc.close()
    assert sink.rejected == []
    started = next(e for e in sink.events if e.event == "recording_started")
    finished = next(e for e in sink.events if e.event == "recording_finished")
    assert started.recording is not None and started.recording.id == body["recording_id"]
    assert finished.recording is not None and finished.reason == "api"
    paths = sorted(f["path"] for f in finished.recording.files)
    assert paths == sorted(str(Path(body["directory"]) / f["file"]) for f in body["files"])
