"""A real relayroom server (guarded serving, as `relayroom serve`) on a background event loop,
strict-JSON clients, and hostile value strategies for the property tests."""

from __future__ import annotations

import asyncio
import json
import math
import os
import threading
from pathlib import Path
from typing import Any

import aiohttp
from aiohttp import web
from aiortc import RTCDataChannel
from aiortc.rtcsctptransport import WEBRTC_STRING
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st

from relayroom.signaling.server import Server, create_app
from relayroom.signaling.serving import start_serving
from tests.conftest import TEST_SECRET, WsClient, make_config, token_for

IN_CI = bool(os.environ.get("CI"))


def hostile_settings(max_examples: int) -> settings:
    """Settings of the property tests: no deadline (each example is a round trip through a real
    server), no health checks (slow examples are the point). In CI (`CI` set) the run is
    derandomized and keeps no example database: the same examples every run, nothing left
    behind; elsewhere examples vary and failures are replayed from the local database."""
    ci: dict[str, Any] = {"derandomize": True, "database": None} if IN_CI else {}
    return settings(
        max_examples=max_examples, deadline=None, suppress_health_check=list(HealthCheck), **ci
    )


def _no_lone_surrogate(value: Any) -> None:
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, str):
            item.encode("utf-8")  # raises on a lone surrogate
        elif isinstance(item, dict):
            stack.extend(item)
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)


def strict_loads(text: str) -> Any:
    """What a browser's JSON.parse accepts, plus UTF-8: NaN/Infinity and 1e400 are errors, and
    so is a lone surrogate, raw or escaped (`"\\ud800"` parses, but no UTF-8 writer can
    write the string again, and the input rules refuse it)."""

    def refuse(name: str) -> Any:
        raise ValueError(f"{name} is not JSON")

    def finite(text_: str) -> float:
        value = float(text_)
        if not math.isfinite(value):
            raise ValueError(f"{text_} overflows")
        return value

    text.encode("utf-8")  # raises on a lone surrogate
    value = json.loads(text, parse_constant=refuse, parse_float=finite)
    _no_lone_surrogate(value)
    return value


def send_text_bytes(channel: RTCDataChannel, data: bytes) -> None:
    """Send `data` as a *text* DataChannel message (PPID 51) as it is: what a hostile client
    does with bytes that are not UTF-8 (aiortc's own `send(str)` would encode them)."""
    assert data, "an empty text message has its own PPID: send('')"
    sctp: Any = channel.transport
    channel._addBufferedAmount(len(data))
    sctp._data_channel_queue.append((channel, WEBRTC_STRING, data))
    task = asyncio.ensure_future(sctp._data_channel_flush())
    _flushes.add(task)
    task.add_done_callback(_flushes.discard)


_flushes: set[asyncio.Future[None]] = set()


