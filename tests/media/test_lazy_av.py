"""PyAV stays unloaded in the server until something uses it, and aiortc still works when it does.

The whole WebRTC stack (aiortc, aioice, pylibsrtp, cryptography) waits for the first call too
(``relayroom/lazy_stack.py``): an idle server has none of it.

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
    # relayroom/lazy_stack.py: the WebRTC stack (and cryptography) loads with the first call.
    assert "pylibsrtp/" not in maps and "cryptography/" not in maps and "_cffi_backend" not in maps


LAUNCH = """
import sys
from relayroom.launcher import main
from relayroom import lazy_stack
sys.argv = ["relayroom", "--help"]
try:
    main()  # imports the whole CLI and server as `relayroom serve` does, then prints help
except SystemExit:
    pass
import relayroom.signaling.server, relayroom.signaling.gateway, relayroom.signaling.admin
import relayroom.media, relayroom.media.stats, relayroom.media.recording
from relayroom.signaling.tokens import mint_token, verify_token
claims = verify_token("s" * 32, mint_token("s" * 32, room="r", identity="i", ttl_s=60), room="r")
assert claims.identity == "i"
assert not lazy_stack.loaded(), lazy_stack.loaded()
from relayroom.media import Room  # a room is the first use: the stack loads, PyAV still waits
from relayroom.lazy_av import av_loaded
from relayroom.lazy_mdns import mdns_loaded
assert "aiortc" in sys.modules and "pylibsrtp" in sys.modules and "cryptography" in sys.modules
assert not av_loaded() and not mdns_loaded()
print("ok")
"""


def test_the_server_imports_no_webrtc_stack_until_a_room_is_made() -> None:
    proc = subprocess.run(
        [sys.executable, "-c", LAUNCH], capture_output=True, text=True, timeout=120, cwd=ROOT
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stdout.strip().endswith("ok")
