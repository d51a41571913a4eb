"""Hypothesis fuzz: >= 1000 malformed messages on ONE live, joined connection.

Each must get an `error` frame, the connection must keep answering `ping`, and nothing may be
logged at ERROR or with a traceback.
"""

from __future__ import annotations

import asyncio
import json
import logging
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from relayroom.signaling.server import Server, create_app
from tests.conftest import TEST_SECRET, WsClient, make_config

# Every test here adds to the inputs that the last test counts: the module runs as a whole.
pytestmark = pytest.mark.slow

REQUIRED: dict[str, dict[str, Any]] = {
    "join": {"room": "r", "token": "t"},
    "publish_offer": {"sdp": "v=0"},
    "subscribe_answer": {"sdp": "v=0"},
    "candidate": {"pc": "publisher", "candidate": {"candidate": "candidate:1"}},
    "mute": {"track_id": "t", "muted": True},
    "stats": {"report": {}},
    "signal": {"to": "PA_x", "payload": {}},
}
json_scalars = st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text()
json_values = st.recursive(
    json_scalars,
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=12,
)


@st.composite
def wrong_field(draw: st.DrawFn) -> str:
    """A known type with one required field missing or of the wrong type."""
    kind = draw(st.sampled_from(sorted(REQUIRED)))
    fields: dict[str, Any] = dict(REQUIRED[kind])
    victim = draw(st.sampled_from(sorted(fields)))
    if draw(st.booleans()):
        del fields[victim]
    else:
        good = type(fields[victim])
        fields[victim] = draw(
            json_values.filter(
                lambda v: (
                    type(v) is not good
                    and v is not None
                    and not (good is dict and isinstance(v, dict))
                )
            )
        )
    extra = draw(st.dictionaries(st.text(max_size=6), json_values, max_size=2))
    return json.dumps({**extra, **fields, "type": kind})


not_json = st.text(max_size=200).filter(lambda s: not _is_json(s))
non_objects = json_values.filter(lambda v: not isinstance(v, dict)).map(json.dumps)
unknown_type = (
    st.text(max_size=20)
    .filter(lambda s: s not in REQUIRED and s not in ("ping", "leave"))
    .map(lambda t: json.dumps({"type": t}))
)
bad_type_field = json_values.filter(lambda v: not isinstance(v, str)).map(
    lambda v: json.dumps({"type": v})
)
bad_ping = json_values.filter(
    lambda v: v is not None and (isinstance(v, bool) or not isinstance(v, int | float))
).map(lambda v: json.dumps({"type": "ping", "ts": v}))
malformed = st.one_of(not_json, non_objects, unknown_type, bad_type_field, wrong_field(), bad_ping)


def _is_json(text: str) -> bool:
    try:
        json.loads(text)
    except ValueError:
        return False
    return True


class LiveConnection:
    """A real server and one joined client, on an event loop in a background thread."""

    def __init__(self, tmp: Path) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        self.sent = 0
        self.client, self._test_server, self._session = self.call(self._start(tmp))

    def call(self, coro: Any, timeout: float = 10) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    async def _start(self, tmp: Path) -> Any:
        import aiohttp
        from aiohttp.test_utils import TestServer

        config = make_config(tmp, rate_limit_msgs_per_s=1e6, rate_limit_burst=10**6)
        server = TestServer(create_app(Server.build(config, TEST_SECRET)), host="127.0.0.1")
        await server.start_server()
        session = aiohttp.ClientSession()
        client = WsClient(await session.ws_connect(server.make_url("/ws")))
        await client.join("fuzz", "fuzzer")
        return client, server, session

    async def _exchange(self, text: str) -> dict[str, Any]:
        await self.client.ws.send_str(text)
        return await self.client.recv()

    def exchange(self, text: str) -> dict[str, Any]:
        self.sent += 1
        return self.call(self._exchange(text))  # type: ignore[no-any-return]

    def close(self) -> None:
        async def stop() -> None:
            await self.client.close()
            await self._session.close()
            await self._test_server.close()

        self.call(stop())
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(5)


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveConnection]:
    conn = LiveConnection(tmp_path_factory.mktemp("fuzz"))
    yield conn
    conn.close()


@settings(max_examples=1200, deadline=None, suppress_health_check=list(HealthCheck))
@given(text=malformed)
def test_malformed_message_gets_error_and_connection_survives(caplog_records, live, text):
    reply = live.exchange(text)
    assert reply["type"] == "error", (text, reply)
    assert reply["code"] in (
        "invalid_message",
        "unknown_type",
        "unauthorized",
        "forbidden",
        "unavailable",
        "sdp_rejected",
    )
    if live.sent % 100 == 0:
        assert live.exchange('{"type": "ping", "id": "alive"}')["type"] == "pong"


def test_after_fuzzing_the_connection_still_answers_ping(caplog_records, live):
    assert live.sent >= 1000
    assert live.exchange('{"type": "ping", "id": "end"}') == {
        "type": "pong",
        "ts": None,
        "ref": "end",
    }
    bad = [r for r in caplog_records if r.levelno >= logging.ERROR or r.exc_info]
    assert not bad, [r.getMessage() for r in bad[:3]]


class _Collector(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


@pytest.fixture(scope="module")
def caplog_records() -> Iterator[list[logging.LogRecord]]:
    """Every log record of the module (all threads), to prove no traceback was logged."""
    handler = _Collector()
    root = logging.getLogger()
    root.addHandler(handler)
    previous = root.level
    root.setLevel(logging.INFO)
    yield handler.records
    root.removeHandler(handler)
    root.setLevel(previous)