class StrictClient(WsClient):
    """A WsClient that parses every frame strictly and records what a browser would reject."""

    def __init__(self, ws: aiohttp.ClientWebSocketResponse) -> None:
        self.violations: list[str] = []
        super().__init__(ws)

    async def _read(self) -> None:
        while True:
            msg = await self.ws.receive()
            if msg.type is aiohttp.WSMsgType.TEXT:
                try:
                    await self.inbox.put(strict_loads(msg.data))
                except ValueError as exc:
                    self.violations.append(f"{exc}: {msg.data[:200]!r}")
            elif msg.type is aiohttp.WSMsgType.CLOSE:
                self.close_reason = msg.extra or ""
            elif msg.type in (aiohttp.WSMsgType.CLOSED, aiohttp.WSMsgType.ERROR):
                break
        self.closed.set()

    async def until(self, pred: Any, timeout: float = 5.0) -> dict[str, Any]:
        """The first message matching `pred`; others are dropped."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            message = await self.recv(max(deadline - loop.time(), 0.01))
            if pred(message):
                return message


class LiveServer:
    """A real server on 127.0.0.1, driven from sync Hypothesis tests through `call()`."""

    def __init__(self, tmp: Path, **overrides: Any) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        self.config = make_config(tmp, **overrides)
        self.server: Server = Server.build(self.config, TEST_SECRET)
        self.app: web.Application = create_app(self.server)
        self.runner: web.AppRunner = self.call(start_serving(self.app, "127.0.0.1", 0))
        self.port = next(a[1] for a in self.runner.addresses if isinstance(a, tuple))
        self.session: aiohttp.ClientSession = self.call(self._session())

    async def _session(self) -> aiohttp.ClientSession:
        return aiohttp.ClientSession()

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def call(self, coro: Any, timeout: float = 30) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    async def client(self, room: str | None = None, identity: str = "", **kw: Any) -> StrictClient:
        client = StrictClient(await self.session.ws_connect(self.url("/ws")))
        if room is not None:
            await client.join(room, identity, **kw)
        return client

    def admin_token(self) -> str:
        return token_for(
            "*", "ops", admin=True, can_publish=False, can_subscribe=False, can_publish_data=False
        )

    def close(self) -> None:
        async def stop() -> None:
            await self.session.close()
            await self.runner.cleanup()

        self.call(stop())
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(5)


class Feed:
    """The admin dashboard feed: counts ticks and strict-parses every frame."""

    def __init__(self, ws: aiohttp.ClientWebSocketResponse) -> None:
        self.ws = ws
        self.ticks = 0
        self.violations: list[str] = []
        self._task = asyncio.create_task(self._read())

    async def _read(self) -> None:
        async for msg in self.ws:
            if msg.type is aiohttp.WSMsgType.TEXT:
                try:
                    if strict_loads(msg.data).get("type") == "tick":
                        self.ticks += 1
                except ValueError as exc:
                    self.violations.append(str(exc))

    async def ticked(self, timeout: float = 5.0) -> bool:
        """A new tick arrives within `timeout` (the feed is alive)."""
        before = self.ticks
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while loop.time() < deadline:
            if self.ticks > before:
                return True
            await asyncio.sleep(0.02)
        return False


async def open_feed(live: LiveServer) -> Feed:
    ws = await live.session.ws_connect(
        live.url("/api/feed"), headers={"Authorization": f"Bearer {live.admin_token()}"}
    )
    return Feed(ws)


# ------------------------------------------------------------------ hostile values

BIG = "__BIG_FLOAT__"  # replaced by a bare 1e400 in the JSON text
SURROGATES = ["\ud800", "\udbff", "\udc00", "\udfff", "a\ud83d", "\ude00b"]
CONTROLS = ["\x00", "\x01", "\x1b[31m", "\x7f", "\x85", "\u2028", "\ufeff", "\t\n\r"]

hostile_text = st.one_of(
    st.sampled_from(SURROGATES + CONTROLS + ["", BIG]),
    st.lists(st.one_of(st.characters(), st.sampled_from(SURROGATES + CONTROLS)), max_size=24).map(
        "".join
    ),
    st.sampled_from([64, 65, 128, 129, 1024, 60001]).map(lambda n: "x" * n),
)
hostile_number = st.one_of(
    st.sampled_from(
        [
            math.nan,
            math.inf,
            -math.inf,
            BIG,
            10**400,
            -(10**30),
            2**53,
            2**53 - 1,
            -(2**53),
            2**63,
            1e308,
            -1e308,
            5e-324,
            -0.0,
            0,
            -1,
        ]
    ),
    st.integers(),
    st.floats(),
)


def nested(depth: int, leaf: Any = 0) -> Any:
    value = leaf
    for i in range(depth):
        value = [value] if i % 2 else {"k": value}
    return value


hostile_scalar = st.one_of(
    # Fresh containers each time (st.just would hand out one shared list for callers to mutate).
    hostile_text,
    hostile_number,
    st.booleans(),
    st.none(),
    st.builds(list),
    st.builds(dict),
)
hostile_value = st.one_of(
    hostile_scalar,
    st.integers(1, 300).map(nested),
    st.recursive(
        hostile_scalar,
        lambda inner: (
            st.lists(inner, max_size=4) | st.dictionaries(hostile_text, inner, max_size=4)
        ),
        max_leaves=10,
    ),
)


def to_text(value: Any) -> str:
    """JSON text as a hostile client writes it: NaN/Infinity tokens, 1e400, escaped surrogates."""
    return json.dumps(value, allow_nan=True).replace(f'"{BIG}"', "1e400")
