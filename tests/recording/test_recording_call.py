"""A real call recorded through the admin API: ffprobe and ffmpeg check the files."""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path
from typing import Any

import pytest

from tests.recording.conftest import admin_headers, decode_errors, probe
from tests.stats.conftest import api
from tests.support.polling import eventually
from tests.support.publishing import drop_outgoing_rtp, publish_codec

pytestmark = pytest.mark.slow

ROOM = "rec"


async def record(
    admin_server: Any,
    connect: Any,
    tmp_path: Path,
    *,
    seconds: float,
    codec: str = "VP8",
    loss: float = 0.0,
    **config: Any,
) -> tuple[dict[str, Any], float, Any]:
    """Publish, record `seconds` through the API, stop: (final recording, wall time, server)."""
    server, ts, _ = await admin_server(
        allow_loopback_candidates=True, recording_dir=tmp_path / "rec", **config
    )
    ws = await connect(ts)
    await ws.join(ROOM, "alice", can_publish=True)
    pc, _ = await publish_codec(ws, codec)
    assert await eventually(lambda: server.media.track_count(ROOM) == 2, 10)
    counts = drop_outgoing_rtp(pc, loss) if loss else None
    headers = admin_headers(ROOM)
    status, body = await api(ts, "POST", f"/api/rooms/{ROOM}/recordings", headers, {})
    assert status == 201, body
    assert body["state"] == "active" and len(body["tracks"]) == 2
    start = time.monotonic()
    await asyncio.sleep(seconds)
    status, body = await api(
        ts, "DELETE", f"/api/rooms/{ROOM}/recordings/{body['recording_id']}", headers
    )
    wall = time.monotonic() - start
    assert status == 200, body
    if counts is not None:
        assert counts["dropped"] >= 0.02 * counts["rtp"], counts
    await pc.close()
    return body, wall, server


def check_files(body: dict[str, Any], wall: float, video_codec: str) -> None:
    assert body["state"] == "finished" and body["reason"] == "api", body
    directory = Path(body["directory"])
    manifest = json.loads((directory / "manifest.json").read_text())
    assert manifest["state"] == "finished"
    codecs = {}
    for entry in manifest["files"]:
        path = directory / entry["file"]
        info = probe(path)
        (stream,) = info["streams"]
        codecs[entry["kind"]] = stream["codec_name"]
        duration = float(info["format"]["duration"])
        assert abs(duration - wall) <= 0.05 * wall, (entry, duration, wall)
        assert decode_errors(path) == "", entry["file"]
        assert entry["identity"] == "alice" and entry["started_at"] > 0
        assert isinstance(entry["start_rtp_timestamp"], int)
    assert codecs == {"video": video_codec, "audio": "opus"}, codecs


async def test_a_20_s_vp8_opus_call_is_recorded_to_webm(admin_server, connect, tmp_path):
    body, wall, _ = await record(admin_server, connect, tmp_path, seconds=20)
    check_files(body, wall, "vp8")
    names = sorted(f["file"] for f in body["files"])
    assert all(n.endswith(".webm") for n in names), names


async def test_recording_with_3_percent_uplink_loss_has_no_broken_frames(
    admin_server, connect, tmp_path
):
    body, wall, _ = await record(admin_server, connect, tmp_path, seconds=20, loss=0.03)
    check_files(body, wall, "vp8")


async def test_an_h264_publisher_is_recorded_to_mkv(admin_server, connect, tmp_path):
    body, wall, _ = await record(admin_server, connect, tmp_path, seconds=10, codec="H264")
    check_files(body, wall, "h264")
    video = next(f for f in body["files"] if f["kind"] == "video")
    assert video["file"].endswith(".mkv")
    (stream,) = probe(Path(body["directory"]) / video["file"])["streams"]
    assert (stream["width"], stream["height"]) == (640, 480)
