"""Janus 1.1 (Debian's `janus`) as a real process: VideoRoom plugin, WebSocket transport.

Its configuration is written into the run's temporary directory (never /etc): only the
VideoRoom plugin and the WebSocket transport are loaded, ICE gathers on the benchmark's veth
interface only, sessions never time out, and one room takes VP8 + Opus.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import shutil
import subprocess
from pathlib import Path
from typing import Any

import aiohttp

from bench.sfu.servers import AnswerOffer, free_port, pinned, terminate, wait_port

LIB = Path("/usr/lib/x86_64-linux-gnu/janus")
ROOM = 1234


def janus_binary() -> str:
    path = shutil.which("janus")
    if path is None:
        raise RuntimeError(
            "janus is not installed (Debian package `janus`, see scripts/system-deps)"
        )
    return path


def _lib_folder(kind: str) -> Path:
    for base in (LIB, *Path("/usr/lib").glob("*/janus"), Path("/usr/lib/janus")):
        if (base / kind).is_dir():
            return base / kind
    raise RuntimeError(f"no Janus {kind} folder found under /usr/lib")


def _others(folder: Path, keep: str) -> str:
    return ",".join(sorted(p.name for p in folder.glob("*.so") if p.name != keep))


def write_config(folder: Path, ws_port: int, interface: str) -> None:
    plugins, transports = _lib_folder("plugins"), _lib_folder("transports")
    events, loggers = _lib_folder("events"), _lib_folder("loggers")
    (folder / "janus.jcfg").write_text(
        f"""general: {{
    configs_folder = "{folder}"
    plugins_folder = "{plugins}"
    transports_folder = "{transports}"
    events_folder = "{events}"
    loggers_folder = "{loggers}"
    debug_level = 3
    session_timeout = 0
}}
certificates: {{
}}
media: {{
    rtp_port_range = "20000-40000"
}}
nat: {{
    nice_debug = false
    ice_enforce_list = "{interface}"
    ignore_mdns = true
}}
plugins: {{
    disable = "{_others(plugins, "libjanus_videoroom.so")}"
}}
transports: {{
    disable = "{_others(transports, "libjanus_websockets.so")}"
}}
loggers: {{
    disable = "{_others(loggers, "")}"
}}
events: {{
    broadcast = false
    disable = "{_others(events, "")}"
}}
"""
    )
    (folder / "janus.transport.websockets.jcfg").write_text(
        f"""general: {{
    json = "plain"
    ws = true
    ws_port = {ws_port}
    ws_ip = "127.0.0.1"
    wss = false
}}
admin: {{
    admin_ws = false
    admin_wss = false
}}
"""
    )
    (folder / "janus.plugin.videoroom.jcfg").write_text(
        f"""general: {{
}}
room-{ROOM}: {{
    description = "bench"
    publishers = 2
    bitrate = 0
    fir_freq = 0
    audiocodec = "opus"
    videocodec = "vp8"
    record = false
}}
"""
    )


class _Session:
    """One Janus session on its own WebSocket (as one browser would have)."""

    def __init__(self, ws: aiohttp.ClientWebSocketResponse) -> None:
        self.ws = ws
        self.session_id = 0
        self._ids = itertools.count(1)
        self._waiting: dict[str, asyncio.Future[dict[str, Any]]] = {}
        self._reader = asyncio.create_task(self._read())

    async def _read(self) -> None:
        async for frame in self.ws:
            if frame.type != aiohttp.WSMsgType.TEXT:
                continue
            msg = frame.json()
            # Requests to plugins are acknowledged first; the reply is a later event.
            if msg.get("janus") == "ack":
                continue
            future = self._waiting.pop(msg.get("transaction", ""), None)
            if future is not None and not future.done():
                future.set_result(msg)

    async def request(self, body: dict[str, Any]) -> dict[str, Any]:
        transaction = f"t{next(self._ids)}"
        future: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self._waiting[transaction] = future
        if self.session_id:
            body = {"session_id": self.session_id, **body}
        await self.ws.send_json({**body, "transaction": transaction})
        async with asyncio.timeout(20):
            reply = await future
        if reply.get("janus") == "error" or "error" in reply.get("plugindata", {}).get("data", {}):
            raise RuntimeError(f"janus: {reply}")
        return reply

    async def create(self) -> int:
        """Create the session and attach a VideoRoom handle; returns the handle id."""
        self.session_id = int((await self.request({"janus": "create"}))["data"]["id"])
        reply = await self.request({"janus": "attach", "plugin": "janus.plugin.videoroom"})
        return int(reply["data"]["id"])

    async def message(
        self, handle: int, body: dict[str, Any], jsep: dict[str, Any] | None = None
    ) -> dict[str, Any]:
        request: dict[str, Any] = {"janus": "message", "handle_id": handle, "body": body}
        if jsep is not None:
            request["jsep"] = jsep
        return await self.request(request)

    async def close(self) -> None:
        self._reader.cancel()
        with contextlib.suppress(Exception):
            await self.ws.close()


class JanusServer:
    name = "janus"

    def __init__(self, workdir: Path, interface: str, cpu: int | None) -> None:
        self.workdir = workdir / "janus"
        self.interface = interface
        self.cpu = cpu
        self.port = free_port()
        self.proc: subprocess.Popen[bytes] | None = None
        self._http: aiohttp.ClientSession | None = None
        self._sessions: list[_Session] = []
        self._feed = 0

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    async def start(self) -> None:
        self.workdir.mkdir(parents=True, exist_ok=True)
        write_config(self.workdir, self.port, self.interface)
        log = self.workdir / "janus.log"
        argv = [janus_binary(), "-C", str(self.workdir / "janus.jcfg")]
        argv += ["-F", str(self.workdir), "--disable-colors"]
        with log.open("wb") as out:
            self.proc = subprocess.Popen(
                pinned(self.cpu, argv),
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                cwd=self.workdir,
            )
        await wait_port(self.port, self.proc, log, 30)
        self._http = aiohttp.ClientSession()

    async def _session(self) -> tuple[_Session, int]:
        assert self._http is not None
        ws = await self._http.ws_connect(
            f"http://127.0.0.1:{self.port}/", protocols=("janus-protocol",)
        )
        session = _Session(ws)
        self._sessions.append(session)
        return session, await session.create()

    async def publish(self, offer_sdp: str) -> str:
        session, handle = await self._session()
        joined = await session.message(
            handle, {"request": "join", "ptype": "publisher", "room": ROOM, "display": "pub"}
        )
        self._feed = int(joined["plugindata"]["data"]["id"])
        reply = await session.message(
            handle,
            {"request": "publish", "audio": True, "video": True},
            {"type": "offer", "sdp": offer_sdp, "trickle": False},
        )
        return str(reply["jsep"]["sdp"])

    async def subscribe(self, index: int, answer_offer: AnswerOffer) -> None:
        session, handle = await self._session()
        attached = await session.message(
            handle,
            {
                "request": "join",
                "ptype": "subscriber",
                "room": ROOM,
                "streams": [{"feed": self._feed}],
            },
        )
        answer = await answer_offer(attached["jsep"]["sdp"])
        await session.message(
            handle, {"request": "start"}, {"type": "answer", "sdp": answer, "trickle": False}
        )

    async def stop(self) -> None:
        for session in self._sessions:
            await session.close()
        if self._http is not None:
            await self._http.close()
        self._sessions, self._http = [], None
        await terminate(self.proc)
