"""A real `relayroom serve --workers N` process on loopback, for the workers tests."""

from __future__ import annotations

import asyncio
import contextlib
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import aiohttp

from bench.loopback import free_port
from relayroom.signaling.tokens import Grants, mint_token
from tests.conftest import TEST_SECRET, WsClient
from tests.support.openapi_check import check_response

ROOT = Path(__file__).resolve().parents[2]
ADMIN_TOKEN = mint_token(
    TEST_SECRET, room="*", identity="ops", ttl_s=6 * 3600, grants=Grants(admin=True)
)
ADMIN = {"Authorization": "Bearer " + ADMIN_TOKEN}


class Host:
    """One supervisor and its workers; `log` is their shared output."""

    def __init__(
        self,
        workdir: Path,
        *args: str,
        workers: int = 2,
        settings: dict[str, str] | None = None,
    ) -> None:
        self.port = free_port()
        self.log_path = workdir / f"host-{self.port}.log"
        environ = {k: v for k, v in os.environ.items() if not k.startswith("RELAYROOM_")}
        environ.update(
            {
                "RELAYROOM_API_SECRET": TEST_SECRET,
                "RELAYROOM_ALLOW_LOOPBACK_CANDIDATES": "true",
                "RELAYROOM_DRAIN_TIMEOUT_S": "3",
                "RELAYROOM_IP_HANDSHAKES_PER_S": "1000",
                "RELAYROOM_IP_HANDSHAKE_BURST": "1000",
                **{"RELAYROOM_" + k.upper(): v for k, v in (settings or {}).items()},
            }
        )
        self._log = self.log_path.open("w")
        command = [sys.executable, "-m", "relayroom", "serve", "--workers", str(workers)]
        command += ["--port", str(self.port), "--ice-host", "127.0.0.1"]
        command += ["--data-dir", str(workdir / f"data-{self.port}"), *args]
        self.proc = subprocess.Popen(
            command, stdout=self._log, stderr=subprocess.STDOUT, env=environ, cwd=ROOT
        )
        self.wait_for_log(f"workers: {workers}", 60)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def ws_url(self) -> str:
        return self.url + "/ws"

    def log(self) -> str:
        return self.log_path.read_text()

    def wait_for_log(self, text: str, timeout: float = 15) -> None:
        deadline = time.monotonic() + timeout
        while text not in self.log():
            if self.proc.poll() is not None:
                raise AssertionError(f"exited {self.proc.returncode}:\n{self.log()}")
            if time.monotonic() > deadline:
                raise AssertionError(f"no {text!r} in the log:\n{self.log()}")
            time.sleep(0.05)

    def children(self) -> list[int]:
        """The supervisor's live child processes (its workers)."""
        path = Path(f"/proc/{self.proc.pid}/task/{self.proc.pid}/children")
        try:
            return [int(p) for p in path.read_text().split()]
        except OSError:
            return []

    async def api(self, path: str) -> Any:
        async with (
            aiohttp.ClientSession() as session,
            session.get(self.url + path, headers=ADMIN) as response,
        ):
            assert response.status == 200, await response.text()
            return await response.json()

    async def workers(self) -> list[dict[str, Any]]:
        """`/api/workers`, checked against the OpenAPI document the host serves."""
        body, document = await asyncio.gather(
            self.api("/api/workers"), self.api("/api/openapi.json")
        )
        check_response(document, "/api/workers", "GET", 200, body)
        return list(body["workers"])

    async def room_node(self, room: str, timeout: float = 5) -> str | None:
        """The node of the worker that hosts `room` (the admin API merges every worker's)."""
        deadline = time.monotonic() + timeout
        while True:
            rooms = (await self.api("/api/rooms"))["rooms"]
            node = next((r["node"] for r in rooms if r["name"] == room), None)
            if node is not None or time.monotonic() > deadline:
                return node
            # With Redis a worker's URL reaches the registry with its next heartbeat (2 s).
            await asyncio.sleep(0.2)

    def signal(self, signum: int) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signum)

    def stop(self) -> None:
        workers = self.children()
        self.signal(signal.SIGKILL)
        self.proc.wait(10)
        for pid in workers:  # normally gone already (they die with the supervisor)
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        self._log.close()


def alive(pid: int) -> bool:
    """The process exists and is not a zombie."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return False
    return "\nState:\tZ" not in status


class Member:
    """A signaling client that reconnects the way the browser library does (backoff from
    1 s, with jitter) after its WebSocket ends."""

    def __init__(self, identity: str, room: str, session: aiohttp.ClientSession) -> None:
        self.identity, self.room, self.session = identity, room, session
        self.client: WsClient | None = None
        self.joined: dict[str, Any] | None = None
        self.rejoined_at: float | None = None

    async def join(self, url: str) -> bool:
        try:
            self.client = WsClient(await self.session.ws_connect(url))
            self.joined = await self.client.join(self.room, self.identity, mode="sfu")
        except (aiohttp.ClientError, AssertionError, TimeoutError):
            return False
        return True

    async def reconnect_loop(self, url: str) -> None:
        assert self.client is not None
        await self.client.closed.wait()
        attempt = 0
        while True:
            ceiling = min(30.0, 2.0**attempt)
            await asyncio.sleep(ceiling / 2 + random.random() * ceiling / 2)
            attempt += 1
            if await self.join(url):
                self.rejoined_at = time.monotonic()
                return
