"""Property tests: hostile DataChannel messages on every topic, from a real aiortc peer through a
real server to real aiortc peers.

Mallory sends one hostile message (any topic, either channel, as text, as bytes that are not
UTF-8, as binary, as a batch, at and over the size limit), then a probe. After each input:
mallory's connection still relays (alice and bob get the probe), alice still reaches bob on both
channels and bob still gets signaling, everything anyone received parses with a strict JSON
parser, relayed whiteboard messages and the room's stored history satisfy the page's schema, and
no `from` is spoofed. Every so often a late joiner reads the history the way a page does (`sync`
then the replay), and at the end the SQLite store is read back and checked the same way.
"""

from __future__ import annotations

import asyncio
import json
import math
import sqlite3
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tests.data.peer import DataClient
from tests.hostile.harness import (
    BIG,
    SURROGATES,
    LiveServer,
    StrictClient,
    hostile_number,
    hostile_settings,
    hostile_text,
    hostile_value,
    nested,
    send_text_bytes,
    strict_loads,
    to_text,
)
from tests.support.polling import eventually

# The live server's thread (aioice's consent timer) draws from the global `random` while
# Hypothesis generates an example; the strategies here use none.
pytestmark = pytest.mark.filterwarnings(
    "ignore:Do not use the `random` module inside strategies"
    ":hypothesis.errors.HypothesisDeprecationWarning"
)

ROOM = "dc"
VICTIM = "__VICTIM__"  # replaced by bob's participant id
MAX_BYTES = 16 * 1024  # data_max_message_bytes (the default)
SCTP_MAX_BYTES = 65536  # the largest message the server's SCTP end takes (max-message-size)
TOPICS = ["whiteboard", "ink", "cursor", "chat", "relay", "probe", "canary"]


# ------------------------------------------------------------------ the page's schema


def _number(value: Any, low: float, high: float) -> bool:
    return type(value) in (int, float) and math.isfinite(value) and low <= value <= high


def page_problem(payload: Any, *, stored: bool) -> str | None:
    """What the whiteboard page (web/js/whiteboard.js and docs/datachannels.md) cannot draw, read
    independently of the server's schema: a stroke is {op, id, color, width in (0, 100],
    points: non-empty [[x, y], ...] with x, y in [0, 1]}; undo is {op, id}; clear is never
    stored. JavaScript numbers only (a JSON `true` is not a number)."""
    if not isinstance(payload, dict):
        return "not an object"
    op = payload.get("op")
    if op == "clear":
        return "a clear was stored" if stored else None
    if not isinstance(payload.get("id"), str) or not payload["id"]:
        return "no id"
    if op == "undo":
        return None
    if op != "stroke":
        return f"unknown op {op!r}"
    if not isinstance(payload.get("color"), str):
        return "color is not a string"
    width = payload.get("width")
    if not _number(width, 0, 100) or width == 0:
        return f"width {width!r}"
    points = payload.get("points")
    if not isinstance(points, list) or not points:
        return "no points"
    for point in points:
        if not (
            isinstance(point, list) and len(point) == 2 and all(_number(v, 0.0, 1.0) for v in point)
        ):
            return f"point {point!r}"
    return None


# ------------------------------------------------------------------ hostile messages

good_point = st.tuples(st.floats(0, 1), st.floats(0, 1)).map(list)
bad_point = st.one_of(
    st.lists(hostile_number, max_size=3).map(list),
    st.tuples(hostile_number, st.floats(0, 1)).map(list),
    st.tuples(st.floats(0, 1), st.sampled_from([-0.001, 1.0001, True, None, "0.5"])).map(list),
    hostile_value,
)
hostile_width = st.one_of(
    hostile_number, st.sampled_from([-3, -0.0, 0, 100, 100.0001, True, "4", None, [4]])
)
hostile_color = st.one_of(
    hostile_text,
    st.sampled_from(["red", "#fff", "#ff000080", "rgb(1, 2, 3)", "url(x)", "red;x", "#ggg"]),
)


