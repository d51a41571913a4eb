"""`relayroom serve` as a real process, signaled over its WebSocket protocol."""

from __future__ import annotations

import asyncio
import contextlib
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import aiohttp

from bench.sfu.servers import AnswerOffer, free_port, pinned, terminate, wait_port

ROOT = Path(__file__).resolve().parents[2]
SECRET = "sfu-compare-bench-secret-0123456789abcdef"
ROOM = "bench"


def venv_python() -> str:
    """The repository's venv interpreter (the one `relayroom serve` is installed in)."""
    candidate = ROOT / ".venv" / "bin" / "python"
    return str(candidate) if candidate.exists() else sys.executable


class RelayroomServer:
    name = "relayroom"

    def __init__(self, workdir: Path, media_addr: str, cpu: int | None) -> None:
        self.workdir = workdir / "relayroom"
        self.media_addr = media_addr
        self.cpu = cpu
        self.port = free_port()
        self.proc: subprocess.Popen[bytes] | None = None
        self._http: aiohttp.ClientSession | None = None
        self._sockets: list[aiohttp.ClientWebSocketResponse] = []
        self._tasks: list[asyncio.Task[None]] = []

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    async def start(self) -> None:
        self.workdir.mkdir(parents=True, exist_ok=True)
        env = {k: v for k, v in os.environ.items() if not k.startswith("RELAYROOM_")}
        env.update(
            {
                "RELAYROOM_API_SECRET": SECRET,
                # The clients' candidates are on the veth pair, a private range.
                "RELAYROOM_ALLOW_PRIVATE_CANDIDATES": "true",
                "RELAYROOM_LOG_LEVEL": "warning",
            }
        )
        log = self.workdir / "server.log"
        argv = [venv_python(), "-m", "relayroom", "serve", "--workers", "1"]  # this process
        argv += ["--port", str(self.port)]
        argv += ["--no-turn", "--ice-host", self.media_addr, "--data-dir", str(self.workdir)]
        with log.open("wb") as out:
            self.proc = subprocess.Popen(
                pinned(self.cpu, argv),
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                env=env,
                cwd=ROOT,
            )
        await wait_port(self.port, self.proc, log, 30)
        self._http = aiohttp.ClientSession()

    async def _join(self, identity: str, can_publish: bool) -> aiohttp.ClientWebSocketResponse:
        from relayroom.api import AccessToken, Grants

        token = AccessToken(
            api_secret=SECRET,
            identity=identity,
            room=ROOM,
            grants=Grants(can_publish=can_publish, can_subscribe=not can_publish),
        ).to_jwt()
        assert self._http is not None
        ws = await self._http.ws_connect(f"http://127.0.0.1:{self.port}/ws")
        self._sockets.append(ws)
        await ws.send_json({"type": "join", "room": ROOM, "token": token})
        joined = await self._expect(ws, "joined")
        del joined
        return ws

    @staticmethod
    async def _expect(ws: aiohttp.ClientWebSocketResponse, kind: str) -> dict[str, Any]:
        async with asyncio.timeout(20):
            while True:
                msg: dict[str, Any] = await ws.receive_json()
                if msg.get("type") == "error":
                    raise RuntimeError(f"relayroom: {msg}")
                if msg.get("type") == kind:
                    return msg

    async def publish(self, offer_sdp: str) -> str:
        ws = await self._join("publisher", can_publish=True)
        await ws.send_json({"type": "publish_offer", "sdp": offer_sdp})
        answer = await self._expect(ws, "publish_answer")
        self._tasks.append(asyncio.create_task(self._drain(ws, None)))
        return str(answer["sdp"])

    async def subscribe(self, index: int, answer_offer: AnswerOffer) -> None:
        ws = await self._join(f"subscriber-{index}", can_publish=False)
        answered = asyncio.Event()
        self._tasks.append(asyncio.create_task(self._drain(ws, answer_offer, answered)))
        async with asyncio.timeout(30):
            await answered.wait()

    async def _drain(
        self,
        ws: aiohttp.ClientWebSocketResponse,
        answer_offer: AnswerOffer | None,
        answered: asyncio.Event | None = None,
    ) -> None:
        """Keep reading (so pings get pongs); answer each subscribe_offer, renegotiations too."""
        async for frame in ws:
            if frame.type != aiohttp.WSMsgType.TEXT:
                continue
            msg = frame.json()
            if msg.get("type") == "subscribe_offer" and answer_offer is not None:
                sdp = await answer_offer(msg["sdp"])
                await ws.send_json({"type": "subscribe_answer", "sdp": sdp})
                if answered is not None:
                    answered.set()

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        for ws in self._sockets:
            with contextlib.suppress(Exception):
                await ws.close()
        if self._http is not None:
            await self._http.close()
        self._tasks, self._sockets, self._http = [], [], None
        await terminate(self.proc)
