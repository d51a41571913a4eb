"""Serving the app on TCP with a guard against connections that never finish a request.

aiohttp accepts connections itself and holds one that sends a partial request line or headers
for as long as its keep-alive timeout (an hour): a few hundred such sockets from one address
(slowloris) cost as many file descriptors and tasks, and per-IP admission in the WebSocket
handler only runs after a full upgrade request. The guard wraps aiohttp's protocol objects:

- each connection must finish its request headers within ``http_header_timeout_s`` of
  connecting (or of its previous response), else it is closed;
- each client address may hold at most ``ip_max_pending_connections`` connections that are not
  (yet) WebSockets; more are closed at once. A WebSocket leaves that count when upgraded (its
  own cap is ``ip_max_connections``).

"Headers finished" is known exactly: aiohttp calls the application (and so `guard_middleware`)
only once a request's headers have been parsed.
"""

from __future__ import annotations

import asyncio
import logging
import socket
import ssl
from collections import Counter
from collections.abc import Awaitable, Callable
from typing import Any, cast

from aiohttp import web

log = logging.getLogger(__name__)


class ConnectionGuard:
    """Header deadlines and the per-IP cap of not-yet-upgraded connections."""

    def __init__(
        self,
        header_timeout_s: float,
        max_pending_per_ip: int,
        on_refused: Callable[[str], None] | None = None,
    ) -> None:
        self.header_timeout_s = header_timeout_s
        self.max_pending_per_ip = max_pending_per_ip
        self._on_refused = on_refused
        self._pending: Counter[str] = Counter()
        self._guarded: dict[asyncio.BaseTransport, _GuardedProtocol] = {}
        self.refused_over_cap = 0
        self.closed_header_timeout = 0

    @property
    def pending(self) -> int:
        """Connections open now that are not WebSockets."""
        return sum(self._pending.values())

    def wrap(self, factory: Callable[[], asyncio.Protocol]) -> Callable[[], asyncio.Protocol]:
        """A protocol factory for `loop.create_server` around aiohttp's own."""
        return lambda: _GuardedProtocol(self, factory())

    # --- called by the app, per request -------------------------------------------------

    def request_started(self, transport: asyncio.BaseTransport | None) -> None:
        guarded = self._guarded.get(transport) if transport is not None else None
        if guarded is not None:
            guarded.disarm()

    def request_finished(self, transport: asyncio.BaseTransport | None) -> None:
        guarded = self._guarded.get(transport) if transport is not None else None
        if guarded is not None and not guarded.upgraded:
            guarded.arm()  # the next request's headers get the same deadline

    def upgraded(self, transport: asyncio.BaseTransport | None) -> None:
        """The connection became a WebSocket: it no longer counts as pending."""
        guarded = self._guarded.get(transport) if transport is not None else None
        if guarded is not None:
            guarded.mark_upgraded()

    # --- bookkeeping for _GuardedProtocol ------------------------------------------------

    def _admit(self, ip: str, guarded: _GuardedProtocol) -> bool:
        if self._pending[ip] >= self.max_pending_per_ip:
            self.refused_over_cap += 1
            if self.refused_over_cap in (1, 100) or self.refused_over_cap % 10000 == 0:
                log.warning(
                    "ip=%s over %d pending connections: closing new ones (%d so far)",
                    ip,
                    self.max_pending_per_ip,
                    self.refused_over_cap,
                )
            if self._on_refused is not None:
                self._on_refused("over_cap")
            return False
        self._pending[ip] += 1
        return True

    def _release(self, ip: str) -> None:
        self._pending[ip] -= 1
        if self._pending[ip] <= 0:
            del self._pending[ip]

    def _timed_out(self) -> None:
        self.closed_header_timeout += 1
        if self.closed_header_timeout in (1, 100) or self.closed_header_timeout % 10000 == 0:
            log.info(
                "closed a connection without request headers after %.1fs (%d so far)",
                self.header_timeout_s,
                self.closed_header_timeout,
            )
        if self._on_refused is not None:
            self._on_refused("header_timeout")