@st.composite
def stroke(draw: st.DrawFn) -> dict[str, Any]:
    """A whiteboard payload: a good stroke with some of its fields spoiled (or none)."""
    op = draw(st.sampled_from(["stroke"] * 6 + ["undo", "clear", "Stroke", ""]))
    points = draw(st.lists(good_point, min_size=1, max_size=8))
    payload: dict[str, Any] = {
        "op": op,
        "id": draw(st.text(min_size=1, max_size=12)),
        "color": "#3366ff",
        "width": draw(st.floats(0.5, 100)),
        "points": points,
    }
    if op == "undo":
        payload = {"op": "undo", "id": payload["id"]}
    elif op == "clear":
        payload = {"op": "clear"}
    spoil = draw(
        st.lists(
            st.sampled_from(["id", "color", "width", "points", "point", "extra", "drop", "many"]),
            max_size=3,
        )
    )
    for what in spoil:
        if what == "id":
            payload["id"] = draw(st.one_of(hostile_text, hostile_value))
        elif what == "color":
            payload["color"] = draw(hostile_color)
        elif what == "width":
            payload["width"] = draw(hostile_width)
        elif what == "points":
            payload["points"] = draw(st.one_of(hostile_value, st.lists(bad_point, max_size=4)))
        elif what == "point" and isinstance(payload.get("points"), list):
            index = draw(st.integers(0, len(payload["points"])))
            payload["points"].insert(index, draw(bad_point))
        elif what == "extra":
            payload[draw(hostile_text)] = draw(hostile_value)
        elif what == "drop" and payload:
            del payload[draw(st.sampled_from(sorted(payload)))]
        elif what == "many":
            payload["points"] = [[0.5, 0.5]] * draw(st.sampled_from([1000, 1001]))
    return payload


cursor = st.fixed_dictionaries(
    {"x": hostile_number, "y": hostile_number, "name": hostile_text, "color": hostile_color}
)


# What the input rules exist for, placed where a relay would pass it on untouched.
poison = st.sampled_from(
    [math.nan, math.inf, -math.inf, BIG, 10**400, -(10**400), 2**53, *SURROGATES]
)
poisoned = st.one_of(
    poison,
    st.lists(st.one_of(poison, st.integers(), st.text(max_size=3)), min_size=1, max_size=3),
    st.dictionaries(st.text(max_size=3), poison, min_size=1, max_size=2),
    st.dictionaries(poison.filter(lambda v: isinstance(v, str)), st.integers(), min_size=1),
)


@st.composite
def item(draw: st.DrawFn) -> Any:
    """One message object (or something that should have been one)."""
    topic = draw(st.one_of(st.sampled_from(TOPICS), st.sampled_from(TOPICS), hostile_text))
    if topic == "whiteboard":
        payload = draw(st.one_of(stroke(), stroke(), hostile_value, poisoned))
    elif topic == "ink":
        payload = draw(stroke())
        if isinstance(payload, dict):
            payload.pop("op", None)
    elif topic == "cursor":
        payload = draw(st.one_of(cursor, hostile_value, poisoned))
    else:
        payload = draw(st.one_of(hostile_value, poisoned))
    message: dict[str, Any] = {"topic": topic, "payload": payload}
    extra = draw(st.sampled_from(["", "", "", "", "to", "to", "from", "drop", "extra", "other"]))
    if extra == "to":
        message["to"] = draw(
            st.one_of(
                st.just([VICTIM]),
                st.lists(st.one_of(st.just(VICTIM), hostile_text), max_size=4),
                st.just([VICTIM] * 65),
                hostile_value,
            )
        )
    elif extra == "from":
        message["from"] = draw(st.one_of(st.just(VICTIM), hostile_value))
    elif extra == "drop":
        del message[draw(st.sampled_from(["topic", "payload"]))]
    elif extra == "extra":
        message[draw(hostile_text)] = draw(hostile_value)
    elif extra == "other":
        return draw(st.one_of(hostile_value, st.just(topic)))  # not an object
    return message


@dataclass(frozen=True)
class Wire:
    """What mallory puts on a channel: text (maybe with raw lone surrogates) or bytes."""

    data: str | bytes
    lossy: bool
    as_text: bool = True
    """Bytes go as a text message (PPID 51) when true, as binary otherwise."""

    def __repr__(self) -> str:
        kind = "lossy" if self.lossy else "reliable"
        return f"Wire({kind}, text={self.as_text}, {self.data[:300]!r}, len={len(self.data)})"


def _padded(size: int) -> str:
    """A valid chat message of exactly `size` UTF-8 bytes."""
    shell = to_text({"topic": "chat", "payload": ""})
    return shell.replace('""', '"' + "x" * (size - len(shell)) + '"')


