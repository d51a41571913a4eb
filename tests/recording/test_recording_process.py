"""Recording in a real `relayroom serve` process: the CLI drives it; kill -9 and a write error
(the file-size limit of the process, RLIMIT_FSIZE: writes past it fail with EFBIG, as on a full
disk) leave playable files, and a failed recording never disturbs the call."""

from __future__ import annotations

import asyncio
import json
import os
import resource
import signal
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from yarl import URL

from tests.conftest import TEST_SECRET
from tests.recording.conftest import admin_headers, decode_errors, decoded_frames, probe
from tests.sdk.serve import ServeProcess
from tests.support.cli import run_cli
from tests.support.polling import eventually
from tests.support.publishing import publish_codec
from tests.support.sfu import WsSubscriber

pytestmark = pytest.mark.slow

ROOM = "rec"


class Target:
    """What the `connect` fixture needs: `make_url` of a running process."""

    def __init__(self, url: str) -> None:
        self._url = URL(url)

    def make_url(self, path: str) -> URL:
        return self._url.with_path(path)


async def get_json(target: Target, path: str) -> Any:
    """GET an admin API path with an admin token for every room: the JSON body (status 200)."""
    async with (
        aiohttp.ClientSession() as http,
        http.get(target.make_url(path), headers=admin_headers()) as response,
    ):
        assert response.status == 200, await response.text()
        return await response.json()


async def cli(serve: ServeProcess, *args: str) -> Any:
    """`relayroom ARGS --url <the process>` with its secret (in a thread: the aiortc peers of
    the test keep running): the printed JSON."""
    env = {"RELAYROOM_API_SECRET": TEST_SECRET}
    done = await asyncio.to_thread(run_cli, *args, "--url", serve.url, env=env)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


async def test_a_recording_cut_by_kill_9_plays_up_to_its_last_cluster(tmp_path, connect):
    rec_dir = tmp_path / "recordings"
    async with ServeProcess(tmp_path, env={"RELAYROOM_RECORDING_DIR": str(rec_dir)}) as serve:
        ws = await connect(Target(serve.url))
        await ws.join(ROOM, "alice", can_publish=True)
        pc, _ = await publish_codec(ws)
        await ws.expect("track_published", 10)
        started = await cli(serve, "record", "start", ROOM)
        assert started["state"] == "active"
        listed = await cli(serve, "record", "list", ROOM)
        assert [r["id"] for r in listed] == [started["id"]]
        await asyncio.sleep(8)
        assert serve.proc is not None
        serve.proc.send_signal(signal.SIGKILL)
        serve.proc.wait(10)
        await pc.close()
    directory = Path(started["directory"])
    manifest = json.loads((directory / "manifest.json").read_text())
    assert manifest["state"] == "active"  # never finished: killed
    assert {f["kind"] for f in manifest["files"]} == {"audio", "video"}
    for entry in manifest["files"]:
        path = directory / entry["file"]
        assert decode_errors(path) == "", entry["file"]
        (stream,) = probe(path)["streams"]
        frames = decoded_frames(path)
        # 8 s recorded; the open cluster (1 s at most) and the wait for the first keyframe lost
        if entry["kind"] == "video":
            assert stream["codec_name"] == "vp8" and frames >= 30 * 6, frames
        else:
            assert stream["codec_name"] == "opus" and frames >= 50 * 6, frames


async def test_a_write_error_ends_the_recording_and_not_the_call(tmp_path, connect):
    rec_dir = tmp_path / "recordings"
    limit = 1_500_000
    async with ServeProcess(tmp_path, env={"RELAYROOM_RECORDING_DIR": str(rec_dir)}) as serve:
        assert serve.proc is not None
        # Files of this process cannot grow past `limit`: a write beyond fails (EFBIG), as it
        # would on a full disk. Python ignores SIGXFSZ, so the process lives on.
        resource.prlimit(serve.proc.pid, resource.RLIMIT_FSIZE, (limit, limit))
        target = Target(serve.url)
        pub_ws, sub_ws = await connect(target), await connect(target)
        await pub_ws.join(ROOM, "alice", can_publish=True)
        await sub_ws.join(ROOM, "bob", can_publish=False)
        subscriber = WsSubscriber(sub_ws)
        pc, _ = await publish_codec(pub_ws)
        await subscriber.answer_next_offer()
        assert await eventually(lambda: any(len(c) >= 30 for c in subscriber.counters.values()), 20)
        started = await cli(serve, "record", "start", ROOM)

        url_path = f"/api/rooms/{ROOM}/recordings/{started['id']}"
        for _ in range(60):
            failed = await get_json(target, url_path)
            if failed["state"] != "active":
                break
            await asyncio.sleep(0.5)
        assert failed["state"] == "failed" and failed["reason"] == "write_error", failed
        assert "File too large" in (failed["error"] or "") or "short write" in failed["error"]
        # The call goes on: the subscriber keeps decoding the publisher's video.
        counter = max(subscriber.counters.values(), key=len)  # the video track's frames
        seen = len(counter)
        await asyncio.sleep(2)
        assert len(counter) - seen >= 40
        stopped = await cli(serve, "record", "stop", ROOM, started["id"])
        assert (stopped["state"], stopped["reason"]) == ("failed", "write_error")  # unchanged
        body = await get_json(target, "/api/events")
        finished = [e for e in body["events"] if e["type"] == "recording_finished"]
        assert finished and finished[-1]["reason"] == "write_error", finished
        assert finished[-1]["recording_id"] == started["id"]
        await subscriber.close()
        await pc.close()
        log = serve.log_text()
    assert "recording" in log and "failed" in log
    directory = Path(started["directory"])
    for name in os.listdir(directory):
        if name.endswith(".webm"):
            path = directory / name
            assert path.stat().st_size <= limit
            assert decode_errors(path) == "", name
            assert decoded_frames(path) > 0