class _GuardedProtocol(asyncio.Protocol):
    """Forwards every event to aiohttp's RequestHandler; adds the deadline and the IP count."""

    def __init__(self, guard: ConnectionGuard, inner: asyncio.Protocol) -> None:
        self._guard = guard
        self._inner = inner
        self._transport: asyncio.Transport | None = None
        self._ip: str | None = None  # set while counted as pending
        self._deadline: asyncio.TimerHandle | None = None
        self._refused = False
        self.upgraded = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # asyncio's TCP transports are asyncio.Transport; uvloop's only quack like one.
        transport = cast(asyncio.Transport, transport)
        self._transport = transport
        peer = transport.get_extra_info("peername")
        ip = str(peer[0]) if isinstance(peer, tuple) and peer else "unknown"
        if not self._guard._admit(ip, self):
            self._refused = True
            transport.abort()
            return
        self._ip = ip
        self._guard._guarded[transport] = self
        self.arm()
        self._inner.connection_made(transport)

    def arm(self) -> None:
        self.disarm()
        if self._transport is not None and not self._transport.is_closing():
            self._deadline = asyncio.get_running_loop().call_later(
                self._guard.header_timeout_s, self._expire
            )

    def disarm(self) -> None:
        if self._deadline is not None:
            self._deadline.cancel()
            self._deadline = None

    def mark_upgraded(self) -> None:
        self.upgraded = True
        self.disarm()
        if self._ip is not None:
            self._guard._release(self._ip)
            self._ip = None

    def _expire(self) -> None:
        self._deadline = None
        if self._transport is not None:
            self._guard._timed_out()
            self._transport.abort()

    def data_received(self, data: bytes) -> None:
        if not self._refused:
            self._inner.data_received(data)

    def eof_received(self) -> bool | None:
        return None if self._refused else self._inner.eof_received()

    def pause_writing(self) -> None:
        if not self._refused:
            self._inner.pause_writing()

    def resume_writing(self) -> None:
        if not self._refused:
            self._inner.resume_writing()

    def connection_lost(self, exc: Exception | None) -> None:
        self.disarm()
        if self._refused:
            return
        if self._transport is not None:
            self._guard._guarded.pop(self._transport, None)
        if self._ip is not None:
            self._guard._release(self._ip)
            self._ip = None
        self._inner.connection_lost(exc)


GUARD_KEY = web.AppKey("connection_guard", ConnectionGuard)


def guard_middleware(guard: ConnectionGuard) -> Any:
    """Tells the guard when a request's headers are in (the app runs) and when it is done."""

    @web.middleware
    async def middleware(
        request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
    ) -> web.StreamResponse:
        transport = request.transport
        guard.request_started(transport)
        try:
            return await handler(request)
        finally:
            guard.request_finished(transport)

    return middleware


class GuardedSite(web.BaseSite):
    """Like aiohttp's TCPSite, with every connection going through a ConnectionGuard.

    With `sock`, accepts on that listening socket instead of binding one: a host's workers all
    accept on the socket their supervisor bound (prefork).
    """

    def __init__(
        self,
        runner: web.BaseRunner,
        guard: ConnectionGuard,
        host: str,
        port: int,
        *,
        ssl_context: ssl.SSLContext | None = None,
        sock: socket.socket | None = None,
    ) -> None:
        super().__init__(runner, ssl_context=ssl_context)
        self._guard = guard
        self._host = host
        self._port = port
        self._sock = sock

    @property
    def name(self) -> str:
        scheme = "https" if self._ssl_context else "http"
        return f"{scheme}://{self._host}:{self._port}"

    async def start(self) -> None:
        await super().start()
        server = self._runner.server
        assert server is not None
        loop = asyncio.get_running_loop()
        if self._sock is not None:
            self._server = await loop.create_server(
                self._guard.wrap(server),
                sock=self._sock,
                ssl=self._ssl_context,
                backlog=self._backlog,
            )
            return
        self._server = await loop.create_server(
            self._guard.wrap(server),
            self._host,
            self._port,
            ssl=self._ssl_context,
            backlog=self._backlog,
            reuse_address=True,
        )


async def start_serving(
    app: web.Application,
    host: str,
    port: int,
    *,
    ssl_context: ssl.SSLContext | None = None,
    sock: socket.socket | None = None,
    private_port: int | None = None,
    private_host: str = "127.0.0.1",
) -> web.AppRunner:
    """Set up and start the app behind its ConnectionGuard (made by `create_app`).

    `sock`: accept on this listening socket (a worker). `private_port`: also serve plain HTTP
    on `private_host` at that port (0: any free one), the worker's own address for the other
    workers. Returns the runner: `runner.addresses` has the bound ports (the private one
    last); `runner.cleanup()` stops it.
    """
    guard = app[GUARD_KEY]
    runner = web.AppRunner(app, handle_signals=False, access_log=None)
    await runner.setup()
    sites = [GuardedSite(runner, guard, host, port, ssl_context=ssl_context, sock=sock)]
    if private_port is not None:
        sites.append(GuardedSite(runner, guard, private_host, private_port))
    try:
        for site in sites:
            await site.start()
    except OSError:
        await runner.cleanup()
        raise
    return runner