@st.composite
def wire(draw: st.DrawFn, items: Any = None) -> Wire:
    lossy = draw(st.booleans())
    form = draw(
        st.sampled_from(
            ["object"] * 6
            + ["batch"] * 3
            + ["raw-surrogates", "bytes", "binary", "garbage"]
            + ["size", "nesting"]
        )
    )
    items = items if items is not None else item()
    if form == "object":
        return Wire(to_text(draw(items)), lossy)
    if form == "batch":
        batch = draw(st.lists(items, min_size=0, max_size=66))
        while len(to_text(batch)) > SCTP_MAX_BYTES:  # aiortc would refuse to send it at all
            batch.pop()
        return Wire(to_text(batch), lossy)
    if form == "raw-surrogates":
        # The JSON text holds the surrogate itself, not a \\u escape: as UTF-8 bytes that is
        # ED A0 80 and the like, which no UTF-8 decoder accepts.
        value = draw(items)
        where = draw(st.sampled_from(SURROGATES))
        text = json.dumps({"topic": "chat", "payload": where, "x": value}, ensure_ascii=False)
        if draw(st.booleans()):
            text = json.dumps([value, {"topic": where, "payload": 1}], ensure_ascii=False)
        return Wire(text.encode("utf-8", "surrogatepass"), lossy)
    if form == "bytes":
        junk = draw(st.binary(min_size=1, max_size=64))
        prefix = b'{"topic":"chat","payload":"'
        return Wire(draw(st.sampled_from([junk, prefix + junk + b'"}'])), lossy)
    if form == "binary":
        return Wire(draw(st.binary(max_size=64)), lossy, as_text=False)
    if form == "garbage":
        text = draw(st.one_of(hostile_text, st.sampled_from(["", "[]", "{}", "null", "[[]]"])))
        return Wire(text if _encodes(text) else text.encode("utf-8", "surrogatepass"), lossy)
    if form == "size":
        size = draw(st.sampled_from([MAX_BYTES - 1, MAX_BYTES, MAX_BYTES + 1, SCTP_MAX_BYTES]))
        return Wire(_padded(size), lossy)
    depth = draw(st.integers(1, 300))
    return Wire(to_text({"topic": "chat", "payload": nested(depth)}), lossy)


