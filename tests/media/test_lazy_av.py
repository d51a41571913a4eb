"""PyAV stays unloaded in the server until something uses it, and aiortc still works when it does.

Each check runs in a fresh interpreter: the test process itself has PyAV loaded already.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

from bench.loopback import free_port, wait_port

ROOT = Path(__file__).resolve().parents[2]
SERVE = [sys.executable, "-m", "relayroom", "serve", "--workers", "1", "--no-turn"]
SERVE += ["--ice-host", "127.0.0.1"]

CALL = """
import asyncio, sys
from relayroom.lazy_av import av_loaded, deferred_av
with deferred_av() as deferred:
    import aiortc
assert deferred and not av_loaded(), "PyAV loaded while importing aiortc"
import relayroom.signaling.cli
assert not av_loaded(), "PyAV loaded by the server's own imports"
from aiortc import RTCPeerConnection
from aiortc.mediastreams import AudioStreamTrack, VideoStreamTrack
import av  # a later import is the real PyAV
assert av_loaded() and type(av.VideoFrame).__name__ != "_Deferred"

async def call():
    # A real aiortc call that encodes and decodes: every stand-in has to reach PyAV.
    a, b = RTCPeerConnection(), RTCPeerConnection()
    from relayroom.media.aiortc_hooks import configure_ice

    a.addTrack(VideoStreamTrack())
    a.addTrack(AudioStreamTrack())
    got = {}
    done = asyncio.get_running_loop().create_future()

    @b.on("track")
    def on_track(track):
        async def read():
            frame = await track.recv()
            got[track.kind] = frame
            if len(got) == 2 and not done.done():
                done.set_result(None)
        asyncio.ensure_future(read())

    configure_ice(a, ("127.0.0.1",))
    await a.setLocalDescription(await a.createOffer())
    await b.setRemoteDescription(a.localDescription)
    configure_ice(b, ("127.0.0.1",))
    await b.setLocalDescription(await b.createAnswer())
    await a.setRemoteDescription(b.localDescription)
    await asyncio.wait_for(done, 30)
    assert isinstance(got["video"], av.VideoFrame) and got["video"].width == 640
    assert isinstance(got["audio"], av.AudioFrame)
    await a.close()
    await b.close()

asyncio.run(call())
print("ok")
"""


@pytest.mark.slow
def test_aiortc_imported_with_pyav_deferred_still_encodes_and_decodes() -> None:
    proc = subprocess.run(
        [sys.executable, "-c", CALL], capture_output=True, text=True, timeout=120, cwd=ROOT
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stdout.strip().endswith("ok")


@pytest.mark.slow
def test_a_running_server_has_not_loaded_ffmpeg() -> None:
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("RELAYROOM_")}
    env["RELAYROOM_API_SECRET"] = "lazy-av-test-secret-0123456789abcdef"
    with tempfile.TemporaryDirectory() as tmp:
        server = subprocess.Popen(
            [*SERVE, "--port", str(port), "--data-dir", tmp],
            cwd=ROOT,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            wait_port(port, timeout=30)
            time.sleep(0.5)
            maps = Path(f"/proc/{server.pid}/maps").read_text()
        finally:
            server.terminate()
            server.wait(10)
    assert "libavcodec" not in maps and "libvpx" not in maps
