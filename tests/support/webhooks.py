"""A real webhook receiver: an aiohttp server on loopback that verifies every request with the
SDK's `WebhookReceiver` and keeps what it got, in arrival order."""

from __future__ import annotations

import asyncio
import socket
from types import TracebackType
from typing import Self

from aiohttp import web

from relayroom.api import WebhookEvent, WebhookReceiver, WebhookVerificationError


def free_port() -> int:
    """A loopback TCP port that nothing listens on now (for a receiver that starts later)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


class WebhookSink:
    """POST /hook: verify, record, answer 204 (or `fail_next` times 500, or hang if `hang`)."""

    def __init__(self, receiver: WebhookReceiver, port: int = 0) -> None:
        self.receiver = receiver
        self.port = port
        self.events: list[WebhookEvent] = []
        self.rejected: list[str] = []  # WebhookVerificationError codes
        self.requests = 0
        self.timestamps: list[int] = []
        self.fail_next = 0
        self.hang = False
        self._release = asyncio.Event()
        self._runner: web.AppRunner | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/hook"

    def kinds(self) -> list[str]:
        return [e.event for e in self.events]

    async def _hook(self, request: web.Request) -> web.Response:
        self.requests += 1
        if self.hang:  # hold the request open, answer nothing
            await self._release.wait()
            return web.Response(status=503)
        body = await request.read()
        try:
            event = self.receiver.verify(body, request.headers)
        except WebhookVerificationError as exc:
            self.rejected.append(exc.code)
            return web.Response(status=400, text=str(exc))
        if self.fail_next > 0:
            self.fail_next -= 1
            return web.Response(status=500)
        self.timestamps.append(int(request.headers["Relayroom-Webhook-Timestamp"]))
        self.events.append(event)
        return web.Response(status=204)

    async def start(self) -> Self:
        app = web.Application()
        app.router.add_post("/hook", self._hook)
        self._runner = web.AppRunner(app, handle_signals=False, shutdown_timeout=0.5)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", self.port)
        await site.start()
        if self.port == 0:
            self.port = self._runner.addresses[0][1]
        return self

    async def stop(self) -> None:
        self._release.set()
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def __aenter__(self) -> Self:
        return await self.start()

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.stop()