def _encodes(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


# ------------------------------------------------------------------ peers


class Peer(DataClient):
    """A DataClient that parses every DataChannel message strictly and checks what it got."""

    def __init__(self, ws: StrictClient, known: set[str]) -> None:
        super().__init__(ws)
        self.strict_ws = ws
        self.known = known
        self.violations: list[str] = []
        self.history: list[dict[str, Any]] = []
        """Everything on `reliable` after the first `sync` (a late joiner's replay)."""
        self.syncs = 0
        self.strokes = 0
        """Whiteboard strokes relayed to this peer (the generator does make acceptable ones)."""
        self._seen: set[tuple[str, str, int]] = set()
        self._waiters: dict[tuple[str, str, int], asyncio.Future[None]] = {}

    def _on_message(self, label: str, text: str | bytes) -> None:
        if isinstance(text, bytes):
            self.violations.append(f"a binary message was relayed: {text[:100]!r}")
            return
        try:
            value = strict_loads(text)
        except ValueError as exc:
            self.violations.append(f"{exc}: {text[:200]!r}")
            return
        for message in value if isinstance(value, list) else [value]:
            self._check(label, message)

    def _check(self, label: str, message: Any) -> None:
        if not isinstance(message, dict) or not isinstance(message.get("topic"), str):
            self.violations.append(f"not a message: {message!r:.200}")
            return
        topic = message["topic"]
        if topic == "relay":
            if "from" in message or label != "reliable" or message["payload"]["op"] != "sync":
                self.violations.append(f"a control message was spoofed: {message!r:.200}")
            self.syncs += 1
            return
        if message.get("from") not in self.known:
            self.violations.append(f"'from' is not the sender's id: {message!r:.200}")
        if topic == "whiteboard":
            reason = page_problem(message.get("payload"), stored=False)
            if reason is not None:
                self.violations.append(f"the page cannot draw it ({reason}): {message!r:.200}")
            elif message["payload"].get("op") == "stroke":
                self.strokes += 1
        if label == "reliable" and self.syncs:
            self.history.append(message)
        payload = message.get("payload")
        if topic in ("probe", "canary") and isinstance(payload, int):
            key = (label, topic, payload)
            self._seen.add(key)
            waiter = self._waiters.pop(key, None)
            if waiter is not None and not waiter.done():
                waiter.set_result(None)

    async def got(self, label: str, topic: str, n: int, timeout: float = 10) -> bool:
        key = (label, topic, n)
        if key in self._seen:
            self._seen.discard(key)
            return True
        waiter = self._waiters.setdefault(key, asyncio.get_running_loop().create_future())
        try:
            await asyncio.wait_for(asyncio.shield(waiter), timeout)
        except TimeoutError:
            return False
        self._seen.discard(key)
        return True

    async def pong(self, ref: str, timeout: float = 5) -> bool:
        await self.ws.send({"type": "ping", "id": ref})
        found = await eventually(
            lambda: any(e.get("ref") == ref for e in self.events[-4:]), timeout, 0.002
        )
        self.events.clear()
        return found


class Board:
    """Mallory, alice and bob in one sfu room on one live server, with the checks."""

    def __init__(self, tmp: Path) -> None:
        self.live = LiveServer(
            tmp,
            allow_loopback_candidates=True,
            data_msgs_per_s=1e6,
            data_msgs_burst=10**6,
            data_bytes_per_s=1e9,
            data_bytes_burst=10**9,
            rate_limit_msgs_per_s=1e6,
            rate_limit_burst=10**6,
            rate_limit_close_after=10**6,
            ip_handshakes_per_s=1e4,
            ip_handshake_burst=10**4,
        )
        self.known: set[str] = set()
        self.sent = 0
        self.late_joiners = 0
        self.call(self._start())

    def call(self, coro: Any, timeout: float = 60) -> Any:
        return self.live.call(coro, timeout)

    async def peer(self, identity: str) -> Peer:
        ws = await self.live.client(ROOM, identity, mode="sfu")
        self.known.add(ws.joined["participant"]["id"] if ws.joined else "")
        peer = Peer(ws, self.known)
        await peer.start()
        return peer

    async def _start(self) -> None:
        self.mallory = await self.peer("mallory")
        self.alice = await self.peer("alice")
        self.bob = await self.peer("bob")

    @property
    def victims(self) -> tuple[Peer, Peer]:
        return self.alice, self.bob

    async def attack(self, hostile: Wire) -> None:
        try:
            await self._attack(hostile)
        except BaseException:
            # Later examples start from a healthy room, so each failure stays attributable.
            await self._reset()
            raise

    async def _reset(self) -> None:
        for peer in (self.mallory, self.alice, self.bob):
            await peer.close()
            await peer.ws.close()
        await self._start()
        # What the failed example left in the history was replayed to the new peers: clear it
        # and forget it, or the next example would be blamed for it.
        self.sent += 1
        self.alice.send("whiteboard", {"op": "clear"})
        self.alice.send("probe", self.sent)
        await self.bob.got("reliable", "probe", self.sent)
        for peer in (self.mallory, self.alice, self.bob):
            peer.violations.clear()

    async def _attack(self, hostile: Wire) -> None:
        self.sent += 1
        n = self.sent
        mallory = self.mallory
        channel = mallory.lossy if hostile.lossy else mallory.reliable
        data = hostile.data
        if isinstance(data, str):
            data = data.replace(f'"{VICTIM}"', json.dumps(self.bob.id))
            channel.send(data)
        elif hostile.as_text:
            send_text_bytes(channel, data)
        else:
            channel.send(data)
        # Mallory's own connection still relays: a probe follows on reliable, and on lossy
        # after a lossy message (the relay keeps each receiver channel's order, so whatever
        # the hostile message became has arrived before the probe behind it) ...
        mallory.send("probe", n)
        for victim in self.victims:
            assert await victim.got("reliable", "probe", n), f"probe {n} lost: {hostile!r}"
            if hostile.lossy:
                assert await self._lossy(mallory, victim, "probe", n), f"lossy probe {n} lost"
        # ... alice still reaches bob on both channels, and bob still gets signaling.
        self.alice.send("canary", n)
        assert await self.bob.got("reliable", "canary", n), "alice -> bob (reliable) lost"
        assert await self._lossy(self.alice, self.bob, "canary", n), "alice -> bob (lossy) lost"
        assert await self.bob.pong(f"ping{n}"), "bob's signaling stopped"
        self.check_clients(hostile)
        self.check_stored(hostile)
        if n % 150 == 0:
            await self.late_joiner()

    @staticmethod
    async def _lossy(sender: Peer, receiver: Peer, topic: str, n: int) -> bool:
        """Lossy may lose one to a busy machine; three lost in a row is a fault."""
        for _ in range(3):
            sender.send(topic, n, lossy=True)
            if await receiver.got("lossy", topic, n, timeout=2):
                return True
        return False

    def check_clients(self, hostile: Wire) -> None:
        for peer in (self.mallory, self.alice, self.bob):
            assert not peer.violations, (peer.violations[:3], hostile)
            assert not peer.strict_ws.violations, (peer.strict_ws.violations[:3], hostile)
            assert peer.pub.connectionState == "connected", hostile
        for victim in self.victims:
            assert not victim.errors, victim.errors[:3]  # errors go to the sender only

    def check_stored(self, hostile: Any = None) -> None:
        """The room's history as a replay would send it: strict JSON the page can draw."""
        relay = self.live.server.media.rooms[ROOM].data
        assert relay is not None
        for text in relay.log.texts():
            message = strict_loads(text)
            reason = page_problem(message.get("payload"), stored=True)
            assert reason is None, (reason, text[:300], hostile)
            assert message["topic"] == "whiteboard" and message.get("to") is None, text[:300]

    async def late_joiner(self) -> None:
        """A new participant joins and reads the history the way a page does."""
        self.late_joiners += 1
        room_data = self.live.server.media.rooms[ROOM].data
        assert room_data is not None
        expected = len(room_data.log)
        joiner = await self.peer(f"late{self.late_joiners}")
        try:
            # The sync comes first, and with an empty history it is all there is to wait for.
            assert await eventually(
                lambda: joiner.syncs >= 1 and len(joiner.history) >= expected, 15
            ), f"replay of {expected} incomplete: {joiner.syncs} syncs, {len(joiner.history)}"
            assert joiner.syncs == 1 and not joiner.violations, joiner.violations[:3]
            for message in joiner.history[:expected]:
                assert message["topic"] == "whiteboard"
                assert page_problem(message["payload"], stored=True) is None, message
        finally:
            await joiner.close()
            await joiner.ws.close()

    def stored_rows(self) -> list[tuple[str, str]]:
        """What the SQLite store holds for the room, after the write-behind queue is flushed."""
        store = self.live.server.media.store
        assert store is not None
        self.call(store.flush())
        path = self.live.config.data_dir / "rooms.sqlite3"
        with sqlite3.connect(path) as db:
            rows = db.execute(
                "SELECT topic, text FROM messages WHERE room = ? ORDER BY seq", (ROOM,)
            ).fetchall()
        return [(str(topic), str(text)) for topic, text in rows]

    def close(self) -> None:
        async def stop() -> None:
            for peer in (self.mallory, self.alice, self.bob):
                await peer.close()
                await peer.ws.close()

        self.call(stop())
        self.live.close()


@pytest.fixture(scope="module")
def board(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Board]:
    b = Board(tmp_path_factory.mktemp("hostile-data"))
    yield b
    b.close()


@hostile_settings(max_examples=1200)
@given(hostile=wire())
def test_hostile_datachannel_messages_never_hurt_other_participants(board: Board, hostile: Wire):
    board.call(board.attack(hostile))


@hostile_settings(max_examples=500)
@given(hostile=wire(st.fixed_dictionaries({"topic": st.just("whiteboard"), "payload": stroke()})))
def test_hostile_strokes_never_reach_the_board(board: Board, hostile: Wire):
    board.call(board.attack(hostile))


def test_after_the_attack_the_history_still_replays_and_is_stored_strictly(board: Board) -> None:
    assert board.sent >= 1600
    board.call(board.late_joiner())
    assert board.alice.strokes >= 10, "the generator hardly made an acceptable stroke"
    relay = board.live.server.media.rooms[ROOM].data
    assert relay is not None
    assert relay.failures == 0  # no message made the relay raise
    rows = board.stored_rows()
    assert [text for _, text in rows] == relay.log.texts()
    for topic, text in rows:
        message = strict_loads(text)
        assert topic == "whiteboard" and page_problem(message["payload"], stored=True) is None
    mallory_peer = relay.peer(board.mallory.id)
    assert mallory_peer is not None
    stats = mallory_peer.stats()
    assert stats["messages_refused"] > 0 and stats["messages_relayed"] > 0, stats
